import assert from 'node:assert/strict';
import { Rng } from '../../src/core/rng.js';
import { Tensor } from '../../src/core/tensor.js';
import { buildNetwork } from '../../src/grid/spec.js';
import { GpuUnavailableError, type GpuContext } from '../../src/gpu/context.js';
import { Arena, gpuLayerKind, sizeOf } from '../../src/gpu/layers.js';
import '../../src/gpu/sequenceLayers.js';
import { createNodeGpuContext } from '../../src/gpu/node.js';

/** A context on a real adapter, or the reason there is none (tests then skip with it). */
export async function realGpu(): Promise<GpuContext | string> {
  try {
    const ctx = await createNodeGpuContext();
    return ctx;
  } catch (e) {
    if (e instanceof GpuUnavailableError) return `no GPU adapter: ${e.message}`;
    throw e;
  }
}

/** max |a − b| / max |b|: the error relative to the size of the reference values. */
export function relativeDiff(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let scale = 0;
  let diff = 0;
  for (let i = 0; i < expected.length; i++) {
    scale = Math.max(scale, Math.abs(expected[i]));
    const d = Math.abs(actual[i] - expected[i]);
    diff = Number.isNaN(d) ? Infinity : Math.max(diff, d);
  }
  if (actual.length !== expected.length) return Infinity;
  return diff / Math.max(scale, 1e-30);
}

/** Forward and backward tolerances of the issue: relative to the reference's largest magnitude. */
export const FORWARD_TOL = 1e-5;
export const GRAD_TOL = 1e-4;

export function randomArray(n: number, rng: Rng, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (rng.uniform() * 2 - 1) * scale;
  return a;
}

/**
 * Runs one layer's forward and backward on the CPU (the reference) and the GPU, compares output,
 * input gradient, parameter gradient (and skip gradient), and appends the max relative diffs to
 * `report`. `input` makes the input values (default uniform in ±1).
 */
export async function compareLayer(
  ctx: GpuContext, spec: Record<string, unknown>, inputShape: number[], report: string[], skipShape?: number[], input?: (n: number, rng: Rng) => Float32Array,
): Promise<void> {
  const net = buildNetwork({ depth: 1, rows: 1, cols: 1, layers_per_cell: 1, layers: [{ z: 0, y: 0, x: 0, l: 0, dtype: 'float32', ...spec }] }, { seed: 7 });
  const layer = net.layers()[0];
  const rng = new Rng(11);
  const x0 = new Tensor(input ? input(sizeOf(inputShape), rng) : randomArray(sizeOf(inputShape), rng), inputShape);
  const skip = skipShape ? new Tensor(randomArray(sizeOf(skipShape), rng), skipShape) : null;
  const weights = layer.weights?.master ?? null;
  const cpu = layer.kind.forward(layer, x0, weights, skip);
  const gradOut = new Tensor(randomArray(cpu.output.size, rng), cpu.output.shape);
  const cpuBack = layer.kind.backward(layer, gradOut, cpu.cache, weights);

  const kind = gpuLayerKind(layer);
  assert.ok(kind, `no GPU kernels for ${layer.kind.name}`);
  const arena = new Arena(ctx);
  const x = arena.alloc(x0.size);
  ctx.upload(x0.data, x);
  const w = weights ? arena.alloc(weights.length) : null;
  if (w) ctx.upload(weights!, w);
  const s = skip ? arena.alloc(skip.size) : null;
  if (s) ctx.upload(skip!.data, s);
  const g = arena.alloc(gradOut.size);
  ctx.upload(gradOut.data, g);
  const gw = weights ? arena.alloc(weights.length) : null;
  const fwd = kind.forward(arena, layer, { data: x, shape: x0.shape }, w, s ? { data: s, shape: skip!.shape } : null);
  const back = kind.backward(arena, layer, { data: g, shape: gradOut.shape }, fwd.cache, w, gw, true);
  const out = await ctx.read(fwd.output.data, cpu.output.size);
  const name = `${layer.kind.name} ${JSON.stringify(spec).slice(0, 90)}`;
  const diffs: string[] = [];
  const check = (what: string, got: Float32Array, want: ArrayLike<number>, tol: number) => {
    const d = relativeDiff(got, want);
    diffs.push(`${what} ${d.toExponential(2)}`);
    assert.ok(d <= tol, `${name}: ${what} max relative diff ${d} > ${tol}`);
  };
  assert.deepEqual([...fwd.output.shape], [...cpu.output.shape], `${name}: output shape`);
  check('forward', out, cpu.output.data, FORWARD_TOL);
  if (back.gradInput) check('gradInput', await ctx.read(back.gradInput.data, x0.size), cpuBack.gradInput.data, GRAD_TOL);
  if (gw && cpuBack.gradWeights) check('gradWeights', await ctx.read(gw, weights!.length), cpuBack.gradWeights, GRAD_TOL);
  if (skip && cpuBack.gradSkip && back.gradSkip) check('gradSkip', await ctx.read(back.gradSkip.data, skip.size), cpuBack.gradSkip.data, GRAD_TOL);
  arena.releaseAll();
  report.push(`${name}: ${diffs.join(', ')}`);
}
