import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Dataset } from '../../src/data/dataset.js';
import { createOptimizer, type OptimizerSpec } from '../../src/train/optimizers.js';
import {
  constantLR,
  cosineAnnealingLR,
  exponentialLR,
  linearWarmupLR,
  oneCycleLR,
  ReduceOnPlateau,
  stepLR,
  type LRScheduler,
} from '../../src/train/schedulers.js';
import { train } from '../../src/train/train.js';
import { assertClose, fixture, mlp } from '../helpers.js';

/** Builds our scheduler from the fixture's torch kwargs. */
function schedulerFor(s: any, baseLr: number): LRScheduler {
  if (!s) return constantLR(baseLr);
  const k = s.kwargs ?? s;
  switch (s.type) {
    case 'step':
      return stepLR(baseLr, k.step_size, k.gamma);
    case 'exponential':
      return exponentialLR(baseLr, k.gamma);
    case 'cosine':
      return cosineAnnealingLR(baseLr, k.T_max, k.eta_min);
    case 'warmup':
      return linearWarmupLR(baseLr, k.start_factor, k.end_factor, k.total_iters);
    case 'onecycle':
      return oneCycleLR(k.max_lr, k.total_steps, { pctStart: k.pct_start, divFactor: k.div_factor, finalDivFactor: k.final_div_factor });
    case 'plateau':
      return new ReduceOnPlateau(baseLr, { factor: k.factor, patience: k.patience, threshold: k.threshold, cooldown: k.cooldown, minLr: k.min_lr });
    default:
      throw new Error(`unknown scheduler ${s.type}`);
  }
}

test('each LR scheduler follows PyTorch step by step', () => {
  const { schedulers } = fixture('schedulers.json');
  for (const [name, s] of Object.entries<any>(schedulers)) {
    const sched = schedulerFor(s, s.base_lr ?? s.kwargs.max_lr);
    const got: number[] = [];
    for (let i = 0; i < s.lr.length; i++) {
      got.push(sched.lr);
      sched.step(s.metrics ? s.metrics[i] : undefined);
    }
    assertClose(got, s.lr, 1e-9, 1e-15, `${name} lr`);
  }
});

test('a 3-layer MLP trained 20 steps with each optimizer and scheduler follows PyTorch', () => {
  const f = fixture('train_mlp.json');
  const tol = f.tolerance;
  const n = f.data.X_shape[0];
  for (const [name, run] of Object.entries<any>(f.runs)) {
    const net = mlp(f.architecture.map((a: any) => ({ in: a.in, out: a.out, activation: a.activation, bias: a.bias })));
    net.layers().forEach((layer, i) => {
      layer.weights!.master.set([...f.init[i].W, ...f.init[i].b]);
      layer.weights!.markMasterChanged();
    });
    const data: Dataset = {
      count: n,
      inputs: Float32Array.from(f.data.X),
      inputShape: [f.data.X_shape[1]],
      targetWidth: run.config.targets === 'labels' ? 4 : f.data.Y_shape[1],
      source: 'fixture',
    };
    if (run.config.targets === 'labels') data.labels = Int32Array.from(f.data.labels);
    else data.targets = Float32Array.from(f.data.Y);

    const o = run.config.optimizer;
    const optimizer = createOptimizer({
      type: o.type, lr: o.lr, momentum: o.momentum, weightDecay: o.weight_decay, beta1: o.beta1, beta2: o.beta2, eps: o.eps, alpha: o.alpha, nesterov: o.nesterov, centered: o.centered,
    } as OptimizerSpec);
    const inner = schedulerFor(run.config.scheduler, o.lr);
    const lrs: number[] = [];
    const recording: LRScheduler = {
      name: inner.name,
      get lr() {
        lrs.push(inner.lr);
        return inner.lr;
      },
      step: (m?: number) => inner.step(m),
    };
    const losses: number[] = [];
    const stepsPerEpoch = n / run.config.batch_size;
    train(net, data, {
      epochs: run.config.steps / stepsPerEpoch,
      batchSize: run.config.batch_size,
      loss: run.config.loss,
      optimizer,
      scheduler: recording,
      clipNorm: run.config.clip_grad_norm ?? undefined,
      shuffle: false,
      onBatch: (p) => losses.push(p.loss),
    });
    assert.equal(losses.length, 20);
    assertClose(lrs, run.lr, 1e-9, 0, `${name} lr`);
    assertClose(losses, run.loss, 1e-4, tol.loss.atol, `${name} loss trajectory`);
    net.layers().forEach((layer, i) => {
      assertClose(layer.weights!.master, [...run.final[i].W, ...run.final[i].b], tol.weights.rtol, tol.weights.atol, `${name} final weights of layer ${i}`);
    });
  }
});
