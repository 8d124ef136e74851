import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Tensor } from '../../src/core/tensor.js';
import { deviationMetrics, evaluateNetwork, evaluateNetworks, evaluatePrediction, formatMetricsTable } from '../../src/analysis/deviation.js';
import { buildNetwork } from '../../src/grid/spec.js';
import { WeightStore } from '../../src/core/weightStore.js';
import { ShapeError, SpecError } from '../../src/core/errors.js';

test('deviation buckets and the 0-100 score follow the original formulas', () => {
  assert.equal(evaluatePrediction(0, 10, 10.5).bucket, '0-10%');
  assert.equal(evaluatePrediction(0, 10, 11).bucket, '0-10%', 'a deviation of exactly 10% is in 0-10%');
  assert.equal(evaluatePrediction(0, 10, 12.5).bucket, '20-30%');
  assert.equal(evaluatePrediction(0, 10, 17).bucket, '50-100%');
  assert.equal(evaluatePrediction(0, 10, 35).bucket, '100%+');
  assert.equal(evaluatePrediction(0, 0, 0.3).deviation, 30, 'expected ~0: absolute error in percent');
  assert.equal(evaluatePrediction(0, 1, NaN).deviation, 100, 'non-finite counts as 100%');
  const m = deviationMetrics([10, 10, 10, 2], [10, 12, 35, 2]);
  assert.equal(m.totalSamples, 4);
  assert.equal(m.correctCount, 2);
  assert.equal(m.accuracy, 50);
  assert.equal(m.failures, 1);
  assert.equal(m.buckets['0-10%'].count, 2);
  assert.deepEqual(m.buckets['10-20%'].samples, [1]);
  assert.ok(Math.abs(m.score - (100 + 80 + 0 + 100) / 4) < 1e-9);
  assert.ok(Math.abs(m.averageDeviation - (0 + 20 + 250 + 0) / 4) < 1e-9);
  assert.throws(() => deviationMetrics([1], [1, 2]), ShapeError);
});

test('single and multi-network evaluation: argmax for classifiers, the value for regressors', () => {
  const identity = buildNetwork({ layers: [{ type: 'Dense', input_height: 2, output_height: 2 }] });
  identity.cells[0]!.weights = new WeightStore(Float32Array.of(1, 0, 0, 1));
  const sum = buildNetwork({ layers: [{ type: 'Dense', input_height: 2, output_height: 1 }] });
  sum.cells[0]!.weights = new WeightStore(Float32Array.of(1, 1));
  const inputs = [Tensor.from([1, 2], [0.9, 0.1]), Tensor.from([1, 2], [0.2, 0.7])];
  const c = evaluateNetwork(identity, inputs, [0, 1]);
  assert.equal(c.accuracy, 100);
  assert.equal(c.score, 100);
  const all = evaluateNetworks({ identity, sum }, inputs, [0, 1]);
  assert.equal(all.identity.accuracy, 100);
  assert.ok(Math.abs(all.sum.results[0].actual - 1) < 1e-6);
  assert.match(formatMetricsTable(all), /identity\s+100\.00%\s+100\.0/);
  assert.throws(() => evaluateNetwork(identity, inputs, [0]), SpecError);
});
