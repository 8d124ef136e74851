/// <reference types="@webgpu/types" />
import { halfBitsToFloat32 } from '../core/dtype.js';
import { LoomError, ShapeError, UsageError } from '../core/errors.js';
import { Rng } from '../core/rng.js';
import type { VolumetricNetwork } from '../grid/network.js';
import { canQuantize, Q4_0_BLOCK, Q4_0_BLOCK_BYTES, quantizeMatrix, type QuantFormat } from '../kernels/quant.js';
import { Activation } from '../layers/activations.js';
import { DEFAULT_ROPE_FREQ_BASE, ropeDivisors, type RopeScaling } from '../layers/attention.js';
import { coordText, type Layer } from '../layers/layer.js';
import { sampleToken, type DeviceSession, type SamplingOptions } from '../llm/generate.js';
import { llamaLayers, type LlamaConfig } from '../llm/llama.js';
import { groups1d, GpuError, type GpuArray, type GpuContext, type PreparedDispatch } from './context.js';
import { gemm } from './kernels/gemm.js';
import {
  accumulateWgsl, ARGMAX_FINAL_WGSL, ARGMAX_PARTIAL_WGSL, ARGMAX_SPAN, ATTENTION_COMBINE_WGSL, ATTENTION_SPLIT, ATTENTION_SPLIT_WGSL, ATTENTION_WGSL, attentionUniformWords, checkDecodeShapes,
  embeddingGatherWgsl, gemvLanesFor, gemvUniformWords, gemvUnits, gemvWgsl, NORM_ROWS_WGSL, ROPE_APPEND_WGSL, swigluRowsWgsl,
  type GemvEpilogue, type GemvParams, type GpuWeightFormat,
} from './kernels/llm.js';
import { resolveGpu, type GpuOption } from './train.js';

export interface GpuLlamaOptions {
  /** true (default): navigator.gpu or Dawn; or a GpuContext to share (then not destroyed with the model). */
  gpu?: GpuOption;
  /** Most positions a sequence may reach (the KV caches are sized for it; default min(max_position_embeddings, 2048)). */
  maxSeq?: number;
  /**
   * Weight format on the GPU: 'float32', or 'int8' / 'q4_0' packed exactly as quantizeNetwork packs
   * them on the CPU and dequantized inside the shaders. Default: the network's packed format if it
   * was quantized, else float32.
   */
  dtype?: 'float32' | QuantFormat;
  /** Prompt rows per prefill pass (default 128; longer prompts run in several passes of one frame). */
  prefillChunk?: number;
  /** Prefill through tiled GEMMs (default for float32 matrices) or through the batched matrix-vector kernels. */
  prefill?: 'gemm' | 'gemv';
  /** Greedy tokens decoded ahead on the GPU before they are asked for (default 3; 0 turns it off). */
  runAhead?: number;
  /** Threads per output row in the matrix-vector kernels: a power of two from 16 to 256, or 'auto' (by row length; the default). */
  gemvLanes?: number | 'auto';
}

/** A weight matrix on the GPU in one of the shader formats. */
export interface GpuMatrix {
  format: GpuWeightFormat;
  rows: number;
  cols: number;
  data: GpuArray;
  scales: GpuArray | null;
}

interface GpuBlock {
  qkv: GpuMatrix;
  o: GpuMatrix;
  gateUp: GpuMatrix;
  down: GpuMatrix;
  /** Input gain, post-attention gain, QKV bias, O bias, gate/up bias, down bias (4-aligned offsets in VEC). */
  vec: GpuArray;
  /** [2][kvHeads][maxSeq][headDim]: keys (after RoPE), then values. */
  kv: GpuArray;
  attentionAct: Activation;
  gateAct: Activation;
}

const align4 = (n: number) => Math.ceil(n / 4) * 4;

/** The float32 parameters of a layer: its active dtype's values, or what its packed copy decodes to. */
function floatParams(layer: Layer): Float32Array {
  if (layer.weights) return layer.weights.getActive(layer.dtype);
  const packed = layer.packed;
  if (!packed) throw new LoomError(`${layer.kind.name} at ${coordText(layer)} has no weights`);
  const out = new Float32Array(packed.count);
  let at = 0;
  const matrices = [...(layer.kind.matrices?.(layer) ?? [])].sort((a, b) => a.offset - b.offset);
  for (const m of matrices) {
    if (m.offset > at) out.set(packed.vector(at, m.offset - at), at);
    for (let r = 0; r < m.rows; r++) packed.matrixRow(m.offset, m.rows, m.cols, r, out, m.offset + r * m.cols);
    at = m.offset + m.rows * m.cols;
  }
  if (at < out.length) out.set(packed.vector(at, out.length - at), at);
  return out;
}

/** Uploads a rows×cols matrix in `format` (float32 where the format cannot pack it, as on the CPU). */
export function uploadGpuMatrix(ctx: GpuContext, values: Float32Array, rows: number, cols: number, format: 'float32' | QuantFormat): GpuMatrix {
  if (format === 'float32' || !canQuantize(format, cols)) return { format: 'f32', rows, cols, data: ctx.upload(values), scales: null };
  const q = quantizeMatrix(format, values, rows, cols);
  if (format === 'int8') {
    const words = new Uint32Array(q.data.buffer.slice(q.data.byteOffset, q.data.byteOffset + q.data.byteLength));
    return { format: 'int8', rows, cols, data: ctx.upload(words), scales: ctx.upload(q.scales!) };
  }
  const blocks = (rows * cols) / Q4_0_BLOCK;
  const words = new Uint32Array(blocks * 4);
  const scales = new Float32Array(blocks);
  const view = new DataView(q.data.buffer, q.data.byteOffset, q.data.byteLength);
  for (let b = 0; b < blocks; b++) {
    const o = b * Q4_0_BLOCK_BYTES;
    scales[b] = halfBitsToFloat32(view.getUint16(o, true));
    for (let w = 0; w < 4; w++) words[b * 4 + w] = view.getUint32(o + 2 + 4 * w, true);
  }
  return { format: 'q4_0', rows, cols, data: ctx.upload(words), scales: ctx.upload(scales) };
}

function ropeScalingOf(c: Layer['config']): RopeScaling | undefined {
  if (!c.ropeScaling) return undefined;
  if (c.ropeScaling === 'linear') return { type: 'linear', factor: c.ropeScalingFactor! };
  return {
    type: 'llama3', factor: c.ropeScalingFactor!, lowFreqFactor: c.ropeLowFreqFactor!,
    highFreqFactor: c.ropeHighFreqFactor!, originalMaxPositions: c.ropeOriginalMaxPositions!,
  };
}

/**
 * A Llama-family decoder (the grid llamaNetworkSpec builds) resident on the GPU: weights uploaded
 * once (float32, or int8 / Q4_0 dequantized in the shaders), a KV cache per layer appended in
 * place, and each decoded token recorded into one command encoder — embedding gather, per layer
 * the fused RMSNorm + QKV matrix-vector product with RoPE and the KV append, attention over the
 * cache, the O projection added into the residual stream, RMSNorm + gate/up with SwiGLU, the down
 * projection added into the stream, then the final norm + LM head and a two-stage argmax — submitted
 * once, with a 4-byte readback of the token id. Prompts prefill through tiled GEMMs.
 *
 * Greedy decoding runs ahead: the argmax leaves the token id on the GPU where the next step's
 * embedding gather reads it, so the next steps are submitted before the current token is read back
 * (steps nobody asks for are dropped: the cache length rolls back). Sampling with a temperature or a
 * repetition penalty reads the last position's logits back and samples on the CPU (sampleToken).
 */
export class GpuLlama implements DeviceSession {
  readonly maxSeq: number;
  private filled = 0;
  private submitted = 0;
  private readonly ahead: Promise<number>[] = [];
  private aheadInput = -1;
  private readonly held: GpuArray[] = [];
  private readonly d: number;
  private readonly heads: number;
  private readonly kvHeads: number;
  private readonly headDim: number;
  private readonly inter: number;
  private readonly vocab: number;
  private readonly eps: number;
  private readonly chunk: number;
  private readonly runAhead: number;
  private readonly prefillMode: 'gemm' | 'gemv';
  private readonly gemvLanes: number | 'auto';
  private readonly embedding: GpuMatrix;
  private readonly lmHead: GpuMatrix;
  private readonly embeddingAct: Activation;
  private readonly lmHeadAct: Activation;
  /** Final-norm gain at 0, LM-head bias at align4(d). */
  private readonly headVec: GpuArray;
  private readonly blocks: GpuBlock[];
  private readonly buf: Record<'x' | 'h' | 'qkv' | 'q' | 'attn' | 'tmp' | 'gu' | 'hidden' | 'logits' | 'part' | 'tokens' | 'rope' | 'attnPart' | 'attnAcc', GpuArray>;
  private readonly step: GPUBuffer;
  private readonly decodeBody: PreparedDispatch[];
  /** The same with split-K attention, for positions past the first 256 keys (null when maxSeq ≤ 256). */
  private readonly decodeBodyLong: PreparedDispatch[] | null;
  private readonly decodeArgmax: PreparedDispatch[];
  private destroyed = false;
  /** Bytes of weights on the GPU (matrices in their format and scales; vectors and KV caches not counted). */
  residentBytes = 0;

  private constructor(
    readonly ctx: GpuContext,
    private readonly ownsContext: boolean,
    net: VolumetricNetwork,
    readonly config: LlamaConfig,
    options: GpuLlamaOptions,
  ) {
    const layers = llamaLayers(net, config);
    const first = layers.blocks[0]?.attention.config ?? {};
    this.d = config.hiddenSize;
    this.heads = first.numHeads ?? config.numHeads;
    this.kvHeads = first.numKVHeads ?? config.numKVHeads;
    this.headDim = first.headDim ?? config.headDim;
    this.inter = config.intermediateSize;
    this.vocab = config.vocabSize;
    this.eps = config.rmsNormEps;
    this.maxSeq = options.maxSeq ?? Math.min(config.maxPositionEmbeddings ?? 2048, 2048);
    this.chunk = options.prefillChunk ?? 128;
    this.runAhead = options.runAhead ?? 3;
    this.prefillMode = options.prefill ?? 'gemm';
    this.gemvLanes = options.gemvLanes ?? 'auto';
    if (!Number.isInteger(this.maxSeq) || this.maxSeq <= 0) throw new UsageError(`GpuLlama: maxSeq must be a positive integer, got ${this.maxSeq}`);
    if (!Number.isInteger(this.chunk) || this.chunk <= 0) throw new UsageError(`GpuLlama: prefillChunk must be a positive integer, got ${this.chunk}`);
    const q = this.heads * this.headDim;
    const kv = this.kvHeads * this.headDim;
    const w3 = q + 2 * kv;
    checkDecodeShapes('GpuLlama', { hidden_size: this.d, intermediate_size: this.inter, 'num_heads × head_dim': q, head_dim: this.headDim }, this.headDim);
    const packedFormat = [...net.allLayers()].find((l) => l.packed)?.packed?.format as QuantFormat | undefined;
    const format = options.dtype ?? packedFormat ?? 'float32';
    const keep = (a: GpuArray) => (this.held.push(a), a);
    const keepMatrix = (m: GpuMatrix) => {
      keep(m.data);
      if (m.scales) keep(m.scales);
      this.residentBytes += 4 * (m.data.length + (m.scales?.length ?? 0));
      return m;
    };

    // Shapes first, so that nothing is uploaded for a network that cannot run.
    for (const b of layers.blocks) {
      for (const [layer, kind] of [[b.attention, 'MultiHeadAttention'], [b.mlp, 'SwiGLU'], [b.inputNorm, 'RMSNorm'], [b.postNorm, 'RMSNorm']] as const) {
        if (layer.kind.name !== kind) throw new LoomError(`GpuLlama: expected ${kind} at ${coordText(layer)}, found ${layer.kind.name}`);
      }
      const c = b.attention.config;
      if (c.numHeads !== this.heads || (c.numKVHeads ?? this.heads) !== this.kvHeads || c.headDim !== this.headDim || c.dModel !== this.d || c.causal !== true) {
        throw new LoomError(`GpuLlama: attention at ${coordText(b.attention)} differs from the first layer's shape (or is not causal)`);
      }
      if (b.mlp.config.outputHeight !== this.inter) throw new LoomError(`GpuLlama: SwiGLU at ${coordText(b.mlp)} has intermediate size ${b.mlp.config.outputHeight}, config says ${this.inter}`);
    }
    const head = layers.lmHead;
    if (head.kind.name !== 'Dense' || head.config.inputHeight !== this.d || head.config.outputHeight !== this.vocab) {
      throw new LoomError(`GpuLlama: expected the LM head at ${coordText(head)} to be a Dense ${this.d} → ${this.vocab}`);
    }
    const embedValues = floatParams(layers.embedding);
    this.embedding = keepMatrix(uploadGpuMatrix(ctx, embedValues, this.vocab, this.d, format));
    this.embeddingAct = layers.embedding.activation;
    const tied = (head.weights && head.weights === layers.embedding.weights) || (head.packed && head.packed === layers.embedding.packed);
    const headValues = tied ? embedValues : floatParams(head);
    this.lmHead = tied ? this.embedding : keepMatrix(uploadGpuMatrix(ctx, headValues.subarray(0, this.vocab * this.d), this.vocab, this.d, format));
    this.lmHeadAct = head.activation;
    const headVec = new Float32Array(align4(this.d) + align4(this.vocab));
    headVec.set(floatParams(layers.finalNorm).subarray(0, this.d), 0);
    if (head.config.useBias && !tied) headVec.set(headValues.subarray(this.vocab * this.d, this.vocab * this.d + this.vocab), align4(this.d));
    this.headVec = keep(ctx.upload(headVec));

    const vo = this.vecOffsets();
    this.blocks = layers.blocks.map((b) => {
      const a = floatParams(b.attention);
      const m = floatParams(b.mlp);
      const wo = w3 * this.d;
      const bq = wo + this.d * q;
      const n = this.inter * this.d;
      const vec = new Float32Array(vo.end);
      vec.set(floatParams(b.inputNorm).subarray(0, this.d), vo.gIn);
      vec.set(floatParams(b.postNorm).subarray(0, this.d), vo.gPost);
      vec.set(a.subarray(bq, bq + w3), vo.bqkv);
      vec.set(a.subarray(bq + w3, bq + w3 + this.d), vo.bo);
      vec.set(m.subarray(3 * n, 3 * n + 2 * this.inter), vo.bgu);
      vec.set(m.subarray(3 * n + 2 * this.inter, 3 * n + 2 * this.inter + this.d), vo.bdown);
      return {
        qkv: keepMatrix(uploadGpuMatrix(ctx, a.subarray(0, wo), w3, this.d, format)),
        o: keepMatrix(uploadGpuMatrix(ctx, a.subarray(wo, bq), this.d, q, format)),
        gateUp: keepMatrix(uploadGpuMatrix(ctx, m.subarray(0, 2 * n), 2 * this.inter, this.d, format)),
        down: keepMatrix(uploadGpuMatrix(ctx, m.subarray(2 * n, 3 * n), this.d, this.inter, format)),
        vec: keep(ctx.upload(vec)),
        kv: keep(ctx.alloc(2 * kv * this.maxSeq)),
        attentionAct: b.attention.activation,
        gateAct: b.mlp.activation === Activation.ReLU2 ? Activation.ReLU2 : Activation.Silu,
      };
    });

    const rows = this.chunk;
    const alloc = (n: number) => keep(ctx.alloc(n));
    this.buf = {
      x: alloc(rows * this.d), h: alloc(rows * this.d), qkv: alloc(rows * w3), q: alloc(rows * q), attn: alloc(rows * q),
      tmp: alloc(rows * this.d), gu: alloc(rows * 2 * this.inter), hidden: alloc(rows * this.inter), logits: alloc(this.vocab),
      part: alloc(2 * Math.ceil(this.vocab / ARGMAX_SPAN)), tokens: alloc(this.maxSeq), rope: keep(ctx.upload(this.ropeTable(layers.blocks[0]?.attention))),
      attnPart: alloc(2 * this.heads * Math.ceil(this.maxSeq / ATTENTION_SPLIT)), attnAcc: alloc(q * Math.ceil(this.maxSeq / ATTENTION_SPLIT)),
    };
    this.step = ctx.mutableUniform(4);
    const plan = this.recordDecode(false);
    this.decodeBody = plan.body;
    this.decodeArgmax = plan.argmax;
    this.decodeBodyLong = this.maxSeq > ATTENTION_SPLIT ? this.recordDecode(true).body : null;
  }

  /**
   * Uploads `net` (a Llama-family grid: llamaNetworkSpec / importLlama) to the GPU. Throws
   * GpuUnavailableError without an adapter (callers fall back to the CPU).
   */
  static async create(net: VolumetricNetwork, config: LlamaConfig, options: GpuLlamaOptions = {}): Promise<GpuLlama> {
    const { ctx, owned } = await resolveGpu(options.gpu ?? true);
    try {
      return new GpuLlama(ctx, owned, net, config, options);
    } catch (e) {
      if (owned) ctx.destroy();
      throw e;
    }
  }

  /** Positions the cache holds. */
  get length(): number {
    return this.filled;
  }

  /** Forgets the sequence. */
  reset(): void {
    this.dropAhead();
    this.filled = 0;
    this.submitted = 0;
  }

  /** Runs the next positions `ids` and returns the greedy next token (argmax on the GPU). */
  async argmax(ids: readonly number[]): Promise<number> {
    return this.next(ids, [], {}, new Rng(0), 0);
  }

  /** Runs the next positions `ids` and returns the last position's logits. */
  async logits(ids: readonly number[]): Promise<Float32Array> {
    this.dropAhead();
    this.check(ids);
    const result = this.submit(ids, 'logits');
    this.filled += ids.length;
    return result as Promise<Float32Array>;
  }

  async next(ids: readonly number[], context: readonly number[], options: SamplingOptions, rng: Rng, lookahead: number): Promise<number> {
    const { temperature = 0, repetitionPenalty = 1, repetitionWindow = 64 } = options;
    const onGpu = temperature === 0 && (repetitionPenalty === 1 || repetitionWindow === 0);
    if (!onGpu) {
      const logits = await this.logits(ids);
      return sampleToken(logits, context, options, rng);
    }
    let pending: Promise<number>;
    if (this.ahead.length > 0 && ids.length === 1 && ids[0] === this.aheadInput) {
      pending = this.ahead.shift()!;
    } else {
      this.dropAhead();
      this.check(ids);
      pending = this.submit(ids, 'argmax') as Promise<number>;
    }
    this.filled += ids.length;
    while (this.ahead.length < Math.min(this.runAhead, lookahead) && this.submitted < this.maxSeq) {
      this.ahead.push(this.submit(null, 'argmax') as Promise<number>);
    }
    const token = await pending;
    this.aheadInput = token;
    return token;
  }

  /** Frees the GPU buffers (and the context when the model created it). */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.dropAhead();
    if (this.ownsContext) {
      this.ctx.destroy();
      return;
    }
    for (const a of this.held) this.ctx.release(a);
    this.held.length = 0;
  }

  /** Dispatches recorded per decoded token (for benchmarks and tests). */
  get dispatchesPerToken(): number {
    return this.decodeBody.length + this.decodeArgmax.length;
  }

  private check(ids: readonly number[]): void {
    if (this.destroyed) throw new GpuError('GpuLlama: the model was destroyed');
    if (ids.length === 0) throw new UsageError('GpuLlama: nothing to run (no token ids)');
    if (this.filled + ids.length > this.maxSeq) {
      throw new ShapeError(`GpuLlama: the sequence would reach ${this.filled + ids.length} positions, more than maxSeq = ${this.maxSeq}`);
    }
    ids.forEach((id, p) => {
      if (!(Number.isInteger(id) && id >= 0 && id < this.vocab)) throw new ShapeError(`GpuLlama: token id ${id} at position ${p} is outside the vocabulary of ${this.vocab}`);
    });
  }

  private dropAhead(): void {
    this.ahead.length = 0;
    this.submitted = this.filled;
  }

  /**
   * Records and submits the forward pass of `ids` (null: one position whose id the previous step's
   * argmax left on the GPU) at the next free position, then the readback of the next token or of the
   * logits. Returns before the GPU runs it.
   */
  private submit(ids: readonly number[] | null, want: 'argmax' | 'logits'): Promise<number | Float32Array> {
    const ctx = this.ctx;
    const start = this.submitted;
    const n = ids ? ids.length : 1;
    if (ids) ctx.write(this.buf.tokens, Uint32Array.from(ids), 0);
    if (n === 1) {
      ctx.device.queue.writeBuffer(this.step, 0, Uint32Array.of(start, 1, 0, 0));
      ctx.replay(start + 1 > ATTENTION_SPLIT && this.decodeBodyLong ? this.decodeBodyLong : this.decodeBody);
    } else {
      this.recordPrefill(ids!, start);
    }
    this.submitted = start + n;
    let result: Promise<number | Float32Array>;
    if (want === 'argmax') {
      ctx.replay(this.decodeArgmax);
      result = ctx.readU32(this.buf.tokens, 1).then((a) => a[0]);
    } else {
      result = ctx.read(this.buf.logits, this.vocab);
    }
    // Dropped run-ahead steps are never awaited; their failures surface on the next awaited one.
    result.catch(() => undefined);
    return result;
  }

  private vecOffsets() {
    const q = this.heads * this.headDim;
    const w3 = q + 2 * this.kvHeads * this.headDim;
    const gIn = 0;
    const gPost = align4(this.d);
    const bqkv = gPost + align4(this.d);
    const bo = bqkv + align4(w3);
    const bgu = bo + align4(this.d);
    const bdown = bgu + align4(2 * this.inter);
    return { gIn, gPost, bqkv, bo, bgu, bdown, end: bdown + align4(this.d) };
  }

  /** cos, sin of pos / divisor[i] in float64, rounded to float32: [maxSeq][head_dim/2][2]. RoPE off: the identity. */
  private ropeTable(attention: Layer | undefined): Float32Array {
    const half = this.headDim / 2;
    const t = new Float32Array(this.maxSeq * half * 2);
    const base = attention?.config.ropeFreqBase ?? DEFAULT_ROPE_FREQ_BASE;
    if (!(base > 0)) {
      for (let i = 0; i < t.length; i += 2) t[i] = 1;
      return t;
    }
    const divisors = ropeDivisors(this.headDim, base, ropeScalingOf(attention!.config));
    for (let p = 0; p < this.maxSeq; p++) {
      for (let i = 0; i < half; i++) {
        const angle = p / divisors[i];
        t[(p * half + i) * 2] = Math.cos(angle);
        t[(p * half + i) * 2 + 1] = Math.sin(angle);
      }
    }
    return t;
  }

  private lanes(m: GpuMatrix): number {
    return this.gemvLanes === 'auto' ? gemvLanesFor(m.cols) : this.gemvLanes;
  }

  private gemvParams(m: GpuMatrix, units: number, extra: Partial<GemvParams>): GemvParams {
    return { units, k: m.cols, xOff: 0, xStride: m.cols, outOff: 0, outStride: units, biasOff: 0, gainOff: 0, eps: this.eps, ...extra };
  }

  /** The bindings of a gemv dispatch, in the order gemvWgsl declares them. */
  private gemvBindings(epilogue: GemvEpilogue, params: GemvParams, step: GPUBuffer | null, x: GpuArray, m: GpuMatrix, vec: GpuArray, outs: GpuArray[]): (GPUBuffer | GpuArray)[] {
    const u = gemvUniformWords(params);
    const list: (GPUBuffer | GpuArray)[] = [this.ctx.uniform(u.values, u.floats)];
    if (epilogue === 'rope') list.push(step!);
    list.push(x, m.data);
    if (m.scales) list.push(m.scales);
    list.push(vec);
    if (epilogue === 'rope') list.push(this.buf.rope);
    list.push(...outs);
    return list;
  }

  private ropeParams(): Partial<GemvParams> {
    return { heads: this.heads, kvHeads: this.kvHeads, headDim: this.headDim, maxSeq: this.maxSeq, qStride: this.heads * this.headDim };
  }

  /**
   * The per-layer work of `rows` positions as matrix-vector kernels: emitted through `emit` (prepared
   * once for decoding, dispatched directly for a gemv prefill).
   */
  private gemvLayer(
    b: GpuBlock, step: GPUBuffer, rows: number, emit: (code: string, bindings: (GPUBuffer | GpuArray)[], groups: [number, number]) => void, only?: Set<string>, splitAttention = false,
  ): void {
    const vo = this.vecOffsets();
    const q = this.heads * this.headDim;
    const w3 = b.qkv.rows;
    const units = (m: GpuMatrix, n: number): [number, number] => [Math.ceil(n / gemvUnits(this.lanes(m))), rows];
    const want = (part: string) => !only || only.has(part);
    if (want('qkv')) {
      const p = this.gemvParams(b.qkv, w3 / 2, { biasOff: vo.bqkv, gainOff: vo.gIn, xStride: this.d, ...this.ropeParams() });
      emit(gemvWgsl({ format: b.qkv.format, norm: true, epilogue: 'rope', act: Activation.Linear, lanes: this.lanes(b.qkv) }), this.gemvBindings('rope', p, step, this.buf.x, b.qkv, b.vec, [this.buf.q, b.kv]), units(b.qkv, w3 / 2));
    }
    if (want('attention')) this.attention(b, step, rows, emit, splitAttention);
    if (want('o')) {
      const p = this.gemvParams(b.o, this.d, { biasOff: vo.bo, xStride: q, outStride: this.d });
      emit(gemvWgsl({ format: b.o.format, norm: false, epilogue: 'accumulate', act: b.attentionAct, lanes: this.lanes(b.o) }), this.gemvBindings('accumulate', p, null, this.buf.attn, b.o, b.vec, [this.buf.x]), units(b.o, this.d));
    }
    if (want('gateUp')) {
      const p = this.gemvParams(b.gateUp, this.inter, { biasOff: vo.bgu, gainOff: vo.gPost, pairOff: this.inter, xStride: this.d, outStride: this.inter });
      emit(gemvWgsl({ format: b.gateUp.format, norm: true, epilogue: 'swiglu', act: b.gateAct, lanes: this.lanes(b.gateUp) }), this.gemvBindings('swiglu', p, null, this.buf.x, b.gateUp, b.vec, [this.buf.hidden]), units(b.gateUp, this.inter));
    }
    if (want('down')) {
      const p = this.gemvParams(b.down, this.d, { biasOff: vo.bdown, xStride: this.inter, outStride: this.d });
      emit(gemvWgsl({ format: b.down.format, norm: false, epilogue: 'accumulate', act: Activation.Linear, lanes: this.lanes(b.down) }), this.gemvBindings('accumulate', p, null, this.buf.hidden, b.down, b.vec, [this.buf.x]), units(b.down, this.d));
    }
  }

  /** Attention of `rows` query rows; `split`: one row over many keys, split-K in chunks of 256 keys then combined. */
  private attention(b: GpuBlock, step: GPUBuffer, rows: number, emit: (code: string, bindings: (GPUBuffer | GpuArray)[], groups: [number, number]) => void, split = false): void {
    const u = attentionUniformWords(this.heads, this.kvHeads, this.headDim, this.maxSeq, this.heads * this.headDim);
    const uniform = this.ctx.uniform(u.values, u.floats);
    if (!split) {
      emit(ATTENTION_WGSL, [uniform, step, this.buf.q, b.kv, this.buf.attn], [this.heads, rows]);
      return;
    }
    emit(ATTENTION_SPLIT_WGSL, [uniform, step, this.buf.q, b.kv, this.buf.attnPart, this.buf.attnAcc], [this.heads, Math.ceil(this.maxSeq / ATTENTION_SPLIT)]);
    emit(ATTENTION_COMBINE_WGSL, [uniform, step, this.buf.attnPart, this.buf.attnAcc, this.buf.attn], [this.heads, 1]);
  }

  /** Embedding rows for the ids at tokens[tokOff..tokOff + rows). */
  private embed(rows: number, tokOff: number, emit: (code: string, bindings: (GPUBuffer | GpuArray)[], groups: [number, number]) => void): void {
    const e = this.embedding;
    const bindings: (GPUBuffer | GpuArray)[] = [this.ctx.uniform([rows * this.d, this.d, tokOff, 0]), this.buf.tokens, e.data];
    if (e.scales) bindings.push(e.scales);
    bindings.push(this.buf.x);
    emit(embeddingGatherWgsl(e.format, this.embeddingAct), bindings, groups1d(rows * this.d));
  }

  /** Final RMSNorm + LM head on row `row` of the stream into the logits. */
  private head(row: number, emit: (code: string, bindings: (GPUBuffer | GpuArray)[], groups: [number, number]) => void): void {
    const m = this.lmHead;
    const p = this.gemvParams(m, this.vocab, { xOff: row * this.d, biasOff: align4(this.d), gainOff: 0 });
    const lanes = this.lanes(m);
    emit(gemvWgsl({ format: m.format, norm: true, epilogue: 'store', act: this.lmHeadAct, lanes }), this.gemvBindings('store', p, null, this.buf.x, m, this.headVec, [this.buf.logits]), [Math.ceil(this.vocab / gemvUnits(lanes)), 1]);
  }

  private argmaxDispatches(emit: (code: string, bindings: (GPUBuffer | GpuArray)[], groups: [number, number]) => void): void {
    const parts = Math.ceil(this.vocab / ARGMAX_SPAN);
    emit(ARGMAX_PARTIAL_WGSL, [this.ctx.uniform([this.vocab, 0, 0, 0]), this.buf.logits, this.buf.part], [parts, 1]);
    emit(ARGMAX_FINAL_WGSL, [this.ctx.uniform([parts, 0, 0, 0]), this.buf.part, this.buf.tokens], [1, 1]);
  }

  /** One decoded token as prepared dispatches: the same every step (the position is in the step uniform). */
  private recordDecode(splitAttention: boolean): { body: PreparedDispatch[]; argmax: PreparedDispatch[] } {
    const body: PreparedDispatch[] = [];
    const argmax: PreparedDispatch[] = [];
    const into = (list: PreparedDispatch[]) => (code: string, bindings: (GPUBuffer | GpuArray)[], groups: [number, number]) => list.push(this.ctx.prepare(code, bindings, groups));
    this.embed(1, 0, into(body));
    for (const b of this.blocks) this.gemvLayer(b, this.step, 1, into(body), undefined, splitAttention);
    this.head(0, into(body));
    this.argmaxDispatches(into(argmax));
    return { body, argmax };
  }

  /** Records the prefill of `ids` at `start` in passes of `chunk` rows, into the open frame. */
  private recordPrefill(ids: readonly number[], start: number): void {
    const ctx = this.ctx;
    const emit = (code: string, bindings: (GPUBuffer | GpuArray)[], groups: [number, number]) => ctx.dispatch(code, bindings, groups);
    let lastRows = 0;
    for (let from = 0; from < ids.length; from += this.chunk) {
      const rows = Math.min(this.chunk, ids.length - from);
      const step = ctx.uniform([start + from, rows, 0, 0]);
      this.embed(rows, from, emit);
      for (const b of this.blocks) this.prefillLayer(b, step, rows, emit);
      lastRows = rows;
    }
    this.head(lastRows - 1, emit);
  }

  private prefillLayer(b: GpuBlock, step: GPUBuffer, rows: number, emit: (code: string, bindings: (GPUBuffer | GpuArray)[], groups: [number, number]) => void): void {
    const useGemm = (m: GpuMatrix) => this.prefillMode === 'gemm' && m.format === 'f32';
    const ctx = this.ctx;
    const vo = this.vecOffsets();
    const q = this.heads * this.headDim;
    const w3 = b.qkv.rows;
    const gemv = (part: string) => this.gemvLayer(b, step, rows, emit, new Set([part]));
    const norm = (gainOff: number) => emit(NORM_ROWS_WGSL, [ctx.uniform([this.d, gainOff, this.eps, 0], [false, false, true, false]), this.buf.x, b.vec, this.buf.h], [rows, 1]);
    const accumulate = (act: Activation, n: number) => emit(accumulateWgsl(act), [ctx.uniform([n]), this.buf.tmp, this.buf.x], groups1d(n));
    if (useGemm(b.qkv)) {
      norm(vo.gIn);
      gemm(ctx, this.buf.h, b.qkv.data, this.buf.qkv, { M: rows, N: w3, K: this.d, transB: true, bias: b.vec, offBias: vo.bqkv });
      const u = gemvUniformWords({ units: w3 / 2, k: this.d, xOff: 0, xStride: w3, outOff: 0, outStride: 0, biasOff: 0, gainOff: 0, ...this.ropeParams() });
      emit(ROPE_APPEND_WGSL, [ctx.uniform(u.values, u.floats), step, this.buf.qkv, this.buf.rope, this.buf.q, b.kv], groups1d((rows * w3) / 2));
    } else gemv('qkv');
    this.attention(b, step, rows, emit);
    if (useGemm(b.o)) {
      gemm(ctx, this.buf.attn, b.o.data, this.buf.tmp, { M: rows, N: this.d, K: q, transB: true, bias: b.vec, offBias: vo.bo });
      accumulate(b.attentionAct, rows * this.d);
    } else gemv('o');
    if (useGemm(b.gateUp)) {
      norm(vo.gPost);
      gemm(ctx, this.buf.h, b.gateUp.data, this.buf.gu, { M: rows, N: 2 * this.inter, K: this.d, transB: true, bias: b.vec, offBias: vo.bgu });
      emit(swigluRowsWgsl(b.gateAct), [ctx.uniform([rows * this.inter, this.inter]), this.buf.gu, this.buf.hidden], groups1d(rows * this.inter));
    } else gemv('gateUp');
    if (useGemm(b.down)) {
      gemm(ctx, this.buf.hidden, b.down.data, this.buf.tmp, { M: rows, N: this.d, K: this.inter, transB: true, bias: b.vec, offBias: vo.bdown });
      accumulate(Activation.Linear, rows * this.d);
    } else gemv('down');
  }
}
