import { LoomError, UsageError } from '../core/errors.js';
import { CONTROL_BYTES, CTL, MAX_THREADS, SPIN, bitsOfFloat, evenCut, runShare, setSampleTiles, type GemmShareExports, type PoolInit, type ThreadState } from './poolProtocol.js';
import { spawnPoolThread, threadSupport, type PoolThread } from './poolThreads.js';
import { attentionSizes, backwardDataPlan, biasSums, convArgs, convChunk, reluOut, stageGradient, type AttentionBatch, type ConvGradientOptions, type ConvShape, type GemmLayout } from './wasm.js';

/**
 * A pool of kernel threads over one shared WebAssembly memory: Node worker_threads, or module Web
 * Workers in cross-origin isolated pages (poolThreads.ts starts either), each running poolWorker.js
 * (a module file; nothing is evaluated from strings).
 * A product is cut into contiguous output tiles (column blocks of 16, or row blocks of 4), a few per
 * thread, which the threads (the caller among them) take in turn from a shared counter. Each element is
 * still computed by the one kernel in its fixed order (assembly/kernels.ts gemmRange), whichever thread
 * takes its tile, so C is bit-identical for 1, 2 or N threads and to the single-threaded WasmKernels. Idle workers sleep in Atomics.wait and are unref'd: they never keep
 * a Node process alive.
 */

export interface SharedExports extends GemmShareExports {
  heapBase(): number;
  workBytes(): number;
  convBackwardColFloats(K: number, P: number, F: number): number;
  attentionScratchBytes(seq: number, hd: number): number;
  quantizeRowsQ16(M: number, cols: number, x: number, xq: number, xs: number): void;
  int8RowGemm(M: number, rows: number, cols: number, w: number, scales: number, x: number, out: number, bias: number, tot: number): void;
  packPanel(n: number, K: number, src: number, dst: number): void;
  convFlipWeights(C: number, F: number, kD: number, kH: number, kW: number, w: number, out: number): void;
  reluForward(n: number, pre: number, out: number): void;
  reluBackward(n: number, gradOut: number, pre: number, gradPre: number): void;
  channelSumsF64(B: number, F: number, P: number, g: number, out: number): void;
}

/** The shared-memory build of the kernels (npm run build:wasm), next to this module. */
export const SHARED_KERNELS_URL = new URL('./loom-kernels-shared.wasm', import.meta.url);
const WORKER_URL = new URL('./poolWorker.js', import.meta.url);

const PAGE = 65536;
const MAX_PAGES = 16384;
const align16 = (n: number): number => (n + 15) & ~15;
/** Whether this thread may sleep in Atomics.wait (not a browser page's main thread); learned on the first try. */
let callerMayBlock = true;

type NodeProcess = { getBuiltinModule?: (id: string) => unknown };
const nodeProcess = (globalThis as { process?: NodeProcess }).process;

async function loadModule(url: URL): Promise<WebAssembly.Module> {
  const fs = nodeProcess?.getBuiltinModule?.('node:fs') as { readFileSync(p: URL): Uint8Array<ArrayBuffer> } | undefined;
  if (fs && url.protocol === 'file:') return new WebAssembly.Module(fs.readFileSync(url));
  const response = await fetch(url);
  if (!response.ok) throw new Error(`loom kernel pool: ${url.href}: HTTP ${response.status}`);
  return WebAssembly.compile(await response.arrayBuffer());
}

/**
 * The side of C a product is cut along: column blocks at multiples of 16 (the micro-kernel's width) or
 * row blocks at multiples of 4. Every tile packs the whole of the operand along the other side again
 * (A for column tiles, B for row tiles), so when A has fewer rows than B (M < N) columns are cut once
 * there are 8 blocks of them; otherwise the side with more blocks.
 */
function productAxis(M: number, N: number): { byCols: boolean; units: number; step: number; extent: number } {
  const colUnits = Math.ceil(N / 16);
  const rowUnits = Math.ceil(M / 4);
  const byCols = M === 1 || colUnits >= rowUnits || (M < N && colUnits >= 8);
  return byCols ? { byCols, units: colUnits, step: 16, extent: N } : { byCols, units: rowUnits, step: 4, extent: M };
}

/** A partition of C into `parts` contiguous tiles [i0, i1, j0, j1] along productAxis. */
export function splitProduct(M: number, N: number, parts: number): [number, number, number, number][] {
  const { byCols, units, step, extent } = productAxis(M, N);
  return Array.from({ length: parts }, (_, t) => {
    const [lo, hi] = evenCut(units, step, extent, parts, t);
    return byCols ? [0, M, lo, hi] : [lo, hi, 0, N];
  });
}

/**
 * Tiles a pooled product is cut into: several per thread, taken in turn from a shared counter, so a
 * thread slowed by anything else on its core (a background compile, another process) takes fewer
 * and the others finish the rest; about 2^21 multiply-adds at least per tile, as each tile packs its
 * own share of A or B again.
 */
export function productTiles(M: number, N: number, K: number, threads: number): number {
  const { units } = productAxis(M, N);
  const bySize = Math.floor((M * N * K) / TILE_MIN_MACS);
  return Math.max(1, Math.min(units, MAX_THREADS, threads * TILES_PER_THREAD, Math.max(threads, bySize)));
}

const TILES_PER_THREAD = 4;
const TILE_MIN_MACS = 1 << 21;

export class KernelPool {
  private readonly ctl: Int32Array;
  private readonly x: SharedExports;
  /** Start of the per-call area; persistent blocks (resident matrices) sit below it. */
  private heap: number;
  /** Where persistent blocks start (the per-call area's start before any was reserved). */
  private readonly reservedStart: number;
  /** Released persistent blocks below `heap`, by address, none adjacent to another or to `heap`. */
  private gaps: { at: number; bytes: number }[] = [];
  private readonly work0: number;
  private closed = false;
  private readonly state: ThreadState = { preparedCall: -1 };

  private constructor(
    readonly threads: number,
    private readonly memory: WebAssembly.Memory,
    control: SharedArrayBuffer,
    x: SharedExports,
    private readonly workers: PoolThread[],
    work0: number,
    heap: number,
  ) {
    this.ctl = new Int32Array(control);
    this.x = x;
    this.work0 = work0;
    this.heap = heap;
    this.reservedStart = heap;
  }

  /**
   * Starts `threads − 1` workers (the caller is thread 0); rejects when workers or shared memory are
   * unavailable (browsers need cross-origin isolation for SharedArrayBuffer). `moduleUrl` and
   * `workerUrl` default to the files next to this module (dist/src/kernels).
   */
  static async create(threads: number, moduleUrl: URL = SHARED_KERNELS_URL, workerUrl: URL = WORKER_URL): Promise<KernelPool> {
    if (!Number.isInteger(threads) || threads < 1 || threads > MAX_THREADS) throw new UsageError(`threads: expected an integer from 1 to ${MAX_THREADS}, got ${String(threads)}`);
    const support = threadSupport();
    if (!support.available) throw new LoomError(`kernel pool: ${support.reason}`);
    const module = await loadModule(moduleUrl);
    const memory = new WebAssembly.Memory({ initial: 64, maximum: MAX_PAGES, shared: true });
    const x = new WebAssembly.Instance(module, { env: { memory, abort: () => { throw new Error('loom kernels: abort'); } } }).exports as unknown as SharedExports;
    const workBytes = align16(x.workBytes());
    const work0 = align16(x.heapBase());
    const heap = work0 + threads * workBytes;
    if (heap > memory.buffer.byteLength) memory.grow(Math.ceil((heap - memory.buffer.byteLength) / PAGE));
    const control = new SharedArrayBuffer(CONTROL_BYTES);
    // Threads start together: a browser fetches and compiles the worker module once per thread.
    const started = await Promise.allSettled(
      Array.from({ length: threads - 1 }, (_, i) => spawnPoolThread(workerUrl, { module, memory, control, index: i + 1, work: work0 + (i + 1) * workBytes } satisfies PoolInit)),
    );
    const workers = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const failed = started.find((r) => r.status === 'rejected');
    if (failed) {
      for (const w of workers) w.terminate();
      throw failed.reason;
    }
    return new KernelPool(threads, memory, control, x, workers, work0, heap);
  }

  /**
   * C[M×N] = op(A)·op(B) (+ bias) like WasmKernels.gemm, split over the pool's threads; with
   * `accumulate`, adds into C. False (C untouched) when the operands do not fit the shared memory.
   */
  gemm(A: Float32Array, B: Float32Array, C: Float32Array, M: number, N: number, K: number, layout: GemmLayout = { a: 'mk', b: 'nk' }, bias: Float32Array | null = null, accumulate = false): boolean {
    if (this.closed) throw new UsageError('KernelPool.gemm: the pool is closed');
    if (!(M > 0 && N > 0 && K > 0)) return false;
    if (A.length < M * K || B.length < N * K || C.length < M * N || (bias && bias.length < N)) throw new RangeError(`gemm: operands too short for M=${M} N=${N} K=${K}`);
    const pa = this.heap;
    const pb = align16(pa + M * K * 4);
    const pc = align16(pb + N * K * 4);
    const pbias = align16(pc + M * N * 4);
    if (!this.reserve(pbias + (bias ? N * 4 : 0))) return false;
    const buf = this.memory.buffer;
    new Float32Array(buf, pa, M * K).set(A.subarray(0, M * K));
    new Float32Array(buf, pb, N * K).set(B.subarray(0, N * K));
    if (bias) new Float32Array(buf, pbias, N).set(bias.subarray(0, N));
    const aKM = layout.a === 'km' ? 1 : 0;
    const bKN = layout.b === 'kn' ? 1 : 0;
    const bp = bias ? pbias : 0;
    const parts = splitProduct(M, N, productTiles(M, N, K, this.threads));
    const ctl = this.ctl;
    ctl[CTL.M] = M;
    ctl[CTL.N] = N;
    ctl[CTL.K] = K;
    ctl[CTL.a] = pa;
    ctl[CTL.aKM] = aKM;
    ctl[CTL.b] = pb;
    ctl[CTL.bKN] = bKN;
    ctl[CTL.c] = pc;
    ctl[CTL.bias] = bp;
    ctl[CTL.op] = 0;
    parts.forEach((tile, t) => ctl.set(tile, CTL.ranges + 4 * t));
    ctl[CTL.tiles] = parts.length;
    Atomics.store(ctl, CTL.nextTile, 0);
    this.runJob(0);
    const out = new Float32Array(this.memory.buffer, pc, M * N);
    if (!accumulate) C.set(out);
    else for (let i = 0; i < out.length; i++) C[i] += out[i];
    return true;
  }

  /**
   * Convolution forward like WasmKernels.conv: the batch in runs of about half an L2 per thread (so the
   * copies in and out stay in cache), each run cut into tiles of samples that the threads take in turn.
   * Each sample's output is computed whole by one thread, so the bits do not depend on the split.
   * With `relu`, also writes relu(out) there (WasmKernels.conv's bits).
   */
  conv(input: Float32Array, g: ConvShape, batch: number, filters: number, w: Float32Array, bias: Float32Array | null, out: Float32Array, relu: Float32Array | null = null): boolean {
    if (this.closed) throw new UsageError('KernelPool.conv: the pool is closed');
    const K = g.channels * g.kD * g.kH * g.kW;
    const P = g.outD * g.outH * g.outW;
    const image = g.channels * g.inD * g.inH * g.inW;
    const chunk = convChunk(batch, image, filters * P, this.threads);
    const px = this.heap;
    const pw = align16(px + chunk * image * 4);
    const pb = align16(pw + filters * K * 4);
    const pout = align16(pb + filters * 4);
    const colBytes = align16(K * P * 4);
    const pcol = align16(pout + chunk * filters * P * 4);
    const pact = align16(pcol + this.threads * colBytes);
    if (!this.reserve(pact + (relu ? chunk * filters * P * 4 : 0))) return false;
    const buf = this.memory.buffer;
    new Float32Array(buf, pw, filters * K).set(w.subarray(0, filters * K));
    if (bias) new Float32Array(buf, pb, filters).set(bias.subarray(0, filters));
    const ctl = this.ctl;
    ctl.set(convArgs(g, filters), CTL.convShape);
    ctl[CTL.convX] = px;
    ctl[CTL.convW] = pw;
    ctl[CTL.convBias] = bias ? pb : 0;
    ctl[CTL.convOut] = pout;
    ctl[CTL.col] = pcol;
    ctl[CTL.colBytes] = colBytes;
    ctl[CTL.op] = 1;
    ctl[CTL.convCall] = (ctl[CTL.convCall] + 1) | 0;
    const xin = new Float32Array(buf, px, chunk * image);
    const xout = new Float32Array(buf, pout, chunk * filters * P);
    for (let s0 = 0; s0 < batch; s0 += chunk) {
      const n = Math.min(chunk, batch - s0);
      xin.set(input.subarray(s0 * image, (s0 + n) * image));
      setSampleTiles(ctl, n, this.threads);
      this.runJob(pcol);
      out.set(n === chunk ? xout : xout.subarray(0, n * filters * P), s0 * filters * P);
      if (relu) reluOut(this.x, this.memory, pout, pact, n * filters * P, relu, s0 * filters * P);
    }
    return true;
  }

  /**
   * Convolution backward like WasmKernels.convBackward: dW split over filters (runs of 4; each filter's
   * sum over the batch is computed whole by one thread), then the input gradient in tiles of samples
   * that the threads take in turn, so the bits do not depend on the split; `grad` as in WasmKernels.convBackward.
   * False when the operands do not fit the shared memory.
   */
  convBackward(input: Float32Array, g: ConvShape, batch: number, filters: number, w: Float32Array, gradPre: Float32Array, gradW: Float32Array, gradIn: Float32Array | null, grad: ConvGradientOptions = {}): boolean {
    if (this.closed) throw new UsageError('KernelPool.convBackward: the pool is closed');
    const C = g.channels;
    const K = C * g.kD * g.kH * g.kW;
    const P = g.outD * g.outH * g.outW;
    const image = C * g.inD * g.inH * g.inW;
    const { flip, back, colFloats } = backwardDataPlan(g, filters, this.x.convBackwardColFloats);
    const colBytes = align16(4 * colFloats);
    const px = this.heap;
    const pg = align16(px + batch * image * 4);
    const pw = align16(pg + batch * filters * P * 4);
    const pflip = align16(pw + filters * K * 4);
    const pdw = align16(pflip + filters * K * 4);
    const pdx = align16(pdw + filters * K * 4);
    const pcol = align16(pdx + (gradIn ? batch * image * 4 : 0));
    const ppre = align16(pcol + this.threads * colBytes);
    const pbias = align16(ppre + (grad.reluPre ? batch * filters * P * 4 : 0));
    if (!this.reserve(pbias + filters * 4)) return false;
    const buf = this.memory.buffer;
    new Float32Array(buf, px, batch * image).set(input.subarray(0, batch * image));
    stageGradient(this.x, this.memory, gradPre, batch * filters * P, pg, grad.reluPre ?? null, ppre);
    new Float32Array(buf, pw, filters * K).set(w.subarray(0, filters * K));
    const useFlip = gradIn !== null && flip;
    if (useFlip) this.x.convFlipWeights(C, filters, g.kD, g.kH, g.kW, pw, pflip);
    const ctl = this.ctl;
    ctl.set(convArgs(g, filters), CTL.convShape);
    ctl.set(convArgs(back, C), CTL.convBackShape);
    ctl[CTL.convX] = px;
    ctl[CTL.convW] = pw;
    ctl[CTL.convG] = pg;
    ctl[CTL.convDW] = pdw;
    ctl[CTL.convFlip] = useFlip ? pflip : 0;
    ctl[CTL.convBatch] = batch;
    ctl[CTL.convDX] = gradIn ? pdx : 0;
    ctl[CTL.col] = pcol;
    ctl[CTL.colBytes] = colBytes;
    ctl[CTL.op] = 2;
    for (let t = 0; t < this.threads; t++) ctl.set(evenCut(Math.ceil(filters / 4), 4, filters, this.threads, t), CTL.ranges + 4 * t + 2);
    setSampleTiles(ctl, batch, this.threads);
    this.runJob(pcol);
    if (grad.biasGrad) biasSums(this.x, this.memory, batch, filters, P, pg, pbias, grad.biasGrad);
    const out = this.memory.buffer;
    gradW.set(new Float32Array(out, pdw, filters * K));
    if (gradIn) gradIn.set(new Float32Array(out, pdx, batch * image));
    return true;
  }

  /**
   * Every head of a batch of attention like WasmKernels.attentionBatch, the heads taken in turn by the
   * threads (each head computed whole by one thread, so the bits do not depend on the split). False when
   * the operands do not fit the shared memory.
   */
  attention(a: AttentionBatch, qkv: Float32Array, attn: Float32Array, stats: Float32Array): boolean {
    if (this.closed) throw new UsageError('KernelPool.attention: the pool is closed');
    const { rows, w3, q, tasks } = attentionSizes(a);
    const at = this.placeAll([rows * w3, rows * q, 2 * a.seq * tasks], this.attentionScratch(a));
    if (!at) return false;
    const [pqkv, pattn, pstats] = at;
    new Float32Array(this.memory.buffer, pqkv, rows * w3).set(qkv.subarray(0, rows * w3));
    this.runAttention(3, a, [pqkv, pattn, pstats, 0, 0, 0], tasks);
    const out = this.memory.buffer;
    attn.set(new Float32Array(out, pattn, rows * q));
    stats.set(new Float32Array(out, pstats, 2 * a.seq * tasks));
    return true;
  }

  /** attention's gradients like WasmKernels.attentionBatchBackward, the KV groups taken in turn by the threads. */
  attentionBackward(a: AttentionBatch, qkv: Float32Array, gAttn: Float32Array, stats: Float32Array, gq: Float32Array, gk: Float64Array, gv: Float64Array): boolean {
    if (this.closed) throw new UsageError('KernelPool.attentionBackward: the pool is closed');
    const { rows, w3, q, kv, tasks } = attentionSizes(a);
    const at = this.placeAll([rows * w3, rows * q, 2 * a.seq * tasks, rows * q, 2 * rows * kv, 2 * rows * kv], this.attentionScratch(a));
    if (!at) return false;
    const [pqkv, pga, pstats, pgq, pgk, pgv] = at;
    const buf = this.memory.buffer;
    new Float32Array(buf, pqkv, rows * w3).set(qkv.subarray(0, rows * w3));
    new Float32Array(buf, pga, rows * q).set(gAttn.subarray(0, rows * q));
    new Float32Array(buf, pstats, 2 * a.seq * tasks).set(stats.subarray(0, 2 * a.seq * tasks));
    this.runAttention(4, a, [pqkv, pga, pstats, pgq, pgk, pgv], a.batch * a.kvHeads);
    const out = this.memory.buffer;
    gq.set(new Float32Array(out, pgq, rows * q));
    gk.set(new Float64Array(out, pgk, rows * kv));
    gv.set(new Float64Array(out, pgv, rows * kv));
    return true;
  }

  private attentionScratch(a: AttentionBatch): number {
    return align16(this.x.attentionScratchBytes(a.seq, a.hd));
  }

  /** 16-byte aligned offsets for float32 buffers of these lengths from the heap, then `scratchBytes` per thread at CTL.col; null past the shared memory's maximum. */
  private placeAll(lengths: number[], scratchBytes: number): number[] | null {
    const at: number[] = [];
    let end = this.heap;
    for (const n of lengths) {
      at.push(end);
      end = align16(end + n * 4);
    }
    this.ctl[CTL.col] = end;
    this.ctl[CTL.colBytes] = scratchBytes;
    return this.reserve(end + this.threads * scratchBytes) ? at : null;
  }

  private runAttention(op: 3 | 4, a: AttentionBatch, buffers: number[], tasks: number): void {
    const ctl = this.ctl;
    ctl.set([a.seq, a.hd, a.heads, a.kvHeads, a.causal ? 1 : 0, bitsOfFloat(a.scale), ...buffers], CTL.attention);
    ctl[CTL.op] = op;
    setSampleTiles(ctl, tasks, this.threads, 1);
    this.runJob(ctl[CTL.col]);
  }

  /** The shared memory and the calling thread's kernel instance on it, for a resident arena (decode.ts, quantWasm.ts). */
  get sharedMemory(): WebAssembly.Memory {
    return this.memory;
  }

  get kernels(): SharedExports {
    return this.x;
  }

  /**
   * Reserves `bytes` of the shared memory until `release` (16-byte aligned; the per-call area sits
   * above every reserved block): a resident matrix arena. Reuses the first released gap that fits,
   * else grows the reserved area. Null when the memory cannot grow that far.
   */
  persistent(bytes: number): number | null {
    const size = align16(bytes);
    const gap = this.gaps.findIndex((g) => g.bytes >= size);
    if (gap >= 0) {
      const g = this.gaps[gap];
      if (g.bytes === size) this.gaps.splice(gap, 1);
      else this.gaps[gap] = { at: g.at + size, bytes: g.bytes - size };
      return g.at;
    }
    const at = this.heap;
    if (!this.reserve(at + size)) return null;
    this.heap = at + size;
    return at;
  }

  /**
   * Gives back a block `persistent` returned (with the size it was asked for): later blocks may reuse
   * it, and a block at the top of the reserved area hands its bytes back to the per-call area.
   */
  release(at: number, bytes: number): void {
    let gap = { at, bytes: align16(bytes) };
    const inside = Number.isInteger(at) && at % 16 === 0 && at >= this.reservedStart && gap.bytes > 0 && at + gap.bytes <= this.heap;
    if (!inside || this.gaps.some((g) => at < g.at + g.bytes && g.at < at + gap.bytes)) {
      throw new UsageError(`KernelPool.release: [${at}, ${at + gap.bytes}) is not a reserved block (persistent blocks lie in [${this.reservedStart}, ${this.heap}))`);
    }
    const kept: { at: number; bytes: number }[] = [];
    for (const g of this.gaps) {
      if (g.at + g.bytes === gap.at || gap.at + gap.bytes === g.at) gap = { at: Math.min(g.at, gap.at), bytes: g.bytes + gap.bytes };
      else kept.push(g);
    }
    if (gap.at + gap.bytes === this.heap) this.heap = gap.at;
    else kept.push(gap);
    this.gaps = kept.sort((a, b) => a.at - b.at);
  }

  /** Bytes of shared memory below the per-call area (reserved blocks and the gaps between them). */
  get reservedEnd(): number {
    return this.heap;
  }

  /**
   * One row of x times a matrix resident in this pool's memory (a decoding step), its rows shared out
   * in runs of 16 (each output computed whole by one thread: the single-threaded kernels' bits). Every
   * pointer is an offset into the shared memory: [format (0 float32 panels, 1 Q4_0, 2 int8), rows,
   * cols, matrix, row scales, x, xq, xs, out, bias]. After close() the calling thread runs it alone.
   */
  rowProduct(words: number[]): void {
    const ctl = this.ctl;
    ctl.set(words, CTL.rowProduct);
    ctl[CTL.op] = 5;
    if (!this.placeAll([], 64)) throw new LoomError('kernel pool: no room for the row product scratch');
    setSampleTiles(ctl, words[1], this.threads, 16);
    this.runJob(ctl[CTL.col]);
  }

  /** Products and convolutions handed to the workers so far (each wakes every worker once). */
  get jobs(): number {
    return Atomics.load(this.ctl, CTL.generation) - (this.closed ? 1 : 0);
  }

  /** Grows the shared memory to `end` bytes; false past its maximum. */
  private reserve(end: number): boolean {
    const have = this.memory.buffer.byteLength;
    if (end <= have) return true;
    if (end > MAX_PAGES * PAGE) return false;
    try {
      this.memory.grow(Math.ceil((end - have) / PAGE));
      return true;
    } catch {
      return false;
    }
  }

  /** Runs the job now in the control words: the workers woken, the calling thread's share (its scratch at `col`), then the wait for theirs. */
  private runJob(col: number): void {
    const helpers = this.wakeWorkers();
    runShare(this.x, this.ctl, 0, this.work0, col, this.state);
    this.waitDone(helpers);
  }

  /** Wakes the workers for the job now in the control words; returns how many there are (none once closed). */
  private wakeWorkers(): number {
    const helpers = this.closed ? 0 : this.workers.length;
    if (helpers > 0) {
      Atomics.store(this.ctl, CTL.failed, 0);
      Atomics.store(this.ctl, CTL.done, 0);
      Atomics.add(this.ctl, CTL.generation, 1);
      Atomics.notify(this.ctl, CTL.generation);
    }
    return helpers;
  }

  private waitDone(helpers: number): void {
    const ctl = this.ctl;
    for (let i = 0; i < SPIN && Atomics.load(ctl, CTL.done) < helpers; i++);
    for (;;) {
      const d = Atomics.load(ctl, CTL.done);
      if (d >= helpers) {
        if (Atomics.load(ctl, CTL.failed)) throw new LoomError('kernel pool: a worker failed while running its share of the product');
        return;
      }
      if (callerMayBlock) {
        try {
          Atomics.wait(ctl, CTL.done, d, 1000);
          continue;
        } catch {
          callerMayBlock = false; // a browser's main thread may not block: spin instead, from now on
        }
      }
    }
  }

  /** Stops the workers; the pool cannot be used afterwards. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    Atomics.store(this.ctl, CTL.exit, 1);
    Atomics.add(this.ctl, CTL.generation, 1);
    Atomics.notify(this.ctl, CTL.generation);
    for (const w of this.workers) w.terminate();
  }
}

/** Starts a pool of `threads` kernel threads (see KernelPool). */
export function createKernelPool(threads: number, moduleUrl?: URL, workerUrl?: URL): Promise<KernelPool> {
  return KernelPool.create(threads, moduleUrl, workerUrl);
}
