import { DType, dtypeName } from '../core/dtype.js';
import { NumericError } from '../core/errors.js';
import { Tensor } from '../core/tensor.js';
import { allFinite } from '../kernels/backend.js';
import { requireFloatWeights } from './decode.js';
import type { PlanStep, VolumetricNetwork } from '../grid/network.js';
import { coordText, type Layer, type LayerCache } from '../layers/layer.js';

export interface ForwardOptions {
  /** Keep what backwardNetwork needs (inputs, pre-activations). */
  keepTrace?: boolean;
  /** Throw a NumericError naming the first layer whose output holds NaN or Inf. */
  checkFinite?: boolean;
  /** Called after each layer runs with its output (observers, telemetry). */
  onLayer?: LayerHook;
  /**
   * Quantized layers whose kind has a packed kernel (Dense: Int8, Int4, Int2, Ternary, Binary, FP4,
   * FP8) compute straight from their packed bytes, ignored with keepTrace. Faster; FP8 gives the same
   * bits, the integer types round each input row to int16 first (|Δx| ≤ max|x|/65534).
   */
  packedKernels?: boolean;
}

/** Per-layer callback: `value` is the layer's output (forward) or the gradient leaving it toward its input (backward). */
export type LayerHook = (layer: Layer, index: number, value: Tensor) => void;

export interface BackwardOptions {
  onLayer?: LayerHook;
  /** False when the gradient with respect to the network input is not wanted (training): `gradInput` is then zeros. */
  inputGradient?: boolean;
  /**
   * Persistent parameter-gradient buffers by gradient key, like PyTorch's `.grad`: a layer whose kind
   * supports it overwrites the buffer for its key instead of allocating one, and every gradient returned
   * is stored here for the next pass. Only for callers that are done with a pass's gradients before the
   * next pass (a training loop); the buffers stay warm in cache and nothing is allocated per step.
   */
  gradientBuffers?: Map<string, Float32Array>;
}

/** What a forward pass leaves for the backward pass. */
export interface ForwardTrace {
  plan: PlanStep[];
  /** values[0] is the network input, values[k + 1] the output of plan step k. */
  values: Tensor[];
  caches: LayerCache[];
  weights: (Float32Array | null)[];
}

export interface ForwardResult {
  output: Tensor;
  /** Milliseconds per layer, indexed by flat grid index (0 for cells that did not run). */
  layerTimesMs: Float64Array;
  trace?: ForwardTrace;
}

/** The gradient of one layer's parameter vector (laid out like its WeightStore.master). */
export interface ParameterGradient {
  /** Stable identity for optimizer state: the flat grid index, plus ".path" for layers nested in containers. */
  key: string;
  layer: Layer;
  grad: Float32Array;
}

export interface BackwardResult {
  gradInput: Tensor;
  /** Parameter gradients of every layer that received one, grid layers in reverse traversal order. */
  gradients: ParameterGradient[];
  layerTimesMs: Float64Array;
}

/** Runs the grid in traversal order (z → y → x → l), skipping empty and disabled cells. */
export function forwardNetwork(net: VolumetricNetwork, input: Tensor, options: ForwardOptions = {}): ForwardResult {
  const plan = net.plan();
  const values: Tensor[] = [input];
  const caches: LayerCache[] = [];
  const weightsUsed: (Float32Array | null)[] = [];
  const layerTimesMs = new Float64Array(net.cells.length);
  for (const step of plan) {
    const { layer } = step;
    const start = performance.now();
    requireFloatWeights(layer, 'forward');
    // Quantized inference: kinds with a packed kernel read the packed bytes instead of decoded weights.
    const packedOut =
      options.packedKernels && !options.keepTrace && layer.kind.forwardPacked && layer.weights && layer.dtype !== DType.Float32
        ? layer.kind.forwardPacked(layer, values[step.inputValue], layer.weights.morph(layer.dtype))
        : null;
    const weights = packedOut || !layer.weights ? null : layer.weights.getActive(layer.dtype);
    const skip = step.skipValue >= 0 ? values[step.skipValue] : null;
    const { output, cache } = packedOut ? { output: packedOut, cache: { input: values[step.inputValue] } } : layer.kind.forward(layer, values[step.inputValue], weights, skip);
    layerTimesMs[step.index] = performance.now() - start;
    if (options.checkFinite) assertFinite(output.data, () => `output of ${layer.kind.name} at ${coordText(layer)} (${dtypeName(layer.dtype)})`);
    options.onLayer?.(layer, step.index, output);
    values.push(output);
    if (options.keepTrace) {
      caches.push(cache);
      weightsUsed.push(weights);
    }
  }
  const result: ForwardResult = { output: values[values.length - 1], layerTimesMs };
  if (options.keepTrace) result.trace = { plan, values, caches, weights: weightsUsed };
  return result;
}

/** Backpropagates `gradOutput` through a traced forward pass, routing gradients along remote links and skips. */
export function backwardNetwork(net: VolumetricNetwork, trace: ForwardTrace, gradOutput: Tensor, options: BackwardOptions = {}): BackwardResult {
  const { plan, values, caches, weights } = trace;
  const valueGrads: (Tensor | undefined)[] = new Array(values.length);
  valueGrads[values.length - 1] = gradOutput;
  const gradients: ParameterGradient[] = [];
  const layerTimesMs = new Float64Array(net.cells.length);
  const buffers = options.gradientBuffers;
  for (let k = plan.length - 1; k >= 0; k--) {
    const grad = valueGrads[k + 1];
    if (!grad) continue;
    const step = plan[k];
    const start = performance.now();
    const key = String(step.index);
    const result = step.layer.kind.backward(step.layer, grad, caches[k], weights[k], options.inputGradient !== false || step.inputValue !== 0, buffers?.get(key));
    layerTimesMs[step.index] = performance.now() - start;
    options.onLayer?.(step.layer, step.index, result.gradInput);
    if (result.gradWeights) {
      gradients.push({ key, layer: step.layer, grad: result.gradWeights });
      buffers?.set(key, result.gradWeights);
    }
    for (const c of result.childGradients ?? []) gradients.push({ key: `${step.index}.${c.path}`, layer: c.layer, grad: c.grad });
    valueGrads[step.inputValue] = addGrad(valueGrads[step.inputValue], result.gradInput);
    if (result.gradSkip && step.skipValue >= 0) valueGrads[step.skipValue] = addGrad(valueGrads[step.skipValue], result.gradSkip);
  }
  return { gradInput: valueGrads[0] ?? Tensor.zeros(values[0].shape), gradients, layerTimesMs };
}

function addGrad(existing: Tensor | undefined, g: Tensor): Tensor {
  if (!existing) return g;
  const sum = new Float32Array(existing.size);
  for (let i = 0; i < sum.length; i++) sum[i] = existing.data[i] + g.data[i];
  return new Tensor(sum, existing.shape);
}

/** Throws a NumericError naming the first NaN or ±Infinity in `data`. */
export function assertFinite(data: Float32Array, what: () => string): void {
  // The fast check (kernels/backend.ts allFinite); only a failure pays for the search that names the element.
  if (allFinite(data)) return;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (v - v !== 0) throw new NumericError(`${what()} is ${v} at element ${i}`);
  }
}
