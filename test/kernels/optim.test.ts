import assert from 'node:assert/strict';
import { test } from 'node:test';
import { adamwStep, kernelMode, optimizerState, rmspropStep, setKernelBackend, sgdStep } from '../../src/kernels/backend.js';
import { WeightStore } from '../../src/core/weightStore.js';
import { AdamW, Rmsprop, Sgd } from '../../src/train/optimizers.js';
import { randomArray } from '../helpers.js';

function bits(a: Float32Array): number[] {
  return Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));
}

/** Runs `update` for 3 steps on the TypeScript loop, the staged kernel, resident state and resident state with the gradient in place; returns [w, ...state] per way. */
function fourWays(n: number, slots: number, update: (w: Float32Array, g: Float32Array, state: Float32Array[], t: number) => void): Float32Array[][] {
  const before = kernelMode();
  try {
    const g = randomArray(n, 1 + n);
    g[0] = 0;
    const w0 = randomArray(n, 2 + n);
    const runs: Float32Array[][] = [];
    for (const how of ['ts', 'wasm', 'resident', 'resident-g'] as const) {
      setKernelBackend(how === 'ts' ? 'ts' : 'wasm');
      const resident = how.startsWith('resident') ? optimizerState(n, slots) : null;
      if (how.startsWith('resident')) assert.ok(resident, 'resident buffers in wasm mode');
      const w = how === 'resident-g' ? resident!.w : Float32Array.from(w0);
      w.set(w0);
      const state = resident?.state ?? Array.from({ length: slots }, () => new Float32Array(n));
      const grad = how === 'resident-g' ? resident!.g : g;
      for (let t = 1; t <= 3; t++) {
        if (how === 'resident-g') grad.set(g.map((x) => x * t));
        update(w, how === 'resident-g' ? grad : g.map((x) => x * t), state, t);
      }
      runs.push([Float32Array.from(w), ...state.map((b) => Float32Array.from(b))]);
    }
    return runs;
  } finally {
    setKernelBackend(before);
  }
}

test('AdamW update: the TypeScript loop, the WebAssembly kernel and resident state give the same bits', () => {
  for (const n of [1, 7, 4096, 5003]) {
    const runs = fourWays(n, 2, (w, g, [m, v], t) => {
      const bc1 = 1 - 0.9 ** t;
      adamwStep(w, g, m, v, { decay: 1 - 1e-3 * (t === 2 ? 0 : 0.01), c1: 0.1, b2: 0.999, c2: 1 - 0.999, bc2: Math.sqrt(1 - 0.999 ** t), eps: 1e-8, step: 1e-3 / bc1 });
    });
    for (const r of runs.slice(1)) r.forEach((b, i) => assert.deepEqual(bits(b), bits(runs[0][i]), `n=${n} buffer ${i}`));
  }
});

test('AdamW optimizer: a training loop\'s gradient buffers are the WebAssembly-resident ones, and the result is the same as from any array', () => {
  const before = kernelMode();
  try {
    setKernelBackend('wasm');
    const n = 5003;
    const w0 = randomArray(n, 11);
    const grads = [randomArray(n, 12), randomArray(n, 13)];
    const a = new AdamW({ lr: 1e-2 });
    const b = new AdamW({ lr: 1e-2 });
    const wa = Float32Array.from(w0);
    const wb = Float32Array.from(w0);
    for (const g of grads) {
      a.step([{ key: '3', values: wa, grad: g }]);
      const slot = b.gradientBuffers.get('3') ?? Float32Array.from(g);
      slot.set(g);
      b.step([{ key: '3', values: wb, grad: slot }]);
    }
    assert.equal(b.gradientBuffers.get('3')!.length, n, 'the first step made a resident gradient buffer');
    assert.deepEqual(bits(wb), bits(wa));

    // Handed the layer's store, AdamW moves the master into its memory and updates it there: same bits.
    const c = new AdamW({ lr: 1e-2 });
    const store = new WeightStore(Float32Array.from(w0));
    const original = store.master;
    for (const g of grads) c.step([{ key: '3', values: store.master, grad: g, store }]);
    assert.notEqual(store.master, original, 'the master moved');
    assert.deepEqual(bits(original), bits(w0), 'the old array keeps the values it had');
    assert.deepEqual(bits(store.master), bits(wa));
  } finally {
    setKernelBackend(before);
  }
});

test('AdamW optimizer: one step matches the float64 formula to float32 rounding', () => {
  const n = 5000;
  const w = randomArray(n, 5);
  const grad = randomArray(n, 6);
  const want = Array.from(w, (x, i) => {
    const m = 0.1 * grad[i];
    const v = 0.001 * grad[i] * grad[i];
    const d = Math.sqrt(v) / Math.sqrt(0.001) + 1e-8;
    return x * (1 - 1e-3 * 0.01) - (1e-3 / 0.1) * (m / d);
  });
  new AdamW({ lr: 1e-3 }).step([{ key: '0', values: w, grad }]);
  for (let i = 0; i < n; i++) assert.ok(Math.abs(w[i] - want[i]) <= 1e-6 * (Math.abs(want[i]) + 1e-3), `w[${i}] ${w[i]} vs ${want[i]}`);
});

test('SGD update: the TypeScript loop, the WebAssembly kernel and resident state give the same bits, for every option', () => {
  for (const n of [1, 7, 4096, 5003]) {
    for (const [momentum, dampening, nesterov, weightDecay] of [[0, 0, false, 0], [0.9, 0, false, 0], [0.9, 0.1, false, 1e-4], [0.9, 0, true, 0.01], [0, 0, false, 0.05]] as const) {
      const runs = fourWays(n, momentum ? 1 : 0, (w, g, [buf], t) => sgdStep(w, g, buf ?? null, { lr: 0.05, momentum, dampening, nesterov, weightDecay, first: t === 1 }));
      for (const r of runs.slice(1)) r.forEach((b, i) => assert.deepEqual(bits(b), bits(runs[0][i]), `n=${n} momentum=${momentum} nesterov=${nesterov} buffer ${i}`));
    }
  }
});

test('RMSprop update: the TypeScript loop, the WebAssembly kernel and resident state give the same bits, for every option', () => {
  for (const n of [1, 7, 4096, 5003]) {
    for (const [centered, momentum, weightDecay] of [[false, 0, 0], [true, 0, 0], [false, 0.9, 1e-3], [true, 0.5, 0.01]] as const) {
      const slots = 1 + (centered ? 1 : 0) + (momentum ? 1 : 0);
      const runs = fourWays(n, slots, (w, g, [sq, ...rest], t) => {
        const avg = centered ? rest[0] : null;
        const buf = momentum ? rest[rest.length - 1] : null;
        rmspropStep(w, g, sq, avg, buf, { lr: 0.01 / t, alpha: 0.99, eps: 1e-8, momentum, weightDecay });
      });
      for (const r of runs.slice(1)) r.forEach((b, i) => assert.deepEqual(bits(b), bits(runs[0][i]), `n=${n} centered=${centered} momentum=${momentum} buffer ${i}`));
    }
  }
});

test('SGD and RMSprop optimizers: a step matches the float64 formulas to float32 rounding, and keep the layer\'s master in their memory', () => {
  const n = 5000;
  const w0 = randomArray(n, 21);
  const grad = randomArray(n, 22);
  const close = (got: Float32Array, want: (i: number) => number, what: string) => {
    // float32 rounding of the terms (about 1e-7 of each), not of the difference they leave.
    for (let i = 0; i < n; i++) assert.ok(Math.abs(got[i] - want(i)) <= 1e-6 * (Math.abs(w0[i]) + Math.abs(grad[i]) + 1e-3), `${what} w[${i}] ${got[i]} vs ${want(i)}`);
  };
  const before = kernelMode();
  try {
    for (const mode of ['ts', 'wasm'] as const) {
      setKernelBackend(mode);
      const sgd = new WeightStore(Float32Array.from(w0));
      const original = sgd.master;
      const opt = new Sgd({ lr: 0.1, momentum: 0.9, weightDecay: 0.01 });
      opt.step([{ key: '0', values: sgd.master, grad, store: sgd }]);
      opt.step([{ key: '0', values: sgd.master, grad, store: sgd }]);
      // Two steps: b1 = g + wd·w0, w1 = w0 − lr·b1; b2 = 0.9·b1 + (g + wd·w1), w2 = w1 − lr·b2.
      close(sgd.master, (i) => {
        const b1 = grad[i] + 0.01 * w0[i];
        const w1 = w0[i] - 0.1 * b1;
        return w1 - 0.1 * (0.9 * b1 + grad[i] + 0.01 * w1);
      }, `sgd ${mode}`);
      assert.equal(sgd.master !== original, mode === 'wasm', `sgd ${mode}: master moved`);
      const rms = new WeightStore(Float32Array.from(w0));
      new Rmsprop({ lr: 0.01, centered: true }).step([{ key: '0', values: rms.master, grad, store: rms }]);
      close(rms.master, (i) => {
        const s = 0.01 * grad[i] * grad[i];
        const a = 0.01 * grad[i];
        return w0[i] - 0.01 * (grad[i] / (Math.sqrt(s - a * a) + 1e-8));
      }, `rmsprop ${mode}`);
    }
  } finally {
    setKernelBackend(before);
  }
});
