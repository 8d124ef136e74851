import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
  // The default runs every core (the packed matrices in the pool's memory); one thread gives the same tokens.
  assert.equal(loom(['generate', MODEL, '--prompt', 'hi', '--max-tokens', '8', ...flags, '--threads', '1']).stdout, a.stdout);
  assert.equal(loom(['generate', MODEL, '--prompt', 'hi', '--max-tokens', '8', ...flags, '--threads', '3']).stdout, a.stdout);
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
    // A decoder's tensors alone: one line pointing at the folder, whose config.json says how to mount them.
    const lone = loom(['convert', join(MODEL, 'model.safetensors'), join(dir, 'x.json')]);
    assert.equal(lone.code, 2);
    assert.equal(lone.stderr, `loom: convert: ${join(MODEL, 'model.safetensors')} holds a Llama-style decoder's tensors; its config.json says how to mount them, so convert the model folder: loom convert ${MODEL} ${join(dir, 'x.json')}\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('generate, chat, convert and info errors are one readable line with the usual exit codes', () => {
  const dir = mkdtempSync(join(tmpdir(), 'loom-llm-errors-'));
  const oneLine = (r: ReturnType<typeof loom>, code: number, pattern: RegExp) => {
    assert.equal(r.code, code, r.stderr);
    assert.equal(r.stderr.split('\n').length, 2, `one line: ${r.stderr}`);
    assert.match(r.stderr, pattern);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  };
  try {
    cpSync(MODEL, join(dir, 'm'), { recursive: true });
    const config = JSON.parse(readFileSync(join(MODEL, 'config.json'), 'utf8')) as Record<string, unknown>;
    oneLine(loom(['generate', join(dir, 'missing'), '--prompt', 'x']), 1, /^loom: .*missing\/config\.json: no such file/);
    oneLine(loom(['generate', MODEL]), 2, /^loom: generate: missing --prompt <text>/);
    oneLine(loom(['chat']), 2, /^loom: chat: missing model-dir/);
    writeFileSync(join(dir, 'm', 'config.json'), JSON.stringify({ ...config, rope_parameters: { rope_type: 'yarn', factor: 4 } }));
    oneLine(loom(['generate', join(dir, 'm'), '--prompt', 'x']), 1, /config\.json: rope_parameters\.rope_type: expected "default", "linear", "llama3", got "yarn"/);
    oneLine(loom(['info', join(dir, 'm')]), 1, /rope_parameters\.rope_type/);
    writeFileSync(join(dir, 'm', 'config.json'), '{"hidden_size": 3');
    oneLine(loom(['convert', join(dir, 'm'), join(dir, 'o.json')]), 1, /config\.json: not valid JSON/);
    writeFileSync(join(dir, 'm', 'config.json'), JSON.stringify(config));
    writeFileSync(join(dir, 'm', 'model.safetensors'), 'not a safetensors file');
    oneLine(loom(['generate', join(dir, 'm'), '--prompt', 'x']), 1, /model\.safetensors/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
