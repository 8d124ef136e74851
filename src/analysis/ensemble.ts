import { ShapeError } from '../core/errors.js';

/** Which samples a model got right. */
export interface ModelPerformance {
  modelId: string;
  mask: readonly boolean[];
}

export interface EnsembleMatch {
  modelA: string;
  modelB: string;
  /** Fraction of samples at least one of the two got right. */
  coverage: number;
  /** Fraction both got right. */
  overlap: number;
}

/** Cosine similarity of two correctness masks (0 when either is all wrong or lengths differ). */
export function performanceSimilarity(a: ModelPerformance, b: ModelPerformance): number {
  if (a.mask.length !== b.mask.length || a.mask.length === 0) return 0;
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.mask.length; i++) {
    const x = a.mask[i] ? 1 : 0;
    const y = b.mask[i] ? 1 : 0;
    dot += x * y;
    na += x;
    nb += y;
  }
  return na === 0 || nb === 0 ? 0 : dot / Math.sqrt(na * nb);
}

/**
 * Pairs whose combined coverage is at least `minCoverage`, best first: highest coverage, then
 * lowest overlap (the most complementary), then input order.
 */
export function findComplementaryPairs(models: readonly ModelPerformance[], minCoverage = 0): EnsembleMatch[] {
  const matches: (EnsembleMatch & { order: number })[] = [];
  let order = 0;
  for (let i = 0; i < models.length; i++) {
    for (let j = i + 1; j < models.length; j++) {
      const a = models[i].mask;
      const b = models[j].mask;
      if (a.length !== b.length || a.length === 0) continue;
      let covered = 0;
      let both = 0;
      for (let k = 0; k < a.length; k++) {
        if (a[k] || b[k]) covered++;
        if (a[k] && b[k]) both++;
      }
      const coverage = covered / a.length;
      if (coverage >= minCoverage) matches.push({ modelA: models[i].modelId, modelB: models[j].modelId, coverage, overlap: both / a.length, order: order++ });
    }
  }
  matches.sort((p, q) => q.coverage - p.coverage || p.overlap - q.overlap || p.order - q.order);
  return matches.map(({ order: _order, ...m }) => m);
}

/** Hard vote per sample over models' class predictions; a tie goes to the smallest class index. */
export function majorityVote(predictions: readonly (readonly number[])[]): number[] {
  if (predictions.length === 0) return [];
  const n = predictions[0].length;
  for (const [m, p] of predictions.entries()) {
    if (p.length !== n) throw new ShapeError(`majorityVote: model ${m} has ${p.length} predictions, model 0 has ${n}`);
  }
  const out: number[] = [];
  for (let s = 0; s < n; s++) {
    const counts = new Map<number, number>();
    for (const p of predictions) counts.set(p[s], (counts.get(p[s]) ?? 0) + 1);
    let winner = NaN;
    let most = -1;
    for (const [label, count] of counts) {
      if (count > most || (count === most && label < winner)) {
        winner = label;
        most = count;
      }
    }
    out.push(winner);
  }
  return out;
}

export function formatEnsembleReport(matches: readonly EnsembleMatch[], top = 10): string {
  const rows = matches.slice(0, top).map((m) => `${`${m.modelA} + ${m.modelB}`.padEnd(32)} ${(m.coverage * 100).toFixed(1).padStart(7)}% ${(m.overlap * 100).toFixed(1).padStart(7)}%`);
  return [`${'pair'.padEnd(32)} ${'coverage'.padStart(8)} ${'overlap'.padStart(8)}`, ...rows].join('\n');
}
