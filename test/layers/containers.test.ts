import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ALL_DTYPES } from '../../src/core/dtype.js';
import { SpecError } from '../../src/core/errors.js';
import { Tensor } from '../../src/core/tensor.js';
import { backwardNetwork, forwardNetwork } from '../../src/engine/run.js';
import { deserializeNetwork, serializeNetwork } from '../../src/grid/persistence.js';
import { buildNetwork } from '../../src/grid/spec.js';
import { AdamW } from '../../src/train/optimizers.js';
import { evaluate, train } from '../../src/train/train.js';
import { gradCheck } from '../gradcheck.js';
import { assertClose, fixture, randomArray } from '../helpers.js';

const dense = (i: number, o: number, activation = 'Tanh') => ({ type: 'Dense', activation, input_height: i, output_height: o, use_bias: true });
const grid = (layer: object) => buildNetwork({ depth: 1, rows: 1, cols: 1, layers_per_cell: 1, layers: [{ z: 0, y: 0, x: 0, l: 0, ...layer }] }, { seed: 2 });

test('Parallel add / avg / concat match PyTorch', () => {
  const f = fixture('parallel.json');
  for (const mode of ['add', 'avg', 'concat']) {
    const net = grid({ type: 'Parallel', combine_mode: mode, parallel_branches: f.branches.map((b: any) => dense(b.in, b.out, b.activation)) });
    const branches = net.getLayer(0, 0, 0, 0)!.children!;
    f.branches.forEach((b: any, i: number) => {
      branches[i].weights!.master.set([...b.W, ...b.b]);
      branches[i].weights!.markMasterChanged();
    });
    const c = f.cases[mode];
    const { output, trace } = forwardNetwork(net, Tensor.from(f.x_shape, f.x), { keepTrace: true });
    assert.deepEqual(output.shape, c.y_shape);
    assertClose(output.data, c.y, 1e-5, 1e-6, `${mode} y`);
    const { gradInput, gradients } = backwardNetwork(net, trace!, Tensor.from(c.y_shape, f.grad_output[mode]));
    assertClose(gradInput.data, c.grad_input, 1e-5, 1e-6, `${mode} grad input`);
    assert.deepEqual(gradients.map((g) => g.key).sort(), ['0.0', '0.1', '0.2']);
    for (const g of gradients) {
      const i = Number(g.key.split('.')[1]);
      const n = f.branches[i].out * f.branches[i].in;
      assertClose(g.grad.subarray(0, n), c.grad_W[i], 1e-5, 1e-6, `${mode} grad W${i}`);
      assertClose(g.grad.subarray(n), c.grad_b[i], 1e-5, 1e-6, `${mode} grad b${i}`);
    }
  }
});

const moe = {
  type: 'Parallel',
  combine_mode: 'filter',
  filter_gate: dense(4, 2, 'Linear'),
  parallel_branches: [
    dense(4, 3),
    { type: 'Sequential', sequential_layers: [dense(4, 3), { type: 'RMSNorm', input_height: 3 }, dense(3, 3, 'Linear'), { type: 'Residual' }] },
  ],
};

test('gradients of every combine mode and nested containers agree with finite differences', () => {
  const x = Tensor.from([2, 4], randomArray(8, 5));
  for (const mode of ['add', 'avg', 'concat', 'grid_scatter']) {
    gradCheck(grid({ type: 'Parallel', combine_mode: mode, parallel_branches: [dense(4, 3), { type: 'Sequential', sequential_layers: [dense(4, 2), dense(2, 3)] }] }), x);
  }
  gradCheck(grid(moe), x);
  gradCheck(grid({ type: 'Sequential', sequential_layers: [dense(4, 4), dense(4, 4), { type: 'Residual' }, { ...moe, parallel_branches: [dense(4, 3), dense(4, 3, 'Sigmoid')] }] }), x);
});

test('grid_scatter stacks equal-width branches as [batch, branches, width]', () => {
  const out = forwardNetwork(grid({ type: 'Parallel', combine_mode: 'grid_scatter', parallel_branches: [dense(4, 3), dense(4, 3), dense(4, 3)] }), Tensor.zeros([2, 4])).output;
  assert.deepEqual(out.shape, [2, 3, 3]);
  assert.throws(
    () => forwardNetwork(grid({ type: 'Parallel', combine_mode: 'grid_scatter', parallel_branches: [dense(4, 3), dense(4, 2)] }), Tensor.zeros([1, 4])),
    /grid_scatter needs branches of equal width, got 3, 2/,
  );
});

test('container specs are validated with paths', () => {
  assert.throws(() => grid({ type: 'Parallel', combine_mode: 'mul', parallel_branches: [dense(2, 2)] }), /combine_mode: expected one of add, avg, concat, filter, grid_scatter, got "mul"/);
  assert.throws(() => grid({ type: 'Parallel', combine_mode: 'filter', parallel_branches: [dense(2, 2)] }), /layers\[0\]\.filter_gate: expected a gate layer/);
  assert.throws(() => grid({ type: 'Sequential', sequential_layers: [dense(2, 2), { ...dense(2, 2), input_height: -1 }] }), (e: unknown) => e instanceof SpecError && /layers\[0\]\.sequential_layers\[1\]\.input_height/.test((e as Error).message));
  assert.throws(() => grid({ type: 'Dense', input_height: 1, output_height: 1, sequential_layers: [] }), /Dense has no nested layers/);
});

test('a deeply nested MoE trains to lower loss and saves/reloads bit-exact in every dtype', () => {
  const net = grid(moe);
  const n = 64;
  const inputs = randomArray(n * 4, 8);
  const labels = Int32Array.from({ length: n }, (_, i) => (inputs[i * 4] + inputs[i * 4 + 1] > 0 ? 1 : 0) + (inputs[i * 4 + 2] > 0.3 ? 1 : 0));
  const data = { count: n, inputs, inputShape: [4], labels, targetWidth: 3, source: 'moe' };
  const before = evaluate(net, data, 'cross_entropy').loss;
  train(net, data, { epochs: 30, batchSize: 16, loss: 'cross_entropy', optimizer: new AdamW({ lr: 0.02 }), seed: 1 });
  const after = evaluate(net, data, 'cross_entropy').loss;
  assert.ok(after < before * 0.7, `loss ${before} → ${after}`);

  const x = Tensor.from([3, 4], randomArray(12, 9));
  for (const dtype of ALL_DTYPES) {
    const copy = deserializeNetwork(serializeNetwork(net));
    copy.morph(dtype);
    const text = serializeNetwork(copy);
    const reloaded = deserializeNetwork(text);
    assert.equal(serializeNetwork(reloaded), text);
    assert.deepEqual(new Uint32Array(forwardNetwork(reloaded, x).output.data.buffer), new Uint32Array(forwardNetwork(copy, x).output.data.buffer));
  }
});
