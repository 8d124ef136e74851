import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ALL_DTYPES, DType, dtypeName, packedByteLength } from '../../src/core/dtype.js';
import { FormatError, NumericError } from '../../src/core/errors.js';
import { Tensor } from '../../src/core/tensor.js';
import { forwardNetwork } from '../../src/engine/run.js';
import { buildNetwork } from '../../src/grid/spec.js';
import {
  DEFAULT_MAX_ELEMENTS,
  SAFETENSORS_DTYPES,
  decodeSafetensor,
  encodeSafetensors,
  encodeTensor,
  loadNetworkWeights,
  namedLayers,
  networkToSafetensors,
  readSafetensors,
  safetensorsByteLength,
  type SafetensorsDType,
  type TensorData,
} from '../../src/io/safetensors.js';
import {
  loadNetworkSafetensors,
  openSafetensors,
  openSafetensorsFile,
  openShardedSafetensors,
  saveNetworkSafetensors,
  writeSafetensorsFile,
  writeShardedSafetensors,
} from '../../src/io/safetensorsFiles.js';
import { fixture, randomArray, ROOT } from '../helpers.js';

const DIR = `${ROOT}test/fixtures/safetensors/`;
const HAVE_FIXTURES = existsSync(`${DIR}safetensors.json`) ? false : 'fixtures missing: run /usr/bin/python3 scripts/golden/safetensors.py';

interface DtypeCase {
  dtype: SafetensorsDType;
  shape: number[];
  data_offsets: [number, number];
  hex: string;
  values: (number | string)[];
}

const special = (v: number | string): number => (typeof v === 'number' ? v : v === 'NaN' ? NaN : v === 'Infinity' ? Infinity : -Infinity);
const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
const dirs: string[] = [];
const tmp = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'loom-st-'));
  dirs.push(d);
  return d;
};
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A file from a header object (serialized as given, padded) and data. */
function rawFile(header: unknown, data: Uint8Array = new Uint8Array(0), headerText?: string): Uint8Array {
  const json = new TextEncoder().encode(headerText ?? JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function assertFormatError(fn: () => unknown, message: string | RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof FormatError, `expected a FormatError, got ${String(e)}`);
    if (typeof message === 'string') assert.equal(e.message, message);
    else assert.match(e.message, message);
    return true;
  });
}

test('reads every dtype of a file written by the reference implementation, bytes and values exactly', { skip: HAVE_FIXTURES }, () => {
  const doc = fixture<{ dtypes: { metadata: Record<string, string>; tensors: Record<string, DtypeCase> } }>('safetensors/safetensors.json');
  const path = `${DIR}dtypes.safetensors`;
  const bytes = new Uint8Array(readFileSync(path));
  for (const reader of [readSafetensors(bytes), openSafetensorsFile(path)]) {
    assert.deepEqual(reader.metadata, doc.dtypes.metadata);
    assert.deepEqual(reader.tensors.map((t) => t.name).sort(), Object.keys(doc.dtypes.tensors).sort());
    for (const [name, c] of Object.entries(doc.dtypes.tensors)) {
      const info = reader.info(name);
      assert.equal(info.dtype, c.dtype, name);
      assert.deepEqual(info.shape, c.shape, name);
      assert.deepEqual([info.begin, info.end], c.data_offsets, name);
      assert.equal(hex(reader.raw(name)), c.hex, name);
      const values = reader.float32(name);
      assert.equal(values.length, c.values.length, name);
      c.values.forEach((v, i) => assert.ok(Object.is(values[i], Math.fround(special(v))), `${name}[${i}]: got ${values[i]}, expected ${v}`));
      assert.deepEqual(reader.tensor(name).shape, c.shape.length ? c.shape : []);
    }
  }
  // Every standard dtype is in the file.
  for (const d of SAFETENSORS_DTYPES) assert.ok(Object.values(doc.dtypes.tensors).some((c) => c.dtype === d), d);
});

test('writing the same tensors reproduces the reference implementation\'s file byte for byte', { skip: HAVE_FIXTURES }, () => {
  for (const file of ['dtypes.safetensors', 'mlp.safetensors', 'conv.safetensors', 'sharded/model-00002-of-00002.safetensors']) {
    const bytes = new Uint8Array(readFileSync(`${DIR}${file}`));
    const reader = readSafetensors(bytes);
    // Insertion order must not matter: the writer sorts by dtype width, then name.
    const tensors = new Map<string, TensorData>([...reader.tensors].reverse().map((t) => [t.name, { dtype: t.dtype, shape: t.shape, data: reader.raw(t.name) }]));
    assert.equal(hex(encodeSafetensors(tensors, reader.metadata)), hex(bytes), file);
  }
});

test('encodeTensor → encode → read round-trips every standard dtype', () => {
  const exact: Record<SafetensorsDType, number[]> = {
    F64: [0.1, -3, 1e-40, 65504], F32: [0.1, -3, 1e-40, 3.4e38], F16: [0.5, -2, 65504, 2 ** -24], BF16: [1.5, -(2 ** 100), 3.140625, 0],
    I64: [-5, 2 ** 31 - 1, -(2 ** 31), 0], I32: [-7, 2 ** 31 - 1, -(2 ** 31), 1], I16: [-32768, 32767, 0, 5], I8: [-128, 127, 0, -1],
    U64: [0, 4294967295, 7, 1], U32: [0, 4294967295, 7, 1], U16: [0, 65535, 1, 2], U8: [0, 255, 128, 1],
    BOOL: [1, 0, 0, 1], F8_E4M3: [448, -448, 2 ** -9, 1.125], F8_E5M2: [57344, -(2 ** -16), 1.25, -Infinity], F4: [6, -0.5, 1.5, 3],
  };
  const tensors = new Map<string, TensorData>();
  for (const d of SAFETENSORS_DTYPES) {
    tensors.set(`t_${d}`, encodeTensor(exact[d], [2, 2], d));
    tensors.set(`odd_${d}`, encodeTensor(exact[d].slice(0, 3), [3], d));
  }
  const bytes = encodeSafetensors(tensors, { note: 'round trip' });
  const reader = readSafetensors(bytes);
  assert.deepEqual(reader.metadata, { note: 'round trip' });
  for (const d of SAFETENSORS_DTYPES) {
    assert.deepEqual([...reader.float32(`t_${d}`)], exact[d].map(Math.fround), d);
    assert.deepEqual([...reader.float32(`odd_${d}`)], exact[d].slice(0, 3).map(Math.fround), `${d} (odd count)`);
    assert.equal(reader.raw(`t_${d}`).length, safetensorsByteLength(d, 4));
  }
  // F4: first value in the low nibble (6 = code 7, -0.5 = code 9).
  assert.equal(hex(reader.raw('t_F4')), '9753');
  assert.equal(hex(reader.raw('odd_F4')), '9703');
  // Out-of-range values saturate, and rounding follows the dtype.
  assert.deepEqual([...decodeSafetensor('I8', encodeTensor([300, -300, 2.5, -2.5], [4], 'I8').data, 4)], [127, -128, 3, -3]);
  assert.deepEqual([...decodeSafetensor('F16', encodeTensor([1 + 2 ** -11], [1], 'F16').data, 1)], [1]);
});

test('64-bit integers become the nearest float32 (one rounding, ties to even)', () => {
  const words = (v: bigint): Uint8Array => {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, v), true);
    return b;
  };
  const cases: [SafetensorsDType, bigint, number][] = [
    // Through a double this would round twice: 2^60 + 2^36 + 1 → 2^60 + 2^36 (a float32 tie) → 2^60.
    ['I64', 2n ** 60n + 2n ** 36n + 1n, 2 ** 60 + 2 ** 37],
    ['I64', -(2n ** 60n + 2n ** 36n + 1n), -(2 ** 60 + 2 ** 37)],
    ['I64', 2n ** 60n + 2n ** 36n, 2 ** 60],
    ['I64', -(2n ** 63n), -(2 ** 63)],
    ['U64', 2n ** 64n - 1n, 2 ** 64],
    ['U64', 2n ** 63n + 2n ** 39n, 2 ** 63],
    ['U64', 12345n, 12345],
    ['I64', -12345n, -12345],
  ];
  for (const [dtype, v, expected] of cases) assert.equal(decodeSafetensor(dtype, words(v), 1)[0], expected, `${dtype} ${v}`);
});

test('the header is padded with spaces to 8 bytes and names keep byte order (integer-like names too)', () => {
  const t = (n: number): TensorData => encodeTensor(randomArray(n, n), [n]);
  const bytes = encodeSafetensors({ '9': t(1), '10': t(2), b: t(3), 'é': t(1), a: encodeTensor([1, 2], [2], 'F16') });
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal(n % 8, 0);
  const text = new TextDecoder().decode(bytes.subarray(8, 8 + n));
  assert.match(text, /^\{"10":\{"dtype":"F32","shape":\[2\],"data_offsets":\[0,8\]\},"9":.*"é":.*"a":\{"dtype":"F16"[^}]*\}\} *$/);
  assert.ok(text.length - text.trimEnd().length < 8, 'at most 7 spaces of padding');
});

test('malformed files: each problem is a FormatError that says what is wrong', () => {
  const f32 = (begin: number, end: number, shape: unknown = [(end - begin) / 4]) => ({ dtype: 'F32', shape, data_offsets: [begin, end] });
  const eight = new Uint8Array(8);
  const cases: [string, Uint8Array, string | RegExp][] = [
    ['short', new Uint8Array(5), 'safetensors: 5 bytes is too short for safetensors (a file starts with an 8-byte header length)'],
    ['past the end', (() => { const b = rawFile({}); new DataView(b.buffer).setBigUint64(0, 100n, true); return b; })(),
      'safetensors: header length 100 bytes runs past the end of the data (2 bytes follow the length)'],
    ['above the cap', (() => { const b = new Uint8Array(16); new DataView(b.buffer).setBigUint64(0, 10n ** 12n, true); return b; })(),
      'safetensors: header length 1000000000000 bytes is above the limit of 100000000 (maxHeaderBytes)'],
    ['u64 max', (() => { const b = new Uint8Array(16); new DataView(b.buffer).setBigUint64(0, 2n ** 64n - 1n, true); return b; })(),
      'safetensors: header length 18446744073709551615 bytes is above the limit of 100000000 (maxHeaderBytes)'],
    ['not UTF-8', rawFile(null, undefined, '{"a":1}').map((b, i) => (i === 10 ? 0xff : b)), 'safetensors: header is not valid UTF-8'],
    ['bad JSON', rawFile(null, undefined, '{"a": '), /^safetensors: header is not valid JSON \(.+\)$/],
    ['array', rawFile([1, 2]), 'safetensors: header must be a JSON object, got an array of length 2'],
    ['entry', rawFile({ w: 5 }), 'safetensors: tensor "w": expected an object with dtype, shape and data_offsets, got 5'],
    ['dtype', rawFile({ w: { dtype: 'F128', shape: [1], data_offsets: [0, 16] } }, new Uint8Array(16)),
      'safetensors: tensor "w": unknown dtype "F128" (supported: BOOL, F4, U8, I8, F8_E5M2, F8_E4M3, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64)'],
    ['lower-case dtype', rawFile({ w: { dtype: 'f32', shape: [1], data_offsets: [0, 4] } }, eight.subarray(0, 4)),
      'safetensors: tensor "w": unknown dtype "f32" (supported: BOOL, F4, U8, I8, F8_E5M2, F8_E4M3, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64)'],
    ['no shape', rawFile({ w: { dtype: 'F32', data_offsets: [0, 4] } }, eight.subarray(0, 4)), 'safetensors: tensor "w": shape must be an array of non-negative integers, got undefined'],
    ['fractional dim', rawFile({ w: f32(0, 8, [2, 1.5]) }, eight), 'safetensors: tensor "w": shape[1] must be a non-negative integer, got 1.5'],
    ['negative dim', rawFile({ w: f32(0, 8, [-2]) }, eight), 'safetensors: tensor "w": shape[0] must be a non-negative integer, got -2'],
    ['string dim', rawFile({ w: f32(0, 8, ['2']) }, eight), 'safetensors: tensor "w": shape[0] must be a non-negative integer, got "2"'],
    ['unsafe dim', rawFile({ w: f32(0, 8, [1e300]) }, eight), 'safetensors: tensor "w": shape[0] must be a non-negative integer, got 1e+300'],
    ['size', rawFile({ w: f32(0, 8, [3]) }, eight), 'safetensors: tensor "w": shape [3] of F32 needs 12 bytes, but data_offsets [0, 8] hold 8'],
    ['size F4', rawFile({ w: { dtype: 'F4', shape: [5], data_offsets: [0, 2] } }, eight.subarray(0, 2)), 'safetensors: tensor "w": shape [5] of F4 needs 3 bytes, but data_offsets [0, 2] hold 2'],
    ['out of range', rawFile({ w: f32(4, 12) }, eight), 'safetensors: tensor "w": data_offsets [4, 12] run past the end of the data (8 bytes)'],
    ['reversed', rawFile({ w: { dtype: 'F32', shape: [0], data_offsets: [8, 4] } }, eight),
      'safetensors: tensor "w": data_offsets must be [begin, end], two non-negative integers with begin <= end, got [8,4]'],
    ['three offsets', rawFile({ w: { dtype: 'F32', shape: [1], data_offsets: [0, 4, 8] } }, eight),
      'safetensors: tensor "w": data_offsets must be [begin, end], two non-negative integers with begin <= end, got [0,4,8]'],
    ['negative offset', rawFile({ w: { dtype: 'F32', shape: [1], data_offsets: [-4, 0] } }, eight),
      'safetensors: tensor "w": data_offsets must be [begin, end], two non-negative integers with begin <= end, got [-4,0]'],
    ['overlap', rawFile({ a: f32(0, 8), b: f32(4, 8), c: f32(8, 8) }, eight), 'safetensors: tensors "a" [0, 8] and "b" [4, 8] overlap'],
    ['contained', rawFile({ a: f32(0, 16), b: f32(4, 8), c: f32(8, 12) }, new Uint8Array(16)), 'safetensors: tensors "a" [0, 16] and "b" [4, 8] overlap'],
    ['metadata', rawFile({ __metadata__: { n: 1 } }), 'safetensors: __metadata__."n" must be a string, got 1'],
    ['metadata array', rawFile({ __metadata__: ['x'] }), 'safetensors: __metadata__ must be an object of strings, got an array of length 1'],
    ['elements', rawFile({ w: f32(0, 4e12, [1000000, 1000000]) }, eight),
      `safetensors: tensor "w": shape [1000000, 1000000] holds 1000000000000 elements, above the limit of ${DEFAULT_MAX_ELEMENTS} (maxElements)`],
  ];
  for (const [, bytes, message] of cases) assertFormatError(() => readSafetensors(bytes), message);
  // The same checks apply to files, named by their path.
  const dir = tmp();
  const path = join(dir, 'bad.safetensors');
  writeFileSync(path, cases.find(([w]) => w === 'overlap')![1]);
  assertFormatError(() => openSafetensorsFile(path), `${path}: tensors "a" [0, 8] and "b" [4, 8] overlap`);
  assertFormatError(() => openSafetensorsFile(join(dir, 'none.safetensors')), `${join(dir, 'none.safetensors')}: no such file`);
  // Empty tensors may share an offset with anything; gaps between tensors are accepted.
  const ok = readSafetensors(rawFile({ a: f32(0, 4), e: f32(4, 4, [0, 7]), b: f32(6, 6, [0]), c: f32(8, 8 + 4) }, new Uint8Array(12)));
  assert.deepEqual(ok.tensors.map((t) => t.name), ['a', 'e', 'b', 'c']);
  assert.equal(ok.info('e').count, 0);
  assertFormatError(() => ok.info('zz'), 'safetensors: no tensor named "zz"');
});

test('limits are configurable, and a header claiming 10^12 elements fails at once, allocating nothing', () => {
  const bytes = rawFile({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, new Uint8Array(16));
  assertFormatError(() => readSafetensors(bytes, { maxElements: 3 }), 'safetensors: tensor "w": shape [4] holds 4 elements, above the limit of 3 (maxElements)');
  assertFormatError(() => readSafetensors(bytes, { maxHeaderBytes: 16, source: 'x.safetensors' }), `x.safetensors: header length ${bytes.length - 24} bytes is above the limit of 16 (maxHeaderBytes)`);
  assert.equal(readSafetensors(bytes, { maxElements: 4 }).info('w').count, 4);
  // The header alone (a few dozen bytes in a tiny file) claims 10^12 elements: 4 TB of float32.
  const dir = tmp();
  const path = join(dir, 'huge.safetensors');
  writeFileSync(path, rawFile({ w: { dtype: 'F32', shape: [1000, 1000, 1000, 1000], data_offsets: [0, 4e12] } }));
  const before = process.memoryUsage().arrayBuffers;
  const t0 = performance.now();
  assertFormatError(() => openSafetensorsFile(path), `${path}: tensor "w": shape [1000, 1000, 1000, 1000] holds 1000000000000 elements, above the limit of ${DEFAULT_MAX_ELEMENTS} (maxElements)`);
  assert.ok(performance.now() - t0 < 100, 'refusal took too long');
  assert.ok(process.memoryUsage().arrayBuffers - before < 1 << 20, 'memory was allocated for the refused tensor');
  // Also a header length of 10^12 with a tiny file.
  const big = new Uint8Array(64);
  new DataView(big.buffer).setBigUint64(0, 10n ** 12n, true);
  writeFileSync(path, big);
  assertFormatError(() => openSafetensorsFile(path), `${path}: header length 1000000000000 bytes is above the limit of 100000000 (maxHeaderBytes)`);
  assertFormatError(() => openSafetensorsFile(path, { maxHeaderBytes: 2e12 }), `${path}: header length 1000000000000 bytes runs past the end of the data (56 bytes follow the length)`);
});

test('files: lazy reads, atomic writes, a model folder', () => {
  const dir = tmp();
  const path = join(dir, 'model.safetensors');
  const tensors = { w: encodeTensor(randomArray(12, 3), [3, 4]), b: encodeTensor([1, 2, 3], [3], 'BF16') };
  writeSafetensorsFile(path, tensors, { format: 'pt' });
  assert.deepEqual(readdirSync(dir), ['model.safetensors'], 'no temporary file is left behind');
  const reader = openSafetensorsFile(path);
  assert.deepEqual([...reader.float32('w')], [...randomArray(12, 3)]);
  assert.deepEqual([...reader.float32('b')], [1, 2, 3]);
  assert.equal(hex(reader.raw('w')), hex(tensors.w.data));
  // A folder opens its model.safetensors.
  assert.deepEqual(openSafetensors(dir).tensors.map((t) => t.name), reader.tensors.map((t) => t.name));
  const empty = tmp();
  assertFormatError(() => openSafetensors(empty), `${empty}: no model.safetensors.index.json or model.safetensors in this folder`);
});

test('sharded checkpoints: the reference split reads like the single file and is written back byte for byte', { skip: HAVE_FIXTURES }, () => {
  const single = openSafetensorsFile(`${DIR}mlp.safetensors`);
  const sharded = openSafetensors(`${DIR}sharded`);
  assert.deepEqual(sharded.tensors.map((t) => t.name).sort(), single.tensors.map((t) => t.name).sort());
  for (const t of single.tensors) {
    assert.equal(hex(sharded.raw(t.name)), hex(single.raw(t.name)), t.name);
    assert.deepEqual(sharded.info(t.name).shape, t.shape);
  }
  assert.equal(sharded.info('4.bias').shard, 'model-00002-of-00002.safetensors');
  assert.deepEqual(sharded.metadata, { format: 'pt' });

  // Same order and shard size → the same files as transformers-style Python writes.
  const out = tmp();
  const order = ['0.weight', '0.bias', '2.weight', '4.weight', '4.bias'];
  const tensors = new Map(order.map((n) => [n, { dtype: single.info(n).dtype, shape: single.info(n).shape, data: single.raw(n) }] as const));
  const index = writeShardedSafetensors(out, tensors, { maxShardBytes: 1216, metadata: { format: 'pt' } });
  for (const f of ['model.safetensors.index.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']) {
    assert.equal(hex(readFileSync(join(out, f))), hex(readFileSync(`${DIR}sharded/${f}`)), f);
  }
  assert.equal(index, join(out, 'model.safetensors.index.json'));
  assert.deepEqual(readdirSync(out).sort(), ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'model.safetensors.index.json']);
});

test('sharded checkpoints: index problems are FormatErrors', () => {
  const dir = tmp();
  writeSafetensorsFile(join(dir, 'a.safetensors'), { x: encodeTensor([1], [1]) });
  const index = join(dir, 'model.safetensors.index.json');
  const write = (doc: unknown): void => writeFileSync(index, typeof doc === 'string' ? doc : JSON.stringify(doc));
  write({ weight_map: { x: 'a.safetensors', y: 'a.safetensors' } });
  assertFormatError(() => openShardedSafetensors(index), `${index}: weight_map puts "y" in "a.safetensors", which has no such tensor`);
  write({ weight_map: { x: '../a.safetensors' } });
  assertFormatError(() => openShardedSafetensors(index), `${dir}: path "../a.safetensors": escapes the model directory`);
  write({ weight_map: { x: 'b.safetensors' } });
  assertFormatError(() => openShardedSafetensors(index), `${join(dir, 'b.safetensors')}: no such file`);
  write({ weight_map: { x: 3 } });
  assertFormatError(() => openShardedSafetensors(index), `${index}: weight_map["x"] must be a file name, got 3`);
  write({ metadata: {} });
  assertFormatError(() => openShardedSafetensors(index), `${index}: expected an object with "weight_map": {tensor name: shard file}`);
  write('{');
  assert.throws(() => openShardedSafetensors(index), (e: unknown) => e instanceof FormatError && e.message.startsWith(`${index}: invalid JSON`));
  write({ weight_map: { x: 'a.safetensors' } });
  const sharded = openShardedSafetensors(index);
  assert.deepEqual([...sharded.float32('x')], [1]);
  assertFormatError(() => sharded.raw('y'), `${index}: no tensor named "y" in the weight_map`);
});

/** Dense with bias, RMSNorm, and a Sequential holding two Dense layers (odd parameter counts for sub-byte tails). */
const NET_SPEC = {
  id: 'st', depth: 1, rows: 1, cols: 3, layers_per_cell: 1,
  layers: [
    { z: 0, y: 0, x: 0, l: 0, type: 'Dense', activation: 'Tanh', input_height: 7, output_height: 5, use_bias: true },
    { z: 0, y: 0, x: 1, l: 0, type: 'RMSNorm', input_height: 5 },
    {
      z: 0, y: 0, x: 2, l: 0, type: 'Sequential',
      sequential_layers: [
        { type: 'Dense', activation: 'ReLU', input_height: 5, output_height: 3 },
        { type: 'Dense', input_height: 3, output_height: 3, use_bias: true },
      ],
    },
  ],
};

const NATIVE: Partial<Record<DType, SafetensorsDType>> = {
  [DType.Float64]: 'F64', [DType.Float32]: 'F32', [DType.Float16]: 'F16', [DType.BFloat16]: 'BF16', [DType.FP8E4M3]: 'F8_E4M3', [DType.FP8E5M2]: 'F8_E5M2',
  [DType.Int64]: 'I64', [DType.Int32]: 'I32', [DType.Int16]: 'I16', [DType.Int8]: 'I8', [DType.Uint64]: 'U64', [DType.Uint32]: 'U32', [DType.Uint16]: 'U16', [DType.Uint8]: 'U8',
};

test('every dtype: a network saved as safetensors loads back bit-exactly into a network built from the same spec', () => {
  const x = Tensor.from([4, 7], randomArray(28, 11));
  for (const dtype of ALL_DTYPES) {
    const name = dtypeName(dtype);
    const net = buildNetwork(NET_SPEC, { seed: 5 });
    net.morph(dtype);
    const before = forwardNetwork(net, x).output.data;
    const bytes = networkToSafetensors(net);
    const reader = readSafetensors(bytes);
    assert.equal(reader.metadata.format, 'loom');
    const params = JSON.parse(reader.metadata['loom.tensors']);
    const layers = namedLayers(net);
    assert.deepEqual(layers.map((l) => l.key), ['grid.0.0.0.0', 'grid.0.0.1.0', 'grid.0.0.2.0.sequential_layers.0', 'grid.0.0.2.0.sequential_layers.1']);
    for (const { key, layer } of layers) {
      const info = reader.info(`${key}.weights`);
      const version = layer.weights!.morph(dtype);
      assert.equal(info.dtype, NATIVE[dtype] ?? 'U8', `${name} ${key}`);
      assert.deepEqual(info.shape, NATIVE[dtype] ? [layer.weights!.count] : [packedByteLength(dtype, layer.weights!.count)]);
      assert.equal(hex(reader.raw(`${key}.weights`)), hex(version.bytes), `${name} ${key}: stored bytes are the native packing`);
      assert.equal(params[`${key}.weights`].dtype, name);
      assert.equal(params[`${key}.weights`].count, layer.weights!.count);
    }

    const loaded = buildNetwork(NET_SPEC, { seed: 99 });
    const report = loadNetworkWeights(loaded, reader);
    assert.equal(report.loaded.length, 4);
    assert.deepEqual(report.unused, []);
    const after = forwardNetwork(loaded, x).output.data;
    assert.deepEqual(new Uint32Array(after.buffer), new Uint32Array(before.buffer), `${name}: outputs differ after reload`);
    const again = namedLayers(loaded);
    layers.forEach(({ layer }, i) => {
      const a = layer.weights!.morph(dtype);
      const b = again[i].layer.weights!.morph(dtype);
      assert.equal(again[i].layer.dtype, dtype);
      assert.equal(hex(b.bytes), hex(a.bytes), `${name}: packed bytes`);
      assert.deepEqual(b.params, a.params, `${name}: scale and zero point`);
    });
    // Rebuilt from the embedded spec, the network saves to the identical file.
    const rebuilt = buildNetwork(JSON.parse(reader.metadata['loom.network']), { seed: 7 });
    loadNetworkWeights(rebuilt, reader);
    assert.equal(hex(networkToSafetensors(rebuilt)), hex(bytes), `${name}: re-saved file differs`);
  }
});

test('network weights: the original\'s flat layer_N.weights export, missing and unused tensors, mismatches', () => {
  const net = buildNetwork(NET_SPEC, { seed: 5 });
  const layers = namedLayers(net);
  // The original's SaveSafetensors: "layer_<flat index>.weights", float32 master, for grid layers.
  const flat = readSafetensors(encodeSafetensors({
    'layer_0.weights': encodeTensor(layers[0].layer.weights!.master, [layers[0].layer.weights!.count]),
    'layer_1.weights': encodeTensor(layers[1].layer.weights!.master, [layers[1].layer.weights!.count]),
    'extra': encodeTensor([1], [1]),
  }));
  const target = buildNetwork(NET_SPEC, { seed: 6 });
  assert.throws(() => loadNetworkWeights(target, flat), (e: unknown) => e instanceof FormatError && e.message === 'safetensors: no tensor "grid.0.0.2.0.sequential_layers.0.weights" for Dense at (0,0,0,0)');
  const report = loadNetworkWeights(target, flat, { strict: false });
  assert.deepEqual(report.loaded, ['layer_0.weights', 'layer_1.weights']);
  assert.deepEqual(report.missing.map((m) => m.layer), ['grid.0.0.2.0.sequential_layers.0', 'grid.0.0.2.0.sequential_layers.1']);
  assert.deepEqual(report.unused, ['extra']);
  const t = namedLayers(target);
  assert.deepEqual([...t[0].layer.weights!.master], [...layers[0].layer.weights!.master]);
  assert.deepEqual([...t[1].layer.weights!.master], [...layers[1].layer.weights!.master]);

  const wrongCount = readSafetensors(encodeSafetensors({ 'layer_0.weights': encodeTensor([1, 2], [2]) }));
  assertFormatError(() => loadNetworkWeights(buildNetwork(NET_SPEC), wrongCount, { strict: false }), 'safetensors: tensor "layer_0.weights" holds 2 values, Dense at (0,0,0,0) has 40 parameters');
  const nan = readSafetensors(encodeSafetensors({ 'layer_1.weights': encodeTensor([1, NaN, 1, 1, 1], [5]) }));
  assert.throws(() => loadNetworkWeights(buildNetwork(NET_SPEC), nan, { strict: false }), NumericError);
  assert.doesNotThrow(() => loadNetworkWeights(buildNetwork(NET_SPEC), nan, { strict: false, allowNonFinite: true }));

  // Loom metadata that disagrees with the tensors.
  net.morph(DType.Int4);
  const good = readSafetensors(networkToSafetensors(net));
  const tensors = new Map(good.tensors.map((i) => [i.name, { dtype: i.dtype, shape: i.shape, data: good.raw(i.name) }] as const));
  const meta = { ...good.metadata };
  const p = JSON.parse(meta['loom.tensors']);
  p['grid.0.0.0.0.weights'].count = 41;
  assertFormatError(() => loadNetworkWeights(buildNetwork(NET_SPEC), readSafetensors(encodeSafetensors(tensors, { ...meta, 'loom.tensors': JSON.stringify(p) }))),
    'safetensors: tensor "grid.0.0.0.0.weights" holds 41 parameters, Dense at (0,0,0,0) has 40');
  p['grid.0.0.0.0.weights'] = { dtype: 'int5', count: 40, scale: 1 };
  assertFormatError(() => loadNetworkWeights(buildNetwork(NET_SPEC), readSafetensors(encodeSafetensors(tensors, { ...meta, 'loom.tensors': JSON.stringify(p) }))),
    'safetensors: tensor "grid.0.0.0.0.weights": unknown Loom dtype "int5" in loom.tensors');
  p['grid.0.0.0.0.weights'] = { dtype: 'int8', count: 40, scale: 1 };
  assertFormatError(() => loadNetworkWeights(buildNetwork(NET_SPEC), readSafetensors(encodeSafetensors(tensors, { ...meta, 'loom.tensors': JSON.stringify(p) }))),
    'safetensors: tensor "grid.0.0.0.0.weights": int8 weights are stored as I8, got U8');
  assertFormatError(() => loadNetworkWeights(buildNetwork(NET_SPEC), readSafetensors(encodeSafetensors(tensors, { ...meta, 'loom.tensors': '{' }))),
    /^safetensors: __metadata__\.loom\.tensors is not valid JSON \(.+\)$/);
});

test('saveNetworkSafetensors / loadNetworkSafetensors work on files atomically', () => {
  const dir = tmp();
  const path = join(dir, 'net.safetensors');
  const net = buildNetwork(NET_SPEC, { seed: 5 });
  net.morph(DType.Uint4);
  saveNetworkSafetensors(net, path);
  assert.deepEqual(readdirSync(dir), ['net.safetensors']);
  const loaded = buildNetwork(NET_SPEC, { seed: 1 });
  loadNetworkSafetensors(loaded, path);
  const x = Tensor.from([2, 7], randomArray(14, 2));
  assert.deepEqual([...forwardNetwork(loaded, x).output.data], [...forwardNetwork(net, x).output.data]);
  // Sharded works the same way.
  const reader = openSafetensorsFile(path);
  const shardDir = join(dir, 'shards');
  writeShardedSafetensors(shardDir, new Map(reader.tensors.map((t) => [t.name, { dtype: t.dtype, shape: t.shape, data: reader.raw(t.name) }] as const)), { maxShardBytes: 8, metadata: { ...reader.metadata } });
  const fromShards = buildNetwork(NET_SPEC, { seed: 2 });
  loadNetworkSafetensors(fromShards, shardDir);
  assert.deepEqual([...forwardNetwork(fromShards, x).output.data], [...forwardNetwork(net, x).output.data]);
  assert.equal(readdirSync(shardDir).length, 5);
});
