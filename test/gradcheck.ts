import { Tensor } from '../src/core/tensor.js';
import { backwardNetwork, forwardNetwork } from '../src/engine/run.js';
import type { VolumetricNetwork } from '../src/grid/network.js';
import { assertClose, randomArray } from './helpers.js';

/**
 * Central finite differences (every layer that receives a gradient, nested ones included) of L = Σ output·r against the analytic input and parameter gradients
 * of backwardNetwork. float32 forward passes limit the accuracy, hence the loose default tolerance.
 */
export function gradCheck(net: VolumetricNetwork, input: Tensor, options: { eps?: number; rtol?: number; atol?: number; maxParams?: number } = {}): void {
  const eps = options.eps ?? 1e-3;
  const rtol = options.rtol ?? 2e-2;
  const atol = options.atol ?? 2e-3;
  const first = forwardNetwork(net, input, { keepTrace: true });
  const r = randomArray(first.output.size, 99);
  const loss = (): number => {
    const out = forwardNetwork(net, input).output.data;
    let s = 0;
    for (let i = 0; i < out.length; i++) s += out[i] * r[i];
    return s;
  };
  const { gradInput, gradients } = backwardNetwork(net, first.trace!, new Tensor(r, first.output.shape));

  const numericInput = new Float32Array(input.size);
  for (let i = 0; i < input.size; i++) {
    const keep = input.data[i];
    input.data[i] = keep + eps;
    const up = loss();
    input.data[i] = keep - eps;
    const down = loss();
    input.data[i] = keep;
    numericInput[i] = (up - down) / (2 * eps);
  }
  assertClose(gradInput.data, numericInput, rtol, atol, 'input gradient');

  for (const { key, layer, grad: analytic } of gradients) {
    if (!layer.weights) continue;
    const w = layer.weights.master;
    const stride = Math.max(1, Math.floor(w.length / (options.maxParams ?? 60)));
    const got: number[] = [];
    const want: number[] = [];
    for (let i = 0; i < w.length; i += stride) {
      const keep = w[i];
      w[i] = keep + eps;
      layer.weights.markMasterChanged();
      const up = loss();
      w[i] = keep - eps;
      layer.weights.markMasterChanged();
      const down = loss();
      w[i] = keep;
      layer.weights.markMasterChanged();
      got.push(analytic[i]);
      want.push((up - down) / (2 * eps));
    }
    assertClose(got, want, rtol, atol, `parameter gradient of layer ${key}`);
  }
}
