import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Rng } from '../../src/core/rng.js';
import { gemmABt } from '../../src/kernels/gemm.js';
import { dequantizeMatrix, placeMatrix, quantBytes, quantGemm, quantizeMatrix } from '../../src/kernels/quant.js';
import { gemmABt as kernelGemmABt, runningPool, setKernelBackend, setThreads } from '../../src/kernels/backend.js';
import { QuantArena, panelBytes, panelRow, placePanels } from '../../src/kernels/quantWasm.js';
import { KERNELS_OFF } from '../helpers.js';


function random(n: number, seed: number, scale = 1): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n }, () => (rng.uniform() * 2 - 1) * scale * (1 + 3 * rng.uniform()));
}

test('q4_0 block layout is ggml\'s: fp16 scale, low nibbles j, high nibbles j + 16', () => {
  const w = new Float32Array(32);
  for (let j = 0; j < 16; j++) w[j] = j - 8;
  const q = quantizeMatrix('q4_0', w, 1, 32);
  assert.equal(q.data.length, 18);
  assert.deepEqual([q.data[0], q.data[1]], [0x00, 0x3c]);
  for (let j = 0; j < 16; j++) assert.equal(q.data[2 + j], j | (8 << 4));
  assert.deepEqual(dequantizeMatrix(q), w);
});

test('q4_0 round trip: every weight within one step (max|x|/8) of the original, most within half a step', () => {
  const rows = 7;
  const cols = 96;
  const w = random(rows * cols, 3, 0.05);
  const q = quantizeMatrix('q4_0', w, rows, cols);
  assert.equal(quantBytes(q), (rows * cols / 32) * 18);
  const back = dequantizeMatrix(q);
  let withinHalf = 0;
  for (let b = 0; b < (rows * cols) / 32; b++) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(w[b * 32 + j]));
    const step = amax / 8;
    for (let j = 0; j < 32; j++) {
      const e = Math.abs(back[b * 32 + j] - w[b * 32 + j]);
      assert.ok(e <= step * 1.001 + 1e-7, `block ${b} element ${j}: error ${e} > ${step}`);
      if (e <= step / 2 * 1.001 + 1e-7) withinHalf++;
    }
  }
  assert.ok(withinHalf >= 0.95 * rows * cols);
});

test('int8 round trip within half a step per row', () => {
  const w = random(5 * 40, 4);
  const q = quantizeMatrix('int8', w, 5, 40);
  const back = dequantizeMatrix(q);
  for (let r = 0; r < 5; r++) {
    for (let c = 0; c < 40; c++) assert.ok(Math.abs(back[r * 40 + c] - w[r * 40 + c]) <= q.scales![r] / 2 + 1e-7);
  }
});

for (const format of ['q4_0', 'int8'] as const) {
  test(`${format}: products on the packed blocks equal products with the dequantized matrix`, { skip: KERNELS_OFF }, () => {
    const rows = 40;
    const cols = 128;
    const M = 3;
    const q = quantizeMatrix(format, random(rows * cols, 5), rows, cols);
    const x = random(M * cols, 6);
    const bias = random(rows, 7);
    const want = new Float32Array(M * rows);
    gemmABt(x, dequantizeMatrix(q), want, M, rows, cols, bias);
    const arena = QuantArena.create(1 << 16, rows, cols);
    assert.ok(arena, 'the WebAssembly kernels load');
    const placed = placeMatrix(q, arena);
    assert.deepEqual(dequantizeMatrix(placed), dequantizeMatrix(q));
    // The WebAssembly kernels round x to int16 per 32-value block: each x moves by at most sx/2, sx = max|x_block|/32767.
    const w = dequantizeMatrix(q);
    const roundingBound = (i: number, r: number): number => {
      let b = 0;
      for (let c0 = 0; c0 < cols; c0 += 32) {
        let amax = 0;
        for (let c = c0; c < c0 + 32; c++) amax = Math.max(amax, Math.abs(x[i * cols + c]));
        for (let c = c0; c < c0 + 32; c++) b += (Math.abs(w[r * cols + c]) * amax) / 32767 / 2;
      }
      return b;
    };
    for (const [name, m] of [['ts', q], ['wasm', placed]] as const) {
      const got = new Float32Array(M * rows);
      quantGemm(m, x, M, got, bias);
      for (let i = 0; i < M; i++) {
        for (let r = 0; r < rows; r++) {
          const k = i * rows + r;
          const tol = 1e-5 * (1 + Math.abs(want[k])) + (name === 'wasm' ? roundingBound(i, r) : 0);
          assert.ok(Math.abs(got[k] - want[k]) <= tol, `${name} [${k}]: ${got[k]} vs ${want[k]}`);
        }
      }
    }
    // Row-chunked products (M > 16) give the same bits as one row at a time.
    const many = 37;
    const xs = random(many * cols, 8);
    const all = new Float32Array(many * rows);
    quantGemm(placed, xs, many, all, bias);
    const one = new Float32Array(rows);
    quantGemm(placed, xs.subarray(20 * cols, 21 * cols), 1, one, bias);
    assert.deepEqual(all.subarray(20 * rows, 21 * rows), one);
    assert.throws(() => arena.alloc(1 << 20), /out of reserved space/);
  });
}

test('int8 rows of a width that is not whole 32-value blocks run the float kernel, equal to the reference', { skip: KERNELS_OFF }, () => {
  const rows = 9;
  const cols = 40;
  const q = quantizeMatrix('int8', random(rows * cols, 9), rows, cols);
  const arena = QuantArena.create(1 << 12, rows, cols)!;
  const placed = placeMatrix(q, arena);
  const x = random(2 * cols, 10);
  const want = new Float32Array(2 * rows);
  gemmABt(x, dequantizeMatrix(q), want, 2, rows, cols);
  const got = new Float32Array(2 * rows);
  quantGemm(placed, x, 2, got);
  for (let i = 0; i < got.length; i++) assert.ok(Math.abs(got[i] - want[i]) <= 1e-5 * (1 + Math.abs(want[i])));
});

test('float32 row panels: panelGemm gives gemmABt\'s bits for any rows, columns, batch and bias; rows read back exactly', { skip: KERNELS_OFF }, () => {
  let seed = 900;
  for (const [rows, cols] of [[16, 256], [37, 300], [5, 7], [64, 1024], [33, 513]]) {
    const arena = QuantArena.create(panelBytes(rows, cols), rows, cols)!;
    assert.ok(arena);
    const w = random(rows * cols, seed++);
    const at = placePanels(arena, w, rows, cols);
    const row = new Float32Array(cols);
    for (const r of [0, rows - 1, rows >> 1]) {
      panelRow(arena, at, cols, r, row, 0);
      assert.deepEqual(row, w.subarray(r * cols, (r + 1) * cols));
    }
    for (const M of [1, 3, 17]) {
      const x = random(M * cols, seed++);
      for (const bias of [random(rows, seed++), null]) {
        const got = new Float32Array(M * rows);
        const want = new Float32Array(M * rows);
        arena.panelGemm(at, rows, cols, x, M, got, bias);
        setKernelBackend('wasm');
        try {
          kernelGemmABt(x, w, want, M, rows, cols, bias);
        } finally {
          setKernelBackend('auto');
        }
        assert.deepEqual(new Uint32Array(got.buffer), new Uint32Array(want.buffer), `${rows}×${cols}, M = ${M}${bias ? ' + bias' : ''}`);
      }
    }
  }
});

test('q4_0 on the kernels: every kind of fp16 block scale (zero, subnormal, normal, largest, infinite, NaN) reads as the reference reads it, for one row of x and several', { skip: KERNELS_OFF }, () => {
  const scales = [0x0000, 0x8000, 0x0001, 0x03ff, 0x8200, 0x0400, 0x3c00, 0xbc00, 0x2e66, 0x7bff, 0xfbff, 0x7c00, 0xfc00, 0x7e00];
  const [rows, cols] = [scales.length, 128];
  const q = quantizeMatrix('q4_0', random(rows * cols, 21), rows, cols);
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < cols / 32; b++) {
      const o = (r * (cols / 32) + b) * 18;
      q.data[o] = scales[r] & 255;
      q.data[o + 1] = scales[r] >> 8;
    }
  }
  const arena = QuantArena.create(1 << 16, rows, cols);
  assert.ok(arena, 'the WebAssembly kernels load');
  const placed = placeMatrix(q, arena);
  for (const M of [1, 2]) {
    const x = random(M * cols, 22);
    const want = new Float32Array(M * rows);
    const got = new Float32Array(M * rows);
    quantGemm(q, x, M, want);
    quantGemm(placed, x, M, got);
    const w = dequantizeMatrix(q);
    for (let k = 0; k < M * rows; k++) {
      const [i, r] = [Math.floor(k / rows), k % rows];
      // The kernels round x to int16 per 32-value block (each value moves by at most max|x_block|/32767/2).
      let bound = 0;
      for (let c0 = 0; c0 < cols; c0 += 32) {
        let amax = 0;
        for (let c = c0; c < c0 + 32; c++) amax = Math.max(amax, Math.abs(x[i * cols + c]));
        for (let c = c0; c < c0 + 32; c++) bound += Math.abs(w[r * cols + c]) * (amax / 32767 / 2 + 1e-6 * Math.abs(x[i * cols + c]));
      }
      // Infinite or NaN scales: ±∞ or NaN depending on the order the lanes meet (the reference adds in another), never a finite value.
      const ok = !Number.isFinite(want[k]) ? !Number.isFinite(got[k]) : got[k] === want[k] || Math.abs(got[k] - want[k]) <= bound;
      assert.ok(ok, `M=${M} scale 0x${scales[r].toString(16)}: ${got[k]} vs ${want[k]} (bound ${bound})`);
    }
  }
});

test('an arena in a pool\'s shared memory gives its block back once it is garbage', { skip: KERNELS_OFF }, async () => {
  setFlagsFromString('--expose_gc');
  const gc = runInNewContext('gc') as () => void;
  assert.equal(await setThreads(2), 2);
  try {
    const pool = runningPool()!;
    const start = pool.reservedEnd;
    (() => {
      const arena = QuantArena.create(1 << 20, 16, 64)!;
      assert.equal(arena.threads, 2);
      assert.ok(pool.reservedEnd >= start + (1 << 20));
    })();
    for (let i = 0; i < 50 && pool.reservedEnd !== start; i++) {
      gc();
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.equal(pool.reservedEnd, start);
  } finally {
    await setThreads(1);
  }
});
