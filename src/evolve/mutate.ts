import { LoomError, SpecError } from '../core/errors.js';
import { mixSeed, Rng } from '../core/rng.js';
import { Tensor } from '../core/tensor.js';
import { forwardNetwork } from '../engine/run.js';
import type { VolumetricNetwork } from '../grid/network.js';
import { buildNetwork } from '../grid/spec.js';
import { Activation, activationName } from '../layers/activations.js';
import { coordText, walkLayer, type Layer } from '../layers/layer.js';
import { cloneNetwork } from './clone.js';

/** A layer spec (the JSON of one `layers[]` entry, without coordinates) that a type swap may put in place. */
export type LayerTemplate = Record<string, unknown> & { type: string };

export interface MutationConfig {
  /** Probability that each layer's weights get uniform noise in ±weightPerturbScale. Default 0.8. */
  weightPerturbRate?: number;
  /** Default 0.05 (the original's). */
  weightPerturbScale?: number;
  /** Probability per layer of a new activation from `activations`. Default 0.1. */
  activationRate?: number;
  /** Probability per grid layer of becoming another type from `templates`, freshly initialized. Default 0.1. */
  typeSwapRate?: number;
  /** Probability per grid layer of flipping its disabled flag. Default 0.02. */
  toggleRate?: number;
  /** Probability per mutation of adding a remote link from a layer to an earlier one. Default 0.05. */
  linkAddRate?: number;
  /** Probability per mutation of dropping one remote link. Default 0.02. */
  linkDropRate?: number;
  activations?: readonly Activation[];
  /** What a type swap may become. Default: none (no type swaps); see `templatesForWidth`. */
  templates?: readonly LayerTemplate[];
  /**
   * Input shape of one probe forward pass. Structural mutations (type swap, toggle, links) are kept
   * only when the mutated network still runs on it and gives the same output shape; without a probe
   * shape they are not attempted.
   */
  probeShape?: readonly number[];
  /** Default 1. */
  seed?: number;
}

export interface MutationResult {
  child: VolumetricNetwork;
  /** What changed, e.g. "activation (0,0,0,1) Tanh -> ReLU". */
  mutations: string[];
}

export const DEFAULT_MUTATION_ACTIVATIONS: readonly Activation[] = [
  Activation.ReLU, Activation.Silu, Activation.GELU, Activation.Tanh, Activation.Sigmoid, Activation.Linear,
];

/** Type-swap candidates that map `width` features to `width` features. */
export function templatesForWidth(width: number): LayerTemplate[] {
  return [
    { type: 'Dense', input_height: width, output_height: width, activation: 'Tanh' },
    { type: 'RMSNorm', input_height: width },
    { type: 'LayerNorm', input_height: width },
    { type: 'SwiGLU', input_height: width, output_height: 2 * width },
    { type: 'Residual' },
  ];
}

/**
 * NEAT-style mutation of a copy of `net`: weight noise, activation swaps, layer-type swaps with
 * re-initialization, layer toggles, remote link add/drop. The parent is never modified.
 */
export function mutateNetwork(net: VolumetricNetwork, cfg: MutationConfig = {}): MutationResult {
  const rate = (name: keyof MutationConfig, fallback: number): number => {
    const v = (cfg[name] as number | undefined) ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > 1) throw new SpecError(name, 'a probability in [0, 1]', v);
    return v;
  };
  const perturbRate = rate('weightPerturbRate', 0.8);
  const scale = cfg.weightPerturbScale ?? 0.05;
  if (!Number.isFinite(scale) || scale < 0) throw new SpecError('weightPerturbScale', 'a non-negative number', scale);
  const activationRate = rate('activationRate', 0.1);
  const typeSwapRate = rate('typeSwapRate', 0.1);
  const toggleRate = rate('toggleRate', 0.02);
  const linkAddRate = rate('linkAddRate', 0.05);
  const linkDropRate = rate('linkDropRate', 0.02);
  const activations = cfg.activations ?? DEFAULT_MUTATION_ACTIVATIONS;
  const templates = cfg.templates ?? [];
  const rng = new Rng(cfg.seed ?? 1);
  const child = cloneNetwork(net);
  const mutations: string[] = [];
  const probe = cfg.probeShape ? makeProbe(child, cfg.probeShape) : null;

  /** Applies a structural change, keeping it only if the network still runs with the same output shape. */
  const tryStructural = (apply: () => () => void, what: string): void => {
    if (!probe) return;
    const undo = apply();
    child.invalidatePlan();
    if (probe.accepts()) {
      mutations.push(what);
    } else {
      undo();
      child.invalidatePlan();
    }
  };

  for (const [index, gridLayer] of [...child.entries()]) {
    for (const layer of walkLayer(gridLayer)) {
      if (rng.uniform() < perturbRate && layer.weights && layer.weights.count > 0) {
        const m = layer.weights.master;
        for (let i = 0; i < m.length; i++) m[i] += (rng.uniform() * 2 - 1) * scale;
        layer.weights.markMasterChanged();
      }
      if (rng.uniform() < activationRate && activations.length > 0) {
        const next = activations[rng.int(activations.length)];
        if (next !== layer.activation) {
          mutations.push(`activation ${coordText(gridLayer)}${layer === gridLayer ? '' : ' (nested)'} ${activationName(layer.activation)} -> ${activationName(next)}`);
          layer.activation = next;
        }
      }
    }
    if (rng.uniform() < typeSwapRate && templates.length > 0) {
      const candidates = templates.filter((t) => t.type.toUpperCase() !== gridLayer.kind.name.toUpperCase());
      if (candidates.length > 0) {
        const template = candidates[rng.int(candidates.length)];
        const seed = rng.nextU32();
        const current = child.cells[index]!;
        tryStructural(() => {
          const replacement = layerFromTemplate(template, current, seed);
          child.cells[index] = replacement;
          return () => {
            child.cells[index] = current;
          };
        }, `type ${coordText(current)} ${current.kind.name} -> ${template.type}`);
      }
    }
    if (rng.uniform() < toggleRate) {
      const layer = child.cells[index]!;
      tryStructural(() => {
        layer.disabled = !layer.disabled;
        return () => {
          layer.disabled = !layer.disabled;
        };
      }, `${layer.disabled ? 'enable' : 'disable'} ${coordText(layer)}`);
    }
  }

  if (rng.uniform() < linkAddRate) {
    const enabled = child.layers().filter((l) => !l.disabled);
    if (enabled.length >= 2) {
      const at = 1 + rng.int(enabled.length - 1);
      const source = enabled[at];
      const target = enabled[rng.int(at)];
      const previous = source.remote;
      tryStructural(() => {
        source.remote = { z: target.z, y: target.y, x: target.x, l: target.l };
        return () => {
          source.remote = previous;
        };
      }, `link ${coordText(source)} <- ${coordText(target)}`);
    }
  }
  if (rng.uniform() < linkDropRate) {
    const linked = child.layers().filter((l) => l.remote);
    if (linked.length > 0) {
      const layer = linked[rng.int(linked.length)];
      const previous = layer.remote!;
      tryStructural(() => {
        layer.remote = null;
        return () => {
          layer.remote = previous;
        };
      }, `unlink ${coordText(layer)} <- ${coordText(previous)}`);
    }
  }
  child.invalidatePlan();
  return { child, mutations };
}

/** A freshly initialized layer built from `template` at `at`'s coordinate (activation kept unless the template sets one). */
export function layerFromTemplate(template: LayerTemplate, at: Layer, seed: number): Layer {
  const entry: Record<string, unknown> = { activation: activationName(at.activation), ...template, z: 0, y: 0, x: 0, l: 0 };
  delete entry.weights;
  const built = buildNetwork({ layers: [entry] }, { seed: mixSeed(seed, 0) });
  const layer = built.cells[0]!;
  layer.z = at.z;
  layer.y = at.y;
  layer.x = at.x;
  layer.l = at.l;
  layer.remote = at.remote ? { ...at.remote } : null;
  layer.disabled = at.disabled;
  return layer;
}

function makeProbe(net: VolumetricNetwork, shape: readonly number[]) {
  const input = Tensor.zeros(shape);
  const outputShape = (): string | null => {
    try {
      const out = forwardNetwork(net, input).output;
      for (const v of out.data) if (!Number.isFinite(v)) return null;
      return out.shape.join('x');
    } catch (e) {
      if (e instanceof LoomError) return null;
      throw e;
    }
  };
  const expected = outputShape();
  if (expected === null) throw new SpecError('probeShape', `an input shape the parent network accepts`, `[${shape.join(', ')}]`);
  return { accepts: () => outputShape() === expected };
}
