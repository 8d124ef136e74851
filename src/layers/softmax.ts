import { ShapeError, SpecError } from '../core/errors.js';
import { mixSeed, Rng } from '../core/rng.js';
import { Tensor } from '../core/tensor.js';
import { requirePositive } from './dense.js';
import { coordText, type Layer, type LayerKind } from './layer.js';
import { registerLayerKind } from './registry.js';

/** The ten variants, in the original's enum order (persistence writes these names). */
export const SOFTMAX_TYPES = ['Standard', 'Grid', 'Hierarchical', 'Temperature', 'Gumbel', 'Masked', 'Sparse', 'Adaptive', 'Mixture', 'Entmax'] as const;
export type SoftmaxType = (typeof SOFTMAX_TYPES)[number];

const TYPE_BY_NAME: ReadonlyMap<string, SoftmaxType> = new Map([
  ...SOFTMAX_TYPES.map((t) => [t.toUpperCase(), t] as [string, SoftmaxType]),
  ['SPARSEMAX', 'Sparse'],
]);

/** Case-insensitive softmax_type name or enum number 0..9; missing or empty means Standard, anything else is a SpecError. */
export function parseSoftmaxType(value: unknown, path = 'softmax_type'): SoftmaxType {
  if (value === undefined || value === null || value === '') return 'Standard';
  // The original's network spec writes the enum number (0..9), its persistence the name.
  const t =
    typeof value === 'string'
      ? TYPE_BY_NAME.get(value.trim().toUpperCase())
      : typeof value === 'number' && Number.isInteger(value)
        ? SOFTMAX_TYPES[value]
        : undefined;
  if (!t) throw new SpecError(path, `a softmax type (one of ${SOFTMAX_TYPES.join(', ')})`, value);
  return t;
}

const DEFAULT_ENTMAX_ALPHA = 1.5;
const DEFAULT_ADAPTIVE_EPS = 1e-5;

/** What the forward pass keeps; every per-value array has the input's length. */
interface SoftmaxCache {
  type: SoftmaxType;
  /** Length of each independent distribution (a row, or a Grid/Hierarchical group). */
  group: number;
  temperature: number;
  probs: Float32Array;
  alpha: number;
  /** Gumbel noise as added to the input (float32 values, so exactly reproducible). */
  noise?: Float32Array;
  /** Adaptive: standardized logits and 1/σ per group. */
  xhat?: Float64Array;
  invStd?: Float64Array;
  /** Mixture: the softmax and sparsemax components. */
  soft?: Float32Array;
  sparse?: Float32Array;
}

/**
 * Softmax: turns each row of the input into a distribution; no parameters, output shape = input shape.
 * A row is `input_height` values when set, else one sample's values; Grid and Hierarchical split each row
 * further into groups. Every variant divides its logits by `temperature` (default 1, as the original):
 * - Standard, Temperature: softmax(x/T) (the same function; Temperature is the original's named variant).
 * - Grid: softmax(x/T) over each run of `softmax_cols` values of a `softmax_rows`×`softmax_cols` row (native MoE).
 * - Hierarchical: like Grid with the group size = the last of `hierarchy_levels`, whose product must be the row
 *   size (the original's definition); without levels it reads softmax_rows/softmax_cols.
 * - Gumbel: softmax((x + g)/T), g ~ Gumbel(0, 1) from an Rng seeded by the layer's coordinates and how many
 *   forward calls the layer has made (see resetGumbelNoise). `gumbel_noise: true` adds the same noise to any variant.
 * - Masked: softmax over the positions where `mask` is true; the others are exactly 0 (a fully masked row is all 0).
 *   `mask` holds one row (applied to every row) or a multiple of rows that divides a sample (e.g. a whole S×S mask).
 * - Sparse: sparsemax (Martins & Astudillo 2016), exact zeros.
 * - Entmax: α-entmax with α = `entmax_alpha` (default 1.5) ≥ 1: α = 1.5 exactly by sorting (Peters et al. 2019),
 *   1 = softmax, 2 = sparsemax, other α by bisection to double precision.
 * - Adaptive: softmax(x̂/T) with x̂ the row standardized to mean 0 and variance 1 (σ = sqrt(var + `epsilon`),
 *   default 1e-5): the effective temperature T·σ adapts to the spread of the logits (the original falls back to Standard).
 * - Mixture: (2 − α)·softmax(x/T) + (α − 1)·sparsemax(x/T), α = `entmax_alpha` in [1, 2] (default 1.5): the
 *   original's dense/sparse blend (its Entmax approximation) as its own variant (the original falls back to Standard).
 * Backward is the exact Jacobian-vector product of each. Like the original, the layer's activation and dtype are
 * not applied (it has no weights; outputs are float32).
 */
export const softmaxKind: LayerKind = {
  name: 'Softmax',
  aliases: [],

  configure(layer, path) {
    const c = layer.config;
    const type = parseSoftmaxType(c.softmaxType, `${path}.softmax_type`);
    c.softmaxType = type;
    const n = c.inputHeight ? c.inputHeight : undefined;
    if (c.temperature !== undefined && c.temperature < 0) {
      throw new SpecError(`${path}.temperature`, 'a positive number (0 or nothing means 1)', c.temperature);
    }
    if (c.entmaxAlpha !== undefined && c.entmaxAlpha !== 0) {
      if (c.entmaxAlpha < 1) throw new SpecError(`${path}.entmax_alpha`, 'a number ≥ 1 (1 = softmax, 1.5 = entmax-1.5, 2 = sparsemax)', c.entmaxAlpha);
      if (type === 'Mixture' && c.entmaxAlpha > 2) {
        throw new SpecError(`${path}.entmax_alpha`, 'a number in [1, 2] for Mixture (the sparsemax share is alpha − 1)', c.entmaxAlpha);
      }
    }
    if (c.epsilon !== undefined && !(c.epsilon > 0)) throw new SpecError(`${path}.epsilon`, 'a positive number', c.epsilon);
    c.hierarchyLevels?.forEach((v, i) => requirePositive(v, `${path}.hierarchy_levels[${i}]`));
    if (n !== undefined) {
      if (type === 'Grid' || type === 'Hierarchical') {
        const group = groupSize(layer, n);
        if (typeof group === 'string') {
          const field = type === 'Hierarchical' && c.hierarchyLevels?.length ? 'hierarchy_levels' : c.softmaxCols ? 'softmax_cols' : 'softmax_rows';
          throw SpecError.at(`${path}.${field}`, group);
        }
      }
      if (type === 'Masked' && c.mask?.length && c.mask.length % n !== 0) {
        throw new SpecError(`${path}.mask`, `a multiple of input_height (${n}) entries`, c.mask);
      }
    }
  },

  parameterCount: () => 0,
  initParameters() {},

  forward(layer, input) {
    const c = layer.config;
    const type = c.softmaxType as SoftmaxType;
    const n = rowSize(layer, input);
    const group = groupFor(layer, input, n);
    const temperature = c.temperature ? c.temperature : 1;
    const alpha = c.entmaxAlpha ? c.entmaxAlpha : DEFAULT_ENTMAX_ALPHA;
    const x = input.data;
    const size = x.length;
    const probs = new Float32Array(size);
    const cache: SoftmaxCache = { type, group, temperature, probs, alpha };

    let noise: Float32Array | undefined;
    if (type === 'Gumbel' || c.gumbelNoise) noise = cache.noise = gumbelNoise(layer, size);
    const mask = type === 'Masked' && c.mask?.length ? maskFor(layer, input, n) : null;
    const sample = input.rowSize;
    if (type === 'Adaptive') {
      cache.xhat = new Float64Array(size);
      cache.invStd = new Float64Array(size / group);
    }
    if (type === 'Mixture') {
      cache.soft = new Float32Array(size);
      cache.sparse = new Float32Array(size);
    }

    const z = new Float64Array(group);
    const p = new Float64Array(group);
    const q = new Float64Array(group);
    const scratch = new Float64Array(group);
    const invT = 1 / temperature;
    const eps = c.epsilon ?? DEFAULT_ADAPTIVE_EPS;
    for (let base = 0, g = 0; base < size; base += group, g++) {
      if (type === 'Adaptive') {
        for (let i = 0; i < group; i++) z[i] = noise ? x[base + i] + noise[base + i] : x[base + i];
        const inv = standardizeRow(z, group, eps);
        cache.invStd![g] = inv;
        for (let i = 0; i < group; i++) {
          cache.xhat![base + i] = z[i];
          z[i] *= invT;
        }
      } else {
        for (let i = 0; i < group; i++) z[i] = (noise ? x[base + i] + noise[base + i] : x[base + i]) * invT;
      }
      if (mask) {
        const offset = base % sample;
        for (let i = 0; i < group; i++) if (!mask[(offset + i) % mask.length]) z[i] = -Infinity;
      }
      switch (type) {
        case 'Sparse':
          sparsemaxRow(z, group, p, scratch);
          break;
        case 'Entmax':
          entmaxRow(z, group, alpha, p, scratch);
          break;
        case 'Mixture': {
          const share = alpha - 1;
          softmaxRow(z, group, p);
          sparsemaxRow(z, group, q, scratch);
          for (let i = 0; i < group; i++) {
            cache.soft![base + i] = p[i];
            cache.sparse![base + i] = q[i];
            p[i] = (1 - share) * p[i] + share * q[i];
          }
          break;
        }
        default:
          softmaxRow(z, group, p);
      }
      for (let i = 0; i < group; i++) probs[base + i] = p[i];
    }
    return { output: new Tensor(probs, input.shape), cache: { input, extra: cache } };
  },

  backward(_layer, gradOutput, layerCache) {
    const cache = layerCache.extra as SoftmaxCache;
    const { type, group, probs, alpha } = cache;
    const gy = gradOutput.data;
    const size = probs.length;
    const gradIn = new Float32Array(size);
    const invT = 1 / cache.temperature;
    const h = new Float64Array(group);
    for (let base = 0, g = 0; base < size; base += group, g++) {
      switch (type) {
        case 'Sparse':
          sparsemaxJvp(probs, gy, base, group, 1, h, false);
          break;
        case 'Entmax':
          entmaxJvp(probs, gy, base, group, alpha, h);
          break;
        case 'Mixture': {
          const share = alpha - 1;
          softmaxJvp(cache.soft!, gy, base, group, 1 - share, h, false);
          sparsemaxJvp(cache.sparse!, gy, base, group, share, h, true);
          break;
        }
        default:
          softmaxJvp(probs, gy, base, group, 1, h, false);
      }
      if (type === 'Adaptive') {
        // Through x̂ = (x − μ)/σ: dx = (h − mean(h) − x̂·mean(h·x̂))/σ, with h = dL/dx̂ = JVP/T.
        const xhat = cache.xhat!;
        let sumH = 0;
        let sumHX = 0;
        for (let i = 0; i < group; i++) {
          sumH += h[i];
          sumHX += h[i] * xhat[base + i];
        }
        const mH = sumH / group;
        const mHX = sumHX / group;
        const k = cache.invStd![g] * invT;
        for (let i = 0; i < group; i++) gradIn[base + i] = k * (h[i] - mH - xhat[base + i] * mHX);
      } else {
        for (let i = 0; i < group; i++) gradIn[base + i] = h[i] * invT;
      }
    }
    return { gradInput: new Tensor(gradIn, layerCache.input.shape), gradWeights: null };
  },
};

/** Softmax of `values` (max-subtracted, in double); −Infinity entries get exactly 0. */
export function softmax(values: ArrayLike<number>): Float64Array {
  const z = Float64Array.from(values);
  const p = new Float64Array(z.length);
  softmaxRow(z, z.length, p);
  return p;
}

/** Sparsemax of `values`: the Euclidean projection onto the simplex, with exact zeros. */
export function sparsemax(values: ArrayLike<number>): Float64Array {
  const z = Float64Array.from(values);
  const p = new Float64Array(z.length);
  sparsemaxRow(z, z.length, p, new Float64Array(z.length));
  return p;
}

/** α-entmax of `values` (α ≥ 1; default 1.5, computed exactly by sorting). */
export function entmax(values: ArrayLike<number>, alpha = DEFAULT_ENTMAX_ALPHA): Float64Array {
  const z = Float64Array.from(values);
  const p = new Float64Array(z.length);
  entmaxRow(z, z.length, alpha, p, new Float64Array(z.length));
  return p;
}

const gumbelCalls = new WeakMap<Layer, number>();

/**
 * Sets the Gumbel call counter of `layer`: its next forward pass draws the noise of call number `call`
 * (0 = the noise of a freshly built layer). The noise of call k is a pure function of (z, y, x, l, k).
 */
export function resetGumbelNoise(layer: Layer, call = 0): void {
  gumbelCalls.set(layer, call);
}

/** Gumbel(0, 1) noise for one forward call; advances the layer's call counter. */
function gumbelNoise(layer: Layer, size: number): Float32Array {
  const call = gumbelCalls.get(layer) ?? 0;
  gumbelCalls.set(layer, call + 1);
  const coordSeed = mixSeed(mixSeed(mixSeed(mixSeed(0x5f3759df, layer.z), layer.y), layer.x), layer.l);
  const rng = new Rng(mixSeed(coordSeed, call));
  const noise = new Float32Array(size);
  // u in (0, 1) strictly, so both logarithms are finite.
  for (let i = 0; i < size; i++) noise[i] = -Math.log(-Math.log((rng.nextU32() + 0.5) / 4294967296));
  return noise;
}

function rowSize(layer: Layer, input: Tensor): number {
  const n = layer.config.inputHeight ? layer.config.inputHeight : input.rowSize;
  if (n === 0 || input.size % n !== 0 || input.rowSize % n !== 0) {
    throw new ShapeError(
      `${layer.kind.name} at ${coordText(layer)}: expected a multiple of ${n} values per sample (rows of input_height), got input of shape [${input.shape.join(', ')}]`,
    );
  }
  return n;
}

/** The group size of Grid/Hierarchical for rows of `n`, or a description of why it does not fit. */
function groupSize(layer: Layer, n: number): number | string {
  const c = layer.config;
  const levels = c.softmaxType === 'Hierarchical' ? c.hierarchyLevels ?? [] : [];
  if (levels.length > 0) {
    const total = levels.reduce((a, b) => a * b, 1);
    if (total !== n) return `hierarchy_levels [${levels.join(', ')}] hold ${total} values, but a row has ${n}`;
    return levels[levels.length - 1];
  }
  const rows = c.softmaxRows ?? 0;
  const cols = c.softmaxCols ?? 0;
  if (rows > 0 && cols > 0) return rows * cols === n ? cols : `softmax_rows × softmax_cols = ${rows}×${cols} = ${rows * cols}, but a row has ${n} values`;
  if (cols > 0) return n % cols === 0 ? cols : `softmax_cols ${cols} does not divide a row of ${n} values`;
  if (rows > 0) return n % rows === 0 ? n / rows : `softmax_rows ${rows} does not divide a row of ${n} values`;
  return n;
}

function groupFor(layer: Layer, input: Tensor, n: number): number {
  const t = layer.config.softmaxType;
  if (t !== 'Grid' && t !== 'Hierarchical') return n;
  const group = groupSize(layer, n);
  if (typeof group === 'string') {
    throw new ShapeError(`${layer.kind.name} at ${coordText(layer)}: ${group} (input of shape [${input.shape.join(', ')}])`);
  }
  return group;
}

function maskFor(layer: Layer, input: Tensor, n: number): boolean[] {
  const mask = layer.config.mask!;
  if (mask.length % n !== 0 || input.rowSize % mask.length !== 0) {
    throw new ShapeError(
      `${layer.kind.name} at ${coordText(layer)}: a mask of ${mask.length} entries fits neither a row (${n}) nor a sample (${input.rowSize}) of input of shape [${input.shape.join(', ')}]`,
    );
  }
  return mask;
}

/** p = softmax(z[0..n)); a row of only −Infinity gives all zeros. */
function softmaxRow(z: Float64Array, n: number, p: Float64Array): void {
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (z[i] > max) max = z[i];
  if (max === -Infinity) {
    p.fill(0, 0, n);
    return;
  }
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const e = Math.exp(z[i] - max);
    p[i] = e;
    sum += e;
  }
  const inv = 1 / sum;
  for (let i = 0; i < n; i++) p[i] *= inv;
}

/** p = sparsemax(z): τ from the sorted values, p = max(z − τ, 0). */
function sparsemaxRow(z: Float64Array, n: number, p: Float64Array, sorted: Float64Array): void {
  sortDescending(z, n, sorted);
  // Shifted by the max (sparsemax is shift invariant) so that the 1 below is not lost next to huge logits.
  const max = sorted[0];
  let cum = 0;
  let k = 1;
  let cumK = 0;
  for (let j = 1; j < n; j++) {
    const v = sorted[j] - max;
    cum += v;
    // The support is the longest prefix with 1 + (j+1)·z_(j) > Σ_{i≤j} z_(i).
    if (1 + (j + 1) * v > cum) {
      k = j + 1;
      cumK = cum;
    } else {
      break;
    }
  }
  const tau = max + (cumK - 1) / k;
  for (let i = 0; i < n; i++) p[i] = z[i] > tau ? z[i] - tau : 0;
}

/** p = α-entmax(z): softmax (α = 1), exact sort-based entmax-1.5, sparsemax (α = 2), else bisection. */
function entmaxRow(z: Float64Array, n: number, alpha: number, p: Float64Array, scratch: Float64Array): void {
  if (alpha === 1) return softmaxRow(z, n, p);
  if (alpha === 2) return sparsemaxRow(z, n, p, scratch);
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (z[i] > max) max = z[i];
  if (alpha === 1.5) {
    // p = [(z − max)/2 − τ]₊², τ from the support size k* = #{k : τ_k ≤ y_(k)} (Peters et al. 2019, Alg. 2).
    for (let i = 0; i < n; i++) p[i] = (z[i] - max) / 2;
    sortDescending(p, n, scratch);
    let sum = 0;
    let sumSq = 0;
    let tauStar = 0;
    for (let k = 1; k <= n; k++) {
      const y = scratch[k - 1];
      sum += y;
      sumSq += y * y;
      const mean = sum / k;
      const ss = k * (sumSq / k - mean * mean);
      const delta = (1 - ss) / k;
      const tau = mean - Math.sqrt(delta > 0 ? delta : 0);
      if (tau <= y) tauStar = tau;
      else break;
    }
    for (let i = 0; i < n; i++) {
      const d = p[i] - tauStar;
      p[i] = d > 0 ? d * d : 0;
    }
    return;
  }
  // General α: p = [(α−1)(z − max) − τ]₊^{1/(α−1)} with Σp = 1; the root lies in [−1, −n^{1−α}].
  const am1 = alpha - 1;
  const power = 1 / am1;
  for (let i = 0; i < n; i++) scratch[i] = (z[i] - max) * am1;
  let lo = -1;
  let hi = -Math.pow(n, -am1);
  for (let it = 0; it < 200; it++) {
    const mid = (lo + hi) / 2;
    if (mid === lo || mid === hi) break;
    let s = 0;
    for (let i = 0; i < n; i++) {
      const d = scratch[i] - mid;
      if (d > 0) s += Math.pow(d, power);
    }
    if (s >= 1) lo = mid;
    else hi = mid;
  }
  let s = 0;
  for (let i = 0; i < n; i++) {
    const d = scratch[i] - lo;
    p[i] = d > 0 ? Math.pow(d, power) : 0;
    s += p[i];
  }
  for (let i = 0; i < n; i++) p[i] /= s;
}

/** Standardizes z[0..n) in place (two-pass mean and biased variance); returns 1/sqrt(var + eps). */
function standardizeRow(z: Float64Array, n: number, eps: number): number {
  let sum = 0;
  for (let i = 0; i < n; i++) sum += z[i];
  const mean = sum / n;
  let sq = 0;
  for (let i = 0; i < n; i++) {
    const d = z[i] - mean;
    sq += d * d;
  }
  const inv = 1 / Math.sqrt(sq / n + eps);
  for (let i = 0; i < n; i++) z[i] = (z[i] - mean) * inv;
  return inv;
}

/** Copies z[0..n) into out sorted in descending order. */
function sortDescending(z: Float64Array, n: number, out: Float64Array): void {
  for (let i = 0; i < n; i++) out[i] = -z[i];
  (n === out.length ? out : out.subarray(0, n)).sort();
  for (let i = 0; i < n; i++) out[i] = -out[i];
}

/** h (+)= w·p⊙(g − p·g) over one group: the softmax Jacobian-vector product. */
function softmaxJvp(p: Float32Array, g: Float32Array, base: number, n: number, w: number, h: Float64Array, add: boolean): void {
  let dot = 0;
  for (let i = 0; i < n; i++) dot += p[base + i] * g[base + i];
  for (let i = 0; i < n; i++) {
    const pi = p[base + i];
    // pi = 0 (masked, underflowed) gives +0, not −0.
    const v = pi === 0 ? 0 : w * pi * (g[base + i] - dot);
    h[i] = add ? h[i] + v : v;
  }
}

/** h (+)= w·(g − mean_S g) on the support S = {p > 0}, 0 elsewhere: the sparsemax Jacobian-vector product. */
function sparsemaxJvp(p: Float32Array, g: Float32Array, base: number, n: number, w: number, h: Float64Array, add: boolean): void {
  let sum = 0;
  let count = 0;
  for (let i = 0; i < n; i++) {
    if (p[base + i] > 0) {
      sum += g[base + i];
      count++;
    }
  }
  const mean = count > 0 ? sum / count : 0;
  for (let i = 0; i < n; i++) {
    const v = p[base + i] > 0 ? w * (g[base + i] - mean) : 0;
    h[i] = add ? h[i] + v : v;
  }
}

/** α-entmax JVP: with s = p^{2−α} on the support, h = s⊙g − s·(s·g)/Σs (softmax at α = 1, sparsemax at α = 2). */
function entmaxJvp(p: Float32Array, g: Float32Array, base: number, n: number, alpha: number, h: Float64Array): void {
  let sumS = 0;
  let sumSG = 0;
  for (let i = 0; i < n; i++) {
    const pi = p[base + i];
    const s = pi > 0 ? (alpha === 1.5 ? Math.sqrt(pi) : Math.pow(pi, 2 - alpha)) : 0;
    h[i] = s;
    sumS += s;
    sumSG += s * g[base + i];
  }
  const q = sumS > 0 ? sumSG / sumS : 0;
  for (let i = 0; i < n; i++) h[i] *= g[base + i] - q;
}

registerLayerKind(softmaxKind);
