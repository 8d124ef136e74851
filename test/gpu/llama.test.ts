import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { Rng } from '../../src/core/rng.js';
import { Tensor } from '../../src/core/tensor.js';
import { DecodeSession, QuantizedWeights } from '../../src/engine/decode.js';
import type { WeightStore } from '../../src/core/weightStore.js';
import type { GpuContext } from '../../src/gpu/context.js';
import { gemvUniformWords, gemvUnits, gemvWgsl, type GemvEpilogue } from '../../src/gpu/kernels/llm.js';
import { GpuLlama, uploadGpuMatrix } from '../../src/gpu/llama.js';
import { dequantizeRow, quantizeMatrix, type QuantFormat } from '../../src/kernels/quant.js';
import { Activation } from '../../src/layers/activations.js';
import { Generation, type GenerateOptions, type LanguageModel } from '../../src/llm/generate.js';
import { importLlama, type LlamaModel } from '../../src/llm/llamaFiles.js';
import { ROOT } from '../helpers.js';
import { realGpu, relativeDiff } from './gpuHelpers.js';

let gpu: GpuContext | string;
before(async () => {
  gpu = await realGpu();
});
after(() => {
  if (typeof gpu !== 'string') gpu.destroy();
});

const FIXTURES = ['llama', 'qwen2'].map((name) => {
  const dir = `${ROOT}test/fixtures/llama/${name}`;
  return { name, dir, expected: JSON.parse(readFileSync(`${dir}/expected.json`, 'utf8')) as { prompt: number[]; greedy: number[] } };
});

function cpuLogits(session: DecodeSession, ids: number[], vocab: number): Float32Array {
  const out = session.forward(new Tensor(Float32Array.from(ids), [1, ids.length]));
  return out.data.slice(out.data.length - vocab);
}

function argmax(a: Float32Array): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i] > a[best]) best = i;
  return best;
}

async function tokens(model: LanguageModel, prompt: number[], options: GenerateOptions): Promise<{ tokens: number[]; reason: string | null }> {
  const g = new Generation(model, prompt, options);
  for await (const _ of g) void _;
  return { tokens: g.tokens, reason: g.finishReason };
}

/**
 * The model with its matrices packed as quantizeNetwork packs them, but decoded by the TypeScript
 * reference kernels (float64 sums of quant × float32 input): the WebAssembly kernels round the
 * input to int16 per block, which the GPU does not.
 */
function referenceQuantized(dir: string, format: QuantFormat): LlamaModel {
  const m = importLlama(dir);
  const shared = new Map<WeightStore, QuantizedWeights>();
  for (const layer of m.network.allLayers()) {
    const matrices = layer.kind.matrices?.(layer);
    if (!matrices?.length || !layer.weights) continue;
    let packed = shared.get(layer.weights);
    if (!packed) shared.set(layer.weights, (packed = new QuantizedWeights(format, layer.weights.getActive(layer.dtype), matrices, null)));
    layer.packed = packed;
  }
  return m;
}

function cpuModel(m: LlamaModel, maxSeq: number): LanguageModel {
  return { session: new DecodeSession(m.network, maxSeq), vocabSize: m.config.vocabSize, decode: (ids) => m.tokenizer!.tokenizer.decode(ids) };
}

/**
 * Prefill, then 12 decoded positions fed the CPU's greedy tokens: the GPU's logits at every step
 * against the CPU DecodeSession's (≤ 1e-5 of the largest logit), and the same argmax.
 */
async function compareLogits(
  ctx: GpuContext, cpu: LlamaModel, gpuNet: LlamaModel, prompt: number[], gpuOptions: Parameters<typeof GpuLlama.create>[2], label: string, log: (s: string) => void,
): Promise<void> {
  const vocab = cpu.config.vocabSize;
  const maxSeq = prompt.length + 16;
  const session = new DecodeSession(cpu.network, maxSeq);
  const llama = await GpuLlama.create(gpuNet.network, gpuNet.config, { gpu: ctx, maxSeq, ...gpuOptions });
  try {
    let worst = 0;
    let want = cpuLogits(session, prompt, vocab);
    let got = await llama.logits(prompt);
    for (let step = 0; ; step++) {
      const d = relativeDiff(got, want);
      worst = Math.max(worst, d);
      assert.ok(d <= 1e-5, `${label}: step ${step} logits differ by ${d}`);
      assert.equal(argmax(got), argmax(want), `${label}: step ${step} argmax`);
      if (step === 12) break;
      const token = argmax(want);
      want = cpuLogits(session, [token], vocab);
      got = await llama.logits([token]);
    }
    assert.equal(llama.length, prompt.length + 12);
    log(`${label}: logits over prefill + 12 decode steps, max relative diff ${worst.toExponential(2)}`);
  } finally {
    llama.destroy();
  }
}

test('GPU decode: logits match the CPU DecodeSession (float32, int8, q4_0; GEMM and gemv prefill; chunked prefill)', async (t) => {
  if (typeof gpu === 'string') return t.skip(gpu);
  const log = (s: string) => t.diagnostic(s);
  for (const f of FIXTURES) {
    const m = importLlama(f.dir);
    await compareLogits(gpu, m, m, f.expected.prompt, {}, `${f.name} float32 gemm prefill`, log);
    await compareLogits(gpu, m, m, f.expected.prompt, { prefill: 'gemv' }, `${f.name} float32 gemv prefill`, log);
    await compareLogits(gpu, m, m, f.expected.prompt, { prefillChunk: 4 }, `${f.name} float32 prefill in chunks of 4`, log);
    for (const gemvLanes of [16, 32, 256]) await compareLogits(gpu, m, m, f.expected.prompt, { gemvLanes }, `${f.name} float32, ${gemvLanes} gemv lanes`, log);
    // Past 256 positions: several key chunks in the attention kernels, prefill in three passes.
    const rng = new Rng(5);
    const long = Array.from({ length: 300 }, () => Math.floor(rng.uniform() * m.config.vocabSize));
    await compareLogits(gpu, m, m, long, {}, `${f.name} float32, 300-token prompt`, log);
    for (const dtype of ['int8', 'q4_0'] as const) {
      // The GPU packs the float32 weights as the CPU does, or takes a network quantizeNetwork packed.
      const reference = referenceQuantized(f.dir, dtype);
      await compareLogits(gpu, reference, m, f.expected.prompt, { dtype }, `${f.name} ${dtype} (packed on the GPU from float32)`, log);
      await compareLogits(gpu, reference, importLlama(f.dir, { dtype }), f.expected.prompt, {}, `${f.name} ${dtype} (from the packed network)`, log);
    }
  }
});

test('GPU decode: greedy tokens equal the CPU path (argmax on the GPU, run-ahead, stop tokens, context end)', async (t) => {
  if (typeof gpu === 'string') return t.skip(gpu);
  for (const f of FIXTURES) {
    for (const dtype of ['float32', 'int8', 'q4_0'] as const) {
      const m = dtype === 'float32' ? importLlama(f.dir) : referenceQuantized(f.dir, dtype);
      const cpu = await tokens(cpuModel(m, 128), f.expected.prompt, { maxTokens: 20 });
      if (dtype === 'float32') assert.deepEqual(cpu.tokens, f.expected.greedy, `${f.name}: CPU greedy equals transformers`);
      for (const runAhead of [0, 3]) {
        const llama = await GpuLlama.create(m.network, m.config, { gpu, maxSeq: 128, runAhead, dtype });
        const model: LanguageModel = { session: llama, vocabSize: m.config.vocabSize, decode: (ids) => m.tokenizer!.tokenizer.decode(ids) };
        try {
          const got = await tokens(model, f.expected.prompt, { maxTokens: 20 });
          assert.deepEqual(got.tokens, cpu.tokens, `${f.name} ${dtype} runAhead ${runAhead}: greedy tokens`);
          assert.equal(llama.length, f.expected.prompt.length + 19);
          const stopAt = cpu.tokens[5];
          const stopped = await tokens(model, [], { maxTokens: 20, stopTokens: [stopAt] }).catch(() => null);
          assert.equal(stopped, null, 'an empty prompt after reset is refused');
          llama.reset();
          const s = await tokens(model, f.expected.prompt, { maxTokens: 20, stopTokens: [stopAt] });
          assert.deepEqual(s.tokens, cpu.tokens.slice(0, cpu.tokens.indexOf(stopAt) + 1));
          assert.equal(s.reason, 'stop-token');
          // Continuing after a stop drops the steps decoded ahead: the same tokens as a fresh CPU session.
          const more = await tokens(model, [s.tokens[s.tokens.length - 1]], { maxTokens: 6 });
          const cpuSession = cpuModel(m, 128);
          await tokens(cpuSession, f.expected.prompt, { maxTokens: 20, stopTokens: [stopAt] });
          const cpuMore = await tokens(cpuSession, [s.tokens[s.tokens.length - 1]], { maxTokens: 6 });
          assert.deepEqual(more.tokens, cpuMore.tokens, `${f.name} ${dtype}: continuation after a stop token`);
          llama.reset();
        } finally {
          llama.destroy();
        }
      }
    }
  }
  const m = importLlama(FIXTURES[0].dir);
  const llama = await GpuLlama.create(m.network, m.config, { gpu, maxSeq: 16 });
  try {
    const model: LanguageModel = { session: llama, vocabSize: m.config.vocabSize, decode: (ids) => m.tokenizer!.tokenizer.decode(ids) };
    const r = await tokens(model, FIXTURES[0].expected.prompt, { maxTokens: 20 });
    assert.equal(r.reason, 'context');
    assert.equal(llama.length, 16);
    assert.deepEqual(r.tokens, FIXTURES[0].expected.greedy.slice(0, 6));
    llama.reset();
    await assert.rejects(llama.argmax([m.config.vocabSize]), /outside the vocabulary/);
  } finally {
    llama.destroy();
  }
});

test('GPU decode: sampling (temperature, top-k, top-p, repetition penalty) reads the logits back and draws as the CPU does', async (t) => {
  if (typeof gpu === 'string') return t.skip(gpu);
  const f = FIXTURES[0];
  const m = importLlama(f.dir);
  const options: GenerateOptions = { maxTokens: 16, temperature: 0.9, topK: 40, topP: 0.95, repetitionPenalty: 1.2, seed: 3 };
  const cpu = await tokens(cpuModel(m, 128), f.expected.prompt, options);
  const llama = await GpuLlama.create(m.network, m.config, { gpu, maxSeq: 128 });
  try {
    const got = await tokens({ session: llama, vocabSize: m.config.vocabSize, decode: (ids) => m.tokenizer!.tokenizer.decode(ids) }, f.expected.prompt, options);
    assert.deepEqual(got.tokens, cpu.tokens);
  } finally {
    llama.destroy();
  }
});

function randomArray(n: number, rng: Rng, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (rng.uniform() * 2 - 1) * scale;
  return a;
}

test('GPU matrix-vector kernels: float32, int8 and Q4_0 dequantized in the shader, with RMSNorm folded in, against the CPU (≤ 1e-5)', async (t) => {
  if (typeof gpu === 'string') return t.skip(gpu);
  const ctx = gpu;
  const rng = new Rng(9);
  const report: string[] = [];
  let cases = 0;
  for (const [rows, k, batch] of [[77, 96, 1], [300, 576, 3], [5, 1536, 2]] as const) {
    const w = randomArray(rows * k, rng, 0.2);
    const x = randomArray(batch * k, rng);
    const bias = randomArray(rows, rng);
    const gain = randomArray(k, rng);
    for (const format of ['float32', 'int8', 'q4_0'] as const) {
      const m = uploadGpuMatrix(ctx, w, rows, k, format);
      const values = format === 'float32' ? w : dequantized(format, w, rows, k);
      for (const norm of [false, true]) {
        for (const epilogue of ['store', 'accumulate'] as GemvEpilogue[]) {
          const act = epilogue === 'store' ? Activation.Silu : Activation.Linear;
          const vecs = new Float32Array(rows + k + 4);
          vecs.set(bias, 0);
          vecs.set(gain, Math.ceil(rows / 4) * 4);
          const gainOff = Math.ceil(rows / 4) * 4;
          const start = randomArray(batch * rows, rng);
          const X = ctx.upload(x);
          const V = ctx.upload(vecs);
          const out = ctx.upload(start);
          const u = gemvUniformWords({ units: rows, k, xOff: 0, xStride: k, outOff: 0, outStride: rows, biasOff: 0, gainOff, eps: 1e-5 });
          const bindings = [ctx.uniform(u.values, u.floats), X, m.data, ...(m.scales ? [m.scales] : []), V, out];
          const lanes = [32, 16, 64, 128, 256][cases++ % 5];
          ctx.dispatch(gemvWgsl({ format: m.format, norm, epilogue, act, lanes }), bindings, [Math.ceil(rows / gemvUnits(lanes)), batch]);
          const got = await ctx.read(out, batch * rows);
          const want = new Float64Array(batch * rows);
          for (let r = 0; r < batch; r++) {
            let inv = 1;
            if (norm) {
              let ss = 0;
              for (let c = 0; c < k; c++) ss += x[r * k + c] ** 2;
              inv = 1 / Math.sqrt(ss / k + 1e-5);
            }
            for (let o = 0; o < rows; o++) {
              let s = 0;
              for (let c = 0; c < k; c++) s += values[o * k + c] * x[r * k + c] * (norm ? inv * gain[c] : 1);
              const v = s + bias[o];
              want[r * rows + o] = epilogue === 'store' ? v / (1 + Math.exp(-v)) : start[r * rows + o] + v;
            }
          }
          const d = relativeDiff(got, want);
          report.push(`gemv ${format} ${rows}x${k} batch ${batch}${norm ? ' norm' : ''} ${epilogue} lanes ${lanes}: ${d.toExponential(2)}`);
          assert.ok(d <= 1e-5, report[report.length - 1]);
          for (const a of [X, V, out]) ctx.release(a);
        }
      }
      ctx.release(m.data);
      ctx.release(m.scales);
    }
  }
  for (const line of report) t.diagnostic(line);
});

function dequantized(format: QuantFormat, w: Float32Array, rows: number, k: number): Float32Array {
  const q = quantizeMatrix(format, w, rows, k);
  const out = new Float32Array(rows * k);
  for (let r = 0; r < rows; r++) dequantizeRow(q, r, out, r * k);
  return out;
}

test('GpuLlama refuses networks it cannot run, with one readable line', async (t) => {
  if (typeof gpu === 'string') return t.skip(gpu);
  const m = importLlama(FIXTURES[0].dir);
  await assert.rejects(GpuLlama.create(m.network, { ...m.config, numLayers: m.config.numLayers + 1 }, { gpu }), /no layer at/);
  await assert.rejects(GpuLlama.create(m.network, m.config, { gpu, maxSeq: 0 }), /maxSeq must be a positive integer/);
});
