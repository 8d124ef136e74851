import { DType, unpackWeights } from '../core/dtype.js';
import type { PackedVersion } from '../core/weightStore.js';
import { wasmKernelModule } from './backend.js';

/**
 * Dense forward on a layer's packed weights (WeightStore versions), without decoding the matrix:
 * the packed bytes are copied once into a private WebAssembly instance and read there on every call
 * (assembly/kernels.ts, "Dense forward on packed weights").
 *
 * Integer-coded dtypes (Int8, Int4, Int2, Ternary, Binary, FP4 as twice its value) take exact integer
 * dot products against each input row rounded to int16 (scale max|x|/32767, nearest), so the only
 * error against decode-then-float is that rounding of x (at most max|x|/65534 per value) and the
 * final float32 rounding. FP8 rows are decoded FP8_ROWS at a time (16 codes per SIMD step, by their
 * bits, exactly the 256-entry table's values) and multiplied on gemm's kernels: decode-then-float's
 * bits. Other dtypes, or shapes whose rows do not start on a byte, return null (callers decode).
 */

interface QuantDenseExports {
  memory: WebAssembly.Memory;
  heapBase(): number;
  quantizeRowsI16(M: number, K: number, x: number, xq: number, xs: number): void;
  qgemm(fmt: number, M: number, N: number, K: number, w: number, xq: number, xs: number, scale: number, out: number, bias: number): void;
  workBytes(): number;
  fp8gemm(M: number, N: number, K: number, w: number, table: number, x: number, scale: number, out: number, bias: number, buf: number, rows: number, work: number, e5m2: number): void;
}

/** Kernel format code and codes per byte for each natively supported dtype; fp8 marks the table path. */
const FORMATS: Partial<Record<DType, { fmt: number; perByte: number; fp8?: boolean }>> = {
  [DType.Int8]: { fmt: 0, perByte: 1 },
  [DType.Int4]: { fmt: 1, perByte: 2 },
  [DType.Int2]: { fmt: 2, perByte: 4 },
  [DType.Ternary]: { fmt: 2, perByte: 4 },
  [DType.Binary]: { fmt: 3, perByte: 8 },
  [DType.FP4]: { fmt: 4, perByte: 2 },
  [DType.FP8E4M3]: { fmt: -1, perByte: 1, fp8: true },
  [DType.FP8E5M2]: { fmt: -1, perByte: 1, fp8: true },
};

/** Rows of x handled per kernel call, and FP8 weight rows decoded at a time (bound the scratch; results do not depend on them). */
const CHUNK = 64;
const FP8_ROWS = 64;
const PAGE = 65536;
const align16 = (n: number): number => (n + 15) & ~15;

const cache = new WeakMap<PackedVersion, PackedDense | null>();


export class PackedDense {
  private readonly x: QuantDenseExports;
  private readonly fmt: number;
  private readonly fp8: boolean;
  private readonly e5m2: boolean;
  private readonly scale: number;
  private readonly at: { w: number; bias: number; table: number; x: number; xq: number; xs: number; out: number; row: number; work: number };

  private constructor(module: WebAssembly.Module, version: PackedVersion, readonly nOut: number, readonly nIn: number, useBias: boolean) {
    const f = FORMATS[version.dtype]!;
    this.fmt = f.fmt;
    this.fp8 = !!f.fp8;
    this.e5m2 = version.dtype === DType.FP8E5M2;
    this.scale = Math.fround(version.params.scale);
    this.x = new WebAssembly.Instance(module, {}).exports as unknown as QuantDenseExports;
    const wBytes = (nOut * nIn) / f.perByte;
    const K8 = (nIn + 7) & ~7;
    const w = align16(this.x.heapBase());
    const bias = align16(w + wBytes + 16);
    const table = align16(bias + nOut * 4);
    const x = align16(table + 256 * 4);
    const xq = align16(x + CHUNK * nIn * 4);
    const xs = align16(xq + CHUNK * K8 * 2);
    const out = align16(xs + CHUNK * 4);
    const row = align16(out + CHUNK * nOut * 4);
    const work = align16(row + (this.fp8 ? FP8_ROWS * nIn * 4 : 0));
    const end = work + (this.fp8 ? align16(this.x.workBytes()) : 0);
    const have = this.x.memory.buffer.byteLength;
    if (end > have) this.x.memory.grow(Math.ceil((end - have) / PAGE));
    this.at = { w, bias: useBias ? bias : 0, table, x, xq, xs, out, row, work };
    const buf = this.x.memory.buffer;
    new Uint8Array(buf, w, wBytes).set(version.bytes.subarray(0, wBytes));
    if (useBias) {
      // Decode just the bias codes (they follow W; W's byte length is whole because rows are byte-aligned).
      const b = unpackWeights(version.dtype, version.bytes.subarray(wBytes), nOut, version.params);
      new Float32Array(buf, bias, nOut).set(b);
    }
    if (this.fp8) new Float32Array(buf, table, 256).set(unpackWeights(version.dtype, Uint8Array.from({ length: 256 }, (_, i) => i), 256, { scale: 1, zeroPoint: 0 }));
  }

  /**
   * The kernel for a Dense layer's packed version (made once per version and cached); null when the
   * dtype has no kernel, a row does not start on a byte, or the WebAssembly kernels are off.
   */
  static for(version: PackedVersion, nOut: number, nIn: number, useBias: boolean): PackedDense | null {
    const hit = cache.get(version);
    if (hit !== undefined) return hit;
    const f = FORMATS[version.dtype];
    const module = wasmKernelModule();
    let made: PackedDense | null = null;
    if (f && module && nIn % f.perByte === 0 && version.count === nOut * nIn + (useBias ? nOut : 0)) {
      try {
        made = new PackedDense(module, version, nOut, nIn, useBias);
      } catch {
        made = null;
      }
    }
    cache.set(version, made);
    return made;
  }

  /** out[M×nOut] = x[M×nIn]·Wᵀ (+ bias), before any activation. */
  forward(x: Float32Array, M: number, out: Float32Array): void {
    const { nIn, nOut } = this;
    const a = this.at;
    const k = this.x;
    const buf = k.memory.buffer;
    for (let i0 = 0; i0 < M; i0 += CHUNK) {
      const m = Math.min(CHUNK, M - i0);
      new Float32Array(buf, a.x, m * nIn).set(x.subarray(i0 * nIn, (i0 + m) * nIn));
      if (this.fp8) {
        k.fp8gemm(m, nOut, nIn, a.w, a.table, a.x, this.scale, a.out, a.bias, a.row, FP8_ROWS, a.work, this.e5m2 ? 1 : 0);
      } else {
        k.quantizeRowsI16(m, nIn, a.x, a.xq, a.xs);
        k.qgemm(this.fmt, m, nOut, nIn, a.w, a.xq, a.xs, this.scale, a.out, a.bias);
      }
      out.set(new Float32Array(buf, a.out, m * nOut), i0 * nOut);
    }
  }
}
