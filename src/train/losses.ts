import { LoomError, ShapeError } from '../core/errors.js';
import { overwrittenFloat32 } from '../core/alloc.js';
import { Tensor } from '../core/tensor.js';
import { crossEntropyRows } from '../kernels/backend.js';

export type LossName = 'mse' | 'cross_entropy';
export const LOSS_NAMES: readonly LossName[] = ['mse', 'cross_entropy'];

export interface LossResult {
  /** Mean loss over the batch. */
  loss: number;
  /** d loss / d prediction, same shape as the prediction. */
  grad: Tensor;
  /** Samples whose arg-max matches the label (classification only). */
  correct?: number;
}

/** What a loss compares the prediction with: class labels or target vectors. */
export interface LossTargets {
  labels?: Int32Array;
  targets?: Float32Array;
}

export function computeLoss(name: LossName, prediction: Tensor, targets: LossTargets): LossResult {
  if (name === 'cross_entropy') {
    if (!targets.labels) throw new LoomError('cross_entropy needs class labels; this data has target vectors (use --loss mse)');
    return crossEntropyLoss(prediction, targets.labels);
  }
  return mseLoss(prediction, targets.targets ?? oneHot(targets.labels!, prediction.rowSize), targets.labels);
}

/** Mean squared error over all elements (PyTorch's mse_loss, reduction 'mean'). */
export function mseLoss(prediction: Tensor, target: Float32Array, labels?: Int32Array): LossResult {
  const p = prediction.data;
  if (target.length !== p.length) {
    throw new ShapeError(`mse: prediction has ${p.length} values (shape [${prediction.shape.join(', ')}]) but the target has ${target.length}`);
  }
  const n = p.length;
  const grad = new Float32Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const d = p[i] - target[i];
    sum += d * d;
    grad[i] = (2 * d) / n;
  }
  const result: LossResult = { loss: sum / n, grad: new Tensor(grad, prediction.shape) };
  if (labels) result.correct = countCorrect(prediction, labels);
  return result;
}

/**
 * Softmax cross-entropy on logits, mean over the batch, with a max-shifted log-sum-exp for stability.
 * With the WebAssembly kernels on, the gradient is computed in float32 there (crossEntropyRows); the
 * loss adds max + log Σe − z[label] in float64 either way.
 */
export function crossEntropyLoss(logits: Tensor, labels: Int32Array): LossResult {
  const batch = logits.batch;
  const classes = logits.rowSize;
  if (labels.length !== batch) throw new ShapeError(`cross_entropy: ${batch} predictions but ${labels.length} labels`);
  for (let b = 0; b < batch; b++) {
    const label = labels[b];
    if (!(label >= 0 && label < classes)) {
      throw new ShapeError(`cross_entropy: label ${label} of sample ${b} is out of range for ${classes} outputs`);
    }
  }
  const z = logits.data;
  // Both paths write every gradient value.
  const grad = overwrittenFloat32(z.length);
  const stats = new Float64Array(3 * batch);
  if (!crossEntropyRows(z, labels, batch, classes, grad, stats)) crossEntropyReference(z, labels, batch, classes, grad, stats);
  let total = 0;
  let correct = 0;
  for (let b = 0; b < batch; b++) {
    const logSumExp = stats[3 * b] + Math.log(stats[3 * b + 1]);
    total += logSumExp - z[b * classes + labels[b]];
    if (stats[3 * b + 2] === labels[b]) correct++;
  }
  return { loss: total / batch, grad: new Tensor(grad, logits.shape), correct };
}

/** crossEntropyRows in float64 TypeScript: grad = (softmax − onehot)/batch; stats per row = max, Σ exp(z − max), first arg max. */
function crossEntropyReference(z: Float32Array, labels: Int32Array, batch: number, classes: number, grad: Float32Array, stats: Float64Array): void {
  for (let b = 0; b < batch; b++) {
    const base = b * classes;
    const label = labels[b];
    let max = -Infinity;
    let arg = 0;
    for (let c = 0; c < classes; c++) {
      if (z[base + c] > max) {
        max = z[base + c];
        arg = c;
      }
    }
    let sumExp = 0;
    for (let c = 0; c < classes; c++) sumExp += Math.exp(z[base + c] - max);
    const logSumExp = max + Math.log(sumExp);
    for (let c = 0; c < classes; c++) {
      const softmax = Math.exp(z[base + c] - logSumExp);
      grad[base + c] = (softmax - (c === label ? 1 : 0)) / batch;
    }
    stats[3 * b] = max;
    stats[3 * b + 1] = sumExp;
    stats[3 * b + 2] = arg;
  }
}

export function countCorrect(prediction: Tensor, labels: Int32Array): number {
  const classes = prediction.rowSize;
  const p = prediction.data;
  let correct = 0;
  for (let b = 0; b < labels.length; b++) {
    let arg = 0;
    for (let c = 1; c < classes; c++) if (p[b * classes + c] > p[b * classes + arg]) arg = c;
    if (arg === labels[b]) correct++;
  }
  return correct;
}

export function oneHot(labels: Int32Array, classes: number): Float32Array {
  const out = new Float32Array(labels.length * classes);
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] >= 0 && labels[i] < classes) out[i * classes + labels[i]] = 1;
  }
  return out;
}
