import { decodeBase64, encodeBase64 } from '../core/base64.js';
import { FormatError, SpecError } from '../core/errors.js';
import type { WeightStore } from '../core/weightStore.js';
import { adamwStep, optimizerState, rmspropStep, sgdStep } from '../kernels/backend.js';

/** A parameter vector and its gradient, identified by a stable key (the layer's flat grid index). */
export interface ParamGrad {
  key: string;
  values: Float32Array;
  grad: Float32Array;
  /** The store whose master `values` is: an optimizer may move that master into memory it keeps (WeightStore.relocate). */
  store?: WeightStore;
}

export type OptimizerName = 'sgd' | 'adamw' | 'rmsprop';
export const OPTIMIZER_NAMES: readonly OptimizerName[] = ['sgd', 'adamw', 'rmsprop'];

export interface SgdOptions {
  lr: number;
  momentum?: number;
  dampening?: number;
  nesterov?: boolean;
  weightDecay?: number;
}
export interface AdamWOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
}
export interface RmspropOptions {
  lr: number;
  alpha?: number;
  eps?: number;
  momentum?: number;
  centered?: boolean;
  weightDecay?: number;
}

/** JSON form of an optimizer: its settings and every state buffer (base64 float32), for exact resumption. */
export interface OptimizerState {
  type: OptimizerName;
  options: Record<string, number | boolean>;
  steps: number;
  buffers: Record<string, Record<string, string>>;
}

/**
 * Optimizers follow PyTorch's update rules exactly (torch.optim.SGD, AdamW, RMSprop), keep their
 * state in float32 like PyTorch, and update parameters in place, in float32 with one rounding per
 * operation (kernels/backend.ts sgdStep, adamwStep, rmspropStep: the same bits on the WebAssembly
 * kernels and the TypeScript loops).
 */
export abstract class Optimizer {
  abstract readonly type: OptimizerName;
  lr: number;
  /** Optimizer steps taken so far. */
  steps = 0;
  protected buffers = new Map<string, Map<string, Float32Array>>();
  /**
   * Per-parameter gradient buffers for a training loop to pass to backwardNetwork
   * (BackwardOptions.gradientBuffers). On the kernels these are the WebAssembly-resident gradient
   * buffers next to the optimizer's state (placeState), so an update reads each gradient where the
   * backward pass wrote it.
   */
  readonly gradientBuffers = new Map<string, Float32Array>();

  constructor(lr: number) {
    if (!(lr > 0) || !Number.isFinite(lr)) throw new SpecError('lr', 'a positive learning rate', lr);
    this.lr = lr;
  }

  step(params: ParamGrad[]): void {
    this.steps++;
    for (const p of params) this.update(p, this.steps);
  }

  protected abstract update(p: ParamGrad, t: number): void;
  abstract options(): Record<string, number | boolean>;

  protected buffer(key: string, name: string, length: number): Float32Array {
    let slots = this.buffers.get(key);
    if (!slots) this.buffers.set(key, (slots = new Map()));
    let b = slots.get(name);
    if (!b) slots.set(name, (b = new Float32Array(length)));
    else if (b.length !== length) {
      throw SpecError.at(`optimizer state buffers.${key}.${name}`, `has ${b.length} values but the parameter has ${length} (state saved for another network?)`);
    }
    return b;
  }

  protected hasBuffer(key: string, name: string): boolean {
    return this.buffers.get(key)?.has(name) ?? false;
  }

  /** Keys whose first update has decided where their state lives. */
  private readonly placed = new Set<string>();

  /**
   * On a key's first update (unless state was loaded for it): its state buffers `names`, its gradient
   * buffer and, for a layer's store, the parameters themselves in WebAssembly memory when the kernels
   * run (optimizerState), so the updates copy nothing. Returns the array to update: the store's moved
   * master, or `values` as given.
   */
  protected placeState(key: string, values: Float32Array, store: WeightStore | undefined, names: string[]): Float32Array {
    if (this.placed.has(key)) return values;
    this.placed.add(key);
    if (names.some((name) => this.hasBuffer(key, name))) return values;
    const resident = optimizerState(values.length, names.length);
    if (!resident) return values;
    if (names.length > 0) this.buffers.set(key, new Map(names.map((name, i) => [name, resident.state[i]])));
    this.gradientBuffers.set(key, resident.g);
    return store?.master === values ? store.relocate(resident.w) : values;
  }

  state(): OptimizerState {
    const buffers: Record<string, Record<string, string>> = {};
    for (const [key, slots] of [...this.buffers].sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true }))) {
      buffers[key] = {};
      for (const [name, b] of slots) buffers[key][name] = encodeBase64(new Uint8Array(b.buffer, b.byteOffset, b.byteLength));
    }
    return { type: this.type, options: { lr: this.lr, ...this.options() }, steps: this.steps, buffers };
  }

  loadBuffers(state: OptimizerState, source = 'optimizer_state'): void {
    this.steps = state.steps;
    this.buffers.clear();
    this.gradientBuffers.clear();
    this.placed.clear();
    for (const [key, slots] of Object.entries(state.buffers)) {
      const m = new Map<string, Float32Array>();
      if (!isRecord(slots)) throw new SpecError(`${source}.buffers.${key}`, 'an object of base64 strings', slots);
      for (const [name, text] of Object.entries(slots)) {
        if (typeof text !== 'string') throw new SpecError(`${source}.buffers.${key}.${name}`, 'a base64 string', text);
        const bytes = decodeBase64(text, `${source}.buffers.${key}.${name}`);
        if (bytes.length % 4 !== 0) throw new FormatError(`${source}.buffers.${key}.${name}`, 'expected float32 data (a multiple of 4 bytes)');
        m.set(name, new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4));
      }
      this.buffers.set(key, m);
    }
  }
}

export class Sgd extends Optimizer {
  readonly type = 'sgd';
  readonly momentum: number;
  readonly dampening: number;
  readonly nesterov: boolean;
  readonly weightDecay: number;

  constructor(o: SgdOptions) {
    super(o.lr);
    this.momentum = o.momentum ?? 0;
    this.dampening = o.dampening ?? 0;
    this.nesterov = o.nesterov ?? false;
    this.weightDecay = o.weightDecay ?? 0;
  }

  options() {
    return { momentum: this.momentum, dampening: this.dampening, nesterov: this.nesterov, weightDecay: this.weightDecay };
  }

  protected update({ key, values, grad, store }: ParamGrad): void {
    const { momentum, dampening, nesterov, weightDecay, lr } = this;
    const first = momentum !== 0 && !this.hasBuffer(key, 'momentum');
    const w = this.placeState(key, values, store, momentum !== 0 ? ['momentum'] : []);
    const buf = momentum !== 0 ? this.buffer(key, 'momentum', w.length) : null;
    sgdStep(w, grad, buf, { lr, momentum, dampening, nesterov, weightDecay, first });
  }
}

export class AdamW extends Optimizer {
  readonly type = 'adamw';
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;

  constructor(o: AdamWOptions) {
    super(o.lr);
    this.beta1 = o.beta1 ?? 0.9;
    this.beta2 = o.beta2 ?? 0.999;
    this.eps = o.eps ?? 1e-8;
    this.weightDecay = o.weightDecay ?? 0.01;
  }

  options() {
    return { beta1: this.beta1, beta2: this.beta2, eps: this.eps, weightDecay: this.weightDecay };
  }

  protected update({ key, values, grad, store }: ParamGrad, t: number): void {
    const { beta1, beta2, eps, weightDecay, lr } = this;
    const w = this.placeState(key, values, store, ['exp_avg', 'exp_avg_sq']);
    const m = this.buffer(key, 'exp_avg', w.length);
    const v = this.buffer(key, 'exp_avg_sq', w.length);
    const bc1 = 1 - Math.pow(beta1, t);
    const bc2 = Math.sqrt(1 - Math.pow(beta2, t));
    adamwStep(w, grad, m, v, { decay: 1 - lr * weightDecay, c1: 1 - beta1, b2: beta2, c2: 1 - beta2, bc2, eps, step: lr / bc1 });
  }
}

export class Rmsprop extends Optimizer {
  readonly type = 'rmsprop';
  readonly alpha: number;
  readonly eps: number;
  readonly momentum: number;
  readonly centered: boolean;
  readonly weightDecay: number;

  constructor(o: RmspropOptions) {
    super(o.lr);
    this.alpha = o.alpha ?? 0.99;
    this.eps = o.eps ?? 1e-8;
    this.momentum = o.momentum ?? 0;
    this.centered = o.centered ?? false;
    this.weightDecay = o.weightDecay ?? 0;
  }

  options() {
    return { alpha: this.alpha, eps: this.eps, momentum: this.momentum, centered: this.centered, weightDecay: this.weightDecay };
  }

  protected update({ key, values, grad, store }: ParamGrad): void {
    const { alpha, eps, momentum, centered, weightDecay, lr } = this;
    const names = ['square_avg', ...(centered ? ['grad_avg'] : []), ...(momentum > 0 ? ['momentum_buffer'] : [])];
    const w = this.placeState(key, values, store, names);
    const sq = this.buffer(key, 'square_avg', w.length);
    const avg = centered ? this.buffer(key, 'grad_avg', w.length) : null;
    const buf = momentum > 0 ? this.buffer(key, 'momentum_buffer', w.length) : null;
    rmspropStep(w, grad, sq, avg, buf, { lr, alpha, eps, momentum, weightDecay });
  }
}

export interface OptimizerSpec {
  type: OptimizerName;
  lr: number;
  momentum?: number;
  weightDecay?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  alpha?: number;
  nesterov?: boolean;
  centered?: boolean;
}

export function createOptimizer(spec: OptimizerSpec): Optimizer {
  switch (spec.type) {
    case 'sgd':
      return new Sgd(spec);
    case 'adamw':
      return new AdamW(spec);
    case 'rmsprop':
      return new Rmsprop(spec);
    default:
      throw new SpecError('optimizer', `one of ${OPTIMIZER_NAMES.join(', ')}`, (spec as { type: unknown }).type);
  }
}

/** Rebuilds an optimizer with its buffers from `Optimizer.state()` output. */
export function optimizerFromState(state: unknown, source = 'optimizer_state'): Optimizer {
  const s = state as OptimizerState;
  if (!isRecord(s) || !OPTIMIZER_NAMES.includes(s.type) || !isRecord(s.options) || !isRecord(s.buffers)) {
    throw new SpecError(source, 'an optimizer state object {type, options, steps, buffers}', state);
  }
  if (!Number.isSafeInteger(s.steps) || s.steps < 0) throw new SpecError(`${source}.steps`, 'a non-negative integer', s.steps);
  for (const [name, v] of Object.entries(s.options)) {
    if (typeof v !== 'boolean' && !(typeof v === 'number' && Number.isFinite(v))) throw new SpecError(`${source}.options.${name}`, 'a finite number or true/false', v);
  }
  const opt = createOptimizer({ ...(s.options as unknown as OptimizerSpec), type: s.type });
  opt.loadBuffers(s, source);
  return opt;
}

/** A JSON object (not null, not an array): what typeof 'object' alone lets through. */
function isRecord(v: unknown): v is Record<string, any> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Scales all gradients so their global L2 norm is at most maxNorm (torch.nn.utils.clip_grad_norm_). Returns the norm before clipping. */
export function clipGradNorm(params: ParamGrad[], maxNorm: number): number {
  let sumSq = 0;
  for (const { grad } of params) for (let i = 0; i < grad.length; i++) sumSq += grad[i] * grad[i];
  const norm = Math.sqrt(sumSq);
  const coef = maxNorm / (norm + 1e-6);
  if (coef < 1) {
    for (const { grad } of params) for (let i = 0; i < grad.length; i++) grad[i] *= coef;
  }
  return norm;
}
