import assert from 'node:assert/strict';
import { test } from 'node:test';
import { reluBackward, reluForward, setKernelBackend } from '../../src/kernels/backend.js';
import { reluBackwardInto, reluInto } from '../../src/kernels/relu.js';
import { randomArray } from '../helpers.js';

const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

test('branch-free ReLU gives the bits of x > 0 ? x : 0, and of its gradient, on special values and random data', () => {
  const special = Float32Array.of(NaN, -NaN, Infinity, -Infinity, 0, -0, 1e-45, -1e-45, 3.4e38, -3.4e38, -1, 1, 2 ** -126, -(2 ** -126));
  const nanBits = new Float32Array(new Uint32Array([0x7fc00001, 0xffc00001, 0x7f800001, 0xff800001]).buffer);
  const x = Float32Array.from([...special, ...nanBits, ...randomArray(1000, 5).map((v) => v - 0.5)]);
  const g = Float32Array.from({ length: x.length }, (_, i) => (i % 7 === 0 ? NaN : i - 300.5));
  const want = x.map((v) => (v > 0 ? v : 0));
  const got = new Float32Array(x.length);
  reluInto(x, got);
  assert.deepEqual(bits(got), bits(want));
  const inPlace = x.slice();
  reluInto(inPlace, inPlace);
  assert.deepEqual(bits(inPlace), bits(want));
  const wantGrad = g.map((v, i) => (x[i] > 0 ? v : 0));
  const gotGrad = new Float32Array(x.length);
  reluBackwardInto(g, x, gotGrad);
  assert.deepEqual(bits(gotGrad), bits(wantGrad));
});

test('ReLU on the WebAssembly kernels (chunked, any length) gives the reference bits, in place too', () => {
  const special = Float32Array.of(NaN, -NaN, Infinity, -Infinity, 0, -0, 1e-45, -1e-45, 3.4e38, -3.4e38);
  for (const n of [3, 4, 1001, 20003]) {
    const x = Float32Array.from({ length: n }, (_, i) => (i < special.length ? special[i] : Math.sin(i * 1.7)));
    const g = Float32Array.from({ length: n }, (_, i) => (i % 7 === 0 ? -0 : Math.cos(i)));
    const want = new Float32Array(n);
    const wantGrad = new Float32Array(n);
    reluInto(x, want);
    reluBackwardInto(g, x, wantGrad);
    setKernelBackend('wasm');
    try {
      const got = new Float32Array(n);
      reluForward(x, got);
      assert.deepEqual(bits(got), bits(want), `forward, ${n} values`);
      const inPlace = x.slice();
      reluForward(inPlace, inPlace);
      assert.deepEqual(bits(inPlace), bits(want), `in place, ${n} values`);
      const gotGrad = new Float32Array(n);
      reluBackward(g, x, gotGrad);
      assert.deepEqual(bits(gotGrad), bits(wantGrad), `gradient, ${n} values`);
    } finally {
      setKernelBackend('auto');
    }
  }
});
