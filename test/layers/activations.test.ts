import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Activation, activateInto, activationBackwardInto } from '../../src/layers/activations.js';
import { withKernelMode } from '../helpers.js';

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
  silu: (x: number) => x / (1 + Math.exp(-x)),
  siluPrime: (x: number) => 1 / (1 + Math.exp(-x)) + x * exact.sigmoidPrime(x),
  /** The sum of the magnitudes of SiLU′'s two terms: its rounding scale (the terms cancel near x = −1.28). */
  siluPrimeScale: (x: number) => 1 / (1 + Math.exp(-x)) + Math.abs(x * exact.sigmoidPrime(x)),
  // 1 + tanh u written as 2/(1 + exp(−2u)), which does not cancel for negative u.
  gelu: (x: number) => (0.5 * x * 2) / (1 + Math.exp(-2 * geluArg(x))),
  geluPrime: (x: number) => geluPrimeTerms(x).reduce((a, b) => a + b),
  geluPrimeScale: (x: number) => geluPrimeTerms(x).reduce((a, b) => a + Math.abs(b), 0),
};

function geluPrimeTerms(x: number): [number, number] {
  const u = geluArg(x);
  const onePlusT = 2 / (1 + Math.exp(-2 * u));
  const e = Math.exp(-2 * Math.abs(u));
  const sech2 = (4 * e) / ((1 + e) * (1 + e));
  return [0.5 * onePlusT, 0.5 * x * sech2 * Math.sqrt(2 / Math.PI) * (1 + 3 * 0.044715 * x * x)];
}

function geluArg(x: number): number {
  return Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x);
}

// [name, activation, f, f′, the scale f′'s rounding is relative to, ulps]
for (const [name, act, f, fPrime, primeScale, ulps] of [
  ['Sigmoid', Activation.Sigmoid, exact.sigmoid, exact.sigmoidPrime, exact.sigmoidPrime, 4],
  ['Tanh', Activation.Tanh, exact.tanh, exact.tanhPrime, exact.tanhPrime, 4],
  ['SiLU', Activation.Silu, exact.silu, exact.siluPrime, exact.siluPrimeScale, 4],
  // GELU composes more roundings (u, then 1 + t, then the product; the derivative's two terms).
  ['GELU', Activation.GELU, exact.gelu, exact.geluPrime, exact.geluPrimeScale, 12],
] as const) {
  test(`${name} on the WebAssembly kernels: within ${ulps} float32 ulps of float64 forward and backward, saturated derivatives included`, () => {
    const x = sweep();
    const g = Float32Array.from(x, (_, i) => 1 + 0.5 * Math.cos(i));
    const [out, grad] = withKernelMode('wasm', () => {
      const o = new Float32Array(x.length);
      const d = new Float32Array(x.length);
      activateInto(x, o, act);
      activationBackwardInto(g, x, d, act);
      return [o, d];
    });
    for (let i = 0; i < x.length; i++) {
      // Values that underflow float32 may come out as 0 or near the smallest normal (1.2e-38); GELU's
      // derivative scales its vanished tail by up to ~100.
      const tiny = act === Activation.GELU ? 2e-36 : 4e-38;
      const want = f(x[i]);
      // GELU's u = √(2/π)(x + 0.044715x³) carries a float32 rounding that exp(2u) scales by 2|u|.
      const rel = ulps * 1.2e-7 * (act === Activation.GELU ? 1 + 2 * Math.abs(geluArg(x[i])) : 1);
      assert.ok(Object.is(out[i], Math.fround(want)) || Math.abs(out[i] - want) <= rel * Math.abs(want) + tiny, `${name}(${x[i]}) = ${out[i]}, want ${want}`);
      // The derivatives at ±∞ are limits (∞·0 in the formulas): not compared.
      if (!Number.isFinite(x[i])) continue;
      const wantGrad = g[i] * fPrime(x[i]);
      assert.ok(Object.is(grad[i], Math.fround(wantGrad)) || Math.abs(grad[i] - wantGrad) <= rel * Math.abs(g[i] * primeScale(x[i])) + tiny, `${name}'(${x[i]}) · ${g[i]} = ${grad[i]}, want ${wantGrad}`);
    }
    if (act === Activation.Tanh) assert.ok(Object.is(out[1], -0), 'tanh(−0) is −0');
  });

  test(`${name} on the WebAssembly kernels: a value gets the same bits alone, in any lane, and in any batch; the TypeScript path stays float64`, () => {
    const x = sweep();
    const g = Float32Array.from(x, (_, i) => Math.sin(i));
    withKernelMode('wasm', () => {
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
    const reference = withKernelMode('ts', () => {
      const o = new Float32Array(x.length);
      activateInto(x, o, act);
      return o;
    });
    // The TypeScript loops compute in float64 and round once (GELU's 1 + tanh u cancels to 0 below about −5).
    for (let i = 0; i < x.length; i++) {
      const want = f(x[i]);
      assert.ok(Object.is(reference[i], Math.fround(want)) || Math.abs(reference[i] - want) <= 6e-8 * Math.abs(want) + 1e-15, `TypeScript ${name}(${x[i]}) = ${reference[i]}`);
    }
  });
}
