import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { UsageError } from '../../src/core/errors.js';
import { Rng } from '../../src/core/rng.js';
import { ChatSession, TextModel } from '../../src/llm/chat.js';
import { Generation, sampleToken, type GeneratedToken } from '../../src/llm/generate.js';
import { importLlama } from '../../src/llm/llamaFiles.js';
import { ROOT } from '../helpers.js';

const DIR = `${ROOT}test/fixtures/llama/llama`;
const expected = JSON.parse(readFileSync(`${DIR}/expected.json`, 'utf8')) as { prompt: number[]; greedy: number[] };

function textModel(): TextModel {
  const m = importLlama(DIR);
  return new TextModel(m.network, m.config, m.tokenizer!, 128);
}

async function collect(g: AsyncIterable<GeneratedToken>): Promise<GeneratedToken[]> {
  const out: GeneratedToken[] = [];
  for await (const s of g) out.push(s);
  return out;
}

test('sampleToken: greedy, top-k 1, tiny top-p, seeded draws, repetition penalty', () => {
  const logits = () => Float32Array.from([1, 3, 2.5, -1]);
  const rng = new Rng(1);
  assert.equal(sampleToken(logits(), [], {}, rng), 1);
  assert.equal(sampleToken(logits(), [], { temperature: 5, topK: 1 }, rng), 1);
  assert.equal(sampleToken(logits(), [], { temperature: 5, topP: 0.01 }, rng), 1);
  assert.equal(sampleToken(logits(), [1], { repetitionPenalty: 2 }, rng), 2);
  assert.equal(sampleToken(logits(), [1], { repetitionPenalty: 2, repetitionWindow: 0 }, rng), 1);
  const draws = (seed: number) => {
    const r = new Rng(seed);
    return Array.from({ length: 50 }, () => sampleToken(logits(), [], { temperature: 1.5 }, r));
  };
  assert.deepEqual(draws(7), draws(7));
  assert.ok(new Set(draws(7)).size >= 3);
  const topK2 = new Rng(5);
  for (let i = 0; i < 50; i++) assert.ok([1, 2].includes(sampleToken(logits(), [], { temperature: 3, topK: 2 }, topK2)));
});

test('Generation: greedy ids equal transformers, streamed as {token, text}; stop tokens and max tokens end it', async () => {
  const model = textModel();
  model.session.reset();
  const g = new Generation(model, expected.prompt, { maxTokens: 20 });
  const steps = await collect(g);
  assert.deepEqual(steps.map((s) => s.token), expected.greedy);
  assert.equal(g.finishReason, 'max-tokens');
  assert.equal(steps.map((s) => s.text).join(''), model.decode(expected.greedy));
  assert.equal(g.text, model.decode(expected.greedy));

  model.session.reset();
  const stopAt = expected.greedy[3];
  const h = new Generation(model, expected.prompt, { maxTokens: 20, stopTokens: [stopAt] });
  const stopped = await collect(h);
  assert.equal(h.finishReason, 'stop-token');
  assert.deepEqual(stopped.map((s) => s.token), expected.greedy.slice(0, expected.greedy.indexOf(stopAt) + 1));
  assert.equal(h.text, model.decode(expected.greedy.slice(0, expected.greedy.indexOf(stopAt))));
});

test('Generation: stop strings cut the text; the same seed gives the same text', async () => {
  const model = textModel();
  model.session.reset();
  const full = model.decode(expected.greedy);
  const stop = full.slice(5, 7);
  const g = new Generation(model, expected.prompt, { maxTokens: 20, stopStrings: [stop] });
  const text = (await collect(g)).map((s) => s.text).join('');
  assert.equal(g.finishReason, 'stop-string');
  assert.equal(text, full.slice(0, full.indexOf(stop)));

  const sample = async (seed: number) => collect(model.generate('hello world', { temperature: 1.2, topK: 40, topP: 0.95, repetitionPenalty: 1.3, seed, maxTokens: 12 }));
  const a = await sample(11);
  const b = await sample(11);
  const c = await sample(12);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a.map((s) => s.token), c.map((s) => s.token));
  assert.throws(() => model.generate('x', { topP: 0 }), UsageError);
  assert.throws(() => model.generate('x', { temperature: -1 }), UsageError);
});

test('ChatSession: the second turn prefills only the new turn and continues as a full re-prefill would', async () => {
  const model = textModel();
  const chat = new ChatSession(model, 'be brief');
  await collect(chat.send('hello there', { maxTokens: 6 }));
  const firstPrefill = chat.lastPrefill;
  const reply2 = await collect(chat.send('and again', { maxTokens: 6 }));
  const fullPrompt = model.encode(chat['incremental'].cachedText, false).length;
  assert.ok(chat.lastPrefill < fullPrompt - firstPrefill + 8, `prefilled ${chat.lastPrefill} of ${fullPrompt}`);
  assert.equal(chat.messages.length, 5);

  // The same conversation rendered at once and prefilled from scratch picks the same greedy reply.
  const fresh = textModel();
  const template = fresh.tokenizer.chatTemplate!;
  const rendered = template.render(chat.messages.slice(0, 4), { addGenerationPrompt: true });
  fresh.session.reset();
  const again = await collect(new Generation(fresh, fresh.encode(rendered, false), { maxTokens: 6, stopTokens: fresh.stopTokens() }));
  assert.deepEqual(reply2.map((s) => s.token), again.map((s) => s.token));
});
