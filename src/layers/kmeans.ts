import { ShapeError, SpecError } from '../core/errors.js';
import { Tensor } from '../core/tensor.js';
import { activateInto, activationBackwardInto, Activation } from './activations.js';
import { requirePositive } from './dense.js';
import { coordText, type Layer, type LayerKind } from './layer.js';
import { registerLayerKind } from './registry.js';

/** What the KMeans forward keeps: the soft assignments per row, in doubles. */
interface KMeansCache {
  rows: number;
  assign: Float64Array;
}

/**
 * KMeans: differentiable clustering of each row x of `input_height` values against trainable centers
 * c [num_clusters][input_height] (row-major). Soft assignment a = softmax_k(−‖x − c_k‖² / (2T²)),
 * T = `kmeans_temperature` (0 or unset means 1). `output_mode` "probabilities" (default) outputs a
 * [.., num_clusters]; "features" outputs the reconstruction Σ_k a_k·c_k [.., input_height]; then the
 * activation. The original clusters the whole input as one vector; Loom-TS clusters every row, so
 * [B, H] gives [B, K] and [B, S, H] gives [B, S, K]. Init U(−0.1, 0.1) as the original.
 */
export const kmeansKind: LayerKind = {
  name: 'KMeans',
  aliases: ['K_MEANS'],

  configure(layer, path) {
    const c = layer.config;
    requirePositive(c.inputHeight, `${path}.input_height`);
    requirePositive(c.numClusters, `${path}.num_clusters`);
    if (c.kmeansTemperature !== undefined && c.kmeansTemperature < 0) {
      throw new SpecError(`${path}.kmeans_temperature`, 'a non-negative number (0 means 1)', c.kmeansTemperature);
    }
    const mode = c.outputMode?.toLowerCase();
    if (mode !== undefined && mode !== '' && mode !== 'probabilities' && mode !== 'features') {
      throw new SpecError(`${path}.output_mode`, '"probabilities" or "features"', c.outputMode);
    }
  },

  parameterCount: (layer) => (layer.config.numClusters ?? 0) * (layer.config.inputHeight ?? 0),

  initParameters(_layer, params, rng) {
    for (let i = 0; i < params.length; i++) params[i] = (rng.uniform() * 2 - 1) * 0.1;
  },

  forward(layer, input, weights) {
    const dim = layer.config.inputHeight!;
    const k = layer.config.numClusters!;
    const features = isFeatures(layer);
    const outDim = features ? dim : k;
    const { rows, shape } = kmeansShape(layer, input, dim, outDim);
    const x = input.data;
    const c = weights!;
    const scale = 1 / (2 * temperatureSq(layer));
    const assign = new Float64Array(rows * k);
    const pre = new Float32Array(rows * outDim);
    const acc = features ? new Float64Array(dim) : null;
    for (let r = 0; r < rows; r++) {
      const xb = r * dim;
      const ab = r * k;
      let max = -Infinity;
      for (let j = 0; j < k; j++) {
        const cb = j * dim;
        let d2 = 0;
        for (let d = 0; d < dim; d++) {
          const diff = x[xb + d] - c[cb + d];
          d2 += diff * diff;
        }
        const logit = -d2 * scale;
        assign[ab + j] = logit;
        if (logit > max) max = logit;
      }
      let sum = 0;
      for (let j = 0; j < k; j++) {
        const e = Math.exp(assign[ab + j] - max);
        assign[ab + j] = e;
        sum += e;
      }
      for (let j = 0; j < k; j++) assign[ab + j] /= sum;
      if (acc) {
        acc.fill(0);
        for (let j = 0; j < k; j++) {
          const a = assign[ab + j];
          const cb = j * dim;
          for (let d = 0; d < dim; d++) acc[d] += a * c[cb + d];
        }
        for (let d = 0; d < dim; d++) pre[r * dim + d] = acc[d];
      } else {
        for (let j = 0; j < k; j++) pre[ab + j] = assign[ab + j];
      }
    }
    const extra: KMeansCache = { rows, assign };
    if (layer.activation === Activation.Linear) return { output: new Tensor(pre, shape), cache: { input, extra } };
    const out = new Float32Array(pre.length);
    activateInto(pre, out, layer.activation);
    return { output: new Tensor(out, shape), cache: { input, pre: new Tensor(pre, shape), extra } };
  },

  backward(layer, gradOutput, cache, weights) {
    const dim = layer.config.inputHeight!;
    const k = layer.config.numClusters!;
    const features = isFeatures(layer);
    const { rows, assign } = cache.extra as KMeansCache;
    const x = cache.input.data;
    const c = weights!;
    let gy = gradOutput.data;
    if (cache.pre) {
      const gradPre = new Float32Array(gy.length);
      activationBackwardInto(gy, cache.pre.data, gradPre, layer.activation);
      gy = gradPre;
    }
    const invTSq = 1 / temperatureSq(layer);
    const gradC = new Float64Array(k * dim);
    const gradIn = new Float32Array(x.length);
    const gA = new Float64Array(k);
    const gX = new Float64Array(dim);
    for (let r = 0; r < rows; r++) {
      const xb = r * dim;
      const ab = r * k;
      // Gradient with respect to the assignments (and, for "features", the direct path to the centers).
      if (features) {
        const gb = r * dim;
        for (let j = 0; j < k; j++) {
          const a = assign[ab + j];
          const cb = j * dim;
          let s = 0;
          for (let d = 0; d < dim; d++) {
            const g = gy[gb + d];
            s += g * c[cb + d];
            gradC[cb + d] += a * g;
          }
          gA[j] = s;
        }
      } else {
        for (let j = 0; j < k; j++) gA[j] = gy[ab + j];
      }
      // Softmax: gz_j = a_j·(gA_j − Σ a·gA); logit_j = −‖x − c_j‖²/(2T²).
      let dot = 0;
      for (let j = 0; j < k; j++) dot += assign[ab + j] * gA[j];
      gX.fill(0);
      for (let j = 0; j < k; j++) {
        const w = assign[ab + j] * (gA[j] - dot) * invTSq;
        if (w === 0) continue;
        const cb = j * dim;
        for (let d = 0; d < dim; d++) {
          const t = w * (x[xb + d] - c[cb + d]);
          gradC[cb + d] += t;
          gX[d] -= t;
        }
      }
      for (let d = 0; d < dim; d++) gradIn[xb + d] = gX[d];
    }
    return { gradInput: new Tensor(gradIn, cache.input.shape), gradWeights: Float32Array.from(gradC) };
  },
};

function isFeatures(layer: Layer): boolean {
  return layer.config.outputMode?.toLowerCase() === 'features';
}

function temperatureSq(layer: Layer): number {
  const t = layer.config.kmeansTemperature || 1;
  return t * t;
}

/** [.., H] → [.., outDim]; a sample flattened to [B, m·H] → [B, m·outDim]. */
function kmeansShape(layer: Layer, input: Tensor, dim: number, outDim: number): { rows: number; shape: number[] } {
  const s = input.shape;
  if (s.length >= 1 && s[s.length - 1] === dim) return { rows: input.size / dim, shape: [...s.slice(0, -1), outDim] };
  if (s.length >= 2 && input.rowSize % dim === 0) {
    const perSample = input.rowSize / dim;
    return { rows: input.batch * perSample, shape: [input.batch, perSample * outDim] };
  }
  throw new ShapeError(
    `KMeans at ${coordText(layer)}: expected rows of input_height = ${dim} values, got input of shape [${s.join(', ')}]`,
  );
}

registerLayerKind(kmeansKind);
