/**
 * WGSL kernels of the GPU-resident Llama decode step. The step's position lives on the GPU in
 * `state` (u32: [0] position of the token being decoded, [1] the last token the argmax picked) and
 * the sequence's token ids in `tokens`, so steps chain without uploads. Every reduction runs in a
 * fixed order in workgroup memory (no subgroups): results do not depend on scheduling.
 */

/** Threads of a gemv workgroup, and how they split: ROW_LANES threads per output row. */
export const GEMV_THREADS = 256;
export const ROW_LANES = 32;
export const GEMV_ROWS = GEMV_THREADS / ROW_LANES;

export interface GemvVariant {
  /** RMSNorm of the input vector first (its gain `g` bound, eps and 1/K in the params). */
  norm: boolean;
  /** Adds a bias vector. */
  bias: boolean;
  /** Adds the result into `out` (the residual stream) instead of writing it. */
  residual: boolean;
  /** SwiGLU: rows r and r + rows of the matrix are gate and up; out[r] = silu(gate) · up. */
  swiglu: boolean;
  /** Also writes the workgroup's greedy pick (value bits, row) to `best[workgroup]` for ARGMAX_WGSL. */
  argmax?: boolean;
}

/**
 * y = W·x (W row-major [rows][K], read as vec4), one workgroup per GEMV_ROWS rows, ROW_LANES
 * threads a row striding over K, partial sums combined by a tree in workgroup memory. Bindings:
 * params, x, W, out, then g (norm), then bias.
 */
export function gemvWgsl(v: GemvVariant): string {
  let binding = 4;
  const gain = v.norm ? `@group(0) @binding(${binding++}) var<storage, read> g: array<vec4<f32>>;` : '';
  const bias = v.bias ? `@group(0) @binding(${binding++}) var<storage, read> b: array<f32>;` : '';
  const best = v.argmax
    ? `@group(0) @binding(${binding++}) var<storage, read_write> best: array<vec2<u32>>;
var<workgroup> rowValue: array<f32, ${GEMV_ROWS}>;`
    : '';
  const norm = v.norm
    ? `var ss = 0.0;
  for (var i = li; i < p.k4; i += ${GEMV_THREADS}u) { let e = x[i]; ss += dot(e, e); }
  part[li] = ss;
  workgroupBarrier();
  for (var s = ${GEMV_THREADS / 2}u; s > 0u; s >>= 1u) {
    if (li < s) { part[li] += part[li + s]; }
    workgroupBarrier();
  }
  let inv = 1.0 / sqrt(part[0] * p.invK + p.eps);
  workgroupBarrier();`
    : 'let inv = 1.0;';
  const input = v.norm ? 'x[i] * g[i]' : 'x[i]';
  const dots = v.swiglu
    ? `acc += dot(w[base + i], e);
      acc2 += dot(w[base2 + i], e);`
    : 'acc += dot(w[base + i], e);';
  const reduce = (name: string) => `part[li] = ${name};
  workgroupBarrier();
  for (var s = ${ROW_LANES / 2}u; s > 0u; s >>= 1u) {
    if (lane < s) { part[li] += part[li + s]; }
    workgroupBarrier();
  }
  let ${name}Sum = part[li];
  workgroupBarrier();`;
  let result: string;
  if (v.swiglu) {
    const gate = `accSum * inv${v.bias ? ' + b[row]' : ''}`;
    const up = `acc2Sum * inv${v.bias ? ' + b[row + p.rows]' : ''}`;
    result = `let gate = ${gate};
    out[row] = gate / (1.0 + exp(-gate)) * (${up});`;
  } else {
    const y = `accSum * inv${v.bias ? ' + b[row]' : ''}`;
    result = v.residual ? `out[row] = out[row] + ${y};` : `out[row] = ${y};`;
  }
  return `struct P { rows: u32, k4: u32, eps: f32, invK: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> w: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
${gain}
${bias}
${best}
var<workgroup> part: array<f32, ${GEMV_THREADS}>;
@compute @workgroup_size(${GEMV_THREADS}) fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let lane = li % ${ROW_LANES}u;
  let row = (wg.x + wg.y * nwg.x) * ${GEMV_ROWS}u + li / ${ROW_LANES}u;
  let live = row < p.rows;
  ${norm}
  var acc = 0.0;
  var acc2 = 0.0;
  if (live) {
    let base = row * p.k4;
    let base2 = (row + p.rows) * p.k4;
    for (var i = lane; i < p.k4; i += ${ROW_LANES}u) {
      let e = ${input};
      ${dots}
    }
  }
  ${reduce('acc')}
  ${v.swiglu ? reduce('acc2') : ''}
  if (live && lane == 0u) {
    ${result}
    ${v.argmax ? 'rowValue[li / ' + ROW_LANES + 'u] = out[row];' : ''}
  }
  ${v.argmax ? pickRow : ''}
}`;
}

/** The first row of a gemv workgroup's largest output (rows in order, so the lowest index wins ties). */
const pickRow = `workgroupBarrier();
  if (li == 0u) {
    let first = (wg.x + wg.y * nwg.x) * ${GEMV_ROWS}u;
    var bv = rowValue[0];
    var bi = first;
    for (var r = 1u; r < ${GEMV_ROWS}u; r++) {
      if (first + r < p.rows && rowValue[r] > bv) { bv = rowValue[r]; bi = first + r; }
    }
    best[wg.x + wg.y * nwg.x] = vec2<u32>(bitcast<u32>(bv), bi);
  }`;

/** x = embedding row of tokens[state.pos]. */
export const EMBED_WGSL = `struct P { d: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> state: array<u32>;
@group(0) @binding(2) var<storage, read> tokens: array<u32>;
@group(0) @binding(3) var<storage, read> table: array<f32>;
@group(0) @binding(4) var<storage, read_write> x: array<f32>;
@compute @workgroup_size(256) fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x;
  if (i >= p.d) { return; }
  x[i] = table[tokens[state[0]] * p.d + i];
}`;

/**
 * Causal attention of the current position's query over positions 0..pos, one workgroup per query
 * head (GQA: head h reads kv head h / group), with RoPE (rotate-half pairs (i, i + half), cos/sin
 * from a per-position table) applied to the head's query and the new key in workgroup memory; the
 * first head of each group appends the new key and value to the cache ([kv_head][max_seq][head_dim]),
 * and every head takes position pos from workgroup memory, so no head waits on another. Scores go
 * to a scratch row, softmax(s·scale) with the max subtracted, then the weighted sum of V (vec4
 * columns, each summed by a fixed set of threads and combined in order).
 */
const ATTENTION_TEMPLATE = `struct P { group: u32, hd: u32, maxSeq: u32, scale: f32, heads: u32, kvHeads: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> state: array<u32>;
@group(0) @binding(2) var<storage, read> qkv: array<f32>;
@group(0) @binding(3) var<storage, read> rope: array<vec2<f32>>;
@group(0) @binding(4) var<storage, read_write> kc: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> vc: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> sc: array<f32>;
@group(0) @binding(7) var<storage, read_write> out: array<vec4<f32>>;
var<workgroup> qf: array<f32, 256>;
var<workgroup> kf: array<f32, 256>;
var<workgroup> q4: array<vec4<f32>, 64>;
var<workgroup> k4: array<vec4<f32>, 64>;
var<workgroup> v4: array<vec4<f32>, 64>;
var<workgroup> red: array<f32, 256>;
var<workgroup> acc4: array<vec4<f32>, 256>;
@compute @workgroup_size(256) fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let h = wg.x;
  let kvh = h / p.group;
  let pos = state[0];
  let n = pos + 1u;
  let hd4 = p.hd / 4u;
  let half = p.hd / 2u;
  if (li < half) {
    let cs = rope[pos * half + li];
    let qa = qkv[h * p.hd + li];
    let qb = qkv[h * p.hd + li + half];
    qf[li] = qa * cs.x - qb * cs.y;
    qf[li + half] = qa * cs.y + qb * cs.x;
    let k0 = (p.heads + kvh) * p.hd;
    let ka = qkv[k0 + li];
    let kb = qkv[k0 + li + half];
    kf[li] = ka * cs.x - kb * cs.y;
    kf[li + half] = ka * cs.y + kb * cs.x;
  }
  workgroupBarrier();
  let cache0 = kvh * p.maxSeq * hd4;
  if (li < hd4) {
    let j = 4u * li;
    q4[li] = vec4<f32>(qf[j], qf[j + 1u], qf[j + 2u], qf[j + 3u]);
    k4[li] = vec4<f32>(kf[j], kf[j + 1u], kf[j + 2u], kf[j + 3u]);
    let v0 = (p.heads + p.kvHeads + kvh) * p.hd + j;
    v4[li] = vec4<f32>(qkv[v0], qkv[v0 + 1u], qkv[v0 + 2u], qkv[v0 + 3u]);
    if (h % p.group == 0u) {
      kc[cache0 + pos * hd4 + li] = k4[li];
      vc[cache0 + pos * hd4 + li] = v4[li];
    }
  }
  workgroupBarrier();
  let row = h * p.maxSeq;
  var m = -3.4e38;
  for (var t = li; t < n; t += 256u) {
    var s = 0.0;
    if (t == pos) {
      for (var d = 0u; d < hd4; d++) { s += dot(q4[d], k4[d]); }
    } else {
      for (var d = 0u; d < hd4; d++) { s += dot(q4[d], kc[cache0 + t * hd4 + d]); }
    }
    sc[row + t] = s;
    m = max(m, s);
  }
  red[li] = m;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (li < s) { red[li] = max(red[li], red[li + s]); }
    workgroupBarrier();
  }
  let top = red[0];
  workgroupBarrier();
  var sum = 0.0;
  for (var t = li; t < n; t += 256u) {
    let e = exp((sc[row + t] - top) * p.scale);
    sc[row + t] = e;
    sum += e;
  }
  red[li] = sum;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (li < s) { red[li] += red[li + s]; }
    workgroupBarrier();
  }
  let total = red[0];
  storageBarrier();
  workgroupBarrier();
  let lanes = 256u / hd4;
  let c = li % hd4;
  let part = li / hd4;
  var acc = vec4<f32>(0.0);
  if (part < lanes) {
    for (var t = part; t < n; t += lanes) {
      if (t == pos) { acc += sc[row + t] * v4[c]; } else { acc += sc[row + t] * vc[cache0 + t * hd4 + c]; }
    }
  }
  acc4[li] = acc;
  workgroupBarrier();
  if (li < hd4) {
    var o = vec4<f32>(0.0);
    for (var j = 0u; j < lanes; j++) { o += acc4[j * hd4 + li]; }
    out[h * hd4 + li] = o / total;
  }
}`;

/**
 * The attention kernel; with `sharedScores` > 0 the scores live in workgroup memory of that many
 * positions (no scratch binding; `out` moves to binding 6), else in the storage scratch row.
 */
export function attentionWgsl(sharedScores = 0): string {
  if (sharedScores <= 0) return ATTENTION_TEMPLATE;
  return ATTENTION_TEMPLATE.replace('@group(0) @binding(6) var<storage, read_write> sc: array<f32>;\n', '')
    .replace('@binding(7) var<storage, read_write> out', '@binding(6) var<storage, read_write> out')
    .replace('var<workgroup> red:', `var<workgroup> sc: array<f32, ${sharedScores}>;\nvar<workgroup> red:`)
    .replace('let row = h * p.maxSeq;', 'let row = 0u;');
}

/** Workgroup memory the attention kernel uses besides shared scores. */
export const ATTENTION_WORKGROUP_BYTES = 2 * 256 * 4 + 3 * 64 * 16 + 256 * 4 + 256 * 16;

/**
 * Greedy pick over the LM head workgroups' picks (the first index of the largest logit, as the
 * CPU's scan), written as the next token: tokens[pos + 1] and state[1]; the position advances.
 */
export const ARGMAX_WGSL = `struct P { n: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> picks: array<vec2<u32>>;
@group(0) @binding(2) var<storage, read_write> state: array<u32>;
@group(0) @binding(3) var<storage, read_write> tokens: array<u32>;
var<workgroup> bestValue: array<f32, 256>;
var<workgroup> bestIndex: array<u32, 256>;
@compute @workgroup_size(256) fn main(@builtin(local_invocation_index) li: u32) {
  var bv = -3.4e38;
  var bi = 0xffffffffu;
  for (var i = li; i < p.n; i += 256u) {
    let v = bitcast<f32>(picks[i].x);
    if (v > bv || bi == 0xffffffffu) { bv = v; bi = picks[i].y; }
  }
  bestValue[li] = bv;
  bestIndex[li] = bi;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (li < s) {
      let v = bestValue[li + s];
      let i = bestIndex[li + s];
      if (i != 0xffffffffu && (v > bestValue[li] || (v == bestValue[li] && i < bestIndex[li]))) {
        bestValue[li] = v;
        bestIndex[li] = i;
      }
    }
    workgroupBarrier();
  }
  if (li == 0u) {
    let pos = state[0];
    tokens[pos + 1u] = bestIndex[0];
    state[1] = bestIndex[0];
    state[0] = pos + 1u;
  }
}`;

/** Advances the position after a prefill step that skips the LM head. */
export const ADVANCE_WGSL = `@group(0) @binding(0) var<storage, read_write> state: array<u32>;
@compute @workgroup_size(1) fn main() {
  state[0] = state[0] + 1u;
}`;

/** Every decode kernel, named, for validation on Dawn's null backend. */
export function decodeShaders(): { name: string; code: string }[] {
  const out = [
    { name: 'llm embed', code: EMBED_WGSL },
    { name: 'llm attention', code: attentionWgsl() },
    { name: 'llm attention shared scores', code: attentionWgsl(1024) },
    { name: 'llm argmax', code: ARGMAX_WGSL },
    { name: 'llm advance', code: ADVANCE_WGSL },
  ];
  for (const v of GEMV_VARIANTS) out.push({ name: `llm gemv ${variantName(v)}`, code: gemvWgsl(v) });
  return out;
}

/** The gemv variants the decode step uses: qkv / LM head (norm, bias or not), o / down (residual), gate-up (norm, SwiGLU). */
export const GEMV_VARIANTS: readonly GemvVariant[] = [
  { norm: true, bias: true, residual: false, swiglu: false },
  { norm: true, bias: false, residual: false, swiglu: false, argmax: true },
  { norm: true, bias: true, residual: false, swiglu: false, argmax: true },
  { norm: false, bias: true, residual: true, swiglu: false },
  { norm: true, bias: true, residual: false, swiglu: true },
];

function variantName(v: GemvVariant): string {
  return [v.norm && 'norm', v.bias && 'bias', v.residual && 'residual', v.swiglu && 'swiglu', v.argmax && 'argmax'].filter(Boolean).join(' ');
}
