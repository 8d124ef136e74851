import { ShapeError, SpecError } from '../core/errors.js';
import { Tensor } from '../core/tensor.js';
import { requirePositive } from './dense.js';
import { coordText, type Layer, type LayerKind } from './layer.js';
import { registerLayerKind } from './registry.js';

/** Per-row statistics a norm forward keeps for its backward. */
interface NormStats {
  rows: number;
  /** RMSNorm: 1/rms per row. LayerNorm: 1/std per row. */
  invScale: Float64Array;
  /** LayerNorm only: the row means. */
  mean?: Float64Array;
}

/**
 * RMSNorm: each row of `input_height` values becomes y = x / sqrt(mean(x²) + eps) · g.
 * Parameters: g [input_height] (init 1). eps = `epsilon`, default 1e-6 (the original's).
 * Inputs [B, ..., H] (or [B, k·H] flattened) normalize every run of H values; the output keeps the input's shape.
 * Like the original, norms ignore the layer's activation (its files carry the enum's zero value, ReLU, on norms).
 */
export const rmsNormKind: LayerKind = {
  name: 'RMSNorm',
  aliases: ['RMS_NORM'],

  configure(layer, path) {
    configureNorm(layer, path);
  },

  parameterCount: (layer) => layer.config.inputHeight ?? 0,

  initParameters(_layer, params) {
    params.fill(1);
  },

  forward(layer, input, weights) {
    const n = layer.config.inputHeight!;
    const rows = rowsOf(layer, input, n);
    const eps = layer.config.epsilon ?? 1e-6;
    const g = weights!;
    const x = input.data;
    const out = new Float32Array(x.length);
    const invScale = new Float64Array(rows);
    for (let r = 0, base = 0; r < rows; r++, base += n) {
      let sumSq = 0;
      for (let i = 0; i < n; i++) sumSq += x[base + i] * x[base + i];
      const inv = 1 / Math.sqrt(sumSq / n + eps);
      invScale[r] = inv;
      for (let i = 0; i < n; i++) out[base + i] = x[base + i] * inv * g[i];
    }
    const stats: NormStats = { rows, invScale };
    return { output: new Tensor(out, input.shape), cache: { input, extra: stats } };
  },

  forwardIncremental(layer, input, ctx) {
    return rmsNormKind.forward(layer, input, ctx.vector(0, layer.config.inputHeight!), null).output;
  },

  backward(layer, gradOutput, cache, weights) {
    const n = layer.config.inputHeight!;
    const { rows, invScale } = cache.extra as NormStats;
    const g = weights!;
    const x = cache.input.data;
    const gy = gradOutput.data;
    const gradIn = new Float32Array(x.length);
    const gradG = new Float64Array(n);
    for (let r = 0, base = 0; r < rows; r++, base += n) {
      const inv = invScale[r];
      // dx_i = g_i·gy_i/rms − x_i·Σ_j(gy_j·g_j·x_j)/(n·rms³)
      let dot = 0;
      for (let i = 0; i < n; i++) {
        const d = gy[base + i];
        const xi = x[base + i];
        gradG[i] += d * xi * inv;
        dot += d * g[i] * xi;
      }
      const k = (dot * inv * inv * inv) / n;
      for (let i = 0; i < n; i++) gradIn[base + i] = gy[base + i] * g[i] * inv - x[base + i] * k;
    }
    return { gradInput: new Tensor(gradIn, cache.input.shape), gradWeights: Float32Array.from(gradG) };
  },
};

/**
 * LayerNorm: each row of `input_height` values becomes y = (x − mean)/sqrt(var + eps)·gamma + beta, with the
 * biased variance (torch.nn.LayerNorm). Parameters: gamma [input_height] then beta [input_height] (init 1 and 0).
 * eps = `epsilon`, default 1e-5 (the original's). Rows and activation as RMSNorm.
 */
export const layerNormKind: LayerKind = {
  name: 'LayerNorm',
  aliases: ['LAYER_NORM'],

  configure(layer, path) {
    configureNorm(layer, path);
  },

  parameterCount: (layer) => 2 * (layer.config.inputHeight ?? 0),

  initParameters(layer, params) {
    const n = layer.config.inputHeight!;
    params.fill(1, 0, n);
    params.fill(0, n, 2 * n);
  },

  forward(layer, input, weights) {
    const n = layer.config.inputHeight!;
    const rows = rowsOf(layer, input, n);
    const eps = layer.config.epsilon ?? 1e-5;
    const w = weights!;
    const x = input.data;
    const out = new Float32Array(x.length);
    const invScale = new Float64Array(rows);
    const means = new Float64Array(rows);
    for (let r = 0, base = 0; r < rows; r++, base += n) {
      // Two passes: the original's E[x²] − mean² loses digits when |mean| ≫ std.
      let sum = 0;
      for (let i = 0; i < n; i++) sum += x[base + i];
      const mean = sum / n;
      let sq = 0;
      for (let i = 0; i < n; i++) {
        const c = x[base + i] - mean;
        sq += c * c;
      }
      const inv = 1 / Math.sqrt(sq / n + eps);
      means[r] = mean;
      invScale[r] = inv;
      for (let i = 0; i < n; i++) out[base + i] = (x[base + i] - mean) * inv * w[i] + w[n + i];
    }
    const stats: NormStats = { rows, invScale, mean: means };
    return { output: new Tensor(out, input.shape), cache: { input, extra: stats } };
  },

  backward(layer, gradOutput, cache, weights) {
    const n = layer.config.inputHeight!;
    const { rows, invScale, mean } = cache.extra as NormStats;
    const w = weights!;
    const x = cache.input.data;
    const gy = gradOutput.data;
    const gradIn = new Float32Array(x.length);
    const gradW = new Float64Array(2 * n);
    for (let r = 0, base = 0; r < rows; r++, base += n) {
      const inv = invScale[r];
      const mu = mean![r];
      // dx = inv·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)), ĝ = gy·gamma.
      let sumG = 0;
      let sumGX = 0;
      for (let i = 0; i < n; i++) {
        const d = gy[base + i];
        const xh = (x[base + i] - mu) * inv;
        gradW[i] += d * xh;
        gradW[n + i] += d;
        const gh = d * w[i];
        sumG += gh;
        sumGX += gh * xh;
      }
      const mG = sumG / n;
      const mGX = sumGX / n;
      for (let i = 0; i < n; i++) {
        const xh = (x[base + i] - mu) * inv;
        gradIn[base + i] = inv * (gy[base + i] * w[i] - mG - xh * mGX);
      }
    }
    return { gradInput: new Tensor(gradIn, cache.input.shape), gradWeights: Float32Array.from(gradW) };
  },
};

/** input_height is the normalized size; the original reads output_height there, so a file may carry only that. */
function configureNorm(layer: Layer, path: string): void {
  const c = layer.config;
  if (c.inputHeight === undefined && c.outputHeight !== undefined) c.inputHeight = c.outputHeight;
  requirePositive(c.inputHeight, `${path}.input_height`);
  if (c.outputHeight !== undefined && c.outputHeight !== 0 && c.outputHeight !== c.inputHeight) {
    throw new SpecError(`${path}.output_height`, `nothing or input_height (${c.inputHeight}): a norm keeps its size`, c.outputHeight);
  }
  if (c.epsilon !== undefined && !(c.epsilon > 0)) throw new SpecError(`${path}.epsilon`, 'a positive number', c.epsilon);
}

/** Number of rows of `n` values; every sample must hold a whole number of rows. */
function rowsOf(layer: Layer, input: Tensor, n: number): number {
  if (input.size % n !== 0 || input.rowSize % n !== 0) {
    throw new ShapeError(
      `${layer.kind.name} at ${coordText(layer)}: expected a multiple of ${n} values per sample (rows of input_height), got input of shape [${input.shape.join(', ')}]`,
    );
  }
  return input.size / n;
}

registerLayerKind(rmsNormKind);
registerLayerKind(layerNormKind);
