import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { FormatError } from '../../src/core/errors.js';
import { Tensor } from '../../src/core/tensor.js';
import { DecodeSession, decodeResidentBytes, quantizeNetwork, QuantizedWeights } from '../../src/engine/decode.js';
import { forwardNetwork } from '../../src/engine/run.js';
import { buildNetwork } from '../../src/grid/spec.js';
import { parseLlamaConfig, llamaLayers, llamaNetworkSpec } from '../../src/llm/llama.js';
import { importLlama } from '../../src/llm/llamaFiles.js';
import { kernelPoolJobs, setThreads } from '../../src/kernels/backend.js';
import { KERNELS_OFF, ROOT, withKernelMode } from '../helpers.js';

const DIR = `${ROOT}test/fixtures/llama/`;

interface Expected {
  prompt: number[];
  logits: number[][];
  greedy: number[];
}

const expected = (name: string): Expected => JSON.parse(readFileSync(`${DIR}${name}/expected.json`, 'utf8')) as Expected;
const ids = (list: readonly number[]): Tensor => new Tensor(Float32Array.from(list), [1, list.length]);

function argmax(v: Float32Array, from = 0, n = v.length): number {
  let best = from;
  for (let i = from; i < from + n; i++) if (v[i] > v[best]) best = i;
  return best - from;
}

function maxDiff(got: Float32Array, want: number[][]): number {
  const flat = want.flat();
  assert.equal(got.length, flat.length);
  let d = 0;
  for (let i = 0; i < flat.length; i++) d = Math.max(d, Math.abs(got[i] - flat[i]));
  return d;
}

function greedy(session: DecodeSession, prompt: number[], steps: number, vocab: number): number[] {
  let logits = session.forward(ids(prompt)).data;
  const out: number[] = [];
  for (let t = 0; t < steps; t++) {
    const next = argmax(logits, logits.length - vocab, vocab);
    out.push(next);
    logits = session.forward(ids([next])).data;
  }
  return out;
}

for (const name of ['llama', 'qwen2']) {
  test(`${name}: logits match transformers within 1e-4 (full forward and KV-cached prefill)`, () => {
    const model = importLlama(`${DIR}${name}`);
    const e = expected(name);
    const full = forwardNetwork(model.network, ids(e.prompt)).output;
    assert.deepEqual(full.shape, [1, e.prompt.length, model.config.vocabSize]);
    assert.ok(maxDiff(full.data, e.logits) < 1e-4, `full forward differs by ${maxDiff(full.data, e.logits)}`);
    const session = new DecodeSession(model.network, 64);
    const cached = session.forward(ids(e.prompt));
    assert.ok(maxDiff(cached.data, e.logits) < 1e-4);
  });

  test(`${name}: greedy continuation with the KV cache equals transformers' 20 tokens`, () => {
    const model = importLlama(`${DIR}${name}`);
    const e = expected(name);
    const session = new DecodeSession(model.network, 64);
    assert.deepEqual(greedy(session, e.prompt, e.greedy.length, model.config.vocabSize), e.greedy);
    assert.equal(session.length, e.prompt.length + e.greedy.length);
  });
}

test('llama: config fields, tied LM head shares the embedding store, chunked decode equals one prefill bit for bit', () => {
  const model = importLlama(`${DIR}llama`);
  const c = model.config;
  assert.deepEqual([c.hiddenSize, c.numHeads, c.numKVHeads, c.headDim, c.numLayers, c.vocabSize], [64, 4, 2, 16, 2, 544]);
  assert.deepEqual(c.eosTokenIds, [535, 537]);
  assert.equal(c.ropeTheta, 10000);
  const layers = llamaLayers(model.network, c);
  assert.equal(layers.lmHead.weights, layers.embedding.weights);
  const e = expected('llama');
  const one = new DecodeSession(model.network, 32).forward(ids(e.prompt)).data;
  const chunked = new DecodeSession(model.network, 32);
  const parts = [chunked.forward(ids(e.prompt.slice(0, 4))), chunked.forward(ids(e.prompt.slice(4, 5))), chunked.forward(ids(e.prompt.slice(5)))];
  const joined = new Float32Array(one.length);
  let at = 0;
  for (const p of parts) {
    joined.set(p.data, at);
    at += p.data.length;
  }
  // Bit for bit: every product's path depends on its matrix's shape only, and attention's on the head size.
  assert.deepEqual(new Uint32Array(joined.buffer), new Uint32Array(one.buffer.slice(one.byteOffset, one.byteOffset + one.byteLength)));
  assert.equal(parseLlamaConfig({ ...JSON.parse(readFileSync(`${DIR}qwen2/config.json`, 'utf8')) }).ropeTheta, 1e6);
});

for (const [format, kernels] of [['q4_0', 'ts'], ['int8', 'ts'], ['q4_0', 'auto'], ['int8', 'auto']] as const) {
  test(`${format} (${kernels} kernels): packed decode equals a float32 decode of the dequantized weights; resident bytes shrink`, () => {
    const packed = importLlama(`${DIR}qwen2`);
    const floatBytes = decodeResidentBytes(packed.network);
    withKernelMode(kernels, () => quantizeNetwork(packed.network, format, { release: true }));
    const reference = importLlama(`${DIR}qwen2`);
    for (const layer of reference.network.allLayers()) {
      const twin = packed.network.getLayer(layer.z, layer.y, layer.x, layer.l)!;
      if (twin.packed) {
        layer.weights!.master.set((twin.packed as QuantizedWeights).dequantize());
        layer.weights!.markMasterChanged();
      }
    }
    const e = expected('qwen2');
    const got = new DecodeSession(packed.network, 32).forward(ids(e.prompt)).data;
    const want = new DecodeSession(reference.network, 32).forward(ids(e.prompt)).data;
    // The WebAssembly kernels round activations to int16 per 32-value block (see test/kernels/quant.test.ts for the bound).
    const tol = (w: number) => (kernels === 'ts' ? 1e-4 : 2e-3 * (1 + Math.abs(w)));
    for (let i = 0; i < got.length; i++) assert.ok(Math.abs(got[i] - want[i]) <= tol(want[i]), `logit ${i}: ${got[i]} vs ${want[i]}`);
    const bytes = decodeResidentBytes(packed.network);
    assert.ok(bytes < floatBytes * (format === 'q4_0' ? 0.2 : 0.3), `${bytes} of ${floatBytes}`);
  });
}

test('missing tensors and wrong shapes are FormatErrors naming the tensor', () => {
  const dir = mkdtempSync(join(tmpdir(), 'loom-llama-'));
  try {
    cpSync(`${DIR}llama`, dir, { recursive: true });
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, tie_word_embeddings: false }));
    assert.throws(() => importLlama(dir), (e: unknown) => e instanceof FormatError && /missing tensor lm_head\.weight/.test(e.message));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, intermediate_size: 100 }));
    assert.throws(() => importLlama(dir), (e: unknown) => e instanceof FormatError && /model\.layers\.0\.mlp\.gate_proj\.weight has shape \[128, 64\], expected \[100, 64\]/.test(e.message));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, num_key_value_heads: 3 }));
    assert.throws(() => importLlama(dir), (e: unknown) => e instanceof FormatError && /num_key_value_heads/.test(e.message));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, rope_parameters: { rope_type: 'yarn', rope_theta: 1 } }));
    assert.throws(() => importLlama(dir), (e: unknown) => e instanceof FormatError && /rope_parameters\.rope_type: .*got "yarn"/.test(e.message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a network whose float32 weights were released refuses full forwards and saves with a UsageError', async () => {
  const { UsageError } = await import('../../src/core/errors.js');
  const { serializeNetwork } = await import('../../src/grid/persistence.js');
  const model = importLlama(`${DIR}llama`, { dtype: 'q4_0' });
  assert.throws(() => forwardNetwork(model.network, ids([1, 2])), (e: unknown) => e instanceof UsageError && /keeps only its q4_0 inference copy/.test(e.message));
  assert.throws(() => serializeNetwork(model.network), UsageError);
  assert.equal(new DecodeSession(model.network, 8).forward(ids([1, 2])).shape[2], 544);
});

test('float32 row panels: a packed decode gives the float32 decode\'s bits, with no float32 copy left', () => {
  const packed = importLlama(`${DIR}qwen2`);
  const floatBytes = decodeResidentBytes(packed.network);
  quantizeNetwork(packed.network, 'float32', { release: true });
  const reference = importLlama(`${DIR}qwen2`);
  const e = expected('qwen2');
  const a = new DecodeSession(packed.network, 32);
  const b = new DecodeSession(reference.network, 32);
  for (const chunk of [e.prompt, e.prompt.slice(0, 1), e.prompt.slice(1, 3)]) {
    const got = a.forward(ids(chunk)).data;
    const want = b.forward(ids(chunk)).data;
    assert.deepEqual(new Uint32Array(got.buffer, got.byteOffset, got.length), new Uint32Array(want.buffer, want.byteOffset, want.length));
  }
  const bytes = decodeResidentBytes(packed.network);
  assert.ok(bytes >= floatBytes && bytes <= floatBytes * 1.1, `${bytes} of ${floatBytes}`);
});

test('packed decoding on a thread pool (quantizeNetwork after setThreads) gives the one-thread bits, and keeps them once the pool stops', { skip: KERNELS_OFF }, async () => {
  // Matrices of 256×256 and more (the pool takes one-row products from 2^16 weights); random weights.
  const config = parseLlamaConfig({ ...JSON.parse(readFileSync(`${DIR}qwen2/config.json`, 'utf8')), hidden_size: 256, intermediate_size: 512, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 600 });
  const build = () => buildNetwork(llamaNetworkSpec(config), { seed: 3 });
  const steps = (net: ReturnType<typeof build>): number[][] => {
    const session = new DecodeSession(net, 32);
    return [[1, 2, 3, 4, 5], [6], [7]].map((chunk) => {
      const a = session.forward(ids(chunk)).data;
      return [...new Uint32Array(a.buffer, a.byteOffset, a.length)];
    });
  };
  for (const format of ['float32', 'int8', 'q4_0'] as const) {
    const one = build();
    quantizeNetwork(one, format, { release: true });
    const want = steps(one);
    assert.equal(await setThreads(2), 2);
    const pooled = build();
    try {
      quantizeNetwork(pooled, format, { release: true });
      const arena = [...pooled.allLayers()].map((l) => (l.packed as QuantizedWeights | undefined)?.arena).find((a) => a);
      assert.equal(arena?.threads, 2, `${format}: the arena lies in the pool`);
      const jobs = kernelPoolJobs();
      assert.deepEqual(steps(pooled), want, `${format} on 2 threads`);
      assert.ok(kernelPoolJobs() > jobs, `${format}: one-row products went to the pool`);
    } finally {
      await setThreads(1);
    }
    assert.deepEqual(steps(pooled), want, `${format} after the pool stopped`);
  }
});

test('a model packed before the pool starts moves into it at its next product, and into a restarted pool again: the one-thread bits throughout', { skip: KERNELS_OFF }, async () => {
  const config = parseLlamaConfig({ ...JSON.parse(readFileSync(`${DIR}qwen2/config.json`, 'utf8')), hidden_size: 256, intermediate_size: 512, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 600 });
  const prompt = [[1, 2, 3, 4, 5], [6], [7]];
  for (const format of ['float32', 'int8', 'q4_0'] as const) {
    const net = buildNetwork(llamaNetworkSpec(config), { seed: 3 });
    quantizeNetwork(net, format, { release: true });
    const arena = [...net.allLayers()].map((l) => (l.packed as QuantizedWeights | undefined)?.arena).find((a) => a)!;
    const decode = (): number[][] => {
      const session = new DecodeSession(net, 32);
      return prompt.map((chunk) => {
        const a = session.forward(ids(chunk)).data;
        return [...new Uint32Array(a.buffer, a.byteOffset, a.length)];
      });
    };
    const want = decode();
    assert.equal(arena.threads, 1);
    for (const round of ['first pool', 'restarted pool']) {
      try {
        assert.equal(await setThreads(2), 2);
        const jobs = kernelPoolJobs();
        assert.deepEqual(decode(), want, `${format}, ${round}`);
        assert.equal(arena.threads, 2, `${format}: the arena moved into the ${round}`);
        assert.ok(kernelPoolJobs() > jobs, `${format}: one-row products went to the ${round}`);
      } finally {
        await setThreads(1);
      }
      assert.equal(arena.threads, 1);
      assert.deepEqual(decode(), want, `${format} after the ${round} stopped`);
    }
  }
});
