import {
  DType,
  dtypeName,
  fp4CodeToFloat32,
  packWeights,
  packedByteLength,
  parseDType,
  unpackWeights,
  type QuantParams,
} from '../core/dtype.js';
import { requireFloatWeights } from '../engine/decode.js';
import { FormatError, LoomError, NumericError, ShapeError, describeValue } from '../core/errors.js';
import { shortestFloat32 } from '../core/floatFormat.js';
import { Tensor } from '../core/tensor.js';
import type { VolumetricNetwork } from '../grid/network.js';
import { networkToJson, tiedOwners } from '../grid/persistence.js';
import { coordText, type Layer } from '../layers/layer.js';

/**
 * Safetensors (huggingface/safetensors): 8 bytes little-endian header length N, N bytes of JSON
 * {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {string: string}}, then the
 * data, offsets relative to its start. Bytes in, bytes out: no Node APIs here (safetensorsFiles.ts
 * adds files and sharded checkpoints).
 */

/** The safetensors dtypes this reader and writer handle. */
export type SafetensorsDType =
  | 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8'
  | 'U64' | 'U32' | 'U16' | 'U8' | 'BOOL' | 'F8_E4M3' | 'F8_E5M2' | 'F4';

interface DTypeInfo {
  bits: number;
  /** Position in the reference implementation's dtype enum: it writes higher ranks first. */
  rank: number;
  /** The Loom dtype with the same encoding at scale 1, used to decode (and encode) values. */
  loom?: DType;
}

const DTYPES: Readonly<Record<SafetensorsDType, DTypeInfo>> = {
  BOOL: { bits: 8, rank: 0 },
  F4: { bits: 4, rank: 1 },
  U8: { bits: 8, rank: 4, loom: DType.Uint8 },
  I8: { bits: 8, rank: 5, loom: DType.Int8 },
  F8_E5M2: { bits: 8, rank: 6, loom: DType.FP8E5M2 },
  F8_E4M3: { bits: 8, rank: 7, loom: DType.FP8E4M3 },
  I16: { bits: 16, rank: 9, loom: DType.Int16 },
  U16: { bits: 16, rank: 10, loom: DType.Uint16 },
  F16: { bits: 16, rank: 11, loom: DType.Float16 },
  BF16: { bits: 16, rank: 12, loom: DType.BFloat16 },
  I32: { bits: 32, rank: 13, loom: DType.Int32 },
  U32: { bits: 32, rank: 14, loom: DType.Uint32 },
  F32: { bits: 32, rank: 15, loom: DType.Float32 },
  F64: { bits: 64, rank: 17, loom: DType.Float64 },
  I64: { bits: 64, rank: 18 },
  U64: { bits: 64, rank: 19 },
};

/** The supported dtypes, in the reference implementation's enum order. */
export const SAFETENSORS_DTYPES: readonly SafetensorsDType[] = Object.freeze(Object.keys(DTYPES) as SafetensorsDType[]);

/** True for the dtype strings this module reads and writes (case-sensitive, as in files). */
export function isSafetensorsDType(s: unknown): s is SafetensorsDType {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(DTYPES, s);
}

/**
 * Bytes that `count` values of `dtype` occupy. F4 packs two values per byte, the first in the low
 * nibble; an odd count is padded to a whole byte (the original engine writes that; the reference refuses it).
 */
export function safetensorsByteLength(dtype: SafetensorsDType, count: number): number {
  return Math.ceil((count * DTYPES[dtype].bits) / 8);
}

/** The reference implementation's cap on the JSON header. */
export const DEFAULT_MAX_HEADER_BYTES = 100_000_000;
/** Default cap on one tensor's element count (the largest layer Loom builds). */
export const DEFAULT_MAX_ELEMENTS = 2 ** 31 - 1;

export interface SafetensorsLimits {
  /** Largest JSON header accepted, in bytes (default DEFAULT_MAX_HEADER_BYTES). */
  maxHeaderBytes?: number;
  /** Most elements one tensor may claim; checked on the header, before anything is allocated (default DEFAULT_MAX_ELEMENTS). */
  maxElements?: number;
}

/** Limits plus the name errors use. */
export interface SafetensorsReadOptions extends SafetensorsLimits {
  /** Names the data in error messages (a file path; default "safetensors"). */
  source?: string;
}

/** One tensor as the header describes it. `begin`/`end` are relative to the start of the data. */
export interface TensorInfo {
  readonly name: string;
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
  /** Product of the shape (1 for a scalar, shape []). */
  readonly count: number;
  readonly begin: number;
  readonly end: number;
  /** The shard file holding it, for tensors of a sharded checkpoint. */
  readonly shard?: string;
}

/** A parsed, validated header. */
export interface SafetensorsHeader {
  /** Tensors in data order. */
  readonly tensors: readonly TensorInfo[];
  readonly metadata: Readonly<Record<string, string>>;
  /** N, the JSON header's length in bytes (padding included). */
  readonly headerLength: number;
  /** Where the data starts in the file: 8 + N. */
  readonly dataStart: number;
  /** Bytes of data after the header. */
  readonly dataLength: number;
}

/**
 * The header length from a file's first 8 bytes, checked against the cap (first, so that a huge
 * claim is refused without reading anything) and against the `totalBytes` available.
 */
export function readHeaderLength(prefix: Uint8Array, totalBytes: number, options: SafetensorsReadOptions = {}): number {
  const source = options.source ?? 'safetensors';
  if (totalBytes < 8 || prefix.length < 8) {
    throw new FormatError(source, `${Math.min(totalBytes, prefix.length)} bytes is too short for safetensors (a file starts with an 8-byte header length)`);
  }
  const view = new DataView(prefix.buffer, prefix.byteOffset, 8);
  const big = view.getBigUint64(0, true);
  const cap = options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES;
  if (big > BigInt(cap)) throw new FormatError(source, `header length ${big} bytes is above the limit of ${cap} (maxHeaderBytes)`);
  const n = Number(big);
  if (n > totalBytes - 8) throw new FormatError(source, `header length ${n} bytes runs past the end of the data (${totalBytes - 8} bytes follow the length)`);
  return n;
}

/** Parses and validates the JSON header; `dataLength` is the number of bytes after it. */
export function parseSafetensorsHeader(headerBytes: Uint8Array, dataLength: number, options: SafetensorsReadOptions = {}): SafetensorsHeader {
  const source = options.source ?? 'safetensors';
  const fail = (detail: string): never => {
    throw new FormatError(source, detail);
  };
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    return fail('header is not valid UTF-8');
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    return fail(`header is not valid JSON (${(e as Error).message})`);
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) return fail(`header must be a JSON object, got ${describeValue(doc)}`);

  const maxElements = options.maxElements ?? DEFAULT_MAX_ELEMENTS;
  const metadata: Record<string, string> = {};
  const tensors: TensorInfo[] = [];
  for (const [name, entry] of Object.entries(doc as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (entry === null) continue;
      if (typeof entry !== 'object' || Array.isArray(entry)) return fail(`__metadata__ must be an object of strings, got ${describeValue(entry)}`);
      for (const [k, v] of Object.entries(entry as Record<string, unknown>)) {
        if (typeof v !== 'string') return fail(`__metadata__.${describeValue(k)} must be a string, got ${describeValue(v)}`);
        metadata[k] = v;
      }
      continue;
    }
    tensors.push(parseTensorEntry(name, entry, dataLength, maxElements, fail));
  }

  // Sorting by offset puts any overlap between neighbours; empty tensors occupy nothing.
  tensors.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let previous: TensorInfo | undefined;
  for (const t of tensors) {
    if (t.begin === t.end) continue;
    if (previous && t.begin < previous.end) {
      fail(`tensors ${describeValue(previous.name)} [${previous.begin}, ${previous.end}] and ${describeValue(t.name)} [${t.begin}, ${t.end}] overlap`);
    }
    if (!previous || t.end > previous.end) previous = t;
  }
  return { tensors, metadata, headerLength: headerBytes.length, dataStart: 8 + headerBytes.length, dataLength };
}

function parseTensorEntry(name: string, entry: unknown, dataLength: number, maxElements: number, fail: (d: string) => never): TensorInfo {
  // describeValue shortens long names; a hostile header can have megabyte-long ones.
  const where = `tensor ${describeValue(name)}`;
  if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) {
    return fail(`${where}: expected an object with dtype, shape and data_offsets, got ${describeValue(entry)}`);
  }
  const e = entry as Record<string, unknown>;
  if (!isSafetensorsDType(e.dtype)) {
    return fail(`${where}: unknown dtype ${describeValue(e.dtype)} (supported: ${SAFETENSORS_DTYPES.join(', ')})`);
  }
  const dtype = e.dtype;
  if (!Array.isArray(e.shape)) return fail(`${where}: shape must be an array of non-negative integers, got ${describeValue(e.shape)}`);
  const shape = e.shape as unknown[];
  e.shape.forEach((d, i) => {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
      fail(`${where}: shape[${i}] must be a non-negative integer, got ${describeValue(d)}`);
    }
  });
  const dims = shape as number[];
  let count = 1;
  if (dims.includes(0)) count = 0;
  else {
    for (const d of dims) {
      count *= d;
      if (count > maxElements) {
        const total = dims.reduce((a, b) => a * b, 1);
        return fail(`${where}: shape [${dims.join(', ')}] holds ${total} elements, above the limit of ${maxElements} (maxElements)`);
      }
    }
  }
  const offsets = e.data_offsets;
  if (
    !Array.isArray(offsets) || offsets.length !== 2 ||
    !offsets.every((o) => typeof o === 'number' && Number.isSafeInteger(o) && o >= 0) || offsets[0] > offsets[1]
  ) {
    return fail(`${where}: data_offsets must be [begin, end], two non-negative integers with begin <= end, got ${showOffsets(offsets)}`);
  }
  const [begin, end] = offsets as [number, number];
  if (end > dataLength) return fail(`${where}: data_offsets [${begin}, ${end}] run past the end of the data (${dataLength} bytes)`);
  const need = safetensorsByteLength(dtype, count);
  if (end - begin !== need) {
    return fail(`${where}: shape [${dims.join(', ')}] of ${dtype} needs ${need} bytes, but data_offsets [${begin}, ${end}] hold ${end - begin}`);
  }
  return { name, dtype, shape: Object.freeze([...dims]), count, begin, end };
}

/** A short form of a data_offsets value for messages (JSON.stringify would recurse through hostile nesting). */
function showOffsets(v: unknown): string {
  if (Array.isArray(v) && v.length <= 4 && v.every((x) => typeof x === 'number')) return `[${v.join(',')}]`;
  return describeValue(v);
}

// ---- decoding ----

/** Exact float32 rounding (to nearest, ties to even) of the 64-bit integer hi·2³² + lo (hi signed for I64). */
function int64ToFloat32(lo: number, hi: number, signed: boolean): number {
  const negative = signed && hi < 0;
  if (hi >= -0x200000 && hi < 0x200000) return Math.fround(hi * 4294967296 + lo); // |v| < 2^53: exact double
  // Wider: round the magnitude to 24 significant bits by hand (double then float32 would round twice).
  let m = (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
  if (negative) m = (1n << 64n) - m;
  const shift = BigInt(m.toString(2).length - 24);
  let q = m >> shift;
  const rest = m - (q << shift);
  const half = 1n << (shift - 1n);
  if (rest > half || (rest === half && (q & 1n) === 1n)) q += 1n;
  const v = Number(q) * 2 ** Number(shift);
  return Math.fround(negative ? -v : v);
}

/**
 * Decodes `count` values of a safetensors dtype to float32 (BOOL as 0/1; F4 E2M1, first value in the
 * low nibble; integers converted with one rounding). Writes into `out` when given.
 */
export function decodeSafetensor(dtype: SafetensorsDType, bytes: Uint8Array, count: number, out?: Float32Array): Float32Array {
  if (!isSafetensorsDType(dtype)) throw new LoomError(`decodeSafetensor: unknown dtype ${describeValue(dtype)}`);
  const need = safetensorsByteLength(dtype, count);
  if (bytes.length !== need) throw new FormatError('safetensors', `${count} ${dtype} values need ${need} bytes, got ${bytes.length}`);
  const o = out ?? new Float32Array(count);
  if (o.length < count) throw new ShapeError(`decodeSafetensor: output holds ${o.length} values, need ${count}`);
  const loom = DTYPES[dtype].loom;
  if (loom !== undefined) return unpackWeights(loom, bytes, count, { scale: 1, zeroPoint: 0 }, o);
  switch (dtype) {
    case 'BOOL':
      for (let i = 0; i < count; i++) o[i] = bytes[i] === 0 ? 0 : 1;
      return o;
    case 'F4':
      for (let i = 0; i < count; i++) o[i] = fp4CodeToFloat32(bytes[i >> 1] >>> ((i & 1) << 2));
      return o;
    default: {
      const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      if (dtype === 'I64') for (let i = 0; i < count; i++) o[i] = int64ToFloat32(dv.getUint32(8 * i, true), dv.getInt32(8 * i + 4, true), true);
      else for (let i = 0; i < count; i++) o[i] = int64ToFloat32(dv.getUint32(8 * i, true), dv.getUint32(8 * i + 4, true), false);
      return o;
    }
  }
}

// ---- reading ----

/** Anything that serves tensors by name: one file, bytes in memory, or a sharded checkpoint. */
export interface TensorSource {
  /** Names the data in error messages. */
  readonly source: string;
  readonly tensors: readonly TensorInfo[];
  readonly metadata: Readonly<Record<string, string>>;
  has(name: string): boolean;
  /** Throws a FormatError naming the source when there is no such tensor. */
  info(name: string): TensorInfo;
  /** The stored bytes, exactly as in the file. */
  raw(name: string): Uint8Array;
  /** The values decoded to float32. */
  float32(name: string): Float32Array;
  /** The values as a Tensor of the stored shape. */
  tensor(name: string): Tensor;
}

/** Tensors of one safetensors file; `readRange(begin, end)` fetches data bytes (offsets relative to the data). */
export class SafetensorsReader implements TensorSource {
  private readonly byName: Map<string, TensorInfo>;

  constructor(
    readonly header: SafetensorsHeader,
    readonly source: string,
    private readonly readRange: (begin: number, end: number) => Uint8Array,
  ) {
    this.byName = new Map(header.tensors.map((t) => [t.name, t]));
  }

  get tensors(): readonly TensorInfo[] {
    return this.header.tensors;
  }

  get metadata(): Readonly<Record<string, string>> {
    return this.header.metadata;
  }

  names(): string[] {
    return this.header.tensors.map((t) => t.name);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  info(name: string): TensorInfo {
    const t = this.byName.get(name);
    if (!t) throw new FormatError(this.source, `no tensor named ${describeValue(name)}`);
    return t;
  }

  raw(name: string): Uint8Array {
    const t = this.info(name);
    return this.readRange(t.begin, t.end);
  }

  float32(name: string): Float32Array {
    const t = this.info(name);
    return decodeSafetensor(t.dtype, this.readRange(t.begin, t.end), t.count);
  }

  tensor(name: string): Tensor {
    const t = this.info(name);
    return new Tensor(this.float32(name), t.shape);
  }
}

/** readSafetensors with default limits, naming the data `source` in errors. */
export function parseSafetensors(bytes: Uint8Array, source = 'safetensors'): SafetensorsReader {
  return readSafetensors(bytes, { source });
}

/** Reads safetensors from memory. `raw()` returns views into `bytes` (copy them before changing either). */
export function readSafetensors(bytes: Uint8Array, options: SafetensorsReadOptions = {}): SafetensorsReader {
  const source = options.source ?? 'safetensors';
  const n = readHeaderLength(bytes.subarray(0, 8), bytes.length, options);
  const dataStart = 8 + n;
  const header = parseSafetensorsHeader(bytes.subarray(8, dataStart), bytes.length - dataStart, options);
  return new SafetensorsReader(header, source, (begin, end) => bytes.subarray(dataStart + begin, dataStart + end));
}

// ---- writing ----

/** One tensor to write: raw little-endian bytes of `dtype` for the elements of `shape`. */
export interface TensorData {
  dtype: SafetensorsDType;
  shape: readonly number[];
  data: Uint8Array;
}

/**
 * Encodes float values as a tensor of `dtype` (default F32): floats round to nearest even, integer
 * types round half away from zero and saturate (64-bit types to the int32/uint32 range Loom codes
 * use), BOOL is value ≠ 0, F4 is E2M1 with the first value in the low nibble.
 */
export function encodeTensor(values: ArrayLike<number>, shape: readonly number[], dtype: SafetensorsDType = 'F32'): TensorData {
  const count = checkShape(shape, 'encodeTensor');
  if (values.length !== count) throw new ShapeError(`encodeTensor: shape [${shape.join(', ')}] holds ${count} values, got ${values.length}`);
  const f32 = values instanceof Float32Array ? values : Float32Array.from(values);
  const q: QuantParams = { scale: 1, zeroPoint: 0 };
  let data: Uint8Array;
  switch (dtype) {
    case 'BOOL':
      data = Uint8Array.from(f32, (v) => (v !== 0 ? 1 : 0));
      break;
    case 'F4': {
      const hiFirst = packWeights(DType.FP4, f32, q);
      // Loom packs the first value in the high nibble; safetensors F4 in the low one.
      data = hiFirst.map((b) => ((b & 15) << 4) | (b >>> 4));
      break;
    }
    case 'I64':
    case 'U64':
      data = packWeights(dtype === 'I64' ? DType.Int64 : DType.Uint64, f32, q);
      break;
    default:
      data = packWeights(DTYPES[dtype].loom!, f32, q);
  }
  return { dtype, shape: [...shape], data };
}

function checkShape(shape: readonly number[], where: string): number {
  let count = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) throw new ShapeError(`${where}: invalid dimension ${d} in shape [${shape.join(', ')}]`);
    count *= d;
  }
  if (!Number.isSafeInteger(count)) throw new ShapeError(`${where}: shape [${shape.join(', ')}] holds too many elements`);
  return count;
}

const utf8 = new TextEncoder();

/** Byte-wise order of the UTF-8 encodings, as the reference implementation sorts names. */
function compareUtf8(a: string, b: string): number {
  const x = utf8.encode(a);
  const y = utf8.encode(b);
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}

/**
 * Writes safetensors bytes the way the reference implementation does: data ordered by dtype (widest
 * first) then name, compact JSON with `__metadata__` first (its keys sorted here, so output is
 * reproducible), the header padded with spaces to a multiple of 8 bytes.
 */
export function encodeSafetensors(
  tensors: Readonly<Record<string, TensorData>> | ReadonlyMap<string, TensorData> | Iterable<readonly [string, TensorData]>,
  metadata?: Readonly<Record<string, string>>,
): Uint8Array {
  const entries: [string, TensorData][] =
    tensors instanceof Map ? [...tensors] : Symbol.iterator in Object(tensors) ? [...(tensors as Iterable<[string, TensorData]>)] : Object.entries(tensors);
  const seen = new Set<string>();
  for (const [name, t] of entries) {
    const where = `tensor ${JSON.stringify(name)}`;
    if (name === '__metadata__') throw new LoomError(`${where}: the name is reserved for metadata`);
    if (seen.has(name)) throw new LoomError(`${where}: written twice`);
    seen.add(name);
    if (!isSafetensorsDType(t.dtype)) throw new LoomError(`${where}: unknown dtype ${describeValue(t.dtype)}`);
    const count = checkShape(t.shape, where);
    const need = safetensorsByteLength(t.dtype, count);
    if (t.data.length !== need) throw new ShapeError(`${where}: shape [${t.shape.join(', ')}] of ${t.dtype} needs ${need} bytes, got ${t.data.length}`);
  }
  entries.sort(([an, a], [bn, b]) => DTYPES[b.dtype].rank - DTYPES[a.dtype].rank || compareUtf8(an, bn));

  const parts: string[] = [];
  if (metadata && Object.keys(metadata).length > 0) {
    const keys = Object.keys(metadata).sort(compareUtf8);
    for (const k of keys) if (typeof metadata[k] !== 'string') throw new LoomError(`metadata ${JSON.stringify(k)}: expected a string, got ${describeValue(metadata[k])}`);
    parts.push(`"__metadata__":{${keys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(metadata[k])}`).join(',')}}`);
  }
  let offset = 0;
  for (const [name, t] of entries) {
    const end = offset + t.data.length;
    // Built by hand: a JS object would move integer-like names ("0", "1") to the front.
    parts.push(`${JSON.stringify(name)}:{"dtype":"${t.dtype}","shape":[${t.shape.join(',')}],"data_offsets":[${offset},${end}]}`);
    offset = end;
  }
  const json = utf8.encode(`{${parts.join(',')}}`);
  const headerLength = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + headerLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLength);
  let at = 8 + headerLength;
  for (const [, t] of entries) {
    out.set(t.data, at);
    at += t.data.length;
  }
  return out;
}

// ---- Loom networks ----

/**
 * Loom dtypes stored under their own safetensors dtype. The others (int4, uint4, fp4, int2, uint2,
 * ternary, binary) have none: their natively packed bytes are stored as U8 of shape [bytes].
 */
const NATIVE_DTYPE: Partial<Record<DType, SafetensorsDType>> = {
  [DType.Float64]: 'F64', [DType.Float32]: 'F32', [DType.Float16]: 'F16', [DType.BFloat16]: 'BF16',
  [DType.FP8E4M3]: 'F8_E4M3', [DType.FP8E5M2]: 'F8_E5M2',
  [DType.Int64]: 'I64', [DType.Int32]: 'I32', [DType.Int16]: 'I16', [DType.Int8]: 'I8',
  [DType.Uint64]: 'U64', [DType.Uint32]: 'U32', [DType.Uint16]: 'U16', [DType.Uint8]: 'U8',
};

/** `__metadata__.format` of Loom-written files (PyTorch's are "pt"). */
export const LOOM_FORMAT = 'loom';
/** Metadata key: the network spec JSON without weights. */
export const LOOM_META_NETWORK = 'loom.network';
/** Metadata key: JSON {tensor name: LoomTensorParams}. */
export const LOOM_META_TENSORS = 'loom.tensors';
/** Metadata key: version of this layout ("1"). */
export const LOOM_META_VERSION = 'loom.version';

/** What `loom.tensors` records per tensor: how to turn the stored codes back into weights. */
export interface LoomTensorParams {
  /** Loom dtype name, e.g. "int4". */
  dtype: string;
  /** Parameters of the layer (the stored tensor may be packed bytes). */
  count: number;
  scale: number;
  /** Unsigned types only; omitted when 0. */
  zero_point?: number;
}

/** A weight-bearing layer of the grid or nested in a container, with its tensor name. */
export interface NamedLayer {
  /** `grid.z.y.x.l`, then `.sequential_layers.i` / `.parallel_branches.i` / `.filter_gate` for nested layers. */
  key: string;
  /** Flat grid index of the grid layer it is (or is nested in). */
  index: number;
  nested: boolean;
  layer: Layer;
}

/** Every layer with parameters of its own (not tied to another's), in traversal order, nested ones after their container. */
export function namedLayers(net: VolumetricNetwork): NamedLayer[] {
  const out: NamedLayer[] = [];
  const tied = tiedOwners(net);
  const visit = (layer: Layer, key: string, index: number, nested: boolean): void => {
    requireFloatWeights(layer, 'safetensors');
    if (layer.weights && !tied.has(layer)) out.push({ key, index, nested, layer });
    const field = layer.kind.childrenField;
    layer.children?.forEach((child, i) => visit(child, `${key}.${field}.${i}`, index, true));
    for (const [name, child] of Object.entries(layer.namedChildren ?? {})) visit(child, `${key}.${name}`, index, true);
  };
  for (const [index, layer] of net.entries()) visit(layer, `grid.${layer.z}.${layer.y}.${layer.x}.${layer.l}`, index, false);
  return out;
}

export interface NetworkSafetensorsOptions {
  /** Extra `__metadata__` entries (the loom.* keys and "format" are set by the writer). */
  metadata?: Record<string, string>;
  /** Store the network spec (without weights) under `loom.network`, so the file alone rebuilds it (default true). */
  includeSpec?: boolean;
}

/**
 * Saves every layer's parameter vector natively packed in its active dtype (what
 * `layer.weights.morph(layer.dtype).bytes` holds) as `<key>.weights`, with `format: "loom"`,
 * `loom.tensors` (per tensor: dtype, count, scale, zero_point) and `loom.network` in `__metadata__`.
 */
export function networkToSafetensors(net: VolumetricNetwork, options: NetworkSafetensorsOptions = {}): Uint8Array {
  const tensors = new Map<string, TensorData>();
  const params: Record<string, LoomTensorParams> = {};
  for (const { key, layer } of namedLayers(net)) {
    const version = layer.weights!.morph(layer.dtype);
    const name = `${key}.weights`;
    const st = NATIVE_DTYPE[layer.dtype];
    tensors.set(name, { dtype: st ?? 'U8', shape: st ? [version.count] : [version.bytes.length], data: version.bytes });
    const p: LoomTensorParams = {
      dtype: dtypeName(layer.dtype),
      count: version.count,
      scale: shortestFloat32(layer.dtype === DType.Float32 ? 1 : version.params.scale),
    };
    if (version.params.zeroPoint !== 0) p.zero_point = version.params.zeroPoint;
    params[name] = p;
  }
  const metadata: Record<string, string> = { ...options.metadata, format: LOOM_FORMAT, [LOOM_META_VERSION]: '1', [LOOM_META_TENSORS]: JSON.stringify(params) };
  if (options.includeSpec ?? true) metadata[LOOM_META_NETWORK] = JSON.stringify(networkSpecWithoutWeights(net));
  return encodeSafetensors(tensors, metadata);
}

/** The persistence JSON minus the weights, which live in the tensors (ties stay: they are structure). */
function networkSpecWithoutWeights(net: VolumetricNetwork): Record<string, unknown> {
  return networkToJson(net, {}, { weights: false });
}

/** Reads `loom.tensors`; {} when the file was not written by Loom. */
export function loomTensorParams(source: Pick<TensorSource, 'metadata' | 'source'>): Record<string, LoomTensorParams> {
  const text = source.metadata[LOOM_META_TENSORS];
  if (text === undefined) return {};
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new FormatError(source.source, `__metadata__.${LOOM_META_TENSORS} is not valid JSON (${(e as Error).message})`);
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw new FormatError(source.source, `__metadata__.${LOOM_META_TENSORS} must be a JSON object`);
  for (const [name, p] of Object.entries(doc as Record<string, unknown>)) {
    const o = p as Record<string, unknown> | null;
    const ok =
      o !== null && typeof o === 'object' && typeof o.dtype === 'string' &&
      typeof o.count === 'number' && Number.isSafeInteger(o.count) && o.count >= 0 &&
      typeof o.scale === 'number' && Number.isFinite(o.scale) &&
      (o.zero_point === undefined || (typeof o.zero_point === 'number' && Number.isSafeInteger(o.zero_point) && o.zero_point >= 0));
    if (!ok) throw new FormatError(source.source, `__metadata__.${LOOM_META_TENSORS}[${describeValue(name)}] must be {dtype, count, scale, zero_point?}, got ${describeValue(p)}`);
  }
  return doc as Record<string, LoomTensorParams>;
}

export interface LoadWeightsOptions {
  /** Throw when a layer finds no tensor (default true); otherwise it keeps its weights and is reported. */
  strict?: boolean;
  /** Accept NaN/Inf weights (refused by default, as model files are). */
  allowNonFinite?: boolean;
}

export interface WeightLoadReport {
  /** Tensor names that were loaded. */
  loaded: string[];
  /** Layers that found no tensor (only when not strict). */
  missing: { layer: string; tensor: string }[];
  /** Tensors no layer used. */
  unused: string[];
}

/**
 * Loads a network's weights from safetensors: `<key>.weights` per layer (see namedLayers), or the
 * original engine's `layer_<flat index>.weights` (float32 master) for grid layers. Tensors with
 * `loom.tensors` params are installed as packed versions (bit-exact; the layer takes the stored dtype);
 * others are decoded to float32 into the master.
 */
export function loadNetworkWeights(net: VolumetricNetwork, source: TensorSource, options: LoadWeightsOptions = {}): WeightLoadReport {
  const params = loomTensorParams(source);
  const report: WeightLoadReport = { loaded: [], missing: [], unused: [] };
  const used = new Set<string>();
  for (const { key, index, nested, layer } of namedLayers(net)) {
    let name = `${key}.weights`;
    if (!source.has(name) && !nested && source.has(`layer_${index}.weights`)) name = `layer_${index}.weights`;
    if (!source.has(name)) {
      if (options.strict ?? true) throw new FormatError(source.source, `no tensor ${JSON.stringify(name)} for ${layer.kind.name} at ${coordText(layer)}`);
      report.missing.push({ layer: key, tensor: name });
      continue;
    }
    loadLayer(layer, name, source, params[name], options);
    used.add(name);
    report.loaded.push(name);
  }
  report.unused = source.tensors.map((t) => t.name).filter((n) => !used.has(n));
  return report;
}

function loadLayer(layer: Layer, name: string, source: TensorSource, p: LoomTensorParams | undefined, options: LoadWeightsOptions): void {
  const store = layer.weights!;
  const info = source.info(name);
  const where = `tensor ${JSON.stringify(name)}`;
  const what = `${layer.kind.name} at ${coordText(layer)}`;
  if (p) {
    let dtype: DType;
    try {
      dtype = parseDType(p.dtype);
    } catch {
      throw new FormatError(source.source, `${where}: unknown Loom dtype ${JSON.stringify(p.dtype)} in ${LOOM_META_TENSORS}`);
    }
    if (p.count !== store.count) throw new FormatError(source.source, `${where} holds ${p.count} parameters, ${what} has ${store.count}`);
    const expected = NATIVE_DTYPE[dtype] ?? 'U8';
    if (info.dtype !== expected) throw new FormatError(source.source, `${where}: ${dtypeName(dtype)} weights are stored as ${expected}, got ${info.dtype}`);
    const need = packedByteLength(dtype, store.count);
    const bytes = source.raw(name);
    if (bytes.length !== need) throw new FormatError(source.source, `${where}: ${store.count} ${dtypeName(dtype)} parameters need ${need} bytes, got ${bytes.length}`);
    // A copy: the source may be a view of a file buffer the caller reuses.
    store.setLoaded(dtype, bytes.slice(), { scale: Math.fround(p.scale), zeroPoint: p.zero_point ?? 0 }, `${source.source}: ${where}`);
    layer.dtype = dtype;
  } else {
    if (info.count !== store.count) throw new FormatError(source.source, `${where} holds ${info.count} values, ${what} has ${store.count} parameters`);
    store.master.set(source.float32(name));
    store.markMasterChanged();
  }
  if (!options.allowNonFinite) {
    const bad = store.master.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) {
      throw new NumericError(`${source.source}: ${where}: parameter ${bad} of ${what} is ${store.master[bad]}; pass allowNonFinite to load it anyway`);
    }
  }
}
