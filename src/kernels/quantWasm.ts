import { LoomError } from '../core/errors.js';
import { kernelMode, runningPool } from './backend.js';
import type { KernelPool } from './pool.js';
import { WASM_KERNELS_URL } from './wasm.js';

/**
 * Packed matrices living in WebAssembly memory for the q4_0 / int8 product kernels
 * (assembly/kernels.ts, "q4_0 / int8-row products") and float32 matrices in row panels (panelGemm).
 * An arena is one private instance of the kernel
 * module: its memory is sized once, for the matrices plus scratch, and never grows afterwards, so the
 * Uint8Array views the matrices keep stay valid and the packed bytes exist only there (nothing is
 * copied per call but the activations). Products of more than CHUNK rows run CHUNK rows at a time.
 */
interface QuantExports {
  memory: WebAssembly.Memory;
  heapBase(): number;
  int8RowGemm(M: number, rows: number, cols: number, w: number, scales: number, x: number, out: number, bias: number, tot: number): void;
  quantizeRowsQ16(M: number, cols: number, x: number, xq: number, xs: number): void;
  q4_0GemmQ16(M: number, rows: number, cols: number, w: number, xq: number, xs: number, out: number, bias: number, tot: number): void;
  int8RowGemmQ16(M: number, rows: number, cols: number, w: number, scales: number, xq: number, xs: number, out: number, bias: number, tot: number): void;
  panelGemm(M: number, N: number, K: number, x: number, wp: number, out: number, bias: number, tile: number): void;
  packPanel(n: number, K: number, src: number, dst: number): void;
}

const PAGE = 65536;
const MAX_BYTES = 65536 * PAGE;
const CHUNK = 16;
/** Smallest matrix (weights) whose one-row products a pool-backed arena shares out over the threads (a few microseconds of work). */
const POOL_MIN_WEIGHTS = 1 << 16;
const align16 = (n: number): number => (n + 15) & ~15;

let module: WebAssembly.Module | null | undefined;

function nodeFs(): { readFileSync(path: URL): Uint8Array<ArrayBuffer> } | null {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  return (proc?.getBuiltinModule?.('node:fs') as { readFileSync(path: URL): Uint8Array<ArrayBuffer> } | undefined) ?? null;
}

/** The compiled kernel module (Node: read synchronously), or null when absent or lacking the quantized kernels. */
function kernelModule(): WebAssembly.Module | null {
  if (module !== undefined) return module;
  module = null;
  try {
    const fs = nodeFs();
    if (fs && WASM_KERNELS_URL.protocol === 'file:') {
      const m = new WebAssembly.Module(fs.readFileSync(WASM_KERNELS_URL));
      if (WebAssembly.Module.exports(m).some((e) => e.name === 'q4_0GemmQ16')) module = m;
    }
  } catch {
    module = null;
  }
  return module;
}

/** Browsers: compiles the kernel module from `url` so arenas can be made; resolves to whether they can. */
export async function initQuantKernels(url: string | URL = WASM_KERNELS_URL): Promise<boolean> {
  if (kernelModule()) return true;
  try {
    const response = await fetch(url);
    const m = await WebAssembly.compile(await response.arrayBuffer());
    module = WebAssembly.Module.exports(m).some((e) => e.name === 'q4_0GemmQ16') ? m : null;
  } catch {
    module = null;
  }
  return module !== null;
}

/** Where a packed matrix lies in an arena. */
export interface ArenaPlacement {
  readonly arena: QuantArena;
  readonly data: number;
  /** Int8: the row scales' offset; 0 for Q4_0. */
  readonly scales: number;
}

/** Scratch bytes of an arena (staged x, out, bias, totals, x's int16 rounding and block scales) for products up to maxRows × maxCols. */
function scratchLayout(base: number, maxRows: number, maxCols: number): { x: number; out: number; bias: number; tot: number; xq: number; xs: number; end: number } {
  const x = align16(base);
  const out = align16(x + CHUNK * maxCols * 4);
  const bias = align16(out + CHUNK * maxRows * 4);
  const tot = align16(bias + maxRows * 4);
  const xq = align16(tot + CHUNK * 16);
  const xs = align16(xq + CHUNK * maxCols * 2);
  return { x, out, bias, tot, xq, xs, end: align16(xs + CHUNK * Math.ceil(maxCols / 32) * 4) };
}

export class QuantArena {
  private top: number;
  private readonly end: number;
  private readonly scratch: { x: number; out: number; bias: number; tot: number; xq: number; xs: number };

  /**
   * `pool`: the arena lies in that kernel pool's shared memory (x is the calling thread's instance on
   * it), and one-row products (decoding steps) share their rows out over the pool's threads.
   */
  private constructor(
    private readonly x: Omit<QuantExports, 'memory' | 'heapBase'>,
    private readonly memory: WebAssembly.Memory,
    base: number,
    matrixBytes: number,
    maxRows: number,
    maxCols: number,
    private readonly pool: KernelPool | null,
  ) {
    const { end, ...scratch } = scratchLayout(base, maxRows, maxCols);
    this.scratch = scratch;
    this.top = end;
    this.end = end + matrixBytes;
    if (this.end > MAX_BYTES) throw new LoomError(`QuantArena: ${this.end} bytes exceed WebAssembly's 4 GiB`);
    const have = memory.buffer.byteLength;
    if (this.end > have) memory.grow(Math.ceil((this.end - have) / PAGE));
  }

  /**
   * An arena for matrices totalling `matrixBytes` (each rounded up to 16 bytes by the caller) and
   * products up to maxRows × maxCols; null when the kernels are unavailable or turned off (LOOM_KERNELS=ts).
   * While a thread pool runs (setThreads) the arena goes into its shared memory when it fits, so
   * decoding steps use every thread (the same bits); otherwise into a private instance of its own.
   */
  static create(matrixBytes: number, maxRows: number, maxCols: number): QuantArena | null {
    if (kernelMode() === 'ts') return null;
    const pool = runningPool();
    if (pool) {
      const scratch = scratchLayout(0, maxRows, maxCols).end;
      const at = pool.persistent(scratch + matrixBytes + 16);
      if (at !== null) return new QuantArena(pool.kernels, pool.sharedMemory, at, matrixBytes, maxRows, maxCols, pool);
    }
    const m = kernelModule();
    if (!m) return null;
    try {
      const x = new WebAssembly.Instance(m, {}).exports as unknown as QuantExports;
      return new QuantArena(x, x.memory, x.heapBase(), matrixBytes, maxRows, maxCols, null);
    } catch {
      return null;
    }
  }

  /** How many threads this arena's one-row products run on. */
  get threads(): number {
    return this.pool ? this.pool.threads : 1;
  }

  /** Whether a one-row product with this matrix goes to the pool: enough weights to outweigh waking the threads. */
  private pooled(rows: number, cols: number): boolean {
    return this.pool !== null && rows * cols >= POOL_MIN_WEIGHTS;
  }

  /** Reserves `bytes` (16-byte aligned) and returns their offset. */
  alloc(bytes: number): number {
    const at = this.top;
    if (at + bytes > this.end) throw new LoomError(`QuantArena: out of reserved space (${bytes} bytes asked, ${this.end - at} left)`);
    this.top = align16(at + bytes);
    return at;
  }

  bytes(at: number, length: number): Uint8Array {
    return new Uint8Array(this.memory.buffer, at, length);
  }

  floats(at: number, length: number): Float32Array {
    return new Float32Array(this.memory.buffer, at, length);
  }

  /** out[M×rows] = x[M×cols]·Wᵀ (+ bias) for the matrix placed at `p`. */
  gemm(format: 'q4_0' | 'int8', p: ArenaPlacement, rows: number, cols: number, x: Float32Array, M: number, out: Float32Array, bias: Float32Array | null): void {
    this.chunked(rows, cols, x, M, out, bias, (m, b) => {
      const s = this.scratch;
      if (cols % 32 === 0) {
        // Whole 32-value blocks: x rounded to int16 per block, then integer dot products (see the kernels).
        this.x.quantizeRowsQ16(m, cols, s.x, s.xq, s.xs);
        if (m === 1 && this.pooled(rows, cols)) this.pool!.rowProduct([format === 'q4_0' ? 1 : 2, rows, cols, p.data, p.scales, 0, s.xq, s.xs, s.out, b]);
        else if (format === 'q4_0') this.x.q4_0GemmQ16(m, rows, cols, p.data, s.xq, s.xs, s.out, b, s.tot);
        else this.x.int8RowGemmQ16(m, rows, cols, p.data, p.scales, s.xq, s.xs, s.out, b, s.tot);
      } else {
        this.x.int8RowGemm(m, rows, cols, p.data, p.scales, s.x, s.out, b, s.tot);
      }
    });
  }

  /**
   * out[M×rows] = x[M×cols]·Wᵀ (+ bias) for a float32 matrix stored in row panels at `at`
   * (placePanels): the same bits as gemmABt on the unpacked matrix.
   */
  panelGemm(at: number, rows: number, cols: number, x: Float32Array, M: number, out: Float32Array, bias: Float32Array | null): void {
    this.chunked(rows, cols, x, M, out, bias, (m, b) => {
      if (m === 1 && this.pooled(rows, cols)) this.pool!.rowProduct([0, rows, cols, at, 0, this.scratch.x, 0, 0, this.scratch.out, b]);
      else this.x.panelGemm(m, rows, cols, this.scratch.x, at, this.scratch.out, b, this.scratch.tot);
    });
  }

  /** Packs up to 16 rows of `cols` values (`rows` row-major) into the panel at `dst` (placePanels), through the scratch rows. */
  packPanel(rows: Float32Array, cols: number, dst: number): void {
    const n = rows.length / cols;
    new Float32Array(this.memory.buffer, this.scratch.x, rows.length).set(rows);
    this.x.packPanel(n, cols, this.scratch.x, dst);
  }

  /** Runs `product` over CHUNK rows of x at a time, staged in the scratch area; its second argument is the bias offset (0 for none). */
  private chunked(rows: number, cols: number, x: Float32Array, M: number, out: Float32Array, bias: Float32Array | null, product: (m: number, bias: number) => void): void {
    const s = this.scratch;
    if (bias) new Float32Array(this.memory.buffer, s.bias, rows).set(bias);
    for (let i0 = 0; i0 < M; i0 += CHUNK) {
      const m = Math.min(CHUNK, M - i0);
      new Float32Array(this.memory.buffer, s.x, m * cols).set(x.subarray(i0 * cols, (i0 + m) * cols));
      product(m, bias ? s.bias : 0);
      // A pool's memory may have grown during the product (a new buffer object): views come from it afresh.
      out.set(new Float32Array(this.memory.buffer, s.out, m * rows), i0 * rows);
    }
  }
}

/** Rows per panel of a float32 matrix kept for panelGemm. */
export const PANEL_ROWS = 16;

/** Bytes a rows×cols float32 matrix takes in row panels. */
export function panelBytes(rows: number, cols: number): number {
  return Math.ceil(rows / PANEL_ROWS) * PANEL_ROWS * cols * 4;
}

/**
 * Copies the rows×cols row-major matrix `w` into `arena` as row panels (16 rows each, k-major, rows
 * past the end zero) and returns their offset.
 */
export function placePanels(arena: QuantArena, w: Float32Array, rows: number, cols: number): number {
  const at = arena.alloc(panelBytes(rows, cols));
  for (let r0 = 0; r0 < rows; r0 += PANEL_ROWS) arena.packPanel(w.subarray(r0 * cols, Math.min(rows, r0 + PANEL_ROWS) * cols), cols, at + r0 * cols * 4);
  return at;
}

/** Row `row` of the panel matrix at `at` into out[outAt…outAt + cols). */
export function panelRow(arena: QuantArena, at: number, cols: number, row: number, out: Float32Array, outAt: number): void {
  const panel = arena.floats(at + Math.floor(row / PANEL_ROWS) * PANEL_ROWS * cols * 4, PANEL_ROWS * cols);
  for (let k = 0, i = row % PANEL_ROWS; k < cols; k++, i += PANEL_ROWS) out[outAt + k] = panel[i];
}
