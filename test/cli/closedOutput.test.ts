import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { writeSafetensorsFile } from '../../src/io/safetensorsFiles.js';
import { encodeTensor } from '../../src/io/safetensors.js';
import { ROOT } from '../helpers.js';

const CLI = join(ROOT, 'dist/src/cli/main.js');
const MODEL = join(ROOT, 'test/fixtures/llama/llama');
const CLOSED_STDOUT_STATUS = 141;

interface Ended {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the CLI and destroys its stdout pipe as soon as the first output arrives (the reader of
 * `| head -1` going away), or before the command has written anything.
 */
function runClosingStdout(args: string[], when: 'after-first-output' | 'at-start' = 'after-first-output'): Promise<Ended> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    if (when === 'at-start') child.stdout.destroy();
    else {
      child.stdout.once('data', (chunk: Buffer) => {
        stdout += chunk.toString('utf8');
        child.stdout.destroy();
      });
    }
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** Runs the CLI with its stderr pipe closed before it writes anything. */
function runClosingStderr(args: string[]): Promise<Ended> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stderr.destroy();
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr: '' }));
  });
}

function assertQuietStop(r: Ended, what: string): void {
  assert.equal(r.signal, null, `${what}: killed by ${r.signal}`);
  assert.equal(r.code, CLOSED_STDOUT_STATUS, `${what}: exit status (stderr: ${r.stderr})`);
  assert.equal(r.stderr, '', `${what}: nothing on stderr`);
}

test('every kind of command stops quietly with status 141 when its stdout reader goes away', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'loom-closed-'));
  try {
    // ~4000 tensors: `info --json` writes far more than a pipe buffer holds, in one synchronous write.
    const tensors: Record<string, ReturnType<typeof encodeTensor>> = {};
    for (let i = 0; i < 4000; i++) tensors[`block.${i}.weight`] = encodeTensor([i], [1]);
    const big = join(dir, 'big.safetensors');
    writeSafetensorsFile(big, tensors);

    const info = await runClosingStdout(['info', big, '--json']);
    assertQuietStop(info, 'info --json');
    assert.match(info.stdout, /^\{/);
    const started = Date.now();
    const evolve = await runClosingStdout(['evolve', '--task', 'spirals', '--population', '10', '--generations', '100000']);
    assertQuietStop(evolve, 'evolve');
    assert.ok(Date.now() - started < 60_000, 'evolve stopped at the closed pipe instead of running all its generations');
    assert.match(evolve.stdout, /^gen +0 /);
    // Small outputs fit in the pipe buffer before the reader can leave, so these close it before the first write.
    assertQuietStop(await runClosingStdout(['generate', MODEL, '--prompt', 'hello', '--max-tokens', '40'], 'at-start'), 'generate');
    assertQuietStop(await runClosingStdout(['info', MODEL], 'at-start'), 'info on a model folder');
    assertQuietStop(await runClosingStdout(['help'], 'at-start'), 'help');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a closed stderr drops the error line but keeps the exit status; the command still runs without it', async () => {
  const usage = await runClosingStderr(['frobnicate']);
  assert.equal(usage.signal, null);
  assert.equal(usage.code, 2);
  const missing = await runClosingStderr(['run', join(ROOT, 'missing-model.json'), '--input', join(ROOT, 'missing-input.json')]);
  assert.equal(missing.code, 1);
  const ok = await runClosingStderr(['evolve', '--task', 'xor', '--population', '10', '--generations', '3', '--seed', '1']);
  assert.equal(ok.code, 0);
  assert.match(ok.stdout, /^gen +0 /);
});
