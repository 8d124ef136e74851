import { Tensor } from '../core/tensor.js';
import { gemmAB, gemmABt } from '../kernels/backend.js';
import { batchToRowMajor, col2im, im2col, imageSize, patchSize, positions, rowMajorToBatch, transposeBatch, type ConvGeometry } from '../kernels/im2col.js';
import { activateInto, activationBackwardInto } from './activations.js';
import { channelSums, checkInput, configureConv, geometry, initUniform, spatialSizes, type ConvAxis } from './conv.js';
import type { Layer, LayerKind } from './layer.js';
import { registerLayerKind } from './registry.js';

/**
 * A transposed convolution is the adjoint of the convolution A that maps its output space (filters
 * channels) back to its input space (input_channels channels) with the same kernel, stride and
 * padding: forward = col2im_A(x · W), input gradient = conv_A(gradient). The parameters are laid
 * out as the original's conv_transposed*.go reads them, W[f][c][k...] (torch.nn.ConvTranspose's
 * weight is [c][f][k...]: the same values with the first two axes swapped).
 */
function makeTransposedKind(name: string, aliases: readonly string[], axes: readonly ConvAxis[]): LayerKind {
  // The geometry of A: from the layer's output (filters channels) to the layer's input.
  const adjointOf = (layer: Layer): ConvGeometry =>
    geometry(layer.config.filters ?? 0, spatialSizes(layer.config, axes, 'output'), spatialSizes(layer.config, axes, 'input'), layer.config);

  return {
    name,
    aliases,

    configure(layer, path) {
      configureConv(layer, path, axes, true);
    },

    parameterCount(layer) {
      const { filters = 0, inputChannels = 0, kernelSize = 0, useBias } = layer.config;
      return filters * inputChannels * kernelSize ** axes.length + (useBias ? filters : 0);
    },

    initParameters(layer, params, rng) {
      // PyTorch's ConvTranspose init: its fan-in is computed from weight dim 1 (out channels) × kernel.
      const { filters = 1, kernelSize = 1 } = layer.config;
      initUniform(params, filters * kernelSize ** axes.length, rng);
    },

    forward(layer, input, weights) {
      const a = adjointOf(layer);
      const C = layer.config.inputChannels!;
      const F = a.channels;
      const kk = patchSize(a) / F;
      const Pin = positions(a);
      const batch = checkInput(layer, input, C * Pin, [C, ...spatialSizes(layer.config, axes, 'input')]);
      const w = weights!;
      // colsT[f·kk + t][b·Pin + i] = Σ_c W[f][c][t] · x[b][c][i]: W as [F·kk][C] against x as [B·Pin][C].
      const xT = transposeBatch(input.data, batch, C, Pin);
      const wT = transposeBatch(w.subarray(0, F * C * kk), F, C, kk);
      const colsT = new Float32Array(batch * Pin * F * kk);
      gemmABt(wT, xT, colsT, F * kk, batch * Pin, C);
      const pre = new Float32Array(batch * imageSize(a));
      col2im(colsT, a, batch, pre, layer.config.useBias ? w.subarray(F * C * kk, F * C * kk + F) : null);
      const out = new Float32Array(pre.length);
      activateInto(pre, out, layer.activation);
      const shape = [batch, F, ...spatialSizes(layer.config, axes, 'output')];
      return { output: new Tensor(out, shape), cache: { input, pre: new Tensor(pre, shape) } };
    },

    backward(layer, gradOutput, cache, weights) {
      const a = adjointOf(layer);
      const C = layer.config.inputChannels!;
      const F = a.channels;
      const KA = patchSize(a);
      const kk = KA / F;
      const Pin = positions(a);
      const Pout = imageSize(a) / F;
      const batch = cache.pre!.shape[0];
      const w = weights!;
      const gradPre = new Float32Array(batch * F * Pout);
      activationBackwardInto(gradOutput.data, cache.pre!.data, gradPre, layer.activation);

      // Input gradient = conv_A(gradPre): as [C][B·Pin] = WA[C][KA] · columns[KA][B·Pin], WA[c][f·kk + t] = W[f][c][t].
      const colsT = new Float32Array(KA * batch * Pin);
      im2col(gradPre, a, batch, colsT);
      const wA = batchToRowMajor(w.subarray(0, F * C * kk), F, C, kk);
      const rows = new Float32Array(C * batch * Pin);
      gemmAB(wA, colsT, rows, C, batch * Pin, KA);
      const gradIn = new Float32Array(batch * C * Pin);
      rowMajorToBatch(rows, batch, C, Pin, gradIn);

      // dWA[c][f·kk + t] = Σ_{b,i} x[b][c][i] · columns[f·kk + t][b·Pin + i], then reordered to W[f][c][t].
      const xRows = batchToRowMajor(cache.input.data, batch, C, Pin);
      const dWA = new Float32Array(C * KA);
      gemmABt(xRows, colsT, dWA, C, KA, batch * Pin);
      const gradWeights = new Float32Array(F * C * kk + (layer.config.useBias ? F : 0));
      batchToRowMajor(dWA, C, F, kk, gradWeights.subarray(0, F * C * kk));
      if (layer.config.useBias) channelSums(gradPre, batch, F, Pout, gradWeights.subarray(F * C * kk));
      return { gradInput: new Tensor(gradIn, cache.input.shape), gradWeights };
    },
  };
}

/**
 * ConvTransposed1D over [B, input_channels, input_width] (the original reads the length from
 * input_width; input_height alone also works). Parameters W [filters][input_channels][k], then b
 * [filters] when `use_bias`. Output [B, filters, (W − 1)·s − 2p + k + output_padding].
 */
export const convTransposed1DKind: LayerKind = makeTransposedKind('ConvTransposed1D', ['ConvTranspose1D'], ['width']);

/** ConvTransposed2D, NCHW; W [filters][input_channels][k][k], then b [filters] when `use_bias`. */
export const convTransposed2DKind: LayerKind = makeTransposedKind('ConvTransposed2D', ['ConvTranspose2D'], ['height', 'width']);

/** ConvTransposed3D, NCDHW; W [filters][input_channels][k][k][k], then b [filters] when `use_bias`. */
export const convTransposed3DKind: LayerKind = makeTransposedKind('ConvTransposed3D', ['ConvTranspose3D'], ['depth', 'height', 'width']);

registerLayerKind(convTransposed1DKind);
registerLayerKind(convTransposed2DKind);
registerLayerKind(convTransposed3DKind);
