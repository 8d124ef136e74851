import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { DType, halfBitsToFloat32, float32ToHalfBits } from '../../src/core/dtype.js';
import { SpecError } from '../../src/core/errors.js';
import { Tensor } from '../../src/core/tensor.js';
import { forwardNetwork } from '../../src/engine/run.js';
import { buildNetwork } from '../../src/grid/spec.js';
import { encodeSafetensors, encodeTensor, networkToSafetensors, readSafetensors, type TensorData } from '../../src/io/safetensors.js';
import { loadUniversalFile } from '../../src/io/safetensorsFiles.js';
import { compareNatural, detectArchitecture, LLAMA_IMPORT_NOTE, loadUniversal, type Detection } from '../../src/io/universalLoader.js';
import { assertClose, fixture, maxRelativeDiff, randomArray, ROOT } from '../helpers.js';

const DIR = `${ROOT}test/fixtures/safetensors/`;
const HAVE_FIXTURES = existsSync(`${DIR}safetensors.json`) ? false : 'fixtures missing: run /usr/bin/python3 scripts/golden/safetensors.py';

interface Golden {
  tolerance: { rtol: number; atol: number };
  mlp: { x: number[]; x_shape: number[]; y: number[]; y_linear: number[]; y_shape: number[] };
  conv: { x: number[]; x_shape: number[]; y: number[]; y_shape: number[] };
}

function layerSummary(d: Detection): string[] {
  assert.ok(d.architecture === 'mlp' || d.architecture === 'conv', `expected a layer chain, got ${d.architecture}`);
  return d.layers.map((l) => (l.type === 'Dense' ? `Dense ${l.prefix} ${l.inputSize}→${l.outputSize}${l.bias ? ' +b' : ''}` : `${l.type} ${l.prefix} ${l.inputChannels}→${l.filters} k${l.kernelSize}${l.bias ? ' +b' : ''}`));
}

test('PyTorch MLP (nn.Sequential of Linear, saved by scripts/golden/safetensors.py) → universal loader → torch\'s output', { skip: HAVE_FIXTURES }, () => {
  const g = fixture<Golden>('safetensors/safetensors.json');
  const x = Tensor.from(g.mlp.x_shape, g.mlp.x);
  for (const path of [`${DIR}mlp.safetensors`, `${DIR}sharded`, `${DIR}sharded/model.safetensors.index.json`]) {
    const withRelu = loadUniversalFile(path, { activations: 'ReLU' });
    assert.equal(withRelu.detection.architecture, 'mlp');
    assert.deepEqual(layerSummary(withRelu.detection), ['Dense 0 6→16 +b', 'Dense 2 16→12', 'Dense 4 12→4 +b']);
    assert.deepEqual(withRelu.unplaced, []);
    const y = forwardNetwork(withRelu.network!, x).output;
    assert.deepEqual(y.shape, g.mlp.y_shape);
    assertClose(y.data, g.mlp.y, g.tolerance.rtol, g.tolerance.atol, `${path} y`);
    assert.ok(maxRelativeDiff(y.data, g.mlp.y) < 1e-5);

    // Without activations every layer is Linear, and a note says so.
    const linear = loadUniversalFile(path);
    assertClose(forwardNetwork(linear.network!, x).output.data, g.mlp.y_linear, g.tolerance.rtol, g.tolerance.atol, `${path} y_linear`);
    assert.ok(linear.notes.some((n) => n.includes('stores no activations')));
    const spec = linear.spec as { layers_per_cell: number; layers: Record<string, unknown>[] };
    assert.equal(spec.layers_per_cell, 3);
    assert.deepEqual(spec.layers.map((l) => [l.type, l.input_height, l.output_height, l.use_bias, l.dtype]), [
      ['Dense', 6, 16, true, 'float32'], ['Dense', 16, 12, false, 'float32'], ['Dense', 12, 4, true, 'float32'],
    ]);
  }
  const perLayer = loadUniversalFile(`${DIR}mlp.safetensors`, { activations: ['relu', 'ReLU', 'linear'] });
  assertClose(forwardNetwork(perLayer.network!, x).output.data, g.mlp.y, g.tolerance.rtol, g.tolerance.atol, 'per-layer activations');
  assert.throws(() => loadUniversalFile(`${DIR}mlp.safetensors`, { activations: ['ReLU'] }), SpecError);
  assert.throws(() => loadUniversalFile(`${DIR}mlp.safetensors`, { activations: 'Swoosh' }), SpecError);
});

test('PyTorch conv stack (Conv2d, Conv2d, Flatten, Linear) → CNN2 layers and Dense; the input size is inferred', { skip: HAVE_FIXTURES }, () => {
  const g = fixture<Golden>('safetensors/safetensors.json');
  const x = Tensor.from(g.conv.x_shape, g.conv.x);
  for (const options of [{}, { inputHeight: 8 }, { inputHeight: 8, inputWidth: 8 }]) {
    const r = loadUniversalFile(`${DIR}conv.safetensors`, { activations: 'ReLU', ...options });
    assert.equal(r.detection.architecture, 'conv');
    assert.deepEqual(layerSummary(r.detection), ['CNN2 0 2→4 k3 +b', 'CNN2 2 4→3 k3', 'Dense 5 48→5 +b']);
    assert.deepEqual(r.unplaced, []);
    assert.equal(r.notes.some((n) => n.includes('inferred as 8×8')), !('inputHeight' in options));
    const y = forwardNetwork(r.network!, x).output;
    assertClose(y.data, g.conv.y, g.tolerance.rtol, g.tolerance.atol, 'conv y');
    // The flattened input ([B, C·H·W]) works too.
    assertClose(forwardNetwork(r.network!, x.reshape([2, 128])).output.data, g.conv.y, g.tolerance.rtol, g.tolerance.atol, 'conv y (flat input)');
  }
  // A wrong input size cannot feed the classifier: the Dense layer is reported, the convs still mount.
  const wrong = loadUniversalFile(`${DIR}conv.safetensors`, { inputHeight: 9 });
  assert.deepEqual(wrong.unplaced.map((u) => u.name), ['5.weight', '5.bias']);
  assert.equal(wrong.unplaced[0].reason, 'the conv stack gives 75 values per sample (3×5×5), 5 takes 48');
  assert.equal(wrong.network!.layersPerCell, 2);
});

/** Zero-filled tensors of the given shapes (only names and shapes matter for detection). */
function headerOf(shapes: Record<string, number[]>, dtype: 'F32' | 'BF16' = 'BF16'): ReturnType<typeof readSafetensors> {
  const tensors: Record<string, TensorData> = {};
  for (const [name, shape] of Object.entries(shapes)) tensors[name] = encodeTensor(new Float32Array(shape.reduce((a, b) => a * b, 1)), shape, dtype);
  return readSafetensors(encodeSafetensors(tensors));
}

function llamaShapes(blocks: number, { h = 8, q = 8, kv = 4, inter = 12, vocab = 20, tied = false, bias = false, qkNorm = 0 } = {}): Record<string, number[]> {
  const s: Record<string, number[]> = { 'model.embed_tokens.weight': [vocab, h], 'model.norm.weight': [h] };
  if (!tied) s['lm_head.weight'] = [vocab, h];
  for (let i = 0; i < blocks; i++) {
    const p = `model.layers.${i}.`;
    Object.assign(s, {
      [`${p}input_layernorm.weight`]: [h], [`${p}post_attention_layernorm.weight`]: [h],
      [`${p}self_attn.q_proj.weight`]: [q, h], [`${p}self_attn.k_proj.weight`]: [kv, h], [`${p}self_attn.v_proj.weight`]: [kv, h], [`${p}self_attn.o_proj.weight`]: [h, q],
      [`${p}mlp.gate_proj.weight`]: [inter, h], [`${p}mlp.up_proj.weight`]: [inter, h], [`${p}mlp.down_proj.weight`]: [h, inter],
    });
    if (bias) Object.assign(s, { [`${p}self_attn.q_proj.bias`]: [q], [`${p}self_attn.k_proj.bias`]: [kv], [`${p}self_attn.v_proj.bias`]: [kv] });
    if (qkNorm) Object.assign(s, { [`${p}self_attn.q_norm.weight`]: [qkNorm], [`${p}self_attn.k_norm.weight`]: [qkNorm] });
  }
  return s;
}

test('HF Llama-style decoders are detected with their block count and dimensions', () => {
  const d = detectArchitecture(headerOf(llamaShapes(3)));
  assert.equal(d.architecture, 'llama-decoder');
  if (d.architecture !== 'llama-decoder') return;
  assert.deepEqual(d.llama, {
    prefix: 'model.', blocks: 3, hiddenSize: 8, intermediateSize: 12, vocabSize: 20, queryDim: 8, kvDim: 4,
    tiedEmbeddings: false, hasFinalNorm: true, attentionBias: false, qkNorm: false, dtype: 'BF16', missing: [],
  });
  assert.deepEqual(d.unplaced, []);
  assert.ok(d.notes.some((n) => n.includes('config.json')));

  // Tied embeddings, Qwen2-style biases, Qwen3-style q/k norms (which give the head size and counts).
  const q = detectArchitecture(headerOf(llamaShapes(2, { tied: true, bias: true, qkNorm: 2 })));
  assert.equal(q.architecture, 'llama-decoder');
  if (q.architecture !== 'llama-decoder') return;
  assert.equal(q.llama.tiedEmbeddings, true);
  assert.equal(q.llama.attentionBias, true);
  assert.equal(q.llama.qkNorm, true);
  assert.deepEqual([q.llama.headDim, q.llama.numHeads, q.llama.numKVHeads], [2, 4, 2]);

  // Missing, mis-shaped and foreign tensors are reported, not dropped silently.
  const shapes = llamaShapes(2);
  delete shapes['model.layers.1.mlp.up_proj.weight'];
  shapes['model.layers.0.self_attn.k_proj.weight'] = [5, 8];
  shapes['model.layers.0.self_attn.rotary_emb.inv_freq'] = [4];
  shapes['vision_tower.patch.weight'] = [3, 3];
  const bad = detectArchitecture(headerOf(shapes, 'F32'));
  assert.equal(bad.architecture, 'llama-decoder');
  if (bad.architecture !== 'llama-decoder') return;
  assert.deepEqual(bad.llama.missing, ['model.layers.1.mlp.up_proj.weight']);
  assert.equal(bad.llama.kvDim, 4, 'one odd block does not set the dimensions');
  const byName = (a: { name: string }, b: { name: string }): number => (a.name < b.name ? -1 : 1);
  assert.deepEqual([...bad.unplaced].sort(byName), [
    { name: 'model.layers.0.self_attn.k_proj.weight', reason: 'shape [5, 8], expected [4, 8]' },
    { name: 'model.layers.0.self_attn.rotary_emb.inv_freq', reason: 'rotary frequencies are recomputed from config.json' },
    { name: 'vision_tower.patch.weight', reason: 'not a tensor of a Llama-style decoder' },
  ]);
  // loadUniversal only detects a decoder.
  const r = loadUniversal(headerOf(llamaShapes(1)));
  assert.equal(r.network, undefined);
  assert.equal(r.detection.architecture, 'llama-decoder');
});

test('a Llama checkpoint alone points to importLlama, which mounts the same tensors with their config.json', async () => {
  const dir = `${ROOT}test/fixtures/llama/llama`;
  const r = loadUniversalFile(`${dir}/model.safetensors`);
  assert.equal(r.network, undefined);
  assert.ok(r.notes.includes(LLAMA_IMPORT_NOTE), r.notes.join(' | '));
  assert.match(LLAMA_IMPORT_NOTE, /importLlama\(dir\) from "loom\/node"/);
  assert.match(LLAMA_IMPORT_NOTE, /buildLlama\(parseLlamaConfig\(config\), tensors\)/);
  assert.doesNotMatch(LLAMA_IMPORT_NOTE, /\n/);
  // The note names real exports: the Node entry has importLlama, the main entry the byte-level pair.
  const node = await import('../../src/node.js');
  const main = await import('../../src/index.js');
  assert.equal(typeof node.importLlama, 'function');
  assert.equal(typeof main.buildLlama, 'function');
  assert.equal(typeof main.parseLlamaConfig, 'function');
  assert.equal(node.importLlama(dir).network.layers().length, 15);
});

test('what cannot be placed is reported with a reason, and the rest still mounts', () => {
  const src = headerOf({
    'fc.0.weight': [16, 6], 'fc.0.bias': [16],
    'fc.1.weight': [12, 16],
    'fc.2.weight': [4, 13], 'fc.2.bias': [4], // breaks the chain: 13 inputs after 12 outputs
    'bn.running_mean': [16],
    'norm.weight': [16],
    'odd.bias': [3],
    'wide.weight': [2, 3, 3, 4],
    'mismatch.weight': [5, 4], 'mismatch.bias': [4],
  }, 'F32');
  const r = loadUniversal(src);
  assert.equal(r.detection.architecture, 'mlp');
  assert.deepEqual(layerSummary(r.detection), ['Dense fc.0 6→16 +b', 'Dense fc.1 16→12']);
  const reasons = Object.fromEntries(r.unplaced.map((u) => [u.name, u.reason]));
  assert.deepEqual(reasons, {
    'bn.running_mean': 'not a weight or bias of a Linear or Conv layer',
    'norm.weight': 'a 1-D weight (a normalization scale?) has no Dense or Conv mapping',
    'odd.bias': 'a bias without a weight',
    'wide.weight': 'non-square kernel 3×4 (CNN2 kernels are square)',
    'mismatch.weight': 'bias shape [4] does not fit weight shape [5, 4] (expected [5])',
    'mismatch.bias': 'bias shape [4] does not fit weight shape [5, 4] (expected [5])',
    'fc.2.weight': 'does not continue the chain: 13 input features after fc.1 with 12 output features',
    'fc.2.bias': 'does not continue the chain: 13 input features after fc.1 with 12 output features',
  });
  assert.equal(r.network!.layersPerCell, 2);
  assert.deepEqual(forwardNetwork(r.network!, Tensor.from([1, 6], randomArray(6, 1))).output.shape, [1, 12]);
});

test('layers are ordered by their names\' numbers, or by matching sizes when the names do not chain', () => {
  assert.deepEqual(['10', '2', 'a.10.w', 'a.9.w', 'b'].sort(compareNatural), ['2', '10', 'a.9.w', 'a.10.w', 'b']);
  const numbered = detectArchitecture(headerOf({ '10.weight': [2, 3], '9.weight': [3, 4], '1.weight': [4, 5] }, 'F32'));
  assert.deepEqual(layerSummary(numbered), ['Dense 1 5→4', 'Dense 9 4→3', 'Dense 10 3→2']);
  // "hidden" < "input" < "output" alphabetically; the sizes say input → hidden → output.
  const named = detectArchitecture(headerOf({ 'input.weight': [8, 3], 'hidden.weight': [5, 8], 'output.weight': [2, 5] }, 'F32'));
  assert.deepEqual(layerSummary(named), ['Dense input 3→8', 'Dense hidden 8→5', 'Dense output 5→2']);
  assert.deepEqual(named.notes, ['the names do not order the Dense layers into a chain; ordered by matching features: input → hidden → output']);
  // A single unprefixed Linear.
  assert.deepEqual(layerSummary(detectArchitecture(headerOf({ weight: [3, 2], bias: [3] }, 'F32'))), ['Dense  2→3 +b']);
  assert.equal(detectArchitecture(headerOf({ 'x.y': [3] }, 'F32')).architecture, 'unknown');
});

test('a conv stack without a classifier needs its input size; CNN1 stacks mount too', () => {
  const src = headerOf({ 'c1.weight': [4, 2, 3, 3], 'c1.bias': [4], 'c2.weight': [3, 4, 3, 3] }, 'F32');
  const none = loadUniversal(src);
  assert.equal(none.network, undefined);
  assert.ok(none.notes.some((n) => n.includes('needs inputHeight')));
  assert.deepEqual(none.unplaced.map((u) => u.reason), ['the input size is unknown', 'the input size is unknown', 'the input size is unknown']);
  const r = loadUniversal(src, { inputHeight: 10, inputWidth: 7, padding: 1, stride: 2 });
  const out = forwardNetwork(r.network!, Tensor.from([1, 2, 10, 7], randomArray(140, 3))).output;
  assert.deepEqual(out.shape, [1, 3, 3, 2]);
  const spec = r.spec as { layers: Record<string, unknown>[] };
  assert.deepEqual(spec.layers.map((l) => [l.type, l.input_height, l.input_width, l.stride, l.padding]), [['CNN2', 10, 7, 2, 1], ['CNN2', 5, 4, 2, 1]]);

  const conv1 = loadUniversal(headerOf({ '0.weight': [4, 2, 3], '0.bias': [4], '2.weight': [5, 16] }, 'F32'));
  assert.deepEqual(layerSummary(conv1.detection), ['CNN1 0 2→4 k3 +b', 'Dense 2 16→5']);
  assert.ok(conv1.notes.some((n) => n.includes('inferred as 6')));
  assert.deepEqual(forwardNetwork(conv1.network!, Tensor.from([2, 12], randomArray(24, 4))).output.shape, [2, 5]);
});

test('float16 weights keep their precision: the layer computes in float16 with exactly the stored values', () => {
  const w = randomArray(12, 9);
  const h = w.map((v) => halfBitsToFloat32(float32ToHalfBits(v)));
  const src = readSafetensors(encodeSafetensors({ 'l.weight': encodeTensor(w, [3, 4], 'F16'), 'l.bias': encodeTensor([0.5, -1, 2], [3], 'F16') }));
  const r = loadUniversal(src);
  const layer = r.network!.getLayer(0, 0, 0, 0)!;
  assert.equal(layer.dtype, DType.Float16);
  assert.deepEqual([...layer.weights!.getActive(DType.Float16)], [...h, 0.5, -1, 2]);
});

test('Loom-written files mount from their embedded spec, bit-exactly; the original\'s flat export is recognized', () => {
  const net = buildNetwork({
    depth: 1, rows: 1, cols: 2, layers_per_cell: 1,
    layers: [
      { z: 0, y: 0, x: 0, l: 0, type: 'Dense', activation: 'GELU', input_height: 5, output_height: 4, use_bias: true },
      { z: 0, y: 0, x: 1, l: 0, type: 'Dense', activation: 'Tanh', input_height: 4, output_height: 3 },
    ],
  }, { seed: 4 });
  net.morph(DType.Int8);
  const r = loadUniversal(readSafetensors(networkToSafetensors(net)));
  assert.equal(r.detection.architecture, 'loom');
  assert.deepEqual(r.unplaced, []);
  assert.deepEqual(r.weights!.loaded, ['grid.0.0.0.0.weights', 'grid.0.0.1.0.weights']);
  const x = Tensor.from([2, 5], randomArray(10, 8));
  assert.deepEqual([...forwardNetwork(r.network!, x).output.data], [...forwardNetwork(net, x).output.data]);

  const bare = detectArchitecture(readSafetensors(networkToSafetensors(net, { includeSpec: false })));
  assert.equal(bare.architecture, 'unknown');
  assert.ok(bare.notes[0].includes('without its network spec'));

  const flat = detectArchitecture(headerOf({ 'layer_0.weights': [20], 'layer_1.weights': [12] }, 'F32'));
  assert.equal(flat.architecture, 'loom-flat');
  assert.equal(loadUniversal(headerOf({ 'layer_0.weights': [20] }, 'F32')).network, undefined);
});
