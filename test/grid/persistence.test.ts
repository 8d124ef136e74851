import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ALL_DTYPES, DType, dtypeName } from '../../src/core/dtype.js';
import { NumericError } from '../../src/core/errors.js';
import { Tensor } from '../../src/core/tensor.js';
import { forwardNetwork } from '../../src/engine/run.js';
import { deserializeNetwork, serializeNetwork } from '../../src/grid/persistence.js';
import { buildNetwork } from '../../src/grid/spec.js';
import { loadNetworkFile, saveNetworkFile } from '../../src/io/modelFiles.js';
import { assertClose, fixture, mlp, randomArray, ROOT } from '../helpers.js';

function sampleNet() {
  // Dense layers with and without bias, a residual, a remote link and a disabled cell.
  return buildNetwork({
    id: 'sample', depth: 1, rows: 2, cols: 2, layers_per_cell: 1,
    layers: [
      { z: 0, y: 0, x: 0, l: 0, type: 'Dense', activation: 'Tanh', input_height: 7, output_height: 5, use_bias: true },
      { z: 0, y: 0, x: 1, l: 0, type: 'Dense', activation: 'GELU', input_height: 5, output_height: 5 },
      { z: 0, y: 1, x: 0, l: 0, type: 'Residual', is_remote_link: true, target_z: 0, target_y: 0, target_x: 0, target_l: 0 },
      { z: 0, y: 1, x: 1, l: 0, type: 'Dense', activation: 'Linear', input_height: 5, output_height: 3, use_bias: true, is_disabled: false },
    ],
  }, { seed: 3 });
}

test('every dtype: morph → save → load → run reproduces the pre-save output bit for bit, and re-saving is byte-identical', () => {
  const x = Tensor.from([3, 7], randomArray(21, 5));
  for (const dtype of ALL_DTYPES) {
    const net = sampleNet();
    net.morph(dtype);
    const before = forwardNetwork(net, x).output.data;
    const text = serializeNetwork(net);
    const loaded = deserializeNetwork(text);
    const after = forwardNetwork(loaded, x).output.data;
    assert.deepEqual(new Uint32Array(after.buffer), new Uint32Array(before.buffer), `${dtypeName(dtype)}: outputs differ after reload`);
    assert.equal(serializeNetwork(loaded), text, `${dtypeName(dtype)}: re-saved JSON differs`);
    for (const layer of loaded.layers()) assert.equal(layer.dtype, dtype);
  }
});

test('weights are stored natively packed in the active dtype', () => {
  const net = mlp([{ in: 64, out: 32, bias: false }]);
  for (const [dtype, bytes] of [[DType.Float32, 8192], [DType.Int8, 2048], [DType.Int4, 1024], [DType.Int2, 512], [DType.Binary, 256], [DType.Float16, 4096]] as const) {
    net.morph(dtype);
    const doc = JSON.parse(serializeNetwork(net));
    assert.equal(Buffer.from(doc.layers[0].weights, 'base64').length, bytes, dtypeName(dtype));
    assert.equal(doc.layers[0].native, true);
    assert.equal(doc.layers[0].dtype, dtypeName(dtype));
  }
});

test('files are pretty-printed with two-space indentation and the original\'s field names', () => {
  const text = serializeNetwork(sampleNet());
  assert.match(text, /^\{\n  "id": "sample",\n  "depth": 1,\n  "rows": 2,\n  "cols": 2,\n  "layers_per_cell": 1,\n  "layers": \[\n    \{\n      "z": 0,/);
  const doc = JSON.parse(text);
  assert.deepEqual(Object.keys(doc.layers[0]).slice(0, 7), ['z', 'y', 'x', 'l', 'type', 'activation', 'dtype']);
  assert.equal(doc.layers[2].is_remote_link, true);
});

test('a model written by another program from the format alone runs to PyTorch\'s answer', () => {
  const input = fixture('foreign/input.json');
  const x = Tensor.from(input.shape, input.data);
  for (const name of ['float32', 'int8']) {
    const net = loadNetworkFile(join(ROOT, `test/fixtures/foreign/mlp-${name}.json`));
    const expected = fixture(`foreign/expected-${name}.json`);
    const out = forwardNetwork(net, x).output;
    assert.deepEqual(out.shape, expected.shape);
    assertClose(out.data, expected.data, 1e-5, 1e-6, `foreign ${name} output`);
  }
});

test('saves are atomic and loading refuses NaN weights unless allowed', () => {
  const dir = mkdtempSync(join(tmpdir(), 'loom-persist-'));
  const path = join(dir, 'model.json');
  const net = mlp([{ in: 3, out: 2 }]);
  saveNetworkFile(net, path);
  const first = readFileSync(path, 'utf8');
  net.getLayer(0, 0, 0, 0)!.weights!.master[1] = NaN;
  net.getLayer(0, 0, 0, 0)!.weights!.markMasterChanged();
  saveNetworkFile(net, path);
  assert.throws(() => loadNetworkFile(path), NumericError);
  assert.throws(() => loadNetworkFile(path), /layers\[0\]\.weights: parameter 1 of Dense at \(0,0,0,0\) is NaN/);
  assert.ok(Number.isNaN(loadNetworkFile(path, { allowNonFinite: true }).getLayer(0, 0, 0, 0)!.weights!.master[1]));
  writeFileSync(path, first);
  assert.equal(loadNetworkFile(path).getLayer(0, 0, 0, 0)!.weights!.count, 8);
});

test('legacy files with a float32 master (native false) load', () => {
  const net = mlp([{ in: 3, out: 2, bias: false }]);
  const master = net.getLayer(0, 0, 0, 0)!.weights!.master;
  const doc = JSON.parse(serializeNetwork(net));
  doc.layers[0].native = false;
  doc.layers[0].dtype = 'int8';
  doc.layers[0].weights = Buffer.from(master.buffer, master.byteOffset, master.byteLength).toString('base64');
  const loaded = buildNetwork(doc);
  assert.deepEqual(loaded.getLayer(0, 0, 0, 0)!.weights!.master, master);
  assert.equal(loaded.getLayer(0, 0, 0, 0)!.dtype, DType.Int8);
});
