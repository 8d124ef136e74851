import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ALL_DTYPES, dtypeName } from '../../src/core/dtype.js';
import { ShapeError, SpecError } from '../../src/core/errors.js';
import { Tensor } from '../../src/core/tensor.js';
import { backwardNetwork, forwardNetwork } from '../../src/engine/run.js';
import { deserializeNetwork, serializeNetwork } from '../../src/grid/persistence.js';
import { buildNetwork } from '../../src/grid/spec.js';
import type { VolumetricNetwork } from '../../src/grid/network.js';
import '../../src/layers/norm.js';
import { gradCheck } from '../gradcheck.js';
import { assertClose, fixture, maxRelativeDiff, randomArray } from '../helpers.js';

interface RmsCase {
  shape: number[];
  epsilon: number | null;
  x: number[];
  g: number[];
  gradOutput: number[];
  y: number[];
  gradInput: number[];
  gradG: number[];
}

interface LnCase extends Omit<RmsCase, 'g' | 'gradG'> {
  gamma: number[];
  beta: number[];
  gradGamma: number[];
  gradBeta: number[];
}

const cases = fixture<{ rmsnorm: Record<string, RmsCase>; layernorm: Record<string, LnCase> }>('norms.json');

/** A 1×1×N grid holding `layers` in its columns. */
function grid(layers: object[], seed = 3): VolumetricNetwork {
  return buildNetwork(
    { depth: 1, rows: 1, cols: layers.length, layers_per_cell: 1, layers: layers.map((l, x) => ({ z: 0, y: 0, x, l: 0, ...l })) },
    { seed },
  );
}

function setParams(net: VolumetricNetwork, values: number[], x = 0): void {
  const store = net.getLayer(0, 0, x, 0)!.weights!;
  store.master.set(values);
  store.markMasterChanged();
}

/** Forward and backward of a one-layer net against a PyTorch case; returns the worst relative difference. */
function compare(net: VolumetricNetwork, name: string, c: { shape: number[]; x: number[]; gradOutput: number[]; y: number[]; gradInput: number[] }, grads: number[][]): number {
  const { output, trace } = forwardNetwork(net, Tensor.from(c.shape, c.x), { keepTrace: true });
  assert.deepEqual(output.shape, c.shape);
  assertClose(output.data, c.y, 1e-5, 1e-6, `${name} y`);
  const { gradInput, gradients } = backwardNetwork(net, trace!, Tensor.from(c.shape, c.gradOutput));
  assertClose(gradInput.data, c.gradInput, 1e-5, 1e-6, `${name} gradInput`);
  const g = gradients[0].grad;
  const want = grads.flat();
  assertClose(g, want, 1e-5, 1e-6, `${name} parameter gradient`);
  return Math.max(maxRelativeDiff(output.data, c.y), maxRelativeDiff(gradInput.data, c.gradInput), maxRelativeDiff(g, want));
}

test('RMSNorm forward and backward match PyTorch (scripts/golden/norms.py)', (t) => {
  let worst = 0;
  for (const [name, c] of Object.entries(cases.rmsnorm)) {
    const h = c.shape[c.shape.length - 1];
    const net = grid([{ type: 'RMSNorm', input_height: h, ...(c.epsilon === null ? {} : { epsilon: c.epsilon }) }]);
    setParams(net, c.g);
    worst = Math.max(worst, compare(net, `RMSNorm ${name}`, c, [c.gradG]));
  }
  t.diagnostic(`RMSNorm max relative diff vs PyTorch: ${worst.toExponential(2)}`);
});

test('LayerNorm forward and backward match PyTorch nn.LayerNorm', (t) => {
  let worst = 0;
  for (const [name, c] of Object.entries(cases.layernorm)) {
    const h = c.shape[c.shape.length - 1];
    const net = grid([{ type: 'LayerNorm', input_height: h, ...(c.epsilon === null ? {} : { epsilon: c.epsilon }) }]);
    setParams(net, [...c.gamma, ...c.beta]);
    worst = Math.max(worst, compare(net, `LayerNorm ${name}`, c, [c.gradGamma, c.gradBeta]));
  }
  t.diagnostic(`LayerNorm max relative diff vs PyTorch: ${worst.toExponential(2)}`);
});

test('norm gradients agree with finite differences, per row and per position', () => {
  for (const type of ['RMSNorm', 'LayerNorm']) {
    // A Dense in front makes the norm's input depend on parameters, and gamma/beta get non-trivial values.
    const net = grid([
      { type: 'Dense', input_height: 6, output_height: 8, use_bias: true, activation: 'Tanh' },
      { type, input_height: 4 },
    ]);
    const store = net.getLayer(0, 0, 1, 0)!.weights!;
    store.master.set(randomArray(store.count, 5, 0.5).map((v) => v + 1));
    store.markMasterChanged();
    gradCheck(net, Tensor.from([3, 6], randomArray(18, 7)));
    const alone = grid([{ type, input_height: 5, epsilon: 0.01 }]);
    setParams(alone, Array.from(randomArray(alone.getLayer(0, 0, 0, 0)!.weights!.count, 9, 0.8)));
    gradCheck(alone, Tensor.from([2, 3, 5], randomArray(30, 11, 2)));
  }
});

test('norm parameters start at gamma 1 (and beta 0), layout gamma then beta', () => {
  const rms = grid([{ type: 'RMSNorm', input_height: 3 }]).getLayer(0, 0, 0, 0)!.weights!.master;
  assert.deepEqual([...rms], [1, 1, 1]);
  const ln = grid([{ type: 'LayerNorm', input_height: 3 }]).getLayer(0, 0, 0, 0)!.weights!.master;
  assert.deepEqual([...ln], [1, 1, 1, 0, 0, 0]);
});

test('norms read the original files: output_height alone sets the size, activation is ignored as the original does', () => {
  const x = Tensor.from([2, 4], randomArray(8, 3));
  const a = grid([{ type: 'LayerNorm', output_height: 4, activation: 'ReLU' }]);
  const b = grid([{ type: 'LayerNorm', input_height: 4 }]);
  assert.equal(a.getLayer(0, 0, 0, 0)!.config.inputHeight, 4);
  assert.deepEqual(forwardNetwork(a, x).output.data, forwardNetwork(b, x).output.data);
  assert.ok(forwardNetwork(b, x).output.data.some((v) => v < 0));
});

test('norm config and shape errors name the path or the layer', () => {
  assert.throws(() => grid([{ type: 'RMSNorm' }]), (e: Error) => e instanceof SpecError && /layers\[0\]\.input_height: expected a positive integer/.test(e.message));
  assert.throws(() => grid([{ type: 'LayerNorm', input_height: 4, epsilon: -1 }]), /layers\[0\]\.epsilon: expected a positive number, got -1/);
  assert.throws(() => grid([{ type: 'RMSNorm', input_height: 4, output_height: 5 }]), /layers\[0\]\.output_height/);
  const net = grid([{ type: 'RMSNorm', input_height: 4 }]);
  assert.throws(
    () => forwardNetwork(net, Tensor.zeros([2, 6])),
    (e: Error) => e instanceof ShapeError && /RMSNorm at \(0,0,0,0\): expected a multiple of 4 values per sample/.test(e.message),
  );
  assert.deepEqual(forwardNetwork(net, Tensor.zeros([2, 8])).output.shape, [2, 8]);
});

test('norms run in every dtype through morph and survive persistence bit for bit', () => {
  const net = grid([
    { type: 'RMSNorm', input_height: 6, epsilon: 1e-4 },
    { type: 'LayerNorm', input_height: 3 },
  ]);
  for (const x of [0, 1]) {
    const store = net.getLayer(0, 0, x, 0)!.weights!;
    setParams(net, Array.from(randomArray(store.count, 20 + x, 0.5)).map((v) => v + 1), x);
  }
  const input = Tensor.from([3, 2, 6], randomArray(36, 13, 3));
  for (const d of ALL_DTYPES) {
    const copy = deserializeNetwork(serializeNetwork(net));
    copy.morph(d);
    const out = forwardNetwork(copy, input).output;
    assert.deepEqual(out.shape, [3, 2, 6], dtypeName(d));
    assert.ok(out.data.every(Number.isFinite), `${dtypeName(d)} output is finite`);
    const text = serializeNetwork(copy);
    const reloaded = deserializeNetwork(text);
    assert.equal(serializeNetwork(reloaded), text, dtypeName(d));
    assert.deepEqual(new Uint32Array(forwardNetwork(reloaded, input).output.data.buffer), new Uint32Array(out.data.buffer), dtypeName(d));
  }
});
