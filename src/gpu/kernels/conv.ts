import type { ConvGeometry } from '../../kernels/im2col.js';
import { FLAT_INDEX, groups1d, type GpuArray, type GpuContext } from '../context.js';

/**
 * Direct convolution over NCDHW (Conv1D and Conv2D are the D = H = 1 and D = 1 cases), one thread per
 * output, input or weight element; every sum runs in a fixed order, so results are deterministic.
 * W is [F][C][kD][kH][kW], then the bias [F] at F·C·kD·kH·kW when `bias` is set.
 */
const GEOMETRY = `struct P { C: u32, inD: u32, inH: u32, inW: u32, outD: u32, outH: u32, outW: u32, kD: u32, kH: u32, kW: u32, stride: u32, padD: u32, padH: u32, padW: u32, F: u32, batch: u32, bias: u32 }
@group(0) @binding(0) var<uniform> p: P;`;
const HEAD = `@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>`;
const INDEX = FLAT_INDEX();

export const CONV_FORWARD_WGSL = `${GEOMETRY}
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(256) fn main(${HEAD}) {
  ${INDEX}
  let P = p.outD * p.outH * p.outW;
  if (i >= p.batch * p.F * P) { return; }
  let pos = i % P; let f = (i / P) % p.F; let b = i / (P * p.F);
  let ow = pos % p.outW; let oh = (pos / p.outW) % p.outH; let od = pos / (p.outW * p.outH);
  let K = p.C * p.kD * p.kH * p.kW;
  var acc = 0.0;
  for (var c = 0u; c < p.C; c++) {
    for (var kd = 0u; kd < p.kD; kd++) {
      let d = i32(od * p.stride + kd) - i32(p.padD);
      if (d < 0 || d >= i32(p.inD)) { continue; }
      for (var kh = 0u; kh < p.kH; kh++) {
        let h = i32(oh * p.stride + kh) - i32(p.padH);
        if (h < 0 || h >= i32(p.inH)) { continue; }
        for (var kw = 0u; kw < p.kW; kw++) {
          let ww = i32(ow * p.stride + kw) - i32(p.padW);
          if (ww < 0 || ww >= i32(p.inW)) { continue; }
          let xi = (((b * p.C + c) * p.inD + u32(d)) * p.inH + u32(h)) * p.inW + u32(ww);
          let wi = f * K + ((c * p.kD + kd) * p.kH + kh) * p.kW + kw;
          acc += x[xi] * w[wi];
        }
      }
    }
  }
  if (p.bias != 0u) { acc += w[p.F * K + f]; }
  y[i] = acc;
}`;

export const CONV_INPUT_GRAD_WGSL = `${GEOMETRY}
@group(0) @binding(1) var<storage, read> gy: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> gx: array<f32>;
@compute @workgroup_size(256) fn main(${HEAD}) {
  ${INDEX}
  let S = p.inD * p.inH * p.inW;
  if (i >= p.batch * p.C * S) { return; }
  let pos = i % S; let c = (i / S) % p.C; let b = i / (S * p.C);
  let xw = i32(pos % p.inW) + i32(p.padW); let xh = i32((pos / p.inW) % p.inH) + i32(p.padH); let xd = i32(pos / (p.inW * p.inH)) + i32(p.padD);
  let K = p.C * p.kD * p.kH * p.kW;
  let st = i32(p.stride);
  var acc = 0.0;
  for (var f = 0u; f < p.F; f++) {
    for (var kd = 0u; kd < p.kD; kd++) {
      let td = xd - i32(kd);
      if (td < 0 || td % st != 0 || td / st >= i32(p.outD)) { continue; }
      for (var kh = 0u; kh < p.kH; kh++) {
        let th = xh - i32(kh);
        if (th < 0 || th % st != 0 || th / st >= i32(p.outH)) { continue; }
        for (var kw = 0u; kw < p.kW; kw++) {
          let tw = xw - i32(kw);
          if (tw < 0 || tw % st != 0 || tw / st >= i32(p.outW)) { continue; }
          let yi = (((b * p.F + f) * p.outD + u32(td / st)) * p.outH + u32(th / st)) * p.outW + u32(tw / st);
          acc += gy[yi] * w[f * K + ((c * p.kD + kd) * p.kH + kh) * p.kW + kw];
        }
      }
    }
  }
  gx[i] = acc;
}`;

export const CONV_WEIGHT_GRAD_WGSL = `${GEOMETRY}
@group(0) @binding(1) var<storage, read> gy: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> gw: array<f32>;
@compute @workgroup_size(256) fn main(${HEAD}) {
  ${INDEX}
  let kk = p.kD * p.kH * p.kW;
  let K = p.C * kk;
  let P = p.outD * p.outH * p.outW;
  if (i < p.F * K) {
    let f = i / K; let r = i % K; let c = r / kk;
    let kw = r % p.kW; let kh = (r / p.kW) % p.kH; let kd = r / (p.kW * p.kH) % p.kD;
    var acc = 0.0;
    for (var b = 0u; b < p.batch; b++) {
      for (var pos = 0u; pos < P; pos++) {
        let ow = pos % p.outW; let oh = (pos / p.outW) % p.outH; let od = pos / (p.outW * p.outH);
        let d = i32(od * p.stride + kd) - i32(p.padD);
        let h = i32(oh * p.stride + kh) - i32(p.padH);
        let ww = i32(ow * p.stride + kw) - i32(p.padW);
        if (d < 0 || d >= i32(p.inD) || h < 0 || h >= i32(p.inH) || ww < 0 || ww >= i32(p.inW)) { continue; }
        acc += gy[((b * p.F + f) * P) + pos] * x[(((b * p.C + c) * p.inD + u32(d)) * p.inH + u32(h)) * p.inW + u32(ww)];
      }
    }
    gw[i] = acc;
  } else if (p.bias != 0u && i < p.F * K + p.F) {
    let f = i - p.F * K;
    var acc = 0.0;
    for (var b = 0u; b < p.batch; b++) { for (var pos = 0u; pos < P; pos++) { acc += gy[(b * p.F + f) * P + pos]; } }
    gw[i] = acc;
  }
}`;

function geometryWords(g: ConvGeometry, filters: number, batch: number, bias: boolean): number[] {
  return [g.channels, g.inD, g.inH, g.inW, g.outD, g.outH, g.outW, g.kD, g.kH, g.kW, g.stride, g.padD, g.padH, g.padW, filters, batch, bias ? 1 : 0];
}

export function convForward(ctx: GpuContext, g: ConvGeometry, filters: number, batch: number, bias: boolean, x: GpuArray, w: GpuArray, y: GpuArray): void {
  const n = batch * filters * g.outD * g.outH * g.outW;
  ctx.dispatch(CONV_FORWARD_WGSL, [ctx.uniform(geometryWords(g, filters, batch, bias)), x, w, y], groups1d(n));
}

export function convInputGrad(ctx: GpuContext, g: ConvGeometry, filters: number, batch: number, gy: GpuArray, w: GpuArray, gx: GpuArray): void {
  const n = batch * g.channels * g.inD * g.inH * g.inW;
  ctx.dispatch(CONV_INPUT_GRAD_WGSL, [ctx.uniform(geometryWords(g, filters, batch, false)), gy, w, gx], groups1d(n));
}

export function convWeightGrad(ctx: GpuContext, g: ConvGeometry, filters: number, batch: number, bias: boolean, gy: GpuArray, x: GpuArray, gw: GpuArray): void {
  const n = filters * g.channels * g.kD * g.kH * g.kW + (bias ? filters : 0);
  ctx.dispatch(CONV_WEIGHT_GRAD_WGSL, [ctx.uniform(geometryWords(g, filters, batch, bias)), gy, x, gw], groups1d(n));
}
