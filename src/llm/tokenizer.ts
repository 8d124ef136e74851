/**
 * A Hugging Face tokenizer.json BPE tokenizer (byte-level GPT-2/Llama-3/Qwen2 style and SentencePiece
 * style with byte fallback), following the tokenizers crate's pipeline: added tokens are split out,
 * the rest is normalized, pre-tokenized, BPE-merged by rank, and post-processed. Browser-safe.
 */
import { FormatError } from '../core/errors.js';
import { CHAR_TO_BYTE, JsonFields, parseNormalizer, parsePrependScheme, parsePreTokenizer, regexSpans, isWhitespace, isWordChar, type Normalizer, type Piece, type PreTokenizer } from './pretokenize.js';

/** Options for Tokenizer.fromJSON. */
export interface TokenizerOptions {
  /** Names the file in error messages (default "tokenizer.json"). */
  source?: string;
  /** tokenizer_config.json's bos_token / eos_token, when known; they override what the file implies. */
  bosToken?: string | null;
  eosToken?: string | null;
}

/** Options for Tokenizer.encode. */
export interface EncodeOptions {
  /** Add what the post_processor adds around a single sequence, e.g. Llama's BOS (default true, as in Hugging Face). */
  addSpecialTokens?: boolean;
  /** Recognize special added tokens written in the text (default true); false treats them as plain text. */
  parseSpecialTokens?: boolean;
}

/** Options for Tokenizer.decode; skipSpecialTokens drops added tokens flagged special. */
export interface DecodeOptions {
  skipSpecialTokens?: boolean;
}

/** One entry of tokenizer.json's added_tokens. */
export interface AddedToken {
  id: number;
  content: string;
  special: boolean;
  singleWord: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
}

type Decoder = (tokens: string[]) => string[];

interface Segment {
  text: string;
  id: number;
  start: boolean;
}

// Added tokens: leftmost-longest matching over a trie of UTF-16 code units.

interface TrieNode {
  next: Map<number, TrieNode>;
  token: AddedToken | null;
}

class AddedTokenMatcher {
  private readonly root: TrieNode = { next: new Map(), token: null };
  private empty = true;

  add(pattern: string, token: AddedToken): void {
    if (pattern.length === 0) return;
    let node = this.root;
    for (let i = 0; i < pattern.length; i++) {
      const c = pattern.charCodeAt(i);
      let child = node.next.get(c);
      if (child === undefined) {
        child = { next: new Map(), token: null };
        node.next.set(c, child);
      }
      node = child;
    }
    node.token ??= token;
    this.empty = false;
  }

  /** Splits `text` into plain stretches and added tokens, honouring single_word, lstrip and rstrip as the tokenizers crate does. */
  split(text: string, start: boolean, parseSpecial: boolean, out: Segment[]): void {
    if (text.length === 0) return;
    if (this.empty) {
      out.push({ text, id: -1, start });
      return;
    }
    let offset = 0;
    let i = 0;
    while (i < text.length) {
      let node: TrieNode | undefined = this.root;
      let best: AddedToken | null = null;
      let bestEnd = -1;
      for (let j = i; j < text.length; j++) {
        node = node.next.get(text.charCodeAt(j));
        if (node === undefined) break;
        if (node.token !== null) {
          best = node.token;
          bestEnd = j + 1;
        }
      }
      if (best === null) {
        i++;
        continue;
      }
      let a = i;
      let b = bestEnd;
      i = bestEnd;
      if (!parseSpecial && best.special) continue;
      if (best.singleWord) {
        const before = a === 0 || !isWordChar(text.codePointAt(prevCodePointIndex(text, a))!);
        const after = b === text.length || !isWordChar(text.codePointAt(b)!);
        if (!before || !after) continue;
      }
      if (best.lstrip) {
        let s = a;
        while (s > 0) {
          const k = prevCodePointIndex(text, s);
          if (!isWhitespace(text.codePointAt(k)!)) break;
          s = k;
        }
        a = Math.max(s, offset);
      }
      if (best.rstrip) {
        while (b < text.length && isWhitespace(text.codePointAt(b)!)) b += text.codePointAt(b)! > 0xffff ? 2 : 1;
      }
      if (offset < a) out.push({ text: text.slice(offset, a), id: -1, start: start && offset === 0 });
      out.push({ text: text.slice(a, b), id: best.id, start: false });
      offset = b;
    }
    if (offset < text.length) out.push({ text: text.slice(offset), id: -1, start: start && offset === 0 });
  }
}

function prevCodePointIndex(s: string, i: number): number {
  const c = s.charCodeAt(i - 1);
  return c >= 0xdc00 && c <= 0xdfff && i >= 2 ? i - 2 : i - 1;
}

// BPE model.

/** Min-heap of (rank, position) merge candidates, ordered as the tokenizers crate orders them. */
class MergeHeap {
  rank = new Int32Array(64);
  pos = new Int32Array(64);
  size = 0;

  push(r: number, p: number): void {
    if (this.size === this.rank.length) {
      const nr = new Int32Array(this.size * 2);
      nr.set(this.rank);
      this.rank = nr;
      const np = new Int32Array(this.size * 2);
      np.set(this.pos);
      this.pos = np;
    }
    let i = this.size++;
    const { rank, pos } = this;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (rank[parent] < r || (rank[parent] === r && pos[parent] < p)) break;
      rank[i] = rank[parent];
      pos[i] = pos[parent];
      i = parent;
    }
    rank[i] = r;
    pos[i] = p;
  }

  /** Removes the top; read `topRank`/`topPos` before calling. */
  pop(): void {
    const { rank, pos } = this;
    const n = --this.size;
    if (n === 0) return;
    const r = rank[n];
    const p = pos[n];
    let i = 0;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && (rank[c + 1] < rank[c] || (rank[c + 1] === rank[c] && pos[c + 1] < pos[c]))) c++;
      if (r < rank[c] || (r === rank[c] && p < pos[c])) break;
      rank[i] = rank[c];
      pos[i] = pos[c];
      i = c;
    }
    rank[i] = r;
    pos[i] = p;
  }
}

const CACHE_LIMIT = 20000;
const CACHE_MAX_WORD = 256;

class BpeModel {
  readonly vocab = new Map<string, number>();
  readonly tokens: string[] = [];
  /** pair key (left * stride + right) → rank; mergeResult[rank] is the merged token's id. */
  private readonly ranks = new Map<number, number>();
  private mergeResult = new Int32Array(0);
  private stride = 1;
  private readonly byteIds = new Int32Array(256).fill(-1);
  private readonly cache = new Map<string, number[]>();
  private readonly heap = new MergeHeap();
  unkToken: string | null = null;
  fuseUnk = false;
  byteFallback = false;
  ignoreMerges = false;
  prefix = '';
  suffix = '';

  constructor(private readonly f: JsonFields) {}

  load(o: Record<string, unknown>): void {
    const f: JsonFields = this.f;
    const vocab = f.object(o.vocab, 'model.vocab');
    let maxId = -1;
    for (const [token, id] of Object.entries(vocab)) {
      const v = f.index(id, `model.vocab[${JSON.stringify(token)}]`);
      this.vocab.set(token, v);
      this.tokens[v] = token;
      if (v > maxId) maxId = v;
    }
    this.stride = maxId + 1;
    this.unkToken = f.optString(o.unk_token, 'model.unk_token');
    this.fuseUnk = f.bool(o.fuse_unk, 'model.fuse_unk', false);
    this.byteFallback = f.bool(o.byte_fallback, 'model.byte_fallback', false);
    this.ignoreMerges = f.bool(o.ignore_merges, 'model.ignore_merges', false);
    this.prefix = f.optString(o.continuing_subword_prefix, 'model.continuing_subword_prefix') ?? '';
    this.suffix = f.optString(o.end_of_word_suffix, 'model.end_of_word_suffix') ?? '';
    if (o.dropout !== undefined && o.dropout !== null && o.dropout !== 0) {
      if (typeof o.dropout !== 'number' || o.dropout < 0 || o.dropout > 1) f.fail('model.dropout', 'null or a number in [0, 1]', o.dropout);
    }
    for (let b = 0; b < 256; b++) {
      const id = this.vocab.get(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
      if (id !== undefined) this.byteIds[b] = id;
    }
    this.loadMerges(o.merges === undefined ? [] : f.array(o.merges, 'model.merges'));
  }

  private loadMerges(list: unknown[]): void {
    const f: JsonFields = this.f;
    this.mergeResult = new Int32Array(list.length);
    let rank = 0;
    for (let k = 0; k < list.length; k++) {
      const m = list[k];
      const path = `model.merges[${k}]`;
      let left: string;
      let right: string;
      if (typeof m === 'string') {
        if (m.startsWith('#version')) continue;
        const parts = m.split(' ');
        if (parts.length !== 2) f.fail(path, '"a b" or ["a", "b"]', m);
        [left, right] = parts;
      } else if (Array.isArray(m) && m.length === 2 && typeof m[0] === 'string' && typeof m[1] === 'string') {
        [left, right] = m as [string, string];
      } else {
        f.fail(path, '"a b" or ["a", "b"]', m);
      }
      const a = this.vocab.get(left);
      const b = this.vocab.get(right);
      if (a === undefined) f.problem(path, `${JSON.stringify(left)} is not in model.vocab`);
      if (b === undefined) f.problem(path, `${JSON.stringify(right)} is not in model.vocab`);
      const merged = left + right.slice(this.prefix.length);
      const id = this.vocab.get(merged);
      if (id === undefined) f.problem(path, `the merged token ${JSON.stringify(merged)} is not in model.vocab`);
      this.ranks.set(a * this.stride + b, rank);
      this.mergeResult[rank] = id;
      rank++;
    }
  }

  /** Appends the ids of one pre-tokenized word. */
  tokenize(word: string, out: number[]): void {
    if (word.length === 0) return;
    if (this.ignoreMerges) {
      const id = this.vocab.get(word);
      if (id !== undefined) {
        out.push(id);
        return;
      }
    }
    const cacheable = word.length <= CACHE_MAX_WORD;
    let ids = cacheable ? this.cache.get(word) : undefined;
    if (ids === undefined) {
      ids = this.merge(this.symbols(word));
      if (cacheable) {
        if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
        this.cache.set(word, ids);
      }
    }
    for (let i = 0; i < ids.length; i++) out.push(ids[i]);
  }

  /** The word's characters as ids, with byte fallback and (fused) unknown tokens as merge_word builds them. */
  private symbols(word: string): number[] {
    const ids: number[] = [];
    let unkId = -1;
    let unkPending = false;
    const chars = [...word];
    for (let k = 0; k < chars.length; k++) {
      let s = chars[k];
      if (k > 0) s = this.prefix + s;
      if (k === chars.length - 1) s += this.suffix;
      const id = this.vocab.get(s);
      if (id !== undefined) {
        if (unkPending) {
          ids.push(unkId);
          unkPending = false;
        }
        ids.push(id);
        continue;
      }
      if (this.byteFallback) {
        const bytes = UTF8.encode(s);
        let all = true;
        for (const b of bytes) if (this.byteIds[b] < 0) all = false;
        if (all) {
          for (const b of bytes) ids.push(this.byteIds[b]);
          continue;
        }
      }
      if (this.unkToken !== null) {
        const u = this.vocab.get(this.unkToken);
        if (u === undefined) this.f.problem('model.unk_token', `${JSON.stringify(this.unkToken)} is not in model.vocab`);
        if (unkPending && !this.fuseUnk) ids.push(unkId);
        unkId = u;
        unkPending = true;
      }
    }
    if (unkPending) ids.push(unkId);
    return ids;
  }

  private merge(sym: number[]): number[] {
    const n = sym.length;
    if (n < 2 || this.ranks.size === 0) return sym;
    const { ranks, mergeResult, stride, heap } = this;
    const prev = new Int32Array(n);
    const next = new Int32Array(n);
    const alive = new Uint8Array(n).fill(1);
    heap.size = 0;
    for (let i = 0; i < n; i++) {
      prev[i] = i - 1;
      next[i] = i + 1 < n ? i + 1 : -1;
      if (i + 1 < n) {
        const r = ranks.get(sym[i] * stride + sym[i + 1]);
        if (r !== undefined) heap.push(r, i);
      }
    }
    while (heap.size > 0) {
      const rank = heap.rank[0];
      const pos = heap.pos[0];
      heap.pop();
      if (alive[pos] === 0) continue;
      const right = next[pos];
      if (right < 0) continue;
      const current = ranks.get(sym[pos] * stride + sym[right]);
      // A stale entry: the pair at pos changed since it was queued.
      if (current === undefined || mergeResult[current] !== mergeResult[rank]) continue;
      sym[pos] = mergeResult[rank];
      alive[right] = 0;
      const after = next[right];
      next[pos] = after;
      if (after >= 0) prev[after] = pos;
      const before = prev[pos];
      if (before >= 0) {
        const r = ranks.get(sym[before] * stride + sym[pos]);
        if (r !== undefined) heap.push(r, before);
      }
      if (after >= 0) {
        const r = ranks.get(sym[pos] * stride + sym[after]);
        if (r !== undefined) heap.push(r, pos);
      }
    }
    const out: number[] = [];
    for (let i = 0; i >= 0; i = next[i]) out.push(sym[i]);
    return out;
  }
}

// Decoders.

const DECODER_TYPES = ['ByteLevel', 'Metaspace', 'Replace', 'ByteFallback', 'Fuse', 'Strip', 'Sequence', 'BPEDecoder'] as const;
const UTF8 = new TextEncoder();
const LOSSY_UTF8 = new TextDecoder('utf-8', { ignoreBOM: true });
const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function parseDecoder(v: unknown, path: string, f: JsonFields): Decoder | null {
  if (v === undefined || v === null) return null;
  const o = f.object(v, path);
  const type = f.type(o, path, DECODER_TYPES);
  switch (type) {
    case 'ByteLevel':
      return (tokens) => [decodeByteLevel(tokens)];
    case 'Metaspace': {
      const replacement = f.char(o.replacement, `${path}.replacement`, '▁');
      const scheme = parsePrependScheme(o, path, f);
      return (tokens) => tokens.map((t, i) => (i === 0 && scheme !== 'never' ? t.split(replacement).join('') : t.split(replacement).join(' ')));
    }
    case 'Replace': {
      const re = f.pattern(o.pattern, `${path}.pattern`);
      const content = f.string(o.content, `${path}.content`);
      return (tokens) =>
        tokens.map((t) => {
          let out = '';
          for (const [a, b, m] of regexSpans(re, t)) out += m ? content : t.slice(a, b);
          return out;
        });
    }
    case 'ByteFallback':
      return decodeByteFallback;
    case 'Fuse':
      return (tokens) => [tokens.join('')];
    case 'Strip': {
      const content = f.char(o.content, `${path}.content`, ' ');
      const start = f.index(o.start ?? 0, `${path}.start`);
      const stop = f.index(o.stop ?? 0, `${path}.stop`);
      return (tokens) => tokens.map((t) => stripChars(t, content, start, stop));
    }
    case 'Sequence': {
      const steps = f.array(o.decoders, `${path}.decoders`).map((d, k) => parseDecoder(d, `${path}.decoders[${k}]`, f)).filter((d): d is Decoder => d !== null);
      return (tokens) => steps.reduce((acc, d) => d(acc), tokens);
    }
    case 'BPEDecoder': {
      const suffix = o.suffix === undefined ? '</w>' : f.string(o.suffix, `${path}.suffix`);
      return (tokens) => tokens.map((t, i) => t.split(suffix).join(i === tokens.length - 1 ? '' : ' '));
    }
  }
  return null;
}

/** Byte-level tokens back to text; a token with characters outside the alphabet contributes its own UTF-8 bytes. */
function decodeByteLevel(tokens: string[]): string {
  const bytes: number[] = [];
  for (const t of tokens) {
    const start = bytes.length;
    let ok = true;
    for (let i = 0; i < t.length; i++) {
      const b = CHAR_TO_BYTE.get(t.charCodeAt(i));
      if (b === undefined) {
        ok = false;
        break;
      }
      bytes.push(b);
    }
    if (!ok) {
      bytes.length = start;
      for (const b of UTF8.encode(t)) bytes.push(b);
    }
  }
  return LOSSY_UTF8.decode(Uint8Array.from(bytes));
}

const BYTE_TOKEN = /^<0x([0-9A-Fa-f]{2})>$/;

function decodeByteFallback(tokens: string[]): string[] {
  const out: string[] = [];
  let pending: number[] = [];
  const flush = (): void => {
    if (pending.length === 0) return;
    try {
      out.push(STRICT_UTF8.decode(Uint8Array.from(pending)));
    } catch {
      for (let k = 0; k < pending.length; k++) out.push('\ufffd');
    }
    pending = [];
  };
  for (const t of tokens) {
    const m = t.length === 6 ? BYTE_TOKEN.exec(t) : null;
    if (m !== null) pending.push(parseInt(m[1], 16));
    else {
      flush();
      out.push(t);
    }
  }
  flush();
  return out;
}

function stripChars(t: string, content: string, start: number, stop: number): string {
  const chars = [...t];
  let a = 0;
  while (a < start && a < chars.length && chars[a] === content) a++;
  let b = chars.length;
  while (chars.length - b < stop && b > a && chars[b - 1] === content) b--;
  return chars.slice(a, b).join('');
}

// Post-processors: what a single sequence gets around it when special tokens are added.

interface Around {
  prefix: number[];
  suffix: number[];
  prefixTokens: string[];
  suffixTokens: string[];
}

const POST_TYPES = ['TemplateProcessing', 'ByteLevel', 'Sequence', 'RobertaProcessing', 'BertProcessing'] as const;

function parsePostProcessor(v: unknown, path: string, f: JsonFields): Around {
  const none: Around = { prefix: [], suffix: [], prefixTokens: [], suffixTokens: [] };
  if (v === undefined || v === null) return none;
  const o = f.object(v, path);
  const type = f.type(o, path, POST_TYPES);
  switch (type) {
    case 'ByteLevel':
      return none;
    case 'Sequence': {
      const all = f.array(o.processors, `${path}.processors`).map((p, k) => parsePostProcessor(p, `${path}.processors[${k}]`, f));
      return all.reduce((acc, a) => ({
        prefix: [...a.prefix, ...acc.prefix],
        suffix: [...acc.suffix, ...a.suffix],
        prefixTokens: [...a.prefixTokens, ...acc.prefixTokens],
        suffixTokens: [...acc.suffixTokens, ...a.suffixTokens],
      }), none);
    }
    case 'RobertaProcessing':
    case 'BertProcessing': {
      const pair = (x: unknown, p: string): [string, number] => {
        const a = f.array(x, p);
        if (a.length !== 2) f.fail(p, '[token, id]', x);
        return [f.string(a[0], `${p}[0]`), f.index(a[1], `${p}[1]`)];
      };
      const cls = pair(o.cls, `${path}.cls`);
      const sep = pair(o.sep, `${path}.sep`);
      return { prefix: [cls[1]], suffix: [sep[1]], prefixTokens: [cls[0]], suffixTokens: [sep[0]] };
    }
    case 'TemplateProcessing':
      return parseTemplateProcessing(o, path, f);
  }
  return none;
}

function parseTemplateProcessing(o: Record<string, unknown>, path: string, f: JsonFields): Around {
  const specials = new Map<string, { ids: number[]; tokens: string[] }>();
  const table = o.special_tokens === undefined ? {} : f.object(o.special_tokens, `${path}.special_tokens`);
  for (const [name, entry] of Object.entries(table)) {
    const p = `${path}.special_tokens[${JSON.stringify(name)}]`;
    const e = f.object(entry, p);
    const ids = f.array(e.ids, `${p}.ids`).map((x, k) => f.index(x, `${p}.ids[${k}]`));
    const tokens = e.tokens === undefined ? ids.map(() => name) : f.array(e.tokens, `${p}.tokens`).map((x, k) => f.string(x, `${p}.tokens[${k}]`));
    specials.set(name, { ids, tokens });
  }
  const items: { special: string | null }[] = [];
  const single = o.single;
  if (typeof single === 'string') {
    for (const word of single.split(/\s+/).filter((w) => w.length > 0)) {
      const name = word.replace(/:\d+$/, '');
      items.push({ special: name.startsWith('$') ? null : name });
    }
  } else {
    f.array(single, `${path}.single`).forEach((item, k) => {
      const p = `${path}.single[${k}]`;
      const it = f.object(item, p);
      if (it.SpecialToken !== undefined) items.push({ special: f.string(f.object(it.SpecialToken, `${p}.SpecialToken`).id, `${p}.SpecialToken.id`) });
      else if (it.Sequence !== undefined) items.push({ special: null });
      else f.fail(p, '{"SpecialToken": ...} or {"Sequence": ...}', item);
    });
  }
  const around: Around = { prefix: [], suffix: [], prefixTokens: [], suffixTokens: [] };
  let seenSequence = false;
  items.forEach((it, k) => {
    if (it.special === null) {
      if (seenSequence) f.problem(`${path}.single[${k}]`, 'a single-sequence template may hold only one sequence');
      seenSequence = true;
      return;
    }
    const s = specials.get(it.special);
    if (s === undefined) f.problem(`${path}.single[${k}]`, `${JSON.stringify(it.special)} is not in ${path}.special_tokens`);
    (seenSequence ? around.suffix : around.prefix).push(...s.ids);
    (seenSequence ? around.suffixTokens : around.prefixTokens).push(...s.tokens);
  });
  return around;
}


const EOS_GUESSES = ['</s>', '<|end_of_text|>', '<|endoftext|>', '<eos>'];

/** A BPE tokenizer loaded from a Hugging Face tokenizer.json. */
export class Tokenizer {
  /** Largest id + 1 over the model vocabulary and the added tokens (what an embedding table must cover). */
  readonly vocabSize: number;
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  readonly bosId: number | null;
  readonly eosId: number | null;
  /** True for GPT-2-style byte-level tokenizers (pre_tokenizer has a ByteLevel step). */
  readonly byteLevel: boolean;
  readonly addedTokens: readonly AddedToken[];

  private readonly model: BpeModel;
  private readonly normalizer: Normalizer | null;
  private readonly preTokenizer: PreTokenizer | null;
  private readonly decoder: Decoder | null;
  private readonly around: Around;
  private readonly rawMatcher = new AddedTokenMatcher();
  private readonly normalizedMatcher = new AddedTokenMatcher();
  private readonly addedByContent = new Map<string, AddedToken>();
  private readonly addedById = new Map<number, AddedToken>();

  private constructor(doc: Record<string, unknown>, f: JsonFields, options: TokenizerOptions) {
    const m = f.object(doc.model, 'model');
    if (m.type !== undefined && m.type !== 'BPE') f.fail('model.type', 'BPE', m.type);
    if (m.type === undefined && m.merges === undefined) f.fail('model.type', 'BPE', m.type);
    this.model = new BpeModel(f);
    this.model.load(m);
    this.normalizer = parseNormalizer(doc.normalizer, 'normalizer', f);
    const pre = parsePreTokenizer(doc.pre_tokenizer, 'pre_tokenizer', f);
    this.preTokenizer = pre?.run ?? null;
    this.byteLevel = pre?.byteLevel ?? false;
    this.decoder = parseDecoder(doc.decoder, 'decoder', f);
    this.around = parsePostProcessor(doc.post_processor, 'post_processor', f);
    this.addedTokens = this.loadAddedTokens(doc.added_tokens, f);

    let maxId = this.model.tokens.length - 1;
    for (const t of this.addedTokens) maxId = Math.max(maxId, t.id);
    this.vocabSize = maxId + 1;

    this.bosToken = options.bosToken ?? this.around.prefixTokens[0] ?? null;
    this.eosToken = options.eosToken ?? EOS_GUESSES.find((t) => this.addedByContent.get(t)?.special === true) ?? null;
    this.bosId = this.bosToken === null ? null : this.tokenToId(this.bosToken) ?? null;
    this.eosId = this.eosToken === null ? null : this.tokenToId(this.eosToken) ?? null;
  }

  /** Parses a tokenizer.json (text or parsed JSON); malformed or unsupported content throws FormatError naming the field. */
  static fromJSON(json: unknown, options: TokenizerOptions = {}): Tokenizer {
    const f = new JsonFields(options.source ?? 'tokenizer.json');
    let doc = json;
    if (typeof json === 'string') {
      try {
        doc = JSON.parse(json);
      } catch (e) {
        throw new FormatError(f.source, `not valid JSON (${(e as Error).message})`);
      }
    }
    return new Tokenizer(f.object(doc, '(top level)'), f, options);
  }

  private loadAddedTokens(v: unknown, f: JsonFields): AddedToken[] {
    if (v === undefined || v === null) return [];
    const list = f.array(v, 'added_tokens').map((x, k): AddedToken => {
      const p = `added_tokens[${k}]`;
      const o = f.object(x, p);
      const content = f.string(o.content, `${p}.content`);
      const special = f.bool(o.special, `${p}.special`, false);
      const jsonId = f.index(o.id, `${p}.id`);
      return {
        // The tokenizers crate keeps the model's id when the content is already in the vocabulary.
        id: this.model.vocab.get(content) ?? jsonId,
        content,
        special,
        singleWord: f.bool(o.single_word, `${p}.single_word`, false),
        lstrip: f.bool(o.lstrip, `${p}.lstrip`, false),
        rstrip: f.bool(o.rstrip, `${p}.rstrip`, false),
        normalized: f.bool(o.normalized, `${p}.normalized`, !special),
      };
    });
    for (const t of list) {
      if (t.content.length === 0 || this.addedByContent.has(t.content)) continue;
      this.addedByContent.set(t.content, t);
      this.addedById.set(t.id, t);
      if (t.normalized) this.normalizedMatcher.add(this.normalizer === null ? t.content : this.normalizer(t.content), t);
      else this.rawMatcher.add(t.content, t);
    }
    return list;
  }

  /** Token ids for `text`. */
  encode(text: string, options: EncodeOptions = {}): number[] {
    const parseSpecial = options.parseSpecialTokens ?? true;
    const ids: number[] = [];
    if (options.addSpecialTokens ?? true) for (const id of this.around.prefix) ids.push(id);
    const raw: Segment[] = [];
    this.rawMatcher.split(text, true, parseSpecial, raw);
    for (const seg of raw) {
      if (seg.id >= 0) {
        ids.push(seg.id);
        continue;
      }
      const normalized = this.normalizer === null ? seg.text : this.normalizer(seg.text);
      const inner: Segment[] = [];
      this.normalizedMatcher.split(normalized, seg.start, parseSpecial, inner);
      for (const s of inner) {
        if (s.id >= 0) ids.push(s.id);
        else this.encodePlain({ text: s.text, start: s.start }, ids);
      }
    }
    if (options.addSpecialTokens ?? true) for (const id of this.around.suffix) ids.push(id);
    return ids;
  }

  private encodePlain(piece: Piece, out: number[]): void {
    const pieces = this.preTokenizer === null ? [piece] : this.preTokenizer([piece]);
    for (const p of pieces) this.model.tokenize(p.text, out);
  }

  /** The token strings `encode` would produce (vocabulary spellings, e.g. "Ġworld" or "▁world"). */
  tokenize(text: string, options: EncodeOptions = {}): string[] {
    return this.encode(text, options).map((id) => this.idToToken(id)!);
  }

  /** Text for `ids` through the file's decoder; ids outside the vocabulary are dropped, as Hugging Face does. */
  decode(ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    const skip = options.skipSpecialTokens ?? false;
    const tokens: string[] = [];
    for (let i = 0; i < ids.length; i++) {
      const added = this.addedById.get(ids[i]);
      if (added !== undefined && added.special && skip) continue;
      const t = this.idToToken(ids[i]);
      if (t !== undefined) tokens.push(t);
    }
    return this.decoder === null ? tokens.join(' ') : this.decoder(tokens).join('');
  }

  /** The id of a vocabulary entry or added token (added tokens first, as Hugging Face looks them up). */
  tokenToId(token: string): number | undefined {
    return this.addedByContent.get(token)?.id ?? this.model.vocab.get(token);
  }

  /** The token string for an id, or undefined outside the vocabulary. */
  idToToken(id: number): string | undefined {
    return this.addedById.get(id)?.content ?? this.model.tokens[id];
  }

  /** Whether `token` is a vocabulary entry or an added token. */
  hasToken(token: string): boolean {
    return this.tokenToId(token) !== undefined;
  }

  /** Whether the id is an added token flagged special. */
  isSpecial(id: number): boolean {
    return this.addedById.get(id)?.special ?? false;
  }
}
