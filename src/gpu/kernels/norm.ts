import { FLAT_INDEX, groups1d, type GpuArray, type GpuContext } from '../context.js';
import { registerShaders } from './index.js';

const HEAD = `@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>`;
const INDEX = `let r = gid.x + gid.y * nwg.x * 64u;`;
const PARAMS = `struct P { rows: u32, n: u32, eps: f32, invT: f32 }
@group(0) @binding(0) var<uniform> p: P;`;

/**
 * Row-wise kernels (one thread a row, sums in index order) for RMSNorm, LayerNorm and Softmax, and
 * column-wise parameter-gradient kernels (one thread a column, sums in row order): deterministic.
 * `stats` holds per row 1/rms (RMSNorm) or 1/std then the mean (LayerNorm).
 */
export const RMSNORM_FORWARD_WGSL = `${PARAMS}
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read_write> stats: array<f32>;
@compute @workgroup_size(64) fn main(${HEAD}) {
  ${INDEX}
  if (r >= p.rows) { return; }
  let base = r * p.n;
  var s = 0.0;
  for (var i = 0u; i < p.n; i++) { s += x[base + i] * x[base + i]; }
  let inv = 1.0 / sqrt(s / f32(p.n) + p.eps);
  stats[r] = inv;
  for (var i = 0u; i < p.n; i++) { y[base + i] = x[base + i] * inv * g[i]; }
}`;

export const RMSNORM_BACKWARD_WGSL = `${PARAMS}
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read> gy: array<f32>;
@group(0) @binding(4) var<storage, read> stats: array<f32>;
@group(0) @binding(5) var<storage, read_write> gx: array<f32>;
@compute @workgroup_size(64) fn main(${HEAD}) {
  ${INDEX}
  if (r >= p.rows) { return; }
  let base = r * p.n;
  let inv = stats[r];
  var dot = 0.0;
  for (var i = 0u; i < p.n; i++) { dot += gy[base + i] * g[i] * x[base + i]; }
  let k = dot * inv * inv * inv / f32(p.n);
  for (var i = 0u; i < p.n; i++) { gx[base + i] = gy[base + i] * g[i] * inv - x[base + i] * k; }
}`;

export const RMSNORM_PARAM_GRAD_WGSL = `${PARAMS}
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gy: array<f32>;
@group(0) @binding(3) var<storage, read> stats: array<f32>;
@group(0) @binding(4) var<storage, read_write> gg: array<f32>;
@compute @workgroup_size(64) fn main(${HEAD}) {
  ${FLAT_INDEX(64)}
  if (i >= p.n) { return; }
  var s = 0.0;
  for (var r = 0u; r < p.rows; r++) { s += gy[r * p.n + i] * x[r * p.n + i] * stats[r]; }
  gg[i] = s;
}`;

export const LAYERNORM_FORWARD_WGSL = `${PARAMS}
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read_write> stats: array<f32>;
@compute @workgroup_size(64) fn main(${HEAD}) {
  ${INDEX}
  if (r >= p.rows) { return; }
  let base = r * p.n;
  var s = 0.0;
  for (var i = 0u; i < p.n; i++) { s += x[base + i]; }
  let mean = s / f32(p.n);
  var q = 0.0;
  for (var i = 0u; i < p.n; i++) { let c = x[base + i] - mean; q += c * c; }
  let inv = 1.0 / sqrt(q / f32(p.n) + p.eps);
  stats[2u * r] = inv;
  stats[2u * r + 1u] = mean;
  for (var i = 0u; i < p.n; i++) { y[base + i] = (x[base + i] - mean) * inv * w[i] + w[p.n + i]; }
}`;

export const LAYERNORM_BACKWARD_WGSL = `${PARAMS}
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> gy: array<f32>;
@group(0) @binding(4) var<storage, read> stats: array<f32>;
@group(0) @binding(5) var<storage, read_write> gx: array<f32>;
@compute @workgroup_size(64) fn main(${HEAD}) {
  ${INDEX}
  if (r >= p.rows) { return; }
  let base = r * p.n;
  let inv = stats[2u * r];
  let mean = stats[2u * r + 1u];
  var a = 0.0;
  var b = 0.0;
  for (var i = 0u; i < p.n; i++) {
    let d = gy[base + i] * w[i];
    a += d;
    b += d * (x[base + i] - mean) * inv;
  }
  let nf = f32(p.n);
  for (var i = 0u; i < p.n; i++) {
    let xh = (x[base + i] - mean) * inv;
    gx[base + i] = inv * (gy[base + i] * w[i] - a / nf - xh * b / nf);
  }
}`;

export const LAYERNORM_PARAM_GRAD_WGSL = `${PARAMS}
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gy: array<f32>;
@group(0) @binding(3) var<storage, read> stats: array<f32>;
@group(0) @binding(4) var<storage, read_write> gw: array<f32>;
@compute @workgroup_size(64) fn main(${HEAD}) {
  ${FLAT_INDEX(64)}
  if (i >= p.n) { return; }
  var sg = 0.0;
  var sb = 0.0;
  for (var r = 0u; r < p.rows; r++) {
    let d = gy[r * p.n + i];
    sg += d * (x[r * p.n + i] - stats[2u * r + 1u]) * stats[2u * r];
    sb += d;
  }
  gw[i] = sg;
  gw[p.n + i] = sb;
}`;

/** Softmax of x/T over rows of n (the Standard and Temperature variants). */
export const SOFTMAX_FORWARD_WGSL = `${PARAMS}
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(64) fn main(${HEAD}) {
  ${INDEX}
  if (r >= p.rows) { return; }
  let base = r * p.n;
  var mx = x[base] * p.invT;
  for (var i = 1u; i < p.n; i++) { mx = max(mx, x[base + i] * p.invT); }
  var s = 0.0;
  for (var i = 0u; i < p.n; i++) { s += exp(x[base + i] * p.invT - mx); }
  for (var i = 0u; i < p.n; i++) { y[base + i] = exp(x[base + i] * p.invT - mx) / s; }
}`;

export const SOFTMAX_BACKWARD_WGSL = `${PARAMS}
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read> gy: array<f32>;
@group(0) @binding(3) var<storage, read_write> gx: array<f32>;
@compute @workgroup_size(64) fn main(${HEAD}) {
  ${INDEX}
  if (r >= p.rows) { return; }
  let base = r * p.n;
  var dot = 0.0;
  for (var i = 0u; i < p.n; i++) { dot += gy[base + i] * y[base + i]; }
  for (var i = 0u; i < p.n; i++) { gx[base + i] = y[base + i] * (gy[base + i] - dot) * p.invT; }
}`;

registerShaders(() => [
  { name: 'rmsnorm forward', code: RMSNORM_FORWARD_WGSL },
  { name: 'rmsnorm backward', code: RMSNORM_BACKWARD_WGSL },
  { name: 'rmsnorm gain grad', code: RMSNORM_PARAM_GRAD_WGSL },
  { name: 'layernorm forward', code: LAYERNORM_FORWARD_WGSL },
  { name: 'layernorm backward', code: LAYERNORM_BACKWARD_WGSL },
  { name: 'layernorm param grad', code: LAYERNORM_PARAM_GRAD_WGSL },
  { name: 'softmax forward', code: SOFTMAX_FORWARD_WGSL },
  { name: 'softmax backward', code: SOFTMAX_BACKWARD_WGSL },
]);

export function rowUniform(ctx: GpuContext, rows: number, n: number, eps: number, invT = 1): GPUBuffer {
  return ctx.uniform([rows, n, eps, invT], [false, false, true, true]);
}

export function rowDispatch(ctx: GpuContext, code: string, u: GPUBuffer, bindings: GpuArray[], count: number): void {
  ctx.dispatch(code, [u, ...bindings], groups1d(count, 64));
}
