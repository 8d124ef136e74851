import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { gunzipSync, gzipSync } from 'node:zlib';
import { FormatError } from '../../src/core/errors.js';
import { idxToDataset, loadMnistDirectory, parseIdx, readIdxDataset, readIdxFile } from '../../src/data/idx.js';

const FASHION = '/usr/share/datasets/fashion-mnist';

function throwsFormat(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof FormatError, `expected a FormatError, got ${String(e)}`);
    assert.match(e.message, message);
    return true;
  });
}

const SIZES: Record<number, number> = { 0x08: 1, 0x09: 1, 0x0b: 2, 0x0c: 4, 0x0d: 4, 0x0e: 8 };

/** An IDX buffer written by hand, big-endian, as the format specifies. */
function idx(type: number, dims: number[], values: number[]): Uint8Array {
  const size = SIZES[type];
  const out = new Uint8Array(4 + 4 * dims.length + size * values.length);
  const v = new DataView(out.buffer);
  out[2] = type;
  out[3] = dims.length;
  dims.forEach((d, i) => v.setUint32(4 + 4 * i, d, false));
  const at = 4 + 4 * dims.length;
  values.forEach((x, i) => {
    const o = at + size * i;
    if (type === 0x08) v.setUint8(o, x);
    else if (type === 0x09) v.setInt8(o, x);
    else if (type === 0x0b) v.setInt16(o, x, false);
    else if (type === 0x0c) v.setInt32(o, x, false);
    else if (type === 0x0d) v.setFloat32(o, x, false);
    else v.setFloat64(o, x, false);
  });
  return out;
}

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'loom-idx-'));
}

test('parseIdx reads every element type, big-endian', () => {
  const u8 = parseIdx(idx(0x08, [2, 3], [0, 1, 2, 253, 254, 255]), 'u8');
  assert.deepEqual(u8.dims, [2, 3]);
  assert.ok(u8.data instanceof Uint8Array);
  assert.deepEqual([...u8.data], [0, 1, 2, 253, 254, 255]);
  const cases: [number, Function, number[]][] = [
    [0x09, Int8Array, [-128, -1, 0, 127]],
    [0x0b, Int16Array, [-32768, -2, 258, 32767]],
    [0x0c, Int32Array, [-2147483648, -70000, 16909060, 2147483647]],
    [0x0d, Float32Array, [-1.5, 0, 3.25, 1e30]],
    [0x0e, Float64Array, [-1e300, Math.PI, 0.1, 5e-324]],
  ];
  for (const [type, ctor, values] of cases) {
    const a = parseIdx(idx(type, [4], values), `type ${type}`);
    assert.ok(a.data instanceof ctor, `type 0x${type.toString(16)} gives ${ctor.name}`);
    assert.deepEqual([...a.data], values.map((x) => (type === 0x0d ? Math.fround(x) : x)));
  }
});

test('parseIdx works on a view into a larger buffer', () => {
  const inner = idx(0x0b, [2], [1, -1]);
  const big = new Uint8Array(inner.length + 3);
  big.set(inner, 3);
  assert.deepEqual([...parseIdx(big.subarray(3), 'view').data], [1, -1]);
});

test('gzipped IDX files are inflated by readIdxFile; parseIdx alone refuses them', () => {
  const dir = tempDir();
  const bytes = idx(0x08, [3, 2, 2], Array.from({ length: 12 }, (_, i) => i * 20));
  writeFileSync(join(dir, 'plain'), bytes);
  writeFileSync(join(dir, 'packed.gz'), gzipSync(bytes));
  const plain = readIdxFile(join(dir, 'plain'));
  const packed = readIdxFile(join(dir, 'packed.gz'));
  assert.deepEqual(packed.dims, [3, 2, 2]);
  assert.deepEqual([...packed.data], [...plain.data]);
  throwsFormat(() => parseIdx(gzipSync(bytes), 'z'), /^z: gzip-compressed IDX data/);
  let limit = 0;
  const injected = parseIdx(gzipSync(bytes), 'z', {
    maxBytes: 100,
    gunzip: (b, max) => {
      limit = max;
      return gunzipSync(b);
    },
  });
  assert.deepEqual(injected.dims, [3, 2, 2]);
  assert.equal(limit, 100 + 4 + 4 * 255, 'the inflation limit is the cap plus the largest header');
});

test('malformed IDX data is refused with the reason', () => {
  const good = idx(0x08, [2, 2], [1, 2, 3, 4]);
  throwsFormat(() => parseIdx(good.subarray(0, good.length - 1), 't'), /^t: truncated IDX payload: dims \[2, 2\] of u8 need 4 bytes after the 12-byte header, got 3$/);
  throwsFormat(() => parseIdx(Uint8Array.from([...good, 9, 9]), 't'), /^t: IDX payload has trailing bytes: .* need 4 bytes .*, got 6$/);
  throwsFormat(() => parseIdx(Uint8Array.from([0x50, 0x4b, 3, 4, 0, 0]), 'zip'), /^zip: expected IDX magic 0x00 0x00 <type> <ndims>, got 0x50 0x4b 0x03 0x04$/);
  throwsFormat(() => parseIdx(new Uint8Array(0), 'e'), /expected IDX magic .*, got an empty file/);
  throwsFormat(() => parseIdx(Uint8Array.from([0, 0, 0x0a, 1, 0, 0, 0, 0]), 'ty'), /^ty: unknown IDX element type 0x0a; expected 0x08 \(u8\)/);
  throwsFormat(() => parseIdx(Uint8Array.from([0, 0, 8, 3, 0, 0, 0, 1]), 'h'), /^h: truncated IDX header: 3 dimensions need 16 header bytes, got 8$/);
  const dir = tempDir();
  writeFileSync(join(dir, 'cut.gz'), gzipSync(good).subarray(0, 15));
  throwsFormat(() => readIdxFile(join(dir, 'cut.gz')), /cut\.gz: corrupt gzip data/);
});

test('a header claiming a huge size is refused before anything is allocated', () => {
  // 4 × (2^32 − 1) f64 elements: no typed array could hold it, so any attempt would be a RangeError.
  const huge = idx(0x0e, [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff], []);
  throwsFormat(() => parseIdx(huge, 'huge'), /^huge: IDX header claims dims \[4294967295, 4294967295, 4294967295, 4294967295\] of f64 = .* bytes, above the limit of 2147483648 bytes$/);
  // Just above the default cap, with a payload far too short.
  const big = idx(0x08, [3, 1024, 1024, 1024], [1, 2, 3]);
  throwsFormat(() => parseIdx(big, 'big'), /above the limit of 2147483648 bytes/);
  // A complete payload is still refused when it exceeds a caller's cap.
  const small = idx(0x0c, [100], new Array(100).fill(7));
  throwsFormat(() => parseIdx(small, 'cap', { maxBytes: 399 }), /claims dims \[100\] of i32 = 400 bytes, above the limit of 399 bytes/);
  assert.equal(parseIdx(small, 'cap', { maxBytes: 400 }).data.length, 100);
  // Inflation stops at the cap too, so a gzip bomb is refused without inflating all of it.
  const dir = tempDir();
  writeFileSync(join(dir, 'bomb.gz'), gzipSync(idx(0x08, [1 << 20], new Array(1 << 20).fill(0))));
  throwsFormat(() => readIdxFile(join(dir, 'bomb.gz'), { maxBytes: 1000 }), /bomb\.gz: gzip data inflates to more than 2024 bytes/);
});

test('idxToDataset scales u8 pixels, flattens images and keeps their shape', () => {
  const images = parseIdx(idx(0x08, [3, 2, 2], [0, 51, 255, 102, 0, 0, 0, 0, 255, 255, 255, 255]), 'img');
  const labels = parseIdx(idx(0x08, [3], [4, 0, 2]), 'lab');
  const d = idxToDataset(images, labels, 'img');
  assert.equal(d.count, 3);
  assert.deepEqual(d.inputShape, [4]);
  assert.deepEqual(d.imageShape, [2, 2]);
  assert.deepEqual([...d.inputs.subarray(0, 4)], [0, Math.fround(0.2), 1, Math.fround(0.4)]);
  assert.deepEqual([...d.labels!], [4, 0, 2]);
  assert.equal(d.targetWidth, 5);
  const floats = idxToDataset(parseIdx(idx(0x0d, [1, 2], [-3, 7.5]), 'f'), parseIdx(idx(0x08, [1], [0]), 'l'), 'f');
  assert.deepEqual([...floats.inputs], [-3, 7.5]);
});

test('label and image counts must match', () => {
  const images = parseIdx(idx(0x08, [3, 2], [1, 2, 3, 4, 5, 6]), 'img');
  const labels = parseIdx(idx(0x08, [2], [0, 1]), 'lab');
  throwsFormat(() => idxToDataset(images, labels, 'img'), /^img: label count 2 does not match image count 3$/);
  const dir = tempDir();
  writeFileSync(join(dir, 'x-images-idx3-ubyte'), idx(0x08, [3, 2], [1, 2, 3, 4, 5, 6]));
  writeFileSync(join(dir, 'x-labels-idx1-ubyte.gz'), gzipSync(idx(0x08, [2], [0, 1])));
  throwsFormat(() => readIdxDataset(join(dir, 'x-images-idx3-ubyte'), join(dir, 'x-labels-idx1-ubyte.gz')), /x-labels-idx1-ubyte\.gz: 2 labels, but .*x-images-idx3-ubyte holds 3 images/);
  const floatLabels = parseIdx(idx(0x0d, [3], [0, 1, 2]), 'fl');
  throwsFormat(() => idxToDataset(images, floatLabels, 'img'), /labels: expected an integer element type/);
  const negative = parseIdx(idx(0x09, [3], [0, -1, 2]), 'neg');
  throwsFormat(() => idxToDataset(images, negative, 'img'), /labels\[1\]: expected a class index in \[0, 65535\], got -1/);
});

test('loadMnistDirectory mixes plain and gzipped files and lists what is missing', () => {
  const dir = tempDir();
  const pixels = (n: number): number[] => Array.from({ length: n * 4 }, (_, i) => i % 256);
  writeFileSync(join(dir, 'train-images-idx3-ubyte.gz'), gzipSync(idx(0x08, [5, 2, 2], pixels(5))));
  writeFileSync(join(dir, 'train-labels-idx1-ubyte'), idx(0x08, [5], [0, 1, 2, 1, 0]));
  throwsFormat(() => loadMnistDirectory(dir), /missing MNIST-style IDX files: t10k-images-idx3-ubyte\(\.gz\), t10k-labels-idx1-ubyte\(\.gz\)$/);
  writeFileSync(join(dir, 't10k-images-idx3-ubyte'), idx(0x08, [2, 2, 2], pixels(2)));
  writeFileSync(join(dir, 't10k-labels.idx1-ubyte'), idx(0x08, [2], [2, 0]));
  const { train, test: testSet } = loadMnistDirectory(dir);
  assert.equal(train.count, 5);
  assert.equal(testSet.count, 2);
  assert.deepEqual(train.imageShape, [2, 2]);
  assert.equal(train.targetWidth, 3);
  assert.match(train.source, /train-images-idx3-ubyte\.gz$/);
  throwsFormat(() => loadMnistDirectory(join(dir, 'nothing')), /no such directory/);
});

test('Fashion-MNIST loads with 60000/10000 samples and 10 classes', { skip: existsSync(FASHION) ? false : `Fashion-MNIST not installed (${FASHION})` }, () => {
  const { train, test: testSet } = loadMnistDirectory(FASHION);
  assert.equal(train.count, 60000);
  assert.equal(testSet.count, 10000);
  for (const d of [train, testSet]) {
    assert.equal(d.targetWidth, 10);
    assert.deepEqual(d.inputShape, [784]);
    assert.deepEqual(d.imageShape, [28, 28]);
    assert.equal(d.inputs.length, d.count * 784);
    const perClass = new Array(10).fill(0);
    for (const l of d.labels!) perClass[l]++;
    assert.deepEqual(perClass, new Array(10).fill(d.count / 10), 'Fashion-MNIST is balanced');
    let min = Infinity;
    let max = -Infinity;
    for (const x of d.inputs) {
      if (x < min) min = x;
      if (x > max) max = x;
    }
    assert.equal(min, 0);
    assert.equal(max, 1);
  }
});
