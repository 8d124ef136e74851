import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DType, dtypeName, unpackWeights } from '../../src/core/dtype.js';
import { Tensor } from '../../src/core/tensor.js';
import { WeightStore } from '../../src/core/weightStore.js';
import { forwardNetwork } from '../../src/engine/run.js';
import { buildNetwork } from '../../src/grid/spec.js';
import { gemmABt } from '../../src/kernels/backend.js';
import { PackedDense } from '../../src/kernels/quantDense.js';
import { KERNELS_OFF, randomArray } from '../helpers.js';


const f = Math.fround;
const INTEGER_CODED: [DType, number][] = [
  [DType.Int8, 1],
  [DType.Int4, 1],
  [DType.Int2, 1],
  [DType.Ternary, 1],
  [DType.Binary, 1],
  [DType.FP4, 0.5], // FP4 values are halves: the kernel sums twice the value, then halves
];

function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** The kernel's arithmetic in plain TS: x rounded to int16 per row, exact integer dots, one float32 rounding, bias. */
function integerReference(d: DType, post: number, store: WeightStore, x: Float32Array, M: number, nOut: number, nIn: number, useBias: boolean): Float32Array {
  const v = store.morph(d);
  const all = unpackWeights(d, v.bytes, v.count, { scale: 1, zeroPoint: 0 });
  const decoded = unpackWeights(d, v.bytes, v.count, v.params);
  const scale = f(v.params.scale);
  const y = new Float32Array(M * nOut);
  for (let i = 0; i < M; i++) {
    let amax = 0;
    for (let k = 0; k < nIn; k++) amax = Math.max(amax, Math.abs(x[i * nIn + k]));
    const s = f(amax / 32767);
    const inv = s > 0 ? f(1 / s) : 0;
    const xq = Array.from({ length: nIn }, (_, k) => Math.min(32767, Math.max(-32767, roundHalfEven(f(x[i * nIn + k] * inv)))));
    for (let j = 0; j < nOut; j++) {
      let dot = 0;
      for (let k = 0; k < nIn; k++) dot += (all[j * nIn + k] / post) * xq[k];
      let out = f(dot * post * f(s * scale));
      if (useBias) out = f(out + decoded[nIn * nOut + j]);
      y[i * nOut + j] = out;
    }
  }
  return y;
}

function sameBits(a: Float32Array, b: Float32Array, what: string): void {
  assert.equal(a.length, b.length);
  const ia = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ib = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ia.length; i++) if (ia[i] !== ib[i]) assert.fail(`${what}[${i}]: ${a[i]} vs ${b[i]}`);
}

test('packed Dense kernels: exact integer arithmetic, and within the int16 rounding bound of decode-then-float', { skip: KERNELS_OFF }, () => {
  let seed = 10;
  for (const [nOut, nIn] of [[37, 64], [9, 200], [6, 1032]] as const) {
    for (const useBias of [true, false]) {
      const store = new WeightStore(randomArray(nOut * nIn + (useBias ? nOut : 0), seed++, 0.5));
      for (const M of [1, 3, 5, 70]) {
        const x = randomArray(M * nIn, seed++, 2);
        for (const [d, post] of INTEGER_CODED) {
          const what = `${dtypeName(d)} ${nOut}×${nIn} M=${M}${useBias ? ' +bias' : ''}`;
          const kernel = PackedDense.for(store.morph(d), nOut, nIn, useBias);
          assert.ok(kernel, what);
          const got = new Float32Array(M * nOut);
          kernel.forward(x, M, got);
          sameBits(got, integerReference(d, post, store, x, M, nOut, nIn, useBias), `${what} vs integer reference`);
          // Against decode-then-float: x's rounding moves each value by at most max|x|/65534.
          const w = store.getActive(d);
          const want = new Float32Array(M * nOut);
          gemmABt(x, w, want, M, nOut, nIn, useBias ? w.subarray(nIn * nOut) : null);
          for (let i = 0; i < M; i++) {
            let amax = 0;
            for (let k = 0; k < nIn; k++) amax = Math.max(amax, Math.abs(x[i * nIn + k]));
            for (let j = 0; j < nOut; j++) {
              let absW = 0;
              let absXW = 0;
              for (let k = 0; k < nIn; k++) {
                absW += Math.abs(w[j * nIn + k]);
                absXW += Math.abs(w[j * nIn + k] * x[i * nIn + k]);
              }
              const bound = (amax / 65534) * absW * 1.0001 + (nIn + 4) * 2 ** -24 * (absXW + (useBias ? Math.abs(w[nIn * nOut + j]) : 0));
              const diff = Math.abs(got[i * nOut + j] - want[i * nOut + j]);
              assert.ok(diff <= bound, `${what} y[${i},${j}]: ${got[i * nOut + j]} vs ${want[i * nOut + j]} (|Δ| ${diff} > ${bound})`);
            }
          }
        }
      }
    }
  }
});

test('packed Dense kernels: FP8 equals decode-then-float bit for bit', { skip: KERNELS_OFF }, () => {
  const [nOut, nIn] = [70, 48];
  const store = new WeightStore(randomArray(nOut * nIn + nOut, 3, 0.8));
  for (const d of [DType.FP8E4M3, DType.FP8E5M2]) {
    for (const M of [1, 4, 65]) {
      const x = randomArray(M * nIn, 4 + M);
      const kernel = PackedDense.for(store.morph(d), nOut, nIn, true)!;
      const got = new Float32Array(M * nOut);
      kernel.forward(x, M, got);
      const w = store.getActive(d);
      const want = new Float32Array(M * nOut);
      gemmABt(x, w, want, M, nOut, nIn, w.subarray(nIn * nOut));
      sameBits(got, want, `${dtypeName(d)} M=${M}`);
    }
  }
});

test('packed Dense kernels: FP8 decodes every code as the table does, whatever the scale (NaN codes give NaN)', { skip: KERNELS_OFF }, () => {
  const [nOut, nIn] = [16, 272];
  const x = randomArray(nIn, 9);
  for (const dtype of [DType.FP8E4M3, DType.FP8E5M2]) {
    // Rows 0–14: every finite code, rotated per row, 272 a row (a tail of 16 for the scalar loop); row 15 adds the NaN/∞ codes.
    const special = (c: number) => (dtype === DType.FP8E4M3 ? (c & 0x7f) === 0x7f : (c & 0x7c) === 0x7c);
    const finite = Array.from({ length: 256 }, (_, c) => c).filter((c) => !special(c));
    const codes = Uint8Array.from({ length: nOut * nIn }, (_, i) => {
      const [j, k] = [Math.floor(i / nIn), i % nIn];
      return j === nOut - 1 && k < 8 ? (k & 1 ? 0x80 : 0) | (dtype === DType.FP8E4M3 ? 0x7f : 0x7c + (k >> 1)) : finite[(k + 37 * j) % finite.length];
    });
    // Scales where scale·2¹²⁰ overflows (the table path), tiny ones and ordinary ones; float32 values, as morph makes them.
    for (const scale of [1, 0.013, 3e-30, 300, 2 ** 7, 2 ** 8].map(Math.fround)) {
      const version = { dtype, bytes: codes, count: nOut * nIn, params: { scale, zeroPoint: 0 } };
      const kernel = PackedDense.for(version, nOut, nIn, false)!;
      const got = new Float32Array(nOut);
      kernel.forward(x, 1, got);
      const w = unpackWeights(dtype, codes, nOut * nIn, version.params);
      const want = new Float32Array(nOut);
      gemmABt(x, w, want, 1, nOut, nIn);
      for (let j = 0; j < nOut; j++) {
        const what = `${dtypeName(dtype)} scale ${scale} row ${j}`;
        assert.equal(Number.isNaN(want[j]), j === nOut - 1, `${what}: only the row with NaN/∞ codes is NaN`);
        if (Number.isNaN(want[j])) assert.ok(Number.isNaN(got[j]), what);
        else assert.equal(new Uint32Array(got.buffer)[j], new Uint32Array(want.buffer)[j], `${what}: ${got[j]} vs ${want[j]}`);
      }
      // The decoded weights themselves (no sums to hide a wrong code): rows as one-hot products.
      const one = new Float32Array(nIn);
      for (const k of [0, 1, 5, 100, 257, 271]) {
        one.fill(0);
        one[k] = 1;
        kernel.forward(one, 1, got);
        for (let j = 0; j < nOut - 1; j++) assert.equal(got[j], w[j * nIn + k], `${dtypeName(dtype)} scale ${scale} code ${codes[j * nIn + k]}`);
      }
    }
  }
});

test('packed Dense kernels: unsupported dtypes and unaligned rows decline; NaN inputs give NaN rows', { skip: KERNELS_OFF }, () => {
  const store = new WeightStore(randomArray(5 * 12 + 5, 8));
  assert.equal(PackedDense.for(store.morph(DType.Float16), 5, 12, true), null);
  assert.equal(PackedDense.for(store.morph(DType.Binary), 5, 12, true), null, 'binary rows of 12 bits do not start on a byte');
  const kernel = PackedDense.for(store.morph(DType.Int8), 5, 12, true)!;
  const x = randomArray(2 * 12, 9);
  x[3] = Number.NaN;
  const out = new Float32Array(10);
  kernel.forward(x, 2, out);
  assert.ok(out.subarray(0, 5).every(Number.isNaN));
  assert.ok(out.subarray(5).every(Number.isFinite));
});

test('forwardNetwork with packedKernels runs quantized Dense layers on the packed kernels', { skip: KERNELS_OFF }, () => {
  const net = buildNetwork({
    depth: 1, rows: 1, cols: 2, layers_per_cell: 1,
    layers: [
      { z: 0, y: 0, x: 0, l: 0, type: 'Dense', activation: 'ReLU', input_height: 32, output_height: 24, use_bias: true },
      { z: 0, y: 0, x: 1, l: 0, type: 'Dense', activation: 'Linear', input_height: 24, output_height: 5, use_bias: true },
    ],
  });
  for (const layer of net.cells) if (layer) layer.dtype = DType.Int8;
  const x = new Tensor(randomArray(6 * 32, 12), [6, 32]);
  const packed = forwardNetwork(net, x, { packedKernels: true }).output;
  const decoded = forwardNetwork(net, x).output;
  assert.deepEqual(packed.shape, [6, 5]);
  let maxDiff = 0;
  for (let i = 0; i < packed.size; i++) maxDiff = Math.max(maxDiff, Math.abs(packed.data[i] - decoded.data[i]));
  assert.ok(maxDiff > 0 && maxDiff < 1e-3, `packed vs decoded max |Δ| ${maxDiff}`);
});
