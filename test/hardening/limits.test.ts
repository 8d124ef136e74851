/**
 * Documents that claim huge sizes or absurd nesting are refused with a typed error before anything
 * of that size is allocated (checked with process.memoryUsage and a time bound).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { after, test } from 'node:test';
import { readTensorFile } from '../../src/cli/modelCommands.js';
import { FormatError, LoomError, SpecError } from '../../src/core/errors.js';
import { readIdxFile } from '../../src/data/idx.js';
import { parseIdx } from '../../src/data/idxFormat.js';
import { parseJsonDataset } from '../../src/data/jsonData.js';
import { deserializeNetwork } from '../../src/grid/persistence.js';
import { buildNetwork, MAX_GRID_CELLS, MAX_NESTING_DEPTH } from '../../src/grid/spec.js';

const scratch = mkdtempSync(join(tmpdir(), 'loom-limits-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** Runs `f`, which must throw a LoomError matching `message` in under `ms` while growing memory by less than 32 MiB. */
function refusedCheaply(f: () => unknown, type: abstract new (...args: never[]) => LoomError, message: RegExp, ms = 500): void {
  const before = process.memoryUsage();
  const start = performance.now();
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof type, `expected ${type.name}, got ${(e as Error).constructor.name}: ${(e as Error).message}`);
    assert.match((e as Error).message, message);
    return true;
  });
  const elapsed = performance.now() - start;
  const after = process.memoryUsage();
  assert.ok(elapsed < ms, `took ${elapsed.toFixed(0)} ms`);
  assert.ok(after.arrayBuffers - before.arrayBuffers < 32 * 2 ** 20, `ArrayBuffers grew by ${after.arrayBuffers - before.arrayBuffers} bytes`);
  assert.ok(after.rss - before.rss < 64 * 2 ** 20, `RSS grew by ${after.rss - before.rss} bytes`);
}

test('a grid claiming 10^12 (or 10^8) cells is refused before the cell array is allocated', () => {
  refusedCheaply(() => buildNetwork({ depth: 1e6, rows: 1e6 }), SpecError, /10{12} cells, above the limit/);
  refusedCheaply(() => buildNetwork({ depth: 1e8 }), SpecError, /above the limit of 1048576/);
  assert.equal(buildNetwork({ depth: MAX_GRID_CELLS }).depth, MAX_GRID_CELLS);
});

test('a layer claiming 10^12 parameters is refused before its weights are allocated', () => {
  refusedCheaply(() => buildNetwork({ layers: [{ type: 'Dense', input_height: 1e6, output_height: 1e6 }] }), SpecError, /layers\[0\]: Dense would have 1000000000000 parameters/);
  refusedCheaply(() => buildNetwork({ layers: [{ type: 'Embedding', vocab_size: 1e7, embedding_dim: 1e5 }] }), SpecError, /Embedding would have 1000000000000 parameters/);
  refusedCheaply(() => buildNetwork({ layers: [{ type: 'Dense', input_height: 2 ** 40, output_height: 2 ** 40 }] }), SpecError, /parameters, above the limit/);
  refusedCheaply(() => buildNetwork({ layers: [{ type: 'Dense', input_height: 100, output_height: 100 }] }, { maxParameters: 5000 }), SpecError, /10000 parameters, above the limit of 5000/);
});

test('a model file claiming 2^30 parameters with short weights is refused before allocating 4 GiB', () => {
  const doc = { layers: [{ type: 'Dense', input_height: 32768, output_height: 32768, weights: 'AAAAAA==', native: true }] };
  refusedCheaply(() => deserializeNetwork(JSON.stringify(doc)), FormatError, /expected 4294967296 bytes of float32 for 1073741824 parameters, got 4/);
  const legacy = { layers: [{ type: 'Dense', input_height: 32768, output_height: 32768, weights: 'AAAAAA==', dtype: 'int4' }] };
  refusedCheaply(() => deserializeNetwork(JSON.stringify(legacy)), FormatError, /expected 4294967296 bytes of float32/);
  const int4 = { layers: [{ type: 'Dense', input_height: 32768, output_height: 32768, weights: 'AAAAAA==', dtype: 'int4', native: true }] };
  refusedCheaply(() => deserializeNetwork(JSON.stringify(int4)), FormatError, /expected 536870912 bytes of int4/);
});

function nested(depth: number) {
  let layer: Record<string, unknown> = { type: 'Dense', input_height: 1, output_height: 1 };
  for (let i = 0; i < depth; i++) layer = { type: 'Sequential', sequential_layers: [layer] };
  return { layers: [layer] };
}

test('container nesting deeper than MAX_NESTING_DEPTH is a SpecError, not a stack overflow', () => {
  assert.equal(buildNetwork(nested(MAX_NESTING_DEPTH)).layers().length, 1);
  refusedCheaply(() => buildNetwork(nested(MAX_NESTING_DEPTH + 1)), SpecError, /nested more than 64 deep/);
  refusedCheaply(() => buildNetwork(nested(20_000)), SpecError, /nested more than 64 deep/, 2000);
});

test('a megabyte-long unknown key is refused without a quadratic "did you mean" search', () => {
  refusedCheaply(() => buildNetwork({ ['k'.repeat(2 ** 20)]: 1 }), SpecError, /unknown field$/);
});

function idxHeader(type: number, dims: number[]): Uint8Array {
  const b = new Uint8Array(4 + 4 * dims.length);
  b[2] = type;
  b[3] = dims.length;
  dims.forEach((d, i) => new DataView(b.buffer).setUint32(4 + 4 * i, d, false));
  return b;
}

test('an IDX header claiming 10^12 elements is refused before the payload is allocated', () => {
  refusedCheaply(() => parseIdx(idxHeader(0x08, [1e6, 1e6]), 'x.idx'), FormatError, /claims dims \[1000000, 1000000\] of u8 = 1000000000000 bytes, above the limit/);
  refusedCheaply(() => parseIdx(idxHeader(0x0e, [0xffffffff, 0xffffffff, 0xffffffff]), 'x.idx'), FormatError, /above the limit/);
  refusedCheaply(() => parseIdx(idxHeader(0x0d, [2 ** 20]), 'x.idx', { maxBytes: 2 ** 20 }), FormatError, /above the limit of 1048576 bytes/);
});

test('IDX dims whose product overflows to Infinity and then meets a 0 describe 0 elements, not NaN', () => {
  const dims = [...new Array(40).fill(0xffffffff), 0];
  const header = idxHeader(0x0b, dims);
  const empty = parseIdx(header, 'x.idx');
  assert.equal(empty.data.length, 0);
  assert.equal(empty.dims.length, 41);
  // Before the fix NaN passed every size check, so any trailing payload was silently accepted.
  assert.throws(() => parseIdx(new Uint8Array([...header, 1, 2, 3, 4]), 'x.idx'), /trailing bytes/);
});

test('a gzip bomb stops at the IDX size limit while inflating', () => {
  const body = new Uint8Array(2 ** 24);
  body.set(idxHeader(0x08, [2 ** 24 - 8]));
  const path = join(scratch, 'bomb.idx.gz');
  writeFileSync(path, gzipSync(body));
  refusedCheaply(() => readIdxFile(path, { maxBytes: 2 ** 20 }), FormatError, /inflates to more than/);
});

test('IDX u8/i8 payloads read from files are copies of exactly the payload', () => {
  for (const type of [0x08, 0x09]) {
    const file = new Uint8Array([...idxHeader(type, [3]), 1, 0xff, 3]);
    const path = join(scratch, `small-${type}.idx`);
    writeFileSync(path, file);
    const { data } = readIdxFile(path);
    assert.deepEqual(Array.from(data), type === 0x08 ? [1, 255, 3] : [1, -1, 3]);
    assert.equal(data.buffer.byteLength, 3, 'the result does not keep (or expose) the whole file buffer');
    writeFileSync(path + '.gz', gzipSync(file));
    assert.deepEqual(Array.from(readIdxFile(path + '.gz').data), Array.from(data));
  }
});

test('a JSON dataset whose "shape" or first row claims a huge width is refused before allocating', () => {
  refusedCheaply(() => parseJsonDataset('{"inputs": [[1]], "targets": [0], "shape": [1000000, 1000000]}'), FormatError, /inputs\[0\]: expected 1000000000000 numbers \(the product of "shape"\), got 1/);
  // One long first row, then many short ones: count × width would be 2·10^5 × 10^5 floats.
  const text = `{"inputs": [[${'0,'.repeat(99_999)}0]${',[1]'.repeat(199_999)}], "targets": [${'0,'.repeat(199_999)}0]}`;
  refusedCheaply(() => parseJsonDataset(text), FormatError, /inputs\[1\]: expected 100000 numbers, got 1/, 2000);
  const targets = `{"inputs": [${'[1],'.repeat(199_999)}[1]], "targets": [[${'0,'.repeat(99_999)}0]${',[1]'.repeat(199_999)}]}`;
  refusedCheaply(() => parseJsonDataset(targets), FormatError, /targets\[1\]: expected 100000 numbers, got 1/, 2000);
});

test('regression targets beyond float32 range are refused instead of becoming Infinity', () => {
  assert.throws(() => parseJsonDataset('{"inputs": [[0]], "targets": [1e300]}'), /targets\[0\]: 1e\+300 is out of float32 range/);
});

test('a tensor file claiming 10^12 values, or nested 200000 deep, gets a FormatError', () => {
  const path = join(scratch, 'input.json');
  writeFileSync(path, '{"shape": [1000000, 1000000], "data": [1]}');
  refusedCheaply(() => readTensorFile(path), FormatError, /needs 1000000000000 numbers, got 1/);
  writeFileSync(path, `{"shape": [1], "data": [${'['.repeat(200_000)}${']'.repeat(200_000)}]}`);
  refusedCheaply(() => readTensorFile(path), FormatError, /data\[0\]: expected a finite number, got an array of length 1/);
  writeFileSync(path, `{"shape": ${'['.repeat(200_000)}${']'.repeat(200_000)}, "data": []}`);
  refusedCheaply(() => readTensorFile(path), FormatError, /shape: expected a non-empty array of positive integers, got an array of length 1/);
});

test('JSON nested 200000 deep is a typed error in every JSON entry point', () => {
  const deep = `${'['.repeat(200_000)}${']'.repeat(200_000)}`;
  refusedCheaply(() => buildNetwork(`{"layers": ${deep}}`), SpecError, /layers\[0\]: expected an object/);
  refusedCheaply(() => deserializeNetwork(`{"layers": [{"type": "Dense", "input_height": ${deep}}]}`), SpecError, /input_height: expected a non-negative integer/);
  refusedCheaply(() => parseJsonDataset(`{"inputs": ${deep}, "targets": [0]}`), FormatError, /inputs\[0\]\[0\]|inputs/);
  refusedCheaply(() => parseJsonDataset(deep.slice(0, -1)), FormatError, /invalid JSON/);
});

test('resuming with optimizer state saved for a differently sized network is refused, naming the buffer', async () => {
  const { createOptimizer, optimizerFromState } = await import('../../src/train/optimizers.js');
  const adam = createOptimizer({ type: 'adamw', lr: 0.01 });
  adam.step([{ key: 'layer0', values: new Float32Array(4), grad: new Float32Array(4).fill(1) }]);
  const resumed = optimizerFromState(JSON.parse(JSON.stringify(adam.state())));
  assert.throws(
    () => resumed.step([{ key: 'layer0', values: new Float32Array(6), grad: new Float32Array(6) }]),
    (e: unknown) => e instanceof SpecError && /buffers\.layer0\.exp_avg: has 4 values but the parameter has 6/.test((e as Error).message),
  );
});
