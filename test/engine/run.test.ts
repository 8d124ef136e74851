import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DType, simulatePrecision } from '../../src/core/dtype.js';
import { LoomError, NumericError, ShapeError } from '../../src/core/errors.js';
import { Tensor } from '../../src/core/tensor.js';
import { assertFinite, backwardNetwork, forwardNetwork } from '../../src/engine/run.js';
import { buildNetwork } from '../../src/grid/spec.js';
import { gradCheck } from '../gradcheck.js';
import { mlp, randomArray } from '../helpers.js';

const dense = (z: number, y: number, x: number, l: number, i: number, o: number, extra: object = {}) => ({
  z, y, x, l, type: 'Dense', activation: 'Tanh', input_height: i, output_height: o, use_bias: true, ...extra,
});

test('forward visits cells in z → y → x → l order', () => {
  // Dims chain 1→2→…→9 only fits together in traversal order.
  const layers = [];
  let width = 1;
  for (let z = 0; z < 2; z++)
    for (let y = 0; y < 1; y++)
      for (let x = 0; x < 2; x++)
        for (let l = 0; l < 2; l++) {
          layers.push(dense(z, y, x, l, width, width + 1));
          width++;
        }
  const net = buildNetwork({ depth: 2, rows: 1, cols: 2, layers_per_cell: 2, layers: layers.reverse() });
  const { output, layerTimesMs } = forwardNetwork(net, Tensor.from([3, 1], [0.1, -0.2, 0.3]));
  assert.deepEqual(output.shape, [3, 9]);
  assert.equal(layerTimesMs.length, 8);
  assert.ok([...layerTimesMs].every((t) => t >= 0));
});

test('flat index formula and getLayer', () => {
  const net = buildNetwork({ depth: 2, rows: 3, cols: 4, layers_per_cell: 5, layers: [dense(1, 2, 3, 4, 2, 2)] });
  assert.equal(net.index(1, 2, 3, 4), ((1 * 3 + 2) * 4 + 3) * 5 + 4);
  assert.deepEqual(net.coordOf(net.index(1, 2, 3, 4)), { z: 1, y: 2, x: 3, l: 4 });
  assert.equal(net.getLayer(1, 2, 3, 4)?.kind.name, 'Dense');
  assert.equal(net.getLayer(0, 0, 0, 0), undefined);
  assert.throws(() => net.getLayer(2, 0, 0, 0), LoomError);
});

test('empty and disabled cells pass data through', () => {
  const net = buildNetwork({
    depth: 1, rows: 1, cols: 4, layers_per_cell: 1,
    layers: [dense(0, 0, 0, 0, 3, 4), { ...dense(0, 0, 2, 0, 4, 99), is_disabled: true }, dense(0, 0, 3, 0, 4, 2)],
  });
  const x = Tensor.from([2, 3], randomArray(6, 1));
  const out = forwardNetwork(net, x).output;
  assert.deepEqual(out.shape, [2, 2]);
  net.getLayer(0, 0, 2, 0)!.disabled = false;
  net.invalidatePlan();
  assert.throws(() => forwardNetwork(net, x), ShapeError);
});

test('a remote link reads another coordinate\'s output, and gradients flow back along it', () => {
  // x0: 3→4, x1: 4→5, x2 reads x0's output (4→2) instead of x1's.
  const net = buildNetwork({
    depth: 1, rows: 1, cols: 3, layers_per_cell: 1,
    layers: [dense(0, 0, 0, 0, 3, 4), dense(0, 0, 1, 0, 4, 5), { ...dense(0, 0, 2, 0, 4, 2), is_remote_link: true, target_x: 0 }],
  });
  const x = Tensor.from([2, 3], randomArray(6, 2));
  const { output, trace } = forwardNetwork(net, x, { keepTrace: true });
  const direct = buildNetwork({ depth: 1, rows: 1, cols: 2, layers_per_cell: 1, layers: [dense(0, 0, 0, 0, 3, 4), dense(0, 0, 1, 0, 4, 2)] });
  direct.getLayer(0, 0, 0, 0)!.weights!.master.set(net.getLayer(0, 0, 0, 0)!.weights!.master);
  direct.getLayer(0, 0, 1, 0)!.weights!.master.set(net.getLayer(0, 0, 2, 0)!.weights!.master);
  assert.deepEqual([...output.data], [...forwardNetwork(direct, x).output.data]);
  const { gradients } = backwardNetwork(net, trace!, Tensor.from(output.shape, [1, 1, 1, 1]));
  assert.deepEqual(gradients.map((g) => g.key), ['2', '0'], 'the bypassed layer gets no gradient');
  gradCheck(net, x);
});

test('gradientBuffers: a later pass overwrites the buffers an earlier pass left and gives the same gradients', () => {
  // CNN2 and Dense write into the buffers; LayerNorm allocates, and its array is kept for the next pass.
  const net = buildNetwork({
    depth: 1, rows: 1, cols: 4, layers_per_cell: 1,
    layers: [
      { z: 0, y: 0, x: 0, l: 0, type: 'CNN2', activation: 'ReLU', input_channels: 2, input_height: 5, input_width: 5, filters: 3, kernel_size: 3, stride: 1, padding: 1, use_bias: true },
      dense(0, 0, 1, 0, 75, 5), { z: 0, y: 0, x: 2, l: 0, type: 'LayerNorm', input_height: 5 }, { ...dense(0, 0, 3, 0, 5, 3), activation: 'ReLU' },
    ],
  });
  const x = Tensor.from([4, 50], randomArray(200, 8));
  const gradOut = Tensor.from([4, 3], randomArray(12, 9));
  const fresh = () => backwardNetwork(net, forwardNetwork(net, x, { keepTrace: true }).trace!, gradOut).gradients;
  const buffers = new Map<string, Float32Array>();
  const first = backwardNetwork(net, forwardNetwork(net, x, { keepTrace: true }).trace!, gradOut, { gradientBuffers: buffers }).gradients;
  assert.deepEqual([...buffers.keys()].sort(), ['0', '1', '2', '3']);
  for (const g of first) {
    assert.equal(buffers.get(g.key), g.grad);
    g.grad.fill(Number.NaN);
  }
  const second = backwardNetwork(net, forwardNetwork(net, x, { keepTrace: true }).trace!, gradOut, { gradientBuffers: buffers }).gradients;
  const want = fresh();
  for (const [i, g] of second.entries()) {
    assert.equal(g.key, want[i].key);
    assert.deepEqual([...g.grad], [...want[i].grad], `gradient ${g.key}`);
    if (g.layer.kind.name !== 'LayerNorm') assert.equal(g.grad, first[i].grad, `${g.layer.kind.name} ${g.key} wrote into its buffer`);
  }
});

test('a remote link to a later layer is refused with a clear message', () => {
  const net = buildNetwork({
    depth: 1, rows: 1, cols: 2, layers_per_cell: 1,
    layers: [{ ...dense(0, 0, 0, 0, 3, 3), is_remote_link: true, target_x: 1 }, dense(0, 0, 1, 0, 3, 3)],
  });
  assert.throws(() => forwardNetwork(net, Tensor.zeros([1, 3])), /remote link to \(0,0,1,0\): the target must be an enabled layer that runs earlier/);
});

test('Residual adds the input of the previous layer, or its remote target\'s output', () => {
  const net = buildNetwork({
    depth: 1, rows: 1, cols: 2, layers_per_cell: 1,
    layers: [dense(0, 0, 0, 0, 4, 4), { z: 0, y: 0, x: 1, l: 0, type: 'Residual' }],
  });
  const x = Tensor.from([2, 4], randomArray(8, 3));
  const layer0 = net.getLayer(0, 0, 0, 0)!;
  const single = buildNetwork({ depth: 1, rows: 1, cols: 1, layers_per_cell: 1, layers: [dense(0, 0, 0, 0, 4, 4)] });
  single.getLayer(0, 0, 0, 0)!.weights!.master.set(layer0.weights!.master);
  const f = forwardNetwork(single, x).output.data;
  const out = forwardNetwork(net, x).output.data;
  for (let i = 0; i < out.length; i++) assert.equal(out[i], Math.fround(f[i] + x.data[i]));
  gradCheck(net, x);

  const block = buildNetwork({
    depth: 1, rows: 1, cols: 4, layers_per_cell: 1,
    layers: [dense(0, 0, 0, 0, 3, 4), dense(0, 0, 1, 0, 4, 4), dense(0, 0, 2, 0, 4, 4), { z: 0, y: 0, x: 3, l: 0, type: 'Residual', is_remote_link: true, target_x: 0 }],
  });
  gradCheck(block, Tensor.from([2, 3], randomArray(6, 4)));
});

test('a morphed layer computes with its packed weights, not the float32 master', () => {
  const net = mlp([{ in: 5, out: 3, activation: 'Linear', bias: false }]);
  const x = Tensor.from([1, 5], [0.3, -0.7, 0.2, 0.9, -0.4]);
  const float = forwardNetwork(net, x).output.data.slice();
  net.morph(DType.Int4);
  const layer = net.getLayer(0, 0, 0, 0)!;
  const version = layer.weights!.morph(DType.Int4);
  const w = layer.weights!.master;
  const got = forwardNetwork(net, x).output.data;
  for (let o = 0; o < 3; o++) {
    let s = 0;
    for (let i = 0; i < 5; i++) s += x.data[i] * simulatePrecision(w[o * 5 + i], DType.Int4, version.params.scale, version.params.zeroPoint);
    assert.ok(Math.abs(got[o] - s) < 1e-6, `output ${o}: ${got[o]} vs ${s}`);
  }
  assert.notDeepEqual([...got], [...float]);
});

test('checkFinite names the layer that produced NaN', () => {
  const net = mlp([{ in: 2, out: 2 }, { in: 2, out: 2 }]);
  net.getLayer(0, 0, 1, 0)!.weights!.master[0] = NaN;
  net.getLayer(0, 0, 1, 0)!.weights!.markMasterChanged();
  assert.throws(() => forwardNetwork(net, Tensor.from([1, 2], [1, 1]), { checkFinite: true }), /output of Dense at \(0,0,1,0\) \(float32\) is NaN/);
});

test('assertFinite names the first NaN or infinity at any position, and passes finite data (−0, subnormals, ±max)', () => {
  const finite = Float32Array.of(0, -0, 1e-45, -1e-45, 3.4028234663852886e38, -3.4028234663852886e38, 1, -1, 2.5);
  assert.doesNotThrow(() => assertFinite(finite, () => 'x'));
  for (const bad of [NaN, Infinity, -Infinity]) {
    for (const at of [0, 3, 4, 7, 8]) {
      const d = finite.slice();
      d[at] = bad;
      if (at + 1 < d.length) d[d.length - 1] = NaN;
      assert.throws(() => assertFinite(d, () => 'output of L'), (e: unknown) => e instanceof NumericError && e.message === `output of L is ${bad} at element ${at}`);
    }
  }
});
