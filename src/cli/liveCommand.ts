import { ShapeError, UsageError } from '../core/errors.js';
import { buildNetwork, parseJson } from '../grid/spec.js';
import { readTextFile } from '../io/modelFiles.js';
import { ADAPTATION_TASKS, AdaptationTracker, TASK_SWITCH_PHASES, type WindowStats } from '../train/adaptation.js';
import { TRAINING_MODE_NAMES, runTrainingMode, type StepOutcome, type TrainingModeName } from '../train/modes.js';
import { numberFlag, parseCommandArgs, requireOne, stringFlag } from './args.js';

export interface LiveIO {
  out: (s: string) => void;
  /** Terminal: bars in colour and a progress line redrawn in place; otherwise plain lines only. */
  tty: boolean;
  /** Raw writes for the in-place progress line (TTY only). */
  write?: (s: string) => void;
}

/**
 * loom live <spec.json> --task <name> [--mode StepTweenChain --steps N --window W --seed S --lr LR --input-size N]
 * Streams a built-in task through the network in a training mode and prints accuracy per window as
 * the mesh adapts, marking task switches, then a summary.
 */
export function liveCommand(argv: string[], io: LiveIO): void {
  const { positionals, values } = parseCommandArgs('live', argv, {
    task: { type: 'string' },
    mode: { type: 'string' },
    steps: { type: 'string' },
    window: { type: 'string' },
    seed: { type: 'string' },
    lr: { type: 'string' },
    'input-size': { type: 'string' },
  });
  const specPath = requireOne(positionals, 'live', 'spec.json');
  const names = Object.keys(ADAPTATION_TASKS);
  const taskName = stringFlag(values, 'task');
  if (!taskName) throw new UsageError(`live: missing --task <name> (one of ${names.join(', ')})`);
  if (!Object.hasOwn(ADAPTATION_TASKS, taskName)) throw new UsageError(`--task: unknown task ${JSON.stringify(taskName)} (tasks: ${names.join(', ')})`);
  const task = ADAPTATION_TASKS[taskName];
  const modeRaw = stringFlag(values, 'mode') ?? 'StepTweenChain';
  const mode = TRAINING_MODE_NAMES.find((m) => m.toLowerCase() === modeRaw.toLowerCase());
  if (!mode) throw new UsageError(`--mode: expected one of ${TRAINING_MODE_NAMES.join(', ')}, got ${JSON.stringify(modeRaw)}`);
  const isPositiveInt = (v: number) => Number.isInteger(v) && v >= 1;
  const steps = numberFlag(values, 'steps', 3000, isPositiveInt, 'a positive integer');
  const windowSize = numberFlag(values, 'window', 100, isPositiveInt, 'a positive integer');
  const seed = numberFlag(values, 'seed', 1, (v) => Number.isInteger(v) && v >= 0, 'a non-negative integer');
  const learningRate = numberFlag(values, 'lr', 0.1, (v) => v > 0, 'a positive number');
  const inputSize = numberFlag(values, 'input-size', 8, isPositiveInt, 'a positive integer');

  const net = buildNetwork(parseJson(readTextFile(specPath), specPath), { seed });
  const stream = task.make({ steps, seed, inputSize });
  const tracker = new AdaptationTracker({ windowSize });
  const phase = (t: number | string | undefined) => (typeof t === 'number' ? `${t} (${TASK_SWITCH_PHASES[t] ?? '?'})` : String(t));
  const say = (s: string) => {
    if (io.tty) io.write?.('\r\x1b[2K');
    io.out(s);
  };

  say(`loom live: ${specPath} · task ${taskName} (${task.description}) · mode ${mode} · ${steps} steps · window ${windowSize} · lr ${learningRate} · seed ${seed}`);
  const started = performance.now();
  let lastTask: number | string | undefined;
  let windowAnswered = 0;
  let windowCorrect = 0;
  const onStep = (o: StepOutcome) => {
    tracker.record({ answered: o.answered, correct: o.correct, task: o.task });
    if (o.step > 0 && o.task !== lastTask) say(`-- task switch at step ${o.step}: ${phase(lastTask)} → ${phase(o.task)}`);
    lastTask = o.task;
    if (o.answered) {
      windowAnswered++;
      if (o.correct) windowCorrect++;
    }
    const done = o.step + 1;
    if (done % windowSize === 0 || done === steps) {
      const w = tracker.report().windows.at(-1)!;
      say(windowLine(w, io.tty));
      windowAnswered = 0;
      windowCorrect = 0;
    } else if (io.tty && done % 25 === 0) {
      const acc = windowAnswered > 0 ? windowCorrect / windowAnswered : 0;
      io.write?.(`\r\x1b[2K  step ${done}/${steps}  window so far ${pct(acc)} (${windowAnswered} answers)`);
    }
  };
  try {
    runTrainingMode(mode, net, stream, { learningRate, onStep });
  } catch (e) {
    if (e instanceof ShapeError && tracker.report().steps === 0) {
      throw new ShapeError(`${e.message} (task ${taskName} gives ${inputSize} inputs and 4 targets per step; set --input-size to the network's input width)`);
    }
    throw e;
  }
  summary(io, mode, tracker, (performance.now() - started) / 1000, phase);
}

function windowLine(w: WindowStats, tty: boolean): string {
  const end = w.start + w.steps - 1;
  const acc = w.accuracy;
  const width = 20;
  const filled = acc === null ? 0 : Math.round(acc * width);
  let bar = '#'.repeat(filled) + '.'.repeat(width - filled);
  if (tty) bar = `\x1b[${acc !== null && acc >= 0.75 ? 32 : acc !== null && acc >= 0.4 ? 33 : 31}m${'█'.repeat(filled)}\x1b[2m${'░'.repeat(width - filled)}\x1b[0m`;
  return `window ${String(w.index).padStart(4)}  steps ${String(w.start).padStart(6)}-${String(end).padEnd(6)}  task ${w.tasks.join('+').padEnd(3)}  accuracy ${pct(acc).padStart(6)}  available ${pct(w.availability).padStart(6)}  ${bar}`;
}

function summary(io: LiveIO, mode: TrainingModeName, tracker: AdaptationTracker, seconds: number, phase: (t: number | string | undefined) => string): void {
  const r = tracker.report();
  io.out(
    `summary: mode ${mode} · ${r.steps} steps · accuracy ${pct(r.accuracy)} · mean window accuracy ${pct(r.meanWindowAccuracy)} · ` +
      `availability ${pct(r.availability)} · ${r.correct}/${r.steps} steps answered correctly · ${seconds.toFixed(1)} s`,
  );
  for (const c of r.taskChanges) {
    const rec = c.recoverySteps === null ? 'not recovered' : `recovered to ${Math.round(100 * r.recoveryFraction)}% of before in ${c.recoverySteps} steps`;
    io.out(`switch at step ${c.step} ${phase(c.from)} → ${phase(c.to)}: accuracy before ${pct(c.preAccuracy)}, just after ${pct(c.postAccuracy)}, ${rec}`);
  }
}

function pct(v: number | null): string {
  return v === null ? '-' : `${(100 * v).toFixed(1)}%`;
}
