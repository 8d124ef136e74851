import { LoomError, ShapeError, SpecError } from '../core/errors.js';
import { Tensor } from '../core/tensor.js';
import { attentionBatch, attentionBatchBackward, attentionForward, gemmAB, gemmABt, gemmAtB, sumRows, type AttentionBatch, type AttentionRowStats } from '../kernels/backend.js';
import { gemmABt as gemmABtRef, transpose } from '../kernels/gemm.js';
import { activateInto, activationBackwardInto } from './activations.js';
import { requirePositive } from './dense.js';
import { coordText, type IncrementalContext, type Layer, type LayerKind } from './layer.js';
import { registerLayerKind } from './registry.js';

/** RoPE base used when `rope_freq_base` is absent: the original's mhaRoPETheta default (Llama's). */
export const DEFAULT_ROPE_FREQ_BASE = 10000;
/** What configure stores for "RoPE off" (persistence omits zero-valued fields, so 0 would not survive a save). */
const ROPE_OFF = -1;

interface Dims {
  d: number;
  heads: number;
  kvHeads: number;
  hd: number;
  /** query width = heads·hd */
  q: number;
  /** key/value width = kvHeads·hd */
  kv: number;
  /** Width of one fused projection row: [Q | K | V]. */
  w3: number;
  /** Query heads per key/value head. */
  group: number;
  /** Per rotation pair i < head_dim/2, the angle at position p is p / ropeDivisors[i]; null when RoPE is off. */
  ropeDivisors: Float64Array | null;
  causal: boolean;
  scale: number;
}

function dimsOf(layer: Layer): Dims {
  const c = layer.config;
  const d = c.dModel ?? 0;
  const heads = c.numHeads ?? 1;
  const kvHeads = c.numKVHeads || heads;
  const hd = c.headDim || Math.floor(d / heads);
  const q = heads * hd;
  const kv = kvHeads * hd;
  const base = c.ropeFreqBase ?? DEFAULT_ROPE_FREQ_BASE;
  return {
    d, heads, kvHeads, hd, q, kv,
    w3: q + 2 * kv,
    group: heads / kvHeads,
    ropeDivisors: base > 0 ? ropeDivisors(hd, base, ropeScalingOf(c)) : null,
    causal: c.causal === true,
    scale: 1 / Math.sqrt(hd),
  };
}

/** Offsets into the parameter vector: Wq, Wk, Wv (contiguous, so one product projects all three), Wo, bq, bk, bv, bo. */
function offsets(m: Dims) {
  const wq = 0;
  const wk = wq + m.q * m.d;
  const wv = wk + m.kv * m.d;
  const wo = wv + m.kv * m.d;
  const bq = wo + m.d * m.q;
  const bk = bq + m.q;
  const bv = bk + m.kv;
  const bo = bv + m.kv;
  return { wq, wk, wv, wo, bq, bk, bv, bo, end: bo + m.d };
}

interface AttentionCache {
  batch: number;
  seq: number;
  /** [batch·seq, q + 2·kv]: Q and K after RoPE, then V. */
  qkv: Float32Array;
  /** [batch·seq, q]: the per-head attention outputs, the output projection's input. */
  attn: Float32Array;
  /** Per [batch][head][query]: the largest raw score and 1/Σexp, so backward recomputes the probabilities in O(seq) memory per head. */
  rowMax: Float32Array;
  rowInv: Float64Array;
}

/**
 * Multi-head attention (GQA when num_kv_heads < num_heads) over [batch, seq, d_model] inputs (or
 * [batch, seq·d_model]): Q = x·Wqᵀ + bq, K = x·Wkᵀ + bk, V = x·Wvᵀ + bv; RoPE (rotate-half, the
 * original's and HF Llama's convention) on Q and K when rope_freq_base > 0; per head softmax(Q·Kᵀ/√head_dim)
 * (causal mask when `causal`) times V, query head h reading key/value head ⌊h/(num_heads/num_kv_heads)⌋;
 * y = act(attn·Woᵀ + bo). Parameters: Wq [q×d], Wk [kv×d], Wv [kv×d], Wo [d×q], bq [q], bk [kv], bv [kv], bo [d].
 */
export const attentionKind: LayerKind = {
  name: 'MultiHeadAttention',
  aliases: ['MHA', 'ATTENTION'],

  configure(layer, path) {
    const c = layer.config;
    requirePositive(c.dModel, `${path}.d_model`);
    requirePositive(c.numHeads, `${path}.num_heads`);
    const d = c.dModel!;
    const heads = c.numHeads!;
    // 0 means unset in the original's files (its persistence omits zeros), so it takes the default.
    if (!c.numKVHeads) c.numKVHeads = heads;
    else if (heads % c.numKVHeads !== 0) throw new SpecError(`${path}.num_kv_heads`, `a divisor of num_heads (${heads})`, c.numKVHeads);
    if (!c.headDim) {
      if (d % heads !== 0) throw new SpecError(`${path}.num_heads`, `a divisor of d_model (${d}) when head_dim is not given`, heads);
      c.headDim = d / heads;
    }
    const q = heads * c.headDim;
    if (!c.queryDim) c.queryDim = q;
    else if (c.queryDim !== q) throw new SpecError(`${path}.query_dim`, `num_heads × head_dim = ${q}`, c.queryDim);
    if (c.ropeFreqBase === undefined) c.ropeFreqBase = DEFAULT_ROPE_FREQ_BASE;
    else if (c.ropeFreqBase <= 0) c.ropeFreqBase = ROPE_OFF;
    if (c.ropeFreqBase > 0 && c.headDim % 2 !== 0) {
      throw new SpecError(`${path}.head_dim`, 'an even number when RoPE is on (rope_freq_base > 0)', c.headDim);
    }
    configureRopeScaling(c, path);
  },

  parameterCount(layer) {
    return offsets(dimsOf(layer)).end;
  },

  initParameters(layer, params, rng) {
    // nn.Linear's default per projection: U(±1/sqrt(fan_in)) for weights and biases (the original randomizes biases too).
    const m = dimsOf(layer);
    const o = offsets(m);
    const fill = (from: number, to: number, fanIn: number): void => {
      const bound = 1 / Math.sqrt(fanIn);
      for (let i = from; i < to; i++) params[i] = (rng.uniform() * 2 - 1) * bound;
    };
    fill(o.wq, o.wo, m.d);
    fill(o.wo, o.bq, m.q);
    fill(o.bq, o.bo, m.d);
    fill(o.bo, o.end, m.q);
  },

  forward(layer, input, weights) {
    const m = dimsOf(layer);
    const { batch, seq } = layoutOf(layer, input, m, true);
    const w = weights!;
    const o = offsets(m);
    const rows = batch * seq;
    const qkv = project(input.data, w, rows, m);
    const cs = ropeTable(m, 0, seq);
    for (let b = 0; b < batch; b++) applyRope(qkv, b * seq, seq, 0, m, cs);

    const attn = new Float32Array(rows * m.q);
    const rowMax = new Float32Array(batch * m.heads * seq);
    const rowInv = new Float64Array(batch * m.heads * seq);
    const kernelStats = new Float32Array(2 * seq * batch * m.heads);
    if (attentionBatch(batchOf(m, batch, seq), qkv, attn, kernelStats)) {
      unpackStats(kernelStats, seq, rowMax, rowInv);
    } else {
      headsForward(m, qkv, batch, seq, attn, rowMax, rowInv);
    }
    const pre = new Float32Array(rows * m.d);
    gemmABt(attn, w.subarray(o.wo, o.bq), pre, rows, m.d, m.q, w.subarray(o.bo, o.end));
    const out = new Float32Array(pre.length);
    activateInto(pre, out, layer.activation);
    const extra: AttentionCache = { batch, seq, qkv, attn, rowMax, rowInv };
    return { output: new Tensor(out, input.shape), cache: { input, pre: new Tensor(pre, input.shape), extra } };
  },

  forwardIncremental(layer, input, ctx) {
    const m = dimsOf(layer);
    const { batch, seq: n } = layoutOf(layer, input, m, false);
    const cache = ctx.state((maxSeq) => createKVCache(layer, maxSeq, batch));
    if (batch !== cache.batch) {
      throw new ShapeError(`${layer.kind.name} at ${coordText(layer)}: the KV cache holds ${cache.batch} sequences, got input of shape [${input.shape.join(', ')}]`);
    }
    if (cache.length + n > cache.maxSeq) {
      throw new ShapeError(`${layer.kind.name} at ${coordText(layer)}: the KV cache holds ${cache.maxSeq} positions; ${cache.length} are used and ${n} more do not fit`);
    }
    return cachedForward(layer, input, cache, m, batch, n, ctx.linear);
  },

  matrices(layer) {
    const m = dimsOf(layer);
    const o = offsets(m);
    return [
      { offset: o.wq, rows: m.w3, cols: m.d },
      { offset: o.wo, rows: m.d, cols: m.q },
    ];
  },

  backward(layer, gradOutput, cache, weights) {
    const m = dimsOf(layer);
    const { batch, seq, qkv, attn, rowMax, rowInv } = cache.extra as AttentionCache;
    const w = weights!;
    const o = offsets(m);
    const rows = batch * seq;
    const x = cache.input.data;

    const gPre = new Float32Array(rows * m.d);
    activationBackwardInto(gradOutput.data, cache.pre!.data, gPre, layer.activation);
    const grad = new Float32Array(o.end);
    // dWo[i][j] = Σ_r gPre[r][i]·attn[r][j]; dAttn = gPre·Wo.
    gemmAtB(gPre, attn, grad.subarray(o.wo, o.bq), m.d, m.q, rows);
    sumRows(gPre, rows, m.d, grad.subarray(o.bo, o.end));
    const gAttn = new Float32Array(rows * m.q);
    gemmAB(gPre, w.subarray(o.wo, o.bq), gAttn, rows, m.q, m.d);

    const gQKV = new Float32Array(rows * m.w3);
    const cs = ropeTable(m, 0, seq);
    const gq = new Float32Array(rows * m.q);
    const gk = new Float64Array(rows * m.kv);
    const gv = new Float64Array(rows * m.kv);
    if (attentionBatchBackward(batchOf(m, batch, seq), qkv, gAttn, packStats(rowMax, rowInv, seq), gq, gk, gv)) {
      for (let b = 0; b < batch; b++) {
        const r0 = b * seq;
        storeQKVGrad(m, gQKV, r0, seq, gq.subarray(r0 * m.q), gk.subarray(r0 * m.kv), gv.subarray(r0 * m.kv), cs);
      }
    } else {
      headsBackward(m, qkv, gAttn, batch, seq, rowMax, rowInv, gQKV, cs);
    }

    // Wq, Wk, Wv and their biases are contiguous: one product each for the weights, the biases and the input.
    gemmAtB(gQKV, x, grad.subarray(o.wq, o.wo), m.w3, m.d, rows);
    sumRows(gQKV, rows, m.w3, grad.subarray(o.bq, o.bo));
    const gradIn = new Float32Array(rows * m.d);
    gemmAB(gQKV, w.subarray(o.wq, o.wo), gradIn, rows, m.d, m.w3);
    return { gradInput: new Tensor(gradIn, cache.input.shape), gradWeights: grad };
  },
};

/** The kernels' description of a batch of this layer's heads. */
function batchOf(m: Dims, batch: number, seq: number): AttentionBatch {
  return { batch, seq, hd: m.hd, heads: m.heads, kvHeads: m.kvHeads, causal: m.causal, scale: m.scale };
}

/** The kernels' statistics (per head: seq maxima, then seq values of 1/Σe, float32) into the cache's arrays. */
function unpackStats(stats: Float32Array, seq: number, rowMax: Float32Array, rowInv: Float64Array): void {
  for (let t = 0; t < rowMax.length / seq; t++) {
    rowMax.set(stats.subarray(2 * seq * t, 2 * seq * t + seq), seq * t);
    rowInv.set(stats.subarray(2 * seq * t + seq, 2 * seq * (t + 1)), seq * t);
  }
}

/** The inverse of unpackStats (1/Σe came from float32, so it goes back exactly). */
function packStats(rowMax: Float32Array, rowInv: Float64Array, seq: number): Float32Array {
  const stats = new Float32Array(2 * rowMax.length);
  for (let t = 0; t < rowMax.length / seq; t++) {
    stats.set(rowMax.subarray(seq * t, seq * (t + 1)), 2 * seq * t);
    stats.set(rowInv.subarray(seq * t, seq * (t + 1)), 2 * seq * t + seq);
  }
  return stats;
}

/** The reference forward over every head (headForward each), when the kernels do not run. */
function headsForward(m: Dims, qkv: Float32Array, batch: number, seq: number, attn: Float32Array, rowMax: Float32Array, rowInv: Float64Array): void {
  const ws = forwardWorkspace(m, seq, seq);
  for (let b = 0; b < batch; b++) {
    const r0 = b * seq;
    for (let g = 0; g < m.kvHeads; g++) {
      gatherCols(qkv, r0 * m.w3 + m.q + g * m.hd, m.w3, seq, m.hd, ws.kh);
      gatherCols(qkv, r0 * m.w3 + m.q + m.kv + g * m.hd, m.w3, seq, m.hd, ws.vh);
      for (let h = g * m.group; h < (g + 1) * m.group; h++) {
        gatherCols(qkv, r0 * m.w3 + h * m.hd, m.w3, seq, m.hd, ws.qh);
        headForward(m, ws, seq, 0, ws.kh, ws.vh, seq, m.causal, { max: rowMax, inv: rowInv, off: (b * m.heads + h) * seq });
        scatterCols(ws.oh, seq, m.hd, attn, r0 * m.q + h * m.hd, m.q);
      }
    }
  }
}

/** The reference backward over every head (headBackward each) into gQKV, when the kernels do not run. */
function headsBackward(m: Dims, qkv: Float32Array, gAttn: Float32Array, batch: number, seq: number, rowMax: Float32Array, rowInv: Float64Array, gQKV: Float32Array, cs: Float64Array | null): void {
  const gQ = new Float64Array(seq * m.q);
  const gK = new Float64Array(seq * m.kv);
  const gV = new Float64Array(seq * m.kv);
  const ws = backwardWorkspace(m, seq);
  for (let b = 0; b < batch; b++) {
    const r0 = b * seq;
    gK.fill(0);
    gV.fill(0);
    for (let g = 0; g < m.kvHeads; g++) {
      gatherCols(qkv, r0 * m.w3 + m.q + g * m.hd, m.w3, seq, m.hd, ws.kh);
      gatherCols(qkv, r0 * m.w3 + m.q + m.kv + g * m.hd, m.w3, seq, m.hd, ws.vh);
      for (let h = g * m.group; h < (g + 1) * m.group; h++) {
        gatherCols(qkv, r0 * m.w3 + h * m.hd, m.w3, seq, m.hd, ws.qh);
        gatherCols(gAttn, r0 * m.q + h * m.hd, m.q, seq, m.hd, ws.dOh);
        headBackward(m, ws, seq, { max: rowMax, inv: rowInv, off: (b * m.heads + h) * seq }, gQ, h * m.hd, m.q, gK, gV, g * m.hd, m.kv);
      }
    }
    storeQKVGrad(m, gQKV, r0, seq, gQ, gK, gV, cs);
  }
}

/** Sequence layout of an input: [batch, seq, d_model], or [batch, seq·d_model] flattened per sample. */
function layoutOf(layer: Layer, input: Tensor, m: Dims, checkSeqLength: boolean): { batch: number; seq: number } {
  const batch = input.batch;
  const per = input.rowSize;
  const seqLength = layer.config.seqLength || 0;
  const shaped = input.shape.length === 3 && input.shape[2] === m.d;
  const fail = (expected: string): never => {
    throw new ShapeError(
      `${layer.kind.name} at ${coordText(layer)}: expected ${expected}, got input of shape [${input.shape.join(', ')}]`,
    );
  };
  if (per === 0 || per % m.d !== 0) fail(`[batch, seq, ${m.d}] or a multiple of d_model = ${m.d} values per sample`);
  const seq = per / m.d;
  // A [batch, seq, d_model] input carries its own length (prompts shorter than seq_length); a flat one must match it.
  if (checkSeqLength && !shaped && seqLength > 0 && seq !== seqLength) {
    fail(`seq_length × d_model = ${seqLength * m.d} values per sample (or [batch, seq, ${m.d}])`);
  }
  return { batch, seq };
}

/** [rows, q + 2·kv] = x·[Wq; Wk; Wv]ᵀ + [bq; bk; bv]. */
function project(x: Float32Array, w: Float32Array, rows: number, m: Dims): Float32Array {
  const o = offsets(m);
  const qkv = new Float32Array(rows * m.w3);
  gemmABt(x, w.subarray(o.wq, o.wo), qkv, rows, m.w3, m.d, w.subarray(o.bq, o.bo));
  return qkv;
}

/** Hugging Face's rope_type "linear" (positions / factor) or "llama3" (frequency bands scaled by wavelength). */
export type RopeScaling =
  | { type: 'linear'; factor: number }
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositions: number };

export const ROPE_SCALING_TYPES = ['linear', 'llama3'] as const;

function ropeScalingOf(c: Layer['config']): RopeScaling | undefined {
  if (c.ropeScaling === undefined) return undefined;
  if (c.ropeScaling === 'linear') return { type: 'linear', factor: c.ropeScalingFactor! };
  return {
    type: 'llama3', factor: c.ropeScalingFactor!, lowFreqFactor: c.ropeLowFreqFactor!,
    highFreqFactor: c.ropeHighFreqFactor!, originalMaxPositions: c.ropeOriginalMaxPositions!,
  };
}

/**
 * θ^(2i/head_dim) for i < head_dim/2: 1 / inv_freq, the angle of pair i at position p being p / divisor.
 * Scaled as transformers' rope_type "linear" (inv_freq / factor) or "llama3": wavelengths 2π/inv_freq
 * longer than original_max_position_embeddings / low_freq_factor are divided by factor, shorter than
 * original_max_position_embeddings / high_freq_factor kept, and those between blended by
 * s = (original_max_position_embeddings / wavelength − low_freq_factor) / (high_freq_factor − low_freq_factor)
 * as (1 − s)·inv_freq/factor + s·inv_freq. Computed in float64.
 */
export function ropeDivisors(headDim: number, theta: number, scaling?: RopeScaling): Float64Array {
  const half = headDim / 2;
  const out = new Float64Array(half);
  for (let i = 0; i < half; i++) out[i] = Math.pow(theta, (2 * i) / headDim);
  if (scaling?.type === 'linear') {
    for (let i = 0; i < half; i++) out[i] *= scaling.factor;
  } else if (scaling?.type === 'llama3') {
    const { factor, lowFreqFactor: low, highFreqFactor: high, originalMaxPositions: context } = scaling;
    const lowFreqWavelength = context / low;
    const highFreqWavelength = context / high;
    for (let i = 0; i < half; i++) {
      const invFreq = 1 / out[i];
      const wavelength = (2 * Math.PI) / invFreq;
      if (wavelength > lowFreqWavelength) out[i] = 1 / (invFreq / factor);
      else if (wavelength >= highFreqWavelength) {
        const smooth = (context / wavelength - low) / (high - low);
        out[i] = 1 / ((1 - smooth) * (invFreq / factor) + smooth * invFreq);
      }
    }
  }
  return out;
}

/** Checks the rope_scaling_* fields: all of the type's, none without a type, none when RoPE is off. */
function configureRopeScaling(c: Layer['config'], path: string): void {
  const fields = [
    ['rope_scaling_factor', c.ropeScalingFactor],
    ['rope_low_freq_factor', c.ropeLowFreqFactor],
    ['rope_high_freq_factor', c.ropeHighFreqFactor],
    ['rope_original_max_position_embeddings', c.ropeOriginalMaxPositions],
  ] as const;
  if (c.ropeScaling === undefined || c.ropeScaling === '') {
    delete c.ropeScaling;
    const stray = fields.find(([, v]) => v !== undefined);
    if (stray) throw SpecError.at(`${path}.${stray[0]}`, 'given without rope_scaling_type');
    return;
  }
  if (!(ROPE_SCALING_TYPES as readonly string[]).includes(c.ropeScaling)) {
    throw new SpecError(`${path}.rope_scaling_type`, `one of ${ROPE_SCALING_TYPES.join(', ')}`, c.ropeScaling);
  }
  if (c.ropeFreqBase! <= 0) throw SpecError.at(`${path}.rope_scaling_type`, 'RoPE is off (rope_freq_base ≤ 0), so there is nothing to scale');
  const needed = c.ropeScaling === 'linear' ? fields.slice(0, 1) : fields;
  for (const [name, v] of fields) {
    if (!needed.some(([n]) => n === name) && v !== undefined) throw SpecError.at(`${path}.${name}`, `not used by rope_scaling_type "${c.ropeScaling}"`);
  }
  for (const [name, v] of needed) {
    if (v === undefined || !(v > 0)) throw new SpecError(`${path}.${name}`, `a positive number (rope_scaling_type "${c.ropeScaling}" needs it)`, v);
  }
  if (c.ropeScaling === 'llama3' && !(c.ropeHighFreqFactor! > c.ropeLowFreqFactor!)) {
    throw new SpecError(`${path}.rope_high_freq_factor`, `a number above rope_low_freq_factor (${c.ropeLowFreqFactor})`, c.ropeHighFreqFactor);
  }
}

/** cos, sin of pos / divisor[i] for positions pos0..pos0+n−1 and i < head_dim/2: [n][half][2]. */
function ropeTable(m: Dims, pos0: number, n: number): Float64Array | null {
  const divisors = m.ropeDivisors;
  if (!divisors) return null;
  const half = m.hd / 2;
  const t = new Float64Array(n * half * 2);
  for (let p = 0; p < n; p++) {
    for (let i = 0; i < half; i++) {
      const angle = (pos0 + p) / divisors[i];
      t[(p * half + i) * 2] = Math.cos(angle);
      t[(p * half + i) * 2 + 1] = Math.sin(angle);
    }
  }
  return t;
}

/** Rotates the Q and K parts of fused rows r0..r0+n−1 (table row p0 + r for row r0 + r): pairs (i, i + half) per head. */
function applyRope(qkv: Float32Array, r0: number, n: number, p0: number, m: Dims, cs: Float64Array | null): void {
  if (!cs) return;
  const half = m.hd / 2;
  const heads = m.heads + m.kvHeads; // Q heads then K heads, adjacent in a fused row
  for (let r = 0; r < n; r++) {
    const row = (r0 + r) * m.w3;
    const t = (p0 + r) * half * 2;
    for (let h = 0; h < heads; h++) {
      const base = row + h * m.hd;
      for (let i = 0; i < half; i++) {
        const c = cs[t + 2 * i];
        const s = cs[t + 2 * i + 1];
        const a = qkv[base + i];
        const b = qkv[base + i + half];
        qkv[base + i] = a * c - b * s;
        qkv[base + i + half] = a * s + b * c;
      }
    }
  }
}

/** Query rows per block: a causal block only computes scores against the keys its last row can see. */
const BLOCK = 64;

/** Scratch buffers own their memory (the kernels' `out` parameters want a plain ArrayBuffer). */
type F32 = Float32Array<ArrayBuffer>;

/** Contiguous per-head buffers and scratch, allocated once per call. */
interface ForwardWorkspace {
  qh: F32;
  kh: F32;
  vh: F32;
  oh: F32;
  /** [BLOCK, nK] scores, then probabilities. */
  s: F32;
  /** [nK] exponentials of one row. */
  e: Float64Array;
  /** [hd, nK]: a block's values transposed for the reference GEMM. */
  vT: F32;
}

/** `ownKV` false: keys and values come from elsewhere (the KV cache). */
function forwardWorkspace(m: Dims, nQ: number, nK: number, ownKV = true): ForwardWorkspace {
  const kvSize = ownKV ? nK * m.hd : 0;
  return {
    qh: new Float32Array(nQ * m.hd),
    kh: new Float32Array(kvSize),
    vh: new Float32Array(kvSize),
    oh: new Float32Array(nQ * m.hd),
    s: new Float32Array(Math.min(BLOCK, nQ) * nK),
    e: new Float64Array(nK),
    vT: new Float32Array(m.hd * nK),
  };
}

/** dst[r·width + c] = src[off + r·stride + c]: one head's columns of strided rows, made contiguous. */
function gatherCols(src: Float32Array, off: number, stride: number, rows: number, width: number, dst: Float32Array): void {
  for (let r = 0; r < rows; r++) {
    const from = off + r * stride;
    dst.set(src.subarray(from, from + width), r * width);
  }
}

/** The inverse of gatherCols. */
function scatterCols(src: Float32Array, rows: number, width: number, dst: Float32Array, off: number, stride: number): void {
  for (let r = 0; r < rows; r++) dst.set(src.subarray(r * width, (r + 1) * width), off + r * stride);
}

/**
 * One head: ws.oh [nQ, hd] = softmax(ws.qh·khᵀ·scale)·vh over nK keys, query i at absolute position
 * qPos0 + i (causal: it sees keys 0..qPos0+i); `stats` receives each row's max and 1/Σexp.
 * Masked entries are exact zeros, so the result does not depend on how rows are grouped in blocks —
 * which makes cached decoding reproduce the full forward bit for bit.
 */
function headForward(
  m: Dims, ws: ForwardWorkspace, nQ: number, qPos0: number, kh: Float32Array, vh: Float32Array, nK: number,
  causal: boolean, stats: AttentionRowStats | null,
): void {
  const { hd, scale } = m;
  if (attentionForward(nQ, nK, hd, ws.qh, kh, vh, ws.oh, causal, qPos0, scale, stats)) return;
  const e = ws.e;
  for (let i0 = 0; i0 < nQ; i0 += BLOCK) {
    const rows = Math.min(BLOCK, nQ - i0);
    const kN = causal ? Math.min(nK, qPos0 + i0 + rows) : nK;
    const s = ws.s.subarray(0, rows * kN);
    gemmABtRef(ws.qh.subarray(i0 * hd, (i0 + rows) * hd), kh.subarray(0, kN * hd), s, rows, kN, hd);
    for (let r = 0; r < rows; r++) {
      const base = r * kN;
      const visible = causal ? Math.min(kN, qPos0 + i0 + r + 1) : kN;
      let max = -Infinity;
      for (let j = 0; j < visible; j++) if (s[base + j] > max) max = s[base + j];
      let sum = 0;
      for (let j = 0; j < visible; j++) {
        e[j] = Math.exp((s[base + j] - max) * scale);
        sum += e[j];
      }
      const inv = 1 / sum;
      for (let j = 0; j < visible; j++) s[base + j] = e[j] * inv;
      s.fill(0, base + visible, base + kN);
      if (stats) {
        stats.max[stats.off + i0 + r] = max;
        stats.inv[stats.off + i0 + r] = inv;
      }
    }
    refAB(s, vh.subarray(0, kN * hd), ws.oh.subarray(i0 * hd, (i0 + rows) * hd), rows, hd, kN, ws.vT);
  }
}

interface BackwardWorkspace {
  /** One head's Q, K (after RoPE), V and dLoss/dOutput, [seq, hd] each. */
  qh: F32;
  kh: F32;
  vh: F32;
  dOh: F32;
  /** [BLOCK, nK]: the probabilities of one block; its dP, then dS. */
  p: F32;
  ds: F32;
  /** [max(BLOCK, nK), hd] products before they are added into the double accumulators. */
  tmp: F32;
  /** Transposed operands of the reference GEMM: [nK, BLOCK] (dS, P) and [hd, nK] (K, Q, dO). */
  aT: F32;
  bT: F32;
}

function backwardWorkspace(m: Dims, seq: number): BackwardWorkspace {
  const block = Math.min(BLOCK, seq);
  return {
    qh: new Float32Array(seq * m.hd),
    kh: new Float32Array(seq * m.hd),
    vh: new Float32Array(seq * m.hd),
    dOh: new Float32Array(seq * m.hd),
    p: new Float32Array(block * seq),
    ds: new Float32Array(block * seq),
    tmp: new Float32Array(seq * m.hd),
    aT: new Float32Array(seq * block),
    bT: new Float32Array(m.hd * seq),
  };
}

/**
 * Gradients of one head (ws.qh, ws.kh, ws.vh: its Q after RoPE, K after RoPE, V; ws.dOh: dLoss/dOutput)
 * added into double accumulators, block by block in a fixed order. The probabilities are recomputed from
 * the forward's row statistics (the same values), then dP = dO·Vᵀ, dS = P ⊙ (dP − Σⱼ P·dP)·scale,
 * dQ = dS·K, dK += dSᵀ·Q, dV += Pᵀ·dO (the heads of a GQA group add into their shared K/V head).
 */
function headBackward(
  m: Dims, ws: BackwardWorkspace, seq: number, stats: AttentionRowStats,
  gQ: Float64Array, qCol: number, qStride: number, gK: Float64Array, gV: Float64Array, kvCol: number, kvStride: number,
): void {
  const { hd, scale } = m;
  for (let i0 = 0; i0 < seq; i0 += BLOCK) {
    const rows = Math.min(BLOCK, seq - i0);
    const kN = m.causal ? i0 + rows : seq;
    const p = ws.p.subarray(0, rows * kN);
    gemmABtRef(ws.qh.subarray(i0 * hd, (i0 + rows) * hd), ws.kh.subarray(0, kN * hd), p, rows, kN, hd);
    for (let r = 0; r < rows; r++) {
      const base = r * kN;
      const visible = m.causal ? i0 + r + 1 : kN;
      const max = stats.max[stats.off + i0 + r];
      const inv = stats.inv[stats.off + i0 + r];
      for (let j = 0; j < visible; j++) p[base + j] = Math.exp((p[base + j] - max) * scale) * inv;
      p.fill(0, base + visible, base + kN);
    }
    const dOb = ws.dOh.subarray(i0 * hd, (i0 + rows) * hd);
    const ds = ws.ds.subarray(0, rows * kN);
    gemmABtRef(dOb, ws.vh.subarray(0, kN * hd), ds, rows, kN, hd);
    for (let r = 0; r < rows; r++) {
      const base = r * kN;
      let rowDot = 0;
      for (let j = 0; j < kN; j++) rowDot += p[base + j] * ds[base + j];
      for (let j = 0; j < kN; j++) ds[base + j] = p[base + j] * (ds[base + j] - rowDot) * scale;
    }

    const dq = ws.tmp.subarray(0, rows * hd);
    refAB(ds, ws.kh.subarray(0, kN * hd), dq, rows, hd, kN, ws.bT);
    putRows(dq, rows, hd, gQ, i0 * qStride + qCol, qStride);

    const part = ws.tmp.subarray(0, kN * hd);
    refAtB(ds, ws.qh.subarray(i0 * hd, (i0 + rows) * hd), part, kN, hd, rows, ws);
    addRows(part, kN, hd, gK, kvCol, kvStride);
    refAtB(p, dOb, part, kN, hd, rows, ws);
    addRows(part, kN, hd, gV, kvCol, kvStride);
  }
}

// The reference heads' products: the float64-accumulating TypeScript GEMM whatever their size, so a
// query's values do not depend on how many keys its block or the cache holds (decoding reproduces the
// full forward bit for bit; the size rule of kernels/backend.ts would switch on the key count).
// Transposes go into the workspace's buffers (bT: at least N·K values; aT: M·K).
function refAB(A: Float32Array, B: Float32Array, C: Float32Array, M: number, N: number, K: number, bT: F32): void {
  gemmABtRef(A, transpose(B, K, N, bT.subarray(0, N * K)), C, M, N, K);
}

function refAtB(A: Float32Array, B: Float32Array, C: Float32Array, M: number, N: number, K: number, t: { aT: F32; bT: F32 }): void {
  gemmABtRef(transpose(A, K, M, t.aT.subarray(0, M * K)), transpose(B, K, N, t.bT.subarray(0, N * K)), C, M, N, K);
}

/** dst[col + r·stride + c] = src[r·width + c]. */
function putRows(src: Float32Array, rows: number, width: number, dst: Float64Array, col: number, stride: number): void {
  for (let r = 0; r < rows; r++) {
    const at = r * stride + col;
    for (let c = 0; c < width; c++) dst[at + c] = src[r * width + c];
  }
}

/** acc[r·stride + col + c] += src[r·width + c]. */
function addRows(src: Float32Array, rows: number, width: number, acc: Float64Array, col: number, stride: number): void {
  for (let r = 0; r < rows; r++) {
    const dst = r * stride + col;
    for (let c = 0; c < width; c++) acc[dst + c] += src[r * width + c];
  }
}

/** Writes one sample's dQ, dK, dV into the fused gradient rows, undoing RoPE (rotation by −angle) on dQ and dK. */
function storeQKVGrad(
  m: Dims, gQKV: Float32Array, r0: number, seq: number,
  gQ: Float32Array | Float64Array, gK: Float64Array, gV: Float64Array, cs: Float64Array | null,
): void {
  const { hd, q, kv, w3 } = m;
  const half = hd / 2;
  for (let s = 0; s < seq; s++) {
    const row = (r0 + s) * w3;
    const t = s * half * 2;
    for (let part = 0; part < 2; part++) {
      const src = part === 0 ? gQ : gK;
      const width = part === 0 ? q : kv;
      const dst = row + (part === 0 ? 0 : q);
      const from = s * width;
      if (!cs) {
        for (let c = 0; c < width; c++) gQKV[dst + c] = src[from + c];
        continue;
      }
      for (let base = 0; base < width; base += hd) {
        for (let i = 0; i < half; i++) {
          const c = cs[t + 2 * i];
          const sn = cs[t + 2 * i + 1];
          const a = src[from + base + i];
          const bb = src[from + base + i + half];
          gQKV[dst + base + i] = a * c + bb * sn;
          gQKV[dst + base + i + half] = bb * c - a * sn;
        }
      }
    }
    for (let c = 0; c < kv; c++) gQKV[row + q + kv + c] = gV[s * kv + c];
  }
}

/** Keys (after RoPE) and values of the positions decoded so far: k, v are [batch][num_kv_heads][maxSeq][head_dim]. */
export interface KVCache {
  readonly layer: Layer;
  readonly batch: number;
  readonly maxSeq: number;
  readonly kvHeads: number;
  readonly headDim: number;
  /** Positions filled; set to 0 to start a new sequence. */
  length: number;
  readonly k: Float32Array;
  readonly v: Float32Array;
}

/** An empty KV cache for `layer` (a MultiHeadAttention layer) holding up to maxSeq positions of `batch` sequences. */
export function createKVCache(layer: Layer, maxSeq: number, batch = 1): KVCache {
  if (layer.kind !== attentionKind) throw new LoomError(`createKVCache: ${layer.kind.name} at ${coordText(layer)} is not a MultiHeadAttention layer`);
  if (!Number.isInteger(maxSeq) || maxSeq <= 0) throw new LoomError(`createKVCache: maxSeq must be a positive integer, got ${maxSeq}`);
  if (!Number.isInteger(batch) || batch <= 0) throw new LoomError(`createKVCache: batch must be a positive integer, got ${batch}`);
  const { kvHeads, hd } = dimsOf(layer);
  const size = batch * kvHeads * maxSeq * hd;
  return { layer, batch, maxSeq, kvHeads, headDim: hd, length: 0, k: new Float32Array(size), v: new Float32Array(size) };
}

/**
 * Incremental decoding: projects the n new positions of `input` ([batch, n, d_model] or [batch, n·d_model]),
 * appends their K (RoPE at their absolute positions cache.length..) and V to the cache, and attends each
 * over every cached position up to its own (always causal). Returns act(attn·Woᵀ + bo) shaped like the input;
 * decoding a sequence in any chunking gives the full causal forward's outputs bit for bit. `weights` (null:
 * the layer's active dtype) are the float32 values forward would get.
 */
export function attentionForwardCached(layer: Layer, input: Tensor, weights: Float32Array | null, cache: KVCache): Tensor {
  if (cache.layer !== layer) throw new LoomError(`attentionForwardCached: the cache belongs to another layer than ${layer.kind.name} at ${coordText(layer)}`);
  const m = dimsOf(layer);
  const { batch, seq: n } = layoutOf(layer, input, m, false);
  if (batch !== cache.batch) {
    throw new ShapeError(`${layer.kind.name} at ${coordText(layer)}: the KV cache holds ${cache.batch} sequences, got input of shape [${input.shape.join(', ')}]`);
  }
  if (cache.length + n > cache.maxSeq) {
    throw new ShapeError(`${layer.kind.name} at ${coordText(layer)}: the KV cache holds ${cache.maxSeq} positions; ${cache.length} are used and ${n} more do not fit`);
  }
  const w = weights ?? layer.weights!.getActive(layer.dtype);
  const linear: Linear = (x, rows, offset, nOut, k, out, biasOffset) =>
    gemmABt(x, w.subarray(offset, offset + nOut * k), out, rows, nOut, k, biasOffset === undefined ? null : w.subarray(biasOffset, biasOffset + nOut));
  return cachedForward(layer, input, cache, m, batch, n, linear);
}

type Linear = IncrementalContext['linear'];

/** attentionForwardCached's work, with the projections done by `linear` (float32 or packed weights). */
function cachedForward(layer: Layer, input: Tensor, cache: KVCache, m: Dims, batch: number, n: number, linear: Linear): Tensor {
  const start = cache.length;
  const o = offsets(m);
  const rows = batch * n;
  const qkv = new Float32Array(rows * m.w3);
  linear(input.data, rows, o.wq, m.w3, m.d, qkv, o.bq);
  const cs = ropeTable(m, start, n);
  for (let b = 0; b < batch; b++) applyRope(qkv, b * n, n, 0, m, cs);
  const total = start + n;
  const attn = new Float32Array(rows * m.q);
  const ws = forwardWorkspace(m, n, total, false);
  for (let b = 0; b < batch; b++) {
    for (let g = 0; g < m.kvHeads; g++) {
      const head = (b * m.kvHeads + g) * cache.maxSeq * m.hd;
      const kh = cache.k.subarray(head, head + total * m.hd);
      const vh = cache.v.subarray(head, head + total * m.hd);
      gatherCols(qkv, b * n * m.w3 + m.q + g * m.hd, m.w3, n, m.hd, kh.subarray(start * m.hd));
      gatherCols(qkv, b * n * m.w3 + m.q + m.kv + g * m.hd, m.w3, n, m.hd, vh.subarray(start * m.hd));
      for (let h = g * m.group; h < (g + 1) * m.group; h++) {
        gatherCols(qkv, b * n * m.w3 + h * m.hd, m.w3, n, m.hd, ws.qh);
        headForward(m, ws, n, start, kh, vh, total, true, null);
        scatterCols(ws.oh, n, m.hd, attn, b * n * m.q + h * m.hd, m.q);
      }
    }
  }
  cache.length = total;
  const pre = new Float32Array(rows * m.d);
  linear(attn, rows, o.wo, m.d, m.q, pre, o.bo);
  const out = new Float32Array(pre.length);
  activateInto(pre, out, layer.activation);
  return new Tensor(out, input.shape);
}

registerLayerKind(attentionKind);
