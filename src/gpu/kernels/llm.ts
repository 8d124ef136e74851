import { Activation, ALL_ACTIVATIONS, activationName } from '../../layers/activations.js';
import { FLAT_INDEX, GpuError } from '../context.js';
import { ACT_HELPERS, activationExpr } from './elementwise.js';
import { registerShaders, type ShaderSource } from './index.js';

/**
 * Kernels of GPU-resident decoding (src/gpu/llama.ts). Weight matrices are row-major [rows × k] as
 * nn.Linear stores them, in one of three formats, dequantized inside the shaders:
 *   f32   — array<vec4<f32>>, k % 4 = 0;
 *   int8  — array<u32>, four int8 quants a word (k % 4 = 0), with one f32 scale a row;
 *   q4_0  — array<u32>, per 32-weight block the 16 bytes of ggml's nibbles (byte j: quant j low,
 *           quant j + 16 high) as four words, with one f32 scale a block (the block's fp16 d, widened).
 * Per-layer vectors (norm gains, biases) live in one f32 buffer at offsets passed in the uniforms.
 */
export type GpuWeightFormat = 'f32' | 'int8' | 'q4_0';
export const GPU_WEIGHT_FORMATS: readonly GpuWeightFormat[] = ['f32', 'int8', 'q4_0'];

/**
 * What a matrix-vector kernel does with its dot products:
 *   store      — out[row] = act(dot + bias);
 *   accumulate — out[row] += act(dot + bias) (the residual stream);
 *   swiglu     — unit j computes rows j and j + pairOff (gate, up): out[j] = gate(g) · u;
 *   rope       — unit p computes rows a, a + head_dim/2 of one head of a fused [Q | K | V] projection,
 *                rotates the Q and K pairs by RoPE at the row's position, writes Q to `out` and K, V
 *                into the KV cache at that position.
 */
export type GemvEpilogue = 'store' | 'accumulate' | 'swiglu' | 'rope';

export interface GemvVariant {
  format: GpuWeightFormat;
  /** RMSNorm of the input row (gain at gainOff in the vectors buffer) folded into the product. */
  norm: boolean;
  epilogue: GemvEpilogue;
  /** Output activation (store, accumulate) or the gate's (swiglu: ReLU2 gives relu², anything else SiLU). */
  act: Activation;
  /** Threads that share one unit's dot products (a row's words are strided over them): 16 to 256, a power of two (default 32). */
  lanes?: number;
}

/** Default threads a unit (row or row pair); a workgroup of 256 threads holds 256 / lanes units. */
export const GEMV_LANES = 32;

/** Units (rows or row pairs) per workgroup of 256 threads. */
export function gemvUnits(lanes = GEMV_LANES): number {
  return 256 / lanes;
}

/**
 * Lanes for rows of k values: about two vec4 words a lane (more lanes, more rows in flight at once
 * for the memory system; fewer, less reduction), between 32 and 256.
 */
export function gemvLanesFor(k: number): number {
  return Math.min(256, Math.max(32, 2 ** Math.floor(Math.log2(Math.max(1, k / 8)))));
}

/** Uniform of the matrix-vector kernels, as 16 words. */
export interface GemvParams {
  units: number;
  k: number;
  /** Input row r starts at element xOff + r·xStride (multiples of 4). */
  xOff: number;
  xStride: number;
  outOff: number;
  outStride: number;
  biasOff: number;
  gainOff: number;
  pairOff?: number;
  eps?: number;
  heads?: number;
  kvHeads?: number;
  headDim?: number;
  maxSeq?: number;
  qStride?: number;
}

export function gemvUniformWords(p: GemvParams): { values: number[]; floats: boolean[] } {
  const values = [
    p.units, p.k, p.xOff, p.xStride, p.outOff, p.outStride, p.biasOff, p.gainOff,
    p.pairOff ?? 0, p.eps ?? 0, p.heads ?? 0, p.kvHeads ?? 0, p.headDim ?? 0, p.maxSeq ?? 0, p.qStride ?? 0, 0,
  ];
  const floats = values.map((_, i) => i === 9);
  return { values, floats };
}

const GEMV_STRUCT = `struct G {
  units: u32, k: u32, xOff: u32, xStride: u32,
  outOff: u32, outStride: u32, biasOff: u32, gainOff: u32,
  pairOff: u32, eps: f32, heads: u32, kvHeads: u32,
  headDim: u32, maxSeq: u32, qStride: u32, pad: u32,
}`;

/** Step uniform: the absolute position of the first row and the row count of this call. */
const STEP_STRUCT = `struct S { start: u32, n: u32, pad0: u32, pad1: u32 }`;

/**
 * Writes one RoPE pair of a fused QKV row: unit p of row r is head p / (head_dim/2), index i within
 * the half; Q heads go to qout (row stride cfg.qStride), K and V heads into the KV cache laid out
 * [2][kvHeads][maxSeq][head_dim] (K block, then V block) at position st.start + r.
 */
const STORE_PAIR = `
fn storePair(r: u32, p: u32, va: f32, vb: f32) {
  let half = cfg.headDim / 2u;
  let head = p / half;
  let i = p % half;
  let pos = st.start + r;
  var ra = va;
  var rb = vb;
  if (head < cfg.heads + cfg.kvHeads) {
    let cs = tab[pos * half + i];
    ra = va * cs.x - vb * cs.y;
    rb = va * cs.y + vb * cs.x;
  }
  if (head < cfg.heads) {
    let o = r * cfg.qStride + head * cfg.headDim + i;
    qout[o] = ra;
    qout[o + half] = rb;
  } else {
    let o = ((head - cfg.heads) * cfg.maxSeq + pos) * cfg.headDim + i;
    kv[o] = ra;
    kv[o + half] = rb;
  }
}`;

const Q4_HELPERS = `
fn q4lo(u: u32) -> vec4<f32> { return vec4<f32>(f32(u & 15u), f32((u >> 8u) & 15u), f32((u >> 16u) & 15u), f32((u >> 24u) & 15u)) - vec4<f32>(8.0); }
fn q4hi(u: u32) -> vec4<f32> { return vec4<f32>(f32((u >> 4u) & 15u), f32((u >> 12u) & 15u), f32((u >> 20u) & 15u), f32(u >> 28u)) - vec4<f32>(8.0); }
fn i8x4(u: u32) -> vec4<f32> { let s = i32(u); return vec4<f32>(f32(extractBits(s, 0u, 8u)), f32(extractBits(s, 8u, 8u)), f32(extractBits(s, 16u, 8u)), f32(extractBits(s, 24u, 8u))); }
`;

function gateExpr(act: Activation, v: string): string {
  return act === Activation.ReLU2 ? `select(0.0, ${v} * ${v}, ${v} > 0.0)` : `${v} * sigmoid_(${v})`;
}

function treeReduce(arrays: string[], lanes: number, index: string, lane: string, op: (a: string, b: string) => string): string[] {
  const out: string[] = [];
  for (let s = lanes / 2; s >= 1; s /= 2) {
    out.push(`  if (${lane} < ${s}u) { ${arrays.map((a) => `${a}[${index}] = ${op(`${a}[${index}]`, `${a}[${index} + ${s}u]`)};`).join(' ')} }`);
    out.push(`  workgroupBarrier();`);
  }
  return out;
}

/**
 * Matrix-vector products for one token (or a batch of rows: workgroup y is the row). `lanes`
 * threads share a row: each sums a strided run of the row's words, then a tree in workgroup memory
 * adds the partial sums (fixed order). With `norm`, the kernel first reduces Σx² over the whole input
 * row and multiplies the dot product of W and x ⊙ gain by 1/sqrt(mean + eps): RMSNorm without a pass.
 */
export function gemvWgsl(v: GemvVariant): string {
  const pair = v.epilogue === 'swiglu' || v.epilogue === 'rope';
  const LANES = v.lanes ?? GEMV_LANES;
  const UNITS = gemvUnits(LANES);
  if (!(LANES >= 16 && LANES <= 256 && Number.isInteger(Math.log2(LANES)))) throw new GpuError(`gemv: lanes must be a power of two from 16 to 256, got ${LANES}`);
  const lines: string[] = [ACT_HELPERS, Q4_HELPERS, GEMV_STRUCT];
  let b = 0;
  lines.push(`@group(0) @binding(${b++}) var<uniform> cfg: G;`);
  if (v.epilogue === 'rope') lines.push(STEP_STRUCT, `@group(0) @binding(${b++}) var<uniform> st: S;`);
  lines.push(`@group(0) @binding(${b++}) var<storage, read> xin: array<vec4<f32>>;`);
  lines.push(`@group(0) @binding(${b++}) var<storage, read> W: array<${v.format === 'f32' ? 'vec4<f32>' : 'u32'}>;`);
  if (v.format !== 'f32') lines.push(`@group(0) @binding(${b++}) var<storage, read> scales: array<f32>;`);
  lines.push(`@group(0) @binding(${b++}) var<storage, read> vecs: array<f32>;`);
  if (v.epilogue === 'rope') {
    lines.push(`@group(0) @binding(${b++}) var<storage, read> tab: array<vec2<f32>>;`);
    lines.push(`@group(0) @binding(${b++}) var<storage, read_write> qout: array<f32>;`);
    lines.push(`@group(0) @binding(${b++}) var<storage, read_write> kv: array<f32>;`);
    lines.push(STORE_PAIR);
  } else {
    lines.push(`@group(0) @binding(${b++}) var<storage, read_write> out: array<f32>;`);
  }
  lines.push(`var<workgroup> red0: array<f32, 256>;`);
  if (pair) lines.push(`var<workgroup> red1: array<f32, 256>;`);
  const gain = v.norm ? ` * vec4<f32>(vecs[cfg.gainOff + 4u * c], vecs[cfg.gainOff + 4u * c + 1u], vecs[cfg.gainOff + 4u * c + 2u], vecs[cfg.gainOff + 4u * c + 3u])` : '';
  lines.push(`fn xval(xb: u32, c: u32) -> vec4<f32> { return xin[xb + c]${gain}; }`);
  lines.push(`@compute @workgroup_size(256)`);
  lines.push(`fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {`);
  lines.push(`  let t = lid.x; let lane = t % ${LANES}u; let u = wid.x * ${UNITS}u + t / ${LANES}u;`);
  lines.push(`  let r = wid.y; let valid = u < cfg.units; let uu = select(0u, u, valid);`);
  lines.push(`  let xb = (cfg.xOff + r * cfg.xStride) / 4u; let k4 = cfg.k / 4u;`);
  lines.push(`  var inv = 1.0;`);
  if (v.norm) {
    lines.push(`  var ss = 0.0;`);
    lines.push(`  for (var c = t; c < k4; c += 256u) { let e = xin[xb + c]; ss += dot(e, e); }`);
    lines.push(`  red0[t] = ss;`, `  workgroupBarrier();`);
    lines.push(...treeReduce(['red0'], 256, 't', 't', (a, c) => `${a} + ${c}`));
    lines.push(`  inv = 1.0 / sqrt(red0[0] / f32(cfg.k) + cfg.eps);`, `  workgroupBarrier();`);
  }
  // Rows of the unit: a (and b for pairs).
  if (v.epilogue === 'rope') {
    lines.push(`  let half = cfg.headDim / 2u; let ra = (uu / half) * cfg.headDim + uu % half; let rb = ra + half;`);
  } else if (v.epilogue === 'swiglu') {
    lines.push(`  let ra = uu; let rb = uu + cfg.pairOff;`);
  } else {
    lines.push(`  let ra = uu;`);
  }
  lines.push(`  var acc0 = 0.0;`);
  if (pair) lines.push(`  var acc1 = 0.0;`);
  if (v.format === 'f32') {
    lines.push(`  for (var c = lane; c < k4; c += ${LANES}u) {`);
    lines.push(`    let xv = xval(xb, c);`);
    lines.push(`    acc0 += dot(W[ra * k4 + c], xv);`);
    if (pair) lines.push(`    acc1 += dot(W[rb * k4 + c], xv);`);
    lines.push(`  }`);
  } else if (v.format === 'int8') {
    lines.push(`  for (var c = lane; c < k4; c += ${LANES}u) {`);
    lines.push(`    let xv = xval(xb, c);`);
    lines.push(`    acc0 += dot(i8x4(W[ra * k4 + c]), xv);`);
    if (pair) lines.push(`    acc1 += dot(i8x4(W[rb * k4 + c]), xv);`);
    lines.push(`  }`);
  } else {
    // One word is 8 weights of a block: 4 low nibbles (x vec4 blk·8 + w), 4 high (blk·8 + 4 + w).
    lines.push(`  let k8 = cfg.k / 8u; let k32 = cfg.k / 32u;`);
    lines.push(`  for (var c = lane; c < k8; c += ${LANES}u) {`);
    lines.push(`    let blk = c >> 2u; let w = c & 3u;`);
    lines.push(`    let xl = xval(xb, blk * 8u + w); let xh = xval(xb, blk * 8u + 4u + w);`);
    lines.push(`    let wa = W[ra * k8 + c];`);
    lines.push(`    acc0 += (dot(q4lo(wa), xl) + dot(q4hi(wa), xh)) * scales[ra * k32 + blk];`);
    if (pair) {
      lines.push(`    let wb = W[rb * k8 + c];`);
      lines.push(`    acc1 += (dot(q4lo(wb), xl) + dot(q4hi(wb), xh)) * scales[rb * k32 + blk];`);
    }
    lines.push(`  }`);
  }
  lines.push(`  red0[t] = acc0;`);
  if (pair) lines.push(`  red1[t] = acc1;`);
  lines.push(`  workgroupBarrier();`);
  lines.push(...treeReduce(pair ? ['red0', 'red1'] : ['red0'], LANES, 't', 'lane', (a, c) => `${a} + ${c}`));
  lines.push(`  if (lane == 0u && valid) {`);
  const rowScale = (row: string) => (v.format === 'int8' ? ` * scales[${row}]` : '');
  lines.push(`    let va = red0[t]${rowScale('ra')} * inv + vecs[cfg.biasOff + ra];`);
  if (pair) lines.push(`    let vb = red1[t]${rowScale('rb')} * inv + vecs[cfg.biasOff + rb];`);
  const o = `cfg.outOff + r * cfg.outStride + u`;
  switch (v.epilogue) {
    case 'store':
      lines.push(`    let x = va;`, `    out[${o}] = ${activationExpr(v.act)};`);
      break;
    case 'accumulate':
      lines.push(`    let x = va;`, `    out[${o}] = out[${o}] + ${activationExpr(v.act)};`);
      break;
    case 'swiglu':
      lines.push(`    out[${o}] = ${gateExpr(v.act, 'va')} * vb;`);
      break;
    case 'rope':
      lines.push(`    storePair(r, u, va, vb);`);
      break;
  }
  lines.push(`  }`);
  lines.push(`}`);
  return lines.join('\n');
}

/**
 * Prefill's RoPE and KV append: for each of `rows` fused QKV rows (row stride w3, from a GEMM) and
 * each head pair, the same store as the gemv 'rope' epilogue.
 */
export const ROPE_APPEND_WGSL = `${GEMV_STRUCT}
${STEP_STRUCT}
@group(0) @binding(0) var<uniform> cfg: G;
@group(0) @binding(1) var<uniform> st: S;
@group(0) @binding(2) var<storage, read> qkv: array<f32>;
@group(0) @binding(3) var<storage, read> tab: array<vec2<f32>>;
@group(0) @binding(4) var<storage, read_write> qout: array<f32>;
@group(0) @binding(5) var<storage, read_write> kv: array<f32>;
${STORE_PAIR}
@compute @workgroup_size(256) fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  ${FLAT_INDEX()}
  if (i >= cfg.units * st.n) { return; }
  let r = i / cfg.units;
  let p = i % cfg.units;
  let half = cfg.headDim / 2u;
  let a = (p / half) * cfg.headDim + p % half;
  let row = cfg.xOff + r * cfg.xStride;
  storePair(r, p, qkv[row + a], qkv[row + a + half]);
}`;

/** Attention uniform: dims, the query/output row stride and 1/sqrt(head_dim). */
export function attentionUniformWords(heads: number, kvHeads: number, headDim: number, maxSeq: number, qStride: number): { values: number[]; floats: boolean[] } {
  const splits = Math.ceil(maxSeq / 256);
  return { values: [heads, kvHeads, headDim, maxSeq, heads / kvHeads, qStride, 1 / Math.sqrt(headDim), splits], floats: [false, false, false, false, false, false, true, false] };
}

/**
 * Causal attention of query rows over the KV cache: workgroup (h, r) is query head h of row r at
 * position st.start + r, seeing keys 0..that position of KV head h / group. Keys go by in chunks of
 * 256 (one a thread): raw scores q·k, the chunk's max and Σexp((s − max)·scale) by trees in workgroup
 * memory, an online rescale of the running sum and output, then each thread adds the chunk's
 * probability-weighted values for one vec4 of dimensions and a strided subset of the keys; the
 * subsets are summed in order at the end. head_dim ≤ 256, a multiple of 4.
 */
export const ATTENTION_WGSL = `
struct A { heads: u32, kvHeads: u32, headDim: u32, maxSeq: u32, group: u32, qStride: u32, scale: f32, pad: u32 }
${STEP_STRUCT}
@group(0) @binding(0) var<uniform> a: A;
@group(0) @binding(1) var<uniform> st: S;
@group(0) @binding(2) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> kv: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> out: array<vec4<f32>>;
var<workgroup> qs: array<vec4<f32>, 64>;
var<workgroup> sc: array<f32, 256>;
var<workgroup> red: array<f32, 256>;
var<workgroup> redv: array<vec4<f32>, 256>;
@compute @workgroup_size(256)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let h = wid.x; let r = wid.y; let t = lid.x;
  let hd4 = a.headDim / 4u;
  let kvh = h / a.group;
  let visible = st.start + r + 1u;
  let qBase = (r * a.qStride + h * a.headDim) / 4u;
  if (t < hd4) { qs[t] = q[qBase + t]; }
  workgroupBarrier();
  let kBase = kvh * a.maxSeq * hd4;
  let vBase = (a.kvHeads + kvh) * a.maxSeq * hd4;
  let subs = 256u / hd4;
  let d4 = t % hd4;
  let sub = t / hd4;
  var m = -3.0e38;
  var l = 0.0;
  var acc = vec4<f32>(0.0);
  for (var j0 = 0u; j0 < visible; j0 += 256u) {
    let j = j0 + t;
    var s = -3.0e38;
    if (j < visible) {
      var d = 0.0;
      for (var c = 0u; c < hd4; c++) { d += dot(qs[c], kv[kBase + j * hd4 + c]); }
      s = d;
    }
    red[t] = s;
    workgroupBarrier();
    for (var w = 128u; w > 0u; w >>= 1u) {
      if (t < w) { red[t] = max(red[t], red[t + w]); }
      workgroupBarrier();
    }
    let mNew = max(m, red[0]);
    workgroupBarrier();
    let p = select(0.0, exp((s - mNew) * a.scale), j < visible);
    sc[t] = p;
    red[t] = p;
    workgroupBarrier();
    for (var w = 128u; w > 0u; w >>= 1u) {
      if (t < w) { red[t] = red[t] + red[t + w]; }
      workgroupBarrier();
    }
    let alpha = exp((m - mNew) * a.scale);
    l = l * alpha + red[0];
    m = mNew;
    acc = acc * alpha;
    let count = min(256u, visible - j0);
    if (sub < subs) {
      for (var jj = sub; jj < count; jj += subs) { acc += sc[jj] * kv[vBase + (j0 + jj) * hd4 + d4]; }
    }
    workgroupBarrier();
  }
  redv[t] = select(vec4<f32>(0.0), acc, sub < subs);
  workgroupBarrier();
  if (t < hd4) {
    var o = vec4<f32>(0.0);
    for (var s2 = 0u; s2 < subs; s2++) { o += redv[s2 * hd4 + t]; }
    out[qBase + t] = o / l;
  }
}`;

/** Keys one split-attention workgroup covers. */
export const ATTENTION_SPLIT = 256;

/**
 * Long-context decoding, first half (split-K): workgroup (h, s) takes keys [256·s, 256·s + 256) of the
 * one query row and leaves its chunk's max raw score, Σexp((score − max)·scale) and the unnormalized
 * value sums; workgroups past the sequence leave an empty part.
 */
export const ATTENTION_SPLIT_WGSL = `
struct A { heads: u32, kvHeads: u32, headDim: u32, maxSeq: u32, group: u32, qStride: u32, scale: f32, splits: u32 }
${STEP_STRUCT}
@group(0) @binding(0) var<uniform> a: A;
@group(0) @binding(1) var<uniform> st: S;
@group(0) @binding(2) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> kv: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> part: array<f32>;
@group(0) @binding(5) var<storage, read_write> partAcc: array<vec4<f32>>;
var<workgroup> qs: array<vec4<f32>, 64>;
var<workgroup> sc: array<f32, 256>;
var<workgroup> red: array<f32, 256>;
var<workgroup> redv: array<vec4<f32>, 256>;
@compute @workgroup_size(256)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let h = wid.x; let s = wid.y; let t = lid.x;
  let hd4 = a.headDim / 4u;
  let visible = st.start + 1u;
  let j0 = s * 256u;
  let slot = h * a.splits + s;
  if (j0 >= visible) {
    if (t == 0u) { part[2u * slot] = -3.0e38; part[2u * slot + 1u] = 0.0; }
    return;
  }
  let kvh = h / a.group;
  if (t < hd4) { qs[t] = q[h * hd4 + t]; }
  workgroupBarrier();
  let kBase = kvh * a.maxSeq * hd4;
  let vBase = (a.kvHeads + kvh) * a.maxSeq * hd4;
  let j = j0 + t;
  var sv = -3.0e38;
  if (j < visible) {
    var d = 0.0;
    for (var c = 0u; c < hd4; c++) { d += dot(qs[c], kv[kBase + j * hd4 + c]); }
    sv = d;
  }
  red[t] = sv;
  workgroupBarrier();
  for (var w = 128u; w > 0u; w >>= 1u) {
    if (t < w) { red[t] = max(red[t], red[t + w]); }
    workgroupBarrier();
  }
  let m = red[0];
  workgroupBarrier();
  let p = select(0.0, exp((sv - m) * a.scale), j < visible);
  sc[t] = p;
  red[t] = p;
  workgroupBarrier();
  for (var w = 128u; w > 0u; w >>= 1u) {
    if (t < w) { red[t] = red[t] + red[t + w]; }
    workgroupBarrier();
  }
  let subs = 256u / hd4; let d4 = t % hd4; let sub = t / hd4;
  var acc = vec4<f32>(0.0);
  let count = min(256u, visible - j0);
  if (sub < subs) { for (var jj = sub; jj < count; jj += subs) { acc += sc[jj] * kv[vBase + (j0 + jj) * hd4 + d4]; } }
  redv[t] = select(vec4<f32>(0.0), acc, sub < subs);
  workgroupBarrier();
  if (t < hd4) {
    var o = vec4<f32>(0.0);
    for (var s2 = 0u; s2 < subs; s2++) { o += redv[s2 * hd4 + t]; }
    partAcc[slot * hd4 + t] = o;
  }
  if (t == 0u) { part[2u * slot] = m; part[2u * slot + 1u] = red[0]; }
}`;

/** Long-context decoding, second half: per head, the parts rescaled to the largest max and summed in split order. */
export const ATTENTION_COMBINE_WGSL = `
struct A { heads: u32, kvHeads: u32, headDim: u32, maxSeq: u32, group: u32, qStride: u32, scale: f32, splits: u32 }
${STEP_STRUCT}
@group(0) @binding(0) var<uniform> a: A;
@group(0) @binding(1) var<uniform> st: S;
@group(0) @binding(2) var<storage, read> part: array<f32>;
@group(0) @binding(3) var<storage, read> partAcc: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> out: array<vec4<f32>>;
@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let h = wid.x; let t = lid.x;
  let hd4 = a.headDim / 4u;
  if (t >= hd4) { return; }
  let used = (st.start + 256u) / 256u;
  var m = -3.0e38;
  for (var s = 0u; s < used; s++) { m = max(m, part[2u * (h * a.splits + s)]); }
  var l = 0.0;
  var acc = vec4<f32>(0.0);
  for (var s = 0u; s < used; s++) {
    let slot = h * a.splits + s;
    let f = exp((part[2u * slot] - m) * a.scale);
    l += f * part[2u * slot + 1u];
    acc += f * partAcc[slot * hd4 + t];
  }
  out[h * hd4 + t] = acc / l;
}`;

/** Row-wise RMSNorm for prefill: a workgroup a row, Σx² by a tree; y = x · inv · gain (gain in the vectors buffer). */
export const NORM_ROWS_WGSL = `
struct N { k: u32, gainOff: u32, eps: f32, pad: u32 }
@group(0) @binding(0) var<uniform> p: N;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> vecs: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
var<workgroup> red: array<f32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let t = lid.x;
  let base = wid.x * p.k;
  var ss = 0.0;
  for (var c = t; c < p.k; c += 256u) { ss += x[base + c] * x[base + c]; }
  red[t] = ss;
  workgroupBarrier();
  for (var w = 128u; w > 0u; w >>= 1u) {
    if (t < w) { red[t] = red[t] + red[t + w]; }
    workgroupBarrier();
  }
  let inv = 1.0 / sqrt(red[0] / f32(p.k) + p.eps);
  for (var c = t; c < p.k; c += 256u) { y[base + c] = x[base + c] * inv * vecs[p.gainOff + c]; }
}`;

/** hidden[r][j] = gate(gu[r][j]) · gu[r][inter + j] over rows of a [rows, 2·inter] gate/up product. */
export function swigluRowsWgsl(act: Activation): string {
  return `${ACT_HELPERS}
struct P { n: u32, inter: u32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> gu: array<f32>;
@group(0) @binding(2) var<storage, read_write> hidden: array<f32>;
@compute @workgroup_size(256) fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  ${FLAT_INDEX()}
  if (i >= p.n) { return; }
  let r = i / p.inter;
  let j = i % p.inter;
  let g = gu[r * 2u * p.inter + j];
  hidden[i] = ${gateExpr(act, 'g')} * gu[r * 2u * p.inter + p.inter + j];
}`;
}

/** x[i] += act(y[i]): a residual add into the stream. */
export function accumulateWgsl(act: Activation): string {
  return `${ACT_HELPERS}
struct P { n: u32, pad0: u32, pad1: u32, pad2: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> acc: array<f32>;
@compute @workgroup_size(256) fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  ${FLAT_INDEX()}
  if (i >= p.n) { return; }
  let x = y[i];
  acc[i] = acc[i] + ${activationExpr(act)};
}`;
}

/** Embedding rows for token ids tokens[tokOff + r] (validated in range by the caller or produced by argmax), dequantized. */
export function embeddingGatherWgsl(format: GpuWeightFormat, act: Activation): string {
  const table = format === 'f32' ? 'array<f32>' : 'array<u32>';
  let value: string;
  if (format === 'f32') value = `let x = T[id * p.d + c];`;
  else if (format === 'int8') value = `let x = f32(extractBits(i32(T[(id * p.d + c) / 4u]), 8u * (c % 4u), 8u)) * scales[id];`;
  else {
    value = `let blk = id * (p.d / 32u) + c / 32u; let j = c % 32u;
  let nib = (T[blk * 4u + (j % 16u) / 4u] >> (8u * (j % 4u) + select(0u, 4u, j >= 16u))) & 15u;
  let x = (f32(nib) - 8.0) * scales[blk];`;
  }
  return `${ACT_HELPERS}
struct P { n: u32, d: u32, tokOff: u32, pad: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> tokens: array<u32>;
@group(0) @binding(2) var<storage, read> T: ${table};
${format === 'f32' ? '' : '@group(0) @binding(3) var<storage, read> scales: array<f32>;'}
@group(0) @binding(${format === 'f32' ? 3 : 4}) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(256) fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  ${FLAT_INDEX()}
  if (i >= p.n) { return; }
  let r = i / p.d;
  let c = i % p.d;
  let id = tokens[p.tokOff + r];
  ${value}
  out[i] = ${activationExpr(act)};
}`;
}

/** Elements of the logits one argmax workgroup scans (4 a thread). */
export const ARGMAX_SPAN = 1024;

/**
 * First argmax stage: workgroup w scans logits [w·1024, (w+1)·1024) and writes its (value bits,
 * index) pair; ties keep the lowest index, as the CPU's first-maximum rule.
 */
export const ARGMAX_PARTIAL_WGSL = `
struct P { n: u32, off: u32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> part: array<u32>;
var<workgroup> bv: array<f32, 256>;
var<workgroup> bi: array<u32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let t = lid.x;
  var v = -3.4e38;
  var idx = 0xffffffffu;
  for (var c = 0u; c < 4u; c++) {
    let i = wid.x * ${ARGMAX_SPAN}u + c * 256u + t;
    if (i < p.n) {
      let e = logits[p.off + i];
      if (e > v || idx == 0xffffffffu) { v = e; idx = i; }
    }
  }
  bv[t] = v;
  bi[t] = idx;
  workgroupBarrier();
  for (var w = 128u; w > 0u; w >>= 1u) {
    if (t < w) {
      let ov = bv[t + w]; let oi = bi[t + w];
      if (oi != 0xffffffffu && (bi[t] == 0xffffffffu || ov > bv[t] || (ov == bv[t] && oi < bi[t]))) { bv[t] = ov; bi[t] = oi; }
    }
    workgroupBarrier();
  }
  if (t == 0u) { part[2u * wid.x] = bitcast<u32>(bv[0]); part[2u * wid.x + 1u] = bi[0]; }
}`;

/** Second argmax stage: one workgroup reduces the partial pairs and writes the token id to tokens[outOff]. */
export const ARGMAX_FINAL_WGSL = `
struct P { count: u32, outOff: u32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> part: array<u32>;
@group(0) @binding(2) var<storage, read_write> tokens: array<u32>;
var<workgroup> bv: array<f32, 256>;
var<workgroup> bi: array<u32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(local_invocation_id) lid: vec3<u32>) {
  let t = lid.x;
  var v = -3.4e38;
  var idx = 0xffffffffu;
  for (var c = t; c < p.count; c += 256u) {
    let e = bitcast<f32>(part[2u * c]); let i = part[2u * c + 1u];
    if (idx == 0xffffffffu || e > v || (e == v && i < idx)) { v = e; idx = i; }
  }
  bv[t] = v;
  bi[t] = idx;
  workgroupBarrier();
  for (var w = 128u; w > 0u; w >>= 1u) {
    if (t < w) {
      let ov = bv[t + w]; let oi = bi[t + w];
      if (oi != 0xffffffffu && (bi[t] == 0xffffffffu || ov > bv[t] || (ov == bv[t] && oi < bi[t]))) { bv[t] = ov; bi[t] = oi; }
    }
    workgroupBarrier();
  }
  if (t == 0u) { tokens[p.outOff] = bi[0]; }
}`;

/** Checks the shapes the decode kernels assume. */
export function checkDecodeShapes(what: string, dims: Record<string, number>, headDim: number): void {
  for (const [name, v] of Object.entries(dims)) {
    if (v % 4 !== 0) throw new GpuError(`${what}: ${name} = ${v} is not a multiple of 4, which the GPU decode kernels need`);
  }
  if (headDim > 256) throw new GpuError(`${what}: head_dim = ${headDim} is above the GPU attention kernel's 256`);
}

registerShaders((): ShaderSource[] => {
  const out: ShaderSource[] = [];
  for (const format of GPU_WEIGHT_FORMATS) {
    for (const epilogue of ['store', 'accumulate', 'swiglu', 'rope'] as const) {
      for (const norm of [false, true]) {
        const acts = epilogue === 'swiglu' ? [Activation.Silu, Activation.ReLU2] : epilogue === 'rope' ? [Activation.Linear] : ALL_ACTIVATIONS;
        for (const act of acts) {
          out.push({ name: `gemv ${format} ${epilogue}${norm ? ' norm' : ''} ${activationName(act)}`, code: gemvWgsl({ format, norm, epilogue, act }) });
        }
      }
    }
    out.push({ name: `embedding gather ${format}`, code: embeddingGatherWgsl(format, Activation.Linear) });
    for (const lanes of [16, 64, 128, 256]) {
      for (const epilogue of ['store', 'accumulate', 'swiglu', 'rope'] as const) {
        out.push({ name: `gemv ${format} ${epilogue} lanes ${lanes}`, code: gemvWgsl({ format, norm: epilogue !== 'accumulate', epilogue, act: epilogue === 'swiglu' ? Activation.Silu : Activation.Linear, lanes }) });
      }
    }
  }
  out.push({ name: 'rope append rows', code: ROPE_APPEND_WGSL }, { name: 'attention decode/prefill', code: ATTENTION_WGSL });
  out.push({ name: 'attention split', code: ATTENTION_SPLIT_WGSL }, { name: 'attention combine', code: ATTENTION_COMBINE_WGSL });
  out.push({ name: 'norm rows', code: NORM_ROWS_WGSL }, { name: 'argmax partial', code: ARGMAX_PARTIAL_WGSL }, { name: 'argmax final', code: ARGMAX_FINAL_WGSL });
  for (const act of [Activation.Silu, Activation.ReLU2]) out.push({ name: `swiglu rows ${activationName(act)}`, code: swigluRowsWgsl(act) });
  for (const act of ALL_ACTIVATIONS) out.push({ name: `accumulate ${activationName(act)}`, code: accumulateWgsl(act) });
  return out;
});
