import { LoomError, ShapeError } from '../core/errors.js';
import { geometry, spatialSizes } from '../layers/conv.js';
import { coordText, type Layer } from '../layers/layer.js';
import { imageSize, positions, type ConvGeometry } from '../kernels/im2col.js';
import type { GpuArray, GpuContext } from './context.js';
import { convForward, convInputGrad, convWeightGrad } from './kernels/conv.js';
import { activate, activateBackward, add, channelSums } from './kernels/elementwise.js';
import { gemm } from './kernels/gemm.js';
import {
  LAYERNORM_BACKWARD_WGSL, LAYERNORM_FORWARD_WGSL, LAYERNORM_PARAM_GRAD_WGSL, RMSNORM_BACKWARD_WGSL, RMSNORM_FORWARD_WGSL,
  RMSNORM_PARAM_GRAD_WGSL, rowDispatch, rowUniform, SOFTMAX_BACKWARD_WGSL, SOFTMAX_FORWARD_WGSL,
} from './kernels/norm.js';

/** A tensor resident on the GPU. */
export interface GpuTensor {
  data: GpuArray;
  shape: readonly number[];
}

export function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** What a GPU forward keeps for its backward: buffers owned by the frame's arena. */
export interface GpuCache {
  input: GpuTensor;
  pre?: GpuArray;
  skip?: GpuTensor;
  batch: number;
  /** More buffers a kind keeps (attention's projections and statistics, LSTM gates and cells). */
  extra?: GpuArray[];
  /** Sizes a kind keeps (sequence length). */
  sizes?: number[];
}

export interface GpuForward {
  output: GpuTensor;
  cache: GpuCache;
}

export interface GpuBackward {
  gradInput: GpuTensor | null;
  gradSkip?: GpuTensor;
}

/**
 * Short-lived buffers of one frame (activations, gradients): allocated from the context's pool and
 * all returned after the frame's submit.
 */
export class Arena {
  private readonly held: GpuArray[] = [];
  constructor(readonly ctx: GpuContext) {}
  alloc(length: number): GpuArray {
    const a = this.ctx.alloc(length);
    this.held.push(a);
    return a;
  }
  releaseAll(): void {
    for (const a of this.held) this.ctx.release(a);
    this.held.length = 0;
  }
}

/**
 * The GPU twin of a LayerKind, bound by the kind's name. `weights` is the layer's parameter vector on
 * the GPU; backward writes the parameter gradient (same layout) into `gradWeights`.
 */
export interface GpuLayerKind {
  forward(arena: Arena, layer: Layer, input: GpuTensor, weights: GpuArray | null, skip: GpuTensor | null): GpuForward;
  backward(arena: Arena, layer: Layer, gradOutput: GpuTensor, cache: GpuCache, weights: GpuArray | null, gradWeights: GpuArray | null, needInputGrad: boolean): GpuBackward;
}

const GPU_KINDS = new Map<string, GpuLayerKind>();

export function registerGpuLayerKind(name: string, kind: GpuLayerKind): void {
  GPU_KINDS.set(name, kind);
}

export function gpuLayerKind(layer: Layer): GpuLayerKind | undefined {
  return GPU_KINDS.get(layer.kind.name);
}

export function gpuKindNames(): string[] {
  return [...GPU_KINDS.keys()];
}

function rowsOf(layer: Layer, input: GpuTensor, features: number): number {
  const size = sizeOf(input.shape);
  if (size % features !== 0 || size === 0) {
    throw new ShapeError(`${layer.kind.name} at ${coordText(layer)}: expected ${features} values per sample, got input of shape [${input.shape.join(', ')}]`);
  }
  return size / features;
}

registerGpuLayerKind('Dense', {
  forward(arena, layer, input, weights) {
    const { inputHeight: nIn = 0, outputHeight: nOut = 0, useBias } = layer.config;
    const rows = rowsOf(layer, input, nIn);
    const ctx = arena.ctx;
    const pre = arena.alloc(rows * nOut);
    gemm(ctx, input.data, weights!, pre, { M: rows, N: nOut, K: nIn, transB: true, bias: useBias ? weights : null, offBias: nIn * nOut });
    const out = arena.alloc(rows * nOut);
    activate(ctx, layer.activation, pre, out, rows * nOut);
    const sequence = input.shape.length === 3 && input.shape[2] === nIn;
    return { output: { data: out, shape: sequence ? [input.shape[0], input.shape[1], nOut] : [rows, nOut] }, cache: { input, pre, batch: rows } };
  },
  backward(arena, layer, gradOutput, cache, weights, gradWeights, needInputGrad) {
    const { inputHeight: nIn = 0, outputHeight: nOut = 0, useBias } = layer.config;
    const ctx = arena.ctx;
    const rows = cache.batch;
    const gradPre = arena.alloc(rows * nOut);
    activateBackward(ctx, layer.activation, gradOutput.data, cache.pre!, gradPre, rows * nOut);
    gemm(ctx, gradPre, cache.input.data, gradWeights!, { M: nOut, N: nIn, K: rows, transA: true });
    if (useBias) channelSums(ctx, gradPre, gradWeights!, rows, nOut, 1, nIn * nOut);
    if (!needInputGrad) return { gradInput: null };
    const gradIn = arena.alloc(rows * nIn);
    gemm(ctx, gradPre, weights!, gradIn, { M: rows, N: nIn, K: nOut });
    return { gradInput: { data: gradIn, shape: cache.input.shape } };
  },
});

function registerConv(name: string, axes: readonly ('depth' | 'height' | 'width')[]): void {
  const geometryOf = (layer: Layer): ConvGeometry =>
    geometry(layer.config.inputChannels ?? 0, spatialSizes(layer.config, axes, 'input'), spatialSizes(layer.config, axes, 'output'), layer.config);
  registerGpuLayerKind(name, {
    forward(arena, layer, input, weights) {
      const g = geometryOf(layer);
      const F = layer.config.filters!;
      const batch = rowsOf(layer, input, imageSize(g));
      const n = batch * F * positions(g);
      const pre = arena.alloc(n);
      convForward(arena.ctx, g, F, batch, !!layer.config.useBias, input.data, weights!, pre);
      const out = arena.alloc(n);
      activate(arena.ctx, layer.activation, pre, out, n);
      return { output: { data: out, shape: [batch, F, ...spatialSizes(layer.config, axes, 'output')] }, cache: { input, pre, batch } };
    },
    backward(arena, layer, gradOutput, cache, weights, gradWeights, needInputGrad) {
      const g = geometryOf(layer);
      const F = layer.config.filters!;
      const n = cache.batch * F * positions(g);
      const gradPre = arena.alloc(n);
      activateBackward(arena.ctx, layer.activation, gradOutput.data, cache.pre!, gradPre, n);
      convWeightGrad(arena.ctx, g, F, cache.batch, !!layer.config.useBias, gradPre, cache.input.data, gradWeights!);
      if (!needInputGrad) return { gradInput: null };
      const gradIn = arena.alloc(cache.batch * imageSize(g));
      convInputGrad(arena.ctx, g, F, cache.batch, gradPre, weights!, gradIn);
      return { gradInput: { data: gradIn, shape: cache.input.shape } };
    },
  });
}

registerConv('CNN1', ['height']);
registerConv('CNN2', ['height', 'width']);
registerConv('CNN3', ['depth', 'height', 'width']);

/** Residual: output = input + skip; the gradient flows unchanged to both. */
registerGpuLayerKind('Residual', {
  forward(arena, layer, input, _weights, skip) {
    const n = sizeOf(input.shape);
    if (!skip) return { output: input, cache: { input, batch: 0 } };
    if (sizeOf(skip.shape) !== n) throw new ShapeError(`Residual at ${coordText(layer)}: skip has shape [${skip.shape.join(', ')}], input [${input.shape.join(', ')}]`);
    const out = arena.alloc(n);
    add(arena.ctx, input.data, skip.data, out, n);
    return { output: { data: out, shape: input.shape }, cache: { input, skip, batch: 1 } };
  },
  backward(_arena, _layer, gradOutput, cache) {
    const r: GpuBackward = { gradInput: gradOutput };
    if (cache.batch) r.gradSkip = gradOutput;
    return r;
  },
});

function normRows(layer: Layer, input: GpuTensor): { rows: number; n: number } {
  const n = layer.config.inputHeight!;
  return { rows: rowsOf(layer, input, n), n };
}

/** RMSNorm and LayerNorm (they ignore the activation, as the CPU kinds do): one row per thread; `statsPerRow` floats kept for backward. */
function registerRowNorm(
  name: string,
  shaders: { forward: string; backward: string; paramGrad: string },
  defaultEpsilon: number,
  statsPerRow: number,
): void {
  registerGpuLayerKind(name, {
    forward(arena, layer, input, weights) {
      const { rows, n } = normRows(layer, input);
      const u = rowUniform(arena.ctx, rows, n, layer.config.epsilon ?? defaultEpsilon);
      const out = arena.alloc(rows * n);
      const stats = arena.alloc(statsPerRow * rows);
      rowDispatch(arena.ctx, shaders.forward, u, [input.data, weights!, out, stats], rows);
      return { output: { data: out, shape: input.shape }, cache: { input, pre: stats, batch: rows } };
    },
    backward(arena, layer, gradOutput, cache, weights, gradWeights, needInputGrad) {
      const rows = cache.batch;
      const n = layer.config.inputHeight!;
      const u = rowUniform(arena.ctx, rows, n, layer.config.epsilon ?? defaultEpsilon);
      rowDispatch(arena.ctx, shaders.paramGrad, u, [cache.input.data, gradOutput.data, cache.pre!, gradWeights!], n);
      if (!needInputGrad) return { gradInput: null };
      const gx = arena.alloc(rows * n);
      rowDispatch(arena.ctx, shaders.backward, u, [cache.input.data, weights!, gradOutput.data, cache.pre!, gx], rows);
      return { gradInput: { data: gx, shape: cache.input.shape } };
    },
  });
}

registerRowNorm('RMSNorm', { forward: RMSNORM_FORWARD_WGSL, backward: RMSNORM_BACKWARD_WGSL, paramGrad: RMSNORM_PARAM_GRAD_WGSL }, 1e-6, 1);
registerRowNorm('LayerNorm', { forward: LAYERNORM_FORWARD_WGSL, backward: LAYERNORM_BACKWARD_WGSL, paramGrad: LAYERNORM_PARAM_GRAD_WGSL }, 1e-5, 2);

/** Softmax: the Standard and Temperature variants over whole rows; the others stay on the CPU. */
registerGpuLayerKind('Softmax', {
  forward(arena, layer, input) {
    const c = layer.config;
    const type = c.softmaxType ?? 'Standard';
    if ((type !== 'Standard' && type !== 'Temperature') || c.softmaxRows || c.softmaxCols || c.gumbelNoise) {
      throw new LoomError(`Softmax at ${coordText(layer)}: the ${type} variant (or grouped rows) has no GPU kernel yet; run it on the CPU`);
    }
    const rowSize = sizeOf(input.shape.slice(1));
    const n = c.inputHeight ? c.inputHeight : rowSize;
    const rows = rowsOf(layer, input, n);
    const u = rowUniform(arena.ctx, rows, n, 0, 1 / (c.temperature ? c.temperature : 1));
    const out = arena.alloc(rows * n);
    rowDispatch(arena.ctx, SOFTMAX_FORWARD_WGSL, u, [input.data, out], rows);
    return { output: { data: out, shape: input.shape }, cache: { input, pre: out, batch: rows } };
  },
  backward(arena, layer, gradOutput, cache) {
    const n = sizeOf(cache.input.shape) / cache.batch;
    const u = rowUniform(arena.ctx, cache.batch, n, 0, 1 / (layer.config.temperature ? layer.config.temperature : 1));
    const gx = arena.alloc(sizeOf(cache.input.shape));
    rowDispatch(arena.ctx, SOFTMAX_BACKWARD_WGSL, u, [cache.pre!, gradOutput.data, gx], cache.batch);
    return { gradInput: { data: gx, shape: cache.input.shape } };
  },
});
