import { type GpuArray, type GpuContext } from '../context.js';

/**
 * Loss gradients, one thread per sample. Each writes its sample's loss (summed over its elements) to
 * `losses[off + b]`, and for cross-entropy 1 or 0 to `correct[off + b]`, so a whole epoch's losses
 * stay on the GPU until one readback.
 */
export const MSE_WGSL = `
struct P { batch: u32, width: u32, off: u32, total: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> pred: array<f32>;
@group(0) @binding(2) var<storage, read> tgt: array<f32>;
@group(0) @binding(3) var<storage, read_write> grad: array<f32>;
@group(0) @binding(4) var<storage, read_write> losses: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let b = gid.x;
  if (b >= p.batch) { return; }
  var sum = 0.0;
  let n = f32(p.total);
  for (var c = 0u; c < p.width; c++) {
    let i = b * p.width + c;
    let d = pred[i] - tgt[i];
    sum += d * d;
    grad[i] = 2.0 * d / n;
  }
  losses[p.off + b] = sum;
}`;

export const CROSS_ENTROPY_WGSL = `
struct P { batch: u32, classes: u32, off: u32, pad: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> grad: array<f32>;
@group(0) @binding(4) var<storage, read_write> losses: array<f32>;
@group(0) @binding(5) var<storage, read_write> correct: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let b = gid.x;
  if (b >= p.batch) { return; }
  let base = b * p.classes;
  let label = labels[b];
  var mx = logits[base];
  var arg = 0u;
  for (var c = 1u; c < p.classes; c++) { if (logits[base + c] > mx) { mx = logits[base + c]; arg = c; } }
  var s = 0.0;
  for (var c = 0u; c < p.classes; c++) { s += exp(logits[base + c] - mx); }
  let lse = mx + log(s);
  losses[p.off + b] = lse - logits[base + label];
  correct[p.off + b] = select(0.0, 1.0, arg == label);
  let inv = 1.0 / f32(p.batch);
  for (var c = 0u; c < p.classes; c++) {
    let sm = exp(logits[base + c] - lse);
    grad[base + c] = (sm - select(0.0, 1.0, c == label)) * inv;
  }
}`;

export function mseGrad(ctx: GpuContext, pred: GpuArray, target: GpuArray, grad: GpuArray, losses: GpuArray, batch: number, width: number, offset: number): void {
  ctx.dispatch(MSE_WGSL, [ctx.uniform([batch, width, offset, batch * width]), pred, target, grad, losses], [Math.ceil(batch / 64)]);
}

export function crossEntropyGrad(
  ctx: GpuContext, logits: GpuArray, labels: GpuArray, grad: GpuArray, losses: GpuArray, correct: GpuArray, batch: number, classes: number, offset: number,
): void {
  ctx.dispatch(CROSS_ENTROPY_WGSL, [ctx.uniform([batch, classes, offset, 0]), logits, labels, grad, losses, correct], [Math.ceil(batch / 64)]);
}
