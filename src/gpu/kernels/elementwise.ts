import { Activation } from '../../layers/activations.js';
import { FLAT_INDEX, groups1d, type GpuArray, type GpuContext } from '../context.js';

const HEAD = `@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>`;
const INDEX = FLAT_INDEX();

/** WGSL helpers shared by activation kernels; tanh through exp(−2|x|) so large inputs give ±1, not NaN. */
export const ACT_HELPERS = `
fn tanh_(x: f32) -> f32 { let e = exp(-2.0 * abs(x)); return sign(x) * (1.0 - e) / (1.0 + e); }
fn sigmoid_(x: f32) -> f32 { if (x >= 0.0) { return 1.0 / (1.0 + exp(-x)); } let e = exp(x); return e / (1.0 + e); }
`;

const GELU = `0.7978845608028654 * (x + 0.044715 * x * x * x)`;

/** WGSL expression of f(x). */
export function activationExpr(act: Activation): string {
  switch (act) {
    case Activation.ReLU: return `max(x, 0.0)`;
    case Activation.LeakyReLU: return `select(x * 0.01, x, x > 0.0)`;
    case Activation.ReLU2: return `select(0.0, x * x, x > 0.0)`;
    case Activation.Sigmoid: return `sigmoid_(x)`;
    case Activation.Tanh: return `tanh_(x)`;
    case Activation.Silu: return `x * sigmoid_(x)`;
    case Activation.GELU: return `0.5 * x * (1.0 + tanh_(${GELU}))`;
    default: return `x`;
  }
}

/** WGSL expression of f'(x)·g. */
export function activationGradExpr(act: Activation): string {
  switch (act) {
    case Activation.ReLU: return `select(0.0, g, x > 0.0)`;
    case Activation.LeakyReLU: return `select(g * 0.01, g, x > 0.0)`;
    case Activation.ReLU2: return `select(0.0, g * 2.0 * x, x > 0.0)`;
    case Activation.Sigmoid: return `g * sigmoid_(x) * (1.0 - sigmoid_(x))`;
    case Activation.Tanh: return `g * (1.0 - tanh_(x) * tanh_(x))`;
    case Activation.Silu: return `g * sigmoid_(x) * (1.0 + x * (1.0 - sigmoid_(x)))`;
    case Activation.GELU:
      return `g * (0.5 * (1.0 + tanh_(${GELU})) + 0.5 * x * (1.0 - tanh_(${GELU}) * tanh_(${GELU})) * 0.7978845608028654 * (1.0 + 3.0 * 0.044715 * x * x))`;
    default: return `g`;
  }
}

export function activationWgsl(act: Activation): string {
  return `${ACT_HELPERS}
struct P { n: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> pre: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(256) fn main(${HEAD}) {
  ${INDEX}
  if (i >= p.n) { return; }
  let x = pre[i];
  out[i] = ${activationExpr(act)};
}`;
}

export function activationBackwardWgsl(act: Activation): string {
  return `${ACT_HELPERS}
struct P { n: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> gradOut: array<f32>;
@group(0) @binding(2) var<storage, read> pre: array<f32>;
@group(0) @binding(3) var<storage, read_write> gradPre: array<f32>;
@compute @workgroup_size(256) fn main(${HEAD}) {
  ${INDEX}
  if (i >= p.n) { return; }
  let x = pre[i];
  let g = gradOut[i];
  gradPre[i] = ${activationGradExpr(act)};
}`;
}

export const ADD_WGSL = `
struct P { n: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@compute @workgroup_size(256) fn main(${HEAD}) {
  ${INDEX}
  if (i >= p.n) { return; }
  c[i] = a[i] + b[i];
}`;

/** out[off + c] = Σ_b Σ_i data[b][c][i] for data [batch][channels][size] (size 1: column sums of a matrix), in ascending order. */
export const CHANNEL_SUMS_WGSL = `
struct P { batch: u32, channels: u32, size: u32, off: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> data: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  if (c >= p.channels) { return; }
  var acc = 0.0;
  for (var b = 0u; b < p.batch; b++) {
    let base = (b * p.channels + c) * p.size;
    for (var i = 0u; i < p.size; i++) { acc += data[base + i]; }
  }
  out[p.off + c] = acc;
}`;

export function activate(ctx: GpuContext, act: Activation, pre: GpuArray, out: GpuArray, n: number): void {
  ctx.dispatch(activationWgsl(act), [ctx.uniform([n]), pre, out], groups1d(n));
}

export function activateBackward(ctx: GpuContext, act: Activation, gradOut: GpuArray, pre: GpuArray, gradPre: GpuArray, n: number): void {
  ctx.dispatch(activationBackwardWgsl(act), [ctx.uniform([n]), gradOut, pre, gradPre], groups1d(n));
}

export function add(ctx: GpuContext, a: GpuArray, b: GpuArray, c: GpuArray, n: number): void {
  ctx.dispatch(ADD_WGSL, [ctx.uniform([n]), a, b, c], groups1d(n));
}

export function channelSums(ctx: GpuContext, data: GpuArray, out: GpuArray, batch: number, channels: number, size: number, offset = 0): void {
  ctx.dispatch(CHANNEL_SUMS_WGSL, [ctx.uniform([batch, channels, size, offset]), data, out], [Math.ceil(channels / 64)]);
}
