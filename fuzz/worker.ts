/** Worker side of `npm run fuzz`: fuzzes one target and reports progress through shared memory. */
import { parentPort, workerData } from 'node:worker_threads';
import { runTarget, type FuzzOptions } from './harness.js';
import { loadTargets, removeScratch } from './targets.js';

interface Job {
  target: string;
  runs: number;
  seed: number;
  path?: string;
  /** progress[0]: index of the input being parsed now. */
  progress: SharedArrayBuffer;
}

const job = workerData as Job;
const progress = new Int32Array(job.progress);
const { targets } = await loadTargets();
const target = targets.find((t) => t.name === job.target);
if (!target) throw new Error(`no fuzz target ${job.target}`);
const options: FuzzOptions = { runs: job.runs, seed: job.seed, path: job.path, onInput: (i) => Atomics.store(progress, 0, i) };
try {
  parentPort!.postMessage(runTarget(target, options));
} finally {
  removeScratch();
}
