import { GpuError, type GpuArray, type GpuContext } from '../context.js';

/** Work split of a GEMM: a workgroup computes bm×bn of C, each thread tm×tn, stepping k by bk. */
export interface GemmTile {
  bm: number;
  bn: number;
  bk: number;
  tm: number;
  tn: number;
  /**
   * Aligned kernels only: 'prefetch' loads the next k tile into registers while the current one is
   * multiplied; 'double' also alternates two workgroup-memory buffers (one barrier a tile).
   */
  staging?: 'none' | 'prefetch' | 'double';
  /** Unrolls the bk steps of the inner product in the generated code (constant workgroup-memory offsets). */
  unroll?: boolean;
}

export interface GemmVariant {
  /** op(A) = Aᵀ: A is stored K×M. */
  transA: boolean;
  /** op(B) = Bᵀ: B is stored N×K. */
  transB: boolean;
  /** Adds bias[n] to every row of C. */
  bias: boolean;
  /** Every dimension a multiple of the tile and offsets of 4: vec4 loads and stores, no bounds checks. */
  aligned: boolean;
  tile: GemmTile;
}

/** Fastest of bench/gpu.ts's sweep on an H100 (34 TFLOP/s at 4096³). */
export const TILE_LARGE: GemmTile = { bm: 64, bn: 128, bk: 16, tm: 4, tn: 8 };
export const TILE_MEDIUM: GemmTile = { bm: 64, bn: 64, bk: 16, tm: 4, tn: 4 };
export const TILE_SMALL: GemmTile = { bm: 32, bn: 32, bk: 16, tm: 4, tn: 4 };
/**
 * Large aligned products (bench/gpu.ts's sweep on an H100, 4096³): 128×256 tiles with 8×16 a thread,
 * the next k tile prefetched into registers and the inner steps unrolled, 41.6–41.8 TFLOP/s; it
 * needs 24 KiB of workgroup memory, so devices at WebGPU's default 16 KiB get the 128×128 version
 * (39.6–40.5 TFLOP/s).
 */
export const TILE_HUGE: GemmTile = { bm: 128, bn: 256, bk: 16, tm: 8, tn: 16, staging: 'prefetch', unroll: true };
export const TILE_HUGE_16K: GemmTile = { bm: 128, bn: 128, bk: 16, tm: 8, tn: 8, staging: 'prefetch', unroll: true };

/** Bytes of workgroup memory a tile's kernel declares. */
export function tileStorage(tile: GemmTile): number {
  return (tile.staging === 'double' ? 2 : 1) * (tile.bm + tile.bn) * tile.bk * 4;
}

/**
 * WGSL for C[M×N] = op(A)·op(B) (+ bias). Tiles of A and B go through workgroup memory k-major as
 * vec4s; each thread keeps tm×tn accumulators in registers (tm·tn/4 vec4s, unrolled), and its rows
 * and columns are strided by the workgroup's width so workgroup-memory reads are conflict-free.
 */
export function gemmWgsl(v: GemmVariant): string {
  const { bm, bn, bk, tm, tn } = v.tile;
  const wx = bn / tn;
  const wy = bm / tm;
  const threads = wx * wy;
  if (tm % 4 || tn % 4 || bm % tm || bn % tn || bk % 4 || threads > 256) throw new GpuError(`gemm: bad tile ${JSON.stringify(v.tile)}`);
  const rg = tm / 4;
  const cg = tn / 4;
  const elem = v.aligned ? 'vec4<f32>' : 'f32';
  const lines: string[] = [];
  lines.push(`struct P { M: u32, N: u32, K: u32, offA: u32, offB: u32, offC: u32, offBias: u32, pad: u32 }`);
  lines.push(`@group(0) @binding(0) var<uniform> p: P;`);
  lines.push(`@group(0) @binding(1) var<storage, read> A: array<${elem}>;`);
  lines.push(`@group(0) @binding(2) var<storage, read> B: array<${elem}>;`);
  lines.push(`@group(0) @binding(3) var<storage, read_write> C: array<${elem}>;`);
  if (v.bias) lines.push(`@group(0) @binding(4) var<storage, read> bias: array<f32>;`);
  const staging = v.aligned ? (v.tile.staging ?? 'none') : 'none';
  const copies = staging === 'double' ? 2 : 1;
  lines.push(`var<workgroup> As: array<vec4<f32>, ${(copies * bk * bm) / 4}>;`);
  lines.push(`var<workgroup> Bs: array<vec4<f32>, ${(copies * bk * bn) / 4}>;`);
  lines.push(`@compute @workgroup_size(${wx}, ${wy})`);
  lines.push(`fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {`);
  lines.push(`  let tx = lid.x; let ty = lid.y; let t = ty * ${wx}u + tx;`);
  lines.push(`  let m0 = wid.y * ${bm}u; let n0 = wid.x * ${bn}u;`);
  lines.push(`  let M = p.M; let N = p.N; let K = p.K;`);
  for (let i = 0; i < tm; i++) for (let j = 0; j < cg; j++) lines.push(`  var c${i}_${j} = vec4<f32>(0.0);`);
  const compute = (aOff: string, bOff: string): string[] => {
    const out: string[] = [];
    const step = (k: string, indent: string) => {
      for (let g = 0; g < rg; g++) out.push(`${indent}let a${g} = As[${aOff}${k} * ${bm / 4}u + ${g * wy}u + ty];`);
      for (let j = 0; j < cg; j++) out.push(`${indent}let b${j} = Bs[${bOff}${k} * ${bn / 4}u + ${j * wx}u + tx];`);
      for (let i = 0; i < tm; i++) {
        for (let j = 0; j < cg; j++) out.push(`${indent}c${i}_${j} = fma(vec4<f32>(a${i >> 2}[${i & 3}]), b${j}, c${i}_${j});`);
      }
    };
    if (v.tile.unroll) {
      for (let k = 0; k < bk; k++) {
        out.push(`    {`);
        step(`${k}u`, '      ');
        out.push(`    }`);
      }
    } else {
      out.push(`    for (var k = 0u; k < ${bk}u; k++) {`);
      step('k', '      ');
      out.push(`    }`);
    }
    return out;
  };
  if (staging === 'none') {
    lines.push(`  for (var k0 = 0u; k0 < K; k0 += ${bk}u) {`);
    lines.push(...loadTile('A', v, bm, bk, threads, v.transA));
    lines.push(...loadTile('B', v, bn, bk, threads, !v.transB));
    lines.push(`    workgroupBarrier();`);
    lines.push(...compute('', ''));
    lines.push(`    workgroupBarrier();`);
    lines.push(`  }`);
  } else {
    const a = stagedTile('A', bm, bk, threads, v.transA);
    const b = stagedTile('B', bn, bk, threads, !v.transB);
    lines.push(...a.declare, ...b.declare);
    lines.push(...a.load('0u'), ...b.load('0u'));
    if (staging === 'prefetch') {
      lines.push(`  for (var k0 = 0u; k0 < K; k0 += ${bk}u) {`);
      lines.push(...a.store('0u'), ...b.store('0u'));
      lines.push(`    workgroupBarrier();`);
      lines.push(`    if (k0 + ${bk}u < K) {`, ...a.load(`k0 + ${bk}u`), ...b.load(`k0 + ${bk}u`), `    }`);
      lines.push(...compute('', ''));
      lines.push(`    workgroupBarrier();`);
      lines.push(`  }`);
    } else {
      const aSize = (bk * bm) / 4;
      const bSize = (bk * bn) / 4;
      lines.push(...a.store('0u'), ...b.store('0u'));
      lines.push(`  workgroupBarrier();`);
      lines.push(`  var cur = 0u;`);
      lines.push(`  for (var k0 = 0u; k0 < K; k0 += ${bk}u) {`);
      lines.push(`    let more = k0 + ${bk}u < K;`);
      lines.push(`    if (more) {`, ...a.load(`k0 + ${bk}u`), ...b.load(`k0 + ${bk}u`), `    }`);
      lines.push(...compute(`cur * ${aSize}u + `, `cur * ${bSize}u + `));
      lines.push(`    if (more) {`, ...a.store(`(1u - cur) * ${aSize}u`), ...b.store(`(1u - cur) * ${bSize}u`), `    }`);
      lines.push(`    workgroupBarrier();`);
      lines.push(`    cur = 1u - cur;`);
      lines.push(`  }`);
    }
  }
  for (let i = 0; i < tm; i++) {
    const row = `m0 + ${(i >> 2) * 4 * wy + (i & 3)}u + ty * 4u`;
    for (let j = 0; j < cg; j++) {
      const col = `n0 + ${j * 4 * wx}u + tx * 4u`;
      const acc = `c${i}_${j}`;
      if (v.aligned) {
        const b = v.bias ? ` + vec4<f32>(bias[p.offBias + ${col}], bias[p.offBias + ${col} + 1u], bias[p.offBias + ${col} + 2u], bias[p.offBias + ${col} + 3u])` : '';
        lines.push(`  C[(p.offC + (${row}) * N + ${col}) / 4u] = ${acc}${b};`);
      } else {
        lines.push(`  { let gm = ${row}; let gn = ${col};`);
        lines.push(`    if (gm < M) { for (var c = 0u; c < 4u; c++) { if (gn + c < N) { C[p.offC + gm * N + gn + c] = ${acc}[c]${v.bias ? ' + bias[p.offBias + gn + c]' : ''}; } } } }`);
      }
    }
  }
  lines.push(`}`);
  return lines.join('\n');
}

/**
 * An aligned tile load split in two: global memory → registers (one vec4 per slot) and registers →
 * workgroup memory at a buffer offset, so the next tile's loads can be issued before the current
 * tile is multiplied.
 */
function stagedTile(which: 'A' | 'B', span: number, bk: number, threads: number, mnMajor: boolean) {
  const s = which === 'A' ? 'As' : 'Bs';
  const base = which === 'A' ? 'm0' : 'n0';
  const dim = which === 'A' ? 'M' : 'N';
  const off = which === 'A' ? 'p.offA' : 'p.offB';
  const total = (span * bk) / 4;
  const slots = Math.ceil(total / threads);
  const reg = (r: number) => `r${which}${r}`;
  const guarded = (r: number) => (r + 1) * threads > total;
  const declare = Array.from({ length: slots }, (_, r) => `  var ${reg(r)} = vec4<f32>(0.0);`);
  const load = (k0: string): string[] =>
    Array.from({ length: slots }, (_, r) => {
      const e = `(t + ${r * threads}u)`;
      const index = mnMajor
        ? `(${off} + (${k0} + ${e} / ${span / 4}u) * ${dim} + ${base}) / 4u + ${e} % ${span / 4}u`
        : `(${off} + (${base} + ${e} / ${bk / 4}u) * K + ${k0}) / 4u + ${e} % ${bk / 4}u`;
      const stmt = `${reg(r)} = ${which}[${index}];`;
      return guarded(r) ? `    if (${e} < ${total}u) { ${stmt} }` : `    ${stmt}`;
    });
  const store = (at: string): string[] =>
    Array.from({ length: slots }, (_, r) => {
      const e = `(t + ${r * threads}u)`;
      let stmt: string;
      if (mnMajor) stmt = `${s}[${at} + (${e} / ${span / 4}u) * ${span / 4}u + ${e} % ${span / 4}u] = ${reg(r)};`;
      else {
        stmt = `{ let q = ${e} % ${bk / 4}u; let rr = ${e} / ${bk / 4}u; for (var c = 0u; c < 4u; c++) { ${s}[${at} + (q * 4u + c) * ${span / 4}u + rr / 4u][rr % 4u] = ${reg(r)}[c]; } }`;
      }
      return guarded(r) ? `    if (${e} < ${total}u) { ${stmt} }` : `    ${stmt}`;
    });
  return { declare, load, store };
}

/**
 * Loads one bk-deep tile of op(A) (rows m) or op(B) (columns n) into As/Bs laid out [k][mn].
 * `mnMajor`: the stored matrix runs along m/n (Aᵀ stored K×M, or B stored K×N), so vec4s copy straight.
 */
function loadTile(which: 'A' | 'B', v: GemmVariant, span: number, bk: number, threads: number, mnMajor: boolean): string[] {
  const s = which === 'A' ? 'As' : 'Bs';
  const base = which === 'A' ? 'm0' : 'n0';
  const dim = which === 'A' ? 'M' : 'N';
  const off = which === 'A' ? 'p.offA' : 'p.offB';
  const out: string[] = [];
  if (v.aligned) {
    const total = (span * bk) / 4;
    for (let r = 0; r < Math.ceil(total / threads); r++) {
      const guard = (r + 1) * threads > total;
      out.push(`    { let e = t + ${r * threads}u;${guard ? ` if (e < ${total}u) {` : ''}`);
      if (mnMajor) {
        out.push(`      let q = e % ${span / 4}u; let k = e / ${span / 4}u;`);
        out.push(`      ${s}[k * ${span / 4}u + q] = ${which}[(${off} + (k0 + k) * ${dim} + ${base}) / 4u + q];`);
      } else {
        out.push(`      let q = e % ${bk / 4}u; let r = e / ${bk / 4}u;`);
        out.push(`      let val = ${which}[(${off} + (${base} + r) * K + k0) / 4u + q];`);
        out.push(`      for (var c = 0u; c < 4u; c++) { ${s}[(q * 4u + c) * ${span / 4}u + r / 4u][r % 4u] = val[c]; }`);
      }
      out.push(`    ${guard ? '}' : ''}}`);
    }
    return out;
  }
  const total = span * bk;
  for (let r = 0; r < Math.ceil(total / threads); r++) {
    const guard = (r + 1) * threads > total;
    out.push(`    { let e = t + ${r * threads}u;${guard ? ` if (e < ${total}u) {` : ''}`);
    if (mnMajor) out.push(`      let r = e % ${span}u; let k = e / ${span}u;`);
    else out.push(`      let k = e % ${bk}u; let r = e / ${bk}u;`);
    out.push(`      let g = ${base} + r; let gk = k0 + k; var val = 0.0;`);
    const index = mnMajor ? `gk * ${dim} + g` : `g * K + gk`;
    out.push(`      if (g < ${dim} && gk < K) { val = ${which}[${off} + ${index}]; }`);
    out.push(`      ${s}[k * ${span / 4}u + r / 4u][r % 4u] = val;`);
    out.push(`    ${guard ? '}' : ''}}`);
  }
  return out;
}

export interface GemmCall {
  M: number;
  N: number;
  K: number;
  transA?: boolean;
  transB?: boolean;
  /** Element offsets into A, B, C and bias. */
  offA?: number;
  offB?: number;
  offC?: number;
  offBias?: number;
  bias?: GpuArray | null;
  /** Force a tile (benchmarks); otherwise chosen from the sizes. */
  tile?: GemmTile;
}

/** Records C = op(A)·op(B) (+ bias) into the open frame. */
export function gemm(ctx: GpuContext, A: GpuArray, B: GpuArray, C: GpuArray, call: GemmCall): void {
  const { M, N, K } = call;
  const offA = call.offA ?? 0;
  const offB = call.offB ?? 0;
  const offC = call.offC ?? 0;
  const fits = (t: GemmTile) => M % t.bm === 0 && N % t.bn === 0 && K % t.bk === 0 && offA % 4 === 0 && offB % 4 === 0 && offC % 4 === 0;
  let tile = call.tile;
  if (!tile && M * N >= 1 << 22) tile = [TILE_HUGE, TILE_HUGE_16K].find((t) => tileStorage(t) <= ctx.workgroupStorage && fits(t));
  tile ??= pickTile(M, N);
  const aligned = fits(tile);
  const variant: GemmVariant = { transA: !!call.transA, transB: !!call.transB, bias: !!call.bias, aligned, tile };
  const code = gemmWgsl(variant);
  const u = ctx.uniform([M, N, K, offA, offB, offC, call.offBias ?? 0, 0]);
  const bindings = [u, A, B, C, ...(call.bias ? [call.bias] : [])];
  ctx.dispatch(code, bindings, [Math.ceil(N / tile.bn), Math.ceil(M / tile.bm)]);
}

export function pickTile(M: number, N: number): GemmTile {
  if (M * N >= 1 << 20 && M >= 128 && N >= 128) return TILE_LARGE;
  if (M * N >= 1 << 15) return TILE_MEDIUM;
  return TILE_SMALL;
}
