/**
 * In-memory datasets: one Float32Array of features per dataset, so batching is a copy of
 * contiguous rows. Browser-safe (no Node imports); file readers live in csv.ts, jsonData.ts, idx.ts.
 */
import { SpecError } from '../core/errors.js';
import { Rng } from '../core/rng.js';

export interface Dataset {
  /** Number of samples. */
  count: number;
  /** count × featureCount values, row-major. */
  inputs: Float32Array;
  /** Per-sample shape; its product is featureCount (IDX images are flattened, see imageShape). */
  inputShape: number[];
  /** Class index per sample, for classification. */
  labels?: Int32Array;
  /** count × targetWidth values, for regression / explicit target vectors. */
  targets?: Float32Array;
  /** Number of classes when labels are set, else the target vector width. */
  targetWidth: number;
  /** File path or description, for messages. */
  source: string;
  /** Original per-sample image shape (e.g. [28, 28]) when inputs were flattened from images. */
  imageShape?: number[];
}

/**
 * Labels above this are not treated as class indices: a one-hot output that wide is almost surely
 * a misread regression column, and it would allocate count × (max + 1) floats downstream.
 */
export const MAX_CLASS_LABEL = 65535;

export function featureCount(d: Dataset): number {
  let n = 1;
  for (const s of d.inputShape) n *= s;
  return n;
}

/** Class labels when every value is an integer in [0, MAX_CLASS_LABEL], else undefined (regression). */
export function asClassLabels(values: ArrayLike<number>): Int32Array | undefined {
  const labels = new Int32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isInteger(v) || v < 0 || v > MAX_CLASS_LABEL) return undefined;
    labels[i] = v;
  }
  return labels;
}

/** Number of classes implied by labels: max + 1 (0 for no labels). */
export function classCount(labels: ArrayLike<number>): number {
  let max = -1;
  for (let i = 0; i < labels.length; i++) if (labels[i] > max) max = labels[i];
  return max + 1;
}

/**
 * Seeded shuffle, then the first round(count × fraction) shuffled samples become the validation
 * set. Both parts keep at least one sample, so tiny datasets still split.
 */
export function splitDataset(d: Dataset, fraction: number, seed: number): { train: Dataset; validation: Dataset } {
  if (!(fraction > 0 && fraction < 1)) throw new SpecError('validation fraction', 'a number strictly between 0 and 1', fraction);
  if (d.count < 2) throw new SpecError(`${d.source}`, 'at least 2 samples to split into training and validation', d.count);
  const order = Int32Array.from({ length: d.count }, (_, i) => i);
  new Rng(seed).shuffle(order);
  const nVal = Math.min(d.count - 1, Math.max(1, Math.round(d.count * fraction)));
  const validation = subset(d, order.subarray(0, nVal));
  const train = subset(d, order.subarray(nVal));
  validation.source = `${d.source} (validation)`;
  train.source = `${d.source} (training)`;
  return { train, validation };
}

/** A copy of the samples at `indices`, in that order (repeats allowed). */
export function subset(d: Dataset, indices: ArrayLike<number>): Dataset {
  const n = indices.length;
  const f = featureCount(d);
  const w = d.targetWidth;
  const inputs = new Float32Array(n * f);
  const labels = d.labels ? new Int32Array(n) : undefined;
  const targets = d.targets ? new Float32Array(n * w) : undefined;
  for (let i = 0; i < n; i++) {
    const s = indices[i];
    if (!Number.isInteger(s) || s < 0 || s >= d.count) throw new RangeError(`subset of ${d.source}: index ${s} at position ${i} is outside [0, ${d.count})`);
    inputs.set(d.inputs.subarray(s * f, (s + 1) * f), i * f);
    if (labels) labels[i] = d.labels![s];
    if (targets) targets.set(d.targets!.subarray(s * w, (s + 1) * w), i * w);
  }
  const out: Dataset = { count: n, inputs, inputShape: [...d.inputShape], targetWidth: w, source: d.source };
  if (labels) out.labels = labels;
  if (targets) out.targets = targets;
  if (d.imageShape) out.imageShape = [...d.imageShape];
  return out;
}
