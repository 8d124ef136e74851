import { spawnSync } from 'node:child_process';
import { Rng } from '../src/core/rng.js';
import { buildNetwork } from '../src/grid/spec.js';
import type { GpuContext } from '../src/gpu/context.js';
import { GpuLlamaDecoder } from '../src/gpu/llm/decode.js';
import { llamaNetworkSpec, type LlamaConfig } from '../src/llm/llama.js';

/** SmolLM2-135M's shape (random weights, float32). */
export const SMOLLM2_135M: LlamaConfig = {
  architecture: 'LlamaForCausalLM', modelType: 'llama', hiddenSize: 576, intermediateSize: 1536, numLayers: 30,
  numHeads: 9, numKVHeads: 3, headDim: 64, rmsNormEps: 1e-5, ropeTheta: 100000, ropeScaling: null,
  tieWordEmbeddings: true, vocabSize: 49152, bosTokenId: 0, eosTokenIds: [0], maxPositionEmbeddings: 8192,
};

export interface DecodeBench {
  prompt_tokens: number;
  decode_tokens: number;
  /** Best of the trials, per lookahead (steps submitted ahead of the token being read). */
  tokens_per_s_by_lookahead: Record<string, number>;
  prefill_s: number;
  submits_per_token: number;
  dispatches_per_token: number;
  /** GPU ms per dispatch of each kernel at position 192, and per whole chained step. */
  profile_ms: Record<string, number>;
}

/** Prefill `promptLength` random tokens, then decode `decodeTokens` greedily; best of `trials`. */
export async function decodeBench(ctx: GpuContext, promptLength = 128, decodeTokens = 128, trials = 3): Promise<DecodeBench> {
  const net = buildNetwork(llamaNetworkSpec(SMOLLM2_135M), { seed: 1 });
  const rng = new Rng(3);
  const prompt = Array.from({ length: promptLength }, () => Math.floor(rng.uniform() * SMOLLM2_135M.vocabSize));
  const byLookahead: Record<string, number> = {};
  let prefill = Infinity;
  let submits = 0;
  let dispatches = 0;
  let profile: Record<string, number> = {};
  for (const lookahead of [1, 2, 3]) {
    const decoder = new GpuLlamaDecoder(ctx, net, SMOLLM2_135M, { maxSeq: promptLength + decodeTokens + 1, lookahead });
    let best = 0;
    for (let trial = 0; trial <= trials; trial++) {
      decoder.reset();
      const t0 = performance.now();
      await decoder.prefill(prompt);
      const t1 = performance.now();
      const s0 = ctx.stats.submits;
      const d0 = ctx.stats.dispatches;
      await decoder.decodeGreedy(decodeTokens);
      const t2 = performance.now();
      // Trial 0 warms the pipelines and the driver up.
      if (trial === 0) continue;
      prefill = Math.min(prefill, (t1 - t0) / 1000);
      best = Math.max(best, decodeTokens / ((t2 - t1) / 1000));
      submits = (ctx.stats.submits - s0) / decodeTokens;
      dispatches = (ctx.stats.dispatches - d0) / decodeTokens;
    }
    byLookahead[lookahead] = best;
    if (lookahead === 2) profile = await decoder.profile(192);
    decoder.dispose();
  }
  return { prompt_tokens: promptLength, decode_tokens: decodeTokens, tokens_per_s_by_lookahead: byLookahead, prefill_s: prefill, submits_per_token: submits, dispatches_per_token: dispatches, profile_ms: profile };
}

/** The PyTorch eager peer (HF transformers LlamaForCausalLM, CUDA, float32), or why it could not run. */
export function torchDecodePeer(peers: string, python: string): Record<string, unknown> {
  const r = spawnSync(python, [`${peers}torch_decode_gpu.py`], { encoding: 'utf8' });
  if (r.status !== 0) return { peer: 'pytorch+transformers', error: (r.stderr || r.error?.message || 'failed').trim().split('\n').pop() };
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}
