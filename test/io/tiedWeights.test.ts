import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { SpecError } from '../../src/core/errors.js';
import { Tensor } from '../../src/core/tensor.js';
import { WeightStore } from '../../src/core/weightStore.js';
import { DecodeSession } from '../../src/engine/decode.js';
import type { VolumetricNetwork } from '../../src/grid/network.js';
import { networkToJson, serializeNetwork } from '../../src/grid/persistence.js';
import { buildNetwork } from '../../src/grid/spec.js';
import { loadNetworkFile, saveNetworkFile } from '../../src/io/modelFiles.js';
import { loadUniversalFile, openSafetensors, saveNetworkSafetensors } from '../../src/io/safetensorsFiles.js';
import { llamaLayers } from '../../src/llm/llama.js';
import { importLlama } from '../../src/llm/llamaFiles.js';
import { ROOT } from '../helpers.js';

const LLAMA = join(ROOT, 'test/fixtures/llama/llama');
const CLI = join(ROOT, 'dist/src/cli/main.js');
const PROMPT = new Tensor(Float32Array.from([536, 10, 200, 33, 400, 7, 99]), [1, 7]);

const logits = (net: VolumetricNetwork) => new DecodeSession(net, 8).forward(PROMPT).data;

test('a tied LM head is saved as tied_to the embedding: one tensor, smaller files, ties and logits survive JSON and safetensors', () => {
  const model = importLlama(LLAMA);
  const { vocabSize: vocab, hiddenSize: d } = model.config;
  const want = logits(model.network);
  const dir = mkdtempSync(join(tmpdir(), 'loom-tied-'));
  try {
    const json = join(dir, 'm.json');
    const st = join(dir, 'm.safetensors');
    saveNetworkFile(model.network, json);
    saveNetworkSafetensors(model.network, st);

    const head = (JSON.parse(readFileSync(json, 'utf8')) as { layers: Record<string, unknown>[] }).layers.find((l) => l.x === 3 && l.l === 1)!;
    assert.equal(head.type, 'Dense');
    assert.deepEqual(head.tied_to, { z: 0, y: 0, x: 0, l: 0 });
    assert.equal(head.weights, undefined);
    const names = openSafetensors(st).tensors.map((t) => t.name);
    assert.ok(names.includes('grid.0.0.0.0.weights'));
    assert.ok(!names.some((n) => n.startsWith('grid.0.0.3.1.')), `no LM head tensor: ${names.join(', ')}`);

    for (const back of [loadNetworkFile(json), loadUniversalFile(st).network!]) {
      const layers = llamaLayers(back, model.config);
      assert.equal(layers.lmHead.weights, layers.embedding.weights);
      assert.deepEqual(logits(back), want);
    }
    assert.equal(serializeNetwork(loadNetworkFile(json)), readFileSync(json, 'utf8'));

    // Untied (a copy of the matrix in the head), both files carry the vocab × hidden matrix twice.
    const untied = importLlama(LLAMA).network;
    const { lmHead } = llamaLayers(untied, model.config);
    const copy = new WeightStore(lmHead.weights!.count);
    copy.master.set(lmHead.weights!.master);
    lmHead.weights = copy;
    saveNetworkFile(untied, join(dir, 'untied.json'));
    saveNetworkSafetensors(untied, join(dir, 'untied.safetensors'));
    const matrixBytes = vocab * d * 4;
    assert.ok(statSync(join(dir, 'untied.safetensors')).size - statSync(st).size >= matrixBytes);
    assert.ok(statSync(join(dir, 'untied.json')).size - statSync(json).size >= matrixBytes * 1.3, 'base64 of the matrix');
    // The Loom safetensors file is the HF checkpoint's size plus the zero biases and the spec.
    const hf = statSync(join(LLAMA, 'model.safetensors')).size;
    assert.ok(statSync(st).size < hf + 16 * 1024, `${statSync(st).size} bytes vs HF's ${hf}`);
    assert.equal(JSON.stringify(networkToJson(untied)).includes('tied_to'), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('loom convert keeps tied embeddings tied: HF folder → JSON → safetensors → JSON round-trips byte for byte', () => {
  const dir = mkdtempSync(join(tmpdir(), 'loom-tied-cli-'));
  const loom = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  try {
    const first = loom('convert', LLAMA, join(dir, 'a.json'));
    assert.equal(first.status, 0, first.stderr);
    assert.match(first.stdout, /15 layers, 109888 parameters \(1 tied layer sharing another's\)/);
    assert.equal(loom('convert', join(dir, 'a.json'), join(dir, 'a.safetensors')).status, 0);
    assert.equal(loom('convert', join(dir, 'a.safetensors'), join(dir, 'b.json')).status, 0);
    assert.equal(readFileSync(join(dir, 'b.json'), 'utf8'), readFileSync(join(dir, 'a.json'), 'utf8'));
    assert.match(loom('info', join(dir, 'b.json')).stdout, /\(0,0,3,1\) +Dense .* tied to \(0,0,0,0\)\n/);
    const model = importLlama(LLAMA);
    const back = loadNetworkFile(join(dir, 'b.json'));
    assert.deepEqual(logits(back), logits(model.network));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('tied_to errors name the field', () => {
  const embed = { x: 0, l: 0, type: 'Embedding', vocab_size: 5, embedding_dim: 3 };
  const head = { x: 0, l: 1, type: 'Dense', input_height: 3, output_height: 5 };
  const spec = (...layers: Record<string, unknown>[]) => ({ layers_per_cell: 2, layers });
  const fails = (doc: unknown, pattern: RegExp) =>
    assert.throws(() => buildNetwork(doc), (e: unknown) => e instanceof SpecError && pattern.test(e.message), JSON.stringify(doc));

  const net = buildNetwork(spec(embed, { ...head, tied_to: { l: 0 } }));
  assert.equal(net.getLayer(0, 0, 0, 1)!.weights, net.getLayer(0, 0, 0, 0)!.weights);
  fails(spec(embed, { ...head, output_height: 4, tied_to: { l: 0 } }), /layers\[1\]\.tied_to: Dense at \(0,0,0,1\) has 12 parameters, Embedding at \(0,0,0,0\) has 15/);
  fails(spec(embed, { ...head, tied_to: { l: 1 } }), /layers\[1\]\.tied_to: a layer cannot be tied to itself/);
  fails(spec(embed, { ...head, tied_to: { l: 2 } }), /layers\[1\]\.tied_to\.l: expected an integer in 0\.\.1, got 2/);
  fails({ layers_per_cell: 3, layers: [embed, { ...head, tied_to: { l: 2 } }] }, /layers\[1\]\.tied_to: no layer at \(0,0,0,2\)/);
  fails(spec(embed, { ...head, tied_to: { l: 0, w: 1 } }), /layers\[1\]\.tied_to\.w: unknown field/);
  fails(spec({ ...embed, tied_to: { l: 1 } }, { ...head, tied_to: { l: 0 } }), /is itself tied/);
  const weights = Buffer.alloc(15 * 4).toString('base64');
  fails(spec(embed, { ...head, tied_to: { l: 0 }, weights }), /layers\[1\]\.weights: a tied layer stores no weights of its own/);
  fails(
    spec(embed, { x: 0, l: 1, type: 'Sequential', sequential_layers: [{ ...head, tied_to: { l: 0 } }] }),
    /layers\[1\]\.sequential_layers\[0\]\.tied_to: only grid layers can be tied/,
  );
});
