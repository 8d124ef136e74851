import { LoomError, ShapeError, SpecError } from '../core/errors.js';
import { Tensor } from '../core/tensor.js';
import { backwardNetwork, forwardNetwork } from '../engine/run.js';
import { StepState, stepBackward, stepForward } from '../engine/step.js';
import { TweenState, stepApplyTween, tweenStep, type TweenConfig } from '../engine/tween.js';
import type { VolumetricNetwork } from '../grid/network.js';
import { mseLoss } from './losses.js';

/*
 * Online training modes, named as the original's adaptation benchmarks. Time is counted in stream
 * steps (one sample arrives per step), so runs are deterministic:
 *  - NormalBP / Tween / TweenChain answer each sample with an ordinary forward pass, buffer it, and every
 *    `trainInterval` answered steps train on the buffer (backprop + SGD, or a Tween step per sample).
 *    Training blocks: the next `stepsPerTrainedSample`·(buffer size) samples get no answer and are not learned.
 *  - StepBP / StepTweenChain run the step mesh, one tick per sample, and learn at every tick without
 *    blocking. The mesh answers a sample `latency` ticks after it enters (the longest feed-forward path),
 *    so each answer is judged and trained against the target of the sample that produced it; StepBP uses
 *    BPTT over the last latency + 1 ticks, StepTweenChain chain-rule Tween over the same history.
 */

/** The original's training-mode names. */
export type TrainingModeName = 'NormalBP' | 'StepBP' | 'Tween' | 'TweenChain' | 'StepTweenChain';
/** Every mode name, in the original's benchmark order. */
export const TRAINING_MODE_NAMES: readonly TrainingModeName[] = ['NormalBP', 'StepBP', 'Tween', 'TweenChain', 'StepTweenChain'];

/** One sample of a stream. A Float32Array input is one sample ([1, n]). */
export interface StreamSample {
  input: Tensor | Float32Array;
  target: Float32Array;
  /** Class used to judge answers (default: arg-max of `target`). */
  label?: number;
  /** Task the environment is in at this step (for the adaptation tracker). */
  task?: number | string;
}

/** What happened at one stream step. */
export interface StepOutcome {
  step: number;
  /** Task of the sample that arrived at this step. */
  task: number | string | undefined;
  answered: boolean;
  /** Stream index of the sample the answer is for (-1 when none; step modes answer `latency` steps late). */
  answerFor: number;
  output: Float32Array | null;
  correct: boolean | null;
  /** MSE of the answer against its sample's target. */
  loss: number | null;
  /** No answer because the network was busy training. */
  blocked: boolean;
}

/** Settings shared by the modes. */
export interface ModeOptions {
  /** Default 0.02 (the original's adaptation benchmarks). */
  learningRate?: number;
  /** Answered steps between buffer trainings (NormalBP, Tween, TweenChain); default 50. */
  trainInterval?: number;
  /** Most buffered samples (the newest are kept); default 256. */
  maxBatch?: number;
  /** Steps a buffer training blocks per trained sample; default 1. */
  stepsPerTrainedSample?: number;
  /** Tween settings (useChainRule and learningRate are set by the mode). */
  tween?: Partial<TweenConfig>;
  onStep?: (outcome: StepOutcome) => void;
}

/** Counts of one mode run. */
export interface ModeSummary {
  mode: TrainingModeName;
  steps: number;
  answered: number;
  correct: number;
  /** Mean MSE over answered steps. */
  meanLoss: number;
  trainedSamples: number;
  blockedSteps: number;
  /** Ticks from a sample entering to its answer (0 for non-step modes). */
  latency: number;
}

/** A mode: consumes a stream, answering and learning as it goes; returns its counts. */
export type ModeFunction = (net: VolumetricNetwork, samples: Iterable<StreamSample>, options?: ModeOptions) => ModeSummary;

interface Settings {
  lr: number;
  interval: number;
  maxBatch: number;
  cost: number;
  tween: Partial<TweenConfig>;
  onStep?: (o: StepOutcome) => void;
}

function settings(o: ModeOptions): Settings {
  const s: Settings = {
    lr: o.learningRate ?? 0.02,
    interval: o.trainInterval ?? 50,
    maxBatch: o.maxBatch ?? 256,
    cost: o.stepsPerTrainedSample ?? 1,
    tween: o.tween ?? {},
    onStep: o.onStep,
  };
  if (!(s.lr > 0) || !Number.isFinite(s.lr)) throw new SpecError('learningRate', 'a positive number', o.learningRate);
  if (!Number.isInteger(s.interval) || s.interval < 1) throw new SpecError('trainInterval', 'a positive integer', o.trainInterval);
  if (!Number.isInteger(s.maxBatch) || s.maxBatch < 1) throw new SpecError('maxBatch', 'a positive integer', o.maxBatch);
  if (!(s.cost >= 0) || !Number.isFinite(s.cost)) throw new SpecError('stepsPerTrainedSample', 'a number ≥ 0', o.stepsPerTrainedSample);
  return s;
}

class Tally {
  readonly summary: ModeSummary;
  private lossSum = 0;

  constructor(
    mode: TrainingModeName,
    private readonly onStep?: (o: StepOutcome) => void,
  ) {
    this.summary = { mode, steps: 0, answered: 0, correct: 0, meanLoss: 0, trainedSamples: 0, blockedSteps: 0, latency: 0 };
  }

  answer(step: number, arriving: StreamSample, answerFor: number, sample: StreamSample, output: Tensor): void {
    const loss = mseLoss(output, sample.target).loss;
    const correct = argMax(output.data) === (sample.label ?? argMax(sample.target));
    const s = this.summary;
    s.answered++;
    if (correct) s.correct++;
    this.lossSum += loss;
    this.emit({ step, task: arriving.task, answered: true, answerFor, output: output.data, correct, loss, blocked: false });
  }

  silent(step: number, arriving: StreamSample, blocked: boolean): void {
    if (blocked) this.summary.blockedSteps++;
    this.emit({ step, task: arriving.task, answered: false, answerFor: -1, output: null, correct: null, loss: null, blocked });
  }

  private emit(o: StepOutcome): void {
    this.summary.steps++;
    this.onStep?.(o);
  }

  finish(): ModeSummary {
    this.summary.meanLoss = this.summary.answered > 0 ? this.lossSum / this.summary.answered : 0;
    return this.summary;
  }
}

/** A sample's input as a tensor; a flat array is one sample. */
export function sampleInput(sample: StreamSample): Tensor {
  return sample.input instanceof Tensor ? sample.input : new Tensor(sample.input, [1, sample.input.length]);
}

/** Answer-now, train-later loop shared by NormalBP, Tween and TweenChain. */
function bufferedMode(
  mode: TrainingModeName,
  net: VolumetricNetwork,
  samples: Iterable<StreamSample>,
  options: ModeOptions,
  trainOne: (s: Settings, sample: StreamSample) => void,
): ModeSummary {
  const s = settings(options);
  const tally = new Tally(mode, s.onStep);
  const buffer: StreamSample[] = [];
  let blockedUntil = -1;
  let sinceTrain = 0;
  let step = 0;
  for (const sample of samples) {
    if (step <= blockedUntil) {
      tally.silent(step++, sample, true);
      continue;
    }
    const output = forwardNetwork(net, sampleInput(sample)).output;
    tally.answer(step, sample, step, sample, output);
    buffer.push(sample);
    if (buffer.length > s.maxBatch) buffer.shift();
    if (++sinceTrain >= s.interval) {
      for (const b of buffer) trainOne(s, b);
      tally.summary.trainedSamples += buffer.length;
      blockedUntil = step + Math.round(s.cost * buffer.length);
      buffer.length = 0;
      sinceTrain = 0;
    }
    step++;
  }
  return tally.finish();
}

/** Buffered backprop: plain SGD on the MSE of each buffered sample, one after another. */
export const normalBP: ModeFunction = (net, samples, options = {}) =>
  bufferedMode('NormalBP', net, samples, options, (s, sample) => {
    const { output, trace } = forwardNetwork(net, sampleInput(sample), { keepTrace: true });
    const { gradients } = backwardNetwork(net, trace!, mseLoss(output, sample.target).grad, { inputGradient: false });
    for (const g of gradients) g.layer.weights!.applyGradients(g.grad, s.lr);
  });

/** Buffered Tween with target propagation (no derivatives). */
export const tween: ModeFunction = (net, samples, options = {}) => {
  let state: TweenState | null = null;
  return bufferedMode('Tween', net, samples, options, (s, sample) => {
    state ??= new TweenState({ ...s.tween, useChainRule: false, learningRate: s.lr });
    tweenStep(net, state, sampleInput(sample), sample.target, s.lr);
  });
};

/** Buffered Tween with chain-rule targets. */
export const tweenChain: ModeFunction = (net, samples, options = {}) => {
  let state: TweenState | null = null;
  return bufferedMode('TweenChain', net, samples, options, (s, sample) => {
    state ??= new TweenState({ ...s.tween, useChainRule: true, learningRate: s.lr });
    tweenStep(net, state, sampleInput(sample), sample.target, s.lr);
  });
};

/** One tick per sample on the step mesh, learning at every tick; shared by StepBP and StepTweenChain. */
function meshMode(
  mode: TrainingModeName,
  net: VolumetricNetwork,
  samples: Iterable<StreamSample>,
  options: ModeOptions,
  learn: (s: Settings, mesh: StepState, output: Tensor, sample: StreamSample) => void,
): ModeSummary {
  const s = settings(options);
  const tally = new Tally(mode, s.onStep);
  const mesh = new StepState(net, { captureHistory: true });
  const pending: { index: number; sample: StreamSample }[] = [];
  let step = 0;
  for (const sample of samples) {
    const input = sampleInput(sample);
    if (step === 0) {
      mesh.setInput(input);
      const latency = mesh.latency;
      if (latency < 0) throw new LoomError(`${mode}: the output cell is not fed from the input along a feed-forward path`);
      mesh.historyLimit = latency + 1;
      tally.summary.latency = latency;
    }
    const output = stepForward(mesh, input);
    pending.push({ index: step, sample });
    if (pending.length > tally.summary.latency) {
      const due = pending.shift()!;
      if (output.size !== due.sample.target.length) {
        throw new ShapeError(`${mode}: the output has ${output.size} values but the target of sample ${due.index} has ${due.sample.target.length}`);
      }
      tally.answer(step, sample, due.index, due.sample, output);
      learn(s, mesh, output, due.sample);
      tally.summary.trainedSamples++;
    } else {
      tally.silent(step, sample, false);
    }
    step++;
  }
  return tally.finish();
}

/** Step mesh + BPTT over the last latency + 1 ticks + plain SGD, at every tick. */
export const stepBP: ModeFunction = (net, samples, options = {}) =>
  meshMode('StepBP', net, samples, options, (s, mesh, output, sample) => {
    const { gradients } = stepBackward(mesh, mseLoss(output, sample.target).grad);
    for (const g of gradients) g.layer.weights!.applyGradients(g.grad, s.lr);
  });

/** Step mesh + chain-rule Tween on the live mesh (exact through the captured ticks), at every tick. */
export const stepTweenChain: ModeFunction = (net, samples, options = {}) => {
  let state: TweenState | null = null;
  return meshMode('StepTweenChain', net, samples, options, (s, mesh, _output, sample) => {
    state ??= new TweenState({ ...s.tween, useChainRule: true, learningRate: s.lr });
    stepApplyTween(mesh, sample.target, { tween: state, lr: s.lr, useHistory: true });
  });
};

/** Every mode by its original name. */
export const TRAINING_MODES: Readonly<Record<TrainingModeName, ModeFunction>> = {
  NormalBP: normalBP,
  StepBP: stepBP,
  Tween: tween,
  TweenChain: tweenChain,
  StepTweenChain: stepTweenChain,
};

/** Parses a mode name (case-insensitive). */
export function parseTrainingMode(name: string): TrainingModeName {
  const found = TRAINING_MODE_NAMES.find((m) => m.toLowerCase() === name.trim().toLowerCase());
  if (!found) throw new SpecError('mode', `one of ${TRAINING_MODE_NAMES.join(', ')}`, name);
  return found;
}

/** Runs `samples` through the named mode. */
export function runTrainingMode(mode: TrainingModeName, net: VolumetricNetwork, samples: Iterable<StreamSample>, options: ModeOptions = {}): ModeSummary {
  return TRAINING_MODES[mode](net, samples, options);
}

function argMax(a: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i] > a[best]) best = i;
  return best;
}
