import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { UsageError } from '../../src/core/errors.js';
import { Tensor } from '../../src/core/tensor.js';
import { DecodeSession } from '../../src/engine/decode.js';
import type { GpuContext } from '../../src/gpu/context.js';
import { GpuLlamaDecoder } from '../../src/gpu/llm/decode.js';
import { Generation, type GenerateOptions } from '../../src/llm/generate.js';
import { importLlama, type LlamaModel } from '../../src/llm/llamaFiles.js';
import { ROOT } from '../helpers.js';
import { relativeDiff, realGpu } from './gpuHelpers.js';

const PROMPT = [535, 12, 77, 301, 5, 42, 199];
const STEPS = 20;

let gpu: GpuContext | string;
before(async () => {
  gpu = await realGpu();
});
after(() => {
  if (typeof gpu !== 'string') gpu.destroy();
});

function argmax(row: Float32Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

/** CPU greedy decode (the reference): the tokens and the logits that picked the last one. */
function cpuGreedy(model: LlamaModel, prompt: readonly number[], steps: number): { tokens: number[]; logits: Float32Array } {
  const vocab = model.config.vocabSize;
  const session = new DecodeSession(model.network, 128);
  const run = (ids: readonly number[]) => {
    const out = session.forward(new Tensor(Float32Array.from(ids), [1, ids.length]));
    return out.data.slice(out.data.length - vocab);
  };
  let logits = run(prompt);
  const tokens = [argmax(logits)];
  while (tokens.length < steps) {
    logits = run([tokens[tokens.length - 1]]);
    tokens.push(argmax(logits));
  }
  return { tokens, logits };
}

for (const name of ['llama', 'qwen2']) {
  test(`GPU decode (${name} fixture): ${STEPS} greedy tokens equal the CPU's, last logits within 1e-4`, async (t) => {
    if (typeof gpu === 'string') return t.skip(gpu);
    const model = importLlama(`${ROOT}test/fixtures/llama/${name}`);
    const expected = cpuGreedy(model, PROMPT, STEPS);
    const decoder = new GpuLlamaDecoder(gpu, model.network, model.config, { maxSeq: 128 });
    try {
      const first = await decoder.prefill(PROMPT);
      const rest = await decoder.decodeGreedy(STEPS - 1);
      const tokens = [first, ...rest];
      const diff = relativeDiff(await decoder.logits(), expected.logits);
      t.diagnostic(`${name}: gpu ${tokens.join(',')} | cpu ${expected.tokens.join(',')} | last logits relative diff ${diff.toExponential(2)}`);
      assert.deepEqual(tokens, expected.tokens);
      assert.equal(decoder.length, PROMPT.length + STEPS - 1);
      assert.ok(diff <= 1e-4, `logits relative diff ${diff}`);
    } finally {
      decoder.dispose();
    }
  });
}

test('GPU decode: stopping early rewinds to the tokens read; continuing and feeding chosen tokens match the CPU', async (t) => {
  if (typeof gpu === 'string') return t.skip(gpu);
  const model = importLlama(`${ROOT}test/fixtures/llama/llama`);
  const expected = cpuGreedy(model, PROMPT, 12);
  const decoder = new GpuLlamaDecoder(gpu, model.network, model.config, { maxSeq: 32 });
  try {
    const first = await decoder.prefill(PROMPT);
    let seen = 0;
    const some = await decoder.decodeGreedy(10, () => ++seen < 4);
    assert.deepEqual([first, ...some], expected.tokens.slice(0, 5));
    assert.equal(decoder.length, PROMPT.length + 4);
    const more = await decoder.decodeGreedy(7);
    assert.deepEqual(more, expected.tokens.slice(5, 12));
    // Sampling feeds a token the CPU chose: prefill with one id, then read the logits.
    decoder.reset();
    await decoder.prefill(PROMPT.slice(0, 3));
    await decoder.prefill(PROMPT.slice(3));
    const next = await decoder.prefill([expected.tokens[0]]);
    assert.equal(next, expected.tokens[1]);
    await assert.rejects(decoder.prefill(new Array(40).fill(1)), UsageError);
  } finally {
    decoder.dispose();
  }
});

test('GPU decode drives Generation (DeviceSession): greedy with run-ahead, a stop token, and seeded sampling match the CPU', async (t) => {
  if (typeof gpu === 'string') return t.skip(gpu);
  const model = importLlama(`${ROOT}test/fixtures/llama/llama`);
  const tokenizer = model.tokenizer!.tokenizer;
  const cpu = { session: new DecodeSession(model.network, 128), vocabSize: model.config.vocabSize, decode: (ids: readonly number[]) => tokenizer.decode(ids) };
  const decoder = new GpuLlamaDecoder(gpu, model.network, model.config, { maxSeq: 128 });
  const onGpu = { session: decoder, vocabSize: model.config.vocabSize, decode: cpu.decode };
  const run = async (m: typeof cpu | typeof onGpu, options: GenerateOptions) => {
    m.session.reset();
    const g = new Generation(m, PROMPT, options);
    for await (const _ of g) void _;
    return { tokens: g.tokens, text: g.text, finish: g.finishReason, length: m.session.length };
  };
  try {
    const greedy = await run(cpu, { maxTokens: 16 });
    assert.deepEqual(await run(onGpu, { maxTokens: 16 }), greedy);
    const stop = { maxTokens: 16, stopTokens: [greedy.tokens[6]] };
    assert.deepEqual(await run(onGpu, stop), await run(cpu, stop));
    const sampled = { maxTokens: 12, temperature: 0.9, topK: 40, repetitionPenalty: 1.2, seed: 3 };
    assert.deepEqual(await run(onGpu, sampled), await run(cpu, sampled));
  } finally {
    decoder.dispose();
  }
});
