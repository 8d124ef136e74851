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

const MR = 2;
const NR = 16;
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
  gemmRange(M, N, K, a, aKM, b, bKN, c, bias, work, 0, M, 0, N);
}

/**
 * Rows [i0, i1) and columns [j0, j1) of gemm's C, everything else untouched (the thread pool's share
 * of a product). Paths are chosen from the whole M, N, K, so every element gets the bits gemm gives it.
 * Callers split rows at multiples of 4 and columns at multiples of 16 (any split gives the same bits; whole tiles only save edge work).
 */
export function gemmRange(M: i32, N: i32, K: i32, a: usize, aKM: i32, b: usize, bKN: i32, c: usize, bias: usize, work: usize, i0: i32, i1: i32, j0: i32, j1: i32): void {
  if (M <= 0 || N <= 0 || K <= 0 || i1 <= i0 || j1 <= j0) return;
  const sums = work + PACK_A_BYTES + PACK_B_BYTES + TILE_BYTES;
  const biasJ0: usize = bias ? addr(bias, j0) : 0;
  if (M == 1) {
    if (bKN) gemvKN(j1 - j0, K, a, addr(b, j0), addr(c, j0), biasJ0, sums, N);
    else gemvNK(j1 - j0, K, a, addr(b, j0 * K), addr(c, j0), biasJ0);
    return;
  }
  // A few rows against B[K×N]: streaming B once per row beats packing all of B for one panel.
  if (bKN && M <= 4 && (!aKM || K <= MC * KC)) {
    for (let i = i0; i < i1; i++) {
      let x = addr(a, i * K);
      if (aKM) {
        x = work;
        for (let k = 0; k < K; k++) store<f32>(addr(x, k), load<f32>(addr(a, k * M + i)));
      }
      gemvKN(j1 - j0, K, x, addr(b, j0), addr(c, i * N + j0), biasJ0, sums, N);
    }
    return;
  }
  const packA = work;
  const packB = work + PACK_A_BYTES;
  const tile = packB + PACK_B_BYTES;
  const ldc = <usize>N << 2;
  for (let jc = j0; jc < j1; jc += NC) {
    const nc = min(NC, j1 - jc);
    for (let pc = 0; pc < K; pc += KC) {
      const kc = min(KC, K - pc);
      const first = pc == 0;
      const biasBlock: usize = pc + kc == K ? bias : 0;
      if (bKN) packBKN(b, N, pc, kc, jc, nc, packB);
      else packBNK(b, K, pc, kc, jc, nc, packB);
      for (let ic = i0; ic < i1; ic += MC) {
        const mc = min(MC, i1 - ic);
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
            micro2x16(pa, pb, kc, cp, ldc, mr, nr, first, biasJ, tile);
          }
        }
      }
    }
  }
}

// 2×16 register tile: 8 f32x4 accumulators (V8 spills beyond about 9), two A splats and four B
// loads per k (on Zen 4 the loop alone runs 3–5% faster than 4×8's four splats and two loads, a
// whole 1024³ product 1–2%; same bits). Panels are k-major:
// pa holds 2 values per k, pb 16 values per k, zero-padded at the edges. Inlined into the loop nest
// because TurboFan only unrolls the k loop (by 4) when it sits that deep; manual unrolling makes
// Binaryen regroup the sums and V8 spill. A pointer compare ends the loop (no counter).
@inline function micro2x16(pa: usize, pb: usize, kc: i32, c: usize, ldc: usize, mr: i32, nr: i32, first: bool, bias: usize, tile: usize): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0), c02 = f32x4.splat(0), c03 = f32x4.splat(0);
  let c10 = f32x4.splat(0), c11 = f32x4.splat(0), c12 = f32x4.splat(0), c13 = f32x4.splat(0);
  const end = pb + (<usize>kc << 6);
  while (pb < end) {
    const b0 = v128.load(pb), b1 = v128.load(pb, 16), b2 = v128.load(pb, 32), b3 = v128.load(pb, 48);
    let x = v128.load32_splat(pa);
    c00 = f32x4.add(c00, f32x4.mul(x, b0));
    c01 = f32x4.add(c01, f32x4.mul(x, b1));
    c02 = f32x4.add(c02, f32x4.mul(x, b2));
    c03 = f32x4.add(c03, f32x4.mul(x, b3));
    x = v128.load32_splat(pa, 4);
    c10 = f32x4.add(c10, f32x4.mul(x, b0));
    c11 = f32x4.add(c11, f32x4.mul(x, b1));
    c12 = f32x4.add(c12, f32x4.mul(x, b2));
    c13 = f32x4.add(c13, f32x4.mul(x, b3));
    pa += 8;
    pb += 64;
  }
  if (mr == MR && nr == NR) {
    storeRow16(c, c00, c01, c02, c03, first, bias);
    storeRow16(c + ldc, c10, c11, c12, c13, first, bias);
    return;
  }
  v128.store(tile, c00); v128.store(tile, c01, 16); v128.store(tile, c02, 32); v128.store(tile, c03, 48);
  v128.store(tile, c10, 64); v128.store(tile, c11, 80); v128.store(tile, c12, 96); v128.store(tile, c13, 112);
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

// One row of 16 results: C = (C when not the first K block) + sums (+ bias on the last block).
@inline function storeRow16(row: usize, s0: v128, s1: v128, s2: v128, s3: v128, first: bool, bias: usize): void {
  storeRow(row, s0, s1, first, bias);
  storeRow(row + 32, s2, s3, first, bias ? bias + 32 : 0);
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
        const r0 = v128.load(s), r1 = v128.load(s + ld);
        const d = panel + (<usize>k << 3);
        v128.store(d, f32x4.shuffle(r0, r1, 0, 4, 1, 5));
        v128.store(d, f32x4.shuffle(r0, r1, 2, 6, 3, 7), 16);
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

// A [K×M] (the transposed operand) → MR-row panels: each k is MR contiguous values.
function packAKM(a: usize, M: i32, pc: i32, kc: i32, ic: i32, mc: i32, dst: usize): void {
  const ld = <usize>M << 2;
  for (let i = 0; i < mc; i += MR) {
    const rows = min(MR, mc - i);
    let p = dst + (<usize>(i * kc) << 2);
    let s = addr(a, pc * M + ic + i);
    if (rows == MR) {
      for (let k = 0; k < kc; k++) {
        store<u64>(p, load<u64>(s));
        p += 8;
        s += ld;
      }
    } else {
      for (let k = 0; k < kc; k++) {
        for (let r = 0; r < MR; r++) store<f32>(p + (<usize>r << 2), r < rows ? load<f32>(s + (<usize>r << 2)) : <f32>0);
        p += 8;
        s += ld;
      }
    }
  }
}

// B [N×K] → panels of w columns (NR for gemm, 8 for gemmPanels), k-major, zero-padded columns.
function packBNK(b: usize, K: i32, pc: i32, kc: i32, jc: i32, nc: i32, dst: usize, w: i32 = NR): void {
  const ld = <usize>K << 2;
  const rowB = <usize>w << 2;
  for (let j = 0; j < nc; j += w) {
    const cols = min(w, nc - j);
    const panel = dst + (<usize>(j * kc) << 2);
    const src = addr(b, (jc + j) * K + pc);
    if (cols == w) {
      let k = 0;
      for (; k + 4 <= kc; k += 4) {
        const d = panel + <usize>k * rowB;
        for (let q = 0; q < w; q += 4) {
          const s = src + (<usize>k << 2) + <usize>q * ld;
          transposeStore(v128.load(s), v128.load(s + ld), v128.load(s + 2 * ld), v128.load(s + 3 * ld), d + (<usize>q << 2), rowB);
        }
      }
      for (; k < kc; k++) {
        for (let l = 0; l < w; l++) store<f32>(panel + (<usize>(k * w + l) << 2), load<f32>(src + <usize>l * ld + (<usize>k << 2)));
      }
    } else {
      for (let k = 0; k < kc; k++) {
        for (let l = 0; l < w; l++) {
          const v: f32 = l < cols ? load<f32>(src + <usize>l * ld + (<usize>k << 2)) : 0;
          store<f32>(panel + (<usize>(k * w + l) << 2), v);
        }
      }
    }
  }
}

// B [K×N] → panels of w columns (NR for gemm, 8 for gemmPanels): each k is w contiguous values.
function packBKN(b: usize, N: i32, pc: i32, kc: i32, jc: i32, nc: i32, dst: usize, w: i32 = NR): void {
  const ld = <usize>N << 2;
  const rowB = <usize>w << 2;
  for (let j = 0; j < nc; j += w) {
    const cols = min(w, nc - j);
    let p = dst + (<usize>(j * kc) << 2);
    let s = addr(b, pc * N + jc + j);
    if (cols == w) {
      for (let k = 0; k < kc; k++) {
        for (let q: usize = 0; q < rowB; q += 16) v128.store(p + q, v128.load(s + q));
        p += rowB;
        s += ld;
      }
    } else {
      for (let k = 0; k < kc; k++) {
        for (let l = 0; l < w; l++) store<f32>(p + (<usize>l << 2), l < cols ? load<f32>(s + (<usize>l << 2)) : <f32>0);
        p += rowB;
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

// y[N] = x[K]·B[K×N] (row stride ldb ≥ N): rows of B streamed contiguously, four at a time, into a
// chunk of running sums (lanes = outputs); each sum still takes its k terms one by one in ascending order.
function gemvKN(N: i32, K: i32, x: usize, b: usize, y: usize, bias: usize, sums: usize, ldb: i32): void {
  const ld = <usize>ldb << 2;
  for (let j0 = 0; j0 < N; j0 += GEMV_CHUNK) {
    const w = min(GEMV_CHUNK, N - j0);
    const w4 = w & ~3;
    const w8 = w & ~7;
    for (let p = 0; p < K; p += KC) {
      const end = min(K, p + KC);
      memory.fill(sums, 0, <usize>w << 2);
      let k = p;
      for (; k + 4 <= end; k += 4) {
        const row = addr(b, k * ldb + j0);
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
        const row = addr(b, k * ldb + j0);
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

// ---- q4_0 / int8-row products for LLM decoding (Loom-TS src/kernels/quantWasm.ts) ----
//
// out[i][r] = Σ_c W[r][c]·x[i][c] (+ bias[r]) for i < M, with W packed as ggml's Q4_0 blocks (18 bytes:
// fp16 scale, 16 bytes of nibbles; low nibble j, high nibble j + 16; weight (q − 8)·scale) or as int8
// rows with one float32 scale per row. int8RowGemm (float x, any width): 16-column groups added
// lane-wise in column order, then any tail. Lanes are summed (0 + 1) + (2 + 3) at the end. M only
// repeats the same work per row of x, so results do not depend on M. `tot` is M·16 bytes of scratch.

// An fp16 as float32, exactly. Normal values (all but the rarest scales) move their exponent and
// mantissa bits over with one integer add (float32's bias is 112 more); subnormals (m·2⁻²⁴), infinities
// and NaNs take the branch.
@inline function q4_0HalfToF32(h: u32): f32 {
  const sign = (h & 0x8000) << 16;
  const e = h & 0x7c00;
  if (e != 0 && e != 0x7c00) return reinterpret<f32>((((h & 0x7fff) << 13) + (112 << 23)) | sign);
  if (e != 0) return reinterpret<f32>(sign | 0x7f800000 | ((h & 0x3ff) << 13));
  const v = <f32>(h & 0x3ff) * <f32>5.9604644775390625e-8;
  return sign ? -v : v;
}

// One 32-value block's i32 lane sums: w0…w3 (8 int16 weights each, in column order) · the int16 x at qb.
@inline function dotBlockQ16(w0: v128, w1: v128, w2: v128, w3: v128, qb: usize): v128 {
  return i32x4.add(
    i32x4.add(i32x4.dot_i16x8_s(w0, v128.load(qb)), i32x4.dot_i16x8_s(w1, v128.load(qb, 16))),
    i32x4.add(i32x4.dot_i16x8_s(w2, v128.load(qb, 32)), i32x4.dot_i16x8_s(w3, v128.load(qb, 48))),
  );
}

@inline function q4_0Lanes(v: v128): f32 {
  return (f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1)) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
}

export function int8RowGemm(M: i32, rows: i32, cols: i32, w: usize, scales: usize, x: usize, out: usize, bias: usize, tot: usize): void {
  const vec = cols & ~15;
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < M; i++) v128.store(tot + (<usize>i << 4), f32x4.splat(0));
    const row = w + <usize>r * <usize>cols;
    for (let c = 0; c < vec; c += 16) {
      const q = v128.load(row + <usize>c);
      const q0 = i16x8.extend_low_i8x16_s(q), q1 = i16x8.extend_high_i8x16_s(q);
      const w0 = f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(q0));
      const w1 = f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(q0));
      const w2 = f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(q1));
      const w3 = f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(q1));
      for (let i = 0; i < M; i++) {
        const xc = x + ((<usize>i * <usize>cols + <usize>c) << 2);
        const s = f32x4.add(f32x4.add(f32x4.mul(w0, v128.load(xc)), f32x4.mul(w1, v128.load(xc, 16))), f32x4.add(f32x4.mul(w2, v128.load(xc, 32)), f32x4.mul(w3, v128.load(xc, 48))));
        const t = tot + (<usize>i << 4);
        v128.store(t, f32x4.add(v128.load(t), s));
      }
    }
    const scale = load<f32>(scales + (<usize>r << 2));
    const bv: f32 = bias ? load<f32>(bias + (<usize>r << 2)) : 0;
    for (let i = 0; i < M; i++) {
      let s = q4_0Lanes(v128.load(tot + (<usize>i << 4)));
      for (let c = vec; c < cols; c++) s += <f32>load<i8>(row + <usize>c) * load<f32>(x + ((<usize>i * <usize>cols + <usize>c) << 2));
      store<f32>(out + ((<usize>i * <usize>rows + <usize>r) << 2), s * scale + bv);
    }
  }
}

// Integer-dot variants: each 32-value block of a row of x is first rounded to int16 with its own
// scale sx = max|x|/32767 (nearest, ties to even), then products are exact i32 dot products of
// int16 pairs; per block the i32 lane sums become float32 and are multiplied by (weight scale · sx),
// then added to a 4-lane total in block order. Rounding x costs at most sx/2 per value (about 1e-5
// of the block's largest), as ggml's q8 activations do at far coarser steps. `xq` holds M·cols int16,
// `xs` M·cols/32 float32 scales. Results do not depend on M.

export function quantizeRowsQ16(M: i32, cols: i32, x: usize, xq: usize, xs: usize): void {
  const blocks = cols >> 5;
  for (let i = 0; i < M; i++) {
    for (let b = 0; b < blocks; b++) {
      const xb = x + ((<usize>i * <usize>cols + (<usize>b << 5)) << 2);
      let m = f32x4.splat(0);
      for (let j = 0; j < 32; j += 4) m = f32x4.max(m, f32x4.abs(v128.load(xb + (<usize>j << 2))));
      const amax = max(max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1)), max(f32x4.extract_lane(m, 2), f32x4.extract_lane(m, 3)));
      const s: f32 = amax / <f32>32767;
      store<f32>(xs + ((<usize>i * <usize>blocks + <usize>b) << 2), s);
      const inv = f32x4.splat(s > 0 ? <f32>1 / s : <f32>0);
      const qb = xq + ((<usize>i * <usize>cols + (<usize>b << 5)) << 1);
      for (let j = 0; j < 32; j += 8) {
        const a = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(xb + (<usize>j << 2)), inv)));
        const c = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(xb + (<usize>j << 2), 16), inv)));
        v128.store(qb + (<usize>j << 1), i16x8.narrow_i32x4_s(a, c));
      }
    }
  }
}

/**
 * The Q4_0 kernels' constants, 4 lanes each: nibble mask (bytes 15), nibble offset (bytes 8), then
 * q4_0Scales4's fp16 exponent mask, mantissa mask, magnitude mask, exponent rebias, ±∞ bits, 2⁻²⁴ and
 * sign bit. Read into locals before the loop: V8 rebuilt these as v128 constants inside the one-row
 * loop (3 instructions each); loaded once, a decode step's product runs 8 % faster, same bits.
 */
const Q4_CONSTANTS = memory.data<i32>([
  0x0f0f0f0f, 0x0f0f0f0f, 0x0f0f0f0f, 0x0f0f0f0f, 0x08080808, 0x08080808, 0x08080808, 0x08080808,
  0x7c00, 0x7c00, 0x7c00, 0x7c00, 0x3ff, 0x3ff, 0x3ff, 0x3ff, 0x7fff, 0x7fff, 0x7fff, 0x7fff,
  112 << 23, 112 << 23, 112 << 23, 112 << 23, 0x7f800000, 0x7f800000, 0x7f800000, 0x7f800000,
  0x33800000, 0x33800000, 0x33800000, 0x33800000, 0x8000, 0x8000, 0x8000, 0x8000,
], 16);

// Four consecutive blocks' fp16 scales (at blk, blk + 18, …) as float32, exactly as q4_0HalfToF32 reads each; c = Q4_CONSTANTS.
@inline function q4_0Scales4(blk: usize, c: usize): v128 {
  let h = i32x4.splat(<i32>load<u16>(blk));
  h = i32x4.replace_lane(h, 1, <i32>load<u16>(blk, 18));
  h = i32x4.replace_lane(h, 2, <i32>load<u16>(blk, 36));
  h = i32x4.replace_lane(h, 3, <i32>load<u16>(blk, 54));
  const expMask = v128.load(c, 32);
  const e = v128.and(h, expMask);
  const m = v128.and(h, v128.load(c, 48));
  const normal = i32x4.add(i32x4.shl(v128.and(h, v128.load(c, 64)), 13), v128.load(c, 80));
  const special = v128.or(v128.load(c, 96), i32x4.shl(m, 13));
  const subnormal = f32x4.mul(f32x4.convert_i32x4_s(m), v128.load(c, 112));
  const mag = v128.bitselect(subnormal, v128.bitselect(special, normal, i32x4.eq(e, expMask)), i32x4.eq(e, i32x4.splat(0)));
  return v128.or(mag, i32x4.shl(v128.and(h, v128.load(c, 128)), 16));
}

// acc + (the block's i32 lane sums with the int16 x at qb, as float32)·sc, for the Q4_0 block at blk (low: bytes 15, eight: bytes 8).
@inline function q4_0BlockAdd(blk: usize, qb: usize, sc: v128, acc: v128, low: v128, eight: v128): v128 {
  const q = v128.load(blk, 2);
  const lo = i8x16.sub(v128.and(q, low), eight);
  // Each byte's high nibble: a 16-bit shift then the nibble mask (x86 has no byte shift; i8x16.shr_u is emulated).
  const hi = i8x16.sub(v128.and(i16x8.shr_u(q, 4), low), eight);
  const d = dotBlockQ16(i16x8.extend_low_i8x16_s(lo), i16x8.extend_high_i8x16_s(lo), i16x8.extend_low_i8x16_s(hi), i16x8.extend_high_i8x16_s(hi), qb);
  return f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(d), sc));
}

export function q4_0GemmQ16(M: i32, rows: i32, cols: i32, w: usize, xq: usize, xs: usize, out: usize, bias: usize, tot: usize): void {
  const blocks = cols >> 5;
  const low = v128.load(Q4_CONSTANTS), eight = v128.load(Q4_CONSTANTS, 16);
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < M; i++) v128.store(tot + (<usize>i << 4), f32x4.splat(0));
    const row = w + <usize>r * <usize>blocks * 18;
    if (M == 1) {
      // One row of x (decoding): the total stays in a register, and four blocks' scales convert at once.
      let one = f32x4.splat(0);
      let b = 0;
      for (; b + 4 <= blocks; b += 4) {
        const blk = row + <usize>b * 18;
        const qb = xq + (<usize>b << 6);
        const sc = f32x4.mul(q4_0Scales4(blk, Q4_CONSTANTS), v128.load(xs + (<usize>b << 2)));
        one = q4_0BlockAdd(blk, qb, f32x4.splat(f32x4.extract_lane(sc, 0)), one, low, eight);
        one = q4_0BlockAdd(blk + 18, qb + 64, f32x4.splat(f32x4.extract_lane(sc, 1)), one, low, eight);
        one = q4_0BlockAdd(blk + 36, qb + 128, f32x4.splat(f32x4.extract_lane(sc, 2)), one, low, eight);
        one = q4_0BlockAdd(blk + 54, qb + 192, f32x4.splat(f32x4.extract_lane(sc, 3)), one, low, eight);
      }
      for (; b < blocks; b++) {
        const blk = row + <usize>b * 18;
        one = q4_0BlockAdd(blk, xq + (<usize>b << 6), f32x4.splat(q4_0HalfToF32(<u32>load<u16>(blk)) * load<f32>(xs + (<usize>b << 2))), one, low, eight);
      }
      v128.store(tot, one);
    }
    for (let b = 0; M > 1 && b < blocks; b++) {
      const blk = row + <usize>b * 18;
      const ws = q4_0HalfToF32(<u32>load<u16>(blk));
      const q = v128.load(blk, 2);
      const lo = i8x16.sub(v128.and(q, low), eight);
      const hi = i8x16.sub(v128.and(i16x8.shr_u(q, 4), low), eight);
      const lo0 = i16x8.extend_low_i8x16_s(lo), lo1 = i16x8.extend_high_i8x16_s(lo);
      const hi0 = i16x8.extend_low_i8x16_s(hi), hi1 = i16x8.extend_high_i8x16_s(hi);
      for (let i = 0; i < M; i++) {
        const qb = xq + ((<usize>i * <usize>cols + (<usize>b << 5)) << 1);
        const sc = f32x4.splat(ws * load<f32>(xs + ((<usize>i * <usize>blocks + <usize>b) << 2)));
        const t = tot + (<usize>i << 4);
        v128.store(t, f32x4.add(v128.load(t), f32x4.mul(f32x4.convert_i32x4_s(dotBlockQ16(lo0, lo1, hi0, hi1, qb)), sc)));
      }
    }
    const bv: f32 = bias ? load<f32>(bias + (<usize>r << 2)) : 0;
    for (let i = 0; i < M; i++) {
      store<f32>(out + ((<usize>i * <usize>rows + <usize>r) << 2), q4_0Lanes(v128.load(tot + (<usize>i << 4))) + bv);
    }
  }
}

export function int8RowGemmQ16(M: i32, rows: i32, cols: i32, w: usize, scales: usize, xq: usize, xs: usize, out: usize, bias: usize, tot: usize): void {
  const blocks = cols >> 5;
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < M; i++) v128.store(tot + (<usize>i << 4), f32x4.splat(0));
    const row = w + <usize>r * <usize>cols;
    let one = f32x4.splat(0);
    for (let b = 0; b < blocks; b++) {
      // Eight int8 weights widened to int16 per load (one pmovsxbw each; extending a vector's high half takes two).
      const wb = row + (<usize>b << 5);
      const a0 = v128.load8x8_s(wb), a1 = v128.load8x8_s(wb, 8), a2 = v128.load8x8_s(wb, 16), a3 = v128.load8x8_s(wb, 24);
      if (M == 1) {
        one = f32x4.add(one, f32x4.mul(f32x4.convert_i32x4_s(dotBlockQ16(a0, a1, a2, a3, xq + (<usize>b << 6))), f32x4.splat(load<f32>(xs + (<usize>b << 2)))));
        continue;
      }
      for (let i = 0; i < M; i++) {
        const qb = xq + ((<usize>i * <usize>cols + (<usize>b << 5)) << 1);
        const sc = f32x4.splat(load<f32>(xs + ((<usize>i * <usize>blocks + <usize>b) << 2)));
        const t = tot + (<usize>i << 4);
        v128.store(t, f32x4.add(v128.load(t), f32x4.mul(f32x4.convert_i32x4_s(dotBlockQ16(a0, a1, a2, a3, qb)), sc)));
      }
    }
    if (M == 1) v128.store(tot, one);
    const scale = load<f32>(scales + (<usize>r << 2));
    const bv: f32 = bias ? load<f32>(bias + (<usize>r << 2)) : 0;
    for (let i = 0; i < M; i++) {
      store<f32>(out + ((<usize>i * <usize>rows + <usize>r) << 2), q4_0Lanes(v128.load(tot + (<usize>i << 4))) * scale + bv);
    }
  }
}

// ---- Loom-TS CPU kernels (issue 6): optimizer updates ----
//
// Elementwise over whole vectors: the last one may run past n into the padding that every buffer
// has up to its next 16 bytes (WasmParamState and WasmKernels.place lay them out so); those lanes are
// never read back. Lanes are independent, so the results equal the scalar loops' bits.
//
// AdamW in float32, one rounding per operation (the TS reference in src/kernels/backend.ts adamwStep
// does the same with Math.fround): wd = w·decay; m = m + (g − m)·c1; v = v·b2 + (c2·g)·g;
// d = sqrt(v) / bc2 + eps; w = wd − step·(m / d).
export function adamw(n: i32, w: usize, g: usize, m: usize, v: usize, decay: f32, c1: f32, b2: f32, c2: f32, bc2: f32, eps: f32, step: f32): void {
  const vdecay = f32x4.splat(decay), vc1 = f32x4.splat(c1), vb2 = f32x4.splat(b2), vc2 = f32x4.splat(c2);
  const vbc2 = f32x4.splat(bc2), veps = f32x4.splat(eps), vstep = f32x4.splat(step);
  for (let i = 0; i < n; i += 4) {
    const o = <usize>i << 2;
    const gi = v128.load(g + o);
    let mi = v128.load(m + o);
    mi = f32x4.add(mi, f32x4.mul(f32x4.sub(gi, mi), vc1));
    const vi = f32x4.add(f32x4.mul(v128.load(v + o), vb2), f32x4.mul(f32x4.mul(vc2, gi), gi));
    const d = f32x4.add(f32x4.div(f32x4.sqrt(vi), vbc2), veps);
    const wd = f32x4.mul(v128.load(w + o), vdecay);
    v128.store(w + o, f32x4.sub(wd, f32x4.mul(vstep, f32x4.div(mi, d))));
    v128.store(m + o, mi);
    v128.store(v + o, vi);
  }
}

// SGD (torch.optim.SGD) in float32, one rounding per operation, constants already float32 (the TS
// reference in src/kernels/backend.ts sgdStep does the same): with weight decay g = g + decay·w; with
// momentum b = g on the first step, else b·momentum + keep·g (keep = 1 − dampening), and g = g +
// momentum·b (Nesterov) or b; then w = w − lr·g. Flags: 1 momentum (buf holds b), 2 first step,
// 4 Nesterov, 8 weight decay.
export function sgd(n: i32, w: usize, g: usize, buf: usize, decay: f32, momentum: f32, keep: f32, lr: f32, flags: i32): void {
  const useMomentum = (flags & 1) != 0, first = (flags & 2) != 0, nesterov = (flags & 4) != 0, useDecay = (flags & 8) != 0;
  const vdecay = f32x4.splat(decay), vmom = f32x4.splat(momentum), vkeep = f32x4.splat(keep), vlr = f32x4.splat(lr);
  for (let i = 0; i < n; i += 4) {
    const o = <usize>i << 2;
    const wi = v128.load(w + o);
    let gi = v128.load(g + o);
    if (useDecay) gi = f32x4.add(gi, f32x4.mul(vdecay, wi));
    if (useMomentum) {
      const b = first ? gi : f32x4.add(f32x4.mul(v128.load(buf + o), vmom), f32x4.mul(vkeep, gi));
      v128.store(buf + o, b);
      gi = nesterov ? f32x4.add(gi, f32x4.mul(vmom, b)) : b;
    }
    v128.store(w + o, f32x4.sub(wi, f32x4.mul(vlr, gi)));
  }
}

// RMSprop (torch.optim.RMSprop) in float32, one rounding per operation, constants already float32 (src/kernels/backend.ts
// rmspropStep): with weight decay g = g + decay·w; s = s·alpha + (c·g)·g (c = 1 − alpha); centered:
// a = a + (g − a)·c and r = sqrt(s − a·a) + eps, else r = sqrt(s) + eps; with momentum b = b·momentum
// + g / r and w = w − lr·b, else w = w − lr·(g / r). Flags: 1 centered (avg holds a), 2 momentum (buf
// holds b), 8 weight decay.
export function rmsprop(n: i32, w: usize, g: usize, sq: usize, avg: usize, buf: usize, decay: f32, alpha: f32, c: f32, eps: f32, momentum: f32, lr: f32, flags: i32): void {
  const centered = (flags & 1) != 0, useMomentum = (flags & 2) != 0, useDecay = (flags & 8) != 0;
  const vdecay = f32x4.splat(decay), valpha = f32x4.splat(alpha), vc = f32x4.splat(c), veps = f32x4.splat(eps);
  const vmom = f32x4.splat(momentum), vlr = f32x4.splat(lr);
  for (let i = 0; i < n; i += 4) {
    const o = <usize>i << 2;
    const wi = v128.load(w + o);
    let gi = v128.load(g + o);
    if (useDecay) gi = f32x4.add(gi, f32x4.mul(vdecay, wi));
    const s = f32x4.add(f32x4.mul(v128.load(sq + o), valpha), f32x4.mul(f32x4.mul(vc, gi), gi));
    v128.store(sq + o, s);
    let r: v128;
    if (centered) {
      const a0 = v128.load(avg + o);
      const a = f32x4.add(a0, f32x4.mul(f32x4.sub(gi, a0), vc));
      v128.store(avg + o, a);
      r = f32x4.add(f32x4.sqrt(f32x4.sub(s, f32x4.mul(a, a))), veps);
    } else {
      r = f32x4.add(f32x4.sqrt(s), veps);
    }
    const q = f32x4.div(gi, r);
    if (useMomentum) {
      const b = f32x4.add(f32x4.mul(v128.load(buf + o), vmom), q);
      v128.store(buf + o, b);
      v128.store(w + o, f32x4.sub(wi, f32x4.mul(vlr, b)));
    } else {
      v128.store(w + o, f32x4.sub(wi, f32x4.mul(vlr, q)));
    }
  }
}

// ---- ReLU and its gradient ----
//
// out = pre > 0 ? pre : 0 and gradPre = pre > 0 ? gradOut : 0 as a mask from f32x4.gt: NaN and −0
// give +0, the bits of the TypeScript reference (src/kernels/relu.ts); the last n mod 4 values one at a
// time, as bit patterns kept or zeroed.

export function reluForward(n: i32, pre: usize, out: usize): void {
  const zero = f32x4.splat(0);
  const end = pre + (<usize>n << 2);
  const end4 = pre + (<usize>(n & ~3) << 2);
  while (pre < end4) {
    const x = v128.load(pre);
    v128.store(out, v128.and(x, f32x4.gt(x, zero)));
    pre += 16;
    out += 16;
  }
  for (; pre < end; pre += 4, out += 4) store<u32>(out, load<f32>(pre) > 0 ? load<u32>(pre) : 0);
}

export function reluBackward(n: i32, gradOut: usize, pre: usize, gradPre: usize): void {
  const zero = f32x4.splat(0);
  const end = pre + (<usize>n << 2);
  const end4 = pre + (<usize>(n & ~3) << 2);
  while (pre < end4) {
    v128.store(gradPre, v128.and(v128.load(gradOut), f32x4.gt(v128.load(pre), zero)));
    gradOut += 16;
    pre += 16;
    gradPre += 16;
  }
  for (; pre < end; pre += 4, gradOut += 4, gradPre += 4) store<u32>(gradPre, load<f32>(pre) > 0 ? load<u32>(gradOut) : 0);
}

/**
 * out[c] = Σ_r x[r][c] for x [rows×cols] float32: each column summed in float64 from 0 in ascending r,
 * then rounded once (the TypeScript reference's order, so the same bits). Two columns per f64x2; `acc`
 * holds cols float64 running sums.
 */
export function sumRowsF64(rows: i32, cols: i32, x: usize, acc: usize, out: usize): void {
  const pairs = cols & ~1;
  memory.fill(acc, 0, <usize>cols << 3);
  for (let r = 0; r < rows; r++) {
    const row = x + (<usize>(r * cols) << 2);
    let c = 0;
    for (; c < pairs; c += 2) {
      const a = acc + (<usize>c << 3);
      v128.store(a, f64x2.add(v128.load(a), f64x2.promote_low_f32x4(v128.load64_zero(row + (<usize>c << 2)))));
    }
    if (c < cols) {
      const a = acc + (<usize>c << 3);
      store<f64>(a, load<f64>(a) + <f64>load<f32>(row + (<usize>c << 2)));
    }
  }
  for (let c = 0; c < cols; c++) store<f32>(out + (<usize>c << 2), <f32>load<f64>(acc + (<usize>c << 3)));
}

/**
 * This core's float32x4 multiply and add throughput, for benchmarks (seed 1): `iterations` rounds of seven units
 * q = q·m, a = a + q (56 flops a round, as many multiplies as adds, like the GEMM tile). Each chain
 * waits one operation's latency a round while the seven units need 3.5 cycles of the two mul and two
 * add pipes, so the pipes bound the loop. Returns a lane of the sum so the work cannot be dropped.
 */
export function simdPeak(iterations: i32, seed: f32): f32 {
  // Read from memory each round, as the GEMM tile reads B: V8 would rebuild a splat constant inside the loop.
  const mp = memory.data(16, 16);
  v128.store(mp, f32x4.splat(1 + seed * 1e-7));
  let q0 = f32x4.splat(seed), q1 = f32x4.splat(seed + 1), q2 = f32x4.splat(seed + 2), q3 = f32x4.splat(seed + 3);
  let q4 = f32x4.splat(seed + 4), q5 = f32x4.splat(seed + 5), q6 = f32x4.splat(seed + 6);
  let a0 = q0, a1 = q1, a2 = q2, a3 = q3, a4 = q4, a5 = q5, a6 = q6;
  for (let i = 0; i < iterations; i++) {
    q0 = f32x4.mul(q0, v128.load(mp)); a0 = f32x4.add(a0, q0);
    q1 = f32x4.mul(q1, v128.load(mp)); a1 = f32x4.add(a1, q1);
    q2 = f32x4.mul(q2, v128.load(mp)); a2 = f32x4.add(a2, q2);
    q3 = f32x4.mul(q3, v128.load(mp)); a3 = f32x4.add(a3, q3);
    q4 = f32x4.mul(q4, v128.load(mp)); a4 = f32x4.add(a4, q4);
    q5 = f32x4.mul(q5, v128.load(mp)); a5 = f32x4.add(a5, q5);
    q6 = f32x4.mul(q6, v128.load(mp)); a6 = f32x4.add(a6, q6);
  }
  const s = f32x4.add(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)), f32x4.add(f32x4.add(a4, a5), a6));
  return f32x4.extract_lane(s, 0);
}

/**
 * out[c] = Σ_{b,i} g[b][c][i] for g [B×F×P] (a convolution's bias gradient): float64 sums from 0 in
 * ascending b then i, rounded once (src/layers/conv.ts channelSums's bits). Four channels at a time, as
 * four independent chains.
 */
export function channelSumsF64(B: i32, F: i32, P: i32, g: usize, out: usize): void {
  const row = <usize>P << 2;
  let c = 0;
  for (; c + 4 <= F; c += 4) {
    let a0: f64 = 0, a1: f64 = 0, a2: f64 = 0, a3: f64 = 0;
    for (let b = 0; b < B; b++) {
      let p = g + <usize>(b * F + c) * row;
      const end = p + row;
      while (p < end) {
        a0 += <f64>load<f32>(p);
        a1 += <f64>load<f32>(p + row);
        a2 += <f64>load<f32>(p + 2 * row);
        a3 += <f64>load<f32>(p + 3 * row);
        p += 4;
      }
    }
    store<f32>(out + (<usize>c << 2), <f32>a0);
    store<f32>(out + (<usize>c << 2), <f32>a1, 4);
    store<f32>(out + (<usize>c << 2), <f32>a2, 8);
    store<f32>(out + (<usize>c << 2), <f32>a3, 12);
  }
  for (; c < F; c++) {
    let a: f64 = 0;
    for (let b = 0; b < B; b++) {
      let p = g + <usize>(b * F + c) * row;
      const end = p + row;
      while (p < end) {
        a += <f64>load<f32>(p);
        p += 4;
      }
    }
    store<f32>(out + (<usize>c << 2), <f32>a);
  }
}

/** 1 when every one of the n float32 values (n a multiple of 4) is finite (exponent bits not all ones), else 0. */
export function allFinite(n: i32, x: usize): i32 {
  const exp = i32x4.splat(0x7f800000);
  let bad = i32x4.splat(0);
  const end = x + (<usize>n << 2);
  while (x < end) {
    bad = v128.or(bad, i32x4.eq(v128.and(v128.load(x), exp), exp));
    x += 16;
  }
  return v128.any_true(bad) ? 0 : 1;
}

// ---- Loom-TS CPU kernels (issue 6): Dense forward on packed weights ----
//
// Weights stay in their packed bytes (src/core/dtype.ts layout: row-major W[N×K], sub-byte types
// first element in the high bits); only 8 codes at a time are widened to int16 lanes. Formats:
// 0 int8, 1 int4, 2 two-bit signed (Int2, Ternary), 3 binary (bit set = +1, clear = −1),
// 4 FP4 (E2M1 times 2, integers −12…12). Rows of x are rounded to int16 first (quantizeRowsI16), so
// each output's dot product Σ code·xq is an exact integer: int32 lanes (i32x4.dot_i16x8_s) over blocks
// of 1024 columns, each block's lanes added exactly in float64. Then
// y = f32((dot·post)·f32(xs_i·scale)), the product taken in float64, plus bias (one float32 add).
// Row starts must be byte-aligned (K a multiple of 2, 4 or 8 for 4-, 2- and 1-bit codes); the caller
// pads xq rows to a multiple of 8 with zeros and leaves 16 readable bytes after the packed data.

const QBLOCK = 1024;

/** x[M×K] float32 → xq[M×K8] int16 (K8 = K rounded up to 8, zero-padded), xs[i] = max|x_i| / 32767. */
export function quantizeRowsI16(M: i32, K: i32, x: usize, xq: usize, xs: usize): void {
  const K8 = (K + 7) & ~7;
  for (let i = 0; i < M; i++) {
    const row = x + ((<usize>i * <usize>K) << 2);
    let m = f32x4.splat(0);
    let k = 0;
    for (; k + 4 <= K; k += 4) m = f32x4.max(m, f32x4.abs(v128.load(row + (<usize>k << 2))));
    let amax = max(max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1)), max(f32x4.extract_lane(m, 2), f32x4.extract_lane(m, 3)));
    for (; k < K; k++) amax = max(amax, abs<f32>(load<f32>(row + (<usize>k << 2))));
    const s: f32 = amax / <f32>32767;
    store<f32>(xs + (<usize>i << 2), s);
    const inv: f32 = s > 0 ? <f32>1 / s : 0;
    const q = xq + ((<usize>i * <usize>K8) << 1);
    for (k = 0; k < K; k++) {
      let v = nearest<f32>(load<f32>(row + (<usize>k << 2)) * inv);
      v = v != v ? 0 : min<f32>(max<f32>(v, -32767), 32767); // NaN (a NaN or infinite row: xs is NaN or inv 0)
      store<i16>(q + (<usize>k << 1), <i16>(<i32>v));
    }
    for (; k < K8; k++) store<i16>(q + (<usize>k << 1), 0);
  }
}

// The 8 codes whose bytes start at p (element index a multiple of 8), as int16 lanes.
@inline function qcodes8(fmt: i32, p: usize): v128 {
  if (fmt == 0) return v128.load8x8_s(p);
  if (fmt == 1) {
    // Lane 2t holds byte t in its high half, lane 2t + 1 the same times 16: the wanted nibble is on top.
    const v = i8x16.swizzle(v128.load32_zero(p), i8x16(-1, 0, -1, 0, -1, 1, -1, 1, -1, 2, -1, 2, -1, 3, -1, 3));
    return i16x8.shr_s(i16x8.mul(v, i16x8(1, 16, 1, 16, 1, 16, 1, 16)), 12);
  }
  if (fmt == 4) {
    const e = i8x16.swizzle(v128.load32_zero(p), i8x16(0, 0, 1, 1, 2, 2, 3, 3, -1, -1, -1, -1, -1, -1, -1, -1));
    const hi = v128.and(i16x8.shr_u(e, 4), i8x16.splat(15));
    const lo = v128.and(e, i8x16.splat(15));
    const nib = v128.bitselect(hi, lo, i16x8.splat(0xff));
    return i16x8.extend_low_i8x16_s(i8x16.swizzle(i8x16(0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12), nib));
  }
  if (fmt == 2) {
    const b = v128.load16_splat(p);
    // Lane l gets byte l/4 in its high half, then a multiply moves its 2-bit field to the top.
    const v = i8x16.swizzle(b, i8x16(-1, 0, -1, 0, -1, 0, -1, 0, -1, 1, -1, 1, -1, 1, -1, 1));
    return i16x8.shr_s(i16x8.mul(v, i16x8(1, 4, 16, 64, 1, 4, 16, 64)), 14);
  }
  const v = i16x8.splat(<i16>load<u8>(p));
  const set = i16x8.ne(v128.and(v, i16x8(128, 64, 32, 16, 8, 4, 2, 1)), i16x8.splat(0));
  return i16x8.sub(i16x8.splat(-1), i16x8.shl(set, 1));
}

@inline function qlanes(v: v128): f64 {
  return (<f64>i32x4.extract_lane(v, 0) + <f64>i32x4.extract_lane(v, 1)) + (<f64>i32x4.extract_lane(v, 2) + <f64>i32x4.extract_lane(v, 3));
}

@inline function qstore(out: usize, dot: f64, post: f64, xs: usize, i: i32, scale: f32, bias: usize, j: i32, N: i32): void {
  let y = <f32>(dot * post * <f64>(load<f32>(xs + (<usize>i << 2)) * scale));
  if (bias) y = y + load<f32>(bias + (<usize>j << 2));
  store<f32>(out + ((<usize>i * <usize>N + <usize>j) << 2), y);
}

// step = bytes per 8 codes. Pointers advance by constant strides so V8 keeps them in registers.
@inline function qgemmFmt(fmt: i32, step: usize, M: i32, N: i32, K: i32, rowBytes: usize, w: usize, xq: usize, xs: usize, scale: f32, post: f64, out: usize, bias: usize): void {
  const K8 = (K + 7) & ~7;
  const ldx = <usize>K8 << 1;
  const blockX = <usize>QBLOCK << 1;
  const blockW = <usize>(QBLOCK >> 3) * step;
  if (M < 4) {
    // Few rows: 4 weight rows against one row of x, so each x load serves 4 of them.
    for (let i = 0; i < M; i++) {
      const xr = xq + <usize>i * ldx;
      const xEnd = xr + ldx;
      let j = 0;
      for (; j + 4 <= N; j += 4) {
        let wb = w + <usize>j * rowBytes;
        let d0: f64 = 0, d1: f64 = 0, d2: f64 = 0, d3: f64 = 0;
        for (let xb = xr; xb < xEnd; xb += blockX) {
          const xe = min(xEnd, xb + blockX);
          let a0 = i32x4.splat(0), a1 = i32x4.splat(0), a2 = i32x4.splat(0), a3 = i32x4.splat(0);
          let wp = wb;
          for (let xp = xb; xp < xe; xp += 16) {
            const xv = v128.load(xp);
            a0 = i32x4.add(a0, i32x4.dot_i16x8_s(qcodes8(fmt, wp), xv));
            a1 = i32x4.add(a1, i32x4.dot_i16x8_s(qcodes8(fmt, wp + rowBytes), xv));
            a2 = i32x4.add(a2, i32x4.dot_i16x8_s(qcodes8(fmt, wp + 2 * rowBytes), xv));
            a3 = i32x4.add(a3, i32x4.dot_i16x8_s(qcodes8(fmt, wp + 3 * rowBytes), xv));
            wp += step;
          }
          wb += blockW;
          d0 += qlanes(a0); d1 += qlanes(a1); d2 += qlanes(a2); d3 += qlanes(a3);
        }
        qstore(out, d0, post, xs, i, scale, bias, j, N);
        qstore(out, d1, post, xs, i, scale, bias, j + 1, N);
        qstore(out, d2, post, xs, i, scale, bias, j + 2, N);
        qstore(out, d3, post, xs, i, scale, bias, j + 3, N);
      }
      for (; j < N; j++) {
        let wb = w + <usize>j * rowBytes;
        let d0: f64 = 0;
        for (let xb = xr; xb < xEnd; xb += blockX) {
          const xe = min(xEnd, xb + blockX);
          let a0 = i32x4.splat(0);
          let wp = wb;
          for (let xp = xb; xp < xe; xp += 16) {
            a0 = i32x4.add(a0, i32x4.dot_i16x8_s(qcodes8(fmt, wp), v128.load(xp)));
            wp += step;
          }
          wb += blockW;
          d0 += qlanes(a0);
        }
        qstore(out, d0, post, xs, i, scale, bias, j, N);
      }
    }
    return;
  }
  // Two weight rows against 4 rows of x: codes widened once per 4 rows, each x load serves both rows.
  let j = 0;
  for (; j + 2 <= N; j += 2) {
    const w0 = w + <usize>j * rowBytes;
    for (let i = 0; i < M; i += 4) {
      const r1 = min(i + 1, M - 1), r2 = min(i + 2, M - 1), r3 = min(i + 3, M - 1);
      const x0 = xq + <usize>i * ldx;
      const o1 = <usize>(r1 - i) * ldx, o2 = <usize>(r2 - i) * ldx, o3 = <usize>(r3 - i) * ldx;
      const xEnd = x0 + ldx;
      let wb = w0;
      let d0: f64 = 0, d1: f64 = 0, d2: f64 = 0, d3: f64 = 0;
      let e0: f64 = 0, e1: f64 = 0, e2: f64 = 0, e3: f64 = 0;
      for (let xb = x0; xb < xEnd; xb += blockX) {
        const xe = min(xEnd, xb + blockX);
        let a0 = i32x4.splat(0), a1 = i32x4.splat(0), a2 = i32x4.splat(0), a3 = i32x4.splat(0);
        let b0 = i32x4.splat(0), b1 = i32x4.splat(0), b2 = i32x4.splat(0), b3 = i32x4.splat(0);
        let wp = wb;
        for (let xp = xb; xp < xe; xp += 16) {
          const c = qcodes8(fmt, wp);
          const g = qcodes8(fmt, wp + rowBytes);
          let xv = v128.load(xp);
          a0 = i32x4.add(a0, i32x4.dot_i16x8_s(c, xv));
          b0 = i32x4.add(b0, i32x4.dot_i16x8_s(g, xv));
          xv = v128.load(xp + o1);
          a1 = i32x4.add(a1, i32x4.dot_i16x8_s(c, xv));
          b1 = i32x4.add(b1, i32x4.dot_i16x8_s(g, xv));
          xv = v128.load(xp + o2);
          a2 = i32x4.add(a2, i32x4.dot_i16x8_s(c, xv));
          b2 = i32x4.add(b2, i32x4.dot_i16x8_s(g, xv));
          xv = v128.load(xp + o3);
          a3 = i32x4.add(a3, i32x4.dot_i16x8_s(c, xv));
          b3 = i32x4.add(b3, i32x4.dot_i16x8_s(g, xv));
          wp += step;
        }
        wb += blockW;
        d0 += qlanes(a0); d1 += qlanes(a1); d2 += qlanes(a2); d3 += qlanes(a3);
        e0 += qlanes(b0); e1 += qlanes(b1); e2 += qlanes(b2); e3 += qlanes(b3);
      }
      qstore(out, d0, post, xs, i, scale, bias, j, N);
      qstore(out, e0, post, xs, i, scale, bias, j + 1, N);
      if (i + 1 < M) { qstore(out, d1, post, xs, i + 1, scale, bias, j, N); qstore(out, e1, post, xs, i + 1, scale, bias, j + 1, N); }
      if (i + 2 < M) { qstore(out, d2, post, xs, i + 2, scale, bias, j, N); qstore(out, e2, post, xs, i + 2, scale, bias, j + 1, N); }
      if (i + 3 < M) { qstore(out, d3, post, xs, i + 3, scale, bias, j, N); qstore(out, e3, post, xs, i + 3, scale, bias, j + 1, N); }
    }
  }
  // The last weight row when N is odd.
  for (; j < N; j++) {
    const w0 = w + <usize>j * rowBytes;
    for (let i = 0; i < M; i += 4) {
      const r1 = min(i + 1, M - 1), r2 = min(i + 2, M - 1), r3 = min(i + 3, M - 1);
      const x0 = xq + <usize>i * ldx;
      const o1 = <usize>(r1 - i) * ldx, o2 = <usize>(r2 - i) * ldx, o3 = <usize>(r3 - i) * ldx;
      const xEnd = x0 + ldx;
      let wb = w0;
      let d0: f64 = 0, d1: f64 = 0, d2: f64 = 0, d3: f64 = 0;
      for (let xb = x0; xb < xEnd; xb += blockX) {
        const xe = min(xEnd, xb + blockX);
        let a0 = i32x4.splat(0), a1 = i32x4.splat(0), a2 = i32x4.splat(0), a3 = i32x4.splat(0);
        let wp = wb;
        for (let xp = xb; xp < xe; xp += 16) {
          const c = qcodes8(fmt, wp);
          a0 = i32x4.add(a0, i32x4.dot_i16x8_s(c, v128.load(xp)));
          a1 = i32x4.add(a1, i32x4.dot_i16x8_s(c, v128.load(xp + o1)));
          a2 = i32x4.add(a2, i32x4.dot_i16x8_s(c, v128.load(xp + o2)));
          a3 = i32x4.add(a3, i32x4.dot_i16x8_s(c, v128.load(xp + o3)));
          wp += step;
        }
        wb += blockW;
        d0 += qlanes(a0); d1 += qlanes(a1); d2 += qlanes(a2); d3 += qlanes(a3);
      }
      qstore(out, d0, post, xs, i, scale, bias, j, N);
      if (i + 1 < M) qstore(out, d1, post, xs, i + 1, scale, bias, j, N);
      if (i + 2 < M) qstore(out, d2, post, xs, i + 2, scale, bias, j, N);
      if (i + 3 < M) qstore(out, d3, post, xs, i + 3, scale, bias, j, N);
    }
  }
}

/** out[M×N] = y as described above for the packed W at `w` (format `fmt`), xq/xs from quantizeRowsI16. */
export function qgemm(fmt: i32, M: i32, N: i32, K: i32, w: usize, xq: usize, xs: usize, scale: f32, out: usize, bias: usize): void {
  if (fmt == 0) qgemmFmt(0, 8, M, N, K, <usize>K, w, xq, xs, scale, 1, out, bias);
  else if (fmt == 1) qgemmFmt(1, 4, M, N, K, <usize>K >> 1, w, xq, xs, scale, 1, out, bias);
  else if (fmt == 2) qgemmFmt(2, 2, M, N, K, <usize>K >> 2, w, xq, xs, scale, 1, out, bias);
  else if (fmt == 3) qgemmFmt(3, 1, M, N, K, <usize>K >> 3, w, xq, xs, scale, 1, out, bias);
  else qgemmFmt(4, 4, M, N, K, <usize>K >> 1, w, xq, xs, scale, 0.5, out, bias);
}

/**
 * FP8 (one byte per weight, E4M3 or E5M2 by `e5m2`): `rows` weight rows at a time are decoded to
 * float32 (value·scale, one rounding, as the TS decoder does) into `buf`, never the whole matrix, 16
 * codes at a time by their bits (fp8Decode) and the rest through the 256-entry float32 table at
 * `table`, then multiplied by gemmRange: the bits gemm gives on fully decoded weights.
 */
export function fp8gemm(M: i32, N: i32, K: i32, w: usize, table: usize, x: usize, scale: f32, out: usize, bias: usize, buf: usize, rows: i32, work: usize, e5m2: i32): void {
  // fp8Decode multiplies by scale·2¹²⁰ (E5M2 2¹¹²), exact while that is finite; past it, the table.
  const rebiased = scale * reinterpret<f32>(((e5m2 ? 112 : 120) + 127) << 23);
  const simd = rebiased - rebiased == 0;
  for (let j0 = 0; j0 < N; j0 += rows) {
    const j1 = min(N, j0 + rows);
    const src = w + <usize>j0 * <usize>K;
    const n = <usize>(j1 - j0) * <usize>K;
    // One loop per format, so each has its shift as a constant.
    let e: usize = 0;
    if (simd) e = e5m2 ? fp8Decode(src, n, rebiased, buf, true) : fp8Decode(src, n, rebiased, buf, false);
    for (; e < n; e++) store<f32>(buf + (e << 2), load<f32>(table + (<usize>load<u8>(src + e) << 2)) * scale);
    // gemmRange reads row j at b + j·K·4: shift the base so rows j0… land in buf (wrapping i32 arithmetic).
    gemmRange(M, N, K, x, 0, buf - ((<usize>j0 * <usize>K) << 2), 0, out, bias, work, 0, M, j0, j1);
  }
}

/** The last ordinary magnitude (E4M3, E5M2), then the magnitude mask, sign mask and float exponent bits; 4 lanes each. */
const FP8_CONSTANTS = memory.data<i32>([
  0x7e, 0x7e, 0x7e, 0x7e, 0x7b, 0x7b, 0x7b, 0x7b,
  0x7f, 0x7f, 0x7f, 0x7f, 0x80000000, 0x80000000, 0x80000000, 0x80000000, 0x7f800000, 0x7f800000, 0x7f800000, 0x7f800000,
], 16);

/**
 * Whole groups of 16 FP8 codes at src → value·scale at dst, given rebiased = scale·2¹²⁰ (E4M3) or
 * scale·2¹¹² (E5M2); returns how many codes it did. A code's 7 magnitude bits shifted to the top of a
 * float's exponent and mantissa (E4M3: << 20, E5M2: << 21) are its value times 2⁻¹²⁰ (2⁻¹¹²) exactly
 * (subnormal codes as float32 subnormals, which x86 multiplies slowly, but quantized weights rarely
 * have them), so one multiply by `rebiased` rounds value·scale as Loom's table (src/core/dtype.ts)
 * times scale does. Past the last ordinary magnitude (E4M3 0x7f, E5M2 0x7c…0x7f) the exponent bits are
 * all set: NaN, or ±∞ for E5M2's zero mantissa. The sign comes from the code sign-extended. Constants
 * are read into locals before the loop (V8 rebuilt these as v128 constants inside it, 3 instructions
 * each; not so in qcodes8's loops, where loaded constants measured slower).
 */
@inline function fp8Decode(src: usize, n: usize, rebiased: f32, dst: usize, e5m2: bool): usize {
  const lastOrdinary = v128.load(FP8_CONSTANTS + (e5m2 ? 16 : 0));
  const magMask = v128.load(FP8_CONSTANTS, 32), signMask = v128.load(FP8_CONSTANTS, 48), top = v128.load(FP8_CONSTANTS, 64);
  const shift = e5m2 ? 21 : 20;
  const vr = f32x4.splat(rebiased);
  let e: usize = 0;
  for (; e + 16 <= n; e += 16) {
    const codes = v128.load(src + e);
    const lo = i16x8.extend_low_i8x16_s(codes), hi = i16x8.extend_high_i8x16_s(codes);
    const d = dst + (e << 2);
    v128.store(d, f32x4.mul(fp8Bits(i32x4.extend_low_i16x8_s(lo), shift, magMask, signMask, top, lastOrdinary), vr));
    v128.store(d, f32x4.mul(fp8Bits(i32x4.extend_high_i16x8_s(lo), shift, magMask, signMask, top, lastOrdinary), vr), 16);
    v128.store(d, f32x4.mul(fp8Bits(i32x4.extend_low_i16x8_s(hi), shift, magMask, signMask, top, lastOrdinary), vr), 32);
    v128.store(d, f32x4.mul(fp8Bits(i32x4.extend_high_i16x8_s(hi), shift, magMask, signMask, top, lastOrdinary), vr), 48);
  }
  return e;
}

/** Four sign-extended FP8 codes → their value times 2⁻¹²⁰ (E4M3) or 2⁻¹¹² (E5M2) as float bits (see fp8Decode). */
@inline function fp8Bits(c: v128, shift: i32, magMask: v128, signMask: v128, top: v128, lastOrdinary: v128): v128 {
  const mag = v128.and(c, magMask);
  const special = v128.and(top, i32x4.gt_s(mag, lastOrdinary));
  return v128.or(v128.or(i32x4.shl(mag, shift), special), v128.and(c, signMask));
}

// ---- Convolution forward ----
//
// Images are [B][C][D][H][W], weights [F][C][kD][kH][kW], out [B][F][outD·outH·outW]; samples [b0, b1)
// only (the pool's share). Each output is computed by one of three algorithms, picked from the shape
// alone (never from the batch or the thread count), so every sample gets the same bits whatever the
// batch or the split:
//  - Winograd F(4×4, 3×3) for 2D 3×3 stride-1 convolutions with C ≥ 8: per 4×4 output tile,
//    Y = Aᵀ[Σ_c U_c ⊙ V_c]A with U = G·g·Gᵀ (float64, rounded once), V = Bᵀ·d·B; the sum over c runs
//    in ascending c from 0 in float32, then the bias is added. 4× fewer multiplies than the direct sum
//    (F(2×2) saved 2.25× and ran about 1.35× slower here); the transforms cost accuracy: errors reach
//    about 3e-6 of Σ|x·w| against 2e-7 for the direct sum. Four samples share a SIMD vector (lane = sample).
//  - direct: each output is Σ over (c, kd, kh, kw) in that ascending order from 0, then + bias, read
//    from a zero-padded copy of the image split into stride phases, so every tap is a contiguous load.
//  - im2col + gemm (gemm's reduction order, then + bias) when the scratch cannot hold the others.
// `work` is gemm's per-thread scratch (workBytes()), `col` per-thread scratch of K·P float32.

const WINO_MIN_CHANNELS = 8;

// Which algorithm a shape runs (2 Winograd, 1 direct, 0 im2col + gemm), from the shape and the
// scratch it fits: gemm's work area and a col area of K·P float32.
function convAlgo(C: i32, inD: i32, outD: i32, outH: i32, outW: i32, kD: i32, kH: i32, kW: i32, stride: i32, F: i32): i32 {
  const K = C * kD * kH * kW;
  const colBytes = <usize>K * <usize>(outD * outH * outW) * 4;
  const workBytes = <usize>(PACK_A_BYTES + PACK_B_BYTES + TILE_BYTES + GEMV_CHUNK * 4);
  const F4 = (F + 3) & ~3;
  if (kD == 1 && inD == 1 && outD == 1 && kH == 3 && kW == 3 && stride == 1 && C >= WINO_MIN_CHANNELS) {
    const Hp = 4 * ((outH + 3) >> 2) + 2, Wp = 4 * ((outW + 3) >> 2) + 2;
    if (<usize>(36 * C * F4 + 288 * C + 288 * F4 + 16) * 4 <= workBytes && <usize>C * <usize>Hp * <usize>Wp * 16 <= colBytes) return 2;
  }
  const nPd = min(stride, kD), nPh = min(stride, kH), nPw = min(stride, kW);
  const Dq = outD + (kD - 1) / stride, Hq = outH + (kH - 1) / stride, Wq = ((outW + 7) & ~7) + (kW - 1) / stride;
  const planes = <usize>C * <usize>(nPd * nPh * nPw) * <usize>Dq * <usize>Hq * <usize>Wq * 4;
  if (<usize>K * <usize>(F4 + 1) * 4 + 64 <= workBytes && planes <= colBytes) return 1;
  return 0;
}

/** Convolution forward (see above): convPrepare then convRun. The geometry arguments follow src/kernels/wasm.ts convArgs. */
export function convForward(
  b0: i32, b1: i32, C: i32, inD: i32, inH: i32, inW: i32, outD: i32, outH: i32, outW: i32,
  kD: i32, kH: i32, kW: i32, stride: i32, padD: i32, padH: i32, padW: i32, F: i32,
  x: usize, w: usize, bias: usize, out: usize, work: usize, col: usize,
): void {
  if (b1 <= b0) return;
  convPrepare(C, inD, inH, inW, outD, outH, outW, kD, kH, kW, stride, padD, padH, padW, F, w, work);
  convRun(b0, b1, C, inD, inH, inW, outD, outH, outW, kD, kH, kW, stride, padD, padH, padW, F, x, w, bias, out, work, col, 1);
}

/** The weights in the form convRun reads them (Winograd U, or direct panels and tap offsets), into `work`. */
export function convPrepare(
  C: i32, inD: i32, inH: i32, inW: i32, outD: i32, outH: i32, outW: i32,
  kD: i32, kH: i32, kW: i32, stride: i32, padD: i32, padH: i32, padW: i32, F: i32, w: usize, work: usize,
): void {
  const algo = convAlgo(C, inD, outD, outH, outW, kD, kH, kW, stride, F);
  if (algo == 2) winoWeights(C, F, w, work);
  else if (algo == 1) directWeights(C, kD, kH, kW, stride, outD, outH, outW, F, w, work);
}

/**
 * Samples [b0, b1) with the weights convPrepare left in `work` (`w` is read directly only by the im2col
 * fallback). `fresh` = 0 promises that `col` still holds this shape's zero border from an earlier call.
 */
export function convRun(
  b0: i32, b1: i32, C: i32, inD: i32, inH: i32, inW: i32, outD: i32, outH: i32, outW: i32,
  kD: i32, kH: i32, kW: i32, stride: i32, padD: i32, padH: i32, padW: i32, F: i32,
  x: usize, w: usize, bias: usize, out: usize, work: usize, col: usize, fresh: i32,
): void {
  if (b1 <= b0) return;
  const algo = convAlgo(C, inD, outD, outH, outW, kD, kH, kW, stride, F);
  if (algo == 2) winograd(b0, b1, C, inH, inW, outH, outW, padH, padW, F, x, bias, out, work, col, fresh != 0);
  else if (algo == 1) convDirect(b0, b1, C, inD, inH, inW, outD, outH, outW, kD, kH, kW, stride, padD, padH, padW, F, x, bias, out, work, col);
  else convIm2col(b0, b1, C, inD, inH, inW, outD, outH, outW, kD, kH, kW, stride, padD, padH, padW, F, x, w, bias, out, work, col);
}

// ---- Winograd F(4×4, 3×3), four samples per vector ----

// Bytes of one tile panel's values for one ξ and one channel or filter (2 tiles × 4 samples).
const WINO_PANEL = 32;

// U[ξ][f/4][c][f%4] = (G·g·Gᵀ)[ξ] for ξ = 6i + j, with G = [¼ 0 0; −⅙ −⅙ −⅙; −⅙ ⅙ −⅙;
// 1/24 1/12 ⅙; 1/24 −1/12 ⅙; 0 0 1], computed in float64 and rounded once; zero for f ≥ F.
function winoWeights(C: i32, F: i32, w: usize, u: usize): void {
  const F4 = (F + 3) & ~3;
  const xiStride = <usize>(F4 >> 2) * <usize>C * 16;
  for (let f = 0; f < F4; f++) {
    for (let c = 0; c < C; c++) {
      const g = w + (<usize>(f * C + c) * 9 << 2);
      const dst = u + ((<usize>((f >> 2) * C + c) * 4 + <usize>(f & 3)) << 2);
      for (let i = 0; i < 6; i++) {
        // Row i of G·g, then its products with the rows of G.
        let t0: f64 = 0, t1: f64 = 0, t2: f64 = 0;
        if (f < F) {
          for (let k = 0; k < 3; k++) {
            const gk = winoG(i, k);
            const row = g + (<usize>(3 * k) << 2);
            t0 += gk * <f64>load<f32>(row);
            t1 += gk * <f64>load<f32>(row, 4);
            t2 += gk * <f64>load<f32>(row, 8);
          }
        }
        for (let j = 0; j < 6; j++) {
          const v = t0 * winoG(j, 0) + t1 * winoG(j, 1) + t2 * winoG(j, 2);
          store<f32>(dst + <usize>(i * 6 + j) * xiStride, <f32>v);
        }
      }
    }
  }
}

// G[i][k] of F(4×4, 3×3).
function winoG(i: i32, k: i32): f64 {
  if (i == 0) return k == 0 ? 0.25 : 0;
  if (i == 5) return k == 2 ? 1 : 0;
  if (i == 1) return -1.0 / 6;
  if (i == 2) return k == 1 ? 1.0 / 6 : -1.0 / 6;
  if (k == 0) return 1.0 / 24;
  if (k == 2) return 1.0 / 6;
  return i == 3 ? 1.0 / 12 : -1.0 / 12;
}

function winograd(
  b0: i32, b1: i32, C: i32, H: i32, W: i32, OH: i32, OW: i32, padH: i32, padW: i32, F: i32,
  x: usize, bias: usize, out: usize, work: usize, xi: usize, fresh: bool,
): void {
  const F4 = (F + 3) & ~3;
  const TY = (OH + 3) >> 2, TX = (OW + 3) >> 2;
  const T = TY * TX;
  const Hp = 4 * TY + 2, Wp = 4 * TX + 2;
  const u = work;
  // V as [ξ][c][panel]: each ξ's product reads contiguous rows; M as [f][ξ][panel]: each filter's
  // output transform reads one contiguous run.
  const vXi = <usize>C * WINO_PANEL, mF = 36 * WINO_PANEL;
  const vp = u + (<usize>(36 * C * F4) << 2);
  const mp = vp + 36 * vXi;
  const tmp = mp + <usize>F4 * mF;
  const image = <usize>C * <usize>H * <usize>W;
  const xiBytes = <usize>C * <usize>Hp * <usize>Wp * 16;
  const uXi = <usize>(F4 >> 2) * <usize>C * 16;
  // The border stays zero for every group: only the interior is rewritten (a short last group leaves
  // stale but finite values in its unused lanes, whose outputs are never stored).
  if (fresh) memory.fill(xi, 0, xiBytes);
  const ld = image << 2;
  const xEnd = min(W, Wp - padW);
  const rowOut = <usize>OW << 2;
  const planeB = <usize>(OH * OW) << 2;
  const sampleB = <usize>F * planeB;
  for (let g0 = b0; g0 < b1; g0 += 4) {
    const lanes = min(4, b1 - g0);
    // Sample-interleaved, zero-padded image: xi[c][y][x][lane].
    for (let c = 0; c < C; c++) {
      for (let y = 0; y < H && y + padH < Hp; y++) {
        const src = x + ((<usize>g0 * image + <usize>(c * H + y) * <usize>W) << 2);
        const dst = xi + ((<usize>(c * Hp + y + padH) * <usize>Wp + <usize>padW) << 4);
        let xx = 0;
        for (; xx + 4 <= xEnd; xx += 4) {
          const s = src + (<usize>xx << 2);
          const r0 = v128.load(s);
          const r1 = lanes > 1 ? v128.load(s + ld) : f32x4.splat(0);
          const r2 = lanes > 2 ? v128.load(s + 2 * ld) : f32x4.splat(0);
          const r3 = lanes > 3 ? v128.load(s + 3 * ld) : f32x4.splat(0);
          transposeStore(r0, r1, r2, r3, dst + (<usize>xx << 4), 16);
        }
        for (; xx < xEnd; xx++) {
          for (let l = 0; l < lanes; l++) store<f32>(dst + (<usize>xx << 4) + (<usize>l << 2), load<f32>(src + <usize>l * ld + (<usize>xx << 2)));
        }
      }
    }
    const outG = out + <usize>g0 * sampleB;
    for (let t0 = 0; t0 < T; t0 += 2) {
      // Input transform of the panel's two tiles (a missing second tile repeats the first).
      for (let half = 0; half < 2; half++) {
        const t = min(t0 + half, T - 1);
        const ty = t / TX, tx = t - ty * TX;
        let s = xi + ((<usize>(4 * ty) * <usize>Wp + <usize>(4 * tx)) << 4);
        let d = vp + (<usize>half << 4);
        const rowB = <usize>Wp << 4;
        for (let c = 0; c < C; c++) {
          winoInput(s, rowB, d, vXi);
          s += <usize>Hp * rowB;
          d += WINO_PANEL;
        }
      }
      // 36 products M[ξ] = U[ξ]·V[ξ] over c.
      for (let e = 0; e < 36; e++) {
        const pb = vp + <usize>e * vXi;
        let pa = u + <usize>e * uXi;
        let pc = mp + <usize>e * WINO_PANEL;
        for (let fp = 0; fp < F4; fp += 4) {
          winoMicro(pa, pb, C, pc, mF);
          pa += <usize>C << 4;
          pc += 4 * mF;
        }
      }
      // Output transform, bias, and the stores to the group's samples.
      for (let half = 0; half < 2; half++) {
        const t = t0 + half;
        if (t >= T) break;
        const ty = t / TX, tx = t - ty * TX;
        const oy = 4 * ty, ox = 4 * tx;
        const rows = min(4, OH - oy), cols = min(4, OW - ox);
        const full = lanes == 4 && cols == 4;
        let o = outG + (<usize>(oy * OW + ox) << 2);
        let m = mp + (<usize>half << 4);
        for (let f = 0; f < F; f++) {
          const bv = bias ? v128.load32_splat(bias + (<usize>f << 2)) : f32x4.splat(0);
          winoOutputColumns(m);
          for (let i = 0; i < rows; i++) {
            const r = m + <usize>(6 * i) * WINO_PANEL;
            const m0 = v128.load(r), m1 = v128.load(r, 32), m2 = v128.load(r, 64);
            const m3 = v128.load(r, 96), m4 = v128.load(r, 128), m5 = v128.load(r, 160);
            const a = f32x4.add(m1, m2), b = f32x4.sub(m1, m2);
            const p = f32x4.add(m3, m4), q = f32x4.sub(m3, m4);
            const y0 = f32x4.add(f32x4.add(f32x4.add(m0, a), p), bv);
            const y1 = f32x4.add(f32x4.add(b, f32x4.mul(q, vc(VC_TWO))), bv);
            const y2 = f32x4.add(f32x4.add(a, f32x4.mul(p, vc(VC_FOUR))), bv);
            const y3 = f32x4.add(f32x4.add(f32x4.add(b, f32x4.mul(q, vc(VC_EIGHT))), m5), bv);
            const row = o + <usize>i * rowOut;
            if (full) transposeStore(y0, y1, y2, y3, row, sampleB);
            else {
              transposeStore(y0, y1, y2, y3, tmp, 16);
              for (let l = 0; l < lanes; l++) {
                for (let j = 0; j < cols; j++) store<f32>(row + <usize>l * sampleB + (<usize>j << 2), load<f32>(tmp + (<usize>(l * 4 + j) << 2)));
              }
            }
          }
          m += mF;
          o += planeB;
        }
      }
    }
  }
}

// V = Bᵀ·d·B for one channel of a tile: d[i][j] at s + i·rowB + j·16 (lane = sample); V[ξ] stored at
// d + ξ·xs. Bᵀ = [4 0 −5 0 1 0; 0 −4 −4 1 1 0; 0 4 −4 −1 1 0; 0 −2 −1 2 1 0; 0 2 −1 −2 1 0;
// 0 4 0 −5 0 1]. Columns first (rows of Bᵀ applied down each column, kept in place), then rows.
@inline function winoInput(s: usize, rowB: usize, d: usize, xs: usize): void {
  for (let j: usize = 0; j < 6; j++) {
    const c = s + (j << 4);
    winoInputSix(v128.load(c), v128.load(c + rowB), v128.load(c + 2 * rowB), v128.load(c + 3 * rowB), v128.load(c + 4 * rowB), v128.load(c + 5 * rowB), d + j * xs, 6 * xs);
  }
  for (let i: usize = 0; i < 6; i++) {
    const r = d + i * 6 * xs;
    winoInputSix(v128.load(r), v128.load(r + xs), v128.load(r + 2 * xs), v128.load(r + 3 * xs), v128.load(r + 4 * xs), v128.load(r + 5 * xs), r, xs);
  }
}

// Bᵀ·(d0 … d5), stored at dst + k·step. Products by 2 and 4 are exact.
@inline function winoInputSix(d0: v128, d1: v128, d2: v128, d3: v128, d4: v128, d5: v128, dst: usize, step: usize): void {
  const two = vc(VC_TWO), four = vc(VC_FOUR);
  const e42 = f32x4.sub(d4, d2);
  v128.store(dst, f32x4.add(e42, f32x4.mul(four, f32x4.sub(d0, d2))));
  v128.store(dst + step, f32x4.sub(f32x4.add(d3, d4), f32x4.mul(four, f32x4.add(d1, d2))));
  v128.store(dst + 2 * step, f32x4.add(f32x4.sub(d4, d3), f32x4.mul(four, f32x4.sub(d1, d2))));
  const e31 = f32x4.mul(two, f32x4.sub(d3, d1));
  v128.store(dst + 3 * step, f32x4.add(e42, e31));
  v128.store(dst + 4 * step, f32x4.sub(e42, e31));
  v128.store(dst + 5 * step, f32x4.add(f32x4.sub(d5, d3), f32x4.mul(four, f32x4.sub(d1, d3))));
}

// First half of Y = Aᵀ·M·A: Aᵀ = [1 1 1 1 1 0; 0 1 −1 2 −2 0; 0 1 1 4 4 0; 0 1 −1 8 −8 1] applied
// down each of M's six columns (M[ξ] at m + ξ·32); rows 0…3 of the result replace M's rows 0…3 in place.
@inline function winoOutputColumns(m: usize): void {
  const row: usize = 6 * WINO_PANEL;
  for (let j: usize = 0; j < 6; j++) {
    const c = m + j * WINO_PANEL;
    const m0 = v128.load(c), m1 = v128.load(c + row), m2 = v128.load(c + 2 * row);
    const m3 = v128.load(c + 3 * row), m4 = v128.load(c + 4 * row), m5 = v128.load(c + 5 * row);
    const a = f32x4.add(m1, m2), b = f32x4.sub(m1, m2);
    const p = f32x4.add(m3, m4), q = f32x4.sub(m3, m4);
    v128.store(c, f32x4.add(f32x4.add(m0, a), p));
    v128.store(c + row, f32x4.add(b, f32x4.mul(q, vc(VC_TWO))));
    v128.store(c + 2 * row, f32x4.add(a, f32x4.mul(p, vc(VC_FOUR))));
    v128.store(c + 3 * row, f32x4.add(f32x4.add(b, f32x4.mul(q, vc(VC_EIGHT))), m5));
  }
}

// 4×8 product over kc (ascending k from 0): A panel [k][4], B rows of 8 at pb + k·32, C rows at c + r·ldc.
@inline function winoMicro(pa: usize, pb: usize, kc: i32, c: usize, ldc: usize): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0);
  let c10 = f32x4.splat(0), c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0);
  let c30 = f32x4.splat(0), c31 = f32x4.splat(0);
  const end = pb + (<usize>kc << 5);
  while (pb < end) {
    const b0 = v128.load(pb);
    const b1 = v128.load(pb, 16);
    let a = v128.load32_splat(pa);
    c00 = f32x4.add(c00, f32x4.mul(a, b0));
    c01 = f32x4.add(c01, f32x4.mul(a, b1));
    a = v128.load32_splat(pa, 4);
    c10 = f32x4.add(c10, f32x4.mul(a, b0));
    c11 = f32x4.add(c11, f32x4.mul(a, b1));
    a = v128.load32_splat(pa, 8);
    c20 = f32x4.add(c20, f32x4.mul(a, b0));
    c21 = f32x4.add(c21, f32x4.mul(a, b1));
    a = v128.load32_splat(pa, 12);
    c30 = f32x4.add(c30, f32x4.mul(a, b0));
    c31 = f32x4.add(c31, f32x4.mul(a, b1));
    pa += 16;
    pb += WINO_PANEL;
  }
  v128.store(c, c00); v128.store(c, c01, 16);
  v128.store(c + ldc, c10); v128.store(c + ldc, c11, 16);
  v128.store(c + 2 * ldc, c20); v128.store(c + 2 * ldc, c21, 16);
  v128.store(c + 3 * ldc, c30); v128.store(c + 3 * ldc, c31, 16);
}

// ---- Direct convolution over stride phases ----

// Weights as [f/4][q][f%4] (zero rows past F), then each tap's byte offset into the phase planes.
function directWeights(C: i32, kD: i32, kH: i32, kW: i32, s: i32, outD: i32, outH: i32, outW: i32, F: i32, w: usize, work: usize): void {
  const K = C * kD * kH * kW;
  const F4 = (F + 3) & ~3;
  const nPd = min(s, kD), nPh = min(s, kH), nPw = min(s, kW);
  const Dq = outD + (kD - 1) / s, Hq = outH + (kH - 1) / s, Wq = ((outW + 7) & ~7) + (kW - 1) / s;
  const wp = work;
  const offs = wp + (<usize>F4 * <usize>K << 2);
  for (let f = 0; f < F4; f++) {
    for (let q = 0; q < K; q++) {
      const v: f32 = f < F ? load<f32>(w + (<usize>(f * K + q) << 2)) : 0;
      store<f32>(wp + ((<usize>((f >> 2) * K + q) * 4 + <usize>(f & 3)) << 2), v);
    }
  }
  let q = 0;
  for (let c = 0; c < C; c++) {
    for (let kd = 0; kd < kD; kd++) {
      for (let kh = 0; kh < kH; kh++) {
        for (let kw = 0; kw < kW; kw++) {
          const phase = ((c * nPd + kd % s) * nPh + kh % s) * nPw + kw % s;
          const o = ((phase * Dq + kd / s) * Hq + kh / s) * Wq + kw / s;
          store<i32>(offs + (<usize>q << 2), o << 2);
          q++;
        }
      }
    }
  }
}

// Short fills and copies as plain loops: memory.fill / memory.copy cost a runtime call each in V8,
// far more than the few floats of a padded image row.
@inline function zeroFloats(dst: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(dst + (<usize>i << 2), f32x4.splat(0));
  for (; i < n; i++) store<f32>(dst + (<usize>i << 2), 0);
}

@inline function copyFloats(dst: usize, src: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(dst + (<usize>i << 2), v128.load(src + (<usize>i << 2)));
  for (; i < n; i++) store<f32>(dst + (<usize>i << 2), load<f32>(src + (<usize>i << 2)));
}

// planes[c][pd][ph][pw][i][j][l] = the zero-padded image at (i·s + pd, j·s + ph, l·s + pw), 0 outside it:
// every tap of a stride-s convolution becomes a contiguous run (Dq, Hq, Wq as in convDirect). With
// `borders` false the planes hold an earlier sample of the same shapes: the zeros are in place already
// and only the image's values are written.
function fillPlanes(
  xb: usize, C: i32, inD: i32, inH: i32, inW: i32, outD: i32, outH: i32, outW: i32,
  kD: i32, kH: i32, kW: i32, s: i32, padD: i32, padH: i32, padW: i32, planes: usize, borders: bool,
): void {
  const nPd = min(s, kD), nPh = min(s, kH), nPw = min(s, kW);
  const Dq = outD + (kD - 1) / s, Hq = outH + (kH - 1) / s, Wq = ((outW + 7) & ~7) + (kW - 1) / s;
  // Columns no real output reads stay 0 too (phantom output columns read them).
  const used = outW + (kW - 1) / s;
  let dst = planes;
  for (let c = 0; c < C; c++) {
    for (let pd = 0; pd < nPd; pd++) {
      for (let ph = 0; ph < nPh; ph++) {
        for (let pw = 0; pw < nPw; pw++) {
          // Columns l with 0 ≤ l·s + pw − padW < inW: [lo, hi).
          const lo = min(used, max(0, (padW - pw + s - 1) / s));
          const hi = max(lo, min(used, (inW + padW - pw + s - 1) / s));
          for (let i = 0; i < Dq; i++) {
            const z = i * s + pd - padD;
            for (let j = 0; j < Hq; j++) {
              const y = j * s + ph - padH;
              if (z < 0 || z >= inD || y < 0 || y >= inH) {
                if (borders) zeroFloats(dst, Wq);
                dst += <usize>Wq << 2;
                continue;
              }
              const src = xb + (<usize>((c * inD + z) * inH + y) * <usize>inW << 2) + (<usize>(pw - padW) << 2);
              if (borders) zeroFloats(dst, lo);
              if (s == 1) {
                copyFloats(dst + (<usize>lo << 2), src + (<usize>lo << 2), hi - lo);
              } else {
                let l = lo;
                if (s == 2) {
                  // Even columns of two vectors; the second load may run past the row (its lanes are dropped).
                  for (; l + 4 <= hi; l += 4) {
                    const at = src + (<usize>(2 * l) << 2);
                    v128.store(dst + (<usize>l << 2), f32x4.shuffle(v128.load(at), v128.load(at, 16), 0, 2, 4, 6));
                  }
                }
                for (; l < hi; l++) store<f32>(dst + (<usize>l << 2), load<f32>(src + (<usize>(l * s) << 2)));
              }
              if (borders) zeroFloats(dst + (<usize>hi << 2), Wq - hi);
              dst += <usize>Wq << 2;
            }
          }
        }
      }
    }
  }
}

function convDirect(
  b0: i32, b1: i32, C: i32, inD: i32, inH: i32, inW: i32, outD: i32, outH: i32, outW: i32,
  kD: i32, kH: i32, kW: i32, s: i32, padD: i32, padH: i32, padW: i32, F: i32,
  x: usize, bias: usize, out: usize, work: usize, planes: usize,
): void {
  const K = C * kD * kH * kW;
  const P = outD * outH * outW;
  const F4 = (F + 3) & ~3;
  const nPd = min(s, kD), nPh = min(s, kH), nPw = min(s, kW);
  const Dq = outD + (kD - 1) / s, Hq = outH + (kH - 1) / s, Wq = ((outW + 7) & ~7) + (kW - 1) / s;
  const wp = work;
  const offs = wp + (<usize>F4 * <usize>K << 2);
  const image = C * inD * inH * inW;
  for (let b = b0; b < b1; b++) {
    fillPlanes(x + (<usize>b * <usize>image << 2), C, inD, inH, inW, outD, outH, outW, kD, kH, kW, s, padD, padH, padW, planes, b == b0);
    const ob = out + (<usize>b * <usize>F * <usize>P << 2);
    for (let od = 0; od < outD; od++) {
      for (let oh = 0; oh < outH; oh++) {
        const row = planes + (<usize>((od * Hq + oh) * Wq) << 2);
        const orow = ob + (<usize>((od * outH + oh) * outW) << 2);
        if (K == 9) {
          direct9(wp, offs, row, orow, outW, <usize>P << 2, F, bias);
          continue;
        }
        for (let ow0 = 0; ow0 < outW; ow0 += 8) {
          const n = min(8, outW - ow0);
          const xr = row + (<usize>ow0 << 2);
          for (let fp = 0; fp < F4; fp += 4) {
            directMicro(wp + (<usize>(fp * K) << 2), offs, xr, K, orow + (<usize>ow0 << 2), <usize>P << 2, fp, F, n, bias);
          }
        }
      }
    }
  }
}

// Nine taps (one channel, 3×3): the 9 input vectors of 4 columns stay in registers while every filter
// is summed over them — directMicro's order (0, then taps ascending, then the bias), so the same bits.
function direct9(wp: usize, offs: usize, row: usize, orow: usize, outW: i32, fStride: usize, F: i32, bias: usize): void {
  const q0 = <usize>load<i32>(offs), q1 = <usize>load<i32>(offs, 4), q2 = <usize>load<i32>(offs, 8);
  const q3 = <usize>load<i32>(offs, 12), q4 = <usize>load<i32>(offs, 16), q5 = <usize>load<i32>(offs, 20);
  const q6 = <usize>load<i32>(offs, 24), q7 = <usize>load<i32>(offs, 28), q8 = <usize>load<i32>(offs, 32);
  for (let ow0 = 0; ow0 < outW; ow0 += 4) {
    const xr = row + (<usize>ow0 << 2);
    const x0 = v128.load(xr + q0), x1 = v128.load(xr + q1), x2 = v128.load(xr + q2);
    const x3 = v128.load(xr + q3), x4 = v128.load(xr + q4), x5 = v128.load(xr + q5);
    const x6 = v128.load(xr + q6), x7 = v128.load(xr + q7), x8 = v128.load(xr + q8);
    const n = min(4, outW - ow0);
    let o = orow + (<usize>ow0 << 2);
    for (let f = 0; f < F; f++) {
      // Panel layout [f/4][q][f%4]: tap q of filter f at w + q·16.
      const w = wp + ((<usize>(f >> 2) * 36 + <usize>(f & 3)) << 2);
      let a = f32x4.add(f32x4.splat(0), f32x4.mul(v128.load32_splat(w), x0));
      a = f32x4.add(a, f32x4.mul(v128.load32_splat(w, 16), x1));
      a = f32x4.add(a, f32x4.mul(v128.load32_splat(w, 32), x2));
      a = f32x4.add(a, f32x4.mul(v128.load32_splat(w, 48), x3));
      a = f32x4.add(a, f32x4.mul(v128.load32_splat(w, 64), x4));
      a = f32x4.add(a, f32x4.mul(v128.load32_splat(w, 80), x5));
      a = f32x4.add(a, f32x4.mul(v128.load32_splat(w, 96), x6));
      a = f32x4.add(a, f32x4.mul(v128.load32_splat(w, 112), x7));
      a = f32x4.add(a, f32x4.mul(v128.load32_splat(w, 128), x8));
      if (bias) a = f32x4.add(a, v128.load32_splat(bias + (<usize>f << 2)));
      if (n == 4) v128.store(o, a);
      else {
        v128.store32_lane(o, a, 0);
        if (n > 1) v128.store32_lane(o, a, 1, 4);
        if (n > 2) v128.store32_lane(o, a, 2, 8);
      }
      o += fStride;
    }
  }
}

// Filters fp…fp+3 × 8 output columns: Σ_q w[f][q]·x[xr + offs[q] + lane] in ascending q, + bias.
@inline function directMicro(pw: usize, po: usize, xr: usize, K: i32, o: usize, fStride: usize, fp: i32, F: i32, n: i32, bias: usize): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0);
  let c10 = f32x4.splat(0), c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0);
  let c30 = f32x4.splat(0), c31 = f32x4.splat(0);
  for (let q = 0; q < K; q++) {
    const xo = xr + <usize>load<i32>(po);
    const x0 = v128.load(xo);
    const x1 = v128.load(xo, 16);
    let a = v128.load32_splat(pw);
    c00 = f32x4.add(c00, f32x4.mul(a, x0));
    c01 = f32x4.add(c01, f32x4.mul(a, x1));
    a = v128.load32_splat(pw, 4);
    c10 = f32x4.add(c10, f32x4.mul(a, x0));
    c11 = f32x4.add(c11, f32x4.mul(a, x1));
    a = v128.load32_splat(pw, 8);
    c20 = f32x4.add(c20, f32x4.mul(a, x0));
    c21 = f32x4.add(c21, f32x4.mul(a, x1));
    a = v128.load32_splat(pw, 12);
    c30 = f32x4.add(c30, f32x4.mul(a, x0));
    c31 = f32x4.add(c31, f32x4.mul(a, x1));
    pw += 16;
    po += 4;
  }
  directStore(c00, c01, o + <usize>fp * fStride, fp, F, n, bias);
  directStore(c10, c11, o + <usize>(fp + 1) * fStride, fp + 1, F, n, bias);
  directStore(c20, c21, o + <usize>(fp + 2) * fStride, fp + 2, F, n, bias);
  directStore(c30, c31, o + <usize>(fp + 3) * fStride, fp + 3, F, n, bias);
}

@inline function directStore(v0: v128, v1: v128, o: usize, f: i32, F: i32, n: i32, bias: usize): void {
  if (f >= F) return;
  let a = v0, b = v1;
  if (bias) {
    const bv = v128.load32_splat(bias + (<usize>f << 2));
    a = f32x4.add(a, bv);
    b = f32x4.add(b, bv);
  }
  if (n == 8) {
    v128.store(o, a);
    v128.store(o, b, 16);
    return;
  }
  // A ragged last column group: whole vectors while they fit, then single lanes.
  let rest = a;
  let p = o;
  let m = n;
  if (m >= 4) {
    v128.store(p, a);
    rest = b;
    p += 16;
    m -= 4;
  }
  if (m >= 2) {
    v128.store64_lane(p, rest, 0);
    if (m == 3) v128.store32_lane(p, rest, 2, 8);
  } else if (m == 1) {
    v128.store32_lane(p, rest, 0);
  }
}

// ---- im2col + gemm (fallback when the scratch cannot hold the planes) ----

// col[q][p] = the value output position p reads at patch index q = ((c·kD + kd)·kH + kh)·kW + kw, 0 in the padding.
function im2colSample(
  xb: usize, C: i32, inD: i32, inH: i32, inW: i32, outD: i32, outH: i32, outW: i32,
  kD: i32, kH: i32, kW: i32, stride: i32, padD: i32, padH: i32, padW: i32, col: usize,
): void {
  const P = outD * outH * outW;
  let q = 0;
  for (let c = 0; c < C; c++) {
    for (let kd = 0; kd < kD; kd++) {
      for (let kh = 0; kh < kH; kh++) {
        for (let kw = 0; kw < kW; kw++) {
          let dst = col + ((<usize>q * <usize>P) << 2);
          for (let od = 0; od < outD; od++) {
            const id = od * stride - padD + kd;
            for (let oh = 0; oh < outH; oh++) {
              const ih = oh * stride - padH + kh;
              if (id < 0 || id >= inD || ih < 0 || ih >= inH) {
                zeroFloats(dst, outW);
                dst += <usize>outW << 2;
                continue;
              }
              const src = xb + ((<usize>((c * inD + id) * inH + ih) * <usize>inW) << 2);
              for (let ow = 0; ow < outW; ow++) {
                const iw = ow * stride - padW + kw;
                store<f32>(dst, iw >= 0 && iw < inW ? load<f32>(src + (<usize>iw << 2)) : 0);
                dst += 4;
              }
            }
          }
          q++;
        }
      }
    }
  }
}

function convIm2col(
  b0: i32, b1: i32, C: i32, inD: i32, inH: i32, inW: i32, outD: i32, outH: i32, outW: i32,
  kD: i32, kH: i32, kW: i32, stride: i32, padD: i32, padH: i32, padW: i32, F: i32,
  x: usize, w: usize, bias: usize, out: usize, work: usize, col: usize,
): void {
  const P = outD * outH * outW;
  const K = C * kD * kH * kW;
  const image = C * inD * inH * inW;
  for (let b = b0; b < b1; b++) {
    im2colSample(x + ((<usize>b * <usize>image) << 2), C, inD, inH, inW, outD, outH, outW, kD, kH, kW, stride, padD, padH, padW, col);
    const ob = out + ((<usize>b * <usize>F * <usize>P) << 2);
    gemm(F, P, K, w, 0, col, 1, ob, 0, work);
    if (bias) {
      for (let f = 0; f < F; f++) {
        const row = ob + ((<usize>f * <usize>P) << 2);
        const bv = v128.load32_splat(bias + (<usize>f << 2));
        const bs = load<f32>(bias + (<usize>f << 2));
        let p = 0;
        for (; p + 4 <= P; p += 4) v128.store(row + (<usize>p << 2), f32x4.add(v128.load(row + (<usize>p << 2)), bv));
        for (; p < P; p++) store<f32>(row + (<usize>p << 2), load<f32>(row + (<usize>p << 2)) + bs);
      }
    }
  }
}

// ---- Recurrent layers (LSTM) ----
//
// Gate math in float32 with one fixed operation order (so it is the same on every CPU):
// exp(x) = 2ⁿ·p(r), n = nearest(x·log2 e), r = x − n·C1 − n·C2, p the Cephes expf polynomial;
// σ(x) = 1 / (1 + exp(−x)); tanh(x) = ±(1 − e)/(1 + e) with e = exp(−2|x|). Lanes never mix, so a value
// gets the same bits in any lane of a vector and in the scalar tail.

// The vector constants of expV, sigmoidV, tanhV and the Winograd transforms, each splat to 4 lanes in static memory. V8 rebuilds
// a v128 constant inside every loop that uses it (a move to a general register, one to a vector
// register, a shuffle) and then runs out of registers; a load from memory is one cheap operation.
const VC = memory.data<f32>([
  -87.5, -87.5, -87.5, -87.5,
  88.5, 88.5, 88.5, 88.5,
  1.44269504088896341, 1.44269504088896341, 1.44269504088896341, 1.44269504088896341,
  0.693359375, 0.693359375, 0.693359375, 0.693359375,
  2.12194440e-4, 2.12194440e-4, 2.12194440e-4, 2.12194440e-4,
  1.9875691500e-4, 1.9875691500e-4, 1.9875691500e-4, 1.9875691500e-4,
  1.3981999507e-3, 1.3981999507e-3, 1.3981999507e-3, 1.3981999507e-3,
  8.3334519073e-3, 8.3334519073e-3, 8.3334519073e-3, 8.3334519073e-3,
  4.1665795894e-2, 4.1665795894e-2, 4.1665795894e-2, 4.1665795894e-2,
  1.6666665459e-1, 1.6666665459e-1, 1.6666665459e-1, 1.6666665459e-1,
  5.0000001201e-1, 5.0000001201e-1, 5.0000001201e-1, 5.0000001201e-1,
  1, 1, 1, 1,
  -2, -2, -2, -2,
  2, 2, 2, 2,
  4, 4, 4, 4,
  8, 8, 8, 8,
  // 1.5·2²³: n + this holds the integer n in its low mantissa bits (|n| < 2²²).
  12582912, 12582912, 12582912, 12582912,
], 16);
const VC_LO = 0, VC_HI = 16, VC_LOG2E = 32, VC_LN2_HI = 48, VC_LN2_LO = 64, VC_P0 = 80, VC_P1 = 96, VC_P2 = 112;
const VC_P3 = 128, VC_P4 = 144, VC_P5 = 160, VC_ONE = 176, VC_MINUS2 = 192, VC_TWO = 208, VC_FOUR = 224, VC_EIGHT = 240, VC_MAGIC = 256;

@inline function vc(offset: usize): v128 {
  return v128.load(VC + offset);
}

// The float32 exponent bias in 4 lanes (a load, like VC's constants).
const EXP_BIAS = memory.data<i32>([127, 127, 127, 127], 16);

@inline function expV(x: v128): v128 {
  // pmin/pmax (one minps/maxps each; wasm's min/max take several instructions to order NaN and ±0):
  // the bounds are finite and nonzero, and a NaN x still comes through as NaN.
  const v = f32x4.pmin(f32x4.pmax(x, vc(VC_LO)), vc(VC_HI));
  const n = f32x4.nearest(f32x4.mul(v, vc(VC_LOG2E)));
  let r = f32x4.sub(v, f32x4.mul(n, vc(VC_LN2_HI)));
  r = f32x4.add(r, f32x4.mul(n, vc(VC_LN2_LO)));
  const r2 = f32x4.mul(r, r);
  let p = f32x4.add(f32x4.mul(vc(VC_P0), r), vc(VC_P1));
  p = f32x4.add(f32x4.mul(p, r), vc(VC_P2));
  p = f32x4.add(f32x4.mul(p, r), vc(VC_P3));
  p = f32x4.add(f32x4.mul(p, r), vc(VC_P4));
  p = f32x4.add(f32x4.mul(p, r), vc(VC_P5));
  p = f32x4.add(f32x4.add(f32x4.mul(p, r2), r), vc(VC_ONE));
  // 2ⁿ as float bits; n ∈ [−127, 128] is integral, so n + 1.5·2²³ is exact and its bits minus the
  // constant's are n (what a saturating conversion gives, in two operations instead of five).
  const magic = vc(VC_MAGIC);
  const ni = i32x4.sub(f32x4.add(n, magic), magic);
  const h = i32x4.shr_s(ni, 1);
  const bias = v128.load(EXP_BIAS);
  const s1 = i32x4.shl(i32x4.add(h, bias), 23);
  const s2 = i32x4.shl(i32x4.add(i32x4.sub(ni, h), bias), 23);
  return f32x4.mul(f32x4.mul(p, s1), s2);
}

@inline function expS(x: f32): f32 {
  const v = min<f32>(max<f32>(x, -87.5), 88.5);
  const n = nearest<f32>(v * <f32>1.44269504088896341);
  let r = v - n * <f32>0.693359375;
  r = r + n * <f32>2.12194440e-4;
  const r2 = r * r;
  let p = <f32>1.9875691500e-4 * r + <f32>1.3981999507e-3;
  p = p * r + <f32>8.3334519073e-3;
  p = p * r + <f32>4.1665795894e-2;
  p = p * r + <f32>1.6666665459e-1;
  p = p * r + <f32>5.0000001201e-1;
  p = (p * r2 + r) + <f32>1;
  const ni = <i32>n;
  const h = ni >> 1;
  return (p * reinterpret<f32>((h + 127) << 23)) * reinterpret<f32>((ni - h + 127) << 23);
}

@inline function sigmoidV(x: v128): v128 {
  const one = vc(VC_ONE);
  return f32x4.div(one, f32x4.add(one, expV(f32x4.neg(x))));
}

@inline function sigmoidS(x: f32): f32 {
  return <f32>1 / (<f32>1 + expS(-x));
}

@inline function tanhV(x: v128): v128 {
  const e = expV(f32x4.mul(f32x4.abs(x), vc(VC_MINUS2)));
  const one = vc(VC_ONE);
  const t = f32x4.div(f32x4.sub(one, e), f32x4.add(one, e));
  // The sign of x onto t (t ≥ 0).
  return v128.or(t, v128.and(x, i32x4.splat(0x80000000)));
}

@inline function tanhS(x: f32): f32 {
  const e = expS(abs<f32>(x) * <f32>-2);
  const t = (<f32>1 - e) / (<f32>1 + e);
  return reinterpret<f32>(reinterpret<u32>(t) | (reinterpret<u32>(x) & 0x80000000));
}

// The Sigmoid, Tanh, SiLU and GELU (tanh form) activations of Dense and convolution layers, accurate
// to a few float32 ulps everywhere (the recurrent kernels keep the cheaper forms above). tanh: Cephes'
// odd polynomial |x| + |x|·z·P(z), z = x², below 0.625, else 1 − r with r = 2/(exp(2|x|) + 1); the sign
// of x last, so −0 stays −0. The cancellations of saturated inputs are avoided: 1 − t² = r·(2 − r) and
// 1 + t = r for t < −0.555 above 0.625, and σ'(x) = s·(e·s) with e = exp(−x), s = 1/(1 + e). Kinds: 0 σ, 1 tanh,
// 2 SiLU x·σ(x), 3 GELU x·(1 + tanh u)/2 with u = √(2/π)·(x + 0.044715·x³).
const TC = memory.data<f32>([
  -5.70498872745e-3, -5.70498872745e-3, -5.70498872745e-3, -5.70498872745e-3,
  2.06390887954e-2, 2.06390887954e-2, 2.06390887954e-2, 2.06390887954e-2,
  -5.37397155531e-2, -5.37397155531e-2, -5.37397155531e-2, -5.37397155531e-2,
  1.33314422036e-1, 1.33314422036e-1, 1.33314422036e-1, 1.33314422036e-1,
  -3.33332819422e-1, -3.33332819422e-1, -3.33332819422e-1, -3.33332819422e-1,
  0.625, 0.625, 0.625, 0.625,
  0.7978845608028654, 0.7978845608028654, 0.7978845608028654, 0.7978845608028654,
  0.044715, 0.044715, 0.044715, 0.044715,
  0.134145, 0.134145, 0.134145, 0.134145,
  0.5, 0.5, 0.5, 0.5,
  88, 88, 88, 88,
], 16);
const TC_P0 = 0, TC_P1 = 16, TC_P2 = 32, TC_P3 = 48, TC_P4 = 64, TC_SMALL = 80, TC_GELU_C = 96, TC_GELU_K = 112, TC_GELU_3K = 128, TC_HALF = 144;
const TC_EXP_MAX = 160;

@inline function tc(offset: usize): v128 {
  return v128.load(TC + offset);
}

// |tanh x| below 0.625 (ax = |x|, z = x²).
@inline function tanhSmallV(ax: v128, z: v128): v128 {
  let p = f32x4.add(f32x4.mul(tc(TC_P0), z), tc(TC_P1));
  p = f32x4.add(f32x4.mul(p, z), tc(TC_P2));
  p = f32x4.add(f32x4.mul(p, z), tc(TC_P3));
  p = f32x4.add(f32x4.mul(p, z), tc(TC_P4));
  return f32x4.add(f32x4.mul(f32x4.mul(p, z), ax), ax);
}

@inline function tanhSmallS(ax: f32, z: f32): f32 {
  let p = <f32>-5.70498872745e-3 * z + <f32>2.06390887954e-2;
  p = p * z + <f32>-5.37397155531e-2;
  p = p * z + <f32>1.33314422036e-1;
  p = p * z + <f32>-3.33332819422e-1;
  return (p * z) * ax + ax;
}

// exp clamps its argument to float32's range, which would leave about 1e-38 where these underflow:
// r = 2/(exp(2a) + 1) and σ = 1/(1 + e), e = exp(−x), are 0 once the exponent passes 88.
@inline function tailV(a: v128): v128 {
  const a2 = f32x4.add(a, a);
  return v128.andnot(f32x4.div(vc(VC_TWO), f32x4.add(expV(a2), vc(VC_ONE))), f32x4.gt(a2, tc(TC_EXP_MAX)));
}

@inline function tailS(a: f32): f32 {
  const a2 = a + a;
  return a2 > <f32>88 ? 0 : <f32>2 / (expS(a2) + <f32>1);
}

@inline function logisticV(x: v128, e: v128): v128 {
  return v128.andnot(f32x4.div(vc(VC_ONE), f32x4.add(vc(VC_ONE), e)), f32x4.gt(f32x4.neg(x), tc(TC_EXP_MAX)));
}

@inline function logisticS(x: f32, e: f32): f32 {
  return -x > <f32>88 ? 0 : <f32>1 / (<f32>1 + e);
}

// 1 − tanh²: from the polynomial below 0.625 (a = |x|, z = x²), else r·(2 − r), r = 2/(exp(2a) + 1).
@inline function tanhPrimeV(a: v128, z: v128, r: v128): v128 {
  const t = tanhSmallV(a, z);
  return v128.bitselect(f32x4.sub(vc(VC_ONE), f32x4.mul(t, t)), f32x4.mul(r, f32x4.sub(vc(VC_TWO), r)), f32x4.lt(a, tc(TC_SMALL)));
}

@inline function tanhPrimeS(a: f32, z: f32, r: f32): f32 {
  if (a < <f32>0.625) {
    const t = tanhSmallS(a, z);
    return <f32>1 - t * t;
  }
  return r * (<f32>2 - r);
}

// GELU's u = √(2/π)·(x + 0.044715·x³).
@inline function geluArgV(x: v128): v128 {
  return f32x4.mul(tc(TC_GELU_C), f32x4.add(x, f32x4.mul(tc(TC_GELU_K), f32x4.mul(f32x4.mul(x, x), x))));
}

@inline function geluArgS(x: f32): f32 {
  return <f32>0.7978845608028654 * (x + <f32>0.044715 * ((x * x) * x));
}

// 1 + tanh u (au = |u|, r = 2/(exp(2·au) + 1)): 1 ± the polynomial below 0.625; above it 2 − r for
// u ≥ 0 and r itself for u < 0 (where 1 + t would cancel).
@inline function geluOnePlusTV(u: v128, au: v128, r: v128): v128 {
  const small = tanhSmallV(au, f32x4.mul(u, u));
  const one = vc(VC_ONE);
  const neg = f32x4.lt(u, f32x4.splat(0));
  const near = v128.bitselect(f32x4.sub(one, small), f32x4.add(one, small), neg);
  const far = v128.bitselect(r, f32x4.sub(vc(VC_TWO), r), neg);
  return v128.bitselect(near, far, f32x4.lt(au, tc(TC_SMALL)));
}

@inline function geluOnePlusTS(u: f32, au: f32, r: f32): f32 {
  if (au < <f32>0.625) {
    const small = tanhSmallS(au, u * u);
    return u < 0 ? <f32>1 - small : <f32>1 + small;
  }
  return u < 0 ? r : <f32>2 - r;
}

/** out = f(pre) for activation `kind` (0 σ, 1 tanh, 2 SiLU, 3 GELU), n values. */
export function activationForward(kind: i32, n: i32, pre: usize, out: usize): void {
  const sign = i32x4.splat(0x80000000);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const x = v128.load(pre + (<usize>i << 2));
    let y: v128;
    if (kind == 0 || kind == 2) {
      const s = logisticV(x, expV(f32x4.neg(x)));
      y = kind == 0 ? s : f32x4.mul(x, s);
    } else if (kind == 1) {
      const ax = f32x4.abs(x);
      const r = tailV(ax);
      const t = v128.bitselect(tanhSmallV(ax, f32x4.mul(x, x)), f32x4.sub(vc(VC_ONE), r), f32x4.lt(ax, tc(TC_SMALL)));
      y = v128.or(t, v128.and(x, sign));
    } else {
      const u = geluArgV(x);
      const au = f32x4.abs(u);
      y = f32x4.mul(f32x4.mul(tc(TC_HALF), x), geluOnePlusTV(u, au, tailV(au)));
    }
    v128.store(out + (<usize>i << 2), y);
  }
  for (; i < n; i++) {
    const x = load<f32>(pre + (<usize>i << 2));
    let y: f32;
    if (kind == 0 || kind == 2) {
      const s = logisticS(x, expS(-x));
      y = kind == 0 ? s : x * s;
    } else if (kind == 1) {
      const ax = abs<f32>(x);
      const t: f32 = ax < <f32>0.625 ? tanhSmallS(ax, x * x) : <f32>1 - tailS(ax);
      y = reinterpret<f32>(reinterpret<u32>(t) | (reinterpret<u32>(x) & 0x80000000));
    } else {
      const u = geluArgS(x);
      const au = abs<f32>(u);
      y = (<f32>0.5 * x) * geluOnePlusTS(u, au, tailS(au));
    }
    store<f32>(out + (<usize>i << 2), y);
  }
}

/** gradPre = gradOut · f'(pre) for activation `kind` (as activationForward), n values. */
export function activationBackward(kind: i32, n: i32, gradOut: usize, pre: usize, gradPre: usize): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const x = v128.load(pre + o);
    let d: v128;
    if (kind == 0 || kind == 2) {
      // σ' = s·(e·s) with s = 1/(1 + e): no (1 + e)² to overflow.
      const e = expV(f32x4.neg(x));
      const s = logisticV(x, e);
      d = f32x4.mul(s, f32x4.mul(e, s));
      // SiLU: σ(x) + x·σ'(x).
      if (kind == 2) d = f32x4.add(s, f32x4.mul(x, d));
    } else if (kind == 1) {
      const ax = f32x4.abs(x);
      d = tanhPrimeV(ax, f32x4.mul(x, x), tailV(ax));
    } else {
      const u = geluArgV(x);
      const au = f32x4.abs(u);
      const r = tailV(au);
      // (1 + t)/2 + x/2·(1 − t²)·du, du = √(2/π)·(1 + 3·0.044715·x²).
      const du = f32x4.mul(tc(TC_GELU_C), f32x4.add(vc(VC_ONE), f32x4.mul(tc(TC_GELU_3K), f32x4.mul(x, x))));
      const half = tc(TC_HALF);
      d = f32x4.add(f32x4.mul(half, geluOnePlusTV(u, au, r)), f32x4.mul(f32x4.mul(f32x4.mul(half, x), tanhPrimeV(au, f32x4.mul(u, u), r)), du));
    }
    v128.store(gradPre + o, f32x4.mul(v128.load(gradOut + o), d));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const x = load<f32>(pre + o);
    let d: f32;
    if (kind == 0 || kind == 2) {
      const e = expS(-x);
      const s = logisticS(x, e);
      d = s * (e * s);
      if (kind == 2) d = s + x * d;
    } else if (kind == 1) {
      const ax = abs<f32>(x);
      d = tanhPrimeS(ax, x * x, tailS(ax));
    } else {
      const u = geluArgS(x);
      const au = abs<f32>(u);
      const r = tailS(au);
      const du = <f32>0.7978845608028654 * (<f32>1 + <f32>0.134145 * (x * x));
      d = <f32>0.5 * geluOnePlusTS(u, au, r) + ((<f32>0.5 * x) * tanhPrimeS(au, u * u, r)) * du;
    }
    store<f32>(gradPre + o, load<f32>(gradOut + o) * d);
  }
}

/** out[i] = σ(x[i]) (kind 0) or tanh(x[i]) (kind 1) for i < n, as the recurrent kernels compute them. */
export function activateF32(kind: i32, n: i32, x: usize, out: usize): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const v = v128.load(x + (<usize>i << 2));
    v128.store(out + (<usize>i << 2), kind == 0 ? sigmoidV(v) : tanhV(v));
  }
  for (; i < n; i++) {
    const v = load<f32>(x + (<usize>i << 2));
    store<f32>(out + (<usize>i << 2), kind == 0 ? sigmoidS(v) : tanhS(v));
  }
}

// C[M×N] = A[M×K]·B (+ C when accumulate, added after the product) with B packed by packBNK/packBKN
// into 8-column panels [N/8][K][8]; A rows read in place (row pitch lda). Each element sums its k terms
// in ascending order from 0, whatever M.
function gemmPanels(M: i32, N: i32, K: i32, a: usize, lda: usize, pb: usize, c: usize, ldc: usize, accumulate: bool, tile: usize): void {
  // Each block of 4 rows of A interleaved as aT[k][4] after the edge tile; missing rows repeat the last
  // (their sums are dropped).
  const aT = tile + 128;
  for (let i = 0; i < M; i += 4) {
    const rows = min(4, M - i);
    const r0 = a + <usize>i * lda;
    const r1 = rows > 1 ? r0 + lda : r0;
    const r2 = rows > 2 ? r0 + 2 * lda : r1;
    const r3 = rows > 3 ? r0 + 3 * lda : r2;
    interleave4(r0, r1, r2, r3, K, aT);
    for (let j = 0; j < N; j += 8) {
      const cols = min(8, N - j);
      // The tile's 4×8 sums from 0 in `tile` (pitch 32 bytes), then stored or added to C.
      tile4x8(tile, 32, aT, pb + (<usize>(j * K) << 2), K, true);
      const cp = c + <usize>i * ldc + (<usize>j << 2);
      if (rows == 4 && cols == 8) {
        for (let r: usize = 0; r < 4; r++) storeRow(cp + r * ldc, v128.load(tile + (r << 5)), v128.load(tile + (r << 5), 16), !accumulate, 0);
        continue;
      }
      for (let r = 0; r < rows; r++) {
        for (let l = 0; l < cols; l++) {
          const d = cp + <usize>r * ldc + (<usize>l << 2);
          const v = load<f32>(tile + (<usize>(r * 8 + l) << 2));
          store<f32>(d, accumulate ? load<f32>(d) + v : v);
        }
      }
    }
  }
}

/** Scratch bytes lstmForward and lstmBackward need at `scratch` for hidden size H and batch B. */
export function lstmScratchBytes(B: i32, H: i32): usize {
  const G = 4 * H;
  const packed = max(<usize>((G + 7) & ~7) * <usize>H, <usize>((H + 7) & ~7) * <usize>G);
  // + gemmPanels' edge tile and its interleaved rows (4 per k, K ≤ 4H).
  return (packed + <usize>B * <usize>(2 * H) + 64 + <usize>(4 * G)) << 2;
}

/**
 * LSTM forward over a time-major sequence (rows t·B + b): x [S·B×nIn], W_ih [4H×nIn], W_hh [4H×H],
 * bias [4H] (gate order i, f, g, o). Writes the gate activations [S·B×4H], cells and hidden states
 * [S·B×H]. Pre-activations: (x·W_ihᵀ by gemm, + bias) + h_{t−1}·W_hhᵀ (ascending k); then
 * c = f·c_{t−1} + i·g, h = o·tanh(c).
 */
export function lstmForward(S: i32, B: i32, nIn: i32, H: i32, x: usize, wih: usize, whh: usize, bias: usize, gates: usize, c: usize, h: usize, work: usize, scratch: usize): void {
  const G = 4 * H;
  const rows = S * B;
  gemm(rows, G, nIn, x, 0, wih, 0, gates, bias, work);
  const packed = scratch;
  packBNK(whh, H, 0, H, 0, G, packed, 8);
  const tile = packed + (<usize>((G + 7) & ~7) * <usize>H << 2);
  const ldg = <usize>G << 2;
  const ldh = <usize>H << 2;
  for (let t = 0; t < S; t++) {
    const gt = gates + <usize>(t * B) * ldg;
    if (t > 0) gemmPanels(B, G, H, h + <usize>((t - 1) * B) * ldh, ldh, packed, gt, ldg, true, tile);
    for (let b = 0; b < B; b++) {
      const r = gt + <usize>b * ldg;
      const o = <usize>(t * B + b) * ldh;
      const cp = c + o, hp = h + o;
      const prev = c + o - <usize>B * ldh;
      let j = 0;
      for (; j + 4 <= H; j += 4) {
        const jb = <usize>j << 2;
        const ig = sigmoidV(v128.load(r + jb));
        const fg = sigmoidV(v128.load(r + ldh + jb));
        const gg = tanhV(v128.load(r + 2 * ldh + jb));
        const og = sigmoidV(v128.load(r + 3 * ldh + jb));
        v128.store(r + jb, ig);
        v128.store(r + ldh + jb, fg);
        v128.store(r + 2 * ldh + jb, gg);
        v128.store(r + 3 * ldh + jb, og);
        const ixg = f32x4.mul(ig, gg);
        const cell = t > 0 ? f32x4.add(f32x4.mul(fg, v128.load(prev + jb)), ixg) : ixg;
        v128.store(cp + jb, cell);
        v128.store(hp + jb, f32x4.mul(og, tanhV(cell)));
      }
      for (; j < H; j++) {
        const jb = <usize>j << 2;
        const ig = sigmoidS(load<f32>(r + jb));
        const fg = sigmoidS(load<f32>(r + ldh + jb));
        const gg = tanhS(load<f32>(r + 2 * ldh + jb));
        const og = sigmoidS(load<f32>(r + 3 * ldh + jb));
        store<f32>(r + jb, ig);
        store<f32>(r + ldh + jb, fg);
        store<f32>(r + 2 * ldh + jb, gg);
        store<f32>(r + 3 * ldh + jb, og);
        const ixg = ig * gg;
        const cell = t > 0 ? fg * load<f32>(prev + jb) + ixg : ixg;
        store<f32>(cp + jb, cell);
        store<f32>(hp + jb, og * tanhS(cell));
      }
    }
  }
}

/** Scratch bytes rnnForward needs: W_hh in 8-column panels, gemmPanels' edge tile and interleaved rows. */
export function rnnScratchBytes(H: i32): usize {
  return (<usize>((H + 7) & ~7) * <usize>H + 64 + <usize>(4 * H)) << 2;
}

/**
 * RNN forward over a time-major sequence (rows t·B + b): x [S·B×nIn], W_ih [H×nIn], W_hh [H×H],
 * bias [H]. Writes h [S·B×H]: h_t = tanh((x_t·W_ihᵀ by gemm, + bias) + h_{t−1}·W_hhᵀ (ascending k)),
 * tanh as the LSTM kernel computes it.
 */
export function rnnForward(S: i32, B: i32, nIn: i32, H: i32, x: usize, wih: usize, whh: usize, bias: usize, h: usize, work: usize, scratch: usize): void {
  gemm(S * B, H, nIn, x, 0, wih, 0, h, bias, work);
  const packed = scratch;
  packBNK(whh, H, 0, H, 0, H, packed, 8);
  const tile = packed + (<usize>((H + 7) & ~7) * <usize>H << 2);
  const ldh = <usize>H << 2;
  for (let t = 0; t < S; t++) {
    const ht = h + <usize>(t * B) * ldh;
    if (t > 0) gemmPanels(B, H, H, ht - <usize>B * ldh, ldh, packed, ht, ldh, true, tile);
    activateF32(1, B * H, ht, ht);
  }
}

/**
 * LSTM backward through time: from the forward's gate activations and cells, the gradient dL/dh of
 * every output (time-major [S·B×H]) and W_hh, writes dG, the gradients of the gate pre-activations
 * [S·B×4H]. Walking back in time: dh = dL/dh_t + dG_{t+1}·W_hh (ascending k), dc = dc_{t+1}·f_{t+1} +
 * dh·o·(1 − tanh²c), then dG_i = dc·g·i·(1 − i), dG_f = dc·c_{t−1}·f·(1 − f), dG_g = dc·i·(1 − g²),
 * dG_o = dh·tanh(c)·o·(1 − o), each product taken left to right.
 */
export function lstmBackward(S: i32, B: i32, H: i32, gates: usize, c: usize, gOut: usize, whh: usize, dG: usize, scratch: usize): void {
  const G = 4 * H;
  const H8 = (H + 7) & ~7;
  const packed = scratch;
  packBKN(whh, H, 0, G, 0, H, packed, 8);
  const dh = packed + (<usize>H8 * <usize>G << 2);
  const dc = dh + (<usize>(B * H) << 2);
  const tile = dc + (<usize>(B * H) << 2);
  memory.fill(dh, 0, <usize>(B * H) << 2);
  memory.fill(dc, 0, <usize>(B * H) << 2);
  const ldg = <usize>G << 2;
  const ldh = <usize>H << 2;
  const one = vc(VC_ONE);
  for (let t = S - 1; t >= 0; t--) {
    for (let b = 0; b < B; b++) {
      const r = gates + <usize>(t * B + b) * ldg;
      const d = dG + <usize>(t * B + b) * ldg;
      const o = <usize>(t * B + b) * ldh;
      const s = <usize>b * ldh;
      let j = 0;
      for (; j + 4 <= H; j += 4) {
        const jb = <usize>j << 2;
        const ig = v128.load(r + jb), fg = v128.load(r + ldh + jb), gg = v128.load(r + 2 * ldh + jb), og = v128.load(r + 3 * ldh + jb);
        const tc = tanhV(v128.load(c + o + jb));
        const dhv = f32x4.add(v128.load(gOut + o + jb), v128.load(dh + s + jb));
        const dcv = f32x4.add(v128.load(dc + s + jb), f32x4.mul(f32x4.mul(dhv, og), f32x4.sub(one, f32x4.mul(tc, tc))));
        const cPrev = t > 0 ? v128.load(c + o - <usize>B * ldh + jb) : f32x4.splat(0);
        v128.store(d + jb, f32x4.mul(f32x4.mul(f32x4.mul(dcv, gg), ig), f32x4.sub(one, ig)));
        v128.store(d + ldh + jb, f32x4.mul(f32x4.mul(f32x4.mul(dcv, cPrev), fg), f32x4.sub(one, fg)));
        v128.store(d + 2 * ldh + jb, f32x4.mul(f32x4.mul(dcv, ig), f32x4.sub(one, f32x4.mul(gg, gg))));
        v128.store(d + 3 * ldh + jb, f32x4.mul(f32x4.mul(f32x4.mul(dhv, tc), og), f32x4.sub(one, og)));
        v128.store(dc + s + jb, f32x4.mul(dcv, fg));
      }
      for (; j < H; j++) {
        const jb = <usize>j << 2;
        const ig = load<f32>(r + jb), fg = load<f32>(r + ldh + jb), gg = load<f32>(r + 2 * ldh + jb), og = load<f32>(r + 3 * ldh + jb);
        const tc = tanhS(load<f32>(c + o + jb));
        const dhv = load<f32>(gOut + o + jb) + load<f32>(dh + s + jb);
        const dcv = load<f32>(dc + s + jb) + (dhv * og) * (<f32>1 - tc * tc);
        const cPrev: f32 = t > 0 ? load<f32>(c + o - <usize>B * ldh + jb) : 0;
        store<f32>(d + jb, ((dcv * gg) * ig) * (<f32>1 - ig));
        store<f32>(d + ldh + jb, ((dcv * cPrev) * fg) * (<f32>1 - fg));
        store<f32>(d + 2 * ldh + jb, (dcv * ig) * (<f32>1 - gg * gg));
        store<f32>(d + 3 * ldh + jb, ((dhv * tc) * og) * (<f32>1 - og));
        store<f32>(dc + s + jb, dcv * fg);
      }
    }
    if (t > 0) gemmPanels(B, H, G, dG + <usize>(t * B) * ldg, ldg, packed, dh, ldh, false, tile);
  }
}

// ---- Convolution backward ----
//
// Shapes as in convForward; g is the gradient of the pre-activation output [B][F][P].

/** out[c][f][kd][kh][kw] = w[f][c][kD−1−kd][kH−1−kh][kW−1−kw]: a stride-1 convolution's input gradient is the forward convolution of g with these. */
export function convFlipWeights(C: i32, F: i32, kD: i32, kH: i32, kW: i32, w: usize, out: usize): void {
  const kk = kD * kH * kW;
  for (let f = 0; f < F; f++) {
    for (let c = 0; c < C; c++) {
      const src = w + (<usize>((f * C + c) * kk) << 2);
      const dst = out + (<usize>((c * F + f) * kk) << 2);
      for (let t = 0; t < kk; t++) store<f32>(dst + (<usize>t << 2), load<f32>(src + (<usize>(kk - 1 - t) << 2)));
    }
  }
}

// Samples per gemm in convBackwardData: enough columns to amortize packing, within about 4 MiB.
function dataGroup(K: i32, P: i32, F: i32): i32 {
  return max(1, min(8, (1 << 20) / max(1, (K + F) * P)));
}

/** Float32 values of `col` scratch convBackwardFilter and convBackwardData need (phase planes, patch rows, gemm operands). */
export function convBackwardColFloats(K: i32, P: i32, F: i32): usize {
  const filter = <usize>2 * <usize>((K + 7) & ~7) * <usize>(P + 3) + <usize>F * <usize>K + <usize>((F + 3) & ~3) * <usize>P + 4;
  const data = <usize>dataGroup(K, P, F) * <usize>(K + F) * <usize>P;
  return max(filter, data) + 64;
}

/**
 * dW[f][q] for filters [f0, f1) (f0 a multiple of 4) over all B samples: Σ g·x over the positions in
 * ascending (sample, position) order from 0, one float32 sum per weight. When the sums or the patch
 * rows do not fit the scratch: per sample, gemm over the positions (its own order), the samples'
 * results added in ascending order.
 */
export function convBackwardFilter(
  f0: i32, f1: i32, B: i32, C: i32, inD: i32, inH: i32, inW: i32, outD: i32, outH: i32, outW: i32,
  kD: i32, kH: i32, kW: i32, s: i32, padD: i32, padH: i32, padW: i32, F: i32,
  x: usize, g: usize, dw: usize, work: usize, col: usize,
): void {
  if (f1 <= f0 || B <= 0) return;
  const K = C * kD * kH * kW;
  const P = outD * outH * outW;
  const image = C * inD * inH * inW;
  const workBytes = <usize>(PACK_A_BYTES + PACK_B_BYTES + TILE_BYTES + GEMV_CHUNK * 4);
  const nPd = min(s, kD), nPh = min(s, kH), nPw = min(s, kW);
  const Dq = outD + (kD - 1) / s, Hq = outH + (kH - 1) / s, Wq = ((outW + 7) & ~7) + (kW - 1) / s;
  const planesBytes = <usize>C * <usize>(nPd * nPh * nPw) * <usize>Dq * <usize>Hq * <usize>Wq * 4;
  const nf = f1 - f0;
  const F4 = (nf + 3) & ~3;
  const K8 = (K + 7) & ~7;
  const accBytes = <usize>F4 * <usize>K8 * 4;
  const colTBytes = <usize>(P + 3) * <usize>K8 * 4;
  // The path is chosen for all F filters, so a thread's share [f0, f1) takes the one every split takes.
  const accAll = <usize>((F + 3) & ~3) * <usize>K8 * 4;
  const gTBytes = <usize>F4 * <usize>P * 4;
  if (accAll + (<usize>K << 2) + 64 <= workBytes && planesBytes + colTBytes + gTBytes + 80 <= convBackwardColFloats(K, P, F) * 4) {
    // Per sample the patches in blocks of 8 taps, colT[q/8][p][q%8] (a block holds P + 3 positions), and
    // the output gradient in blocks of 4 filters, gT[f/4][p][f%4]; then dW tiles of 4 filters × 8 taps
    // summed over p in ascending order, carried across samples in `acc` (columns past K and filters past
    // f1 are dropped). Both operands of a tile stream contiguously, from one pointer each.
    const acc = work;
    const offs = acc + accBytes;
    const colT = col + ((planesBytes + 15) & ~15);
    const blockBytes = <usize>(P + 3) * 32;
    const gT = (colT + colTBytes + 15) & ~15;
    memory.fill(acc, 0, accBytes);
    directWeightsOffsets(C, kD, kH, kW, s, outD, outH, outW, offs);
    for (let b = 0; b < B; b++) {
      fillPlanes(x + (<usize>b * <usize>image << 2), C, inD, inH, inW, outD, outH, outW, kD, kH, kW, s, padD, padH, padW, col, b == 0);
      // Four taps × four positions per 4×4 transpose. Taps past K repeat the last one and positions past a
      // row spill into the next row's entries, which that row then overwrites (each block has 3 spare positions).
      const ldT: usize = 32;
      for (let q = 0; q < K8; q += 4) {
        const o0 = col + <usize>load<i32>(offs + (<usize>min(q, K - 1) << 2));
        const o1 = col + <usize>load<i32>(offs + (<usize>min(q + 1, K - 1) << 2));
        const o2 = col + <usize>load<i32>(offs + (<usize>min(q + 2, K - 1) << 2));
        const o3 = col + <usize>load<i32>(offs + (<usize>min(q + 3, K - 1) << 2));
        let dst = colT + <usize>(q >> 3) * blockBytes + (<usize>(q & 4) << 2);
        for (let od = 0; od < outD; od++) {
          for (let oh = 0; oh < outH; oh++) {
            const row = <usize>((od * Hq + oh) * Wq) << 2;
            for (let ow = 0; ow < outW; ow += 4) {
              const at = row + (<usize>ow << 2);
              transposeStore(v128.load(o0 + at), v128.load(o1 + at), v128.load(o2 + at), v128.load(o3 + at), dst + <usize>ow * ldT, ldT);
            }
            dst += <usize>outW * ldT;
          }
        }
      }
      // The output gradient in blocks of 4 filters, gT[f/4][p][f%4]; missing filters repeat the last (dropped).
      const gb = g + (<usize>(b * F) * <usize>P << 2);
      const gBlockBytes = <usize>P << 4;
      for (let fb = f0; fb < f1; fb += 4) {
        const r0 = gb + (<usize>fb * <usize>P << 2), row = <usize>P << 2;
        const r1 = fb + 1 < f1 ? r0 + row : r0;
        const r2 = fb + 2 < f1 ? r0 + 2 * row : r1;
        const r3 = fb + 3 < f1 ? r0 + 3 * row : r2;
        interleave4(r0, r1, r2, r3, P, gT + <usize>((fb - f0) >> 2) * gBlockBytes);
      }
      for (let qb = 0; qb < K8; qb += 8) {
        const block = colT + <usize>(qb >> 3) * blockBytes;
        for (let fb = f0; fb < f1; fb += 4) {
          tile4x8(acc + (<usize>((fb - f0) * K8 + qb) << 2), <usize>K8 << 2, gT + <usize>((fb - f0) >> 2) * gBlockBytes, block, P, false);
        }
      }
    }
    for (let f = f0; f < f1; f++) memory.copy(dw + (<usize>(f * K) << 2), acc + (<usize>((f - f0) * K8) << 2), <usize>K << 2);
    return;
  }
  const tmp = col + (<usize>K * <usize>P << 2);
  for (let b = 0; b < B; b++) {
    im2colSample(x + (<usize>b * <usize>image << 2), C, inD, inH, inW, outD, outH, outW, kD, kH, kW, s, padD, padH, padW, col);
    const gb = g + (<usize>(b * F) * <usize>P << 2);
    gemmRange(F, K, P, gb, 0, col, 0, b == 0 ? dw : tmp, 0, work, f0, f1, 0, K);
    if (b == 0) continue;
    for (let f = f0; f < f1; f++) {
      const d = dw + (<usize>(f * K) << 2), t = tmp + (<usize>(f * K) << 2);
      let q = 0;
      for (; q + 4 <= K; q += 4) v128.store(d + (<usize>q << 2), f32x4.add(v128.load(d + (<usize>q << 2)), v128.load(t + (<usize>q << 2))));
      for (; q < K; q++) store<f32>(d + (<usize>q << 2), load<f32>(d + (<usize>q << 2)) + load<f32>(t + (<usize>q << 2)));
    }
  }
}

// Tap offsets into the phase planes only (directWeights without the weight panels).
function directWeightsOffsets(C: i32, kD: i32, kH: i32, kW: i32, s: i32, outD: i32, outH: i32, outW: i32, offs: usize): void {
  const nPd = min(s, kD), nPh = min(s, kH), nPw = min(s, kW);
  const Dq = outD + (kD - 1) / s, Hq = outH + (kH - 1) / s, Wq = ((outW + 7) & ~7) + (kW - 1) / s;
  let q = 0;
  for (let c = 0; c < C; c++) {
    for (let kd = 0; kd < kD; kd++) {
      for (let kh = 0; kh < kH; kh++) {
        for (let kw = 0; kw < kW; kw++) {
          const phase = ((c * nPd + kd % s) * nPh + kh % s) * nPw + kw % s;
          store<i32>(offs + (<usize>q << 2), (((phase * Dq + kd / s) * Hq + kh / s) * Wq + kw / s) << 2);
          q++;
        }
      }
    }
  }
}

// dst[k][i] = row_i[k] for k < n: four rows interleaved, so a 4-row tile splats from one pointer with
// fixed offsets (V8 recomputes per-row offsets inside the loop otherwise).
function interleave4(r0: usize, r1: usize, r2: usize, r3: usize, n: i32, dst: usize): void {
  const n4 = n & ~3;
  for (let k = 0; k < n4; k += 4) {
    const at = <usize>k << 2;
    transposeStore(v128.load(r0 + at), v128.load(r1 + at), v128.load(r2 + at), v128.load(r3 + at), dst + (<usize>k << 4), 16);
  }
  for (let k = n4; k < n; k++) {
    const at = <usize>k << 2, d = dst + (<usize>k << 4);
    store<f32>(d, load<f32>(r0 + at)); store<f32>(d, load<f32>(r1 + at), 4);
    store<f32>(d, load<f32>(r2 + at), 8); store<f32>(d, load<f32>(r3 + at), 12);
  }
}

// Rows a + r·accRow (r < 4) × 8 columns = Σ_k x[k][r]·b[k][0…7], k ascending, from 0 (fromZero) or
// on from the sums already there: x is interleave4's layout (16 bytes a k), b 8-wide panels (32 bytes a k).
@inline function tile4x8(a: usize, accRow: usize, x: usize, b: usize, K: i32, fromZero: bool): void {
  const z = f32x4.splat(0);
  let c00 = fromZero ? z : v128.load(a), c01 = fromZero ? z : v128.load(a, 16);
  let c10 = fromZero ? z : v128.load(a + accRow), c11 = fromZero ? z : v128.load(a + accRow, 16);
  let c20 = fromZero ? z : v128.load(a + 2 * accRow), c21 = fromZero ? z : v128.load(a + 2 * accRow, 16);
  let c30 = fromZero ? z : v128.load(a + 3 * accRow), c31 = fromZero ? z : v128.load(a + 3 * accRow, 16);
  let p = b;
  const end = b + (<usize>K << 5);
  while (p < end) {
    const b0 = v128.load(p);
    const b1 = v128.load(p, 16);
    let v = v128.load32_splat(x);
    c00 = f32x4.add(c00, f32x4.mul(v, b0));
    c01 = f32x4.add(c01, f32x4.mul(v, b1));
    v = v128.load32_splat(x, 4);
    c10 = f32x4.add(c10, f32x4.mul(v, b0));
    c11 = f32x4.add(c11, f32x4.mul(v, b1));
    v = v128.load32_splat(x, 8);
    c20 = f32x4.add(c20, f32x4.mul(v, b0));
    c21 = f32x4.add(c21, f32x4.mul(v, b1));
    v = v128.load32_splat(x, 12);
    c30 = f32x4.add(c30, f32x4.mul(v, b0));
    c31 = f32x4.add(c31, f32x4.mul(v, b1));
    x += 16;
    p += 32;
  }
  v128.store(a, c00); v128.store(a, c01, 16);
  v128.store(a + accRow, c10); v128.store(a + accRow, c11, 16);
  v128.store(a + 2 * accRow, c20); v128.store(a + 2 * accRow, c21, 16);
  v128.store(a + 3 * accRow, c30); v128.store(a + 3 * accRow, c31, 16);
}

/**
 * dx for samples [b0, b1): for runs of up to dataGroup samples, col = Wᵀ·[g_b …] by one gemm ([K×S·P],
 * its order), then each sample's col values are added onto the input positions they were read from,
 * in ascending (q, p) order from 0 (padding dropped).
 */
export function convBackwardData(
  b0: i32, b1: i32, C: i32, inD: i32, inH: i32, inW: i32, outD: i32, outH: i32, outW: i32,
  kD: i32, kH: i32, kW: i32, s: i32, padD: i32, padH: i32, padW: i32, F: i32,
  g: usize, w: usize, dx: usize, work: usize, col: usize,
): void {
  const K = C * kD * kH * kW;
  const P = outD * outH * outW;
  const image = C * inD * inH * inW;
  const S = dataGroup(K, P, F);
  const gs = col + (<usize>S * <usize>K * <usize>P << 2);
  for (let s0 = b0; s0 < b1; s0 += S) {
    const n = min(S, b1 - s0);
    const N = n * P;
    // g of the run as [F][n·P].
    for (let f = 0; f < F; f++) {
      for (let j = 0; j < n; j++) copyFloats(gs + (<usize>(f * N + j * P) << 2), g + (<usize>((s0 + j) * F + f) * <usize>P << 2), P);
    }
    gemm(K, N, F, w, 1, gs, 1, col, 0, work);
    for (let j = 0; j < n; j++) {
      const xb = dx + (<usize>(s0 + j) * <usize>image << 2);
      memory.fill(xb, 0, <usize>image << 2);
      let q = 0;
      for (let c = 0; c < C; c++) {
        for (let kd = 0; kd < kD; kd++) {
          for (let kh = 0; kh < kH; kh++) {
            for (let kw = 0; kw < kW; kw++) {
              let src = col + (<usize>(q * N + j * P) << 2);
              // Output columns whose tap lands inside the row: iw = ow·s − padW + kw in [0, inW).
              const lo = min(outW, max(0, (padW - kw + s - 1) / s));
              const hi = max(lo, min(outW, (inW + padW - kw + s - 1) / s));
              for (let od = 0; od < outD; od++) {
                const id = od * s - padD + kd;
                for (let oh = 0; oh < outH; oh++) {
                  const ih = oh * s - padH + kh;
                  if (id >= 0 && id < inD && ih >= 0 && ih < inH) {
                    const row = xb + (<usize>((c * inD + id) * inH + ih) * <usize>inW << 2) + (<usize>(kw - padW) << 2);
                    for (let ow = lo; ow < hi; ow++) {
                      const d = row + (<usize>(ow * s) << 2);
                      store<f32>(d, load<f32>(d) + load<f32>(src + (<usize>ow << 2)));
                    }
                  }
                  src += <usize>outW << 2;
                }
              }
              q++;
            }
          }
        }
      }
    }
  }
}

// ---- Float32 matrices kept resident in row panels (inference weights) ----
//
// W [N×K] row-major is stored as panels of 16 rows, each k-major ([k][16], rows past N zero; packed
// by src/kernels/panels.ts), so a product streams the weights once, contiguously, with four
// independent accumulator chains. Each output keeps gemm's reduction order (per KC block a float32 sum
// in ascending k from 0, blocks added in order, then the bias), so results are bit-identical to gemm
// on the unpacked matrix.

/** One panel from n ≤ 16 rows of K values at src (row-major): dst[k][r], rows n…15 zero. */
export function packPanel(n: i32, K: i32, src: usize, dst: usize): void {
  const n4 = n & ~3;
  const ld = <usize>K << 2;
  let r = 0;
  for (; r < n4; r += 4) {
    const s0 = src + <usize>r * ld;
    const d0 = dst + (<usize>r << 2);
    let k = 0;
    for (; k + 4 <= K; k += 4) {
      const o = s0 + (<usize>k << 2);
      transposeStore(v128.load(o), v128.load(o + ld), v128.load(o + 2 * ld), v128.load(o + 3 * ld), d0 + (<usize>k << 6), 64);
    }
    for (; k < K; k++) {
      for (let j = 0; j < 4; j++) store<f32>(d0 + (<usize>k << 6) + (<usize>j << 2), load<f32>(s0 + <usize>j * ld + (<usize>k << 2)));
    }
  }
  for (; r < 16; r++) {
    const s0 = src + <usize>r * ld;
    const d0 = dst + (<usize>r << 2);
    for (let k = 0; k < K; k++) store<f32>(d0 + (<usize>k << 6), r < n ? load<f32>(s0 + (<usize>k << 2)) : 0);
  }
}

/** out[i][r] = Σ_k W[r][k]·x[i][k] (+ bias[r]) for i < M with W in row panels; `tile` is 64 bytes of scratch. */
export function panelGemm(M: i32, N: i32, K: i32, x: usize, wp: usize, out: usize, bias: usize, tile: usize): void {
  const panels = (N + 15) >> 4;
  const panelB = <usize>K * 64;
  // Panel outer, rows inner: a panel (K·64 bytes) stays in cache while every row of x reads it.
  for (let q = 0; q < panels; q++) {
    const r0 = q << 4;
    const full = r0 + 16 <= N;
    for (let i = 0; i < M; i++) {
      let w = wp + <usize>q * panelB;
      const xi = x + (<usize>i * <usize>K << 2);
      let t0 = f32x4.splat(0), t1 = f32x4.splat(0), t2 = f32x4.splat(0), t3 = f32x4.splat(0);
      for (let p = 0; p < K; p += KC) {
        let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
        let xp = xi + (<usize>p << 2);
        const end = w + (<usize>min(KC, K - p) << 6);
        while (w < end) {
          const xv = v128.load32_splat(xp);
          s0 = f32x4.add(s0, f32x4.mul(xv, v128.load(w)));
          s1 = f32x4.add(s1, f32x4.mul(xv, v128.load(w, 16)));
          s2 = f32x4.add(s2, f32x4.mul(xv, v128.load(w, 32)));
          s3 = f32x4.add(s3, f32x4.mul(xv, v128.load(w, 48)));
          xp += 4;
          w += 64;
        }
        if (p == 0) {
          t0 = s0; t1 = s1; t2 = s2; t3 = s3;
        } else {
          t0 = f32x4.add(t0, s0); t1 = f32x4.add(t1, s1); t2 = f32x4.add(t2, s2); t3 = f32x4.add(t3, s3);
        }
      }
      const oi = out + (<usize>(i * N + r0) << 2);
      if (full) {
        if (bias) {
          const b = bias + (<usize>r0 << 2);
          t0 = f32x4.add(t0, v128.load(b)); t1 = f32x4.add(t1, v128.load(b, 16));
          t2 = f32x4.add(t2, v128.load(b, 32)); t3 = f32x4.add(t3, v128.load(b, 48));
        }
        v128.store(oi, t0); v128.store(oi, t1, 16); v128.store(oi, t2, 32); v128.store(oi, t3, 48);
      } else {
        v128.store(tile, t0); v128.store(tile, t1, 16); v128.store(tile, t2, 32); v128.store(tile, t3, 48);
        for (let r = 0; r < N - r0; r++) {
          let v = load<f32>(tile + (<usize>r << 2));
          if (bias) v = v + load<f32>(bias + (<usize>(r0 + r) << 2));
          store<f32>(oi + (<usize>r << 2), v);
        }
      }
    }
  }
}

// ---- attention: one head, queries in blocks of ATT_BLOCK rows ----
// Scores and products by gemm (its bits). Each query row's softmax in float32: m = max of its visible
// scores, e = exp((s − m)·scale), Σe in four lanes added as (l0 + l1) + (l2 + l3), p = e·(1/Σe). Masked
// scores (causal: keys after the query's position) become exact zeros, so a row's values do not depend on
// the block it sits in or on how many keys are cached after it: decoding reproduces the full forward.

const ATT_BLOCK = 64;
const LANE_INDEX = memory.data<i32>([0, 1, 2, 3], 16);
/** Where attentionForward writes row statistics nobody asked for. */
const STATS_SINK = memory.data(8, 16);

/** Query rows per block of attentionForward and attentionBackward (their score scratch is ATT_BLOCK × nK floats). */
export function attentionBlock(): i32 {
  return ATT_BLOCK;
}

/** Lanes below `count` of v stored at `at`; the other lanes keep what memory holds. */
@inline function storeLanes(at: usize, v: v128, count: i32): void {
  const mask = i32x4.lt_s(v128.load(LANE_INDEX), i32x4.splat(count));
  v128.store(at, v128.bitselect(v, v128.load(at), mask));
}

/**
 * One row of scores in place → its first `visible` probabilities and zeros up to kN. With `given`, the
 * row's max and 1/Σe are read from maxAt and invAt (the backward pass recomputing the forward's values);
 * otherwise they are computed and written there.
 */
function softmaxRow(row: usize, kN: i32, visible: i32, scale: f32, maxAt: usize, invAt: usize, given: bool): void {
  const full = visible & ~3;
  const rem = visible - full;
  const tail = row + (<usize>full << 2);
  const remMask = i32x4.lt_s(v128.load(LANE_INDEX), i32x4.splat(rem));
  const negInf = f32x4.splat(-Infinity);
  if (visible < kN) memory.fill(row + (<usize>visible << 2), 0, <usize>(kN - visible) << 2);
  let m: f32, inv: f32;
  if (given) {
    m = load<f32>(maxAt);
    inv = load<f32>(invAt);
  } else {
    // pmax (one maxps, where wasm's max takes a dependent chain of several): it skips a NaN score, whose
    // exp still makes the row's sum and so every probability NaN.
    let mv = negInf;
    for (let p = row; p < tail; p += 16) mv = f32x4.pmax(mv, v128.load(p));
    if (rem) mv = f32x4.pmax(mv, v128.bitselect(v128.load(tail), negInf, remMask));
    m = max(max(f32x4.extract_lane(mv, 0), f32x4.extract_lane(mv, 1)), max(f32x4.extract_lane(mv, 2), f32x4.extract_lane(mv, 3)));
    inv = 0;
  }
  const mm = f32x4.splat(m);
  const sc = f32x4.splat(scale);
  if (given) {
    const iv = f32x4.splat(inv);
    for (let p = row; p < tail; p += 16) v128.store(p, f32x4.mul(expV(f32x4.mul(f32x4.sub(v128.load(p), mm), sc)), iv));
    if (rem) storeLanes(tail, f32x4.mul(expV(f32x4.mul(f32x4.sub(v128.load(tail), mm), sc)), iv), rem);
    return;
  }
  let sum = f32x4.splat(0);
  for (let p = row; p < tail; p += 16) {
    const e = expV(f32x4.mul(f32x4.sub(v128.load(p), mm), sc));
    sum = f32x4.add(sum, e);
    v128.store(p, e);
  }
  if (rem) {
    const e = v128.and(expV(f32x4.mul(f32x4.sub(v128.load(tail), mm), sc)), remMask);
    sum = f32x4.add(sum, e);
    storeLanes(tail, e, rem);
  }
  inv = <f32>1 / ((f32x4.extract_lane(sum, 0) + f32x4.extract_lane(sum, 1)) + (f32x4.extract_lane(sum, 2) + f32x4.extract_lane(sum, 3)));
  const iv = f32x4.splat(inv);
  for (let p = row; p < tail; p += 16) v128.store(p, f32x4.mul(v128.load(p), iv));
  if (rem) storeLanes(tail, f32x4.mul(v128.load(tail), iv), rem);
  store<f32>(maxAt, m);
  store<f32>(invAt, inv);
}

/**
 * One head: out [nQ×hd] = softmax(q·kᵀ·scale)·v for q [nQ×hd], k and v [nK×hd] (row-major), query i at
 * absolute position qPos0 + i (causal: it sees keys 0…qPos0 + i). stats ≠ 0: each row's max at
 * stats + 4i and 1/Σe at stats + 4(nQ + i). `s` is scratch for ATT_BLOCK·nK floats plus 16 bytes.
 */
export function attentionForward(nQ: i32, nK: i32, hd: i32, q: usize, k: usize, v: usize, out: usize, causal: bool, qPos0: i32, scale: f32, stats: usize, s: usize, work: usize): void {
  for (let i0 = 0; i0 < nQ; i0 += ATT_BLOCK) {
    const rows = min(ATT_BLOCK, nQ - i0);
    const kN = causal ? min(nK, qPos0 + i0 + rows) : nK;
    gemm(rows, kN, hd, addr(q, i0 * hd), 0, k, 0, s, 0, work);
    for (let r = 0; r < rows; r++) {
      const i = i0 + r;
      const visible = causal ? min(kN, qPos0 + i + 1) : kN;
      const maxAt = stats ? addr(stats, i) : STATS_SINK;
      const invAt = stats ? addr(stats, nQ + i) : STATS_SINK + 4;
      softmaxRow(addr(s, r * kN), kN, visible, scale, maxAt, invAt, false);
    }
    gemm(rows, hd, kN, s, 0, v, 1, addr(out, i0 * hd), 0, work);
  }
}

/** acc[i] += part[i] for n values: float64 accumulators, float32 parts. */
function addToF64(n: i32, part: usize, acc: usize): void {
  let i = 0;
  for (; i + 2 <= n; i += 2) {
    const a = acc + (<usize>i << 3);
    v128.store(a, f64x2.add(v128.load(a), f64x2.promote_low_f32x4(v128.load64_zero(addr(part, i)))));
  }
  for (; i < n; i++) {
    const a = acc + (<usize>i << 3);
    store<f64>(a, load<f64>(a) + <f64>load<f32>(addr(part, i)));
  }
}

/**
 * Gradients of one head from attentionForward's inputs and row statistics (stats, as it wrote them for
 * nQ = nK = seq) and dO [seq×hd]: the probabilities are recomputed (the same values), dP = dO·vᵀ,
 * dS = P ⊙ (dP − Σⱼ P·dP)·scale (row sum in four lanes like softmax's), dq [seq×hd] = dS·k (float32),
 * and dS ᵀ·q, Pᵀ·dO added to the float64 accumulators dk, dv [seq×hd], block by block in order. Scratch:
 * p and ds for ATT_BLOCK·seq floats plus 16 bytes each, part for seq·hd floats.
 */
function attentionBackward(seq: i32, hd: i32, q: usize, k: usize, v: usize, dO: usize, causal: bool, scale: f32, stats: usize, dq: usize, dk: usize, dv: usize, p: usize, ds: usize, part: usize, work: usize): void {
  const sc = f32x4.splat(scale);
  for (let i0 = 0; i0 < seq; i0 += ATT_BLOCK) {
    const rows = min(ATT_BLOCK, seq - i0);
    const kN = causal ? i0 + rows : seq;
    const qb = addr(q, i0 * hd);
    const dOb = addr(dO, i0 * hd);
    gemm(rows, kN, hd, qb, 0, k, 0, p, 0, work);
    for (let r = 0; r < rows; r++) {
      const i = i0 + r;
      softmaxRow(addr(p, r * kN), kN, causal ? i + 1 : kN, scale, addr(stats, i), addr(stats, seq + i), true);
    }
    gemm(rows, kN, hd, dOb, 0, v, 0, ds, 0, work);
    const full = kN & ~3;
    const rem = kN - full;
    const remMask = i32x4.lt_s(v128.load(LANE_INDEX), i32x4.splat(rem));
    for (let r = 0; r < rows; r++) {
      const pr = addr(p, r * kN);
      const dr = addr(ds, r * kN);
      let dot = f32x4.splat(0);
      for (let j = 0; j < full; j += 4) dot = f32x4.add(dot, f32x4.mul(v128.load(addr(pr, j)), v128.load(addr(dr, j))));
      if (rem) dot = f32x4.add(dot, v128.and(f32x4.mul(v128.load(addr(pr, full)), v128.load(addr(dr, full))), remMask));
      const rowDot = f32x4.splat((f32x4.extract_lane(dot, 0) + f32x4.extract_lane(dot, 1)) + (f32x4.extract_lane(dot, 2) + f32x4.extract_lane(dot, 3)));
      for (let j = 0; j < full; j += 4) {
        const at = addr(dr, j);
        v128.store(at, f32x4.mul(f32x4.mul(v128.load(addr(pr, j)), f32x4.sub(v128.load(at), rowDot)), sc));
      }
      if (rem) storeLanes(addr(dr, full), f32x4.mul(f32x4.mul(v128.load(addr(pr, full)), f32x4.sub(v128.load(addr(dr, full)), rowDot)), sc), rem);
    }
    gemm(rows, hd, kN, ds, 0, k, 1, addr(dq, i0 * hd), 0, work);
    gemm(kN, hd, rows, ds, 1, qb, 1, part, 0, work);
    addToF64(kN * hd, part, dk);
    gemm(kN, hd, rows, p, 1, dOb, 1, part, 0, work);
    addToF64(kN * hd, part, dv);
  }
}

// ---- attention over a batch: every head's gather, attentionForward/Backward and scatter in linear memory ----
// qkv rows (t·seq + i for sample t) hold q (heads·hd) | k (kvHeads·hd) | v (kvHeads·hd); head h reads
// k/v head h / (heads / kvHeads). Each head (forward) or KV group (backward) is one task, computed whole
// by one thread, so the bits do not depend on how tasks are shared out.

@inline function gatherHead(src: usize, stride: i32, col: i32, rows: i32, hd: i32, dst: usize): void {
  for (let r = 0; r < rows; r++) memory.copy(addr(dst, r * hd), addr(src, r * stride + col), <usize>hd << 2);
}

@inline function scatterHead(src: usize, rows: i32, hd: i32, dst: usize, stride: i32, col: i32): void {
  for (let r = 0; r < rows; r++) memory.copy(addr(dst, r * stride + col), addr(src, r * hd), <usize>hd << 2);
}

/** Bytes of scratch attentionHeads and attentionGroupsBackward need per thread (16-byte aligned pieces). */
export function attentionScratchBytes(seq: i32, hd: i32): usize {
  return 15 + 10 * headBytes(seq, hd) + 2 * scoreBytes(seq);
}

// Scratch pieces: a head's [seq×hd] floats and a block of scores, each with 16 bytes for tail loads, 16-byte aligned.
@inline function headBytes(seq: i32, hd: i32): usize {
  return ((<usize>(seq * hd) << 2) + 31) & ~15;
}

@inline function scoreBytes(seq: i32): usize {
  return ((<usize>(ATT_BLOCK * seq + 4) << 2) + 31) & ~15;
}

/**
 * Forward heads [t0, t1) (task t = b·heads + h) of qkv [batch·seq × w3] into attn [batch·seq × heads·hd]
 * (columns h·hd…), each by attentionForward; row statistics at stats + 4·2·seq·t (max, then 1/Σe).
 */
export function attentionHeads(t0: i32, t1: i32, seq: i32, hd: i32, heads: i32, kvHeads: i32, causal: bool, scale: f32, qkv: usize, attn: usize, stats: usize, scratch: usize, work: usize): void {
  const q = heads * hd;
  const w3 = q + 2 * kvHeads * hd;
  const group = heads / kvHeads;
  const head = headBytes(seq, hd);
  const qh = (scratch + 15) & ~15;
  const kh = qh + head, vh = kh + head, oh = vh + head, s = oh + head;
  for (let t = t0; t < t1; t++) {
    const b = t / heads;
    const h = t - b * heads;
    const g = h / group;
    const rows = addr(qkv, b * seq * w3);
    gatherHead(rows, w3, h * hd, seq, hd, qh);
    gatherHead(rows, w3, q + g * hd, seq, hd, kh);
    gatherHead(rows, w3, q + (kvHeads + g) * hd, seq, hd, vh);
    attentionForward(seq, seq, hd, qh, kh, vh, oh, causal, 0, scale, addr(stats, 2 * seq * t), s, work);
    scatterHead(oh, seq, hd, addr(attn, b * seq * q), q, h * hd);
  }
}

/**
 * Backward of KV groups [t0, t1) (task t = b·kvHeads + g): for each query head of the group,
 * attentionBackward from qkv, gAttn [batch·seq × heads·hd] and attentionHeads' statistics; dq into gq
 * (float32, [batch·seq × heads·hd]), the group's dk and dv (float64 sums over its heads in order) into
 * gk and gv (float64, [batch·seq × kvHeads·hd]).
 */
export function attentionGroupsBackward(t0: i32, t1: i32, seq: i32, hd: i32, heads: i32, kvHeads: i32, causal: bool, scale: f32, qkv: usize, gAttn: usize, stats: usize, gq: usize, gk: usize, gv: usize, scratch: usize, work: usize): void {
  const q = heads * hd;
  const kv = kvHeads * hd;
  const w3 = q + 2 * kv;
  const group = heads / kvHeads;
  const n = seq * hd;
  const head = headBytes(seq, hd);
  const scores = scoreBytes(seq);
  const qh = (scratch + 15) & ~15;
  const kh = qh + head, vh = kh + head, dOh = vh + head, dq = dOh + head, part = dq + head;
  const p = part + head, ds = p + scores, dk = ds + scores, dv = dk + (head << 1);
  for (let t = t0; t < t1; t++) {
    const b = t / kvHeads;
    const g = t - b * kvHeads;
    const rows = addr(qkv, b * seq * w3);
    gatherHead(rows, w3, q + g * hd, seq, hd, kh);
    gatherHead(rows, w3, q + kv + g * hd, seq, hd, vh);
    memory.fill(dk, 0, <usize>n << 3);
    memory.fill(dv, 0, <usize>n << 3);
    for (let h = g * group; h < (g + 1) * group; h++) {
      gatherHead(rows, w3, h * hd, seq, hd, qh);
      gatherHead(addr(gAttn, b * seq * q), q, h * hd, seq, hd, dOh);
      attentionBackward(seq, hd, qh, kh, vh, dOh, causal, scale, addr(stats, 2 * seq * (b * heads + h)), dq, dk, dv, p, ds, part, work);
      scatterHead(dq, seq, hd, addr(gq, b * seq * q), q, h * hd);
    }
    for (let r = 0; r < seq; r++) {
      const at = (<usize>((b * seq + r) * kv + g * hd)) << 3;
      memory.copy(gk + at, dk + (<usize>(r * hd) << 3), <usize>hd << 3);
      memory.copy(gv + at, dv + (<usize>(r * hd) << 3), <usize>hd << 3);
    }
  }
}

// ---- SwiGLU's gate: rows of [gate (inter values) | up (inter values)] ----
// SiLU gate g·σ(g) with σ as activationForward computes it (kind 2), or ReLU² (relu(g)²) with `relu2`.

@inline function swigluGateV(g: v128, s: v128, relu2: bool): v128 {
  return relu2 ? v128.and(f32x4.mul(g, g), f32x4.gt(g, f32x4.splat(0))) : f32x4.mul(g, s);
}

@inline function swigluGateS(g: f32, s: f32, relu2: bool): f32 {
  return relu2 ? (g > 0 ? g * g : 0) : g * s;
}

/** hidden [rows×inter] = gate(g)·u for each row's g = gateUp[r][j], u = gateUp[r][inter + j]. */
export function swigluForward(rows: i32, inter: i32, relu2: bool, gateUp: usize, hidden: usize): void {
  const zero = f32x4.splat(0);
  for (let r = 0; r < rows; r++) {
    const g0 = addr(gateUp, 2 * r * inter);
    const u0 = addr(g0, inter);
    const h0 = addr(hidden, r * inter);
    let j = 0;
    for (; j + 4 <= inter; j += 4) {
      const o = <usize>j << 2;
      const g = v128.load(g0 + o);
      const s = relu2 ? zero : logisticV(g, expV(f32x4.neg(g)));
      v128.store(h0 + o, f32x4.mul(swigluGateV(g, s, relu2), v128.load(u0 + o)));
    }
    for (; j < inter; j++) {
      const o = <usize>j << 2;
      const g = load<f32>(g0 + o);
      const s: f32 = relu2 ? 0 : logisticS(g, expS(-g));
      store<f32>(h0 + o, swigluGateS(g, s, relu2) * load<f32>(u0 + o));
    }
  }
}

/**
 * gGateUp [rows×2·inter] from the forward's gateUp and gHidden [rows×inter]: d gate = (gh·u)·gate'(g),
 * d up = gh·gate(g); SiLU's slope σ + g·σ' with σ' = s·(e·s) as activationBackward computes it.
 */
export function swigluBackward(rows: i32, inter: i32, relu2: bool, gateUp: usize, gHidden: usize, gGateUp: usize): void {
  const zero = f32x4.splat(0);
  const two = f32x4.splat(2);
  for (let r = 0; r < rows; r++) {
    const g0 = addr(gateUp, 2 * r * inter);
    const u0 = addr(g0, inter);
    const h0 = addr(gHidden, r * inter);
    const dg0 = addr(gGateUp, 2 * r * inter);
    const du0 = addr(dg0, inter);
    let j = 0;
    for (; j + 4 <= inter; j += 4) {
      const o = <usize>j << 2;
      const g = v128.load(g0 + o);
      const gh = v128.load(h0 + o);
      let s = zero, slope: v128;
      if (relu2) {
        slope = v128.and(f32x4.mul(two, g), f32x4.gt(g, zero));
      } else {
        const e = expV(f32x4.neg(g));
        s = logisticV(g, e);
        slope = f32x4.add(s, f32x4.mul(g, f32x4.mul(s, f32x4.mul(e, s))));
      }
      v128.store(dg0 + o, f32x4.mul(f32x4.mul(gh, v128.load(u0 + o)), slope));
      v128.store(du0 + o, f32x4.mul(gh, swigluGateV(g, s, relu2)));
    }
    for (; j < inter; j++) {
      const o = <usize>j << 2;
      const g = load<f32>(g0 + o);
      const gh = load<f32>(h0 + o);
      let s: f32 = 0, slope: f32;
      if (relu2) {
        slope = g > 0 ? <f32>2 * g : 0;
      } else {
        const e = expS(-g);
        s = logisticS(g, e);
        slope = s + g * (s * (e * s));
      }
      store<f32>(dg0 + o, (gh * load<f32>(u0 + o)) * slope);
      store<f32>(du0 + o, gh * swigluGateS(g, s, relu2));
    }
  }
}

// ---- softmax cross-entropy over rows of logits (src/train/losses.ts crossEntropyLoss) ----

/**
 * Each of `rows` rows of `classes` logits at z is overwritten in place by its gradient
 * (softmax − onehot(label)) / batch, in float32: e = exp(z − max) (expV), inv = 1 / Σe rounded once
 * from float64, softmax = e·inv. stats[3r…3r+2] (float64) = the row's max, Σe (float64 sum of the
 * float32 exps: two lanes each, lanes summed (0+1)+(2+3)) and the first index of the max, counted as
 * crossEntropyLoss's scan counts it (NaNs skipped: a row with NaNs still gets a NaN sum). Labels are
 * in range (the caller checks). Rows need 3 floats of slack after the last one (whole-vector tail loads).
 */
export function crossEntropyRows(rows: i32, classes: i32, z: usize, labels: usize, batch: f32, stats: usize): void {
  const full = classes & ~3;
  const rem = classes - full;
  const remMask = i32x4.lt_s(v128.load(LANE_INDEX), i32x4.splat(rem));
  const negInf = f32x4.splat(-Infinity);
  const vb = f32x4.splat(batch);
  // Dividing by a power of two is multiplying by its exact reciprocal: the same bits, without a divide.
  const pow2 = (reinterpret<u32>(batch) & 0x7fffff) == 0;
  const vr = f32x4.splat(<f32>1 / batch);
  for (let r = 0; r < rows; r++) {
    const row = z + ((<usize>r * <usize>classes) << 2);
    const tail = row + (<usize>full << 2);
    // pmax (mv < x ? x : mv, one maxps; wasm's max orders NaN and ±0 in several instructions) skips NaNs
    // as the reference's strict > scan does: a row's NaNs reach the loss through the sum instead.
    let mv = negInf;
    for (let p = row; p < tail; p += 16) mv = f32x4.pmax(mv, v128.load(p));
    if (rem) mv = f32x4.pmax(mv, v128.bitselect(v128.load(tail), negInf, remMask));
    const m = max(max(f32x4.extract_lane(mv, 0), f32x4.extract_lane(mv, 1)), max(f32x4.extract_lane(mv, 2), f32x4.extract_lane(mv, 3)));
    const st = stats + (<usize>r * 24);
    store<f64>(st, <f64>m);
    store<f64>(st, <f64>crossEntropyArg(row, classes, m), 16);
    const mm = f32x4.splat(m);
    let s01 = f64x2.splat(0), s23 = f64x2.splat(0);
    for (let p = row; p < tail; p += 16) {
      const e = expV(f32x4.sub(v128.load(p), mm));
      v128.store(p, e);
      s01 = f64x2.add(s01, f64x2.promote_low_f32x4(e));
      s23 = f64x2.add(s23, f64x2.promote_low_f32x4(v128.shuffle<f32>(e, e, 2, 3, 0, 1)));
    }
    if (rem) {
      const e = v128.and(expV(f32x4.sub(v128.load(tail), mm)), remMask);
      storeLanes(tail, e, rem);
      s01 = f64x2.add(s01, f64x2.promote_low_f32x4(e));
      s23 = f64x2.add(s23, f64x2.promote_low_f32x4(v128.shuffle<f32>(e, e, 2, 3, 0, 1)));
    }
    const sum = (f64x2.extract_lane(s01, 0) + f64x2.extract_lane(s01, 1)) + (f64x2.extract_lane(s23, 0) + f64x2.extract_lane(s23, 1));
    store<f64>(st, sum, 8);
    const inv = <f32>(1 / sum);
    const at = row + (<usize>load<i32>(labels + (<usize>r << 2)) << 2);
    const labelGrad = (load<f32>(at) * inv - 1) / batch;
    const vi = f32x4.splat(inv);
    if (pow2) {
      for (let p = row; p < tail; p += 16) v128.store(p, f32x4.mul(f32x4.mul(v128.load(p), vi), vr));
      if (rem) storeLanes(tail, f32x4.mul(f32x4.mul(v128.load(tail), vi), vr), rem);
    } else {
      for (let p = row; p < tail; p += 16) v128.store(p, f32x4.div(f32x4.mul(v128.load(p), vi), vb));
      if (rem) storeLanes(tail, f32x4.div(f32x4.mul(v128.load(tail), vi), vb), rem);
    }
    store<f32>(at, labelGrad);
  }
}

/** The first index whose logit equals the row's max m (not NaN): what crossEntropyLoss's strict > scan finds; 0 when none does (every logit NaN). */
function crossEntropyArg(row: usize, classes: i32, m: f32): i32 {
  const mm = f32x4.splat(m);
  let c = 0;
  for (; c + 4 <= classes; c += 4) {
    if (v128.any_true(f32x4.eq(v128.load(row + (<usize>c << 2)), mm))) break;
  }
  for (; c < classes; c++) if (load<f32>(row + (<usize>c << 2)) == m) return c;
  return 0;
}
