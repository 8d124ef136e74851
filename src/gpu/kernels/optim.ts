import { groups1d, type GpuArray, type GpuContext } from '../context.js';

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
  let i = gid.x + gid.y * nwg.x * 256u;
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
  let i = gid.x + gid.y * nwg.x * 256u;
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
