import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ALL_DTYPES, DType, dtypeName } from '../../src/core/dtype.js';
import { LoomError, ShapeError, SpecError } from '../../src/core/errors.js';
import { Tensor } from '../../src/core/tensor.js';
import { backwardNetwork, forwardNetwork } from '../../src/engine/run.js';
import { StepState, createStepState, createStepWorkerPool, stepBackward, stepForward } from '../../src/engine/step.js';
import type { VolumetricNetwork } from '../../src/grid/network.js';
import { buildNetwork } from '../../src/grid/spec.js';
import { assertClose, randomArray } from '../helpers.js';

type Spec = { depth: number; rows: number; cols: number; layers_per_cell: number; layers: Record<string, unknown>[] };

const dense = (z: number, y: number, x: number, l: number, i: number, o: number, activation = 'Tanh', extra: object = {}) => ({
  z, y, x, l, type: 'Dense', activation, input_height: i, output_height: o, use_bias: true, ...extra,
});
const residual = (z: number, y: number, x: number, l: number, extra: object = {}) => ({ z, y, x, l, type: 'Residual', ...extra });
const remote = (z: number, y: number, x: number, l: number) => ({ is_remote_link: true, target_z: z, target_y: y, target_x: x, target_l: l });

/**
 * A mesh with both kinds of skip and a loop: (0,0,1) adds the output of the later (0,1,1) to its
 * input (feedback, so memory), (0,1,0) adds what (0,0,2) read (x + f(x)).
 */
const LOOP_SPEC: Spec = {
  depth: 1, rows: 2, cols: 3, layers_per_cell: 1,
  layers: [
    dense(0, 0, 0, 0, 3, 4),
    residual(0, 0, 1, 0, remote(0, 1, 1, 0)),
    dense(0, 0, 2, 0, 4, 4),
    residual(0, 1, 0, 0),
    dense(0, 1, 1, 0, 4, 4, 'Sigmoid'),
    dense(0, 1, 2, 0, 4, 2, 'Linear'),
  ],
};

/** 18 cells over depth 2 × rows 3 × cols 3, with a loop and a link back, so that tiles reorder the dispatch. */
function bigSpec(): Spec {
  const layers: Record<string, unknown>[] = [];
  for (let z = 0; z < 2; z++)
    for (let y = 0; y < 3; y++)
      for (let x = 0; x < 3; x++) {
        if (z === 1 && y === 0 && x === 1) layers.push(residual(z, y, x, 0, remote(1, 2, 2, 0)));
        else layers.push(dense(z, y, x, 0, z + y + x === 0 ? 3 : 5, 5, 'Tanh', z === 0 && y === 2 && x === 1 ? remote(0, 0, 1, 0) : {}));
      }
  return { depth: 2, rows: 3, cols: 3, layers_per_cell: 1, layers };
}

const inputsFor = (ticks: number, batch: number, width: number, seed: number): Tensor[] =>
  Array.from({ length: ticks }, (_, t) => Tensor.from([batch, width], randomArray(batch * width, seed + t)));

/** Runs a fresh mesh over `inputs`, one tick each; returns the output of every tick. */
function runMesh(net: VolumetricNetwork, inputs: Tensor[], options: ConstructorParameters<typeof StepState>[1] = {}): { state: StepState; outputs: Tensor[] } {
  const state = createStepState(net, options);
  const outputs = inputs.map((x) => stepForward(state, x));
  return { state, outputs };
}

test('same seed gives identical buffers tick after tick; another seed does not', () => {
  const inputs = inputsFor(7, 2, 3, 10);
  const a = createStepState(buildNetwork(LOOP_SPEC, { seed: 5 }));
  const b = createStepState(buildNetwork(LOOP_SPEC, { seed: 5 }));
  const c = createStepState(buildNetwork(LOOP_SPEC, { seed: 6 }));
  for (const x of inputs) {
    stepForward(a, x);
    stepForward(b, x);
    stepForward(c, x);
    assert.deepEqual(a.outputs.map((t) => t && [...t.data]), b.outputs.map((t) => t && [...t.data]));
  }
  assert.notDeepEqual([...a.output().data], [...c.output().data]);
  assert.equal(a.tick, 7);
});

test('tiled dispatch gives bit-identical buffers for every tile size', () => {
  const spec = bigSpec();
  const inputs = inputsFor(9, 3, 3, 20);
  const reference = runMesh(buildNetwork(spec, { seed: 3 }), inputs);
  for (const tileSize of [1, 2, 3]) {
    const tiled = runMesh(buildNetwork(spec, { seed: 3 }), inputs, { tileSize });
    assert.deepEqual(tiled.state.outputs.map((t) => t && [...t.data]), reference.state.outputs.map((t) => t && [...t.data]), `tile ${tileSize}`);
    tiled.outputs.forEach((o, t) => assert.deepEqual([...o.data], [...reference.outputs[t].data], `tile ${tileSize}, tick ${t}`));
  }
  // Tiles of 2 do change the order cells fire in.
  const order = (state: StepState) => state.layout.order.map((c) => c.index);
  const seq = createStepState(buildNetwork(spec));
  const tiled2 = createStepState(buildNetwork(spec), { tileSize: 2 });
  seq.setInput(inputs[0]);
  tiled2.setInput(inputs[0]);
  assert.notDeepEqual(order(tiled2), order(seq));
});

test('worker threads: tiles spread over 1 or 3 workers give bit-identical buffers, also morphed and with weights changing between ticks', async () => {
  const spec = bigSpec();
  const inputs = inputsFor(6, 2, 3, 80);
  /** Runs the ticks, nudging the weights after tick 2 (as training would) and morphing to int8 after tick 4. */
  const drive = async (net: VolumetricNetwork, tick: (x: Tensor) => Promise<Tensor> | Tensor) => {
    const outs: number[][] = [];
    for (let t = 0; t < inputs.length; t++) {
      outs.push([...(await tick(inputs[t])).data]);
      if (t === 2) for (const l of net.layers()) l.weights?.applyGradients(Float32Array.from(l.weights.master, (v) => v * 0.5), 0.1);
      // Masters that are views into larger buffers (as AdamW keeps them) reach the workers on their own.
      if (t === 3) for (const l of net.layers()) l.weights?.relocate(new Float32Array(l.weights.count + 8).subarray(4, 4 + l.weights.count));
      if (t === 4) net.morph(DType.Int8);
    }
    return outs;
  };
  const refNet = buildNetwork(spec, { seed: 3 });
  const refState = createStepState(refNet);
  const expected = await drive(refNet, (x) => stepForward(refState, x));
  for (const [workers, tileSize] of [[1, 0], [3, 1], [3, 2]]) {
    const net = buildNetwork(spec, { seed: 3 });
    const pool = await createStepWorkerPool(net, workers);
    try {
      const state = createStepState(net, { tileSize });
      assert.deepEqual(await drive(net, (x) => pool.tick(state, x)), expected, `${workers} workers, tiles of ${tileSize}`);
      assert.deepEqual(state.outputs.map((t) => t && [...t.data]), refState.outputs.map((t) => t && [...t.data]));
      await assert.rejects(pool.tick(createStepState(net, { captureHistory: true }), inputs[0]), /history capture needs the layer caches/);
      await assert.rejects(pool.tick(createStepState(buildNetwork(spec)), inputs[0]), /belongs to another network/);
    } finally {
      await pool.close();
    }
  }
});

test('a feed-forward chain shows forwardNetwork\'s output after N ticks, bit for bit, and zeros-driven values before', () => {
  const spec: Spec = {
    depth: 1, rows: 1, cols: 4, layers_per_cell: 1,
    layers: [dense(0, 0, 0, 0, 3, 5), { ...dense(0, 0, 1, 0, 5, 99), is_disabled: true }, dense(0, 0, 2, 0, 5, 4, 'ReLU'), dense(0, 0, 3, 0, 4, 2, 'Linear')],
  };
  const net = buildNetwork(spec, { seed: 2 });
  const x = Tensor.from([2, 3], randomArray(6, 4));
  const state = createStepState(net);
  const first = stepForward(state, x);
  assert.equal(state.latency, 2, 'three enabled layers: the input shows at the output two ticks after entering');
  // Tick 0: the output layer read zeros of its source's shape.
  const out = net.getLayer(0, 0, 3, 0)!;
  const fromZeros = out.kind.forward(out, Tensor.zeros([2, 4]), out.weights!.master, null).output;
  assert.deepEqual([...first.data], [...fromZeros.data]);
  stepForward(state);
  const third = stepForward(state);
  assert.deepEqual([...third.data], [...forwardNetwork(net, x).output.data]);
  assert.deepEqual(third.shape, [2, 2]);
});

test('every dtype: after N ticks the mesh equals forwardNetwork in that dtype', () => {
  const layers = [dense(0, 0, 0, 0, 4, 6), dense(0, 0, 1, 0, 6, 6, 'ReLU'), dense(0, 0, 2, 0, 6, 3, 'Linear')];
  const net = buildNetwork({ depth: 1, rows: 1, cols: 3, layers_per_cell: 1, layers }, { seed: 9 });
  const x = Tensor.from([2, 4], randomArray(8, 5));
  for (const d of ALL_DTYPES) {
    net.morph(d);
    const { outputs } = runMesh(net, [x, x, x]);
    const expected = forwardNetwork(net, x).output;
    assert.deepEqual([...outputs[2].data], [...expected.data], dtypeName(d));
    assert.ok(outputs[2].data.every(Number.isFinite), dtypeName(d));
  }
});

test('recurrence through a link to a later cell: an input echoes every second tick, long after the feed-forward depth', () => {
  // (0,0,0) A = Dense(x); (0,0,1) R = A + C (C later: the loop); (0,0,2) C = Dense(R). So C_t = f(A_{t-2} + C_{t-2}).
  const spec: Spec = {
    depth: 1, rows: 1, cols: 3, layers_per_cell: 1,
    layers: [dense(0, 0, 0, 0, 2, 3), residual(0, 0, 1, 0, remote(0, 0, 2, 0)), dense(0, 0, 2, 0, 3, 3)],
  };
  const net = buildNetwork(spec, { seed: 7 });
  const inputs = inputsFor(9, 1, 2, 30);
  const { outputs } = runMesh(net, inputs);

  // The same recurrence written out with the layers called directly.
  const [a, , c] = net.layers();
  const f = (layer: typeof a, v: Tensor) => layer.kind.forward(layer, v, layer.weights!.master, null).output;
  const add = (p: Tensor, q: Tensor) => new Tensor(p.data.map((v, i) => v + q.data[i]), p.shape);
  let A = Tensor.zeros([1, 3]);
  let R = Tensor.zeros([1, 3]);
  let C = Tensor.zeros([1, 3]);
  for (let t = 0; t < inputs.length; t++) {
    [A, R, C] = [f(a, inputs[t]), add(A, C), f(c, R)];
    assert.deepEqual([...outputs[t].data], [...C.data], `tick ${t}`);
  }

  // Changing x_0 alone changes the output at ticks 2, 4, 6, 8 and never at odd ticks.
  const changed = inputs.map((x, t) => (t === 0 ? Tensor.from([1, 2], [5, -5]) : x));
  const other = runMesh(buildNetwork(spec, { seed: 7 }), changed).outputs;
  for (let t = 0; t < inputs.length; t++) {
    const same = [...other[t].data].every((v, i) => v === outputs[t].data[i]);
    assert.equal(same, t % 2 === 1 || t < 2, `tick ${t}`);
  }
});

test('BPTT of a feed-forward chain equals backwardNetwork bit for bit', () => {
  const spec: Spec = {
    depth: 1, rows: 1, cols: 3, layers_per_cell: 1,
    layers: [dense(0, 0, 0, 0, 3, 5), dense(0, 0, 1, 0, 5, 4, 'Sigmoid'), dense(0, 0, 2, 0, 4, 2, 'Linear')],
  };
  const net = buildNetwork(spec, { seed: 11 });
  const x = Tensor.from([2, 3], randomArray(6, 12));
  const { state, outputs } = runMesh(net, [x, x, x], { captureHistory: true });
  const g = Tensor.from([2, 2], randomArray(4, 13));
  const bptt = stepBackward(state, g);
  const { trace } = forwardNetwork(net, x, { keepTrace: true });
  const ref = backwardNetwork(net, trace!, g);
  assert.deepEqual([...outputs[2].data], [...trace!.values[3].data]);
  assert.deepEqual(bptt.gradients.map((p) => p.key), ref.gradients.map((p) => p.key));
  bptt.gradients.forEach((p, i) => assert.deepEqual([...p.grad], [...ref.gradients[i].grad], p.key));
  assert.deepEqual([...bptt.gradInputs[0].data], [...ref.gradInput.data]);
  assert.ok(bptt.gradInputs.slice(1).every((t) => t.data.every((v) => v === 0)), 'later inputs never reach the output in time');
});

/**
 * The mesh unrolled over `ticks` into an ordinary grid for forwardNetwork: one copy of each cell per
 * tick (same weights), remote links standing for "read that copy"; a hub (identity) holds all tick
 * inputs side by side, selection layers cut out each tick's input, zero layers stand for unwritten
 * buffers, and an identity relay sits before every Residual copy (whose input is always the step before it).
 */
function unroll(spec: Spec, mesh: VolumetricNetwork, ticks: number, batchInput: Tensor) {
  const state = createStepState(mesh);
  state.setInput(batchInput);
  const { cells, inShapes, outShapes } = state.layout;
  const n = batchInput.shape[1];
  const width = n * ticks;
  type Entry = { spec: Record<string, unknown>; weights: Float32Array | null };
  const entries: Entry[] = [];
  const place = (s: Record<string, unknown>, weights: Float32Array | null): number => {
    entries.push({ spec: { ...s, z: 0, y: 0, x: entries.length, l: 0 }, weights });
    return entries.length - 1;
  };
  const link = (x: number) => remote(0, 0, x, 0);
  const identity = (m: number) => Float32Array.from({ length: m * m }, (_, i) => (i % (m + 1) === 0 ? 1 : 0));
  const hub = place({ type: 'Dense', input_height: width, output_height: width }, identity(width));
  const select = Array.from({ length: ticks }, (_, t) => {
    const w = new Float32Array(n * width);
    for (let j = 0; j < n; j++) w[j * width + t * n + j] = 1;
    return place({ type: 'Dense', input_height: width, output_height: n, ...link(hub) }, w);
  });
  const zeroOf = new Map<number, number>();
  const zero = (shape: readonly number[]) => {
    const m = shape[1];
    if (!zeroOf.has(m)) zeroOf.set(m, place({ type: 'Dense', input_height: width, output_height: m, ...link(hub) }, new Float32Array(m * width)));
    return zeroOf.get(m)!;
  };
  const copies: Map<number, number>[] = [];
  const specOf = new Map(spec.layers.map((l) => [mesh.index(l.z as number, l.y as number, l.x as number, l.l as number), l]));
  // Which placed entry holds the value a cell read in tick t (t < 0: nothing yet).
  const read = (source: number, t: number, shapeIfNone: readonly number[]): number =>
    source === -1 ? (t >= 0 ? select[t] : zero(shapeIfNone)) : t >= 1 ? copies[t - 1].get(source)! : zero(outShapes.get(source)!);
  for (let t = 0; t < ticks; t++) {
    copies.push(new Map());
    for (const c of cells) {
      const { z: _z, y: _y, x: _x, l: _l, is_remote_link: _r, target_z: _tz, target_y: _ty, target_x: _tx, target_l: _tl, ...own } = specOf.get(c.index)!;
      const weights = c.layer.weights ? c.layer.weights.master.slice() : null;
      const input = read(c.source, t, inShapes.get(c.index)!);
      if (!c.layer.kind.takesSkip) {
        copies[t].set(c.index, place({ ...own, ...link(input) }, weights));
        continue;
      }
      const m = inShapes.get(c.index)![1];
      place({ type: 'Dense', input_height: m, output_height: m, ...link(input) }, identity(m));
      let skip: number;
      if (c.skipMode === 'remote') skip = read(c.skipCell, t, outShapes.get(c.skipCell)!);
      else {
        const prev = cells.find((p) => p.index === c.skipCell)!;
        skip = read(prev.source, t - 1, inShapes.get(prev.index)!);
      }
      copies[t].set(c.index, place({ ...own, ...link(skip) }, weights));
    }
  }
  const net = buildNetwork({ depth: 1, rows: 1, cols: entries.length, layers_per_cell: 1, layers: entries.map((e) => e.spec) });
  entries.forEach((e, x) => {
    if (e.weights) net.getLayer(0, 0, x, 0)!.weights!.master.set(e.weights);
  });
  return { net, copies, select };
}

test('BPTT through a loop and both skip kinds equals the unrolled network built with the normal engine', () => {
  const mesh = buildNetwork(LOOP_SPEC, { seed: 21 });
  const ticks = 8;
  const inputs = inputsFor(ticks, 2, 3, 40);
  const { state, outputs } = runMesh(mesh, inputs, { captureHistory: true });
  const g = Tensor.from([2, 2], randomArray(4, 41));
  const bptt = stepBackward(state, g);

  const stacked = new Float32Array(2 * 3 * ticks);
  for (let b = 0; b < 2; b++) for (let t = 0; t < ticks; t++) stacked.set(inputs[t].data.subarray(b * 3, b * 3 + 3), b * 3 * ticks + t * 3);
  const x = new Tensor(stacked, [2, 3 * ticks]);
  const unrolled = unroll(LOOP_SPEC, mesh, ticks, inputs[0]);
  const { output, trace } = forwardNetwork(unrolled.net, x, { keepTrace: true });
  assert.deepEqual([...outputs[ticks - 1].data], [...output.data], 'forward values are the same computations');

  const ref = backwardNetwork(unrolled.net, trace!, g);
  const byKey = new Map(ref.gradients.map((p) => [p.key, p.grad]));
  assert.ok(bptt.gradients.length >= 4);
  for (const p of bptt.gradients) {
    const sum = new Float64Array(p.grad.length);
    for (const copy of unrolled.copies) {
      const grad = byKey.get(String(copy.get(Number(p.key))));
      if (grad) for (let i = 0; i < sum.length; i++) sum[i] += grad[i];
    }
    assertClose(p.grad, sum, 1e-5, 1e-7, `parameter gradient of cell ${p.key}`);
  }
  for (let t = 0; t < ticks; t++) {
    const expected = new Float32Array(6);
    for (let b = 0; b < 2; b++) expected.set(ref.gradInput.data.subarray(b * 3 * ticks + t * 3, b * 3 * ticks + t * 3 + 3), b * 3);
    assertClose(bptt.gradInputs[t].data, expected, 1e-5, 1e-7, `input gradient of tick ${t}`);
  }
});

test('BPTT with a loss on every tick matches central finite differences', () => {
  const net = buildNetwork(LOOP_SPEC, { seed: 31 });
  const ticks = 7;
  const inputs = inputsFor(ticks, 2, 3, 50);
  const r = Array.from({ length: ticks }, (_, t) => randomArray(4, 60 + t));
  const loss = (): number => {
    const { outputs } = runMesh(net, inputs);
    let s = 0;
    outputs.forEach((o, t) => o.data.forEach((v, i) => (s += v * r[t][i])));
    return s;
  };
  const { state } = runMesh(net, inputs, { captureHistory: true });
  const { gradients, gradInputs } = stepBackward(state, r.map((v) => Tensor.from([2, 2], v)));
  const eps = 1e-3;
  const central = (values: Float32Array, i: number): number => {
    const keep = values[i];
    values[i] = keep + eps;
    const up = loss();
    values[i] = keep - eps;
    const down = loss();
    values[i] = keep;
    return (up - down) / (2 * eps);
  };
  for (const { key, layer, grad } of gradients) {
    const w = layer.weights!.master;
    const got: number[] = [];
    const want: number[] = [];
    for (let i = 0; i < w.length; i += 3) {
      want.push(central(w, i));
      got.push(grad[i]);
    }
    assertClose(got, want, 2e-2, 2e-3, `parameter gradient of cell ${key}`);
  }
  for (const t of [0, 3, 6]) {
    const want = Array.from({ length: 6 }, (_, i) => central(inputs[t].data, i));
    assertClose(gradInputs[t].data, want, 2e-2, 2e-3, `input gradient of tick ${t}`);
  }
});

test('a history limit truncates BPTT: older ticks become constants', () => {
  const net = buildNetwork(LOOP_SPEC, { seed: 8 });
  const inputs = inputsFor(10, 1, 3, 70);
  const full = runMesh(net, inputs, { captureHistory: true }).state;
  const limited = runMesh(net, inputs, { captureHistory: true, historyLimit: 6 }).state;
  assert.equal(limited.history.length, 6);
  assert.equal(limited.history[0].tick, 4);
  const g = Tensor.from([1, 2], [1, -1]);
  const a = stepBackward(full, g);
  const b = stepBackward(limited, g);
  // Inputs reach the output 5 + 4k ticks later (feed-forward path plus turns of the 4-tick loop).
  const nonZero = (t: Tensor) => t.data.some((v) => v !== 0);
  assert.deepEqual(a.gradInputs.map(nonZero), [true, false, false, false, true, false, false, false, false, false]);
  assert.deepEqual(b.gradInputs.map(nonZero), [true, false, false, false, false, false]);
  assert.deepEqual([...b.gradInputs[0].data], [...a.gradInputs[4].data]);
});

test('clear errors: missing input, changed input shape, bad remote target, a loop nothing feeds, no history', () => {
  const net = buildNetwork(LOOP_SPEC);
  const state = createStepState(net);
  assert.throws(() => stepForward(state), (e: unknown) => e instanceof LoomError && /no input yet/.test((e as Error).message));
  stepForward(state, Tensor.zeros([1, 3]));
  assert.throws(() => stepForward(state, Tensor.zeros([2, 3])), (e: unknown) => e instanceof ShapeError && /call reset\(\) first/.test((e as Error).message));
  state.reset();
  stepForward(state, Tensor.zeros([2, 3]));
  assert.throws(() => stepBackward(state, Tensor.zeros([2, 2])), /no captured ticks/);

  const toEmpty = [dense(0, 0, 0, 0, 3, 3), { ...dense(0, 0, 1, 0, 3, 3), ...remote(0, 0, 2, 0) }];
  const empty = buildNetwork({ depth: 1, rows: 1, cols: 3, layers_per_cell: 1, layers: toEmpty });
  assert.throws(() => stepForward(createStepState(empty), Tensor.zeros([1, 3])), /remote link to \(0,0,2,0\): the target must be an enabled layer/);

  // (0,0,0) reads (0,0,1), which reads (0,0,0): no way in from the input.
  const loop = [{ ...dense(0, 0, 0, 0, 3, 3), ...remote(0, 0, 1, 0) }, dense(0, 0, 1, 0, 3, 3)];
  const closed = buildNetwork({ depth: 1, rows: 1, cols: 2, layers_per_cell: 1, layers: loop });
  assert.throws(
    () => stepForward(createStepState(closed), Tensor.zeros([1, 3])),
    (e: unknown) => e instanceof ShapeError && /nothing feeds the loop/.test((e as Error).message),
  );

  const wrong = createStepState(buildNetwork(LOOP_SPEC), { captureHistory: true });
  stepForward(wrong, Tensor.zeros([1, 3]));
  assert.throws(() => stepBackward(wrong, Tensor.zeros([1, 5])), ShapeError);
  assert.throws(() => createStepState(net, { tileSize: -1 }), /tileSize/);
});

test('build time: a remote link outside the grid or with mismatched widths is a SpecError naming both coordinates', () => {
  const grid = (layers: Record<string, unknown>[]) => ({ depth: 1, rows: 1, cols: 3, layers_per_cell: 1, layers });
  assert.throws(
    () => buildNetwork(grid([dense(0, 0, 0, 0, 3, 4), { ...dense(0, 0, 1, 0, 4, 4), ...remote(0, 2, 0, 0) }])),
    (e: unknown) => e instanceof SpecError && /layers\[1\]\.target_z.*remote link target \(0,2,0,0\) is outside the grid/.test((e as Error).message),
  );
  // (0,0,2) reads (0,0,0), which writes 4 values, but it takes 5; a link back to a later cell is checked the same way.
  assert.throws(
    () => buildNetwork(grid([dense(0, 0, 0, 0, 3, 4), dense(0, 0, 1, 0, 4, 5), { ...dense(0, 0, 2, 0, 5, 2), ...remote(0, 0, 0, 0) }])),
    (e: unknown) =>
      e instanceof SpecError &&
      /layers\[2\]\.target_z: .*remote link from \(0,0,2,0\) to \(0,0,0,0\): Dense at \(0,0,0,0\) writes 4 values per sample but Dense at \(0,0,2,0\) reads 5/.test((e as Error).message),
  );
  assert.throws(
    () => buildNetwork(grid([{ ...dense(0, 0, 0, 0, 3, 3), ...remote(0, 0, 2, 0) }, dense(0, 0, 1, 0, 3, 4), dense(0, 0, 2, 0, 4, 2)])),
    /remote link from \(0,0,0,0\) to \(0,0,2,0\): Dense at \(0,0,2,0\) writes 2 values per sample but Dense at \(0,0,0,0\) reads 3/,
  );
  // Conv and recurrent layers state their widths too: 8 filters × 4×4 = 128 values; an LSTM over 4 steps of 4 reads 16.
  const conv = { type: 'Conv2D', input_channels: 1, input_height: 4, input_width: 4, filters: 8, kernel_size: 3, padding: 1 };
  assert.throws(
    () => buildNetwork(grid([{ z: 0, y: 0, x: 0, l: 0, ...conv }, dense(0, 0, 1, 0, 128, 4), { ...dense(0, 0, 2, 0, 100, 2), ...remote(0, 0, 0, 0) }])),
    /CNN2 at \(0,0,0,0\) writes 128 values per sample but Dense at \(0,0,2,0\) reads 100/,
  );
  const rnn = { type: 'LSTM', input_height: 4, output_height: 16, seq_length: 4 };
  assert.throws(
    () => buildNetwork(grid([dense(0, 0, 0, 0, 3, 12), dense(0, 0, 1, 0, 12, 16), { z: 0, y: 0, x: 2, l: 0, ...rnn, ...remote(0, 0, 0, 0) }])),
    /Dense at \(0,0,0,0\) writes 12 values per sample but LSTM at \(0,0,2,0\) reads 16/,
  );
  // Matching widths, and layers whose widths their config does not fix (Residual skips, attention), build.
  buildNetwork(grid([dense(0, 0, 0, 0, 3, 4), dense(0, 0, 1, 0, 4, 5), { ...dense(0, 0, 2, 0, 4, 2), ...remote(0, 0, 0, 0) }]));
  buildNetwork(grid([dense(0, 0, 0, 0, 3, 4), dense(0, 0, 1, 0, 4, 4), residual(0, 0, 2, 0, remote(0, 0, 0, 0))]));
});
