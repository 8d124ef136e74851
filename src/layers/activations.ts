import { SpecError } from '../core/errors.js';
import { reluBackward, reluForward, smoothActivation } from '../kernels/backend.js';
import type { SmoothActivation } from '../kernels/wasm.js';

/** Activation functions; numeric values are the original engine's enum. */
export enum Activation {
  ReLU = 0,
  Silu = 1,
  GELU = 2,
  Tanh = 3,
  Sigmoid = 4,
  LeakyReLU = 5,
  ReLU2 = 6,
  Linear = -1,
}

const NAMES: ReadonlyMap<Activation, string> = new Map([
  [Activation.ReLU, 'ReLU'],
  [Activation.Silu, 'Silu'],
  [Activation.GELU, 'GELU'],
  [Activation.Tanh, 'Tanh'],
  [Activation.Sigmoid, 'Sigmoid'],
  [Activation.LeakyReLU, 'LeakyReLU'],
  [Activation.ReLU2, 'ReLU2'],
  [Activation.Linear, 'Linear'],
]);

const BY_NAME: ReadonlyMap<string, Activation> = new Map([
  ...[...NAMES].map(([a, n]) => [n.toUpperCase(), a] as [string, Activation]),
  ['LEAKY_RELU', Activation.LeakyReLU],
  ['SWISH', Activation.Silu],
  ['NONE', Activation.Linear],
  ['IDENTITY', Activation.Linear],
]);

export const ALL_ACTIVATIONS: readonly Activation[] = [...NAMES.keys()];

export function activationName(a: Activation): string {
  return NAMES.get(a) ?? 'Linear';
}

/** Case-insensitive; missing or empty means Linear. Unknown names are rejected (the original silently used Linear). */
export function parseActivation(value: unknown, path = 'activation'): Activation {
  if (value === undefined || value === null || value === '') return Activation.Linear;
  if (typeof value === 'number' && NAMES.has(value)) return value as Activation;
  if (typeof value === 'string') {
    const a = BY_NAME.get(value.trim().toUpperCase());
    if (a !== undefined) return a;
  }
  throw new SpecError(path, `an activation name (one of ${[...NAMES.values()].join(', ')})`, value);
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const GELU_C = 0.044715;
const LEAKY_SLOPE = 0.01;

/** The activations the WebAssembly kernels compute in float32 (kernels/backend.ts smoothActivation); the loops below are their reference. */
const SMOOTH_KERNELS: ReadonlyMap<Activation, SmoothActivation> = new Map([
  [Activation.Sigmoid, 'sigmoid'],
  [Activation.Tanh, 'tanh'],
  [Activation.Silu, 'silu'],
  [Activation.GELU, 'gelu'],
]);

/** out[i] = f(pre[i]). GELU is the tanh approximation (PyTorch's approximate='tanh'). */
export function activateInto(pre: Float32Array, out: Float32Array, act: Activation): void {
  const smooth = SMOOTH_KERNELS.get(act);
  if (smooth && smoothActivation(smooth, pre, null, out)) return;
  const n = pre.length;
  switch (act) {
    case Activation.Linear:
      if (out !== pre) out.set(pre);
      return;
    case Activation.ReLU:
      reluForward(pre, out);
      return;
    case Activation.LeakyReLU:
      for (let i = 0; i < n; i++) out[i] = pre[i] > 0 ? pre[i] : pre[i] * LEAKY_SLOPE;
      return;
    case Activation.ReLU2:
      for (let i = 0; i < n; i++) out[i] = pre[i] > 0 ? pre[i] * pre[i] : 0;
      return;
    case Activation.Sigmoid:
      for (let i = 0; i < n; i++) out[i] = sigmoid(pre[i]);
      return;
    case Activation.Tanh:
      for (let i = 0; i < n; i++) out[i] = Math.tanh(pre[i]);
      return;
    case Activation.Silu:
      for (let i = 0; i < n; i++) out[i] = pre[i] * sigmoid(pre[i]);
      return;
    case Activation.GELU:
      for (let i = 0; i < n; i++) {
        const x = pre[i];
        out[i] = 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + GELU_C * x * x * x)));
      }
      return;
  }
}

/** gradPre[i] = gradOut[i] · f'(pre[i]), exact derivatives (ReLU-family derivative at 0 is 0). */
export function activationBackwardInto(gradOut: Float32Array, pre: Float32Array, gradPre: Float32Array, act: Activation): void {
  const smooth = SMOOTH_KERNELS.get(act);
  if (smooth && smoothActivation(smooth, pre, gradOut, gradPre)) return;
  const n = pre.length;
  switch (act) {
    case Activation.Linear:
      if (gradPre !== gradOut) gradPre.set(gradOut);
      return;
    case Activation.ReLU:
      reluBackward(gradOut, pre, gradPre);
      return;
    case Activation.LeakyReLU:
      for (let i = 0; i < n; i++) gradPre[i] = pre[i] > 0 ? gradOut[i] : gradOut[i] * LEAKY_SLOPE;
      return;
    case Activation.ReLU2:
      for (let i = 0; i < n; i++) gradPre[i] = pre[i] > 0 ? gradOut[i] * 2 * pre[i] : 0;
      return;
    case Activation.Sigmoid:
      for (let i = 0; i < n; i++) {
        const s = sigmoid(pre[i]);
        gradPre[i] = gradOut[i] * s * (1 - s);
      }
      return;
    case Activation.Tanh:
      for (let i = 0; i < n; i++) {
        const t = Math.tanh(pre[i]);
        gradPre[i] = gradOut[i] * (1 - t * t);
      }
      return;
    case Activation.Silu:
      for (let i = 0; i < n; i++) {
        const x = pre[i];
        const s = sigmoid(x);
        gradPre[i] = gradOut[i] * s * (1 + x * (1 - s));
      }
      return;
    case Activation.GELU:
      for (let i = 0; i < n; i++) {
        const x = pre[i];
        const t = Math.tanh(SQRT_2_OVER_PI * (x + GELU_C * x * x * x));
        const du = SQRT_2_OVER_PI * (1 + 3 * GELU_C * x * x);
        gradPre[i] = gradOut[i] * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du);
      }
      return;
  }
}

/** Scalar forms, for the step mesh and analysis code. */
export function activate(x: number, act: Activation): number {
  const a = new Float32Array([x]);
  activateInto(a, a, act);
  return a[0];
}

/** The logistic function in float64, without overflow for either sign (one exp). */
export function sigmoid(x: number): number {
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}
