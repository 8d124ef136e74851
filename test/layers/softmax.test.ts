import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ALL_DTYPES, dtypeName } from '../../src/core/dtype.js';
import { ShapeError, SpecError } from '../../src/core/errors.js';
import { Tensor } from '../../src/core/tensor.js';
import { backwardNetwork, forwardNetwork } from '../../src/engine/run.js';
import { deserializeNetwork, serializeNetwork } from '../../src/grid/persistence.js';
import { buildNetwork } from '../../src/grid/spec.js';
import { entmax, parseSoftmaxType, resetGumbelNoise, softmax, softmaxKind, SOFTMAX_TYPES, sparsemax } from '../../src/layers/softmax.js';
import { gradCheck } from '../gradcheck.js';
import { assertClose, fixture, randomArray } from '../helpers.js';

function toleranceShare(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < actual.length; i++) m = Math.max(m, Math.abs(actual[i] - expected[i]) / (1e-6 + 1e-5 * Math.abs(expected[i])));
  return m;
}

interface SoftmaxCase {
  layer: Record<string, unknown>;
  shape: number[];
  x: number[];
  gradOutput: number[];
  y: number[];
  gradInput: number[];
  reference: string;
}

const one = (layer: object) => buildNetwork({ depth: 1, rows: 1, cols: 1, layers_per_cell: 1, layers: [{ z: 0, y: 0, x: 0, l: 0, type: 'Softmax', ...layer }] });
const afterDense = (layer: object, nIn: number, nOut: number) =>
  buildNetwork({
    depth: 1, rows: 1, cols: 2, layers_per_cell: 1,
    layers: [
      { z: 0, y: 0, x: 0, l: 0, type: 'Dense', activation: 'Tanh', input_height: nIn, output_height: nOut, use_bias: true },
      { z: 0, y: 0, x: 1, l: 0, type: 'Softmax', ...layer },
    ],
  }, { seed: 4 });

/** One configuration per variant, for 2 samples of 12 values. */
const VARIANTS: Record<string, object> = {
  Standard: { softmax_type: 'Standard' },
  Grid: { softmax_type: 'Grid', softmax_rows: 3, softmax_cols: 4 },
  Hierarchical: { softmax_type: 'Hierarchical', hierarchy_levels: [3, 2, 2], temperature: 0.7 },
  Temperature: { softmax_type: 'Temperature', temperature: 2.5 },
  Gumbel: { softmax_type: 'Gumbel', temperature: 0.9 },
  Masked: { softmax_type: 'Masked', input_height: 6, mask: [true, true, false, true, false, true] },
  Sparse: { softmax_type: 'Sparse', temperature: 0.8 },
  Adaptive: { softmax_type: 'Adaptive', input_height: 4, temperature: 0.6 },
  Mixture: { softmax_type: 'Mixture', entmax_alpha: 1.3 },
  Entmax: { softmax_type: 'Entmax', input_height: 6 },
};

test('every variant matches PyTorch, forward and input gradient (scripts/golden/softmax.py)', (t) => {
  const { cases } = fixture<{ cases: Record<string, SoftmaxCase> }>('softmax.json');
  assert.ok(Object.keys(cases).length >= 16);
  const seen = new Set<string>();
  for (const [name, c] of Object.entries(cases)) {
    const net = one(c.layer);
    seen.add(net.getLayer(0, 0, 0, 0)!.config.softmaxType as string);
    const { output, trace } = forwardNetwork(net, Tensor.from(c.shape, c.x), { keepTrace: true });
    assert.deepEqual(output.shape, c.shape);
    assertClose(output.data, c.y, 1e-5, 1e-6, `${name} y`);
    const { gradInput } = backwardNetwork(net, trace!, Tensor.from(c.shape, c.gradOutput));
    assertClose(gradInput.data, c.gradInput, 1e-5, 1e-6, `${name} gradInput`);
    t.diagnostic(`${name}: worst |diff|/(1e-6 + 1e-5·|expected|): y ${toleranceShare(output.data, c.y).toFixed(3)}, gradInput ${toleranceShare(gradInput.data, c.gradInput).toFixed(3)}`);
  }
  for (const v of ['Standard', 'Temperature', 'Masked', 'Grid', 'Hierarchical', 'Sparse', 'Entmax', 'Mixture', 'Adaptive']) assert.ok(seen.has(v), v);
  // The fixtures exercise real sparsity: exact zeros next to several non-zeros in a row.
  assert.ok(cases.sparse.y.filter((v) => v === 0).length >= 8 && cases.entmax.y.filter((v) => v === 0).length >= 4);
});

test('gradients of every variant agree with finite differences', () => {
  const x = Tensor.from([2, 12], randomArray(24, 11, 2));
  for (const [name, layer] of Object.entries(VARIANTS)) {
    if (name === 'Gumbel') continue; // fresh noise on every call: checked with the noise held fixed below
    gradCheck(one(layer), x, { eps: 1e-3 });
    gradCheck(afterDense(layer, 5, 12), Tensor.from([2, 5], randomArray(10, 12)), { eps: 1e-3 });
  }
  for (const alpha of [1, 1.25, 1.5, 1.75, 2, 3]) gradCheck(one({ softmax_type: 'Entmax', entmax_alpha: alpha }), x, { eps: 1e-3 });
  for (const alpha of [1, 2]) gradCheck(one({ softmax_type: 'Mixture', entmax_alpha: alpha }), x, { eps: 1e-3 });
  gradCheck(one({ softmax_type: 'Sparse', gumbel_noise: false, input_height: 3 }), x, { eps: 1e-3 });
});

test('Gumbel: the backward pass is exact for the noise of its forward pass', () => {
  for (const layerSpec of [VARIANTS.Gumbel, { softmax_type: 'Entmax', gumbel_noise: true, input_height: 6 }]) {
    const layer = one(layerSpec).getLayer(0, 0, 0, 0)!;
    const x = Tensor.from([2, 12], randomArray(24, 5, 2));
    const r = Tensor.from([2, 12], randomArray(24, 6));
    const loss = (): number => {
      resetGumbelNoise(layer, 7);
      const y = softmaxKind.forward(layer, x, null, null).output.data;
      let s = 0;
      for (let i = 0; i < y.length; i++) s += y[i] * r.data[i];
      return s;
    };
    resetGumbelNoise(layer, 7);
    const fwd = softmaxKind.forward(layer, x, null, null);
    const analytic = softmaxKind.backward(layer, r, fwd.cache, null).gradInput.data;
    const numeric = new Float32Array(x.size);
    const eps = 1e-3;
    for (let i = 0; i < x.size; i++) {
      const keep = x.data[i];
      x.data[i] = keep + eps;
      const up = loss();
      x.data[i] = keep - eps;
      const down = loss();
      x.data[i] = keep;
      numeric[i] = (up - down) / (2 * eps);
    }
    assertClose(analytic, numeric, 2e-2, 2e-3, 'Gumbel input gradient');
  }
});

test('Gumbel noise is reproducible: a function of the layer coordinates and its call count', () => {
  const x = Tensor.from([3, 5], randomArray(15, 2));
  const a = one(VARIANTS.Gumbel);
  const b = one(VARIANTS.Gumbel);
  const a1 = forwardNetwork(a, x).output.data;
  const a2 = forwardNetwork(a, x).output.data;
  assert.deepEqual(forwardNetwork(b, x).output.data, a1, 'a fresh network draws the same first noise');
  assert.deepEqual(forwardNetwork(b, x).output.data, a2, '... and the same second noise');
  assert.notDeepEqual(a1, a2, 'successive calls draw new noise');
  resetGumbelNoise(a.getLayer(0, 0, 0, 0)!, 1);
  assert.deepEqual(forwardNetwork(a, x).output.data, a2, 'resetGumbelNoise replays a call');

  const elsewhere = buildNetwork({ cols: 2, layers: [{ x: 1, type: 'Softmax', ...VARIANTS.Gumbel }] });
  assert.notDeepEqual(forwardNetwork(elsewhere, x).output.data, a1, 'another coordinate draws other noise');

  // The output is softmax((x + g)/T) with the cached noise g, which looks like Gumbel(0, 1).
  const layer = one(VARIANTS.Gumbel).getLayer(0, 0, 0, 0)!;
  const big = Tensor.zeros([200, 50]);
  const { output, cache } = softmaxKind.forward(layer, big, null, null);
  const noise = (cache.extra as { noise: Float32Array }).noise;
  const row = softmax(Array.from(noise.subarray(0, 50), (g) => g / 0.9));
  assertClose(output.data.subarray(0, 50), row, 1e-6, 1e-7, 'Gumbel row 0');
  let mean = 0;
  for (const g of noise) mean += g / noise.length;
  assert.ok(Math.abs(mean - 0.5772156649) < 0.03, `mean of Gumbel(0, 1) noise is γ ≈ 0.577, got ${mean}`);

  // gumbel_noise adds the same noise to other variants.
  const noisy = one({ softmax_type: 'Sparse', gumbel_noise: true });
  assert.notDeepEqual(forwardNetwork(noisy, x).output.data, forwardNetwork(one({ softmax_type: 'Sparse' }), x).output.data);
});

test('Masked: masked positions are exactly 0, the rest sum to 1; a fully masked row is all 0 with 0 gradient', () => {
  const mask = [false, true, true, false, false, false, false, false];
  const net = one({ softmax_type: 'Masked', input_height: 4, mask });
  const x = Tensor.from([3, 8], randomArray(24, 3, 30));
  const { output, trace } = forwardNetwork(net, x, { keepTrace: true });
  const y = output.data;
  for (let i = 0; i < y.length; i++) if (!mask[i % 8]) assert.equal(y[i], 0, `position ${i}`);
  for (let s = 0; s < 3; s++) assert.ok(Math.abs(y[s * 8 + 1] + y[s * 8 + 2] - 1) < 1e-6);
  const g = backwardNetwork(net, trace!, Tensor.from([3, 8], randomArray(24, 4))).gradInput.data;
  for (let i = 0; i < g.length; i++) if (!mask[i % 8]) assert.equal(g[i], 0, `gradient at ${i}`);
  // Huge unmasked logits stay finite and masked positions stay exactly 0.
  const huge = forwardNetwork(one({ softmax_type: 'Masked', mask: [true, false, true] }), Tensor.from([1, 3], [1e30, 1e30, -1e30])).output.data;
  assert.deepEqual([...huge], [1, 0, 0]);
});

test('sparsemax and entmax known answers: exact zeros, sums of 1, the defining thresholds', () => {
  const close = (a: ArrayLike<number>, b: ArrayLike<number>) => assertClose(a, b, 1e-12, 1e-12);
  close(sparsemax([1, 2, 3.5]), [0, 0, 1]);
  close(sparsemax([1, 1.5, 0.2]), [0.25, 0.75, 0]);
  close(sparsemax([2, 2.5, 0]), [0.25, 0.75, 0]);
  close(sparsemax([0.5, 0.2, 0.1]), [0.5 + 0.2 / 3, 0.2 + 0.2 / 3, 0.1 + 0.2 / 3]);
  close(sparsemax([0, 0, 0, 0]), [0.25, 0.25, 0.25, 0.25]);
  close(sparsemax([3, 1, -1, -3]), [1, 0, 0, 0]);
  close(sparsemax([1.2, 1, -1, -3]), [0.6, 0.4, 0, 0]);
  // entmax-1.5([1, 0, −1]): τ = −1/4 − sqrt(7/16) on the halved, max-shifted logits [0, −1/2, −1].
  const tau = -0.25 - Math.sqrt(7 / 16);
  close(entmax([1, 0, -1]), [tau * tau, (0.5 + tau) ** 2, 0]);
  close(entmax([5, 5, 5]), [1 / 3, 1 / 3, 1 / 3]);
  close(entmax([0, -10]), [1, 0]);
  close(entmax([1, 0, -1], 1), softmax([1, 0, -1]));
  close(entmax([1, 0.3, -1], 2), sparsemax([1, 0.3, -1]));

  const z = Array.from(randomArray(40, 9, 3));
  for (const alpha of [1.5, 1.2, 1.5000001, 1.8, 2.5]) {
    const p = entmax(z, alpha);
    const sum = p.reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(sum - 1) < 1e-12, `α ${alpha}: sum ${sum}`);
    assert.ok(p.some((v) => v === 0) && p.filter((v) => v > 0).length > 1, `α ${alpha}: sparse but not one-hot`);
    // p_i^{α−1} + τ' = (α−1)·z_i on the support, and (α−1)·z_i ≤ τ' off it.
    const support = [...p.keys()].filter((i) => p[i] > 0);
    const taus = support.map((i) => (alpha - 1) * z[i] - p[i] ** (alpha - 1));
    for (const t of taus) assert.ok(Math.abs(t - taus[0]) < 1e-9, `α ${alpha}: threshold ${t} vs ${taus[0]}`);
    for (let i = 0; i < z.length; i++) if (p[i] === 0) assert.ok((alpha - 1) * z[i] <= taus[0] + 1e-12);
  }
  // The sort-based entmax-1.5 and bisection next to it agree.
  assertClose(entmax(z, 1.5), entmax(z, 1.5000001), 1e-5, 1e-7);

  // Through the layer: float32 outputs, exact zeros, rows summing to 1.
  for (const type of ['Sparse', 'Entmax']) {
    const y = forwardNetwork(one({ softmax_type: type }), Tensor.from([4, 10], randomArray(40, 8, 3))).output.data;
    for (let r = 0; r < 4; r++) {
      const row = y.subarray(r * 10, r * 10 + 10);
      assert.ok(row.some((v) => v === 0), `${type} row ${r} has exact zeros`);
      assert.ok(Math.abs(row.reduce((a, b) => a + b, 0) - 1) < 1e-6);
    }
  }
});

test('every variant is numerically stable for huge logits and constant rows', () => {
  const x = Tensor.from([3, 12], [...Array.from({ length: 12 }, (_, i) => 1e4 + i), ...new Array(12).fill(-3e4), ...Array.from({ length: 12 }, (_, i) => (i % 2 ? 1e30 : -1e30))]);
  for (const [name, layer] of Object.entries(VARIANTS)) {
    const y = forwardNetwork(one(layer), x).output.data;
    assert.ok(y.every(Number.isFinite), name);
    for (const v of y) assert.ok(v >= 0 && v <= 1, `${name}: ${v}`);
  }
});

test('every variant runs in every dtype through morph', () => {
  const x = Tensor.from([2, 5], randomArray(10, 3));
  for (const [name, layer] of Object.entries(VARIANTS)) {
    const net = afterDense(layer, 5, 12);
    for (const d of ALL_DTYPES) {
      net.morph(d);
      const { output } = forwardNetwork(net, x);
      assert.deepEqual(output.shape, [2, 12], `${name} ${dtypeName(d)}`);
      assert.ok(output.data.every(Number.isFinite), `${name} ${dtypeName(d)}`);
    }
  }
});

test('persistence round trip of every variant: identical JSON and bit-identical outputs', () => {
  const x = Tensor.from([2, 5], randomArray(10, 7));
  for (const [name, layer] of Object.entries(VARIANTS)) {
    const net = afterDense({ ...layer, gumbel_noise: name === 'Sparse' }, 5, 12);
    const text = serializeNetwork(net);
    const loaded = deserializeNetwork(text);
    assert.equal(serializeNetwork(loaded), text, `${name}: re-saved JSON differs`);
    const before = forwardNetwork(net, x).output.data;
    const after = forwardNetwork(loaded, x).output.data;
    assert.deepEqual(new Uint32Array(after.buffer), new Uint32Array(before.buffer), `${name}: outputs differ after reload`);
    const saved = JSON.parse(text).layers[1];
    assert.equal(saved.softmax_type, name);
    for (const [k, v] of Object.entries(layer)) if (k !== 'softmax_type') assert.deepEqual(saved[k], v, `${name}.${k}`);
    assert.equal(saved.weights, undefined);
  }
  const saved = JSON.parse(serializeNetwork(one({ softmax_type: 'sparsemax' }))).layers[0];
  assert.equal(saved.softmax_type, 'Sparse', 'names are written canonically');
  assert.equal(JSON.parse(serializeNetwork(one({}))).layers[0].softmax_type, 'Standard', 'a missing type is Standard');
});

test('softmax config is validated with paths; shape mismatches name the layer', () => {
  assert.throws(() => one({ softmax_type: 'Soft' }), (e: unknown) => e instanceof SpecError && e.message === `layers[0].softmax_type: expected a softmax type (one of ${SOFTMAX_TYPES.join(', ')}), got "Soft"`);
  assert.equal(parseSoftmaxType(6), 'Sparse', 'the original spec\'s enum numbers');
  assert.equal(parseSoftmaxType(' entMAX '), 'Entmax');
  assert.throws(() => parseSoftmaxType(10, 'p'), /p: expected a softmax type .*, got 10/);
  assert.throws(() => one({ temperature: -1 }), /layers\[0\]\.temperature: expected a positive number/);
  assert.throws(() => one({ softmax_type: 'Entmax', entmax_alpha: 0.5 }), /layers\[0\]\.entmax_alpha: expected a number ≥ 1/);
  assert.throws(() => one({ softmax_type: 'Mixture', entmax_alpha: 2.5 }), /layers\[0\]\.entmax_alpha: expected a number in \[1, 2\]/);
  assert.throws(() => one({ softmax_type: 'Hierarchical', hierarchy_levels: [2, 0] }), /layers\[0\]\.hierarchy_levels\[1\]: expected a positive integer, got 0/);
  assert.throws(() => one({ softmax_type: 'Hierarchical', hierarchy_levels: [2, 3], input_height: 8 }), /layers\[0\]\.hierarchy_levels: hierarchy_levels \[2, 3\] hold 6 values, but a row has 8/);
  assert.throws(() => one({ softmax_type: 'Grid', softmax_rows: 2, softmax_cols: 3, input_height: 8 }), /layers\[0\]\.softmax_cols: softmax_rows × softmax_cols = 2×3 = 6, but a row has 8 values/);
  assert.throws(() => one({ softmax_type: 'Masked', mask: [true, false, true], input_height: 2 }), /layers\[0\]\.mask: expected a multiple of input_height \(2\) entries/);
  assert.throws(() => one({ epsilon: 0 }), /layers\[0\]\.epsilon: expected a positive number/);

  const shape = (layer: object, x: Tensor, re: RegExp) => assert.throws(() => forwardNetwork(one(layer), x), (e: unknown) => e instanceof ShapeError && re.test((e as Error).message));
  shape({ input_height: 4 }, Tensor.zeros([2, 6]), /^Softmax at \(0,0,0,0\): expected a multiple of 4 values per sample .*\[2, 6\]/);
  shape({ softmax_type: 'Grid', softmax_cols: 5 }, Tensor.zeros([2, 12]), /^Softmax at \(0,0,0,0\): softmax_cols 5 does not divide a row of 12 values/);
  shape({ softmax_type: 'Hierarchical', hierarchy_levels: [2, 2] }, Tensor.zeros([1, 6]), /hierarchy_levels \[2, 2\] hold 4 values, but a row has 6/);
  shape({ softmax_type: 'Masked', mask: [true, false] }, Tensor.zeros([1, 3]), /a mask of 2 entries fits neither a row \(3\) nor a sample \(3\)/);
});

test('Grid without sizes, Masked without a mask and Hierarchical without levels fall back as the original does', () => {
  const x = Tensor.from([2, 6], randomArray(12, 1));
  const standard = forwardNetwork(one({}), x).output.data;
  for (const layer of [{ softmax_type: 'Grid' }, { softmax_type: 'Masked' }, { softmax_type: 'Hierarchical' }, { softmax_type: 'temperature' }]) {
    assert.deepEqual(forwardNetwork(one(layer), x).output.data, standard, JSON.stringify(layer));
  }
  const grid = forwardNetwork(one({ softmax_type: 'Grid', softmax_rows: 2 }), x).output.data;
  assert.deepEqual(forwardNetwork(one({ softmax_type: 'Hierarchical', softmax_cols: 3 }), x).output.data, grid);
  assert.deepEqual(forwardNetwork(one({ softmax_type: 'Hierarchical', hierarchy_levels: [2, 3] }), x).output.data, grid);
  assert.deepEqual(forwardNetwork(one({ input_height: 3 }), x).output.data, grid);
});
