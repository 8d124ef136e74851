import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { ALL_DTYPES, dtypeName } from '../../src/core/dtype.js';
import { ShapeError, SpecError } from '../../src/core/errors.js';
import { Tensor } from '../../src/core/tensor.js';
import { backwardNetwork, forwardNetwork } from '../../src/engine/run.js';
import { deserializeNetwork, serializeNetwork } from '../../src/grid/persistence.js';
import { buildNetwork } from '../../src/grid/spec.js';
import { kernelBackend, kernelMode, kernelPoolJobs, setKernelBackend, withThreads, type KernelBackend } from '../../src/kernels/backend.js';
import { reluInto } from '../../src/kernels/relu.js';
import { channelSums } from '../../src/layers/conv.js';
import '../../src/layers/conv.js';
import { gradCheck } from '../gradcheck.js';
import { assertClose, fixture, kernelInstance, KERNELS_OFF, randomArray, ROOT } from '../helpers.js';


export interface ConvCase {
  type: string;
  activation: string;
  batch: number;
  input_channels: number;
  filters: number;
  kernel_size: number;
  stride: number;
  padding: number;
  output_padding: number;
  input_sizes: number[];
  output_sizes: number[];
  bias: boolean;
  x: number[];
  W: number[];
  b: number[] | null;
  gradOutput: number[];
  y: number[];
  preActivation: number[];
  gradInput: number[];
  gradW: number[];
  gradB: number[] | null;
}

const AXES: Record<string, string[]> = { CNN1: ['height'], CNN2: ['height', 'width'], CNN3: ['depth', 'height', 'width'] };

function oneLayer(layer: Record<string, unknown>, seed = 1) {
  return buildNetwork({ depth: 1, rows: 1, cols: 1, layers_per_cell: 1, layers: [{ z: 0, y: 0, x: 0, l: 0, ...layer }] }, { seed });
}

function caseNet(c: ConvCase) {
  const sizes: Record<string, number> = {};
  AXES[c.type].forEach((axis, i) => (sizes[`input_${axis}`] = c.input_sizes[i]));
  const net = oneLayer({
    type: c.type, activation: c.activation, input_channels: c.input_channels, filters: c.filters,
    kernel_size: c.kernel_size, stride: c.stride, padding: c.padding, use_bias: c.bias, ...sizes,
  });
  const store = net.getLayer(0, 0, 0, 0)!.weights!;
  store.master.set(c.W);
  if (c.b) store.master.set(c.b, c.W.length);
  store.markMasterChanged();
  return net;
}

const FIXTURE = `${ROOT}test/fixtures/conv.json`;
/** The float64 reference GEMM, and the WebAssembly kernels when they are loaded. */
const BACKENDS: KernelBackend[] = kernelBackend() === 'wasm' ? ['ts', 'wasm'] : ['ts'];

test('CNN1/2/3 forward and backward match PyTorch Conv1d/2d/3d (scripts/golden/conv.py)', { skip: existsSync(FIXTURE) ? false : 'fixture missing: run npm run golden' }, (t) => {
  const { cases } = fixture<{ cases: Record<string, ConvCase> }>('conv.json');
  const mine = Object.entries(cases).filter(([, c]) => c.type.startsWith('CNN'));
  assert.equal(mine.length, 6);
  const before = kernelMode();
  const worst: Record<string, number> = {};
  try {
    for (const backend of BACKENDS) {
      setKernelBackend(backend);
      worst[backend] = 0;
      for (const [name, c] of mine) {
        const net = caseNet(c);
        assert.deepEqual(spatialOutput(net, c.type), c.output_sizes, `${name}: configured output sizes`);
        const x = Tensor.from([c.batch, c.input_channels, ...c.input_sizes], c.x);
        const { output, trace } = forwardNetwork(net, x, { keepTrace: true });
        assert.deepEqual(output.shape, [c.batch, c.filters, ...c.output_sizes]);
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

/** The largest share of the tolerance |a − e| ≤ 1e-6 + 1e-5·|e| that any element uses. */
function toleranceUsed(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < actual.length; i++) m = Math.max(m, Math.abs(actual[i] - expected[i]) / (1e-6 + 1e-5 * Math.abs(expected[i])));
  return m;
}

function spatialOutput(net: ReturnType<typeof oneLayer>, type: string): number[] {
  const c = net.getLayer(0, 0, 0, 0)!.config as Record<string, number>;
  return AXES[type].map((a) => c[`output${a[0].toUpperCase()}${a.slice(1)}`]);
}

/** Direct-loop 3D convolution (no im2col) for cross-checking odd geometries. */
function naiveConv(x: Float32Array, w: Float32Array, B: number, C: number, F: number, inS: number[], outS: number[], k: number, s: number, p: number): Float32Array {
  const [D, H, W] = inS;
  const [oD, oH, oW] = outS;
  const out = new Float32Array(B * F * oD * oH * oW);
  for (let b = 0; b < B; b++) for (let f = 0; f < F; f++) for (let od = 0; od < oD; od++) for (let oh = 0; oh < oH; oh++) for (let ow = 0; ow < oW; ow++) {
    let acc = 0;
    for (let c = 0; c < C; c++) for (let kd = 0; kd < k; kd++) for (let kh = 0; kh < k; kh++) for (let kw = 0; kw < k; kw++) {
      const id = od * s - p + kd, ih = oh * s - p + kh, iw = ow * s - p + kw;
      if (id < 0 || id >= D || ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
      acc += x[(((b * C + c) * D + id) * H + ih) * W + iw] * w[(((f * C + c) * k + kd) * k + kh) * k + kw];
    }
    out[(((b * F + f) * oD + od) * oH + oh) * oW + ow] = acc;
  }
  return out;
}

test('CNN3 agrees with a direct-loop convolution on odd geometries (padding ≥ kernel, stride > kernel)', () => {
  for (const [D, H, W, k, s, p] of [[3, 5, 7, 2, 3, 2], [1, 4, 9, 3, 1, 3], [6, 2, 3, 1, 2, 0], [4, 4, 4, 4, 5, 1]]) {
    const net = oneLayer({ type: 'CNN3', input_channels: 2, filters: 3, kernel_size: k, stride: s, padding: p, input_depth: D, input_height: H, input_width: W }, 5);
    const layer = net.getLayer(0, 0, 0, 0)!;
    const outS = [layer.config.outputDepth!, layer.config.outputHeight!, layer.config.outputWidth!];
    const x = randomArray(2 * 2 * D * H * W, 3);
    const got = forwardNetwork(net, Tensor.from([2, 2, D, H, W], x)).output.data;
    const want = naiveConv(x, layer.weights!.master, 2, 2, 3, [D, H, W], outS, k, s, p);
    assertClose(got, want, 1e-5, 1e-6, `CNN3 ${[D, H, W, k, s, p]}`);
  }
});

test('CNN gradients agree with finite differences (stride, padding, bias, activations, stacked layers)', () => {
  const cnn1 = oneLayer({ type: 'CNN1', activation: 'Tanh', input_channels: 2, filters: 3, kernel_size: 3, stride: 2, padding: 1, input_height: 8, use_bias: true }, 2);
  gradCheck(cnn1, Tensor.from([2, 2, 8], randomArray(32, 4)));
  const cnn2 = oneLayer({ type: 'CNN2', activation: 'Sigmoid', input_channels: 2, filters: 3, kernel_size: 3, stride: 2, padding: 1, input_height: 5, input_width: 6, use_bias: true }, 3);
  gradCheck(cnn2, Tensor.from([2, 2, 5, 6], randomArray(120, 5)));
  const cnn3 = oneLayer({ type: 'CNN3', activation: 'GELU', input_channels: 2, filters: 2, kernel_size: 2, stride: 2, padding: 1, input_height: 3, use_bias: true }, 4);
  gradCheck(cnn3, Tensor.from([2, 2, 3, 3, 3], randomArray(108, 6)));
  // Two stacked CNN2 and a Dense, each reading the previous output (flattened for the Dense).
  const stack = buildNetwork({
    depth: 1, rows: 1, cols: 3, layers_per_cell: 1,
    layers: [
      { z: 0, y: 0, x: 0, l: 0, type: 'CNN2', activation: 'Tanh', input_channels: 1, filters: 2, kernel_size: 3, stride: 2, padding: 1, input_height: 6 },
      { z: 0, y: 0, x: 1, l: 0, type: 'CNN2', activation: 'Silu', input_channels: 2, filters: 3, kernel_size: 2, stride: 1, input_height: 3, use_bias: true },
      { z: 0, y: 0, x: 2, l: 0, type: 'Dense', input_height: 12, output_height: 2 },
    ],
  }, { seed: 9 });
  gradCheck(stack, Tensor.from([2, 36], randomArray(72, 8)));
});

test('a per-sample flattened input gives the same output as the NCHW one', () => {
  const net = oneLayer({ type: 'CNN2', activation: 'ReLU', input_channels: 3, filters: 4, kernel_size: 3, stride: 2, padding: 1, input_height: 6, input_width: 5 });
  const data = randomArray(2 * 3 * 30, 11);
  const a = forwardNetwork(net, Tensor.from([2, 3, 6, 5], data)).output;
  const b = forwardNetwork(net, Tensor.from([2, 90], data)).output;
  assert.deepEqual(a.shape, [2, 4, 3, 3]);
  assert.deepEqual(b.shape, [2, 4, 3, 3]);
  assert.deepEqual(a.data, b.data);
});

test('configure fills the original\'s defaults and the output sizes', () => {
  const c2 = oneLayer({ type: 'CNN2', input_channels: 1, filters: 2, kernel_size: 3, input_height: 28 }).getLayer(0, 0, 0, 0)!.config;
  assert.deepEqual([c2.stride, c2.inputWidth, c2.outputHeight, c2.outputWidth], [1, 28, 26, 26]);
  const c3 = oneLayer({ type: 'conv3d', input_channels: 1, filters: 2, kernel_size: 3, stride: 2, padding: 1, input_height: 9 }).getLayer(0, 0, 0, 0)!.config;
  assert.deepEqual([c3.inputDepth, c3.inputWidth, c3.outputDepth, c3.outputHeight, c3.outputWidth], [9, 9, 5, 5, 5]);
  const c1 = oneLayer({ type: 'cnn1', input_channels: 2, filters: 2, kernel_size: 4, stride: 3, input_height: 11, output_height: 3 }).getLayer(0, 0, 0, 0)!.config;
  assert.equal(c1.outputHeight, 3);
  assert.equal(c1.inputWidth, undefined);
});

test('bad conv configs are SpecErrors naming the field', () => {
  const base = { type: 'CNN2', input_channels: 1, filters: 2, kernel_size: 3, stride: 2, padding: 1, input_height: 28 };
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ output_height: 13 }, /layers\[0\]\.output_height: expected 14 = \(input 28 \+ 2·padding 1 − kernel 3\) \/ stride 2 \+ 1, rounded down, got 13/],
    [{ input_width: 10, output_width: 4 }, /layers\[0\]\.output_width: expected 5/],
    [{ kernel_size: 0 }, /layers\[0\]\.kernel_size: expected a positive integer, got 0/],
    [{ filters: undefined }, /layers\[0\]\.filters: expected a positive integer/],
    [{ input_height: 2, padding: 0, kernel_size: 3 }, /layers\[0\]\.kernel_size: expected at most input_height \+ 2·padding = 2 so that the output is not empty, got 3/],
    [{ output_padding: 1 }, /layers\[0\]\.output_padding: only ConvTransposed layers take an output padding/],
    [{ input_height: undefined }, /layers\[0\]\.input_height: expected a positive integer/],
  ];
  for (const [patch, message] of cases) {
    assert.throws(() => oneLayer({ ...base, ...patch }), (e: unknown) => e instanceof SpecError && message.test(e.message), JSON.stringify(patch));
  }
});

test('an input of the wrong size is a ShapeError naming the layer', () => {
  const net = oneLayer({ type: 'CNN2', input_channels: 2, filters: 2, kernel_size: 3, input_height: 4, input_width: 5 });
  assert.throws(() => forwardNetwork(net, Tensor.zeros([3, 41])), (e: unknown) =>
    e instanceof ShapeError && /CNN2 at \(0,0,0,0\): expected 40 values per sample \(2×4×5\), got input of shape \[3, 41\]/.test(e.message));
});

const KINDS = [
  { type: 'CNN1', input_channels: 2, filters: 3, kernel_size: 3, stride: 2, padding: 1, input_height: 9, use_bias: true, activation: 'Tanh' },
  { type: 'CNN2', input_channels: 2, filters: 3, kernel_size: 3, stride: 2, padding: 1, input_height: 6, input_width: 5, activation: 'ReLU' },
  { type: 'CNN3', input_channels: 2, filters: 2, kernel_size: 2, stride: 1, padding: 1, input_height: 3, use_bias: true },
];

test('every dtype works through morph for CNN1/2/3', () => {
  for (const spec of KINDS) {
    const net = oneLayer(spec, 3);
    const layer = net.getLayer(0, 0, 0, 0)!;
    const perSample = layer.config.inputChannels! * (layer.config.inputDepth ?? 1) * layer.config.inputHeight! * (layer.config.inputWidth ?? 1);
    const x = Tensor.from([2, perSample], randomArray(2 * perSample, 7));
    const shape = forwardNetwork(net, x).output.shape;
    for (const d of ALL_DTYPES) {
      net.morph(d);
      const out = forwardNetwork(net, x).output;
      assert.deepEqual(out.shape, shape, `${spec.type} ${dtypeName(d)}`);
      assert.ok(out.data.every(Number.isFinite), `${spec.type} ${dtypeName(d)}: non-finite output`);
    }
  }
});

test('CNN1/2/3 persistence round trip: bit-identical outputs and identical JSON', () => {
  for (const spec of KINDS) {
    for (const d of ['float32', 'int8', 'bfloat16']) {
      const net = oneLayer({ ...spec, dtype: d }, 4);
      const layer = net.getLayer(0, 0, 0, 0)!;
      const perSample = layer.config.inputChannels! * (layer.config.inputDepth ?? 1) * layer.config.inputHeight! * (layer.config.inputWidth ?? 1);
      const x = Tensor.from([2, perSample], randomArray(2 * perSample, 8));
      const text = serializeNetwork(net);
      const loaded = deserializeNetwork(text);
      const before = forwardNetwork(net, x).output.data;
      const after = forwardNetwork(loaded, x).output.data;
      assert.deepEqual(new Uint32Array(after.buffer), new Uint32Array(before.buffer), `${spec.type} ${d}`);
      assert.equal(serializeNetwork(loaded), text, `${spec.type} ${d}: JSON differs`);
    }
  }
});

test('examples/fashion-cnn.json builds and maps a batch of 28×28 images to 10 logits', () => {
  const net = buildNetwork(readFileSync(`${ROOT}examples/fashion-cnn.json`, 'utf8'));
  const out = forwardNetwork(net, Tensor.from([3, 784], randomArray(3 * 784, 2, 0.5).map(Math.abs))).output;
  assert.deepEqual(out.shape, [3, 10]);
  assert.ok(out.data.every(Number.isFinite));
});

test('channelSums: four channels at a time give the bits of one float64 chain per channel (ascending b, then i)', () => {
  for (const [batch, channels, size] of [[3, 1, 5], [2, 4, 7], [5, 7, 9], [4, 9, 196]]) {
    const data = Float32Array.from({ length: batch * channels * size }, (_, i) => Math.fround(Math.sin(i * 1.7) * 10 ** ((i % 7) - 3)));
    const got = new Float32Array(channels);
    channelSums(data, batch, channels, size, got);
    const want = new Float32Array(channels);
    for (let c = 0; c < channels; c++) {
      let acc = 0;
      for (let b = 0; b < batch; b++) for (let i = 0; i < size; i++) acc += data[(b * channels + c) * size + i];
      want[c] = acc;
    }
    assert.deepEqual(got, want, `batch ${batch}, channels ${channels}, size ${size}`);
  }
});

test('conv forward with ReLU on the kernels: the output is relu(pre) bit for bit (applied in linear memory), on 1 and 2 threads', { skip: KERNELS_OFF }, async () => {
  // 5 filters × 11×10 outputs × 7 samples: not a multiple of 4 values; the second layer (1.1M multiply-adds) runs on the pool.
  const net = buildNetwork({
    depth: 1, rows: 1, cols: 2, layers_per_cell: 1,
    layers: [
      { z: 0, y: 0, x: 0, l: 0, type: 'CNN2', activation: 'ReLU', input_channels: 2, filters: 5, kernel_size: 3, stride: 2, padding: 1, input_height: 22, input_width: 20, use_bias: true },
      { z: 0, y: 0, x: 1, l: 0, type: 'CNN2', activation: 'ReLU', input_channels: 5, filters: 32, kernel_size: 3, stride: 1, padding: 1, input_height: 11, input_width: 10, use_bias: true },
    ],
  });
  const x = Tensor.from([7, 880], randomArray(7 * 880, 11).map((v) => v - 0.5));
  const outputs: Float32Array[] = [];
  for (const threads of [1, 2]) {
    await withThreads(threads, () => {
      const { output, trace } = forwardNetwork(net, x, { keepTrace: true });
      trace!.caches.forEach((cache, k) => {
        const pre = cache.pre!.data;
        const want = new Float32Array(pre.length);
        reluInto(pre, want);
        assert.deepEqual(trace!.values[k + 1].data, want);
      });
      assert.equal(trace!.caches.length, 2);
      if (threads === 2) assert.ok(kernelPoolJobs() > 0, 'the pool ran the second layer');
      outputs.push(output.data);
    });
  }
  assert.deepEqual(outputs[0], outputs[1]);
});

test('conv backward with ReLU on the kernels (mask and bias sums in linear memory) equals a linear layer fed the masked gradient, bit for bit, on 1 and 2 threads', { skip: KERNELS_OFF }, async () => {
  const layer = (activation: string) => ({ z: 0, y: 0, x: 0, l: 0, type: 'CNN2', activation, input_channels: 5, filters: 32, kernel_size: 3, stride: 1, padding: 1, input_height: 11, input_width: 10, use_bias: true });
  const relu = buildNetwork({ depth: 1, rows: 1, cols: 1, layers_per_cell: 1, layers: [layer('ReLU')] });
  const linear = buildNetwork({ depth: 1, rows: 1, cols: 1, layers_per_cell: 1, layers: [layer('Linear')] });
  linear.cells.find((c) => c)!.weights!.master.set(relu.cells.find((c) => c)!.weights!.master);
  const x = Tensor.from([9, 550], randomArray(9 * 550, 21).map((v) => v - 0.5));
  const gOut = Tensor.from([9, 3520], randomArray(9 * 3520, 22).map((v) => v - 0.5));
  for (const threads of [1, 2]) {
    await withThreads(threads, () => {
      const a = forwardNetwork(relu, x, { keepTrace: true });
      const got = backwardNetwork(relu, a.trace!, gOut);
      const b = forwardNetwork(linear, x, { keepTrace: true });
      const pre = b.output.data;
      const masked = Tensor.from(gOut.shape, gOut.data.map((g, i) => (pre[i] > 0 ? g : 0)));
      const want = backwardNetwork(linear, b.trace!, masked);
      assert.deepEqual(got.gradInput.data, want.gradInput.data);
      assert.deepEqual(got.gradients[0].grad, want.gradients[0].grad);
      if (threads === 2) assert.ok(kernelPoolJobs() > 0, 'the pool ran the convolutions');
    });
  }
});

test('channelSumsF64 (the kernels\' bias sums) gives channelSums\'s bits', () => {
  for (const [B, F, P] of [[3, 7, 13], [2, 4, 196], [5, 1, 9]]) {
    const { x, at } = kernelInstance<{ channelSumsF64(B: number, F: number, P: number, g: number, out: number): void }>(B * F * P + F);
    const { channelSumsF64, memory } = x;
    const g = new Float32Array(memory.buffer, at, B * F * P);
    g.set(randomArray(B * F * P, B * F + P).map((v, i) => (v - 0.5) * 10 ** ((i % 9) - 4)));
    channelSumsF64(B, F, P, at, at + B * F * P * 4);
    const want = new Float32Array(F);
    channelSums(g, B, F, P, want);
    assert.deepEqual(new Float32Array(memory.buffer, at + B * F * P * 4, F), want);
  }
});
