import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ALL_DTYPES, DType, dtypeName } from '../../src/core/dtype.js';
import { LoomError, ShapeError, SpecError } from '../../src/core/errors.js';
import { Tensor } from '../../src/core/tensor.js';
import { backwardNetwork, forwardNetwork } from '../../src/engine/run.js';
import { deserializeNetwork, serializeNetwork } from '../../src/grid/persistence.js';
import { buildNetwork } from '../../src/grid/spec.js';
import type { VolumetricNetwork } from '../../src/grid/network.js';
import { kernelMode } from '../../src/kernels/backend.js';
import { attentionForwardCached, createKVCache, DEFAULT_ROPE_FREQ_BASE } from '../../src/layers/attention.js';
import { gradCheck } from '../gradcheck.js';
import { assertClose, fixture, maxRelativeDiff, randomArray, withKernelMode } from '../helpers.js';

interface AttentionCase {
  config: Record<string, number | boolean>;
  shapes: { x: number[]; params: number[] };
  x: number[];
  params: number[];
  gradOutput: number[];
  y: number[];
  gradInput: number[];
  gradParams: number[];
}

/** A 1×1×N grid holding `layers` in its columns. */
function grid(layers: object[], seed = 3): VolumetricNetwork {
  return buildNetwork(
    { depth: 1, rows: 1, cols: layers.length, layers_per_cell: 1, layers: layers.map((l, x) => ({ z: 0, y: 0, x, l: 0, ...l })) },
    { seed },
  );
}

function setParams(net: VolumetricNetwork, values: ArrayLike<number>, x = 0): void {
  const store = net.getLayer(0, 0, x, 0)!.weights!;
  assert.equal(store.count, values.length, 'parameter count');
  store.master.set(values);
  store.markMasterChanged();
}

/** max |a − e| / (1e-6 + 1e-5·|e|): the share of the element-wise tolerance the worst element uses. */
function toleranceUsed(a: ArrayLike<number>, e: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - e[i]) / (1e-6 + 1e-5 * Math.abs(e[i])));
  return m;
}

const GQA = { type: 'MHA', d_model: 16, num_heads: 4, num_kv_heads: 2, causal: true };

test('MultiHeadAttention forward and backward match PyTorch (scripts/golden/attention.py)', (t) => {
  matchesPyTorch(t.diagnostic.bind(t));
});

test('on the WebAssembly kernels (float32 softmax), attention matches PyTorch and a float64 reference over several query blocks', (t) => {
  withKernelMode('wasm', () => {
    matchesPyTorch(t.diagnostic.bind(t));
    // Every product in float32 over 40-wide rows and 150 keys: the directional derivative within 1e-5 relative (the TypeScript path's products are float64).
    matchesReference(t.diagnostic.bind(t), [
      { d: 32, heads: 2, kvHeads: 1, hd: 16, theta: 10000, causal: true },
      { d: 40, heads: 2, kvHeads: 2, hd: 20, theta: 0, causal: false },
    ], 1e-5);
  });
});

test('KV cache decoding across query blocks reproduces the full forward bit for bit, on the kernels and on the reference', () => {
  const seq = 150;
  // Heads of 8 (d 32) and 2 (d 8): 'auto' sends the small ones to the reference, whose products stay float64 whatever the key count.
  for (const [mode, d] of [['wasm', 32], ['ts', 32], ['auto', 32], ['auto', 8]] as const) {
    withKernelMode(mode, () => {
      const net = grid([{ type: 'MHA', d_model: d, num_heads: 4, num_kv_heads: 2, causal: true }]);
      const layer = net.getLayer(0, 0, 0, 0)!;
      const x = randomArray(seq * d, 41);
      const full = forwardNetwork(net, Tensor.from([1, seq, d], x)).output.data;
      const cache = createKVCache(layer, 200);
      const got = new Float32Array(full.length);
      let pos = 0;
      for (const n of [70, 1, 1, 78]) {
        got.set(attentionForwardCached(layer, Tensor.from([1, n, d], x.subarray(pos * d, (pos + n) * d)), null, cache).data, pos * d);
        pos += n;
      }
      assert.deepEqual(new Uint32Array(got.buffer), new Uint32Array(full.buffer), `${mode}, d ${d}: cached decoding bits`);
    });
  }
});

function matchesPyTorch(diagnostic: (message: string) => void): void {
  const { cases } = fixture<{ cases: Record<string, AttentionCase> }>('attention.json');
  assert.deepEqual(Object.keys(cases).sort(), ['gqa_rope_causal', 'mha_plain', 'mqa_wide_heads']);
  for (const [name, c] of Object.entries(cases)) {
    const net = grid([{ type: 'MultiHeadAttention', ...c.config }]);
    setParams(net, c.params);
    const { output, trace } = forwardNetwork(net, Tensor.from(c.shapes.x, c.x), { keepTrace: true });
    assert.deepEqual(output.shape, c.shapes.x);
    assertClose(output.data, c.y, 1e-5, 1e-6, `${name} y`);
    const { gradInput, gradients } = backwardNetwork(net, trace!, Tensor.from(c.shapes.x, c.gradOutput));
    assertClose(gradInput.data, c.gradInput, 1e-5, 1e-6, `${name} gradInput`);
    assertClose(gradients[0].grad, c.gradParams, 1e-5, 1e-6, `${name} gradParams`);
    const report = (got: Float32Array, want: number[]): string =>
      `${maxRelativeDiff(got, want, 1e-2).toExponential(2)} (${toleranceUsed(got, want).toFixed(2)} of tolerance)`;
    diagnostic(`${kernelMode()}: ${name} vs PyTorch, max relative diff (|expected| floored at 1e-2): y ${report(output.data, c.y)}, gradInput ${report(gradInput.data, c.gradInput)}, gradParams ${report(gradients[0].grad, c.gradParams)}`);
  }
}

test('a [batch, seq·d_model] input with seq_length gives the [batch, seq, d_model] results', () => {
  const { cases } = fixture<{ cases: Record<string, AttentionCase> }>('attention.json');
  const c = cases.gqa_rope_causal;
  const [b, s, d] = c.shapes.x;
  const net = grid([{ type: 'ATTENTION', ...c.config, seq_length: s }]);
  setParams(net, c.params);
  const flat = forwardNetwork(net, Tensor.from([b, s * d], c.x), { keepTrace: true });
  assert.deepEqual(flat.output.shape, [b, s * d]);
  assertClose(flat.output.data, c.y, 1e-5, 1e-6, 'flat y');
  const back = backwardNetwork(net, flat.trace!, Tensor.from([b, s * d], c.gradOutput));
  assert.deepEqual(back.gradInput.shape, [b, s * d]);
  assertClose(back.gradInput.data, c.gradInput, 1e-5, 1e-6, 'flat gradInput');
});

test('attention gradients agree with finite differences (GQA + RoPE + causal, plain, with an activation)', () => {
  const specs = [
    { ...GQA, d_model: 6, num_heads: 2, num_kv_heads: 1, head_dim: 4, rope_freq_base: 50, activation: 'Tanh' },
    { type: 'MHA', d_model: 6, num_heads: 3, rope_freq_base: 0 },
  ];
  for (const spec of specs) {
    // A Dense in front makes the attention input depend on parameters too; it hands over [batch, 4·6] (seq from seq_length).
    const net = grid([{ type: 'Dense', input_height: 24, output_height: 24, use_bias: true, activation: 'Tanh' }, { ...spec, seq_length: 4 }], 11);
    const store = net.getLayer(0, 0, 1, 0)!.weights!;
    store.master.set(randomArray(store.count, 5, 0.6));
    store.markMasterChanged();
    gradCheck(net, Tensor.from([2, 24], randomArray(48, 7, 1.5)), { maxParams: 400 });
  }
});

test('KV cache: decoding token by token (and in chunks) reproduces the full causal forward', (t) => {
  const net = grid([{ ...GQA, rope_freq_base: 10000 }], 5);
  const layer = net.getLayer(0, 0, 0, 0)!;
  setParams(net, randomArray(layer.weights!.count, 9, 0.3));
  const [batch, seq, d] = [2, 7, 16];
  const x = randomArray(batch * seq * d, 21);
  for (const dtype of [DType.Float32, DType.Int8]) {
    net.morph(dtype);
    const weights = layer.weights!.getActive(dtype);
    const full = forwardNetwork(net, Tensor.from([batch, seq, d], x)).output.data;
    const step = (cache: ReturnType<typeof createKVCache>, from: number, n: number): Float32Array => {
      const chunk = new Float32Array(batch * n * d);
      for (let b = 0; b < batch; b++) chunk.set(x.subarray((b * seq + from) * d, (b * seq + from + n) * d), b * n * d);
      return attentionForwardCached(layer, Tensor.from([batch, n, d], chunk), weights, cache).data;
    };
    for (const chunks of [[1, 1, 1, 1, 1, 1, 1], [3, 4], [2, 1, 4]]) {
      const cache = createKVCache(layer, 8, batch);
      const got = new Float32Array(full.length);
      let pos = 0;
      for (const n of chunks) {
        const out = step(cache, pos, n);
        for (let b = 0; b < batch; b++) got.set(out.subarray(b * n * d, (b + 1) * n * d), (b * seq + pos) * d);
        pos += n;
      }
      assert.equal(cache.length, seq);
      assertClose(got, full, 0, 1e-6, `${dtypeName(dtype)} cached ${chunks.join('+')}`);
      t.diagnostic(`${dtypeName(dtype)} chunks ${chunks.join('+')}: max |cached − full| = ${Math.max(...got.map((v, i) => Math.abs(v - full[i]))).toExponential(2)}`);
    }
  }
  net.morph(DType.Float32);
  // Resetting the length starts a new sequence; weights default to the active dtype.
  const cache = createKVCache(layer, 4);
  const first = attentionForwardCached(layer, Tensor.from([1, 1, d], x.subarray(0, d)), null, cache).data;
  cache.length = 0;
  assert.deepEqual(attentionForwardCached(layer, Tensor.from([1, d], x.subarray(0, d)), null, cache).data, first);
});

interface RefConfig {
  d: number;
  heads: number;
  kvHeads: number;
  hd: number;
  theta: number;
  causal: boolean;
}

/** The layer's formulas written out directly in float64 (Linear activation), x [batch, seq, d] → y. */
function reference(c: RefConfig, params: ArrayLike<number>, x: ArrayLike<number>, batch: number, seq: number): Float64Array {
  const q = c.heads * c.hd;
  const kv = c.kvHeads * c.hd;
  const [wq, wk, wv, wo] = [0, q * c.d, (q + kv) * c.d, (q + 2 * kv) * c.d];
  const bq = wo + c.d * q;
  const [bk, bv, bo] = [bq + q, bq + q + kv, bq + q + 2 * kv];
  const linear = (w: number, b: number, ins: number, src: ArrayLike<number>, r: number, o: number): number => {
    let v = params[b + o];
    for (let i = 0; i < ins; i++) v += params[w + o * ins + i] * src[r * ins + i];
    return v;
  };
  const y = new Float64Array(batch * seq * c.d);
  const half = c.hd / 2;
  for (let b = 0; b < batch; b++) {
    const Q = new Float64Array(seq * q);
    const K = new Float64Array(seq * kv);
    const V = new Float64Array(seq * kv);
    for (let s = 0; s < seq; s++) {
      const r = b * seq + s;
      for (let o = 0; o < q; o++) Q[s * q + o] = linear(wq, bq, c.d, x, r, o);
      for (let o = 0; o < kv; o++) K[s * kv + o] = linear(wk, bk, c.d, x, r, o);
      for (let o = 0; o < kv; o++) V[s * kv + o] = linear(wv, bv, c.d, x, r, o);
      if (c.theta > 0) {
        for (const [buf, width] of [[Q, q], [K, kv]] as const) {
          for (let h = 0; h < width / c.hd; h++) {
            for (let i = 0; i < half; i++) {
              const angle = s / Math.pow(c.theta, (2 * i) / c.hd);
              const at = s * width + h * c.hd + i;
              const [u, v] = [buf[at], buf[at + half]];
              buf[at] = u * Math.cos(angle) - v * Math.sin(angle);
              buf[at + half] = u * Math.sin(angle) + v * Math.cos(angle);
            }
          }
        }
      }
    }
    const A = new Float64Array(seq * q);
    for (let h = 0; h < c.heads; h++) {
      const g = Math.floor(h / (c.heads / c.kvHeads));
      for (let i = 0; i < seq; i++) {
        const n = c.causal ? i + 1 : seq;
        const sc = Array.from({ length: n }, (_, j) => {
          let dot = 0;
          for (let t = 0; t < c.hd; t++) dot += Q[i * q + h * c.hd + t] * K[j * kv + g * c.hd + t];
          return dot / Math.sqrt(c.hd);
        });
        const mx = Math.max(...sc);
        const e = sc.map((v) => Math.exp(v - mx));
        const sum = e.reduce((a, v) => a + v, 0);
        for (let t = 0; t < c.hd; t++) {
          let acc = 0;
          for (let j = 0; j < n; j++) acc += (e[j] / sum) * V[j * kv + g * c.hd + t];
          A[i * q + h * c.hd + t] = acc;
        }
      }
    }
    for (let s = 0; s < seq; s++) for (let o = 0; o < c.d; o++) y[(b * seq + s) * c.d + o] = linear(wo, bo, q, A, s, o);
  }
  return y;
}

test('long sequences (several query blocks) match a float64 reference, forward and backward', (t) => {
  matchesReference(t.diagnostic.bind(t), [
    { d: 8, heads: 4, kvHeads: 2, hd: 4, theta: 10000, causal: true },
    { d: 8, heads: 2, kvHeads: 2, hd: 4, theta: 0, causal: false },
  ]);
});

function matchesReference(diagnostic: (message: string) => void, cases: RefConfig[], rtol = 1e-6): void {
  const [batch, seq] = [2, 150];
  for (const c of cases) {
    const net = grid([{ type: 'MHA', d_model: c.d, num_heads: c.heads, num_kv_heads: c.kvHeads, head_dim: c.hd, rope_freq_base: c.theta, causal: c.causal }]);
    const layer = net.getLayer(0, 0, 0, 0)!;
    const params = randomArray(layer.weights!.count, 31, 0.4);
    setParams(net, params);
    const x = randomArray(batch * seq * c.d, 32);
    const { output, trace } = forwardNetwork(net, Tensor.from([batch, seq, c.d], x), { keepTrace: true });
    const want = reference(c, params, x, batch, seq);
    assertClose(output.data, want, 1e-5, 2e-6, `causal ${c.causal} y`);

    // Directional derivative of L = Σ y·r along a random (input, parameter) direction, against float64 central differences.
    const r = randomArray(output.size, 33);
    const { gradInput, gradients } = backwardNetwork(net, trace!, new Tensor(r, output.shape));
    const vx = randomArray(x.length, 34);
    const vp = randomArray(params.length, 35);
    let analytic = 0;
    for (let i = 0; i < vx.length; i++) analytic += gradInput.data[i] * vx[i];
    for (let i = 0; i < vp.length; i++) analytic += gradients[0].grad[i] * vp[i];
    const eps = 1e-4;
    const loss = (sign: number): number => {
      const y = reference(c, Float64Array.from(params, (v, i) => v + sign * eps * vp[i]), Float64Array.from(x, (v, i) => v + sign * eps * vx[i]), batch, seq);
      return y.reduce((a, v, i) => a + v * r[i], 0);
    };
    const numeric = (loss(1) - loss(-1)) / (2 * eps);
    diagnostic(`${kernelMode()}: head_dim ${c.hd}, causal ${c.causal}: directional derivative ${analytic.toFixed(6)} vs float64 ${numeric.toFixed(6)}`);
    assert.ok(Math.abs(analytic - numeric) <= rtol * Math.abs(numeric) + 1e-5, `${analytic} vs ${numeric}`);
  }
}

test('KV cache misuse is reported', () => {
  const net = grid([GQA, { type: 'Dense', input_height: 16, output_height: 16 }]);
  const layer = net.getLayer(0, 0, 0, 0)!;
  const cache = createKVCache(layer, 3);
  attentionForwardCached(layer, Tensor.zeros([1, 2, 16]), null, cache);
  assert.throws(
    () => attentionForwardCached(layer, Tensor.zeros([1, 2, 16]), null, cache),
    (e: Error) => e instanceof ShapeError && /MultiHeadAttention at \(0,0,0,0\): the KV cache holds 3 positions; 2 are used and 2 more do not fit/.test(e.message),
  );
  assert.throws(() => attentionForwardCached(layer, Tensor.zeros([2, 1, 16]), null, cache), /the KV cache holds 1 sequences/);
  assert.throws(() => createKVCache(net.getLayer(0, 0, 1, 0)!, 4), (e: Error) => e instanceof LoomError && /Dense at \(0,0,1,0\) is not a MultiHeadAttention layer/.test(e.message));
  assert.throws(() => createKVCache(layer, 0), /maxSeq must be a positive integer/);
});

test('causal masking: no output depends on later positions; without it, every position does', () => {
  for (const causal of [true, false]) {
    const net = grid([{ ...GQA, causal }]);
    const x = randomArray(5 * 16, 3);
    const a = forwardNetwork(net, Tensor.from([1, 5, 16], x)).output.data;
    x[4 * 16] += 1;
    const b = forwardNetwork(net, Tensor.from([1, 5, 16], x)).output.data;
    const earlierChanged = a.subarray(0, 4 * 16).some((v, i) => v !== b[i]);
    assert.equal(earlierChanged, !causal);
  }
});

test('config defaults follow the original; the parameter layout is Wq, Wk, Wv, Wo, bq, bk, bv, bo', () => {
  const layer = grid([{ type: 'MHA', d_model: 12, num_heads: 3 }]).getLayer(0, 0, 0, 0)!;
  assert.equal(layer.kind.name, 'MultiHeadAttention');
  assert.deepEqual(
    [layer.config.numKVHeads, layer.config.headDim, layer.config.queryDim, layer.config.ropeFreqBase, layer.config.causal ?? false],
    [3, 4, 12, DEFAULT_ROPE_FREQ_BASE, false],
  );
  assert.equal(layer.weights!.count, 4 * 12 * 12 + 4 * 12);
  // GQA with head_dim·num_heads ≠ d_model: q = 4·6 = 24, kv = 1·6 = 6, d = 8.
  const mqa = grid([{ type: 'attention', d_model: 8, num_heads: 4, num_kv_heads: 1, head_dim: 6 }]).getLayer(0, 0, 0, 0)!;
  assert.equal(mqa.weights!.count, 24 * 8 + 6 * 8 + 6 * 8 + 8 * 24 + 24 + 6 + 6 + 8);
  assert.equal(mqa.config.queryDim, 24);
  // The original's files omit zero fields: 0 means "unset" for the dimension fields.
  const zeros = grid([{ type: 'MHA', d_model: 8, num_heads: 2, num_kv_heads: 0, head_dim: 0, query_dim: 0 }]).getLayer(0, 0, 0, 0)!;
  assert.deepEqual([zeros.config.numKVHeads, zeros.config.headDim, zeros.config.queryDim], [2, 4, 8]);
});

test('rope_freq_base ≤ 0 turns RoPE off and stays off through persistence', () => {
  const x = Tensor.from([1, 4, 8], randomArray(32, 4));
  const on = grid([{ type: 'MHA', d_model: 8, num_heads: 2 }]);
  for (const base of [0, -5]) {
    const off = grid([{ type: 'MHA', d_model: 8, num_heads: 2, rope_freq_base: base }]);
    assert.equal(off.getLayer(0, 0, 0, 0)!.config.ropeFreqBase, -1);
    const y = forwardNetwork(off, x).output.data;
    assert.notDeepEqual(y, forwardNetwork(on, x).output.data);
    const text = serializeNetwork(off);
    assert.match(text, /"rope_freq_base": -1/);
    assert.deepEqual(forwardNetwork(deserializeNetwork(text), x).output.data, y);
  }
  // Without RoPE and mask, attention is permutation-equivariant over positions.
  const off = grid([{ type: 'MHA', d_model: 8, num_heads: 2, rope_freq_base: 0 }]);
  const y = forwardNetwork(off, x).output.data;
  const swapped = x.data.slice();
  swapped.set(x.data.subarray(0, 8), 24);
  swapped.set(x.data.subarray(24, 32), 0);
  const ys = forwardNetwork(off, Tensor.from([1, 4, 8], swapped)).output.data;
  assertClose(ys.subarray(24, 32), y.subarray(0, 8), 1e-6, 1e-7, 'swapped row');
});

test('attention config and shape errors name the path or the layer', () => {
  const bad: [object, RegExp][] = [
    [{ type: 'MHA', num_heads: 2 }, /layers\[0\]\.d_model: expected a positive integer \(the field is missing\)/],
    [{ type: 'MHA', d_model: 8 }, /layers\[0\]\.num_heads: expected a positive integer/],
    [{ type: 'MHA', d_model: 8, num_heads: 4, num_kv_heads: 3 }, /layers\[0\]\.num_kv_heads: expected a divisor of num_heads \(4\), got 3/],
    [{ type: 'MHA', d_model: 10, num_heads: 4 }, /layers\[0\]\.num_heads: expected a divisor of d_model \(10\) when head_dim is not given, got 4/],
    [{ type: 'MHA', d_model: 8, num_heads: 2, query_dim: 6 }, /layers\[0\]\.query_dim: expected num_heads × head_dim = 8, got 6/],
    [{ type: 'MHA', d_model: 8, num_heads: 2, head_dim: 3 }, /layers\[0\]\.head_dim: expected an even number when RoPE is on/],
  ];
  for (const [spec, message] of bad) assert.throws(() => grid([spec]), (e: Error) => e instanceof SpecError && message.test(e.message), message.source);
  grid([{ type: 'MHA', d_model: 8, num_heads: 2, head_dim: 3, rope_freq_base: -1 }]);

  const net = grid([{ type: 'MHA', d_model: 8, num_heads: 2, seq_length: 4 }]);
  assert.throws(
    () => forwardNetwork(net, Tensor.zeros([2, 12])),
    (e: Error) => e instanceof ShapeError && /MultiHeadAttention at \(0,0,0,0\): expected \[batch, seq, 8\] or a multiple of d_model = 8 values per sample, got input of shape \[2, 12\]/.test(e.message),
  );
  assert.throws(() => forwardNetwork(net, Tensor.zeros([2, 24])), /expected seq_length × d_model = 32 values per sample/);
  // A [batch, seq, d_model] input carries its own length.
  assert.deepEqual(forwardNetwork(net, Tensor.zeros([2, 3, 8])).output.shape, [2, 3, 8]);
});

test('attention runs in every dtype through morph and survives persistence bit for bit', () => {
  const net = grid([{ ...GQA, activation: 'GELU' }, { type: 'MHA', d_model: 16, num_heads: 2, rope_freq_base: -1, seq_length: 3 }]);
  const input = Tensor.from([2, 3, 16], randomArray(96, 13, 2));
  for (const d of ALL_DTYPES) {
    const copy = deserializeNetwork(serializeNetwork(net));
    copy.morph(d);
    const out = forwardNetwork(copy, input).output;
    assert.deepEqual(out.shape, [2, 3, 16], dtypeName(d));
    assert.ok(out.data.every(Number.isFinite), `${dtypeName(d)} output is finite`);
    const text = serializeNetwork(copy);
    const reloaded = deserializeNetwork(text);
    assert.equal(serializeNetwork(reloaded), text, dtypeName(d));
    assert.deepEqual(new Uint32Array(forwardNetwork(reloaded, input).output.data.buffer), new Uint32Array(out.data.buffer), dtypeName(d));
  }
});

test('on the kernels, odd head sizes, one-token sequences and GQA groups of 3 agree with the reference path', () => {
  const cases: [object, number[]][] = [
    [{ type: 'MHA', d_model: 9, num_heads: 3, causal: true, rope_freq_base: 0 }, [2, 1, 9]],
    [{ type: 'MHA', d_model: 9, num_heads: 3, causal: false, rope_freq_base: 0 }, [3, 5, 9]],
    [{ type: 'MHA', d_model: 12, num_heads: 6, num_kv_heads: 2, causal: true }, [2, 67, 12]],
    [{ type: 'MHA', d_model: 10, num_heads: 2, head_dim: 6, causal: true }, [1, 200, 10]],
  ];
  for (const [spec, shape] of cases) {
    const run = () => {
      const net = grid([spec], 5);
      const n = shape.reduce((a, b) => a * b);
      const { output, trace } = forwardNetwork(net, Tensor.from(shape, randomArray(n, 17, 2)), { keepTrace: true });
      const { gradInput, gradients } = backwardNetwork(net, trace!, new Tensor(randomArray(output.size, 18), output.shape));
      return [output.data, gradInput.data, gradients[0].grad];
    };
    const kernels = withKernelMode('wasm', run);
    const reference = withKernelMode('ts', run);
    ['y', 'gradInput', 'gradParams'].forEach((what, i) => {
      const scale = reference[i].reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      assertClose(kernels[i], reference[i], 0, 2e-6 * scale, `${JSON.stringify(shape)} ${what}`);
    });
  }
});
