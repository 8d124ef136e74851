/// <reference types="@webgpu/types" />
import { UsageError } from '../../core/errors.js';
import type { VolumetricNetwork } from '../../grid/network.js';
import { ropeDivisors } from '../../layers/attention.js';
import type { Layer } from '../../layers/layer.js';
import { Activation } from '../../layers/activations.js';
import type { Rng } from '../../core/rng.js';
import { sampleToken, type DeviceSession, type SamplingOptions } from '../../llm/generate.js';
import { llamaLayers, type LlamaConfig } from '../../llm/llama.js';
import { GpuError, groups1d, type GpuArray, type GpuContext } from '../context.js';
import { registerShaders } from '../kernels/index.js';
import { ADVANCE_WGSL, ARGMAX_WGSL, ATTENTION_WORKGROUP_BYTES, attentionWgsl, decodeShaders, EMBED_WGSL, GEMV_ROWS, gemvWgsl, type GemvVariant } from './kernels.js';

registerShaders(decodeShaders);

const MAP_READ = 0x01;
const READBACK = 0x01 | 0x08; // MAP_READ | COPY_DST
/** Readback buffers while decoding greedily: the GPU chains tokens itself, the CPU reads each token while later steps run. */
const READBACK_RING = 3;

export interface GpuLlamaDecoderOptions {
  /** Most positions the sequence may reach (KV caches and the RoPE table are sized for it). */
  maxSeq: number;
  /**
   * Steps submitted ahead of the token being read back while decoding greedily (default 2; 1: each
   * token's readback completes before the next step is submitted).
   */
  lookahead?: number;
}

interface Dispatch {
  pipeline: GPUComputePipeline;
  group: GPUBindGroup;
  workgroups: [number, number];
}

/**
 * Greedy Llama-family decoding resident on the GPU: float32 weights uploaded once, KV caches per
 * layer preallocated for maxSeq positions and appended in place, the position and token ids kept
 * in GPU buffers. Each decoded token is one command encoder, one submit and one 8-byte readback
 * (the argmax, computed on the GPU). Per block: fused RMSNorm+QKV gemv, attention (RoPE and the
 * cache append fused in), O gemv + residual, fused RMSNorm+gate/up gemv with SwiGLU, down gemv + residual.
 */
export class GpuLlamaDecoder implements DeviceSession {
  readonly maxSeq: number;
  readonly vocabSize: number;
  readonly lookahead: number;
  private filled = 0;
  private readonly arrays: GpuArray[] = [];
  private readonly staging: GPUBuffer[] = [];
  private readonly state: GpuArray;
  private readonly tokens: GpuArray;
  private readonly logitsBuffer: GpuArray;
  private readonly body: Dispatch[] = [];
  private readonly head: Dispatch[] = [];
  private readonly advance: Dispatch;
  private disposed = false;
  /** The greedy run-ahead next() pulls from, and the token it will feed next. */
  private ahead: AsyncGenerator<number, void, undefined> | null = null;
  private aheadFeeds = -1;
  /** The GPU's last greedy pick, which tokens[filled] holds, so a stream can feed it. */
  private lastPick = -1;

  constructor(
    readonly ctx: GpuContext,
    net: VolumetricNetwork,
    readonly config: LlamaConfig,
    options: GpuLlamaDecoderOptions,
  ) {
    const { maxSeq } = options;
    if (!Number.isInteger(maxSeq) || maxSeq <= 0) throw new UsageError(`GpuLlamaDecoder: maxSeq must be a positive integer, got ${maxSeq}`);
    this.maxSeq = maxSeq;
    this.lookahead = options.lookahead ?? READBACK_RING - 1;
    if (!Number.isInteger(this.lookahead) || this.lookahead < 1) throw new UsageError(`GpuLlamaDecoder: lookahead must be a positive integer, got ${options.lookahead}`);
    this.vocabSize = config.vocabSize;
    const { hiddenSize: d, intermediateSize: inter, numHeads: heads, numKVHeads: kvHeads, headDim: hd, vocabSize: vocab } = config;
    for (const [name, v] of [['hidden_size', d], ['intermediate_size', inter], ['head_dim', hd]] as const) {
      if (v % 4 !== 0) throw new UsageError(`GpuLlamaDecoder: ${name} = ${v} is not a multiple of 4 (the GPU kernels read vec4)`);
    }
    if (hd > 256) throw new UsageError(`GpuLlamaDecoder: head_dim = ${hd} is above 256, which the attention kernel supports`);
    const q = heads * hd;
    const kv = kvHeads * hd;
    const layers = llamaLayers(net, config);

    this.state = this.keep(ctx.upload(new Uint32Array(4)));
    this.tokens = this.keep(ctx.upload(new Uint32Array(maxSeq + 1)));
    const x = this.keep(ctx.alloc(d));
    const qkv = this.keep(ctx.alloc(q + 2 * kv));
    const attn = this.keep(ctx.alloc(q));
    const hidden = this.keep(ctx.alloc(inter));
    // Scores in workgroup memory when the whole sequence fits there (positions rounded to 256 so few variants exist).
    const sharedPositions = Math.ceil(maxSeq / 256) * 256;
    const sharedScores = ATTENTION_WORKGROUP_BYTES + sharedPositions * 4 <= ctx.workgroupStorage ? sharedPositions : 0;
    const attentionCode = attentionWgsl(sharedScores);
    const scores = this.keep(ctx.alloc(sharedScores ? 1 : heads * maxSeq));
    this.logitsBuffer = this.keep(ctx.alloc(vocab));
    const rope = this.keep(ctx.upload(ropeTable(config, layers.blocks[0]?.attention, maxSeq)));

    const embedding = this.keep(ctx.upload(floats(layers.embedding, 'Embedding')));
    this.body.push(this.make(EMBED_WGSL, [ctx.uniform([d]), this.state, this.tokens, embedding, x], groups1d(d)));

    const gemv = (v: GemvVariant, rows: number, k: number, eps: number, bindings: (GPUBuffer | GpuArray)[]): Dispatch =>
      this.make(gemvWgsl(v), [ctx.uniform([rows, k / 4, eps, 1 / k], [false, false, true, true]), ...bindings], groups1d(rows, GEMV_ROWS));
    const attentionParams = ctx.uniform([heads / kvHeads, hd, maxSeq, 1 / Math.sqrt(hd), heads, kvHeads], [false, false, false, true]);
    for (const block of layers.blocks) {
      if (block.attention.activation !== Activation.Linear) throw new UsageError('GpuLlamaDecoder: the attention layers must have no output activation (Llama)');
      if (block.mlp.activation === Activation.ReLU2) throw new UsageError('GpuLlamaDecoder: SwiGLU with the ReLU2 gate is not supported on the GPU');
      const a = floats(block.attention, 'MultiHeadAttention');
      const wo = (q + 2 * kv) * d;
      const bq = wo + d * q;
      if (a.length !== bq + q + 2 * kv + d) throw new GpuError(`GpuLlamaDecoder: attention has ${a.length} parameters, expected ${bq + q + 2 * kv + d} for the config`);
      const m = floats(block.mlp, 'SwiGLU');
      const n = inter * d;
      const kCache = this.keep(ctx.alloc(kvHeads * maxSeq * hd));
      const vCache = this.keep(ctx.alloc(kvHeads * maxSeq * hd));
      const upload = (data: Float32Array) => this.keep(ctx.upload(data));
      const inputGain = upload(floats(block.inputNorm, 'RMSNorm'));
      const postGain = upload(floats(block.postNorm, 'RMSNorm'));
      const wQkv = upload(a.subarray(0, wo));
      const wO = upload(a.subarray(wo, bq));
      const bQkv = upload(a.subarray(bq, bq + q + 2 * kv));
      const bO = upload(a.subarray(bq + q + 2 * kv));
      const wGateUp = upload(m.subarray(0, 2 * n));
      const wDown = upload(m.subarray(2 * n, 3 * n));
      const bGateUp = upload(m.subarray(3 * n, 3 * n + 2 * inter));
      const bDown = upload(m.subarray(3 * n + 2 * inter));
      this.body.push(
        gemv({ norm: true, bias: true, residual: false, swiglu: false }, q + 2 * kv, d, epsilon(block.inputNorm), [x, wQkv, qkv, inputGain, bQkv]),
        this.make(attentionCode, [attentionParams, this.state, qkv, rope, kCache, vCache, ...(sharedScores ? [] : [scores]), attn], [heads, 1]),
        gemv({ norm: false, bias: true, residual: true, swiglu: false }, d, q, 0, [attn, wO, x, bO]),
        gemv({ norm: true, bias: true, residual: false, swiglu: true }, inter, d, epsilon(block.postNorm), [x, wGateUp, hidden, postGain, bGateUp]),
        gemv({ norm: false, bias: true, residual: true, swiglu: false }, d, inter, 0, [hidden, wDown, x, bDown]),
      );
    }

    const finalGain = this.keep(ctx.upload(floats(layers.finalNorm, 'RMSNorm')));
    const eps = epsilon(layers.finalNorm);
    const head = layers.lmHead;
    // Each LM head workgroup also leaves its best row in `picks`; the argmax reduces those.
    const headGroups = groups1d(vocab, GEMV_ROWS);
    const picks = this.keep(ctx.alloc(2 * headGroups[0] * headGroups[1]));
    if (head.weights === layers.embedding.weights) {
      this.head.push(gemv({ norm: true, bias: false, residual: false, swiglu: false, argmax: true }, vocab, d, eps, [x, embedding, this.logitsBuffer, finalGain, picks]));
    } else {
      const w = floats(head, 'Dense');
      const lm = this.keep(ctx.upload(w.subarray(0, vocab * d)));
      if (head.config.useBias) {
        const bias = this.keep(ctx.upload(w.subarray(vocab * d, vocab * d + vocab)));
        this.head.push(gemv({ norm: true, bias: true, residual: false, swiglu: false, argmax: true }, vocab, d, eps, [x, lm, this.logitsBuffer, finalGain, bias, picks]));
      } else {
        this.head.push(gemv({ norm: true, bias: false, residual: false, swiglu: false, argmax: true }, vocab, d, eps, [x, lm, this.logitsBuffer, finalGain, picks]));
      }
    }
    this.head.push(this.make(ARGMAX_WGSL, [ctx.uniform([Math.ceil(vocab / GEMV_ROWS)]), picks, this.state, this.tokens], [1, 1]));
    this.advance = this.make(ADVANCE_WGSL, [this.state], [1, 1]);
    for (let i = 0; i <= this.lookahead; i++) this.staging.push(ctx.device.createBuffer({ size: 16, usage: READBACK }));
  }

  /** Positions held in the KV caches. */
  get length(): number {
    return this.filled;
  }

  /** Forgets the sequence (the caches are overwritten from position 0). */
  reset(): void {
    this.filled = 0;
  }

  /**
   * DeviceSession for Generation: feeds `ids` and resolves to the token sampleToken would pick.
   * Greedy without a penalty stays on the GPU, running `lookahead` steps ahead when the caller feeds
   * back the token it was given; other sampling reads the logits back.
   */
  async next(ids: readonly number[], context: readonly number[], options: SamplingOptions, rng: Rng, lookahead: number): Promise<number> {
    const greedy = (options.temperature ?? 0) === 0 && ((options.repetitionPenalty ?? 1) === 1 || (options.repetitionWindow ?? 64) === 0);
    if (greedy && this.ahead && ids.length === 1 && ids[0] === this.aheadFeeds) {
      const r = await this.ahead.next();
      if (!r.done) {
        this.aheadFeeds = r.value;
        return r.value;
      }
    }
    await this.stopAhead();
    if (greedy && ids.length === 1 && lookahead > 0 && this.filled > 0 && ids[0] === this.lastPick) {
      this.ahead = this.stream(lookahead + 1);
      this.aheadFeeds = ids[0];
      return this.next(ids, context, options, rng, lookahead);
    }
    const token = await this.prefill(ids);
    this.lastPick = token;
    if (greedy) return token;
    return sampleToken(await this.logits(), context, options, rng);
  }

  /**
   * Runs `prompt` (continuing the sequence held so far) in one submit, and returns the greedy next
   * token. The last prompt position's logits stay on the GPU (see logits()).
   */
  async prefill(prompt: readonly number[]): Promise<number> {
    await this.stopAhead();
    this.submitPrefill(prompt);
    return this.readToken(0);
  }

  /**
   * Greedy decoding of up to `count` tokens after prefill (which picked the token fed first): each
   * token one submit, later steps submitted before a token is read back (the GPU feeds its own argmax
   * forward). Stopping the iteration early rewinds the GPU to the tokens read: the sequence then holds
   * every token read but the last, which is fed by the next step.
   */
  async *stream(count: number): AsyncGenerator<number, void, undefined> {
    if (count <= 0) return;
    this.checkFits(1);
    let inFlight = 0;
    let submitted = 0;
    let last = -1;
    const slots = this.staging.length;
    try {
      while (submitted < count || inFlight > 0) {
        while (submitted < count && inFlight < this.lookahead && this.filled + inFlight < this.maxSeq) {
          this.encodeStep(submitted % slots);
          submitted++;
          inFlight++;
        }
        if (inFlight === 0) return;
        last = await this.readToken((submitted - inFlight) % slots);
        inFlight--;
        this.filled++;
        yield last;
      }
    } finally {
      // Steps submitted past a stop have run; their cache entries lie past `filled` and are overwritten later.
      while (inFlight > 0) {
        await this.readToken((submitted - inFlight) % slots);
        inFlight--;
      }
      if (last >= 0) this.ctx.write(this.state, Uint32Array.of(this.filled, last));
    }
  }

  /** stream() collected: up to `count` tokens, stopping after one for which `onToken` returns false. */
  async decodeGreedy(count: number, onToken?: (token: number) => boolean | void): Promise<number[]> {
    const out: number[] = [];
    for await (const token of this.stream(count)) {
      out.push(token);
      if (onToken?.(token) === false) break;
    }
    return out;
  }

  private async stopAhead(): Promise<void> {
    const ahead = this.ahead;
    this.ahead = null;
    if (ahead) {
      await ahead.return(undefined);
      this.lastPick = this.aheadFeeds;
    }
  }

  /** Logits of the last position that ran the LM head (a full vocabulary readback: for tests and sampling). */
  async logits(): Promise<Float32Array> {
    return this.ctx.read(this.logitsBuffer, this.vocabSize);
  }

  /**
   * For benchmarks: GPU milliseconds per dispatch of each kernel of the step (the first block's),
   * each repeated `reps` times in one submit at position `at`, and per whole step (`steps` greedy
   * steps chained in one submit, so no readback latency); the CPU time to encode one step. The
   * sequence is reset afterwards.
   */
  async profile(at: number, reps = 200, steps = 20): Promise<Record<string, number>> {
    const names = ['embed', 'qkv (norm+gemv)', 'attention (rope+append)', 'o (gemv+residual)', 'gate/up (norm+gemv+swiglu)', 'down (gemv+residual)'];
    const list: [string, Dispatch][] = names.map((name, i) => [name, this.body[i]]);
    list.push(['lm head (norm+gemv)', this.head[0]], ['argmax', this.head[1]]);
    const out: Record<string, number> = {};
    const timeOne = async (encode: (pass: GPUComputePassEncoder) => void): Promise<number> => {
      this.ctx.write(this.state, Uint32Array.of(Math.min(at, this.maxSeq - steps - 1), 0));
      const encoder = this.ctx.device.createCommandEncoder();
      const pass = encoder.beginComputePass();
      encode(pass);
      pass.end();
      await this.ctx.device.queue.onSubmittedWorkDone();
      const t0 = performance.now();
      this.ctx.device.queue.submit([encoder.finish()]);
      await this.ctx.device.queue.onSubmittedWorkDone();
      return performance.now() - t0;
    };
    for (const [name, d] of list) out[name] = (await timeOne((pass) => { for (let r = 0; r < reps; r++) this.record(pass, [d]); })) / reps;
    out['whole step, chained'] = (await timeOne((pass) => { for (let r = 0; r < steps; r++) this.record(pass, [...this.body, ...this.head]); })) / steps;
    const encoder = this.ctx.device.createCommandEncoder();
    const t0 = performance.now();
    const pass = encoder.beginComputePass();
    for (let r = 0; r < steps; r++) this.record(pass, [...this.body, ...this.head]);
    pass.end();
    out['cpu encode per step'] = (performance.now() - t0) / steps;
    encoder.finish();
    this.reset();
    return out;
  }

  /** Frees the GPU buffers this decoder holds (the context stays). */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const a of this.arrays) this.ctx.release(a);
    for (const s of this.staging) s.destroy();
  }

  private submitPrefill(prompt: readonly number[]): void {
    if (prompt.length === 0) throw new UsageError('GpuLlamaDecoder.prefill: the prompt is empty');
    this.checkFits(prompt.length);
    for (const t of prompt) {
      if (!Number.isInteger(t) || t < 0 || t >= this.vocabSize) throw new UsageError(`GpuLlamaDecoder: token id ${t} is outside the vocabulary (0..${this.vocabSize - 1})`);
    }
    this.ctx.write(this.tokens, Uint32Array.from(prompt), this.filled);
    this.ctx.write(this.state, Uint32Array.of(this.filled, 0));
    const encoder = this.ctx.device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    for (let i = 0; i < prompt.length; i++) {
      this.record(pass, this.body);
      this.record(pass, i === prompt.length - 1 ? this.head : [this.advance]);
    }
    pass.end();
    encoder.copyBufferToBuffer(this.state.buffer, 0, this.staging[0], 0, 16);
    this.ctx.device.queue.submit([encoder.finish()]);
    this.ctx.stats.submits++;
    this.filled += prompt.length;
  }

  private encodeStep(slot: number): void {
    const encoder = this.ctx.device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    this.record(pass, this.body);
    this.record(pass, this.head);
    pass.end();
    encoder.copyBufferToBuffer(this.state.buffer, 0, this.staging[slot], 0, 16);
    this.ctx.device.queue.submit([encoder.finish()]);
    this.ctx.stats.submits++;
  }

  private async readToken(slot: number): Promise<number> {
    const staging = this.staging[slot];
    await staging.mapAsync(MAP_READ, 0, 16);
    const token = new Uint32Array(staging.getMappedRange(0, 16))[1];
    staging.unmap();
    return token;
  }

  private record(pass: GPUComputePassEncoder, list: readonly Dispatch[]): void {
    for (const d of list) {
      pass.setPipeline(d.pipeline);
      pass.setBindGroup(0, d.group);
      pass.dispatchWorkgroups(d.workgroups[0], d.workgroups[1]);
    }
    this.ctx.stats.dispatches += list.length;
  }

  private make(code: string, bindings: readonly (GPUBuffer | GpuArray)[], workgroups: [number, number]): Dispatch {
    const pipeline = this.ctx.pipeline(code);
    const group = this.ctx.device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: bindings.map((b, binding) => ({ binding, resource: { buffer: 'length' in b && 'buffer' in b ? b.buffer : (b as GPUBuffer) } })),
    });
    return { pipeline, group, workgroups };
  }

  private keep(a: GpuArray): GpuArray {
    this.arrays.push(a);
    return a;
  }

  private checkFits(n: number): void {
    if (this.filled + n > this.maxSeq) {
      throw new UsageError(`GpuLlamaDecoder: the sequence would reach ${this.filled + n} positions, more than maxSeq = ${this.maxSeq}`);
    }
  }
}

function floats(layer: Layer, kind: string): Float32Array {
  if (!layer.weights) throw new UsageError(`GpuLlamaDecoder: the ${kind} layer keeps no float32 weights (quantized and released); import the model as float32 for GPU decode`);
  return layer.weights.getActive(layer.dtype);
}

function epsilon(norm: Layer): number {
  return norm.config.epsilon ?? 1e-6;
}

/** cos, sin of pos / divisor[i] (float64, as the CPU attention computes them) for pos < maxSeq, i < head_dim / 2. */
function ropeTable(config: LlamaConfig, attention: Layer | undefined, maxSeq: number): Float32Array {
  const half = config.headDim / 2;
  const table = new Float32Array(Math.max(1, maxSeq * half * 2));
  const base = attention?.config.ropeFreqBase ?? config.ropeTheta;
  if (!(base > 0)) {
    for (let i = 0; i < table.length; i += 2) table[i] = 1;
    return table;
  }
  const divisors = ropeDivisors(config.headDim, base, config.ropeScaling ?? undefined);
  for (let p = 0; p < maxSeq; p++) {
    for (let i = 0; i < half; i++) {
      const angle = p / divisors[i];
      table[(p * half + i) * 2] = Math.cos(angle);
      table[(p * half + i) * 2 + 1] = Math.sin(angle);
    }
  }
  return table;
}
