import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Tensor } from '../../src/core/tensor.js';
import { forwardNetwork } from '../../src/engine/run.js';
import { graftNetworks, graftedLayer, residualGraft } from '../../src/evolve/graft.js';
import { COMBINE_MODES } from '../../src/layers/containers.js';
import { SpecError } from '../../src/core/errors.js';
import { assertClose, mlp, randomArray } from '../helpers.js';

const input = new Tensor(randomArray(12, 5), [3, 4]);
const nets = [
  mlp([{ in: 4, out: 3, activation: 'Tanh' }], 1),
  mlp([{ in: 4, out: 5, activation: 'ReLU' }, { in: 5, out: 3 }], 2),
];
const outs = nets.map((n) => forwardNetwork(n, input).output.data);

test('grafting networks into one Parallel layer reproduces each network, for every combine mode', () => {
  for (const mode of COMBINE_MODES) {
    const g = graftNetworks(nets, mode, { inputSize: 4 });
    assert.equal(graftedLayer(g).kind.name, 'Parallel');
    assert.equal(graftedLayer(g).children!.length, 2);
    const y = forwardNetwork(g, input).output;
    if (mode === 'add') assertClose(y.data, outs[0].map((v, i) => v + outs[1][i]), 1e-6, 1e-6, mode);
    if (mode === 'avg') assertClose(y.data, outs[0].map((v, i) => (v + outs[1][i]) / 2), 1e-6, 1e-6, mode);
    if (mode === 'concat') {
      assert.deepEqual(y.shape, [3, 6]);
      for (let r = 0; r < 3; r++) assertClose(y.data.subarray(r * 6, r * 6 + 6), [...outs[0].subarray(r * 3, r * 3 + 3), ...outs[1].subarray(r * 3, r * 3 + 3)], 1e-6, 1e-6, mode);
    }
    if (mode === 'grid_scatter') assert.deepEqual(y.shape, [3, 2, 3]);
    if (mode === 'filter') assert.deepEqual(y.shape, [3, 3]);
  }
  // Sources are untouched: grafting copies weights.
  graftedLayer(graftNetworks(nets, 'add')).children![0].weights!.master.fill(0);
  assertClose(forwardNetwork(nets[0], input).output.data, outs[0]);
  assert.throws(() => graftNetworks(nets, 'filter'), SpecError);
  assert.throws(() => graftNetworks(nets, 'mean'), /combineMode: expected one of add, avg, concat, filter, grid_scatter/);
  assert.throws(() => graftNetworks([], 'add'), SpecError);
});

test('residual graft computes x + f(x)', () => {
  const f = mlp([{ in: 4, out: 4, activation: 'Tanh' }], 7);
  const fx = forwardNetwork(f, input).output.data;
  const y = forwardNetwork(residualGraft(f), input).output.data;
  assertClose(y, input.data.map((v, i) => v + fx[i]), 1e-6, 1e-6);
});
