import { overwrittenFloat32, reusedOrOverwritten } from '../core/alloc.js';
import { ShapeError, SpecError } from '../core/errors.js';
import type { Rng } from '../core/rng.js';
import { Tensor } from '../core/tensor.js';
import type { LayerConfig } from '../grid/fields.js';
import { convBackward, convForward, gemmAB, gemmABt, gemmAtB } from '../kernels/backend.js';
import { batchToRowMajor, col2im, im2col, imageSize, patchSize, positions, rowMajorToBatch, type ConvGeometry } from '../kernels/im2col.js';
import { Activation, activateInto, activationBackwardInto } from './activations.js';
import { requirePositive } from './dense.js';
import { coordText, type Layer, type LayerKind } from './layer.js';
import { registerLayerKind } from './registry.js';

/** A spatial axis of a conv layer, named after its config fields (input_depth, input_height, input_width). */
export type ConvAxis = 'depth' | 'height' | 'width';

interface AxisFields {
  input: 'inputDepth' | 'inputHeight' | 'inputWidth';
  output: 'outputDepth' | 'outputHeight' | 'outputWidth';
}

const AXIS_FIELDS: Record<ConvAxis, AxisFields> = {
  depth: { input: 'inputDepth', output: 'outputDepth' },
  height: { input: 'inputHeight', output: 'outputHeight' },
  width: { input: 'inputWidth', output: 'outputWidth' },
};

/**
 * Checks a convolution's config and fills what the original fills or leaves implicit: stride 1 when
 * 0/unset, input (and output) width/depth = height when unset, and the output sizes, which must
 * match the conv formula when given. `axes` are the spatial axes, outermost first.
 */
export function configureConv(layer: Layer, path: string, axes: readonly ConvAxis[], transposed: boolean): void {
  const c = layer.config;
  requirePositive(c.inputChannels, `${path}.input_channels`);
  requirePositive(c.filters, `${path}.filters`);
  requirePositive(c.kernelSize, `${path}.kernel_size`);
  if (!c.stride) c.stride = 1;
  const k = c.kernelSize!;
  const s = c.stride;
  const p = c.padding ?? 0;
  const op = c.outputPadding ?? 0;
  if (!transposed && op !== 0) throw SpecError.at(`${path}.output_padding`, `only ConvTransposed layers take an output padding (${layer.kind.name} has none)`);
  if (op !== 0 && op >= s) throw new SpecError(`${path}.output_padding`, `less than stride ${s}`, op);

  // The original's defaults: width and depth follow the height when unset (CNN2/CNN3; ConvTransposed alike).
  for (const axis of axes) {
    if (axis === 'height') continue;
    const f = AXIS_FIELDS[axis];
    if (!c[f.input] && c.inputHeight) c[f.input] = c.inputHeight;
    if (!c[f.output] && c.outputHeight) c[f.output] = c.outputHeight;
  }
  if (!axes.includes('height')) {
    // ConvTransposed1D: the original reads its length from input_width; input_height may only repeat it.
    for (const [h, w] of [['inputHeight', 'inputWidth'], ['outputHeight', 'outputWidth']] as const) {
      if (c[h] && c[w] !== c[h]) {
        throw SpecError.at(`${path}.${jsonName(h)}`, `${layer.kind.name} takes its length from ${jsonName(w)} (${c[w]}); ${jsonName(h)} ${c[h]} disagrees`);
      }
    }
  }

  for (const axis of axes) {
    const f = AXIS_FIELDS[axis];
    requirePositive(c[f.input], `${path}.${jsonName(f.input)}`);
    const n = c[f.input]!;
    let out: number;
    let formula: string;
    if (transposed) {
      out = (n - 1) * s - 2 * p + k + op;
      if (out <= 0) {
        throw new SpecError(`${path}.padding`, `at most ${Math.floor(((n - 1) * s + k + op - 1) / 2)} so that the ${axis} of the output is not empty`, p);
      }
      formula = `(input ${n} − 1)·stride ${s} − 2·padding ${p} + kernel ${k} + output_padding ${op}`;
    } else {
      if (n + 2 * p < k) throw new SpecError(`${path}.kernel_size`, `at most ${jsonName(f.input)} + 2·padding = ${n + 2 * p} so that the output is not empty`, k);
      out = Math.floor((n + 2 * p - k) / s) + 1;
      formula = `(input ${n} + 2·padding ${p} − kernel ${k}) / stride ${s} + 1, rounded down`;
    }
    const given = c[f.output];
    if (given && given !== out) throw new SpecError(`${path}.${jsonName(f.output)}`, `${out} = ${formula}`, given);
    c[f.output] = out;
  }
}

function jsonName(key: keyof LayerConfig): string {
  return key.replace(/[A-Z]/g, (m) => `_${m.toLowerCase()}`);
}

/** Spatial sizes of the configured input (or output) along `axes`. */
export function spatialSizes(config: LayerConfig, axes: readonly ConvAxis[], which: 'input' | 'output'): number[] {
  return axes.map((a) => config[AXIS_FIELDS[a][which]] ?? 0);
}

/**
 * The im2col geometry of the convolution from `inSizes` to `outSizes` (one per axis, outermost
 * first) with `channels` input channels; a 1D or 2D conv occupies the innermost axes.
 */
export function geometry(channels: number, inSizes: readonly number[], outSizes: readonly number[], config: LayerConfig): ConvGeometry {
  const pad = (v: readonly number[]): number[] => [...Array(3 - v.length).fill(1), ...v];
  const [inD, inH, inW] = pad(inSizes);
  const [outD, outH, outW] = pad(outSizes);
  const rank = inSizes.length;
  const k = config.kernelSize ?? 1;
  const p = config.padding ?? 0;
  return {
    channels, inD, inH, inW, outD, outH, outW,
    kD: rank >= 3 ? k : 1, kH: rank >= 2 ? k : 1, kW: k,
    stride: config.stride || 1,
    padD: rank >= 3 ? p : 0, padH: rank >= 2 ? p : 0, padW: p,
  };
}

/** Throws a ShapeError naming the layer unless `input` holds `batch × perSample` values. */
export function checkInput(layer: Layer, input: Tensor, perSample: number, dims: readonly number[]): number {
  const batch = input.batch;
  if (input.size !== batch * perSample) {
    throw new ShapeError(
      `${layer.kind.name} at ${coordText(layer)}: expected ${perSample} values per sample (${dims.join('×')}), got input of shape [${input.shape.join(', ')}]`,
    );
  }
  return batch;
}

/** out[c] = Σ_{b,i} data[b][c][i], summed in float64 in ascending b then i. */
export function channelSums(data: Float32Array, batch: number, channels: number, size: number, out: Float32Array): void {
  let first = 0;
  // Four channels at a time: one float64 chain is bound by the add latency, four independent chains are
  // not, and each still adds its own channel's values in the order above (the same bits).
  for (; first + 4 <= channels; first += 4) {
    let a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (let b = 0; b < batch; b++) {
      for (let i = (b * channels + first) * size, end = i + size; i < end; i++) {
        a0 += data[i];
        a1 += data[i + size];
        a2 += data[i + 2 * size];
        a3 += data[i + 3 * size];
      }
    }
    out[first] = a0;
    out[first + 1] = a1;
    out[first + 2] = a2;
    out[first + 3] = a3;
  }
  for (let c = first; c < channels; c++) {
    let acc = 0;
    for (let b = 0; b < batch; b++) {
      for (let i = (b * channels + c) * size, end = i + size; i < end; i++) acc += data[i];
    }
    out[c] = acc;
  }
}

/** dL/dpre from dL/dout through the layer's activation. */
function gradientBeforeActivation(layer: Layer, gradOutput: Tensor, pre: Tensor): Float32Array {
  const gradPre = overwrittenFloat32(pre.size);
  activationBackwardInto(gradOutput.data, pre.data, gradPre, layer.activation);
  return gradPre;
}

/** PyTorch's default conv init: U(−1/√fan_in, 1/√fan_in) for weights and bias. */
export function initUniform(params: Float32Array, fanIn: number, rng: Rng): void {
  const bound = 1 / Math.sqrt(fanIn);
  for (let i = 0; i < params.length; i++) params[i] = (rng.uniform() * 2 - 1) * bound;
}

function makeConvKind(name: string, aliases: readonly string[], axes: readonly ConvAxis[]): LayerKind {
  const geometryOf = (layer: Layer): ConvGeometry =>
    geometry(layer.config.inputChannels ?? 0, spatialSizes(layer.config, axes, 'input'), spatialSizes(layer.config, axes, 'output'), layer.config);

  return {
    name,
    aliases,

    configure(layer, path) {
      configureConv(layer, path, axes, false);
    },

    parameterCount(layer) {
      const { filters = 0, inputChannels = 0, kernelSize = 0, useBias } = layer.config;
      return filters * inputChannels * kernelSize ** axes.length + (useBias ? filters : 0);
    },

    initParameters(layer, params, rng) {
      const { inputChannels = 1, kernelSize = 1 } = layer.config;
      initUniform(params, inputChannels * kernelSize ** axes.length, rng);
    },

    forward(layer, input, weights) {
      const g = geometryOf(layer);
      const F = layer.config.filters!;
      const batch = checkInput(layer, input, imageSize(g), [g.channels, ...spatialSizes(layer.config, axes, 'input')]);
      const P = positions(g);
      const K = patchSize(g);
      const w = weights!;
      const bias = layer.config.useBias ? w.subarray(F * K, F * K + F) : null;
      const pre = overwrittenFloat32(batch * F * P);
      // A linear layer's output is its pre-activation: one buffer (backward reads only its length).
      const out = layer.activation === Activation.Linear ? pre : overwrittenFloat32(pre.length);
      // ReLU is applied in linear memory too, while each run of samples is there.
      const fusedRelu = layer.activation === Activation.ReLU ? out : null;
      // The WebAssembly kernels build each sample's columns and multiply in linear memory (same bits).
      const onKernels = convForward(input.data, g, batch, F, w, bias, pre, fusedRelu);
      if (!onKernels) {
        // pre as [F][B·P] = W[F][K] · columns[K][B·P] in one GEMM, then back to NCHW with the bias added.
        const colT = new Float32Array(K * batch * P);
        im2col(input.data, g, batch, colT);
        const rows = new Float32Array(F * batch * P);
        gemmAB(w, colT, rows, F, batch * P, K);
        rowMajorToBatch(rows, batch, F, P, pre, bias);
      }
      if (!onKernels || !fusedRelu) activateInto(pre, out, layer.activation);
      const shape = [batch, F, ...spatialSizes(layer.config, axes, 'output')];
      return { output: new Tensor(out, shape), cache: { input, pre: new Tensor(pre, shape) } };
    },

    backward(layer, gradOutput, cache, weights, inputGradient = true, gradWeightsInto) {
      const g = geometryOf(layer);
      const F = layer.config.filters!;
      const batch = cache.pre!.shape[0];
      const P = positions(g);
      const K = patchSize(g);
      const w = weights!;
      // Both paths below write every value (dW and the bias sums).
      const gradWeights = reusedOrOverwritten(gradWeightsInto, F * K + (layer.config.useBias ? F : 0));
      const biasGrad = layer.config.useBias ? gradWeights.subarray(F * K) : null;
      // Zeros when not wanted (backward's contract); otherwise every value is written below.
      const gradIn = inputGradient ? overwrittenFloat32(cache.input.size) : new Float32Array(cache.input.size);
      // On the WebAssembly kernels a ReLU's mask and the bias sums are applied in linear memory, next to dW
      // and the input gradient straight from the images (float32).
      const relu = layer.activation === Activation.ReLU;
      // For a ReLU the kernels take the output gradient and apply the mask themselves.
      const staged = relu ? gradOutput.data : gradientBeforeActivation(layer, gradOutput, cache.pre!);
      if (convBackward(cache.input.data, g, batch, F, w, staged, gradWeights.subarray(0, F * K), inputGradient ? gradIn : null, { reluPre: relu ? cache.pre!.data : null, biasGrad })) {
        return { gradInput: new Tensor(gradIn, cache.input.shape), gradWeights };
      }
      const gradPre = relu ? gradientBeforeActivation(layer, gradOutput, cache.pre!) : staged;
      if (biasGrad) channelSums(gradPre, batch, F, P, biasGrad);
      // dW[F][K] = gradPre as [F][B·P] · (columns as [K][B·P])ᵀ: one GEMM summing over batch and positions.
      const colT = new Float32Array(K * batch * P);
      im2col(cache.input.data, g, batch, colT);
      const gRows = batchToRowMajor(gradPre, batch, F, P);
      gemmABt(gRows, colT, gradWeights.subarray(0, F * K), F, K, batch * P);
      if (inputGradient) {
        // Column gradients (reusing colT's buffer) as [K][B·P] = Wᵀ · gradPre as [F][B·P], scattered onto the input by col2im.
        gemmAtB(w, gRows, colT, K, batch * P, F);
        col2im(colT, g, batch, gradIn);
      }
      return { gradInput: new Tensor(gradIn, cache.input.shape), gradWeights };
    },

    sampleWidths(layer) {
      const g = geometryOf(layer);
      return { input: imageSize(g), output: layer.config.filters! * positions(g) };
    },
  };
}

/**
 * CNN1: 1D convolution over [B, input_channels, input_height] (or flattened). Parameters: W
 * [filters][input_channels][k] (the original's and torch.nn.Conv1d's layout), then b [filters] when
 * `use_bias`. Output [B, filters, output_height], output_height = (H + 2p − k)/s + 1.
 */
export const cnn1Kind: LayerKind = makeConvKind('CNN1', ['Conv1D'], ['height']);

/** CNN2: 2D convolution, NCHW; W [filters][input_channels][k][k] (as Conv2d), then b [filters] when `use_bias`. */
export const cnn2Kind: LayerKind = makeConvKind('CNN2', ['Conv2D'], ['height', 'width']);

/** CNN3: 3D convolution, NCDHW; W [filters][input_channels][k][k][k] (as Conv3d), then b [filters] when `use_bias`. */
export const cnn3Kind: LayerKind = makeConvKind('CNN3', ['Conv3D'], ['depth', 'height', 'width']);

registerLayerKind(cnn1Kind);
registerLayerKind(cnn2Kind);
registerLayerKind(cnn3Kind);
