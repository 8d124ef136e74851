import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { ALL_DTYPES, dtypeName } from '../../src/core/dtype.js';
import { SpecError } from '../../src/core/errors.js';
import { Tensor } from '../../src/core/tensor.js';
import { backwardNetwork, forwardNetwork } from '../../src/engine/run.js';
import { deserializeNetwork, serializeNetwork } from '../../src/grid/persistence.js';
import { buildNetwork } from '../../src/grid/spec.js';
import { kernelBackend, kernelMode, setKernelBackend, type KernelBackend } from '../../src/kernels/backend.js';
import '../../src/layers/convTransposed.js';
import { gradCheck } from '../gradcheck.js';
import { assertClose, fixture, randomArray, ROOT } from '../helpers.js';
import type { ConvCase } from './conv.test.js';

const AXES: Record<string, string[]> = {
  ConvTransposed1D: ['width'],
  ConvTransposed2D: ['height', 'width'],
  ConvTransposed3D: ['depth', 'height', 'width'],
};

function oneLayer(layer: Record<string, unknown>, seed = 1) {
  return buildNetwork({ depth: 1, rows: 1, cols: 1, layers_per_cell: 1, layers: [{ z: 0, y: 0, x: 0, l: 0, ...layer }] }, { seed });
}

function caseNet(c: ConvCase) {
  const sizes: Record<string, number> = {};
  AXES[c.type].forEach((axis, i) => (sizes[`input_${axis}`] = c.input_sizes[i]));
  const net = oneLayer({
    type: c.type, activation: c.activation, input_channels: c.input_channels, filters: c.filters, kernel_size: c.kernel_size,
    stride: c.stride, padding: c.padding, output_padding: c.output_padding, use_bias: c.bias, ...sizes,
  });
  const store = net.getLayer(0, 0, 0, 0)!.weights!;
  store.master.set(c.W);
  if (c.b) store.master.set(c.b, c.W.length);
  store.markMasterChanged();
  return net;
}

function toleranceUsed(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < actual.length; i++) m = Math.max(m, Math.abs(actual[i] - expected[i]) / (1e-6 + 1e-5 * Math.abs(expected[i])));
  return m;
}

const FIXTURE = `${ROOT}test/fixtures/conv.json`;
/** The float64 reference GEMM, and the WebAssembly kernels when they are loaded. */
const BACKENDS: KernelBackend[] = kernelBackend() === 'wasm' ? ['ts', 'wasm'] : ['ts'];

test('ConvTransposed1D/2D/3D forward and backward match PyTorch ConvTranspose1d/2d/3d (scripts/golden/conv.py)', { skip: existsSync(FIXTURE) ? false : 'fixture missing: run npm run golden' }, (t) => {
  const { cases } = fixture<{ cases: Record<string, ConvCase> }>('conv.json');
  const mine = Object.entries(cases).filter(([, c]) => c.type.startsWith('ConvTransposed'));
  assert.equal(mine.length, 6);
  const before = kernelMode();
  const worst: Record<string, number> = {};
  try {
    for (const backend of BACKENDS) {
      setKernelBackend(backend);
      worst[backend] = 0;
      for (const [name, c] of mine) {
        const net = caseNet(c);
        const x = Tensor.from([c.batch, c.input_channels, ...c.input_sizes], c.x);
        const { output, trace } = forwardNetwork(net, x, { keepTrace: true });
        assert.deepEqual(output.shape, [c.batch, c.filters, ...c.output_sizes], `${backend} ${name} output shape`);
        assertClose(output.data, c.y, 1e-5, 1e-6, `${backend} ${name} y`);
        assertClose(trace!.caches[0].pre!.data, c.preActivation, 1e-5, 1e-6, `${backend} ${name} preActivation`);
        const { gradInput, gradients } = backwardNetwork(net, trace!, Tensor.from(output.shape, c.gradOutput));
        assertClose(gradInput.data, c.gradInput, 1e-5, 1e-6, `${backend} ${name} gradInput`);
        const g = gradients[0].grad;
        assertClose(g.subarray(0, c.W.length), c.gradW, 1e-5, 1e-6, `${backend} ${name} gradW`);
        if (c.gradB) assertClose(g.subarray(c.W.length), c.gradB, 1e-5, 1e-6, `${backend} ${name} gradB`);
        worst[backend] = Math.max(worst[backend], toleranceUsed(output.data, c.y), toleranceUsed(gradInput.data, c.gradInput), toleranceUsed(g, [...c.gradW, ...(c.gradB ?? [])]));
      }
    }
  } finally {
    setKernelBackend(before);
  }
  for (const [backend, w] of Object.entries(worst)) t.diagnostic(`${backend} kernels: largest |diff| / (1e-6 + 1e-5·|expected|) vs PyTorch: ${w.toFixed(3)}`);
});

/** The original's scatter loop (conv_transposed3.go): out[f][i·s − p + k] += x[c][i] · W[f][c][k]. */
function naiveTransposed(x: Float32Array, w: Float32Array, B: number, C: number, F: number, inS: number[], outS: number[], k: number, s: number, p: number): Float32Array {
  const [D, H, W] = inS;
  const [oD, oH, oW] = outS;
  const out = new Float64Array(B * F * oD * oH * oW);
  for (let b = 0; b < B; b++) for (let c = 0; c < C; c++) for (let id = 0; id < D; id++) for (let ih = 0; ih < H; ih++) for (let iw = 0; iw < W; iw++) {
    const v = x[(((b * C + c) * D + id) * H + ih) * W + iw];
    for (let f = 0; f < F; f++) for (let kd = 0; kd < k; kd++) for (let kh = 0; kh < k; kh++) for (let kw = 0; kw < k; kw++) {
      const od = id * s - p + kd, oh = ih * s - p + kh, ow = iw * s - p + kw;
      if (od < 0 || od >= oD || oh < 0 || oh >= oH || ow < 0 || ow >= oW) continue;
      out[(((b * F + f) * oD + od) * oH + oh) * oW + ow] += v * w[(((f * C + c) * k + kd) * k + kh) * k + kw];
    }
  }
  return Float32Array.from(out);
}

test('ConvTransposed3D agrees with the original\'s scatter loop on odd geometries', () => {
  for (const [D, H, W, k, s, p, op] of [[2, 3, 4, 2, 3, 1, 2], [3, 3, 5, 3, 1, 2, 0], [3, 1, 2, 1, 2, 0, 1], [2, 2, 2, 4, 2, 3, 1]]) {
    const net = oneLayer({ type: 'ConvTransposed3D', input_channels: 2, filters: 3, kernel_size: k, stride: s, padding: p, output_padding: op, input_depth: D, input_height: H, input_width: W }, 5);
    const layer = net.getLayer(0, 0, 0, 0)!;
    const outS = [layer.config.outputDepth!, layer.config.outputHeight!, layer.config.outputWidth!];
    assert.deepEqual(outS, [D, H, W].map((n) => (n - 1) * s - 2 * p + k + op));
    const x = randomArray(2 * 2 * D * H * W, 3);
    const got = forwardNetwork(net, Tensor.from([2, 2, D, H, W], x)).output.data;
    assertClose(got, naiveTransposed(x, layer.weights!.master, 2, 2, 3, [D, H, W], outS, k, s, p), 1e-5, 1e-6, `ConvTransposed3D ${[D, H, W, k, s, p, op]}`);
  }
});

test('ConvTransposed gradients agree with finite differences', () => {
  const t1 = oneLayer({ type: 'ConvTransposed1D', activation: 'Tanh', input_channels: 2, filters: 3, kernel_size: 3, stride: 2, padding: 1, output_padding: 1, input_width: 5, use_bias: true }, 2);
  gradCheck(t1, Tensor.from([2, 2, 5], randomArray(20, 4)));
  const t2 = oneLayer({ type: 'ConvTransposed2D', activation: 'Sigmoid', input_channels: 3, filters: 2, kernel_size: 3, stride: 2, padding: 1, input_height: 3, input_width: 4, use_bias: true }, 3);
  gradCheck(t2, Tensor.from([2, 3, 3, 4], randomArray(72, 5)));
  const t3 = oneLayer({ type: 'ConvTransposed3D', activation: 'GELU', input_channels: 2, filters: 2, kernel_size: 2, stride: 2, padding: 1, output_padding: 1, input_height: 2, use_bias: true }, 4);
  gradCheck(t3, Tensor.from([2, 16], randomArray(32, 6)));
});

test('configure: the output size formula, the original\'s width/length fields, and SpecErrors', () => {
  const c2 = oneLayer({ type: 'ConvTransposed2D', input_channels: 4, filters: 2, kernel_size: 3, stride: 2, padding: 1, output_padding: 1, input_height: 7 }).getLayer(0, 0, 0, 0)!.config;
  assert.deepEqual([c2.inputWidth, c2.outputHeight, c2.outputWidth], [7, 14, 14]);
  // ConvTransposed1D reads its length from input_width, as the original; input_height alone is copied there.
  const c1 = oneLayer({ type: 'convtranspose1d', input_channels: 1, filters: 1, kernel_size: 4, stride: 2, padding: 1, input_height: 6 }).getLayer(0, 0, 0, 0)!.config;
  assert.deepEqual([c1.inputWidth, c1.outputWidth], [6, 12]);
  const base = { type: 'ConvTransposed2D', input_channels: 2, filters: 2, kernel_size: 3, stride: 2, padding: 1, input_height: 4 };
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ output_height: 8 }, /layers\[0\]\.output_height: expected 7 = \(input 4 − 1\)·stride 2 − 2·padding 1 \+ kernel 3 \+ output_padding 0, got 8/],
    [{ output_padding: 2 }, /layers\[0\]\.output_padding: expected less than stride 2, got 2/],
    [{ input_height: 1, kernel_size: 1, padding: 1 }, /layers\[0\]\.padding: expected at most 0 so that the height of the output is not empty, got 1/],
    [{ type: 'ConvTransposed1D', input_height: 4, input_width: 5 }, /layers\[0\]\.input_height: ConvTransposed1D takes its length from input_width \(5\); input_height 4 disagrees/],
    [{ filters: 0 }, /layers\[0\]\.filters: expected a positive integer, got 0/],
  ];
  for (const [patch, message] of cases) {
    assert.throws(() => oneLayer({ ...base, ...patch }), (e: unknown) => e instanceof SpecError && message.test(e.message), JSON.stringify(patch));
  }
});

const KINDS = [
  { type: 'ConvTransposed1D', input_channels: 2, filters: 3, kernel_size: 3, stride: 2, padding: 1, input_width: 5, use_bias: true, activation: 'Tanh' },
  { type: 'ConvTransposed2D', input_channels: 3, filters: 2, kernel_size: 4, stride: 2, padding: 1, input_height: 3, input_width: 4, activation: 'ReLU' },
  { type: 'ConvTransposed3D', input_channels: 2, filters: 2, kernel_size: 2, stride: 2, output_padding: 1, input_height: 2, use_bias: true },
];

function inputFor(net: ReturnType<typeof oneLayer>, seed: number): Tensor {
  const c = net.getLayer(0, 0, 0, 0)!.config;
  const perSample = c.inputChannels! * (c.inputDepth ?? 1) * (c.inputHeight ?? 1) * (c.inputWidth ?? 1);
  return Tensor.from([2, perSample], randomArray(2 * perSample, seed));
}

test('every dtype works through morph for ConvTransposed1D/2D/3D', () => {
  for (const spec of KINDS) {
    const net = oneLayer(spec, 3);
    const x = inputFor(net, 7);
    const shape = forwardNetwork(net, x).output.shape;
    assert.equal(shape.length, 2 + AXES[spec.type].length);
    for (const d of ALL_DTYPES) {
      net.morph(d);
      const out = forwardNetwork(net, x).output;
      assert.deepEqual(out.shape, shape, `${spec.type} ${dtypeName(d)}`);
      assert.ok(out.data.every(Number.isFinite), `${spec.type} ${dtypeName(d)}: non-finite output`);
    }
  }
});

test('ConvTransposed persistence round trip: bit-identical outputs and identical JSON', () => {
  for (const spec of KINDS) {
    for (const d of ['float32', 'int4', 'float16']) {
      const net = oneLayer({ ...spec, dtype: d }, 4);
      const x = inputFor(net, 8);
      const text = serializeNetwork(net);
      const loaded = deserializeNetwork(text);
      const before = forwardNetwork(net, x).output.data;
      const after = forwardNetwork(loaded, x).output.data;
      assert.deepEqual(new Uint32Array(after.buffer), new Uint32Array(before.buffer), `${spec.type} ${d}`);
      assert.equal(serializeNetwork(loaded), text, `${spec.type} ${d}: JSON differs`);
    }
  }
});
