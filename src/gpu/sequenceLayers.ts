import { ShapeError } from '../core/errors.js';
import { Activation } from '../layers/activations.js';
import { DEFAULT_ROPE_FREQ_BASE, ropeDivisors, type RopeScaling } from '../layers/attention.js';
import { coordText, type Layer } from '../layers/layer.js';
import { GpuError, groups1d, type GpuArray, type GpuContext } from './context.js';
import { activate, activateBackward, channelSums } from './kernels/elementwise.js';
import { gemm } from './kernels/gemm.js';
import { accumulateWgsl, swigluRowsWgsl } from './kernels/llm.js';
import {
  ATTENTION_TRAIN_DKV_WGSL, ATTENTION_TRAIN_DQ_WGSL, ATTENTION_TRAIN_FORWARD_WGSL, attentionDims, COL_SUMS_WGSL, EMBEDDING_BACKWARD_WGSL, EMBEDDING_LINKS_WGSL,
  EMBEDDING_FORWARD_WGSL, FILL_WGSL, LSTM_BACK_STEP_WGSL, LSTM_STEP_WGSL, RNN_BACK_STEP_WGSL, RNN_STEP_WGSL, ropeRowsWgsl, SHIFT_ROWS_WGSL,
  swigluBackwardWgsl,
} from './kernels/sequence.js';
import { registerGpuLayerKind, sizeOf, type Arena, type GpuTensor } from './layers.js';

/** GPU twins of Embedding, SwiGLU, MultiHeadAttention, RNN and LSTM (forward and backward), for GpuNetwork and training. */

function fill(ctx: GpuContext, out: GpuArray, n: number, value = 0, off = 0): void {
  ctx.dispatch(FILL_WGSL, [ctx.uniform([n, off, value, 0], [false, false, true, false]), out], groups1d(n));
}

function colSums(ctx: GpuContext, data: GpuArray, out: GpuArray, rows: number, cols: number, inOff: number, outOff: number): void {
  ctx.dispatch(COL_SUMS_WGSL, [ctx.uniform([rows, cols, inOff, outOff]), data, out], [Math.ceil(cols / 64)]);
}

registerGpuLayerKind('Embedding', {
  forward(arena, layer, input, weights) {
    const ctx = arena.ctx;
    const dim = layer.config.embeddingDim!;
    const n = sizeOf(input.shape);
    const pre = arena.alloc(n * dim);
    ctx.dispatch(EMBEDDING_FORWARD_WGSL, [ctx.uniform([n * dim, dim, layer.config.vocabSize!, 0]), input.data, weights!, pre], groups1d(n * dim));
    const shape = input.shape.length === 0 ? [dim] : [...input.shape, dim];
    if (layer.activation === Activation.Linear) return { output: { data: pre, shape }, cache: { input, batch: n } };
    const out = arena.alloc(n * dim);
    activate(ctx, layer.activation, pre, out, n * dim);
    return { output: { data: out, shape }, cache: { input, pre, batch: n } };
  },
  backward(arena, layer, gradOutput, cache, _weights, gradWeights, needInputGrad) {
    const ctx = arena.ctx;
    const dim = layer.config.embeddingDim!;
    const vocab = layer.config.vocabSize!;
    const n = cache.batch;
    let gy = gradOutput.data;
    if (cache.pre) {
      gy = arena.alloc(n * dim);
      activateBackward(ctx, layer.activation, gradOutput.data, cache.pre, gy, n * dim);
    }
    fill(ctx, gradWeights!, vocab * dim);
    const links = arena.alloc(2 * n);
    ctx.dispatch(EMBEDDING_LINKS_WGSL, [ctx.uniform([n]), cache.input.data, links], groups1d(n));
    ctx.dispatch(EMBEDDING_BACKWARD_WGSL, [ctx.uniform([n * dim, dim, n, vocab]), cache.input.data, links, gy, gradWeights!], groups1d(n * dim));
    if (!needInputGrad) return { gradInput: null };
    // Token ids are not differentiable: a zero gradient, as on the CPU.
    const gx = arena.alloc(n);
    fill(ctx, gx, n);
    return { gradInput: { data: gx, shape: cache.input.shape } };
  },
});

function gateOf(layer: Layer): Activation {
  return layer.activation === Activation.ReLU2 ? Activation.ReLU2 : Activation.Silu;
}

registerGpuLayerKind('SwiGLU', {
  forward(arena, layer, input, w) {
    const ctx = arena.ctx;
    const { inputHeight: nIn = 0, outputHeight: inter = 0 } = layer.config;
    const size = sizeOf(input.shape);
    if (size % nIn !== 0) throw new ShapeError(`SwiGLU at ${coordText(layer)}: expected rows of ${nIn} values (input_height), got input of shape [${input.shape.join(', ')}]`);
    const rows = size / nIn;
    const n = nIn * inter;
    const gu = arena.alloc(rows * 2 * inter);
    gemm(ctx, input.data, w!, gu, { M: rows, N: 2 * inter, K: nIn, transB: true, bias: w, offBias: 3 * n });
    const hidden = arena.alloc(rows * inter);
    ctx.dispatch(swigluRowsWgsl(gateOf(layer)), [ctx.uniform([rows * inter, inter]), gu, hidden], groups1d(rows * inter));
    const out = arena.alloc(rows * nIn);
    gemm(ctx, hidden, w!, out, { M: rows, N: nIn, K: inter, transB: true, offB: 2 * n, bias: w, offBias: 3 * n + 2 * inter });
    return { output: { data: out, shape: input.shape }, cache: { input, pre: gu, extra: [hidden], batch: rows } };
  },
  backward(arena, layer, gradOutput, cache, w, gw, needInputGrad) {
    const ctx = arena.ctx;
    const { inputHeight: nIn = 0, outputHeight: inter = 0 } = layer.config;
    const rows = cache.batch;
    const n = nIn * inter;
    const gy = gradOutput.data;
    const hidden = cache.extra![0];
    gemm(ctx, gy, hidden, gw!, { M: nIn, N: inter, K: rows, transA: true, offC: 2 * n });
    channelSums(ctx, gy, gw!, rows, nIn, 1, 3 * n + 2 * inter);
    const dh = arena.alloc(rows * inter);
    gemm(ctx, gy, w!, dh, { M: rows, N: inter, K: nIn, offB: 2 * n });
    const ggu = arena.alloc(rows * 2 * inter);
    ctx.dispatch(swigluBackwardWgsl(gateOf(layer)), [ctx.uniform([rows * inter, inter]), cache.pre!, dh, ggu], groups1d(rows * inter));
    gemm(ctx, ggu, cache.input.data, gw!, { M: 2 * inter, N: nIn, K: rows, transA: true });
    channelSums(ctx, ggu, gw!, rows, 2 * inter, 1, 3 * n);
    if (!needInputGrad) return { gradInput: null };
    const gx = arena.alloc(rows * nIn);
    gemm(ctx, ggu, w!, gx, { M: rows, N: nIn, K: 2 * inter });
    return { gradInput: { data: gx, shape: cache.input.shape } };
  },
});

interface AttentionShape {
  d: number;
  heads: number;
  kvHeads: number;
  hd: number;
  q: number;
  w3: number;
  batch: number;
  seq: number;
}

function attentionShape(layer: Layer, input: GpuTensor): AttentionShape {
  const c = layer.config;
  const d = c.dModel ?? 0;
  const heads = c.numHeads ?? 1;
  const kvHeads = c.numKVHeads || heads;
  const hd = c.headDim || Math.floor(d / heads);
  const size = sizeOf(input.shape);
  const batch = input.shape[0] ?? 1;
  const per = size / batch;
  const shaped = input.shape.length === 3 && input.shape[2] === d;
  const seqLength = c.seqLength || 0;
  if (per === 0 || per % d !== 0 || (!shaped && seqLength > 0 && per / d !== seqLength)) {
    throw new ShapeError(`${layer.kind.name} at ${coordText(layer)}: expected [batch, seq, ${d}], got input of shape [${input.shape.join(', ')}]`);
  }
  if (hd % 4 !== 0 || hd > 256) throw new GpuError(`${layer.kind.name} at ${coordText(layer)}: the GPU attention kernels need head_dim a multiple of 4 up to 256 (got ${hd}); run it on the CPU`);
  const q = heads * hd;
  return { d, heads, kvHeads, hd, q, w3: q + 2 * kvHeads * hd, batch, seq: per / d };
}

function ropeScalingOf(c: Layer['config']): RopeScaling | undefined {
  if (!c.ropeScaling) return undefined;
  if (c.ropeScaling === 'linear') return { type: 'linear', factor: c.ropeScalingFactor! };
  return { type: 'llama3', factor: c.ropeScalingFactor!, lowFreqFactor: c.ropeLowFreqFactor!, highFreqFactor: c.ropeHighFreqFactor!, originalMaxPositions: c.ropeOriginalMaxPositions! };
}

const ropeTables = new WeakMap<GpuContext, Map<string, GpuArray>>();

/** (cos, sin) of position / divisor for `seq` positions, computed in float64 as the CPU does; null when RoPE is off. */
function ropeTable(ctx: GpuContext, layer: Layer, hd: number, seq: number): GpuArray | null {
  const base = layer.config.ropeFreqBase ?? DEFAULT_ROPE_FREQ_BASE;
  if (!(base > 0)) return null;
  const scaling = ropeScalingOf(layer.config);
  const key = `${hd}:${base}:${JSON.stringify(scaling ?? null)}:${seq}`;
  let tables = ropeTables.get(ctx);
  if (!tables) ropeTables.set(ctx, (tables = new Map()));
  let t = tables.get(key);
  if (!t) {
    const divisors = ropeDivisors(hd, base, scaling);
    const half = hd / 2;
    const values = new Float32Array(seq * half * 2);
    for (let p = 0; p < seq; p++) {
      for (let i = 0; i < half; i++) {
        values[(p * half + i) * 2] = Math.cos(p / divisors[i]);
        values[(p * half + i) * 2 + 1] = Math.sin(p / divisors[i]);
      }
    }
    tables.set(key, (t = ctx.upload(values)));
  }
  return t;
}

/** Offsets of the attention parameter vector: Wq, Wk, Wv (one [w3 × d] block), Wo [d × q], then the biases. */
function attentionOffsets(s: AttentionShape) {
  const wo = s.w3 * s.d;
  const bq = wo + s.d * s.q;
  return { wo, bq, bo: bq + s.w3 };
}

registerGpuLayerKind('MultiHeadAttention', {
  forward(arena, layer, input, w) {
    const ctx = arena.ctx;
    const s = attentionShape(layer, input);
    const o = attentionOffsets(s);
    const rows = s.batch * s.seq;
    const dims = attentionDims(s.heads, s.kvHeads, s.hd, s.seq, layer.config.causal === true);
    const dimsU = ctx.uniform(dims.values, dims.floats);
    const qkv = arena.alloc(rows * s.w3);
    gemm(ctx, input.data, w!, qkv, { M: rows, N: s.w3, K: s.d, transB: true, bias: w, offBias: o.bq });
    const table = ropeTable(ctx, layer, s.hd, s.seq);
    if (table) {
      const n = rows * (s.heads + s.kvHeads) * (s.hd / 2);
      ctx.dispatch(ropeRowsWgsl(false), [dimsU, ctx.uniform([n]), table, qkv], groups1d(n));
    }
    const attn = arena.alloc(rows * s.q);
    const stats = arena.alloc(2 * s.batch * s.heads * s.seq);
    ctx.dispatch(ATTENTION_TRAIN_FORWARD_WGSL, [dimsU, qkv, attn, stats], [s.heads, s.seq, s.batch]);
    const pre = arena.alloc(rows * s.d);
    gemm(ctx, attn, w!, pre, { M: rows, N: s.d, K: s.q, transB: true, offB: o.wo, bias: w, offBias: o.bo });
    let out = pre;
    if (layer.activation !== Activation.Linear) {
      out = arena.alloc(rows * s.d);
      activate(ctx, layer.activation, pre, out, rows * s.d);
    }
    return { output: { data: out, shape: input.shape }, cache: { input, pre, extra: [qkv, attn, stats], batch: s.batch, sizes: [s.seq] } };
  },
  backward(arena, layer, gradOutput, cache, w, gw, needInputGrad) {
    const ctx = arena.ctx;
    const s = attentionShape(layer, cache.input);
    const o = attentionOffsets(s);
    const rows = s.batch * s.seq;
    const [qkv, attn, stats] = cache.extra!;
    const dims = attentionDims(s.heads, s.kvHeads, s.hd, s.seq, layer.config.causal === true);
    const dimsU = ctx.uniform(dims.values, dims.floats);
    let gPre = gradOutput.data;
    if (layer.activation !== Activation.Linear) {
      gPre = arena.alloc(rows * s.d);
      activateBackward(ctx, layer.activation, gradOutput.data, cache.pre!, gPre, rows * s.d);
    }
    gemm(ctx, gPre, attn, gw!, { M: s.d, N: s.q, K: rows, transA: true, offC: o.wo });
    channelSums(ctx, gPre, gw!, rows, s.d, 1, o.bo);
    const gAttn = arena.alloc(rows * s.q);
    gemm(ctx, gPre, w!, gAttn, { M: rows, N: s.q, K: s.d, offB: o.wo });
    const gqkv = arena.alloc(rows * s.w3);
    const dsum = arena.alloc(s.batch * s.heads * s.seq);
    ctx.dispatch(ATTENTION_TRAIN_DQ_WGSL, [dimsU, qkv, attn, gAttn, stats, gqkv, dsum], [s.heads, s.seq, s.batch]);
    ctx.dispatch(ATTENTION_TRAIN_DKV_WGSL, [dimsU, qkv, gAttn, stats, dsum, gqkv], [s.kvHeads, s.seq, s.batch]);
    const table = ropeTable(ctx, layer, s.hd, s.seq);
    if (table) {
      const n = rows * (s.heads + s.kvHeads) * (s.hd / 2);
      ctx.dispatch(ropeRowsWgsl(true), [dimsU, ctx.uniform([n]), table, gqkv], groups1d(n));
    }
    gemm(ctx, gqkv, cache.input.data, gw!, { M: s.w3, N: s.d, K: rows, transA: true });
    channelSums(ctx, gqkv, gw!, rows, s.w3, 1, o.bq);
    if (!needInputGrad) return { gradInput: null };
    const gx = arena.alloc(rows * s.d);
    gemm(ctx, gqkv, w!, gx, { M: rows, N: s.d, K: s.w3 });
    return { gradInput: { data: gx, shape: cache.input.shape } };
  },
});

/** Batch and sequence length of a recurrent input, as src/layers/recurrent.ts reads them. */
function recurrentDims(layer: Layer, input: GpuTensor): { batch: number; seq: number; nIn: number; hid: number } {
  const { inputHeight: nIn = 0, outputHeight: hid = 0, seqLength } = layer.config;
  const batch = input.shape[0] ?? 1;
  const rank3 = input.shape.length === 3 && input.shape[2] === nIn;
  const seq = seqLength ?? (rank3 ? input.shape[1] : 1);
  if (sizeOf(input.shape) !== batch * seq * nIn || (rank3 && input.shape[1] !== seq)) {
    throw new ShapeError(`${layer.kind.name} at ${coordText(layer)}: expected [batch, ${seq}, ${nIn}] (seq_length × input_height per sample), got input of shape [${input.shape.join(', ')}]`);
  }
  return { batch, seq, nIn, hid };
}

/** prev[b, t] = h[b, t − 1] (zero rows at t = 0). */
function shiftRows(arena: Arena, h: GpuArray, rows: number, hid: number, seq: number): GpuArray {
  const prev = arena.alloc(rows * hid);
  arena.ctx.dispatch(SHIFT_ROWS_WGSL, [arena.ctx.uniform([rows * hid, hid, seq]), h, prev], groups1d(rows * hid));
  return prev;
}

/** RNN: the input products of all steps in one GEMM, then one dispatch per time step; backward through time one dispatch per step. */
registerGpuLayerKind('RNN', {
  forward(arena, layer, input, w) {
    const ctx = arena.ctx;
    const { batch, seq, nIn, hid } = recurrentDims(layer, input);
    const rows = batch * seq;
    const ih = hid * nIn;
    const h = arena.alloc(rows * hid);
    gemm(ctx, input.data, w!, h, { M: rows, N: hid, K: nIn, transB: true, bias: w, offBias: ih + hid * hid });
    for (let t = 0; t < seq; t++) ctx.dispatch(RNN_STEP_WGSL, [ctx.uniform([batch * hid, hid, seq, t, ih, 0, 0, 0]), w!, h], groups1d(batch * hid));
    return { output: { data: h, shape: [batch, seq, hid] }, cache: { input, pre: h, batch, sizes: [seq] } };
  },
  backward(arena, layer, gradOutput, cache, w, gw, needInputGrad) {
    const ctx = arena.ctx;
    const { batch, seq, nIn, hid } = recurrentDims(layer, cache.input);
    const rows = batch * seq;
    const ih = hid * nIn;
    const h = cache.pre!;
    const gpre = arena.alloc(rows * hid);
    for (let t = seq - 1; t >= 0; t--) {
      ctx.dispatch(RNN_BACK_STEP_WGSL, [ctx.uniform([batch * hid, hid, seq, t, ih, 0, 0, 0]), w!, h, gradOutput.data, gpre], groups1d(batch * hid));
    }
    gemm(ctx, gpre, cache.input.data, gw!, { M: hid, N: nIn, K: rows, transA: true });
    gemm(ctx, gpre, shiftRows(arena, h, rows, hid, seq), gw!, { M: hid, N: hid, K: rows, transA: true, offC: ih });
    channelSums(ctx, gpre, gw!, rows, hid, 1, ih + hid * hid);
    if (!needInputGrad) return { gradInput: null };
    const gx = arena.alloc(rows * nIn);
    gemm(ctx, gpre, w!, gx, { M: rows, N: nIn, K: hid });
    return { gradInput: { data: gx, shape: cache.input.shape } };
  },
});

/** LSTM: gate pre-activations gate-major [4][B·S][hid] from four GEMMs, then one dispatch per time step (and per step back). */
registerGpuLayerKind('LSTM', {
  forward(arena, layer, input, w) {
    const ctx = arena.ctx;
    const { batch, seq, nIn, hid } = recurrentDims(layer, input);
    const rows = batch * seq;
    const ih = hid * nIn;
    const gate = ih + hid * hid + hid;
    const gates = arena.alloc(4 * rows * hid);
    for (let g = 0; g < 4; g++) {
      gemm(ctx, input.data, w!, gates, { M: rows, N: hid, K: nIn, transB: true, offB: g * gate, bias: w, offBias: g * gate + ih + hid * hid, offC: g * rows * hid });
    }
    const c = arena.alloc(rows * hid);
    const h = arena.alloc(rows * hid);
    for (let t = 0; t < seq; t++) {
      ctx.dispatch(LSTM_STEP_WGSL, [ctx.uniform([batch * hid, hid, seq, t, gate, ih, rows, 0]), w!, gates, c, h], groups1d(batch * hid));
    }
    return { output: { data: h, shape: [batch, seq, hid] }, cache: { input, extra: [gates, c, h], batch, sizes: [seq] } };
  },
  backward(arena, layer, gradOutput, cache, w, gw, needInputGrad) {
    const ctx = arena.ctx;
    const { batch, seq, nIn, hid } = recurrentDims(layer, cache.input);
    const rows = batch * seq;
    const ih = hid * nIn;
    const gate = ih + hid * hid + hid;
    const [gates, c, h] = cache.extra!;
    const dg = arena.alloc(4 * rows * hid);
    const dc = arena.alloc(rows * hid);
    for (let t = seq - 1; t >= 0; t--) {
      ctx.dispatch(LSTM_BACK_STEP_WGSL, [ctx.uniform([batch * hid, hid, seq, t, gate, ih, rows, 0]), w!, gates, c, gradOutput.data, dg, dc], groups1d(batch * hid));
    }
    const prev = shiftRows(arena, h, rows, hid, seq);
    for (let g = 0; g < 4; g++) {
      const offA = g * rows * hid;
      gemm(ctx, dg, cache.input.data, gw!, { M: hid, N: nIn, K: rows, transA: true, offA, offC: g * gate });
      gemm(ctx, dg, prev, gw!, { M: hid, N: hid, K: rows, transA: true, offA, offC: g * gate + ih });
      colSums(ctx, dg, gw!, rows, hid, offA, g * gate + ih + hid * hid);
    }
    if (!needInputGrad) return { gradInput: null };
    const gx = arena.alloc(rows * nIn);
    const part = arena.alloc(rows * nIn);
    for (let g = 0; g < 4; g++) {
      gemm(ctx, dg, w!, g === 0 ? gx : part, { M: rows, N: nIn, K: hid, offA: g * rows * hid, offB: g * gate });
      if (g > 0) ctx.dispatch(accumulateWgsl(Activation.Linear), [ctx.uniform([rows * nIn]), part, gx], groups1d(rows * nIn));
    }
    return { gradInput: { data: gx, shape: cache.input.shape } };
  },
});
