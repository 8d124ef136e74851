import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { FormatError } from '../../src/core/errors.js';
import { parseCsv, readCsv } from '../../src/data/csv.js';

function throwsFormat(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof FormatError, `expected a FormatError, got ${String(e)}`);
    assert.match(e.message, message);
    return true;
  });
}

test('CSV with header, CRLF and blank lines parses as classification', () => {
  const d = parseCsv('x1,x2,label\r\n0.5,1,0\r\n\r\n-2,3e-1,2\r\n4,.25,1\r\n\r\n', 'toy.csv');
  assert.equal(d.count, 3);
  assert.deepEqual(d.inputShape, [2]);
  assert.deepEqual([...d.inputs], [0.5, 1, -2, Math.fround(0.3), 4, 0.25]);
  assert.deepEqual([...d.labels!], [0, 2, 1]);
  assert.equal(d.targetWidth, 3);
  assert.equal(d.targets, undefined);
  assert.equal(d.source, 'toy.csv');
});

test('CSV without header and fractional last column is regression', () => {
  const d = parseCsv('1,2,0.5\n3,4,1.5\n');
  assert.equal(d.count, 2);
  assert.equal(d.labels, undefined);
  assert.deepEqual([...d.targets!], [0.5, 1.5]);
  assert.equal(d.targetWidth, 1);
  assert.equal(d.source, 'csv');
});

test('negative integer labels mean regression, not classes', () => {
  const d = parseCsv('1,-1\n2,3\n');
  assert.equal(d.labels, undefined);
  assert.deepEqual([...d.targets!], [-1, 3]);
});

test('semicolon and tab separators are detected from the first line', () => {
  const semi = parseCsv('a;b;y\n1;2;1\n3;4;0\n');
  assert.deepEqual([...semi.inputs], [1, 2, 3, 4]);
  assert.deepEqual([...semi.labels!], [1, 0]);
  const tab = parseCsv('1\t2\t0\n3\t4\t1\n');
  assert.deepEqual([...tab.inputs], [1, 2, 3, 4]);
  assert.equal(tab.targetWidth, 2);
});

test('quoted header cells may contain the separator; a BOM is ignored', () => {
  const d = parseCsv('\uFEFF"width, cm","height",class\n1,2,0\n');
  assert.equal(d.count, 1);
  assert.deepEqual([...d.inputs], [1, 2]);
});

test('readCsv reads a file and names it as the source', () => {
  const dir = mkdtempSync(join(tmpdir(), 'loom-csv-'));
  const path = join(dir, 'iris.csv');
  writeFileSync(path, 'a,b,c\n1,2,0\n3,4,1\n5,6,2\n');
  const d = readCsv(path);
  assert.equal(d.count, 3);
  assert.equal(d.source, path);
  assert.equal(d.targetWidth, 3);
});

test('malformed CSV files are refused with the line and column', () => {
  const dir = mkdtempSync(join(tmpdir(), 'loom-csv-'));
  const write = (name: string, text: string): string => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };
  throwsFormat(() => readCsv(write('empty.csv', '')), /empty\.csv: empty file$/);
  throwsFormat(() => readCsv(write('blank.csv', '\n  \r\n\n')), /blank\.csv: empty file$/);
  const rows = ['f1,f2,f3,y', '1,2,3,0', '1,2,3,0', '', '1,2,3,1', '1,2,3,1', '1,2,abc,0'].join('\n');
  throwsFormat(() => readCsv(write('cell.csv', rows)), /cell\.csv: line 7, column 3: expected a number, got "abc"$/);
  throwsFormat(() => parseCsv('1,2,3\n4,5\n', 'cols.csv'), /^cols\.csv: line 2: expected 3 columns \(as on line 1\), got 2$/);
  throwsFormat(() => parseCsv('a,b,y\n1,2,3,0\n', 'hdr.csv'), /line 2: expected 3 columns \(as on line 1\), got 4/);
  throwsFormat(() => parseCsv('1\n2\n3\n', 'one.csv'), /one\.csv: line 1: only 1 column .*label column/);
  throwsFormat(() => parseCsv('x,y\n\n', 'head.csv'), /head\.csv: no data rows after the header on line 1/);
  throwsFormat(() => parseCsv('1,2,0\n3,,1\n', 'gap.csv'), /line 2, column 2: expected a number, got ""/);
  throwsFormat(() => parseCsv('1,2,0\n1e99,2,1\n', 'big.csv'), /line 2, column 1: 1e99 is out of float32 range/);
  throwsFormat(() => parseCsv('1,2,0\n0x10,2,1\n', 'hex.csv'), /line 2, column 1: expected a number, got "0x10"/);
  throwsFormat(() => readCsv(join(dir, 'absent.csv')), /absent\.csv: no such file/);
});
