import { spawnSync } from 'node:child_process';
import { raiseAllocatorThresholds } from './allocator.js';
import { HOST_PHASES } from './phases.js';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Tensor } from '../src/core/tensor.js';
import { backwardNetwork, forwardNetwork } from '../src/engine/run.js';
import { buildNetwork } from '../src/grid/spec.js';
import { computeLoss } from '../src/train/losses.js';
import { AdamW } from '../src/train/optimizers.js';
import { parameterGradients } from '../src/train/train.js';
import { kernelBackend, setThreads } from '../src/kernels/backend.js';

/**
 * `npm run bench`: Loom-TS timings next to peers measured in the same run on the same machine.
 * Prints a table to stderr and one JSON document to stdout.
 */
raiseAllocatorThresholds();
const PYTHON = '/usr/bin/python3';
const PEERS = fileURLToPath(new URL('../../bench/peers/', import.meta.url));
const budgetSeconds = Number(process.env.BENCH_SECONDS ?? 2);

// `npm run bench -- adaptation`: the Layer × Training Mode study (bench/adaptation.ts) instead of the default suite.
if (process.argv[2] === 'adaptation') {
  const r = spawnSync(process.execPath, [fileURLToPath(new URL('./adaptation.js', import.meta.url))], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}
// `npm run bench -- browser`: the kernels and the MLP step in headless Chromium alone (bench/browser.ts).
if (process.argv[2] === 'browser') {
  const r = spawnSync(process.execPath, [fileURLToPath(new URL('./browser.js', import.meta.url))], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}
// `npm run bench -- llm`: LLM decode tokens/s per dtype next to PyTorch (bench/llm.ts).
if (process.argv[2] === 'llm') {
  const r = spawnSync(process.execPath, [fileURLToPath(new URL('./llm.js', import.meta.url))], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}

function median(samples: number[]): number {
  const s = [...samples].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/**
 * Milliseconds per call of `fn`, timed in groups of `inner` calls for about `budgetSeconds`: each sample is one
 * group's per-call average; `ms` is the median sample and `best` the best (minimum) sample, i.e. the fastest
 * group's per-call average. The best is kept because this VM's host alternates fast and slow phases.
 */
function time(fn: () => void, inner = 5): { ms: number; best: number } {
  // Warm-up as long as the peers' (20 steps), so the JIT has settled before the timed samples.
  for (let i = 0; i < 20; i++) fn();
  const samples: number[] = [];
  const deadline = performance.now() + budgetSeconds * 1000;
  while (performance.now() < deadline || samples.length < 5) {
    const t0 = performance.now();
    for (let i = 0; i < inner; i++) fn();
    samples.push((performance.now() - t0) / inner);
  }
  return { ms: median(samples), best: Math.min(...samples) };
}

function mlpTrainStep(): { ms: number; best: number } {
  const net = buildNetwork({
    depth: 1, rows: 1, cols: 3, layers_per_cell: 1,
    layers: [
      { z: 0, y: 0, x: 0, l: 0, type: 'Dense', activation: 'ReLU', input_height: 784, output_height: 256, use_bias: true },
      { z: 0, y: 0, x: 1, l: 0, type: 'Dense', activation: 'ReLU', input_height: 256, output_height: 128, use_bias: true },
      { z: 0, y: 0, x: 2, l: 0, type: 'Dense', activation: 'Linear', input_height: 128, output_height: 10, use_bias: true },
    ],
  });
  const x = new Tensor(Float32Array.from({ length: 64 * 784 }, (_, i) => ((i * 7919) % 1000) / 1000), [64, 784]);
  const labels = Int32Array.from({ length: 64 }, (_, i) => i % 10);
  const opt = new AdamW({ lr: 1e-3 });
  const step = () => {
    const { output, trace } = forwardNetwork(net, x, { keepTrace: true });
    const loss = computeLoss('cross_entropy', output, { labels });
    const { gradients } = backwardNetwork(net, trace!, loss.grad, { inputGradient: false, gradientBuffers: opt.gradientBuffers });
    opt.step(parameterGradients(gradients));
    for (const { layer } of gradients) layer.weights!.markMasterChanged();
  };
  return time(step);
}

function torchPeer(threads: number): Record<string, unknown> {
  if (!existsSync(PYTHON)) return { peer: 'pytorch', error: `${PYTHON} not found` };
  const r = spawnSync(PYTHON, [`${PEERS}torch_mlp.py`, String(threads), String(budgetSeconds)], { encoding: 'utf8' });
  if (r.status !== 0) return { peer: 'pytorch', error: (r.stderr || 'failed').trim().split('\n').pop() };
  return JSON.parse(r.stdout);
}

/** TensorFlow.js (wasm backend, 1 thread) peer: bench/peers/tfjs_mlp.mjs, spawned like the PyTorch peer. */
function tfjsPeer(): Record<string, unknown> {
  const r = spawnSync(process.execPath, [`${PEERS}tfjs_mlp.mjs`, String(budgetSeconds)], { encoding: 'utf8', timeout: (60 + 10 * budgetSeconds) * 1000 });
  if (r.status !== 0) return { peer: 'tfjs', error: (r.stderr || r.error?.message || 'failed').trim().split('\n').pop() };
  try {
    return JSON.parse(r.stdout.trim().split('\n').pop()!);
  } catch {
    return { peer: 'tfjs', error: 'no JSON on stdout' };
  }
}

const mlp = mlpTrainStep();
// The same step with the kernel thread pool (products of ≥ 2^20 multiply-adds split over 2 threads).
const mlp2 = (await setThreads(2)) === 2 ? mlpTrainStep() : null;
await setThreads(1);
const results: Record<string, unknown> = {
  machine: { node: process.version, platform: `${process.platform}-${process.arch}` },
  mlp_train_step_784_256_128_10_batch64: {
    loom_ts: { engine: `${kernelBackend()} kernels, 1 thread`, ms_per_step: mlp.ms, samples_per_s: 64 / (mlp.ms / 1000), best_ms_per_step: mlp.best, best_samples_per_s: 64 / (mlp.best / 1000) },
    loom_ts_2_threads: mlp2
      ? { engine: `${kernelBackend()} kernels, 2 threads`, ms_per_step: mlp2.ms, samples_per_s: 64 / (mlp2.ms / 1000), best_ms_per_step: mlp2.best, best_samples_per_s: 64 / (mlp2.best / 1000) }
      : null,
    peers: [torchPeer(1), torchPeer(2), tfjsPeer()],
    timing: 'ms_per_step: median sample; best_ms_per_step: best sample; a sample is one group of steps (5 for loom-ts, 10 for the peers) as its per-step average',
  },
};
const peers = (results.mlp_train_step_784_256_128_10_batch64 as { peers: Record<string, unknown>[] }).peers;
const rows = [['benchmark', 'engine', 'med ms', 'samples/s', 'ratio vs loom-ts', 'best ms', 'samples/s', 'best ratio']];
const faster = (loom: number, other: number) => (Number.isFinite(loom / other) ? (loom / other).toFixed(2) + '× faster' : '–');
const bestOf = (p: Record<string, unknown>) => (typeof p.best_ms_per_step === 'number' ? p.best_ms_per_step : NaN);
const fix = (v: number, d: number) => (Number.isFinite(v) ? v.toFixed(d) : '–');
/** One row: median columns (ratio from medians, as before), then the best columns (ratio from bests). */
const row = (engine: string, ms: number, best: number) => [
  'MLP train step b64', engine, fix(ms, 2), fix(64000 / ms, 0), faster(mlp.ms, ms), fix(best, 2), fix(64000 / best, 0), faster(mlp.best, best),
];
rows.push(['MLP train step b64', `loom-ts (${kernelBackend()}, 1T)`, mlp.ms.toFixed(2), (64000 / mlp.ms).toFixed(0), '1.00', mlp.best.toFixed(2), (64000 / mlp.best).toFixed(0), '1.00']);
if (mlp2) rows.push(row(`loom-ts (${kernelBackend()}, 2T)`, mlp2.ms, mlp2.best));
for (const p of peers) {
  if (p.peer === 'tfjs') {
    if (typeof p.ms_per_step === 'number') rows.push(row(`tfjs ${p.version} (${p.backend}, ${p.threads}T)`, p.ms_per_step, bestOf(p)));
    else rows.push(['MLP train step b64', 'tfjs', '-', '-', String(p.error), '-', '-', '-']);
  } else if (typeof p.ms_per_step === 'number') rows.push(row(`pytorch ${p.version} (${p.threads}T, ${p.blas})`, p.ms_per_step, bestOf(p)));
  else rows.push(['MLP train step b64', 'pytorch', '-', '-', String(p.error), '-', '-', '-']);
}
// GEMM/gemv against PyTorch and TensorFlow.js: bench/kernels.ts, run as its own process.
const kernels = spawnSync(process.execPath, [fileURLToPath(new URL('./kernels.js', import.meta.url))], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
if (kernels.status === 0) results.kernels = JSON.parse(kernels.stdout);
else results.kernels = { error: `bench/kernels exited with ${kernels.status}` };
// Conv2d pair, LSTM and int8-vs-float32 Dense against PyTorch and TensorFlow.js: bench/layers.ts, its own process.
const layerBench = spawnSync(process.execPath, [fileURLToPath(new URL('./layers.js', import.meta.url))], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
if (layerBench.status === 0) results.layers = JSON.parse(layerBench.stdout);
else results.layers = { error: `bench/layers exited with ${layerBench.status}` };
// The same kernels and MLP step in headless Chromium: bench/browser.ts, its own process.
const browserBench = spawnSync(process.execPath, [fileURLToPath(new URL('./browser.js', import.meta.url))], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
if (browserBench.status === 0) results.browser = JSON.parse(browserBench.stdout);
else results.browser = { error: `bench/browser exited with ${browserBench.status}` };
const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
process.stderr.write(rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c])).join('  ')).join('\n') + '\n');
process.stderr.write(
  `med = median sample, best = fastest sample; a sample is one group of steps (5 for loom-ts, 10 for the peers) as its per-step average; ${HOST_PHASES}. ` +
    'ratio vs loom-ts: from medians; best ratio: from bests (loom-ts 1T ms / engine ms)\n',
);
results.goals = goals();
for (const g of results.goals as Goal[]) {
  process.stderr.write(`goal ${g.goal}: median ${fix(g.median, 2)}, best ${fix(g.best, 2)} ${g.unit} → ${g.met_by_best ? 'met' : 'NOT met'} (best)${g.met_by_median ? ', met by the median too' : ''}\n`);
}
const peak = (results.kernels as { machine?: { simd128_mul_add_peak?: { gflops: number; best_gflops: number } | null } }).machine?.simd128_mul_add_peak;
if (peak) {
  // The goals' figures were measured on a core whose SIMD128 mul+add peak is 59–60 GFLOP/s (cpu-anchors.md).
  results.goals_context = { simd128_peak_gflops_here: peak, simd128_peak_gflops_where_goals_were_set: 59.5 };
  process.stderr.write(
    `goal context: this core's SIMD128 mul+add peak in this run is ${fix(peak.gflops, 1)} GFLOP/s (best ${fix(peak.best_gflops, 1)}); ` +
      'the goals were set from measurements on a core with a 59–60 GFLOP/s peak (../shared/research/cpu-anchors.md)\n',
  );
}
process.stdout.write(JSON.stringify(results, null, 2) + '\n');

interface Goal {
  goal: string;
  unit: string;
  median: number;
  best: number;
  met_by_median: boolean;
  met_by_best: boolean;
}

/** Issue 6's speed goals for this machine kind, read off the results above (NaN where a part failed). */
function goals(): Goal[] {
  type Case = { case: string; ms: number; best_ms?: number; gflops?: number; best_gflops?: number };
  const engines = (key: 'kernels' | 'layers') => ((results[key] as { engines?: { engine: string; cases?: Case[] }[] }).engines ?? []);
  const find = (key: 'kernels' | 'layers', engine: string, label: string) => engines(key).find((e) => e.engine === engine)?.cases?.find((c) => c.case === label);
  const goal = (name: string, unit: string, median: number, best: number, ok: (v: number) => boolean): Goal => ({ goal: name, unit, median, best, met_by_median: ok(median), met_by_best: ok(best) });
  const sgemm = find('kernels', 'loom-wasm kernel', 'sgemm 1024³');
  const sgemm2 = find('kernels', 'loom-wasm 2T', 'sgemm 1024³');
  const sgemm1 = find('kernels', 'loom-wasm', 'sgemm 1024³');
  const gemv = find('kernels', 'loom-wasm panels', 'gemv 4096²');
  const conv = find('layers', 'loom-ts', 'conv2d pair fwd');
  const convTorch = find('layers', 'pytorch 1T', 'conv2d pair fwd');
  const i8 = find('layers', 'loom-ts', 'dense 1024² int8 b1');
  const f32 = find('layers', 'loom-ts', 'dense 1024² f32 b1');
  const n = (v: number | undefined) => v ?? NaN;
  const page = (label: string) => (results.browser as { cases?: Case[] }).cases?.find((c) => c.case === label);
  const [kernelPage, onePage, twoPage, mlpPage] = ['sgemm 1024³ kernel 1T', 'sgemm 1024³ 1T', 'sgemm 1024³ 2T', 'MLP 784-256-128-10 train step b64 1T'].map(page);
  const inChromium = kernelPage
    ? [
        goal('in Chromium: sgemm 1024³ 1 thread ≥ 45 GFLOP/s (kernel on staged operands)', 'GFLOP/s', n(kernelPage.gflops), n(kernelPage.best_gflops), (v) => v >= 45),
        goal('in Chromium: sgemm 1024³ 2 threads ≥ 1.8× one (same calls, copies included)', '×', n(twoPage?.gflops) / n(onePage?.gflops), n(twoPage?.best_gflops) / n(onePage?.best_gflops), (v) => v >= 1.8),
        goal('in Chromium: MLP 784-256-128-10 train step b64 ≤ 2 ms, 1 thread', 'ms', n(mlpPage?.ms), n(mlpPage?.best_ms), (v) => v <= 2),
      ]
    : [];
  // gemv moves 4 bytes per multiply-add: GB/s = 2 · GFLOP/s.
  return [
    goal('sgemm 1024³ 1 thread ≥ 45 GFLOP/s (kernel on staged operands)', 'GFLOP/s', n(sgemm?.gflops), n(sgemm?.best_gflops), (v) => v >= 45),
    goal('sgemm 1024³ 2 threads ≥ 1.8× one (same calls, copies included)', '×', n(sgemm2?.gflops) / n(sgemm1?.gflops), n(sgemm2?.best_gflops) / n(sgemm1?.best_gflops), (v) => v >= 1.8),
    goal('MLP 784-256-128-10 train step b64 ≤ 2 ms, 1 thread', 'ms', mlp.ms, mlp.best, (v) => v <= 2),
    goal('Conv2d pair forward ≤ 6.2 ms (2× the anchor PyTorch 3.1 ms)', 'ms', n(conv?.ms), n(conv?.best_ms), (v) => v <= 6.2),
    goal('Conv2d pair forward ≤ 2× PyTorch 1 thread in the same run, loom/pytorch', '×', n(conv?.ms) / n(convTorch?.ms), n(conv?.best_ms) / n(convTorch?.best_ms), (v) => v <= 2),
    goal('int8 Dense 1024² faster than float32 (batch 1), int8/float32', '×', n(i8?.ms) / n(f32?.ms), n(i8?.best_ms) / n(f32?.best_ms), (v) => v < 1),
    goal('gemv 4096² ≥ 20 GB/s (resident row panels, copies of x and y included)', 'GB/s', 2 * n(gemv?.gflops), 2 * n(gemv?.best_gflops), (v) => v >= 20),
    ...inChromium,
  ];
}
