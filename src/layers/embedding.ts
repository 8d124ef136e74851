import { ShapeError } from '../core/errors.js';
import { Tensor } from '../core/tensor.js';
import { activateInto, activationBackwardInto, Activation } from './activations.js';
import { requirePositive } from './dense.js';
import { coordText, type Layer, type LayerKind } from './layer.js';
import { registerLayerKind } from './registry.js';

/**
 * Embedding: a table of `vocab_size` rows of `embedding_dim` values (row-major, one row per token;
 * torch.nn.Embedding's weight). The input holds token ids as float32 values, shape [B] or [B, S]
 * (any shape: the output appends embedding_dim), y = act(table[id]). Ids must be integers in
 * [0, vocab_size): the original silently leaves zeros for others, Loom-TS names the offending id.
 * Init N(0, 1), as torch.nn.Embedding.
 */
export const embeddingKind: LayerKind = {
  name: 'Embedding',
  aliases: [],

  configure(layer, path) {
    requirePositive(layer.config.vocabSize, `${path}.vocab_size`);
    requirePositive(layer.config.embeddingDim, `${path}.embedding_dim`);
  },

  parameterCount: (layer) => (layer.config.vocabSize ?? 0) * (layer.config.embeddingDim ?? 0),

  initParameters(_layer, params, rng) {
    for (let i = 0; i < params.length; i++) params[i] = rng.normal();
  },

  forward(layer, input, weights) {
    const dim = layer.config.embeddingDim!;
    const table = weights!;
    const pre = lookup(layer, input, (id, out, at) => out.set(table.subarray(id * dim, (id + 1) * dim), at));
    const shape = input.shape.length === 0 ? [dim] : [...input.shape, dim];
    if (layer.activation === Activation.Linear) return { output: new Tensor(pre, shape), cache: { input } };
    const out = new Float32Array(pre.length);
    activateInto(pre, out, layer.activation);
    return { output: new Tensor(out, shape), cache: { input, pre: new Tensor(pre, shape) } };
  },

  forwardIncremental(layer, input, ctx) {
    const vocab = layer.config.vocabSize!;
    const dim = layer.config.embeddingDim!;
    const pre = lookup(layer, input, (id, out, at) => ctx.matrixRow(0, vocab, dim, id, out, at));
    const shape = input.shape.length === 0 ? [dim] : [...input.shape, dim];
    if (layer.activation === Activation.Linear) return new Tensor(pre, shape);
    const out = new Float32Array(pre.length);
    activateInto(pre, out, layer.activation);
    return new Tensor(out, shape);
  },

  matrices(layer) {
    return [{ offset: 0, rows: layer.config.vocabSize ?? 0, cols: layer.config.embeddingDim ?? 0 }];
  },

  backward(layer, gradOutput, cache) {
    const vocab = layer.config.vocabSize!;
    const dim = layer.config.embeddingDim!;
    const ids = cache.input.data;
    let gy = gradOutput.data;
    if (cache.pre) {
      const gradPre = new Float32Array(gy.length);
      activationBackwardInto(gy, cache.pre.data, gradPre, layer.activation);
      gy = gradPre;
    }
    // Counting sort of positions by id, so each table row sums its positions in ascending order in one
    // double accumulator without a vocab × dim scratch table.
    const start = new Int32Array(vocab + 1);
    for (let p = 0; p < ids.length; p++) start[ids[p] + 1]++;
    for (let v = 0; v < vocab; v++) start[v + 1] += start[v];
    const fill = start.slice(0, vocab);
    const order = new Int32Array(ids.length);
    for (let p = 0; p < ids.length; p++) order[fill[ids[p]]++] = p;

    const gradTable = new Float32Array(vocab * dim);
    const acc = new Float64Array(dim);
    for (let v = 0; v < vocab; v++) {
      const from = start[v];
      const to = start[v + 1];
      if (from === to) continue;
      acc.fill(0);
      for (let k = from; k < to; k++) {
        const base = order[k] * dim;
        for (let j = 0; j < dim; j++) acc[j] += gy[base + j];
      }
      const row = v * dim;
      for (let j = 0; j < dim; j++) gradTable[row + j] = acc[j];
    }
    // Token ids are not differentiable.
    return { gradInput: Tensor.zeros(cache.input.shape), gradWeights: gradTable };
  },
};

/** The rows of the table for every id of `input`, checked to lie in the vocabulary. */
function lookup(layer: Layer, input: Tensor, row: (id: number, out: Float32Array, at: number) => void): Float32Array {
  const vocab = layer.config.vocabSize!;
  const dim = layer.config.embeddingDim!;
  const ids = input.data;
  const pre = new Float32Array(ids.length * dim);
  for (let p = 0; p < ids.length; p++) {
    const id = ids[p];
    if (!(Number.isInteger(id) && id >= 0 && id < vocab)) {
      const what = Number.isInteger(id) ? `is outside the vocabulary of ${vocab}` : `is not an integer in [0, ${vocab})`;
      throw new ShapeError(`Embedding at ${coordText(layer)}: token id ${id} at position ${p} ${what}`);
    }
    row(id, pre, p * dim);
  }
  return pre;
}

registerLayerKind(embeddingKind);
