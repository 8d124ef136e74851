/**
 * Seeded toy classification tasks, for demos and tests when no data is installed. All randomness
 * goes through Rng, so a seed gives the same dataset bit for bit everywhere.
 */
import { SpecError } from '../core/errors.js';
import { Rng } from '../core/rng.js';
import type { Dataset } from './dataset.js';

export interface SpiralOptions {
  classes?: number;
  pointsPerClass?: number;
  /** Standard deviation of the angle noise, in radians. */
  noise?: number;
  /** Revolutions each arm makes from the centre to radius 1. */
  turns?: number;
  seed?: number;
}

export interface BlobOptions {
  classes?: number;
  dims?: number;
  pointsPerClass?: number;
  /** Standard deviation of each blob around its centre (centres lie in [-3, 3]^dims). */
  spread?: number;
  seed?: number;
}

/**
 * Interleaved spiral arms in 2-D (the classic CS231n task), radius in (0, 1]. One turn keeps
 * the task non-linear yet learnable by a small MLP in seconds. Samples are interleaved by class
 * so any prefix is balanced.
 */
export function makeSpirals(options: SpiralOptions = {}): Dataset {
  const classes = intOption('spirals.classes', options.classes ?? 3, 2);
  const n = intOption('spirals.pointsPerClass', options.pointsPerClass ?? 300, 1);
  const noise = nonNegative('spirals.noise', options.noise ?? 0.2);
  const turns = nonNegative('spirals.turns', options.turns ?? 1);
  const seed = options.seed ?? 1;
  const rng = new Rng(seed);
  const count = classes * n;
  const inputs = new Float32Array(count * 2);
  const labels = new Int32Array(count);
  for (let i = 0; i < n; i++) {
    const r = (i + 1) / n;
    for (let c = 0; c < classes; c++) {
      const theta = 2 * Math.PI * (c / classes + turns * r) + noise * rng.normal();
      const s = i * classes + c;
      inputs[2 * s] = r * Math.cos(theta);
      inputs[2 * s + 1] = r * Math.sin(theta);
      labels[s] = c;
    }
  }
  const source = `spirals(classes=${classes}, pointsPerClass=${n}, noise=${noise}, turns=${turns}, seed=${seed})`;
  return { count, inputs, inputShape: [2], labels, targetWidth: classes, source };
}

/** Gaussian blobs, one per class, around centres drawn uniformly in [-3, 3]^dims. */
export function makeBlobs(options: BlobOptions = {}): Dataset {
  const classes = intOption('blobs.classes', options.classes ?? 3, 1);
  const dims = intOption('blobs.dims', options.dims ?? 2, 1);
  const n = intOption('blobs.pointsPerClass', options.pointsPerClass ?? 100, 1);
  const spread = nonNegative('blobs.spread', options.spread ?? 0.5);
  const seed = options.seed ?? 1;
  const rng = new Rng(seed);
  const centres = Float64Array.from({ length: classes * dims }, () => 6 * rng.uniform() - 3);
  const count = classes * n;
  const inputs = new Float32Array(count * dims);
  const labels = new Int32Array(count);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < classes; c++) {
      const s = i * classes + c;
      for (let d = 0; d < dims; d++) inputs[s * dims + d] = centres[c * dims + d] + spread * rng.normal();
      labels[s] = c;
    }
  }
  const source = `blobs(classes=${classes}, dims=${dims}, pointsPerClass=${n}, spread=${spread}, seed=${seed})`;
  return { count, inputs, inputShape: [dims], labels, targetWidth: classes, source };
}

function intOption(path: string, v: number, min: number): number {
  if (!Number.isInteger(v) || v < min) throw new SpecError(path, `an integer >= ${min}`, v);
  return v;
}

function nonNegative(path: string, v: number): number {
  if (!Number.isFinite(v) || v < 0) throw new SpecError(path, 'a finite number >= 0', v);
  return v;
}
