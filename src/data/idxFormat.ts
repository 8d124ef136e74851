/**
 * The IDX format (MNIST and friends), without Node imports so it also works in browsers:
 * bytes 0-1 zero, byte 2 the element type, byte 3 the number of dimensions, then one big-endian
 * u32 per dimension, then the big-endian elements. idx.ts adds gzip and file access.
 */
import { FormatError } from '../core/errors.js';
import { classCount, MAX_CLASS_LABEL, type Dataset } from './dataset.js';

export type IdxData = Uint8Array | Int8Array | Int16Array | Int32Array | Float32Array | Float64Array;

export interface IdxArray {
  dims: number[];
  data: IdxData;
}

export interface IdxOptions {
  /** Largest payload accepted, in bytes; checked against the header before anything is allocated. */
  maxBytes?: number;
  /** Inflates gzip input (detected by the 1f 8b magic); without it gzipped bytes are refused. */
  gunzip?: (bytes: Uint8Array, maxOutputBytes: number) => Uint8Array;
}

export const IDX_DEFAULT_MAX_BYTES = 2 ** 31;

const TYPES: Record<number, { name: string; size: number }> = {
  0x08: { name: 'u8', size: 1 },
  0x09: { name: 'i8', size: 1 },
  0x0b: { name: 'i16', size: 2 },
  0x0c: { name: 'i32', size: 4 },
  0x0d: { name: 'f32', size: 4 },
  0x0e: { name: 'f64', size: 8 },
};

export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

export function parseIdx(bytes: Uint8Array, source: string, options: IdxOptions = {}): IdxArray {
  const maxBytes = options.maxBytes ?? IDX_DEFAULT_MAX_BYTES;
  if (isGzip(bytes)) {
    if (!options.gunzip) throw new FormatError(source, 'gzip-compressed IDX data; decompress it first (readIdxFile does this)');
    // The cap also bounds inflation, so a gzip bomb stops at maxBytes plus the largest header.
    bytes = options.gunzip(bytes, maxBytes + 4 + 4 * 255);
  }
  if (bytes.length < 4 || bytes[0] !== 0 || bytes[1] !== 0) {
    const got = Array.from(bytes.subarray(0, 4), (b) => '0x' + b.toString(16).padStart(2, '0')).join(' ');
    throw new FormatError(source, `expected IDX magic 0x00 0x00 <type> <ndims>, got ${got || 'an empty file'}`);
  }
  const type = TYPES[bytes[2]];
  if (!type) {
    throw new FormatError(source, `unknown IDX element type 0x${bytes[2].toString(16).padStart(2, '0')}; expected 0x08 (u8), 0x09 (i8), 0x0b (i16), 0x0c (i32), 0x0d (f32) or 0x0e (f64)`);
  }
  const ndims = bytes[3];
  const headerBytes = 4 + 4 * ndims;
  if (bytes.length < headerBytes) {
    throw new FormatError(source, `truncated IDX header: ${ndims} dimensions need ${headerBytes} header bytes, got ${bytes.length}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims: number[] = [];
  let elements = 1;
  for (let d = 0; d < ndims; d++) {
    const n = view.getUint32(4 + 4 * d, false);
    dims.push(n);
    // A double: exact up to 2^53, and past that far above any cap anyway. Clamped so that dims that
    // overflow to Infinity and then meet a 0 give 0 elements, not NaN (which passes every size check).
    elements = Math.min(elements * n, 2 ** 64);
  }
  const expected = elements * type.size;
  const got = bytes.length - headerBytes;
  const what = `dims [${dims.join(', ')}] of ${type.name}`;
  if (expected > maxBytes) {
    throw new FormatError(source, `IDX header claims ${what} = ${expected} bytes, above the limit of ${maxBytes} bytes`);
  }
  if (got < expected) throw new FormatError(source, `truncated IDX payload: ${what} need ${expected} bytes after the ${headerBytes}-byte header, got ${got}`);
  if (got > expected) throw new FormatError(source, `IDX payload has trailing bytes: ${what} need ${expected} bytes after the ${headerBytes}-byte header, got ${got}`);

  const at = headerBytes;
  let data: IdxData;
  switch (bytes[2]) {
    // Typed views over the payload, then copies: Buffer.slice (what fs reads return) shares memory instead of copying,
    // and its .buffer is the whole file, so it must not be used to size the result.
    case 0x08:
      data = new Uint8Array(bytes.buffer, bytes.byteOffset + at, elements).slice();
      break;
    case 0x09:
      data = new Int8Array(bytes.buffer, bytes.byteOffset + at, elements).slice();
      break;
    case 0x0b: {
      const a = new Int16Array(elements);
      for (let i = 0; i < elements; i++) a[i] = view.getInt16(at + 2 * i, false);
      data = a;
      break;
    }
    case 0x0c: {
      const a = new Int32Array(elements);
      for (let i = 0; i < elements; i++) a[i] = view.getInt32(at + 4 * i, false);
      data = a;
      break;
    }
    case 0x0d: {
      const a = new Float32Array(elements);
      for (let i = 0; i < elements; i++) a[i] = view.getFloat32(at + 4 * i, false);
      data = a;
      break;
    }
    default: {
      const a = new Float64Array(elements);
      for (let i = 0; i < elements; i++) a[i] = view.getFloat64(at + 8 * i, false);
      data = a;
    }
  }
  return { dims, data };
}

/**
 * Images [N, ...] and labels [N] as a classification dataset. u8 pixels are scaled to [0, 1];
 * other element types are taken as they are. Samples are flattened: inputShape is [product of
 * the rest], and imageShape keeps the rest (e.g. [28, 28]).
 */
export function idxToDataset(images: IdxArray, labels: IdxArray, source: string): Dataset {
  if (images.dims.length < 2) {
    throw new FormatError(source, `images: expected at least 2 dimensions [count, ...], got [${images.dims.join(', ')}]`);
  }
  if (labels.dims.length !== 1) throw new FormatError(source, `labels: expected 1 dimension [count], got [${labels.dims.join(', ')}]`);
  const count = images.dims[0];
  if (labels.dims[0] !== count) throw new FormatError(source, `label count ${labels.dims[0]} does not match image count ${count}`);
  if (labels.data instanceof Float32Array || labels.data instanceof Float64Array) {
    throw new FormatError(source, 'labels: expected an integer element type (u8, i8, i16, i32), got floats');
  }
  const labelArray = Int32Array.from(labels.data);
  for (let i = 0; i < count; i++) {
    const l = labelArray[i];
    if (l < 0 || l > MAX_CLASS_LABEL) throw new FormatError(source, `labels[${i}]: expected a class index in [0, ${MAX_CLASS_LABEL}], got ${l}`);
  }

  const imageShape = images.dims.slice(1);
  const features = imageShape.reduce((a, b) => a * b, 1);
  const src = images.data;
  const inputs = new Float32Array(src.length);
  if (src instanceof Uint8Array) for (let i = 0; i < src.length; i++) inputs[i] = src[i] / 255;
  else inputs.set(src);
  return { count, inputs, inputShape: [features], labels: labelArray, targetWidth: classCount(labelArray), source, imageShape };
}
