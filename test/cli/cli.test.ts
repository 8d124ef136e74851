import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ALL_DTYPES, dtypeName } from '../../src/core/dtype.js';
import { assertClose, fixture, ROOT } from '../helpers.js';

const CLI = join(ROOT, 'dist/src/cli/main.js');
const FOREIGN = join(ROOT, 'test/fixtures/foreign');

function loom(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function oneLineError(r: ReturnType<typeof loom>, pattern: RegExp, code = 1) {
  assert.equal(r.code, code, `exit code (stderr: ${r.stderr})`);
  assert.equal(r.stderr.trim().split('\n').length, 1, `one line on stderr, got: ${r.stderr}`);
  assert.match(r.stderr.trim(), pattern);
}

test('loom run prints PyTorch\'s answer for a model written from the format alone', () => {
  const r = loom('run', join(FOREIGN, 'mlp-float32.json'), '--input', join(FOREIGN, 'input.json'));
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  const expected = fixture('foreign/expected-float32.json');
  assert.deepEqual(out.shape, expected.shape);
  assertClose(out.data, expected.data, 1e-5, 1e-6, 'loom run output');
});

test('loom morph to each of the 21 dtypes, then run, reproduces the in-memory output', () => {
  const dir = mkdtempSync(join(tmpdir(), 'loom-cli-'));
  for (const dtype of ALL_DTYPES) {
    const name = dtypeName(dtype);
    const path = join(dir, `${name}.json`);
    const m = loom('morph', join(FOREIGN, 'mlp-float32.json'), '--dtype', name, '--out', path);
    assert.equal(m.code, 0, m.stderr);
    const viaFile = loom('run', path, '--input', join(FOREIGN, 'input.json'));
    const inMemory = loom('run', join(FOREIGN, 'mlp-float32.json'), '--dtype', name, '--input', join(FOREIGN, 'input.json'));
    assert.equal(viaFile.code, 0, viaFile.stderr);
    assert.equal(viaFile.stdout, inMemory.stdout, `${name}: saved model output differs from the morphed in-memory output`);
    const again = join(dir, `${name}-again.json`);
    assert.equal(loom('morph', path, '--dtype', name, '--out', again).code, 0);
    assert.equal(readFileSync(again, 'utf8'), readFileSync(path, 'utf8'), `${name}: re-saving is not byte-identical`);
  }
});

test('loom info lists layers, coordinates, dtypes, parameters and bytes', () => {
  const r = loom('info', join(FOREIGN, 'mlp-int8.json'), '--json');
  assert.equal(r.code, 0, r.stderr);
  const info = JSON.parse(r.stdout);
  assert.equal(info.layers.length, 3);
  assert.deepEqual(info.layers.map((l: { dtype: string }) => l.dtype), ['int8', 'int8', 'uint4']);
  assert.equal(info.parameters, 6 * 8 + 8 * 5 + 5 * 3);
  assert.equal(info.bytes, 48 + 40 + 8);
  const text = loom('info', join(FOREIGN, 'mlp-int8.json'));
  assert.match(text.stdout, /\(0,0,2,0\)\s+Dense\s+Linear\s+uint4\s+15/);
});

test('bad input ends with one readable line and a non-zero exit code', () => {
  const dir = mkdtempSync(join(tmpdir(), 'loom-cli-bad-'));
  const bad = join(dir, 'bad.json');
  writeFileSync(bad, '{"depth": 1, "layers": [{"type": "Dense", "input_height": -3, "output_height": 2}]}');
  oneLineError(loom('info', bad), /^loom: layers\[0\]\.input_height: expected a non-negative integer, got -3$/);
  oneLineError(loom('run', join(dir, 'missing.json'), '--input', bad), /no such file/);
  oneLineError(loom('run', join(FOREIGN, 'mlp-float32.json')), /missing --input/, 2);
  oneLineError(loom('morph', join(FOREIGN, 'mlp-float32.json'), '--dtype', 'int3', '--out', join(dir, 'x.json')), /--dtype: expected a dtype name/);
  oneLineError(loom('frobnicate'), /unknown command "frobnicate"/, 2);
  oneLineError(loom('info', join(FOREIGN, 'mlp-float32.json'), '--colour'), /unknown option '--colour'/, 2);
  const input = join(dir, 'in.json');
  writeFileSync(input, '{"shape": [2, 6], "data": [1, 2, 3]}');
  oneLineError(loom('run', join(FOREIGN, 'mlp-float32.json'), '--input', input), /shape \[2, 6\] needs 12 numbers, got 3/);
  writeFileSync(input, '{"shape": [2, 5], "data": [1,2,3,4,5,6,7,8,9,10]}');
  oneLineError(loom('run', join(FOREIGN, 'mlp-float32.json'), '--input', input), /Dense at \(0,0,0,0\): expected 6 values per sample/);
  assert.ok(!existsSync(join(dir, 'x.json')));
});

test('loom api prints the public API with signatures; --json gives the manifest', () => {
  const r = loom('api', 'buildNetwork');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^ {2}function buildNetwork\(document: unknown, options\?: BuildOptions\): VolumetricNetwork {2}— Builds a network/m);
  const node = loom('api', 'importLlama', '--entry', './node', '--json');
  assert.equal(node.code, 0, node.stderr);
  const manifest = JSON.parse(node.stdout) as { entryPoints: Record<string, { name: string; signatures?: { text: string }[] }[]> };
  assert.deepEqual(Object.keys(manifest.entryPoints), ['./node']);
  assert.equal(manifest.entryPoints['./node'].find((e) => e.name === 'importLlama')!.signatures![0].text, 'importLlama(dir: string, options?: ImportLlamaOptions): LlamaModel');
  oneLineError(loom('api', 'noSuchExportAnywhere'), /^loom: api: no export matches "noSuchExportAnywhere"$/, 2);
  oneLineError(loom('api', '--entry', './nope'), /^loom: --entry: expected one of \., \.\/node/, 2);
});
