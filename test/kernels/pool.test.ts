import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { gemmABt, kernelThreads, setThreads } from '../../src/kernels/backend.js';
import { createKernelPool, productTiles, splitProduct, type KernelPool } from '../../src/kernels/pool.js';
import { attentionSizes, loadWasmKernelsSync, type GemmLayout } from '../../src/kernels/wasm.js';
import { KERNELS_OFF, randomArray } from '../helpers.js';


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

test('attention over a batch: 1, 2 and 3 threads give the bits of the single-threaded kernels, forward and backward', async () => {
  const byThreads = await Promise.all([1, 2, 3].map((t) => createKernelPool(t)));
  pools.push(...byThreads);
  const f64Bits = (a: Float64Array) => new Uint32Array(a.buffer, a.byteOffset, 2 * a.length);
  for (const a of [
    { batch: 3, seq: 70, hd: 16, heads: 4, kvHeads: 2, causal: true, scale: 0.25 },
    { batch: 2, seq: 33, hd: 12, heads: 3, kvHeads: 3, causal: false, scale: 0.3 },
  ]) {
    const { rows, w3, q, kv, tasks } = attentionSizes(a);
    const qkv = randomArray(rows * w3, 7 + a.seq);
    const gAttn = randomArray(rows * q, 8 + a.seq);
    const want = { attn: new Float32Array(rows * q), stats: new Float32Array(2 * a.seq * tasks), gq: new Float32Array(rows * q), gk: new Float64Array(rows * kv), gv: new Float64Array(rows * kv) };
    assert.ok(single.attentionBatch(a, qkv, want.attn, want.stats));
    assert.ok(single.attentionBatchBackward(a, qkv, gAttn, want.stats, want.gq, want.gk, want.gv));
    for (const p of byThreads) {
      const got = { attn: new Float32Array(rows * q).fill(NaN), stats: new Float32Array(2 * a.seq * tasks), gq: new Float32Array(rows * q), gk: new Float64Array(rows * kv), gv: new Float64Array(rows * kv) };
      assert.ok(p.attention(a, qkv, got.attn, got.stats));
      assert.ok(p.attentionBackward(a, qkv, gAttn, got.stats, got.gq, got.gk, got.gv));
      const what = `${p.threads} threads, seq ${a.seq}`;
      sameBits(got.attn, want.attn, `${what} attn`);
      sameBits(got.stats, want.stats, `${what} stats`);
      sameBits(got.gq, want.gq, `${what} dq`);
      assert.deepEqual(f64Bits(got.gk), f64Bits(want.gk), `${what} dk`);
      assert.deepEqual(f64Bits(got.gv), f64Bits(want.gv), `${what} dv`);
    }
    assert.ok(want.attn.every(Number.isFinite) && want.gk.some((v) => v !== 0), 'the kernels computed something');
  }
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
  // Each tile packs the whole operand along the uncut side again: the smaller one is repeated.
  const rowsWhole = (M: number, N: number) => splitProduct(M, N, 2).every(([i0, i1]) => i0 === 0 && i1 === M);
  assert.ok(rowsWhole(256, 784), 'A (256 rows) smaller than B (784): columns cut');
  assert.ok(!rowsWhole(784, 256), 'B smaller: rows cut');
  assert.ok(!rowsWhole(1024, 1024), 'square: rows cut (more blocks)');
  assert.ok(rowsWhole(16, 100), 'under 8 column blocks but more of them than row blocks: columns cut');
  assert.ok(!rowsWhole(64, 100), 'under 8 column blocks and fewer than the row blocks: rows cut');
});

test('productTiles: a few tiles per thread for large products, one per thread for small ones', () => {
  assert.equal(productTiles(200, 300, 260, 2), 7);
  assert.equal(productTiles(1024, 1024, 1024, 2), 8);
  assert.equal(productTiles(64, 256, 784, 2), 6);
  assert.equal(productTiles(37, 19, 70, 3), 3);
  assert.equal(productTiles(4, 16, 64, 3), 1);
});

test('setThreads routes large products to the pool with unchanged results', { skip: KERNELS_OFF }, async () => {
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


test('persistent blocks: released ones are reused first fit, merged with their neighbours, and the top one goes back to the per-call area', { skip: KERNELS_OFF }, async () => {
  const pool = await createKernelPool(1);
  pools.push(pool);
  const start = pool.reservedEnd;
  const a = pool.persistent(100)!;
  const b = pool.persistent(1000)!;
  const c = pool.persistent(50)!;
  assert.deepEqual([a, b, c], [start, start + 112, start + 1120]);
  assert.equal(pool.reservedEnd, start + 1184);
  pool.release(b, 1000);
  assert.equal(pool.persistent(200), b, 'a released gap is reused');
  assert.equal(pool.persistent(2000), start + 1184, 'a block larger than every gap goes on top');
  pool.release(start + 1184, 2000);
  assert.equal(pool.reservedEnd, start + 1184, 'the top block went back');
  pool.release(a, 100);
  pool.release(b, 200);
  assert.equal(pool.persistent(1008), a, 'a and the rest of b merged into one gap');
  pool.release(a, 1008);
  assert.throws(() => pool.release(a, 16), /KernelPool\.release: \[\d+, \d+\) is not a reserved block/, 'a block released twice');
  assert.throws(() => pool.release(c + 8, 16), /not a reserved block/, 'unaligned');
  assert.throws(() => pool.release(start - 16, 16), /not a reserved block/, 'below the reserved area');
  assert.throws(() => pool.release(c, 4096), /not a reserved block/, 'past the reserved area');
  pool.release(c, 50);
  assert.equal(pool.reservedEnd, start, 'everything released: the per-call area starts where it did');
});
