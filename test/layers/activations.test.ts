import assert from 'node:assert/strict';
import { test } from 'node:test';
import { kernelMode, setKernelBackend } from '../../src/kernels/backend.js';
import { Activation, activateInto, activationBackwardInto } from '../../src/layers/activations.js';

/** Inputs across both branches of tanh (|x| < 0.625 and above), saturation, and the special values. */
function sweep(): Float32Array {
  const x: number[] = [0, -0, 1e-30, -1e-30, 1e-40, 0.625, -0.625, 0.62499994, 9, -9, 20, -20, 88, -88, 1e9, -1e9, Infinity, -Infinity];
  for (let i = -3000; i <= 3000; i++) x.push(i * 1e-5, i * 7e-3 + Math.sin(i) * 1e-3);
  return Float32Array.from(x);
}

/** σ(x) and tanh(x) with their derivatives in float64, in forms that stay accurate when saturated. */
const exact = {
  sigmoid: (x: number) => 1 / (1 + Math.exp(-x)),
  sigmoidPrime: (x: number) => {
    const e = Math.exp(-Math.abs(x));
    return e / ((1 + e) * (1 + e));
  },
  tanh: Math.tanh,
  tanhPrime: (x: number) => {
    const e = Math.exp(-2 * Math.abs(x));
    return (4 * e) / ((1 + e) * (1 + e));
  },
};

function withKernels<T>(mode: 'ts' | 'wasm', run: () => T): T {
  const before = kernelMode();
  setKernelBackend(mode);
  try {
    return run();
  } finally {
    setKernelBackend(before);
  }
}

for (const [name, act, f, fPrime] of [
  ['Sigmoid', Activation.Sigmoid, exact.sigmoid, exact.sigmoidPrime],
  ['Tanh', Activation.Tanh, exact.tanh, exact.tanhPrime],
] as const) {
  test(`${name} on the WebAssembly kernels: within 4 float32 ulps of float64 forward and backward, saturated derivatives included`, () => {
    const x = sweep();
    const g = Float32Array.from(x, (_, i) => 1 + 0.5 * Math.cos(i));
    const [out, grad] = withKernels('wasm', () => {
      const o = new Float32Array(x.length);
      const d = new Float32Array(x.length);
      activateInto(x, o, act);
      activationBackwardInto(g, x, d, act);
      return [o, d];
    });
    for (let i = 0; i < x.length; i++) {
      // exp's argument is clamped to float32's range, so values that underflow there (|x| ≳ 44 for the
      // derivatives, x < −87.5 for σ) may come out near the smallest normal float32 (1.2e-38) instead.
      const want = f(x[i]);
      assert.ok(Math.abs(out[i] - want) <= 4.8e-7 * Math.abs(want) + 4e-38, `${name}(${x[i]}) = ${out[i]}, want ${want}`);
      const wantGrad = g[i] * fPrime(x[i]);
      assert.ok(Math.abs(grad[i] - wantGrad) <= 4.8e-7 * Math.abs(wantGrad) + 4e-38, `${name}'(${x[i]}) · ${g[i]} = ${grad[i]}, want ${wantGrad}`);
    }
    if (act === Activation.Tanh) assert.ok(Object.is(out[1], -0), 'tanh(−0) is −0');
  });

  test(`${name} on the WebAssembly kernels: a value gets the same bits alone, in any lane, and in any batch; the TypeScript path stays float64`, () => {
    const x = sweep();
    const g = Float32Array.from(x, (_, i) => Math.sin(i));
    withKernels('wasm', () => {
      const whole = new Float32Array(x.length);
      const wholeGrad = new Float32Array(x.length);
      activateInto(x, whole, act);
      activationBackwardInto(g, x, wholeGrad, act);
      for (const start of [0, 1, 2, 3, 101]) {
        for (const len of [1, 3, 5]) {
          const part = new Float32Array(len);
          const partGrad = new Float32Array(len);
          activateInto(x.subarray(start, start + len), part, act);
          activationBackwardInto(g.subarray(start, start + len), x.subarray(start, start + len), partGrad, act);
          assert.deepEqual([...part], [...whole.subarray(start, start + len)], `forward at ${start}, ${len} values`);
          assert.deepEqual([...partGrad], [...wholeGrad.subarray(start, start + len)], `backward at ${start}, ${len} values`);
        }
      }
    });
    const reference = withKernels('ts', () => {
      const o = new Float32Array(x.length);
      activateInto(x, o, act);
      return o;
    });
    for (let i = 0; i < x.length; i++) assert.equal(reference[i], Math.fround(f(x[i])), `TypeScript ${name}(${x[i]})`);
  });
}
