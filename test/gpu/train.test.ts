import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Rng } from '../../src/core/rng.js';
import type { Dataset } from '../../src/data/dataset.js';
import { buildNetwork } from '../../src/grid/spec.js';
import type { GpuContext } from '../../src/gpu/context.js';
import { llamaNetworkSpec, type LlamaConfig } from '../../src/llm/llama.js';
import { AdamW, Rmsprop, Sgd } from '../../src/train/optimizers.js';
import { train, type TrainConfig } from '../../src/train/train.js';
import { realGpu } from './gpuHelpers.js';

let gpu: GpuContext | string;
before(async () => {
  gpu = await realGpu();
});
after(() => {
  if (typeof gpu !== 'string') gpu.destroy();
});

function classification(count: number, shape: number[], classes: number, seed: number): Dataset {
  const rng = new Rng(seed);
  const width = shape.reduce((a, b) => a * b, 1);
  const inputs = new Float32Array(count * width);
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    labels[i] = i % classes;
    for (let j = 0; j < width; j++) inputs[i * width + j] = rng.uniform() - 0.5 + (j % classes === labels[i] ? 0.5 : 0);
  }
  return { inputs, labels, inputShape: shape, count, targetWidth: classes, source: 'synthetic' };
}

const MLP = {
  depth: 1, rows: 1, cols: 3, layers_per_cell: 1,
  layers: [
    { z: 0, y: 0, x: 0, l: 0, type: 'Dense', activation: 'ReLU', input_height: 24, output_height: 64, use_bias: true },
    { z: 0, y: 0, x: 1, l: 0, type: 'Dense', activation: 'Tanh', input_height: 64, output_height: 32, use_bias: true },
    { z: 0, y: 0, x: 2, l: 0, type: 'Dense', activation: 'Linear', input_height: 32, output_height: 4, use_bias: true },
  ],
};

const CNN = {
  depth: 1, rows: 1, cols: 3, layers_per_cell: 1,
  layers: [
    { z: 0, y: 0, x: 0, l: 0, type: 'CNN2', activation: 'ReLU', input_channels: 1, filters: 4, kernel_size: 3, stride: 2, padding: 1, input_height: 12, input_width: 12, use_bias: true },
    { z: 0, y: 0, x: 1, l: 0, type: 'CNN2', activation: 'ReLU', input_channels: 4, filters: 8, kernel_size: 3, stride: 2, padding: 1, input_height: 6, input_width: 6, use_bias: true },
    { z: 0, y: 0, x: 2, l: 0, type: 'Dense', activation: 'Linear', input_height: 72, output_height: 3, use_bias: true },
  ],
};

/** 20 steps on the CPU and on the GPU from the same weights; the per-step losses must agree within 1e-4. */
async function compareTrajectories(
  ctx: GpuContext, spec: object, data: Dataset, loss: 'mse' | 'cross_entropy', optimizer: () => AdamW | Sgd | Rmsprop, name: string, log: (s: string) => void, extra: Partial<TrainConfig> = {},
  /** Compare |Δ| / max(1, |loss|): for losses far above 1 (a tied LM head's large logits). */
  relative = false,
) {
  const cpuLosses: number[] = [];
  const gpuLosses: number[] = [];
  const config = (sink: number[]): TrainConfig => ({ epochs: 2, batchSize: 16, loss, optimizer: optimizer(), seed: 5, onBatch: (p) => sink.push(p.loss), ...extra });
  const cpuNet = buildNetwork(spec, { seed: 3 });
  const gpuNet = buildNetwork(spec, { seed: 3 });
  train(cpuNet, data, config(cpuLosses));
  const r = await train(gpuNet, data, { ...config(gpuLosses), gpu: ctx });
  assert.equal(gpuLosses.length, 20);
  assert.equal(r.steps, 20);
  let worst = 0;
  for (let i = 0; i < 20; i++) worst = Math.max(worst, Math.abs(gpuLosses[i] - cpuLosses[i]) / (relative ? Math.max(1, Math.abs(cpuLosses[i])) : 1));
  log(`${name}: CPU ${cpuLosses.map((l) => l.toFixed(5)).join(' ')}`);
  log(`${name}: GPU ${gpuLosses.map((l) => l.toFixed(5)).join(' ')}`);
  log(`${name}: max |ΔGPU−CPU|${relative ? ' / max(1, |loss|)' : ''} over 20 steps ${worst.toExponential(2)}`);
  assert.ok(worst <= 1e-4, `${name}: loss trajectories differ by ${worst}`);
  const wc = cpuNet.layers()[0].weights!.master;
  const wg = gpuNet.layers()[0].weights!.master;
  let wd = 0;
  for (let i = 0; i < wc.length; i++) wd = Math.max(wd, Math.abs(wc[i] - wg[i]));
  log(`${name}: max |Δweight| after 20 steps ${wd.toExponential(2)}`);
  assert.ok(wd < 1e-3);
}

test('20 GPU training steps of an MLP and a small CNN follow the CPU loss trajectory within 1e-4', async (t) => {
  if (typeof gpu === 'string') return t.skip(gpu);
  const log = (s: string) => t.diagnostic(s);
  const mlpData = classification(160, [24], 4, 1);
  await compareTrajectories(gpu, MLP, mlpData, 'cross_entropy', () => new AdamW({ lr: 0.003 }), 'MLP adamw cross_entropy', log);
  await compareTrajectories(gpu, MLP, mlpData, 'mse', () => new Sgd({ lr: 0.05, momentum: 0.9, weightDecay: 1e-4 }), 'MLP sgd+momentum mse', log);
  await compareTrajectories(gpu, CNN, classification(160, [1, 12, 12], 3, 2), 'cross_entropy', () => new AdamW({ lr: 0.003 }), 'CNN adamw cross_entropy', log);
});

test('GPU training: RMSprop (centered, momentum, weight decay) and AdamW with global-norm clipping follow the CPU within 1e-4', async (t) => {
  if (typeof gpu === 'string') return t.skip(gpu);
  const log = (s: string) => t.diagnostic(s);
  const mlpData = classification(160, [24], 4, 1);
  await compareTrajectories(gpu, MLP, mlpData, 'cross_entropy', () => new Rmsprop({ lr: 0.002, momentum: 0.5, centered: true, weightDecay: 1e-3 }), 'MLP rmsprop centered+momentum', log);
  await compareTrajectories(gpu, MLP, mlpData, 'mse', () => new Rmsprop({ lr: 0.001 }), 'MLP rmsprop plain mse', log);
  await compareTrajectories(gpu, MLP, mlpData, 'cross_entropy', () => new AdamW({ lr: 0.003 }), 'MLP adamw clip 0.5', log, { clipNorm: 0.5 });
  await compareTrajectories(gpu, MLP, mlpData, 'cross_entropy', () => new Sgd({ lr: 0.2, momentum: 0.9 }), 'MLP sgd clip 0.1', log, { clipNorm: 0.1 });
});

const SEQUENCE_MODEL = {
  depth: 1, rows: 1, cols: 4, layers_per_cell: 1,
  layers: [
    { z: 0, y: 0, x: 0, l: 0, type: 'Embedding', vocab_size: 20, embedding_dim: 16 },
    { z: 0, y: 0, x: 1, l: 0, type: 'MultiHeadAttention', d_model: 16, num_heads: 4, num_kv_heads: 2, causal: true },
    { z: 0, y: 0, x: 2, l: 0, type: 'SwiGLU', input_height: 16, output_height: 24, activation: 'Silu' },
    { z: 0, y: 0, x: 3, l: 0, type: 'Dense', activation: 'Linear', input_height: 96, output_height: 3, use_bias: true },
  ],
};

function tokenData(count: number, seq: number, vocab: number, classes: number, seed: number): Dataset {
  const rng = new Rng(seed);
  const inputs = new Float32Array(count * seq);
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    let s = 0;
    for (let j = 0; j < seq; j++) s += inputs[i * seq + j] = Math.floor(rng.uniform() * vocab);
    labels[i] = s % classes;
  }
  return { inputs, labels, inputShape: [seq], count, targetWidth: classes, source: 'synthetic' };
}

test('20 GPU training steps of Embedding → attention (GQA, RoPE, causal) → SwiGLU → Dense follow the CPU loss trajectory within 1e-4', async (t) => {
  if (typeof gpu === 'string') return t.skip(gpu);
  const log = (s: string) => t.diagnostic(s);
  await compareTrajectories(gpu, SEQUENCE_MODEL, tokenData(160, 6, 20, 3, 4), 'cross_entropy', () => new AdamW({ lr: 0.003 }), 'sequence model adamw', log);
});

test('20 GPU training steps of a tied-embedding Llama grid (Embedding ↔ LM head, RMSNorm, residual skips) follow the CPU within 1e-4 of the loss', async (t) => {
  if (typeof gpu === 'string') return t.skip(gpu);
  const config: LlamaConfig = {
    architecture: 'LlamaForCausalLM', modelType: 'llama', hiddenSize: 16, intermediateSize: 24, numLayers: 2, numHeads: 4, numKVHeads: 2, headDim: 4,
    rmsNormEps: 1e-5, ropeTheta: 10000, ropeScaling: null, tieWordEmbeddings: true, vocabSize: 20, bosTokenId: null, eosTokenIds: [], maxPositionEmbeddings: 64,
  };
  await compareTrajectories(gpu, llamaNetworkSpec(config), tokenData(160, 6, 20, 20, 6), 'cross_entropy', () => new AdamW({ lr: 0.003 }), 'tied llama adamw', (s) => t.diagnostic(s), {}, true);
});
