import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Tensor } from '../src/core/tensor.js';
import { backwardNetwork, forwardNetwork } from '../src/engine/run.js';
import { buildNetwork } from '../src/grid/spec.js';
import { computeLoss } from '../src/train/losses.js';
import { AdamW, type ParamGrad } from '../src/train/optimizers.js';
import { kernelBackend, setThreads } from '../src/kernels/backend.js';

/**
 * `npm run bench`: Loom-TS timings next to peers measured in the same run on the same machine.
 * Prints a table to stderr and one JSON document to stdout.
 */
const PYTHON = '/usr/bin/python3';
const PEERS = fileURLToPath(new URL('../../bench/peers/', import.meta.url));
const budgetSeconds = Number(process.env.BENCH_SECONDS ?? 2);

// `npm run bench -- adaptation`: the Layer × Training Mode study (bench/adaptation.ts) instead of the default suite.
if (process.argv[2] === 'adaptation') {
  const r = spawnSync(process.execPath, [fileURLToPath(new URL('./adaptation.js', import.meta.url))], { stdio: 'inherit' });
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

/** Median milliseconds per call of `fn`, timed in groups of `inner` calls for about `budgetSeconds`. */
function time(fn: () => void, inner = 5): number {
  for (let i = 0; i < 3; i++) fn();
  const samples: number[] = [];
  const deadline = performance.now() + budgetSeconds * 1000;
  while (performance.now() < deadline || samples.length < 5) {
    const t0 = performance.now();
    for (let i = 0; i < inner; i++) fn();
    samples.push((performance.now() - t0) / inner);
  }
  return median(samples);
}

function mlpTrainStep(): { ms: number } {
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
    const { gradients } = backwardNetwork(net, trace!, loss.grad, { inputGradient: false });
    const params: ParamGrad[] = gradients.map(({ key, layer, grad }) => ({ key, values: layer.weights!.master, grad }));
    opt.step(params);
    for (const { layer } of gradients) layer.weights!.markMasterChanged();
  };
  return { ms: time(step) };
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
    loom_ts: { engine: `${kernelBackend()} kernels, 1 thread`, ms_per_step: mlp.ms, samples_per_s: 64 / (mlp.ms / 1000) },
    loom_ts_2_threads: mlp2 ? { engine: `${kernelBackend()} kernels, 2 threads`, ms_per_step: mlp2.ms, samples_per_s: 64 / (mlp2.ms / 1000) } : null,
    peers: [torchPeer(1), torchPeer(2), tfjsPeer()],
  },
};
const peers = (results.mlp_train_step_784_256_128_10_batch64 as { peers: Record<string, unknown>[] }).peers;
const rows = [['benchmark', 'engine', 'ms', 'samples/s', 'ratio vs loom-ts']];
rows.push(['MLP train step b64', `loom-ts (${kernelBackend()}, 1T)`, mlp.ms.toFixed(2), (64000 / mlp.ms).toFixed(0), '1.00']);
if (mlp2) rows.push(['MLP train step b64', `loom-ts (${kernelBackend()}, 2T)`, mlp2.ms.toFixed(2), (64000 / mlp2.ms).toFixed(0), (mlp.ms / mlp2.ms).toFixed(2) + '× faster']);
for (const p of peers) {
  if (p.peer === 'tfjs') {
    if (typeof p.ms_per_step === 'number') rows.push(['MLP train step b64', `tfjs ${p.version} (${p.backend}, ${p.threads}T)`, p.ms_per_step.toFixed(2), (p.samples_per_s as number).toFixed(0), (mlp.ms / p.ms_per_step).toFixed(2) + '× faster']);
    else rows.push(['MLP train step b64', 'tfjs', '-', '-', String(p.error)]);
  } else if (typeof p.ms_per_step === 'number') rows.push(['MLP train step b64', `pytorch ${p.version} (${p.threads}T, ${p.blas})`, p.ms_per_step.toFixed(2), (p.samples_per_s as number).toFixed(0), (mlp.ms / p.ms_per_step).toFixed(2) + '× faster']);
  else rows.push(['MLP train step b64', 'pytorch', '-', '-', String(p.error)]);
}
// GEMM/gemv against PyTorch and TensorFlow.js: bench/kernels.ts, run as its own process.
const kernels = spawnSync(process.execPath, [fileURLToPath(new URL('./kernels.js', import.meta.url))], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
if (kernels.status === 0) results.kernels = JSON.parse(kernels.stdout);
else results.kernels = { error: `bench/kernels exited with ${kernels.status}` };
// Conv2d pair, LSTM and int8-vs-float32 Dense against PyTorch and TensorFlow.js: bench/layers.ts, its own process.
const layerBench = spawnSync(process.execPath, [fileURLToPath(new URL('./layers.js', import.meta.url))], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
if (layerBench.status === 0) results.layers = JSON.parse(layerBench.stdout);
else results.layers = { error: `bench/layers exited with ${layerBench.status}` };
const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
process.stderr.write(rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c])).join('  ')).join('\n') + '\n');
process.stdout.write(JSON.stringify(results, null, 2) + '\n');
