// TensorFlow.js peer for bench/run.ts: the 784-256-128-10 MLP training step at batch 64 on the wasm backend
// (XNNPACK, SIMD; one thread in Node). Gradients need the union package @tensorflow/tfjs: tfjs-core alone
// registers none. Prints one JSON object. Usage: node tfjs_mlp.mjs <seconds>
const budget = Number(process.argv[2] ?? 2);

let tf;
try {
  tf = await import('@tensorflow/tfjs');
  await import('@tensorflow/tfjs-backend-wasm');
  if (!(await tf.setBackend('wasm'))) throw new Error('wasm backend did not initialise');
  await tf.ready();
} catch (e) {
  // One line on stderr: bench/run.ts records the last line as the peer's error.
  process.stderr.write(`tfjs_mlp: ${String(e?.message ?? e).split('\n')[0]}\n`);
  process.exit(1);
}

const batch = 64;
const sizes = [784, 256, 128, 10];
/** PyTorch's nn.Linear default: weights and biases uniform in ±1/√fan_in. */
const params = [];
for (let l = 0; l < 3; l++) {
  const bound = 1 / Math.sqrt(sizes[l]);
  params.push({
    w: tf.variable(tf.randomUniform([sizes[l], sizes[l + 1]], -bound, bound, 'float32', 2 * l + 1)),
    b: tf.variable(tf.randomUniform([sizes[l + 1]], -bound, bound, 'float32', 2 * l + 2)),
  });
}
const varList = params.flatMap(({ w, b }) => [w, b]);
// Inputs and labels as in bench/run.ts.
const x = tf.tensor2d(Float32Array.from({ length: batch * 784 }, (_, i) => ((i * 7919) % 1000) / 1000), [batch, 784]);
const labels = tf.tidy(() => tf.oneHot(tf.tensor1d(Int32Array.from({ length: batch }, (_, i) => i % 10), 'int32'), 10));
// tfjs has no AdamW: plain Adam with PyTorch's AdamW lr/betas/eps (eps given explicitly: tfjs's default is 1e-7).
const opt = tf.train.adam(1e-3, 0.9, 0.999, 1e-8);

const loss = () => {
  let h = x;
  params.forEach(({ w, b }, l) => {
    h = tf.add(tf.matMul(h, w), b);
    if (l < 2) h = tf.relu(h);
  });
  return tf.losses.softmaxCrossEntropy(labels, h); // mean over the batch, like nn.CrossEntropyLoss
};
/** One step: gradients of the loss, Adam update, and the loss read back (dataSync). */
const step = () => {
  const l = opt.minimize(loss, true, varList);
  l.dataSync();
  l.dispose();
};

for (let i = 0; i < 20; i++) step();
// Each sample is one group of 10 steps as its per-step average: ms is the median sample, best the best (minimum)
// sample, i.e. the fastest group's per-step average (kept because the VM alternates fast and slow host phases).
const samples = [];
const deadline = performance.now() + budget * 1000;
while (performance.now() < deadline || samples.length < 5) {
  const t0 = performance.now();
  for (let i = 0; i < 10; i++) step();
  samples.push((performance.now() - t0) / 10);
}
samples.sort((a, b) => a - b);
const ms = samples[samples.length >> 1];
const best = samples[0];
console.log(JSON.stringify({
  peer: 'tfjs',
  backend: tf.getBackend(),
  version: tf.version.tfjs,
  threads: 1,
  ms_per_step: ms,
  samples_per_s: batch / (ms / 1000),
  best_ms_per_step: best,
  best_samples_per_s: batch / (best / 1000),
  detail: `raw ops (matMul+add+relu), tf.losses.softmaxCrossEntropy on one-hot labels; tf.train.adam(lr 1e-3, betas 0.9/0.999, eps 1e-8): ` +
    `tfjs has no AdamW, so no decoupled weight decay; step = minimize + dataSync of the loss; ` +
    `wasm SIMD ${tf.env().getBool('WASM_HAS_SIMD_SUPPORT') ? 'on' : 'off'}, no threads in Node (tfjs-wasm multithreading is browser-only); ` +
    `${samples.length} samples of 10 steps after 20 warm-up steps`,
}));
