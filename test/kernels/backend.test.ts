import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  WASM_MIN_NK,
  sumRows,
  allFinite,
  gemmAB,
  gemmABt,
  gemmAtB,
  gemv,
  initKernels,
  kernelBackend,
  kernelMode,
  setKernelBackend,
} from '../../src/kernels/backend.js';
import { gemmABt as reference, sumRows as referenceSumRows, transpose } from '../../src/kernels/gemm.js';
import { loadWasmKernelsSync } from '../../src/kernels/wasm.js';
import { randomArray } from '../helpers.js';

const wasm = loadWasmKernelsSync()!;
const envTs = process.env.LOOM_KERNELS === 'ts';

function bits(a: Float32Array): number[] {
  return Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));
}

interface Case {
  M: number;
  N: number;
  K: number;
  A: Float32Array;
  B: Float32Array;
  bias: Float32Array;
  C0: Float32Array;
}

function makeCase(M: number, N: number, K: number, seed: number): Case {
  return { M, N, K, A: randomArray(M * K, seed), B: randomArray(N * K, seed + 1), bias: randomArray(N, seed + 2), C0: randomArray(M * N, seed + 3) };
}

/** The three dispatch entry points on one case, each with bias and accumulate. */
function viaBackend({ M, N, K, A, B, bias, C0 }: Case): Float32Array[] {
  const c1 = Float32Array.from(C0);
  gemmABt(A, B, c1, M, N, K, bias, true);
  const c2 = Float32Array.from(C0);
  gemmAB(A, transpose(B, N, K), c2, M, N, K, bias, true);
  const c3 = Float32Array.from(C0);
  gemmAtB(transpose(A, M, K), transpose(B, N, K), c3, M, N, K, bias, true);
  return [c1, c2, c3];
}

function viaReference({ M, N, K, A, B, bias, C0 }: Case): Float32Array {
  const c = Float32Array.from(C0);
  reference(A, B, c, M, N, K, bias, true);
  return c;
}

function viaWasm({ M, N, K, A, B, bias, C0 }: Case): Float32Array {
  const c = Float32Array.from(C0);
  wasm.gemm(A, B, c, M, N, K, undefined, bias, true);
  return c;
}

test('the module loads synchronously at import in Node (unless LOOM_KERNELS=ts)', async () => {
  assert.equal(kernelBackend(), envTs ? 'ts' : 'wasm');
  assert.equal(kernelMode(), envTs ? 'ts' : 'auto');
  if (!envTs) assert.equal(await initKernels(), 'wasm');
});

test("setKernelBackend('ts') gives exactly the reference for all entry points; 'wasm' gives the WebAssembly bits", () => {
  const before = kernelMode();
  try {
    for (const [M, N, K] of [[1, 65, 130], [17, 33, 65], [130, 3, 257]]) {
      const c = makeCase(M, N, K, M * 1000 + N);
      setKernelBackend('ts');
      assert.equal(kernelBackend(), 'ts');
      const want = bits(viaReference(c));
      for (const got of viaBackend(c)) assert.deepEqual(bits(got), want);
      setKernelBackend('wasm');
      assert.equal(kernelBackend(), 'wasm');
      const wantWasm = bits(viaWasm(c));
      for (const got of viaBackend(c)) assert.deepEqual(bits(got), wantWasm);
    }
  } finally {
    setKernelBackend(before);
  }
});

test("'auto' routes by N·K only: small B to the reference, large B to WebAssembly, for any M", { skip: envTs ? 'LOOM_KERNELS=ts' : false }, () => {
  setKernelBackend('auto');
  const small = makeCase(64, 8, 8, 5);
  assert.ok(small.N * small.K < WASM_MIN_NK);
  for (const got of viaBackend(small)) assert.deepEqual(bits(got), bits(viaReference(small)));
  for (const M of [1, 2, 64]) {
    const large = makeCase(M, 40, 40, 9);
    assert.ok(large.N * large.K >= WASM_MIN_NK);
    for (const got of viaBackend(large)) assert.deepEqual(bits(got), bits(viaWasm(large)));
  }
  const W = randomArray(50 * 30, 1);
  const x = randomArray(30, 2);
  const y = new Float32Array(50);
  const want = new Float32Array(50);
  gemv(W, x, y, 50, 30);
  wasm.gemm(x, W, want, 1, 50, 30);
  assert.deepEqual(bits(y), bits(want));
});

test('setKernelBackend rejects unknown names', () => {
  assert.throws(() => setKernelBackend('gpu' as never), /expected 'ts', 'wasm' or 'auto'/);
});

test('LOOM_KERNELS=ts in the environment selects the reference at import', () => {
  const url = new URL('../../src/kernels/backend.js', import.meta.url).href;
  const ref = new URL('../../src/kernels/gemm.js', import.meta.url).href;
  const script = `
    const b = await import(${JSON.stringify(url)});
    const g = await import(${JSON.stringify(ref)});
    const n = 64, A = new Float32Array(n * n).map((_, i) => Math.sin(i)), B = A.map((v) => v * 0.5 + 0.1);
    const c1 = new Float32Array(n * n), c2 = new Float32Array(n * n);
    b.gemmABt(A, B, c1, n, n, n);
    g.gemmABt(A, B, c2, n, n, n);
    console.log(JSON.stringify({ backend: b.kernelBackend(), mode: b.kernelMode(), same: c1.every((v, i) => Object.is(v, c2[i])) }));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
    env: { ...process.env, LOOM_KERNELS: 'ts' },
    cwd: fileURLToPath(new URL('.', import.meta.url)),
  });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { backend: 'ts', mode: 'ts', same: true });
});

test('allFinite finds a NaN or infinity anywhere (bulk on the WebAssembly kernels, tail in TypeScript) and passes finite data', () => {
  for (const mode of ['wasm', 'ts'] as const) {
    setKernelBackend(mode);
    try {
      for (const n of [1, 5, 8192, 20003]) {
        const d = Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 3.4e38);
        d[0] = -0;
        assert.equal(allFinite(d), true, `${mode}, ${n} finite values`);
        for (const bad of [NaN, Infinity, -Infinity]) {
          for (const at of [0, n - 1, n >> 1]) {
            const e = d.slice();
            e[at] = bad;
            assert.equal(allFinite(e), false, `${mode}, ${bad} at ${at} of ${n}`);
          }
        }
      }
    } finally {
      setKernelBackend('auto');
    }
  }
});

test('sumRows on the WebAssembly kernels gives the float64 reference bits (odd widths, one row, one column)', () => {
  let seed = 61;
  for (const [rows, cols] of [[1, 1], [3, 5], [64, 256], [7, 1001], [500, 3], [2, 4096]]) {
    const x = randomArray(rows * cols, seed++).map((v, i) => (i % 97 === 5 ? v * 1e30 : v));
    const want = referenceSumRows(x, rows, cols);
    setKernelBackend('wasm');
    try {
      const got = sumRows(x, rows, cols);
      assert.deepEqual(new Uint32Array(got.buffer), new Uint32Array(want.buffer), `${rows}×${cols}`);
    } finally {
      setKernelBackend('auto');
    }
  }
});
