import { ShapeError } from '../core/errors.js';
import { Tensor } from '../core/tensor.js';
import { gemmAB, gemmABt, gemmAtB, sumRows, swigluGate } from '../kernels/backend.js';
import { Activation, sigmoid } from './activations.js';
import { requirePositive } from './dense.js';
import { coordText, type LayerKind } from './layer.js';
import { registerLayerKind } from './registry.js';

interface SwiGLUCache {
  rows: number;
  /** [rows, 2·inter]: gate pre-activation then up projection, per row. */
  gateUp: Float32Array;
  /** [rows, inter]: act(gate) ⊙ up, the down projection's input. */
  hidden: Float32Array;
}

/**
 * SwiGLU: y = W_down·(act(W_gate·x + b_gate) ⊙ (W_up·x + b_up)) + b_down for every input_height-wide
 * row of the input (output has the input's shape); output_height is the intermediate size.
 * Parameters (the original's layout): W_gate [inter][in], W_up [inter][in], W_down [in][inter],
 * b_gate [inter], b_up [inter], b_down [in] — torch.nn.Linear weights of gate/up/down_proj.
 * The `activation` picks the gate as the original's swigluGateProduct does: ReLU2 gives relu(g)²,
 * anything else SiLU (its HF import writes Silu, its code-built layers ReLU); no output activation.
 */
export const swigluKind: LayerKind = {
  name: 'SwiGLU',
  aliases: [],

  configure(layer, path) {
    requirePositive(layer.config.inputHeight, `${path}.input_height`);
    requirePositive(layer.config.outputHeight, `${path}.output_height`);
  },

  parameterCount(layer) {
    const { inputHeight: nIn = 0, outputHeight: inter = 0 } = layer.config;
    return 3 * nIn * inter + 2 * inter + nIn;
  },

  initParameters(layer, params, rng) {
    // nn.Linear's default per projection: U(±1/sqrt(fan_in)) for weights and bias (the original randomizes the biases too).
    const { inputHeight: nIn = 1, outputHeight: inter = 1 } = layer.config;
    const o = offsets(nIn, inter);
    const fill = (from: number, to: number, fanIn: number): void => {
      const bound = 1 / Math.sqrt(fanIn);
      for (let i = from; i < to; i++) params[i] = (rng.uniform() * 2 - 1) * bound;
    };
    fill(o.gateW, o.downW, nIn);
    fill(o.downW, o.gateB, inter);
    fill(o.gateB, o.downB, nIn);
    fill(o.downB, o.end, inter);
  },

  forward(layer, input, weights) {
    const { inputHeight: nIn = 0, outputHeight: inter = 0 } = layer.config;
    const rows = input.size / nIn;
    if (input.rowSize % nIn !== 0) {
      throw new ShapeError(
        `${layer.kind.name} at ${coordText(layer)}: expected rows of ${nIn} values (input_height), got input of shape [${input.shape.join(', ')}]`,
      );
    }
    const w = weights!;
    const o = offsets(nIn, inter);
    // Gate and up weights (and biases) are adjacent in the layout: one product gives both.
    const gateUp = new Float32Array(rows * 2 * inter);
    gemmABt(input.data, w.subarray(o.gateW, o.downW), gateUp, rows, 2 * inter, nIn, w.subarray(o.gateB, o.downB));
    const hidden = gated(gateUp, rows, inter, layer.activation === Activation.ReLU2);
    const out = new Float32Array(rows * nIn);
    gemmABt(hidden, w.subarray(o.downW, o.gateB), out, rows, nIn, inter, w.subarray(o.downB, o.end));
    const extra: SwiGLUCache = { rows, gateUp, hidden };
    return { output: new Tensor(out, input.shape), cache: { input, extra } };
  },

  forwardIncremental(layer, input, ctx) {
    const { inputHeight: nIn = 0, outputHeight: inter = 0 } = layer.config;
    if (input.rowSize % nIn !== 0) {
      throw new ShapeError(
        `${layer.kind.name} at ${coordText(layer)}: expected rows of ${nIn} values (input_height), got input of shape [${input.shape.join(', ')}]`,
      );
    }
    const rows = input.size / nIn;
    const o = offsets(nIn, inter);
    const gateUp = new Float32Array(rows * 2 * inter);
    ctx.linear(input.data, rows, o.gateW, 2 * inter, nIn, gateUp, o.gateB);
    const hidden = gated(gateUp, rows, inter, layer.activation === Activation.ReLU2);
    const out = new Float32Array(rows * nIn);
    ctx.linear(hidden, rows, o.downW, nIn, inter, out, o.downB);
    return new Tensor(out, input.shape);
  },

  matrices(layer) {
    const { inputHeight: nIn = 0, outputHeight: inter = 0 } = layer.config;
    const o = offsets(nIn, inter);
    return [
      { offset: o.gateW, rows: 2 * inter, cols: nIn },
      { offset: o.downW, rows: nIn, cols: inter },
    ];
  },

  backward(layer, gradOutput, cache, weights) {
    const { inputHeight: nIn = 0, outputHeight: inter = 0 } = layer.config;
    const { rows, gateUp, hidden } = cache.extra as SwiGLUCache;
    const w = weights!;
    const o = offsets(nIn, inter);
    const gY = gradOutput.data;
    const gradWeights = new Float32Array(o.end);

    // Down projection: dW_down[i][j] = Σ_r gY[r][i]·hidden[r][j]; dHidden = gY·W_down.
    gemmAtB(gY, hidden, gradWeights.subarray(o.downW, o.gateB), nIn, inter, rows);
    sumRows(gY, rows, nIn, gradWeights.subarray(o.downB, o.end));
    const gHidden = new Float32Array(rows * inter);
    gemmAB(gY, w.subarray(o.downW, o.gateB), gHidden, rows, inter, nIn);

    const relu2 = layer.activation === Activation.ReLU2;
    const gGateUp = new Float32Array(rows * 2 * inter);
    if (!swigluGate(relu2, rows, inter, gateUp, gHidden, gGateUp)) gatedBackward(gateUp, gHidden, gGateUp, rows, inter, relu2);
    const x = cache.input.data;
    gemmAtB(gGateUp, x, gradWeights.subarray(o.gateW, o.downW), 2 * inter, nIn, rows);
    sumRows(gGateUp, rows, 2 * inter, gradWeights.subarray(o.gateB, o.downB));
    const gx = new Float32Array(rows * nIn);
    gemmAB(gGateUp, w.subarray(o.gateW, o.downW), gx, rows, nIn, 2 * inter);
    return { gradInput: new Tensor(gx, cache.input.shape), gradWeights };
  },
};

/** Start offsets of the six parameter blocks (and the total count). */
function offsets(nIn: number, inter: number) {
  const m = nIn * inter;
  return { gateW: 0, upW: m, downW: 2 * m, gateB: 3 * m, upB: 3 * m + inter, downB: 3 * m + 2 * inter, end: 3 * m + 2 * inter + nIn };
}

/** act(gate)·up for each row of [gate | up]: on the kernels when they run (float32), else in float64 here. */
function gated(gateUp: Float32Array, rows: number, inter: number, relu2: boolean): Float32Array {
  const hidden = new Float32Array(rows * inter);
  if (swigluGate(relu2, rows, inter, gateUp, null, hidden)) return hidden;
  for (let r = 0; r < rows; r++) {
    const gu = r * 2 * inter;
    const hr = r * inter;
    for (let j = 0; j < inter; j++) hidden[hr + j] = gate(gateUp[gu + j], relu2) * gateUp[gu + inter + j];
  }
  return hidden;
}

/** The reference gradients of gate and up (float64 here) from gHidden. */
function gatedBackward(gateUp: Float32Array, gHidden: Float32Array, gGateUp: Float32Array, rows: number, inter: number, relu2: boolean): void {
  for (let r = 0; r < rows; r++) {
    const gu = r * 2 * inter;
    const hr = r * inter;
    for (let j = 0; j < inter; j++) {
      const g = gateUp[gu + j];
      const gh = gHidden[hr + j];
      const s = relu2 ? 0 : sigmoid(g);
      gGateUp[gu + j] = gh * gateUp[gu + inter + j] * gateSlope(g, relu2, s);
      gGateUp[gu + inter + j] = gh * gate(g, relu2, s);
    }
  }
}

/** The gate at g; `s` is sigmoid(g) (unused for ReLU²), passed when the caller also needs the slope. */
function gate(g: number, relu2: boolean, s = relu2 ? 0 : sigmoid(g)): number {
  if (relu2) return g > 0 ? g * g : 0;
  return g * s;
}

/** The gate's derivative at g, with s = sigmoid(g). */
function gateSlope(g: number, relu2: boolean, s: number): number {
  if (relu2) return g > 0 ? 2 * g : 0;
  return s * (1 + g * (1 - s));
}


registerLayerKind(swigluKind);
