import { UsageError } from '../core/errors.js';
import { DecodeSession } from '../engine/decode.js';
import type { VolumetricNetwork } from '../grid/network.js';
import { Generation, type GenerateOptions, type GeneratedToken, type LanguageModel } from './generate.js';
import type { LlamaConfig } from './llama.js';
import { IncrementalChat, type ChatMessage } from './templates.js';
import type { TokenizerBundle } from './tokenizerBundle.js';

/** Default most positions a session holds (KV caches are allocated for this many). */
export const DEFAULT_MAX_SEQ = 2048;

/** A decoder network with its tokenizer, ready to generate. */
export class TextModel implements LanguageModel {
  readonly session: DecodeSession;
  readonly vocabSize: number;

  constructor(
    readonly network: VolumetricNetwork,
    readonly config: LlamaConfig,
    readonly tokenizer: TokenizerBundle,
    maxSeq = Math.min(config.maxPositionEmbeddings ?? DEFAULT_MAX_SEQ, DEFAULT_MAX_SEQ),
  ) {
    this.session = new DecodeSession(network, maxSeq);
    this.vocabSize = config.vocabSize;
  }

  encode(text: string, addSpecialTokens = true): number[] {
    return this.tokenizer.tokenizer.encode(text, { addSpecialTokens });
  }

  decode(ids: readonly number[]): string {
    return this.tokenizer.tokenizer.decode(ids);
  }

  /** config.json's eos ids, the tokenizer's eos token and the template's end-of-turn token. */
  stopTokens(): number[] {
    const t = this.tokenizer.tokenizer;
    const ids = new Set(this.config.eosTokenIds);
    for (const token of [t.eosToken, this.tokenizer.chatTemplate?.endOfTurn]) {
      const id = token ? t.tokenToId(token) : undefined;
      if (id !== undefined) ids.add(id);
    }
    return [...ids];
  }

  /** Generates after `prompt` from an empty cache (the tokenizer adds BOS as its post-processor says). */
  generate(prompt: string, options: GenerateOptions = {}): Generation {
    this.session.reset();
    return new Generation(this, this.encode(prompt), { stopTokens: this.stopTokens(), ...options });
  }
}

/**
 * Multi-turn chat on one KV cache: each turn prefills only the text the cache does not hold yet
 * (templates.ts IncrementalChat), so earlier turns are never recomputed unless the template's render
 * of the history changes.
 */
export class ChatSession {
  readonly messages: ChatMessage[] = [];
  private readonly incremental: IncrementalChat;
  /** Everything the cache holds, as ids (for the repetition penalty). */
  private history: number[] = [];
  /** Tokens prefilled by the last turn (what KV reuse saves is the rest of the history). */
  lastPrefill = 0;

  constructor(
    readonly model: TextModel,
    system?: string,
  ) {
    const template = model.tokenizer.chatTemplate;
    if (!template) throw new UsageError('chat: the tokenizer has no chat template (no chat_template and no ChatML/Llama-3 markers)');
    const t = model.tokenizer.tokenizer;
    this.incremental = new IncrementalChat({ template, bosToken: t.bosToken ?? '', eosToken: t.eosToken ?? '' });
    if (system) this.messages.push({ role: 'system', content: system });
    model.session.reset();
  }

  /** Adds the user's message and streams the reply; the reply joins the history when the stream ends. */
  async *send(text: string, options: GenerateOptions = {}): AsyncGenerator<GeneratedToken, void, undefined> {
    this.messages.push({ role: 'user', content: text });
    const turn = this.incremental.prefill(this.messages);
    if (turn.reset) {
      this.model.session.reset();
      this.history = [];
    }
    const prompt = this.model.encode(turn.text, false);
    this.lastPrefill = prompt.length;
    const generation = new Generation(this.model, prompt, { stopTokens: this.model.stopTokens(), ...options }, this.history);
    for await (const step of generation) yield step;
    // The last sampled token never reached the cache.
    const fed = generation.tokens.slice(0, -1);
    this.history = [...this.history, ...prompt, ...fed];
    this.incremental.accept(this.model.decode(fed));
    this.messages.push({ role: 'assistant', content: generation.text });
  }
}
