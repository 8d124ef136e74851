import { DType } from '../core/dtype.js';
import { LoomError, NumericError, ShapeError, SpecError } from '../core/errors.js';
import { Tensor } from '../core/tensor.js';
import type { VolumetricNetwork } from '../grid/network.js';
import { coordText, walkLayer, type Coord, type Layer, type LayerCache } from '../layers/layer.js';
import type { ForwardTrace, ParameterGradient } from './run.js';

/*
 * The step (systolic) mesh: every enabled layer fires once per tick, reading only what the
 * previous tick left in the output buffers, then the buffers swap. Semantics chosen here:
 *  - A layer reads the output of the nearest enabled layer before it in traversal order (empty and
 *    disabled cells are wires, as in forwardNetwork); the first one reads the external input; a
 *    remote link reads its target instead, so a link to a later coordinate closes a loop (recurrence).
 *  - Layers that take a skip (Residual) read their input as above and, as skip, the remote target's
 *    output or else what the layer before them read in the previous tick, so x + f(x) stays aligned.
 *  - A buffer that has not been written yet reads as zeros. Its shape comes from a probe run once
 *    when the first input arrives: every layer is fed zeros of its source's shape in traversal order
 *    (repeated while loops resolve), which gives each cell's input and output shape.
 * A feed-forward chain of N layers therefore shows forwardNetwork's output after N ticks of a
 * constant input, bit for bit.
 */

/** Source index meaning "the external input". */
const EXTERNAL = -1;

type SkipMode = 'none' | 'remote' | 'previousInput';

/** How one enabled cell is wired in the mesh. */
export interface MeshCell {
  index: number;
  layer: Layer;
  /** Flat index of the cell whose previous output this one reads, or -1 for the external input. */
  source: number;
  skipMode: SkipMode;
  /** Remote target (skipMode 'remote') or the previous enabled cell (skipMode 'previousInput'). */
  skipCell: number;
}

/** Where a value read in a tick came from: a cell's output in a given tick, or the external input (cell -1) of a tick. */
export interface ValueRef {
  tick: number;
  cell: number;
}

/** What one cell did in one tick: enough for its backward call. */
export interface CellRecord {
  index: number;
  layer: Layer;
  cache: LayerCache;
  weights: Float32Array | null;
  output: Tensor;
  /** Null when the cell read a not-yet-written buffer (zeros, a constant). */
  input: ValueRef | null;
  skip: ValueRef | null;
}

/** Everything one tick did, in traversal order of the cells. */
export interface TickRecord {
  tick: number;
  /** External input of this tick. */
  input: Tensor;
  /** Cells in traversal order. */
  cells: CellRecord[];
}

/** Options of a StepState. */
export interface StepStateOptions {
  /** Record every tick (caches, inputs) for stepBackward and history-based Tween (default false). */
  captureHistory?: boolean;
  /** Most ticks kept in the history; older ones are dropped and what they produced becomes constant (truncated BPTT). */
  historyLimit?: number;
  /**
   * Dispatch cells tile by tile, tiles being tileSize³ blocks of (z, y, x) with all their layers. Every
   * cell reads only the previous tick's buffers, so any order gives the same bits. stepForward runs
   * the tiles one after another in this thread; a StepWorkerPool spreads them over worker threads.
   */
  tileSize?: number;
}

/** The probed wiring of a mesh. */
export interface MeshLayout {
  cells: MeshCell[];
  /** Dispatch order: traversal order, or tile by tile. */
  order: MeshCell[];
  outputCell: number;
  /** Ticks between injecting an input and the output cell showing its effect along the longest feed-forward path. */
  latency: number;
  inputShape: readonly number[];
  inShapes: Map<number, readonly number[]>;
  outShapes: Map<number, readonly number[]>;
  /** Position of each cell (by flat index) in `cells`. */
  slot: Map<number, number>;
}

/** Double-buffered state of a step mesh over a VolumetricNetwork. */
export class StepState {
  captureHistory: boolean;
  historyLimit: number;
  tileSize: number;
  /** Ticks run since creation or the last reset. */
  tick = 0;
  /** Output of every cell after the latest tick, by flat grid index (null: not written yet). */
  outputs: (Tensor | null)[];
  /** External input the next tick reads (held until replaced). */
  input: Tensor | null = null;
  /** Captured ticks, oldest first. */
  history: TickRecord[] = [];
  /** The latest tick's record (kept even without history capture; live-mesh Tween uses it). */
  lastTick: TickRecord | null = null;

  private next: (Tensor | null)[];
  /** What each cell read in the latest tick, and where it came from (for skips). */
  private readValues: (Tensor | null)[];
  private readRefs: (ValueRef | null)[];
  private layoutCache: MeshLayout | null = null;
  private readonly zeroCache = new Map<string, Tensor>();

  constructor(
    readonly net: VolumetricNetwork,
    options: StepStateOptions = {},
  ) {
    this.captureHistory = options.captureHistory ?? false;
    this.historyLimit = options.historyLimit ?? Infinity;
    if (!(this.historyLimit >= 1)) throw new SpecError('historyLimit', 'a positive number of ticks', options.historyLimit);
    this.tileSize = options.tileSize ?? 0;
    if (!Number.isInteger(this.tileSize) || this.tileSize < 0) throw new SpecError('tileSize', 'a positive integer (0 for sequential)', options.tileSize);
    const n = net.cells.length;
    this.outputs = new Array(n).fill(null);
    this.next = new Array(n).fill(null);
    this.readValues = new Array(n).fill(null);
    this.readRefs = new Array(n).fill(null);
  }

  /** Clears buffers, history and the probed layout (call after changing the grid, links or the input shape). */
  reset(): void {
    const n = this.net.cells.length;
    this.tick = 0;
    this.outputs = new Array(n).fill(null);
    this.next = new Array(n).fill(null);
    this.readValues = new Array(n).fill(null);
    this.readRefs = new Array(n).fill(null);
    this.history = [];
    this.lastTick = null;
    this.input = null;
    this.layoutCache = null;
    this.zeroCache.clear();
  }

  /** Sets the external input read from the next tick on; its shape must stay the same until reset(). */
  setInput(input: Tensor): void {
    const layout = this.layoutCache;
    if (layout && !sameShape(layout.inputShape, input.shape)) {
      throw new ShapeError(
        `step mesh: the input shape changed from [${layout.inputShape.join(', ')}] to [${input.shape.join(', ')}]; call reset() first`,
      );
    }
    this.input = input;
  }

  clearHistory(): void {
    this.history = [];
  }

  /** Wiring, shapes and latency; probed on first use. */
  get layout(): MeshLayout {
    if (!this.layoutCache) {
      if (!this.input) throw new LoomError('step mesh: no input yet (pass one to stepForward or setInput)');
      this.layoutCache = probeLayout(this, this.input.shape);
    }
    return this.layoutCache;
  }

  get latency(): number {
    return this.layout.latency;
  }

  /** Flat index of the output cell (the last enabled layer in traversal order). */
  get outputCell(): number {
    return this.layout.outputCell;
  }

  /** The output cell's latest output (zeros of its shape before the first tick). */
  output(): Tensor {
    const layout = this.layout;
    return this.outputs[layout.outputCell] ?? this.zeros(layout.outShapes.get(layout.outputCell)!);
  }

  /** Latest output of the cell at `c`, or null if it has not fired. */
  cellOutput(c: Coord): Tensor | null {
    return this.outputs[this.net.index(c.z, c.y, c.x, c.l)];
  }

  /** Shared zero tensor of `shape` (read-only by contract: layers never write their inputs). */
  zeros(shape: readonly number[]): Tensor {
    const key = shape.join(',');
    let z = this.zeroCache.get(key);
    if (!z) this.zeroCache.set(key, (z = Tensor.zeros(shape)));
    return z;
  }

  /** What `cell` reads in the coming tick: its input and skip, with where they came from. */
  reads(cell: MeshCell): CellReads {
    const layout = this.layout;
    const t = this.tick;
    const cur = this.outputs;
    let value: Tensor;
    let ref: ValueRef | null;
    if (cell.source === EXTERNAL) {
      value = this.input!;
      ref = { tick: t, cell: EXTERNAL };
    } else {
      const v = cur[cell.source];
      value = v ?? this.zeros(layout.outShapes.get(cell.source)!);
      ref = v ? { tick: t - 1, cell: cell.source } : null;
    }
    let skip: Tensor | null = null;
    let skipRef: ValueRef | null = null;
    if (cell.skipMode === 'remote') {
      const v = cur[cell.skipCell];
      skip = v ?? this.zeros(layout.outShapes.get(cell.skipCell)!);
      skipRef = v ? { tick: t - 1, cell: cell.skipCell } : null;
    } else if (cell.skipMode === 'previousInput') {
      skip = this.readValues[cell.skipCell] ?? this.zeros(layout.inShapes.get(cell.skipCell)!);
      skipRef = this.readRefs[cell.skipCell];
    }
    return { value, ref, skip, skipRef };
  }

  /** One clock cycle in this thread; see stepForward. */
  fire(): void {
    const layout = this.layout;
    const records: CellRecord[] = new Array(layout.cells.length);
    const reads = layout.order.map((cell) => this.reads(cell));
    layout.order.forEach((cell, k) => {
      const { layer } = cell;
      const { value, ref, skip, skipRef } = reads[k];
      const weights = activeWeights(layer);
      const { output, cache } = layer.kind.forward(layer, value, weights, skip);
      records[layout.slot.get(cell.index)!] = { index: cell.index, layer, cache, weights, output, input: ref, skip: skipRef };
    });
    this.commit(reads, records.map((r) => r.output), records);
  }

  /**
   * Ends a tick: `outputs[k]` is what `layout.cells[k]` produced from `reads` (given in dispatch
   * order); the buffers swap. Without records (worker ticks) no history is kept.
   */
  commit(reads: CellReads[], outputs: Tensor[], records: CellRecord[] | null): void {
    const layout = this.layout;
    const n = this.outputs.length;
    const next = this.next;
    const readValues: (Tensor | null)[] = new Array(n).fill(null);
    const readRefs: (ValueRef | null)[] = new Array(n).fill(null);
    layout.order.forEach((cell, k) => {
      readValues[cell.index] = reads[k].value;
      readRefs[cell.index] = reads[k].ref;
    });
    layout.cells.forEach((cell, k) => (next[cell.index] = outputs[k]));
    this.next = this.outputs;
    this.outputs = next;
    this.readValues = readValues;
    this.readRefs = readRefs;
    if (records) {
      const record: TickRecord = { tick: this.tick, input: this.input!, cells: records };
      this.lastTick = record;
      if (this.captureHistory) {
        this.history.push(record);
        if (this.history.length > this.historyLimit) this.history.splice(0, this.history.length - this.historyLimit);
      }
    } else {
      this.lastTick = null;
    }
    this.tick++;
  }
}

/** What a cell reads in a tick. */
export interface CellReads {
  value: Tensor;
  ref: ValueRef | null;
  skip: Tensor | null;
  skipRef: ValueRef | null;
}

/** Creates a step mesh state for `net` (see StepState for the wiring rules). */
export function createStepState(net: VolumetricNetwork, options: StepStateOptions = {}): StepState {
  return new StepState(net, options);
}

/**
 * One clock cycle: every enabled layer fires once reading the previous tick's buffers (and `input`,
 * if given, as the external input from now on), then the buffers swap. Returns the output cell's new output.
 */
export function stepForward(state: StepState, input?: Tensor): Tensor {
  if (input) state.setInput(input);
  state.fire();
  return state.output();
}

/** The float32 values `layer` computes with in its active dtype (decoded once per packed version: WeightStore.getActive). */
export function activeWeights(layer: Layer): Float32Array | null {
  return layer.weights ? layer.weights.getActive(layer.dtype) : null;
}

/** The mesh wiring of every enabled layer, in traversal order. */
export function meshCells(net: VolumetricNetwork): MeshCell[] {
  const cells: MeshCell[] = [];
  let previous = -1;
  for (const [index, layer] of net.entries()) {
    if (layer.disabled) continue;
    let remote = -1;
    if (layer.remote) {
      const where = `step mesh: layer ${coordText(layer)}: remote link`;
      if (!net.contains(layer.remote)) throw new LoomError(`${where} points outside the grid to ${coordText(layer.remote)}`);
      remote = net.index(layer.remote.z, layer.remote.y, layer.remote.x, layer.remote.l);
      const target = net.cells[remote];
      if (!target || target.disabled) throw new LoomError(`${where} to ${coordText(layer.remote)}: the target must be an enabled layer`);
    }
    const cell: MeshCell = { index, layer, source: previous, skipMode: 'none', skipCell: -1 };
    if (layer.kind.takesSkip) {
      if (remote >= 0) {
        cell.skipMode = 'remote';
        cell.skipCell = remote;
      } else if (previous >= 0) {
        cell.skipMode = 'previousInput';
        cell.skipCell = previous;
      }
    } else if (remote >= 0) {
      cell.source = remote;
    }
    cells.push(cell);
    previous = index;
  }
  if (cells.length === 0) throw new LoomError('step mesh: the network has no enabled layers');
  return cells;
}

function probeLayout(state: StepState, inputShape: readonly number[]): MeshLayout {
  const net = state.net;
  const cells = meshCells(net);
  const inShapes = new Map<number, readonly number[]>();
  const outShapes = new Map<number, readonly number[]>();
  let pending = cells;
  while (pending.length > 0) {
    const rest: MeshCell[] = [];
    for (const cell of pending) {
      const src = cell.source === EXTERNAL ? inputShape : outShapes.get(cell.source);
      if (!src) {
        rest.push(cell);
        continue;
      }
      const skipShape =
        cell.skipMode === 'remote' ? outShapes.get(cell.skipCell) : cell.skipMode === 'previousInput' ? inShapes.get(cell.skipCell) : undefined;
      const { layer } = cell;
      const { output } = layer.kind.forward(layer, state.zeros(src), activeWeights(layer), skipShape ? state.zeros(skipShape) : null);
      inShapes.set(cell.index, src);
      outShapes.set(cell.index, output.shape);
    }
    if (rest.length === pending.length) {
      const c = rest[0];
      throw new ShapeError(
        `step mesh: cannot tell what ${c.layer.kind.name} at ${coordText(c.layer)} reads: its source ` +
          `${coordText(net.coordOf(c.source))} depends on it and nothing feeds the loop from the input`,
      );
    }
    pending = rest;
  }
  const outputCell = cells[cells.length - 1].index;
  return {
    cells,
    order: dispatchOrder(net, cells, state.tileSize),
    outputCell,
    latency: longestPath(cells, outputCell),
    inputShape: [...inputShape],
    inShapes,
    outShapes,
    slot: new Map(cells.map((c, i) => [c.index, i])),
  };
}

function dispatchOrder(net: VolumetricNetwork, cells: MeshCell[], tileSize: number): MeshCell[] {
  if (tileSize <= 0) return cells;
  const tileOf = (c: MeshCell): number[] => {
    const { z, y, x } = net.coordOf(c.index);
    return [Math.floor(z / tileSize), Math.floor(y / tileSize), Math.floor(x / tileSize)];
  };
  const keyed = cells.map((c) => ({ c, k: tileOf(c) }));
  keyed.sort((a, b) => a.k[0] - b.k[0] || a.k[1] - b.k[1] || a.k[2] - b.k[2] || a.c.index - b.c.index);
  return keyed.map((e) => e.c);
}

/** Longest feed-forward path (links to earlier cells only) from the input to `outputCell`, in ticks after injection. */
function longestPath(cells: MeshCell[], outputCell: number): number {
  const dist = new Map<number, number>();
  const position = new Map<number, number>();
  cells.forEach((c, i) => position.set(c.index, i));
  const via = (from: number, self: number, extra: number): number => {
    if (from === EXTERNAL) return extra - 1;
    if (position.get(from)! >= position.get(self)!) return -Infinity;
    return (dist.get(from) ?? -Infinity) + extra;
  };
  for (const c of cells) {
    let d = via(c.source, c.index, 1);
    if (c.skipMode === 'remote') d = Math.max(d, via(c.skipCell, c.index, 1));
    else if (c.skipMode === 'previousInput') {
      // The skip is what the previous cell read one tick earlier.
      const prev = cells[position.get(c.skipCell)!];
      d = Math.max(d, via(prev.source, prev.index, 1) + 1);
    }
    dist.set(c.index, d);
  }
  const d = dist.get(outputCell)!;
  return d === -Infinity ? -1 : d;
}

// ---------------------------------------------------------------------------------------------
// Recorded computations as graphs: the mesh history (one node per tick and cell) and a forwardNetwork
// trace (one node per plan step) share one backward routine, used by BPTT and by Tween.

/** A reference to no value with a gradient (zeros, values older than the history). */
export const CONSTANT_REF = -1;
/** The reference to external input k. */
export function externalRef(k: number): number {
  return -2 - k;
}

/** One layer evaluation in a recorded computation. */
export interface GraphNode {
  layer: Layer;
  /** Identity of the layer for gradients and optimizer state: its flat grid index. */
  key: string;
  cache: LayerCache;
  weights: Float32Array | null;
  output: Tensor;
  /** Node index (≥ 0), externalRef(k), or CONSTANT_REF. */
  input: number;
  skip: number;
}

/** Nodes in an order where producers come before consumers; `output` is the node holding the answer. */
export interface LayerGraph {
  nodes: GraphNode[];
  externals: Tensor[];
  output: number;
}

/** What backwardGraph returns. */
export interface GraphGradients {
  /** Gradient reaching each node's output (undefined where none arrived). */
  nodeGrads: (Tensor | undefined)[];
  /** Gradient of each external input (undefined where none arrived). */
  externalGrads: (Tensor | undefined)[];
  /** Parameter gradients summed over every node of a layer (nested layers keyed "index.path"). */
  gradients: ParameterGradient[];
}

/**
 * Backpropagates the seeds (gradients of node outputs) through the graph, newest node first, summing
 * what flows into each value and each layer's parameter gradients (scaled per node by `nodeScale`).
 */
export function backwardGraph(graph: LayerGraph, seeds: Map<number, Tensor>, nodeScale?: (node: number) => number): GraphGradients {
  const { nodes } = graph;
  const nodeGrads: (Tensor | undefined)[] = new Array(nodes.length);
  const externalGrads: (Tensor | undefined)[] = new Array(graph.externals.length);
  for (const [k, g] of seeds) nodeGrads[k] = addGrad(nodeGrads[k], g);
  const sums = new Map<string, ParameterGradient>();
  const accumulate = (key: string, layer: Layer, g: Float32Array, scale: number): void => {
    const entry = sums.get(key);
    if (!entry) {
      const copy = new Float32Array(g.length);
      for (let i = 0; i < g.length; i++) copy[i] = g[i] * scale;
      sums.set(key, { key, layer, grad: copy });
    } else {
      const s = entry.grad;
      for (let i = 0; i < s.length; i++) s[i] += g[i] * scale;
    }
  };
  const route = (ref: number, g: Tensor): void => {
    if (ref >= 0) nodeGrads[ref] = addGrad(nodeGrads[ref], g);
    else if (ref <= -2) externalGrads[-2 - ref] = addGrad(externalGrads[-2 - ref], g);
  };
  for (let k = nodes.length - 1; k >= 0; k--) {
    const grad = nodeGrads[k];
    if (!grad) continue;
    const node = nodes[k];
    const r = node.layer.kind.backward(node.layer, grad, node.cache, node.weights);
    const scale = nodeScale ? nodeScale(k) : 1;
    if (r.gradWeights) accumulate(node.key, node.layer, r.gradWeights, scale);
    for (const c of r.childGradients ?? []) accumulate(`${node.key}.${c.path}`, c.layer, c.grad, scale);
    route(node.input, r.gradInput);
    if (r.gradSkip) route(node.skip, r.gradSkip);
  }
  return { nodeGrads, externalGrads, gradients: [...sums.values()] };
}

/** The captured history as a graph; values from before the first captured tick are constants. */
export function historyGraph(state: StepState): LayerGraph {
  if (state.history.length === 0) throw new LoomError('step mesh: no captured ticks (create the state with captureHistory: true)');
  return ticksGraph(state, state.history);
}

/**
 * The latest tick alone as a graph: each cell's record is exact for that cell, and a cell's input is
 * taken to be its source's latest output (true in steady state). Links to later cells become constants.
 */
export function snapshotGraph(state: StepState): LayerGraph {
  const last = state.lastTick;
  if (!last) throw new LoomError('step mesh: no recorded tick (run one with stepForward; ticks run by a worker pool keep no layer caches)');
  const nodes: GraphNode[] = [];
  const nodeOf = new Map<number, number>();
  const map = (ref: ValueRef | null): number => {
    if (!ref) return CONSTANT_REF;
    if (ref.cell === EXTERNAL) return externalRef(0);
    return nodeOf.get(ref.cell) ?? CONSTANT_REF;
  };
  for (const rec of last.cells) {
    const node = graphNode(rec, map(rec.input), map(rec.skip));
    nodeOf.set(rec.index, nodes.length);
    nodes.push(node);
  }
  return { nodes, externals: [last.input], output: nodeOf.get(state.outputCell)! };
}

function ticksGraph(state: StepState, ticks: TickRecord[]): LayerGraph {
  const first = ticks[0].tick;
  const nodes: GraphNode[] = [];
  const nodeOf: Map<number, number>[] = ticks.map(() => new Map());
  const map = (ref: ValueRef | null): number => {
    if (!ref || ref.tick < first) return CONSTANT_REF;
    if (ref.cell === EXTERNAL) return externalRef(ref.tick - first);
    return nodeOf[ref.tick - first].get(ref.cell) ?? CONSTANT_REF;
  };
  ticks.forEach((tick, h) => {
    for (const rec of tick.cells) {
      const node = graphNode(rec, map(rec.input), map(rec.skip));
      nodeOf[h].set(rec.index, nodes.length);
      nodes.push(node);
    }
  });
  return { nodes, externals: ticks.map((t) => t.input), output: nodeOf[ticks.length - 1].get(state.outputCell)! };
}

function graphNode(rec: CellRecord, input: number, skip: number): GraphNode {
  return { layer: rec.layer, key: String(rec.index), cache: rec.cache, weights: rec.weights, output: rec.output, input, skip };
}

/** A forwardNetwork trace as a graph (one node per plan step, one external input). */
export function traceGraph(trace: ForwardTrace): LayerGraph {
  const ref = (value: number): number => (value < 0 ? CONSTANT_REF : value === 0 ? externalRef(0) : value - 1);
  const nodes = trace.plan.map((step, k): GraphNode => ({
    layer: step.layer,
    key: String(step.index),
    cache: trace.caches[k],
    weights: trace.weights[k],
    output: trace.values[k + 1],
    input: ref(step.inputValue),
    skip: ref(step.skipValue),
  }));
  return { nodes, externals: [trace.values[0]], output: nodes.length - 1 };
}

/** What stepBackward returns. */
export interface StepBackwardResult {
  /** Gradient of the external input of every captured tick, oldest first (zeros where none arrived). */
  gradInputs: Tensor[];
  /** Parameter gradients summed over all captured ticks. */
  gradients: ParameterGradient[];
}

/**
 * Backpropagation through time over the captured ticks. `gradOutput` is the gradient of the output
 * cell's output in the latest tick, or one entry per captured tick (null for none) for losses over
 * several ticks. Gradients follow each read back to the tick and cell that produced the value (remote
 * links included); parameter gradients are summed over ticks. Each tick's recorded weights are used:
 * for float32 layers that is the live master, so update weights after the backward pass.
 */
export function stepBackward(state: StepState, gradOutput: Tensor | readonly (Tensor | null)[]): StepBackwardResult {
  const graph = historyGraph(state);
  const history = state.history;
  const seeds = new Map<number, Tensor>();
  const outputNodes = outputNodeOfTicks(graph, history, state.outputCell);
  const seed = (h: number, g: Tensor): void => {
    const node = graph.nodes[outputNodes[h]];
    if (g.size !== node.output.size) {
      throw new ShapeError(`stepBackward: the output has shape [${node.output.shape.join(', ')}] but the gradient has [${g.shape.join(', ')}]`);
    }
    seeds.set(outputNodes[h], g.reshape(node.output.shape));
  };
  if (gradOutput instanceof Tensor) seed(history.length - 1, gradOutput);
  else {
    if (gradOutput.length !== history.length) {
      throw new ShapeError(`stepBackward: ${gradOutput.length} output gradients for ${history.length} captured ticks`);
    }
    gradOutput.forEach((g, h) => g && seed(h, g));
  }
  const r = backwardGraph(graph, seeds);
  return {
    gradInputs: graph.externals.map((x, k) => r.externalGrads[k] ?? Tensor.zeros(x.shape)),
    gradients: r.gradients,
  };
}

function outputNodeOfTicks(graph: LayerGraph, history: TickRecord[], outputCell: number): number[] {
  const result: number[] = [];
  let offset = 0;
  for (const tick of history) {
    const i = tick.cells.findIndex((c) => c.index === outputCell);
    result.push(offset + i);
    offset += tick.cells.length;
  }
  if (result[result.length - 1] !== graph.output) throw new LoomError('step mesh: history and graph disagree');
  return result;
}

function addGrad(existing: Tensor | undefined, g: Tensor): Tensor {
  if (!existing) return g;
  const sum = new Float32Array(existing.size);
  for (let i = 0; i < sum.length; i++) sum[i] = existing.data[i] + g.data[i];
  return new Tensor(sum, existing.shape);
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

// ---------------------------------------------------------------------------------------------
// Worker threads (Node only): a pool splits the tiles of a tick across threads. Each worker keeps a
// copy of the network's structure; with every job it gets the cell's input, skip and the exact
// float32 weights the main thread would use (its own and its nested layers'), so outputs are
// bit-identical to stepForward. Layer caches stay in the workers: ticks run there record no history.

/** A tensor as it crosses a thread boundary. */
interface PlainTensor {
  data: Float32Array;
  shape: number[];
  nested?: PlainTensor[];
}

interface WorkerJob {
  index: number;
  input: PlainTensor;
  skip: PlainTensor | null;
  /** Weights of the layer and its nested layers (walkLayer order). */
  weights: (Float32Array | null)[];
}

interface WorkerReply {
  id: number;
  ready?: boolean;
  outputs?: { index: number; output: PlainTensor }[];
  error?: { name: string; message: string };
}

/** Worker threads that run the tiles of a tick (see createStepWorkerPool). */
export interface StepWorkerPool {
  readonly size: number;
  /** One tick of `state` (whose network the pool was made for) with its tiles spread over the workers; same result as stepForward. */
  tick(state: StepState, input?: Tensor): Promise<Tensor>;
  /** Stops the workers (a pool keeps the process alive until closed). */
  close(): Promise<void>;
}

/**
 * Starts `workers` threads that each hold a copy of `net`'s structure. Tiles are the state's
 * tileSize (4, the original's, when 0) and go to the workers round-robin.
 */
export async function createStepWorkerPool(net: VolumetricNetwork, workers = 2): Promise<StepWorkerPool> {
  if (!Number.isInteger(workers) || workers < 1) throw new SpecError('workers', 'a positive integer', workers);
  const { Worker } = await import('node:worker_threads');
  const { networkToJson } = await import('../grid/persistence.js');
  const model = networkToJson(net);
  const entry = new URL('./stepWorker.js', import.meta.url);
  const threads = Array.from({ length: workers }, () => new Worker(entry, { workerData: { model } }));
  const waiting = threads.map(() => new Map<number, { resolve: (r: WorkerReply) => void; reject: (e: Error) => void }>());
  let failure: Error | null = null;
  threads.forEach((w, k) => {
    w.on('message', (reply: WorkerReply) => {
      const pending = waiting[k].get(reply.id);
      waiting[k].delete(reply.id);
      if (!pending) return;
      if (reply.error) pending.reject(workerError(reply.error));
      else pending.resolve(reply);
    });
    w.on('error', (e: Error) => {
      failure = new LoomError(`step worker ${k} failed: ${e.message}`);
      for (const p of waiting[k].values()) p.reject(failure);
      waiting[k].clear();
    });
  });
  const reply = (k: number, id: number): Promise<WorkerReply> =>
    new Promise((resolve, reject) => {
      if (failure) reject(failure);
      else waiting[k].set(id, { resolve, reject });
    });
  try {
    await Promise.all(threads.map((_, k) => reply(k, 0)));
  } catch (e) {
    await Promise.all(threads.map((w) => w.terminate()));
    throw e;
  }
  let nextId = 1;

  return {
    size: workers,
    async tick(state, input) {
      if (state.net !== net) throw new LoomError('step worker pool: this state belongs to another network');
      if (state.captureHistory) {
        throw new LoomError('step worker pool: history capture needs the layer caches, which stay in the worker threads; run captured ticks with stepForward');
      }
      if (input) state.setInput(input);
      const layout = state.layout;
      const reads = layout.order.map((cell) => state.reads(cell));
      const tileSize = state.tileSize || 4;
      const groups = new Map<string, number[]>();
      layout.order.forEach((cell, k) => {
        const { z, y, x } = net.coordOf(cell.index);
        const key = `${Math.floor(z / tileSize)},${Math.floor(y / tileSize)},${Math.floor(x / tileSize)}`;
        let g = groups.get(key);
        if (!g) groups.set(key, (g = []));
        g.push(k);
      });
      const jobs: WorkerJob[][] = threads.map(() => []);
      [...groups.values()].forEach((group, g) => {
        for (const k of group) {
          const cell = layout.order[k];
          const { value, skip } = reads[k];
          const weights = [...walkLayer(cell.layer)].map((l, i) => ownBuffer(i === 0 ? activeWeights(l) : l.weights ? l.weights.getActive(l.dtype) : null));
          jobs[g % workers].push({ index: cell.index, input: plain(value), skip: skip && plain(skip), weights });
        }
      });
      const id = nextId++;
      const replies = await Promise.all(
        jobs.map((list, k) => {
          if (list.length === 0) return { id, outputs: [] };
          const answer = reply(k, id);
          threads[k].postMessage({ id, jobs: list });
          return answer;
        }),
      );
      const byIndex = new Map<number, Tensor>();
      for (const r of replies) for (const o of r.outputs!) byIndex.set(o.index, tensorOf(o.output));
      state.commit(reads, layout.cells.map((c) => byIndex.get(c.index)!), null);
      return state.output();
    },
    async close() {
      await Promise.all(threads.map((w) => w.terminate()));
    },
  };
}

/** Entry point of a pool's worker thread (started by createStepWorkerPool). */
export async function runStepWorker(): Promise<void> {
  const { parentPort, workerData } = await import('node:worker_threads');
  const port = parentPort!;
  let net: VolumetricNetwork;
  try {
    const { buildNetwork } = await import('../grid/spec.js');
    net = buildNetwork(workerData.model);
  } catch (e) {
    port.postMessage({ id: 0, error: errorInfo(e) });
    return;
  }
  port.postMessage({ id: 0, ready: true });
  port.on('message', (message: { id: number; jobs: WorkerJob[] }) => {
    try {
      const outputs = message.jobs.map((job) => {
        const layer = net.cells[job.index]!;
        [...walkLayer(layer)].forEach((l, i) => {
          const w = job.weights[i];
          if (l.weights && w) {
            l.weights.master = w;
            l.weights.markMasterChanged();
          }
          l.dtype = DType.Float32;
        });
        const { output } = layer.kind.forward(layer, tensorOf(job.input), layer.weights ? layer.weights.master : null, job.skip && tensorOf(job.skip));
        return { index: job.index, output: plain(output) };
      });
      port.postMessage({ id: message.id, outputs });
    } catch (e) {
      port.postMessage({ id: message.id, error: errorInfo(e) });
    }
  });
}

/**
 * A message clones a typed array's whole buffer: a master that is a view into a larger one (AdamW
 * keeps it in its WebAssembly memory next to the gradient and moments) is copied out on its own first.
 */
function ownBuffer(w: Float32Array | null): Float32Array | null {
  return w && w.byteLength !== w.buffer.byteLength ? w.slice() : w;
}

function plain(t: Tensor): PlainTensor {
  const p: PlainTensor = { data: t.data, shape: [...t.shape] };
  if (t.nested) p.nested = t.nested.map(plain);
  return p;
}

function tensorOf(p: PlainTensor): Tensor {
  return new Tensor(p.data, p.shape, p.nested?.map(tensorOf));
}

function errorInfo(e: unknown): { name: string; message: string } {
  return e instanceof Error ? { name: e.name, message: e.message } : { name: 'Error', message: String(e) };
}

function workerError(info: { name: string; message: string }): Error {
  if (info.name === 'ShapeError') return new ShapeError(info.message);
  if (info.name === 'NumericError') return new NumericError(info.message);
  return new LoomError(info.message);
}

/** The original's earlier names (poly-api-index: SystolicState, SystolicForward, SystolicBackward). */
export { StepState as SystolicState, stepForward as systolicForward, stepBackward as systolicBackward };
