import { UsageError } from '../core/errors.js';
import { Rng } from '../core/rng.js';
import { Tensor } from '../core/tensor.js';
import { DecodeSession } from '../engine/decode.js';

/** How to pick each next token. */
export interface SamplingOptions {
  /** 0 (default) picks the most likely token (greedy); otherwise logits are divided by it before sampling. */
  temperature?: number;
  /** Keep only the k most likely tokens (0 or absent: all). */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose probability reaches p (1 or absent: all). */
  topP?: number;
  /** > 1 discourages tokens seen in the last `repetitionWindow` positions (HF's rule: positive logits ÷ p, negative × p). */
  repetitionPenalty?: number;
  /** Positions the penalty looks back over, prompt included (default 64). */
  repetitionWindow?: number;
  /** Seed of the sampling RNG: the same seed, prompt and options give the same tokens (default 0). */
  seed?: number;
}

export interface GenerateOptions extends SamplingOptions {
  /** Most tokens to generate (default 128). */
  maxTokens?: number;
  /** Generation ends after emitting none of these ids (the end-of-sequence ids). */
  stopTokens?: readonly number[];
  /** Generation ends when the text reaches one of these; the stop string itself is not emitted. */
  stopStrings?: readonly string[];
}

/** One streamed step: the token and the text it completes (may be empty while bytes of a character or a possible stop string are held back). */
export interface GeneratedToken {
  token: number;
  text: string;
}

/**
 * A decoder that runs elsewhere (the GPU: src/gpu/llama.ts) and picks tokens there where it can:
 * `next` feeds the new positions `ids` and resolves to the token sampleToken would pick with the
 * same arguments. `lookahead` is how many more tokens the caller may ask for after this one, so the
 * decoder can start on them before they are asked for.
 */
export interface DeviceSession {
  readonly length: number;
  readonly maxSeq: number;
  reset(): void;
  next(ids: readonly number[], context: readonly number[], options: SamplingOptions, rng: Rng, lookahead: number): Promise<number>;
}

/** What generation needs from a model: incremental logits (on the CPU, or tokens from a device) and detokenization. */
export interface LanguageModel {
  readonly session: DecodeSession | DeviceSession;
  readonly vocabSize: number;
  decode(ids: readonly number[]): string;
}

/** Why generation ended. */
export type FinishReason = 'stop-token' | 'stop-string' | 'max-tokens' | 'context';

function check(options: GenerateOptions): void {
  const { temperature = 0, topK = 0, topP = 1, repetitionPenalty = 1, repetitionWindow = 64, maxTokens = 128 } = options;
  if (!(temperature >= 0) || !Number.isFinite(temperature)) throw new UsageError(`temperature: expected a number ≥ 0, got ${temperature}`);
  if (!Number.isInteger(topK) || topK < 0) throw new UsageError(`top-k: expected an integer ≥ 0, got ${topK}`);
  if (!(topP > 0 && topP <= 1)) throw new UsageError(`top-p: expected a number in (0, 1], got ${topP}`);
  if (!(repetitionPenalty > 0) || !Number.isFinite(repetitionPenalty)) throw new UsageError(`repetition penalty: expected a number > 0, got ${repetitionPenalty}`);
  if (!Number.isInteger(repetitionWindow) || repetitionWindow < 0) throw new UsageError(`repetition window: expected an integer ≥ 0, got ${repetitionWindow}`);
  if (!Number.isInteger(maxTokens) || maxTokens < 0) throw new UsageError(`max tokens: expected an integer ≥ 0, got ${maxTokens}`);
}

/** Picks the next token from one row of logits (modified in place by the penalty). `history` is the context so far. */
export function sampleToken(logits: Float32Array, history: readonly number[], options: SamplingOptions, rng: Rng): number {
  const { temperature = 0, topK = 0, topP = 1, repetitionPenalty = 1, repetitionWindow = 64 } = options;
  if (repetitionPenalty !== 1 && repetitionWindow > 0) {
    const seen = new Set(history.slice(Math.max(0, history.length - repetitionWindow)));
    for (const id of seen) {
      if (id < 0 || id >= logits.length) continue;
      logits[id] = logits[id] > 0 ? logits[id] / repetitionPenalty : logits[id] * repetitionPenalty;
    }
  }
  if (temperature === 0) {
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
    return best;
  }
  // Candidates by falling logit, ties by id, so the order (and the draw) is fixed.
  const order = Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a] || a - b);
  const k = topK > 0 ? Math.min(topK, order.length) : order.length;
  const top = order.slice(0, k);
  const max = logits[top[0]];
  const probs = top.map((id) => Math.exp((logits[id] - max) / temperature));
  const total = probs.reduce((a, b) => a + b, 0);
  let keep = top.length;
  if (topP < 1) {
    let cum = 0;
    for (let i = 0; i < top.length; i++) {
      cum += probs[i] / total;
      if (cum >= topP) {
        keep = i + 1;
        break;
      }
    }
  }
  let mass = 0;
  for (let i = 0; i < keep; i++) mass += probs[i];
  let u = rng.uniform() * mass;
  for (let i = 0; i < keep; i++) {
    u -= probs[i];
    if (u < 0) return top[i];
  }
  return top[keep - 1];
}

/** Length of the longest suffix of `text` that begins some stop string (held back while streaming). */
function heldBack(text: string, stops: readonly string[]): number {
  let n = 0;
  for (const s of stops) {
    for (let k = Math.min(s.length - 1, text.length); k > n; k--) {
      if (text.endsWith(s.slice(0, k))) {
        n = k;
        break;
      }
    }
  }
  return n;
}

/**
 * Streams tokens after `prompt`: the prompt (or the part of it the session does not hold yet — pass
 * only new ids when continuing a session) is prefilled in one call, then each token decodes alone
 * against the KV cache. The final stop token, when one ends generation, has not been fed to the cache.
 */
export class Generation implements AsyncIterable<GeneratedToken> {
  /** Ids generated so far (the stop token included when one ended generation). */
  readonly tokens: number[] = [];
  /** The text emitted so far. */
  text = '';
  finishReason: FinishReason | null = null;

  constructor(
    private readonly model: LanguageModel,
    private readonly prompt: readonly number[],
    private readonly options: GenerateOptions = {},
    /** Context the repetition penalty sees before `prompt` (earlier turns). */
    private readonly history: readonly number[] = [],
  ) {
    check(options);
    if (prompt.length === 0 && model.session.length === 0) throw new UsageError('generate: the prompt is empty (give at least one token, e.g. BOS)');
  }

  async *[Symbol.asyncIterator](): AsyncIterator<GeneratedToken> {
    const { model, options } = this;
    const { maxTokens = 128, stopTokens = [], stopStrings = [] } = options;
    const session = model.session;
    const stops = new Set(stopTokens);
    const rng = new Rng(options.seed ?? 0);
    const context = [...this.history, ...this.prompt];
    if (this.prompt.length === 0) throw new UsageError('generate: nothing to continue from (the prompt is empty)');
    const pick = (fed: readonly number[], lookahead: number): Promise<number> | number =>
      session instanceof DecodeSession
        ? sampleToken(lastRow(session.forward(ids(fed)), model.vocabSize), context, options, rng)
        : session.next(fed, context, options, rng, lookahead);
    let next = pick(this.prompt, Math.max(0, maxTokens - 1));
    if (maxTokens === 0) await next;
    let decodedLength = 0;
    for (let step = 0; step < maxTokens; step++) {
      const token = await next;
      this.tokens.push(token);
      context.push(token);
      if (stops.has(token)) {
        this.finishReason = 'stop-token';
        const rest = model.decode(this.generatedForText()).slice(decodedLength);
        if (rest) this.text += rest;
        yield { token, text: rest };
        return;
      }
      let full = model.decode(this.tokens);
      // An incomplete UTF-8 sequence decodes to U+FFFD until its last byte arrives.
      if (full.endsWith('\uFFFD')) full = full.slice(0, -1);
      const hit = firstStop(full, stopStrings);
      if (hit >= 0) {
        const out = full.slice(decodedLength, Math.max(decodedLength, hit));
        this.text += out;
        this.finishReason = 'stop-string';
        yield { token, text: out };
        return;
      }
      const last = step + 1 === maxTokens;
      // The last step flushes what was held back (a partial character decodes as U+FFFD, as in HF).
      const upTo = last ? Infinity : full.length - heldBack(full, stopStrings);
      const out = last ? model.decode(this.tokens).slice(decodedLength) : upTo > decodedLength ? full.slice(decodedLength, upTo) : '';
      decodedLength += out.length;
      this.text += out;
      yield { token, text: out };
      if (last) {
        this.finishReason = 'max-tokens';
        return;
      }
      if (session.length >= session.maxSeq) {
        this.finishReason = 'context';
        return;
      }
      next = pick([token], maxTokens - step - 2);
    }
    this.finishReason = 'max-tokens';
  }

  /** Tokens whose text counts as output: without a final stop token. */
  private generatedForText(): number[] {
    return this.finishReason === 'stop-token' ? this.tokens.slice(0, -1) : this.tokens;
  }
}

/** Streams generation; see Generation. */
export function generate(model: LanguageModel, prompt: readonly number[], options: GenerateOptions = {}): Generation {
  return new Generation(model, prompt, options);
}

function firstStop(text: string, stops: readonly string[]): number {
  let at = -1;
  for (const s of stops) {
    if (!s) continue;
    const i = text.indexOf(s);
    if (i >= 0 && (at < 0 || i < at)) at = i;
  }
  return at;
}

function ids(list: readonly number[]): Tensor {
  return new Tensor(Float32Array.from(list), [1, list.length]);
}

function lastRow(out: Tensor, vocab: number): Float32Array {
  return out.data.slice(out.data.length - vocab);
}
