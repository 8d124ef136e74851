import { float32ToHalfBits, halfBitsToFloat32 } from '../core/dtype.js';
import { ShapeError, UsageError } from '../core/errors.js';
import type { ArenaPlacement, QuantArena } from './quantWasm.js';

/**
 * Block-quantized weight matrices for inference, kept packed: products read the blocks directly.
 *
 * Q4_0 (ggml's layout): each row of `cols` weights (cols % 32 = 0) is cut into blocks of 32; a block
 * is 18 bytes: the scale d as IEEE fp16 (little endian), then 16 bytes where byte j holds quant j in
 * its low nibble and quant j + 16 in its high nibble. Weight = (q − 8)·d, q in 0..15; d = m / −8 for
 * m the block's value of largest magnitude (sign kept), q = min(15, trunc(x/d + 8.5)).
 *
 * Int8 (per row): q = round(x / s) in −127..127 with s = max|x| / 127 per row; weight = q·s.
 */
export type QuantFormat = 'q4_0' | 'int8';

export const QUANT_FORMATS: readonly QuantFormat[] = ['q4_0', 'int8'];

export const Q4_0_BLOCK = 32;
export const Q4_0_BLOCK_BYTES = 18;

export interface QuantMatrix {
  readonly format: QuantFormat;
  readonly rows: number;
  readonly cols: number;
  /** Q4_0: rows·cols/32 blocks of 18 bytes. Int8: rows·cols quants (as bytes of int8). */
  readonly data: Uint8Array;
  /** Int8 only: one float32 scale per row. */
  readonly scales: Float32Array | null;
  /** Set when `data` and `scales` are views into a WebAssembly arena, whose kernels then run the products. */
  readonly placement?: ArenaPlacement;
}

/** Bytes `format` packs a rows×cols matrix into (what an arena must reserve, before 16-byte rounding). */
export function packedMatrixBytes(format: QuantFormat, rows: number, cols: number): { data: number; scales: number } {
  return format === 'q4_0' ? { data: ((rows * cols) / Q4_0_BLOCK) * Q4_0_BLOCK_BYTES, scales: 0 } : { data: rows * cols, scales: rows * 4 };
}

/** Moves a packed matrix into `arena` (the returned copy's bytes live only there, read through fresh views as the arena may move). */
export function placeMatrix(m: QuantMatrix, arena: QuantArena): QuantMatrix {
  const bytes = m.data.byteLength;
  const data = arena.alloc(bytes);
  arena.bytes(data, bytes).set(m.data);
  const n = m.scales ? m.scales.length : 0;
  const scales = n > 0 ? arena.alloc(n * 4) : 0;
  if (m.scales) arena.floats(scales, n).set(m.scales);
  return {
    format: m.format,
    rows: m.rows,
    cols: m.cols,
    get data() {
      return arena.bytes(data, bytes);
    },
    get scales() {
      return n > 0 ? arena.floats(scales, n) : null;
    },
    placement: { arena, data, scales },
  };
}

export function parseQuantFormat(s: unknown, path = 'dtype'): QuantFormat {
  const v = typeof s === 'string' ? s.toLowerCase().replace('-', '_') : s;
  if (QUANT_FORMATS.includes(v as QuantFormat)) return v as QuantFormat;
  throw new UsageError(`${path}: expected one of ${QUANT_FORMATS.join(', ')}, got ${JSON.stringify(s)}`);
}

/** Whether `format` can pack a matrix with `cols` columns (Q4_0 needs whole blocks). */
export function canQuantize(format: QuantFormat, cols: number): boolean {
  return format === 'int8' || cols % Q4_0_BLOCK === 0;
}

/** Packs the rows×cols row-major matrix `w`. */
export function quantizeMatrix(format: QuantFormat, w: Float32Array, rows: number, cols: number): QuantMatrix {
  if (w.length !== rows * cols) throw new ShapeError(`quantizeMatrix: expected ${rows}×${cols} = ${rows * cols} values, got ${w.length}`);
  if (!canQuantize(format, cols)) throw new ShapeError(`quantizeMatrix: q4_0 needs rows of whole 32-value blocks, got ${cols} columns`);
  return format === 'q4_0' ? quantizeQ4_0(w, rows, cols) : quantizeInt8(w, rows, cols);
}

function quantizeQ4_0(w: Float32Array, rows: number, cols: number): QuantMatrix {
  const blocks = (rows * cols) / Q4_0_BLOCK;
  const data = new Uint8Array(blocks * Q4_0_BLOCK_BYTES);
  const view = new DataView(data.buffer);
  for (let b = 0; b < blocks; b++) {
    const x = b * Q4_0_BLOCK;
    let amax = 0;
    let max = 0;
    for (let j = 0; j < Q4_0_BLOCK; j++) {
      const v = w[x + j];
      if (Math.abs(v) > amax) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = max / -8;
    const id = d !== 0 ? 1 / d : 0;
    const o = b * Q4_0_BLOCK_BYTES;
    view.setUint16(o, float32ToHalfBits(d), true);
    for (let j = 0; j < 16; j++) {
      const lo = Math.min(15, Math.trunc(Math.fround(w[x + j] * id) + 8.5));
      const hi = Math.min(15, Math.trunc(Math.fround(w[x + j + 16] * id) + 8.5));
      data[o + 2 + j] = lo | (hi << 4);
    }
  }
  return { format: 'q4_0', rows, cols, data, scales: null };
}

function quantizeInt8(w: Float32Array, rows: number, cols: number): QuantMatrix {
  const data = new Uint8Array(rows * cols);
  const q = new Int8Array(data.buffer);
  const scales = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let amax = 0;
    for (let c = 0; c < cols; c++) amax = Math.max(amax, Math.abs(w[r * cols + c]));
    const s = amax / 127;
    scales[r] = s;
    const inv = s > 0 ? 1 / s : 0;
    for (let c = 0; c < cols; c++) q[r * cols + c] = Math.round(w[r * cols + c] * inv);
  }
  return { format: 'int8', rows, cols, data, scales };
}

/** Bytes the packed matrix holds (blocks or quants, plus scales). */
export function quantBytes(m: QuantMatrix): number {
  return m.data.byteLength + (m.scales?.byteLength ?? 0);
}

/** Row `row` of the matrix as float32 into out[at..at+cols). */
export function dequantizeRow(m: QuantMatrix, row: number, out: Float32Array, at = 0): void {
  const { cols } = m;
  if (m.format === 'int8') {
    const q = new Int8Array(m.data.buffer, m.data.byteOffset + row * cols, cols);
    const s = m.scales![row];
    for (let c = 0; c < cols; c++) out[at + c] = q[c] * s;
    return;
  }
  const d = m.data;
  const perRow = cols / Q4_0_BLOCK;
  for (let b = 0; b < perRow; b++) {
    const o = (row * perRow + b) * Q4_0_BLOCK_BYTES;
    const scale = halfBitsToFloat32(d[o] | (d[o + 1] << 8));
    const base = at + b * Q4_0_BLOCK;
    for (let j = 0; j < 16; j++) {
      const byte = d[o + 2 + j];
      out[base + j] = ((byte & 15) - 8) * scale;
      out[base + j + 16] = ((byte >> 4) - 8) * scale;
    }
  }
}

/** The whole matrix as float32 (tests and conversions; products never expand it). */
export function dequantizeMatrix(m: QuantMatrix): Float32Array {
  const out = new Float32Array(m.rows * m.cols);
  for (let r = 0; r < m.rows; r++) dequantizeRow(m, r, out, r * m.cols);
  return out;
}

/**
 * out[M×rows] = x[M×cols]·Wᵀ (+ bias[rows]) reading the packed blocks: per output, a float64 sum
 * over blocks of (scale · Σ_j (q_j − 8)·x_j), in ascending column order. The TypeScript reference.
 */
export function quantGemmTs(m: QuantMatrix, x: Float32Array, M: number, out: Float32Array, bias: Float32Array | null = null): void {
  const { rows, cols } = m;
  if (x.length < M * cols) throw new ShapeError(`quantGemm: x has ${x.length} values, needs ${M}×${cols}`);
  if (out.length < M * rows) throw new ShapeError(`quantGemm: out has ${out.length} values, needs ${M}×${rows}`);
  if (m.format === 'int8') {
    const q = new Int8Array(m.data.buffer, m.data.byteOffset, rows * cols);
    const scales = m.scales!;
    for (let i = 0; i < M; i++) {
      const xo = i * cols;
      for (let r = 0; r < rows; r++) {
        const qo = r * cols;
        let s = 0;
        for (let c = 0; c < cols; c++) s += q[qo + c] * x[xo + c];
        out[i * rows + r] = s * scales[r] + (bias ? bias[r] : 0);
      }
    }
    return;
  }
  const d = m.data;
  const perRow = cols / Q4_0_BLOCK;
  const scales = new Float32Array(perRow);
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < perRow; b++) {
      const o = (r * perRow + b) * Q4_0_BLOCK_BYTES;
      scales[b] = halfBitsToFloat32(d[o] | (d[o + 1] << 8));
    }
    for (let i = 0; i < M; i++) {
      const xo = i * cols;
      let total = 0;
      for (let b = 0; b < perRow; b++) {
        const o = (r * perRow + b) * Q4_0_BLOCK_BYTES + 2;
        const xb = xo + b * Q4_0_BLOCK;
        let s = 0;
        for (let j = 0; j < 16; j++) {
          const byte = d[o + j];
          s += ((byte & 15) - 8) * x[xb + j] + ((byte >> 4) - 8) * x[xb + j + 16];
        }
        total += s * scales[b];
      }
      out[i * rows + r] = total + (bias ? bias[r] : 0);
    }
  }
}

/** out[M×rows] = x[M×cols]·Wᵀ (+ bias) for a packed matrix. */
export function quantGemm(m: QuantMatrix, x: Float32Array, M: number, out: Float32Array, bias: Float32Array | null = null): void {
  if (m.placement) m.placement.arena.gemm(m.format, m.placement, m.rows, m.cols, x, M, out, bias);
  else quantGemmTs(m, x, M, out, bias);
}
