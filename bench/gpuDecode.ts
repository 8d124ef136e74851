import { spawnSync } from 'node:child_process';
import type { LlamaConfig } from '../src/llm/llama.js';

/** SmolLM2-135M's shape (random weights, float32). */
export const SMOLLM2_135M: LlamaConfig = {
  architecture: 'LlamaForCausalLM', modelType: 'llama', hiddenSize: 576, intermediateSize: 1536, numLayers: 30,
  numHeads: 9, numKVHeads: 3, headDim: 64, rmsNormEps: 1e-5, ropeTheta: 100000, ropeScaling: null,
  tieWordEmbeddings: true, vocabSize: 49152, bosTokenId: 0, eosTokenIds: [0], maxPositionEmbeddings: 8192,
};

/** The PyTorch eager peer (HF transformers LlamaForCausalLM, CUDA, float32), or why it could not run. */
export function torchDecodePeer(peers: string, python: string): Record<string, unknown> {
  const r = spawnSync(python, [`${peers}torch_decode_gpu.py`], { encoding: 'utf8' });
  if (r.status !== 0) return { peer: 'pytorch+transformers', error: (r.stderr || r.error?.message || 'failed').trim().split('\n').pop() };
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}
