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
 * operands; op 1: convolution forward with its 15 shape words and buffers; each thread's scratch for
 * the patch columns at col + index·colBytes), then 4 range words per thread (rows and columns of C,
 * or samples in the first two).
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
  ranges: 64,
} as const;

export const MAX_THREADS = 64;
/** Polls of a control word before a thread sleeps on it (a few tens of microseconds). */
export const SPIN = 20000;
export const CONTROL_BYTES = (CTL.ranges + 4 * MAX_THREADS) * 4;
