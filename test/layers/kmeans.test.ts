import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ALL_DTYPES, dtypeName } from '../../src/core/dtype.js';
import { ShapeError, SpecError } from '../../src/core/errors.js';
import { Tensor } from '../../src/core/tensor.js';
import { backwardNetwork, forwardNetwork } from '../../src/engine/run.js';
import { deserializeNetwork, serializeNetwork } from '../../src/grid/persistence.js';
import { buildNetwork } from '../../src/grid/spec.js';
import type { VolumetricNetwork } from '../../src/grid/network.js';
import '../../src/layers/kmeans.js';
import { gradCheck } from '../gradcheck.js';
import { assertClose, fixture, maxRelativeDiff, randomArray } from '../helpers.js';

interface KMeansCase {
  shape: number[];
  k: number;
  temperature: number;
  mode: string;
  x: number[];
  centers: number[];
  gradOutput: number[];
  y: number[];
  yShape: number[];
  gradInput: number[];
  gradCenters: number[];
}

function grid(layers: object[], seed = 3): VolumetricNetwork {
  return buildNetwork(
    { depth: 1, rows: 1, cols: layers.length, layers_per_cell: 1, layers: layers.map((l, x) => ({ z: 0, y: 0, x, l: 0, ...l })) },
    { seed },
  );
}

function setCenters(net: VolumetricNetwork, values: ArrayLike<number>, x = 0): void {
  const store = net.getLayer(0, 0, x, 0)!.weights!;
  store.master.set(values);
  store.markMasterChanged();
}

test('KMeans probabilities and features match a PyTorch softmax(−‖x − c‖²/2T²) reference', (t) => {
  const cases = fixture<{ kmeans: Record<string, KMeansCase> }>('norms.json').kmeans;
  let worst = 0;
  for (const [name, c] of Object.entries(cases)) {
    const h = c.shape[c.shape.length - 1];
    const net = grid([{ type: 'KMeans', input_height: h, num_clusters: c.k, kmeans_temperature: c.temperature, output_mode: c.mode }]);
    setCenters(net, c.centers);
    const { output, trace } = forwardNetwork(net, Tensor.from(c.shape, c.x), { keepTrace: true });
    assert.deepEqual(output.shape, c.yShape, name);
    assertClose(output.data, c.y, 1e-5, 1e-6, `${name} y`);
    const { gradInput, gradients } = backwardNetwork(net, trace!, Tensor.from(c.yShape, c.gradOutput));
    assertClose(gradInput.data, c.gradInput, 1e-5, 1e-6, `${name} gradInput`);
    assertClose(gradients[0].grad, c.gradCenters, 1e-5, 1e-6, `${name} gradCenters`);
    worst = Math.max(worst, maxRelativeDiff(output.data, c.y), maxRelativeDiff(gradInput.data, c.gradInput), maxRelativeDiff(gradients[0].grad, c.gradCenters));
  }
  t.diagnostic(`KMeans max relative diff vs PyTorch: ${worst.toExponential(2)}`);
});

test('KMeans gradients agree with finite differences in both modes, several temperatures and activations', () => {
  for (const mode of ['probabilities', 'features']) {
    for (const [temperature, activation] of [[0, 'Linear'], [0.8, 'Tanh'], [2.5, 'Silu']] as const) {
      const net = grid([{ type: 'KMeans', input_height: 4, num_clusters: 3, kmeans_temperature: temperature, output_mode: mode, activation }]);
      setCenters(net, randomArray(12, 31, 1.2));
      gradCheck(net, Tensor.from([3, 4], randomArray(12, 41)));
      gradCheck(net, Tensor.from([2, 2, 4], randomArray(16, 43)));
    }
  }
  // Behind a Dense, the centers and the Dense weights both learn through the clustering.
  const net = grid([
    { type: 'Dense', input_height: 5, output_height: 6, use_bias: true, activation: 'Tanh' },
    { type: 'KMeans', input_height: 3, num_clusters: 4, kmeans_temperature: 0.5 },
  ]);
  setCenters(net, randomArray(12, 51), 1);
  gradCheck(net, Tensor.from([2, 5], randomArray(10, 53)));
});

test('KMeans assigns each row softly to its nearest center; shapes follow the rows', () => {
  const net = grid([{ type: 'KMeans', input_height: 2, num_clusters: 3, kmeans_temperature: 0.1 }]);
  setCenters(net, [0, 0, 5, 5, -5, 5]);
  const x = Tensor.from([3, 2], [0.1, -0.1, 4.9, 5, -5, 5.2]);
  const p = forwardNetwork(net, x).output;
  assert.deepEqual(p.shape, [3, 3]);
  for (let r = 0; r < 3; r++) {
    assert.ok(p.data[r * 3 + r] > 0.99, `row ${r} goes to center ${r}`);
    assertClose([p.data[r * 3] + p.data[r * 3 + 1] + p.data[r * 3 + 2]], [1], 1e-6, 1e-6, 'probabilities sum to 1');
  }
  assert.deepEqual(forwardNetwork(net, Tensor.from([1, 3, 2], x.data)).output.shape, [1, 3, 3]);
  // A sample flattened to [B, m·H] clusters each of its m rows.
  assert.deepEqual(forwardNetwork(net, Tensor.from([1, 6], x.data)).output.data, p.data);
  const features = grid([{ type: 'KMeans', input_height: 2, num_clusters: 3, kmeans_temperature: 0.1, output_mode: 'features' }]);
  setCenters(features, [0, 0, 5, 5, -5, 5]);
  const f = forwardNetwork(features, x).output;
  assert.deepEqual(f.shape, [3, 2]);
  assertClose(f.data, [0, 0, 5, 5, -5, 5], 1e-4, 1e-4, 'reconstruction is the nearest center');
});

test('KMeans config and shape errors name the path or the layer', () => {
  assert.throws(() => grid([{ type: 'KMeans', input_height: 4 }]), (e: Error) => e instanceof SpecError && /layers\[0\]\.num_clusters: expected a positive integer/.test(e.message));
  assert.throws(() => grid([{ type: 'KMeans', num_clusters: 4 }]), /layers\[0\]\.input_height: expected a positive integer/);
  assert.throws(() => grid([{ type: 'KMeans', input_height: 4, num_clusters: 2, output_mode: 'top1' }]), /layers\[0\]\.output_mode: expected "probabilities" or "features", got "top1"/);
  assert.throws(() => grid([{ type: 'KMeans', input_height: 4, num_clusters: 2, kmeans_temperature: -1 }]), /layers\[0\]\.kmeans_temperature/);
  const net = grid([{ type: 'KMeans', input_height: 4, num_clusters: 2 }]);
  assert.throws(
    () => forwardNetwork(net, Tensor.zeros([2, 6])),
    (e: Error) => e instanceof ShapeError && /KMeans at \(0,0,0,0\): expected rows of input_height = 4 values, got input of shape \[2, 6\]/.test(e.message),
  );
  assert.equal(net.getLayer(0, 0, 0, 0)!.weights!.count, 8);
  assert.ok(net.getLayer(0, 0, 0, 0)!.weights!.master.every((v) => Math.abs(v) <= 0.1));
});

test('KMeans runs in every dtype through morph and survives persistence bit for bit', () => {
  const net = grid([
    { type: 'KMeans', input_height: 4, num_clusters: 5, kmeans_temperature: 1.5, output_mode: 'features', activation: 'Tanh' },
    { type: 'KMeans', input_height: 4, num_clusters: 3 },
  ]);
  setCenters(net, randomArray(20, 61), 0);
  setCenters(net, randomArray(12, 62), 1);
  const x = Tensor.from([3, 4], randomArray(12, 63));
  for (const d of ALL_DTYPES) {
    const copy = deserializeNetwork(serializeNetwork(net));
    copy.morph(d);
    const out = forwardNetwork(copy, x).output;
    assert.deepEqual(out.shape, [3, 3], dtypeName(d));
    assert.ok(out.data.every(Number.isFinite), `${dtypeName(d)} output is finite`);
    const text = serializeNetwork(copy);
    const reloaded = deserializeNetwork(text);
    assert.equal(serializeNetwork(reloaded), text, dtypeName(d));
    assert.deepEqual(new Uint32Array(forwardNetwork(reloaded, x).output.data.buffer), new Uint32Array(out.data.buffer), dtypeName(d));
  }
});
