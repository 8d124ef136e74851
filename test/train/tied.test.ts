import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildNetwork } from '../../src/grid/spec.js';
import { createOptimizer } from '../../src/train/optimizers.js';
import { train } from '../../src/train/train.js';
import { assertClose, fixture } from '../helpers.js';

interface TiedFixture {
  vocab: number;
  dim: number;
  lr: number;
  weight_decay: number;
  init: number[];
  ids: number[];
  labels: number[];
  losses: number[];
  final: number[];
  tolerance: { rtol: number; atol: number };
}

test('a tied embedding/LM head trains like one PyTorch parameter: summed gradients, one AdamW state', () => {
  const f = fixture<TiedFixture>('tied_training.json');
  const net = buildNetwork({
    layers_per_cell: 2,
    layers: [
      { x: 0, l: 0, type: 'Embedding', vocab_size: f.vocab, embedding_dim: f.dim },
      { x: 0, l: 1, type: 'Dense', input_height: f.dim, output_height: f.vocab, tied_to: { l: 0 } },
    ],
  });
  const store = net.getLayer(0, 0, 0, 0)!.weights!;
  assert.equal(net.getLayer(0, 0, 0, 1)!.weights, store);
  assert.equal(net.parameterCount(), f.vocab * f.dim, 'the shared matrix counts once');
  store.master.set(f.init);
  store.markMasterChanged();

  const losses: number[] = [];
  train(net, { count: f.ids.length, inputs: Float32Array.from(f.ids), inputShape: [1], labels: Int32Array.from(f.labels), targetWidth: f.vocab, source: 'fixture' }, {
    epochs: f.losses.length,
    batchSize: f.ids.length,
    loss: 'cross_entropy',
    optimizer: createOptimizer({ type: 'adamw', lr: f.lr, weightDecay: f.weight_decay }),
    shuffle: false,
    onBatch: (p) => losses.push(p.loss),
  });
  assertClose(losses, f.losses, f.tolerance.rtol, f.tolerance.atol, 'loss trajectory');
  assertClose(store.master, f.final, f.tolerance.rtol, f.tolerance.atol, 'final shared matrix');
});
