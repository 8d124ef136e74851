import { SpecError } from '../core/errors.js';
import { Rng } from '../core/rng.js';
import { buildNetwork } from '../grid/spec.js';
import type { VolumetricNetwork } from '../grid/network.js';
import { runTrainingMode, type ModeOptions, type ModeSummary, type StreamSample, type TrainingModeName } from './modes.js';

/*
 * Adaptation tracking, after the original's AdaptationTracker, with time counted in stream steps
 * instead of wall-clock seconds so reports are reproducible. Windows are consecutive blocks of
 * `windowSize` steps. A task change at step s compares the last window that ends at or before s
 * (pre) with the first window that starts at or after s (post); recovery is the number of windows
 * after that post window until one reaches recoveryFraction × the pre-change accuracy (0: the post
 * window itself), searched among windows that end before the next change.
 */

export interface TrackerOptions {
  /** Steps per window. */
  windowSize: number;
  /** Share of the pre-change accuracy that counts as recovered (default 0.9). */
  recoveryFraction?: number;
}

/** One step as the tracker sees it. */
export interface TrackedStep {
  /** The network gave an answer at this step. */
  answered: boolean;
  /** Whether that answer was right (null or absent: not judged). */
  correct?: boolean | null;
  /** Task the environment was in at this step. */
  task?: number | string;
}

/** One window of `windowSize` steps. */
export interface WindowStats {
  index: number;
  /** First step of the window. */
  start: number;
  steps: number;
  answered: number;
  /** Answers that were judged. */
  judged: number;
  correct: number;
  /** correct / judged, or null when nothing was judged. */
  accuracy: number | null;
  /** answered / steps. */
  availability: number;
  /** Tasks seen in the window, in order of appearance. */
  tasks: (number | string)[];
}

/** One task change and how the network coped. */
export interface TaskChangeStats {
  /** Step at which the new task started. */
  step: number;
  from: number | string | undefined;
  to: number | string | undefined;
  preWindow: number | null;
  postWindow: number | null;
  preAccuracy: number | null;
  postAccuracy: number | null;
  /** Windows after the post window until recovery (0: the post window recovered); null if it never did. */
  recoveryWindows: number | null;
  /** Steps from the change to the end of the recovering window; null if it never recovered. */
  recoverySteps: number | null;
}

/** The tracker's report. */
export interface AdaptationReport {
  steps: number;
  answered: number;
  judged: number;
  correct: number;
  /** correct / judged over the whole stream (null if nothing was judged). */
  accuracy: number | null;
  /** Mean of the window accuracies that exist (the original's AvgAccuracy). */
  meanWindowAccuracy: number | null;
  /** Share of steps with an answer. */
  availability: number;
  windowSize: number;
  recoveryFraction: number;
  windows: WindowStats[];
  taskChanges: TaskChangeStats[];
}

/** Accumulates per-step outcomes and reports windowed accuracy, task changes, recovery and availability. */
export class AdaptationTracker {
  readonly windowSize: number;
  readonly recoveryFraction: number;
  private readonly windows: WindowStats[] = [];
  private readonly changes: { step: number; from: number | string | undefined; to: number | string | undefined }[] = [];
  private steps = 0;
  private lastTask: number | string | undefined;

  constructor(options: TrackerOptions) {
    this.windowSize = options.windowSize;
    this.recoveryFraction = options.recoveryFraction ?? 0.9;
    if (!Number.isInteger(this.windowSize) || this.windowSize < 1) throw new SpecError('windowSize', 'a positive integer', options.windowSize);
    if (!(this.recoveryFraction >= 0 && this.recoveryFraction <= 1)) throw new SpecError('recoveryFraction', 'a number in [0, 1]', options.recoveryFraction);
  }

  record(step: TrackedStep): void {
    const s = this.steps++;
    const index = Math.floor(s / this.windowSize);
    let w = this.windows[index];
    if (!w) {
      w = { index, start: index * this.windowSize, steps: 0, answered: 0, judged: 0, correct: 0, accuracy: null, availability: 0, tasks: [] };
      this.windows[index] = w;
    }
    w.steps++;
    if (step.answered) {
      w.answered++;
      if (step.correct !== null && step.correct !== undefined) {
        w.judged++;
        if (step.correct) w.correct++;
      }
    }
    w.accuracy = w.judged > 0 ? w.correct / w.judged : null;
    w.availability = w.answered / w.steps;
    if (step.task !== undefined && !w.tasks.includes(step.task)) w.tasks.push(step.task);
    if (s > 0 && step.task !== this.lastTask) this.changes.push({ step: s, from: this.lastTask, to: step.task });
    this.lastTask = step.task;
  }

  report(): AdaptationReport {
    const windows = this.windows.map((w) => ({ ...w, tasks: [...w.tasks] }));
    let answered = 0;
    let judged = 0;
    let correct = 0;
    for (const w of windows) {
      answered += w.answered;
      judged += w.judged;
      correct += w.correct;
    }
    const accuracies = windows.map((w) => w.accuracy).filter((a): a is number => a !== null);
    const W = this.windowSize;
    const taskChanges = this.changes.map((c, i): TaskChangeStats => {
      const next = i + 1 < this.changes.length ? this.changes[i + 1].step : this.steps;
      const preIndex = Math.floor(c.step / W) - 1;
      const postIndex = Math.ceil(c.step / W);
      const pre = preIndex >= 0 ? windows[preIndex] : undefined;
      const post = postIndex < windows.length && windows[postIndex].start + windows[postIndex].steps <= next ? windows[postIndex] : undefined;
      const preAccuracy = pre?.accuracy ?? null;
      let recoveryWindows: number | null = null;
      let recoverySteps: number | null = null;
      if (preAccuracy !== null && post) {
        const threshold = this.recoveryFraction * preAccuracy;
        for (let j = postIndex; j < windows.length && windows[j].start + windows[j].steps <= next; j++) {
          const a = windows[j].accuracy;
          if (a !== null && a >= threshold) {
            recoveryWindows = j - postIndex;
            recoverySteps = windows[j].start + windows[j].steps - c.step;
            break;
          }
        }
      }
      return {
        step: c.step,
        from: c.from,
        to: c.to,
        preWindow: pre ? preIndex : null,
        postWindow: post ? postIndex : null,
        preAccuracy,
        postAccuracy: post?.accuracy ?? null,
        recoveryWindows,
        recoverySteps,
      };
    });
    return {
      steps: this.steps,
      answered,
      judged,
      correct,
      accuracy: judged > 0 ? correct / judged : null,
      meanWindowAccuracy: accuracies.length > 0 ? accuracies.reduce((a, b) => a + b, 0) / accuracies.length : null,
      availability: this.steps > 0 ? answered / this.steps : 0,
      windowSize: W,
      recoveryFraction: this.recoveryFraction,
      windows,
      taskChanges,
    };
  }
}

/** Options of makeTaskSwitchStream. */
export interface TaskSwitchOptions {
  /** Stream length (default 3000). */
  steps?: number;
  seed?: number;
  /** Steps at which the task changes (default: at one and two thirds). */
  changeAt?: number[];
  /** Task of each phase (default [0, 1, 0]: chase, avoid, chase); one more entry than changeAt. */
  tasks?: number[];
  /** Input width; the 8 base features repeat to fill it (default 8). */
  inputSize?: number;
  /** Include the task id as the last base feature, as the original does (default true). */
  showTask?: boolean;
  /** Largest move of each coordinate per step (default 0.25; the original's agents crawl, which makes windows near-constant). */
  speed?: number;
}

/**
 * The original's chase/avoid stream, seeded: an agent and a target random-walk in the unit square;
 * observation [agent x, y, target x, y, dx, dy, distance, task]; the answer is one of 4 moves (up,
 * down, left, right) — toward the target along the larger axis in task 0 (chase), away in task 1 (avoid).
 */
export function makeTaskSwitchStream(options: TaskSwitchOptions = {}): StreamSample[] {
  const steps = options.steps ?? 3000;
  const changeAt = options.changeAt ?? [Math.floor(steps / 3), Math.floor((2 * steps) / 3)];
  const tasks = options.tasks ?? [0, 1, 0];
  const inputSize = options.inputSize ?? 8;
  const showTask = options.showTask ?? true;
  const speed = options.speed ?? 0.25;
  if (!Number.isInteger(steps) || steps < 1) throw new SpecError('steps', 'a positive integer', options.steps);
  if (!Number.isInteger(inputSize) || inputSize < 1) throw new SpecError('inputSize', 'a positive integer', options.inputSize);
  if (!(speed >= 0 && speed <= 1)) throw new SpecError('speed', 'a number in [0, 1]', options.speed);
  if (tasks.length !== changeAt.length + 1) throw new SpecError('tasks', `${changeAt.length + 1} entries (one per phase)`, tasks);
  const rng = new Rng(options.seed ?? 1);
  const pos = [rng.uniform(), rng.uniform(), rng.uniform(), rng.uniform()];
  const out: StreamSample[] = [];
  let phase = 0;
  for (let s = 0; s < steps; s++) {
    while (phase < changeAt.length && s >= changeAt[phase]) phase++;
    const task = tasks[phase];
    for (let i = 0; i < 4; i++) pos[i] = reflect(pos[i] + (rng.uniform() * 2 - 1) * speed);
    const dx = pos[2] - pos[0];
    const dy = pos[3] - pos[1];
    const base = [pos[0], pos[1], pos[2], pos[3], dx, dy, Math.sqrt(dx * dx + dy * dy), showTask ? task : 0];
    const input = new Float32Array(inputSize);
    for (let i = 0; i < inputSize; i++) input[i] = base[i % base.length];
    const toward = Math.abs(dx) > Math.abs(dy) ? (dx > 0 ? 3 : 2) : dy > 0 ? 0 : 1;
    const away = [1, 0, 3, 2][toward];
    const label = task === 0 ? toward : away;
    const target = new Float32Array(4);
    target[label] = 1;
    out.push({ input, target, label, task });
  }
  return out;
}

/** The phases of makeTaskSwitchStream by task id. */
export const TASK_SWITCH_PHASES: readonly string[] = ['chase', 'avoid'];

/** A built-in task-switching stream (for `loom live` and the benchmark). */
export interface AdaptationTask {
  description: string;
  make(options: { steps: number; seed: number; inputSize: number }): StreamSample[];
}

/** Built-in streams by name. */
export const ADAPTATION_TASKS: Readonly<Record<string, AdaptationTask>> = {
  'chase-avoid': {
    description: 'chase → avoid → chase, switches at one and two thirds; the task id is an input',
    make: (o) => makeTaskSwitchStream(o),
  },
  'chase-avoid-hidden': {
    description: 'chase → avoid → chase with the task id hidden: the mesh must notice the switch from its errors',
    make: (o) => makeTaskSwitchStream({ ...o, showTask: false }),
  },
  alternate: {
    description: 'chase and avoid alternating every quarter of the stream, task id hidden',
    make: (o) => {
      const q = Math.floor(o.steps / 4);
      return makeTaskSwitchStream({ ...o, showTask: false, changeAt: [q, 2 * q, 3 * q], tasks: [0, 1, 0, 1] });
    },
  },
  chase: {
    description: 'chase only (no switch)',
    make: (o) => makeTaskSwitchStream({ ...o, changeAt: [], tasks: [0] }),
  },
};

function reflect(v: number): number {
  if (v < 0) return -v;
  if (v > 1) return 2 - v;
  return v;
}

/** The original's Dense adaptation network: inputSize → hidden (LeakyReLU)… → outputs (Sigmoid), one layer per cell. */
export function adaptationNetwork(options: { inputSize?: number; hidden?: number[]; outputs?: number; seed?: number } = {}): VolumetricNetwork {
  const sizes = [options.inputSize ?? 8, ...(options.hidden ?? [64, 32]), options.outputs ?? 4];
  const layers = sizes.slice(1).map((out, x) => ({
    z: 0, y: 0, x, l: 0,
    type: 'Dense',
    activation: x === sizes.length - 2 ? 'Sigmoid' : 'LeakyReLU',
    input_height: sizes[x],
    output_height: out,
    use_bias: true,
  }));
  return buildNetwork({ depth: 1, rows: 1, cols: layers.length, layers_per_cell: 1, layers }, { seed: options.seed ?? 1 });
}

/** Layer families of the original's "Layer × Training Mode" study. */
export type AdaptationLayer = 'Dense' | 'Conv2D' | 'RNN' | 'LSTM' | 'Attention';
export const ADAPTATION_LAYERS: readonly AdaptationLayer[] = ['Dense', 'Conv2D', 'RNN', 'LSTM', 'Attention'];

/**
 * A study network for one layer family, for 16 inputs (two copies of the 8 observation features) and 4
 * moves: the layer under test → Dense 32 (LeakyReLU) → Dense 4 (Sigmoid), one layer per cell. The
 * 16 inputs are a 1×4×4 image for Conv2D (8 filters, 3×3, padding 1), a sequence of 4 steps × 4 features
 * for RNN/LSTM (hidden 16) and for attention (d_model 4, 2 heads); Dense is 16 → 64.
 */
export function adaptationLayerNetwork(layer: AdaptationLayer, options: { seed?: number } = {}): VolumetricNetwork {
  const first: Record<AdaptationLayer, { spec: Record<string, unknown>; width: number }> = {
    Dense: { spec: { type: 'Dense', activation: 'LeakyReLU', input_height: 16, output_height: 64, use_bias: true }, width: 64 },
    Conv2D: {
      spec: { type: 'Conv2D', activation: 'LeakyReLU', input_channels: 1, input_height: 4, input_width: 4, filters: 8, kernel_size: 3, padding: 1, use_bias: true },
      width: 128,
    },
    RNN: { spec: { type: 'RNN', input_height: 4, output_height: 16, seq_length: 4 }, width: 64 },
    LSTM: { spec: { type: 'LSTM', input_height: 4, output_height: 16, seq_length: 4 }, width: 64 },
    Attention: { spec: { type: 'MultiHeadAttention', activation: 'Linear', d_model: 4, num_heads: 2, seq_length: 4 }, width: 16 },
  };
  const f = first[layer];
  if (!f) throw new SpecError('layer', `one of ${ADAPTATION_LAYERS.join(', ')}`, layer);
  const layers = [
    { z: 0, y: 0, x: 0, l: 0, ...f.spec },
    { z: 0, y: 0, x: 1, l: 0, type: 'Dense', activation: 'LeakyReLU', input_height: f.width, output_height: 32, use_bias: true },
    { z: 0, y: 0, x: 2, l: 0, type: 'Dense', activation: 'Sigmoid', input_height: 32, output_height: 4, use_bias: true },
  ];
  return buildNetwork({ depth: 1, rows: 1, cols: 3, layers_per_cell: 1, layers }, { seed: options.seed ?? 1 });
}

/** Mode settings plus tracker settings. */
export interface AdaptationRunOptions extends ModeOptions, TrackerOptions {}

/** A mode's run over a stream: its counts and the tracker's report. */
export interface AdaptationRun {
  mode: TrainingModeName;
  summary: ModeSummary;
  report: AdaptationReport;
}

/** Runs a (task-switching) stream through a training mode and returns the tracker's report with the mode's summary. */
export function runAdaptation(net: VolumetricNetwork, mode: TrainingModeName, samples: Iterable<StreamSample>, options: AdaptationRunOptions): AdaptationRun {
  const tracker = new AdaptationTracker(options);
  const onStep = options.onStep;
  const summary = runTrainingMode(mode, net, samples, {
    ...options,
    onStep: (o) => {
      tracker.record({ answered: o.answered, correct: o.correct, task: o.task });
      onStep?.(o);
    },
  });
  return { mode, summary, report: tracker.report() };
}
