import type { DType } from '../core/dtype.js';
import type { VolumetricNetwork } from '../grid/network.js';
import type { Coord, Layer } from '../layers/layer.js';

/** One layer's DNA: where it sits, what it is, and its unit-length, precision-simulated weights. */
export interface LayerSignature extends Coord {
  type: string;
  dtype: DType;
  weights: Float32Array;
}

export type NetworkDNA = LayerSignature[];

/** A pattern found at `to` in the second network that sits at `from` in the first. */
export interface LogicShift {
  from: string;
  to: string;
  overlap: number;
}

export interface NetworkComparison {
  /** Mean per-coordinate overlap over coordinates present in both networks (-1..1; 1 = identical). */
  overallOverlap: number;
  /** "z,y,x,l" -> cosine similarity of the two signatures at that coordinate. */
  layerOverlaps: Record<string, number>;
  logicShifts: LogicShift[];
}

/** The original's threshold above which a cross-coordinate match counts as the same logic. */
export const LOGIC_SHIFT_THRESHOLD = 0.8;

export function coordKey(c: Coord): string {
  return `${c.z},${c.y},${c.x},${c.l}`;
}

/** Signatures of every placed grid layer (disabled ones included: they still carry genes), in traversal order. */
export function extractDNA(net: VolumetricNetwork): NetworkDNA {
  return net.layers().map((layer) => ({
    z: layer.z,
    y: layer.y,
    x: layer.x,
    l: layer.l,
    type: layer.kind.name,
    dtype: layer.dtype,
    weights: layerSignature(layer),
  }));
}

/**
 * Weighted layers: their weights as the forward pass sees them in the layer's dtype, normalized.
 * Containers: the concatenated signatures of their nested layers, normalized. Layers with no
 * weights anywhere below them: the neutral signature [1].
 */
export function layerSignature(layer: Layer): Float32Array {
  const parts: Float32Array[] = [];
  if (layer.weights && layer.weights.count > 0) parts.push(layer.weights.getActive(layer.dtype));
  const nested = [...(layer.children ?? []), ...Object.values(layer.namedChildren ?? {})];
  for (const child of nested) {
    if (hasWeights(child)) parts.push(layerSignature(child));
  }
  if (parts.length === 0) return Float32Array.of(1);
  if (parts.length === 1 && nested.length === 0) return normalize(parts[0]);
  return normalize(concat(parts));
}

function hasWeights(layer: Layer): boolean {
  if (layer.weights && layer.weights.count > 0) return true;
  return [...(layer.children ?? []), ...Object.values(layer.namedChildren ?? {})].some(hasWeights);
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** The unit vector of `v` (all zeros stays all zeros). */
export function normalize(v: Float32Array): Float32Array {
  let sumSq = 0;
  for (let i = 0; i < v.length; i++) sumSq += v[i] * v[i];
  const out = new Float32Array(v.length);
  if (sumSq === 0) return out;
  const mag = Math.sqrt(sumSq);
  for (let i = 0; i < v.length; i++) out[i] = v[i] / mag;
  return out;
}

/**
 * Cosine similarity of two signatures (-1..1). Different type, dtype or length: 0 (no common
 * ground). Two all-zero signatures are identical (1); one all-zero against a non-zero one is 0.
 */
export function signatureSimilarity(a: LayerSignature, b: LayerSignature): number {
  if (a.type !== b.type || a.dtype !== b.dtype || a.weights.length !== b.weights.length) return 0;
  // Identical signatures are exactly 1 (a float dot product of unit vectors only comes close).
  if (a.weights.every((v, i) => v === b.weights[i])) return 1;
  let dot = 0;
  let zeroA = true;
  let zeroB = true;
  for (let i = 0; i < a.weights.length; i++) {
    if (a.weights[i] !== 0) zeroA = false;
    if (b.weights[i] !== 0) zeroB = false;
    dot += a.weights[i] * b.weights[i];
  }
  if (zeroA && zeroB) return 1;
  if (zeroA || zeroB) return 0;
  return Math.max(-1, Math.min(1, dot));
}

/**
 * Per-coordinate overlaps, their mean, and logic shifts: a layer of `a` whose best match in `b`
 * (above LOGIC_SHIFT_THRESHOLD) sits at another coordinate. On ties the same-coordinate mate wins,
 * so identical neutral signatures (weightless layers) never count as shifts.
 */
export function compareDNA(a: NetworkDNA, b: NetworkDNA): NetworkComparison {
  const byKey = new Map(b.map((s) => [coordKey(s), s]));
  const layerOverlaps: Record<string, number> = {};
  let total = 0;
  let matched = 0;
  for (const s of a) {
    const key = coordKey(s);
    const mate = byKey.get(key);
    if (!mate) continue;
    const overlap = signatureSimilarity(s, mate);
    layerOverlaps[key] = overlap;
    total += overlap;
    matched++;
  }
  const logicShifts: LogicShift[] = [];
  for (const s of a) {
    const key = coordKey(s);
    const mate = byKey.get(key);
    let best = mate ? signatureSimilarity(s, mate) : -Infinity;
    let bestKey = mate ? key : '';
    for (const t of b) {
      if (t.weights.length !== s.weights.length) continue;
      const overlap = signatureSimilarity(s, t);
      if (overlap > best) {
        best = overlap;
        bestKey = coordKey(t);
      }
    }
    if (best > LOGIC_SHIFT_THRESHOLD && bestKey !== key) logicShifts.push({ from: key, to: bestKey, overlap: best });
  }
  return { overallOverlap: matched > 0 ? total / matched : 0, layerOverlaps, logicShifts };
}

export function compareNetworks(a: VolumetricNetwork, b: VolumetricNetwork): NetworkComparison {
  return compareDNA(extractDNA(a), extractDNA(b));
}
