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
 * Lists every export of a module namespace (pass `await import('loom')` or the index module)
 * with its kind and parameter lists, sorted by name. The list is read from the live exports, so
 * it cannot drift from them; parameter names come from each function's own source text.
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
