import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ALL_DTYPES, dtypeName } from '../../src/core/dtype.js';
import { ShapeError, SpecError } from '../../src/core/errors.js';
import { Tensor } from '../../src/core/tensor.js';
import { backwardNetwork, forwardNetwork } from '../../src/engine/run.js';
import { deserializeNetwork, serializeNetwork } from '../../src/grid/persistence.js';
import { buildNetwork } from '../../src/grid/spec.js';
import type { VolumetricNetwork } from '../../src/grid/network.js';
import '../../src/layers/embedding.js';
import { assertClose, fixture, maxRelativeDiff, randomArray } from '../helpers.js';

interface EmbeddingCase {
  vocab: number;
  dim: number;
  idsShape: number[];
  ids: number[];
  table: number[];
  gradOutput: number[];
  y: number[];
  yShape: number[];
  gradTable: number[];
}

function grid(layers: object[], seed = 3): VolumetricNetwork {
  return buildNetwork(
    { depth: 1, rows: 1, cols: layers.length, layers_per_cell: 1, layers: layers.map((l, x) => ({ z: 0, y: 0, x, l: 0, ...l })) },
    { seed },
  );
}

test('Embedding forward and table gradient match PyTorch nn.Embedding, repeated ids included', (t) => {
  const cases = fixture<{ embedding: Record<string, EmbeddingCase> }>('norms.json').embedding;
  let worst = 0;
  for (const [name, c] of Object.entries(cases)) {
    const net = grid([{ type: 'Embedding', vocab_size: c.vocab, embedding_dim: c.dim }]);
    const store = net.getLayer(0, 0, 0, 0)!.weights!;
    store.master.set(c.table);
    store.markMasterChanged();
    const ids = Tensor.from(c.idsShape, c.ids);
    const { output, trace } = forwardNetwork(net, ids, { keepTrace: true });
    assert.deepEqual(output.shape, c.yShape, name);
    assertClose(output.data, c.y, 1e-5, 1e-6, `${name} y`);
    const { gradInput, gradients } = backwardNetwork(net, trace!, Tensor.from(c.yShape, c.gradOutput));
    assertClose(gradients[0].grad, c.gradTable, 1e-5, 1e-6, `${name} gradTable`);
    assert.deepEqual(gradInput.shape, c.idsShape);
    assert.ok(gradInput.data.every((v) => v === 0), 'token ids get a zero gradient');
    worst = Math.max(worst, maxRelativeDiff(output.data, c.y), maxRelativeDiff(gradients[0].grad, c.gradTable));
  }
  t.diagnostic(`Embedding max relative diff vs PyTorch: ${worst.toExponential(2)}`);
});

test('Embedding table gradient agrees with finite differences through an activation and a Dense', () => {
  const net = grid([
    { type: 'Embedding', vocab_size: 6, embedding_dim: 4, activation: 'Tanh' },
    { type: 'Dense', input_height: 12, output_height: 3, use_bias: true, activation: 'Sigmoid' },
  ]);
  const ids = Tensor.from([2, 3], [1, 5, 1, 0, 5, 5]);
  const first = forwardNetwork(net, ids, { keepTrace: true });
  const r = randomArray(first.output.size, 99);
  const loss = (): number => forwardNetwork(net, ids).output.data.reduce((s, v, i) => s + v * r[i], 0);
  const { gradients } = backwardNetwork(net, first.trace!, new Tensor(r, first.output.shape));
  const table = net.getLayer(0, 0, 0, 0)!.weights!;
  const analytic = gradients.find((g) => g.layer === net.getLayer(0, 0, 0, 0))!.grad;
  const eps = 1e-3;
  const numeric = new Float32Array(table.count);
  for (let i = 0; i < table.count; i++) {
    const keep = table.master[i];
    table.master[i] = keep + eps;
    table.markMasterChanged();
    const up = loss();
    table.master[i] = keep - eps;
    table.markMasterChanged();
    const down = loss();
    table.master[i] = keep;
    table.markMasterChanged();
    numeric[i] = (up - down) / (2 * eps);
  }
  assertClose(analytic, numeric, 2e-2, 2e-3, 'table gradient');
  // Rows of unused ids (2, 3, 4) get exactly zero.
  assert.ok(analytic.subarray(8, 20).every((v) => v === 0));
});

test('Embedding names the layer, the id and its position for ids outside the vocabulary', () => {
  const net = grid([{ type: 'Embedding', vocab_size: 5000, embedding_dim: 2 }]);
  const ids = new Float32Array(20);
  ids[17] = 5003;
  assert.throws(
    () => forwardNetwork(net, new Tensor(ids, [1, 20])),
    (e: Error) => e instanceof ShapeError && e.message === 'Embedding at (0,0,0,0): token id 5003 at position 17 is outside the vocabulary of 5000',
  );
  assert.throws(() => forwardNetwork(net, Tensor.from([2], [0, -1])), /token id -1 at position 1 is outside the vocabulary of 5000/);
  assert.throws(() => forwardNetwork(net, Tensor.from([2], [2.5, 1])), /token id 2.5 at position 0 is not an integer in \[0, 5000\)/);
  assert.throws(() => forwardNetwork(net, Tensor.from([1], [NaN])), /token id NaN at position 0/);
});

test('Embedding config errors name the path; init is N(0, 1)', () => {
  assert.throws(() => grid([{ type: 'Embedding', embedding_dim: 4 }]), (e: Error) => e instanceof SpecError && /layers\[0\]\.vocab_size: expected a positive integer/.test(e.message));
  assert.throws(() => grid([{ type: 'Embedding', vocab_size: 4, embedding_dim: 0 }]), /layers\[0\]\.embedding_dim: expected a positive integer, got 0/);
  const w = grid([{ type: 'Embedding', vocab_size: 100, embedding_dim: 50 }]).getLayer(0, 0, 0, 0)!.weights!.master;
  const mean = w.reduce((s, v) => s + v, 0) / w.length;
  const variance = w.reduce((s, v) => s + (v - mean) ** 2, 0) / w.length;
  assert.ok(Math.abs(mean) < 0.05 && Math.abs(variance - 1) < 0.05, `mean ${mean}, variance ${variance}`);
});

test('Embedding runs in every dtype through morph and survives persistence bit for bit', () => {
  const net = grid([
    { type: 'Embedding', vocab_size: 9, embedding_dim: 5, activation: 'GELU' },
    { type: 'Dense', input_height: 15, output_height: 2, use_bias: true },
  ]);
  const ids = Tensor.from([2, 3], [8, 0, 3, 3, 7, 1]);
  for (const d of ALL_DTYPES) {
    const copy = deserializeNetwork(serializeNetwork(net));
    copy.morph(d);
    const out = forwardNetwork(copy, ids).output;
    assert.deepEqual(out.shape, [2, 2], dtypeName(d));
    assert.ok(out.data.every(Number.isFinite), `${dtypeName(d)} output is finite`);
    const text = serializeNetwork(copy);
    const reloaded = deserializeNetwork(text);
    assert.equal(serializeNetwork(reloaded), text, dtypeName(d));
    assert.deepEqual(new Uint32Array(forwardNetwork(reloaded, ids).output.data.buffer), new Uint32Array(out.data.buffer), dtypeName(d));
  }
});
