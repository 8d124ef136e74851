import type { DType } from '../core/dtype.js';
import type { Tensor } from '../core/tensor.js';
import type { WeightStore } from '../core/weightStore.js';
import type { Rng } from '../core/rng.js';
import type { LayerConfig } from '../grid/fields.js';
import type { Activation } from './activations.js';

export interface Coord {
  z: number;
  y: number;
  x: number;
  l: number;
}

/** One layer placed in the grid. Its behaviour comes entirely from `kind` (the registry entry). */
export interface Layer extends Coord {
  kind: LayerKind;
  activation: Activation;
  dtype: DType;
  config: LayerConfig;
  /** Null for weightless layers (Residual, Softmax, ...). */
  weights: WeightStore | null;
  disabled: boolean;
  /** When set, the layer reads this coordinate's output instead of the previous layer's (Residual: as its skip). */
  remote: Coord | null;
  /** Nested layers of containers (Sequential: its steps; Parallel: its branches). */
  children?: Layer[];
  /** Single nested layers with a role, keyed by their JSON field (Parallel's `filter_gate`). */
  namedChildren?: Record<string, Layer>;
}

/** What a forward call keeps for its backward call. */
export interface LayerCache {
  input: Tensor;
  pre?: Tensor;
  skip?: Tensor;
  extra?: unknown;
}

export interface LayerForwardResult {
  output: Tensor;
  cache: LayerCache;
}

export interface LayerBackwardResult {
  gradInput: Tensor;
  /** Gradient of the layer's whole parameter vector (same layout as WeightStore.master), or null. */
  gradWeights: Float32Array | null;
  /** Gradient with respect to the skip input, for layers with `takesSkip`. */
  gradSkip?: Tensor;
  /** Parameter gradients of nested layers (containers), keyed by a path relative to this layer. */
  childGradients?: ChildGradient[];
}

export interface ChildGradient {
  /** Path below the container, e.g. "1" for its second child, "1.0" for that child's first child. */
  path: string;
  layer: Layer;
  grad: Float32Array;
}

/**
 * A layer type, defined once: configuration checks, parameter layout and init, forward and backward.
 * The grid engine only ever calls through this interface.
 */
export interface LayerKind {
  /** Canonical name as persistence writes it, e.g. "Dense". */
  readonly name: string;
  /** Other accepted spellings (matched case-insensitively). */
  readonly aliases: readonly string[];
  /** The engine passes a skip tensor (see Residual). */
  readonly takesSkip?: boolean;
  /** Containers: the JSON field holding their nested layers. */
  readonly childrenField?: 'sequential_layers' | 'parallel_branches';
  /** JSON fields holding one nested layer each (e.g. `filter_gate`). */
  readonly namedChildFields?: readonly string[];
  /** Validates the layer's config and fills defaults; throws SpecError naming `path`. */
  configure(layer: Layer, path: string): void;
  parameterCount(layer: Layer): number;
  initParameters(layer: Layer, params: Float32Array, rng: Rng): void;
  /** `weights` are the float32 values of the layer's active dtype (never the master when morphed). */
  forward(layer: Layer, input: Tensor, weights: Float32Array | null, skip: Tensor | null): LayerForwardResult;
  backward(layer: Layer, gradOutput: Tensor, cache: LayerCache, weights: Float32Array | null): LayerBackwardResult;
  /** Values per sample the layer reads and writes, where its config fixes them (checked along remote links at build time). */
  sampleWidths?(layer: Layer): SampleWidths;
}

export interface SampleWidths {
  input?: number;
  output?: number;
}

/** The layer and all layers nested in it, depth first. */
export function* walkLayer(layer: Layer): IterableIterator<Layer> {
  yield layer;
  for (const child of layer.children ?? []) yield* walkLayer(child);
  for (const child of Object.values(layer.namedChildren ?? {})) yield* walkLayer(child);
}

export function coordText(c: Coord): string {
  return `(${c.z},${c.y},${c.x},${c.l})`;
}
