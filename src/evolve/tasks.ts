import { Rng } from '../core/rng.js';
import { Tensor } from '../core/tensor.js';
import { forwardNetwork } from '../engine/run.js';
import type { VolumetricNetwork } from '../grid/network.js';

/** A built-in evolution benchmark: a fitness (higher is better) and the score that means solved. */
export interface EvolutionTask {
  name: string;
  description: string;
  inputSize: number;
  outputSize: number;
  /** A network spec that fits the task, for `loom evolve` demos and tests. */
  defaultSpec(): Record<string, unknown>;
  fitness(net: VolumetricNetwork): number;
  /** Fitness at or above this means the task is solved. */
  target: number;
}

function mlpSpec(id: string, sizes: number[], activations: string[]): Record<string, unknown> {
  const layers = activations.map((activation, i) => ({
    z: 0, y: 0, x: 0, l: i, type: 'Dense', activation, input_height: sizes[i], output_height: sizes[i + 1], use_bias: true,
  }));
  return { id, depth: 1, rows: 1, cols: 1, layers_per_cell: layers.length, layers };
}

function output(net: VolumetricNetwork, rows: number, width: number, data: Float32Array): Float32Array {
  return forwardNetwork(net, new Tensor(data, [rows, width])).output.data;
}

/** Non-finite outputs (a diverged mutant) score like the worst possible answer instead of poisoning the sort. */
function finiteOr(v: number, fallback: number): number {
  return Number.isFinite(v) ? v : fallback;
}

const XOR_IN = Float32Array.of(0, 0, 0, 1, 1, 0, 1, 1);
const XOR_OUT = [0, 1, 1, 0];

/** XOR: fitness = samples on the right side of 0.5 + (1 − MSE); solved (≥ 4) only when all four are right. */
export const xorTask: EvolutionTask = {
  name: 'xor',
  description: 'XOR of two bits; output > 0.5 means 1',
  inputSize: 2,
  outputSize: 1,
  defaultSpec: () => mlpSpec('xor', [2, 4, 1], ['Tanh', 'Sigmoid']),
  fitness(net) {
    const y = output(net, 4, 2, XOR_IN);
    let correct = 0;
    let se = 0;
    for (let i = 0; i < 4; i++) {
      if (!Number.isFinite(y[i])) return 0;
      if (y[i] > 0.5 === (XOR_OUT[i] === 1)) correct++;
      se += (y[i] - XOR_OUT[i]) ** 2;
    }
    return correct + Math.max(0, 1 - se / 4);
  },
  target: 4,
};

export interface CartPoleOptions {
  /** Steps an episode must last to count as balanced. Default 500. */
  maxSteps?: number;
  /** Episodes (different start states) per evaluation. Default 4. */
  episodes?: number;
  /** Seed of the start states. Default 7. */
  seed?: number;
}

/**
 * Single-pole balancing (the classic cart-pole: cart 1 kg, pole 0.1 kg, half-length 0.5 m, ±10 N,
 * Euler steps of 0.02 s; an episode ends when |x| > 2.4 m or |θ| > 12°). The network sees
 * (x, ẋ, θ, θ̇) and pushes right when its output is positive. Fitness = mean steps survived.
 */
export function cartPoleTask(options: CartPoleOptions = {}): EvolutionTask {
  const maxSteps = options.maxSteps ?? 500;
  const episodes = options.episodes ?? 4;
  const rng = new Rng(options.seed ?? 7);
  const starts = Array.from({ length: episodes }, () => Array.from({ length: 4 }, () => (rng.uniform() * 2 - 1) * 0.05));
  return {
    name: 'cartpole',
    description: `balance a pole on a cart for ${maxSteps} steps in each of ${episodes} episodes`,
    inputSize: 4,
    outputSize: 1,
    defaultSpec: () => mlpSpec('cartpole', [4, 4, 1], ['Tanh', 'Linear']),
    fitness(net) {
      const state = starts.map((s) => s.slice());
      const alive = new Array(episodes).fill(true);
      const survived = new Array(episodes).fill(0);
      const obs = new Float32Array(episodes * 4);
      for (let t = 0; t < maxSteps && alive.some(Boolean); t++) {
        for (let e = 0; e < episodes; e++) obs.set(state[e], e * 4);
        const y = output(net, episodes, 4, obs);
        for (let e = 0; e < episodes; e++) {
          if (!alive[e]) continue;
          if (!Number.isFinite(y[e])) {
            alive[e] = false;
            continue;
          }
          cartPoleStep(state[e], y[e] > 0 ? 10 : -10);
          const [x, , theta] = state[e];
          if (Math.abs(x) > 2.4 || Math.abs(theta) > (12 * Math.PI) / 180) alive[e] = false;
          else survived[e]++;
        }
      }
      return finiteOr(survived.reduce((a, b) => a + b, 0) / episodes, 0);
    },
    target: maxSteps,
  };
}

/** One Euler step of the cart-pole equations of motion, in place on [x, ẋ, θ, θ̇]. */
export function cartPoleStep(s: number[], force: number): void {
  const gravity = 9.8;
  const massCart = 1.0;
  const massPole = 0.1;
  const total = massCart + massPole;
  const halfLength = 0.5;
  const tau = 0.02;
  const [x, xDot, theta, thetaDot] = s;
  const cos = Math.cos(theta);
  const sin = Math.sin(theta);
  const temp = (force + massPole * halfLength * thetaDot * thetaDot * sin) / total;
  const thetaAcc = (gravity * sin - cos * temp) / (halfLength * (4 / 3 - (massPole * cos * cos) / total));
  const xAcc = temp - (massPole * halfLength * thetaAcc * cos) / total;
  s[0] = x + tau * xDot;
  s[1] = xDot + tau * xAcc;
  s[2] = theta + tau * thetaDot;
  s[3] = thetaDot + tau * thetaAcc;
}

/** Two interleaved spirals of `perClass` points each; fitness = fraction classified right (output > 0.5 = class 1). */
export function twoSpiralsTask(perClass = 48): EvolutionTask {
  const inputs = new Float32Array(perClass * 2 * 2);
  const labels: number[] = [];
  for (let i = 0; i < perClass; i++) {
    const angle = (i / perClass) * 3 * Math.PI;
    const radius = 0.1 + (0.9 * i) / perClass;
    for (const cls of [0, 1]) {
      const sign = cls === 0 ? 1 : -1;
      const k = labels.length;
      inputs[k * 2] = sign * radius * Math.cos(angle);
      inputs[k * 2 + 1] = sign * radius * Math.sin(angle);
      labels.push(cls);
    }
  }
  const n = labels.length;
  return {
    name: 'spirals',
    description: `two interleaved spirals, ${n} points`,
    inputSize: 2,
    outputSize: 1,
    defaultSpec: () => mlpSpec('spirals', [2, 16, 16, 1], ['Tanh', 'Tanh', 'Sigmoid']),
    fitness(net) {
      const y = output(net, n, 2, inputs);
      let correct = 0;
      for (let i = 0; i < n; i++) if (y[i] > 0.5 === (labels[i] === 1)) correct++;
      return correct / n;
    },
    target: 1,
  };
}

export const TASK_NAMES = ['xor', 'cartpole', 'spirals'] as const;

export function findTask(name: string): EvolutionTask | undefined {
  switch (name.toLowerCase()) {
    case 'xor':
      return xorTask;
    case 'cartpole':
      return cartPoleTask();
    case 'spirals':
      return twoSpiralsTask();
    default:
      return undefined;
  }
}
