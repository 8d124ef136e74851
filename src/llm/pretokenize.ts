/**
 * The text stages of a Hugging Face tokenizer.json before the model runs: normalizers, pre-tokenizers,
 * the Oniguruma-to-JavaScript regex translation they need, and the GPT-2 byte-to-unicode alphabet.
 * Browser-safe: no Node imports.
 */
import { FormatError, describeValue } from '../core/errors.js';

/** A stretch of text on its way to the model; `start` is true when it begins at offset 0 of the input (Metaspace "first"). */
export interface Piece {
  text: string;
  start: boolean;
}

/** A tokenizer.json normalizer as a function on the text of one segment. */
export type Normalizer = (text: string) => string;
/** A tokenizer.json pre-tokenizer: splits (and rewrites) pieces, dropping empty ones. */
export type PreTokenizer = (pieces: Piece[]) => Piece[];

/** Reads fields of a parsed tokenizer.json, throwing FormatError(source, "path: expected …") on anything malformed. */
export class JsonFields {
  constructor(readonly source: string) {}

  fail(path: string, expected: string, got?: unknown): never {
    const tail = got === undefined ? ', got nothing' : `, got ${describeValue(got)}`;
    throw new FormatError(this.source, `${path}: expected ${expected}${tail}`);
  }

  problem(path: string, detail: string): never {
    throw new FormatError(this.source, `${path}: ${detail}`);
  }

  object(v: unknown, path: string): Record<string, unknown> {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) this.fail(path, 'an object', v);
    return v as Record<string, unknown>;
  }

  array(v: unknown, path: string): unknown[] {
    if (!Array.isArray(v)) this.fail(path, 'an array', v);
    return v;
  }

  string(v: unknown, path: string): string {
    if (typeof v !== 'string') this.fail(path, 'a string', v);
    return v;
  }

  optString(v: unknown, path: string): string | null {
    return v === undefined || v === null ? null : this.string(v, path);
  }

  bool(v: unknown, path: string, fallback: boolean): boolean {
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'boolean') this.fail(path, 'true or false', v);
    return v;
  }

  index(v: unknown, path: string): number {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0x7fffffff) this.fail(path, 'a non-negative integer', v);
    return v;
  }

  /** A single character (one code point), as Metaspace's replacement and Strip's content are. */
  char(v: unknown, path: string, fallback: string): string {
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'string' || [...v].length !== 1) this.fail(path, 'a single character', v);
    return v;
  }

  /** `{"String": "..."}` or `{"Regex": "..."}` as used by Split, Replace. */
  pattern(v: unknown, path: string): RegExp {
    const o = this.object(v, path);
    if (typeof o.String === 'string') return new RegExp(o.String === '' ? '(?!)' : escapeRegex(o.String), 'gu');
    if (typeof o.Regex === 'string') return this.regex(o.Regex, `${path}.Regex`);
    this.fail(path, '{"String": ...} or {"Regex": ...}', v);
  }

  regex(pattern: string, path: string): RegExp {
    try {
      return new RegExp(translateOnigRegex(pattern), 'gu');
    } catch (e) {
      this.problem(path, `unsupported regex ${describeValue(pattern)}: ${(e as Error).message}`);
    }
  }

  type(o: Record<string, unknown>, path: string, known: readonly string[]): string {
    const t = o.type;
    if (typeof t !== 'string' || !known.includes(t)) this.fail(`${path}.type`, `one of ${known.join(', ')}`, t);
    return t;
  }
}

function escapeRegex(s: string): string {
  return s.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&');
}

// Oniguruma (Ruby syntax, as the tokenizers crate compiles patterns) → JavaScript `u` regex.

const WORD_CLASS = '\\p{L}\\p{M}\\p{Nd}\\p{Pc}';
const SYNTAX_CHARS = '^$\\.*+?()[]{}|/';
const CLASS_SPECIAL = '\\]-[^';

interface Flags {
  ci: boolean;
  dotAll: boolean;
}

class OnigTranslator {
  private i = 0;
  private atomics = 0;

  constructor(private readonly p: string) {}

  run(): string {
    const out = this.alternation({ ci: false, dotAll: false });
    if (this.i < this.p.length) throw new Error(`unmatched ")" at ${this.i}`);
    return out;
  }

  private alternation(flags: Flags): string {
    const parts = [this.sequence(flags)];
    while (this.p[this.i] === '|') {
      this.i++;
      parts.push(this.sequence(flags));
    }
    return parts.join('|');
  }

  private sequence(flags: Flags): string {
    let out = '';
    while (this.i < this.p.length && this.p[this.i] !== '|' && this.p[this.i] !== ')') {
      const atom = this.atom(flags);
      if (atom === '') continue;
      out += this.quantified(atom);
    }
    return out;
  }

  private quantified(atom: string): string {
    let out = atom;
    for (;;) {
      const q = this.quantifier();
      if (q === null) return out;
      const next = this.p[this.i];
      if (next === '?') {
        this.i++;
        out = `${out}${q}?`;
      } else if (next === '+' && !q.startsWith('{')) {
        this.i++;
        const name = `_a${this.atomics++}`;
        out = `(?=(?<${name}>${out}${q}))\\k<${name}>`;
      } else {
        out = `${out}${q}`;
      }
      // A further quantifier repeats the whole quantified atom (Ruby allows `a{2}+`).
      if (this.peekQuantifier()) out = `(?:${out})`;
    }
  }

  private peekQuantifier(): boolean {
    const save = this.i;
    const q = this.quantifier();
    this.i = save;
    return q !== null;
  }

  private quantifier(): string | null {
    const c = this.p[this.i];
    if (c === '*' || c === '+' || c === '?') {
      this.i++;
      return c;
    }
    if (c === '{') {
      const m = /^\{(\d*)(,(\d*))?\}/.exec(this.p.slice(this.i, this.i + 24));
      if (m === null || (m[1] === '' && (m[2] === undefined || m[3] === ''))) return null;
      this.i += m[0].length;
      if (m[2] === undefined) return `{${m[1]}}`;
      return `{${m[1] === '' ? '0' : m[1]},${m[3]}}`;
    }
    return null;
  }

  private atom(flags: Flags): string {
    const p = this.p;
    const c = p[this.i];
    if (c === '(') return this.group(flags);
    if (c === '[') return this.charClass(flags);
    if (c === '\\') return this.escape(flags);
    this.i++;
    if (c === '.') return flags.dotAll ? '[\\s\\S]' : '[^\\n]';
    if (c === '^') return '(?<![^\\n])';
    if (c === '$') return '(?![^\\n])';
    if (c === '*' || c === '+' || c === '?') throw new Error(`nothing to repeat at ${this.i - 1}`);
    const cp = p.codePointAt(this.i - 1)!;
    if (cp > 0xffff) this.i++;
    return this.literal(cp, flags);
  }

  private literal(cp: number, flags: Flags): string {
    const ch = String.fromCodePoint(cp);
    if (flags.ci) {
      const variants = caseVariants(cp);
      if (variants.length > 1) return `[${variants.map(classChar).join('')}]`;
    }
    return SYNTAX_CHARS.includes(ch) ? `\\${ch}` : ch;
  }

  private group(outer: Flags): string {
    const p = this.p;
    this.i++;
    let head = '(?:';
    let flags: Flags = { ...outer };
    let atomic = false;
    if (p[this.i] === '?') {
      const rest = p.slice(this.i + 1, this.i + 40);
      let m: RegExpExecArray | null;
      if (rest.startsWith('#')) {
        const end = p.indexOf(')', this.i);
        if (end < 0) throw new Error('unterminated comment');
        this.i = end + 1;
        return '';
      } else if (rest.startsWith(':')) {
        this.i += 2;
      } else if (/^(=|!|<=|<!)/.test(rest)) {
        const op = /^(=|!|<=|<!)/.exec(rest)![1];
        head = `(?${op}`;
        this.i += 1 + op.length;
      } else if (rest.startsWith('>')) {
        atomic = true;
        this.i += 2;
      } else if ((m = /^(?:P?<([A-Za-z_]\w*)>|'([A-Za-z_]\w*)')/.exec(rest)) !== null) {
        this.i += 1 + m[0].length;
      } else if ((m = /^([imx]*)(?:-([imx]*))?([:)])/.exec(rest)) !== null) {
        const on = m[1];
        const off = m[2] ?? '';
        if (on.includes('x') || off.includes('x')) throw new Error('extended mode (?x) is not supported');
        flags = { ci: on.includes('i') ? true : off.includes('i') ? false : outer.ci, dotAll: on.includes('m') ? true : off.includes('m') ? false : outer.dotAll };
        this.i += 1 + m[0].length;
        if (m[3] === ')') {
          // (?i) changes the rest of the enclosing group.
          outer.ci = flags.ci;
          outer.dotAll = flags.dotAll;
          return '';
        }
      } else {
        throw new Error(`unsupported group "(?${rest.slice(0, 3)}"`);
      }
    }
    const body = this.alternation(flags);
    if (p[this.i] !== ')') throw new Error('missing ")"');
    this.i++;
    if (atomic) {
      const name = `_a${this.atomics++}`;
      return `(?=(?<${name}>${body}))\\k<${name}>`;
    }
    return `${head}${body})`;
  }

  /** Reads `\x{...}`, `\p{...}` style escapes outside classes. */
  private escape(flags: Flags): string {
    const p = this.p;
    const c = p[this.i + 1];
    if (c === undefined) throw new Error('trailing backslash');
    this.i += 2;
    switch (c) {
      case 's': return '\\p{White_Space}';
      case 'S': return '\\P{White_Space}';
      case 'd': return '\\p{Nd}';
      case 'D': return '\\P{Nd}';
      case 'w': return `[${WORD_CLASS}]`;
      case 'W': return `[^${WORD_CLASS}]`;
      case 'h': return '[0-9a-fA-F]';
      case 'H': return '[^0-9a-fA-F]';
      case 'A': return '(?<![\\s\\S])';
      case 'z': return '(?![\\s\\S])';
      case 'Z': return '(?=\\n?(?![\\s\\S]))';
      case 'b': return `(?:(?<=[${WORD_CLASS}])(?![${WORD_CLASS}])|(?<![${WORD_CLASS}])(?=[${WORD_CLASS}]))`;
      case 'B': return `(?:(?<=[${WORD_CLASS}])(?=[${WORD_CLASS}])|(?<![${WORD_CLASS}])(?![${WORD_CLASS}]))`;
      case 'R': return '(?:\\r\\n|[\\n\\v\\f\\r\\x85\\u2028\\u2029])';
      case 'p':
      case 'P': return this.property(c === 'P');
    }
    const single = this.simpleEscape(c);
    if (single !== null) return this.literal(single, flags);
    throw new Error(`unsupported escape "\\${c}"`);
  }

  /** Escapes that stand for one code point (`\n`, `\x41`, `\x{263A}`, `\.`), or null. */
  private simpleEscape(c: string): number | null {
    const p = this.p;
    const named: Record<string, number> = { n: 10, r: 13, t: 9, f: 12, v: 11, a: 7, e: 27 };
    if (c in named) return named[c];
    if (c === 'x') {
      if (p[this.i] === '{') {
        const end = p.indexOf('}', this.i);
        const hex = p.slice(this.i + 1, end);
        if (end < 0 || !/^[0-9a-fA-F]{1,6}$/.test(hex)) throw new Error('bad \\x{...} escape');
        this.i = end + 1;
        return parseInt(hex, 16);
      }
      const m = /^[0-9a-fA-F]{1,2}/.exec(p.slice(this.i, this.i + 2));
      if (m === null) throw new Error('bad \\x escape');
      this.i += m[0].length;
      return parseInt(m[0], 16);
    }
    if (c === 'u') {
      const m = /^[0-9a-fA-F]{4}/.exec(p.slice(this.i, this.i + 4));
      if (m === null) throw new Error('bad \\u escape');
      this.i += 4;
      return parseInt(m[0], 16);
    }
    if (c === '0') {
      const m = /^[0-7]{0,2}/.exec(p.slice(this.i, this.i + 2))!;
      this.i += m[0].length;
      return parseInt(`0${m[0]}`, 8);
    }
    if (/[A-Za-z0-9]/.test(c)) return null;
    const cp = p.codePointAt(this.i - 1)!;
    if (cp > 0xffff) this.i++;
    return cp;
  }

  private property(negatedByCase: boolean): string {
    const p = this.p;
    if (p[this.i] !== '{') throw new Error('expected "{" after \\p');
    const end = p.indexOf('}', this.i);
    if (end < 0) throw new Error('unterminated \\p{');
    let name = p.slice(this.i + 1, end);
    this.i = end + 1;
    let negated = negatedByCase;
    if (name.startsWith('^')) {
      negated = !negated;
      name = name.slice(1);
    }
    const body = jsPropertyName(name);
    return `\\${negated ? 'P' : 'p'}{${body}}`;
  }

  private charClass(flags: Flags): string {
    const p = this.p;
    this.i++;
    let negate = false;
    if (p[this.i] === '^') {
      negate = true;
      this.i++;
    }
    let out = '';
    let first = true;
    for (;;) {
      if (this.i >= p.length) throw new Error('unterminated character class');
      const c = p[this.i];
      if (c === ']' && !first) {
        this.i++;
        break;
      }
      first = false;
      if (c === '[') {
        if (p[this.i + 1] === ':') {
          out += this.posixClass();
          continue;
        }
        throw new Error('nested character classes are not supported');
      }
      if (c === '&' && p[this.i + 1] === '&') throw new Error('class intersection (&&) is not supported');
      const lo = this.classAtom();
      if (typeof lo === 'string') {
        out += lo;
        continue;
      }
      if (p[this.i] === '-' && p[this.i + 1] !== ']' && this.i + 1 < p.length) {
        const save = this.i;
        this.i++;
        const hi = this.classAtom();
        if (typeof hi === 'number') {
          if (hi < lo) throw new Error('reversed range in character class');
          out += `${classChar(lo)}-${classChar(hi)}`;
          if (flags.ci) out += caseFoldRange(lo, hi);
          continue;
        }
        this.i = save;
      }
      out += flags.ci ? caseVariants(lo).map(classChar).join('') : classChar(lo);
    }
    return `[${negate ? '^' : ''}${out}]`;
  }

  /** One member of a class: a code point, or a ready-made set string (`\p{L}`). */
  private classAtom(): number | string {
    const p = this.p;
    const c = p[this.i];
    if (c !== '\\') {
      const cp = p.codePointAt(this.i)!;
      this.i += cp > 0xffff ? 2 : 1;
      return cp;
    }
    const e = p[this.i + 1];
    if (e === undefined) throw new Error('trailing backslash');
    this.i += 2;
    switch (e) {
      case 's': return '\\p{White_Space}';
      case 'S': return '\\P{White_Space}';
      case 'd': return '\\p{Nd}';
      case 'D': return '\\P{Nd}';
      case 'w': return WORD_CLASS;
      case 'h': return '0-9a-fA-F';
      case 'p':
      case 'P': return this.property(e === 'P');
      case 'b': return 8;
      case 'W':
      case 'H': throw new Error(`"\\${e}" inside a character class is not supported`);
    }
    const single = this.simpleEscape(e);
    if (single === null) throw new Error(`unsupported escape "\\${e}" in a character class`);
    return single;
  }

  private posixClass(): string {
    const p = this.p;
    const end = p.indexOf(':]', this.i);
    if (end < 0) throw new Error('unterminated POSIX class');
    const name = p.slice(this.i + 2, end);
    this.i = end + 2;
    const table: Record<string, string> = {
      alpha: '\\p{Alphabetic}', digit: '\\p{Nd}', alnum: '\\p{Alphabetic}\\p{Nd}', space: '\\p{White_Space}',
      upper: '\\p{Uppercase}', lower: '\\p{Lowercase}', punct: '\\p{P}', xdigit: '0-9a-fA-F', word: WORD_CLASS,
      cntrl: '\\p{Cc}', blank: '\\p{Zs}\\t',
    };
    if (!(name in table)) throw new Error(`unsupported POSIX class [:${name}:]`);
    return table[name];
  }
}

function classChar(cp: number): string {
  const ch = String.fromCodePoint(cp);
  if (CLASS_SPECIAL.includes(ch)) return `\\${ch}`;
  if (cp < 0x20 || cp === 0x7f) return `\\x${cp.toString(16).padStart(2, '0')}`;
  return ch;
}

function caseVariants(cp: number): number[] {
  const ch = String.fromCodePoint(cp);
  const out = [cp];
  for (const v of [ch.toLowerCase(), ch.toUpperCase()]) {
    const vcp = v.codePointAt(0)!;
    if ([...v].length === 1 && !out.includes(vcp)) out.push(vcp);
  }
  return out;
}

function caseFoldRange(lo: number, hi: number): string {
  if (hi - lo > 2000) return '';
  let out = '';
  for (let cp = lo; cp <= hi; cp++) for (const v of caseVariants(cp)) if (v < lo || v > hi) out += classChar(v);
  return out;
}

const PROPERTY_CACHE = new Map<string, string>();

/** Onig accepts bare script names (`\p{Han}`); JavaScript wants `\p{Script=Han}`. */
function jsPropertyName(name: string): string {
  const hit = PROPERTY_CACHE.get(name);
  if (hit !== undefined) return hit;
  for (const candidate of [name, `Script=${name}`]) {
    try {
      new RegExp(`\\p{${candidate}}`, 'u');
      PROPERTY_CACHE.set(name, candidate);
      return candidate;
    } catch {
      // try the next spelling
    }
  }
  throw new Error(`unknown Unicode property "${name}"`);
}

/** Translates an Oniguruma (Ruby syntax) pattern to a JavaScript `u`-flag source; throws Error on what it cannot express. */
export function translateOnigRegex(pattern: string): string {
  return new OnigTranslator(pattern).run();
}

// Matching and splitting (the semantics of the tokenizers crate's Pattern and SplitDelimiterBehavior).

/** [start, end, isMatch] in UTF-16 offsets, covering the text without gaps. */
type Span = [number, number, boolean];

/** How a Split keeps the matched delimiters (tokenizers' SplitDelimiterBehavior). */
export type SplitBehavior = 'Removed' | 'Isolated' | 'MergedWithPrevious' | 'MergedWithNext' | 'Contiguous';
const BEHAVIORS: readonly SplitBehavior[] = ['Removed', 'Isolated', 'MergedWithPrevious', 'MergedWithNext', 'Contiguous'];

/** Regex matches as spans; an empty match right after the previous match is skipped, as the onig crate does. */
export function regexSpans(re: RegExp, text: string): Span[] {
  if (text.length === 0) return [[0, 0, false]];
  const spans: Span[] = [];
  let prev = 0;
  let lastMatchEnd = -1;
  re.lastIndex = 0;
  for (;;) {
    const m = re.exec(text);
    if (m === null) break;
    const start = m.index;
    const end = start + m[0].length;
    if (end === start) {
      re.lastIndex = start + (text.codePointAt(start)! > 0xffff ? 2 : 1);
      if (start === lastMatchEnd) {
        if (start >= text.length) break;
        continue;
      }
    }
    if (prev !== start) spans.push([prev, start, false]);
    spans.push([start, end, true]);
    prev = end;
    lastMatchEnd = end;
    if (start >= text.length) break;
  }
  if (prev !== text.length) spans.push([prev, text.length, false]);
  return spans;
}

/** Each character for which `test` holds is its own match. */
export function charSpans(text: string, test: (cp: number) => boolean): Span[] {
  const spans: Span[] = [];
  let last = 0;
  for (let i = 0; i < text.length; ) {
    const cp = text.codePointAt(i)!;
    const w = cp > 0xffff ? 2 : 1;
    if (test(cp)) {
      if (last < i) spans.push([last, i, false]);
      spans.push([i, i + w, true]);
      last = i + w;
    }
    i += w;
  }
  if (text.length > last) spans.push([last, text.length, false]);
  return spans;
}

/** Groups spans into output ranges per the delimiter behavior (tokenizers' NormalizedString::split). */
export function applyBehavior(spans: Span[], behavior: SplitBehavior, invert: boolean): [number, number][] {
  const s: Span[] = invert ? spans.map(([a, b, m]) => [a, b, !m]) : spans;
  const out: [number, number][] = [];
  switch (behavior) {
    case 'Isolated':
      for (const [a, b] of s) out.push([a, b]);
      break;
    case 'Removed':
      for (const [a, b, m] of s) if (!m) out.push([a, b]);
      break;
    case 'MergedWithPrevious': {
      let prevMatch = false;
      for (const [a, b, m] of s) {
        if (m && !prevMatch && out.length > 0) out[out.length - 1][1] = b;
        else out.push([a, b]);
        prevMatch = m;
      }
      break;
    }
    case 'MergedWithNext': {
      let nextMatch = false;
      for (let k = s.length - 1; k >= 0; k--) {
        const [a, b, m] = s[k];
        if (m && !nextMatch && out.length > 0) out[out.length - 1][0] = a;
        else out.push([a, b]);
        nextMatch = m;
      }
      out.reverse();
      break;
    }
    case 'Contiguous': {
      let prevMatch = false;
      for (const [a, b, m] of s) {
        if (m === prevMatch && out.length > 0) out[out.length - 1][1] = b;
        else out.push([a, b]);
        prevMatch = m;
      }
      break;
    }
  }
  return out;
}

function splitPieces(pieces: Piece[], spansOf: (text: string) => Span[], behavior: SplitBehavior, invert = false): Piece[] {
  const out: Piece[] = [];
  for (const piece of pieces) {
    for (const [a, b] of applyBehavior(spansOf(piece.text), behavior, invert)) {
      if (b > a) out.push({ text: piece.text.slice(a, b), start: piece.start && a === 0 });
    }
  }
  return out;
}

// Character predicates with the Rust definitions the tokenizers crate uses.

const WHITE_SPACE = /^\p{White_Space}$/u;
const NUMERIC = /^\p{N}$/u;
const PUNCT = /^\p{P}$/u;
const RUST_WORD = /^[\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}]$/u;

/** Rust's char::is_whitespace (Unicode White_Space). */
export function isWhitespace(cp: number): boolean {
  return cp === 32 || (cp >= 9 && cp <= 13) || (cp > 127 && WHITE_SPACE.test(String.fromCodePoint(cp)));
}

function isNumeric(cp: number): boolean {
  return (cp >= 48 && cp <= 57) || (cp > 127 && NUMERIC.test(String.fromCodePoint(cp)));
}

function isPunctuation(cp: number): boolean {
  const asciiPunct = (cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126);
  return asciiPunct || (cp > 127 && PUNCT.test(String.fromCodePoint(cp)));
}

/** Rust regex's Unicode `\w` (used for single_word added tokens and the Whitespace pre-tokenizer). */
export function isWordChar(cp: number): boolean {
  return RUST_WORD.test(String.fromCodePoint(cp));
}

// GPT-2 byte-level alphabet.

/** BYTE_TO_CHAR[b] is the printable character GPT-2's bytes_to_unicode assigns to byte b. */
export const BYTE_TO_CHAR: readonly string[] = (() => {
  const table: string[] = new Array(256);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    table[b] = String.fromCharCode(printable ? b : 256 + n++);
  }
  return table;
})();

/** Inverse of BYTE_TO_CHAR, keyed by UTF-16 code unit (all 256 characters are below U+0144). */
export const CHAR_TO_BYTE: ReadonlyMap<number, number> = new Map(BYTE_TO_CHAR.map((ch, b) => [ch.charCodeAt(0), b]));

const UTF8 = new TextEncoder();

/** The text's UTF-8 bytes spelled in the byte-level alphabet. */
export function toByteLevel(text: string): string {
  const bytes = UTF8.encode(text);
  let out = '';
  for (let i = 0; i < bytes.length; i++) out += BYTE_TO_CHAR[bytes[i]];
  return out;
}

/** The GPT-2 split regex that ByteLevel applies when use_regex is true (Oniguruma syntax). */
export const GPT2_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
let gpt2Regex: RegExp | null = null;

// Normalizers.

const NORMALIZER_TYPES = ['NFC', 'NFD', 'NFKC', 'NFKD', 'Lowercase', 'Prepend', 'Replace', 'Strip', 'StripAccents', 'Sequence', 'Precompiled'] as const;

/** Builds the normalizer described at `path` (null when the field is null or absent). */
export function parseNormalizer(v: unknown, path: string, f: JsonFields): Normalizer | null {
  if (v === undefined || v === null) return null;
  const o = f.object(v, path);
  const type = f.type(o, path, NORMALIZER_TYPES);
  switch (type) {
    case 'NFC':
    case 'NFD':
    case 'NFKC':
    case 'NFKD':
      return (s) => s.normalize(type);
    case 'Lowercase':
      return lowercaseChars;
    case 'Prepend': {
      const prepend = f.string(o.prepend, `${path}.prepend`);
      return (s) => (s.length > 0 ? prepend + s : s);
    }
    case 'Replace': {
      const re = f.pattern(o.pattern, `${path}.pattern`);
      const content = f.string(o.content, `${path}.content`);
      return (s) => replaceAll(s, re, content);
    }
    case 'Strip': {
      const left = f.bool(o.strip_left, `${path}.strip_left`, true);
      const right = f.bool(o.strip_right, `${path}.strip_right`, true);
      return (s) => stripWhitespace(s, left, right);
    }
    case 'StripAccents':
      return (s) => s.replace(/\p{Mn}/gu, '');
    case 'Sequence': {
      const list = f.array(o.normalizers, `${path}.normalizers`).map((n, k) => parseNormalizer(n, `${path}.normalizers[${k}]`, f));
      const steps = list.filter((n): n is Normalizer => n !== null);
      return (s) => steps.reduce((acc, n) => n(acc), s);
    }
    case 'Precompiled': {
      // A SentencePiece charsmap; an empty one (as some converted BPE files carry) changes nothing.
      if (o.precompiled_charsmap === null || o.precompiled_charsmap === '' || o.precompiled_charsmap === undefined) return null;
      f.problem(`${path}.type`, 'Precompiled (SentencePiece charsmap) normalizers are not supported');
    }
  }
  return null;
}

/** Rust's char::to_lowercase, one character at a time (no final-sigma context, unlike String.toLowerCase). */
function lowercaseChars(s: string): string {
  let out = '';
  for (const ch of s) out += ch.toLowerCase();
  return out;
}

function replaceAll(s: string, re: RegExp, content: string): string {
  let out = '';
  for (const [a, b, m] of regexSpans(re, s)) out += m ? content : s.slice(a, b);
  return out;
}

function stripWhitespace(s: string, left: boolean, right: boolean): string {
  let a = 0;
  let b = s.length;
  if (left) while (a < b && isWhitespace(s.codePointAt(a)!)) a += s.codePointAt(a)! > 0xffff ? 2 : 1;
  if (right) {
    while (b > a) {
      const lowSurrogate = b >= 2 && s.charCodeAt(b - 1) >= 0xdc00 && s.charCodeAt(b - 1) <= 0xdfff;
      const w = lowSurrogate ? 2 : 1;
      if (!isWhitespace(s.codePointAt(b - w)!)) break;
      b -= w;
    }
  }
  return s.slice(a, b);
}

// Pre-tokenizers.

const PRE_TOKENIZER_TYPES = ['ByteLevel', 'Split', 'Metaspace', 'Sequence', 'Digits', 'Whitespace', 'WhitespaceSplit', 'Punctuation', 'BertPreTokenizer', 'CharDelimiterSplit'] as const;

/** What the tokenizer needs to know about its pre-tokenizer besides the function itself. */
export interface PreTokenizerInfo {
  run: PreTokenizer;
  byteLevel: boolean;
}

/** Builds the pre-tokenizer described at `path` (null when the field is null or absent). */
export function parsePreTokenizer(v: unknown, path: string, f: JsonFields): PreTokenizerInfo | null {
  if (v === undefined || v === null) return null;
  const o = f.object(v, path);
  const type = f.type(o, path, PRE_TOKENIZER_TYPES);
  switch (type) {
    case 'ByteLevel': {
      const addPrefixSpace = f.bool(o.add_prefix_space, `${path}.add_prefix_space`, true);
      const useRegex = f.bool(o.use_regex, `${path}.use_regex`, true);
      if (useRegex && gpt2Regex === null) gpt2Regex = new RegExp(translateOnigRegex(GPT2_PATTERN), 'gu');
      const re = gpt2Regex;
      return {
        byteLevel: true,
        run: (pieces) => {
          const prefixed = addPrefixSpace ? pieces.map((p) => (p.text.startsWith(' ') ? p : { text: ` ${p.text}`, start: p.start })) : pieces;
          const split = useRegex ? splitPieces(prefixed, (t) => regexSpans(re!, t), 'Isolated') : prefixed;
          return split.map((p) => ({ text: toByteLevel(p.text), start: p.start }));
        },
      };
    }
    case 'Split': {
      const re = f.pattern(o.pattern, `${path}.pattern`);
      const behavior = o.behavior;
      if (typeof behavior !== 'string' || !(BEHAVIORS as readonly string[]).includes(behavior)) f.fail(`${path}.behavior`, `one of ${BEHAVIORS.join(', ')}`, behavior);
      const invert = f.bool(o.invert, `${path}.invert`, false);
      return { byteLevel: false, run: (pieces) => splitPieces(pieces, (t) => regexSpans(re, t), behavior as SplitBehavior, invert) };
    }
    case 'Metaspace': {
      const replacement = f.char(o.replacement, `${path}.replacement`, '▁');
      const scheme = parsePrependScheme(o, path, f);
      const split = f.bool(o.split, `${path}.split`, true);
      const rcp = replacement.codePointAt(0)!;
      return {
        byteLevel: false,
        run: (pieces) => {
          const out: Piece[] = [];
          for (const p of pieces) {
            let text = p.text.split(' ').join(replacement);
            if (!text.startsWith(replacement) && (scheme === 'always' || (scheme === 'first' && p.start))) text = replacement + text;
            if (split) for (const q of splitPieces([{ text, start: p.start }], (t) => charSpans(t, (cp) => cp === rcp), 'MergedWithNext')) out.push(q);
            else if (text.length > 0) out.push({ text, start: p.start });
          }
          return out;
        },
      };
    }
    case 'Sequence': {
      const steps = f.array(o.pretokenizers, `${path}.pretokenizers`).map((p, k) => parsePreTokenizer(p, `${path}.pretokenizers[${k}]`, f)).filter((p): p is PreTokenizerInfo => p !== null);
      return { byteLevel: steps.some((s) => s.byteLevel), run: (pieces) => steps.reduce((acc, s) => s.run(acc), pieces) };
    }
    case 'Digits': {
      const individual = f.bool(o.individual_digits, `${path}.individual_digits`, false);
      return { byteLevel: false, run: (pieces) => splitPieces(pieces, (t) => charSpans(t, isNumeric), individual ? 'Isolated' : 'Contiguous') };
    }
    case 'Whitespace': {
      const re = /[\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}]+|[^\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}\p{White_Space}]+/gu;
      return { byteLevel: false, run: (pieces) => splitPieces(pieces, (t) => regexSpans(re, t), 'Removed', true) };
    }
    case 'WhitespaceSplit':
      return { byteLevel: false, run: (pieces) => splitPieces(pieces, (t) => charSpans(t, isWhitespace), 'Removed') };
    case 'Punctuation': {
      const behavior = o.behavior ?? 'Isolated';
      if (typeof behavior !== 'string' || !(BEHAVIORS as readonly string[]).includes(behavior)) f.fail(`${path}.behavior`, `one of ${BEHAVIORS.join(', ')}`, behavior);
      return { byteLevel: false, run: (pieces) => splitPieces(pieces, (t) => charSpans(t, isPunctuation), behavior as SplitBehavior) };
    }
    case 'BertPreTokenizer':
      return {
        byteLevel: false,
        run: (pieces) => splitPieces(splitPieces(pieces, (t) => charSpans(t, isWhitespace), 'Removed'), (t) => charSpans(t, isPunctuation), 'Isolated'),
      };
    case 'CharDelimiterSplit': {
      const d = f.char(o.delimiter, `${path}.delimiter`, ' ').codePointAt(0)!;
      return { byteLevel: false, run: (pieces) => splitPieces(pieces, (t) => charSpans(t, (cp) => cp === d), 'Removed') };
    }
  }
  return null;
}

/** Metaspace's prepend_scheme, or the older add_prefix_space flag it replaced. */
export function parsePrependScheme(o: Record<string, unknown>, path: string, f: JsonFields): 'always' | 'first' | 'never' {
  if (o.prepend_scheme !== undefined && o.prepend_scheme !== null) {
    const s = o.prepend_scheme;
    if (s !== 'always' && s !== 'first' && s !== 'never') f.fail(`${path}.prepend_scheme`, 'one of always, first, never', s);
    return s;
  }
  return f.bool(o.add_prefix_space, `${path}.add_prefix_space`, true) ? 'always' : 'never';
}
