import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { FormatError } from '../../src/core/errors.js';
import { jsonErrorOffset, parseJsonDataset, readJsonDataset } from '../../src/data/jsonData.js';

function throwsFormat(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof FormatError, `expected a FormatError, got ${String(e)}`);
    assert.match(e.message, message);
    return true;
  });
}

test('flat integer targets become class labels', () => {
  const d = parseJsonDataset('{"inputs": [[0, 1], [2, 3], [4, 5]], "targets": [1, 0, 4]}', 'a.json');
  assert.equal(d.count, 3);
  assert.deepEqual(d.inputShape, [2]);
  assert.deepEqual([...d.inputs], [0, 1, 2, 3, 4, 5]);
  assert.deepEqual([...d.labels!], [1, 0, 4]);
  assert.equal(d.targetWidth, 5);
  assert.equal(d.source, 'a.json');
});

test('target rows become regression targets; flat fractional targets have width 1', () => {
  const d = parseJsonDataset('{"inputs": [[1], [2]], "targets": [[0.5, 1], [2, -3]]}', 'r.json');
  assert.equal(d.labels, undefined);
  assert.equal(d.targetWidth, 2);
  assert.deepEqual([...d.targets!], [0.5, 1, 2, -3]);
  const flat = parseJsonDataset('{"inputs": [[1], [2]], "targets": [0.25, -1]}', 'f.json');
  assert.equal(flat.targetWidth, 1);
  assert.deepEqual([...flat.targets!], [0.25, -1]);
});

test('"shape" sets the per-sample input shape', () => {
  const d = parseJsonDataset('{"inputs": [[1,2,3,4,5,6]], "targets": [0], "shape": [1, 2, 3]}', 's.json');
  assert.deepEqual(d.inputShape, [1, 2, 3]);
  assert.equal(d.inputs.length, 6);
});

test('readJsonDataset reads a file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'loom-json-'));
  const path = join(dir, 'd.json');
  writeFileSync(path, JSON.stringify({ inputs: [[1, 2], [3, 4]], targets: [0, 1] }));
  const d = readJsonDataset(path);
  assert.equal(d.source, path);
  assert.equal(d.targetWidth, 2);
  throwsFormat(() => readJsonDataset(join(dir, 'nope.json')), /nope\.json: no such file/);
});

test('invalid JSON reports the parser position with line and column', () => {
  throwsFormat(() => parseJsonDataset('{"inputs": [[1, 2]],\n "targets": [0]]}', 'bad.json'), /^bad\.json: invalid JSON at position 36 \(line 2, column 16\): Expected ',' or '}'/);
  // V8 gives no position for unexpected tokens; ours comes from the syntax scan.
  throwsFormat(() => parseJsonDataset('{"inputs": [[1, 2],\n   [3, ]]}', 'tok.json'), /^tok\.json: invalid JSON at position 27 \(line 2, column 8\): Unexpected token '\]'$/);
  throwsFormat(() => parseJsonDataset('', 'empty.json'), /empty\.json: invalid JSON at position 0 \(line 1, column 1\): Unexpected end of JSON input/);
});

test('the syntax scan agrees with V8 where V8 reports a position', () => {
  for (const text of ['{"a":1,}', '[1 2]', '{a:1}', '{"a": "x\n"}', '{"inputs": [[1,2]], "targets": [0]]', '[1, 2] x']) {
    let v8: number | undefined;
    try {
      JSON.parse(text);
    } catch (e) {
      v8 = Number(/position (\d+)/.exec((e as Error).message)![1]);
    }
    assert.equal(jsonErrorOffset(text), v8, JSON.stringify(text));
  }
  assert.equal(jsonErrorOffset('{"a": [1, -2.5e3, true, null, "\\u00e9"]}'), undefined);
});

test('malformed JSON datasets are refused with the offending path', () => {
  const rows = Array.from({ length: 13 }, () => [1, 2, 3, 4]);
  rows[12] = [1, 2, 3];
  throwsFormat(() => parseJsonDataset(JSON.stringify({ inputs: rows, targets: rows.map(() => 0) }), 'r.json'), /^r\.json: inputs\[12\]: expected 4 numbers, got 3$/);
  throwsFormat(() => parseJsonDataset('{"targets": [0]}', 'm.json'), /^m\.json: missing field "inputs"$/);
  throwsFormat(() => parseJsonDataset('{"inputs": [[1]]}', 'm.json'), /^m\.json: missing field "targets"$/);
  throwsFormat(() => parseJsonDataset('{"inputs": [[1, 1e999]], "targets": [0]}', 'n.json'), /inputs\[0\]\[1\]: expected a finite number within float32 range, got Infinity/);
  throwsFormat(() => parseJsonDataset('{"inputs": [[1, "2"]], "targets": [0]}', 'n.json'), /inputs\[0\]\[1\]: expected a number, got "2"/);
  throwsFormat(() => parseJsonDataset('{"inputs": [[1], [2]], "targets": [0, 1e999]}', 'n.json'), /targets\[1\]: expected a finite number, got Infinity/);
  throwsFormat(() => parseJsonDataset('{"inputs": [[1], [2], [3]], "targets": [0, 1]}', 'c.json'), /^c\.json: targets: 2 entries for 3 inputs/);
  throwsFormat(() => parseJsonDataset('{"inputs": [[1], [2]], "targets": [[0, 1], [1]]}', 't.json'), /targets\[1\]: expected 2 numbers, got 1/);
  throwsFormat(() => parseJsonDataset('{"inputs": [[1], [2]], "targets": [[0], 1]}', 't.json'), /targets\[1\]: expected an array of numbers, got 1/);
  throwsFormat(() => parseJsonDataset('{"inputs": [[1, 2, 3]], "targets": [0], "shape": [2, 2]}', 's.json'), /inputs\[0\]: expected 4 numbers \(the product of "shape"\), got 3/);
  throwsFormat(() => parseJsonDataset('{"inputs": [[1]], "targets": [0], "shape": [0]}', 's.json'), /shape\[0\]: expected a positive integer, got 0/);
  throwsFormat(() => parseJsonDataset('{"inputs": [], "targets": []}', 'e.json'), /inputs: expected at least one sample/);
  throwsFormat(() => parseJsonDataset('[1, 2]', 'a.json'), /expected a JSON object with "inputs" and "targets", got an array of length 2/);
});
