import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ALL_DTYPES, dtypeName } from '../../src/core/dtype.js';
import { ShapeError, SpecError } from '../../src/core/errors.js';
import { Tensor } from '../../src/core/tensor.js';
import { backwardNetwork, forwardNetwork } from '../../src/engine/run.js';
import { deserializeNetwork, serializeNetwork } from '../../src/grid/persistence.js';
import { buildNetwork } from '../../src/grid/spec.js';
import { kernelBackend, kernelMode, setKernelBackend, type KernelBackend } from '../../src/kernels/backend.js';
import '../../src/layers/recurrent.js';
import { gradCheck } from '../gradcheck.js';
import { assertClose, fixture, maxRelativeDiff, randomArray } from '../helpers.js';

interface RecurrentCase {
  batch: number;
  seq: number;
  in: number;
  hid: number;
  x: number[];
  weights: number[];
  grad_output: number[];
  y: number[];
  grad_input: number[];
  grad_weights: number[];
}

const KINDS = ['RNN', 'LSTM'] as const;

const grid = (layers: object[], seed = 3) =>
  buildNetwork({ depth: 1, rows: 1, cols: layers.length, layers_per_cell: 1, layers: layers.map((l, x) => ({ z: 0, y: 0, x, l: 0, ...l })) }, { seed });
const recurrent = (type: string, nIn: number, hid: number, seq?: number) => ({ type, input_height: nIn, output_height: hid, ...(seq ? { seq_length: seq } : {}) });

/** The float64 reference, and the WebAssembly kernels (float32, own exp) when they are loaded. */
const BACKENDS: KernelBackend[] = kernelBackend() === 'wasm' ? ['ts', 'wasm'] : ['ts'];

function withBackend(backend: KernelBackend, run: () => void): void {
  const before = kernelMode();
  setKernelBackend(backend);
  try {
    run();
  } finally {
    setKernelBackend(before);
  }
}

test('RNN and LSTM forward and backward match PyTorch (scripts/golden/recurrent.py)', (t) => {
  for (const backend of BACKENDS) withBackend(backend, () => goldenCases(t, backend));
});

function goldenCases(t: { diagnostic(message: string): void }, backend: KernelBackend): void {
  const doc = fixture<Record<'rnn' | 'lstm', RecurrentCase[]>>('recurrent.json');
  for (const type of KINDS) {
    const cases = doc[type.toLowerCase() as 'rnn' | 'lstm'];
    assert.ok(cases.length >= 3);
    for (const c of cases) {
      const name = `${backend} ${type} B${c.batch} S${c.seq} in${c.in} hid${c.hid}`;
      const net = grid([recurrent(type, c.in, c.hid, c.seq)]);
      const store = net.getLayer(0, 0, 0, 0)!.weights!;
      assert.equal(store.count, c.weights.length);
      store.master.set(c.weights);
      store.markMasterChanged();
      const { output, trace } = forwardNetwork(net, Tensor.from([c.batch, c.seq, c.in], c.x), { keepTrace: true });
      assert.deepEqual(output.shape, [c.batch, c.seq, c.hid]);
      assertClose(output.data, c.y, 1e-5, 1e-6, `${name} y`);
      const { gradInput, gradients } = backwardNetwork(net, trace!, Tensor.from(output.shape, c.grad_output));
      assert.deepEqual(gradInput.shape, [c.batch, c.seq, c.in]);
      assertClose(gradInput.data, c.grad_input, 1e-5, 1e-6, `${name} grad input`);
      assertClose(gradients[0].grad, c.grad_weights, 1e-5, 1e-6, `${name} grad weights`);
      t.diagnostic(
        `${name}: max rel diff y ${maxRelativeDiff(output.data, c.y, 1e-2).toExponential(2)}, grad input ${maxRelativeDiff(gradInput.data, c.grad_input, 1e-2).toExponential(2)}, grad weights ${maxRelativeDiff(gradients[0].grad, c.grad_weights, 1e-2).toExponential(2)}`,
      );
    }
  }
}

test('RNN and LSTM on the WebAssembly kernels match the float64 reference (odd and vector-wide hidden sizes)', { skip: BACKENDS.length < 2 ? 'WebAssembly kernels not loaded' : false }, () => {
  for (const type of KINDS) for (const [batch, seq, nIn, hid] of [[3, 7, 5, 10], [16, 12, 32, 64], [5, 4, 9, 3]]) {
    const x = Tensor.from([batch, seq, nIn], randomArray(batch * seq * nIn, hid));
    const gOut = Tensor.from([batch, seq, hid], randomArray(batch * seq * hid, hid + 1));
    const run = (backend: KernelBackend) => {
      let result!: { y: Float32Array; gx: Float32Array; gw: Float32Array };
      withBackend(backend, () => {
        const net = grid([recurrent(type, nIn, hid, seq)], 11);
        const { output, trace } = forwardNetwork(net, x, { keepTrace: true });
        const { gradInput, gradients } = backwardNetwork(net, trace!, gOut);
        result = { y: output.data, gx: gradInput.data, gw: gradients[0].grad };
      });
      return result;
    };
    const ref = run('ts');
    const got = run('wasm');
    const name = `${type} B${batch} S${seq} in${nIn} hid${hid}`;
    assertClose(got.y, ref.y, 1e-5, 1e-6, `${name} y`);
    assertClose(got.gx, ref.gx, 1e-5, 1e-5, `${name} grad input`);
    assertClose(got.gw, ref.gw, 1e-5, 1e-5, `${name} grad weights`);
  }
});

test('RNN and LSTM gradients agree with finite differences, stacked and feeding a Dense', () => {
  const x = Tensor.from([2, 4, 3], randomArray(24, 21));
  for (const type of KINDS) {
    gradCheck(grid([recurrent(type, 3, 4, 4)]), x, { maxParams: 200 });
    gradCheck(grid([recurrent(type, 3, 5), recurrent(type, 5, 2), { type: 'Dense', input_height: 8, output_height: 3, activation: 'Tanh' }]), x, { maxParams: 200 });
  }
});

test('a flattened [batch, seq·in] input reads seq_length from the config', () => {
  const x = randomArray(2 * 4 * 3, 2);
  for (const type of KINDS) {
    const net = grid([recurrent(type, 3, 5, 4)]);
    const a = forwardNetwork(net, Tensor.from([2, 4, 3], x)).output;
    const b = forwardNetwork(net, Tensor.from([2, 12], x)).output;
    assert.deepEqual(b.shape, [2, 4, 5]);
    assert.deepEqual(a.data, b.data);
    // Without seq_length a [B, S, in] input gives S; a [B, in] input is one step (the original's default).
    const free = grid([recurrent(type, 3, 5)]);
    assert.deepEqual(forwardNetwork(free, Tensor.from([2, 4, 3], x)).output.data, a.data);
    assert.deepEqual(forwardNetwork(free, Tensor.from([2, 3], x.subarray(0, 6))).output.shape, [2, 1, 5]);
  }
});

test('each time step only sees the past: later inputs leave earlier outputs unchanged', () => {
  for (const type of KINDS) {
    const net = grid([recurrent(type, 3, 4, 5)]);
    const x = randomArray(15, 4);
    const a = forwardNetwork(net, Tensor.from([1, 5, 3], x)).output.data;
    x[12] += 1;
    const b = forwardNetwork(net, Tensor.from([1, 5, 3], x)).output.data;
    assert.deepEqual(a.subarray(0, 16), b.subarray(0, 16));
    assert.notDeepEqual(a.subarray(16), b.subarray(16));
  }
});

test('bad shapes and specs are rejected naming the layer or the path', () => {
  for (const type of KINDS) {
    const net = grid([recurrent(type, 3, 4, 2)]);
    assert.throws(() => forwardNetwork(net, Tensor.zeros([2, 7])), (e: unknown) => e instanceof ShapeError && new RegExp(`${type} at \\(0,0,0,0\\): expected \\[batch, 2, 3\\]`).test((e as Error).message));
    assert.throws(() => forwardNetwork(net, Tensor.zeros([2, 3, 3])), ShapeError);
    assert.throws(() => grid([{ ...recurrent(type, 3, 4), output_height: 0 }]), (e: unknown) => e instanceof SpecError && /layers\[0\]\.output_height: expected a positive integer, got 0/.test((e as Error).message));
    assert.throws(() => grid([{ type, output_height: 4 }]), /layers\[0\]\.input_height: expected a positive integer/);
  }
});

test('parameter counts follow the original layout', () => {
  assert.equal(grid([recurrent('RNN', 3, 4)]).getLayer(0, 0, 0, 0)!.weights!.count, 4 * 3 + 4 * 4 + 4);
  assert.equal(grid([recurrent('LSTM', 3, 4)]).getLayer(0, 0, 0, 0)!.weights!.count, 4 * (4 * 3 + 4 * 4 + 4));
});

test('every dtype runs through morph, and save/reload is bit-exact', () => {
  const x = Tensor.from([2, 3, 4], randomArray(24, 6));
  for (const type of KINDS) {
    const net = grid([recurrent(type, 4, 5, 3)]);
    for (const dtype of ALL_DTYPES) {
      const copy = deserializeNetwork(serializeNetwork(net));
      copy.morph(dtype);
      const out = forwardNetwork(copy, x).output;
      assert.deepEqual(out.shape, [2, 3, 5]);
      assert.ok(out.data.every(Number.isFinite), `${type} ${dtypeName(dtype)} output is finite`);
      const text = serializeNetwork(copy);
      const reloaded = deserializeNetwork(text);
      assert.equal(serializeNetwork(reloaded), text);
      assert.deepEqual(new Uint32Array(forwardNetwork(reloaded, x).output.data.buffer), new Uint32Array(out.data.buffer), `${type} ${dtypeName(dtype)}`);
    }
  }
});
