import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { createKernelPool, type KernelPool } from '../../src/kernels/pool.js';
import type { ConvGeometry } from '../../src/kernels/im2col.js';
import { loadWasmKernelsSync } from '../../src/kernels/wasm.js';
import { randomArray } from '../helpers.js';

const single = loadWasmKernelsSync()!;
const pools: KernelPool[] = [];
after(() => {
  for (const p of pools) p.close();
});

function geometry(C: number, [inD, inH, inW]: number[], [kD, kH, kW]: number[], stride: number, [padD, padH, padW]: number[]): ConvGeometry {
  const out = (n: number, k: number, p: number) => Math.floor((n + 2 * p - k) / stride) + 1;
  return { channels: C, inD, inH, inW, kD, kH, kW, stride, padD, padH, padW, outD: out(inD, kD, padD), outH: out(inH, kH, padH), outW: out(inW, kW, padW) };
}

/** Direct convolution in float64: each output and Σ|x·w| over its window (the scale its rounding error follows). */
function reference(x: Float32Array, g: ConvGeometry, batch: number, F: number, w: Float32Array, bias: Float32Array | null): { y: Float64Array; scale: Float64Array } {
  const { channels: C, inD, inH, inW, outD, outH, outW, kD, kH, kW, stride: s } = g;
  const P = outD * outH * outW;
  const y = new Float64Array(batch * F * P);
  const scale = new Float64Array(batch * F * P);
  for (let b = 0; b < batch; b++) {
    for (let f = 0; f < F; f++) {
      for (let od = 0; od < outD; od++) {
        for (let oh = 0; oh < outH; oh++) {
          for (let ow = 0; ow < outW; ow++) {
            let acc = bias ? bias[f] : 0;
            let mag = bias ? Math.abs(bias[f]) : 0;
            for (let c = 0; c < C; c++) {
              for (let kd = 0; kd < kD; kd++) {
                for (let kh = 0; kh < kH; kh++) {
                  for (let kw = 0; kw < kW; kw++) {
                    const z = od * s + kd - g.padD, r = oh * s + kh - g.padH, q = ow * s + kw - g.padW;
                    if (z < 0 || z >= inD || r < 0 || r >= inH || q < 0 || q >= inW) continue;
                    const v = x[(((b * C + c) * inD + z) * inH + r) * inW + q] * w[(((f * C + c) * kD + kd) * kH + kh) * kW + kw];
                    acc += v;
                    mag += Math.abs(v);
                  }
                }
              }
            }
            const o = (b * F + f) * P + (od * outH + oh) * outW + ow;
            y[o] = acc;
            scale[o] = mag;
          }
        }
      }
    }
  }
  return { y, scale };
}

function sameBits(a: Float32Array, b: Float32Array, what: string): void {
  const ia = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ib = new Uint32Array(b.buffer, b.byteOffset, b.length);
  assert.equal(ia.length, ib.length, `${what}: length`);
  for (let i = 0; i < ia.length; i++) if (ia[i] !== ib[i]) assert.fail(`${what}[${i}]: ${a[i]} vs ${b[i]}`);
}

// Winograd F(4×4, 3×3) (2D, 3×3, stride 1, ≥ 8 channels): odd sizes, padding 0…2, batches that are not
// a multiple of the 4 samples per vector; the direct kernel: 1 channel, strides 2 and 3, 1D, 3D, 1×1.
const CONVS: [string, ConvGeometry, number, number][] = [
  ['winograd 16→32 28×28 pad 1', geometry(16, [1, 28, 28], [1, 3, 3], 1, [0, 1, 1]), 6, 32],
  ['winograd 8→7 9×11 pad 1', geometry(8, [1, 9, 11], [1, 3, 3], 1, [0, 1, 1]), 5, 7],
  ['winograd 9→5 7×6 pad 0', geometry(9, [1, 7, 6], [1, 3, 3], 1, [0, 0, 0]), 3, 5],
  ['winograd 8→3 5×5 pad 2', geometry(8, [1, 5, 5], [1, 3, 3], 1, [0, 2, 2]), 2, 3],
  ['winograd 12→6 4×3 pad 1', geometry(12, [1, 4, 3], [1, 3, 3], 1, [0, 1, 1]), 9, 6],
  ['direct 1→16 28×28 pad 1', geometry(1, [1, 28, 28], [1, 3, 3], 1, [0, 1, 1]), 3, 16],
  ['direct 2→6 stride 2', geometry(2, [1, 10, 7], [1, 3, 3], 2, [0, 1, 1]), 4, 6],
  ['direct 16→32 stride 2', geometry(16, [1, 14, 14], [1, 3, 3], 2, [0, 1, 1]), 3, 32],
  ['direct 3→5 stride 3 k2', geometry(3, [1, 11, 13], [1, 2, 2], 3, [0, 1, 0]), 2, 5],
  ['direct 1D k5', geometry(4, [1, 1, 30], [1, 1, 5], 1, [0, 0, 0]), 3, 9],
  ['direct 3D 2×2×2 pad 1', geometry(2, [4, 5, 3], [2, 2, 2], 1, [1, 1, 1]), 3, 4],
  ['direct 5→3 1×1', geometry(5, [1, 6, 7], [1, 1, 1], 1, [0, 0, 0]), 2, 3],
  ['direct 3→4 5×5 pad 2', geometry(3, [1, 9, 8], [1, 5, 5], 1, [0, 2, 2]), 2, 4],
];

test('convolution forward kernels match a float64 direct convolution; 1, 2 and 3 threads give the same bits', async () => {
  const byThreads = await Promise.all([1, 2, 3].map((t) => createKernelPool(t)));
  pools.push(...byThreads);
  let seed = 300;
  for (const [name, g, batch, F] of CONVS) {
    const K = g.channels * g.kD * g.kH * g.kW;
    const P = g.outD * g.outH * g.outW;
    const input = randomArray(batch * g.channels * g.inD * g.inH * g.inW, seed++);
    const w = randomArray(F * K, seed++);
    for (const bias of [randomArray(F, seed++), null]) {
      const what = `${name}${bias ? ' +bias' : ''}`;
      const got = new Float32Array(batch * F * P).fill(Number.NaN);
      assert.ok(single.conv(input, g, batch, F, w, bias, got));
      const { y, scale } = reference(input, g, batch, F, w, bias);
      for (let i = 0; i < y.length; i++) {
        // float32 sums of K terms: the error follows Σ|x·w|; any indexing slip is of the order of that scale.
        // Winograd F(4×4, 3×3)'s transforms (coefficients up to 8 and 1/24) amplify rounding about tenfold.
        if (!(Math.abs(got[i] - y[i]) <= (name.startsWith('winograd') ? 1e-5 : 2e-6) * scale[i] + 1e-30)) assert.fail(`${what}[${i}]: got ${got[i]}, expected ${y[i]} (scale ${scale[i]})`);
      }
      for (const p of byThreads) {
        const out = new Float32Array(got.length).fill(Number.NaN);
        assert.ok(p.conv(input, g, batch, F, w, bias, out));
        sameBits(out, got, `${what} ${p.threads} threads`);
      }
    }
  }
});

test('convolution forward: a sample gets the same bits alone, in any batch and at any position', () => {
  let seed = 400;
  for (const [name, g, , F] of CONVS) {
    const K = g.channels * g.kD * g.kH * g.kW;
    const P = g.outD * g.outH * g.outW;
    const image = g.channels * g.inD * g.inH * g.inW;
    const batch = 7;
    const input = randomArray(batch * image, seed++);
    const w = randomArray(F * K, seed++);
    const bias = randomArray(F, seed++);
    const all = new Float32Array(batch * F * P);
    assert.ok(single.conv(input, g, batch, F, w, bias, all));
    for (const b of [0, 3, 6]) {
      const alone = new Float32Array(F * P);
      assert.ok(single.conv(input.subarray(b * image, (b + 1) * image), g, 1, F, w, bias, alone));
      sameBits(alone, all.subarray(b * F * P, (b + 1) * F * P), `${name} sample ${b}`);
    }
  }
});

/** Float64 gradients of a convolution: dW[f][q] and dX, each with Σ|terms| (its rounding scale). */
function referenceBackward(x: Float32Array, g: ConvGeometry, batch: number, F: number, w: Float32Array, gy: Float32Array) {
  const { channels: C, inD, inH, inW, outD, outH, outW, kD, kH, kW, stride: s } = g;
  const K = C * kD * kH * kW;
  const P = outD * outH * outW;
  const image = C * inD * inH * inW;
  const dw = new Float64Array(F * K), dwScale = new Float64Array(F * K);
  const dx = new Float64Array(batch * image), dxScale = new Float64Array(batch * image);
  for (let b = 0; b < batch; b++) {
    for (let f = 0; f < F; f++) {
      for (let od = 0; od < outD; od++) {
        for (let oh = 0; oh < outH; oh++) {
          for (let ow = 0; ow < outW; ow++) {
            const gv = gy[(b * F + f) * P + (od * outH + oh) * outW + ow];
            let q = 0;
            for (let c = 0; c < C; c++) {
              for (let kd = 0; kd < kD; kd++) {
                for (let kh = 0; kh < kH; kh++) {
                  for (let kw = 0; kw < kW; kw++, q++) {
                    const z = od * s + kd - g.padD, r = oh * s + kh - g.padH, t = ow * s + kw - g.padW;
                    if (z < 0 || z >= inD || r < 0 || r >= inH || t < 0 || t >= inW) continue;
                    const xi = b * image + ((c * inD + z) * inH + r) * inW + t;
                    dw[f * K + q] += gv * x[xi];
                    dwScale[f * K + q] += Math.abs(gv * x[xi]);
                    dx[xi] += gv * w[f * K + q];
                    dxScale[xi] += Math.abs(gv * w[f * K + q]);
                  }
                }
              }
            }
          }
        }
      }
    }
  }
  return { dw, dwScale, dx, dxScale };
}

function assertWithin(got: Float32Array, want: Float64Array, scale: Float64Array, what: string): void {
  for (let i = 0; i < want.length; i++) {
    if (!(Math.abs(got[i] - want[i]) <= 4e-6 * scale[i] + 1e-30)) assert.fail(`${what}[${i}]: got ${got[i]}, expected ${want[i]} (scale ${scale[i]})`);
  }
}

// Besides CONVS: weight gradients too large for the lane sums in the scratch (the per-sample gemm path).
const BACKWARD_CONVS: [string, ConvGeometry, number, number][] = [...CONVS, ['gemm path 320→200 3×3', geometry(320, [1, 3, 4], [1, 3, 3], 1, [0, 1, 1]), 2, 200]];

/** Random operands of a convolution backward: input, weights, output gradient, and the sizes of dW and dX. */
function backwardOperands(g: ConvGeometry, batch: number, F: number, seed: number) {
  const K = g.channels * g.kD * g.kH * g.kW;
  const image = g.channels * g.inD * g.inH * g.inW;
  const gy = randomArray(batch * F * g.outD * g.outH * g.outW, seed + 2);
  return { input: randomArray(batch * image, seed), w: randomArray(F * K, seed + 1), gy, K, image };
}

test('convolution backward kernels (weight and input gradients) match a float64 reference', () => {
  let seed = 500;
  for (const [name, g, batch, F] of BACKWARD_CONVS) {
    const { input, w, gy, K, image } = backwardOperands(g, batch, F, (seed += 3));
    const gradW = new Float32Array(F * K).fill(Number.NaN);
    const gradIn = new Float32Array(batch * image).fill(Number.NaN);
    assert.ok(single.convBackward(input, g, batch, F, w, gy, gradW, gradIn));
    const ref = referenceBackward(input, g, batch, F, w, gy);
    assertWithin(gradW, ref.dw, ref.dwScale, `${name} dW`);
    assertWithin(gradIn, ref.dx, ref.dxScale, `${name} dX`);
    const onlyW = new Float32Array(F * K);
    assert.ok(single.convBackward(input, g, batch, F, w, gy, onlyW, null));
    sameBits(onlyW, gradW, `${name} dW without dX`);
  }
});

test('convolution backward on 2 and 3 threads gives the single-thread bits (dW split over filters, dX over samples)', async () => {
  const byThreads = await Promise.all([2, 3].map((t) => createKernelPool(t)));
  pools.push(...byThreads);
  let seed = 700;
  for (const [name, g, batch, F] of BACKWARD_CONVS) {
    const { input, w, gy, K, image } = backwardOperands(g, batch, F, (seed += 3));
    const wantW = new Float32Array(F * K);
    const wantIn = new Float32Array(batch * image);
    assert.ok(single.convBackward(input, g, batch, F, w, gy, wantW, wantIn));
    for (const p of byThreads) {
      const gotW = new Float32Array(F * K).fill(Number.NaN);
      const gotIn = new Float32Array(batch * image).fill(Number.NaN);
      assert.ok(p.convBackward(input, g, batch, F, w, gy, gotW, gotIn));
      sameBits(gotW, wantW, `${name} dW, ${p.threads} threads`);
      sameBits(gotIn, wantIn, `${name} dX, ${p.threads} threads`);
      const onlyW = new Float32Array(F * K).fill(Number.NaN);
      assert.ok(p.convBackward(input, g, batch, F, w, gy, onlyW, null));
      sameBits(onlyW, wantW, `${name} dW alone, ${p.threads} threads`);
    }
  }
});

test('convolution forward on the pool in several runs of samples (a short last run) gives the single-thread bits', async () => {
  const byThreads = await Promise.all([2, 3].map((t) => createKernelPool(t)));
  pools.push(...byThreads);
  let seed = 900;
  for (const [name, g, batch, F] of [
    ['winograd 16→32 28×28', geometry(16, [1, 28, 28], [1, 3, 3], 1, [0, 1, 1]), 19, 32],
    ['direct 1→16 28×28', geometry(1, [1, 28, 28], [1, 3, 3], 1, [0, 1, 1]), 150, 16],
    ['direct 16→32 stride 2', geometry(16, [1, 14, 14], [1, 3, 3], 2, [0, 1, 1]), 70, 32],
  ] as const) {
    const K = g.channels * g.kD * g.kH * g.kW;
    const P = g.outD * g.outH * g.outW;
    const input = randomArray(batch * g.channels * g.inD * g.inH * g.inW, seed++);
    const w = randomArray(F * K, seed++);
    const bias = randomArray(F, seed++);
    const want = new Float32Array(batch * F * P);
    assert.ok(single.conv(input, g, batch, F, w, bias, want));
    for (const p of byThreads) {
      const got = new Float32Array(want.length).fill(Number.NaN);
      assert.ok(p.conv(input, g, batch, F, w, bias, got));
      sameBits(got, want, `${name}, ${p.threads} threads`);
    }
  }
});
