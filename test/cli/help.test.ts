import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOT } from '../helpers.js';

const CLI = join(ROOT, 'dist/src/cli/main.js');
const loom = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });

test('loom <command> --help prints that command\'s usage and exits 0', () => {
  const train = loom('train', '--help');
  assert.equal(train.status, 0, train.stderr);
  for (const flag of ['--data', '--epochs', '--batch', '--optimizer', '--lr', '--momentum', '--scheduler', '--clip', '--save-optimizer', '--resume', '--plot', '--gpu']) {
    assert.match(train.stdout, new RegExp(`^  ${flag}\\b`, 'm'), flag);
  }
  const evolve = loom('evolve', '-h');
  assert.equal(evolve.status, 0);
  assert.match(evolve.stdout, /^usage: loom evolve \[spec\.json\] --task <name>/);
  assert.match(evolve.stdout, /--population N/);
  const unknown = loom('frobnicate', '--help');
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /unknown command "frobnicate"/);
});
