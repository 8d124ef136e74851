import { SpecError } from '../core/errors.js';

/**
 * Learning-rate schedules, counted in optimizer steps and matching PyTorch's schedulers of the same
 * name. `lr` is the rate the next optimizer step uses; call `step()` after each optimizer step
 * (ReduceOnPlateau: `step(metric)` once per evaluation, usually per epoch).
 */
export interface LRScheduler {
  readonly name: SchedulerName;
  readonly lr: number;
  step(metric?: number): void;
  /** Jumps a step-counted schedule to `steps` optimizer steps (used when resuming). */
  seek?(steps: number): void;
}

export type SchedulerName = 'constant' | 'step' | 'exponential' | 'cosine' | 'warmup' | 'onecycle' | 'plateau';
export const SCHEDULER_NAMES: readonly SchedulerName[] = ['constant', 'step', 'exponential', 'cosine', 'warmup', 'onecycle', 'plateau'];

/** A schedule that is a pure function of the step count. */
class ClosedFormScheduler implements LRScheduler {
  private t = 0;
  constructor(
    readonly name: SchedulerName,
    private readonly at: (t: number) => number,
  ) {}
  get lr(): number {
    return this.at(this.t);
  }
  step(): void {
    this.t++;
  }
  seek(steps: number): void {
    this.t = steps;
  }
}

export function constantLR(baseLr: number): LRScheduler {
  return new ClosedFormScheduler('constant', () => baseLr);
}

/** lr = base · gamma^floor(t / stepSize)  (torch StepLR) */
export function stepLR(baseLr: number, stepSize: number, gamma = 0.1): LRScheduler {
  positive(stepSize, 'scheduler.step_size');
  return new ClosedFormScheduler('step', (t) => baseLr * Math.pow(gamma, Math.floor(t / stepSize)));
}

/** lr = base · gamma^t  (torch ExponentialLR) */
export function exponentialLR(baseLr: number, gamma: number): LRScheduler {
  return new ClosedFormScheduler('exponential', (t) => baseLr * Math.pow(gamma, t));
}

/** lr = min + (base − min)·(1 + cos(π·t/T))/2  (torch CosineAnnealingLR) */
export function cosineAnnealingLR(baseLr: number, tMax: number, etaMin = 0): LRScheduler {
  positive(tMax, 'scheduler.t_max');
  return new ClosedFormScheduler('cosine', (t) => etaMin + ((baseLr - etaMin) * (1 + Math.cos((Math.PI * t) / tMax))) / 2);
}

/** Linear warm-up from base·start to base·end over totalIters steps, then constant (torch LinearLR). */
export function linearWarmupLR(baseLr: number, startFactor = 1 / 3, endFactor = 1, totalIters = 5): LRScheduler {
  positive(totalIters, 'scheduler.total_iters');
  return new ClosedFormScheduler(
    'warmup',
    (t) => baseLr * (startFactor + ((endFactor - startFactor) * Math.min(t, totalIters)) / totalIters),
  );
}

export interface OneCycleOptions {
  pctStart?: number;
  divFactor?: number;
  finalDivFactor?: number;
}

/** Cosine one-cycle: max/div → max over pctStart of the run, then down to max/(div·finalDiv) (torch OneCycleLR, two phases). */
export function oneCycleLR(maxLr: number, totalSteps: number, o: OneCycleOptions = {}): LRScheduler {
  positive(totalSteps, 'scheduler.total_steps');
  const pctStart = o.pctStart ?? 0.3;
  const initial = maxLr / (o.divFactor ?? 25);
  const minLr = initial / (o.finalDivFactor ?? 1e4);
  const phases = [
    { end: pctStart * totalSteps - 1, from: initial, to: maxLr },
    { end: totalSteps - 1, from: maxLr, to: minLr },
  ];
  const anneal = (from: number, to: number, pct: number) => to + ((from - to) / 2) * (Math.cos(Math.PI * pct) + 1);
  return new ClosedFormScheduler('onecycle', (t) => {
    let start = 0;
    for (let i = 0; i < phases.length; i++) {
      const p = phases[i];
      if (t <= p.end || i === phases.length - 1) return anneal(p.from, p.to, (t - start) / (p.end - start));
      start = p.end;
    }
    return minLr;
  });
}

export interface PlateauOptions {
  factor?: number;
  patience?: number;
  threshold?: number;
  cooldown?: number;
  minLr?: number;
}

/** Multiplies the rate by `factor` after `patience` evaluations without relative improvement (torch ReduceLROnPlateau, mode 'min', threshold_mode 'rel'). */
export class ReduceOnPlateau implements LRScheduler {
  readonly name = 'plateau';
  private current: number;
  private best = Infinity;
  private bad = 0;
  private cooldownLeft = 0;
  private readonly factor: number;
  private readonly patience: number;
  private readonly threshold: number;
  private readonly cooldown: number;
  private readonly minLr: number;

  constructor(baseLr: number, o: PlateauOptions = {}) {
    this.current = baseLr;
    this.factor = o.factor ?? 0.1;
    this.patience = o.patience ?? 10;
    this.threshold = o.threshold ?? 1e-4;
    this.cooldown = o.cooldown ?? 0;
    this.minLr = o.minLr ?? 0;
    if (!(this.factor > 0 && this.factor < 1)) throw new SpecError('scheduler.factor', 'a number between 0 and 1', this.factor);
  }

  get lr(): number {
    return this.current;
  }

  step(metric?: number): void {
    if (metric === undefined) return;
    if (metric < this.best * (1 - this.threshold)) {
      this.best = metric;
      this.bad = 0;
    } else {
      this.bad++;
    }
    if (this.cooldownLeft > 0) {
      this.cooldownLeft--;
      this.bad = 0;
    }
    if (this.bad > this.patience) {
      const next = Math.max(this.current * this.factor, this.minLr);
      if (this.current - next > 1e-8) this.current = next;
      this.cooldownLeft = this.cooldown;
      this.bad = 0;
    }
  }
}

function positive(v: number, path: string): void {
  if (!(v > 0) || !Number.isFinite(v)) throw new SpecError(path, 'a positive number', v);
}
