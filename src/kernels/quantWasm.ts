import { LoomError } from '../core/errors.js';
import { kernelMode, runningPool } from './backend.js';
import type { KernelPool } from './pool.js';
import { WASM_KERNELS_URL } from './wasm.js';

/**
 * Packed matrices living in WebAssembly memory for the q4_0 / int8 product kernels
 * (assembly/kernels.ts, "q4_0 / int8-row products") and float32 matrices in row panels (panelGemm).
 * An arena is one block of memory sized once, for the matrices plus scratch: a private instance of
 * the kernel module, or a block of a running kernel pool's shared memory. The packed bytes exist only
 * there (nothing is copied per call but the activations); the arena may move into a pool's memory
 * (whole, once), so callers keep offsets from its start and take views afresh. Products of more than
 * CHUNK rows run CHUNK rows at a time.
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

/** Where a packed matrix lies in an arena (offsets from the arena's start). */
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

/** Gives an arena's pool block back once the arena is garbage (pool, offset, bytes). */
const poolBlocks = new FinalizationRegistry<{ pool: KernelPool; at: number; bytes: number }>(({ pool, at, bytes }) => pool.release(at, bytes));

type ArenaExports = Omit<QuantExports, 'memory' | 'heapBase'>;

export class QuantArena {
  private top: number;
  /** Bytes of the arena: scratch, then the matrices. */
  private readonly size: number;
  /** Offsets from the arena's start, like every offset `alloc` hands out. */
  private readonly scratch: { x: number; out: number; bias: number; tot: number; xq: number; xs: number };
  private x: ArenaExports;
  private memory: WebAssembly.Memory;
  /** Where the arena starts in `memory`. */
  private base: number;
  /** The kernel pool whose shared memory holds the arena, or null for a private instance. */
  private pool: KernelPool | null;

  private constructor(matrixBytes: number, maxRows: number, maxCols: number, home: { x: ArenaExports; memory: WebAssembly.Memory; base: number; pool: KernelPool | null }) {
    const { end, ...scratch } = scratchLayout(0, maxRows, maxCols);
    this.scratch = scratch;
    this.top = end;
    this.size = end + matrixBytes;
    ({ x: this.x, memory: this.memory, base: this.base, pool: this.pool } = home);
    if (this.pool) poolBlocks.register(this, { pool: this.pool, at: this.base, bytes: this.size }, this);
  }

  /**
   * An arena for matrices totalling `matrixBytes` (each rounded up to 16 bytes by the caller) and
   * products up to maxRows × maxCols; null when the kernels are unavailable or turned off (LOOM_KERNELS=ts).
   * While a thread pool runs (setThreads) the arena goes into its shared memory when it fits, so
   * decoding steps use every thread (the same bits); otherwise into a private instance of its own.
   * An arena made before a pool starts moves into the pool's memory at its next product.
   */
  static create(matrixBytes: number, maxRows: number, maxCols: number): QuantArena | null {
    if (kernelMode() === 'ts') return null;
    const size = scratchLayout(0, maxRows, maxCols).end + matrixBytes;
    const pool = runningPool();
    const shared = pool ? poolHome(pool, size) : null;
    if (shared) return new QuantArena(matrixBytes, maxRows, maxCols, shared);
    const m = kernelModule();
    if (!m) return null;
    try {
      const x = new WebAssembly.Instance(m, {}).exports as unknown as QuantExports;
      const base = align16(x.heapBase());
      // Past WebAssembly's 4 GiB (or when the memory cannot grow), no arena: the TypeScript products run.
      if (base + size > MAX_BYTES) return null;
      const have = x.memory.buffer.byteLength;
      if (base + size > have) x.memory.grow(Math.ceil((base + size - have) / PAGE));
      return new QuantArena(matrixBytes, maxRows, maxCols, { x, memory: x.memory, base, pool: null });
    } catch {
      return null;
    }
  }

  /** How many threads this arena's one-row products run on. */
  get threads(): number {
    return this.pool && this.pool === runningPool() ? this.pool.threads : 1;
  }

  /**
   * Moves the arena into the running pool's shared memory when it lies elsewhere (a private instance,
   * or the memory of a pool that has stopped), so products use the pool's threads; stays put when the
   * pool has no room. The bytes are copied as they are: offsets from the arena's start still hold.
   */
  private follow(): void {
    const pool = runningPool();
    if (pool === null || pool === this.pool) return;
    const home = poolHome(pool, this.size);
    if (!home) return;
    new Uint8Array(home.memory.buffer, home.base, this.top).set(new Uint8Array(this.memory.buffer, this.base, this.top));
    poolBlocks.unregister(this);
    ({ x: this.x, memory: this.memory, base: this.base, pool: this.pool } = home);
    poolBlocks.register(this, { pool, at: this.base, bytes: this.size }, this);
  }

  /** Whether a one-row product with this matrix goes to the pool: enough weights to outweigh waking the threads. */
  private pooled(rows: number, cols: number): boolean {
    return this.pool !== null && rows * cols >= POOL_MIN_WEIGHTS;
  }

  /** Reserves `bytes` (16-byte aligned) and returns their offset from the arena's start. */
  alloc(bytes: number): number {
    const at = this.top;
    if (at + bytes > this.size) throw new LoomError(`QuantArena: out of reserved space (${bytes} bytes asked, ${this.size - at} left)`);
    this.top = align16(at + bytes);
    return at;
  }

  /** A view of `length` bytes at offset `at` (from alloc); take a fresh one for each use, as the arena may move. */
  bytes(at: number, length: number): Uint8Array {
    return new Uint8Array(this.memory.buffer, this.base + at, length);
  }

  /** A view of `length` floats at offset `at` (from alloc); take a fresh one for each use, as the arena may move. */
  floats(at: number, length: number): Float32Array {
    return new Float32Array(this.memory.buffer, this.base + at, length);
  }

  /** out[M×rows] = x[M×cols]·Wᵀ (+ bias) for the matrix placed at `p`. */
  gemm(format: 'q4_0' | 'int8', p: ArenaPlacement, rows: number, cols: number, x: Float32Array, M: number, out: Float32Array, bias: Float32Array | null): void {
    this.chunked(rows, cols, x, M, out, bias, (m, b, s) => {
      const data = this.base + p.data;
      const scales = p.scales ? this.base + p.scales : 0;
      if (cols % 32 === 0) {
        // Whole 32-value blocks: x rounded to int16 per block, then integer dot products (see the kernels).
        this.x.quantizeRowsQ16(m, cols, s.x, s.xq, s.xs);
        if (m === 1 && this.pooled(rows, cols)) this.pool!.rowProduct([format === 'q4_0' ? 1 : 2, rows, cols, data, scales, 0, s.xq, s.xs, s.out, b]);
        else if (format === 'q4_0') this.x.q4_0GemmQ16(m, rows, cols, data, s.xq, s.xs, s.out, b, s.tot);
        else this.x.int8RowGemmQ16(m, rows, cols, data, scales, s.xq, s.xs, s.out, b, s.tot);
      } else {
        this.x.int8RowGemm(m, rows, cols, data, scales, s.x, s.out, b, s.tot);
      }
    });
  }

  /**
   * out[M×rows] = x[M×cols]·Wᵀ (+ bias) for a float32 matrix stored in row panels at `at`
   * (placePanels): the same bits as gemmABt on the unpacked matrix.
   */
  panelGemm(at: number, rows: number, cols: number, x: Float32Array, M: number, out: Float32Array, bias: Float32Array | null): void {
    this.chunked(rows, cols, x, M, out, bias, (m, b, s) => {
      const panels = this.base + at;
      if (m === 1 && this.pooled(rows, cols)) this.pool!.rowProduct([0, rows, cols, panels, 0, s.x, 0, 0, s.out, b]);
      else this.x.panelGemm(m, rows, cols, s.x, panels, s.out, b, s.tot);
    });
  }

  /** Packs up to 16 rows of `cols` values (`rows` row-major) into the panel at `dst` (placePanels), through the scratch rows. */
  packPanel(rows: Float32Array, cols: number, dst: number): void {
    const n = rows.length / cols;
    const x = this.base + this.scratch.x;
    new Float32Array(this.memory.buffer, x, rows.length).set(rows);
    this.x.packPanel(n, cols, x, this.base + dst);
  }

  /**
   * Runs `product` over CHUNK rows of x at a time, staged in the scratch area; its arguments are the
   * rows, the bias's memory offset (0 for none) and the scratch's memory offsets.
   */
  private chunked(rows: number, cols: number, x: Float32Array, M: number, out: Float32Array, bias: Float32Array | null, product: (m: number, bias: number, scratch: QuantArena['scratch']) => void): void {
    this.follow();
    const o = this.base;
    const r = this.scratch;
    const s = { x: o + r.x, out: o + r.out, bias: o + r.bias, tot: o + r.tot, xq: o + r.xq, xs: o + r.xs };
    if (bias) new Float32Array(this.memory.buffer, s.bias, rows).set(bias);
    for (let i0 = 0; i0 < M; i0 += CHUNK) {
      const m = Math.min(CHUNK, M - i0);
      new Float32Array(this.memory.buffer, s.x, m * cols).set(x.subarray(i0 * cols, (i0 + m) * cols));
      product(m, bias ? s.bias : 0, s);
      // A pool's memory may have grown during the product (a new buffer object): views come from it afresh.
      out.set(new Float32Array(this.memory.buffer, s.out, m * rows), i0 * rows);
    }
  }
}

/** A block of `size` bytes in `pool`'s shared memory, with the calling thread's kernels on it; null when it does not fit. */
function poolHome(pool: KernelPool, size: number): { x: ArenaExports; memory: WebAssembly.Memory; base: number; pool: KernelPool } | null {
  const base = pool.persistent(size);
  return base === null ? null : { x: pool.kernels, memory: pool.sharedMemory, base, pool };
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
