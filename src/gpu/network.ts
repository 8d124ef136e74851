import { LoomError } from '../core/errors.js';
import { Tensor } from '../core/tensor.js';
import type { PlanStep, VolumetricNetwork } from '../grid/network.js';
import { coordText, type Layer } from '../layers/layer.js';
import { Activation } from '../layers/activations.js';
import { groups1d, type GpuArray, type GpuContext } from './context.js';
import { add } from './kernels/elementwise.js';
import { accumulateWgsl } from './kernels/llm.js';
import { Arena, gpuLayerKind, sizeOf, type GpuCache, type GpuLayerKind, type GpuTensor } from './layers.js';
import './sequenceLayers.js';

/** One layer's parameters on the GPU: values, gradient, and the CPU master they mirror. */
export interface GpuParams {
  key: string;
  layer: Layer;
  count: number;
  weights: GpuArray;
  grad: GpuArray;
  /**
   * Set on a layer whose WeightStore an earlier layer owns (a tied LM head): it shares that layer's
   * weights, and after backward its gradient is added into the owner's, in traversal order.
   */
  tiedTo?: GpuParams;
}

export interface GpuTrace {
  values: GpuTensor[];
  caches: GpuCache[];
}

/**
 * A network whose parameters live on the GPU. forward/backward record into the context's open frame
 * (nothing is submitted); the engine follows the network's plan and binds each layer's GPU kernels
 * through its kind's entry in the GPU table.
 */
export class GpuNetwork {
  readonly plan: PlanStep[];
  readonly params: (GpuParams | null)[];
  private readonly kinds: GpuLayerKind[];

  constructor(
    readonly ctx: GpuContext,
    readonly net: VolumetricNetwork,
  ) {
    this.plan = net.plan();
    this.kinds = this.plan.map(({ layer }) => {
      const kind = gpuLayerKind(layer);
      if (!kind) throw new LoomError(`${layer.kind.name} at ${coordText(layer)} has no GPU kernels yet; train it on the CPU`);
      if (layer.children?.length || layer.namedChildren) throw new LoomError(`${layer.kind.name} at ${coordText(layer)}: containers are not supported on the GPU`);
      return kind;
    });
    const byStore = new Map<object, GpuParams>();
    this.params = this.plan.map(({ layer, index }) => {
      if (!layer.weights) return null;
      const owner = byStore.get(layer.weights);
      if (owner) return { key: String(index), layer, count: owner.count, weights: owner.weights, grad: ctx.alloc(owner.count), tiedTo: owner };
      const values = layer.weights.master;
      const p: GpuParams = { key: String(index), layer, count: values.length, weights: ctx.upload(values), grad: ctx.alloc(values.length) };
      byStore.set(layer.weights, p);
      return p;
    });
  }

  /** The parameter vectors an optimizer updates: one per WeightStore (tied layers count once). */
  get trainable(): GpuParams[] {
    return this.params.filter((p): p is GpuParams => p !== null && !p.tiedTo);
  }

  forward(arena: Arena, input: GpuTensor, keepTrace = false): { output: GpuTensor; trace?: GpuTrace } {
    const values: GpuTensor[] = [input];
    const caches: GpuCache[] = [];
    this.plan.forEach((step, k) => {
      const skip = step.skipValue >= 0 ? values[step.skipValue] : null;
      const r = this.kinds[k].forward(arena, step.layer, values[step.inputValue], this.params[k]?.weights ?? null, skip);
      values.push(r.output);
      if (keepTrace) caches.push(r.cache);
    });
    const output = values[values.length - 1];
    return keepTrace ? { output, trace: { values, caches } } : { output };
  }

  /** Records the backward pass; each layer's parameter gradient lands in `params[k].grad`. */
  backward(arena: Arena, trace: GpuTrace, gradOutput: GpuTensor): void {
    const grads: (GpuTensor | undefined)[] = new Array(trace.values.length);
    grads[grads.length - 1] = gradOutput;
    const ran = new Set<number>();
    for (let k = this.plan.length - 1; k >= 0; k--) {
      const g = grads[k + 1];
      if (!g) continue;
      ran.add(k);
      const step = this.plan[k];
      const p = this.params[k];
      const needInput = step.inputValue > 0 || (step.skipValue > 0 && step.layer.kind.takesSkip === true);
      const r = this.kinds[k].backward(arena, step.layer, g, trace.caches[k], p?.weights ?? null, p?.grad ?? null, needInput);
      if (r.gradInput && step.inputValue > 0) grads[step.inputValue] = this.accumulate(arena, grads[step.inputValue], r.gradInput);
      if (r.gradSkip && step.skipValue > 0) grads[step.skipValue] = this.accumulate(arena, grads[step.skipValue], r.gradSkip);
    }
    this.params.forEach((p, k) => {
      if (p?.tiedTo && ran.has(k)) this.ctx.dispatch(accumulateWgsl(Activation.Linear), [this.ctx.uniform([p.count]), p.grad, p.tiedTo.grad], groups1d(p.count));
    });
  }

  /** Copies the GPU parameters back into each layer's master (and marks it changed). */
  async download(): Promise<void> {
    for (const p of this.params) {
      if (!p || p.tiedTo) continue;
      p.layer.weights!.master.set(await this.ctx.read(p.weights, p.count));
      p.layer.weights!.markMasterChanged();
    }
  }

  /** Runs a forward pass on `input` and returns the output (one submit, one readback). */
  async predict(input: Tensor): Promise<Tensor> {
    const arena = new Arena(this.ctx);
    try {
      const x = this.ctx.upload(input.data);
      const { output } = this.forward(arena, { data: x, shape: input.shape });
      const values = await this.ctx.read(output.data, sizeOf(output.shape));
      this.ctx.release(x);
      return new Tensor(values, output.shape);
    } finally {
      arena.releaseAll();
    }
  }

  destroy(): void {
    for (const p of this.params) {
      if (!p?.tiedTo) this.ctx.release(p?.weights);
      this.ctx.release(p?.grad);
    }
  }

  private accumulate(arena: Arena, existing: GpuTensor | undefined, g: GpuTensor): GpuTensor {
    if (!existing) return g;
    const n = sizeOf(existing.shape);
    const sum = arena.alloc(n);
    add(this.ctx, existing.data, g.data, sum, n);
    return { data: sum, shape: existing.shape };
  }
}
