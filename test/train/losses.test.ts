import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { Tensor } from '../../src/core/tensor.js';
import { crossEntropyLoss, mseLoss } from '../../src/train/losses.js';
import { assertClose, fixture, ROOT } from '../helpers.js';

const present = existsSync(`${ROOT}test/fixtures/losses.json`) ? false : 'fixture missing: run npm run golden';

test('MSE and cross-entropy match PyTorch, including extreme logits', { skip: present }, () => {
  const f = fixture('losses.json');
  const mse = mseLoss(Tensor.from(f.mse.pred_shape ?? f.mse.shape, f.mse.pred), Float32Array.from(f.mse.target));
  assertClose([mse.loss], [f.mse.loss], 1e-6, 1e-7, 'mse loss');
  assertClose(mse.grad.data, f.mse.grad, 1e-5, 1e-7, 'mse grad');
  const ce = crossEntropyLoss(Tensor.from(f.cross_entropy.logits_shape ?? f.cross_entropy.shape, f.cross_entropy.logits), Int32Array.from(f.cross_entropy.labels));
  assertClose([ce.loss], [f.cross_entropy.loss], 1e-6, 1e-7, 'ce loss');
  assertClose(ce.grad.data, f.cross_entropy.grad, 1e-5, 1e-7, 'ce grad');
});

test('cross-entropy stays finite for huge logits and rejects out-of-range labels', () => {
  const r = crossEntropyLoss(Tensor.from([2, 3], [1000, -1000, 0, -1e4, 1e4, 3]), Int32Array.from([0, 2]));
  assert.ok(Number.isFinite(r.loss));
  assert.ok(Math.abs(r.loss - (1e4 - 3) / 2) < 1e-3);
  assert.throws(() => crossEntropyLoss(Tensor.zeros([1, 3]), Int32Array.from([3])), /label 3 of sample 0 is out of range for 3 outputs/);
});
