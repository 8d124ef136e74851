import { ShapeError } from '../core/errors.js';

/** Pearson's r of two equal-length series (0 when either is constant). */
export function pearson(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new ShapeError(`pearson: series of lengths ${a.length} and ${b.length}`);
  const n = a.length;
  if (n === 0) return 0;
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < n; i++) {
    ma += a[i];
    mb += b[i];
  }
  ma /= n;
  mb /= n;
  let cov = 0;
  let va = 0;
  let vb = 0;
  for (let i = 0; i < n; i++) {
    const da = a[i] - ma;
    const db = b[i] - mb;
    cov += da * db;
    va += da * da;
    vb += db * db;
  }
  if (va === 0 || vb === 0) return 0;
  return Math.max(-1, Math.min(1, cov / Math.sqrt(va * vb)));
}

/** Ranks starting at 1; tied values share the mean of their ranks. */
export function ranks(v: ArrayLike<number>): Float64Array {
  const order = Array.from({ length: v.length }, (_, i) => i).sort((i, j) => v[i] - v[j] || i - j);
  const r = new Float64Array(v.length);
  for (let start = 0; start < order.length; ) {
    let end = start;
    while (end + 1 < order.length && v[order[end + 1]] === v[order[start]]) end++;
    const mean = (start + end) / 2 + 1;
    for (let k = start; k <= end; k++) r[order[k]] = mean;
    start = end + 1;
  }
  return r;
}

/** Spearman's ρ: Pearson's r of the ranks (ties averaged). */
export function spearman(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new ShapeError(`spearman: series of lengths ${a.length} and ${b.length}`);
  return pearson(ranks(a), ranks(b));
}

/** Pairwise correlation of the columns of `rows` (samples × features). */
export function correlationMatrix(rows: readonly ArrayLike<number>[], method: 'pearson' | 'spearman' = 'pearson'): number[][] {
  const features = rows[0]?.length ?? 0;
  const columns = Array.from({ length: features }, (_, j) => Float64Array.from(rows, (r) => r[j]));
  const f = method === 'pearson' ? pearson : spearman;
  return columns.map((c, i) => columns.map((d, j) => (i === j ? 1 : f(c, d))));
}
