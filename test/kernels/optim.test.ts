import assert from 'node:assert/strict';
import { test } from 'node:test';
import { adamwBuffers, adamwStep, kernelMode, setKernelBackend } from '../../src/kernels/backend.js';
import { WeightStore } from '../../src/core/weightStore.js';
import { AdamW } from '../../src/train/optimizers.js';
import { randomArray } from '../helpers.js';

function bits(a: Float32Array): number[] {
  return Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));
}

test('AdamW update: the TypeScript loop, the WebAssembly kernel and resident moments give the same bits', () => {
  const before = kernelMode();
  try {
    for (const n of [1, 7, 4096, 5003]) {
      const g = randomArray(n, 1 + n);
      g[0] = 0;
      const w0 = randomArray(n, 2 + n);
      const runs: Float32Array[][] = [];
      // 'resident-g': the gradient handed over is the state's own buffer, read in place.
      for (const how of ['ts', 'wasm', 'resident', 'resident-g'] as const) {
        setKernelBackend(how === 'ts' ? 'ts' : 'wasm');
        const w = Float32Array.from(w0);
        const resident = how.startsWith('resident') ? adamwBuffers(n) : null;
        if (how.startsWith('resident')) assert.ok(resident, 'resident buffers in wasm mode');
        const m = resident?.m ?? new Float32Array(n);
        const v = resident?.v ?? new Float32Array(n);
        const grad = how === 'resident-g' ? resident!.g : g;
        for (let t = 1; t <= 3; t++) {
          const bc1 = 1 - 0.9 ** t;
          if (how === 'resident-g') grad.set(g);
          adamwStep(w, grad, m, v, { decay: 1 - 1e-3 * (t === 2 ? 0 : 0.01), c1: 0.1, b2: 0.999, c2: 1 - 0.999, bc2: Math.sqrt(1 - 0.999 ** t), eps: 1e-8, step: 1e-3 / bc1 });
        }
        runs.push([w, Float32Array.from(m), Float32Array.from(v)]);
      }
      for (const r of runs.slice(1)) for (let i = 0; i < 3; i++) assert.deepEqual(bits(r[i]), bits(runs[0][i]), `n=${n} buffer ${i}`);
    }
  } finally {
    setKernelBackend(before);
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
