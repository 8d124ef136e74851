import { LoomError, ShapeError, SpecError } from '../core/errors.js';
import { Tensor } from '../core/tensor.js';
import type { VolumetricNetwork } from '../grid/network.js';
import { walkLayer, type Layer } from '../layers/layer.js';
import { forwardNetwork, type ParameterGradient } from './run.js';
import { CONSTANT_REF, backwardGraph, historyGraph, snapshotGraph, traceGraph, type GraphNode, type LayerGraph, type StepState } from './step.js';

/*
 * Tween: neural target propagation. A forward pass records every activation ("what is"); a backward
 * pass gives every layer a target ("what should be"); each layer then closes its own gap, gated and
 * scaled by its link budget (how well actual and target agree in direction). Formulas follow the
 * original's tween.go; batches generalize its single-sample loops (rows are averaged), and
 * recordings are graphs, so a live step mesh (one node per tick and cell) works the same way.
 */

export interface TweenConfig {
  /**
   * Chain-rule mode: targets = activation + gradientScale·gradient, updates use exact parameter
   * gradients. False: target propagation without derivatives and local gap updates.
   */
  useChainRule: boolean;
  gradientScale: number;
  /** Deeper layers get their updates boosted by depthScaleFactor^(layers from the output), capped at 100. */
  depthScaleFactor: number;
  momentum: number;
  learningRate: number;
  /** Layers whose link budget is below this are left alone (the original's fixed 0.2). */
  ignoreThreshold: number;
}

/** The original's DefaultTweenConfig (chain rule on, scale 0.1, depth factor 1.1, momentum 0.9, lr 0.01) plus its 0.2 gate. */
export function defaultTweenConfig(): TweenConfig {
  return { useChainRule: true, gradientScale: 0.1, depthScaleFactor: 1.1, momentum: 0.9, learningRate: 0.01, ignoreThreshold: 0.2 };
}

/** Per-layer diagnostics of the latest backward pass. */
export interface TweenLayer {
  key: string;
  layer: Layer;
  /** Graph nodes that are evaluations of this layer. */
  nodes: number[];
  /** Fewest layers between this one and the output (0 for the output layer); -1 if unconnected. */
  depth: number;
  /** (cos(actual, target) + 1) / 2 over all its nodes; 0.5 when either side is all zeros. */
  budget: number;
  /** RMS of actual − target. */
  gap: number;
  /** A target reached this layer. */
  reached: boolean;
}

/** Activations, targets, gradients and momentum of Tween training. */
export class TweenState {
  readonly config: TweenConfig;
  graph: LayerGraph | null = null;
  /** What each graph node should have produced (undefined where no target arrived). */
  targets: (Tensor | undefined)[] = [];
  /** Targets for the external inputs (diagnostic). */
  inputTargets: (Tensor | undefined)[] = [];
  /** Chain mode: the gradient of Σ (target − output)·output at each node's output. */
  gradients: (Tensor | undefined)[] = [];
  /** Chain mode: depth-scaled parameter gradients per layer key (nested layers "key.path"). */
  weightGradients: ParameterGradient[] = [];
  layers: TweenLayer[] = [];
  /** Per node: layers between it and the output (-1 if unconnected). */
  depths = new Int32Array(0);
  /** Momentum buffers per parameter key; they persist across steps. */
  readonly velocity = new Map<string, Float32Array>();
  /** Output of the latest forward pass. */
  output: Tensor | null = null;

  constructor(config: Partial<TweenConfig> = {}) {
    this.config = { ...defaultTweenConfig(), ...config };
    const c = this.config;
    for (const name of ['gradientScale', 'depthScaleFactor', 'momentum', 'learningRate', 'ignoreThreshold'] as const) {
      const v = c[name];
      if (!Number.isFinite(v) || v < 0) throw new SpecError(`tween.${name}`, 'a finite number ≥ 0', v);
    }
    if (c.momentum >= 1) throw new SpecError('tween.momentum', 'a number below 1', c.momentum);
  }

  /** Installs a recorded computation; per-node results of earlier passes are dropped. */
  setGraph(graph: LayerGraph): void {
    this.graph = graph;
    this.output = graph.nodes[graph.output].output;
    const n = graph.nodes.length;
    this.targets = new Array(n);
    this.gradients = new Array(n);
    this.inputTargets = new Array(graph.externals.length);
    this.weightGradients = [];
    const depths = new Int32Array(n).fill(-1);
    depths[graph.output] = 0;
    for (let k = graph.output; k >= 0; k--) {
      if (depths[k] < 0) continue;
      for (const p of [graph.nodes[k].input, graph.nodes[k].skip]) {
        if (p >= 0 && (depths[p] < 0 || depths[p] > depths[k] + 1)) depths[p] = depths[k] + 1;
      }
    }
    this.depths = depths;
    const byKey = new Map<string, TweenLayer>();
    graph.nodes.forEach((node, k) => {
      let entry = byKey.get(node.key);
      if (!entry) byKey.set(node.key, (entry = { key: node.key, layer: node.layer, nodes: [], depth: -1, budget: 0.5, gap: 0, reached: false }));
      entry.nodes.push(k);
      if (depths[k] >= 0 && (entry.depth < 0 || depths[k] < entry.depth)) entry.depth = depths[k];
    });
    this.layers = [...byKey.values()];
  }

  /** Link budget per layer, in the order of `layers`. */
  get linkBudgets(): Float32Array {
    return Float32Array.from(this.layers, (l) => l.budget);
  }

  get gaps(): Float32Array {
    return Float32Array.from(this.layers, (l) => l.gap);
  }

  /** The update multiplier of graph node `k`. */
  depthScale(k: number): number {
    const d = this.depths[k];
    return d <= 0 ? 1 : Math.min(100, Math.pow(this.config.depthScaleFactor, d));
  }

  /** The recorded graph, checked to exist. */
  get recorded(): LayerGraph {
    if (!this.graph) throw new LoomError('tween: no forward pass recorded yet (call tweenForward or stepApplyTween)');
    return this.graph;
  }
}

/** A TweenState with the original's defaults overridden by `config`. */
export function createTweenState(config: Partial<TweenConfig> = {}): TweenState {
  return new TweenState(config);
}

/** Ordinary forward pass that records every activation for Tween; returns the output. */
export function tweenForward(net: VolumetricNetwork, state: TweenState, input: Tensor): Tensor {
  const { output, trace } = forwardNetwork(net, input, { keepTrace: true });
  state.setGraph(traceGraph(trace!));
  return output;
}

/** Gives every layer a target, by the chain rule or by target propagation as the config says. */
export function tweenBackward(state: TweenState, target: Tensor | Float32Array): void {
  if (state.config.useChainRule) tweenBackwardChainRule(state, target);
  else tweenBackwardTargetProp(state, target);
}

/**
 * Chain-rule targets: the output's gradient is target − output; it is backpropagated exactly through
 * every layer (kind.backward), each node's target is its activation + gradientScale·gradient, and each
 * layer keeps its parameter gradient (scaled by depth) for applyTweenGaps. The output node's target is `target`.
 */
export function tweenBackwardChainRule(state: TweenState, target: Tensor | Float32Array): void {
  const graph = state.recorded;
  const out = graph.nodes[graph.output].output;
  const t = asTarget(target, out);
  const err = new Float32Array(out.size);
  for (let i = 0; i < err.length; i++) err[i] = t.data[i] - out.data[i];
  const r = backwardGraph(graph, new Map([[graph.output, new Tensor(err, out.shape)]]), (k) => state.depthScale(k));
  const scale = state.config.gradientScale;
  state.gradients = r.nodeGrads;
  state.weightGradients = r.gradients;
  state.targets = graph.nodes.map((node, k) => (k === graph.output ? t : r.nodeGrads[k] && shifted(node.output, r.nodeGrads[k]!, scale)));
  state.inputTargets = graph.externals.map((x, e) => r.externalGrads[e] && shifted(x, r.externalGrads[e]!, scale));
}

/**
 * Target propagation without derivatives across layers. A Dense layer (W [out][in]) turns the target of
 * its output into one for its input: per input i, Σ_o W[o,i]·t[o] / Σ_o |W[o,i]|, or 0 when
 * Σ_o |W[o,i]| ≤ 0.01. Every other kind (Conv, RNN, LSTM, attention, norms, …) has no such inverse, so
 * it moves its actual input x by its own local step: x + Jᵀ(t − y), J its Jacobian at this evaluation
 * (one kind.backward of the gap). A value read by several layers gets the mean of their estimates;
 * skip inputs get none.
 */
export function tweenBackwardTargetProp(state: TweenState, target: Tensor | Float32Array): void {
  const graph = state.recorded;
  const { nodes } = graph;
  const out = nodes[graph.output].output;
  const targets: (Tensor | undefined)[] = new Array(nodes.length);
  const sums: (Float64Array | undefined)[] = new Array(nodes.length);
  const counts = new Int32Array(nodes.length);
  const extSums: (Float64Array | undefined)[] = new Array(graph.externals.length);
  const extCounts = new Int32Array(graph.externals.length);
  const add = (list: (Float64Array | undefined)[], i: number, est: Float32Array): void => {
    const s = (list[i] ??= new Float64Array(est.length));
    for (let j = 0; j < est.length; j++) s[j] += est[j];
  };
  targets[graph.output] = asTarget(target, out);
  for (let k = graph.output; k >= 0; k--) {
    const node = nodes[k];
    if (k !== graph.output && counts[k] > 0) targets[k] = new Tensor(mean(sums[k]!, counts[k]), node.output.shape);
    const tk = targets[k];
    if (!tk || node.input === CONSTANT_REF) continue;
    const est = estimateInputTarget(node, tk);
    if (node.input >= 0) {
      add(sums, node.input, est);
      counts[node.input]++;
    } else {
      const e = -2 - node.input;
      add(extSums, e, est);
      extCounts[e]++;
    }
  }
  state.targets = targets;
  state.gradients = new Array(nodes.length);
  state.weightGradients = [];
  state.inputTargets = graph.externals.map((x, e) => (extCounts[e] > 0 ? new Tensor(mean(extSums[e]!, extCounts[e]), x.shape) : undefined));
}

/** Target for a layer's input from the target of its output (see tweenBackwardTargetProp). */
function estimateInputTarget(node: GraphNode, target: Tensor): Float32Array {
  const { layer, weights } = node;
  const input = node.cache.input;
  if (layer.kind.name !== 'Dense' || !weights) {
    const step = layer.kind.backward(layer, gapOf(node, target, 1, false), node.cache, weights).gradInput.data;
    const est = new Float32Array(input.size);
    for (let i = 0; i < est.length; i++) est[i] = input.data[i] + step[i];
    return est;
  }
  const nIn = layer.config.inputHeight ?? 0;
  const nOut = layer.config.outputHeight ?? 0;
  const rows = input.size / nIn;
  const est = new Float32Array(input.size);
  const total = new Float64Array(nIn);
  for (let o = 0; o < nOut; o++) for (let i = 0; i < nIn; i++) total[i] += Math.abs(weights[o * nIn + i]);
  const t = target.data;
  for (let b = 0; b < rows; b++) {
    for (let i = 0; i < nIn; i++) {
      if (!(total[i] > 0.01)) continue;
      let importance = 0;
      for (let o = 0; o < nOut; o++) importance += weights[o * nIn + i] * t[b * nOut + o];
      est[b * nIn + i] = importance / total[i];
    }
  }
  return est;
}

/**
 * Link budgets and gaps per layer, over all its nodes that have a target: budget = (cos + 1) / 2 of
 * actual vs target (0.5 when either is all zeros), gap = RMS(actual − target).
 */
export function calculateLinkBudgets(state: TweenState): void {
  const graph = state.recorded;
  for (const entry of state.layers) {
    let dot = 0;
    let fMag = 0;
    let bMag = 0;
    let gapSq = 0;
    let count = 0;
    for (const k of entry.nodes) {
      const t = state.targets[k];
      if (!t) continue;
      const f = graph.nodes[k].output.data;
      const b = t.data;
      for (let i = 0; i < f.length; i++) {
        dot += f[i] * b[i];
        fMag += f[i] * f[i];
        bMag += b[i] * b[i];
        const d = f[i] - b[i];
        gapSq += d * d;
      }
      count += f.length;
    }
    entry.reached = count > 0;
    entry.budget = fMag > 0 && bMag > 0 ? (dot / (Math.sqrt(fMag) * Math.sqrt(bMag)) + 1) / 2 : 0.5;
    entry.gap = count > 0 ? Math.sqrt(gapSq / count) : 0;
  }
}

/**
 * Updates weights. Every reached layer with budget ≥ ignoreThreshold learns at lr·(0.5 + 0.5·budget):
 * chain mode adds v = momentum·v + (1 − momentum)·rate·g (g its depth-scaled gradient, nested layers
 * included); target-prop mode closes gaps locally — Dense by the delta rule on x·(target − actual)
 * (plus bias) with the same momentum, RMSNorm/LayerNorm by gamma += rate·gap·0.01, every other kind
 * with parameters (Conv, RNN, LSTM, attention, containers, …) by its own parameter gradient of the
 * local gap ½‖target − actual‖² (one kind.backward, nothing chained across layers), with the same momentum.
 */
export function applyTweenGaps(state: TweenState, lr = state.config.learningRate): void {
  const gate = (entry: TweenLayer | undefined): number | null => {
    if (!entry || !entry.reached || entry.budget < state.config.ignoreThreshold) return null;
    return lr * (0.5 + entry.budget * 0.5);
  };
  if (state.config.useChainRule) {
    const byKey = new Map(state.layers.map((l) => [l.key, l]));
    for (const { key, layer, grad } of state.weightGradients) {
      const rate = gate(byKey.get(key.split('.')[0]));
      if (rate !== null) addMomentum(state, key, layer, grad, rate);
    }
    return;
  }
  for (const entry of state.layers) {
    const rate = gate(entry);
    if (rate === null || ![...walkLayer(entry.layer)].some((l) => l.weights)) continue;
    const name = entry.layer.kind.name;
    if (name === 'Dense') denseGapUpdate(state, entry, rate);
    else if (name === 'RMSNorm' || name === 'LayerNorm') normGapUpdate(state, entry, rate);
    else localGapUpdate(state, entry, rate);
  }
}

/** (target − actual)·scale at a node, the output gradient of −½‖target − actual‖²; divided by the rows when `average`. */
function gapOf(node: GraphNode, target: Tensor, scale: number, average: boolean): Tensor {
  const y = node.output.data;
  const rows = average ? (node.output.shape[0] ?? 1) : 1;
  const g = new Float32Array(y.length);
  for (let i = 0; i < g.length; i++) g[i] = ((target.data[i] - y[i]) * scale) / rows;
  return new Tensor(g, node.output.shape);
}

function localGapUpdate(state: TweenState, entry: TweenLayer, rate: number): void {
  const graph = state.recorded;
  const sums = new Map<string, { layer: Layer; delta: Float64Array }>();
  const add = (key: string, layer: Layer, g: Float32Array): void => {
    let s = sums.get(key);
    if (!s) sums.set(key, (s = { layer, delta: new Float64Array(g.length) }));
    for (let i = 0; i < g.length; i++) s.delta[i] += g[i];
  };
  for (const k of entry.nodes) {
    const t = state.targets[k];
    if (!t) continue;
    const node = graph.nodes[k];
    const r = node.layer.kind.backward(node.layer, gapOf(node, t, state.depthScale(k), true), node.cache, node.weights);
    if (r.gradWeights) add(entry.key, entry.layer, r.gradWeights);
    for (const c of r.childGradients ?? []) add(`${entry.key}.${c.path}`, c.layer, c.grad);
  }
  for (const [key, { layer, delta }] of sums) addMomentum(state, key, layer, delta, rate);
}

function addMomentum(state: TweenState, key: string, layer: Layer, delta: ArrayLike<number>, rate: number): void {
  const store = layer.weights!;
  const w = store.master;
  let vel = state.velocity.get(key);
  if (!vel || vel.length !== w.length) state.velocity.set(key, (vel = new Float32Array(w.length)));
  const mom = state.config.momentum;
  for (let i = 0; i < w.length; i++) {
    vel[i] = mom * vel[i] + (1 - mom) * (rate * delta[i]);
    w[i] += vel[i];
  }
  store.markMasterChanged();
}

function denseGapUpdate(state: TweenState, entry: TweenLayer, rate: number): void {
  const graph = state.recorded;
  const { layer } = entry;
  const nIn = layer.config.inputHeight ?? 0;
  const nOut = layer.config.outputHeight ?? 0;
  const delta = new Float64Array(layer.weights!.count);
  for (const k of entry.nodes) {
    const t = state.targets[k];
    if (!t) continue;
    const node = graph.nodes[k];
    const x = node.cache.input.data;
    const y = node.output.data;
    const rows = x.length / nIn;
    const scale = state.depthScale(k) / rows;
    for (let b = 0; b < rows; b++) {
      for (let o = 0; o < nOut; o++) {
        const g = (t.data[b * nOut + o] - y[b * nOut + o]) * scale;
        const row = o * nIn;
        for (let i = 0; i < nIn; i++) delta[row + i] += x[b * nIn + i] * g;
        if (layer.config.useBias) delta[nIn * nOut + o] += g;
      }
    }
  }
  addMomentum(state, entry.key, layer, delta, rate);
}

function normGapUpdate(state: TweenState, entry: TweenLayer, rate: number): void {
  const graph = state.recorded;
  const n = entry.layer.config.inputHeight ?? 0;
  const gamma = entry.layer.weights!.master;
  const delta = new Float64Array(n);
  for (const k of entry.nodes) {
    const t = state.targets[k];
    if (!t) continue;
    const y = graph.nodes[k].output.data;
    const rows = y.length / n;
    const scale = state.depthScale(k) / rows;
    for (let j = 0; j < y.length; j++) delta[j % n] += (t.data[j] - y[j]) * scale;
  }
  for (let j = 0; j < n; j++) gamma[j] += rate * delta[j] * 0.01;
  entry.layer.weights!.markMasterChanged();
}

/** One Tween training step on one (batch of) sample(s): forward, targets, budgets, updates. Returns the MSE before the update. */
export function tweenStep(net: VolumetricNetwork, state: TweenState, input: Tensor, target: Tensor | Float32Array, lr = state.config.learningRate): number {
  const output = tweenForward(net, state, input);
  const t = asTarget(target, output);
  tweenBackward(state, t);
  calculateLinkBudgets(state);
  applyTweenGaps(state, lr);
  return mse(output.data, t.data);
}

/** Options of stepApplyTween. */
export interface StepTweenOptions {
  lr?: number;
  /** State to use; by default one per mesh, created with target propagation (the original's choice for meshes). */
  tween?: TweenState;
  /** Use the captured history (exact per tick) rather than the latest tick alone; default: history when there is one. */
  useHistory?: boolean;
}

const meshTweens = new WeakMap<StepState, TweenState>();

/**
 * Tween on a live step mesh at any tick: `target` is what the output cell should show now. With
 * captured history the recording is exact (targets follow each value back to the tick that made it);
 * without, the latest tick is taken as a steady-state snapshot (see snapshotGraph).
 */
export function stepApplyTween(mesh: StepState, target: Tensor | Float32Array, options: StepTweenOptions = {}): TweenState {
  let state = options.tween ?? meshTweens.get(mesh);
  if (!state) meshTweens.set(mesh, (state = new TweenState({ useChainRule: false })));
  const useHistory = options.useHistory ?? mesh.history.length > 0;
  state.setGraph(useHistory ? historyGraph(mesh) : snapshotGraph(mesh));
  tweenBackward(state, target);
  calculateLinkBudgets(state);
  applyTweenGaps(state, options.lr ?? state.config.learningRate);
  return state;
}

function asTarget(target: Tensor | Float32Array, like: Tensor): Tensor {
  const data = target instanceof Tensor ? target.data : target;
  if (data.length !== like.size) {
    throw new ShapeError(`tween: the output has ${like.size} values (shape [${like.shape.join(', ')}]) but the target has ${data.length}`);
  }
  return new Tensor(data, like.shape);
}

function shifted(act: Tensor, grad: Tensor, scale: number): Tensor {
  const out = new Float32Array(act.size);
  for (let i = 0; i < out.length; i++) out[i] = act.data[i] + grad.data[i] * scale;
  return new Tensor(out, act.shape);
}

function mean(sum: Float64Array, count: number): Float32Array {
  const out = new Float32Array(sum.length);
  for (let i = 0; i < out.length; i++) out[i] = sum[i] / count;
  return out;
}

function mse(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i] - b[i];
    s += d * d;
  }
  return s / a.length;
}

/** The original's earlier names (poly-api-index: TargetPropState, TargetPropConfig, TargetPropForward, …). */
export {
  TweenState as TargetPropState,
  type TweenConfig as TargetPropConfig,
  tweenForward as targetPropForward,
  tweenBackward as targetPropBackward,
  tweenBackwardChainRule as targetPropBackwardChainRule,
  tweenBackwardTargetProp as targetPropBackwardTargetProp,
  applyTweenGaps as applyTargetPropGaps,
  stepApplyTween as systolicApplyTargetProp,
};
