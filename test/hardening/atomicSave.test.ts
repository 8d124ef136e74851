/**
 * Crash safety of saveNetworkFile: a child process saves a 1M-parameter (5 MB of JSON) model over and over and is
 * SIGKILLed in the middle of a save; the file on disk must always be a complete, loadable earlier
 * (or the just-finished) version, never a torn one.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, test } from 'node:test';
import { buildNetwork } from '../../src/grid/spec.js';
import { writeFileAtomic } from '../../src/io/atomicWrite.js';
import { loadNetworkFile } from '../../src/io/modelFiles.js';

const WIDTH = 1000;
const SEED = 5;
const dir = mkdtempSync(join(tmpdir(), 'loom-atomic-'));
const modelPath = join(dir, 'model.json');
after(() => rmSync(dir, { recursive: true, force: true }));

/** Saves version v = 1, 2, ... (weight 0 holds v, the rest are the seeded initial values), announcing each save on stdout. */
const CHILD = `
import { writeSync } from 'node:fs';
const [specUrl, filesUrl, path, width, seed] = process.argv.slice(1);
const { buildNetwork } = await import(specUrl);
const { saveNetworkFile } = await import(filesUrl);
const net = buildNetwork({ layers: [{ type: 'Dense', input_height: Number(width), output_height: Number(width) }] }, { seed: Number(seed) });
const weights = net.layers()[0].weights;
for (let v = 1; ; v++) {
  weights.master[0] = v;
  weights.markMasterChanged();
  writeSync(1, 'begin ' + v + '\\n');
  saveNetworkFile(net, path);
  writeSync(1, 'done ' + v + '\\n');
}
`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function tmpFiles(): string[] {
  return readdirSync(dir).filter((n) => n !== 'model.json');
}

interface Attempt {
  lastDone: number;
  lastBegun: number;
  /** A temporary file existed when the kill was sent: the kill landed inside the write. */
  midWrite: boolean;
}

/**
 * Starts a saver and kills it during the first save after `warmSaves` complete ones: as soon as its
 * temporary file appears (mode "write"), or after `delayMs` (mode "delay": serializing, writing or renaming).
 */
async function killDuringSave(mode: 'write' | 'delay', delayMs: number, warmSaves: number): Promise<Attempt> {
  const specUrl = new URL('../../src/grid/spec.js', import.meta.url).href;
  const filesUrl = new URL('../../src/io/modelFiles.js', import.meta.url).href;
  const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD, specUrl, filesUrl, modelPath, String(WIDTH), String(SEED)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
  const state: Attempt = { lastDone: 0, lastBegun: 0, midWrite: false };
  let killing: Promise<void> | undefined;
  const before = new Set(tmpFiles());
  for await (const line of createInterface({ input: child.stdout })) {
    const [what, n] = line.split(' ');
    if (what === 'done') state.lastDone = Number(n);
    if (what !== 'begin') continue;
    state.lastBegun = Number(n);
    if (state.lastDone < warmSaves || killing) continue;
    killing = (async () => {
      if (mode === 'write') {
        const deadline = performance.now() + 20_000;
        while (!tmpFiles().some((f) => !before.has(f)) && performance.now() < deadline) await sleep(0);
      } else {
        await sleep(delayMs);
      }
      state.midWrite = tmpFiles().some((f) => !before.has(f));
      child.kill('SIGKILL');
    })();
  }
  await killing;
  assert.equal(await exited, 'SIGKILL');
  return state;
}

test('a save killed by SIGKILL leaves the previous model file intact and loadable', { timeout: 240_000 }, async (t) => {
  const reference = buildNetwork({ layers: [{ type: 'Dense', input_height: WIDTH, output_height: WIDTH }] }, { seed: SEED }).layers()[0].weights!.master;
  const attempts: (Attempt & { mode: string })[] = [];
  const plan: ['write' | 'delay', number][] = [
    ['write', 0],
    ['delay', 100],
    ['write', 0],
    ['delay', 400],
  ];
  for (const [mode, delay] of plan) {
    const a = await killDuringSave(mode, delay, 1);
    attempts.push({ ...a, mode: `${mode}${mode === 'delay' ? ` ${delay} ms` : ''}` });
    const net = loadNetworkFile(modelPath);
    const master = net.layers()[0].weights!.master;
    const version = master[0];
    assert.ok(
      version >= a.lastDone && version <= a.lastBegun,
      `after a kill in save ${a.lastBegun} (last finished ${a.lastDone}) the file holds version ${version}`,
    );
    assert.equal(master.length, reference.length);
    for (let i = 1; i < master.length; i++) {
      if (master[i] !== reference[i]) assert.fail(`parameter ${i} is ${master[i]}, expected ${reference[i]}: the file is torn`);
    }
  }
  const leftovers = tmpFiles();
  for (const name of leftovers) assert.match(name, /^\.model\.json\.\d+\.[0-9a-z]+\.tmp$/, `unexpected file ${name} next to the model`);
  const midWrite = attempts.filter((a) => a.midWrite).length;
  t.diagnostic(`kills: ${attempts.map((a) => `${a.mode} → ${a.midWrite ? 'mid-write' : 'outside the write'}`).join('; ')}`);
  t.diagnostic(`leftover temporary files (not cleaned up by a later save): ${leftovers.length}`);
  assert.ok(midWrite >= 1, 'no kill landed while the temporary file was being written; the test did not exercise a torn write');
});

test('a save removes temporary files that a dead writer left for the same target, and no others', () => {
  const sub = mkdtempSync(join(dir, 'stale-'));
  const target = join(sub, 'm.json');
  const dead = '.m.json.999999999.abc.tmp';
  const live = `.m.json.${process.pid}.abc.tmp`;
  const other = '.other.json.999999999.abc.tmp';
  for (const name of [dead, live, other]) writeFileSync(join(sub, name), 'partial');
  writeFileAtomic(target, '{}');
  assert.deepEqual(readdirSync(sub).sort(), [live, other, 'm.json'].sort());
});
