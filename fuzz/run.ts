/**
 * `npm run fuzz`: fuzzes every parser in worker threads, with a watchdog that stops a worker whose
 * current input has made no progress for FUZZ_HANG_MS. Environment:
 *   FUZZ_RUNS     inputs per parser (default 100000)
 *   FUZZ_SEED     base seed (default: random, printed); each target derives its own from it
 *   FUZZ_TARGETS  comma-separated target names (default: all available)
 *   FUZZ_JOBS     parallel workers (default: min(2, CPUs))
 *   FUZZ_PATH     replay from one input by fast-check path (with one target, its printed seed, and FUZZ_RUNS=1 for just that input)
 *   FUZZ_HANG_MS  watchdog limit (default 10000; the per-input limit checked inside is 2000 ms)
 *   FUZZ_REPORT   also write the reports as JSON to this file
 *   FUZZ_VERBOSE  also print the slowest input of each parser
 */
import { writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { seedFor, type FuzzReport } from './harness.js';
import { loadTargets } from './targets.js';

const env = process.env;
const runs = Number(env.FUZZ_RUNS ?? 100_000);
const baseSeed = env.FUZZ_SEED !== undefined ? Number(env.FUZZ_SEED) : Math.floor(Math.random() * 2 ** 31);
const jobs = Math.max(1, Number(env.FUZZ_JOBS ?? Math.min(2, availableParallelism())));
const hangMs = Number(env.FUZZ_HANG_MS ?? 10_000);
const replayPath = env.FUZZ_PATH;
if (!Number.isInteger(runs) || runs < 1) throw new Error(`FUZZ_RUNS must be a positive integer, got ${env.FUZZ_RUNS}`);

const { targets, pending } = await loadTargets();
const wanted = env.FUZZ_TARGETS?.split(',').map((s) => s.trim()).filter(Boolean);
const unknown = wanted?.filter((w) => !targets.some((t) => t.name === w) && !pending.some((p) => p.name === w)) ?? [];
if (unknown.length > 0) throw new Error(`unknown FUZZ_TARGETS ${unknown.join(', ')}; targets: ${[...targets, ...pending].map((t) => t.name).join(', ')}`);
const selected = targets.filter((t) => !wanted || wanted.includes(t.name));

console.log(`fuzzing ${selected.length} parsers × ${runs} inputs, base seed ${baseSeed}, ${jobs} workers`);
for (const p of pending) if (!wanted || wanted.includes(p.name)) console.log(`  ${p.name}: pending — ${p.pending}`);

/**
 * One worker per target. With FUZZ_PATH the given seed is the target's own (as printed by a failure),
 * so it is used as is rather than derived.
 */
function fuzzInWorker(name: string): Promise<FuzzReport | { target: string; failure: string; seconds: number; runs: number }> {
  const seed = replayPath !== undefined ? baseSeed : seedFor(baseSeed, name);
  const progress = new SharedArrayBuffer(4);
  const counter = new Int32Array(progress);
  const start = performance.now();
  const worker = new Worker(new URL('./worker.js', import.meta.url), {
    workerData: { target: name, runs, seed, path: replayPath, progress },
    // The main thread's V8 stack is about 1 MB; match it so recursion limits are those users hit.
    resourceLimits: { stackSizeMb: 1, maxOldGenerationSizeMb: 4096 },
  });
  return new Promise((resolve) => {
    let last = -1;
    let lastChange = performance.now();
    let lastPrint = performance.now();
    let settled = false;
    const finish = (r: FuzzReport | { target: string; failure: string; seconds: number; runs: number }): void => {
      if (settled) return;
      settled = true;
      clearInterval(timer);
      resolve(r);
    };
    const failure = (what: string) => ({ target: name, failure: what, seconds: (performance.now() - start) / 1000, runs: Atomics.load(counter, 0) });
    const timer = setInterval(() => {
      const now = performance.now();
      const i = Atomics.load(counter, 0);
      if (i !== last) {
        last = i;
        lastChange = now;
      } else if (now - lastChange > hangMs) {
        void worker.terminate();
        finish(failure(`hang: input ${i} made no progress for ${hangMs} ms (replay: FUZZ_TARGETS=${name} FUZZ_SEED=${seed} FUZZ_PATH=${i} FUZZ_RUNS=1)`));
      }
      if (now - lastPrint > 15_000) {
        lastPrint = now;
        console.log(`  ${name}: ${i + 1}/${runs} after ${((now - start) / 1000).toFixed(0)} s`);
      }
    }, 250);
    worker.on('message', (r: FuzzReport) => finish(r));
    worker.on('error', (e) => finish(failure(`worker died: ${e.name}: ${e.message} near input ${Atomics.load(counter, 0)} (seed ${seed})`)));
    worker.on('exit', (code) => finish(failure(`worker exited with code ${code} before reporting (seed ${seed})`)));
  });
}

const queue = [...selected];
const reports: Awaited<ReturnType<typeof fuzzInWorker>>[] = [];
const started = performance.now();
await Promise.all(
  Array.from({ length: Math.min(jobs, queue.length) }, async () => {
    for (let t = queue.shift(); t; t = queue.shift()) {
      const r = await fuzzInWorker(t.name);
      reports.push(r);
      const outcomes = 'outcomes' in r ? Object.entries(r.outcomes).map(([k, v]) => `${k} ${v}`).join(', ') : '';
      const rate = r.seconds > 0 ? Math.round(r.runs / r.seconds) : 0;
      console.log(`${r.failure ? 'FAIL' : 'ok  '} ${r.target}: ${r.runs} inputs in ${r.seconds.toFixed(1)} s (${rate}/s)${outcomes ? `; ${outcomes}` : ''}`);
      if ('slowestMs' in r) {
        console.log(`     slowest input ${r.slowestMs.toFixed(0)} ms; multi-line error messages: ${r.multilineMessages}`);
        if (env.FUZZ_VERBOSE) console.log(`     slowest: ${r.slowestInput}`);
      }
      if (r.failure) console.log(`     ${r.failure}`);
    }
  }),
);
const failed = reports.filter((r) => r.failure);
console.log(`${failed.length === 0 ? 'all parsers held' : `${failed.length} parser(s) failed`} in ${((performance.now() - started) / 1000).toFixed(1)} s wall`);
if (env.FUZZ_REPORT) writeFileSync(env.FUZZ_REPORT, JSON.stringify({ baseSeed, runs, reports, pending }, null, 2));
process.exitCode = failed.length === 0 ? 0 : 1;
