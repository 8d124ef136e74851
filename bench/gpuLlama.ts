import { Rng } from '../src/core/rng.js';
import { Tensor } from '../src/core/tensor.js';
import { DecodeSession } from '../src/engine/decode.js';
import type { VolumetricNetwork } from '../src/grid/network.js';
import type { GpuContext } from '../src/gpu/context.js';
import { GpuLlama } from '../src/gpu/llama.js';
import type { LlamaConfig } from '../src/llm/llama.js';

export interface GpuLlamaBench {
  prompt_tokens: number;
  decode_tokens: number;
  /** Best of three timed runs, decode only (prefill excluded), by weight format, run-ahead depth and prompt length. */
  tokens_per_s: Record<string, number>;
  prefill_s: Record<string, number>;
  dispatches_per_token: number;
  weights_bytes: Record<string, number>;
  /** Greedy tokens of the GPU against the CPU DecodeSession on the same network (float32). */
  greedy_equal_cpu: { tokens: number; equal: boolean; first_mismatch: number | null };
}

/** GpuLlama (src/gpu/llama.ts) on `net`: prefill `promptLength` tokens, then `decodeTokens` greedy tokens. */
export async function gpuLlamaBench(ctx: GpuContext, net: VolumetricNetwork, config: LlamaConfig, promptLength = 128, decodeTokens = 128): Promise<GpuLlamaBench> {
  const rng = new Rng(3);
  const shortPrompt = Array.from({ length: promptLength }, () => Math.floor(rng.uniform() * config.vocabSize));
  const tokensPerS: Record<string, number> = {};
  const prefill: Record<string, number> = {};
  const weights: Record<string, number> = {};
  let dispatches = 0;
  let gpuTokens: number[] = [];
  const longPrompt = Array.from({ length: 1024 }, () => Math.floor(rng.uniform() * config.vocabSize));
  const cases: [dtype: 'float32' | 'int8' | 'q4_0', runAhead: number, context: number, lanes: number | 'auto'][] = [
    ['float32', 3, 0, 'auto'], ['float32', 0, 0, 'auto'], ['float32', 6, 0, 'auto'], ['int8', 3, 0, 'auto'], ['q4_0', 3, 0, 'auto'],
    ['float32', 3, 1024, 'auto'], ['q4_0', 3, 1024, 'auto'], ['float32', 3, 0, 32], ['float32', 3, 0, 64], ['float32', 3, 0, 128], ['q4_0', 3, 0, 32],
  ];
  for (const [dtype, runAhead, context, gemvLanes] of cases) {
    const prompt = context ? longPrompt : shortPrompt;
    const llama = await GpuLlama.create(net, config, { gpu: ctx, maxSeq: prompt.length + decodeTokens + 1, dtype, runAhead, gemvLanes });
    const name = `${dtype} run-ahead ${runAhead}${context ? `, ${context}-token prompt` : ''}${gemvLanes === 'auto' ? '' : `, ${gemvLanes} gemv lanes`}`;
    let best = 0;
    let bestPrefill = Infinity;
    for (let trial = 0; trial < 4; trial++) {
      llama.reset();
      const t0 = performance.now();
      let token = await llama.next(prompt, [], {}, rng, decodeTokens);
      const t1 = performance.now();
      const out = [token];
      for (let i = 0; i < decodeTokens; i++) {
        token = await llama.next([token], [], {}, rng, decodeTokens - 1 - i);
        out.push(token);
      }
      const t2 = performance.now();
      if (trial === 0) {
        if (dtype === 'float32' && runAhead === 3 && !context && gemvLanes === 'auto') gpuTokens = out;
        continue;
      }
      best = Math.max(best, decodeTokens / ((t2 - t1) / 1000));
      bestPrefill = Math.min(bestPrefill, (t1 - t0) / 1000);
    }
    tokensPerS[name] = best;
    prefill[name] = bestPrefill;
    weights[dtype] = llama.residentBytes;
    dispatches = llama.dispatchesPerToken;
    llama.destroy();
  }
  const check = 16;
  const session = new DecodeSession(net, promptLength + check + 1);
  const cpuTokens: number[] = [];
  let logits = session.forward(new Tensor(Float32Array.from(shortPrompt), [1, promptLength])).data;
  for (let i = 0; i <= check; i++) {
    const row = logits.subarray(logits.length - config.vocabSize);
    let best = 0;
    for (let j = 1; j < row.length; j++) if (row[j] > row[best]) best = j;
    cpuTokens.push(best);
    if (i < check) logits = session.forward(new Tensor(Float32Array.of(best), [1, 1])).data;
  }
  const mismatch = cpuTokens.findIndex((t, i) => gpuTokens[i] !== t);
  return {
    prompt_tokens: promptLength,
    decode_tokens: decodeTokens,
    tokens_per_s: tokensPerS,
    prefill_s: prefill,
    dispatches_per_token: dispatches,
    weights_bytes: weights,
    greedy_equal_cpu: { tokens: cpuTokens.length, equal: mismatch < 0, first_mismatch: mismatch < 0 ? null : mismatch },
  };
}
