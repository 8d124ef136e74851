import { spawnSync } from 'node:child_process';
import { raiseAllocatorThresholds } from './allocator.js';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Tensor } from '../src/core/tensor.js';
import { DecodeSession, quantizeNetwork } from '../src/engine/decode.js';
import { buildNetwork } from '../src/grid/spec.js';
import { kernelBackend, setThreads } from '../src/kernels/backend.js';
import type { QuantFormat } from '../src/kernels/quant.js';
import { llamaNetworkSpec, type LlamaConfig } from '../src/llm/llama.js';

/**
 * `node dist/bench/llm.js` (or `npm run bench -- llm`): decode tokens/s of a SmolLM2-135M-shaped
 * decoder with random weights in float32, int8 and q4_0 (the packed ones on 1 and 2 threads), next to a same-shape PyTorch CPU decode loop
 * timed in the same run (1 and 2 threads), plus the bytes of weights each dtype keeps resident.
 * LLM_BENCH_SMALL=1 shrinks the model (a smoke run). Prints a table to stderr and JSON to stdout.
 */
raiseAllocatorThresholds();
const PYTHON = '/usr/bin/python3';
const PEER = fileURLToPath(new URL('../../bench/peers/torch_llm.py', import.meta.url));
const small = process.env.LLM_BENCH_SMALL === '1';
const PROMPT = 16;
const STEPS = Number(process.env.LLM_BENCH_STEPS ?? (small ? 8 : 24));

const config: LlamaConfig = {
  architecture: 'SmolLM2-135M-shaped', modelType: 'llama',
  hiddenSize: small ? 64 : 576, intermediateSize: small ? 128 : 1536, numLayers: small ? 2 : 30,
  numHeads: small ? 4 : 9, numKVHeads: small ? 2 : 3, headDim: small ? 16 : 64,
  rmsNormEps: 1e-5, ropeTheta: 10000, tieWordEmbeddings: true, vocabSize: small ? 512 : 49152,
  bosTokenId: null, eosTokenIds: [], maxPositionEmbeddings: 2048,
};

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

const net = buildNetwork(llamaNetworkSpec(config), { seed: 1 });
// Tied LM head, as SmolLM2: the Dense shares the Embedding's store.
const embedding = net.getLayer(0, 0, 0, 0)!;
net.getLayer(0, 0, config.numLayers + 1, 1)!.weights = embedding.weights;

function decode(): { msPerToken: number; prefillMs: number } {
  const session = new DecodeSession(net, PROMPT + STEPS + 1);
  const vocab = config.vocabSize;
  const t0 = performance.now();
  let logits = session.forward(new Tensor(Float32Array.from({ length: PROMPT }, (_, i) => i % vocab), [1, PROMPT])).data;
  const prefillMs = performance.now() - t0;
  const times: number[] = [];
  for (let t = 0; t < STEPS; t++) {
    let best = logits.length - vocab;
    for (let i = best; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
    const s = performance.now();
    logits = session.forward(new Tensor(Float32Array.of(best - (logits.length - vocab)), [1, 1])).data;
    times.push(performance.now() - s);
  }
  return { msPerToken: median(times), prefillMs };
}

/** Bytes a decode in this dtype needs resident: packed copies plus unpacked float32 layers (each store once). */
function residentBytes(): number {
  const seen = new Set<unknown>();
  let n = 0;
  for (const layer of net.allLayers()) {
    const holder = layer.packed ?? layer.weights;
    if (!holder || seen.has(holder)) continue;
    seen.add(holder);
    n += layer.packed ? layer.packed.residentBytes() : layer.weights!.residentBytes();
  }
  return n;
}

const rows: Record<string, unknown>[] = [];
// 'float32 panels': the same float32 values resident in WebAssembly memory as row panels (same bits).
// The packed dtypes again on 2 threads: quantized after setThreads, their arena lies in the pool's memory.
for (const [dtype, threads] of [['float32', 1], ['float32 panels', 1], ['int8', 1], ['q4_0', 1], ['float32 panels', 2], ['int8', 2], ['q4_0', 2]] as const) {
  if ((await setThreads(threads)) !== threads) continue;
  for (const layer of net.allLayers()) delete layer.packed;
  if (dtype !== 'float32') quantizeNetwork(net, dtype === 'float32 panels' ? 'float32' : (dtype as QuantFormat));
  const r = decode();
  rows.push({ dtype, threads, ms_per_token: r.msPerToken, tokens_per_s: 1000 / r.msPerToken, prefill_ms: r.prefillMs, resident_weight_bytes: residentBytes() });
}
await setThreads(1);

function peer(threads: number): Record<string, unknown> {
  if (!existsSync(PYTHON)) return { peer: 'pytorch', error: `${PYTHON} not found` };
  const c = config;
  const args = [threads, c.hiddenSize, c.numLayers, c.numHeads, c.numKVHeads, c.intermediateSize, c.vocabSize, PROMPT, STEPS].map(String);
  const r = spawnSync(PYTHON, [PEER, ...args], { encoding: 'utf8' });
  if (r.status !== 0) return { peer: 'pytorch', threads, error: (r.stderr || 'failed').trim().split('\n').pop() };
  return JSON.parse(r.stdout) as Record<string, unknown>;
}
const peers = [peer(1), peer(2)];

const f32 = rows[0] as { ms_per_token: number; resident_weight_bytes: number };
const panels = rows[1] as { ms_per_token: number };
const q4 = rows[3] as { ms_per_token: number; resident_weight_bytes: number };
const torch1 = peers[0].ms_per_token as number | undefined;
const result = {
  machine: { node: process.version, platform: `${process.platform}-${process.arch}`, kernels: kernelBackend() },
  model: { ...config, prompt: PROMPT, decode_steps: STEPS, parameters: net.parameterCount() - config.vocabSize * config.hiddenSize },
  loom_ts: rows,
  peers,
  goals: {
    float32_vs_pytorch_1_thread: torch1 ? f32.ms_per_token / torch1 : null,
    float32_within_1_5x: torch1 ? f32.ms_per_token <= 1.5 * torch1 : null,
    float32_panels_vs_pytorch_1_thread: torch1 ? panels.ms_per_token / torch1 : null,
    q4_0_speedup_over_float32: f32.ms_per_token / q4.ms_per_token,
    q4_0_at_least_2x: f32.ms_per_token / q4.ms_per_token >= 2,
    q4_0_resident_ratio: q4.resident_weight_bytes / f32.resident_weight_bytes,
    q4_0_resident_at_most_0_2: q4.resident_weight_bytes / f32.resident_weight_bytes <= 0.2,
  },
};
for (const r of rows) process.stderr.write(`loom-ts ${`${String(r.dtype)} ${String(r.threads)}T`.padEnd(18)} ${(r.ms_per_token as number).toFixed(1).padStart(8)} ms/token  ${((r.resident_weight_bytes as number) / 2 ** 20).toFixed(1)} MiB weights\n`);
for (const p of peers) process.stderr.write(`pytorch  ${p.threads} thread(s) ${p.error ?? `${(p.ms_per_token as number).toFixed(1)} ms/token`}\n`);
process.stdout.write(JSON.stringify(result, null, 2) + '\n');
