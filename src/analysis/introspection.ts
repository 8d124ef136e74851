import { FormatError, LoomError } from '../core/errors.js';

/** One parameter of a signature in the API manifest, its type as the declaration writes it. */
export interface ApiParameter {
  name: string;
  type: string;
  optional: boolean;
  rest: boolean;
}

export interface ApiSignature {
  /** e.g. `buildNetwork(document: unknown, options?: BuildOptions): VolumetricNetwork`; constructors read `new(...)`. */
  text: string;
  parameters: ApiParameter[];
  returns: string;
  /** This overload's own doc summary, when it has one. */
  doc?: string;
}

/** A class member (methods carry signatures, properties and getters a type), an interface member, or an enum member. */
export interface ApiMember {
  name: string;
  kind?: 'method' | 'property' | 'getter';
  static?: boolean;
  readonly?: boolean;
  optional?: boolean;
  signatures?: ApiSignature[];
  type?: string;
  /** Enum members: the value. */
  value?: number | string;
  doc?: string;
}

/** One export of an entry point, as scripts/apiManifest.mjs reads it from the compiled declarations. */
export interface ApiExport {
  name: string;
  kind: 'function' | 'class' | 'const' | 'enum' | 'type';
  /** The source file that declares it, e.g. `src/grid/spec.ts`. */
  module?: string;
  /** Summary: the doc comment's first sentence. */
  doc?: string;
  /** Functions (one per overload), and constants holding functions. */
  signatures?: ApiSignature[];
  /** Classes. */
  constructors?: ApiSignature[];
  /** Class members (public, instance and static), interface members, enum members. */
  members?: ApiMember[];
  /** Constants: the declared type. */
  type?: string;
  /** Types: the aliased type's text, or "interface" (see members). */
  definition?: string;
}

/** The public API with signatures: every export of the package entry points ("." and "./node"). */
export interface ApiManifest {
  package: string;
  version: string;
  /** The TypeScript version that read the declarations. */
  typescript: string;
  entryPoints: Record<string, ApiExport[]>;
}

/**
 * The public API as JSON-ready data: each export's kind, signatures with parameter types, class
 * members and doc summary, generated at build time from the compiled declarations (dist/src/api.json,
 * copied beside the browser bundle). Node reads the file; browsers fetch it next to the bundle (or
 * next to dist/src when loaded unbundled). `location` overrides where it is read from.
 */
export async function apiManifest(location?: string | URL): Promise<ApiManifest> {
  const isNode = typeof process !== 'undefined' && typeof process.versions?.node === 'string';
  if (isNode && (location === undefined || isFileLocation(location))) {
    const { readFile } = await import('node:fs/promises');
    const { fileURLToPath } = await import('node:url');
    const path = location === undefined ? fileURLToPath(new URL('../api.json', import.meta.url)) : location instanceof URL ? fileURLToPath(location) : location;
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (e) {
      throw new LoomError(`apiManifest: cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); npm run build writes it`);
    }
    return parseManifest(text, path);
  }
  const candidates = location !== undefined ? [new URL(location, globalThis.location?.href)] : [new URL('./api.json', import.meta.url), new URL('../api.json', import.meta.url)];
  const failures: string[] = [];
  for (const url of candidates) {
    const response = await fetch(url);
    if (response.ok) return parseManifest(await response.text(), url.href);
    failures.push(`${url.href}: HTTP ${response.status}`);
  }
  throw new LoomError(`apiManifest: no API manifest found (${failures.join('; ')})`);
}

function isFileLocation(location: string | URL): boolean {
  const text = String(location);
  return !/^[a-z][a-z0-9+.-]*:/i.test(text) || text.startsWith('file:') || /^[a-z]:[\\/]/i.test(text);
}

function parseManifest(text: string, source: string): ApiManifest {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new FormatError(source, `not valid JSON (${(e as Error).message})`);
  }
  const m = doc as Partial<ApiManifest> | null;
  if (m === null || typeof m !== 'object' || typeof m.entryPoints !== 'object' || m.entryPoints === null || !Array.isArray(m.entryPoints['.'])) {
    throw new FormatError(source, 'expected an API manifest: {package, version, typescript, entryPoints: {".": [...]}}');
  }
  return m as ApiManifest;
}

export interface ApiEntry {
  name: string;
  kind: 'function' | 'class' | 'enum' | 'object' | 'constant';
  /** Parameter list as written in the compiled code (defaults shown, types erased), for functions and constructors. */
  parameters?: string[];
  /** Public prototype methods with their parameters, for classes. */
  methods?: { name: string; parameters: string[] }[];
  /** Static methods, for classes. */
  statics?: string[];
  /** Keys, for plain objects and enums. */
  keys?: string[];
  /** typeof / value, for constants. */
  value?: string;
}

/**
 * Runtime reflection of any module namespace (`await import('loom')`, or a module of your own):
 * each export's kind and parameter names (types are erased at run time; apiManifest has them),
 * sorted by name. Read from the live exports, so it needs no build step.
 */
export function describeApi(namespace: Record<string, unknown>): ApiEntry[] {
  return Object.keys(namespace)
    .sort()
    .map((name) => describeExport(name, namespace[name]));
}

export function apiJson(namespace: Record<string, unknown>): string {
  return JSON.stringify(describeApi(namespace), null, 2);
}

function describeExport(name: string, value: unknown): ApiEntry {
  if (typeof value === 'function') {
    const text = Function.prototype.toString.call(value);
    if (/^class\b/.test(text)) {
      const proto = (value as { prototype: object }).prototype;
      const methods = Object.getOwnPropertyNames(proto)
        .filter((m) => m !== 'constructor' && !m.startsWith('_') && typeof Object.getOwnPropertyDescriptor(proto, m)?.value === 'function')
        .map((m) => ({ name: m, parameters: parameterList((proto as Record<string, unknown>)[m] as Function) }));
      const statics = Object.getOwnPropertyNames(value).filter((m) => !['length', 'name', 'prototype'].includes(m) && typeof (value as unknown as Record<string, unknown>)[m] === 'function');
      return { name, kind: 'class', parameters: constructorParameters(text), methods, statics };
    }
    return { name, kind: 'function', parameters: parameterList(value) };
  }
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value);
    const isEnum = keys.length > 0 && keys.every((k) => typeof (value as Record<string, unknown>)[k] === 'number' || /^-?\d+$/.test(k));
    return { name, kind: isEnum && !Array.isArray(value) ? 'enum' : 'object', keys: Array.isArray(value) ? undefined : keys.filter((k) => !/^-?\d+$/.test(k)) };
  }
  return { name, kind: 'constant', value: typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean' ? String(value) : typeof value };
}

function parameterList(fn: Function): string[] {
  return splitParameters(parenthesized(Function.prototype.toString.call(fn)));
}

function constructorParameters(classText: string): string[] {
  const at = classText.search(/\bconstructor\s*\(/);
  return at < 0 ? [] : splitParameters(parenthesized(classText.slice(at)));
}

/** The text inside the first balanced parentheses (an arrow function with one bare parameter has none). */
function parenthesized(text: string): string {
  const open = text.indexOf('(');
  const arrow = text.indexOf('=>');
  if (arrow >= 0 && (open < 0 || arrow < open)) return text.slice(0, arrow).replace(/^async\s+/, '').trim();
  if (open < 0) return '';
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    const c = text[i];
    if (c === '(' || c === '[' || c === '{') depth++;
    else if (c === ')' || c === ']' || c === '}') {
      depth--;
      if (depth === 0) return text.slice(open + 1, i);
    }
  }
  return '';
}

function splitParameters(list: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let current = '';
  for (const c of list) {
    if (c === '(' || c === '[' || c === '{') depth++;
    if (c === ')' || c === ']' || c === '}') depth--;
    if (c === ',' && depth === 0) {
      out.push(current.trim());
      current = '';
    } else current += c;
  }
  if (current.trim()) out.push(current.trim());
  return out.map((p) => p.replace(/\s+/g, ' '));
}
