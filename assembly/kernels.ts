// Loom float32 GEMM kernels for WebAssembly SIMD128 (deterministic SIMD only, no relaxed-simd).
//
// Every output element follows one fixed reduction order, whatever the shape, layout or blocking:
//   s_p = (((0 + a·b) + a·b) + …) over k in block p = [p·KC, min(K, (p+1)·KC)), ascending k,
//   T   = s_0, then T = T + s_p for p = 1, 2, …, and finally T + bias[j] when a bias is given.
// Products and sums are single float32 operations (mul then add, never fused). M/N tiling, the row
// or column split, the operand layouts and the gemv paths only decide which lanes compute an element,
// never its order, so outputs are bit-identical across them.
//
// Pointers are byte offsets into linear memory, owned by the JS wrapper (src/kernels/wasm.ts).
// Layouts: A is [M×K] row-major (aKM = 0) or [K×M] (aKM = 1); B is [N×K] (bKN = 0, the A·Bᵀ case)
// or [K×N] (bKN = 1). C is [M×N] row-major and is overwritten.

const MR = 4;
const NR = 8;
const KC = 256;
const MC = 128;
const NC = 2048;
const PACK_A_BYTES = MC * KC * 4;
const PACK_B_BYTES = NC * KC * 4;
const TILE_BYTES = MR * NR * 4;
const GEMV_CHUNK = 4096;

/** First byte the JS side may use. */
export function heapBase(): usize {
  return (__heap_base + 15) & ~15;
}

/** Scratch bytes `gemm` needs at `work` (16-byte aligned): packed A block, packed B block, edge tile, gemv sums. */
export function workBytes(): usize {
  return PACK_A_BYTES + PACK_B_BYTES + TILE_BYTES + GEMV_CHUNK * 4;
}

/** The K block length of the reduction order above. */
export function kBlock(): i32 {
  return KC;
}

@inline function addr(base: usize, index: i32): usize {
  return base + (<usize>index << 2);
}

/** C[M×N] = op(A)·op(B) (+ bias[N] when bias ≠ 0), with the layouts described at the top. */
export function gemm(M: i32, N: i32, K: i32, a: usize, aKM: i32, b: usize, bKN: i32, c: usize, bias: usize, work: usize): void {
  if (M <= 0 || N <= 0 || K <= 0) return;
  const sums = work + PACK_A_BYTES + PACK_B_BYTES + TILE_BYTES;
  if (M == 1) {
    if (bKN) gemvKN(N, K, a, b, c, bias, sums);
    else gemvNK(N, K, a, b, c, bias);
    return;
  }
  // A few rows against B[K×N]: streaming B once per row beats packing all of B for one panel.
  if (bKN && M <= 4 && (!aKM || K <= MC * KC)) {
    for (let i = 0; i < M; i++) {
      let x = addr(a, i * K);
      if (aKM) {
        x = work;
        for (let k = 0; k < K; k++) store<f32>(addr(x, k), load<f32>(addr(a, k * M + i)));
      }
      gemvKN(N, K, x, b, addr(c, i * N), bias, sums);
    }
    return;
  }
  const packA = work;
  const packB = work + PACK_A_BYTES;
  const tile = packB + PACK_B_BYTES;
  const ldc = <usize>N << 2;
  for (let jc = 0; jc < N; jc += NC) {
    const nc = min(NC, N - jc);
    for (let pc = 0; pc < K; pc += KC) {
      const kc = min(KC, K - pc);
      const first = pc == 0;
      const biasBlock: usize = pc + kc == K ? bias : 0;
      if (bKN) packBKN(b, N, pc, kc, jc, nc, packB);
      else packBNK(b, K, pc, kc, jc, nc, packB);
      for (let ic = 0; ic < M; ic += MC) {
        const mc = min(MC, M - ic);
        if (aKM) packAKM(a, M, pc, kc, ic, mc, packA);
        else packAMK(a, K, pc, kc, ic, mc, packA);
        for (let jr = 0; jr < nc; jr += NR) {
          const nr = min(NR, nc - jr);
          const pb = packB + (<usize>(jr * kc) << 2);
          const j = jc + jr;
          const biasJ: usize = biasBlock ? addr(biasBlock, j) : 0;
          for (let ir = 0; ir < mc; ir += MR) {
            const mr = min(MR, mc - ir);
            const pa = packA + (<usize>(ir * kc) << 2);
            const cp = c + (<usize>(ic + ir) * ldc) + (<usize>j << 2);
            micro4x8(pa, pb, kc, cp, ldc, mr, nr, first, biasJ, tile);
          }
        }
      }
    }
  }
}

// 4×8 register tile: 8 f32x4 accumulators (V8 spills beyond about 9). Panels are k-major: pa holds
// 4 values per k, pb 8 values per k, zero-padded at the edges. Inlined into the loop nest because
// TurboFan only unrolls the k loop (by 4, about +20%) when it sits that deep; manual unrolling makes
// Binaryen regroup the sums and V8 spill.
@inline function micro4x8(pa: usize, pb: usize, kc: i32, c: usize, ldc: usize, mr: i32, nr: i32, first: bool, bias: usize, tile: usize): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0);
  let c10 = f32x4.splat(0), c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0);
  let c30 = f32x4.splat(0), c31 = f32x4.splat(0);
  for (let k = 0; k < kc; k++) {
    const b0 = v128.load(pb);
    const b1 = v128.load(pb, 16);
    let x = v128.load32_splat(pa);
    c00 = f32x4.add(c00, f32x4.mul(x, b0));
    c01 = f32x4.add(c01, f32x4.mul(x, b1));
    x = v128.load32_splat(pa, 4);
    c10 = f32x4.add(c10, f32x4.mul(x, b0));
    c11 = f32x4.add(c11, f32x4.mul(x, b1));
    x = v128.load32_splat(pa, 8);
    c20 = f32x4.add(c20, f32x4.mul(x, b0));
    c21 = f32x4.add(c21, f32x4.mul(x, b1));
    x = v128.load32_splat(pa, 12);
    c30 = f32x4.add(c30, f32x4.mul(x, b0));
    c31 = f32x4.add(c31, f32x4.mul(x, b1));
    pa += 16;
    pb += 32;
  }
  if (mr == MR && nr == NR) {
    storeRow(c, c00, c01, first, bias);
    storeRow(c + ldc, c10, c11, first, bias);
    storeRow(c + 2 * ldc, c20, c21, first, bias);
    storeRow(c + 3 * ldc, c30, c31, first, bias);
    return;
  }
  v128.store(tile, c00); v128.store(tile, c01, 16);
  v128.store(tile, c10, 32); v128.store(tile, c11, 48);
  v128.store(tile, c20, 64); v128.store(tile, c21, 80);
  v128.store(tile, c30, 96); v128.store(tile, c31, 112);
  for (let r = 0; r < mr; r++) {
    const row = c + <usize>r * ldc;
    for (let l = 0; l < nr; l++) {
      let v = load<f32>(addr(tile, r * NR + l));
      if (!first) v = load<f32>(addr(row, l)) + v;
      if (bias) v = v + load<f32>(addr(bias, l));
      store<f32>(addr(row, l), v);
    }
  }
}

@inline function storeRow(row: usize, s0: v128, s1: v128, first: bool, bias: usize): void {
  let v0 = s0, v1 = s1;
  if (!first) {
    v0 = f32x4.add(v128.load(row), v0);
    v1 = f32x4.add(v128.load(row, 16), v1);
  }
  if (bias) {
    v0 = f32x4.add(v0, v128.load(bias));
    v1 = f32x4.add(v1, v128.load(bias, 16));
  }
  v128.store(row, v0);
  v128.store(row, v1, 16);
}

// 4×4 transpose helpers: rows r0..r3 → columns, written to dst, dst+stride, dst+2·stride, dst+3·stride.
@inline function transposeStore(r0: v128, r1: v128, r2: v128, r3: v128, dst: usize, stride: usize): void {
  const t0 = f32x4.shuffle(r0, r1, 0, 4, 1, 5);
  const t1 = f32x4.shuffle(r0, r1, 2, 6, 3, 7);
  const t2 = f32x4.shuffle(r2, r3, 0, 4, 1, 5);
  const t3 = f32x4.shuffle(r2, r3, 2, 6, 3, 7);
  v128.store(dst, f32x4.shuffle(t0, t2, 0, 1, 4, 5));
  v128.store(dst + stride, f32x4.shuffle(t0, t2, 2, 3, 6, 7));
  v128.store(dst + 2 * stride, f32x4.shuffle(t1, t3, 0, 1, 4, 5));
  v128.store(dst + 3 * stride, f32x4.shuffle(t1, t3, 2, 3, 6, 7));
}

// A [M×K] row-major → MR-row panels, k-major, zero-padded rows.
function packAMK(a: usize, K: i32, pc: i32, kc: i32, ic: i32, mc: i32, dst: usize): void {
  for (let i = 0; i < mc; i += MR) {
    const rows = min(MR, mc - i);
    const panel = dst + (<usize>(i * kc) << 2);
    const src = addr(a, (ic + i) * K + pc);
    const ld = <usize>K << 2;
    if (rows == MR) {
      let k = 0;
      for (; k + 4 <= kc; k += 4) {
        const s = src + (<usize>k << 2);
        transposeStore(v128.load(s), v128.load(s + ld), v128.load(s + 2 * ld), v128.load(s + 3 * ld), panel + (<usize>k << 4), 16);
      }
      for (; k < kc; k++) {
        for (let r = 0; r < MR; r++) store<f32>(panel + (<usize>(k * MR + r) << 2), load<f32>(src + <usize>r * ld + (<usize>k << 2)));
      }
    } else {
      for (let k = 0; k < kc; k++) {
        for (let r = 0; r < MR; r++) {
          const v: f32 = r < rows ? load<f32>(src + <usize>r * ld + (<usize>k << 2)) : 0;
          store<f32>(panel + (<usize>(k * MR + r) << 2), v);
        }
      }
    }
  }
}

// A [K×M] (the transposed operand) → MR-row panels: each k is 4 contiguous values.
function packAKM(a: usize, M: i32, pc: i32, kc: i32, ic: i32, mc: i32, dst: usize): void {
  const ld = <usize>M << 2;
  for (let i = 0; i < mc; i += MR) {
    const rows = min(MR, mc - i);
    let p = dst + (<usize>(i * kc) << 2);
    let s = addr(a, pc * M + ic + i);
    if (rows == MR) {
      for (let k = 0; k < kc; k++) {
        v128.store(p, v128.load(s));
        p += 16;
        s += ld;
      }
    } else {
      for (let k = 0; k < kc; k++) {
        for (let r = 0; r < MR; r++) store<f32>(p + (<usize>r << 2), r < rows ? load<f32>(s + (<usize>r << 2)) : <f32>0);
        p += 16;
        s += ld;
      }
    }
  }
}

// B [N×K] → NR-column panels, k-major, zero-padded columns.
function packBNK(b: usize, K: i32, pc: i32, kc: i32, jc: i32, nc: i32, dst: usize): void {
  const ld = <usize>K << 2;
  for (let j = 0; j < nc; j += NR) {
    const cols = min(NR, nc - j);
    const panel = dst + (<usize>(j * kc) << 2);
    const src = addr(b, (jc + j) * K + pc);
    if (cols == NR) {
      let k = 0;
      for (; k + 4 <= kc; k += 4) {
        const s = src + (<usize>k << 2);
        const d = panel + (<usize>k << 5);
        transposeStore(v128.load(s), v128.load(s + ld), v128.load(s + 2 * ld), v128.load(s + 3 * ld), d, 32);
        const s4 = s + 4 * ld;
        transposeStore(v128.load(s4), v128.load(s4 + ld), v128.load(s4 + 2 * ld), v128.load(s4 + 3 * ld), d + 16, 32);
      }
      for (; k < kc; k++) {
        for (let l = 0; l < NR; l++) store<f32>(panel + (<usize>(k * NR + l) << 2), load<f32>(src + <usize>l * ld + (<usize>k << 2)));
      }
    } else {
      for (let k = 0; k < kc; k++) {
        for (let l = 0; l < NR; l++) {
          const v: f32 = l < cols ? load<f32>(src + <usize>l * ld + (<usize>k << 2)) : 0;
          store<f32>(panel + (<usize>(k * NR + l) << 2), v);
        }
      }
    }
  }
}

// B [K×N] → NR-column panels: each k is 8 contiguous values.
function packBKN(b: usize, N: i32, pc: i32, kc: i32, jc: i32, nc: i32, dst: usize): void {
  const ld = <usize>N << 2;
  for (let j = 0; j < nc; j += NR) {
    const cols = min(NR, nc - j);
    let p = dst + (<usize>(j * kc) << 2);
    let s = addr(b, pc * N + jc + j);
    if (cols == NR) {
      for (let k = 0; k < kc; k++) {
        v128.store(p, v128.load(s));
        v128.store(p, v128.load(s, 16), 16);
        p += 32;
        s += ld;
      }
    } else {
      for (let k = 0; k < kc; k++) {
        for (let l = 0; l < NR; l++) store<f32>(p + (<usize>l << 2), l < cols ? load<f32>(s + (<usize>l << 2)) : <f32>0);
        p += 32;
        s += ld;
      }
    }
  }
}

// y[N] = B[N×K]·x[K]: 8 rows of B at a time, transposed in registers so that each lane is one
// output summed in ascending k (the same order as the packed kernel).
function gemvNK(N: i32, K: i32, x: usize, b: usize, y: usize, bias: usize): void {
  const ld = <usize>K << 2;
  let j = 0;
  for (; j + 8 <= N; j += 8) {
    const r0 = addr(b, j * K);
    let t0 = f32x4.splat(0), t1 = f32x4.splat(0);
    for (let p = 0; p < K; p += KC) {
      const end = min(K, p + KC);
      let s0 = f32x4.splat(0), s1 = f32x4.splat(0);
      let k = p;
      for (; k + 4 <= end; k += 4) {
        const o = r0 + (<usize>k << 2);
        const a0 = v128.load(o), a1 = v128.load(o + ld), a2 = v128.load(o + 2 * ld), a3 = v128.load(o + 3 * ld);
        const o4 = o + 4 * ld;
        const b0 = v128.load(o4), b1 = v128.load(o4 + ld), b2 = v128.load(o4 + 2 * ld), b3 = v128.load(o4 + 3 * ld);
        const ta0 = f32x4.shuffle(a0, a1, 0, 4, 1, 5), ta1 = f32x4.shuffle(a0, a1, 2, 6, 3, 7);
        const ta2 = f32x4.shuffle(a2, a3, 0, 4, 1, 5), ta3 = f32x4.shuffle(a2, a3, 2, 6, 3, 7);
        const tb0 = f32x4.shuffle(b0, b1, 0, 4, 1, 5), tb1 = f32x4.shuffle(b0, b1, 2, 6, 3, 7);
        const tb2 = f32x4.shuffle(b2, b3, 0, 4, 1, 5), tb3 = f32x4.shuffle(b2, b3, 2, 6, 3, 7);
        const xp = addr(x, k);
        let xv = v128.load32_splat(xp);
        s0 = f32x4.add(s0, f32x4.mul(xv, f32x4.shuffle(ta0, ta2, 0, 1, 4, 5)));
        s1 = f32x4.add(s1, f32x4.mul(xv, f32x4.shuffle(tb0, tb2, 0, 1, 4, 5)));
        xv = v128.load32_splat(xp, 4);
        s0 = f32x4.add(s0, f32x4.mul(xv, f32x4.shuffle(ta0, ta2, 2, 3, 6, 7)));
        s1 = f32x4.add(s1, f32x4.mul(xv, f32x4.shuffle(tb0, tb2, 2, 3, 6, 7)));
        xv = v128.load32_splat(xp, 8);
        s0 = f32x4.add(s0, f32x4.mul(xv, f32x4.shuffle(ta1, ta3, 0, 1, 4, 5)));
        s1 = f32x4.add(s1, f32x4.mul(xv, f32x4.shuffle(tb1, tb3, 0, 1, 4, 5)));
        xv = v128.load32_splat(xp, 12);
        s0 = f32x4.add(s0, f32x4.mul(xv, f32x4.shuffle(ta1, ta3, 2, 3, 6, 7)));
        s1 = f32x4.add(s1, f32x4.mul(xv, f32x4.shuffle(tb1, tb3, 2, 3, 6, 7)));
      }
      for (; k < end; k++) {
        const o = r0 + (<usize>k << 2);
        const xv = v128.load32_splat(addr(x, k));
        let ca = f32x4.splat(load<f32>(o));
        ca = f32x4.replace_lane(ca, 1, load<f32>(o + ld));
        ca = f32x4.replace_lane(ca, 2, load<f32>(o + 2 * ld));
        ca = f32x4.replace_lane(ca, 3, load<f32>(o + 3 * ld));
        const o4 = o + 4 * ld;
        let cb = f32x4.splat(load<f32>(o4));
        cb = f32x4.replace_lane(cb, 1, load<f32>(o4 + ld));
        cb = f32x4.replace_lane(cb, 2, load<f32>(o4 + 2 * ld));
        cb = f32x4.replace_lane(cb, 3, load<f32>(o4 + 3 * ld));
        s0 = f32x4.add(s0, f32x4.mul(xv, ca));
        s1 = f32x4.add(s1, f32x4.mul(xv, cb));
      }
      if (p == 0) {
        t0 = s0;
        t1 = s1;
      } else {
        t0 = f32x4.add(t0, s0);
        t1 = f32x4.add(t1, s1);
      }
    }
    if (bias) {
      t0 = f32x4.add(t0, v128.load(addr(bias, j)));
      t1 = f32x4.add(t1, v128.load(addr(bias, j), 16));
    }
    v128.store(addr(y, j), t0);
    v128.store(addr(y, j), t1, 16);
  }
  for (; j < N; j++) {
    const row = addr(b, j * K);
    let t: f32 = 0;
    for (let p = 0; p < K; p += KC) {
      const end = min(K, p + KC);
      let s: f32 = 0;
      for (let k = p; k < end; k++) s = s + load<f32>(addr(x, k)) * load<f32>(addr(row, k));
      t = p == 0 ? s : t + s;
    }
    if (bias) t = t + load<f32>(addr(bias, j));
    store<f32>(addr(y, j), t);
  }
}

// y[N] = x[K]·B[K×N]: rows of B streamed contiguously, four at a time, into a chunk of running sums
// (lanes = outputs); each sum still takes its k terms one by one in ascending order.
function gemvKN(N: i32, K: i32, x: usize, b: usize, y: usize, bias: usize, sums: usize): void {
  const ld = <usize>N << 2;
  for (let j0 = 0; j0 < N; j0 += GEMV_CHUNK) {
    const w = min(GEMV_CHUNK, N - j0);
    const w4 = w & ~3;
    const w8 = w & ~7;
    for (let p = 0; p < K; p += KC) {
      const end = min(K, p + KC);
      memory.fill(sums, 0, <usize>w << 2);
      let k = p;
      for (; k + 4 <= end; k += 4) {
        const row = addr(b, k * N + j0);
        const xp = addr(x, k);
        const x0 = v128.load32_splat(xp), x1 = v128.load32_splat(xp, 4), x2 = v128.load32_splat(xp, 8), x3 = v128.load32_splat(xp, 12);
        let l = 0;
        for (; l < w8; l += 8) {
          const s = addr(sums, l), r = addr(row, l);
          let v = v128.load(s), u = v128.load(s, 16);
          v = f32x4.add(v, f32x4.mul(x0, v128.load(r)));
          u = f32x4.add(u, f32x4.mul(x0, v128.load(r, 16)));
          v = f32x4.add(v, f32x4.mul(x1, v128.load(r + ld)));
          u = f32x4.add(u, f32x4.mul(x1, v128.load(r + ld, 16)));
          v = f32x4.add(v, f32x4.mul(x2, v128.load(r + 2 * ld)));
          u = f32x4.add(u, f32x4.mul(x2, v128.load(r + 2 * ld, 16)));
          v = f32x4.add(v, f32x4.mul(x3, v128.load(r + 3 * ld)));
          u = f32x4.add(u, f32x4.mul(x3, v128.load(r + 3 * ld, 16)));
          v128.store(s, v);
          v128.store(s, u, 16);
        }
        for (; l < w; l++) {
          const s = addr(sums, l), r = addr(row, l);
          let v = load<f32>(s);
          v = v + load<f32>(xp) * load<f32>(r);
          v = v + load<f32>(xp, 4) * load<f32>(r + ld);
          v = v + load<f32>(xp, 8) * load<f32>(r + 2 * ld);
          v = v + load<f32>(xp, 12) * load<f32>(r + 3 * ld);
          store<f32>(s, v);
        }
      }
      for (; k < end; k++) {
        const row = addr(b, k * N + j0);
        const xv = v128.load32_splat(addr(x, k));
        const xs = load<f32>(addr(x, k));
        let l = 0;
        for (; l < w4; l += 4) {
          const s = addr(sums, l);
          v128.store(s, f32x4.add(v128.load(s), f32x4.mul(xv, v128.load(addr(row, l)))));
        }
        for (; l < w; l++) store<f32>(addr(sums, l), load<f32>(addr(sums, l)) + xs * load<f32>(addr(row, l)));
      }
      const out = addr(y, j0);
      if (p == 0) memory.copy(out, sums, <usize>w << 2);
      else {
        let l = 0;
        for (; l < w4; l += 4) v128.store(addr(out, l), f32x4.add(v128.load(addr(out, l)), v128.load(addr(sums, l))));
        for (; l < w; l++) store<f32>(addr(out, l), load<f32>(addr(out, l)) + load<f32>(addr(sums, l)));
      }
    }
    if (bias) {
      const out = addr(y, j0), bj = addr(bias, j0);
      let l = 0;
      for (; l < w4; l += 4) v128.store(addr(out, l), f32x4.add(v128.load(addr(out, l)), v128.load(addr(bj, l))));
      for (; l < w; l++) store<f32>(addr(out, l), load<f32>(addr(out, l)) + load<f32>(addr(bj, l)));
    }
  }
}
