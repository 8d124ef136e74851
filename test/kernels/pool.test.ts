import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { gemmABt, kernelThreads, setThreads } from '../../src/kernels/backend.js';
import { createKernelPool, productTiles, splitProduct, type KernelPool } from '../../src/kernels/pool.js';
import { loadWasmKernelsSync, type GemmLayout } from '../../src/kernels/wasm.js';
import { randomArray } from '../helpers.js';

const single = loadWasmKernelsSync()!;
const pools: KernelPool[] = [];
after(() => {
  for (const p of pools) p.close();
});

function bits(a: Float32Array): Uint32Array {
  return new Uint32Array(a.buffer, a.byteOffset, a.length);
}

function sameBits(a: Float32Array, b: Float32Array, what: string): void {
  const ia = bits(a);
  const ib = bits(b);
  assert.equal(ia.length, ib.length, `${what}: length`);
  for (let i = 0; i < ia.length; i++) if (ia[i] !== ib[i]) assert.fail(`${what}[${i}]: ${a[i]} vs ${b[i]}`);
}

const LAYOUTS: GemmLayout[] = [
  { a: 'mk', b: 'nk' },
  { a: 'mk', b: 'kn' },
  { a: 'km', b: 'kn' },
  { a: 'km', b: 'nk' },
];
// Row splits, column splits, the gemv paths (M = 1), the few-rows path (M ≤ 4) and K past one 256 block.
const SHAPES: [number, number, number][] = [
  [1, 77, 300],
  [3, 50, 33],
  [37, 19, 70],
  [130, 9, 513],
  [64, 200, 64],
  [9, 300, 260],
  [200, 300, 260],
];

test('kernel pool: 1, 2 and 3 threads give the same bits as the single-threaded kernels', async () => {
  const byThreads = await Promise.all([1, 2, 3].map((t) => createKernelPool(t)));
  pools.push(...byThreads);
  let seed = 1;
  for (const [M, N, K] of SHAPES) {
    for (const layout of LAYOUTS) {
      for (const withBias of [false, true]) {
        const A = randomArray(M * K, seed++);
        const B = randomArray(N * K, seed++);
        const bias = withBias ? randomArray(N, seed++) : null;
        const want = new Float32Array(M * N);
        assert.ok(single.gemm(A, B, want, M, N, K, layout, bias));
        for (const p of byThreads) {
          const got = new Float32Array(M * N).fill(Number.NaN);
          assert.ok(p.gemm(A, B, got, M, N, K, layout, bias));
          sameBits(got, want, `${p.threads} threads M=${M} N=${N} K=${K} ${layout.a}/${layout.b}${withBias ? ' +bias' : ''}`);
        }
      }
    }
  }
  // accumulate adds the product into C.
  const [M, N, K] = [20, 40, 30];
  const A = randomArray(M * K, 91);
  const B = randomArray(N * K, 92);
  const C0 = randomArray(M * N, 93);
  const want = Float32Array.from(C0);
  single.gemm(A, B, want, M, N, K, undefined, null, true);
  const got = Float32Array.from(C0);
  byThreads[2].gemm(A, B, got, M, N, K, undefined, null, true);
  sameBits(got, want, 'accumulate');
});

test('splitProduct: contiguous tiles covering C, split at multiples of 16 columns or 4 rows', () => {
  for (const [M, N, t] of [[1, 4096, 3], [64, 784, 2], [1000, 16, 3], [5, 5, 4]] as const) {
    const parts = splitProduct(M, N, t);
    assert.equal(parts.length, t);
    let covered = 0;
    for (const [i0, i1, j0, j1] of parts) {
      covered += Math.max(0, i1 - i0) * Math.max(0, j1 - j0);
      assert.ok((i0 % 4 === 0 || i0 === M) && (j0 % 16 === 0 || j0 === N));
    }
    assert.equal(covered, M * N);
  }
});

test('productTiles: a few tiles per thread for large products, one per thread for small ones', () => {
  assert.equal(productTiles(200, 300, 260, 2), 7);
  assert.equal(productTiles(1024, 1024, 1024, 2), 8);
  assert.equal(productTiles(64, 256, 784, 2), 6);
  assert.equal(productTiles(37, 19, 70, 3), 3);
  assert.equal(productTiles(4, 16, 64, 3), 1);
});

test('setThreads routes large products to the pool with unchanged results', async () => {
  const [M, N, K] = [96, 128, 160];
  const A = randomArray(M * K, 5);
  const B = randomArray(N * K, 6);
  const one = new Float32Array(M * N);
  gemmABt(A, B, one, M, N, K);
  assert.equal(await setThreads(2), 2);
  assert.equal(kernelThreads(), 2);
  const two = new Float32Array(M * N);
  gemmABt(A, B, two, M, N, K);
  assert.equal(await setThreads(1), 1);
  sameBits(two, one, 'setThreads(2)');
  await assert.rejects(() => createKernelPool(0), /threads/);
});

