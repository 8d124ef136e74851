import { FLAT_INDEX, groups1d, type GpuArray, type GpuContext } from '../context.js';

/** Per-step hyper-parameters, rewritten once per step: the same words for every parameter vector. */
export const STEP_WORDS = 12;

const HEAD = `@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>`;

/** torch.optim.SGD's rule (weight decay, momentum with dampening, Nesterov), as src/train/optimizers.ts. */
export const SGD_WGSL = `
struct S { lr: f32, momentum: f32, dampening: f32, weightDecay: f32, nesterov: f32, first: f32, p6: f32, p7: f32, p8: f32, p9: f32, p10: f32, p11: f32 }
struct P { n: u32 }
@group(0) @binding(0) var<uniform> s: S;
@group(0) @binding(1) var<uniform> p: P;
@group(0) @binding(2) var<storage, read_write> w: array<f32>;
@group(0) @binding(3) var<storage, read> grad: array<f32>;
@group(0) @binding(4) var<storage, read_write> buf: array<f32>;
@compute @workgroup_size(256) fn main(${HEAD}) {
  ${FLAT_INDEX()}
  if (i >= p.n) { return; }
  var g = grad[i];
  if (s.weightDecay != 0.0) { g = g + s.weightDecay * w[i]; }
  if (s.momentum != 0.0) {
    var b = g;
    if (s.first == 0.0) { b = s.momentum * buf[i] + (1.0 - s.dampening) * g; }
    buf[i] = b;
    g = select(b, g + s.momentum * b, s.nesterov != 0.0);
  }
  w[i] = w[i] - s.lr * g;
}`;

/** torch.optim.AdamW's rule, as src/train/optimizers.ts (decoupled decay, bias corrections folded in). */
export const ADAMW_WGSL = `
struct S { stepSize: f32, bc2Sqrt: f32, decay: f32, beta1: f32, beta2: f32, eps: f32, weightDecay: f32, p7: f32, p8: f32, p9: f32, p10: f32, p11: f32 }
struct P { n: u32 }
@group(0) @binding(0) var<uniform> s: S;
@group(0) @binding(1) var<uniform> p: P;
@group(0) @binding(2) var<storage, read_write> w: array<f32>;
@group(0) @binding(3) var<storage, read> grad: array<f32>;
@group(0) @binding(4) var<storage, read_write> m: array<f32>;
@group(0) @binding(5) var<storage, read_write> v: array<f32>;
@compute @workgroup_size(256) fn main(${HEAD}) {
  ${FLAT_INDEX()}
  if (i >= p.n) { return; }
  let g = grad[i];
  var wi = w[i];
  if (s.weightDecay != 0.0) { wi = wi * s.decay; }
  let mi = m[i] + (g - m[i]) * (1.0 - s.beta1);
  let vi = v[i] * s.beta2 + (1.0 - s.beta2) * g * g;
  m[i] = mi;
  v[i] = vi;
  let denom = sqrt(vi) / s.bc2Sqrt + s.eps;
  w[i] = wi - s.stepSize * (mi / denom);
}`;

export function sgdUpdate(ctx: GpuContext, step: GPUBuffer, w: GpuArray, grad: GpuArray, buf: GpuArray, n: number): void {
  ctx.dispatch(SGD_WGSL, [step, ctx.uniform([n]), w, grad, buf], groups1d(n));
}

export function adamwUpdate(ctx: GpuContext, step: GPUBuffer, w: GpuArray, grad: GpuArray, m: GpuArray, v: GpuArray, n: number): void {
  ctx.dispatch(ADAMW_WGSL, [step, ctx.uniform([n]), w, grad, m, v], groups1d(n));
}

/** torch.optim.RMSprop's rule (weight decay, centered, momentum), as src/train/optimizers.ts. */
export const RMSPROP_WGSL = `
struct S { lr: f32, alpha: f32, eps: f32, momentum: f32, centered: f32, weightDecay: f32, p6: f32, p7: f32, p8: f32, p9: f32, p10: f32, p11: f32 }
struct P { n: u32 }
@group(0) @binding(0) var<uniform> s: S;
@group(0) @binding(1) var<uniform> p: P;
@group(0) @binding(2) var<storage, read_write> w: array<f32>;
@group(0) @binding(3) var<storage, read> grad: array<f32>;
@group(0) @binding(4) var<storage, read_write> sq: array<f32>;
@group(0) @binding(5) var<storage, read_write> gavg: array<f32>;
@group(0) @binding(6) var<storage, read_write> buf: array<f32>;
@compute @workgroup_size(256) fn main(${HEAD}) {
  ${FLAT_INDEX()}
  if (i >= p.n) { return; }
  var g = grad[i];
  if (s.weightDecay != 0.0) { g = g + s.weightDecay * w[i]; }
  let q = sq[i] * s.alpha + (1.0 - s.alpha) * g * g;
  sq[i] = q;
  var avg: f32;
  if (s.centered != 0.0) {
    let a = gavg[i] + (g - gavg[i]) * (1.0 - s.alpha);
    gavg[i] = a;
    avg = sqrt(q - a * a) + s.eps;
  } else {
    avg = sqrt(q) + s.eps;
  }
  if (s.momentum > 0.0) {
    let b = buf[i] * s.momentum + g / avg;
    buf[i] = b;
    w[i] = w[i] - s.lr * b;
  } else {
    w[i] = w[i] - s.lr * (g / avg);
  }
}`;

export function rmspropUpdate(ctx: GpuContext, step: GPUBuffer, w: GpuArray, grad: GpuArray, sq: GpuArray, gavg: GpuArray, buf: GpuArray, n: number): void {
  ctx.dispatch(RMSPROP_WGSL, [step, ctx.uniform([n]), w, grad, sq, gavg, buf], groups1d(n));
}

/** Elements one sum-of-squares workgroup covers. */
export const SUMSQ_SPAN = 1024;

/** Partial Σg² of one gradient vector: workgroup w sums [w·1024, (w+1)·1024) by a fixed tree into partials[off + w]. */
export const SUMSQ_PARTIAL_WGSL = `
struct P { n: u32, off: u32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read_write> partials: array<f32>;
var<workgroup> red: array<f32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let t = lid.x;
  var s = 0.0;
  for (var c = 0u; c < 4u; c++) {
    let i = wid.x * ${1024}u + c * 256u + t;
    if (i < p.n) { s += g[i] * g[i]; }
  }
  red[t] = s;
  workgroupBarrier();
  for (var w = 128u; w > 0u; w >>= 1u) {
    if (t < w) { red[t] = red[t] + red[t + w]; }
    workgroupBarrier();
  }
  if (t == 0u) { partials[p.off + wid.x] = red[0]; }
}`;

/**
 * The global gradient norm from all partials (one workgroup, fixed order) and the clip coefficient
 * torch.nn.utils.clip_grad_norm_ applies: clip[0] = min(1, maxNorm / (norm + 1e-6)), clip[1] = norm.
 */
export const CLIP_COEF_WGSL = `
struct P { count: u32, maxNorm: f32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> partials: array<f32>;
@group(0) @binding(2) var<storage, read_write> clip: array<f32>;
var<workgroup> red: array<f32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(local_invocation_id) lid: vec3<u32>) {
  let t = lid.x;
  var s = 0.0;
  for (var i = t; i < p.count; i += 256u) { s += partials[i]; }
  red[t] = s;
  workgroupBarrier();
  for (var w = 128u; w > 0u; w >>= 1u) {
    if (t < w) { red[t] = red[t] + red[t + w]; }
    workgroupBarrier();
  }
  if (t == 0u) {
    let norm = sqrt(red[0]);
    let coef = p.maxNorm / (norm + 1e-6);
    clip[0] = select(1.0, coef, coef < 1.0);
    clip[1] = norm;
  }
}`;

/** g *= clip[0] (1 when the norm is within the limit). */
export const CLIP_SCALE_WGSL = `
struct P { n: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> clip: array<f32>;
@group(0) @binding(2) var<storage, read_write> g: array<f32>;
@compute @workgroup_size(256) fn main(${HEAD}) {
  ${FLAT_INDEX()}
  if (i >= p.n) { return; }
  g[i] = g[i] * clip[0];
}`;

/**
 * Records global-norm clipping of the gradients `grads` (lengths `counts`) to `maxNorm`: partial sums
 * per vector, one reduction, one scale per vector. `partials` holds Σ⌈count/1024⌉ values, `clip` 2.
 */
export function clipGradients(ctx: GpuContext, grads: readonly GpuArray[], counts: readonly number[], maxNorm: number, partials: GpuArray, clip: GpuArray): void {
  let off = 0;
  grads.forEach((g, k) => {
    const groups = Math.ceil(counts[k] / SUMSQ_SPAN);
    ctx.dispatch(SUMSQ_PARTIAL_WGSL, [ctx.uniform([counts[k], off]), g, partials], [groups]);
    off += groups;
  });
  ctx.dispatch(CLIP_COEF_WGSL, [ctx.uniform([off, maxNorm], [false, true]), partials, clip], [1]);
  grads.forEach((g, k) => ctx.dispatch(CLIP_SCALE_WGSL, [ctx.uniform([counts[k]]), clip, g], groups1d(counts[k])));
}
