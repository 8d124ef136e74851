import { ShapeError } from '../core/errors.js';
import { Tensor } from '../core/tensor.js';
import { coordText, type LayerKind } from './layer.js';
import { registerLayerKind } from './registry.js';

/**
 * Residual: output = input + skip. The engine supplies the skip: the output of the remote-link
 * target when the layer has one, otherwise the input of the layer just before it (so
 * [f, Residual] computes x + f(x)). With no skip available it passes its input through.
 */
export const residualKind: LayerKind = {
  name: 'Residual',
  aliases: [],
  takesSkip: true,

  configure() {},
  parameterCount: () => 0,
  initParameters() {},

  forward(layer, input, _weights, skip) {
    if (!skip) return { output: input, cache: { input } };
    if (skip.size !== input.size) {
      throw new ShapeError(
        `Residual at ${coordText(layer)}: input has shape [${input.shape.join(', ')}] but the skip has [${skip.shape.join(', ')}]`,
      );
    }
    const out = new Float32Array(input.size);
    const a = input.data;
    const b = skip.data;
    for (let i = 0; i < out.length; i++) out[i] = a[i] + b[i];
    return { output: new Tensor(out, input.shape), cache: { input, skip } };
  },

  forwardIncremental(layer, input, ctx) {
    return residualKind.forward(layer, input, null, ctx.skip).output;
  },

  backward(_layer, gradOutput, cache) {
    const gradInput = new Tensor(gradOutput.data, cache.input.shape);
    if (!cache.skip) return { gradInput, gradWeights: null };
    return { gradInput, gradWeights: null, gradSkip: new Tensor(gradOutput.data, cache.skip.shape) };
  },
};

registerLayerKind(residualKind);
