import { ShapeError, SpecError } from '../core/errors.js';
import type { Tensor } from '../core/tensor.js';
import { forwardNetwork } from '../engine/run.js';
import type { VolumetricNetwork } from '../grid/network.js';

/** Deviation buckets in percent, as the original names them; a deviation falls in the first whose max it does not exceed. */
export const DEVIATION_BUCKETS: readonly { name: string; min: number; max: number }[] = [
  { name: '0-10%', min: 0, max: 10 },
  { name: '10-20%', min: 10, max: 20 },
  { name: '20-30%', min: 20, max: 30 },
  { name: '30-40%', min: 30, max: 40 },
  { name: '40-50%', min: 40, max: 50 },
  { name: '50-100%', min: 50, max: 100 },
  { name: '100%+', min: 100, max: Infinity },
];

export interface PredictionResult {
  sampleIndex: number;
  expected: number;
  actual: number;
  /** |actual − expected| / |expected| · 100, or |actual − expected| · 100 when expected is ~0; non-finite → 100. */
  deviation: number;
  bucket: string;
}

export interface DeviationBucket {
  min: number;
  max: number;
  count: number;
  samples: number[];
}

export interface DeviationMetrics {
  buckets: Record<string, DeviationBucket>;
  /** Mean of max(0, 100 − deviation): 100 = every prediction exact, 0 = every one off by 100% or more. */
  score: number;
  totalSamples: number;
  /** Predictions off by more than 100%. */
  failures: number;
  averageDeviation: number;
  correctCount: number;
  /** Percent of predictions exactly equal to the expected value (class index for classifiers). */
  accuracy: number;
  results: PredictionResult[];
}

export function evaluatePrediction(sampleIndex: number, expected: number, actual: number): PredictionResult {
  let deviation = Math.abs(expected) < 1e-10 ? Math.abs(actual - expected) * 100 : Math.abs(((actual - expected) / expected) * 100);
  if (!Number.isFinite(deviation)) deviation = 100;
  const bucket = DEVIATION_BUCKETS.find((b) => deviation <= b.max)!.name;
  return { sampleIndex, expected, actual, deviation, bucket };
}

/** Buckets, score and accuracy of a list of (expected, actual) pairs. */
export function deviationMetrics(expected: ArrayLike<number>, actual: ArrayLike<number>): DeviationMetrics {
  if (expected.length !== actual.length) throw new ShapeError(`expected has ${expected.length} values but actual has ${actual.length}`);
  const buckets: Record<string, DeviationBucket> = {};
  for (const b of DEVIATION_BUCKETS) buckets[b.name] = { min: b.min, max: b.max, count: 0, samples: [] };
  const results: PredictionResult[] = [];
  let scoreSum = 0;
  let deviationSum = 0;
  let failures = 0;
  let correct = 0;
  for (let i = 0; i < expected.length; i++) {
    const r = evaluatePrediction(i, expected[i], actual[i]);
    results.push(r);
    buckets[r.bucket].count++;
    buckets[r.bucket].samples.push(i);
    if (r.bucket === '100%+') failures++;
    if (r.actual === r.expected) correct++;
    scoreSum += Math.max(0, 100 - r.deviation);
    deviationSum += r.deviation;
  }
  const n = expected.length;
  return {
    buckets,
    score: n ? scoreSum / n : 0,
    totalSamples: n,
    failures,
    averageDeviation: n ? deviationSum / n : 0,
    correctCount: correct,
    accuracy: n ? (correct / n) * 100 : 0,
    results,
  };
}

/** A network's answer per sample: its single output, or the argmax index when it has several. */
export function networkAnswers(net: VolumetricNetwork, inputs: readonly Tensor[]): number[] {
  return inputs.map((input) => {
    const { data } = forwardNetwork(net, input).output;
    if (data.length === 1) return data[0];
    let best = 0;
    for (let j = 1; j < data.length; j++) if (data[j] > data[best]) best = j;
    return best;
  });
}

export function evaluateNetwork(net: VolumetricNetwork, inputs: readonly Tensor[], expected: ArrayLike<number>): DeviationMetrics {
  if (inputs.length !== expected.length) throw new SpecError('expected', `${inputs.length} values (one per input)`, `${expected.length} values`);
  return deviationMetrics(expected, networkAnswers(net, inputs));
}

/** The same evaluation for several named networks on the same data. */
export function evaluateNetworks(models: Record<string, VolumetricNetwork>, inputs: readonly Tensor[], expected: ArrayLike<number>): Record<string, DeviationMetrics> {
  const out: Record<string, DeviationMetrics> = {};
  for (const [name, net] of Object.entries(models)) out[name] = evaluateNetwork(net, inputs, expected);
  return out;
}

/** A fixed-width table: model, accuracy, score, average deviation. */
export function formatMetricsTable(results: Record<string, DeviationMetrics>): string {
  const rows = Object.entries(results).map(([name, m]) => `${name.padEnd(24)} ${m.accuracy.toFixed(2).padStart(8)}% ${m.score.toFixed(1).padStart(6)} ${m.averageDeviation.toFixed(2).padStart(9)}%`);
  return [`${'model'.padEnd(24)} ${'accuracy'.padStart(9)} ${'score'.padStart(6)} ${'avg dev'.padStart(10)}`, ...rows].join('\n');
}
