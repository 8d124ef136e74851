import type { DType } from '../core/dtype.js';
import type { Tensor } from '../core/tensor.js';
import type { PackedVersion, WeightStore } from '../core/weightStore.js';
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
  /** Inference copy with the kind's `matrices` packed (Q4_0, int8); `weights` is null when only this copy is kept. */
  packed?: PackedWeights;
}

/** A weight matrix inside a layer's parameter vector: [rows, cols] row-major at `offset`. */
export interface WeightMatrix {
  offset: number;
  rows: number;
  cols: number;
}

/** What forwardIncremental receives: the layer's parameters (float32 or packed), its skip, and per-sequence state. */
export interface IncrementalContext {
  readonly skip: Tensor | null;
  /** out[m×n] = x[m×k]·Wᵀ (+ the n parameters at biasOffset) for the n×k matrix at `offset`, one of the kind's `matrices`. */
  linear(x: Float32Array, m: number, offset: number, n: number, k: number, out: Float32Array, biasOffset?: number): void;
  /** Row `row` of the n×k matrix at `offset`, written to out[at..at+k). */
  matrixRow(offset: number, n: number, k: number, row: number, out: Float32Array, at: number): void;
  /** Parameters [offset, offset + length) that are not in a matrix (biases, gains). */
  vector(offset: number, length: number): Float32Array;
  /** This layer's state for the current sequence (a KV cache), made on first use for up to `maxSeq` positions. */
  state<T>(create: (maxSeq: number) => T): T;
}

/** Packed parameter storage of one layer (see src/engine/decode.ts). */
export interface PackedWeights {
  readonly format: string;
  readonly count: number;
  linear(x: Float32Array, m: number, offset: number, n: number, k: number, out: Float32Array, biasOffset?: number): void;
  matrixRow(offset: number, n: number, k: number, row: number, out: Float32Array, at: number): void;
  vector(offset: number, length: number): Float32Array;
  /** Bytes held: packed blocks, scales and the float32 vectors. */
  residentBytes(): number;
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
  /**
   * With `inputGradient` false the caller will not read `gradInput` (the network input), so a kind may
   * skip computing it and return zeros. `gradWeightsInto`, when given, is the caller's buffer from an
   * earlier pass (see BackwardOptions.gradientBuffers): a kind may overwrite it, when its length is the
   * parameter count, and return it as `gradWeights` instead of allocating.
   */
  backward(layer: Layer, gradOutput: Tensor, cache: LayerCache, weights: Float32Array | null, inputGradient?: boolean, gradWeightsInto?: Float32Array): LayerBackwardResult;
  /** Values per sample the layer reads and writes, where its config fixes them (checked along remote links at build time). */
  sampleWidths?(layer: Layer): SampleWidths;
  /**
   * Inference straight from the packed weights of a non-float32 dtype (no trace kept); null when this
   * dtype or shape has no such kernel, and the engine then decodes the weights as usual.
   */
  forwardPacked?(layer: Layer, input: Tensor, version: PackedVersion): Tensor | null;
  /**
   * Incremental decoding: the outputs for new positions of a sequence ([batch, n, ...]) given what
   * `ctx.state` kept of earlier ones; equals the matching rows of a full forward. Kinds without it cannot decode incrementally.
   */
  forwardIncremental?(layer: Layer, input: Tensor, ctx: IncrementalContext): Tensor;
  /** The weight matrices in the parameter vector that packed storage may quantize (the rest stays float32). */
  matrices?(layer: Layer): readonly WeightMatrix[];
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
