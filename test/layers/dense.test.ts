import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { Tensor } from '../../src/core/tensor.js';
import { backwardNetwork, forwardNetwork } from '../../src/engine/run.js';
import { ALL_ACTIVATIONS, activationName } from '../../src/layers/activations.js';
import { gradCheck } from '../gradcheck.js';
import { assertClose, fixture, mlp, randomArray, ROOT } from '../helpers.js';

interface DenseCase {
  activation: string;
  batch: number;
  in: number;
  out: number;
  x: number[];
  W: number[];
  b: number[] | null;
  gradOutput: number[];
  y: number[];
  preActivation: number[];
  gradInput: number[];
  gradW: number[];
  gradB: number[] | null;
}

const FIXTURE = `${ROOT}test/fixtures/dense.json`;

test('Dense forward and backward match PyTorch (scripts/golden/dense.py)', { skip: existsSync(FIXTURE) ? false : 'fixture missing: run npm run golden' }, () => {
  const { cases } = fixture<{ cases: Record<string, DenseCase> }>('dense.json');
  assert.ok(Object.keys(cases).length >= 9);
  for (const [name, c] of Object.entries(cases)) {
    const net = mlp([{ in: c.in, out: c.out, activation: c.activation, bias: c.b !== null }]);
    const store = net.getLayer(0, 0, 0, 0)!.weights!;
    store.master.set(c.W);
    if (c.b) store.master.set(c.b, c.in * c.out);
    store.markMasterChanged();
    const x = Tensor.from([c.batch, c.in], c.x);
    const { output, trace } = forwardNetwork(net, x, { keepTrace: true });
    assertClose(output.data, c.y, 1e-5, 1e-6, `${name} y`);
    assertClose(trace!.caches[0].pre!.data, c.preActivation, 1e-5, 1e-6, `${name} preActivation`);
    const { gradInput, gradients } = backwardNetwork(net, trace!, Tensor.from([c.batch, c.out], c.gradOutput));
    assertClose(gradInput.data, c.gradInput, 1e-5, 1e-6, `${name} gradInput`);
    const g = gradients[0].grad;
    assertClose(g.subarray(0, c.in * c.out), c.gradW, 1e-5, 1e-6, `${name} gradW`);
    if (c.gradB) assertClose(g.subarray(c.in * c.out), c.gradB, 1e-5, 1e-6, `${name} gradB`);
  }
});

test('Dense gradients agree with finite differences for every activation', () => {
  for (const act of ALL_ACTIVATIONS) {
    const net = mlp([{ in: 5, out: 4, activation: activationName(act) }, { in: 4, out: 3, activation: activationName(act) }], 3);
    // The smallest |pre-activation| here is 8e-4: a small step keeps central differences off the ReLU kinks.
    const x = Tensor.from([3, 5], randomArray(15, 17));
    gradCheck(net, x, { eps: 2e-4, atol: 3e-3 });
  }
});

test('Dense rejects inputs of the wrong width with a ShapeError naming the layer', () => {
  const net = mlp([{ in: 4, out: 2 }]);
  assert.throws(() => forwardNetwork(net, Tensor.zeros([2, 5])), /Dense at \(0,0,0,0\): expected 4 values per sample, got input of shape \[2, 5\]/);
});

test('a [batch, ...] input flattens per sample', () => {
  const net = mlp([{ in: 6, out: 2 }]);
  const a = forwardNetwork(net, Tensor.from([2, 2, 3], randomArray(12, 1))).output;
  const b = forwardNetwork(net, Tensor.from([2, 6], randomArray(12, 1))).output;
  assert.deepEqual(a.shape, [2, 2]);
  assert.deepEqual(a.data, b.data);
});
