// TensorFlow.js peer for bench/layers.ts (wasm backend, one thread in Node): the Conv2d pair forward and the
// LSTM forward (tf.basicLSTMCell per step). tfjs-core alone registers no gradients, so no backward case.
// Prints one JSON object. Usage: node tfjs_layers.mjs <seconds>
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';

const budget = Number(process.argv[2] ?? 1);
await tf.setBackend('wasm');
await tf.ready();

/** [median ms, best (minimum) ms, sample count] per call; each sample is one call after 3 warm-ups. */
function timed(fn) {
  for (let i = 0; i < 3; i++) fn();
  const samples = [];
  const deadline = performance.now() + budget * 1000;
  while (performance.now() < deadline || samples.length < 5) {
    const t0 = performance.now();
    fn();
    samples.push(performance.now() - t0);
  }
  samples.sort((a, b) => a - b);
  return [samples[samples.length >> 1], samples[0], samples.length];
}

const cases = [];
const x = tf.randomUniform([64, 28, 28, 1], 0, 1, 'float32', 1);
const k1 = tf.randomUniform([3, 3, 1, 16], -0.3, 0.3, 'float32', 2);
const b1 = tf.zeros([16]);
const k2 = tf.randomUniform([3, 3, 16, 32], -0.1, 0.1, 'float32', 3);
const b2 = tf.zeros([32]);
let [ms, best, samples] = timed(() => {
  const y = tf.tidy(() => tf.add(tf.conv2d(tf.add(tf.conv2d(x, k1, 1, 'same'), b1), k2, 1, 'same'), b2));
  y.dataSync();
  y.dispose();
});
cases.push({ case: 'conv2d pair fwd', ms, best_ms: best, samples });

const [seqLen, batch, nIn, hid] = [50, 16, 32, 64];
const steps = Array.from({ length: seqLen }, (_, t) => tf.randomUniform([batch, nIn], 0, 1, 'float32', 10 + t));
const kernel = tf.randomUniform([nIn + hid, 4 * hid], -0.125, 0.125, 'float32', 4);
const bias = tf.zeros([4 * hid]);
const forget = tf.scalar(0);
[ms, best, samples] = timed(() => {
  const out = tf.tidy(() => {
    let c = tf.zeros([batch, hid]);
    let h = tf.zeros([batch, hid]);
    const hs = [];
    for (const xt of steps) {
      [c, h] = tf.basicLSTMCell(forget, kernel, bias, xt, c, h);
      hs.push(h);
    }
    return tf.stack(hs);
  });
  out.dataSync();
  out.dispose();
});
cases.push({ case: 'lstm fwd', ms, best_ms: best, samples });
console.log(JSON.stringify({ peer: 'tfjs-wasm', version: tf.version_core, backend: tf.getBackend(), threads: 1, cases }));
