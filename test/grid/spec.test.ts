import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FormatError, SpecError } from '../../src/core/errors.js';
import { DType } from '../../src/core/dtype.js';
import { buildNetwork } from '../../src/grid/spec.js';
import { Activation } from '../../src/layers/activations.js';

const base = { depth: 1, rows: 1, cols: 4, layers_per_cell: 1 };
const dense = { z: 0, y: 0, x: 0, l: 0, type: 'Dense', input_height: 4, output_height: 2 };

function specError(doc: unknown, message: string | RegExp): void {
  assert.throws(() => buildNetwork(doc), (e: unknown) => {
    assert.ok(e instanceof SpecError || e instanceof FormatError, `expected a typed error, got ${e}`);
    if (typeof message === 'string') assert.equal((e as Error).message, message);
    else assert.match((e as Error).message, message);
    return true;
  });
}

test('spec errors name the path and the expectation', () => {
  specError({ ...base, layers: [dense, { ...dense, x: 1, input_height: 2 }, { ...dense, x: 2, input_height: 2 }, { ...dense, x: 3, kernel_size: -1 }] }, 'layers[3].kernel_size: expected a non-negative integer, got -1');
  specError({ ...base, layers: [{ ...dense, input_height: 0 }] }, 'layers[0].input_height: expected a positive integer, got 0');
  specError({ ...base, layers: [{ ...dense, output_height: '8' }] }, 'layers[0].output_height: expected a non-negative integer, got "8"');
  specError({ ...base, layers: [{ ...dense, type: 'Conv9' }] }, /^layers\[0\]\.type: expected a supported layer type \(one of Dense, Residual.*\), got "Conv9"$/);
  specError({ ...base, layers: [{ ...dense, activation: 'relu6' }] }, /^layers\[0\]\.activation: expected an activation name \(one of ReLU, .*\), got "relu6"$/);
  specError({ ...base, layers: [{ ...dense, dtype: 'int3' }] }, /^layers\[0\]\.dtype: expected a dtype name/);
  specError({ ...base, layers: [{ ...dense, x: 4 }] }, 'layers[0].x: expected an integer in 0..3, got 4');
  specError({ ...base, layers: [{ ...dense, activaton: 'ReLU' }] }, 'layers[0].activaton: unknown field (did you mean "activation"?)');
  specError({ ...base, layers: [dense, { ...dense }] }, 'layers[1]: coordinate (0,0,0,0) is already used by layers[0]');
  specError({ ...base, depth: 0, layers: [] }, 'depth: expected a positive integer, got 0');
  specError({ ...base, layers: {} }, 'layers: expected an array of layer objects, got an object');
  specError({ ...base, layers: [42] }, 'layers[0]: expected an object, got 42');
  specError({ ...base, layers: [{ ...dense, type: undefined }] }, /^layers\[0\]\.type: expected a layer type/);
  specError('{"depth": 1,', /^network spec: invalid JSON/);
  specError({ ...base, layerz: [] }, 'layerz: unknown field (did you mean "layers"?)');
  specError({ ...base, layers: [{ ...dense, weights: 'AAAA', native: true }] }, /layers\[0\]\.weights: expected 32 bytes of float32 for 8 parameters, got 3/);
  specError({ ...base, layers: [{ ...dense, weights: 'A$AA' }] }, /invalid base64 character/);
});

test('names are read case-insensitively with the original\'s aliases', () => {
  const net = buildNetwork({
    ...base,
    layers: [
      { ...dense, type: 'dense', activation: 'leaky_relu', dtype: 'BF16' },
      { ...dense, x: 1, input_height: 2, type: 'DENSE', activation: 'silu', dtype: 'fp8' },
      { ...dense, x: 2, input_height: 2, type: 'residual' },
    ],
  });
  const l0 = net.getLayer(0, 0, 0, 0)!;
  assert.equal(l0.activation, Activation.LeakyReLU);
  assert.equal(l0.dtype, DType.BFloat16);
  assert.equal(net.getLayer(0, 0, 1, 0)!.dtype, DType.FP8E4M3);
  assert.equal(net.getLayer(0, 0, 2, 0)!.kind.name, 'Residual');
});

test('missing activation and dtype default to Linear and float32', () => {
  const net = buildNetwork({ ...base, layers: [dense] });
  const l = net.getLayer(0, 0, 0, 0)!;
  assert.equal(l.activation, Activation.Linear);
  assert.equal(l.dtype, DType.Float32);
});

test('__proto__ keys cannot pollute prototypes', () => {
  assert.throws(() => buildNetwork(`{"depth":1,"layers":[{"z":0,"type":"Dense","input_height":1,"output_height":1,"__proto__":{"polluted":true}}]}`), /__proto__: unknown field/);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});

test('initialization is seeded: same seed, same weights; other seed, other weights', () => {
  const a = buildNetwork({ ...base, layers: [dense] }, { seed: 5 }).getLayer(0, 0, 0, 0)!.weights!.master;
  const b = buildNetwork({ ...base, layers: [dense] }, { seed: 5 }).getLayer(0, 0, 0, 0)!.weights!.master;
  const c = buildNetwork({ ...base, layers: [dense] }, { seed: 6 }).getLayer(0, 0, 0, 0)!.weights!.master;
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  // initialize: false (a checkpoint import that writes every parameter next) leaves zeros, weights given in the document still load.
  const bare = buildNetwork({ ...base, layers: [dense, { ...dense, x: 1, type: 'RMSNorm', input_height: 4, output_height: undefined }] }, { seed: 5, initialize: false });
  assert.ok(bare.getLayer(0, 0, 0, 0)!.weights!.master.every((v) => v === 0));
  assert.ok(bare.getLayer(0, 0, 1, 0)!.weights!.master.every((v) => v === 0), 'not even the norm’s ones');
});
