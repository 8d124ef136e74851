import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Tensor } from '../../src/core/tensor.js';
import { forwardNetwork } from '../../src/engine/run.js';
import { serializeNetwork } from '../../src/grid/persistence.js';
import { buildNetwork } from '../../src/grid/spec.js';
import { mutateNetwork, templatesForWidth } from '../../src/evolve/mutate.js';
import { SpecError } from '../../src/core/errors.js';
import { mlp } from '../helpers.js';

function deepNet() {
  return buildNetwork({
    depth: 1, rows: 1, cols: 1, layers_per_cell: 4,
    layers: [
      { l: 0, type: 'Dense', activation: 'Tanh', input_height: 3, output_height: 4 },
      { l: 1, type: 'Dense', activation: 'Tanh', input_height: 4, output_height: 4 },
      { l: 2, type: 'Dense', activation: 'Tanh', input_height: 4, output_height: 4 },
      { l: 3, type: 'Dense', activation: 'Sigmoid', input_height: 4, output_height: 1 },
    ],
  });
}

test('mutation never modifies the parent and always yields a network that runs', () => {
  const parent = deepNet();
  const before = serializeNetwork(parent);
  const probe = Tensor.zeros([2, 3]);
  const seen = new Set<string>();
  for (let seed = 1; seed <= 60; seed++) {
    const { child, mutations } = mutateNetwork(parent, {
      seed,
      weightPerturbRate: 1,
      activationRate: 0.3,
      typeSwapRate: 0.3,
      toggleRate: 0.2,
      linkAddRate: 0.5,
      linkDropRate: 0.5,
      templates: templatesForWidth(4),
      probeShape: [1, 3],
    });
    for (const m of mutations) seen.add(m.split(' ')[0]);
    assert.deepEqual(forwardNetwork(child, probe).output.shape, [2, 1], `seed ${seed}: ${mutations.join('; ')}`);
    assert.equal(serializeNetwork(parent), before, `seed ${seed} changed the parent`);
  }
  for (const kind of ['activation', 'type', 'disable', 'link']) assert.ok(seen.has(kind), `mutation kind ${kind} happened (saw ${[...seen].join(', ')})`);
});

test('mutation is deterministic for a seed and perturbs weights within the scale', () => {
  const parent = mlp([{ in: 3, out: 3 }], 1);
  const a = mutateNetwork(parent, { seed: 9, weightPerturbRate: 1, weightPerturbScale: 0.1 });
  const b = mutateNetwork(parent, { seed: 9, weightPerturbRate: 1, weightPerturbScale: 0.1 });
  assert.equal(serializeNetwork(a.child), serializeNetwork(b.child));
  const p = parent.cells[0]!.weights!.master;
  const c = a.child.cells[0]!.weights!.master;
  let changed = 0;
  for (let i = 0; i < p.length; i++) {
    assert.ok(Math.abs(c[i] - p[i]) <= 0.1 + 1e-7);
    if (c[i] !== p[i]) changed++;
  }
  assert.equal(changed, p.length);
  assert.notEqual(serializeNetwork(mutateNetwork(parent, { seed: 10, weightPerturbRate: 1 }).child), serializeNetwork(a.child));
});

test('structural mutations need a probe shape; link drop removes remote links', () => {
  const parent = deepNet();
  const none = mutateNetwork(parent, { seed: 1, weightPerturbRate: 0, activationRate: 0, typeSwapRate: 1, toggleRate: 1, linkAddRate: 1, templates: templatesForWidth(4) });
  assert.deepEqual(none.mutations, []);
  const linked = deepNet();
  linked.cells[2]!.remote = { z: 0, y: 0, x: 0, l: 0 };
  linked.invalidatePlan();
  const dropped = mutateNetwork(linked, { seed: 1, weightPerturbRate: 0, activationRate: 0, typeSwapRate: 0, toggleRate: 0, linkAddRate: 0, linkDropRate: 1, probeShape: [1, 3] });
  assert.deepEqual(dropped.mutations, ['unlink (0,0,0,2) <- (0,0,0,0)']);
  assert.equal(dropped.child.cells[2]!.remote, null);
  assert.ok(linked.cells[2]!.remote, 'parent keeps its link');
  assert.throws(() => mutateNetwork(parent, { probeShape: [1, 5] }), SpecError);
  assert.throws(() => mutateNetwork(parent, { typeSwapRate: 1.5 }), /typeSwapRate: expected a probability in \[0, 1\], got 1.5/);
});
