import assert from 'node:assert/strict';
import { test } from 'node:test';
import { serializeNetwork } from '../../src/grid/persistence.js';
import { buildNetwork } from '../../src/grid/spec.js';
import { evolve, Population } from '../../src/evolve/population.js';
import { cartPoleTask, cartPoleStep, xorTask } from '../../src/evolve/tasks.js';
import { SpecError } from '../../src/core/errors.js';

function run(task: typeof xorTask, seed: number, size: number, generations: number) {
  const net = buildNetwork(task.defaultSpec(), { seed });
  const pop = new Population(net, { size, seed, mutation: { weightPerturbScale: 0.5, probeShape: [1, task.inputSize] } });
  return evolve(pop, (n) => task.fitness(n), { generations, target: task.target });
}

test('evolution solves XOR, identically for the same seed', () => {
  const a = run(xorTask, 1, 50, 60);
  const b = run(xorTask, 1, 50, 60);
  assert.ok(a.solvedAt >= 0, `XOR not solved in 60 generations (best ${a.bestFitness})`);
  assert.ok(xorTask.fitness(a.best) >= 4);
  assert.deepEqual(a.history, b.history);
  assert.equal(serializeNetwork(a.best), serializeNetwork(b.best));
  console.log(`# XOR solved at generation ${a.solvedAt} (population 50, seed 1)`);
});

test('evolution solves cart-pole balancing, identically for the same seed', () => {
  const task = cartPoleTask({ maxSteps: 300 });
  const a = run(task, 2, 30, 40);
  const b = run(task, 2, 30, 40);
  assert.ok(a.solvedAt >= 0, `cart-pole not solved in 40 generations (best ${a.bestFitness})`);
  assert.equal(task.fitness(a.best), 300);
  assert.deepEqual(a.history, b.history);
  console.log(`# cart-pole (300 steps x 4 episodes) solved at generation ${a.solvedAt} (population 30, seed 2)`);
});

test('elites survive unchanged and the best fitness never decreases', () => {
  const net = buildNetwork(xorTask.defaultSpec(), { seed: 3 });
  const pop = new Population(net, { size: 12, seed: 3, mutation: { weightPerturbScale: 0.5 } });
  let last = -Infinity;
  for (let g = 0; g < 8; g++) {
    const stats = pop.evaluate((n) => xorTask.fitness(n));
    assert.ok(stats.best >= last);
    last = stats.best;
    const elite = serializeNetwork(pop.best());
    pop.breed();
    assert.equal(serializeNetwork(pop.networks[0]), elite);
  }
  assert.throws(() => new Population(net, { size: 1 }), SpecError);
  assert.throws(() => pop.evaluate(() => NaN), /fitness: expected a number/);
});

test('cart-pole physics: an unpushed pole tilted right falls right', () => {
  const s = [0, 0, 0.05, 0];
  for (let i = 0; i < 10; i++) cartPoleStep(s, 0);
  assert.ok(s[2] > 0.05 && s[3] > 0);
});
