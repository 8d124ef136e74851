import { overwrittenFloat32, reusedOrOverwritten } from '../core/alloc.js';
import { ShapeError, SpecError } from '../core/errors.js';
import { Tensor } from '../core/tensor.js';
import { gemmAB, gemmABt, gemmAtB, sumRows } from '../kernels/backend.js';
import { PackedDense } from '../kernels/quantDense.js';
import { activateInto, activationBackwardInto } from './activations.js';
import { coordText, type Layer, type LayerKind } from './layer.js';
import { registerLayerKind } from './registry.js';

/**
 * Dense: y = act(x·Wᵀ + b). Parameters: W [out][in] row-major (the original's layout and
 * torch.nn.Linear's), then b [out] when `use_bias` is set (a Loom-TS extension; the original has no bias).
 */
export const denseKind: LayerKind = {
  name: 'Dense',
  aliases: ['LINEAR', 'FC'],

  configure(layer, path) {
    requirePositive(layer.config.inputHeight, `${path}.input_height`);
    requirePositive(layer.config.outputHeight, `${path}.output_height`);
  },

  parameterCount(layer) {
    const { inputHeight = 0, outputHeight = 0, useBias } = layer.config;
    return inputHeight * outputHeight + (useBias ? outputHeight : 0);
  },

  initParameters(layer, params, rng) {
    // PyTorch's nn.Linear default: U(-1/sqrt(in), 1/sqrt(in)) for weights and bias.
    const bound = 1 / Math.sqrt(layer.config.inputHeight ?? 1);
    for (let i = 0; i < params.length; i++) params[i] = (rng.uniform() * 2 - 1) * bound;
  },

  forward(layer, input, weights) {
    const { inputHeight: nIn = 0, outputHeight: nOut = 0 } = layer.config;
    // A sequence [B, S, in] maps each position (an LM head); anything else is [B, in] per sample.
    const sequence = isSequence(input, nIn);
    const batch = sequence ? input.size / nIn : batchOf(layer, input, nIn);
    const w = weights!;
    const bias = layer.config.useBias ? w.subarray(nIn * nOut, nIn * nOut + nOut) : null;
    const pre = overwrittenFloat32(batch * nOut);
    gemmABt(input.data, w, pre, batch, nOut, nIn, bias);
    const out = overwrittenFloat32(pre.length);
    activateInto(pre, out, layer.activation);
    const shape = sequence ? [input.shape[0], input.shape[1], nOut] : [batch, nOut];
    return { output: new Tensor(out, shape), cache: { input, pre: new Tensor(pre, [batch, nOut]) } };
  },

  forwardIncremental(layer, input, ctx) {
    const { inputHeight: nIn = 0, outputHeight: nOut = 0 } = layer.config;
    const sequence = isSequence(input, nIn);
    const rows = sequence ? input.size / nIn : batchOf(layer, input, nIn);
    const pre = new Float32Array(rows * nOut);
    ctx.linear(input.data, rows, 0, nOut, nIn, pre, layer.config.useBias ? nIn * nOut : undefined);
    const out = new Float32Array(pre.length);
    activateInto(pre, out, layer.activation);
    return new Tensor(out, sequence ? [input.shape[0], input.shape[1], nOut] : [rows, nOut]);
  },

  forwardPacked(layer, input, version) {
    const { inputHeight: nIn = 0, outputHeight: nOut = 0, useBias } = layer.config;
    const kernel = PackedDense.for(version, nOut, nIn, !!useBias);
    if (!kernel) return null;
    const sequence = isSequence(input, nIn);
    const batch = sequence ? input.size / nIn : batchOf(layer, input, nIn);
    const out = new Float32Array(batch * nOut);
    kernel.forward(input.data, batch, out);
    activateInto(out, out, layer.activation);
    return new Tensor(out, sequence ? [input.shape[0], input.shape[1], nOut] : [batch, nOut]);
  },

  matrices(layer) {
    return [{ offset: 0, rows: layer.config.outputHeight ?? 0, cols: layer.config.inputHeight ?? 0 }];
  },

  backward(layer, gradOutput, cache, weights, inputGradient = true, gradWeightsInto) {
    const { inputHeight: nIn = 0, outputHeight: nOut = 0, useBias } = layer.config;
    const batch = cache.pre!.shape[0];
    const gradPre = overwrittenFloat32(batch * nOut);
    activationBackwardInto(gradOutput.data, cache.pre!.data, gradPre, layer.activation);

    const gradWeights = reusedOrOverwritten(gradWeightsInto, nIn * nOut + (useBias ? nOut : 0));
    // dW = gPreᵀ·x and dx = gPre·W.
    gemmAtB(gradPre, cache.input.data, gradWeights.subarray(0, nIn * nOut), nOut, nIn, batch);
    if (useBias) sumRows(gradPre, batch, nOut, gradWeights.subarray(nIn * nOut));
    // Zeros when not wanted (backward's contract); otherwise the product writes every value.
    const gradIn = inputGradient ? overwrittenFloat32(batch * nIn) : new Float32Array(batch * nIn);
    if (inputGradient) gemmAB(gradPre, weights!.subarray(0, nIn * nOut), gradIn, batch, nIn, nOut);
    return { gradInput: new Tensor(gradIn, cache.input.shape), gradWeights };
  },

  sampleWidths(layer) {
    return { input: layer.config.inputHeight, output: layer.config.outputHeight };
  },
};

function isSequence(input: Tensor, features: number): boolean {
  return input.shape.length === 3 && input.shape[2] === features;
}

/** Rows of `input` for a layer expecting `features` values per sample; [B, ...] flattens to [B, features]. */
export function batchOf(layer: Layer, input: Tensor, features: number): number {
  const batch = input.batch;
  if (input.size !== batch * features) {
    throw new ShapeError(
      `${layer.kind.name} at ${coordText(layer)}: expected ${features} values per sample, got input of shape [${input.shape.join(', ')}]`,
    );
  }
  return batch;
}

export function requirePositive(v: number | undefined, path: string): void {
  if (v === undefined) throw SpecError.at(path, 'expected a positive integer (the field is missing)');
  if (!Number.isInteger(v) || v <= 0) throw new SpecError(path, 'a positive integer', v);
}

registerLayerKind(denseKind);
