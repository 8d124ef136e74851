import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { readTensorFile } from '../../src/cli/modelCommands.js';
import { FormatError, LoomError } from '../../src/core/errors.js';
import { parseJsonDataset, readJsonDataset } from '../../src/data/jsonData.js';
import { VolumetricNetwork } from '../../src/grid/network.js';
import { deserializeNetwork, serializeNetwork } from '../../src/grid/persistence.js';
import { buildNetwork } from '../../src/grid/spec.js';
import { loadNetworkFile } from '../../src/io/modelFiles.js';
import { resolveInside } from '../../src/io/safePath.js';
import { optimizerFromState } from '../../src/train/optimizers.js';
import { ROOT } from '../helpers.js';

const scratch = mkdtempSync(join(tmpdir(), 'loom-safe-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sourceFiles(path) : /\.[cm]?[jt]s$/.test(name) ? [path] : [];
  });
}

test('src/ has no eval, new Function or Function(...)', () => {
  const patterns = [/\beval\s*\(/, /\bnew\s+Function\b/, /(?<![\w$.])Function\s*\(/];
  const hits: string[] = [];
  const files = sourceFiles(join(ROOT, 'src'));
  assert.ok(files.length > 20, `expected the source tree under ${ROOT}src, found ${files.length} files`);
  for (const file of files) {
    readFileSync(file, 'utf8')
      .split('\n')
      .forEach((line, i) => {
        if (patterns.some((p) => p.test(line))) hits.push(`${file.slice(ROOT.length)}:${i + 1}: ${line.trim()}`);
      });
  }
  assert.deepEqual(hits, [], `code evaluation found:\n${hits.join('\n')}`);
});

/** Hostile keys, placed at the top level and inside nested objects of an otherwise valid document. */
const POLLUTERS = [
  '"__proto__": {"polluted": "yes", "inputs": [[9]], "targets": [9], "shape": [1], "data": [9], "layers": []}',
  '"constructor": {"prototype": {"polluted": "yes"}}',
  '"prototype": {"polluted": "yes"}',
];

function assertClean(what: string): void {
  assert.equal(({} as Record<string, unknown>).polluted, undefined, `${what}: Object.prototype polluted`);
  assert.equal(([] as unknown as Record<string, unknown>).polluted, undefined, `${what}: Array.prototype polluted`);
  assert.equal(Object.getOwnPropertyNames(Object.prototype).includes('polluted'), false, what);
}

/** Runs `parse` on `text`; success or a LoomError are both fine, anything else (TypeError, ...) is not. */
function parseClean(what: string, parse: () => unknown): unknown {
  let result: unknown;
  try {
    result = parse();
  } catch (e) {
    assert.ok(e instanceof LoomError, `${what}: threw ${(e as Error).constructor.name}: ${(e as Error).message}`);
  }
  assertClean(what);
  if (result !== null && typeof result === 'object') {
    // Plain results keep Object.prototype; class instances keep their class. A prototype taken from the
    // document would be a plain object other than Object.prototype, whose inherited constructor is Object.
    const proto = Object.getPrototypeOf(result);
    assert.ok(proto === Object.prototype || proto?.constructor?.name !== 'Object', `${what}: result has a foreign prototype`);
    assert.equal((result as Record<string, unknown>).polluted, undefined, `${what}: result inherited "polluted"`);
  }
  return result;
}

/** Inserts each polluter after the first "{" and after every `anchor` occurrence's object start. */
function variants(valid: string, nestedAnchor: string): string[] {
  const out: string[] = [];
  for (const p of POLLUTERS) {
    out.push(valid.replace('{', `{${p}, `));
    const at = valid.indexOf(nestedAnchor);
    if (at >= 0) {
      const brace = valid.indexOf('{', at);
      out.push(`${valid.slice(0, brace + 1)}${p}, ${valid.slice(brace + 1)}`);
    }
  }
  return out;
}

const SPEC = JSON.stringify({ depth: 1, rows: 1, cols: 1, layers_per_cell: 1, layers: [{ type: 'Dense', input_height: 2, output_height: 2 }] });
const MODEL = serializeNetwork(buildNetwork(SPEC));

test('__proto__/constructor/prototype keys in network specs and model files cannot pollute prototypes', () => {
  for (const text of [...variants(SPEC, '"layers"'), ...variants(MODEL, '"layers"')]) {
    parseClean('buildNetwork(text)', () => buildNetwork(text));
    parseClean('buildNetwork(JSON.parse(text))', () => buildNetwork(JSON.parse(text)));
    parseClean('deserializeNetwork', () => deserializeNetwork(text));
    const path = join(scratch, 'model.json');
    writeFileSync(path, text);
    parseClean('loadNetworkFile', () => loadNetworkFile(path));
  }
  // The keys are refused by name, so no hostile document builds a network.
  assert.throws(() => buildNetwork(`{"__proto__": {"depth": 3}, "layers": []}`), /__proto__: unknown field/);
  assert.throws(() => buildNetwork(JSON.parse(`{"layers": [{"type": "Dense", "input_height": 1, "output_height": 1, "constructor": 1}]}`)), /layers\[0\]\.constructor: unknown field/);
  assert.ok(buildNetwork(SPEC) instanceof VolumetricNetwork);
});

test('__proto__ keys in JSON datasets are neither inherited nor polluting', () => {
  const valid = JSON.stringify({ inputs: [[1, 2], [3, 4]], targets: [0, 1] });
  for (const text of variants(valid, '"inputs"')) {
    parseClean('parseJsonDataset', () => parseJsonDataset(text));
    const path = join(scratch, 'data.json');
    writeFileSync(path, text);
    parseClean('readJsonDataset', () => readJsonDataset(path));
  }
  // Fields exist only as own properties: a "__proto__" object carrying them does not supply them.
  assert.throws(() => parseJsonDataset('{"__proto__": {"inputs": [[1]], "targets": [1]}}'), /missing field "inputs"/);
  const d = parseClean('own fields', () => parseJsonDataset('{"__proto__": {"shape": [7]}, "inputs": [[1, 2]], "targets": [1]}')) as { inputShape: number[] };
  assert.deepEqual(d.inputShape, [2]);
});

test('__proto__ keys in tensor input files are neither inherited nor polluting', () => {
  const path = join(scratch, 'input.json');
  for (const text of variants('{"shape": [1, 2], "data": [1, 2]}', '"shape"')) {
    writeFileSync(path, text);
    parseClean('readTensorFile', () => readTensorFile(path));
  }
  writeFileSync(path, '{"__proto__": {"shape": [1], "data": [1]}}');
  assert.throws(() => readTensorFile(path), /shape: expected a non-empty array/);
});

test('__proto__ keys in optimizer state cannot pollute prototypes', () => {
  const valid = JSON.stringify({ type: 'sgd', options: { lr: 0.1, momentum: 0.9 }, steps: 1, buffers: { '0': { momentum_buffer: 'AAAAAA==' } } });
  for (const text of [...variants(valid, '"options"'), ...variants(valid, '"buffers"')]) {
    parseClean('optimizerFromState', () => optimizerFromState(JSON.parse(text)));
  }
});

const model = join(scratch, 'model-dir');
const outside = join(scratch, 'outside');
mkdirSync(join(model, 'shards'), { recursive: true });
mkdirSync(outside);
writeFileSync(join(model, 'config.json'), '{}');
writeFileSync(join(model, 'shards', 'a.bin'), 'a');
writeFileSync(join(outside, 'secret.bin'), 'secret');
symlinkSync(join(outside, 'secret.bin'), join(model, 'leak.bin'));
symlinkSync(outside, join(model, 'leakdir'));
symlinkSync(join(model, 'shards', 'a.bin'), join(model, 'alias.bin'));
symlinkSync(join(outside, 'not-yet.bin'), join(model, 'dangling.bin'));

test('resolveInside accepts paths inside the directory', () => {
  const real = realpathSync(model);
  assert.equal(resolveInside(model, 'config.json'), join(real, 'config.json'));
  assert.equal(resolveInside(model, 'shards/a.bin'), join(real, 'shards', 'a.bin'));
  assert.equal(resolveInside(model, './shards/../config.json'), join(real, 'config.json'));
  assert.equal(resolveInside(model, 'new/file.bin'), join(real, 'new', 'file.bin'), 'files that do not exist yet resolve too');
  assert.equal(resolveInside(model, 'alias.bin'), join(real, 'shards', 'a.bin'), 'a link that stays inside resolves to its target');
  assert.equal(resolveInside(model, 'a\\..\\..\\b'), join(real, 'a\\..\\..\\b'), 'on POSIX a backslash is part of the name');
});

test('resolveInside refuses escapes with a FormatError', () => {
  const refused: [string, RegExp][] = [
    ['..', /escapes the model directory/],
    ['../outside/secret.bin', /escapes the model directory/],
    ['shards/../../outside/secret.bin', /escapes the model directory/],
    [join(outside, 'secret.bin'), /is absolute/],
    ['/etc/passwd', /is absolute/],
    ['C:\\Windows\\win.ini', /is absolute/],
    ['\\\\server\\share\\x', /is absolute/],
    ['', /non-empty relative path/],
    ['config.json\0.txt', /NUL byte/],
    ['leak.bin', /through a symbolic link/],
    ['leakdir/secret.bin', /through a symbolic link/],
    ['leakdir/new-file.bin', /through a symbolic link/],
    ['dangling.bin', /cannot be resolved/],
  ];
  for (const [rel, message] of refused) {
    assert.throws(
      () => resolveInside(model, rel),
      (e: unknown) => e instanceof FormatError && message.test(e.message),
      `resolveInside(dir, ${JSON.stringify(rel)}) must be refused with ${message}`,
    );
  }
  assert.throws(() => resolveInside(join(scratch, 'missing-dir'), 'x'), (e: unknown) => e instanceof FormatError && /no such directory/.test((e as Error).message));
});

test('resolveInside works when the model directory itself is reached through a symlink', () => {
  const link = join(scratch, 'model-link');
  symlinkSync(model, link);
  assert.equal(resolveInside(link, 'shards/a.bin'), join(realpathSync(model), 'shards', 'a.bin'));
  assert.throws(() => resolveInside(link, 'leak.bin'), FormatError);
});
