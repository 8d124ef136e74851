import { existsSync, mkdirSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DType, dtypeName } from '../core/dtype.js';
import { LoomError } from '../core/errors.js';
import type { Dataset } from '../data/dataset.js';
import { loadMnistDirectory } from '../data/idx.js';
import { makeSpirals } from '../data/synthetic.js';
import { splitDataset } from '../data/dataset.js';
import { buildNetwork, parseJson } from '../grid/spec.js';
import { withThreads } from '../kernels/backend.js';
import { loadNetworkFile, readTextFile, saveNetworkFile } from '../io/modelFiles.js';
import { AdamW } from '../train/optimizers.js';
import { cosineAnnealingLR } from '../train/schedulers.js';
import { evaluate, predict, train } from '../train/train.js';
import { numberFlag, parseCommandArgs, stringFlag } from './args.js';
import { formatBytes, table } from './modelCommands.js';
import { fmt, pct } from './trainCommand.js';

const FASHION_DIR = '/usr/share/datasets/fashion-mnist';
const EXAMPLES = fileURLToPath(new URL('../../../examples/', import.meta.url));

interface DemoTask {
  name: string;
  spec: string;
  train: Dataset;
  test: Dataset;
  epochs: number;
  batch: number;
  lr: number;
  goal?: number;
}

/**
 * The README's main job: train on Fashion-MNIST when installed (else a built-in spiral task),
 * evaluate on held-out data, save, reload and check the outputs are bit-identical, then morph to
 * int8 and int4 and report test accuracy and file size for each.
 */
export function demoCommand(argv: string[], out: (s: string) => void): Promise<void> {
  const { values } = parseCommandArgs('demo', argv, { epochs: { type: 'string' }, out: { type: 'string' }, data: { type: 'string' }, threads: { type: 'string' } });
  const outDir = stringFlag(values, 'out') ?? 'out';
  const task = pickTask(stringFlag(values, 'data'));
  task.epochs = numberFlag(values, 'epochs', task.epochs, (v) => Number.isInteger(v) && v > 0, 'a positive integer');
  // Every core by default: the thread count never changes a bit of the results.
  const threads = numberFlag(values, 'threads', Math.min(8, availableParallelism()), (v) => Number.isInteger(v) && v > 0, 'a positive integer');
  mkdirSync(outDir, { recursive: true });
  return withThreads(threads, (running) => runDemo(task, outDir, running, out));
}

function runDemo(task: DemoTask, outDir: string, threads: number, out: (s: string) => void): void {
  out(`Loom-TS demo: ${task.name} (${threads} thread${threads === 1 ? '' : 's'}; the results are the same bits on any number)`);
  out(`network ${task.spec}, ${task.train.count} training / ${task.test.count} test samples, ${task.epochs} epochs, batch ${task.batch}, AdamW lr ${task.lr} with cosine decay`);
  const net = buildNetwork(parseJson(readTextFile(join(EXAMPLES, task.spec)), task.spec), { seed: 7 });
  const stepsPerEpoch = Math.ceil(task.train.count / task.batch);
  const started = performance.now();
  train(net, task.train, {
    epochs: task.epochs,
    batchSize: task.batch,
    loss: 'cross_entropy',
    optimizer: new AdamW({ lr: task.lr, weightDecay: 1e-4 }),
    scheduler: cosineAnnealingLR(task.lr, stepsPerEpoch * task.epochs, task.lr / 20),
    seed: 7,
    validation: task.test.count > 2000 ? undefined : task.test,
    onEpoch: (s) =>
      out(`  epoch ${s.epoch}: loss ${fmt(s.loss)}, train accuracy ${pct(s.accuracy ?? 0)}, ${Math.round(s.samplesPerSecond)} samples/s`),
  });
  const seconds = (performance.now() - started) / 1000;
  const test = evaluate(net, task.test, 'cross_entropy');
  out(`trained in ${seconds.toFixed(1)} s; test accuracy ${pct(test.accuracy!)} (loss ${fmt(test.loss)})`);

  const floatPath = join(outDir, `${task.name}-float32.json`);
  saveNetworkFile(net, floatPath);
  const reloaded = loadNetworkFile(floatPath);
  const before = predict(net, task.test).data;
  const after = predict(reloaded, task.test).data;
  const identical = before.length === after.length && before.every((v, i) => Object.is(v, after[i]));
  out(`saved ${floatPath} and reloaded it: outputs on all ${task.test.count} test samples ${identical ? 'are bit-identical' : 'DIFFER'}`);
  if (!identical) throw new LoomError('reloaded model does not reproduce the outputs of the saved one');

  const rows = [['dtype', 'test accuracy', 'file size', 'parameter bytes']];
  rows.push(['float32', pct(test.accuracy!), formatBytes(statSync(floatPath).size), formatBytes(net.sizeInBytes())]);
  for (const dtype of [DType.Int8, DType.Int4]) {
    const q = loadNetworkFile(floatPath);
    q.morph(dtype);
    const path = join(outDir, `${task.name}-${dtypeName(dtype)}.json`);
    saveNetworkFile(q, path);
    const loaded = loadNetworkFile(path);
    const r = evaluate(loaded, task.test, 'cross_entropy');
    rows.push([dtypeName(dtype), pct(r.accuracy!), formatBytes(statSync(path).size), formatBytes(loaded.sizeInBytes())]);
  }
  out(table(rows));
  if (task.goal !== undefined) {
    out(`goal: test accuracy >= ${pct(task.goal)} with float32 weights: ${test.accuracy! >= task.goal ? 'met' : 'NOT met'}`);
  }
}

function pickTask(dataDir: string | undefined): DemoTask {
  const dir = dataDir ?? FASHION_DIR;
  if (dataDir !== undefined || existsSync(dir)) {
    const { train, test } = loadMnistDirectory(dir);
    return { name: 'fashion-mnist-cnn', spec: 'fashion-cnn.json', train, test, epochs: 6, batch: 64, lr: 2e-3, goal: 0.9 };
  }
  const all = makeSpirals({ classes: 3, pointsPerClass: 400, noise: 0.15, seed: 11 });
  const { train, validation } = splitDataset(all, 0.25, 5);
  return { name: 'spirals-mlp', spec: 'spirals-mlp.json', train, test: validation, epochs: 60, batch: 32, lr: 1e-2, goal: 0.9 };
}
