import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ALL_DTYPES, dtypeName } from '../../src/core/dtype.js';
import { ShapeError, SpecError } from '../../src/core/errors.js';
import { Tensor } from '../../src/core/tensor.js';
import { backwardNetwork, forwardNetwork } from '../../src/engine/run.js';
import { deserializeNetwork, serializeNetwork } from '../../src/grid/persistence.js';
import { buildNetwork } from '../../src/grid/spec.js';
import { swigluGate } from '../../src/kernels/backend.js';
import '../../src/layers/swiglu.js';
import { gradCheck } from '../gradcheck.js';
import { assertClose, fixture, maxRelativeDiff, randomArray, withKernelMode } from '../helpers.js';

interface SwiGLUCase {
  activation: string;
  in: number;
  inter: number;
  x_shape: number[];
  x: number[];
  weights: number[];
  grad_output: number[];
  y: number[];
  grad_input: number[];
  grad_weights: number[];
}

const grid = (layers: object[], seed = 4) =>
  buildNetwork({ depth: 1, rows: 1, cols: layers.length, layers_per_cell: 1, layers: layers.map((l, x) => ({ z: 0, y: 0, x, l: 0, ...l })) }, { seed });
const swiglu = (nIn: number, inter: number, activation?: string) => ({ type: 'SwiGLU', input_height: nIn, output_height: inter, ...(activation ? { activation } : {}) });

test('SwiGLU forward and backward match PyTorch (scripts/golden/swiglu.py), on the kernels and on the float64 reference', (t) => {
  const { cases } = fixture<{ cases: Record<string, SwiGLUCase> }>('swiglu.json');
  assert.ok(Object.keys(cases).length >= 3);
  for (const mode of ['wasm', 'ts'] as const) withKernelMode(mode, () => matchesPyTorch(cases, (m) => t.diagnostic(`${mode}: ${m}`)));
});

function matchesPyTorch(cases: Record<string, SwiGLUCase>, diagnostic: (message: string) => void): void {
  for (const [name, c] of Object.entries(cases)) {
    const net = grid([swiglu(c.in, c.inter, c.activation)]);
    const store = net.getLayer(0, 0, 0, 0)!.weights!;
    assert.equal(store.count, c.weights.length);
    store.master.set(c.weights);
    store.markMasterChanged();
    const { output, trace } = forwardNetwork(net, Tensor.from(c.x_shape, c.x), { keepTrace: true });
    assert.deepEqual(output.shape, c.x_shape);
    assertClose(output.data, c.y, 1e-5, 1e-6, `${name} y`);
    const { gradInput, gradients } = backwardNetwork(net, trace!, Tensor.from(c.x_shape, c.grad_output));
    assert.deepEqual(gradInput.shape, c.x_shape);
    assertClose(gradInput.data, c.grad_input, 1e-5, 1e-6, `${name} grad input`);
    assertClose(gradients[0].grad, c.grad_weights, 1e-5, 1e-6, `${name} grad weights`);
    diagnostic(
      `${name}: max rel diff y ${maxRelativeDiff(output.data, c.y, 1e-2).toExponential(2)}, grad input ${maxRelativeDiff(gradInput.data, c.grad_input, 1e-2).toExponential(2)}, grad weights ${maxRelativeDiff(gradients[0].grad, c.grad_weights, 1e-2).toExponential(2)}`,
    );
  }
}

test('SwiGLU gradients agree with finite differences (SiLU and ReLU2 gates, [B, S, in] input)', () => {
  const x = Tensor.from([2, 3, 4], randomArray(24, 13));
  for (const activation of [undefined, 'Silu', 'ReLU2']) {
    gradCheck(grid([swiglu(4, 6, activation), swiglu(4, 3, activation)]), x, { maxParams: 200 });
  }
});

test('the gate is SiLU for every activation but ReLU2, and no output activation is applied', () => {
  const x = Tensor.from([3, 5], randomArray(15, 3));
  const base = forwardNetwork(grid([swiglu(5, 7)]), x).output.data;
  for (const activation of ['Silu', 'ReLU', 'Tanh', 'Linear']) assert.deepEqual(forwardNetwork(grid([swiglu(5, 7, activation)]), x).output.data, base);
  assert.notDeepEqual(forwardNetwork(grid([swiglu(5, 7, 'ReLU2')]), x).output.data, base);
});

test('rows are independent: a [B, S·in] input equals S separate rows', () => {
  const net = grid([swiglu(4, 6)]);
  const x = randomArray(24, 9);
  const a = forwardNetwork(net, Tensor.from([2, 12], x)).output;
  const b = forwardNetwork(net, Tensor.from([6, 4], x)).output;
  assert.deepEqual(a.shape, [2, 12]);
  assert.deepEqual(a.data, b.data);
});

test('SwiGLU rejects bad shapes and specs', () => {
  const net = grid([swiglu(4, 6)]);
  assert.throws(() => forwardNetwork(net, Tensor.zeros([2, 6])), (e: unknown) => e instanceof ShapeError && /SwiGLU at \(0,0,0,0\): expected rows of 4 values/.test((e as Error).message));
  assert.throws(() => grid([{ ...swiglu(4, 6), output_height: 0 }]), /layers\[0\]\.output_height: expected a positive integer, got 0/);
  assert.throws(() => grid([{ ...swiglu(4, 6), output_height: -1 }]), (e: unknown) => e instanceof SpecError && /layers\[0\]\.output_height: expected a non-negative integer, got -1/.test((e as Error).message));
  assert.throws(() => grid([{ type: 'SwiGLU', input_height: 4 }]), /layers\[0\]\.output_height: expected a positive integer/);
});

test('SwiGLU has the original parameter count and nn.Linear-style init (biases included)', () => {
  const store = grid([swiglu(4, 6)]).getLayer(0, 0, 0, 0)!.weights!;
  assert.equal(store.count, 3 * 4 * 6 + 2 * 6 + 4);
  assert.ok(store.master.every((v) => v !== 0 && Math.abs(v) <= 0.5 + 1e-7));
});

test('every dtype runs through morph, and save/reload is bit-exact', () => {
  const x = Tensor.from([2, 3, 4], randomArray(24, 6));
  const net = grid([swiglu(4, 6)]);
  for (const dtype of ALL_DTYPES) {
    const copy = deserializeNetwork(serializeNetwork(net));
    copy.morph(dtype);
    const out = forwardNetwork(copy, x).output;
    assert.deepEqual(out.shape, [2, 3, 4]);
    assert.ok(out.data.every(Number.isFinite), `${dtypeName(dtype)} output is finite`);
    const text = serializeNetwork(copy);
    const reloaded = deserializeNetwork(text);
    assert.equal(serializeNetwork(reloaded), text);
    assert.deepEqual(new Uint32Array(forwardNetwork(reloaded, x).output.data.buffer), new Uint32Array(out.data.buffer), dtypeName(dtype));
  }
});

test("SwiGLU's gate on the WebAssembly kernels: within a few float32 ulps of float64 (SiLU and ReLU²), forward and backward", () => {
  const inter = 7;
  const gates = [0, -0, 1e-30, -1e-30, 0.5, -1.28, 9, -9, 20, -20, 88, -88, 100, -100, 1e9, -1e9];
  for (let i = -400; i <= 400; i++) gates.push(i * 0.031 + Math.sin(i) * 1e-3);
  const rows = Math.ceil(gates.length / inter);
  const gateUp = new Float32Array(rows * 2 * inter);
  const gHidden = Float32Array.from({ length: rows * inter }, (_, i) => 1 + 0.5 * Math.cos(i));
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < inter; j++) {
      gateUp[r * 2 * inter + j] = gates[(r * inter + j) % gates.length];
      gateUp[r * 2 * inter + inter + j] = 0.75 + Math.sin(r * inter + j);
    }
  }
  const sigmoid = (g: number) => 1 / (1 + Math.exp(-g));
  for (const relu2 of [false, true]) {
    const [hidden, grads] = withKernelMode('wasm', () => {
      const h = new Float32Array(rows * inter);
      const d = new Float32Array(rows * 2 * inter);
      assert.ok(swigluGate(relu2, rows, inter, gateUp, null, h) && swigluGate(relu2, rows, inter, gateUp, gHidden, d), 'the kernels ran');
      return [h, d];
    });
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < inter; j++) {
        const g = gateUp[r * 2 * inter + j];
        const u = gateUp[r * 2 * inter + inter + j];
        const gh = gHidden[r * inter + j];
        const gate = relu2 ? (g > 0 ? g * g : 0) : g * sigmoid(g);
        const slope = relu2 ? (g > 0 ? 2 * g : 0) : sigmoid(g) + g * sigmoid(g) * (1 - sigmoid(g));
        const slopeScale = relu2 ? Math.abs(slope) : sigmoid(g) + Math.abs(g * sigmoid(g) * (1 - sigmoid(g)));
        const close = (got: number, want: number, scale: number, what: string) =>
          assert.ok(Object.is(got, Math.fround(want)) || Math.abs(got - want) <= 6 * 1.2e-7 * scale + 4e-38, `${relu2 ? 'ReLU²' : 'SiLU'} ${what} at g = ${g}: ${got}, want ${want}`);
        close(hidden[r * inter + j], gate * u, Math.abs(gate * u), 'gate·up');
        close(grads[r * 2 * inter + j], gh * u * slope, Math.abs(gh * u) * slopeScale, 'd gate');
        close(grads[r * 2 * inter + inter + j], gh * gate, Math.abs(gh * gate), 'd up');
      }
    }
  }
});

test("SwiGLU on the WebAssembly kernels: a row gets the same bits alone or in any batch (staging chunks included); the reference stays float64", () => {
  const [nIn, inter, rows] = [4, 9, 1500];
  for (const activation of [undefined, 'ReLU2']) {
    const net = grid([swiglu(nIn, inter, activation)]);
    const x = randomArray(rows * nIn, 21, 2);
    const run = (input: Float32Array) => {
      const { output, trace } = forwardNetwork(net, Tensor.from([input.length / nIn, nIn], input), { keepTrace: true });
      const { gradInput } = backwardNetwork(net, trace!, Tensor.from(output.shape, Float32Array.from(output.data, (_, i) => Math.cos(i))));
      return [output.data, gradInput.data];
    };
    withKernelMode('wasm', () => {
      const [y, gx] = run(x);
      for (const r of [0, 5, 911, rows - 1]) {
        const [yr, gr] = run(x.subarray(r * nIn, (r + 1) * nIn));
        assert.deepEqual([...yr], [...y.subarray(r * nIn, (r + 1) * nIn)], `row ${r} forward`);
        // The upstream gradient of a lone row is cos(0..nIn) rather than the batch's: compare forward bits only, and gradients for row 0.
        if (r === 0) assert.deepEqual([...gr], [...gx.subarray(0, nIn)], 'row 0 backward');
      }
      const ts = withKernelMode('ts', () => run(x));
      assertClose(y, ts[0], 1e-5, 1e-6, `${activation ?? 'SiLU'} kernels vs float64 forward`);
      assertClose(gx, ts[1], 1e-5, 1e-6, `${activation ?? 'SiLU'} kernels vs float64 backward`);
    });
  }
});
