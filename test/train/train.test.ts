import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NumericError } from '../../src/core/errors.js';
import { Tensor } from '../../src/core/tensor.js';
import { backwardNetwork, forwardNetwork } from '../../src/engine/run.js';
import { kernelMode, setKernelBackend } from '../../src/kernels/backend.js';
import { computeLoss } from '../../src/train/losses.js';
import type { Dataset } from '../../src/data/dataset.js';
import { deserializeNetwork, serializeNetwork } from '../../src/grid/persistence.js';
import { AdamW, optimizerFromState, Sgd } from '../../src/train/optimizers.js';
import { cosineAnnealingLR } from '../../src/train/schedulers.js';
import { evaluate, train } from '../../src/train/train.js';
import { mlp, randomArray } from '../helpers.js';

/** Two Gaussian-ish blobs per class on a ring: a small seeded classification task. */
function ringTask(count: number, seed: number): Dataset {
  const noise = randomArray(count * 2, seed, 0.3);
  const inputs = new Float32Array(count * 2);
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const c = i % 3;
    const angle = (c * 2 * Math.PI) / 3;
    inputs[2 * i] = Math.cos(angle) * 2 + noise[2 * i];
    inputs[2 * i + 1] = Math.sin(angle) * 2 + noise[2 * i + 1];
    labels[i] = c;
  }
  return { count, inputs, inputShape: [2], labels, targetWidth: 3, source: 'ring' };
}

const net = () => mlp([{ in: 2, out: 16, activation: 'Tanh' }, { in: 16, out: 3 }], 4);

test('training lowers the loss and reaches high accuracy', () => {
  const n = net();
  const data = ringTask(300, 1);
  const before = evaluate(n, data, 'cross_entropy');
  const { history } = train(n, data, { epochs: 10, batchSize: 16, loss: 'cross_entropy', optimizer: new AdamW({ lr: 0.02 }), seed: 3 });
  assert.equal(history.length, 10);
  assert.ok(history[9].loss < history[0].loss / 2, `loss ${history[0].loss} → ${history[9].loss}`);
  const after = evaluate(n, data, 'cross_entropy');
  assert.ok(after.loss < before.loss);
  assert.ok(after.accuracy! > 0.95, `accuracy ${after.accuracy}`);
});

test('runs are bit-reproducible for a seed, and differ for another seed', () => {
  const run = (seed: number) => {
    const n = net();
    train(n, ringTask(120, 2), { epochs: 3, batchSize: 10, loss: 'cross_entropy', optimizer: new Sgd({ lr: 0.1, momentum: 0.9 }), seed });
    return serializeNetwork(n);
  };
  assert.equal(run(5), run(5));
  assert.notEqual(run(5), run(6));
});

test('AdamW training with its parameters in WebAssembly memory gives the bits of a loop that keeps them in plain arrays, and the network saves and reloads bit for bit', () => {
  const before = kernelMode();
  try {
    setKernelBackend('wasm');
    const data = ringTask(96, 4);
    // The 64→32 layer's 2080 parameters take the resident AdamW path.
    const fresh = () => mlp([{ in: 2, out: 64, activation: 'Tanh' }, { in: 64, out: 32, activation: 'ReLU' }, { in: 32, out: 3 }], 7);
    const resident = fresh();
    const original = resident.getLayer(0, 0, 1, 0)!.weights!.master;
    train(resident, data, { epochs: 2, batchSize: 16, loss: 'cross_entropy', optimizer: new AdamW({ lr: 0.01 }), shuffle: false });
    assert.notEqual(resident.getLayer(0, 0, 1, 0)!.weights!.master, original, 'the master moved into the optimizer\'s memory');

    // The same batches by hand: fresh gradient arrays, parameters handed over without their store (copied in and out each step).
    const plain = fresh();
    const optimizer = new AdamW({ lr: 0.01 });
    for (let epoch = 0; epoch < 2; epoch++) {
      for (let b = 0; b < 96; b += 16) {
        const input = Tensor.from([16, 2], data.inputs.slice(b * 2, (b + 16) * 2));
        const { output, trace } = forwardNetwork(plain, input, { keepTrace: true });
        const loss = computeLoss('cross_entropy', output, { labels: data.labels!.slice(b, b + 16) });
        const { gradients } = backwardNetwork(plain, trace!, loss.grad, { inputGradient: false });
        optimizer.step(gradients.map(({ key, layer, grad }) => ({ key, values: layer.weights!.master, grad })));
        for (const { layer } of gradients) layer.weights!.markMasterChanged();
      }
    }
    const text = serializeNetwork(resident);
    assert.equal(text, serializeNetwork(plain));
    assert.equal(serializeNetwork(deserializeNetwork(text)), text);
  } finally {
    setKernelBackend(before);
  }
});

test('resuming from saved optimizer state matches an uninterrupted run exactly', () => {
  const data = ringTask(90, 3);
  const config = (optimizer: AdamW, epochs: number, startEpoch = 1) => {
    const scheduler = cosineAnnealingLR(0.05, 4 * 9, 0.001);
    scheduler.seek!(optimizer.steps);
    return { epochs, batchSize: 10, loss: 'cross_entropy' as const, optimizer, scheduler, seed: 9, startEpoch };
  };
  const straight = net();
  train(straight, data, config(new AdamW({ lr: 0.05 }), 4));

  const first = net();
  const opt = new AdamW({ lr: 0.05 });
  train(first, data, config(opt, 2));
  const saved = JSON.parse(serializeNetwork(first, { optimizer_state: opt.state() }));
  const resumed = deserializeNetwork(JSON.stringify(saved));
  const restored = optimizerFromState(saved.optimizer_state) as AdamW;
  train(resumed, data, config(restored, 2, 3));
  assert.equal(serializeNetwork(resumed), serializeNetwork(straight));
});

test('NaN in training stops with an error naming the layer', () => {
  const data = ringTask(30, 4);
  data.inputs[7] = NaN;
  assert.throws(
    () => train(net(), data, { epochs: 1, batchSize: 30, loss: 'cross_entropy', optimizer: new Sgd({ lr: 0.1 }) }),
    (e: unknown) => e instanceof NumericError && /output of Dense at \(0,0,0,0\) \(float32\) is NaN/.test((e as Error).message),
  );
});

test('validation split reports validation metrics', () => {
  const { history } = train(net(), ringTask(100, 5), { epochs: 2, batchSize: 10, loss: 'cross_entropy', optimizer: new AdamW({ lr: 0.01 }), validationSplit: 0.2 });
  assert.ok(history[1].validationLoss !== undefined && history[1].validationAccuracy !== undefined);
});
