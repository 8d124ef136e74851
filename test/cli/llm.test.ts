import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { TextModel } from '../../src/llm/chat.js';
import { importLlama } from '../../src/llm/llamaFiles.js';
import { ROOT } from '../helpers.js';

const CLI = join(ROOT, 'dist/src/cli/main.js');
const MODEL = join(ROOT, 'test/fixtures/llama/llama');

function loom(args: string[], input?: string): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', input });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('loom generate streams the same greedy text as the API; seeded sampling repeats', async () => {
  const m = importLlama(MODEL);
  const model = new TextModel(m.network, m.config, m.tokenizer!);
  let want = '';
  for await (const s of model.generate('hello world', { maxTokens: 10 })) want += s.text;
  const r = loom(['generate', MODEL, '--prompt', 'hello world', '--max-tokens', '10']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${want}\n`);
  const flags = ['--temperature', '0.9', '--top-k', '50', '--top-p', '0.9', '--repetition-penalty', '1.2', '--seed', '5', '--dtype', 'q4_0'];
  const a = loom(['generate', MODEL, '--prompt', 'hi', '--max-tokens', '8', ...flags]);
  const b = loom(['generate', MODEL, '--prompt', 'hi', '--max-tokens', '8', ...flags]);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(a.stdout, b.stdout);
  const bad = loom(['generate', MODEL, '--prompt', 'x', '--dtype', 'q3']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--dtype: expected one of q4_0, int8/);
});

test('loom chat answers each piped line; loom info and loom convert on a model folder', () => {
  const r = loom(['chat', MODEL, '--max-tokens', '4', '--system', 'be brief'], 'hello\nsecond\n');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.split('\n').length, 3);
  const info = loom(['info', MODEL]);
  assert.equal(info.code, 0, info.stderr);
  assert.match(info.stdout, /architecture llama-decoder/);
  assert.match(info.stdout, /LlamaForCausalLM: hidden 64, 2 layers, 4 heads \(2 KV, head_dim 16\)/);
  const dir = mkdtempSync(join(tmpdir(), 'loom-convert-'));
  try {
    assert.equal(loom(['convert', MODEL, join(dir, 'm.json')]).code, 0);
    assert.equal(loom(['convert', join(dir, 'm.json'), join(dir, 'm.safetensors')]).code, 0);
    const back = loom(['convert', join(dir, 'm.safetensors'), join(dir, 'back.json')]);
    assert.equal(back.code, 0, back.stderr);
    assert.match(loom(['info', join(dir, 'back.json')]).stdout, /15 layers/);
    assert.equal(loom(['convert', MODEL, join(dir, 'm.txt')]).code, 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
