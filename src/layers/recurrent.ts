import { ShapeError } from '../core/errors.js';
import type { Rng } from '../core/rng.js';
import { Tensor } from '../core/tensor.js';
import { gemmAB, gemmABt, gemmAtB, lstmBackward, lstmForward, rnnForward, sumRows } from '../kernels/backend.js';
import { sigmoid } from './activations.js';
import { requirePositive } from './dense.js';
import { coordText, type Layer, type LayerKind, type SampleWidths } from './layer.js';
import { registerLayerKind } from './registry.js';

/*
 * Both layers work time-major internally ([S, B, ·] rows): the rows of one time step are then a
 * contiguous [B, ·] block, so the input-to-hidden products of all steps are one gemmABt and each
 * step's recurrent product is another, accumulated into that block.
 *
 * The original ignores the layer's `activation` for RNN and LSTM (its code-built layers carry
 * "ReLU" by default and still output plain hidden states), so these kinds ignore it too.
 */

interface SequenceDims {
  batch: number;
  seq: number;
  nIn: number;
  hid: number;
}

/**
 * Batch and sequence length of a recurrent input: [B, S, in] gives S from its shape, any other
 * shape holds seq_length (default 1, as the original) × input_height values per sample.
 */
export function sequenceDims(layer: Layer, input: Tensor): SequenceDims {
  const { inputHeight: nIn = 0, outputHeight: hid = 0, seqLength } = layer.config;
  const batch = input.batch;
  const rank3 = input.shape.length === 3 && input.shape[2] === nIn;
  const seq = seqLength ?? (rank3 ? input.shape[1] : 1);
  if (input.size !== batch * seq * nIn || (rank3 && input.shape[1] !== seq)) {
    throw new ShapeError(
      `${layer.kind.name} at ${coordText(layer)}: expected [batch, ${seq}, ${nIn}] (seq_length × input_height per sample), got input of shape [${input.shape.join(', ')}]`,
    );
  }
  return { batch, seq, nIn, hid };
}

/** [B, S, n] batch-major rows ↔ [S, B, n] time-major rows. */
function toTimeMajor(src: Float32Array, batch: number, seq: number, n: number, out = new Float32Array(src.length)): Float32Array {
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t < seq; t++) out.set(src.subarray((b * seq + t) * n, (b * seq + t + 1) * n), (t * batch + b) * n);
  }
  return out;
}

function toBatchMajor(src: Float32Array, batch: number, seq: number, n: number, out = new Float32Array(src.length)): Float32Array {
  for (let t = 0; t < seq; t++) {
    for (let b = 0; b < batch; b++) out.set(src.subarray((t * batch + b) * n, (t * batch + b + 1) * n), (b * seq + t) * n);
  }
  return out;
}

/** Fixed only when seq_length is given. */
function recurrentWidths(layer: Layer): SampleWidths {
  const { inputHeight = 0, outputHeight = 0, seqLength } = layer.config;
  return seqLength ? { input: seqLength * inputHeight, output: seqLength * outputHeight } : {};
}

function configureRecurrent(layer: Layer, path: string): void {
  requirePositive(layer.config.inputHeight, `${path}.input_height`);
  requirePositive(layer.config.outputHeight, `${path}.output_height`);
  if (layer.config.seqLength !== undefined) requirePositive(layer.config.seqLength, `${path}.seq_length`);
}

/** PyTorch's nn.RNN / nn.LSTM default: every parameter U(-1/sqrt(hid), 1/sqrt(hid)). */
function initRecurrent(layer: Layer, params: Float32Array, rng: Rng): void {
  const bound = 1 / Math.sqrt(layer.config.outputHeight ?? 1);
  for (let i = 0; i < params.length; i++) params[i] = (rng.uniform() * 2 - 1) * bound;
}

interface RnnState {
  dims: SequenceDims;
  /** Time-major input [S·B, in] and hidden states [S·B, hid]. */
  xT: Float32Array;
  h: Float32Array;
}

/**
 * RNN: h_t = tanh(W_ih·x_t + W_hh·h_{t-1} + b), h_0 = 0; outputs every h_t as [B, S, hid].
 * Parameters (the original's order): W_ih [hid][in], W_hh [hid][hid], b [hid], row-major
 * (torch.nn.RNN's weight_ih_l0 / weight_hh_l0 layout, with its two biases summed).
 */
export const rnnKind: LayerKind = {
  name: 'RNN',
  aliases: [],

  configure: configureRecurrent,
  sampleWidths: recurrentWidths,

  parameterCount(layer) {
    const { inputHeight: nIn = 0, outputHeight: hid = 0 } = layer.config;
    return hid * nIn + hid * hid + hid;
  },

  initParameters: initRecurrent,

  forward(layer, input, weights) {
    const dims = sequenceDims(layer, input);
    const { batch, seq, nIn, hid } = dims;
    const w = weights!;
    const wIH = w.subarray(0, hid * nIn);
    const wHH = w.subarray(hid * nIn, hid * nIn + hid * hid);
    const bias = w.subarray(hid * nIn + hid * hid, hid * nIn + hid * hid + hid);
    const xT = toTimeMajor(input.data, batch, seq, nIn);
    const h = new Float32Array(seq * batch * hid);
    // The whole sequence in one WebAssembly call when the kernels run it (float32 tanh, as the LSTM's).
    if (!rnnForward(seq, batch, nIn, hid, xT, wIH, wHH, bias, h)) {
      gemmABt(xT, wIH, h, seq * batch, hid, nIn, bias);
      const step = batch * hid;
      for (let t = 0; t < seq; t++) {
        const block = h.subarray(t * step, (t + 1) * step);
        if (t > 0) gemmABt(h.subarray((t - 1) * step, t * step), wHH, block, batch, hid, hid, null, true);
        for (let i = 0; i < step; i++) block[i] = Math.tanh(block[i]);
      }
    }
    const state: RnnState = { dims, xT, h };
    return { output: new Tensor(toBatchMajor(h, batch, seq, hid), [batch, seq, hid]), cache: { input, extra: state } };
  },

  backward(_layer, gradOutput, cache, weights) {
    const { dims, xT, h } = cache.extra as RnnState;
    const { batch, seq, nIn, hid } = dims;
    const w = weights!;
    const ihSize = hid * nIn;
    const hhSize = hid * hid;
    const step = batch * hid;
    const gOut = toTimeMajor(gradOutput.data, batch, seq, hid);
    const wHH = w.subarray(ihSize, ihSize + hhSize);

    // Transposed operands go to the layout-aware products (same bits as an explicit transpose).
    // gPre_t = (dL/dh_t + gPre_{t+1}·W_hh) ⊙ (1 − h_t²), walking back in time.
    const gPre = new Float32Array(seq * step);
    const carry = new Float32Array(step);
    for (let t = seq - 1; t >= 0; t--) {
      const o = t * step;
      for (let i = 0; i < step; i++) {
        const ht = h[o + i];
        gPre[o + i] = (gOut[o + i] + carry[i]) * (1 - ht * ht);
      }
      if (t > 0) gemmAB(gPre.subarray(o, o + step), wHH, carry, batch, hid, hid);
    }

    const gradWeights = new Float32Array(ihSize + hhSize + hid);
    gemmAtB(gPre, xT, gradWeights.subarray(0, ihSize), hid, nIn, seq * batch);
    if (seq > 1) {
      // dW_hh = Σ_{t≥1} gPre_tᵀ·h_{t-1}: the time-major rows line up after a shift by one step.
      const n = (seq - 1) * batch;
      gemmAtB(gPre.subarray(step), h.subarray(0, n * hid), gradWeights.subarray(ihSize, ihSize + hhSize), hid, hid, n);
    }
    sumRows(gPre, seq * batch, hid, gradWeights.subarray(ihSize + hhSize));

    const gxT = new Float32Array(seq * batch * nIn);
    gemmAB(gPre, w.subarray(0, ihSize), gxT, seq * batch, nIn, hid);
    return { gradInput: new Tensor(toBatchMajor(gxT, batch, seq, nIn), cache.input.shape), gradWeights };
  },
};

interface LstmState {
  dims: SequenceDims;
  xT: Float32Array;
  /** Time-major gate activations [S·B, 4·hid] (i, f, g, o after σ/tanh), cells and hidden states [S·B, hid]. */
  gates: Float32Array;
  c: Float32Array;
  h: Float32Array;
}

const GATES = 4;

/** Gathers the four gate blocks' W_ih, W_hh and b into stacked [4·hid][in], [4·hid][hid], [4·hid]. */
function stackGates(w: Float32Array, nIn: number, hid: number): { wIH: Float32Array; wHH: Float32Array; bias: Float32Array } {
  const ihSize = hid * nIn;
  const hhSize = hid * hid;
  const gate = ihSize + hhSize + hid;
  const wIH = new Float32Array(GATES * ihSize);
  const wHH = new Float32Array(GATES * hhSize);
  const bias = new Float32Array(GATES * hid);
  for (let g = 0; g < GATES; g++) {
    const o = g * gate;
    wIH.set(w.subarray(o, o + ihSize), g * ihSize);
    wHH.set(w.subarray(o + ihSize, o + ihSize + hhSize), g * hhSize);
    bias.set(w.subarray(o + ihSize + hhSize, o + gate), g * hid);
  }
  return { wIH, wHH, bias };
}

/**
 * LSTM: i, f, o = σ(·), g = tanh(·) of W_ih·x_t + W_hh·h_{t-1} + b per gate; c_t = f⊙c_{t-1} + i⊙g,
 * h_t = o⊙tanh(c_t), h_0 = c_0 = 0; outputs every h_t as [B, S, hid]. Parameters: four gate blocks
 * in the original's order i, f, g, o (torch.nn.LSTM's order too), each W_ih [hid][in], W_hh
 * [hid][hid], b [hid] row-major.
 */
export const lstmKind: LayerKind = {
  name: 'LSTM',
  aliases: [],

  configure: configureRecurrent,
  sampleWidths: recurrentWidths,

  parameterCount(layer) {
    const { inputHeight: nIn = 0, outputHeight: hid = 0 } = layer.config;
    return GATES * (hid * nIn + hid * hid + hid);
  },

  initParameters: initRecurrent,

  forward(layer, input, weights) {
    const dims = sequenceDims(layer, input);
    const { batch, seq, nIn, hid } = dims;
    const { wIH, wHH, bias } = stackGates(weights!, nIn, hid);
    const width = GATES * hid;
    const xT = toTimeMajor(input.data, batch, seq, nIn);
    const gates = new Float32Array(seq * batch * width);
    const c = new Float32Array(seq * batch * hid);
    const h = new Float32Array(seq * batch * hid);
    // The whole sequence in one WebAssembly call when the kernels run it (float32 gate math).
    if (lstmForward(seq, batch, nIn, hid, xT, wIH, wHH, bias, gates, c, h)) {
      const state: LstmState = { dims, xT, gates, c, h };
      return { output: new Tensor(toBatchMajor(h, batch, seq, hid), [batch, seq, hid]), cache: { input, extra: state } };
    }
    gemmABt(xT, wIH, gates, seq * batch, width, nIn, bias);
    for (let t = 0; t < seq; t++) {
      const rows = gates.subarray(t * batch * width, (t + 1) * batch * width);
      if (t > 0) gemmABt(h.subarray((t - 1) * batch * hid, t * batch * hid), wHH, rows, batch, width, hid, null, true);
      for (let b = 0; b < batch; b++) {
        const r = b * width;
        const o = (t * batch + b) * hid;
        const prev = o - batch * hid;
        for (let j = 0; j < hid; j++) {
          const ig = sigmoid(rows[r + j]);
          const fg = sigmoid(rows[r + hid + j]);
          const gg = Math.tanh(rows[r + 2 * hid + j]);
          const og = sigmoid(rows[r + 3 * hid + j]);
          rows[r + j] = ig;
          rows[r + hid + j] = fg;
          rows[r + 2 * hid + j] = gg;
          rows[r + 3 * hid + j] = og;
          const cell = (t > 0 ? fg * c[prev + j] : 0) + ig * gg;
          c[o + j] = cell;
          h[o + j] = og * Math.tanh(cell);
        }
      }
    }
    const state: LstmState = { dims, xT, gates, c, h };
    return { output: new Tensor(toBatchMajor(h, batch, seq, hid), [batch, seq, hid]), cache: { input, extra: state } };
  },

  backward(_layer, gradOutput, cache, weights) {
    const { dims, xT, gates, c, h } = cache.extra as LstmState;
    const { batch, seq, nIn, hid } = dims;
    const width = GATES * hid;
    const { wIH, wHH } = stackGates(weights!, nIn, hid);
    const gOut = toTimeMajor(gradOutput.data, batch, seq, hid);

    // dG holds the gradients of the gate pre-activations, time-major [S·B, 4·hid].
    const dG = new Float32Array(seq * batch * width);
    const dhNext = new Float32Array(batch * hid);
    const dcNext = new Float64Array(batch * hid);
    const walked = lstmBackward(seq, batch, hid, gates, c, gOut, wHH, dG);
    for (let t = walked ? -1 : seq - 1; t >= 0; t--) {
      for (let b = 0; b < batch; b++) {
        const r = (t * batch + b) * width;
        const o = (t * batch + b) * hid;
        const s = b * hid;
        for (let j = 0; j < hid; j++) {
          const ig = gates[r + j];
          const fg = gates[r + hid + j];
          const gg = gates[r + 2 * hid + j];
          const og = gates[r + 3 * hid + j];
          const tc = Math.tanh(c[o + j]);
          const dh = gOut[o + j] + dhNext[s + j];
          const dc = dcNext[s + j] + dh * og * (1 - tc * tc);
          const cPrev = t > 0 ? c[o - batch * hid + j] : 0;
          dG[r + j] = dc * gg * ig * (1 - ig);
          dG[r + hid + j] = dc * cPrev * fg * (1 - fg);
          dG[r + 2 * hid + j] = dc * ig * (1 - gg * gg);
          dG[r + 3 * hid + j] = dh * tc * og * (1 - og);
          dcNext[s + j] = dc * fg;
        }
      }
      if (t > 0) gemmAB(dG.subarray(t * batch * width, (t + 1) * batch * width), wHH, dhNext, batch, hid, width);
    }

    const rows = seq * batch;
    const dWIH = new Float32Array(GATES * hid * nIn);
    const dWHH = new Float32Array(GATES * hid * hid);
    const dB = sumRows(dG, rows, width);
    gemmAtB(dG, xT, dWIH, width, nIn, rows);
    if (seq > 1) {
      const n = (seq - 1) * batch;
      gemmAtB(dG.subarray(batch * width), h.subarray(0, n * hid), dWHH, width, hid, n);
    }
    const ihSize = hid * nIn;
    const hhSize = hid * hid;
    const gate = ihSize + hhSize + hid;
    const gradWeights = new Float32Array(GATES * gate);
    for (let g = 0; g < GATES; g++) {
      gradWeights.set(dWIH.subarray(g * ihSize, (g + 1) * ihSize), g * gate);
      gradWeights.set(dWHH.subarray(g * hhSize, (g + 1) * hhSize), g * gate + ihSize);
      gradWeights.set(dB.subarray(g * hid, (g + 1) * hid), g * gate + ihSize + hhSize);
    }

    const gxT = new Float32Array(rows * nIn);
    gemmAB(dG, wIH, gxT, rows, nIn, width);
    return { gradInput: new Tensor(toBatchMajor(gxT, batch, seq, nIn), cache.input.shape), gradWeights };
  },
};

registerLayerKind(rnnKind);
registerLayerKind(lstmKind);
