import { after, before, test } from 'node:test';
import type { Rng } from '../../src/core/rng.js';
import type { GpuContext } from '../../src/gpu/context.js';
import { compareLayer, realGpu } from './gpuHelpers.js';

let gpu: GpuContext | string;
before(async () => {
  gpu = await realGpu();
});
after(() => {
  if (typeof gpu !== 'string') gpu.destroy();
});

/** Token ids with repeats (so the table gradient sums several positions per row). */
const ids = (vocab: number) => (n: number, rng: Rng) => Float32Array.from({ length: n }, () => Math.floor(rng.uniform() * vocab));

test('GPU Embedding, SwiGLU, attention (GQA, RoPE, causal), RNN and LSTM match the CPU (forward ≤ 1e-5, gradients ≤ 1e-4)', async (t) => {
  if (typeof gpu === 'string') return t.skip(gpu);
  const ctx = gpu;
  const report: string[] = [];
  await compareLayer(ctx, { type: 'Embedding', vocab_size: 11, embedding_dim: 24 }, [3, 17], report, undefined, ids(11));
  await compareLayer(ctx, { type: 'Embedding', vocab_size: 300, embedding_dim: 8, activation: 'Tanh' }, [40], report, undefined, ids(300));
  await compareLayer(ctx, { type: 'SwiGLU', input_height: 24, output_height: 40, activation: 'Silu' }, [3, 5, 24], report);
  await compareLayer(ctx, { type: 'SwiGLU', input_height: 33, output_height: 19, activation: 'ReLU2' }, [7, 33], report);
  for (const causal of [true, false]) {
    await compareLayer(ctx, { type: 'MultiHeadAttention', d_model: 32, num_heads: 4, num_kv_heads: 2, causal }, [2, 9, 32], report);
  }
  await compareLayer(ctx, { type: 'MultiHeadAttention', d_model: 48, num_heads: 6, num_kv_heads: 3, head_dim: 16, rope_freq_base: 500000, causal: true }, [1, 300, 48], report);
  await compareLayer(ctx, { type: 'MultiHeadAttention', d_model: 24, num_heads: 2, rope_freq_base: 0, activation: 'Tanh' }, [3, 6, 24], report);
  await compareLayer(ctx, { type: 'MultiHeadAttention', d_model: 32, num_heads: 4, causal: true, rope_scaling_type: 'linear', rope_scaling_factor: 2 }, [2, 5, 32], report);
  await compareLayer(ctx, { type: 'RNN', input_height: 5, output_height: 12 }, [3, 7, 5], report);
  await compareLayer(ctx, { type: 'RNN', input_height: 6, output_height: 4, seq_length: 3 }, [2, 18], report);
  await compareLayer(ctx, { type: 'LSTM', input_height: 5, output_height: 12 }, [3, 7, 5], report);
  await compareLayer(ctx, { type: 'LSTM', input_height: 16, output_height: 32 }, [4, 20, 16], report);
  for (const line of report) t.diagnostic(line);
});
