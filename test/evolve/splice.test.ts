import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng } from '../../src/core/rng.js';
import type { Dataset } from '../../src/data/dataset.js';
import { cloneNetwork } from '../../src/evolve/clone.js';
import { spliceNetworks } from '../../src/evolve/splice.js';
import { evaluate, train } from '../../src/train/train.js';
import { Sgd } from '../../src/train/optimizers.js';
import { SpecError } from '../../src/core/errors.js';
import { mlp } from '../helpers.js';

/** Two Gaussian blobs per class in 2D, 4 classes. */
function blobs(n: number, seed: number): Dataset {
  const rng = new Rng(seed);
  const inputs = new Float32Array(n * 2);
  const labels = new Int32Array(n);
  const centers = [[1, 1], [-1, 1], [-1, -1], [1, -1]];
  for (let i = 0; i < n; i++) {
    const c = rng.int(4);
    labels[i] = c;
    inputs[i * 2] = centers[c][0] + 0.35 * rng.normal();
    inputs[i * 2 + 1] = centers[c][1] + 0.35 * rng.normal();
  }
  return { count: n, inputs, inputShape: [2], labels, targetWidth: 4, source: 'blobs' };
}

const masters = (net: ReturnType<typeof mlp>) => net.layers().map((l) => Array.from(l.weights!.master));

test('a splice of two trained parents is at least as good as the worse parent (blend; point and uniform within 5%)', () => {
  const ancestor = mlp([{ in: 2, out: 16, activation: 'Tanh' }, { in: 16, out: 4 }], 5);
  const parents = [1, 2].map((seed) => {
    const p = cloneNetwork(ancestor);
    train(p, blobs(256, 10 + seed), { epochs: 4, batchSize: 16, loss: 'cross_entropy', optimizer: new Sgd({ lr: 0.1 }), seed });
    return p;
  });
  const test = blobs(400, 99);
  const [lossA, lossB] = parents.map((p) => evaluate(p, test, 'cross_entropy').loss);
  const accs = parents.map((p) => evaluate(p, test, 'cross_entropy').accuracy!);
  const before = parents.map(masters);
  for (const cfg of [
    { mode: 'blend' as const },
    { mode: 'blend' as const, fitnessA: 1 / lossA, fitnessB: 1 / lossB },
    { mode: 'point' as const, splitRatio: 0.5 },
    { mode: 'uniform' as const, seed: 3 },
  ]) {
    const { child, blendedCount, similarities } = spliceNetworks(parents[0], parents[1], cfg);
    assert.equal(blendedCount, 2);
    assert.deepEqual(Object.keys(similarities), ['0,0,0,0', '0,0,1,0']);
    const e = evaluate(child, test, 'cross_entropy');
    // Blending stays on the segment between the parents (a shared ancestor keeps it in one basin);
    // point and uniform crossover cut through hidden units, so they are held to a 5% margin.
    const margin = cfg.mode === 'blend' ? 1 : 1.05;
    assert.ok(e.loss <= Math.max(lossA, lossB) * margin + 1e-9, `${JSON.stringify(cfg)}: child loss ${e.loss} vs parents ${lossA}, ${lossB}`);
    assert.ok(e.accuracy! >= Math.min(...accs) - (cfg.mode === 'blend' ? 0 : 0.01), `${JSON.stringify(cfg)}: child accuracy ${e.accuracy} vs parents ${accs}`);
    console.log(`# splice ${JSON.stringify(cfg)}: loss ${e.loss.toFixed(4)} (parents ${lossA.toFixed(4)}, ${lossB.toFixed(4)}), accuracy ${e.accuracy!.toFixed(4)}`);
  }
  assert.deepEqual(parents.map(masters), before, 'splicing never modifies the parents');
});

test('splice modes mix weights as specified', () => {
  const a = mlp([{ in: 3, out: 4, bias: false }], 1);
  const b = mlp([{ in: 3, out: 4, bias: false }], 2);
  const wA = a.cells[0]!.weights!.master;
  const wB = b.cells[0]!.weights!.master;
  const blend = spliceNetworks(a, b, { mode: 'blend', blendAlpha: 0.25 }).child.cells[0]!.weights!.master;
  for (let i = 0; i < 12; i++) assert.ok(Math.abs(blend[i] - (0.75 * wA[i] + 0.25 * wB[i])) < 1e-6);
  const point = spliceNetworks(a, b, { mode: 'point', splitRatio: 0.5 }).child.cells[0]!.weights!.master;
  assert.deepEqual(Array.from(point), [...Array.from(wA.subarray(0, 6)), ...Array.from(wB.subarray(6))]);
  const uniform = spliceNetworks(a, b, { mode: 'uniform', seed: 4 }).child.cells[0]!.weights!.master;
  assert.ok(Array.from(uniform).every((v, i) => v === wA[i] || v === wB[i]));
  assert.deepEqual(Array.from(spliceNetworks(a, b, { mode: 'uniform', seed: 4 }).child.cells[0]!.weights!.master), Array.from(uniform), 'seeded');
  // Fitness bias: a parent with all the fitness wins outright.
  const allA = spliceNetworks(a, b, { mode: 'blend', fitnessA: 1, fitnessB: 0 }).child.cells[0]!.weights!.master;
  assert.deepEqual(Array.from(allA), Array.from(wA));
  const allB = spliceNetworks(a, b, { mode: 'uniform', fitnessA: 0, fitnessB: 2 }).child.cells[0]!.weights!.master;
  assert.deepEqual(Array.from(allB), Array.from(wB));
  // Similarity bias: identical parents (similarity 1) blend at α = fB/(fA+fB).
  const self = spliceNetworks(a, cloneNetwork(a), { fitnessA: 1, fitnessB: 3 });
  assert.ok(Math.abs(self.similarities['0,0,0,0'] - 1) < 1e-6);
  assert.throws(() => spliceNetworks(a, b, { mode: 'cut' as never }), SpecError);
  assert.throws(() => spliceNetworks(a, b, { blendAlpha: 2 }), /blendAlpha: expected a number in \[0, 1\], got 2/);
});

test('layers that differ in type or size are kept from the first parent', () => {
  const a = mlp([{ in: 2, out: 3 }, { in: 3, out: 2 }], 1);
  const b = mlp([{ in: 2, out: 5 }], 2);
  const r = spliceNetworks(a, b, { blendAlpha: 1 });
  assert.equal(r.blendedCount, 0);
  assert.deepEqual(masters(r.child), masters(a));
});
