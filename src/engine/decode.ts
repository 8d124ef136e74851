import { LoomError, ShapeError, UsageError } from '../core/errors.js';
import { Tensor } from '../core/tensor.js';
import type { WeightStore } from '../core/weightStore.js';
import type { VolumetricNetwork } from '../grid/network.js';
import { gemmABt } from '../kernels/backend.js';
import { canQuantize, dequantizeRow, packedMatrixBytes, placeMatrix, quantBytes, quantGemm, quantizeMatrix, type QuantFormat, type QuantMatrix } from '../kernels/quant.js';
import { QuantArena, panelBytes, panelRow, placePanels } from '../kernels/quantWasm.js';
import { coordText, type IncrementalContext, type Layer, type PackedWeights, type WeightMatrix } from '../layers/layer.js';

/**
 * Incremental decoding over the grid: each call runs only the new positions of one sequence through
 * the forward plan, every layer through its kind's `forwardIncremental` (attention keeps its KV cache
 * in the session's per-layer state). Prefilling a prompt in one call and then one token per call
 * gives the same outputs as full causal forwards over the growing sequence.
 */
export class DecodeSession {
  private states = new Map<Layer, unknown>();
  private filled = 0;

  constructor(
    readonly net: VolumetricNetwork,
    /** Most positions the sequence may reach (KV caches are sized for it). */
    readonly maxSeq: number,
  ) {
    if (!Number.isInteger(maxSeq) || maxSeq <= 0) throw new UsageError(`DecodeSession: maxSeq must be a positive integer, got ${maxSeq}`);
    for (const step of net.plan()) {
      const { layer } = step;
      if (!layer.kind.forwardIncremental) {
        throw new UsageError(`${layer.kind.name} at ${coordText(layer)} cannot decode incrementally (its kind has no forwardIncremental)`);
      }
      if (!layer.weights && !layer.packed && layer.kind.parameterCount(layer) > 0) {
        throw new UsageError(`${layer.kind.name} at ${coordText(layer)} has no weights`);
      }
    }
  }

  /** Positions the session holds. */
  get length(): number {
    return this.filled;
  }

  /** Forgets the sequence (caches are rebuilt on the next call). */
  reset(): void {
    this.states.clear();
    this.filled = 0;
  }

  /**
   * Runs `input` — the next n positions, e.g. token ids of shape [1, n] — and returns the network's
   * outputs for those positions only.
   */
  forward(input: Tensor): Tensor {
    const n = input.shape.length >= 2 ? input.shape[1] : 1;
    if (this.filled + n > this.maxSeq) {
      throw new ShapeError(`DecodeSession: the sequence would reach ${this.filled + n} positions, more than maxSeq = ${this.maxSeq}`);
    }
    const values: Tensor[] = [input];
    for (const step of this.net.plan()) {
      const { layer } = step;
      const ctx = this.context(layer, step.skipValue >= 0 ? values[step.skipValue] : null);
      values.push(layer.kind.forwardIncremental!(layer, values[step.inputValue], ctx));
    }
    this.filled += n;
    return values[values.length - 1];
  }

  private context(layer: Layer, skip: Tensor | null): IncrementalContext {
    const storage: PackedWeights | FloatWeights = layer.packed ?? new FloatWeights(layer);
    const states = this.states;
    const maxSeq = this.maxSeq;
    return {
      skip,
      linear: (x, m, offset, n, k, out, biasOffset) => storage.linear(x, m, offset, n, k, out, biasOffset),
      matrixRow: (offset, n, k, row, out, at) => storage.matrixRow(offset, n, k, row, out, at),
      vector: (offset, length) => storage.vector(offset, length),
      state<T>(create: (maxSeq: number) => T): T {
        if (!states.has(layer)) states.set(layer, create(maxSeq));
        return states.get(layer) as T;
      },
    };
  }
}

/** A layer's float32 parameters (its active dtype's values) behind the packed interface. */
class FloatWeights {
  private readonly w: Float32Array;

  constructor(layer: Layer) {
    this.w = layer.weights ? layer.weights.getActive(layer.dtype) : new Float32Array(0);
  }

  linear(x: Float32Array, m: number, offset: number, n: number, k: number, out: Float32Array, biasOffset?: number): void {
    const bias = biasOffset === undefined ? null : this.w.subarray(biasOffset, biasOffset + n);
    gemmABt(x, this.w.subarray(offset, offset + n * k), out, m, n, k, bias);
  }

  matrixRow(offset: number, _n: number, k: number, row: number, out: Float32Array, at: number): void {
    out.set(this.w.subarray(offset + row * k, offset + (row + 1) * k), at);
  }

  vector(offset: number, length: number): Float32Array {
    return this.w.subarray(offset, offset + length);
  }
}

interface PackedMatrix extends WeightMatrix {
  q: QuantMatrix | null;
  /** 'float32' in an arena: the offset of the matrix's row panels (panelGemm). */
  panels: number | null;
  /** Matrices the format cannot pack (Q4_0 with a partial block, float32 without the kernels) stay float32. */
  f: Float32Array | null;
}

/**
 * What quantizeNetwork packs matrices into: a QuantFormat, or 'float32', which keeps the values and
 * moves each matrix into WebAssembly memory as 16-row panels that a product streams once instead of
 * copying the matrix in per product (the bits of the WebAssembly float32 kernels; a SmolLM2-135M-shaped
 * decode runs about 2.5× faster per token).
 */
export type PackFormat = QuantFormat | 'float32';

interface FloatRun {
  start: number;
  data: Float32Array;
}

/** A layer's parameters with its kind's matrices packed (see PackFormat) and everything else kept as float32 runs. */
export class QuantizedWeights implements PackedWeights {
  private readonly byOffset = new Map<number, PackedMatrix>();
  private readonly runs: FloatRun[] = [];

  constructor(
    readonly format: PackFormat,
    params: Float32Array,
    matrices: readonly WeightMatrix[],
    /** Where the packed bytes go when the WebAssembly kernels are available (sized by arenaBytes). */
    readonly arena: QuantArena | null = null,
  ) {
    this.count = params.length;
    const sorted = [...matrices].sort((a, b) => a.offset - b.offset);
    let at = 0;
    for (const mat of sorted) {
      const end = mat.offset + mat.rows * mat.cols;
      if (mat.offset < at || end > params.length) throw new LoomError(`QuantizedWeights: matrix at ${mat.offset} overlaps another or runs past the ${params.length} parameters`);
      if (mat.offset > at) this.runs.push({ start: at, data: params.slice(at, mat.offset) });
      const values = params.subarray(mat.offset, end);
      if (format === 'float32') {
        const panels = arena ? placePanels(arena, values, mat.rows, mat.cols) : null;
        this.byOffset.set(mat.offset, { ...mat, q: null, panels, f: panels === null ? values.slice() : null });
      } else {
        const packable = canQuantize(format, mat.cols);
        this.byOffset.set(mat.offset, {
          ...mat,
          q: packable ? place(quantizeMatrix(format, values, mat.rows, mat.cols), arena) : null,
          panels: null,
          f: packable ? null : values.slice(),
        });
      }
      at = end;
    }
    if (at < params.length) this.runs.push({ start: at, data: params.slice(at) });
  }

  readonly count: number;

  private matrix(offset: number, n: number, k: number): PackedMatrix {
    const m = this.byOffset.get(offset);
    if (!m || m.rows !== n || m.cols !== k) throw new LoomError(`QuantizedWeights: no ${n}×${k} matrix at parameter ${offset}`);
    return m;
  }

  linear(x: Float32Array, m: number, offset: number, n: number, k: number, out: Float32Array, biasOffset?: number): void {
    const mat = this.matrix(offset, n, k);
    const bias = biasOffset === undefined ? null : this.vector(biasOffset, n);
    if (mat.q) quantGemm(mat.q, x, m, out, bias);
    else if (mat.panels !== null) this.arena!.panelGemm(mat.panels, n, k, x, m, out, bias);
    else gemmABt(x, mat.f!, out, m, n, k, bias);
  }

  matrixRow(offset: number, n: number, k: number, row: number, out: Float32Array, at: number): void {
    const mat = this.matrix(offset, n, k);
    if (mat.q) dequantizeRow(mat.q, row, out, at);
    else if (mat.panels !== null) panelRow(this.arena!, mat.panels, k, row, out, at);
    else out.set(mat.f!.subarray(row * k, (row + 1) * k), at);
  }

  vector(offset: number, length: number): Float32Array {
    for (const run of this.runs) {
      if (offset >= run.start && offset + length <= run.start + run.data.length) {
        return run.data.subarray(offset - run.start, offset - run.start + length);
      }
    }
    throw new LoomError(`QuantizedWeights: parameters [${offset}, ${offset + length}) are not a float32 vector of this layer`);
  }

  residentBytes(): number {
    let n = 0;
    for (const m of this.byOffset.values()) n += m.q ? quantBytes(m.q) : m.panels !== null ? panelBytes(m.rows, m.cols) : m.f!.byteLength;
    for (const r of this.runs) n += r.data.byteLength;
    return n;
  }

  /** The float32 parameter vector these weights decode to (the quantization error included). */
  dequantize(): Float32Array {
    const out = new Float32Array(this.count);
    for (const r of this.runs) out.set(r.data, r.start);
    for (const m of this.byOffset.values()) {
      for (let row = 0; row < m.rows; row++) this.matrixRow(m.offset, m.rows, m.cols, row, out, m.offset + row * m.cols);
    }
    return out;
  }
}

function place(q: QuantMatrix, arena: QuantArena | null): QuantMatrix {
  return arena ? placeMatrix(q, arena) : q;
}

/** Arena bytes the packable matrices of one layer need (16-byte aligned pieces). */
function arenaBytes(format: PackFormat, matrices: readonly WeightMatrix[]): number {
  let n = 0;
  for (const m of matrices) {
    if (format === 'float32') {
      n += panelBytes(m.rows, m.cols);
      continue;
    }
    if (!canQuantize(format, m.cols)) continue;
    const b = packedMatrixBytes(format, m.rows, m.cols);
    n += ((b.data + 15) & ~15) + ((b.scales + 15) & ~15);
  }
  return n;
}

export interface QuantizeNetworkOptions {
  /**
   * Drop the float32 weights of packed layers (default false), so only the packed copy stays
   * resident. Such layers then run only through DecodeSession; saving or training them is refused.
   */
  release?: boolean;
}

/**
 * Packs the matrices of every layer whose kind lists them for DecodeSession (see PackFormat); layers
 * sharing a WeightStore (tied embeddings) share the packed copy.
 */
export function quantizeNetwork(net: VolumetricNetwork, format: PackFormat, options: QuantizeNetworkOptions = {}): void {
  const shared = new Map<WeightStore, QuantizedWeights>();
  // One WebAssembly arena for the network, sized before anything is packed (it never grows later).
  const sized = new Set<WeightStore>();
  let bytes = 0;
  let maxRows = 1;
  let maxCols = 1;
  for (const layer of net.allLayers()) {
    const matrices = layer.kind.matrices?.(layer);
    if (!matrices || !layer.weights || sized.has(layer.weights)) continue;
    sized.add(layer.weights);
    bytes += arenaBytes(format, matrices);
    for (const m of matrices) {
      maxRows = Math.max(maxRows, m.rows);
      maxCols = Math.max(maxCols, m.cols);
    }
  }
  const arena = bytes > 0 ? QuantArena.create(bytes, maxRows, maxCols) : null;
  for (const layer of net.allLayers()) {
    const matrices = layer.kind.matrices?.(layer);
    if (!matrices || matrices.length === 0 || !layer.weights) continue;
    let packed = shared.get(layer.weights);
    if (!packed) {
      packed = new QuantizedWeights(format, layer.weights.getActive(layer.dtype), matrices, arena);
      shared.set(layer.weights, packed);
    }
    layer.packed = packed;
  }
  if (options.release) {
    for (const layer of net.allLayers()) if (layer.packed) layer.weights = null;
    net.invalidatePlan();
  }
}

/** Refuses (UsageError) a layer whose float32 weights quantizeNetwork released: only DecodeSession can run it. */
export function requireFloatWeights(layer: Layer, what: string): void {
  if (layer.packed && !layer.weights) {
    throw new UsageError(`${what}: ${layer.kind.name} at ${coordText(layer)} keeps only its ${layer.packed.format} inference copy (released by quantizeNetwork); decode it with DecodeSession or import it again`);
  }
}

/** Bytes of weights a decode holds: packed copies (each once) plus float32 masters of unpacked layers. */
export function decodeResidentBytes(net: VolumetricNetwork): number {
  const seen = new Set<unknown>();
  let n = 0;
  for (const layer of net.allLayers()) {
    if (layer.packed) {
      if (!seen.has(layer.packed)) n += layer.packed.residentBytes();
      seen.add(layer.packed);
    }
    if (layer.weights && !seen.has(layer.weights)) {
      seen.add(layer.weights);
      n += layer.weights.residentBytes();
    }
  }
  return n;
}
