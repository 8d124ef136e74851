import { FLAT_INDEX } from '../context.js';
import { Activation, activationName } from '../../layers/activations.js';
import { ACT_HELPERS } from './elementwise.js';
import { registerShaders, type ShaderSource } from './index.js';

/**
 * Training kernels of the sequence layers (src/gpu/sequenceLayers.ts): Embedding, SwiGLU,
 * multi-head attention (GQA, RoPE, causal) and the RNN / LSTM time steps, forward and backward.
 * Every reduction runs in a fixed order, so results do not depend on scheduling.
 */
const HEAD = `@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>`;
const INDEX = FLAT_INDEX();

export const FILL_WGSL = `
struct P { n: u32, off: u32, value: f32, pad: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(256) fn main(${HEAD}) {
  ${INDEX}
  if (i >= p.n) { return; }
  out[p.off + i] = p.value;
}`;

/** out[r][c] = table[id_r][c] for float ids; ids outside [0, vocab) or not integers give zero rows. */
export const EMBEDDING_FORWARD_WGSL = `
struct P { n: u32, dim: u32, vocab: u32, pad: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> ids: array<f32>;
@group(0) @binding(2) var<storage, read> table: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(256) fn main(${HEAD}) {
  ${INDEX}
  if (i >= p.n) { return; }
  let r = i / p.dim;
  let c = i % p.dim;
  let v = ids[r];
  var x = 0.0;
  if (v >= 0.0 && v < f32(p.vocab) && floor(v) == v) { x = table[u32(v) * p.dim + c]; }
  out[i] = x;
}`;

/**
 * The table's gradient without atomics, step one: per position p, whether p is its id's first
 * position (links[2p]) and the id's next position after p (links[2p + 1], 0xffffffff at the end):
 * O(positions²) id comparisons, none per column.
 */
export const EMBEDDING_LINKS_WGSL = `
struct P { count: u32, pad0: u32, pad1: u32, pad2: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> ids: array<f32>;
@group(0) @binding(2) var<storage, read_write> links: array<u32>;
@compute @workgroup_size(256) fn main(${HEAD}) {
  ${INDEX}
  if (i >= p.count) { return; }
  let v = ids[i];
  var first = 1u;
  for (var q = 0u; q < i; q++) { if (ids[q] == v) { first = 0u; break; } }
  var next = 0xffffffffu;
  for (var q = i + 1u; q < p.count; q++) { if (ids[q] == v) { next = q; break; } }
  links[2u * i] = first;
  links[2u * i + 1u] = next;
}`;

/**
 * Step two: thread (first position p of an id, column c) walks the id's positions in ascending order
 * (the CPU's order) and writes the column's sum into the id's row. Rows of ids that do not occur are
 * zeroed by FILL first; ids outside the vocabulary add nothing.
 */
export const EMBEDDING_BACKWARD_WGSL = `
struct P { n: u32, dim: u32, count: u32, vocab: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> ids: array<f32>;
@group(0) @binding(2) var<storage, read> links: array<u32>;
@group(0) @binding(3) var<storage, read> gy: array<f32>;
@group(0) @binding(4) var<storage, read_write> grad: array<f32>;
@compute @workgroup_size(256) fn main(${HEAD}) {
  ${INDEX}
  if (i >= p.n) { return; }
  let r = i / p.dim;
  let c = i % p.dim;
  let v = ids[r];
  if (!(v >= 0.0 && v < f32(p.vocab) && floor(v) == v) || links[2u * r] == 0u) { return; }
  var s = 0.0;
  var q = r;
  loop {
    s += gy[q * p.dim + c];
    q = links[2u * q + 1u];
    if (q == 0xffffffffu) { break; }
  }
  grad[u32(v) * p.dim + c] = s;
}`;

function gate(act: Activation, v: string): string {
  return act === Activation.ReLU2 ? `select(0.0, ${v} * ${v}, ${v} > 0.0)` : `${v} * sigmoid_(${v})`;
}

function gateDerivative(act: Activation, v: string): string {
  return act === Activation.ReLU2 ? `select(0.0, 2.0 * ${v}, ${v} > 0.0)` : `(sigmoid_(${v}) * (1.0 + ${v} * (1.0 - sigmoid_(${v}))))`;
}

/** SwiGLU's gate backward: from dHidden and the gate/up pre-activations to their gradients [rows, 2·inter]. */
export function swigluBackwardWgsl(act: Activation): string {
  return `${ACT_HELPERS}
struct P { n: u32, inter: u32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> gu: array<f32>;
@group(0) @binding(2) var<storage, read> dh: array<f32>;
@group(0) @binding(3) var<storage, read_write> ggu: array<f32>;
@compute @workgroup_size(256) fn main(${HEAD}) {
  ${INDEX}
  if (i >= p.n) { return; }
  let r = i / p.inter;
  let j = i % p.inter;
  let a = r * 2u * p.inter + j;
  let g = gu[a];
  let u = gu[a + p.inter];
  let d = dh[i];
  ggu[a] = d * u * ${gateDerivative(act, 'g')};
  ggu[a + p.inter] = d * ${gate(act, 'g')};
}`;
}

/** Attention dims: fused rows [Q | K | V] of width w3, sequence length, the causal flag and 1/sqrt(head_dim). */
export function attentionDims(heads: number, kvHeads: number, headDim: number, seq: number, causal: boolean): { values: number[]; floats: boolean[] } {
  const q = heads * headDim;
  const w3 = q + 2 * kvHeads * headDim;
  return {
    values: [heads, kvHeads, headDim, seq, heads / kvHeads, w3, causal ? 1 : 0, 1 / Math.sqrt(headDim)],
    floats: [false, false, false, false, false, false, false, true],
  };
}

const ATTN_STRUCT = `struct A { heads: u32, kvHeads: u32, headDim: u32, seq: u32, group: u32, w3: u32, causal: u32, scale: f32 }`;

/**
 * RoPE on the Q and K heads of fused rows [rows, w3] in place, row r at position r % seq, from a
 * [seq][head_dim/2] table of (cos, sin); `inverse` rotates by −angle (the gradient's way back).
 */
export function ropeRowsWgsl(inverse: boolean): string {
  return `${ATTN_STRUCT}
struct P { n: u32, pad0: u32, pad1: u32, pad2: u32 }
@group(0) @binding(0) var<uniform> a: A;
@group(0) @binding(1) var<uniform> p: P;
@group(0) @binding(2) var<storage, read> tab: array<vec2<f32>>;
@group(0) @binding(3) var<storage, read_write> qkv: array<f32>;
@compute @workgroup_size(256) fn main(${HEAD}) {
  ${INDEX}
  if (i >= p.n) { return; }
  let half = a.headDim / 2u;
  let perRow = (a.heads + a.kvHeads) * half;
  let r = i / perRow;
  let rest = i % perRow;
  let head = rest / half;
  let k = rest % half;
  let cs = tab[(r % a.seq) * half + k];
  let o = r * a.w3 + head * a.headDim + k;
  let x0 = qkv[o];
  let x1 = qkv[o + half];
  ${inverse ? 'qkv[o] = x0 * cs.x + x1 * cs.y;\n  qkv[o + half] = x1 * cs.x - x0 * cs.y;' : 'qkv[o] = x0 * cs.x - x1 * cs.y;\n  qkv[o + half] = x0 * cs.y + x1 * cs.x;'}
}`;
}

const ATTN_BINDINGS_COMMON = `${ATTN_STRUCT}
@group(0) @binding(0) var<uniform> a: A;`;

/** Tree reduction over 256 threads of `arr` with `op`, leaving the result in arr[0]. */
function tree(arr: string, op: (x: string, y: string) => string): string {
  return `for (var w = 128u; w > 0u; w >>= 1u) {
      if (t < w) { ${arr}[t] = ${op(`${arr}[t]`, `${arr}[t + w]`)}; }
      workgroupBarrier();
    }`;
}

/**
 * Forward attention of one (head h, query i, sample b) per workgroup over the fused QKV rows: keys in
 * chunks of 256 (a thread each), the chunk's max and Σexp by trees, an online rescale, and the values
 * summed per vec4 of dimensions over strided key subsets (added in order at the end). Writes the
 * output row slice and the row's softmax statistics: the largest raw score and 1/Σexp((s − max)·scale).
 */
export const ATTENTION_TRAIN_FORWARD_WGSL = `${ATTN_BINDINGS_COMMON}
@group(0) @binding(1) var<storage, read> qkv: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> stats: array<f32>;
var<workgroup> qs: array<vec4<f32>, 64>;
var<workgroup> sc: array<f32, 256>;
var<workgroup> red: array<f32, 256>;
var<workgroup> redv: array<vec4<f32>, 256>;
@compute @workgroup_size(256)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let h = wid.x; let i = wid.y; let b = wid.z; let t = lid.x;
  let hd4 = a.headDim / 4u; let w34 = a.w3 / 4u;
  let kvh = h / a.group;
  let visible = select(a.seq, i + 1u, a.causal != 0u);
  let row0 = b * a.seq;
  if (t < hd4) { qs[t] = qkv[(row0 + i) * w34 + h * hd4 + t]; }
  workgroupBarrier();
  let kCol = (a.heads + kvh) * hd4;
  let vCol = (a.heads + a.kvHeads + kvh) * hd4;
  let subs = 256u / hd4; let d4 = t % hd4; let sub = t / hd4;
  var m = -3.0e38; var l = 0.0; var acc = vec4<f32>(0.0);
  for (var j0 = 0u; j0 < visible; j0 += 256u) {
    let j = j0 + t;
    var s = -3.0e38;
    if (j < visible) {
      var d = 0.0;
      for (var c = 0u; c < hd4; c++) { d += dot(qs[c], qkv[(row0 + j) * w34 + kCol + c]); }
      s = d;
    }
    red[t] = s;
    workgroupBarrier();
    ${tree('red', (x, y) => `max(${x}, ${y})`)}
    let mNew = max(m, red[0]);
    workgroupBarrier();
    let pr = select(0.0, exp((s - mNew) * a.scale), j < visible);
    sc[t] = pr; red[t] = pr;
    workgroupBarrier();
    ${tree('red', (x, y) => `${x} + ${y}`)}
    let alpha = exp((m - mNew) * a.scale);
    l = l * alpha + red[0];
    m = mNew;
    acc = acc * alpha;
    let count = min(256u, visible - j0);
    if (sub < subs) { for (var jj = sub; jj < count; jj += subs) { acc += sc[jj] * qkv[(row0 + j0 + jj) * w34 + vCol + d4]; } }
    workgroupBarrier();
  }
  redv[t] = select(vec4<f32>(0.0), acc, sub < subs);
  workgroupBarrier();
  if (t < hd4) {
    var o = vec4<f32>(0.0);
    for (var s2 = 0u; s2 < subs; s2++) { o += redv[s2 * hd4 + t]; }
    out[((row0 + i) * a.heads * a.headDim) / 4u + h * hd4 + t] = o / l;
  }
  if (t == 0u) {
    let si = 2u * ((b * a.heads + h) * a.seq + i);
    stats[si] = m;
    stats[si + 1u] = 1.0 / l;
  }
}`;

/**
 * dQ of one (h, i, b): D = dO·O, then per key p = exp((q·k − max)·scale)·inv, dS = p·(dO·v − D)·scale
 * and dQ = Σ dS·k (rotated space; unroped afterwards). Leaves D for the dK/dV kernel.
 */
export const ATTENTION_TRAIN_DQ_WGSL = `${ATTN_BINDINGS_COMMON}
@group(0) @binding(1) var<storage, read> qkv: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> o: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> dout: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> stats: array<f32>;
@group(0) @binding(5) var<storage, read_write> gqkv: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> dsum: array<f32>;
var<workgroup> qs: array<vec4<f32>, 64>;
var<workgroup> dos: array<vec4<f32>, 64>;
var<workgroup> sc: array<f32, 256>;
var<workgroup> redv: array<vec4<f32>, 256>;
var<workgroup> dd: f32;
@compute @workgroup_size(256)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let h = wid.x; let i = wid.y; let b = wid.z; let t = lid.x;
  let hd4 = a.headDim / 4u; let w34 = a.w3 / 4u; let q4 = a.heads * hd4;
  let kvh = h / a.group;
  let visible = select(a.seq, i + 1u, a.causal != 0u);
  let row0 = b * a.seq;
  let oi = (row0 + i) * q4 + h * hd4;
  if (t < hd4) { qs[t] = qkv[(row0 + i) * w34 + h * hd4 + t]; dos[t] = dout[oi + t]; }
  workgroupBarrier();
  if (t == 0u) {
    var d = 0.0;
    for (var c = 0u; c < hd4; c++) { d += dot(dos[c], o[oi + c]); }
    dd = d;
  }
  workgroupBarrier();
  let D = dd;
  let si = (b * a.heads + h) * a.seq + i;
  let mx = stats[2u * si]; let inv = stats[2u * si + 1u];
  let kCol = (a.heads + kvh) * hd4;
  let vCol = (a.heads + a.kvHeads + kvh) * hd4;
  let subs = 256u / hd4; let d4 = t % hd4; let sub = t / hd4;
  var acc = vec4<f32>(0.0);
  for (var j0 = 0u; j0 < visible; j0 += 256u) {
    let j = j0 + t;
    var ds = 0.0;
    if (j < visible) {
      var s = 0.0; var dp = 0.0;
      for (var c = 0u; c < hd4; c++) {
        s += dot(qs[c], qkv[(row0 + j) * w34 + kCol + c]);
        dp += dot(dos[c], qkv[(row0 + j) * w34 + vCol + c]);
      }
      let pr = exp((s - mx) * a.scale) * inv;
      ds = pr * (dp - D) * a.scale;
    }
    sc[t] = ds;
    workgroupBarrier();
    let count = min(256u, visible - j0);
    if (sub < subs) { for (var jj = sub; jj < count; jj += subs) { acc += sc[jj] * qkv[(row0 + j0 + jj) * w34 + kCol + d4]; } }
    workgroupBarrier();
  }
  redv[t] = select(vec4<f32>(0.0), acc, sub < subs);
  workgroupBarrier();
  if (t < hd4) {
    var g = vec4<f32>(0.0);
    for (var s2 = 0u; s2 < subs; s2++) { g += redv[s2 * hd4 + t]; }
    gqkv[(row0 + i) * w34 + h * hd4 + t] = g;
  }
  if (t == 0u) { dsum[si] = D; }
}`;

/**
 * dK and dV of one (KV head g, key j, sample b): over the group's query heads in order and, for each,
 * the queries that see key j in chunks of 256: dK = Σ dS·q, dV = Σ p·dO.
 */
export const ATTENTION_TRAIN_DKV_WGSL = `${ATTN_BINDINGS_COMMON}
@group(0) @binding(1) var<storage, read> qkv: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> dout: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> stats: array<f32>;
@group(0) @binding(4) var<storage, read> dsum: array<f32>;
@group(0) @binding(5) var<storage, read_write> gqkv: array<vec4<f32>>;
var<workgroup> ks: array<vec4<f32>, 64>;
var<workgroup> vs: array<vec4<f32>, 64>;
var<workgroup> sds: array<f32, 256>;
var<workgroup> sp: array<f32, 256>;
var<workgroup> redk: array<vec4<f32>, 256>;
var<workgroup> redv: array<vec4<f32>, 256>;
@compute @workgroup_size(256)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let g = wid.x; let j = wid.y; let b = wid.z; let t = lid.x;
  let hd4 = a.headDim / 4u; let w34 = a.w3 / 4u; let q4 = a.heads * hd4;
  let row0 = b * a.seq;
  let kCol = (a.heads + g) * hd4;
  let vCol = (a.heads + a.kvHeads + g) * hd4;
  if (t < hd4) { ks[t] = qkv[(row0 + j) * w34 + kCol + t]; vs[t] = qkv[(row0 + j) * w34 + vCol + t]; }
  workgroupBarrier();
  let first = select(0u, j, a.causal != 0u);
  let subs = 256u / hd4; let d4 = t % hd4; let sub = t / hd4;
  var dk = vec4<f32>(0.0);
  var dv = vec4<f32>(0.0);
  for (var h = g * a.group; h < (g + 1u) * a.group; h++) {
    for (var i0 = first; i0 < a.seq; i0 += 256u) {
      let i = i0 + t;
      var ds = 0.0; var pr = 0.0;
      if (i < a.seq) {
        var s = 0.0; var dp = 0.0;
        for (var c = 0u; c < hd4; c++) {
          s += dot(qkv[(row0 + i) * w34 + h * hd4 + c], ks[c]);
          dp += dot(dout[(row0 + i) * q4 + h * hd4 + c], vs[c]);
        }
        let si = (b * a.heads + h) * a.seq + i;
        pr = exp((s - stats[2u * si]) * a.scale) * stats[2u * si + 1u];
        ds = pr * (dp - dsum[si]) * a.scale;
      }
      sds[t] = ds; sp[t] = pr;
      workgroupBarrier();
      let count = min(256u, a.seq - i0);
      if (sub < subs) {
        for (var ii = sub; ii < count; ii += subs) {
          let r = row0 + i0 + ii;
          dk += sds[ii] * qkv[r * w34 + h * hd4 + d4];
          dv += sp[ii] * dout[r * q4 + h * hd4 + d4];
        }
      }
      workgroupBarrier();
    }
  }
  redk[t] = select(vec4<f32>(0.0), dk, sub < subs);
  redv[t] = select(vec4<f32>(0.0), dv, sub < subs);
  workgroupBarrier();
  if (t < hd4) {
    var sk = vec4<f32>(0.0); var sv = vec4<f32>(0.0);
    for (var s2 = 0u; s2 < subs; s2++) { sk += redk[s2 * hd4 + t]; sv += redv[s2 * hd4 + t]; }
    gqkv[(row0 + j) * w34 + kCol + t] = sk;
    gqkv[(row0 + j) * w34 + vCol + t] = sv;
  }
}`;

/** The step and back-step kernels read one uniform layout (written by the same dispatcher). */
const RNN_STEP_PARAMS = `struct P { n: u32, hid: u32, seq: u32, t: u32, whh: u32, pad0: u32, pad1: u32, pad2: u32 }
@group(0) @binding(0) var<uniform> p: P;`;

/**
 * One RNN time step over batch-major rows [B, S, hid]: h[b,t] = tanh(pre[b,t] + h[b,t−1]·W_hhᵀ)
 * (W_hh at whh in the parameter vector); `pre` holds x·W_ihᵀ + b and is overwritten with h.
 */
export const RNN_STEP_WGSL = `${ACT_HELPERS}
${RNN_STEP_PARAMS}
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> h: array<f32>;
@compute @workgroup_size(256) fn main(${HEAD}) {
  ${INDEX}
  if (i >= p.n) { return; }
  let b = i / p.hid;
  let j = i % p.hid;
  let o = (b * p.seq + p.t) * p.hid;
  var s = h[o + j];
  if (p.t > 0u) {
    let prev = o - p.hid;
    for (var k = 0u; k < p.hid; k++) { s += h[prev + k] * w[p.whh + j * p.hid + k]; }
  }
  h[o + j] = tanh_(s);
}`;

/** RNN backward step t (descending): gPre[b,t] = (gOut[b,t] + gPre[b,t+1]·W_hh) ⊙ (1 − h[b,t]²). */
export const RNN_BACK_STEP_WGSL = `
${RNN_STEP_PARAMS}
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> h: array<f32>;
@group(0) @binding(3) var<storage, read> gout: array<f32>;
@group(0) @binding(4) var<storage, read_write> gpre: array<f32>;
@compute @workgroup_size(256) fn main(${HEAD}) {
  ${INDEX}
  if (i >= p.n) { return; }
  let b = i / p.hid;
  let j = i % p.hid;
  let o = (b * p.seq + p.t) * p.hid;
  var c = 0.0;
  if (p.t + 1u < p.seq) {
    let next = o + p.hid;
    for (var k = 0u; k < p.hid; k++) { c += gpre[next + k] * w[p.whh + k * p.hid + j]; }
  }
  let ht = h[o + j];
  gpre[o + j] = (gout[o + j] + c) * (1.0 - ht * ht);
}`;

/** prev[b,t] = h[b,t−1] (zero at t = 0): the recurrent products' inputs as one matrix. */
export const SHIFT_ROWS_WGSL = `
struct P { n: u32, hid: u32, seq: u32, pad: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> h: array<f32>;
@group(0) @binding(2) var<storage, read_write> prev: array<f32>;
@compute @workgroup_size(256) fn main(${HEAD}) {
  ${INDEX}
  if (i >= p.n) { return; }
  let t = (i / p.hid) % p.seq;
  prev[i] = select(0.0, h[i - p.hid], t > 0u);
}`;

/** The step and back-step kernels read one uniform layout (written by the same dispatcher). */
const LSTM_STEP_PARAMS = `struct P { n: u32, hid: u32, seq: u32, t: u32, gate: u32, ih: u32, rows: u32, pad: u32 }
@group(0) @binding(0) var<uniform> p: P;`;

/**
 * One LSTM time step: gate pre-activations gates[g][b,t] (x·W_ih_gᵀ + b_g, gate-major [4][B·S][hid])
 * plus h[b,t−1]·W_hh_gᵀ, then i, f, o = σ, g = tanh (stored back, activated), c = f·c_prev + i·g,
 * h = o·tanh(c). The parameter vector holds per gate W_ih [hid][in], W_hh [hid][hid], b [hid].
 */
export const LSTM_STEP_WGSL = `${ACT_HELPERS}
${LSTM_STEP_PARAMS}
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> gates: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@group(0) @binding(4) var<storage, read_write> h: array<f32>;
@compute @workgroup_size(256) fn main(${HEAD}) {
  ${INDEX}
  if (i >= p.n) { return; }
  let b = i / p.hid;
  let j = i % p.hid;
  let o = (b * p.seq + p.t) * p.hid;
  var z = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
  for (var g = 0u; g < 4u; g++) {
    var s = gates[g * p.rows * p.hid + o + j];
    if (p.t > 0u) {
      let base = g * p.gate + p.ih + j * p.hid;
      for (var k = 0u; k < p.hid; k++) { s += h[o - p.hid + k] * w[base + k]; }
    }
    z[g] = s;
  }
  let ig = sigmoid_(z[0]); let fg = sigmoid_(z[1]); let gg = tanh_(z[2]); let og = sigmoid_(z[3]);
  gates[o + j] = ig;
  gates[p.rows * p.hid + o + j] = fg;
  gates[2u * p.rows * p.hid + o + j] = gg;
  gates[3u * p.rows * p.hid + o + j] = og;
  var cell = ig * gg;
  if (p.t > 0u) { cell += fg * c[o - p.hid + j]; }
  c[o + j] = cell;
  h[o + j] = og * tanh_(cell);
}`;

/**
 * LSTM backward step t (descending): dh = gOut + Σ_g dG_g[b,t+1]·W_hh_g, dc = dh·o·(1 − tanh²c) +
 * dc[b,t+1]·f[b,t+1]; the gate pre-activation gradients dG (gate-major like `gates`).
 */
export const LSTM_BACK_STEP_WGSL = `${ACT_HELPERS}
${LSTM_STEP_PARAMS}
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> gates: array<f32>;
@group(0) @binding(3) var<storage, read> c: array<f32>;
@group(0) @binding(4) var<storage, read> gout: array<f32>;
@group(0) @binding(5) var<storage, read_write> dg: array<f32>;
@group(0) @binding(6) var<storage, read_write> dc: array<f32>;
@compute @workgroup_size(256) fn main(${HEAD}) {
  ${INDEX}
  if (i >= p.n) { return; }
  let b = i / p.hid;
  let j = i % p.hid;
  let o = (b * p.seq + p.t) * p.hid;
  let plane = p.rows * p.hid;
  var dh = gout[o + j];
  var dcNext = 0.0;
  if (p.t + 1u < p.seq) {
    let next = o + p.hid;
    for (var g = 0u; g < 4u; g++) {
      let base = g * p.gate + p.ih;
      for (var k = 0u; k < p.hid; k++) { dh += dg[g * plane + next + k] * w[base + k * p.hid + j]; }
    }
    dcNext = dc[next + j] * gates[plane + next + j];
  }
  let ig = gates[o + j]; let fg = gates[plane + o + j]; let gg = gates[2u * plane + o + j]; let og = gates[3u * plane + o + j];
  let tc = tanh_(c[o + j]);
  let dcell = dh * og * (1.0 - tc * tc) + dcNext;
  dc[o + j] = dcell;
  var cPrev = 0.0;
  if (p.t > 0u) { cPrev = c[o - p.hid + j]; }
  dg[o + j] = dcell * gg * ig * (1.0 - ig);
  dg[plane + o + j] = dcell * cPrev * fg * (1.0 - fg);
  dg[2u * plane + o + j] = dcell * ig * (1.0 - gg * gg);
  dg[3u * plane + o + j] = dh * tc * og * (1.0 - og);
}`;

registerShaders((): ShaderSource[] => [
  { name: 'fill', code: FILL_WGSL },
  { name: 'embedding forward', code: EMBEDDING_FORWARD_WGSL },
  { name: 'embedding links', code: EMBEDDING_LINKS_WGSL },
  { name: 'embedding backward', code: EMBEDDING_BACKWARD_WGSL },
  ...[Activation.Silu, Activation.ReLU2].map((act) => ({ name: `swiglu backward ${activationName(act)}`, code: swigluBackwardWgsl(act) })),
  { name: 'rope rows', code: ropeRowsWgsl(false) },
  { name: 'rope rows inverse', code: ropeRowsWgsl(true) },
  { name: 'attention train forward', code: ATTENTION_TRAIN_FORWARD_WGSL },
  { name: 'attention train dQ', code: ATTENTION_TRAIN_DQ_WGSL },
  { name: 'attention train dK dV', code: ATTENTION_TRAIN_DKV_WGSL },
  { name: 'rnn step', code: RNN_STEP_WGSL },
  { name: 'rnn backward step', code: RNN_BACK_STEP_WGSL },
  { name: 'shift rows', code: SHIFT_ROWS_WGSL },
  { name: 'lstm step', code: LSTM_STEP_WGSL },
  { name: 'lstm backward step', code: LSTM_BACK_STEP_WGSL },
]);

/** out[outOff + c] = Σ_r data[inOff + r·cols + c] in ascending r (bias gradients of a slice of a matrix). */
export const COL_SUMS_WGSL = `
struct P { rows: u32, cols: u32, inOff: u32, outOff: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> data: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  if (c >= p.cols) { return; }
  var s = 0.0;
  for (var r = 0u; r < p.rows; r++) { s += data[p.inOff + r * p.cols + c]; }
  out[p.outOff + c] = s;
}`;

registerShaders((): ShaderSource[] => [{ name: 'column sums', code: COL_SUMS_WGSL }]);
