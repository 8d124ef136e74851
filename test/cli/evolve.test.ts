import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { cloneNetwork } from '../../src/evolve/clone.js';
import { xorTask } from '../../src/evolve/tasks.js';
import { saveNetworkFile } from '../../src/io/modelFiles.js';
import { loadNetworkFile } from '../../src/io/modelFiles.js';
import { buildNetwork } from '../../src/grid/spec.js';
import { ROOT } from '../helpers.js';

const CLI = join(ROOT, 'dist/src/cli/main.js');

function loom(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('loom evolve solves XOR with per-generation progress, saves the best network, and repeats for the same seed', () => {
  const dir = mkdtempSync(join(tmpdir(), 'loom-evolve-'));
  const spec = join(dir, 'xor.json');
  writeFileSync(spec, JSON.stringify(xorTask.defaultSpec()));
  const out = join(dir, 'best.json');
  const r = loom('evolve', spec, '--task', 'xor', '--population', '40', '--generations', '80', '--seed', '3', '--out', out);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.match(lines[0], /^gen +0 {2}best \d/);
  const solved = /solved xor at generation (\d+)/.exec(r.stdout);
  assert.ok(solved, r.stdout);
  assert.ok(xorTask.fitness(loadNetworkFile(out)) >= 4, 'the saved network solves XOR');
  const again = loom('evolve', spec, '--task', 'xor', '--population', '40', '--generations', '80', '--seed', '3', '--json');
  const summary = JSON.parse(again.stdout);
  assert.equal(summary.solvedAtGeneration, Number(solved[1]));
  assert.equal(summary.history.length, Number(solved[1]) + 1);
});

test('loom evolve refuses bad flags and a spec that does not fit the task, in one line', () => {
  const dir = mkdtempSync(join(tmpdir(), 'loom-evolve-'));
  const spec = join(dir, 'wrong.json');
  writeFileSync(spec, JSON.stringify({ layers: [{ type: 'Dense', input_height: 3, output_height: 1 }] }));
  for (const [args, pattern, code] of [
    [['evolve', spec, '--task', 'xor'], /loom: .*wrong\.json: the network must take 2 inputs for task xor/, 1],
    [['evolve', '--task', 'chess'], /--task: expected one of xor, cartpole, spirals, got "chess"/, 2],
    [['evolve', '--task', 'xor', '--population', '1'], /--population: expected an integer of at least 2/, 2],
    [['evolve'], /evolve: missing --task/, 2],
    [['dna', spec], /dna: expected two model files/, 2],
  ] as const) {
    const r = loom(...args);
    assert.equal(r.code, code, r.stderr);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, pattern);
  }
});

test('loom dna prints overlaps and logic shifts (and --json)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'loom-dna-'));
  const net = buildNetwork({
    layers_per_cell: 3,
    layers: [0, 1, 2].map((l) => ({ l, type: 'Dense', activation: 'Tanh', input_height: 5, output_height: 5 })),
  });
  const swapped = cloneNetwork(net);
  const w = swapped.cells[0]!.weights;
  swapped.cells[0]!.weights = swapped.cells[1]!.weights;
  swapped.cells[1]!.weights = w;
  saveNetworkFile(net, join(dir, 'a.json'));
  saveNetworkFile(swapped, join(dir, 'b.json'));
  const same = loom('dna', join(dir, 'a.json'), join(dir, 'a.json'));
  assert.equal(same.code, 0, same.stderr);
  assert.match(same.stdout, /overall overlap: 1\.0000 over 3 shared coordinates/);
  assert.match(same.stdout, /logic shifts: none/);
  const r = loom('dna', join(dir, 'a.json'), join(dir, 'b.json'));
  assert.match(r.stdout, /logic shifts: 2/);
  assert.match(r.stdout, /\(0,0,0,0\) -> \(0,0,0,1\) {2}overlap 1\.0000/);
  const j = JSON.parse(loom('dna', join(dir, 'a.json'), join(dir, 'b.json'), '--json').stdout);
  assert.equal(j.logicShifts.length, 2);
  assert.equal(j.layerOverlaps['0,0,0,2'], 1);
  assert.ok(readFileSync(join(dir, 'a.json'), 'utf8').includes('"weights"'));
});
