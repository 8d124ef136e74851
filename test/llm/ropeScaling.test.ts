import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { FormatError, SpecError } from '../../src/core/errors.js';
import { Tensor } from '../../src/core/tensor.js';
import { DecodeSession } from '../../src/engine/decode.js';
import { serializeNetwork } from '../../src/grid/persistence.js';
import { buildNetwork } from '../../src/grid/spec.js';
import { attentionForwardCached, createKVCache, ropeDivisors, type RopeScaling } from '../../src/layers/attention.js';
import { llamaLayers, llamaNetworkSpec, parseLlamaConfig } from '../../src/llm/llama.js';
import { importLlama } from '../../src/llm/llamaFiles.js';
import { fixture, ROOT } from '../helpers.js';

interface Segment {
  start: number;
  n: number;
  x: number[];
  rotated: number[];
}
interface GoldenCase {
  head_dim: number;
  theta: number;
  scaling: Record<string, number | string> | null;
  inv_freq: number[];
  segments: Segment[];
}
const golden = fixture<{ tolerance: { inv_freq_rtol: number; rotated_atol: number }; cases: Record<string, GoldenCase> }>('rope_scaling.json');
const LLAMA = join(ROOT, 'test/fixtures/llama/llama');

/** A one-block Llama config whose attention is one head of head_dim = hidden_size, RoPE as the golden case says. */
function configFor(c: GoldenCase, ropeKey: 'rope_parameters' | 'rope_scaling' = 'rope_parameters') {
  const rope = c.scaling ?? { rope_type: 'default' };
  return parseLlamaConfig({
    hidden_size: c.head_dim, intermediate_size: 8, num_hidden_layers: 1, num_attention_heads: 1, num_key_value_heads: 1,
    vocab_size: 4, rms_norm_eps: 1e-6,
    ...(ropeKey === 'rope_parameters' ? { rope_parameters: { rope_theta: c.theta, ...rope } } : { rope_theta: c.theta, rope_scaling: rope }),
  });
}

for (const [name, c] of Object.entries(golden.cases)) {
  test(`RoPE ${name}: inverse frequencies and rotated keys match the torch golden`, () => {
    for (const ropeKey of ['rope_parameters', 'rope_scaling'] as const) {
      const config = configFor(c, ropeKey);
      assert.deepEqual(config.ropeScaling ?? null, scalingOf(c), `${ropeKey} parsed`);
      const divisors = ropeDivisors(c.head_dim, c.theta, config.ropeScaling ?? undefined);
      c.inv_freq.forEach((want, i) => {
        const got = 1 / divisors[i];
        assert.ok(Math.abs(got - want) <= golden.tolerance.inv_freq_rtol * want, `${name} inv_freq[${i}]: ${got} vs ${want}`);
      });
      // The importer's spec puts the scaling on the attention layer; with Wk = identity its KV cache holds RoPE(x).
      const net = buildNetwork(llamaNetworkSpec(config));
      const attention = llamaLayers(net, config).blocks[0].attention;
      const hd = c.head_dim;
      const params = attention.weights!.master;
      params.fill(0);
      for (let i = 0; i < hd; i++) params[hd * hd + i * hd + i] = 1;
      attention.weights!.markMasterChanged();
      for (const s of c.segments) {
        const cache = createKVCache(attention, s.start + s.n);
        cache.length = s.start;
        attentionForwardCached(attention, new Tensor(Float32Array.from(s.x), [1, s.n, hd]), null, cache);
        const keys = cache.k.subarray(s.start * hd, (s.start + s.n) * hd);
        let worst = 0;
        s.rotated.forEach((want, i) => (worst = Math.max(worst, Math.abs(keys[i] - want))));
        assert.ok(worst <= golden.tolerance.rotated_atol, `${name} (${ropeKey}) positions ${s.start}..: max |Δ| ${worst}`);
      }
    }
  });
}

function scalingOf(c: GoldenCase): RopeScaling | null {
  const s = c.scaling;
  if (!s) return null;
  if (s.rope_type === 'linear') return { type: 'linear', factor: s.factor as number };
  return {
    type: 'llama3', factor: s.factor as number, lowFreqFactor: s.low_freq_factor as number,
    highFreqFactor: s.high_freq_factor as number, originalMaxPositions: s.original_max_position_embeddings as number,
  };
}

test('scaled RoPE survives a save and reload; linear with factor 1 is plain RoPE bit for bit', () => {
  const config = configFor(golden.cases.llama3_small);
  const net = buildNetwork(llamaNetworkSpec(config), { seed: 3 });
  const text = serializeNetwork(net);
  const saved = JSON.parse(text) as { layers: Record<string, unknown>[] };
  const entry = saved.layers.find((l) => l.type === 'MultiHeadAttention')!;
  assert.deepEqual(
    [entry.rope_scaling_type, entry.rope_scaling_factor, entry.rope_low_freq_factor, entry.rope_high_freq_factor, entry.rope_original_max_position_embeddings],
    ['llama3', 4, 1, 4, 64],
  );
  const input = new Tensor(Float32Array.from([0, 1, 2, 3, 2, 1]), [1, 6]);
  const again = buildNetwork(text);
  assert.deepEqual(new DecodeSession(again, 8).forward(input).data, new DecodeSession(net, 8).forward(input).data);

  const plain = importLlama(LLAMA);
  const dir = mkdtempSync(join(tmpdir(), 'loom-rope-'));
  try {
    cpSync(LLAMA, dir, { recursive: true });
    const original = JSON.parse(readFileSync(join(LLAMA, 'config.json'), 'utf8')) as Record<string, unknown>;
    const prompt = new Tensor(Float32Array.from([5, 17, 300, 2, 9, 44, 100, 7]), [1, 8]);
    const logits = (m: ReturnType<typeof importLlama>) => new DecodeSession(m.network, 16).forward(prompt).data;
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...original, rope_parameters: { rope_type: 'linear', rope_theta: 10000, factor: 1 } }));
    assert.deepEqual(logits(importLlama(dir)), logits(plain));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...original, rope_parameters: { rope_type: 'linear', rope_theta: 10000, factor: 4 } }));
    const linear = importLlama(dir);
    assert.deepEqual(linear.config.ropeScaling, { type: 'linear', factor: 4 });
    assert.notDeepEqual(logits(linear), logits(plain));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a Llama with llama3 or linear RoPE scaling gives transformers' logits (LlamaForCausalLM, same weights)", () => {
  const want = fixture<{ prompt: number[]; positions: number[]; cases: Record<string, { rope_parameters: Record<string, unknown>; logits: number[][] }> }>(
    'llama/rope_scaling_logits.json',
  );
  const original = JSON.parse(readFileSync(join(LLAMA, 'config.json'), 'utf8')) as Record<string, unknown>;
  const prompt = new Tensor(Float32Array.from(want.prompt), [1, want.prompt.length]);
  const plain = new DecodeSession(importLlama(LLAMA).network, want.prompt.length).forward(prompt).data;
  const dir = mkdtempSync(join(tmpdir(), 'loom-rope-hf-'));
  try {
    cpSync(LLAMA, dir, { recursive: true });
    for (const [name, c] of Object.entries(want.cases)) {
      writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...original, rope_parameters: c.rope_parameters }));
      const model = importLlama(dir);
      const logits = new DecodeSession(model.network, want.prompt.length).forward(prompt).data;
      const vocab = model.config.vocabSize;
      want.positions.forEach((p, k) => {
        let worst = 0;
        let fromPlain = 0;
        c.logits[k].forEach((v, i) => {
          worst = Math.max(worst, Math.abs(logits[p * vocab + i] - v));
          fromPlain = Math.max(fromPlain, Math.abs(plain[p * vocab + i] - v));
        });
        assert.ok(worst < 2e-5, `${name} position ${p}: max |Δ| ${worst}`);
        // The scaling matters at these positions: unscaled RoPE would miss by far more than the tolerance.
        if (p > 5) assert.ok(fromPlain > 1e-2, `${name} position ${p}: plain RoPE is only ${fromPlain} away`);
      });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('unsupported or incomplete RoPE scaling is a FormatError naming the config field', () => {
  const base = { hidden_size: 16, intermediate_size: 8, num_hidden_layers: 1, num_attention_heads: 1, vocab_size: 4 };
  const fails = (config: Record<string, unknown>, pattern: RegExp) =>
    assert.throws(() => parseLlamaConfig({ ...base, ...config }), (e: unknown) => e instanceof FormatError && pattern.test(e.message), JSON.stringify(config));
  fails({ rope_parameters: { rope_type: 'yarn', rope_theta: 1e4, factor: 4 } }, /rope_parameters\.rope_type: expected "default", "linear", "llama3", got "yarn"/);
  fails({ rope_scaling: { type: 'dynamic', factor: 2 } }, /rope_scaling\.type: expected .*got "dynamic"/);
  fails({ rope_scaling: { rope_type: 'linear' } }, /rope_scaling\.factor: expected a positive number for rope_type "linear", got nothing/);
  fails({ rope_scaling: { rope_type: 'llama3', factor: 8, high_freq_factor: 4, original_max_position_embeddings: 8192 } }, /rope_scaling\.low_freq_factor/);
  fails({ rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 4, high_freq_factor: 1, original_max_position_embeddings: 8192 } }, /rope_scaling\.high_freq_factor: expected a number above low_freq_factor/);
  fails({ rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 81.5 } }, /original_max_position_embeddings: expected a positive integer/);
  fails({ rope_parameters: { rope_type: 'linear', factor: 2, partial_rotary_factor: 0.5 } }, /rope_parameters\.partial_rotary_factor: expected 1/);
  fails({ rope_scaling: 'llama3' }, /rope_scaling: expected an object/);
  assert.equal(parseLlamaConfig({ ...base, rope_scaling: null, rope_theta: 5e5 }).ropeScaling, null);
  assert.equal(parseLlamaConfig({ ...base, rope_scaling: { type: 'default' } }).ropeScaling, null);

  // The layer fields themselves are checked too (a hand-written spec).
  const spec = (extra: Record<string, unknown>) => ({
    layers: [{ type: 'MultiHeadAttention', d_model: 8, num_heads: 2, ...extra }],
  });
  const specFails = (extra: Record<string, unknown>, pattern: RegExp) =>
    assert.throws(() => buildNetwork(spec(extra)), (e: unknown) => e instanceof SpecError && pattern.test(e.message), JSON.stringify(extra));
  specFails({ rope_scaling_type: 'yarn', rope_scaling_factor: 2 }, /layers\[0\]\.rope_scaling_type: expected one of linear, llama3, got "yarn"/);
  specFails({ rope_scaling_factor: 2 }, /layers\[0\]\.rope_scaling_factor: given without rope_scaling_type/);
  specFails({ rope_scaling_type: 'linear' }, /layers\[0\]\.rope_scaling_factor: expected a positive number/);
  specFails({ rope_scaling_type: 'linear', rope_scaling_factor: 2, rope_low_freq_factor: 1 }, /rope_low_freq_factor: not used by rope_scaling_type "linear"/);
  specFails({ rope_scaling_type: 'llama3', rope_scaling_factor: 2 }, /layers\[0\]\.rope_low_freq_factor: expected a positive number/);
  specFails({ rope_freq_base: 0, rope_scaling_type: 'linear', rope_scaling_factor: 2 }, /RoPE is off/);
});
