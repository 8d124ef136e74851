import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOT } from '../helpers.js';

const CLI = join(ROOT, 'dist/src/cli/main.js');

function loom(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function denseSpec(): string {
  const dir = mkdtempSync(join(tmpdir(), 'loom-live-'));
  const path = join(dir, 'spec.json');
  const layer = (x: number, nIn: number, nOut: number, activation: string) => ({ z: 0, y: 0, x, l: 0, type: 'Dense', activation, input_height: nIn, output_height: nOut, use_bias: true });
  writeFileSync(path, JSON.stringify({ depth: 1, rows: 1, cols: 3, layers_per_cell: 1, layers: [layer(0, 8, 32, 'LeakyReLU'), layer(1, 32, 16, 'LeakyReLU'), layer(2, 16, 4, 'Sigmoid')] }));
  return path;
}

const withoutTiming = (s: string) => s.replace(/ · [\d.]+ s$/m, '');

test('loom live streams accuracy per window, marks the task switches and ends with a summary (plain lines off a TTY)', () => {
  const spec = denseSpec();
  const r = loom('live', spec, '--task', 'chase-avoid', '--steps', '600', '--window', '100', '--seed', '3');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  assert.doesNotMatch(r.stdout, /\x1b|\r/, 'no terminal escapes when stdout is not a TTY');
  const lines = r.stdout.trim().split('\n');
  assert.match(lines[0], /^loom live: .* task chase-avoid .* mode StepTweenChain · 600 steps · window 100/);
  const windows = lines.filter((l) => l.startsWith('window '));
  assert.equal(windows.length, 6);
  for (const w of windows) assert.match(w, /accuracy +\d+\.\d%  available +\d+\.\d%  [#.]{20}$/);
  assert.deepEqual(
    lines.filter((l) => l.startsWith('-- task switch')),
    ['-- task switch at step 200: 0 (chase) → 1 (avoid)', '-- task switch at step 400: 1 (avoid) → 0 (chase)'],
  );
  assert.ok(lines.indexOf('-- task switch at step 200: 0 (chase) → 1 (avoid)') === lines.findIndex((l) => l.includes('steps    200-')) - 1, 'the switch is marked before its window');
  assert.match(r.stdout, /summary: mode StepTweenChain · 600 steps · accuracy \d+\.\d% · .* availability 99\.\d%/);
  assert.equal(lines.filter((l) => /^switch at step (200|400) .*accuracy before/.test(l)).length, 2);
  const again = loom('live', spec, '--task', 'chase-avoid', '--steps', '600', '--window', '100', '--seed', '3');
  assert.equal(withoutTiming(again.stdout), withoutTiming(r.stdout), 'same seed, same stream of lines');
});

test('loom live runs every training mode; a blocking mode reports its lower availability', () => {
  const spec = denseSpec();
  for (const mode of ['NormalBP', 'StepBP', 'Tween', 'TweenChain', 'steptweenchain']) {
    const r = loom('live', spec, '--task', 'alternate', '--mode', mode, '--steps', '200', '--window', '50', '--lr', '0.05');
    assert.equal(r.code, 0, `${mode}: ${r.stderr}`);
    const availability = Number(/availability ([\d.]+)%/.exec(r.stdout)![1]);
    if (mode === 'NormalBP') assert.ok(availability < 100 && availability > 0, `NormalBP availability ${availability}`);
    else if (mode === 'StepBP' || mode === 'steptweenchain') assert.ok(availability > 98, `${mode} availability ${availability}`);
    assert.equal(r.stdout.split('\n').filter((l) => l.startsWith('-- task switch')).length, 3, mode);
  }
});

test('loom live: an unknown task lists the built-in names; bad flags and a width mismatch are one-line errors', () => {
  const spec = denseSpec();
  const unknown = loom('live', spec, '--task', 'juggle');
  assert.equal(unknown.code, 2);
  assert.equal(unknown.stderr.trim().split('\n').length, 1);
  assert.match(unknown.stderr, /--task: unknown task "juggle" \(tasks: chase-avoid, chase-avoid-hidden, alternate, chase\)/);

  const missing = loom('live', spec);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /missing --task <name> \(one of chase-avoid, /);

  const mode = loom('live', spec, '--task', 'chase', '--mode', 'Backprop');
  assert.equal(mode.code, 2);
  assert.match(mode.stderr, /--mode: expected one of NormalBP, StepBP, Tween, TweenChain, StepTweenChain/);

  assert.match(loom('live', spec, '--task', 'chase', '--steps', '0').stderr, /--steps: expected a positive integer, got "0"/);

  const width = loom('live', spec, '--task', 'chase', '--input-size', '16', '--steps', '10');
  assert.equal(width.code, 1);
  assert.equal(width.stderr.trim().split('\n').length, 1);
  assert.match(width.stderr, /expected 8 values per sample.*set --input-size to the network's input width/);
});
