/**
 * Loader and JS wrappers for the WebAssembly SIMD128 GEMM kernels (assembly/kernels.ts, built by
 * `npm run build:wasm` to dist/src/kernels/loom-kernels.wasm, next to this module).
 *
 * Operands are copied into the module's linear memory for each call, so weights that change in place
 * can never go stale. The memory grows to the largest product seen and is kept. Every output is
 * float32: per K block of 256 a float32 sum in ascending k starting from 0; the block sums are added
 * in order, then the bias. That order does not depend on M/N tiling, row splits or operand layouts,
 * so results are reproducible bit for bit. They are not bit-identical to the float64 reference in gemm.ts.
 */

import type { ConvGeometry } from './im2col.js';

interface KernelExports {
  memory: WebAssembly.Memory;
  heapBase(): number;
  workBytes(): number;
  kBlock(): number;
  gemm(M: number, N: number, K: number, a: number, aKM: number, b: number, bKN: number, c: number, bias: number, work: number): void;
  adamw(n: number, w: number, g: number, m: number, v: number, decay: number, c1: number, b2: number, c2: number, bc2: number, eps: number, step: number): void;
  sgd(n: number, w: number, g: number, buf: number, decay: number, momentum: number, keep: number, lr: number, flags: number): void;
  rmsprop(n: number, w: number, g: number, sq: number, avg: number, buf: number, decay: number, alpha: number, c: number, eps: number, momentum: number, lr: number, flags: number): void;
  reluForward(n: number, pre: number, out: number): void;
  reluBackward(n: number, gradOut: number, pre: number, gradPre: number): void;
  activationForward(kind: number, n: number, pre: number, out: number): void;
  activationBackward(kind: number, n: number, gradOut: number, pre: number, gradPre: number): void;
  allFinite(n: number, x: number): number;
  sumRowsF64(rows: number, cols: number, x: number, acc: number, out: number): void;
  channelSumsF64(B: number, F: number, P: number, g: number, out: number): void;
  convForward(b0: number, b1: number, ...geometryThenBuffers: number[]): void;
  convPrepare(...geometryThenBuffers: number[]): void;
  convRun(b0: number, b1: number, ...geometryThenBuffers: number[]): void;
  convFlipWeights(C: number, F: number, kD: number, kH: number, kW: number, w: number, out: number): void;
  convBackwardColFloats(K: number, P: number, F: number): number;
  convBackwardFilter(f0: number, f1: number, B: number, ...geometryThenBuffers: number[]): void;
  convBackwardData(b0: number, b1: number, ...geometryThenBuffers: number[]): void;
  attentionBlock(): number;
  attentionForward(nQ: number, nK: number, hd: number, q: number, k: number, v: number, out: number, causal: number, qPos0: number, scale: number, stats: number, s: number, work: number): void;
  attentionScratchBytes(seq: number, hd: number): number;
  attentionHeads(t0: number, t1: number, seq: number, hd: number, heads: number, kvHeads: number, causal: number, scale: number, qkv: number, attn: number, stats: number, scratch: number, work: number): void;
  attentionGroupsBackward(t0: number, t1: number, seq: number, hd: number, heads: number, kvHeads: number, causal: number, scale: number, qkv: number, gAttn: number, stats: number, gq: number, gk: number, gv: number, scratch: number, work: number): void;
  swigluForward(rows: number, inter: number, relu2: number, gateUp: number, hidden: number): void;
  swigluBackward(rows: number, inter: number, relu2: number, gateUp: number, gHidden: number, gGateUp: number): void;
  crossEntropyRows(rows: number, classes: number, z: number, labels: number, batch: number, stats: number): void;
  lstmScratchBytes(B: number, H: number): number;
  rnnScratchBytes(H: number): number;
  rnnForward(S: number, B: number, nIn: number, H: number, x: number, wih: number, whh: number, bias: number, h: number, work: number, scratch: number): void;
  lstmForward(S: number, B: number, nIn: number, H: number, x: number, wih: number, whh: number, bias: number, gates: number, c: number, h: number, work: number, scratch: number): void;
  lstmBackward(S: number, B: number, H: number, gates: number, c: number, gOut: number, whh: number, dG: number, scratch: number): void;
}

/** A convolution's shapes as convForward takes them. */
export type ConvShape = ConvGeometry;

/** convForward's shape arguments after b0, b1, in order, ending with the filter count. */
export function convArgs(g: ConvShape, filters: number): number[] {
  return [g.channels, g.inD, g.inH, g.inW, g.outD, g.outH, g.outW, g.kD, g.kH, g.kW, g.stride, g.padD, g.padH, g.padW, filters];
}

/**
 * How a convolution's input gradient is computed: at stride 1 (padding below the kernel size) as the
 * forward convolution `back` of the output gradient with the flipped weights (F channels of the output
 * grid in, C filters out; flip true), else by convBackwardData. `colFloats`: per-thread scratch the
 * backward needs, from the kernels' convBackwardColFloats.
 */
export function backwardDataPlan(g: ConvShape, filters: number, backwardColFloats: (K: number, P: number, F: number) => number): { flip: boolean; back: ConvShape; colFloats: number } {
  const flip = g.stride === 1 && g.padD < g.kD && g.padH < g.kH && g.padW < g.kW;
  const back: ConvShape = {
    channels: filters, inD: g.outD, inH: g.outH, inW: g.outW, outD: g.inD, outH: g.inH, outW: g.inW,
    kD: g.kD, kH: g.kH, kW: g.kW, stride: 1, padD: g.kD - 1 - g.padD, padH: g.kH - 1 - g.padH, padW: g.kW - 1 - g.padW,
  };
  const taps = g.kD * g.kH * g.kW;
  const own = backwardColFloats(g.channels * taps, g.outD * g.outH * g.outW, filters);
  // The flipped forward's patch columns: K = F·taps values at each of the input's positions.
  const colFloats = Math.max(own, flip ? filters * taps * g.inD * g.inH * g.inW : 0);
  return { flip, back, colFloats };
}

/** The activations with an elementwise kernel of their own. */
export type ElementwiseActivation = 'relu' | SmoothActivation;

/** The activations of assembly/kernels.ts activationForward/Backward, in the order of its kinds. */
export const SMOOTH_ACTIVATIONS = ['sigmoid', 'tanh', 'silu', 'gelu'] as const;
export type SmoothActivation = (typeof SMOOTH_ACTIVATIONS)[number];

/** AdamW constants, each already a float32 value (see adamwStep in backend.ts). */
export interface AdamWConstants {
  decay: number;
  c1: number;
  b2: number;
  c2: number;
  bc2: number;
  eps: number;
  step: number;
}

/** The shape of a batch of self-attention (attentionBatch): head dim, query heads, KV heads (dividing them), and the softmax scale. */
export interface AttentionBatch {
  batch: number;
  seq: number;
  hd: number;
  heads: number;
  kvHeads: number;
  causal: boolean;
  scale: number;
}

/** Rows, qkv width, query and KV widths, and forward tasks (heads) of an AttentionBatch. */
export function attentionSizes(a: AttentionBatch): { rows: number; w3: number; q: number; kv: number; tasks: number } {
  const q = a.heads * a.hd;
  const kv = a.kvHeads * a.hd;
  return { rows: a.batch * a.seq, w3: q + 2 * kv, q, kv, tasks: a.batch * a.heads };
}

/** Softmax statistics of one head's query rows: row i's are max[off + i] and inv[off + i] (1/Σe). */
export interface AttentionRowStats {
  max: Float32Array;
  inv: Float64Array;
  off: number;
}

/** Operand layouts: A is [M×K] ('mk') or [K×M] ('km'); B is [N×K] ('nk') or [K×N] ('kn'). */
export interface GemmLayout {
  a: 'mk' | 'km';
  b: 'nk' | 'kn';
}

/** Where the module file lies relative to this one (same folder in dist/src/kernels). */
export const WASM_KERNELS_URL = new URL('./loom-kernels.wasm', import.meta.url);

const PAGE = 65536;
const MAX_BYTES = 65536 * PAGE;
const align16 = (n: number): number => (n + 15) & ~15;
/** Values per staged run of WasmKernels.relu (three 32 KiB buffers). */
const RELU_CHUNK = 8192;
/** Logits per staged run of WasmKernels.crossEntropy (256 KiB; at least one row). */
const CE_CHUNK = 65536;
/** Bytes of input plus output per run of samples in WasmKernels.conv (about half of a 1 MiB L2). */
const CONV_CHUNK_BYTES = 512 * 1024;

/** Samples per run of a convolution forward on `threads` threads: about CONV_CHUNK_BYTES a thread, whole groups of 4 samples each. */
export function convChunk(batch: number, image: number, outputs: number, threads = 1): number {
  const perThread = Math.max(4, Math.floor(CONV_CHUNK_BYTES / ((image + outputs) * 4)) & ~3);
  return Math.min(batch, perThread * threads);
}

/** One instantiated kernel module and its memory. */
export class WasmKernels {
  private readonly x: KernelExports;
  private readonly work: number;
  private readonly heap: number;
  /** The K block length of the reduction order (256). */
  readonly kBlock: number;

  constructor(readonly module: WebAssembly.Module) {
    const instance = new WebAssembly.Instance(module, {});
    this.x = instance.exports as unknown as KernelExports;
    this.work = align16(this.x.heapBase());
    this.heap = this.work + align16(this.x.workBytes());
    this.kBlock = this.x.kBlock();
  }

  /** Byte offsets of A, B, C and bias for one product, growing the memory when needed; null when it cannot grow that far. */
  private layoutFor(aLen: number, bLen: number, cLen: number, biasLen: number): [number, number, number, number] | null {
    return this.place([aLen, bLen, cLen, biasLen]) as [number, number, number, number] | null;
  }

  /** Copies the first n values of each array to its byte offset in linear memory. */
  private put(...copies: [at: number, from: Float32Array, n: number][]): void {
    const buf = this.x.memory.buffer;
    for (const [at, from, n] of copies) new Float32Array(buf, at, n).set(from.subarray(0, n));
  }

  /** Copies n values from each byte offset in linear memory into its array. */
  private take(...copies: [at: number, into: Float32Array, n: number][]): void {
    const buf = this.x.memory.buffer;
    for (const [at, into, n] of copies) into.set(new Float32Array(buf, at, n));
  }

  /** 16-byte aligned byte offsets for float32 buffers of these lengths, one after another from the heap; null when memory cannot grow that far. */
  private place(lengths: number[]): number[] | null {
    const at: number[] = [];
    let end = this.heap;
    for (const n of lengths) {
      at.push(end);
      end = align16(end + n * 4);
    }
    const have = this.x.memory.buffer.byteLength;
    if (end > MAX_BYTES) return null;
    if (end > have) {
      try {
        this.x.memory.grow(Math.ceil((end - have) / PAGE));
      } catch {
        return null;
      }
    }
    return at;
  }

  /**
   * RNN forward over time-major rows (t·B + b), float32 (assembly/kernels.ts rnnForward): xT [S·B×nIn],
   * W_ih [H×nIn], W_hh [H×H], bias [H]; fills h [S·B×H] with tanh as the LSTM kernel computes it.
   * False when linear memory cannot hold them.
   */
  rnnForward(S: number, B: number, nIn: number, H: number, xT: Float32Array, wIH: Float32Array, wHH: Float32Array, bias: Float32Array, h: Float32Array): boolean {
    const rows = S * B;
    const at = this.place([rows * nIn, H * nIn, H * H, H, rows * H, this.x.rnnScratchBytes(H) / 4]);
    if (!at) return false;
    const [px, pih, phh, pb, ph, ps] = at;
    this.put([px, xT, rows * nIn], [pih, wIH, H * nIn], [phh, wHH, H * H], [pb, bias, H]);
    this.x.rnnForward(S, B, nIn, H, px, pih, phh, pb, ph, this.work, ps);
    this.take([ph, h, rows * H]);
    return true;
  }

  /**
   * One attention head (assembly/kernels.ts attentionForward): out [nQ×hd] = softmax(q·kᵀ·scale)·v for
   * q [nQ×hd], k and v [≥ nK×hd], query i at position qPos0 + i; with `stats`, row i's max and 1/Σe go to
   * stats.max[stats.off + i] and stats.inv[stats.off + i]. False when linear memory cannot hold them.
   */
  attentionForward(nQ: number, nK: number, hd: number, q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array, causal: boolean, qPos0: number, scale: number, stats: AttentionRowStats | null): boolean {
    const at = this.place([nQ * hd, nK * hd, nK * hd, nQ * hd, 2 * nQ, this.x.attentionBlock() * nK + 4]);
    if (!at) return false;
    const [pq, pk, pv, po, pstats, ps] = at;
    this.put([pq, q, nQ * hd], [pk, k, nK * hd], [pv, v, nK * hd]);
    this.x.attentionForward(nQ, nK, hd, pq, pk, pv, po, causal ? 1 : 0, qPos0, scale, stats ? pstats : 0, ps, this.work);
    this.take([po, out, nQ * hd]);
    if (stats) {
      const got = new Float32Array(this.x.memory.buffer, pstats, 2 * nQ);
      stats.max.set(got.subarray(0, nQ), stats.off);
      stats.inv.set(got.subarray(nQ), stats.off);
    }
    return true;
  }

  /**
   * Every head of a batch (assembly/kernels.ts attentionHeads): attn [batch·seq × heads·hd] from qkv
   * [batch·seq × (heads + 2·kvHeads)·hd] (RoPE applied), and per head t = b·heads + h its rows' max and 1/Σe
   * at stats[2·seq·t…] (see AttentionBatch). False when linear memory cannot hold them.
   */
  attentionBatch(a: AttentionBatch, qkv: Float32Array, attn: Float32Array, stats: Float32Array): boolean {
    const { rows, w3, q, tasks } = attentionSizes(a);
    const at = this.place([rows * w3, rows * q, 2 * a.seq * tasks, this.x.attentionScratchBytes(a.seq, a.hd) / 4]);
    if (!at) return false;
    const [pqkv, pattn, pstats, ps] = at;
    this.put([pqkv, qkv, rows * w3]);
    this.x.attentionHeads(0, tasks, a.seq, a.hd, a.heads, a.kvHeads, a.causal ? 1 : 0, a.scale, pqkv, pattn, pstats, ps, this.work);
    this.take([pattn, attn, rows * q], [pstats, stats, 2 * a.seq * tasks]);
    return true;
  }

  /**
   * attentionBatch's gradients (assembly/kernels.ts attentionGroupsBackward) from qkv, gAttn [batch·seq ×
   * heads·hd] and its statistics: gq (float32, like gAttn), gk and gv (float64, [batch·seq × kvHeads·hd]).
   */
  attentionBatchBackward(a: AttentionBatch, qkv: Float32Array, gAttn: Float32Array, stats: Float32Array, gq: Float32Array, gk: Float64Array, gv: Float64Array): boolean {
    const { rows, w3, q, kv, tasks } = attentionSizes(a);
    const at = this.place([rows * w3, rows * q, 2 * a.seq * tasks, rows * q, 2 * rows * kv, 2 * rows * kv, this.x.attentionScratchBytes(a.seq, a.hd) / 4]);
    if (!at) return false;
    const [pqkv, pga, pstats, pgq, pgk, pgv, ps] = at;
    this.put([pqkv, qkv, rows * w3], [pga, gAttn, rows * q], [pstats, stats, 2 * a.seq * tasks]);
    this.x.attentionGroupsBackward(0, a.batch * a.kvHeads, a.seq, a.hd, a.heads, a.kvHeads, a.causal ? 1 : 0, a.scale, pqkv, pga, pstats, pgq, pgk, pgv, ps, this.work);
    this.take([pgq, gq, rows * q]);
    const buf = this.x.memory.buffer;
    gk.set(new Float64Array(buf, pgk, rows * kv));
    gv.set(new Float64Array(buf, pgv, rows * kv));
    return true;
  }

  /**
   * LSTM forward over time-major rows (t·B + b), float32 (assembly/kernels.ts lstmForward): xT [S·B×nIn],
   * stacked W_ih [4H×nIn], W_hh [4H×H], bias [4H] in gate order i, f, g, o; fills gates (activations)
   * [S·B×4H], c and h [S·B×H]. False when linear memory cannot hold them.
   */
  lstmForward(S: number, B: number, nIn: number, H: number, xT: Float32Array, wIH: Float32Array, wHH: Float32Array, bias: Float32Array, gates: Float32Array, c: Float32Array, h: Float32Array): boolean {
    const rows = S * B;
    const G = 4 * H;
    const at = this.place([rows * nIn, G * nIn, G * H, G, rows * G, rows * H, rows * H, this.x.lstmScratchBytes(B, H) / 4]);
    if (!at) return false;
    const [px, pih, phh, pb, pg, pc, ph, ps] = at;
    this.put([px, xT, rows * nIn], [pih, wIH, G * nIn], [phh, wHH, G * H], [pb, bias, G]);
    this.x.lstmForward(S, B, nIn, H, px, pih, phh, pb, pg, pc, ph, this.work, ps);
    this.take([pg, gates, rows * G], [pc, c, rows * H], [ph, h, rows * H]);
    return true;
  }

  /**
   * LSTM backward through time (assembly/kernels.ts lstmBackward): from lstmForward's gates and c, the
   * output gradients gOut [S·B×H] (time-major) and W_hh, fills dG [S·B×4H], the gradients of the gate
   * pre-activations. False when linear memory cannot hold them.
   */
  lstmBackward(S: number, B: number, H: number, gates: Float32Array, c: Float32Array, gOut: Float32Array, wHH: Float32Array, dG: Float32Array): boolean {
    const rows = S * B;
    const G = 4 * H;
    const at = this.place([rows * G, rows * H, rows * H, G * H, rows * G, this.x.lstmScratchBytes(B, H) / 4]);
    if (!at) return false;
    const [pg, pc, po, phh, pd, ps] = at;
    this.put([pg, gates, rows * G], [pc, c, rows * H], [po, gOut, rows * H], [phh, wHH, G * H]);
    this.x.lstmBackward(S, B, H, pg, pc, po, phh, pd, ps);
    this.take([pd, dG, rows * G]);
    return true;
  }

  /**
   * C[M×N] = op(A)·op(B) (+ bias[N]); with `accumulate`, C += that result (one float32 add per element).
   * A is A[M×K] or, with layout.a = 'km', A[K×M]; B is B[N×K] (the A·Bᵀ case) or, with layout.b = 'kn', B[K×N].
   * Returns false, leaving C untouched, when linear memory cannot hold the operands (past 4 GiB or out of memory).
   */
  gemm(
    A: Float32Array,
    B: Float32Array,
    C: Float32Array,
    M: number,
    N: number,
    K: number,
    layout: GemmLayout = { a: 'mk', b: 'nk' },
    bias: Float32Array | null = null,
    accumulate = false,
  ): boolean {
    if (C.length < M * N) throw new RangeError(`gemm: C has ${C.length} values, needs ${M * N}`);
    const run = this.stage(A, B, M, N, K, layout, bias);
    if (!run) return false;
    run.run();
    run.readInto(C, accumulate);
    return true;
  }

  /**
   * Convolution forward of `batch` images [B][C][D][H][W] with weights [F][C·kD·kH·kW] (+ bias[F]) into
   * out [B][F][P], float32: Winograd F(4×4, 3×3) for 2D 3×3 stride-1 convolutions of 8 or more
   * channels, else a direct sum over the patch (assembly/kernels.ts convForward). Each sample's bits
   * depend only on the shapes and its own values, never on the batch or the thread split. With `relu`,
   * also writes relu(out) there, computed while each run's output is still in linear memory.
   * False when linear memory cannot hold the operands.
   */
  conv(input: Float32Array, g: ConvShape, batch: number, filters: number, w: Float32Array, bias: Float32Array | null, out: Float32Array, relu: Float32Array | null = null): boolean {
    const K = g.channels * g.kD * g.kH * g.kW;
    const P = g.outD * g.outH * g.outW;
    const image = g.channels * g.inD * g.inH * g.inW;
    // Runs of samples small enough that their input and output stay in cache between the copies and the kernel.
    const chunk = convChunk(batch, image, filters * P);
    const at = this.place([chunk * image, filters * K + filters, chunk * filters * P, K * P, relu ? chunk * filters * P : 0]);
    if (!at) return false;
    const [px, pw, pout, pcol, pact] = at;
    const buf = this.x.memory.buffer;
    const pb = pw + filters * K * 4;
    this.put([pw, w, filters * K]);
    if (bias) this.put([pb, bias, filters]);
    const shape = convArgs(g, filters);
    this.x.convPrepare(...shape, pw, this.work);
    const xin = new Float32Array(buf, px, chunk * image);
    const xout = new Float32Array(buf, pout, chunk * filters * P);
    for (let b0 = 0; b0 < batch; b0 += chunk) {
      const n = Math.min(chunk, batch - b0);
      xin.set(input.subarray(b0 * image, (b0 + n) * image));
      this.x.convRun(0, n, ...shape, px, pw, bias ? pb : 0, pout, this.work, pcol, b0 === 0 ? 1 : 0);
      out.set(n === chunk ? xout : xout.subarray(0, n * filters * P), b0 * filters * P);
      if (relu) reluOut(this.x, this.x.memory, pout, pact, n * filters * P, relu, b0 * filters * P);
    }
    return true;
  }

  /**
   * Convolution backward (assembly/kernels.ts convBackwardFilter / convBackwardData, float32): from the
   * input [B][C][D][H][W], the pre-activation gradient g [B][F][P] and the weights [F][K], writes
   * gradW [F][K] and, when gradIn is given, the input gradient. A stride-1 input gradient is the forward
   * convolution of g with the flipped weights (so Winograd serves it too). `grad` (below) can apply a
   * ReLU mask and write the bias gradient in linear memory. False when linear memory cannot hold the operands.
   */
  convBackward(input: Float32Array, g: ConvShape, batch: number, filters: number, w: Float32Array, gradPre: Float32Array, gradW: Float32Array, gradIn: Float32Array | null, grad: ConvGradientOptions = {}): boolean {
    const C = g.channels;
    const K = C * g.kD * g.kH * g.kW;
    const P = g.outD * g.outH * g.outW;
    const image = C * g.inD * g.inH * g.inW;
    const n = batch * filters * P;
    const { flip, back, colFloats } = backwardDataPlan(g, filters, this.x.convBackwardColFloats);
    const at = this.place([batch * image, n, filters * K, filters * K, filters * K, gradIn ? batch * image : 0, colFloats, grad.reluPre ? n : 0, filters]);
    if (!at) return false;
    const [px, pg, pw, pflip, pdw, pdx, pcol, ppre, pbias] = at;
    this.put([px, input, batch * image], [pw, w, filters * K]);
    stageGradient(this.x, this.x.memory, gradPre, n, pg, grad.reluPre ?? null, ppre);
    const shape = convArgs(g, filters);
    this.x.convBackwardFilter(0, filters, batch, ...shape, px, pg, pdw, this.work, pcol);
    if (gradIn) {
      if (flip) {
        this.x.convFlipWeights(C, filters, g.kD, g.kH, g.kW, pw, pflip);
        const backShape = convArgs(back, C);
        this.x.convPrepare(...backShape, pflip, this.work);
        this.x.convRun(0, batch, ...backShape, pg, pflip, 0, pdx, this.work, pcol, 1);
      } else {
        this.x.convBackwardData(0, batch, ...shape, pg, pw, pdx, this.work, pcol);
      }
    }
    if (grad.biasGrad) biasSums(this.x, this.x.memory, batch, filters, P, pg, pbias, grad.biasGrad);
    this.take([pdw, gradW, filters * K]);
    if (gradIn) this.take([pdx, gradIn, batch * image]);
    return true;
  }

  /**
   * An elementwise activation (gradOut null: out = f(pre)) or its gradient (out = gradOut · f'(pre)) over
   * all values, RELU_CHUNK at a time so each staged run stays in cache; returns how many values it wrote
   * (0 when memory cannot hold a chunk). ReLU's bits equal src/kernels/relu.ts; the others are
   * assembly/kernels.ts activationForward/Backward.
   */
  activation(kind: ElementwiseActivation, pre: Float32Array, gradOut: Float32Array | null, out: Float32Array): number {
    const n = pre.length;
    const chunk = Math.min(n, RELU_CHUNK);
    const at = this.place([chunk, chunk, chunk]);
    if (!at || n === 0) return 0;
    const [pp, pg, po] = at;
    const code = kind === 'relu' ? -1 : SMOOTH_ACTIVATIONS.indexOf(kind);
    for (let i = 0; i < n; i += chunk) {
      const len = Math.min(chunk, n - i);
      this.put([pp, pre.subarray(i), len]);
      if (gradOut) {
        this.put([pg, gradOut.subarray(i), len]);
        if (code < 0) this.x.reluBackward(len, pg, pp, po);
        else this.x.activationBackward(code, len, pg, pp, po);
      } else if (code < 0) {
        this.x.reluForward(len, pp, po);
      } else {
        this.x.activationForward(code, len, pp, po);
      }
      this.take([po, out.subarray(i), len]);
    }
    return n;
  }

  /**
   * SwiGLU's gate (assembly/kernels.ts swigluForward/swigluBackward) over rows of [gate | up], inter values
   * each: without gHidden, out [rows×inter] = gate(g)·u; with it, out [rows×2·inter] = the gradients of
   * gate and up. Staged a few rows at a time (about RELU_CHUNK values of gateUp). False when memory cannot grow.
   */
  swiglu(relu2: boolean, rows: number, inter: number, gateUp: Float32Array, gHidden: Float32Array | null, out: Float32Array): boolean {
    const chunk = Math.max(1, Math.min(rows, Math.floor(RELU_CHUNK / (2 * inter))));
    const at = this.place([2 * inter * chunk, inter * chunk, 2 * inter * chunk]);
    if (!at || rows === 0) return false;
    const [pgu, pgh, pout] = at;
    const width = gHidden ? 2 * inter : inter;
    for (let r = 0; r < rows; r += chunk) {
      const n = Math.min(chunk, rows - r);
      this.put([pgu, gateUp.subarray(2 * inter * r), 2 * inter * n]);
      if (gHidden) {
        this.put([pgh, gHidden.subarray(inter * r), inter * n]);
        this.x.swigluBackward(n, inter, relu2 ? 1 : 0, pgu, pgh, pout);
      } else {
        this.x.swigluForward(n, inter, relu2 ? 1 : 0, pgu, pout);
      }
      this.take([pout, out.subarray(width * r), width * n]);
    }
    return true;
  }

  /**
   * Softmax cross-entropy's gradient over a batch of `rows` rows of `classes` logits (assembly/kernels.ts
   * crossEntropyRows): grad = (softmax − onehot(label)) / rows, and stats[3r…3r+2] = the row's max,
   * Σ exp(z − max) and first arg max. Labels must be in range. Staged about CE_CHUNK values at a time
   * (whole rows); false when memory cannot hold one row.
   */
  crossEntropy(z: Float32Array, labels: Int32Array, rows: number, classes: number, grad: Float32Array, stats: Float64Array): boolean {
    const chunk = Math.max(1, Math.min(rows, Math.floor(CE_CHUNK / classes)));
    // 4 floats of slack after the rows (the kernel's tail loads), labels as int32, 3 float64 stats per row.
    const at = this.place([chunk * classes + 4, chunk, 6 * chunk]);
    if (!at) return false;
    const [pz, pl, ps] = at;
    for (let r = 0; r < rows; r += chunk) {
      const n = Math.min(chunk, rows - r);
      this.put([pz, z.subarray(r * classes), n * classes]);
      new Int32Array(this.x.memory.buffer, pl, n).set(labels.subarray(r, r + n));
      this.x.crossEntropyRows(n, classes, pz, pl, rows, ps);
      this.take([pz, grad.subarray(r * classes), n * classes]);
      stats.set(new Float64Array(this.x.memory.buffer, ps, 3 * n), 3 * r);
    }
    return true;
  }

  /** out[c] = Σ_r input[r][c] (float64 sums in ascending r, rounded once: gemm.ts sumRows's bits); false when memory cannot hold them. */
  sumRows(input: Float32Array, rows: number, cols: number, out: Float32Array): boolean {
    const at = this.place([rows * cols, 2 * cols, cols]);
    if (!at) return false;
    const [px, pacc, pout] = at;
    new Float32Array(this.x.memory.buffer, px, rows * cols).set(input.subarray(0, rows * cols));
    this.x.sumRowsF64(rows, cols, px, pacc, pout);
    out.set(new Float32Array(this.x.memory.buffer, pout, cols));
    return true;
  }

  /**
   * Whether the leading multiple of 4 values of `data` are all finite, checked RELU_CHUNK at a time;
   * null when memory cannot hold a chunk.
   */
  allFinite(data: Float32Array): boolean | null {
    const n = data.length & ~3;
    const chunk = Math.min(n, RELU_CHUNK);
    const at = this.place([chunk]);
    if (!at) return null;
    const view = new Float32Array(this.x.memory.buffer, at[0], chunk);
    for (let i = 0; i < n; i += chunk) {
      const len = Math.min(chunk, n - i);
      view.set(data.subarray(i, i + len));
      if (!this.x.allFinite(len, at[0])) return false;
    }
    return true;
  }

  /**
   * One optimizer update in place: w and the state buffers are copied in, `update` runs a kernel on
   * them (OptimizerUpdate) and they are copied back; false when memory cannot hold them.
   */
  optimizerUpdate(w: Float32Array, g: Float32Array, state: Float32Array[], update: OptimizerUpdate): boolean {
    const n = w.length;
    const at = this.place([n, n, ...state.map(() => n)]);
    if (!at) return false;
    const [pw, pg, ...ps] = at;
    this.put([pw, w, n], [pg, g, n], ...state.map((s, i): [number, Float32Array, number] => [ps[i], s, n]));
    update(this.x, n, pw, pg, ps);
    this.take([pw, w, n], ...state.map((s, i): [number, Float32Array, number] => [ps[i], s, n]));
    return true;
  }

  /**
   * Copies the operands into linear memory and returns the product as a callable that reuses them
   * (the benchmark times `run` alone to separate kernel time from copies). Valid until the next stage;
   * null when linear memory cannot hold the operands.
   */
  stage(A: Float32Array, B: Float32Array, M: number, N: number, K: number, layout: GemmLayout, bias: Float32Array | null): StagedGemm | null {
    for (const n of [M, N, K]) if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`gemm: bad sizes M=${M} N=${N} K=${K}`);
    if (A.length < M * K) throw new RangeError(`gemm: A has ${A.length} values, needs ${M * K}`);
    if (B.length < N * K) throw new RangeError(`gemm: B has ${B.length} values, needs ${N * K}`);
    if (bias && bias.length < N) throw new RangeError(`gemm: bias has ${bias.length} values, needs ${N}`);
    const offsets = this.layoutFor(M * K, N * K, M * N, bias ? N : 0);
    if (!offsets) return null;
    const [pa, pb, pc, pbias] = offsets;
    const buf = this.x.memory.buffer;
    new Float32Array(buf, pa, M * K).set(A.length === M * K ? A : A.subarray(0, M * K));
    new Float32Array(buf, pb, N * K).set(B.length === N * K ? B : B.subarray(0, N * K));
    if (bias) new Float32Array(buf, pbias, N).set(bias.length === N ? bias : bias.subarray(0, N));
    const x = this.x;
    const work = this.work;
    const aKM = layout.a === 'km' ? 1 : 0;
    const bKN = layout.b === 'kn' ? 1 : 0;
    return {
      run(): void {
        if (K === 0) {
          const out = new Float32Array(x.memory.buffer, pc, M * N);
          if (bias) for (let i = 0; i < M; i++) out.set(bias.subarray(0, N), i * N);
          else out.fill(0);
        } else {
          x.gemm(M, N, K, pa, aKM, pb, bKN, pc, bias ? pbias : 0, work);
        }
      },
      readInto(C: Float32Array, accumulate = false): void {
        if (C.length < M * N) throw new RangeError(`gemm: C has ${C.length} values, needs ${M * N}`);
        const out = new Float32Array(x.memory.buffer, pc, M * N);
        if (!accumulate) C.set(out);
        else for (let i = 0; i < out.length; i++) C[i] += out[i];
      },
    };
  }
}

/** Runs an optimizer kernel on n parameters at byte `w`, their gradient at `g` and the optimizer's state buffers at `state`. */
export type OptimizerUpdate = (x: OptimizerKernels, n: number, w: number, g: number, state: number[]) => void;

/** The optimizer kernels (assembly/kernels.ts adamw, sgd, rmsprop). */
export type OptimizerKernels = Pick<KernelExports, 'adamw' | 'sgd' | 'rmsprop'>;

/**
 * An optimizer's state for one parameter vector in a private instance's memory (sized once, never
 * grown, so the views stay valid): the parameters w, a gradient buffer g and `slots` state buffers
 * (AdamW's moments, SGD's momentum, RMSprop's averages), zeroed. When the parameters handed to
 * `update` are w itself (the optimizer moves a layer's master there, WeightStore.relocate) and the
 * gradient is g (a backward pass writes it there, BackwardOptions.gradientBuffers), an update copies
 * nothing; any other arrays are copied in (and w back out).
 */
export class WasmParamState {
  private readonly x: KernelExports;
  private readonly at: number[];
  readonly w: Float32Array;
  readonly g: Float32Array;
  readonly state: Float32Array[];

  constructor(module: WebAssembly.Module, readonly length: number, slots: number) {
    this.x = new WebAssembly.Instance(module, {}).exports as unknown as KernelExports;
    const base = align16(this.x.heapBase());
    const bytes = align16(length * 4);
    this.at = Array.from({ length: 2 + slots }, (_, i) => base + i * bytes);
    const end = base + this.at.length * bytes;
    if (end > MAX_BYTES) throw new RangeError(`optimizer state: ${length} parameters exceed linear memory`);
    const have = this.x.memory.buffer.byteLength;
    if (end > have) this.x.memory.grow(Math.ceil((end - have) / PAGE));
    const buf = this.x.memory.buffer;
    [this.w, this.g, ...this.state] = this.at.map((at) => new Float32Array(buf, at, length));
  }

  update(w: Float32Array, g: Float32Array, update: OptimizerUpdate): void {
    const [pw, pg, ...ps] = this.at;
    if (w !== this.w) this.w.set(w.subarray(0, this.length));
    if (g !== this.g) this.g.set(g.subarray(0, this.length));
    update(this.x, this.length, pw, pg, ps);
    if (w !== this.w) w.set(this.w);
  }
}

/** A product whose operands already sit in the module's memory. */
export interface StagedGemm {
  run(): void;
  readInto(C: Float32Array, accumulate?: boolean): void;
}

/** Compiles and instantiates the kernels synchronously from the module's bytes. */
export function wasmKernelsFromBytes(bytes: BufferSource): WasmKernels {
  return new WasmKernels(new WebAssembly.Module(bytes));
}

interface NodeFs {
  readFileSync(path: URL): Uint8Array<ArrayBuffer>;
}

function nodeFs(): NodeFs | null {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  return (proc?.getBuiltinModule?.('node:fs') as NodeFs | undefined) ?? null;
}

/** Node only: reads and instantiates the module synchronously; null when not in Node or the file is absent or invalid. */
export function loadWasmKernelsSync(url: URL = WASM_KERNELS_URL): WasmKernels | null {
  const fs = nodeFs();
  if (!fs || url.protocol !== 'file:') return null;
  try {
    return wasmKernelsFromBytes(fs.readFileSync(url));
  } catch {
    return null;
  }
}

/** Fetches (or, for file: URLs in Node, reads) and instantiates the module; rejects on failure. */
export async function loadWasmKernels(url: string | URL = WASM_KERNELS_URL): Promise<WasmKernels> {
  const u = typeof url === 'string' ? new URL(url, WASM_KERNELS_URL) : url;
  const fs = nodeFs();
  if (u.protocol === 'file:' && fs) return wasmKernelsFromBytes(fs.readFileSync(u));
  const response = await fetch(u);
  if (!response.ok) throw new Error(`loom kernels: ${u.href}: HTTP ${response.status}`);
  return new WasmKernels(await WebAssembly.compile(await response.arrayBuffer()));
}

/** relu[at + i] = max(v, 0) for the n float32 values v at byte `from` of `memory` (the bits of src/kernels/relu.ts), through scratch at byte `to`. */
export function reluOut(x: { reluForward(n: number, pre: number, out: number): void }, memory: WebAssembly.Memory, from: number, to: number, n: number, relu: Float32Array, at: number): void {
  x.reluForward(n, from, to);
  relu.set(new Float32Array(memory.buffer, to, n), at);
}

/** What a convolution backward may also do in linear memory, on the WebAssembly path. */
export interface ConvGradientOptions {
  /** The pre-activation of a ReLU layer: the gradient passed in is then the output gradient, masked there first (reluBackward's bits). */
  reluPre?: Float32Array | null;
  /** Receives the bias gradient: per filter, the sum over samples and positions (channelSums's bits). */
  biasGrad?: Float32Array | null;
}

interface GradientKernels {
  reluBackward(n: number, gradOut: number, pre: number, gradPre: number): void;
  channelSumsF64(B: number, F: number, P: number, g: number, out: number): void;
}

/** Copies n gradient values to byte `at` of `memory`; with `reluPre` (staged at `preAt`) they are an output gradient, masked in place. */
export function stageGradient(x: GradientKernels, memory: WebAssembly.Memory, grad: Float32Array, n: number, at: number, reluPre: Float32Array | null, preAt: number): void {
  const staged = new Float32Array(memory.buffer, at, n);
  staged.set(grad.subarray(0, n));
  if (!reluPre) return;
  new Float32Array(memory.buffer, preAt, n).set(reluPre.subarray(0, n));
  x.reluBackward(n, at, preAt, at);
}

/** out[f] = the sum of the gradient [B×F×P] at byte `at` over samples and positions, computed at byte `scratch`. */
export function biasSums(x: GradientKernels, memory: WebAssembly.Memory, B: number, F: number, P: number, at: number, scratch: number, out: Float32Array): void {
  x.channelSumsF64(B, F, P, at, scratch);
  out.set(new Float32Array(memory.buffer, scratch, F));
}
