import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SpecError } from '../../src/core/errors.js';
import { featureCount, splitDataset, subset, type Dataset } from '../../src/data/dataset.js';

function numbered(count: number): Dataset {
  // Feature 0 is the sample index, so every split can be traced back.
  const inputs = new Float32Array(count * 3);
  for (let i = 0; i < count; i++) inputs.set([i, i * 10, -i], i * 3);
  return {
    count,
    inputs,
    inputShape: [3],
    labels: Int32Array.from({ length: count }, (_, i) => i % 4),
    targetWidth: 4,
    source: 'numbered',
  };
}

test('featureCount is the product of the input shape', () => {
  assert.equal(featureCount({ ...numbered(1), inputShape: [2, 3, 4] }), 24);
  assert.equal(featureCount(numbered(1)), 3);
});

test('splitDataset partitions the samples, seeded', () => {
  const d = numbered(100);
  const { train, validation } = splitDataset(d, 0.2, 42);
  assert.equal(validation.count, 20);
  assert.equal(train.count, 80);
  const seen = [...train.inputs.filter((_, k) => k % 3 === 0), ...validation.inputs.filter((_, k) => k % 3 === 0)].sort((a, b) => a - b);
  assert.deepEqual(seen, Array.from({ length: 100 }, (_, i) => i));
  for (const part of [train, validation]) {
    for (let s = 0; s < part.count; s++) {
      const i = part.inputs[s * 3];
      assert.deepEqual([...part.inputs.subarray(s * 3, s * 3 + 3)], [i, i * 10, -i]);
      assert.equal(part.labels![s], i % 4);
    }
  }
  const again = splitDataset(d, 0.2, 42);
  assert.deepEqual(again.validation.inputs, validation.inputs);
  assert.notDeepEqual(splitDataset(d, 0.2, 43).validation.inputs, validation.inputs);
  assert.match(validation.source, /numbered \(validation\)/);
});

test('splitDataset keeps a sample on each side and checks its fraction', () => {
  const { train, validation } = splitDataset(numbered(3), 0.01, 1);
  assert.equal(validation.count, 1);
  assert.equal(train.count, 2);
  assert.equal(splitDataset(numbered(3), 0.99, 1).train.count, 1);
  assert.throws(() => splitDataset(numbered(10), 0, 1), SpecError);
  assert.throws(() => splitDataset(numbered(10), 1, 1), SpecError);
  assert.throws(() => splitDataset(numbered(1), 0.5, 1), SpecError);
});

test('subset copies rows, labels, targets and image shape', () => {
  const d: Dataset = {
    count: 3,
    inputs: Float32Array.from([1, 2, 3, 4, 5, 6]),
    inputShape: [2],
    targets: Float32Array.from([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]),
    targetWidth: 2,
    source: 's',
    imageShape: [1, 2],
  };
  const s = subset(d, [2, 0, 2]);
  assert.equal(s.count, 3);
  assert.deepEqual([...s.inputs], [5, 6, 1, 2, 5, 6]);
  assert.deepEqual([...s.targets!], [0.5, 0.6, 0.1, 0.2, 0.5, 0.6].map(Math.fround));
  assert.deepEqual(s.imageShape, [1, 2]);
  s.inputs[0] = 99;
  assert.equal(d.inputs[4], 5, 'subset copies');
  assert.throws(() => subset(d, [3]), RangeError);
});
