import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { Tensor } from '../../src/core/tensor.js';
import { crossEntropyLoss, mseLoss } from '../../src/train/losses.js';
import { Rng } from '../../src/core/rng.js';
import { assertClose, fixture, KERNELS_OFF, ROOT, withKernelMode } from '../helpers.js';

const present = existsSync(`${ROOT}test/fixtures/losses.json`) ? false : 'fixture missing: run npm run golden';

test('MSE and cross-entropy match PyTorch, including extreme logits', { skip: present }, () => {
  const f = fixture('losses.json');
  const mse = mseLoss(Tensor.from(f.mse.pred_shape ?? f.mse.shape, f.mse.pred), Float32Array.from(f.mse.target));
  assertClose([mse.loss], [f.mse.loss], 1e-6, 1e-7, 'mse loss');
  assertClose(mse.grad.data, f.mse.grad, 1e-5, 1e-7, 'mse grad');
  for (const mode of KERNELS_OFF ? (['ts'] as const) : (['ts', 'wasm'] as const)) {
    const ce = withKernelMode(mode, () => crossEntropyLoss(Tensor.from(f.cross_entropy.logits_shape ?? f.cross_entropy.shape, f.cross_entropy.logits), Int32Array.from(f.cross_entropy.labels)));
    assertClose([ce.loss], [f.cross_entropy.loss], 1e-6, 1e-7, `ce loss (${mode})`);
    assertClose(ce.grad.data, f.cross_entropy.grad, 1e-5, 1e-7, `ce grad (${mode})`);
  }
});

/** crossEntropyLoss on the WebAssembly kernel and on the float64 reference. */
function bothPaths(logits: Tensor, labels: Int32Array) {
  return { wasm: withKernelMode('wasm', () => crossEntropyLoss(logits, labels)), ts: withKernelMode('ts', () => crossEntropyLoss(logits, labels)) };
}

test('cross-entropy on the WebAssembly kernel matches the float64 reference: any class count, chunks of rows, rows longer than a chunk', { skip: KERNELS_OFF }, () => {
  const rng = new Rng(17);
  // Class counts around the 4-lane tail, and shapes past one staged chunk (65536 logits) both ways.
  const shapes = [[1, 1], [7, 2], [33, 3], [5, 4], [9, 5], [64, 10], [13, 17], [6, 257], [4, 2048], [3, 70001], [20000, 10]];
  for (const [rows, classes] of shapes) {
    const z = Float32Array.from({ length: rows * classes }, () => (rng.uniform() * 2 - 1) * 12);
    const labels = Int32Array.from({ length: rows }, () => rng.int(classes));
    const { wasm, ts } = bothPaths(new Tensor(z, [rows, classes]), labels);
    const what = `${rows}×${classes}`;
    assertClose([wasm.loss], [ts.loss], 1e-6, 0, `${what} loss`);
    // float32 exps and products: a few ulps of each gradient, and 2 ulps of 1 (softmax − 1 cancels at the label) over rows.
    assertClose(wasm.grad.data, ts.grad.data, 4e-7, 2.4e-7 / rows, `${what} grad`);
    assert.equal(wasm.correct, ts.correct, `${what} correct`);
  }
});

test('cross-entropy kernel: ties count the first max like the reference, masked (−∞) logits get no gradient, NaN logits give a NaN loss', { skip: KERNELS_OFF }, () => {
  const ties = new Tensor(Float32Array.from([1, 5, 5, 2, 1, 5, 5, 2, 7, 7, 7, 7]), [3, 4]);
  for (const labels of [[1, 2, 0], [2, 1, 3]]) {
    const { wasm, ts } = bothPaths(ties, Int32Array.from(labels));
    assert.equal(wasm.correct, ts.correct, `labels ${labels}`);
  }
  const masked = new Tensor(Float32Array.from([-Infinity, 2, 0.5, -Infinity, 1, -Infinity]), [1, 6]);
  const { wasm, ts } = bothPaths(masked, Int32Array.from([1]));
  assertClose([wasm.loss], [ts.loss], 1e-6, 0, 'masked loss');
  for (const i of [0, 3, 5]) assert.ok(Math.abs(wasm.grad.data[i]) < 1e-30, `masked logit ${i}: ${wasm.grad.data[i]}`);
  const nan = new Tensor(Float32Array.from([0, NaN, 1, 2, 3, 4]), [2, 3]);
  const both = bothPaths(nan, Int32Array.from([0, 2]));
  assert.ok(Number.isNaN(both.wasm.loss) && Number.isNaN(both.ts.loss));
  assert.equal(both.wasm.correct, both.ts.correct);
});

test('cross-entropy stays finite for huge logits and rejects out-of-range labels', () => {
  const r = crossEntropyLoss(Tensor.from([2, 3], [1000, -1000, 0, -1e4, 1e4, 3]), Int32Array.from([0, 2]));
  assert.ok(Number.isFinite(r.loss));
  assert.ok(Math.abs(r.loss - (1e4 - 3) / 2) < 1e-3);
  assert.throws(() => crossEntropyLoss(Tensor.zeros([1, 3]), Int32Array.from([3])), /label 3 of sample 0 is out of range for 3 outputs/);
});
