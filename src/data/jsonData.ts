/**
 * JSON datasets: {"inputs": number[][], "targets": number[] | number[][], "shape"?: number[]}.
 * A flat targets array of class indices gives labels; rows of numbers give regression targets.
 */
import { describeValue, FormatError } from '../core/errors.js';
import { asClassLabels, classCount, type Dataset } from './dataset.js';
import { readDataText } from './files.js';

export function readJsonDataset(path: string): Dataset {
  return parseJsonDataset(readDataText(path), path);
}

export function parseJsonDataset(text: string, source = 'json'): Dataset {
  const doc = parseWithPosition(text, source);
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    throw new FormatError(source, `expected a JSON object with "inputs" and "targets", got ${describeValue(doc)}`);
  }
  const obj = doc as Record<string, unknown>;
  for (const field of ['inputs', 'targets']) {
    if (!(field in obj)) throw new FormatError(source, `missing field "${field}"`);
  }

  const rows = obj.inputs;
  if (!Array.isArray(rows)) throw new FormatError(source, `inputs: expected an array of rows, got ${describeValue(rows)}`);
  if (rows.length === 0) throw new FormatError(source, 'inputs: expected at least one sample, got an empty array');
  const count = rows.length;

  let inputShape: number[] | undefined;
  if (obj.shape !== undefined) inputShape = parseShape(obj.shape, source);
  const width = inputShape ? inputShape.reduce((a, b) => a * b, 1) : rowLength(rows[0], 'inputs[0]', source);
  if (width === 0) throw new FormatError(source, 'inputs[0]: expected at least one number per sample, got an empty array');
  // Row lengths are checked before allocating, so a huge "shape" or one long first row cannot size the buffer.
  for (let i = 0; i < count; i++) checkRowLength(rows[i], `inputs[${i}]`, width, source, inputShape !== undefined);
  const inputs = new Float32Array(count * width);
  for (let i = 0; i < count; i++) fillRow(rows[i], `inputs[${i}]`, width, inputs, i * width, source);
  inputShape ??= [width];

  const t = obj.targets;
  if (!Array.isArray(t)) throw new FormatError(source, `targets: expected an array, got ${describeValue(t)}`);
  if (t.length !== count) throw new FormatError(source, `targets: ${t.length} entries for ${count} inputs; expected one per input`);

  if (!Array.isArray(t[0])) {
    const values = new Float64Array(count);
    for (let i = 0; i < count; i++) {
      const v = finiteNumber(t[i], `targets[${i}]`, source, false);
      // Regression targets are stored as float32, where 1e300 would become Infinity.
      if (!Number.isFinite(Math.fround(v))) throw new FormatError(source, `targets[${i}]: ${v} is out of float32 range`);
      values[i] = v;
    }
    const labels = asClassLabels(values);
    if (labels) return { count, inputs, inputShape, labels, targetWidth: classCount(labels), source };
    return { count, inputs, inputShape, targets: Float32Array.from(values), targetWidth: 1, source };
  }
  const targetWidth = rowLength(t[0], 'targets[0]', source);
  if (targetWidth === 0) throw new FormatError(source, 'targets[0]: expected at least one number, got an empty array');
  for (let i = 0; i < count; i++) checkRowLength(t[i], `targets[${i}]`, targetWidth, source, false);
  const targets = new Float32Array(count * targetWidth);
  for (let i = 0; i < count; i++) fillRow(t[i], `targets[${i}]`, targetWidth, targets, i * targetWidth, source);
  return { count, inputs, inputShape, targets, targetWidth, source };
}

function parseShape(v: unknown, source: string): number[] {
  if (!Array.isArray(v) || v.length === 0) throw new FormatError(source, `shape: expected a non-empty array of positive integers, got ${describeValue(v)}`);
  return v.map((d, i) => {
    if (typeof d !== 'number' || !Number.isInteger(d) || d < 1) {
      throw new FormatError(source, `shape[${i}]: expected a positive integer, got ${describeValue(d)}`);
    }
    return d;
  });
}

function rowLength(row: unknown, path: string, source: string): number {
  if (!Array.isArray(row)) throw new FormatError(source, `${path}: expected an array of numbers, got ${describeValue(row)}`);
  return row.length;
}

function checkRowLength(row: unknown, path: string, width: number, source: string, fromShape: boolean): void {
  const n = rowLength(row, path, source);
  if (n !== width) {
    throw new FormatError(source, `${path}: expected ${width} numbers${fromShape ? ' (the product of "shape")' : ''}, got ${n}`);
  }
}

/** Copies a row whose length checkRowLength has already confirmed. */
function fillRow(row: unknown, path: string, width: number, out: Float32Array, offset: number, source: string): void {
  const r = row as unknown[];
  for (let j = 0; j < width; j++) out[offset + j] = finiteNumber(r[j], `${path}[${j}]`, source, true);
}

function finiteNumber(v: unknown, path: string, source: string, float32: boolean): number {
  if (typeof v !== 'number') throw new FormatError(source, `${path}: expected a number, got ${describeValue(v)}`);
  // JSON has no NaN/Infinity literals, but 1e999 parses to Infinity, and float32 overflows sooner.
  if (!Number.isFinite(float32 ? Math.fround(v) : v)) {
    throw new FormatError(source, `${path}: expected a finite number${float32 ? ' within float32 range' : ''}, got ${v}`);
  }
  return v;
}

/** JSON.parse, with failures reported as position plus line and column. */
function parseWithPosition(text: string, source: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    const message = (e as Error).message;
    const m = / in JSON at position (\d+)/.exec(message);
    // V8 omits the position for "Unexpected token" errors; find it with a syntax-only scan.
    const pos = m ? Number(m[1]) : jsonErrorOffset(text);
    const detail = message.replace(/ in JSON at position \d+.*$/, '').replace(/, (?:\.\.\.)?"[\s\S]*is not valid JSON$/, '');
    if (pos === undefined) throw new FormatError(source, `invalid JSON: ${detail}`);
    const before = text.slice(0, pos);
    const line = before.split('\n').length;
    const column = pos - before.lastIndexOf('\n');
    throw new FormatError(source, `invalid JSON at position ${pos} (line ${line}, column ${column}): ${detail}`);
  }
}

/** Offset of the first JSON syntax error, or undefined if the scan finds none. */
export function jsonErrorOffset(text: string): number | undefined {
  let i = 0;
  const fail = (): never => {
    throw i;
  };
  const ws = (): void => {
    while (i < text.length && ' \t\n\r'.includes(text[i])) i++;
  };
  const expect = (ch: string): void => {
    ws();
    if (text[i] !== ch) fail();
    i++;
  };
  const numberRe = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
  const string = (): void => {
    i++;
    for (;;) {
      if (i >= text.length) fail();
      const c = text.charCodeAt(i);
      if (c === 0x22) break;
      if (c < 0x20) fail();
      if (c === 0x5c) {
        i++;
        if (text[i] === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 5))) fail();
          i += 4;
        } else if (!'"\\/bfnrt'.includes(text[i] ?? 'x')) fail();
      }
      i++;
    }
    i++;
  };
  const value = (): void => {
    ws();
    const ch = text[i];
    if (ch === '{') {
      i++;
      ws();
      if (text[i] === '}') {
        i++;
        return;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail();
        string();
        expect(':');
        value();
        ws();
        if (text[i] === '}') break;
        if (text[i] !== ',') fail();
        i++;
      }
      i++;
    } else if (ch === '[') {
      i++;
      ws();
      if (text[i] === ']') {
        i++;
        return;
      }
      for (;;) {
        value();
        ws();
        if (text[i] === ']') break;
        if (text[i] !== ',') fail();
        i++;
      }
      i++;
    } else if (ch === '"') string();
    else if (text.startsWith('true', i)) i += 4;
    else if (text.startsWith('false', i)) i += 5;
    else if (text.startsWith('null', i)) i += 4;
    else {
      numberRe.lastIndex = i;
      if (!numberRe.test(text)) fail();
      i = numberRe.lastIndex;
    }
  };
  try {
    value();
    ws();
    return i < text.length ? i : undefined;
  } catch (e) {
    if (typeof e === 'number') return e;
    return undefined; // stack overflow on absurd nesting: no position
  }
}
