import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SpecError } from '../../src/core/errors.js';
import { makeBlobs, makeSpirals } from '../../src/data/synthetic.js';

test('spirals are identical for a seed and differ across seeds', () => {
  const a = makeSpirals({ seed: 7 });
  const b = makeSpirals({ seed: 7 });
  const c = makeSpirals({ seed: 8 });
  assert.deepEqual(a.inputs, b.inputs);
  assert.deepEqual(a.labels, b.labels);
  assert.notDeepEqual(a.inputs, c.inputs);
});

test('spirals: 2 features, balanced interleaved labels, radius (i + 1) / n', () => {
  const d = makeSpirals({ classes: 4, pointsPerClass: 50, noise: 0.1, seed: 3 });
  assert.equal(d.count, 200);
  assert.deepEqual(d.inputShape, [2]);
  assert.equal(d.inputs.length, 400);
  assert.equal(d.targetWidth, 4);
  assert.deepEqual([...d.labels!.subarray(0, 8)], [0, 1, 2, 3, 0, 1, 2, 3]);
  for (let s = 0; s < d.count; s++) {
    const r = Math.hypot(d.inputs[2 * s], d.inputs[2 * s + 1]);
    // Noise is angular, so the radius is exactly (i + 1) / n.
    assert.ok(Math.abs(r - (Math.floor(s / 4) + 1) / 50) < 1e-6, `sample ${s} radius ${r}`);
  }
});

test('blobs are deterministic, have the requested shape and cluster by class', () => {
  const a = makeBlobs({ classes: 3, dims: 5, pointsPerClass: 40, spread: 0.1, seed: 2 });
  assert.deepEqual(a.inputs, makeBlobs({ classes: 3, dims: 5, pointsPerClass: 40, spread: 0.1, seed: 2 }).inputs);
  assert.notDeepEqual(a.inputs, makeBlobs({ classes: 3, dims: 5, pointsPerClass: 40, spread: 0.1, seed: 3 }).inputs);
  assert.equal(a.count, 120);
  assert.deepEqual(a.inputShape, [5]);
  assert.equal(a.targetWidth, 3);
  // Each sample is nearer its own class mean than any other (centres are ~3 apart, spread 0.1).
  const means = new Float64Array(15);
  for (let s = 0; s < a.count; s++) for (let d = 0; d < 5; d++) means[a.labels![s] * 5 + d] += a.inputs[s * 5 + d] / 40;
  for (let s = 0; s < a.count; s++) {
    const dist = [0, 1, 2].map((c) => Math.hypot(...Array.from({ length: 5 }, (_, d) => a.inputs[s * 5 + d] - means[c * 5 + d])));
    assert.equal(dist.indexOf(Math.min(...dist)), a.labels![s]);
  }
});

test('defaults work and bad options are SpecErrors', () => {
  assert.equal(makeSpirals().count, 900);
  assert.equal(makeBlobs().count, 300);
  assert.throws(() => makeSpirals({ classes: 1 }), SpecError);
  assert.throws(() => makeSpirals({ pointsPerClass: 2.5 }), /spirals\.pointsPerClass: expected an integer >= 1, got 2\.5/);
  assert.throws(() => makeBlobs({ spread: -1 }), /blobs\.spread: expected a finite number >= 0, got -1/);
});
