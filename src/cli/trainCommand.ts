import { writeFileAtomic } from '../io/atomicWrite.js';
import { SpecError, UsageError } from '../core/errors.js';
import { loadDataset } from '../data/load.js';
import { buildNetwork, parseJson } from '../grid/spec.js';
import { readTextFile, saveNetworkFile } from '../io/modelFiles.js';
import { LOSS_NAMES, type LossName } from '../train/losses.js';
import { createOptimizer, optimizerFromState, OPTIMIZER_NAMES, type Optimizer, type OptimizerName } from '../train/optimizers.js';
import { renderTrainingSvg } from '../train/plot.js';
import {
  constantLR,
  cosineAnnealingLR,
  exponentialLR,
  linearWarmupLR,
  oneCycleLR,
  ReduceOnPlateau,
  SCHEDULER_NAMES,
  stepLR,
  type LRScheduler,
} from '../train/schedulers.js';
import { evaluate, train, type EpochStats, type TrainConfig, type TrainResult } from '../train/train.js';
import { GpuUnavailableError } from '../gpu/context.js';
import { withThreads } from '../kernels/backend.js';
import { numberFlag, parseCommandArgs, requireOne, stringFlag } from './args.js';

export interface TrainingState {
  epochsDone: number;
  seed: number;
}

/**
 * loom train <spec.json> --data <path> [--epochs --batch --lr --optimizer --momentum --weight-decay
 *   --loss --scheduler --clip --seed --validation --out --plot --save-optimizer --resume --gpu --threads]
 */
export function trainCommand(argv: string[], out: (s: string) => void, err: (s: string) => void): void | Promise<void> {
  const { positionals, values } = parseCommandArgs('train', argv, {
    data: { type: 'string' },
    epochs: { type: 'string' },
    batch: { type: 'string' },
    lr: { type: 'string' },
    optimizer: { type: 'string' },
    momentum: { type: 'string' },
    'weight-decay': { type: 'string' },
    loss: { type: 'string' },
    scheduler: { type: 'string' },
    clip: { type: 'string' },
    seed: { type: 'string' },
    validation: { type: 'string' },
    out: { type: 'string' },
    plot: { type: 'string' },
    'save-optimizer': { type: 'boolean' },
    resume: { type: 'boolean' },
    gpu: { type: 'boolean' },
    threads: { type: 'string' },
  });
  const specPath = requireOne(positionals, 'train', 'spec.json');
  const threads = numberFlag(values, 'threads', 1, isPositiveInt, 'a positive integer');
  const dataPath = stringFlag(values, 'data');
  if (!dataPath) throw new UsageError('train: missing --data <path> (a CSV, JSON or IDX file, or an MNIST-style directory)');
  const epochs = numberFlag(values, 'epochs', 5, isPositiveInt, 'a positive integer');
  const batchSize = numberFlag(values, 'batch', 32, isPositiveInt, 'a positive integer');
  const seed = numberFlag(values, 'seed', 1, (v) => Number.isInteger(v) && v >= 0, 'a non-negative integer');
  const clip = values.clip === undefined ? undefined : numberFlag(values, 'clip', 0, (v) => v > 0, 'a positive number');
  const validationSplit = numberFlag(values, 'validation', 0, (v) => v >= 0 && v < 1, 'a fraction in [0, 1)');
  const lossName = (stringFlag(values, 'loss') ?? 'cross_entropy') as LossName;
  if (!LOSS_NAMES.includes(lossName)) throw new UsageError(`--loss: expected one of ${LOSS_NAMES.join(', ')}, got ${JSON.stringify(lossName)}`);

  const doc = parseJson(readTextFile(specPath), specPath) as Record<string, unknown>;
  const net = buildNetwork(doc, { seed });
  const data = loadDataset(dataPath);
  const trainSet = data.train;
  if (lossName === 'cross_entropy' && !trainSet.labels) {
    throw new UsageError(`--loss cross_entropy needs class labels, but ${dataPath} holds regression targets (use --loss mse)`);
  }
  const stepsPerEpoch = Math.ceil(trainSet.count * (1 - validationSplit) / batchSize);

  let optimizer: Optimizer;
  let startEpoch = 1;
  const saved = doc.optimizer_state as (Record<string, unknown> & { training?: TrainingState }) | undefined;
  if (values.resume) {
    if (!saved) throw new UsageError(`--resume: ${specPath} holds no optimizer state (save it with --save-optimizer)`);
    optimizer = optimizerFromState(saved, `${specPath}: optimizer_state`);
    startEpoch = (saved.training?.epochsDone ?? 0) + 1;
    if (values.lr !== undefined) optimizer.lr = numberFlag(values, 'lr', 0, (v) => v > 0, 'a positive number');
  } else {
    const type = (stringFlag(values, 'optimizer') ?? 'adamw').toLowerCase() as OptimizerName;
    if (!OPTIMIZER_NAMES.includes(type)) throw new UsageError(`--optimizer: expected one of ${OPTIMIZER_NAMES.join(', ')}, got ${JSON.stringify(type)}`);
    const lr = numberFlag(values, 'lr', type === 'sgd' ? 0.01 : 0.001, (v) => v > 0, 'a positive number');
    const momentum = numberFlag(values, 'momentum', 0, (v) => v >= 0 && v < 1, 'a number in [0, 1)');
    if (values.momentum !== undefined && type !== 'sgd' && type !== 'rmsprop') {
      throw new UsageError(`--momentum applies to sgd and rmsprop, not ${type}`);
    }
    const weightDecay = numberFlag(values, 'weight-decay', type === 'adamw' ? 0.01 : 0, (v) => v >= 0, 'a non-negative number');
    optimizer = createOptimizer({ type, lr, momentum, weightDecay });
  }

  const scheduler = parseScheduler(stringFlag(values, 'scheduler') ?? 'constant', optimizer.lr, stepsPerEpoch, epochs + startEpoch - 1);
  scheduler.seek?.(optimizer.steps);

  const progress = new ProgressReporter(err, epochs, startEpoch);
  out(
    `training ${specPath} on ${trainSet.source}: ${trainSet.count} samples, ${epochs} epochs, batch ${batchSize}, ${optimizer.type} lr ${optimizer.lr}, ${lossName}, scheduler ${scheduler.name}`,
  );
  const trainConfig: TrainConfig = {
    epochs,
    batchSize,
    loss: lossName,
    optimizer,
    scheduler,
    clipNorm: clip,
    seed,
    startEpoch,
    validationSplit: validationSplit > 0 ? validationSplit : undefined,
    onBatch: (p) => progress.batch(p.epoch, p.batch, p.batches, p.loss),
    onEpoch: (s) => progress.epoch(s, out),
  };
  if (values.gpu && values['save-optimizer']) throw new UsageError('--save-optimizer is not available with --gpu yet (the optimizer state stays on the GPU)');
  if (values.gpu) {
    // No adapter: say why and train on the CPU instead.
    return train(net, trainSet, { ...trainConfig, gpu: true }).then(finish, (e: unknown) => {
      if (!(e instanceof GpuUnavailableError)) throw e;
      err(`loom: --gpu: ${e.message}`);
      finish(train(net, trainSet, trainConfig));
    });
  }
  // More threads split the large products; the results are the same bits as one thread.
  if (threads > 1) {
    return withThreads(threads, (got) => {
      if (got < threads) err(`loom: --threads ${threads}: running on ${got} thread${got === 1 ? '' : 's'} (no worker threads or WebAssembly kernels here)`);
      finish(train(net, trainSet, trainConfig));
    });
  }
  finish(train(net, trainSet, trainConfig));

  function finish(result: TrainResult): void {
    const last = result.history[result.history.length - 1];
    const summary = [`done: ${result.history.length} epochs, ${result.steps} optimizer steps, final loss ${fmt(last.loss)}`];
    if (last.accuracy !== undefined) summary.push(`train accuracy ${pct(last.accuracy)}`);
    if (last.validationAccuracy !== undefined) summary.push(`validation accuracy ${pct(last.validationAccuracy)}`);
    if (data.test) {
      const t = evaluate(net, data.test, lossName);
      summary.push(`test loss ${fmt(t.loss)}${t.accuracy !== undefined ? `, test accuracy ${pct(t.accuracy)}` : ''}`);
    }
    const totalSeconds = result.history.reduce((a, s) => a + s.seconds, 0);
    summary.push(`${totalSeconds.toFixed(1)} s, ${Math.round((trainSet.count * result.history.length) / totalSeconds)} samples/s`);
    out(summary.join('; '));

    const outPath = stringFlag(values, 'out');
    if (outPath) {
      const extra = values['save-optimizer']
        ? { optimizer_state: { ...optimizer.state(), training: { epochsDone: startEpoch + epochs - 1, seed } satisfies TrainingState } }
        : {};
      saveNetworkFile(net, outPath, extra);
      out(`model saved to ${outPath}${values['save-optimizer'] ? ' (with optimizer state)' : ''}`);
    }
    const plotPath = stringFlag(values, 'plot');
    if (plotPath) {
      writeFileAtomic(plotPath, renderTrainingSvg(result.history, `${specPath} on ${trainSet.source}`));
      out(`loss and accuracy curves written to ${plotPath}`);
    }
  }
}

/** `name[:key=value,...]`; periods are given in epochs and converted to optimizer steps. */
export function parseScheduler(text: string, lr: number, stepsPerEpoch: number, totalEpochs: number): LRScheduler {
  const [name, rest = ''] = text.split(':', 2);
  const params = new Map<string, number>();
  for (const part of rest.split(',').filter(Boolean)) {
    const [k, v] = part.split('=');
    const n = Number(v);
    if (!k || v === undefined || !Number.isFinite(n)) throw new UsageError(`--scheduler: expected key=number in ${JSON.stringify(part)}`);
    params.set(k.trim(), n);
  }
  const get = (k: string, d: number) => params.get(k) ?? d;
  const totalSteps = Math.max(1, stepsPerEpoch * totalEpochs);
  const known: Record<string, string[]> = {
    constant: [],
    step: ['every', 'gamma'],
    exponential: ['gamma'],
    cosine: ['min'],
    warmup: ['epochs', 'start'],
    onecycle: ['pct', 'div', 'final'],
    plateau: ['factor', 'patience'],
  };
  const allowed = known[name];
  if (!allowed) throw new UsageError(`--scheduler: expected one of ${SCHEDULER_NAMES.join(', ')}, got ${JSON.stringify(name)}`);
  for (const k of params.keys()) {
    if (!allowed.includes(k)) throw new UsageError(`--scheduler ${name}: unknown parameter ${JSON.stringify(k)}${allowed.length ? ` (accepted: ${allowed.join(', ')})` : ''}`);
  }
  try {
    switch (name) {
      case 'step':
        return stepLR(lr, Math.max(1, Math.round(get('every', Math.max(1, Math.floor(totalEpochs / 3))) * stepsPerEpoch)), get('gamma', 0.5));
      case 'exponential':
        return exponentialLR(lr, Math.pow(get('gamma', 0.9), 1 / stepsPerEpoch));
      case 'cosine':
        return cosineAnnealingLR(lr, totalSteps, get('min', 0));
      case 'warmup':
        return linearWarmupLR(lr, get('start', 0.1), 1, Math.max(1, Math.round(get('epochs', 1) * stepsPerEpoch)));
      case 'onecycle':
        return oneCycleLR(lr, totalSteps, { pctStart: get('pct', 0.3), divFactor: get('div', 25), finalDivFactor: get('final', 1e4) });
      case 'plateau':
        return new ReduceOnPlateau(lr, { factor: get('factor', 0.5), patience: get('patience', 2) });
      default:
        return constantLR(lr);
    }
  } catch (e) {
    if (e instanceof SpecError) throw new UsageError(`--scheduler ${name}: ${e.message}`);
    throw e;
  }
}

/** A redrawn progress bar on a terminal; plain lines per epoch otherwise (logs, CI). */
class ProgressReporter {
  private readonly tty: boolean;
  private lastDraw = 0;

  constructor(
    private readonly err: (s: string) => void,
    private readonly epochs: number,
    private readonly firstEpoch: number,
  ) {
    this.tty = Boolean(process.stderr.isTTY);
  }

  batch(epoch: number, batch: number, batches: number, loss: number): void {
    if (!this.tty) return;
    const now = Date.now();
    if (now - this.lastDraw < 80 && batch !== batches) return;
    this.lastDraw = now;
    const width = 28;
    const filled = Math.round((batch / batches) * width);
    const bar = '█'.repeat(filled) + '░'.repeat(width - filled);
    process.stderr.write(`\r epoch ${epoch - this.firstEpoch + 1}/${this.epochs} ${bar} ${String(Math.round((100 * batch) / batches)).padStart(3)}%  loss ${fmt(loss)}   `);
  }

  epoch(s: EpochStats, out: (s: string) => void): void {
    if (this.tty) process.stderr.write('\r\x1b[2K');
    const parts = [`epoch ${s.epoch}`, `loss ${fmt(s.loss)}`];
    if (s.accuracy !== undefined) parts.push(`accuracy ${pct(s.accuracy)}`);
    if (s.validationLoss !== undefined) parts.push(`val loss ${fmt(s.validationLoss)}`);
    if (s.validationAccuracy !== undefined) parts.push(`val accuracy ${pct(s.validationAccuracy)}`);
    parts.push(`lr ${Number(s.lr.toPrecision(3))}`, `${Math.round(s.samplesPerSecond)} samples/s`);
    out(parts.join('  '));
  }
}

function isPositiveInt(v: number): boolean {
  return Number.isInteger(v) && v > 0;
}

export function fmt(v: number): string {
  return Number(v.toPrecision(4)).toString();
}

export function pct(v: number): string {
  return `${(v * 100).toFixed(2)}%`;
}

