/**
 * Chat templates: the ChatML and Llama-3 presets, a small sandboxed renderer for the Jinja subset
 * that Hugging Face chat_template strings use (interpreted from a parse tree, never eval/Function),
 * template selection, and an incremental helper that yields only the text for new turns so a
 * caller can prefill just the new tokens into a KV cache. Browser-safe.
 */
import { LoomError } from '../core/errors.js';

/** A template failed to parse, referenced something unsupported, or called raise_exception. */
export class ChatTemplateError extends LoomError {
  override name = 'ChatTemplateError';
}

/** One conversation turn; extra fields (tool_calls, name, ...) are visible to Jinja templates. */
export interface ChatMessage {
  role: string;
  content: unknown;
  [field: string]: unknown;
}

/** Variables a template sees besides the messages. */
export interface RenderContext {
  addGenerationPrompt?: boolean;
  bosToken?: string;
  eosToken?: string;
  /** More template variables: tools, documents, date_string, enable_thinking, ... */
  variables?: Record<string, unknown>;
  /** The clock strftime_now reads (default: now). */
  now?: Date;
}

/** A compiled chat template (preset or Jinja). */
export interface ChatTemplate {
  readonly name: string;
  /** Text that ends an assistant turn for this template, when known (generation stops there). */
  readonly endOfTurn: string | null;
  render(messages: readonly ChatMessage[], context?: RenderContext): string;
}

/** renderChat's options: the template plus the render context. */
export interface RenderChatOptions extends RenderContext {
  /** A ChatTemplate, or Jinja source (compiled once and cached). */
  template: ChatTemplate | string;
}

function contentText(m: ChatMessage, where: string): string {
  if (typeof m.content !== 'string') throw new ChatTemplateError(`${where}: message content must be a string, got ${Array.isArray(m.content) ? 'an array' : typeof m.content}`);
  return m.content;
}

/** ChatML (Qwen, SmolLM2, ...): `<|im_start|>role\n content <|im_end|>\n`, generation prompt `<|im_start|>assistant\n`. */
export const CHATML: ChatTemplate = {
  name: 'chatml',
  endOfTurn: '<|im_end|>',
  render(messages, context = {}) {
    let out = '';
    for (const m of messages) out += `<|im_start|>${m.role}\n${contentText(m, 'chatml')}<|im_end|>\n`;
    if (context.addGenerationPrompt) out += '<|im_start|>assistant\n';
    return out;
  },
};

/** Llama-3: `<|begin_of_text|>` once, then `<|start_header_id|>role<|end_header_id|>\n\n content(trimmed) <|eot_id|>` per turn. */
export const LLAMA3: ChatTemplate = {
  name: 'llama3',
  endOfTurn: '<|eot_id|>',
  render(messages, context = {}) {
    let out = '<|begin_of_text|>';
    for (const m of messages) out += `<|start_header_id|>${m.role}<|end_header_id|>\n\n${pyStrip(contentText(m, 'llama3'))}<|eot_id|>`;
    if (context.addGenerationPrompt) out += '<|start_header_id|>assistant<|end_header_id|>\n\n';
    return out;
  },
};

/** What encodeChat needs from a tokenizer (structural, so this module does not depend on tokenizer.ts). */
export interface ChatTokenizer {
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  encode(text: string, options?: { addSpecialTokens?: boolean }): number[];
}

/** Renders and encodes a conversation as transformers' apply_chat_template(tokenize=True) does: the template writes BOS, so none is added again. */
export function encodeChat(tokenizer: ChatTokenizer, messages: readonly ChatMessage[], options: RenderChatOptions): number[] {
  const text = renderChat(messages, { bosToken: tokenizer.bosToken ?? '', eosToken: tokenizer.eosToken ?? '', ...options });
  return tokenizer.encode(text, { addSpecialTokens: false });
}

const compiledCache = new Map<string, ChatTemplate>();

/** Renders a conversation with a template (preset or Jinja source). */
export function renderChat(messages: readonly ChatMessage[], options: RenderChatOptions): string {
  const t = typeof options.template === 'string' ? compileCached(options.template) : options.template;
  return t.render(messages, options);
}

function compileCached(source: string): ChatTemplate {
  let t = compiledCache.get(source);
  if (t === undefined) {
    t = compileChatTemplate(source);
    if (compiledCache.size > 32) compiledCache.clear();
    compiledCache.set(source, t);
  }
  return t;
}

const END_MARKERS = ['<|im_end|>', '<|eot_id|>', '<end_of_turn>', '<|end|>', '<|eot|>'];

/** Parses a Jinja chat_template; syntax errors throw ChatTemplateError with the line. */
export function compileChatTemplate(source: string, name = 'chat_template'): ChatTemplate {
  const body = new Parser(lex(source)).parseTemplate();
  return {
    name,
    endOfTurn: END_MARKERS.find((m) => source.includes(m)) ?? null,
    render(messages, context = {}) {
      const vars: Record<string, unknown> = {
        messages: messages.map((m) => ({ ...m })),
        add_generation_prompt: context.addGenerationPrompt ?? false,
        bos_token: context.bosToken ?? '',
        eos_token: context.eosToken ?? '',
        ...context.variables,
      };
      return new Renderer(context.now ?? new Date()).render(body, vars);
    },
  };
}

/**
 * Picks a template: tokenizer_config.json's chat_template (a string, or a list of {name, template}
 * where "default" wins) when present, else ChatML or Llama-3 by which marker tokens exist.
 */
export function selectChatTemplate(chatTemplate: unknown, hasToken: (token: string) => boolean): ChatTemplate {
  if (typeof chatTemplate === 'string') return compileChatTemplate(chatTemplate);
  if (Array.isArray(chatTemplate)) {
    const named = chatTemplate.filter((t): t is { name: string; template: string } => t !== null && typeof t === 'object' && typeof t.name === 'string' && typeof t.template === 'string');
    if (named.length !== chatTemplate.length || named.length === 0) throw new ChatTemplateError('chat_template: expected a string or a list of {"name", "template"} objects');
    const pick = named.find((t) => t.name === 'default') ?? named[0];
    return compileChatTemplate(pick.template, `chat_template ${pick.name}`);
  }
  if (chatTemplate !== undefined && chatTemplate !== null) throw new ChatTemplateError('chat_template: expected a string or a list of {"name", "template"} objects');
  if (hasToken('<|im_start|>') && hasToken('<|im_end|>')) return CHATML;
  if (hasToken('<|start_header_id|>') && hasToken('<|eot_id|>')) return LLAMA3;
  throw new ChatTemplateError('no chat template: no chat_template was given and the vocabulary has neither ChatML (<|im_start|>) nor Llama-3 (<|start_header_id|>) markers');
}

/** nextTurnText's answer. */
export interface NextTurn {
  /** What to prefill: the full render minus the cached prefix (everything when `reset`). */
  text: string;
  /** The whole conversation as rendered now. */
  full: string;
  /** True when the cached text is not a prefix of the new render, so the cache must be rebuilt. */
  reset: boolean;
}

/**
 * The text for turns that the KV cache does not hold yet: renders `messages` (with the generation
 * prompt, by default) and strips `cachedText`, the text already prefilled plus what the model
 * generated. Exact at token level when the boundary falls on a special token, as it does for
 * ChatML and Llama-3 (the cache ends at the reply or its end-of-turn token).
 */
export function nextTurnText(cachedText: string, messages: readonly ChatMessage[], options: RenderChatOptions): NextTurn {
  const full = renderChat(messages, { addGenerationPrompt: true, ...options });
  if (full.startsWith(cachedText)) return { text: full.slice(cachedText.length), full, reset: false };
  return { text: full, full, reset: true };
}

/** Tracks what a KV cache holds for one conversation and hands out only the new text each turn. */
export class IncrementalChat {
  private cached = '';

  constructor(private readonly options: RenderChatOptions) {}

  /** The text already in the cache. */
  get cachedText(): string {
    return this.cached;
  }

  /** Text to prefill for the whole conversation `messages`; afterwards the cache is taken to hold the full render. */
  prefill(messages: readonly ChatMessage[]): NextTurn {
    const turn = nextTurnText(this.cached, messages, this.options);
    this.cached = turn.full;
    return turn;
  }

  /** Records text the model generated and that now sits in the cache (its reply, plus the end-of-turn token if it was fed back). */
  accept(generated: string): void {
    this.cached += generated;
  }

  reset(): void {
    this.cached = '';
  }
}

// Jinja subset: lexer.

type TokKind = 'name' | 'string' | 'number' | 'op' | 'end';

interface Tok {
  kind: TokKind;
  value: string;
  num?: number;
  line: number;
}

type Chunk = { kind: 'text'; text: string } | { kind: 'output' | 'block'; toks: Tok[]; line: number };

const PY_SPACE = /[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/;
const OPS = ['**', '//', '==', '!=', '<=', '>=', '+', '-', '*', '/', '%', '~', '<', '>', '(', ')', '[', ']', '{', '}', ',', '.', ':', '|', '='];

function isPySpace(c: string): boolean {
  return PY_SPACE.test(c);
}

function pyStrip(s: string, chars?: string): string {
  const test = chars === undefined ? isPySpace : (c: string) => chars.includes(c);
  let a = 0;
  let b = s.length;
  while (a < b && test(s[a])) a++;
  while (b > a && test(s[b - 1])) b--;
  return s.slice(a, b);
}

function pyRstrip(s: string, chars?: string): string {
  const test = chars === undefined ? isPySpace : (c: string) => chars.includes(c);
  let b = s.length;
  while (b > 0 && test(s[b - 1])) b--;
  return s.slice(0, b);
}

function pyLstrip(s: string, chars?: string): string {
  const test = chars === undefined ? isPySpace : (c: string) => chars.includes(c);
  let a = 0;
  while (a < s.length && test(s[a])) a++;
  return s.slice(a);
}

/**
 * Splits the source into text and tags with Jinja's whitespace rules as transformers configures them
 * (trim_blocks, lstrip_blocks, `-`/`+` markers, newlines normalized, one trailing newline dropped).
 */
function lex(input: string): Chunk[] {
  let src = input.replace(/\r\n?/g, '\n');
  if (src.endsWith('\n')) src = src.slice(0, -1);
  const chunks: Chunk[] = [];
  let i = 0;
  let line = 1;
  let lineStarting = true;
  let stripNext = false;
  let trimNewline = false;
  const pushText = (text: string): void => {
    if (text.length > 0) chunks.push({ kind: 'text', text });
  };
  while (i <= src.length) {
    const open = findTagOpen(src, i);
    let text = src.slice(i, open < 0 ? src.length : open);
    if (stripNext) text = pyLstrip(text);
    else if (trimNewline && text.startsWith('\n')) text = text.slice(1);
    stripNext = false;
    trimNewline = false;
    if (open < 0) {
      pushText(text);
      break;
    }
    const kind = src[open + 1];
    const marker = src[open + 2];
    if (marker === '-') text = pyRstrip(text);
    else if (marker !== '+' && kind !== '{') {
      const lastNl = text.lastIndexOf('\n');
      if (lastNl >= 0 || lineStarting) {
        const tail = text.slice(lastNl + 1);
        if (/^[ \t]*$/.test(tail)) text = text.slice(0, lastNl + 1);
      }
    }
    pushText(text);
    line += countNewlines(src, i, open);
    let j = open + 2 + (marker === '-' || marker === '+' ? 1 : 0);
    const tagLine = line;
    if (kind === '#') {
      const end = src.indexOf('#}', j);
      if (end < 0) throw new ChatTemplateError(`chat template line ${tagLine}: unterminated comment`);
      const stripMark = src[end - 1] === '-' && end - 1 >= j;
      const keepMark = src[end - 1] === '+' && end - 1 >= j;
      line += countNewlines(src, j, end);
      i = end + 2;
      stripNext = stripMark;
      trimNewline = !stripMark && !keepMark;
      lineStarting = startsLine(src, i, stripNext, trimNewline);
      continue;
    }
    const closer = kind === '{' ? '}}' : '%}';
    const toks: Tok[] = [];
    for (;;) {
      while (j < src.length && isPySpace(src[j])) {
        if (src[j] === '\n') line++;
        j++;
      }
      if (j >= src.length) throw new ChatTemplateError(`chat template line ${tagLine}: unterminated ${kind === '{' ? '{{' : '{%'}`);
      if (src.startsWith(closer, j)) {
        i = j + 2;
        trimNewline = kind === '%';
        break;
      }
      if ((src[j] === '-' || src[j] === '+') && src.startsWith(closer, j + 1)) {
        i = j + 3;
        stripNext = src[j] === '-';
        trimNewline = false;
        break;
      }
      j = lexToken(src, j, line, toks);
    }
    lineStarting = startsLine(src, i, stripNext, trimNewline);
    chunks.push({ kind: kind === '{' ? 'output' : 'block', toks, line: tagLine });
  }
  return chunks;
}

/** Whether the text after a tag ending at `i` starts a line once the tag has eaten its whitespace (Jinja's line_starting). */
function startsLine(src: string, i: number, strip: boolean, trim: boolean): boolean {
  if (trim) return src[i] === '\n';
  if (!strip) return false;
  let k = i;
  while (k < src.length && isPySpace(src[k])) k++;
  return k > i && src[k - 1] === '\n';
}

function findTagOpen(src: string, from: number): number {
  for (let k = src.indexOf('{', from); k >= 0; k = src.indexOf('{', k + 1)) {
    const c = src[k + 1];
    if (c === '{' || c === '%' || c === '#') return k;
  }
  return -1;
}

function countNewlines(s: string, a: number, b: number): number {
  let n = 0;
  for (let k = a; k < b; k++) if (s.charCodeAt(k) === 10) n++;
  return n;
}

function lexToken(src: string, j: number, line: number, toks: Tok[]): number {
  const c = src[j];
  if (c === '"' || c === "'") {
    let k = j + 1;
    let value = '';
    while (k < src.length && src[k] !== c) {
      if (src[k] === '\\' && k + 1 < src.length) {
        const e = src[k + 1];
        const simple: Record<string, string> = { n: '\n', t: '\t', r: '\r', '\\': '\\', "'": "'", '"': '"', '0': '\0', a: '\x07', b: '\b', f: '\f', v: '\v', '\n': '' };
        if (e in simple) {
          value += simple[e];
          k += 2;
        } else if (e === 'x' || e === 'u' || e === 'U') {
          const n = e === 'x' ? 2 : e === 'u' ? 4 : 8;
          const hex = src.slice(k + 2, k + 2 + n);
          if (!new RegExp(`^[0-9a-fA-F]{${n}}$`).test(hex)) throw new ChatTemplateError(`chat template line ${line}: bad \\${e} escape`);
          value += String.fromCodePoint(parseInt(hex, 16));
          k += 2 + n;
        } else {
          value += `\\${e}`;
          k += 2;
        }
      } else {
        value += src[k++];
      }
    }
    if (k >= src.length) throw new ChatTemplateError(`chat template line ${line}: unterminated string`);
    toks.push({ kind: 'string', value, line });
    return k + 1;
  }
  const num = /^(\d[\d_]*)(\.\d[\d_]*)?([eE][+-]?\d+)?/.exec(src.slice(j, j + 64));
  if (num !== null) {
    const text = num[0].replace(/_/g, '');
    toks.push({ kind: 'number', value: num[0], num: Number(text), line });
    return j + num[0].length;
  }
  const name = /^[A-Za-z_][A-Za-z0-9_]*/.exec(src.slice(j, j + 256));
  if (name !== null) {
    toks.push({ kind: 'name', value: name[0], line });
    return j + name[0].length;
  }
  for (const op of OPS) {
    if (src.startsWith(op, j)) {
      toks.push({ kind: 'op', value: op, line });
      return j + op.length;
    }
  }
  throw new ChatTemplateError(`chat template line ${line}: unexpected character ${JSON.stringify(c)}`);
}

// Parse tree.

type Expr =
  | { k: 'const'; v: unknown }
  | { k: 'name'; name: string }
  | { k: 'list'; items: Expr[] }
  | { k: 'dict'; entries: [Expr, Expr][] }
  | { k: 'attr'; obj: Expr; name: string }
  | { k: 'item'; obj: Expr; key: Expr }
  | { k: 'slice'; obj: Expr; start: Expr | null; stop: Expr | null; step: Expr | null }
  | { k: 'call'; fn: Expr; args: Expr[]; kwargs: [string, Expr][] }
  | { k: 'filter'; value: Expr; name: string; args: Expr[]; kwargs: [string, Expr][]; line: number }
  | { k: 'test'; value: Expr; name: string; args: Expr[]; negate: boolean; line: number }
  | { k: 'unary'; op: string; value: Expr }
  | { k: 'binary'; op: string; left: Expr; right: Expr; line: number }
  | { k: 'compare'; first: Expr; rest: [string, Expr][] }
  | { k: 'and' | 'or'; left: Expr; right: Expr }
  | { k: 'cond'; test: Expr; then: Expr; else: Expr | null };

type Target = { k: 'name'; name: string } | { k: 'attr'; obj: string; name: string } | { k: 'tuple'; names: string[] };

type Node =
  | { k: 'text'; text: string }
  | { k: 'output'; expr: Expr }
  | { k: 'if'; branches: [Expr, Node[]][]; otherwise: Node[] }
  | { k: 'for'; target: Target; iter: Expr; filter: Expr | null; body: Node[]; otherwise: Node[] }
  | { k: 'set'; target: Target; value: Expr }
  | { k: 'setBlock'; name: string; body: Node[] }
  | { k: 'macro'; name: string; params: [string, Expr | null][]; body: Node[] }
  | { k: 'break' }
  | { k: 'continue' };

const MAX_TEMPLATE_NESTING = 100;

class Parser {
  private c = 0;
  private toks: Tok[] = [];
  private p = 0;
  private line = 1;
  private depth = 0;

  constructor(private readonly chunks: Chunk[]) {}

  /** Nesting is bounded so a hostile template gets an error, not a stack overflow. */
  private nested<T>(parse: () => T): T {
    if (++this.depth > MAX_TEMPLATE_NESTING) this.fail(`nesting deeper than ${MAX_TEMPLATE_NESTING} levels`);
    try {
      return parse();
    } finally {
      this.depth--;
    }
  }

  parseTemplate(): Node[] {
    const { nodes, end } = this.parseBody([]);
    if (end !== null) this.fail(`unexpected {% ${end} %}`);
    return nodes;
  }

  private fail(msg: string): never {
    throw new ChatTemplateError(`chat template line ${this.line}: ${msg}`);
  }

  /** Parses nodes until one of `ends` opens a block tag; returns that tag's name (tokens positioned after it). */
  private parseBody(ends: string[]): { nodes: Node[]; end: string | null } {
    return this.nested(() => this.parseBodyNodes(ends));
  }

  private parseBodyNodes(ends: string[]): { nodes: Node[]; end: string | null } {
    const nodes: Node[] = [];
    while (this.c < this.chunks.length) {
      const chunk = this.chunks[this.c++];
      if (chunk.kind === 'text') {
        nodes.push({ k: 'text', text: chunk.text });
        continue;
      }
      this.toks = chunk.toks;
      this.p = 0;
      this.line = chunk.line;
      if (chunk.kind === 'output') {
        const expr = this.expr();
        this.expectEnd();
        nodes.push({ k: 'output', expr });
        continue;
      }
      const tag = this.nameTok();
      if (ends.includes(tag)) return { nodes, end: tag };
      nodes.push(this.statement(tag));
    }
    if (ends.length > 0) this.fail(`missing {% ${ends[ends.length - 1]} %}`);
    return { nodes, end: null };
  }

  private statement(tag: string): Node {
    switch (tag) {
      case 'if': {
        const branches: [Expr, Node[]][] = [];
        let test = this.expr();
        this.expectEnd();
        for (;;) {
          const { nodes, end } = this.parseBody(['elif', 'else', 'endif']);
          branches.push([test, nodes]);
          if (end === 'elif') {
            test = this.expr();
            this.expectEnd();
            continue;
          }
          if (end === 'else') {
            this.expectEnd();
            const rest = this.parseBody(['endif']);
            this.expectEnd();
            return { k: 'if', branches, otherwise: rest.nodes };
          }
          this.expectEnd();
          return { k: 'if', branches, otherwise: [] };
        }
      }
      case 'for': {
        const target = this.assignTarget(false);
        this.expectName('in');
        const iter = this.expr(false);
        let filter: Expr | null = null;
        if (this.peekName('if')) {
          this.p++;
          filter = this.expr();
        }
        if (this.peekName('recursive')) this.fail('recursive loops are not supported');
        this.expectEnd();
        const body = this.parseBody(['else', 'endfor']);
        let otherwise: Node[] = [];
        this.expectEnd();
        if (body.end === 'else') {
          otherwise = this.parseBody(['endfor']).nodes;
          this.expectEnd();
        }
        return { k: 'for', target, iter, filter, body: body.nodes, otherwise };
      }
      case 'set': {
        const target = this.assignTarget(true);
        if (this.atEnd()) {
          if (target.k !== 'name') this.fail('a block set needs a plain name');
          const body = this.parseBody(['endset']);
          this.expectEnd();
          return { k: 'setBlock', name: target.name, body: body.nodes };
        }
        this.expectOp('=');
        const value = this.tupleExpr();
        this.expectEnd();
        return { k: 'set', target, value };
      }
      case 'macro': {
        const name = this.nameTok();
        this.expectOp('(');
        const params: [string, Expr | null][] = [];
        while (!this.peekOp(')')) {
          const pname = this.nameTok();
          let dflt: Expr | null = null;
          if (this.peekOp('=')) {
            this.p++;
            dflt = this.expr();
          }
          params.push([pname, dflt]);
          if (!this.peekOp(')')) this.expectOp(',');
        }
        this.p++;
        this.expectEnd();
        const body = this.parseBody(['endmacro']);
        this.expectEnd();
        return { k: 'macro', name, params, body: body.nodes };
      }
      case 'break':
      case 'continue':
        this.expectEnd();
        return { k: tag };
      case 'generation': {
        this.expectEnd();
        const body = this.parseBody(['endgeneration']);
        this.expectEnd();
        return { k: 'if', branches: [[{ k: 'const', v: true }, body.nodes]], otherwise: [] };
      }
      default:
        if (/^(end|elif$|else$)/.test(tag)) this.fail(`unexpected {% ${tag} %}`);
        this.fail(`unsupported tag {% ${tag} %}`);
    }
  }

  private assignTarget(allowAttr: boolean): Target {
    const paren = this.peekOp('(');
    if (paren) this.p++;
    const first = this.nameTok();
    if (allowAttr && this.peekOp('.')) {
      this.p++;
      return { k: 'attr', obj: first, name: this.nameTok() };
    }
    const names = [first];
    while (this.peekOp(',')) {
      this.p++;
      names.push(this.nameTok());
    }
    if (paren) this.expectOp(')');
    return names.length === 1 && !paren ? { k: 'name', name: first } : { k: 'tuple', names };
  }

  // ---- token helpers
  private peek(): Tok | undefined {
    return this.toks[this.p];
  }

  private atEnd(): boolean {
    return this.p >= this.toks.length;
  }

  private expectEnd(): void {
    if (!this.atEnd()) this.fail(`unexpected ${JSON.stringify(this.toks[this.p].value)}`);
  }

  private peekOp(op: string): boolean {
    const t = this.peek();
    return t !== undefined && t.kind === 'op' && t.value === op;
  }

  private peekName(name: string): boolean {
    const t = this.peek();
    return t !== undefined && t.kind === 'name' && t.value === name;
  }

  private expectOp(op: string): void {
    if (!this.peekOp(op)) this.fail(`expected "${op}"${this.atEnd() ? ' before the end of the tag' : `, got ${JSON.stringify(this.peek()!.value)}`}`);
    this.p++;
  }

  private expectName(name: string): void {
    if (!this.peekName(name)) this.fail(`expected "${name}"`);
    this.p++;
  }

  private nameTok(): string {
    const t = this.peek();
    if (t === undefined || t.kind !== 'name') this.fail(`expected a name${t === undefined ? '' : `, got ${JSON.stringify(t.value)}`}`);
    this.p++;
    return t.value;
  }

  // ---- expressions, in Jinja2's precedence order
  private tupleExpr(): Expr {
    const first = this.expr();
    if (!this.peekOp(',')) return first;
    const items = [first];
    while (this.peekOp(',')) {
      this.p++;
      if (this.atEnd() || this.peekOp(')')) break;
      items.push(this.expr());
    }
    return { k: 'list', items };
  }

  expr(withCond = true): Expr {
    return this.nested(() => this.condExpr(withCond));
  }

  private condExpr(withCond: boolean): Expr {
    let e = this.orExpr();
    while (withCond && this.peekName('if')) {
      this.p++;
      const test = this.orExpr();
      let otherwise: Expr | null = null;
      if (this.peekName('else')) {
        this.p++;
        otherwise = this.expr();
      }
      e = { k: 'cond', test, then: e, else: otherwise };
    }
    return e;
  }

  private orExpr(): Expr {
    let e = this.andExpr();
    while (this.peekName('or')) {
      this.p++;
      e = { k: 'or', left: e, right: this.andExpr() };
    }
    return e;
  }

  private andExpr(): Expr {
    let e = this.notExpr();
    while (this.peekName('and')) {
      this.p++;
      e = { k: 'and', left: e, right: this.notExpr() };
    }
    return e;
  }

  private notExpr(): Expr {
    if (this.peekName('not')) {
      this.p++;
      return { k: 'unary', op: 'not', value: this.nested(() => this.notExpr()) };
    }
    return this.compare();
  }

  private compare(): Expr {
    const first = this.math1();
    const rest: [string, Expr][] = [];
    for (;;) {
      const t = this.peek();
      if (t === undefined) break;
      if (t.kind === 'op' && ['==', '!=', '<', '>', '<=', '>='].includes(t.value)) {
        this.p++;
        rest.push([t.value, this.math1()]);
      } else if (t.kind === 'name' && t.value === 'in') {
        this.p++;
        rest.push(['in', this.math1()]);
      } else if (t.kind === 'name' && t.value === 'not' && this.toks[this.p + 1]?.kind === 'name' && this.toks[this.p + 1].value === 'in') {
        this.p += 2;
        rest.push(['notin', this.math1()]);
      } else break;
    }
    return rest.length === 0 ? first : { k: 'compare', first, rest };
  }

  private binaryLevel(ops: string[], next: () => Expr): Expr {
    let e = next();
    for (;;) {
      const t = this.peek();
      if (t === undefined || t.kind !== 'op' || !ops.includes(t.value)) return e;
      this.p++;
      e = { k: 'binary', op: t.value, left: e, right: next(), line: t.line };
    }
  }

  private math1(): Expr {
    return this.binaryLevel(['+', '-'], () => this.concat());
  }

  private concat(): Expr {
    return this.binaryLevel(['~'], () => this.math2());
  }

  private math2(): Expr {
    return this.binaryLevel(['*', '/', '//', '%'], () => this.pow());
  }

  private pow(): Expr {
    return this.binaryLevel(['**'], () => this.unary(true));
  }

  private unary(withFilter: boolean): Expr {
    let e: Expr;
    if (this.peekOp('-') || this.peekOp('+')) {
      const op = this.peek()!.value;
      this.p++;
      e = { k: 'unary', op, value: this.nested(() => this.unary(false)) };
    } else {
      e = this.primary();
    }
    e = this.postfix(e);
    return withFilter ? this.filters(e) : e;
  }

  private primary(): Expr {
    const t = this.peek();
    if (t === undefined) this.fail('expected an expression before the end of the tag');
    this.p++;
    switch (t.kind) {
      case 'string': {
        let v = t.value;
        while (this.peek()?.kind === 'string') v += this.toks[this.p++].value;
        return { k: 'const', v };
      }
      case 'number':
        return { k: 'const', v: t.num };
      case 'name': {
        const consts: Record<string, unknown> = { true: true, True: true, false: false, False: false, none: null, None: null };
        if (t.value in consts) return { k: 'const', v: consts[t.value] };
        return { k: 'name', name: t.value };
      }
      case 'op':
        if (t.value === '(') {
          if (this.peekOp(')')) {
            this.p++;
            return { k: 'list', items: [] };
          }
          const e = this.tupleExpr();
          this.expectOp(')');
          return e;
        }
        if (t.value === '[') {
          const items: Expr[] = [];
          while (!this.peekOp(']')) {
            items.push(this.expr());
            if (!this.peekOp(']')) this.expectOp(',');
          }
          this.p++;
          return { k: 'list', items };
        }
        if (t.value === '{') {
          const entries: [Expr, Expr][] = [];
          while (!this.peekOp('}')) {
            const key = this.expr();
            this.expectOp(':');
            entries.push([key, this.expr()]);
            if (!this.peekOp('}')) this.expectOp(',');
          }
          this.p++;
          return { k: 'dict', entries };
        }
    }
    this.fail(`unexpected ${JSON.stringify(t.value)}`);
  }

  private postfix(e: Expr): Expr {
    for (;;) {
      if (this.peekOp('.')) {
        this.p++;
        const t = this.peek();
        if (t?.kind === 'number' && Number.isInteger(t.num)) {
          this.p++;
          e = { k: 'item', obj: e, key: { k: 'const', v: t.num } };
        } else e = { k: 'attr', obj: e, name: this.nameTok() };
      } else if (this.peekOp('[')) {
        this.p++;
        e = this.subscript(e);
      } else if (this.peekOp('(')) {
        this.p++;
        const { args, kwargs } = this.callArgs();
        e = { k: 'call', fn: e, args, kwargs };
      } else return e;
    }
  }

  private subscript(obj: Expr): Expr {
    const parts: (Expr | null)[] = [null];
    let colons = 0;
    while (!this.peekOp(']')) {
      if (this.peekOp(':')) {
        this.p++;
        colons++;
        parts.push(null);
        if (colons > 2) this.fail('too many ":" in a slice');
        continue;
      }
      if (parts[parts.length - 1] !== null) this.fail('expected "]"');
      parts[parts.length - 1] = this.expr();
    }
    this.p++;
    if (colons === 0) {
      if (parts[0] === null) this.fail('empty subscript');
      return { k: 'item', obj, key: parts[0] };
    }
    return { k: 'slice', obj, start: parts[0], stop: parts[1] ?? null, step: parts[2] ?? null };
  }

  /** After "(": positional and keyword arguments up to ")". */
  private callArgs(): { args: Expr[]; kwargs: [string, Expr][] } {
    const args: Expr[] = [];
    const kwargs: [string, Expr][] = [];
    while (!this.peekOp(')')) {
      const t = this.peek();
      const nxt = this.toks[this.p + 1];
      if (t?.kind === 'name' && nxt?.kind === 'op' && nxt.value === '=') {
        this.p += 2;
        kwargs.push([t.value, this.expr()]);
      } else {
        if (kwargs.length > 0) this.fail('positional argument after keyword argument');
        args.push(this.expr());
      }
      if (!this.peekOp(')')) this.expectOp(',');
    }
    this.p++;
    return { args, kwargs };
  }

  private filters(e: Expr): Expr {
    for (;;) {
      if (this.peekOp('|')) {
        const line = this.peek()!.line;
        this.p++;
        const name = this.nameTok();
        let args: Expr[] = [];
        let kwargs: [string, Expr][] = [];
        if (this.peekOp('(')) {
          this.p++;
          ({ args, kwargs } = this.callArgs());
        }
        e = { k: 'filter', value: e, name, args, kwargs, line };
      } else if (this.peekName('is')) {
        const line = this.peek()!.line;
        this.p++;
        let negate = false;
        if (this.peekName('not')) {
          this.p++;
          negate = true;
        }
        const name = this.nameTok();
        let args: Expr[] = [];
        const t = this.peek();
        if (this.peekOp('(')) {
          this.p++;
          args = this.callArgs().args;
        } else if (t !== undefined && (t.kind === 'string' || t.kind === 'number' || (t.kind === 'name' && !['else', 'or', 'and', 'if', 'is', 'in', 'not'].includes(t.value)) || (t.kind === 'op' && ['[', '{'].includes(t.value)))) {
          args = [this.postfix(this.primary())];
        }
        e = { k: 'test', value: e, name, args, negate, line };
      } else if (this.peekOp('(')) {
        this.p++;
        const { args, kwargs } = this.callArgs();
        e = { k: 'call', fn: e, args, kwargs };
      } else return e;
    }
  }
}

// Evaluation.

type Args = { args: unknown[]; kwargs: Map<string, unknown> };

class JFunc {
  constructor(
    readonly name: string,
    readonly fn: (a: Args) => unknown,
  ) {}
}

class Namespace {
  readonly vars = new Map<string, unknown>();
}

class Scope {
  private readonly vars = new Map<string, unknown>();

  constructor(readonly parent: Scope | null) {}

  get(name: string): unknown {
    for (let s: Scope | null = this; s !== null; s = s.parent) if (s.vars.has(name)) return s.vars.get(name);
    return undefined;
  }

  set(name: string, v: unknown): void {
    this.vars.set(name, v);
  }
}

const BREAK = 1;
const CONTINUE = 2;
const MAX_STEPS = 5_000_000;
const MAX_OUTPUT = 1 << 26;
const MAX_DEPTH = 64;

function isDict(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof JFunc) && !(v instanceof Namespace);
}

function own(o: Record<string, unknown>, k: string): unknown {
  return Object.prototype.hasOwnProperty.call(o, k) ? o[k] : undefined;
}

function truthy(v: unknown): boolean {
  if (v === undefined || v === null || v === false || v === 0 || v === '') return false;
  if (Array.isArray(v)) return v.length > 0;
  if (isDict(v)) return Object.keys(v).length > 0;
  return true;
}

function typeName(v: unknown): string {
  if (v === undefined) return 'Undefined';
  if (v === null) return 'NoneType';
  if (typeof v === 'string') return 'str';
  if (typeof v === 'number') return Number.isInteger(v) ? 'int' : 'float';
  if (typeof v === 'boolean') return 'bool';
  if (Array.isArray(v)) return 'list';
  if (v instanceof JFunc) return 'function';
  return 'dict';
}

function pyStr(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v === undefined) return '';
  return pyRepr(v);
}

function pyRepr(v: unknown): string {
  if (v === undefined) return '';
  if (v === null) return 'None';
  if (v === true) return 'True';
  if (v === false) return 'False';
  if (typeof v === 'number') return pyNumber(v);
  if (typeof v === 'string') {
    const q = v.includes("'") && !v.includes('"') ? '"' : "'";
    let out = q;
    for (const ch of v) {
      if (ch === '\\' || ch === q) out += `\\${ch}`;
      else if (ch === '\n') out += '\\n';
      else if (ch === '\r') out += '\\r';
      else if (ch === '\t') out += '\\t';
      else if (ch.charCodeAt(0) < 0x20 || ch === '\x7f') out += `\\x${ch.charCodeAt(0).toString(16).padStart(2, '0')}`;
      else out += ch;
    }
    return out + q;
  }
  if (Array.isArray(v)) return `[${v.map(pyRepr).join(', ')}]`;
  if (v instanceof JFunc) return `<function ${v.name}>`;
  if (v instanceof Namespace) return '<Namespace>';
  if (isDict(v)) return `{${Object.entries(v).map(([k, x]) => `${pyRepr(k)}: ${pyRepr(x)}`).join(', ')}}`;
  return String(v);
}

function pyNumber(n: number): string {
  if (Number.isNaN(n)) return 'nan';
  if (!Number.isFinite(n)) return n > 0 ? 'inf' : '-inf';
  return String(n);
}

/** Python's json.dumps(ensure_ascii=False), which transformers' tojson filter calls. */
function pyJson(v: unknown, indent: number | null, level = 0): string {
  if (v === undefined || v === null) return 'null';
  if (v === true) return 'true';
  if (v === false) return 'false';
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : Number.isNaN(v) ? 'NaN' : v > 0 ? 'Infinity' : '-Infinity';
  if (typeof v === 'string') return JSON.stringify(v);
  const entries: [string | null, unknown][] = Array.isArray(v) ? v.map((x) => [null, x]) : isDict(v) ? Object.entries(v) : v instanceof Namespace ? [...v.vars] : [];
  const [open, close] = Array.isArray(v) ? ['[', ']'] : ['{', '}'];
  if (entries.length === 0) return open + close;
  const parts = entries.map(([k, x]) => (k === null ? '' : `${JSON.stringify(k)}: `) + pyJson(x, indent, level + 1));
  if (indent === null) return open + parts.join(', ') + close;
  const pad = '\n' + ' '.repeat(indent * (level + 1));
  return open + pad + parts.join(',' + pad) + '\n' + ' '.repeat(indent * level) + close;
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  const numeric = (x: unknown): boolean => typeof x === 'number' || typeof x === 'boolean';
  if (numeric(a) && numeric(b)) return Number(a) === Number(b);
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  if (isDict(a) && isDict(b)) {
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && deepEqual(a[k], b[k]));
  }
  return false;
}

/** Python's str.split: on runs of whitespace when `sep` is undefined, at most `max` splits when max >= 0. */
function pySplit(s: string, sep: string | undefined, max: number): string[] {
  if (sep !== undefined) {
    const parts = s.split(sep);
    return max >= 0 && parts.length > max + 1 ? [...parts.slice(0, max), parts.slice(max).join(sep)] : parts;
  }
  const out: string[] = [];
  let i = 0;
  for (;;) {
    while (i < s.length && isPySpace(s[i])) i++;
    if (i >= s.length) break;
    if (max >= 0 && out.length === max) {
      out.push(s.slice(i));
      break;
    }
    let j = i;
    while (j < s.length && !isPySpace(s[j])) j++;
    out.push(s.slice(i, j));
    i = j;
  }
  return out;
}

function pyTitle(s: string): string {
  return s.replace(/\p{L}+/gu, (w) => w[0].toUpperCase() + w.slice(1).toLowerCase());
}

function pyCapitalize(s: string): string {
  return s.length === 0 ? s : s[0].toUpperCase() + s.slice(1).toLowerCase();
}

function toList(v: unknown, what: string): unknown[] {
  if (Array.isArray(v)) return v;
  if (typeof v === 'string') return [...v];
  if (isDict(v)) return Object.keys(v);
  if (v === undefined) return [];
  throw new ChatTemplateError(`chat template: ${what}: ${typeName(v)} is not iterable`);
}

function normIndex(i: number, n: number): number {
  return i < 0 ? i + n : i;
}

function sliceOf(v: unknown, start: unknown, stop: unknown, step: unknown): unknown {
  const isStr = typeof v === 'string';
  const seq = isStr ? [...(v as string)] : toList(v, 'slice');
  const n = seq.length;
  const st = step === null || step === undefined ? 1 : (step as number);
  if (typeof st !== 'number' || st === 0 || !Number.isInteger(st)) throw new ChatTemplateError('chat template: slice step must be a non-zero integer');
  const out: unknown[] = [];
  const clamp = (x: unknown, dflt: number, lo: number, hi: number): number => {
    if (x === null || x === undefined) return dflt;
    if (typeof x !== 'number') throw new ChatTemplateError('chat template: slice indices must be integers');
    const y = x < 0 ? x + n : x;
    return Math.min(Math.max(y, lo), hi);
  };
  if (st > 0) {
    const a = clamp(start, 0, 0, n);
    const b = clamp(stop, n, 0, n);
    for (let i = a; i < b; i += st) out.push(seq[i]);
  } else {
    const a = clamp(start, n - 1, -1, n - 1);
    const b = clamp(stop, -1, -1, n - 1);
    for (let i = a; i > b; i += st) out.push(seq[i]);
  }
  return isStr ? out.join('') : out;
}

class Renderer {
  private steps = 0;
  private outLen = 0;
  private depth = 0;
  private root = new Scope(null);

  constructor(private readonly now: Date) {}

  render(body: Node[], vars: Record<string, unknown>): string {
    const globals = new Scope(null);
    for (const [name, fn] of Object.entries(this.builtins())) globals.set(name, fn);
    this.root = new Scope(globals);
    for (const [k, v] of Object.entries(vars)) this.root.set(k, v);
    const out: string[] = [];
    this.exec(body, this.root, out);
    return out.join('');
  }

  private fail(msg: string): never {
    throw new ChatTemplateError(`chat template: ${msg}`);
  }

  private tick(): void {
    if (++this.steps > MAX_STEPS) this.fail(`more than ${MAX_STEPS} steps`);
  }

  private emit(out: string[], s: string): void {
    this.outLen += s.length;
    if (this.outLen > MAX_OUTPUT) this.fail(`output longer than ${MAX_OUTPUT} characters`);
    out.push(s);
  }

  private exec(nodes: Node[], scope: Scope, out: string[]): number {
    for (const n of nodes) {
      this.tick();
      switch (n.k) {
        case 'text':
          this.emit(out, n.text);
          break;
        case 'output':
          this.emit(out, pyStr(this.evaluate(n.expr, scope)));
          break;
        case 'if': {
          let done = false;
          for (const [test, body] of n.branches) {
            if (truthy(this.evaluate(test, scope))) {
              const r = this.exec(body, scope, out);
              if (r !== 0) return r;
              done = true;
              break;
            }
          }
          if (!done) {
            const r = this.exec(n.otherwise, scope, out);
            if (r !== 0) return r;
          }
          break;
        }
        case 'for':
          this.execFor(n, scope, out);
          break;
        case 'set':
          this.assign(n.target, this.evaluate(n.value, scope), scope);
          break;
        case 'setBlock': {
          const inner: string[] = [];
          this.exec(n.body, scope, inner);
          scope.set(n.name, inner.join(''));
          break;
        }
        case 'macro':
          scope.set(n.name, this.macro(n));
          break;
        case 'break':
          return BREAK;
        case 'continue':
          return CONTINUE;
      }
    }
    return 0;
  }

  private execFor(n: Extract<Node, { k: 'for' }>, scope: Scope, out: string[]): void {
    let items = toList(this.evaluate(n.iter, scope), 'for loop');
    if (n.filter !== null) {
      items = items.filter((item) => {
        const s = new Scope(scope);
        this.assign(n.target, item, s);
        return truthy(this.evaluate(n.filter!, s));
      });
    }
    if (items.length === 0) {
      this.exec(n.otherwise, scope, out);
      return;
    }
    const len = items.length;
    for (let i = 0; i < len; i++) {
      this.tick();
      const s = new Scope(scope);
      this.assign(n.target, items[i], s);
      s.set('loop', {
        index: i + 1, index0: i, revindex: len - i, revindex0: len - i - 1, first: i === 0, last: i === len - 1, length: len,
        previtem: i > 0 ? items[i - 1] : undefined, nextitem: i + 1 < len ? items[i + 1] : undefined,
        cycle: new JFunc('cycle', ({ args }) => (args.length === 0 ? undefined : args[i % args.length])),
      });
      if (this.exec(n.body, s, out) === BREAK) break;
    }
  }

  private assign(t: Target, v: unknown, scope: Scope): void {
    if (t.k === 'name') scope.set(t.name, v);
    else if (t.k === 'attr') {
      const ns = scope.get(t.obj);
      if (!(ns instanceof Namespace)) this.fail(`cannot set ${t.obj}.${t.name}: only namespace() objects take attributes`);
      ns.vars.set(t.name, v);
    } else {
      const list = toList(v, 'unpacking');
      if (list.length !== t.names.length) this.fail(`cannot unpack ${list.length} values into ${t.names.length} names`);
      t.names.forEach((name, k) => scope.set(name, list[k]));
    }
  }

  private macro(n: Extract<Node, { k: 'macro' }>): JFunc {
    return new JFunc(n.name, ({ args, kwargs }) => {
      if (++this.depth > MAX_DEPTH) this.fail(`macro calls nested deeper than ${MAX_DEPTH}`);
      try {
        const s = new Scope(this.root);
        n.params.forEach(([name, dflt], k) => {
          const v = k < args.length ? args[k] : kwargs.has(name) ? kwargs.get(name) : dflt === null ? undefined : this.evaluate(dflt, s);
          s.set(name, v);
        });
        const out: string[] = [];
        this.exec(n.body, s, out);
        return out.join('');
      } finally {
        this.depth--;
      }
    });
  }

  evaluate(e: Expr, scope: Scope): unknown {
    switch (e.k) {
      case 'const':
        return e.v;
      case 'name':
        return scope.get(e.name);
      case 'list':
        return e.items.map((x) => this.evaluate(x, scope));
      case 'dict': {
        const o: Record<string, unknown> = {};
        for (const [k, v] of e.entries) Object.defineProperty(o, pyStr(this.evaluate(k, scope)), { value: this.evaluate(v, scope), enumerable: true, writable: true, configurable: true });
        return o;
      }
      case 'attr':
        return this.getAttr(this.evaluate(e.obj, scope), e.name);
      case 'item':
        return this.getItem(this.evaluate(e.obj, scope), this.evaluate(e.key, scope));
      case 'slice':
        return sliceOf(this.evaluate(e.obj, scope), e.start && this.evaluate(e.start, scope), e.stop && this.evaluate(e.stop, scope), e.step && this.evaluate(e.step, scope));
      case 'call': {
        const fn = this.evaluate(e.fn, scope);
        if (!(fn instanceof JFunc)) this.fail(`${typeName(fn)} is not callable`);
        return fn.fn(this.args(e.args, e.kwargs, scope));
      }
      case 'filter':
        return this.filter(e.name, this.evaluate(e.value, scope), this.args(e.args, e.kwargs, scope));
      case 'test': {
        const r = this.test(e.name, this.evaluate(e.value, scope), e.args.map((a) => this.evaluate(a, scope)));
        return e.negate ? !r : r;
      }
      case 'unary': {
        const v = this.evaluate(e.value, scope);
        if (e.op === 'not') return !truthy(v);
        if (typeof v !== 'number' && typeof v !== 'boolean') this.fail(`bad operand type for unary ${e.op}: ${typeName(v)}`);
        return e.op === '-' ? -Number(v) : Number(v);
      }
      case 'binary':
        return this.binary(e.op, this.evaluate(e.left, scope), this.evaluate(e.right, scope));
      case 'compare': {
        let left = this.evaluate(e.first, scope);
        for (const [op, rx] of e.rest) {
          const right = this.evaluate(rx, scope);
          if (!this.compareOp(op, left, right)) return false;
          left = right;
        }
        return true;
      }
      case 'and': {
        const l = this.evaluate(e.left, scope);
        return truthy(l) ? this.evaluate(e.right, scope) : l;
      }
      case 'or': {
        const l = this.evaluate(e.left, scope);
        return truthy(l) ? l : this.evaluate(e.right, scope);
      }
      case 'cond':
        return truthy(this.evaluate(e.test, scope)) ? this.evaluate(e.then, scope) : e.else === null ? undefined : this.evaluate(e.else, scope);
    }
  }

  private args(args: Expr[], kwargs: [string, Expr][], scope: Scope): Args {
    return { args: args.map((a) => this.evaluate(a, scope)), kwargs: new Map(kwargs.map(([k, v]) => [k, this.evaluate(v, scope)])) };
  }

  private getAttr(obj: unknown, name: string): unknown {
    if (typeof obj === 'string') return this.stringMethod(obj, name);
    if (obj instanceof Namespace) return obj.vars.get(name);
    if (isDict(obj)) {
      const method = this.dictMethod(obj, name);
      return method ?? own(obj, name);
    }
    return undefined;
  }

  private getItem(obj: unknown, key: unknown): unknown {
    if (Array.isArray(obj) || typeof obj === 'string') {
      if (typeof key !== 'number' || !Number.isInteger(key)) return undefined;
      const seq = typeof obj === 'string' ? [...obj] : obj;
      const i = normIndex(key, seq.length);
      return i >= 0 && i < seq.length ? seq[i] : undefined;
    }
    if (obj instanceof Namespace) return obj.vars.get(pyStr(key));
    if (isDict(obj)) return own(obj, typeof key === 'string' ? key : pyStr(key));
    return undefined;
  }

  private dictMethod(o: Record<string, unknown>, name: string): JFunc | undefined {
    switch (name) {
      case 'items':
        return new JFunc('items', () => Object.entries(o).map(([k, v]) => [k, v]));
      case 'keys':
        return new JFunc('keys', () => Object.keys(o));
      case 'values':
        return new JFunc('values', () => Object.values(o));
      case 'get':
        return new JFunc('get', ({ args }) => {
          const v = own(o, pyStr(args[0]));
          return v === undefined ? (args.length > 1 ? args[1] : null) : v;
        });
    }
    return undefined;
  }

  private stringMethod(s: string, name: string): JFunc | undefined {
    const str = (v: unknown): string | undefined => (v === undefined || v === null ? undefined : pyStr(v));
    switch (name) {
      case 'strip': return new JFunc(name, ({ args }) => pyStrip(s, str(args[0])));
      case 'lstrip': return new JFunc(name, ({ args }) => pyLstrip(s, str(args[0])));
      case 'rstrip': return new JFunc(name, ({ args }) => pyRstrip(s, str(args[0])));
      case 'upper': return new JFunc(name, () => s.toUpperCase());
      case 'lower': return new JFunc(name, () => s.toLowerCase());
      case 'title': return new JFunc(name, () => pyTitle(s));
      case 'capitalize': return new JFunc(name, () => pyCapitalize(s));
      case 'startswith': return new JFunc(name, ({ args }) => (Array.isArray(args[0]) ? args[0] : [args[0]]).some((p) => s.startsWith(pyStr(p))));
      case 'endswith': return new JFunc(name, ({ args }) => (Array.isArray(args[0]) ? args[0] : [args[0]]).some((p) => s.endsWith(pyStr(p))));
      case 'replace': return new JFunc(name, ({ args }) => s.split(pyStr(args[0])).join(pyStr(args[1])));
      case 'find': return new JFunc(name, ({ args }) => s.indexOf(pyStr(args[0])));
      case 'count': return new JFunc(name, ({ args }) => (pyStr(args[0]) === '' ? s.length + 1 : s.split(pyStr(args[0])).length - 1));
      case 'join': return new JFunc(name, ({ args }) => toList(args[0], 'join').map(pyStr).join(s));
      case 'splitlines': return new JFunc(name, () => s.split(/\r\n|[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]/).filter((x, i, a) => i < a.length - 1 || x !== ''));
      case 'split':
        return new JFunc(name, ({ args, kwargs }) => {
          const sep = args[0] ?? kwargs.get('sep');
          const max = args[1] ?? kwargs.get('maxsplit') ?? -1;
          if (typeof max !== 'number') this.fail('split(): maxsplit must be an integer');
          if (sep !== undefined && sep !== null && pyStr(sep) === '') this.fail('split(): empty separator');
          return pySplit(s, sep === undefined || sep === null ? undefined : pyStr(sep), max);
        });
    }
    return undefined;
  }

  private binary(op: string, a: unknown, b: unknown): unknown {
    if (op === '~') return pyStr(a) + pyStr(b);
    const num = (x: unknown): x is number | boolean => typeof x === 'number' || typeof x === 'boolean';
    switch (op) {
      case '+':
        if (num(a) && num(b)) return Number(a) + Number(b);
        if (typeof a === 'string' && typeof b === 'string') return a + b;
        if (Array.isArray(a) && Array.isArray(b)) return [...a, ...b];
        break;
      case '-':
        if (num(a) && num(b)) return Number(a) - Number(b);
        break;
      case '*':
        if (num(a) && num(b)) return Number(a) * Number(b);
        if ((typeof a === 'string' || Array.isArray(a)) && typeof b === 'number') return this.repeat(a, b);
        if ((typeof b === 'string' || Array.isArray(b)) && typeof a === 'number') return this.repeat(b, a);
        break;
      case '/':
        if (num(a) && num(b)) {
          if (Number(b) === 0) this.fail('division by zero');
          return Number(a) / Number(b);
        }
        break;
      case '//':
        if (num(a) && num(b)) {
          if (Number(b) === 0) this.fail('division by zero');
          return Math.floor(Number(a) / Number(b));
        }
        break;
      case '%':
        if (num(a) && num(b)) {
          if (Number(b) === 0) this.fail('modulo by zero');
          const r = Number(a) % Number(b);
          return r !== 0 && r < 0 !== Number(b) < 0 ? r + Number(b) : r;
        }
        break;
      case '**':
        if (num(a) && num(b)) return Number(a) ** Number(b);
        break;
    }
    this.fail(`unsupported operand types for ${op}: ${typeName(a)} and ${typeName(b)}`);
  }

  private repeat(v: string | unknown[], n: number): string | unknown[] {
    const count = Math.max(0, Math.floor(n));
    if (v.length * count > MAX_OUTPUT) this.fail('repetition result too large');
    if (typeof v === 'string') return v.repeat(count);
    const out: unknown[] = [];
    for (let i = 0; i < count; i++) for (const x of v) out.push(x);
    return out;
  }

  private compareOp(op: string, a: unknown, b: unknown): boolean {
    switch (op) {
      case '==': return deepEqual(a, b);
      case '!=': return !deepEqual(a, b);
      case 'in': return this.contains(b, a);
      case 'notin': return !this.contains(b, a);
    }
    const bothNum = (typeof a === 'number' || typeof a === 'boolean') && (typeof b === 'number' || typeof b === 'boolean');
    const bothStr = typeof a === 'string' && typeof b === 'string';
    if (!bothNum && !bothStr) this.fail(`'${op}' not supported between ${typeName(a)} and ${typeName(b)}`);
    const x = a as number | string;
    const y = b as number | string;
    switch (op) {
      case '<': return x < y;
      case '>': return x > y;
      case '<=': return x <= y;
      default: return x >= y;
    }
  }

  private contains(container: unknown, item: unknown): boolean {
    if (typeof container === 'string') {
      if (typeof item !== 'string') this.fail(`'in <string>' requires a string, got ${typeName(item)}`);
      return container.includes(item);
    }
    if (Array.isArray(container)) return container.some((x) => deepEqual(x, item));
    if (isDict(container)) return Object.prototype.hasOwnProperty.call(container, pyStr(item));
    if (container === undefined) return false;
    this.fail(`argument of type ${typeName(container)} is not iterable`);
  }

  private attrPath(v: unknown, path: string): unknown {
    return path.split('.').reduce((acc, p) => (/^\d+$/.test(p) ? this.getItem(acc, Number(p)) : this.getAttr(acc, p)), v);
  }

  private filter(name: string, v: unknown, { args, kwargs }: Args): unknown {
    const arg = (k: number, key: string, dflt: unknown): unknown => (k < args.length ? args[k] : kwargs.has(key) ? kwargs.get(key) : dflt);
    switch (name) {
      case 'trim':
        return pyStrip(pyStr(v), arg(0, 'chars', undefined) === undefined ? undefined : pyStr(arg(0, 'chars', undefined)));
      case 'length':
      case 'count':
        if (typeof v === 'string') return [...v].length;
        return toList(v, name).length;
      case 'tojson': {
        const indent = arg(0, 'indent', null);
        return pyJson(v, typeof indent === 'number' ? indent : null);
      }
      case 'upper': return pyStr(v).toUpperCase();
      case 'lower': return pyStr(v).toLowerCase();
      case 'title': return pyStr(v).replace(/[^-\s({[<]+/gu, (w) => w[0].toUpperCase() + w.slice(1).toLowerCase());
      case 'capitalize': return pyCapitalize(pyStr(v));
      case 'string': return pyStr(v);
      case 'safe': return v;
      case 'default':
      case 'd': {
        const dflt = arg(0, 'default_value', '');
        const boolean = truthy(arg(1, 'boolean', false));
        return v === undefined || (boolean && !truthy(v)) ? dflt : v;
      }
      case 'int': {
        const n = typeof v === 'string' ? parseInt(v, 10) : Number(v);
        return Number.isFinite(n) ? Math.trunc(n) : arg(0, 'default', 0);
      }
      case 'float': {
        const n = Number(v);
        return Number.isFinite(n) ? n : arg(0, 'default', 0);
      }
      case 'abs': return Math.abs(Number(v));
      case 'list': return [...toList(v, name)];
      case 'first': return toList(v, name)[0];
      case 'last': {
        const l = toList(v, name);
        return l[l.length - 1];
      }
      case 'reverse': return typeof v === 'string' ? [...v].reverse().join('') : [...toList(v, name)].reverse();
      case 'join': {
        const attr = arg(1, 'attribute', undefined);
        const items = toList(v, name).map((x) => (attr === undefined ? x : this.attrPath(x, pyStr(attr))));
        return items.map(pyStr).join(pyStr(arg(0, 'd', '')));
      }
      case 'replace': return pyStr(v).split(pyStr(arg(0, 'old', ''))).join(pyStr(arg(1, 'new', '')));
      case 'sort': {
        const reverse = truthy(arg(0, 'reverse', false));
        const attr = arg(2, 'attribute', undefined);
        const key = (x: unknown): unknown => (attr === undefined ? x : this.attrPath(x, pyStr(attr)));
        const sorted = [...toList(v, name)].sort((a, b) => {
          const x = key(a);
          const y = key(b);
          const xs = typeof x === 'string' ? x.toLowerCase() : x;
          const ys = typeof y === 'string' ? y.toLowerCase() : y;
          return this.compareOp('<', xs, ys) ? -1 : this.compareOp('<', ys, xs) ? 1 : 0;
        });
        return reverse ? sorted.reverse() : sorted;
      }
      case 'unique': {
        const out: unknown[] = [];
        for (const x of toList(v, name)) if (!out.some((y) => deepEqual(x, y))) out.push(x);
        return out;
      }
      case 'items': return isDict(v) ? Object.entries(v).map(([k, x]) => [k, x]) : [];
      case 'map': {
        const attr = kwargs.get('attribute');
        if (attr !== undefined) return toList(v, name).map((x) => this.attrPath(x, pyStr(attr)) ?? kwargs.get('default'));
        const f = pyStr(args[0]);
        return toList(v, name).map((x) => this.filter(f, x, { args: args.slice(1), kwargs: new Map() }));
      }
      case 'select':
      case 'reject': {
        const keep = name === 'select';
        return toList(v, name).filter((x) => (args.length === 0 ? truthy(x) : this.test(pyStr(args[0]), x, args.slice(1))) === keep);
      }
      case 'selectattr':
      case 'rejectattr': {
        const keep = name === 'selectattr';
        const attr = pyStr(args[0]);
        return toList(v, name).filter((x) => {
          const a = this.attrPath(x, attr);
          return (args.length < 2 ? truthy(a) : this.test(pyStr(args[1]), a, args.slice(2))) === keep;
        });
      }
      case 'sum': {
        const attr = arg(0, 'attribute', undefined);
        return toList(v, name).reduce((acc: unknown, x) => this.binary('+', acc, attr === undefined ? x : this.attrPath(x, pyStr(attr))), arg(1, 'start', 0));
      }
      case 'min':
      case 'max': {
        const l = toList(v, name);
        if (l.length === 0) return undefined;
        return l.reduce((a, b) => (this.compareOp(name === 'min' ? '<' : '>', b, a) ? b : a));
      }
      case 'indent': {
        const width = arg(0, 'width', 4);
        const pad = typeof width === 'string' ? width : ' '.repeat(Number(width));
        const first = truthy(arg(1, 'first', false));
        const blank = truthy(arg(2, 'blank', false));
        const lines = pyStr(v).split('\n');
        return lines.map((l, i) => ((i === 0 && !first) || (!blank && l.trim() === '') ? l : pad + l)).join('\n');
      }
      case 'wordcount': return pyStr(v).split(/\s+/).filter((w) => w !== '').length;
    }
    this.fail(`unknown filter "${name}"`);
  }

  private test(name: string, v: unknown, args: unknown[]): boolean {
    switch (name) {
      case 'defined': return v !== undefined;
      case 'undefined': return v === undefined;
      case 'none': return v === null;
      case 'string': return typeof v === 'string';
      case 'number': return typeof v === 'number';
      case 'integer': return typeof v === 'number' && Number.isInteger(v);
      case 'float': return typeof v === 'number' && !Number.isInteger(v);
      case 'boolean': return typeof v === 'boolean';
      case 'true': return v === true;
      case 'false': return v === false;
      case 'mapping': return isDict(v) || v instanceof Namespace;
      case 'iterable': return Array.isArray(v) || typeof v === 'string' || isDict(v);
      case 'sequence': return Array.isArray(v) || typeof v === 'string' || isDict(v);
      case 'callable': return v instanceof JFunc;
      case 'odd': return typeof v === 'number' && Math.abs(v % 2) === 1;
      case 'even': return typeof v === 'number' && v % 2 === 0;
      case 'divisibleby': return typeof v === 'number' && typeof args[0] === 'number' && v % args[0] === 0;
      case 'lower': return typeof v === 'string' && v === v.toLowerCase();
      case 'upper': return typeof v === 'string' && v === v.toUpperCase();
      case 'equalto':
      case 'eq':
      case '==':
      case 'sameas': return deepEqual(v, args[0]);
      case 'ne':
      case '!=': return !deepEqual(v, args[0]);
      case 'lt':
      case '<': return this.compareOp('<', v, args[0]);
      case 'le':
      case '<=': return this.compareOp('<=', v, args[0]);
      case 'gt':
      case '>': return this.compareOp('>', v, args[0]);
      case 'ge':
      case '>=': return this.compareOp('>=', v, args[0]);
      case 'in': return this.contains(args[0], v);
    }
    this.fail(`unknown test "${name}"`);
  }

  private builtins(): Record<string, JFunc> {
    return {
      raise_exception: new JFunc('raise_exception', ({ args }) => {
        throw new ChatTemplateError(`chat template raised: ${pyStr(args[0])}`);
      }),
      range: new JFunc('range', ({ args }) => {
        const [a, b, c] = args.length === 1 ? [0, args[0], 1] : [args[0], args[1], args[2] ?? 1];
        if (![a, b, c].every((x) => typeof x === 'number' && Number.isInteger(x)) || c === 0) this.fail('range() takes integers and a non-zero step');
        const out: number[] = [];
        for (let i = a as number; (c as number) > 0 ? i < (b as number) : i > (b as number); i += c as number) {
          if (out.length >= 1_000_000) this.fail('range() longer than 1000000');
          out.push(i);
        }
        return out;
      }),
      namespace: new JFunc('namespace', ({ args, kwargs }) => {
        const ns = new Namespace();
        if (isDict(args[0])) for (const [k, v] of Object.entries(args[0])) ns.vars.set(k, v);
        for (const [k, v] of kwargs) ns.vars.set(k, v);
        return ns;
      }),
      dict: new JFunc('dict', ({ kwargs }) => Object.fromEntries(kwargs)),
      strftime_now: new JFunc('strftime_now', ({ args }) => strftime(pyStr(args[0]), this.now)),
    };
  }
}

const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];
const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];

/** Python's strftime for the common directives, in local time. */
function strftime(fmt: string, d: Date): string {
  const p2 = (n: number): string => String(n).padStart(2, '0');
  return fmt.replace(/%([a-zA-Z%])/g, (m, c: string) => {
    switch (c) {
      case 'd': return p2(d.getDate());
      case 'm': return p2(d.getMonth() + 1);
      case 'Y': return String(d.getFullYear());
      case 'y': return p2(d.getFullYear() % 100);
      case 'H': return p2(d.getHours());
      case 'I': return p2(d.getHours() % 12 === 0 ? 12 : d.getHours() % 12);
      case 'p': return d.getHours() < 12 ? 'AM' : 'PM';
      case 'M': return p2(d.getMinutes());
      case 'S': return p2(d.getSeconds());
      case 'b': return MONTHS[d.getMonth()].slice(0, 3);
      case 'B': return MONTHS[d.getMonth()];
      case 'a': return DAYS[d.getDay()].slice(0, 3);
      case 'A': return DAYS[d.getDay()];
      case 'j': return String(Math.floor((d.getTime() - new Date(d.getFullYear(), 0, 1).getTime()) / 86400000) + 1).padStart(3, '0');
      case '%': return '%';
    }
    return m;
  });
}
