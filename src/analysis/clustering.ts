import { LoomError, ShapeError, SpecError } from '../core/errors.js';
import { Rng } from '../core/rng.js';
import type { Tensor } from '../core/tensor.js';
import { forwardNetwork } from '../engine/run.js';
import type { VolumetricNetwork } from '../grid/network.js';
import { coordText, type Coord } from '../layers/layer.js';

export type Points = readonly ArrayLike<number>[];

export interface KMeansResult {
  centroids: Float64Array[];
  /** Cluster index per point. */
  assignments: number[];
  iterations: number;
}

export function euclidean(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i] - b[i];
    s += d * d;
  }
  return Math.sqrt(s);
}

function checkPoints(data: Points, what: string): number {
  const dim = data[0]?.length ?? 0;
  data.forEach((p, i) => {
    if (p.length !== dim) throw new ShapeError(`${what}: point ${i} has ${p.length} values, point 0 has ${dim}`);
  });
  return dim;
}

/**
 * Lloyd's k-means. Centroids start at k distinct points drawn with a seeded Rng; an emptied cluster
 * is re-seeded from a random point. Stops when no assignment changes or after maxIter rounds.
 */
export function kmeansCluster(data: Points, k: number, options: { maxIter?: number; seed?: number } = {}): KMeansResult {
  if (!Number.isInteger(k) || k < 1) throw new SpecError('k', 'a positive integer', k);
  const maxIter = options.maxIter ?? 100;
  if (data.length === 0) return { centroids: [], assignments: [], iterations: 0 };
  const dim = checkPoints(data, 'kmeansCluster');
  k = Math.min(k, data.length);
  const rng = new Rng(options.seed ?? 1);
  const order = Array.from({ length: data.length }, (_, i) => i);
  rng.shuffle(order);
  const centroids = order.slice(0, k).map((i) => Float64Array.from(data[i]));
  const assignments = new Array<number>(data.length).fill(-1);
  let iterations = 0;
  for (; iterations < maxIter; iterations++) {
    let changes = 0;
    for (let i = 0; i < data.length; i++) {
      let best = 0;
      let bestD = Infinity;
      for (let c = 0; c < k; c++) {
        const d = euclidean(data[i], centroids[c]);
        if (d < bestD) {
          bestD = d;
          best = c;
        }
      }
      if (assignments[i] !== best) {
        assignments[i] = best;
        changes++;
      }
    }
    if (changes === 0) break;
    const sums = Array.from({ length: k }, () => new Float64Array(dim));
    const counts = new Array<number>(k).fill(0);
    for (let i = 0; i < data.length; i++) {
      counts[assignments[i]]++;
      const s = sums[assignments[i]];
      for (let j = 0; j < dim; j++) s[j] += data[i][j];
    }
    for (let c = 0; c < k; c++) {
      if (counts[c] > 0) for (let j = 0; j < dim; j++) centroids[c][j] = sums[c][j] / counts[c];
      else centroids[c] = Float64Array.from(data[rng.int(data.length)]);
    }
  }
  return { centroids, assignments, iterations };
}

/** Mean silhouette coefficient (−1..1; near 1 = tight, well separated clusters). Points alone in their cluster count 0. */
export function silhouetteScore(data: Points, assignments: readonly number[]): number {
  if (data.length !== assignments.length) throw new ShapeError(`silhouetteScore: ${data.length} points but ${assignments.length} assignments`);
  checkPoints(data, 'silhouetteScore');
  const n = data.length;
  if (n < 2) return 0;
  let total = 0;
  for (let i = 0; i < n; i++) {
    const sums = new Map<number, number>();
    const counts = new Map<number, number>();
    for (let j = 0; j < n; j++) {
      if (i === j) continue;
      const c = assignments[j];
      sums.set(c, (sums.get(c) ?? 0) + euclidean(data[i], data[j]));
      counts.set(c, (counts.get(c) ?? 0) + 1);
    }
    const own = assignments[i];
    if (!counts.has(own)) continue;
    const a = sums.get(own)! / counts.get(own)!;
    let b = Infinity;
    for (const [c, s] of sums) if (c !== own) b = Math.min(b, s / counts.get(c)!);
    if (b === Infinity) continue;
    const m = Math.max(a, b);
    if (m > 0) total += (b - a) / m;
  }
  return total / n;
}

/**
 * Single-linkage agglomerative grouping: repeatedly merges the two closest points of different
 * groups until the closest pair is farther than `threshold`. Groups are numbered 0.. in order of first appearance.
 */
export function hierarchicalGroup(data: Points, threshold: number): number[] {
  if (!Number.isFinite(threshold) || threshold < 0) throw new SpecError('threshold', 'a non-negative number', threshold);
  checkPoints(data, 'hierarchicalGroup');
  const n = data.length;
  const group = Array.from({ length: n }, (_, i) => i);
  const pairs: { d: number; i: number; j: number }[] = [];
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) pairs.push({ d: euclidean(data[i], data[j]), i, j });
  pairs.sort((p, q) => p.d - q.d || p.i - q.i || p.j - q.j);
  for (const { d, i, j } of pairs) {
    if (d > threshold) break;
    const from = group[j];
    const to = group[i];
    if (from === to) continue;
    for (let k = 0; k < n; k++) if (group[k] === from) group[k] = to;
  }
  const relabel = new Map<number, number>();
  return group.map((g) => {
    if (!relabel.has(g)) relabel.set(g, relabel.size);
    return relabel.get(g)!;
  });
}

/** Per-sample activation rows of the layer at `at` (default: the network output) for a batch `input`. */
export function layerActivations(net: VolumetricNetwork, input: Tensor, at?: Coord): Float32Array[] {
  const { output, trace } = forwardNetwork(net, input, { keepTrace: true });
  let value = output;
  if (at) {
    const step = trace!.plan.findIndex((s) => s.layer.z === at.z && s.layer.y === at.y && s.layer.x === at.x && s.layer.l === at.l);
    if (step < 0) throw new LoomError(`no enabled layer at ${coordText(at)}`);
    value = trace!.values[step + 1];
  }
  const rows = value.batch;
  const width = value.size / rows;
  return Array.from({ length: rows }, (_, r) => value.data.slice(r * width, (r + 1) * width));
}
