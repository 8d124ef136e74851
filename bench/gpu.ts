import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Rng } from '../src/core/rng.js';
import type { Dataset } from '../src/data/dataset.js';
import { buildNetwork } from '../src/grid/spec.js';
import { GpuUnavailableError, type GpuArray, type GpuContext } from '../src/gpu/context.js';
import { gemm, TILE_LARGE, TILE_MEDIUM, tileStorage, type GemmTile } from '../src/gpu/kernels/gemm.js';
import { createNodeGpuContext } from '../src/gpu/node.js';
import { trainGpu } from '../src/gpu/train.js';
import { llamaNetworkSpec } from '../src/llm/llama.js';
import { SMOLLM2_135M, torchDecodePeer } from './gpuDecode.js';
import { gpuLlamaBench } from './gpuLlama.js';
import { AdamW } from '../src/train/optimizers.js';

const PEERS = fileURLToPath(new URL('../../bench/peers/', import.meta.url));
const PYTHON = process.env.LOOM_PYTHON ?? 'python3';

const TILES: Record<string, GemmTile | undefined> = {
  '128x128 bk8 8x8': { bm: 128, bn: 128, bk: 8, tm: 8, tn: 8 },
  '128x128 bk16 8x8': { bm: 128, bn: 128, bk: 16, tm: 8, tn: 8 },
  '128x64 bk16 8x4': { bm: 128, bn: 64, bk: 16, tm: 8, tn: 4 },
  '64x64 bk16 4x4': TILE_MEDIUM,
  '128x64 bk8 8x4': { bm: 128, bn: 64, bk: 8, tm: 8, tn: 4 },
  '64x128 bk16 4x8 (before the staged kernels)': TILE_LARGE,
  '128x64 bk32 8x4': { bm: 128, bn: 64, bk: 32, tm: 8, tn: 4 },
  '64x64 bk32 4x4': { bm: 64, bn: 64, bk: 32, tm: 4, tn: 4 },
  '128x32 bk16 8x4': { bm: 128, bn: 32, bk: 16, tm: 8, tn: 4 },
  '64x128 bk16 4x8 prefetch': { ...TILE_LARGE, staging: 'prefetch' },
  '64x128 bk16 4x8 double': { ...TILE_LARGE, staging: 'double' },
  '64x128 bk8 4x8 double': { ...TILE_LARGE, bk: 8, staging: 'double' },
  '128x128 bk8 8x8 prefetch': { bm: 128, bn: 128, bk: 8, tm: 8, tn: 8, staging: 'prefetch' },
  '128x128 bk8 8x8 double': { bm: 128, bn: 128, bk: 8, tm: 8, tn: 8, staging: 'double' },
  '128x128 bk16 8x8 double': { bm: 128, bn: 128, bk: 16, tm: 8, tn: 8, staging: 'double' },
  '128x64 bk16 8x4 prefetch': { bm: 128, bn: 64, bk: 16, tm: 8, tn: 4, staging: 'prefetch' },
  '128x64 bk16 8x4 double': { bm: 128, bn: 64, bk: 16, tm: 8, tn: 4, staging: 'double' },
  '64x64 bk16 4x4 double': { ...TILE_MEDIUM, staging: 'double' },
  '128x128 bk8 8x8 prefetch unrolled': { bm: 128, bn: 128, bk: 8, tm: 8, tn: 8, staging: 'prefetch', unroll: true },
  '128x128 bk8 8x8 double unrolled': { bm: 128, bn: 128, bk: 8, tm: 8, tn: 8, staging: 'double', unroll: true },
  '64x128 bk16 4x8 prefetch unrolled': { ...TILE_LARGE, staging: 'prefetch', unroll: true },
  '64x128 bk8 4x8 double unrolled': { ...TILE_LARGE, bk: 8, staging: 'double', unroll: true },
  '128x64 bk16 8x4 prefetch unrolled': { bm: 128, bn: 64, bk: 16, tm: 8, tn: 4, staging: 'prefetch', unroll: true },
  '128x128 bk16 8x8 prefetch': { bm: 128, bn: 128, bk: 16, tm: 8, tn: 8, staging: 'prefetch' },
  '128x128 bk16 8x8 prefetch unrolled': { bm: 128, bn: 128, bk: 16, tm: 8, tn: 8, staging: 'prefetch', unroll: true },
  '128x128 bk32 8x8 prefetch unrolled': { bm: 128, bn: 128, bk: 32, tm: 8, tn: 8, staging: 'prefetch', unroll: true },
  '256x128 bk8 16x8 prefetch unrolled': { bm: 256, bn: 128, bk: 8, tm: 16, tn: 8, staging: 'prefetch', unroll: true },
  '128x256 bk8 8x16 prefetch unrolled': { bm: 128, bn: 256, bk: 8, tm: 8, tn: 16, staging: 'prefetch', unroll: true },
  '128x256 bk16 8x16 prefetch unrolled': { bm: 128, bn: 256, bk: 16, tm: 8, tn: 16, staging: 'prefetch', unroll: true },
  // Last, once the GPU's clocks are up (measured first it read 38.9 against 40.9 for the same tile).
  'auto (what gemm() picks)': undefined,
};

/** Best of three timed runs of `reps` back-to-back 4096³ products in one submit each. */
async function sgemm(ctx: GpuContext, operands: GpuArray[], tile: GemmTile | undefined, n = 4096, reps = 10): Promise<number> {
  const [A, B, C] = operands;
  const run = (r: number) => {
    for (let i = 0; i < r; i++) gemm(ctx, A, B, C, { M: n, N: n, K: n, tile });
  };
  run(3);
  await ctx.finish();
  let best = Infinity;
  for (let trial = 0; trial < 3; trial++) {
    const t0 = performance.now();
    run(reps);
    await ctx.finish();
    best = Math.min(best, (performance.now() - t0) / 1000);
  }
  return (2 * n ** 3 * reps) / best / 1e12;
}

async function mlpTraining(ctx: GpuContext): Promise<{ seconds: number; stepsPerS: number; finalLoss: number }> {
  const count = 4096;
  const rng = new Rng(2);
  const inputs = new Float32Array(count * 128).map(() => rng.uniform());
  const labels = Int32Array.from({ length: count }, () => Math.floor(rng.uniform() * 8));
  const data: Dataset = { count, inputs, labels, inputShape: [128], targetWidth: 8, source: 'random' };
  const dense = (x: number, i: number, o: number, act: string) => ({ z: 0, y: 0, x, l: 0, type: 'Dense', activation: act, input_height: i, output_height: o, use_bias: true });
  const spec = { depth: 1, rows: 1, cols: 3, layers_per_cell: 1, layers: [dense(0, 128, 512, 'ReLU'), dense(1, 512, 512, 'ReLU'), dense(2, 512, 8, 'Linear')] };
  await trainGpu(buildNetwork(spec, { seed: 1 }), data, { epochs: 1, batchSize: 64, loss: 'cross_entropy', optimizer: new AdamW({ lr: 1e-3 }), gpu: ctx });
  const net = buildNetwork(spec, { seed: 1 });
  const t0 = performance.now();
  const r = await trainGpu(net, data, { epochs: 20, batchSize: 64, loss: 'cross_entropy', optimizer: new AdamW({ lr: 1e-3 }), gpu: ctx });
  const seconds = (performance.now() - t0) / 1000;
  return { seconds, stepsPerS: r.steps / seconds, finalLoss: r.history[r.history.length - 1].loss };
}

function torchPeer(): Record<string, unknown> {
  const r = spawnSync(PYTHON, [`${PEERS}torch_gpu.py`], { encoding: 'utf8' });
  if (r.status !== 0) return { peer: 'pytorch', error: (r.stderr || r.error?.message || 'failed').trim().split('\n').pop() };
  return JSON.parse(r.stdout);
}

let ctx: GpuContext;
try {
  ctx = await createNodeGpuContext({ flags: process.env.LOOM_DAWN_FLAGS ? process.env.LOOM_DAWN_FLAGS.split(' ') : [] });
} catch (e) {
  if (e instanceof GpuUnavailableError) {
    console.log(JSON.stringify({ error: e.message }));
    process.exit(0);
  }
  throw e;
}
// `node dist/bench/gpu.js decode`: only the SmolLM2-135M-shaped decode, next to PyTorch eager.
if (process.argv[2] === 'decode') {
  const gpuLlama = await gpuLlamaBench(ctx, buildNetwork(llamaNetworkSpec(SMOLLM2_135M), { seed: 1 }), SMOLLM2_135M);
  const device = ctx.adapterInfo;
  ctx.destroy();
  const peer = torchDecodePeer(PEERS, PYTHON);
  console.log(JSON.stringify({ device, smollm2_135m_shape_decode_fp32: { loom_ts_webgpu: gpuLlama, pytorch_cuda_eager: peer, goal_tokens_per_s: 500 } }, null, 2));
  process.exit(0);
}
const tiles: Record<string, number> = {};
const rng = new Rng(1);
const matrix = new Float32Array(4096 * 4096).map(() => rng.uniform() - 0.5);
const operands = [ctx.upload(matrix), ctx.upload(matrix), ctx.alloc(4096 * 4096)];
// LOOM_BENCH_TILES=<text>: only the tiles whose name contains it.
for (const [name, tile] of Object.entries(TILES).filter(([n]) => n.includes(process.env.LOOM_BENCH_TILES ?? ''))) {
  if (!tile || tileStorage(tile) <= ctx.workgroupStorage) tiles[name] = await sgemm(ctx, operands, tile);
}
for (const o of operands) ctx.release(o);
const best = Math.max(...Object.values(tiles));
if (process.env.LOOM_BENCH_SGEMM_ONLY) {
  console.log(JSON.stringify({ flags: process.env.LOOM_DAWN_FLAGS ?? '', tiles }));
  ctx.destroy();
  process.exit(0);
}
const mlp = await mlpTraining(ctx);
const device = ctx.adapterInfo;
ctx.destroy();
const peer = torchPeer();
const results = {
  device,
  sgemm_4096_fp32: { loom_ts_tflops_by_tile: tiles, loom_ts_best_tflops: best, pytorch_cuda_tflops: peer.sgemm_4096_tflops ?? null, goal_tflops: 40 },
  mlp_128_512_512_8_train_20_epochs_4096_samples_batch64: {
    loom_ts: { seconds: mlp.seconds, steps_per_s: mlp.stepsPerS, final_loss: mlp.finalLoss },
    pytorch_cuda: peer.error ? { error: peer.error } : { seconds: peer.mlp_20_epochs_s, steps_per_s: peer.mlp_steps_per_s, final_loss: peer.final_loss },
  },
  peer,
};
console.log(JSON.stringify(results, null, 2));
const rows = [
  ['benchmark', 'loom-ts WebGPU', 'pytorch CUDA'],
  ['sgemm 4096³ fp32 TFLOP/s', best.toFixed(1), typeof peer.sgemm_4096_tflops === 'number' ? peer.sgemm_4096_tflops.toFixed(1) : '-'],
  ['MLP 128-512-512-8, 20 epochs (s)', mlp.seconds.toFixed(2), typeof peer.mlp_20_epochs_s === 'number' ? peer.mlp_20_epochs_s.toFixed(2) : '-'],
];
for (const r of rows) console.log(r.map((c, i) => c.padEnd(i === 0 ? 34 : 16)).join(''));
