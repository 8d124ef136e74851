/// <reference types="@webgpu/types" />
import { LoomError, NumericError } from '../core/errors.js';
import { mixSeed, Rng } from '../core/rng.js';
import { featureCount, type Dataset } from '../data/dataset.js';
import type { VolumetricNetwork } from '../grid/network.js';
import { AdamW, Rmsprop, Sgd, type Optimizer } from '../train/optimizers.js';
import { finishEpoch, gatherBatch, trainingSplit, type EpochStats, type TrainConfig, type TrainResult } from '../train/train.js';
import { createGpuContext, GpuContext, type GpuArray } from './context.js';
import { crossEntropyGrad, mseGrad } from './kernels/loss.js';
import { adamwUpdate, clipGradients, rmspropUpdate, sgdUpdate, STEP_WORDS, SUMSQ_SPAN } from './kernels/optim.js';
import { Arena, sizeOf } from './layers.js';
import { GpuNetwork } from './network.js';

/** `gpu` in TrainConfig: true picks navigator.gpu (browsers) or Dawn (Node); a GpuContext is used as is. */
export type GpuOption = boolean | GpuContext;

/** The WebGPU context for `option`: the given one, or a new one (then owned: destroyed by the caller). */
export async function resolveGpu(option: GpuOption): Promise<{ ctx: GpuContext; owned: boolean }> {
  if (option instanceof GpuContext) return { ctx: option, owned: false };
  const browserGpu = (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
  if (browserGpu) return { ctx: await createGpuContext(browserGpu), owned: true };
  const { nodeGpu } = await import('./node.js');
  return { ctx: await createGpuContext(await nodeGpu()), owned: true };
}

/**
 * train() on the GPU: parameters and optimizer state stay resident, and each step (forward, loss
 * gradient, backward, optimizer update) is one command encoder and one submit. Per-sample losses stay
 * on the GPU until the epoch ends, so onBatch reports arrive together at the end of each epoch. Same
 * shuffling and update rules as the CPU path; the weights are copied back into the network at the
 * end of every epoch.
 */
export async function trainGpu(net: VolumetricNetwork, data: Dataset, config: TrainConfig & { gpu?: GpuOption }): Promise<TrainResult> {
  const { optimizer, scheduler } = config;
  if (!(optimizer instanceof AdamW) && !(optimizer instanceof Sgd) && !(optimizer instanceof Rmsprop)) {
    throw new LoomError(`the ${(optimizer as Optimizer).type} optimizer is not available on the GPU (use adamw, sgd or rmsprop, or train on the CPU)`);
  }
  if (optimizer.steps > 0) throw new LoomError('resuming optimizer state on the GPU is not supported yet; resume on the CPU');
  const { trainSet, validation } = trainingSplit(data, config);

  const { ctx, owned } = await resolveGpu(config.gpu ?? true);
  const gnet = new GpuNetwork(ctx, net);
  const held: GpuArray[] = [];
  const keep = (a: GpuArray) => (held.push(a), a);
  try {
    const features = featureCount(trainSet);
    const classification = config.loss === 'cross_entropy';
    const width = classification ? 0 : trainSet.targets ? trainSet.targetWidth : 0;
    const input = keep(ctx.alloc(config.batchSize * features));
    const labels = keep(ctx.alloc(config.batchSize));
    const targets = keep(ctx.alloc(Math.max(1, config.batchSize * Math.max(width, 1))));
    const losses = keep(ctx.alloc(trainSet.count));
    const correct = keep(ctx.alloc(trainSet.count));
    const state = gnet.params.map((p) => (p && !p.tiedTo ? [keep(ctx.alloc(p.count)), keep(ctx.alloc(p.count)), keep(ctx.alloc(p.count))] : null));
    const trained = gnet.trainable;
    const clip = config.clipNorm !== undefined ? { partials: keep(ctx.alloc(trained.reduce((n, p) => n + Math.ceil(p.count / SUMSQ_SPAN), 0))), coef: keep(ctx.alloc(2)) } : null;
    for (const s of state) if (s) for (const b of s) ctx.upload(new Float32Array(b.length), b);
    const stepUniform = ctx.mutableUniform(STEP_WORDS);
    const stepWords = new Float32Array(STEP_WORDS);

    const order = Int32Array.from({ length: trainSet.count }, (_, i) => i);
    const batches = Math.ceil(trainSet.count / config.batchSize);
    const history: EpochStats[] = [];
    const firstEpoch = config.startEpoch ?? 1;
    for (let epoch = firstEpoch; epoch < firstEpoch + config.epochs; epoch++) {
      const start = performance.now();
      if (config.shuffle ?? true) {
        for (let i = 0; i < order.length; i++) order[i] = i;
        new Rng(mixSeed(config.seed ?? 1, epoch)).shuffle(order);
      }
      const batchLr: number[] = [];
      let outWidth = 0;
      for (let b = 0; b < batches; b++) {
        const from = b * config.batchSize;
        const indices = order.subarray(from, Math.min(trainSet.count, from + config.batchSize));
        const n = indices.length;
        const batch = gatherBatch(trainSet, indices);
        ctx.write(input, batch.input.data);
        if (classification) ctx.write(labels, Uint32Array.from(batch.labels!));
        const arena = new Arena(ctx);
        ctx.begin();
        const { output, trace } = gnet.forward(arena, { data: input, shape: batch.input.shape }, true);
        const outSize = sizeOf(output.shape);
        outWidth = outSize / n;
        const grad = arena.alloc(outSize);
        if (classification) {
          crossEntropyGrad(ctx, output.data, labels, grad, losses, correct, n, outWidth, from);
        } else {
          const t = batch.targets ?? oneHotOf(batch.labels!, outWidth);
          ctx.write(targets, t);
          mseGrad(ctx, output.data, targets, grad, losses, n, outWidth, from);
        }
        gnet.backward(arena, trace!, { data: grad, shape: output.shape });
        if (clip) clipGradients(ctx, trained.map((p) => p.grad), trained.map((p) => p.count), config.clipNorm!, clip.partials, clip.coef);
        if (scheduler) optimizer.lr = scheduler.lr;
        optimizer.steps++;
        writeStepWords(optimizer, stepWords);
        ctx.device.queue.writeBuffer(stepUniform, 0, stepWords);
        gnet.params.forEach((p, k) => {
          if (!p || p.tiedTo) return;
          const [m, v, u] = state[k]!;
          if (optimizer instanceof AdamW) adamwUpdate(ctx, stepUniform, p.weights, p.grad, m, v, p.count);
          else if (optimizer instanceof Rmsprop) rmspropUpdate(ctx, stepUniform, p.weights, p.grad, m, v, u, p.count);
          else sgdUpdate(ctx, stepUniform, p.weights, p.grad, m, p.count);
        });
        ctx.flush();
        arena.releaseAll();
        batchLr.push(optimizer.lr);
        if (scheduler && scheduler.name !== 'plateau') scheduler.step();
      }
      const sampleLoss = await ctx.read(losses, trainSet.count);
      const sampleCorrect = classification ? await ctx.read(correct, trainSet.count) : null;
      let lossSum = 0;
      let right = 0;
      for (let b = 0; b < batches; b++) {
        const from = b * config.batchSize;
        const to = Math.min(trainSet.count, from + config.batchSize);
        let s = 0;
        for (let i = from; i < to; i++) {
          s += sampleLoss[i];
          if (sampleCorrect) right += sampleCorrect[i];
        }
        const loss = classification ? s / (to - from) : s / ((to - from) * outWidth);
        if ((config.checkFinite ?? true) && !Number.isFinite(loss)) throw new NumericError(`loss is ${loss} at epoch ${epoch}, batch ${b + 1} (GPU)`);
        lossSum += loss * (to - from);
        config.onBatch?.({ epoch, batch: b + 1, batches, loss });
      }
      await gnet.download();
      finishEpoch(net, config, { epoch, start, lossSum, correct: classification ? right : undefined, count: trainSet.count, validation }, history);
    }
    return { history, steps: optimizer.steps };
  } finally {
    for (const a of held) ctx.release(a);
    gnet.destroy();
    if (owned) ctx.destroy();
  }
}

function writeStepWords(o: Optimizer, w: Float32Array): void {
  w.fill(0);
  const t = o.steps;
  if (o instanceof AdamW) {
    w[0] = o.lr / (1 - Math.pow(o.beta1, t));
    w[1] = Math.sqrt(1 - Math.pow(o.beta2, t));
    w[2] = 1 - o.lr * o.weightDecay;
    w[3] = o.beta1;
    w[4] = o.beta2;
    w[5] = o.eps;
    w[6] = o.weightDecay;
  } else if (o instanceof Sgd) {
    w[0] = o.lr;
    w[1] = o.momentum;
    w[2] = o.dampening;
    w[3] = o.weightDecay;
    w[4] = o.nesterov ? 1 : 0;
    w[5] = t === 1 ? 1 : 0;
  } else if (o instanceof Rmsprop) {
    w[0] = o.lr;
    w[1] = o.alpha;
    w[2] = o.eps;
    w[3] = o.momentum;
    w[4] = o.centered ? 1 : 0;
    w[5] = o.weightDecay;
  }
}

function oneHotOf(labels: Int32Array, classes: number): Float32Array {
  const out = new Float32Array(labels.length * classes);
  for (let i = 0; i < labels.length; i++) if (labels[i] >= 0 && labels[i] < classes) out[i * classes + labels[i]] = 1;
  return out;
}
