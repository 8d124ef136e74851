// TensorFlow.js peer for bench/kernels.ts: tf.matMul on the wasm backend (XNNPACK, SIMD; one thread in Node).
// Prints one JSON object. Usage: node tfjs_kernels.mjs <seconds> <sgemm sizes, comma-separated> <gemv n>
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';

const budget = Number(process.argv[2] ?? 1);
const sizes = (process.argv[3] ?? '256').split(',').filter(Boolean).map(Number);
const gemvN = Number(process.argv[4] ?? 4096);

await tf.setBackend('wasm');
await tf.ready();

/**
 * [median ms, best (minimum) ms, sample count] per call; each sample is one call. The first call is a warm-up unless
 * it alone exceeds the budget (then it is the only sample). Operands stay resident. The best is kept because the VM
 * alternates fast and slow host phases.
 */
function timed(fn) {
  let t0 = performance.now();
  fn();
  const first = performance.now() - t0;
  if (first >= budget * 1000) return [first, first, 1];
  const samples = [];
  const deadline = performance.now() + budget * 1000;
  while (performance.now() < deadline || samples.length < 3) {
    t0 = performance.now();
    fn();
    samples.push(performance.now() - t0);
  }
  samples.sort((x, y) => x - y);
  return [samples[samples.length >> 1], samples[0], samples.length];
}

const matMul = (a, b) => () => tf.matMul(a, b).dispose();
const cases = [];
for (const n of sizes) {
  const a = tf.randomUniform([n, n], -0.5, 0.5, 'float32', 1);
  const b = tf.randomUniform([n, n], -0.5, 0.5, 'float32', 2);
  const [ms, best, samples] = timed(matMul(a, b));
  cases.push({ case: `sgemm ${n}³`, ms, gflops: (2 * n ** 3) / (ms * 1e6), best_ms: best, best_gflops: (2 * n ** 3) / (best * 1e6), samples });
  a.dispose();
  b.dispose();
}
const x = tf.randomUniform([1, gemvN], -0.5, 0.5, 'float32', 3);
const w = tf.randomUniform([gemvN, gemvN], -0.5, 0.5, 'float32', 4);
const [ms, best, samples] = timed(matMul(x, w));
cases.push({ case: `gemv ${gemvN}²`, ms, gflops: (2 * gemvN ** 2) / (ms * 1e6), best_ms: best, best_gflops: (2 * gemvN ** 2) / (best * 1e6), samples });
console.log(JSON.stringify({
  peer: 'tfjs-wasm',
  version: tf.version_core,
  backend: tf.getBackend(),
  simd: tf.env().getBool('WASM_HAS_SIMD_SUPPORT'),
  threads: tf.env().getBool('WASM_HAS_MULTITHREAD_SUPPORT') ? 'multi' : 1,
  cases,
}));
