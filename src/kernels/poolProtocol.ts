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
 * each thread's scratch for the patch columns at col + index·colBytes), then 4 range words per thread
 * (rows and columns of C; samples in the first two for op 1; filters, then samples, for op 2).
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
  /** Convolution forward (op 1): 1 on a call's first run of samples (prepare the weights), 0 after (reuse them and the zero borders). */
  convFirst: 56,
  /** Products (op 0): the next tile to take (each thread adds 1 and runs the tile it got) and how many there are; the tiles are in the range words, 4 per tile. */
  nextTile: 57,
  tiles: 58,
  ranges: 64,
} as const;

export const MAX_THREADS = 64;
/** Polls of a control word before a thread sleeps on it (a few tens of microseconds). */
export const SPIN = 20000;
export const CONTROL_BYTES = (CTL.ranges + 4 * MAX_THREADS) * 4;

/** The kernels a thread's share of a convolution (forward or backward) calls. */
export interface ConvShareExports {
  convForward(b0: number, b1: number, ...rest: number[]): void;
  convRun(b0: number, b1: number, ...rest: number[]): void;
  convBackwardFilter(f0: number, f1: number, B: number, ...rest: number[]): void;
  convBackwardData(b0: number, b1: number, ...rest: number[]): void;
}

/** The kernel a thread runs its tiles of a product with. */
export interface GemmShareExports extends ConvShareExports {
  gemmRange(M: number, N: number, K: number, a: number, aKM: number, b: number, bKN: number, c: number, bias: number, work: number, i0: number, i1: number, j0: number, j1: number): void;
}

/** Takes tiles of the product in the control words until none is left (every thread, the caller included, runs this). */
export function gemmTiles(x: GemmShareExports, ctl: Int32Array, work: number): void {
  const tiles = ctl[CTL.tiles];
  for (let t = Atomics.add(ctl, CTL.nextTile, 1); t < tiles; t = Atomics.add(ctl, CTL.nextTile, 1)) {
    const r = CTL.ranges + 4 * t;
    if (ctl[r + 1] > ctl[r] && ctl[r + 3] > ctl[r + 2]) {
      x.gemmRange(ctl[CTL.M], ctl[CTL.N], ctl[CTL.K], ctl[CTL.a], ctl[CTL.aKM], ctl[CTL.b], ctl[CTL.bKN], ctl[CTL.c], ctl[CTL.bias], work, ctl[r], ctl[r + 1], ctl[r + 2], ctl[r + 3]);
    }
  }
}

/** One thread's share of a convolution backward (KernelPool.convBackward): filters [f0, f1) of dW, samples [b0, b1) of dX. */
export function convBackwardShare(x: ConvShareExports, ctl: Int32Array, f0: number, f1: number, b0: number, b1: number, work: number, col: number): void {
  const shape = Array.from(ctl.subarray(CTL.convShape, CTL.convShape + 15));
  if (f1 > f0) x.convBackwardFilter(f0, f1, ctl[CTL.convBatch], ...shape, ctl[CTL.convX], ctl[CTL.convG], ctl[CTL.convDW], work, col);
  if (b1 <= b0 || !ctl[CTL.convDX]) return;
  if (ctl[CTL.convFlip]) {
    const back = Array.from(ctl.subarray(CTL.convBackShape, CTL.convBackShape + 15));
    x.convForward(b0, b1, ...back, ctl[CTL.convG], ctl[CTL.convFlip], 0, ctl[CTL.convDX], work, col);
  } else {
    x.convBackwardData(b0, b1, ...shape, ctl[CTL.convG], ctl[CTL.convW], ctl[CTL.convDX], work, col);
  }
}

/** One thread's share of a run of samples of a convolution forward (KernelPool.conv): samples [b0, b1). */
export function convForwardShare(x: ConvShareExports, ctl: Int32Array, b0: number, b1: number, work: number, col: number): void {
  if (b1 <= b0) return;
  const shape = Array.from(ctl.subarray(CTL.convShape, CTL.convShape + 15));
  const buffers = [ctl[CTL.convX], ctl[CTL.convW], ctl[CTL.convBias], ctl[CTL.convOut], work, col];
  if (ctl[CTL.convFirst]) x.convForward(b0, b1, ...shape, ...buffers);
  else x.convRun(b0, b1, ...shape, ...buffers, 0);
}
