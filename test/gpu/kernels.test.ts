import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Rng } from '../../src/core/rng.js';
import type { GpuContext } from '../../src/gpu/context.js';
import { gemm, TILE_HUGE, TILE_HUGE_16K, TILE_LARGE, TILE_MEDIUM, TILE_SMALL, tileStorage, type GemmTile } from '../../src/gpu/kernels/gemm.js';
import { compareLayer, FORWARD_TOL, randomArray, relativeDiff, realGpu } from './gpuHelpers.js';

let gpu: GpuContext | string;
before(async () => {
  gpu = await realGpu();
});
after(() => {
  if (typeof gpu !== 'string') gpu.destroy();
});

test('GPU layers match the CPU reference (forward ≤ 1e-5, gradients ≤ 1e-4)', async (t) => {
  if (typeof gpu === 'string') return t.skip(gpu);
  const ctx = gpu;
  const report: string[] = [];
  for (const activation of ['Linear', 'ReLU', 'LeakyReLU', 'ReLU2', 'Sigmoid', 'Tanh', 'Silu', 'GELU']) {
    await compareLayer(ctx, { type: 'Dense', activation, input_height: 37, output_height: 21, use_bias: true }, [5, 37], report);
  }
  await compareLayer(ctx, { type: 'Dense', activation: 'ReLU', input_height: 256, output_height: 256, use_bias: true }, [128, 256], report);
  await compareLayer(ctx, { type: 'Dense', activation: 'Linear', input_height: 64, output_height: 128, use_bias: false }, [4, 8, 64], report);
  await compareLayer(ctx, { type: 'CNN1', activation: 'ReLU', input_channels: 3, filters: 4, kernel_size: 3, stride: 2, padding: 1, input_height: 11, use_bias: true }, [2, 3, 11], report);
  await compareLayer(ctx, { type: 'CNN2', activation: 'Tanh', input_channels: 2, filters: 5, kernel_size: 3, stride: 1, padding: 1, input_height: 7, input_width: 6, use_bias: true }, [3, 2, 7, 6], report);
  await compareLayer(ctx, { type: 'CNN2', activation: 'ReLU', input_channels: 1, filters: 8, kernel_size: 3, stride: 2, padding: 1, input_height: 28, input_width: 28, use_bias: true }, [4, 1, 28, 28], report);
  await compareLayer(ctx, { type: 'CNN3', activation: 'Linear', input_channels: 2, filters: 3, kernel_size: 2, stride: 1, padding: 0, input_depth: 4, input_height: 4, input_width: 4, use_bias: false }, [2, 2, 4, 4, 4], report);
  await compareLayer(ctx, { type: 'Residual' }, [3, 10], report, [3, 10]);
  await compareLayer(ctx, { type: 'RMSNorm', input_height: 48 }, [3, 5, 48], report);
  await compareLayer(ctx, { type: 'LayerNorm', input_height: 33 }, [7, 33], report);
  await compareLayer(ctx, { type: 'Softmax' }, [6, 10], report);
  await compareLayer(ctx, { type: 'Softmax', softmax_type: 'Temperature', temperature: 0.5, input_height: 8 }, [3, 16], report);
  t.diagnostic(`device: ${JSON.stringify(ctx.adapterInfo)}`);
  for (const line of report) t.diagnostic(line);
});

function gemmReference(a: Float32Array, b: Float32Array, M: number, N: number, K: number, transA: boolean, transB: boolean): Float64Array {
  const c = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += (transA ? a[k * M + m] : a[m * K + k]) * (transB ? b[n * K + k] : b[k * N + n]);
      c[m * N + n] = s;
    }
  }
  return c;
}

test('GPU GEMM: every transpose, tile, aligned and ragged shapes', async (t) => {
  if (typeof gpu === 'string') return t.skip(gpu);
  const ctx = gpu;
  const rng = new Rng(3);
  const cases: [number, number, number, GemmTile][] = [
    [256, 256, 64, TILE_LARGE], [130, 129, 33, TILE_LARGE], [128, 256, 64, { ...TILE_LARGE, staging: 'prefetch' }], [256, 128, 48, { ...TILE_LARGE, staging: 'double' }],
    [256, 256, 32, { bm: 128, bn: 128, bk: 8, tm: 8, tn: 8, staging: 'double' }], [256, 512, 48, TILE_HUGE], [128, 256, 32, TILE_HUGE_16K], [128, 128, 24, { bm: 128, bn: 128, bk: 8, tm: 8, tn: 8, staging: 'prefetch' }], [128, 64, 48, TILE_MEDIUM], [67, 45, 19, TILE_MEDIUM], [32, 64, 32, TILE_SMALL], [5, 7, 3, TILE_SMALL],
  ];
  for (const [M, N, K, tile] of cases.filter(([, , , t]) => tileStorage(t) <= ctx.workgroupStorage)) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        const a = randomArray(M * K, rng);
        const b = randomArray(K * N, rng);
        const A = ctx.upload(a);
        const B = ctx.upload(b);
        const C = ctx.alloc(M * N);
        gemm(ctx, A, B, C, { M, N, K, transA, transB, tile });
        const got = await ctx.read(C, M * N);
        const d = relativeDiff(got, gemmReference(a, b, M, N, K, transA, transB));
        assert.ok(d <= FORWARD_TOL, `gemm ${M}x${N}x${K} tile ${tile.bm}x${tile.bn} ${tile.staging ?? ''} transA ${transA} transB ${transB}: diff ${d}`);
        for (const x of [A, B, C]) ctx.release(x);
      }
    }
  }
});
