import { DType } from '../core/dtype.js';
import { LoomError, SpecError } from '../core/errors.js';
import { coordText, walkLayer, type Coord, type Layer } from '../layers/layer.js';

/** One step of the forward plan: which layer runs and which values it reads. */
export interface PlanStep {
  /** Flat grid index of the layer. */
  index: number;
  layer: Layer;
  /** Value read as input: 0 is the network input, k + 1 the output of plan step k. */
  inputValue: number;
  /** Value read as skip (layers with takesSkip), or -1. */
  skipValue: number;
}

/**
 * The 3D grid: depth × rows × cols cells of layersPerCell layers each. Cells hold a layer or
 * nothing; empty and disabled cells pass data through. Data flows z → y → x → l.
 */
export class VolumetricNetwork {
  readonly cells: (Layer | undefined)[];
  private cachedPlan: PlanStep[] | null = null;

  constructor(
    readonly depth: number,
    readonly rows: number,
    readonly cols: number,
    readonly layersPerCell: number,
    public id = 'network',
  ) {
    for (const [name, v] of [['depth', depth], ['rows', rows], ['cols', cols], ['layers_per_cell', layersPerCell]] as const) {
      if (!Number.isInteger(v) || v <= 0) throw new SpecError(name, 'a positive integer', v);
    }
    this.cells = new Array(depth * rows * cols * layersPerCell).fill(undefined);
  }

  /** idx = ((z·rows + y)·cols + x)·layersPerCell + l */
  index(z: number, y: number, x: number, l: number): number {
    return ((z * this.rows + y) * this.cols + x) * this.layersPerCell + l;
  }

  coordOf(index: number): Coord {
    const l = index % this.layersPerCell;
    const x = Math.floor(index / this.layersPerCell) % this.cols;
    const y = Math.floor(index / (this.layersPerCell * this.cols)) % this.rows;
    const z = Math.floor(index / (this.layersPerCell * this.cols * this.rows));
    return { z, y, x, l };
  }

  contains(c: Coord): boolean {
    return (
      inRange(c.z, this.depth) && inRange(c.y, this.rows) && inRange(c.x, this.cols) && inRange(c.l, this.layersPerCell)
    );
  }

  getLayer(z: number, y: number, x: number, l: number): Layer | undefined {
    const c = { z, y, x, l };
    if (!this.contains(c)) {
      throw new LoomError(
        `coordinate ${coordText(c)} is outside the grid (depth ${this.depth}, rows ${this.rows}, cols ${this.cols}, layers_per_cell ${this.layersPerCell})`,
      );
    }
    return this.cells[this.index(z, y, x, l)];
  }

  setLayer(layer: Layer): void {
    this.getLayer(layer.z, layer.y, layer.x, layer.l);
    this.cells[this.index(layer.z, layer.y, layer.x, layer.l)] = layer;
    this.invalidatePlan();
  }

  /** Every placed layer with its flat index, in traversal order. */
  *entries(): IterableIterator<[number, Layer]> {
    for (let i = 0; i < this.cells.length; i++) {
      const layer = this.cells[i];
      if (layer) yield [i, layer];
    }
  }

  layers(): Layer[] {
    return [...this.entries()].map(([, l]) => l);
  }

  /** Call after toggling `disabled` or changing remote links. */
  invalidatePlan(): void {
    this.cachedPlan = null;
  }

  /** The forward schedule: enabled layers in traversal order with their resolved input and skip values. */
  plan(): PlanStep[] {
    if (this.cachedPlan) return this.cachedPlan;
    const steps: PlanStep[] = [];
    const stepOfIndex = new Map<number, number>();
    for (const [index, layer] of this.entries()) {
      if (layer.disabled) continue;
      const previous = steps.length;
      let inputValue = previous;
      let skipValue = -1;
      let remoteValue = -1;
      if (layer.remote) {
        const target = layer.remote;
        const where = `layer ${coordText(layer)}: remote link`;
        if (!this.contains(target)) throw new LoomError(`${where} points outside the grid to ${coordText(target)}`);
        const targetStep = stepOfIndex.get(this.index(target.z, target.y, target.x, target.l));
        if (targetStep === undefined) {
          throw new LoomError(
            `${where} to ${coordText(target)}: the target must be an enabled layer that runs earlier (the step mesh engine handles links to later layers)`,
          );
        }
        remoteValue = targetStep + 1;
      }
      if (layer.kind.takesSkip) {
        skipValue = remoteValue >= 0 ? remoteValue : previous > 0 ? steps[previous - 1].inputValue : -1;
      } else if (remoteValue >= 0) {
        inputValue = remoteValue;
      }
      stepOfIndex.set(index, steps.length);
      steps.push({ index, layer, inputValue, skipValue });
    }
    this.cachedPlan = steps;
    return steps;
  }

  /** Morphs every weight-bearing layer to `dtype`. */
  morph(dtype: DType): void {
    for (const layer of this.layers()) morphLayer(layer, dtype);
  }

  /** Every layer including those nested in containers. */
  *allLayers(): IterableIterator<Layer> {
    for (const layer of this.layers()) yield* walkLayer(layer);
  }

  /** Parameters counted once per store: a tied layer shares its owner's vector. */
  parameterCount(): number {
    let n = 0;
    for (const layer of this.layersOwningWeights()) n += layer.weights!.count;
    return n;
  }

  /** Bytes of all parameters in each owning layer's active dtype. */
  sizeInBytes(): number {
    let n = 0;
    for (const layer of this.layersOwningWeights()) n += layer.weights!.sizeInBytes(layer.dtype);
    return n;
  }

  private *layersOwningWeights(): IterableIterator<Layer> {
    const seen = new Set<object>();
    for (const layer of this.allLayers()) {
      if (!layer.weights || seen.has(layer.weights)) continue;
      seen.add(layer.weights);
      yield layer;
    }
  }
}

/** Switches a layer (and its nested layers) to compute in `dtype`; masters stay, so morphing back is lossless. */
export function morphLayer(layer: Layer, dtype: DType): void {
  for (const l of walkLayer(layer)) {
    l.dtype = dtype;
    l.weights?.morph(dtype);
  }
}

function inRange(v: number, n: number): boolean {
  return Number.isInteger(v) && v >= 0 && v < n;
}
