import { SpecError } from '../core/errors.js';
import { Rng } from '../core/rng.js';
import type { VolumetricNetwork } from '../grid/network.js';
import type { Layer } from '../layers/layer.js';
import { cloneNetwork } from './clone.js';
import { coordKey, layerSignature, signatureSimilarity } from './dna.js';

export const CROSSOVER_MODES = ['blend', 'point', 'uniform'] as const;
export type CrossoverMode = (typeof CROSSOVER_MODES)[number];

export interface SpliceConfig {
  /** blend: child = (1-α)·A + α·B; point: the first splitRatio of each weight vector from A, the rest from B; uniform: each weight from A or B at random. */
  mode?: CrossoverMode;
  /** α for blend when no fitness is given (0 = all A, 1 = all B). Default 0.5. */
  blendAlpha?: number;
  /** Fraction of each weight vector taken from A in point mode. Default 0.5. */
  splitRatio?: number;
  /**
   * Optional fitness of each parent (higher is better). When their sum is positive the fitter
   * parent dominates: blend uses α = fB/(fA+fB) · (0.5 + 0.5·similarity), so dissimilar layers lean
   * toward A; uniform takes each weight from A with probability fA/(fA+fB).
   */
  fitnessA?: number;
  fitnessB?: number;
  /** Seed for uniform mode. Default 1. */
  seed?: number;
}

export interface SpliceResult {
  child: VolumetricNetwork;
  /** "z,y,x,l" (plus ".path" inside containers) -> cosine similarity of the parents' layers. */
  similarities: Record<string, number>;
  /** Layers whose weights came from both parents. */
  blendedCount: number;
}

/**
 * Crosses two parents layer by layer. The child starts as a copy of A; every weighted layer (nested
 * ones included) that B has at the same coordinate with the same type and parameter count is mixed
 * per `cfg`. Neither parent is modified.
 */
export function spliceNetworks(a: VolumetricNetwork, b: VolumetricNetwork, cfg: SpliceConfig = {}): SpliceResult {
  const mode = cfg.mode ?? 'blend';
  if (!CROSSOVER_MODES.includes(mode)) throw new SpecError('mode', `one of ${CROSSOVER_MODES.join(', ')}`, mode);
  const blendAlpha = checkFraction(cfg.blendAlpha ?? 0.5, 'blendAlpha');
  const splitRatio = checkFraction(cfg.splitRatio ?? 0.5, 'splitRatio');
  const fA = cfg.fitnessA ?? 0;
  const fB = cfg.fitnessB ?? 0;
  for (const [name, f] of [['fitnessA', fA], ['fitnessB', fB]] as const) {
    if (!Number.isFinite(f)) throw new SpecError(name, 'a finite number', f);
  }
  const fitnessSum = fA > 0 || fB > 0 ? Math.max(0, fA) + Math.max(0, fB) : 0;
  const rng = new Rng(cfg.seed ?? 1);
  const child = cloneNetwork(a);
  const similarities: Record<string, number> = {};
  let blendedCount = 0;

  const mix = (target: Layer, la: Layer, lb: Layer, key: string): void => {
    if (la.kind !== lb.kind) return;
    if (la.weights && lb.weights && la.weights.count === lb.weights.count && la.weights.count > 0 && target.weights) {
      const sim = signatureSimilarity(
        { ...la, type: la.kind.name, weights: layerSignature(la) },
        { ...lb, type: lb.kind.name, dtype: la.dtype, weights: layerSignature(lb) },
      );
      similarities[key] = sim;
      const wA = la.weights.master;
      const wB = lb.weights.master;
      const out = target.weights.master;
      if (mode === 'point') {
        const split = Math.min(wA.length, Math.floor(wA.length * splitRatio));
        for (let i = split; i < out.length; i++) out[i] = wB[i];
      } else if (mode === 'uniform') {
        const pA = fitnessSum > 0 ? Math.max(0, fA) / fitnessSum : 0.5;
        for (let i = 0; i < out.length; i++) out[i] = rng.uniform() < pA ? wA[i] : wB[i];
      } else {
        const alpha = fitnessSum > 0 ? (Math.max(0, fB) / fitnessSum) * (0.5 + 0.5 * sim) : blendAlpha;
        for (let i = 0; i < out.length; i++) out[i] = wA[i] * (1 - alpha) + wB[i] * alpha;
      }
      target.weights.markMasterChanged();
      blendedCount++;
    }
    const ca = la.children ?? [];
    const cb = lb.children ?? [];
    for (let i = 0; i < Math.min(ca.length, cb.length); i++) mix(target.children![i], ca[i], cb[i], `${key}.${i}`);
    for (const [name, na] of Object.entries(la.namedChildren ?? {})) {
      const nb = lb.namedChildren?.[name];
      if (nb) mix(target.namedChildren![name], na, nb, `${key}.${name}`);
    }
  };

  for (const [index, la] of a.entries()) {
    const lb = b.contains(la) ? b.cells[b.index(la.z, la.y, la.x, la.l)] : undefined;
    if (!lb) continue;
    mix(child.cells[index]!, la, lb, coordKey(la));
  }
  return { child, similarities, blendedCount };
}

function checkFraction(v: number, name: string): number {
  if (!Number.isFinite(v) || v < 0 || v > 1) throw new SpecError(name, 'a number in [0, 1]', v);
  return v;
}
