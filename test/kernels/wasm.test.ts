import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { gemmABt, transpose } from '../../src/kernels/gemm.js';
import { WASM_KERNELS_URL, loadWasmKernels, loadWasmKernelsSync, type GemmLayout, type WasmKernels } from '../../src/kernels/wasm.js';
import { kernelInstance, randomArray } from '../helpers.js';

const loaded = loadWasmKernelsSync();
assert.ok(loaded, 'dist/src/kernels/loom-kernels.wasm must load (npm run build runs build:wasm)');
const wasm: WasmKernels = loaded;
const U = 2 ** -24;
const SIZES = [1, 3, 17, 33, 65, 130];

function run(A: Float32Array, B: Float32Array, M: number, N: number, K: number, bias: Float32Array | null = null, layout?: GemmLayout, C0?: Float32Array): Float32Array {
  const C = C0 ? Float32Array.from(C0) : new Float32Array(M * N);
  wasm.gemm(A, B, C, M, N, K, layout, bias, !!C0);
  return C;
}

function reference(A: Float32Array, B: Float32Array, M: number, N: number, K: number, bias: Float32Array | null = null, C0?: Float32Array): Float32Array {
  const C = C0 ? Float32Array.from(C0) : new Float32Array(M * N);
  gemmABt(A, B, C, M, N, K, bias, !!C0);
  return C;
}

/**
 * Worst-case float32 bound for the kernel's order (sequential sums of ≤256 products, block sums added
 * in order, then bias, then the accumulate add) against the once-rounded float64 reference:
 * |Δ| ≤ (min(K, 256) + ⌈K/256⌉ + 3)·2⁻²⁴·(Σ_k|a·b| + |bias| + |C0|).
 * Returns the largest |Δ| / bound (≤ 1 passes) and the largest |Δ| / scale, for the test's diagnostics.
 */
function boundRatio(got: Float32Array, want: Float32Array, A: Float32Array, B: Float32Array, M: number, N: number, K: number, bias: Float32Array | null, C0?: Float32Array): [number, number] {
  const factor = (Math.min(K, 256) + Math.ceil(K / 256) + 3) * U;
  let worst = 0;
  let worstScaled = 0;
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let scale = 0;
      for (let k = 0; k < K; k++) scale += Math.abs(A[i * K + k] * B[j * K + k]);
      if (bias) scale += Math.abs(bias[j]);
      if (C0) scale += Math.abs(C0[i * N + j]);
      const d = Math.abs(got[i * N + j] - want[i * N + j]);
      const r = d === 0 ? 0 : d / (factor * scale);
      assert.ok(r <= 1, `M=${M} N=${N} K=${K} C[${i},${j}]: wasm ${got[i * N + j]} vs reference ${want[i * N + j]} exceeds the bound`);
      worst = Math.max(worst, r);
      worstScaled = Math.max(worstScaled, d / scale || 0);
    }
  }
  return [worst, worstScaled];
}

function sameBits(a: Float32Array, b: Float32Array, what: string): void {
  assert.equal(a.length, b.length, `${what}: length`);
  const ia = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ib = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ia.length; i++) if (ia[i] !== ib[i]) assert.fail(`${what}[${i}]: ${a[i]} vs ${b[i]}`);
}

test('A·Bᵀ matches the float64 reference within the float32 bound on edge sizes, with and without bias', (t) => {
  let worst = 0;
  let worstScaled = 0;
  let seed = 1;
  for (const M of SIZES) {
    for (const N of SIZES) {
      for (const K of SIZES) {
        const A = randomArray(M * K, seed++);
        const B = randomArray(N * K, seed++);
        const bias = (M + N + K) % 2 ? randomArray(N, seed++) : null;
        const [r, scaled] = boundRatio(run(A, B, M, N, K, bias), reference(A, B, M, N, K, bias), A, B, M, N, K, bias);
        worst = Math.max(worst, r);
        worstScaled = Math.max(worstScaled, scaled);
      }
    }
  }
  t.diagnostic(`largest |Δ| / bound: ${worst.toFixed(3)}; largest |Δ| / (Σ|a·b| + |bias|): ${worstScaled.toExponential(2)}`);
});

test('K across the 256 block edges, and accumulate', () => {
  let seed = 100;
  for (const K of [255, 256, 257, 511, 513, 1000]) {
    for (const [M, N] of [[1, 9], [5, 17], [9, 8]]) {
      const A = randomArray(M * K, seed++);
      const B = randomArray(N * K, seed++);
      const bias = randomArray(N, seed++);
      const C0 = randomArray(M * N, seed++, 10);
      boundRatio(run(A, B, M, N, K, bias), reference(A, B, M, N, K, bias), A, B, M, N, K, bias);
      boundRatio(run(A, B, M, N, K, null, undefined, C0), reference(A, B, M, N, K, null, C0), A, B, M, N, K, null, C0);
      boundRatio(run(A, B, M, N, K, bias, undefined, C0), reference(A, B, M, N, K, bias, C0), A, B, M, N, K, bias, C0);
    }
  }
});

test('exact on small integers (every partial sum representable), so indexing is checked bit for bit', () => {
  let seed = 7;
  const ints = (n: number) => Float32Array.from(randomArray(n, seed++), (v) => Math.round(v * 8));
  for (const [M, N, K] of [[1, 130, 65], [130, 1, 33], [17, 33, 300], [65, 130, 17], [4, 8, 256], [3, 4097, 5]]) {
    const A = ints(M * K);
    const B = ints(N * K);
    const bias = ints(N);
    sameBits(run(A, B, M, N, K, bias), reference(A, B, M, N, K, bias), `${M}×${N}×${K}`);
  }
});

test('the other layouts (A[K×M], B[K×N]) give bit-identical results to A·Bᵀ on transposed copies', () => {
  let seed = 300;
  for (const [M, N, K] of [[1, 17, 33], [1, 130, 513], [1, 5, 258], [3, 130, 65], [33, 17, 130], [130, 33, 257], [17, 1, 3]]) {
    const A = randomArray(M * K, seed++);
    const B = randomArray(N * K, seed++);
    const bias = randomArray(N, seed++);
    const want = run(A, B, M, N, K, bias);
    const At = transpose(A, M, K);
    const Bt = transpose(B, N, K);
    sameBits(run(A, Bt, M, N, K, bias, { a: 'mk', b: 'kn' }), want, `A·B ${M}×${N}×${K}`);
    sameBits(run(At, Bt, M, N, K, bias, { a: 'km', b: 'kn' }), want, `Aᵀ·B ${M}×${N}×${K}`);
    sameBits(run(At, B, M, N, K, bias, { a: 'km', b: 'nk' }), want, `Aᵀ·Bᵀ ${M}×${N}×${K}`);
  }
});

test('deterministic: same bits twice, and for any split of rows or columns (gemv path included)', () => {
  const M = 130;
  const N = 65;
  const K = 600;
  const A = randomArray(M * K, 11);
  const B = randomArray(N * K, 12);
  const bias = randomArray(N, 13);
  const full = run(A, B, M, N, K, bias);
  run(randomArray(300 * 300, 1), randomArray(300 * 300, 2), 300, 300, 300);
  sameBits(run(A, B, M, N, K, bias), full, 'second run');
  for (const cuts of [[1], [3, 17], [33, 34, 100], Array.from({ length: M - 1 }, (_, i) => i + 1)]) {
    const bounds = [0, ...cuts, M];
    const pieced = new Float32Array(M * N);
    for (let p = 0; p + 1 < bounds.length; p++) {
      const [r0, r1] = [bounds[p], bounds[p + 1]];
      pieced.set(run(A.subarray(r0 * K, r1 * K), B, r1 - r0, N, K, bias), r0 * N);
    }
    sameBits(pieced, full, `rows split at ${cuts.length > 5 ? 'every row' : cuts.join(',')}`);
  }
  for (const cut of [1, 8, 9, 40]) {
    const left = run(A, B.subarray(0, cut * K), M, cut, K, bias.subarray(0, cut));
    const right = run(A, B.subarray(cut * K), M, N - cut, K, bias.subarray(cut));
    const pieced = new Float32Array(M * N);
    for (let i = 0; i < M; i++) {
      pieced.set(left.subarray(i * cut, (i + 1) * cut), i * N);
      pieced.set(right.subarray(i * (N - cut), (i + 1) * (N - cut)), i * N + cut);
    }
    sameBits(pieced, full, `columns split at ${cut}`);
  }
});

test('degenerate sizes: K = 0 gives the bias (or zeros), M = 0 or N = 0 writes nothing', () => {
  const bias = Float32Array.of(1, -2, 3);
  sameBits(run(new Float32Array(0), new Float32Array(0), 2, 3, 0, bias), Float32Array.of(1, -2, 3, 1, -2, 3), 'K=0 bias');
  sameBits(run(new Float32Array(0), new Float32Array(0), 2, 3, 0), new Float32Array(6), 'K=0');
  const C = Float32Array.of(5);
  wasm.gemm(new Float32Array(0), new Float32Array(4), C, 0, 1, 4);
  assert.equal(C[0], 5);
  assert.throws(() => wasm.gemm(new Float32Array(3), new Float32Array(4), new Float32Array(1), 1, 1, 4), RangeError);
});

test('the browser path: loadWasmKernels fetches the module over HTTP (loopback server) and computes the same bits', async () => {
  const bytes = readFileSync(WASM_KERNELS_URL);
  const server = createServer((req, res) => {
    if (req.url === '/k/loom-kernels.wasm') res.writeHead(200, { 'content-type': 'application/wasm' }).end(bytes);
    else res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = server.address() as AddressInfo;
    const fetched = await loadWasmKernels(`http://127.0.0.1:${port}/k/loom-kernels.wasm`);
    const A = randomArray(33 * 65, 1);
    const B = randomArray(17 * 65, 2);
    const C = new Float32Array(33 * 17);
    fetched.gemm(A, B, C, 33, 17, 65);
    sameBits(C, run(A, B, 33, 17, 65), 'fetched module');
    await assert.rejects(loadWasmKernels(`http://127.0.0.1:${port}/missing.wasm`), /HTTP 404/);
  } finally {
    server.close();
  }
});

test('simdPeak (the benchmarks\' throughput probe) computes what its float32 chains say, lane for lane', () => {
  const { simdPeak } = kernelInstance<{ simdPeak(iterations: number, seed: number): number }>(0).x;
  const f = Math.fround;
  const rounds = 1000;
  const seed = 1;
  const m = f(1 + f(seed * f(1e-7)));
  const q = Array.from({ length: 7 }, (_, i) => f(seed + i));
  const a = [...q];
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < 7; i++) {
      q[i] = f(q[i] * m);
      a[i] = f(a[i] + q[i]);
    }
  }
  const sum = f(f(f(f(a[0] + a[1]) + f(a[2] + a[3])) + f(f(a[4] + a[5]) + a[6])));
  assert.equal(simdPeak(rounds, seed), sum);
});

test('sigmoid and tanh lanes give the scalar kernel\'s bits (2ⁿ built from float bits in lanes, by conversion in scalars)', () => {
  const n = 4096;
  const { x: k, at } = kernelInstance<{ activateF32(kind: number, n: number, x: number, out: number): void }>(3 * n);
  const { activateF32, memory } = k;
  const x = new Float32Array(memory.buffer, at, n);
  for (let i = 0; i < n; i++) x[i] = (i - n / 2) * (200 / n) + Math.sin(i) * 1e-3;
  x.set([0, -0, 1e-30, -1e-30, 88.7, -87.6, 1e9, -1e9, Infinity, -Infinity], 0);
  for (const kind of [0, 1]) {
    const lanes = new Float32Array(memory.buffer, at + n * 4, n);
    activateF32(kind, n, at, at + n * 4);
    const scalar = new Float32Array(memory.buffer, at + 2 * n * 4, n);
    // n = 1 runs only the scalar tail.
    for (let i = 0; i < n; i++) activateF32(kind, 1, at + i * 4, at + 2 * n * 4 + i * 4);
    assert.deepEqual(lanes, scalar, kind === 0 ? 'sigmoid' : 'tanh');
  }
});
