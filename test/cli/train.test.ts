import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOT } from '../helpers.js';

const CLI = join(ROOT, 'dist/src/cli/main.js');
const dir = mkdtempSync(join(tmpdir(), 'loom-train-cli-'));
/** A spec file of two Dense layers in a row: in → hidden (activation) → out. */
function twoDense(name: string, inputs: number, hidden: number, outputs: number, activation: string): string {
  const path = join(dir, name);
  writeFileSync(
    path,
    JSON.stringify({
      depth: 1, rows: 1, cols: 2, layers_per_cell: 1,
      layers: [
        { z: 0, y: 0, x: 0, l: 0, type: 'Dense', activation, input_height: inputs, output_height: hidden, use_bias: true },
        { z: 0, y: 0, x: 1, l: 0, type: 'Dense', input_height: hidden, output_height: outputs, use_bias: true },
      ],
    }),
  );
  return path;
}
const spec = twoDense('spec.json', 2, 16, 3, 'Tanh');
const csv = join(dir, 'data.csv');
const rows = ['x1,x2,label'];
for (let i = 0; i < 150; i++) {
  const c = i % 3;
  const a = (c * 2 * Math.PI) / 3 + ((i * 37) % 11) / 40;
  rows.push(`${(2 * Math.cos(a)).toFixed(4)},${(2 * Math.sin(a)).toFixed(4)},${c}`);
}
writeFileSync(csv, rows.join('\n') + '\n');

function loom(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('loom train learns from a CSV file, saves atomically and plots the curves', () => {
  const out = join(dir, 'model.json');
  const plot = join(dir, 'curves.svg');
  const r = loom('train', spec, '--data', csv, '--epochs', '8', '--batch', '16', '--lr', '0.02', '--validation', '0.2', '--scheduler', 'cosine', '--out', out, '--plot', plot, '--seed', '3');
  assert.equal(r.code, 0, r.stderr);
  const epochLines = r.stdout.split('\n').filter((l) => l.startsWith('epoch '));
  assert.equal(epochLines.length, 8);
  assert.match(epochLines[0], /^epoch 1  loss [\d.]+  accuracy [\d.]+%  val loss [\d.]+  val accuracy [\d.]+%  lr [\d.e-]+  \d+ samples\/s$/);
  assert.match(r.stdout, /done: 8 epochs, 64 optimizer steps/);
  assert.ok(JSON.parse(readFileSync(out, 'utf8')).layers.length === 2);
  const svg = readFileSync(plot, 'utf8');
  assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.match(svg, /train loss/);
  assert.match(svg, /validation accuracy/);
});

test('--save-optimizer then --resume continues exactly where an uninterrupted run would be', () => {
  const straight = join(dir, 'straight.json');
  const half = join(dir, 'half.json');
  const resumed = join(dir, 'resumed.json');
  const common = ['--data', csv, '--batch', '16', '--optimizer', 'adamw', '--lr', '0.01', '--seed', '4', '--save-optimizer'];
  assert.equal(loom('train', spec, ...common, '--epochs', '4', '--out', straight).code, 0);
  assert.equal(loom('train', spec, ...common, '--epochs', '2', '--out', half).code, 0);
  const r = loom('train', half, ...common, '--epochs', '2', '--resume', '--out', resumed);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^epoch 3 /m);
  assert.equal(readFileSync(resumed, 'utf8'), readFileSync(straight, 'utf8'));
});

test('bad data files and bad flags end with one clear line and a non-zero exit', () => {
  const cases: [string[], RegExp, number][] = [
    [['train', spec], /train: missing --data/, 2],
    [['train', spec, '--data', join(dir, 'nope.csv')], /no such file/, 1],
    [['train', spec, '--data', csv, '--epochs', 'many'], /--epochs: expected a positive integer, got "many"/, 2],
    [['train', spec, '--data', csv, '--optimizer', 'adam'], /--optimizer: expected one of sgd, adamw, rmsprop, got "adam"/, 2],
    [['train', spec, '--data', csv, '--momentum', '0.9', '--optimizer', 'adamw'], /--momentum applies to sgd and rmsprop/, 2],
    [['train', spec, '--data', csv, '--scheduler', 'cosine:warm=3'], /--scheduler cosine: unknown parameter "warm"/, 2],
    [['train', spec, '--data', csv, '--lr=-1'], /--lr: expected a positive number, got "-1"/, 2],
    [['train', spec, '--data', csv, '--lr', '-1'], /--lr' argument is ambiguous \(write a value that starts with '-' as --name=-value\)/, 2],
    [['train', spec, '--data', csv, '--resume'], /--resume: .* holds no optimizer state/, 2],
  ];
  const badCsv = join(dir, 'bad.csv');
  writeFileSync(badCsv, '1,2,0\n3,x,1\n');
  cases.push([['train', spec, '--data', badCsv], /line 2, column 2: expected a number, got "x"/, 1]);
  const badIdx = join(dir, 'train-images-idx3-ubyte');
  writeFileSync(badIdx, Buffer.from([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 28, 0, 0, 0, 28, 1, 2, 3]));
  writeFileSync(join(dir, 'train-labels-idx1-ubyte'), Buffer.from([0, 0, 8, 1, 0, 0, 0, 2, 1, 0]));
  cases.push([['train', spec, '--data', badIdx], /truncated|expected \d+ bytes/, 1]);
  for (const [args, pattern, code] of cases) {
    const r = loom(...args);
    assert.equal(r.code, code, `${args.join(' ')}: exit ${r.code}, stderr ${r.stderr}`);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, `${args.join(' ')}: ${r.stderr}`);
    assert.match(lines[0], pattern);
    assert.match(lines[0], /^loom: /);
  }
  assert.ok(!existsSync(join(dir, 'model-bad.json')));
});

test('--threads 2 trains to the same bytes as one thread (products large enough for the pool)', () => {
  const wide = twoDense('wide.json', 64, 512, 4, 'ReLU');
  const wideCsv = join(dir, 'wide.csv');
  const lines = [Array.from({ length: 64 }, (_, j) => `f${j}`).join(',') + ',label'];
  for (let i = 0; i < 256; i++) lines.push(Array.from({ length: 64 }, (_, j) => (Math.sin(i * 0.37 + j * 1.3) * 2).toFixed(3)).join(',') + `,${i % 4}`);
  writeFileSync(wideCsv, lines.join('\n') + '\n');
  const outs = ['1', '2'].map((t) => {
    const out = join(dir, `wide-${t}.json`);
    const r = loom('train', wide, '--data', wideCsv, '--epochs', '2', '--batch', '64', '--threads', t, '--out', out);
    assert.equal(r.code, 0, r.stderr);
    return readFileSync(out, 'utf8');
  });
  assert.equal(outs[1], outs[0]);
  assert.match(loom('train', wide, '--data', wideCsv, '--threads', '0').stderr, /--threads: expected a positive integer, got "0"/);
});
