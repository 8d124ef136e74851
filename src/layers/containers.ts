import { ShapeError, SpecError } from '../core/errors.js';
import { Tensor } from '../core/tensor.js';
import { coordText, type ChildGradient, type Layer, type LayerCache, type LayerKind } from './layer.js';
import { registerLayerKind } from './registry.js';

/** One nested layer's forward record, kept for its backward call. */
interface ChildRun {
  child: Layer;
  weights: Float32Array | null;
  cache: LayerCache;
  output: Tensor;
}

function runChild(child: Layer, input: Tensor, skip: Tensor | null): ChildRun {
  const weights = child.weights ? child.weights.getActive(child.dtype) : null;
  const { output, cache } = child.kind.forward(child, input, weights, skip);
  return { child, weights, cache, output };
}

/** Backward through one nested layer; its parameter gradients are collected under `path`. */
function backChild(run: ChildRun, grad: Tensor, path: string, into: ChildGradient[]) {
  const r = run.child.kind.backward(run.child, grad, run.cache, run.weights);
  if (r.gradWeights) into.push({ path, layer: run.child, grad: r.gradWeights });
  for (const c of r.childGradients ?? []) into.push({ path: `${path}.${c.path}`, layer: c.layer, grad: c.grad });
  return r;
}

function addInto(target: Float32Array, g: Float32Array): void {
  for (let i = 0; i < target.length; i++) target[i] += g[i];
}

function rejectNestedRemote(layer: Layer, path: string): void {
  for (const child of layer.children ?? []) {
    if (child.remote) throw SpecError.at(path, 'remote links inside containers are not supported (link the container itself)');
  }
}

/**
 * Sequential: runs its nested layers in order (disabled ones pass through). A nested Residual adds the
 * input of the step before it, as in the grid.
 */
export const sequentialKind: LayerKind = {
  name: 'Sequential',
  aliases: [],
  childrenField: 'sequential_layers',

  configure(layer, path) {
    layer.children ??= [];
    rejectNestedRemote(layer, `${path}.sequential_layers`);
  },
  parameterCount: () => 0,
  initParameters() {},

  forward(layer, input) {
    const runs: ChildRun[] = [];
    let current = input;
    let previousInput: Tensor | null = null;
    for (const child of layer.children!) {
      if (child.disabled) continue;
      const run = runChild(child, current, child.kind.takesSkip ? previousInput : null);
      runs.push(run);
      previousInput = current;
      current = run.output;
    }
    return { output: current, cache: { input, extra: runs } };
  },

  backward(layer, gradOutput, cache) {
    const runs = cache.extra as ChildRun[];
    const childGradients: ChildGradient[] = [];
    // grads[k] is the gradient of the value entering step k (grads[runs.length] is the output's).
    const grads: (Float32Array | undefined)[] = new Array(runs.length + 1);
    grads[runs.length] = gradOutput.data;
    const indexOf = new Map(layer.children!.map((c, i) => [c, i]));
    for (let k = runs.length - 1; k >= 0; k--) {
      const g = grads[k + 1];
      if (!g) continue;
      const run = runs[k];
      const r = backChild(run, new Tensor(g, run.output.shape), String(indexOf.get(run.child)), childGradients);
      grads[k] = accumulate(grads[k], r.gradInput.data);
      if (r.gradSkip && k > 0) grads[k - 1] = accumulate(grads[k - 1], r.gradSkip.data);
    }
    const gradIn = grads[0] ?? new Float32Array(cache.input.size);
    return { gradInput: new Tensor(gradIn, cache.input.shape), gradWeights: null, childGradients };
  },
};

function accumulate(existing: Float32Array | undefined, g: Float32Array): Float32Array {
  if (!existing) return g;
  const sum = existing.slice();
  addInto(sum, g);
  return sum;
}

export const COMBINE_MODES = ['add', 'avg', 'concat', 'filter', 'grid_scatter'] as const;
export type CombineMode = (typeof COMBINE_MODES)[number];

interface ParallelCache {
  runs: ChildRun[];
  mode: CombineMode;
  gate?: ChildRun;
  /** Softmax of the gate's logits, [batch × branches] (filter mode). */
  gateWeights?: Float32Array;
}

/**
 * Parallel: every branch reads the same input; outputs are combined by `combine_mode`:
 * add, avg, concat ([B, Σ widths]), grid_scatter (equal-width branches stacked as [B, branches, width]),
 * or filter — a mixture of experts where `filter_gate` (a nested layer with one output per branch)
 * gives per-sample logits, softmaxed into branch weights. Branches may differ in type and depth.
 */
export const parallelKind: LayerKind = {
  name: 'Parallel',
  aliases: [],
  childrenField: 'parallel_branches',
  namedChildFields: ['filter_gate'],

  configure(layer, path) {
    layer.children ??= [];
    const mode = (layer.config.combineMode ?? 'concat').toLowerCase();
    if (!(COMBINE_MODES as readonly string[]).includes(mode)) {
      throw new SpecError(`${path}.combine_mode`, `one of ${COMBINE_MODES.join(', ')}`, layer.config.combineMode);
    }
    layer.config.combineMode = mode;
    if (layer.children.length === 0) throw new SpecError(`${path}.parallel_branches`, 'at least one branch');
    rejectNestedRemote(layer, `${path}.parallel_branches`);
    if (mode === 'filter' && !layer.namedChildren?.filter_gate) {
      throw new SpecError(`${path}.filter_gate`, `a gate layer with one output per branch (${layer.children.length}) for combine_mode "filter"`);
    }
    if (mode !== 'filter' && layer.namedChildren?.filter_gate) {
      throw SpecError.at(`${path}.filter_gate`, 'a gate is only used with combine_mode "filter"');
    }
  },
  parameterCount: () => 0,
  initParameters() {},

  forward(layer, input) {
    const mode = layer.config.combineMode as CombineMode;
    const branches = layer.children!;
    const runs = branches.map((b) => runChild(b, input, null));
    const batch = input.batch;
    const widths = runs.map((r) => r.output.size / batch);
    const where = `Parallel at ${coordText(layer)}`;
    const cache: ParallelCache = { runs, mode };

    if (mode === 'concat' || mode === 'grid_scatter') {
      if (mode === 'grid_scatter' && widths.some((w) => w !== widths[0])) {
        throw new ShapeError(`${where}: grid_scatter needs branches of equal width, got ${widths.join(', ')}`);
      }
      const total = widths.reduce((a, b) => a + b, 0);
      const out = new Float32Array(batch * total);
      for (let b = 0; b < batch; b++) {
        let offset = b * total;
        runs.forEach((r, i) => {
          out.set(r.output.data.subarray(b * widths[i], (b + 1) * widths[i]), offset);
          offset += widths[i];
        });
      }
      const shape = mode === 'concat' ? [batch, total] : [batch, runs.length, widths[0]];
      return { output: new Tensor(out, shape), cache: { input, extra: cache } };
    }

    const size = runs[0].output.size;
    runs.forEach((r, i) => {
      if (r.output.size !== size) {
        throw new ShapeError(`${where}: combine_mode ${mode} needs branches of equal size; branch 0 gives [${runs[0].output.shape.join(', ')}], branch ${i} gives [${r.output.shape.join(', ')}]`);
      }
    });
    const out = new Float32Array(size);
    if (mode === 'filter') {
      const gate = runChild(layer.namedChildren!.filter_gate, input, null);
      const n = runs.length;
      if (gate.output.size !== batch * n) {
        throw new ShapeError(`${where}: the filter gate must give ${n} logits per sample, got shape [${gate.output.shape.join(', ')}]`);
      }
      const g = softmaxRows(gate.output.data, batch, n);
      const per = size / batch;
      for (let b = 0; b < batch; b++) {
        for (let j = 0; j < per; j++) {
          let s = 0;
          for (let i = 0; i < n; i++) s += g[b * n + i] * runs[i].output.data[b * per + j];
          out[b * per + j] = s;
        }
      }
      cache.gate = gate;
      cache.gateWeights = g;
    } else {
      const acc = new Float64Array(size);
      for (const r of runs) for (let j = 0; j < size; j++) acc[j] += r.output.data[j];
      const scale = mode === 'avg' ? 1 / runs.length : 1;
      for (let j = 0; j < size; j++) out[j] = acc[j] * scale;
    }
    return { output: new Tensor(out, runs[0].output.shape), cache: { input, extra: cache } };
  },

  backward(_layer, gradOutput, layerCache) {
    const { runs, mode, gate, gateWeights } = layerCache.extra as ParallelCache;
    const input = layerCache.input;
    const batch = input.batch;
    const gradIn = new Float32Array(input.size);
    const childGradients: ChildGradient[] = [];
    const g = gradOutput.data;

    if (mode === 'concat' || mode === 'grid_scatter') {
      const widths = runs.map((r) => r.output.size / batch);
      const total = widths.reduce((a, b) => a + b, 0);
      let offset = 0;
      runs.forEach((r, i) => {
        const part = new Float32Array(r.output.size);
        for (let b = 0; b < batch; b++) part.set(g.subarray(b * total + offset, b * total + offset + widths[i]), b * widths[i]);
        offset += widths[i];
        addInto(gradIn, backChild(r, new Tensor(part, r.output.shape), String(i), childGradients).gradInput.data);
      });
    } else if (mode === 'filter') {
      const n = runs.length;
      const per = runs[0].output.size / batch;
      const dWeights = new Float32Array(batch * n);
      runs.forEach((r, i) => {
        const part = new Float32Array(r.output.size);
        for (let b = 0; b < batch; b++) {
          const w = gateWeights![b * n + i];
          let dot = 0;
          for (let j = 0; j < per; j++) {
            part[b * per + j] = w * g[b * per + j];
            dot += g[b * per + j] * r.output.data[b * per + j];
          }
          dWeights[b * n + i] = dot;
        }
        addInto(gradIn, backChild(r, new Tensor(part, r.output.shape), String(i), childGradients).gradInput.data);
      });
      const dLogits = softmaxBackwardRows(gateWeights!, dWeights, batch, n);
      addInto(gradIn, backChild(gate!, new Tensor(dLogits, gate!.output.shape), 'filter_gate', childGradients).gradInput.data);
    } else {
      const scale = mode === 'avg' ? 1 / runs.length : 1;
      const part = scale === 1 ? g : g.map((v) => v * scale);
      runs.forEach((r, i) => addInto(gradIn, backChild(r, new Tensor(part, r.output.shape), String(i), childGradients).gradInput.data));
    }
    return { gradInput: new Tensor(gradIn, input.shape), gradWeights: null, childGradients };
  },
};

function softmaxRows(x: Float32Array, rows: number, n: number): Float32Array {
  const out = new Float32Array(rows * n);
  for (let r = 0; r < rows; r++) {
    let max = -Infinity;
    for (let i = 0; i < n; i++) max = Math.max(max, x[r * n + i]);
    let sum = 0;
    for (let i = 0; i < n; i++) sum += Math.exp(x[r * n + i] - max);
    for (let i = 0; i < n; i++) out[r * n + i] = Math.exp(x[r * n + i] - max) / sum;
  }
  return out;
}

/** dx = y ⊙ (dy − Σ y·dy), row by row. */
function softmaxBackwardRows(y: Float32Array, dy: Float32Array, rows: number, n: number): Float32Array {
  const out = new Float32Array(rows * n);
  for (let r = 0; r < rows; r++) {
    let dot = 0;
    for (let i = 0; i < n; i++) dot += y[r * n + i] * dy[r * n + i];
    for (let i = 0; i < n; i++) out[r * n + i] = y[r * n + i] * (dy[r * n + i] - dot);
  }
  return out;
}

registerLayerKind(sequentialKind);
registerLayerKind(parallelKind);
