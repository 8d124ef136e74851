import { NumericError, ShapeError, SpecError } from '../core/errors.js';
import { mixSeed, Rng } from '../core/rng.js';
import { Tensor } from '../core/tensor.js';
import { featureCount, splitDataset, type Dataset } from '../data/dataset.js';
import { assertFinite, backwardNetwork, forwardNetwork, type ParameterGradient } from '../engine/run.js';
import type { VolumetricNetwork } from '../grid/network.js';
import { coordText } from '../layers/layer.js';
import { computeLoss, type LossName } from './losses.js';
import { clipGradNorm, type Optimizer, type ParamGrad } from './optimizers.js';
import type { LRScheduler } from './schedulers.js';

export interface TrainConfig {
  epochs: number;
  batchSize: number;
  loss: LossName;
  optimizer: Optimizer;
  scheduler?: LRScheduler;
  /** Clip the global gradient norm to this value before each step. */
  clipNorm?: number;
  /** Seed of the shuffling RNG (default 1). Epoch e shuffles with its own stream, so a resumed run matches an uninterrupted one. */
  seed?: number;
  /** Number of the first epoch (default 1); set when resuming. */
  startEpoch?: number;
  shuffle?: boolean;
  validation?: Dataset;
  /** Hold out this share of the data for validation (ignored when `validation` is given). */
  validationSplit?: number;
  /** Stop with a NumericError naming the layer at the first NaN/Inf (default true). */
  checkFinite?: boolean;
  onBatch?: (progress: BatchProgress) => void;
  onEpoch?: (stats: EpochStats) => void;
  /**
   * Train on the GPU (src/gpu/train.ts): true for navigator.gpu or Dawn in Node, or a GpuContext.
   * train() then returns a Promise; without an adapter it rejects with a GpuUnavailableError.
   */
  gpu?: boolean | object;
}

export interface BatchProgress {
  epoch: number;
  batch: number;
  batches: number;
  loss: number;
}

export interface EpochStats {
  epoch: number;
  loss: number;
  accuracy?: number;
  validationLoss?: number;
  validationAccuracy?: number;
  lr: number;
  seconds: number;
  samplesPerSecond: number;
}

export interface TrainResult {
  history: EpochStats[];
  steps: number;
}

/** Mini-batch training: each batch travels through forward and backward as one [batch, ...] tensor. */
export function train(net: VolumetricNetwork, data: Dataset, config: TrainConfig & { gpu: true | object }): Promise<TrainResult>;
export function train(net: VolumetricNetwork, data: Dataset, config: TrainConfig): TrainResult;
export function train(net: VolumetricNetwork, data: Dataset, config: TrainConfig): TrainResult | Promise<TrainResult> {
  if (config.gpu) return import('../gpu/train.js').then((m) => m.trainGpu(net, data, config as Parameters<typeof m.trainGpu>[2]));
  if (!Number.isInteger(config.epochs) || config.epochs < 1) throw new SpecError('epochs', 'a positive integer', config.epochs);
  if (!Number.isInteger(config.batchSize) || config.batchSize < 1) throw new SpecError('batch', 'a positive integer', config.batchSize);
  const { trainSet, validation } = trainingSplit(data, config);

  const checkFinite = config.checkFinite ?? true;
  const order = Int32Array.from({ length: trainSet.count }, (_, i) => i);
  const batches = Math.ceil(trainSet.count / config.batchSize);
  const history: EpochStats[] = [];
  const { optimizer, scheduler } = config;

  const firstEpoch = config.startEpoch ?? 1;
  for (let epoch = firstEpoch; epoch < firstEpoch + config.epochs; epoch++) {
    const start = performance.now();
    if (config.shuffle ?? true) {
      for (let i = 0; i < order.length; i++) order[i] = i;
      new Rng(mixSeed(config.seed ?? 1, epoch)).shuffle(order);
    }
    let lossSum = 0;
    let correct = 0;
    let hasAccuracy = true;
    for (let b = 0; b < batches; b++) {
      const indices = order.subarray(b * config.batchSize, Math.min(trainSet.count, (b + 1) * config.batchSize));
      const batch = gatherBatch(trainSet, indices);
      const where = () => `epoch ${epoch}, batch ${b + 1}`;
      const { output, trace } = withStep(where, () => forwardNetwork(net, batch.input, { keepTrace: true, checkFinite }));
      const loss = computeLoss(config.loss, output, batch);
      if (checkFinite && !Number.isFinite(loss.loss)) throw new NumericError(`loss is ${loss.loss} at ${where()}`);
      const { gradients } = backwardNetwork(net, trace!, loss.grad, { inputGradient: false, gradientBuffers: optimizer.gradientBuffers });
      if (checkFinite) {
        for (const { key, layer, grad } of gradients) {
          assertFinite(grad, () => `gradient of ${layer.kind.name} at ${coordText(layer)} (key ${key}, ${where()})`);
        }
      }
      const params = parameterGradients(gradients);
      if (config.clipNorm !== undefined) clipGradNorm(params, config.clipNorm);
      if (scheduler) optimizer.lr = scheduler.lr;
      optimizer.step(params);
      for (const { layer } of gradients) layer.weights!.markMasterChanged();
      if (scheduler && scheduler.name !== 'plateau') scheduler.step();

      lossSum += loss.loss * indices.length;
      if (loss.correct === undefined) hasAccuracy = false;
      else correct += loss.correct;
      config.onBatch?.({ epoch, batch: b + 1, batches, loss: loss.loss });
    }
    finishEpoch(net, config, { epoch, start, lossSum, correct: hasAccuracy ? correct : undefined, count: trainSet.count, validation }, history);
  }
  return { history, steps: optimizer.steps };
}

/** The samples to train on and the validation set: config.validation, or a seeded split of `data`. */
export function trainingSplit(data: Dataset, config: TrainConfig): { trainSet: Dataset; validation: Dataset | undefined } {
  let trainSet = data;
  let validation = config.validation;
  if (!validation && config.validationSplit) {
    const split = splitDataset(data, config.validationSplit, (config.seed ?? 1) ^ 0x5bd1e995);
    trainSet = split.train;
    validation = split.validation;
  }
  if (trainSet.count === 0) throw new SpecError('data', 'at least one training sample', 0);
  return { trainSet, validation };
}

/** End-of-epoch bookkeeping shared by the CPU and GPU loops: stats, validation, plateau scheduler, callbacks. */
export function finishEpoch(
  net: VolumetricNetwork,
  config: TrainConfig,
  epoch: { epoch: number; start: number; lossSum: number; correct: number | undefined; count: number; validation: Dataset | undefined },
  history: EpochStats[],
): void {
  const seconds = (performance.now() - epoch.start) / 1000;
  const stats: EpochStats = {
    epoch: epoch.epoch,
    loss: epoch.lossSum / epoch.count,
    lr: config.optimizer.lr,
    seconds,
    samplesPerSecond: epoch.count / seconds,
  };
  if (epoch.correct !== undefined) stats.accuracy = epoch.correct / epoch.count;
  if (epoch.validation) {
    const v = evaluate(net, epoch.validation, config.loss);
    stats.validationLoss = v.loss;
    if (v.accuracy !== undefined) stats.validationAccuracy = v.accuracy;
  }
  if (config.scheduler?.name === 'plateau') config.scheduler.step(stats.validationLoss ?? stats.loss);
  history.push(stats);
  config.onEpoch?.(stats);
}

export interface Evaluation {
  loss: number;
  accuracy?: number;
}

/** Mean loss (and accuracy for labelled data) over a dataset, in batches. */
export function evaluate(net: VolumetricNetwork, data: Dataset, loss: LossName, batchSize = 500, checkFinite = true): Evaluation {
  let lossSum = 0;
  let correct = 0;
  let hasAccuracy = true;
  for (let start = 0; start < data.count; start += batchSize) {
    const indices = Int32Array.from({ length: Math.min(batchSize, data.count - start) }, (_, i) => start + i);
    const batch = gatherBatch(data, indices);
    const { output } = withStep(() => `samples ${start}..${start + indices.length - 1}`, () => forwardNetwork(net, batch.input, { checkFinite }));
    const r = computeLoss(loss, output, batch);
    lossSum += r.loss * indices.length;
    if (r.correct === undefined) hasAccuracy = false;
    else correct += r.correct;
  }
  const result: Evaluation = { loss: lossSum / data.count };
  if (hasAccuracy) result.accuracy = correct / data.count;
  return result;
}

/** Predictions for every sample, as one [count, outputs] tensor. */
export function predict(net: VolumetricNetwork, data: Dataset, batchSize = 500, checkFinite = true): Tensor {
  const parts: Tensor[] = [];
  for (let start = 0; start < data.count; start += batchSize) {
    const indices = Int32Array.from({ length: Math.min(batchSize, data.count - start) }, (_, i) => start + i);
    const input = gatherBatch(data, indices).input;
    parts.push(withStep(() => `samples ${start}..${start + indices.length - 1}`, () => forwardNetwork(net, input, { checkFinite })).output);
  }
  const width = parts[0]?.rowSize ?? 0;
  const out = new Float32Array(data.count * width);
  let o = 0;
  for (const p of parts) {
    out.set(p.data, o);
    o += p.size;
  }
  return new Tensor(out, [data.count, width]);
}

export interface Batch {
  input: Tensor;
  labels?: Int32Array;
  targets?: Float32Array;
}

export function gatherBatch(data: Dataset, indices: ArrayLike<number>): Batch {
  const features = featureCount(data);
  const n = indices.length;
  const input = new Float32Array(n * features);
  for (let i = 0; i < n; i++) {
    const s = indices[i];
    input.set(data.inputs.subarray(s * features, (s + 1) * features), i * features);
  }
  const batch: Batch = { input: new Tensor(input, [n, ...data.inputShape]) };
  if (data.labels) batch.labels = Int32Array.from({ length: n }, (_, i) => data.labels![indices[i]]);
  if (data.targets) {
    const w = data.targetWidth;
    const t = new Float32Array(n * w);
    for (let i = 0; i < n; i++) t.set(data.targets.subarray(indices[i] * w, (indices[i] + 1) * w), i * w);
    batch.targets = t;
  }
  return batch;
}

/** Runs `fn`, adding where it happened (epoch/batch or sample range) to a NumericError's message. */
function withStep<T>(where: () => string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof NumericError) throw new NumericError(`${e.message} (${where()})`);
    throw e;
  }
}

/**
 * One entry per parameter vector: layers tied to one store (a tied LM head) get the sum of their
 * gradients, taken in traversal order, and one optimizer state, as PyTorch treats a shared tensor.
 */
export function parameterGradients(gradients: readonly ParameterGradient[]): ParamGrad[] {
  const byStore = new Map<object, ParamGrad>();
  const params: ParamGrad[] = [];
  for (const { key, layer, grad } of gradients) {
    const store = layer.weights!;
    const seen = byStore.get(store);
    if (!seen) {
      const entry = { key, values: store.master, grad, store };
      byStore.set(store, entry);
      params.push(entry);
      continue;
    }
    if (seen.grad.length !== grad.length) {
      throw new ShapeError(`tied layer at ${coordText(layer)}: gradient has ${grad.length} values, the shared store ${seen.grad.length}`);
    }
    const sum = new Float32Array(seen.grad);
    for (let i = 0; i < sum.length; i++) sum[i] += grad[i];
    seen.grad = sum;
  }
  return params;
}
