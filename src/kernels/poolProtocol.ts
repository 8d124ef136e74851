/** What the kernel pool (pool.ts) sends each worker (poolWorker.ts) once, and the control words they share. */
export interface PoolInit {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  /** SharedArrayBuffer holding the Int32 control words below. */
  control: SharedArrayBuffer;
  /** This worker's slot (1…threads−1; the calling thread is 0). */
  index: number;
  /** Byte offset of this worker's scratch area in `memory`. */
  work: number;
}

/**
 * Int32 indices into the control words: a job counter, a done counter, the job (op 0: gemm with its
 * operands; op 1: convolution forward with its 15 shape words and buffers; op 2: convolution backward;
 * each thread's scratch for the patch columns at col + index·colBytes), then 4 range words per tile
 * (rows and columns of C; samples in the first two for ops 1 and 2) — for op 2 the last two of slot t
 * also hold thread t's filters.
 */
export const CTL = {
  generation: 0,
  done: 1,
  exit: 2,
  /** Set by a worker whose kernel threw (a trap); the caller then throws instead of using C. */
  failed: 15,
  M: 3,
  N: 4,
  K: 5,
  a: 6,
  aKM: 7,
  b: 8,
  bKN: 9,
  c: 10,
  bias: 11,
  op: 12,
  col: 13,
  colBytes: 14,
  convShape: 16,
  convX: 32,
  convW: 33,
  convBias: 34,
  convOut: 35,
  /** Convolution backward (op 2): output gradient, dW, flipped weights (0: convBackwardData), batch, dX (0: none), then the flipped problem's 15 shape words. */
  convG: 36,
  convDW: 37,
  convFlip: 38,
  convBatch: 39,
  convDX: 40,
  convBackShape: 41,
  /**
   * Attention (op 3: forward heads, op 4: backward KV groups): seq, hd, heads, kvHeads, causal, the scale's
   * float32 bits, then qkv, attn (op 3) or gAttn (op 4), stats, gq, gk, gv — in the convolution's shape words,
   * which these ops leave alone.
   */
  attention: 16,
  /**
   * A product of one row of x with a matrix resident in the pool's memory (op 5, decoding): the format
   * (0 float32 row panels, 1 Q4_0, 2 int8 rows), rows, cols, then the matrix, its row scales (int8), x,
   * its int16 rounding and block scales (Q4_0, int8), out and bias (0: none). Tiles are runs of 16 rows.
   */
  rowProduct: 16,
  /** Convolution forward (op 1): a number that changes with every call (a thread's first tile of a call prepares the weights in its scratch; later runs of samples reuse them and the zero borders). */
  convCall: 56,
  /** The next tile to take (each thread adds 1 and runs the tile it got) and how many there are; tiles sit in the range words, 4 per tile. */
  nextTile: 57,
  tiles: 58,
  ranges: 64,
} as const;

export const MAX_THREADS = 64;
/** Polls of the done counter before the calling thread sleeps waiting for the workers (a few tens of microseconds). */
export const SPIN = 20000;
/**
 * How long an idle worker keeps polling for the next job before it sleeps, in milliseconds: waking a
 * sleeping thread costs tens to hundreds of microseconds on a VM (more than a small product takes), and
 * a training step's products are spaced by its other work (losses, optimizer updates, a few tenths of a
 * millisecond).
 */
export const WORKER_SPIN_MS = 2;

/** Polls `word` until it differs from `seen` or `ms` milliseconds pass (reading the clock every 1024 polls); true when it changed. */
export function pollFor(ctl: Int32Array, word: number, seen: number, ms: number): boolean {
  const end = performance.now() + ms;
  for (;;) {
    for (let i = 0; i < 1024; i++) if (Atomics.load(ctl, word) !== seen) return true;
    if (performance.now() >= end) return false;
  }
}
export const CONTROL_BYTES = (CTL.ranges + 4 * MAX_THREADS) * 4;

/** The kernels a thread's share of a convolution (forward or backward) calls. */
export interface ConvShareExports {
  convForward(b0: number, b1: number, ...rest: number[]): void;
  convRun(b0: number, b1: number, ...rest: number[]): void;
  convBackwardFilter(f0: number, f1: number, B: number, ...rest: number[]): void;
  convBackwardData(b0: number, b1: number, ...rest: number[]): void;
}

/** The kernels a thread's share of a batch of attention heads calls (assembly/kernels.ts). */
export interface AttentionShareExports {
  attentionHeads(t0: number, t1: number, seq: number, hd: number, heads: number, kvHeads: number, causal: number, scale: number, qkv: number, attn: number, stats: number, scratch: number, work: number): void;
  attentionGroupsBackward(t0: number, t1: number, seq: number, hd: number, heads: number, kvHeads: number, causal: number, scale: number, qkv: number, gAttn: number, stats: number, gq: number, gk: number, gv: number, scratch: number, work: number): void;
}

/** The decoding kernels a thread's rows of a resident matrix run on (assembly/kernels.ts). */
export interface RowProductExports {
  panelGemm(M: number, N: number, K: number, x: number, wp: number, out: number, bias: number, tile: number): void;
  q4_0GemmQ16(M: number, rows: number, cols: number, w: number, xq: number, xs: number, out: number, bias: number, tot: number): void;
  int8RowGemmQ16(M: number, rows: number, cols: number, w: number, scales: number, xq: number, xs: number, out: number, bias: number, tot: number): void;
}

/** The kernel a thread runs its tiles of a product with. */
export interface GemmShareExports extends ConvShareExports, AttentionShareExports, RowProductExports {
  gemmRange(M: number, N: number, K: number, a: number, aKM: number, b: number, bKN: number, c: number, bias: number, work: number, i0: number, i1: number, j0: number, j1: number): void;
}

/** A thread's memory between jobs: the convolution call whose weights its scratch holds (forward runs of one call share them). */
export interface ThreadState {
  preparedCall: number;
}

/**
 * Runs one thread's part of the job in the control words (every thread, the caller included, runs
 * this): tiles taken in turn from the shared counter until none is left, so a thread slowed by
 * anything else on its core takes fewer. `thread` is the thread's slot, `work` and `col` its scratch.
 */
export function runShare(x: GemmShareExports, ctl: Int32Array, thread: number, work: number, col: number, state: ThreadState): void {
  const op = ctl[CTL.op];
  if (op === 5) {
    const [format, , cols, w, scales, x1, xq, xs, out, bias] = ctl.subarray(CTL.rowProduct, CTL.rowProduct + 10);
    takeTiles(ctl, (lo, hi) => {
      const b = bias ? bias + 4 * lo : 0;
      if (format === 0) x.panelGemm(1, hi - lo, cols, x1, w + lo * cols * 4, out + 4 * lo, b, col);
      else if (format === 1) x.q4_0GemmQ16(1, hi - lo, cols, w + (lo * cols / 32) * 18, xq, xs, out + 4 * lo, b, col);
      else x.int8RowGemmQ16(1, hi - lo, cols, w + lo * cols, scales + 4 * lo, xq, xs, out + 4 * lo, b, col);
    });
    return;
  }
  if (op === 3 || op === 4) {
    const [seq, hd, heads, kvHeads, causal, scaleBits, qkv, io, stats, gq, gk, gv] = ctl.subarray(CTL.attention, CTL.attention + 12);
    const scale = floatOfBits(scaleBits);
    takeTiles(ctl, (lo, hi) => {
      if (op === 3) x.attentionHeads(lo, hi, seq, hd, heads, kvHeads, causal, scale, qkv, io, stats, col, work);
      else x.attentionGroupsBackward(lo, hi, seq, hd, heads, kvHeads, causal, scale, qkv, io, stats, gq, gk, gv, col, work);
    });
    return;
  }
  const shape = op === 0 ? [] : Array.from(ctl.subarray(CTL.convShape, CTL.convShape + 15));
  if (op === 2) {
    // dW over this thread's fixed run of filters (each run re-reads every sample's patches, so one run per thread).
    const r = CTL.ranges + 4 * thread;
    if (ctl[r + 3] > ctl[r + 2]) x.convBackwardFilter(ctl[r + 2], ctl[r + 3], ctl[CTL.convBatch], ...shape, ctl[CTL.convX], ctl[CTL.convG], ctl[CTL.convDW], work, col);
    if (!ctl[CTL.convDX]) return;
  }
  const back = op === 2 && ctl[CTL.convFlip] ? Array.from(ctl.subarray(CTL.convBackShape, CTL.convBackShape + 15)) : null;
  let flipPrepared = false;
  takeTiles(ctl, (lo, hi, r) => {
    if (op === 0) {
      if (ctl[r + 3] > ctl[r + 2]) x.gemmRange(ctl[CTL.M], ctl[CTL.N], ctl[CTL.K], ctl[CTL.a], ctl[CTL.aKM], ctl[CTL.b], ctl[CTL.bKN], ctl[CTL.c], ctl[CTL.bias], work, lo, hi, ctl[r + 2], ctl[r + 3]);
    } else if (op === 1) {
      // The first tile a thread takes in a call prepares the weights (and the zero borders) in its scratch.
      const buffers = [ctl[CTL.convX], ctl[CTL.convW], ctl[CTL.convBias], ctl[CTL.convOut], work, col];
      if (state.preparedCall === ctl[CTL.convCall]) x.convRun(lo, hi, ...shape, ...buffers, 0);
      else x.convForward(lo, hi, ...shape, ...buffers);
      state.preparedCall = ctl[CTL.convCall];
    } else if (back) {
      const buffers = [ctl[CTL.convG], ctl[CTL.convFlip], 0, ctl[CTL.convDX], work, col];
      if (flipPrepared) x.convRun(lo, hi, ...back, ...buffers, 0);
      else x.convForward(lo, hi, ...back, ...buffers);
      flipPrepared = true;
    } else {
      x.convBackwardData(lo, hi, ...shape, ctl[CTL.convG], ctl[CTL.convW], ctl[CTL.convDX], work, col);
    }
  });
}

/**
 * Takes the job's tiles in turn from the shared counter until none is left, calling `run` with each
 * non-empty tile's first two range words and the index of its range words (for the last two).
 */
function takeTiles(ctl: Int32Array, run: (lo: number, hi: number, r: number) => void): void {
  const tiles = ctl[CTL.tiles];
  for (let t = Atomics.add(ctl, CTL.nextTile, 1); t < tiles; t = Atomics.add(ctl, CTL.nextTile, 1)) {
    const r = CTL.ranges + 4 * t;
    if (ctl[r + 1] > ctl[r]) run(ctl[r], ctl[r + 1], r);
  }
}

/**
 * Tiles of samples [0, n) in the range words (first two of each 4), at multiples of `step` samples
 * (4 by default: Winograd's vector), guided: each tile takes 1/(2·threads) of the samples left, so the
 * last tiles, which the threads that finish first may wait on, are the smallest; returns how many.
 */
export function setSampleTiles(ctl: Int32Array, n: number, threads: number, step = 4): number {
  const sizes = guidedUnits(Math.ceil(n / step), threads);
  let start = 0;
  sizes.forEach((size, t) => {
    ctl.set([Math.min(n, start * step), Math.min(n, (start + size) * step)], CTL.ranges + 4 * t);
    start += size;
  });
  ctl[CTL.tiles] = sizes.length;
  Atomics.store(ctl, CTL.nextTile, 0);
  return sizes.length;
}

/**
 * Guided self-scheduling of `units`: tile sizes max(least, ⌈left / (2·threads)⌉), where least is 1 for
 * up to MAX_THREADS / 2 units and grows with larger counts, so the tiles always fit the control words.
 */
export function guidedUnits(units: number, threads: number): number[] {
  const least = Math.max(1, Math.ceil(units / (MAX_THREADS / 2)));
  const sizes: number[] = [];
  for (let left = units; left > 0; ) {
    const size = Math.min(left, Math.max(least, Math.ceil(left / (2 * threads))));
    sizes.push(size);
    left -= size;
  }
  return sizes.length ? sizes : [0];
}

/** Tile t of `tiles` when `units` blocks of `step` (the last one cut at `extent`) are shared out evenly: [start, end). */
export function evenCut(units: number, step: number, extent: number, tiles: number, t: number): [number, number] {
  return [Math.min(extent, Math.floor((units * t) / tiles) * step), Math.min(extent, Math.floor((units * (t + 1)) / tiles) * step)];
}

const bitsView = new DataView(new ArrayBuffer(4));

/** A float32's bits as an int32 (to pass it in the control words). */
export function bitsOfFloat(x: number): number {
  bitsView.setFloat32(0, x);
  return bitsView.getInt32(0);
}

/** The float32 whose bits are `bits`. */
export function floatOfBits(bits: number): number {
  bitsView.setInt32(0, bits);
  return bitsView.getFloat32(0);
}
