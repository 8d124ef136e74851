/**
 * Mutations of valid documents, as fast-check arbitraries of plain "plans" that are applied
 * deterministically, so a failing input shrinks (fewer, smaller operations) and replays by seed.
 */
import fc from 'fast-check';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Integers that break naive size arithmetic: sign, 2^31/2^32/2^53 edges, 10^12 claimed elements. */
export const HUGE_INTEGERS: readonly number[] = [
  0, 1, 2, 3, 7, -1, -2, 255, 256, 65535, 65536, 2 ** 20, 1e6, 1e9, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 1e12, 2 ** 53 - 1,
  2 ** 53 + 2, 1e15, 1e21, 1e300, -1e300, Number.MAX_VALUE, -Number.MAX_VALUE,
];
const ODD_NUMBERS: readonly number[] = [0.5, -0.5, 1.5, -0, 5e-324, 1e-300, 3.4028235e38, 3.5e38, -3.5e38, 0.1, 1 / 3];

/** Number literals JSON.stringify cannot produce (they parse to Infinity, 0 or a rounded value), plus non-JSON ones. */
export const ODD_LITERALS: readonly string[] = [
  '1e999', '-1e999', '1e-999', '-0', '0.0', '1E+2', '123456789012345678901234567890', '4294967296', '9007199254740993',
  '3.5e38', '-3.5e38', '1e12', '2147483648', 'NaN', 'Infinity', '-Infinity', '0x10', '01', '.5', '5.', '+1', '1_000', 'null', 'true', '""', '[]', '{}',
];

/** Keys that would pollute prototypes if a parser assigned them through `obj[key] = ...`. */
export const PROTO_KEYS: readonly string[] = ['__proto__', 'constructor', 'prototype', 'toString', 'valueOf', 'hasOwnProperty', '__defineGetter__'];

/** Strings with characters that tend to break tokenizers and line-based parsers. */
const NASTY_STRINGS: readonly string[] = [
  '', ' ', '\u0000', '\uFEFF', '\uD800', '\uDFFF', '\r', '\n', '\r\n', '\t', '"', '\\', ',', ';', '=', '==', '{', '[', ']', '}',
  'NaN', 'Infinity', 'null', 'undefined', '💥', 'é', 'İ', 'ß', '\u202E', '\u2028', 'a'.repeat(100), '%s%n', '${x}',
];

/** Short random text: full unicode (including lone surrogates) or one of the nasty strings. */
export const nastyText: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.string({ unit: 'binary', maxLength: 6 }) },
  { weight: 2, arbitrary: fc.constantFrom(...NASTY_STRINGS) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 4 }) },
);

export const nastyNumber: fc.Arbitrary<number> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...HUGE_INTEGERS) },
  { weight: 1, arbitrary: fc.constantFrom(...ODD_NUMBERS) },
  { weight: 1, arbitrary: fc.integer() },
  { weight: 1, arbitrary: fc.double({ noNaN: true, noDefaultInfinity: true }) },
);

/** A value of the wrong type (or a right type with a hostile value) for any position in a document. */
export const nastyValue: fc.Arbitrary<Json> = fc.oneof(
  { weight: 4, arbitrary: nastyNumber },
  { weight: 2, arbitrary: nastyText },
  { weight: 1, arbitrary: fc.constantFrom<Json>(null, true, false, [], {}, [0], [[]], { '': null }) },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<Json> },
  { weight: 1, arbitrary: fc.array(nastyNumber, { maxLength: 5 }) },
);

/** Most characters one repeat/grow operation adds, so compounding operations stay within a few megabytes. */
const GROWTH_LIMIT = 1 << 21;

// ---- bytes ----

export type ByteOp =
  | { op: 'truncate'; at: number }
  | { op: 'flip'; at: number; bit: number }
  | { op: 'set'; at: number; value: number }
  | { op: 'u32'; at: number; value: number; littleEndian: boolean }
  | { op: 'u64'; at: number; value: bigint }
  | { op: 'insert'; at: number; bytes: Uint8Array }
  | { op: 'delete'; at: number; length: number }
  | { op: 'repeat'; at: number; length: number; times: number };

/** Offsets biased toward headers (the first 64 bytes), where sizes and types live. */
const offset = fc.oneof({ weight: 3, arbitrary: fc.nat(64) }, { weight: 2, arbitrary: fc.nat() });

export const byteOp: fc.Arbitrary<ByteOp> = fc.oneof(
  fc.record({ op: fc.constant('truncate' as const), at: offset }),
  fc.record({ op: fc.constant('flip' as const), at: offset, bit: fc.nat(7) }),
  fc.record({ op: fc.constant('set' as const), at: offset, value: fc.oneof(fc.constantFrom(0, 1, 0x7f, 0x80, 0xff), fc.nat(255)) }),
  fc.record({
    op: fc.constant('u32' as const),
    at: offset,
    value: fc.oneof(fc.constantFrom(0, 1, 0xff, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff, 1e6, 1e9), fc.nat({ max: 0xffffffff })),
    littleEndian: fc.boolean(),
  }),
  fc.record({
    op: fc.constant('u64' as const),
    at: offset,
    value: fc.oneof(fc.constantFrom(0n, 1n, 2n ** 32n, 2n ** 53n - 1n, 2n ** 53n + 1n, 10n ** 12n, 2n ** 63n, 2n ** 64n - 1n), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })),
  }),
  fc.record({ op: fc.constant('insert' as const), at: offset, bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ op: fc.constant('delete' as const), at: offset, length: fc.integer({ min: 1, max: 16 }) }),
  fc.record({ op: fc.constant('repeat' as const), at: offset, length: fc.integer({ min: 1, max: 32 }), times: fc.integer({ min: 1, max: 200 }) }),
);

export function applyByteOps(input: Uint8Array, ops: readonly ByteOp[]): Uint8Array {
  let b = input;
  for (const o of ops) {
    const at = o.at % (b.length + 1);
    switch (o.op) {
      case 'truncate':
        b = b.slice(0, at);
        break;
      case 'flip':
        if (at < b.length) {
          b = b.slice();
          b[at] ^= 1 << o.bit;
        }
        break;
      case 'set':
        if (at < b.length) {
          b = b.slice();
          b[at] = o.value;
        }
        break;
      case 'u32':
        if (at + 4 <= b.length) {
          b = b.slice();
          new DataView(b.buffer).setUint32(at, o.value, o.littleEndian);
        }
        break;
      case 'u64':
        if (at + 8 <= b.length) {
          b = b.slice();
          new DataView(b.buffer).setBigUint64(at, o.value, true);
        }
        break;
      case 'insert':
        b = concat(b.subarray(0, at), o.bytes, b.subarray(at));
        break;
      case 'delete':
        b = concat(b.subarray(0, at), b.subarray(at + o.length));
        break;
      case 'repeat': {
        const piece = b.subarray(at, at + o.length);
        b = concat(b.subarray(0, at), ...Array.from({ length: o.times }, () => piece), b.subarray(at));
        break;
      }
    }
  }
  return b;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

// ---- text ----

export type TextOp =
  | { op: 'truncate'; at: number }
  | { op: 'replace'; at: number; text: string }
  | { op: 'insert'; at: number; text: string }
  | { op: 'delete'; at: number; length: number }
  | { op: 'number'; k: number; literal: string }
  | { op: 'wrap'; k: number; depth: number; open: '[' | '{' }
  | { op: 'repeat'; at: number; length: number; times: number };

const deepNesting = fc.oneof(fc.integer({ min: 1, max: 50 }), fc.constantFrom(500, 5_000, 50_000, 200_000));

export const textOp: fc.Arbitrary<TextOp> = fc.oneof(
  fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('replace' as const), at: fc.nat(), text: nastyText }),
  fc.record({ op: fc.constant('insert' as const), at: fc.nat(), text: nastyText }),
  fc.record({ op: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 20 }) }),
  fc.record({ op: fc.constant('number' as const), k: fc.nat(), literal: fc.oneof(fc.constantFrom(...ODD_LITERALS), nastyNumber.map(String)) }),
  fc.record({ op: fc.constant('wrap' as const), k: fc.nat(), depth: deepNesting, open: fc.constantFrom('[' as const, '{' as const) }),
  fc.record({ op: fc.constant('repeat' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 40 }), times: fc.integer({ min: 2, max: 2000 }) }),
);

const NUMBER_LITERAL = /-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g;
const SCALAR_LITERAL = /-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|"(?:[^"\\]|\\.)*"|true|false|null/g;

export function applyTextOps(input: string, ops: readonly TextOp[]): string {
  let s = input;
  for (const o of ops) {
    switch (o.op) {
      case 'truncate':
        s = s.slice(0, o.at % (s.length + 1));
        break;
      case 'replace': {
        const at = o.at % (s.length + 1);
        s = s.slice(0, at) + o.text + s.slice(at + 1);
        break;
      }
      case 'insert': {
        const at = o.at % (s.length + 1);
        s = s.slice(0, at) + o.text + s.slice(at);
        break;
      }
      case 'delete': {
        const at = o.at % (s.length + 1);
        s = s.slice(0, at) + s.slice(at + o.length);
        break;
      }
      case 'number':
        s = replaceNth(s, NUMBER_LITERAL, o.k, () => o.literal);
        break;
      case 'wrap': {
        const open = o.open === '[' ? '[' : '{"k":';
        const close = o.open === '[' ? ']' : '}';
        s = replaceNth(s, SCALAR_LITERAL, o.k, (m) => open.repeat(o.depth) + m + close.repeat(o.depth));
        break;
      }
      case 'repeat': {
        const at = o.at % (s.length + 1);
        const piece = s.slice(at, at + o.length);
        s = s.slice(0, at) + piece.repeat(Math.min(o.times, Math.floor(GROWTH_LIMIT / Math.max(1, piece.length)))) + s.slice(at);
        break;
      }
    }
  }
  return s;
}

/** Characters searched for literals: an unterminated string literal makes the regex scan quadratic. */
const SEARCH_WINDOW = 4096;

/** Replaces the k-th match (modulo the count) of `re` inside a window chosen by k. */
function replaceNth(s: string, re: RegExp, k: number, f: (match: string) => string): string {
  const from = s.length > SEARCH_WINDOW ? k % (s.length - SEARCH_WINDOW) : 0;
  const matches = [...s.slice(from, from + SEARCH_WINDOW).matchAll(re)];
  if (matches.length === 0) return s;
  const m = matches[k % matches.length];
  const at = from + m.index!;
  return s.slice(0, at) + f(m[0]) + s.slice(at + m[0].length);
}

// ---- JSON trees ----

export type TreeOp =
  | { op: 'replace'; k: number; value: Json }
  | { op: 'delete'; k: number }
  | { op: 'addKey'; k: number; key: string; value: Json }
  | { op: 'string'; k: number; edit: TextOp }
  | { op: 'grow'; k: number; times: number }
  | { op: 'nest'; k: number; depth: number };

export function treeOp(extraKeys: readonly string[] = []): fc.Arbitrary<TreeOp> {
  const keys = extraKeys.length > 0 ? fc.oneof(fc.constantFrom(...PROTO_KEYS), fc.constantFrom(...extraKeys), nastyText) : fc.oneof(fc.constantFrom(...PROTO_KEYS), nastyText);
  return fc.oneof(
    { weight: 5, arbitrary: fc.record({ op: fc.constant('replace' as const), k: fc.nat(), value: nastyValue }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('delete' as const), k: fc.nat() }) },
    { weight: 3, arbitrary: fc.record({ op: fc.constant('addKey' as const), k: fc.nat(), key: keys, value: nastyValue }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('string' as const), k: fc.nat(), edit: textOp }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('grow' as const), k: fc.nat(), times: fc.integer({ min: 1, max: 300 }) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('nest' as const), k: fc.nat(), depth: fc.oneof(fc.integer({ min: 1, max: 20 }), fc.constantFrom(100, 1000)) }) },
  );
}

interface Slot {
  value: Json;
  set: (v: Json) => void;
  remove: () => void;
}

/**
 * Every value in the tree with a way to replace or remove it (the root first). Iterative, like
 * cloneJson, because mutated trees can be nested deeper than the harness's own stack allows.
 */
function slots(root: { doc: Json }): Slot[] {
  const out: Slot[] = [{ value: root.doc, set: (v) => (root.doc = v), remove: () => (root.doc = null) }];
  for (let i = 0; i < out.length; i++) {
    const value = out[i].value;
    if (Array.isArray(value)) {
      value.forEach((v, j) => out.push({ value: v, set: (nv) => (value[j] = nv), remove: () => value.splice(j, 1) }));
    } else if (value !== null && typeof value === 'object') {
      for (const key of Object.keys(value)) out.push({ value: value[key], set: (nv) => defineKey(value, key, nv), remove: () => delete value[key] });
    }
  }
  return out;
}

/** A deep copy of a JSON tree that keeps own "__proto__" keys and does not recurse. */
export function cloneJson(doc: Json): Json {
  const root = { doc };
  const work: { from: Json; put: (v: Json) => void }[] = [{ from: doc, put: (v) => (root.doc = v) }];
  for (let item = work.pop(); item; item = work.pop()) {
    const { from, put } = item;
    if (Array.isArray(from)) {
      const to: Json[] = new Array(from.length);
      put(to);
      from.forEach((v, i) => work.push({ from: v, put: (c) => (to[i] = c) }));
    } else if (from !== null && typeof from === 'object') {
      const to: { [key: string]: Json } = {};
      put(to);
      // Keys are created now, in order; the values arrive later (stack order) and keep those positions.
      for (const key of Object.keys(from)) {
        defineKey(to, key, null);
        work.push({ from: from[key], put: (c) => defineKey(to, key, c) });
      }
    } else {
      put(from);
    }
  }
  return root.doc;
}

/** Sets an own property even for "__proto__", as JSON.parse does (plain assignment would change the prototype). */
export function defineKey(o: { [key: string]: Json }, key: string, value: Json): void {
  Object.defineProperty(o, key, { value, enumerable: true, writable: true, configurable: true });
}

/** Applies tree operations to a deep copy of `doc`. */
export function applyTreeOps(doc: Json, ops: readonly TreeOp[]): Json {
  const root = { doc: cloneJson(doc) };
  for (const o of ops) {
    const all = slots(root);
    const pick = <T>(list: T[]): T | undefined => (list.length === 0 ? undefined : list[o.k % list.length]);
    switch (o.op) {
      case 'replace':
        pick(all)?.set(cloneJson(o.value));
        break;
      case 'delete':
        pick(all.slice(1))?.remove();
        break;
      case 'addKey': {
        const slot = pick(all.filter((s) => s.value !== null && typeof s.value === 'object' && !Array.isArray(s.value)));
        if (slot) defineKey(slot.value as { [key: string]: Json }, o.key, cloneJson(o.value));
        break;
      }
      case 'string': {
        const slot = pick(all.filter((s) => typeof s.value === 'string'));
        if (slot) slot.set(applyTextOps(slot.value as string, [o.edit]));
        break;
      }
      case 'grow': {
        const slot = pick(all.filter((s) => Array.isArray(s.value) && s.value.length > 0));
        if (slot) {
          const a = slot.value as Json[];
          const last = a[a.length - 1];
          const times = Math.min(o.times, Math.floor(GROWTH_LIMIT / Math.max(1, stringifyTree(last).length)));
          for (let i = 0; i < times; i++) a.push(cloneJson(last));
        }
        break;
      }
      case 'nest': {
        const slot = pick(all);
        if (slot) {
          let v = slot.value;
          for (let i = 0; i < o.depth; i++) v = [v];
          slot.set(v);
        }
        break;
      }
    }
  }
  return root.doc;
}

/** JSON text of a tree; a tree too deep for JSON.stringify becomes that failure's stand-in text. */
export function stringifyTree(doc: Json): string {
  try {
    return JSON.stringify(doc);
  } catch {
    return '[';
  }
}

/** A valid document, optionally mutated as a tree and then as text. */
export interface JsonMutation {
  doc: Json;
  tree: TreeOp[];
  text: TextOp[];
}

/** About 1 in 5 inputs is the valid document itself; the rest carry tree and/or text mutations. */
export function jsonMutation(valid: fc.Arbitrary<Json>, extraKeys: readonly string[] = []): fc.Arbitrary<JsonMutation> {
  return fc.record({
    doc: valid,
    tree: fc.oneof({ weight: 1, arbitrary: fc.constant([] as never[]) }, { weight: 3, arbitrary: fc.array(treeOp(extraKeys), { minLength: 1, maxLength: 4 }) }),
    text: fc.oneof({ weight: 3, arbitrary: fc.constant([] as never[]) }, { weight: 1, arbitrary: fc.array(textOp, { minLength: 1, maxLength: 3 }) }),
  });
}

const trees = new WeakMap<JsonMutation, Json>();
const texts = new WeakMap<JsonMutation, string>();

/** The document after its tree operations; cached, since the harness asks for it to run, to size and to preview one input. */
export function mutatedTree(m: JsonMutation): Json {
  if (m.tree.length === 0) return m.doc;
  let tree = trees.get(m);
  if (tree === undefined) {
    tree = applyTreeOps(m.doc, m.tree);
    trees.set(m, tree);
  }
  return tree;
}

/** The document text after tree and text operations (cached like mutatedTree). */
export function materializeJson(m: JsonMutation): string {
  let text = texts.get(m);
  if (text === undefined) {
    text = applyTextOps(stringifyTree(mutatedTree(m)), m.text);
    texts.set(m, text);
  }
  return text;
}

/** Valid bytes, optionally mutated. */
export interface BytesMutation {
  bytes: Uint8Array;
  ops: ByteOp[];
}

export function bytesMutation(valid: fc.Arbitrary<Uint8Array>): fc.Arbitrary<BytesMutation> {
  return fc.record({
    bytes: valid,
    ops: fc.oneof({ weight: 1, arbitrary: fc.constant([] as never[]) }, { weight: 4, arbitrary: fc.array(byteOp, { minLength: 1, maxLength: 4 }) }),
  });
}

/** Valid text, optionally mutated. */
export interface TextMutation {
  text: string;
  ops: TextOp[];
}

export function textMutation(valid: fc.Arbitrary<string>): fc.Arbitrary<TextMutation> {
  return fc.record({
    text: valid,
    ops: fc.oneof({ weight: 1, arbitrary: fc.constant([] as never[]) }, { weight: 4, arbitrary: fc.array(textOp, { minLength: 1, maxLength: 4 }) }),
  });
}
