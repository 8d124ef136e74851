import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { FormatError } from '../../src/core/errors.js';
import { loadDataset } from '../../src/data/load.js';

function throwsFormat(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof FormatError, `expected a FormatError, got ${String(e)}`);
    assert.match(e.message, message);
    return true;
  });
}

function idxU8(dims: number[], values: number[]): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + values.length);
  const v = new DataView(out.buffer);
  out[2] = 0x08;
  out[3] = dims.length;
  dims.forEach((d, i) => v.setUint32(4 + 4 * i, d, false));
  out.set(values, 4 + 4 * dims.length);
  return out;
}

test('loadDataset dispatches on what the path is', () => {
  const dir = mkdtempSync(join(tmpdir(), 'loom-load-'));
  writeFileSync(join(dir, 'a.csv'), 'x,y\n1,0\n2,1\n');
  writeFileSync(join(dir, 'b.JSON'), '{"inputs": [[1, 2]], "targets": [[3]]}');
  assert.equal(loadDataset(join(dir, 'a.csv')).train.count, 2);
  const json = loadDataset(join(dir, 'b.JSON'));
  assert.equal(json.train.targetWidth, 1);
  assert.equal(json.test, undefined);

  const mnist = join(dir, 'mnist');
  mkdirSync(mnist);
  for (const split of ['train', 't10k']) {
    writeFileSync(join(mnist, `${split}-images-idx3-ubyte.gz`), gzipSync(idxU8([2, 1, 2], [0, 255, 255, 0])));
    writeFileSync(join(mnist, `${split}-labels-idx1-ubyte`), idxU8([2], [1, 0]));
  }
  const both = loadDataset(mnist);
  assert.equal(both.train.count, 2);
  assert.equal(both.test!.count, 2);

  const single = loadDataset(join(mnist, 'train-images-idx3-ubyte.gz'));
  assert.deepEqual([...single.train.labels!], [1, 0]);
  assert.deepEqual(single.train.imageShape, [1, 2]);
  writeFileSync(join(dir, 'digits-images.idx'), idxU8([1, 1], [255]));
  writeFileSync(join(dir, 'digits-labels.idx.gz'), gzipSync(idxU8([1], [3])));
  assert.equal(loadDataset(join(dir, 'digits-images.idx')).train.targetWidth, 4);
});

test('loadDataset refuses what it cannot read, saying why', () => {
  const dir = mkdtempSync(join(tmpdir(), 'loom-load-'));
  throwsFormat(() => loadDataset(join(dir, 'missing.csv')), /missing\.csv: no such file/);
  writeFileSync(join(dir, 'data.parquet'), 'x');
  throwsFormat(() => loadDataset(join(dir, 'data.parquet')), /data\.parquet: unknown kind of data file; supported: a directory .*\.csv.*\.json.*IDX/);
  writeFileSync(join(dir, 'train-labels-idx1-ubyte'), idxU8([1], [0]));
  throwsFormat(() => loadDataset(join(dir, 'train-labels-idx1-ubyte')), /this is a labels file/);
  writeFileSync(join(dir, 'lonely-images-idx3-ubyte'), idxU8([1, 1], [0]));
  throwsFormat(() => loadDataset(join(dir, 'lonely-images-idx3-ubyte')), /no labels file beside it; looked for lonely-labels-idx3-ubyte, lonely-labels-idx3-ubyte\.gz, lonely-labels-idx1-ubyte, lonely-labels-idx1-ubyte\.gz/);
  writeFileSync(join(dir, 'x.csv.gz'), gzipSync('1,0\n'));
  throwsFormat(() => loadDataset(join(dir, 'x.csv.gz')), /compressed CSV\/JSON is not supported/);
  mkdirSync(join(dir, 'empty'));
  throwsFormat(() => loadDataset(join(dir, 'empty')), /missing MNIST-style IDX files: train-images-idx3-ubyte\(\.gz\), train-labels/);
});
