import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DType } from '../../src/core/dtype.js';
import { NumericError } from '../../src/core/errors.js';
import type { Dataset } from '../../src/data/dataset.js';
import { deserializeNetwork, serializeNetwork } from '../../src/grid/persistence.js';
import { buildNetwork } from '../../src/grid/spec.js';
import { createOptimizer } from '../../src/train/optimizers.js';
import { train } from '../../src/train/train.js';

/** One Dense 1 → 1 unit with w = 1, b = 0, so the output is the input. */
function identityNet() {
  const net = buildNetwork({ layers: [{ type: 'Dense', input_height: 1, output_height: 1, use_bias: true }] });
  const w = net.layers()[0].weights!;
  w.master.set([1, 0]);
  w.markMasterChanged();
  return net;
}

function regression(inputs: number[], targets: number[]): Dataset {
  return { count: inputs.length, inputs: Float32Array.from(inputs), inputShape: [1], targets: Float32Array.from(targets), targetWidth: 1, source: 'test' };
}

/** Runs train and returns the NumericError it throws and the batches that completed before it. */
function trainUntilError(data: Dataset, lr: number, checkFinite?: boolean) {
  const net = identityNet();
  const done: string[] = [];
  let error: unknown;
  try {
    train(net, data, {
      epochs: 2,
      batchSize: 1,
      loss: 'mse',
      optimizer: createOptimizer({ type: 'sgd', lr }),
      shuffle: false,
      checkFinite,
      onBatch: (p) => done.push(`epoch ${p.epoch}, batch ${p.batch}`),
    });
  } catch (e) {
    error = e;
  }
  return { net, done, error };
}

// Sample 3 is finite (3e38) but its error against -3e38 overflows float32 in the loss gradient.
const OVERFLOWING_GRADIENT = regression([1, 0.5, 3e38, 1], [1, 0.5, -3e38, 1]);

test('training stops at the first non-finite gradient with an error naming the layer and the step', () => {
  const { done, error } = trainUntilError(OVERFLOWING_GRADIENT, 1e-3);
  assert.ok(error instanceof NumericError, `expected a NumericError, got ${String(error)}`);
  assert.match(error.message, /gradient of Dense at \(0,0,0,0\)/);
  assert.match(error.message, /epoch 1, batch 3/);
  assert.deepEqual(done, ['epoch 1, batch 1', 'epoch 1, batch 2'], 'no step after the first non-finite value');
});

test('training stops at the first non-finite forward output with an error naming the layer', () => {
  // lr 1e38 makes the first update w = b ≈ -2e38 (still finite), so batch 2's output 2w + b overflows float32.
  const { done, error } = trainUntilError(regression([1, 2, 3, 4], [0, 0, 0, 0]), 1e38);
  assert.ok(error instanceof NumericError, `expected a NumericError, got ${String(error)}`);
  assert.match(error.message, /output of Dense at \(0,0,0,0\) \(float32\) is (-?Infinity|NaN)/);
  assert.deepEqual(done, ['epoch 1, batch 1']);
});

test('a non-finite forward output is reported with its training step', () => {
  const { error } = trainUntilError(regression([1, 2, 3, 4], [0, 0, 0, 0]), 1e38);
  assert.match((error as Error).message, /epoch 1, batch 2/);
});

test('checkFinite: false trains through non-finite values', () => {
  const { net, done, error } = trainUntilError(OVERFLOWING_GRADIENT, 1e-3, false);
  assert.equal(error, undefined);
  assert.equal(done.length, 8);
  assert.ok(net.layers()[0].weights!.master.some((v) => !Number.isFinite(v)), 'the blow-up reached the weights, as asked');
});

function modelWith(value: number, dtype: string) {
  const net = buildNetwork({ layers: [{ type: 'Dense', input_height: 2, output_height: 2, dtype }] });
  const w = net.layers()[0].weights!;
  w.master[3] = value;
  w.markMasterChanged();
  return serializeNetwork(net);
}

test('loading refuses NaN/Inf weights unless allowNonFinite, naming the layer and parameter', () => {
  for (const [value, dtype] of [[NaN, 'float32'], [Infinity, 'float32'], [-Infinity, 'float16'], [NaN, 'bfloat16'], [NaN, 'float64']] as const) {
    const text = modelWith(value, dtype);
    assert.throws(
      () => deserializeNetwork(text),
      (e: unknown) => e instanceof NumericError && /layers\[0\]\.weights: parameter 3 of Dense at \(0,0,0,0\) is (NaN|-?Infinity)/.test(e.message) && /allowNonFinite/.test(e.message),
      `${value} in ${dtype}`,
    );
    const net = deserializeNetwork(text, { allowNonFinite: true });
    assert.ok(Object.is(net.layers()[0].weights!.master[3], value), `${value} in ${dtype} survives with allowNonFinite`);
  }
});

test('loading refuses a quantization scale that overflows float32, unless allowNonFinite', () => {
  const doc = JSON.parse(modelWith(0.5, 'int8'));
  doc.layers[0].scale = 1e39; // finite in JSON, Infinity once rounded to float32
  assert.throws(() => deserializeNetwork(JSON.stringify(doc)), NumericError);
  assert.equal(deserializeNetwork(JSON.stringify(doc), { allowNonFinite: true }).layers()[0].dtype, DType.Int8);
});

test('legacy (non-native) float32 weights are checked too', () => {
  const doc = JSON.parse(modelWith(1, 'float32'));
  const bytes = new Float32Array([0, 0, 0, NaN, 0, 0]);
  doc.layers[0].weights = Buffer.from(bytes.buffer).toString('base64');
  doc.layers[0].native = false;
  doc.layers[0].input_height = 2;
  doc.layers[0].output_height = 3;
  assert.throws(() => deserializeNetwork(JSON.stringify(doc)), /parameter 3 of Dense/);
  assert.ok(Number.isNaN(deserializeNetwork(JSON.stringify(doc), { allowNonFinite: true }).layers()[0].weights!.master[3]));
});
