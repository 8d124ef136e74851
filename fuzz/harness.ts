/**
 * The fuzz property: every input ends in a result or a typed LoomError, within a time limit, without
 * allocating beyond a cap and without touching Object.prototype/Array.prototype.
 */
import fc from 'fast-check';
import { LoomError } from '../src/core/errors.js';
import type { FuzzTarget } from './targets.js';

export interface FuzzLimits {
  /** Wall time one input may take. */
  timeMs: number;
  /** ArrayBuffer growth one input may cause, beyond `perInputByte` × its size. */
  memoryBytes: number;
  perInputByte: number;
}

export const DEFAULT_LIMITS: FuzzLimits = { timeMs: 2000, memoryBytes: 64 * 2 ** 20, perInputByte: 16 };

export interface FuzzOptions {
  runs: number;
  seed: number;
  /** Replays one input (fast-check's counterexample path, e.g. "1234" for run 1234). */
  path?: string;
  limits?: FuzzLimits;
  /** Called before each input with its 0-based run index (for watchdogs and progress). */
  onInput?: (index: number) => void;
}

export interface FuzzReport {
  target: string;
  parser: string;
  runs: number;
  seed: number;
  seconds: number;
  /** How inputs ended: "ok" or the LoomError subclass name. */
  outcomes: Record<string, number>;
  slowestMs: number;
  /** Preview of the slowest input, to see what costs time. */
  slowestInput?: string;
  /** Typed errors whose message spans several lines (the CLI prints messages as one line). */
  multilineMessages: number;
  failure?: string;
}

/** Thrown by the property: the input broke the contract. */
class ContractViolation extends Error {}

function prototypeFingerprint(): string {
  return [Object.prototype, Array.prototype, Function.prototype, String.prototype, Number.prototype]
    .map((p) => Object.getOwnPropertyNames(p).length)
    .join(',');
}

/** Runs one input under the contract; returns the outcome label. */
export function runOne<T>(target: FuzzTarget<T>, input: T, limits: FuzzLimits = DEFAULT_LIMITS): { label: string; ms: number; multiline: boolean } {
  // Sizing materializes the input (cached), so building a huge mutated document is not timed as parsing.
  const size = target.size(input);
  const fingerprint = prototypeFingerprint();
  const before = process.memoryUsage().arrayBuffers;
  const start = performance.now();
  let label = 'ok';
  let multiline = false;
  try {
    const result = target.run(input);
    target.check?.(result, input);
  } catch (e) {
    if (!(e instanceof LoomError)) {
      const what = e instanceof Error ? `${e.constructor.name}: ${e.message.slice(0, 300)}` : `non-error ${String(e)}`;
      throw new ContractViolation(`${target.name}: threw ${what} (not a LoomError)`);
    }
    if (typeof e.message !== 'string' || e.message.length === 0) throw new ContractViolation(`${target.name}: ${e.name} with an empty message`);
    multiline = e.message.includes('\n');
    label = e.name;
  }
  const ms = performance.now() - start;
  const grew = process.memoryUsage().arrayBuffers - before;
  if (ms > limits.timeMs) throw new ContractViolation(`${target.name}: took ${ms.toFixed(0)} ms (limit ${limits.timeMs} ms), ended as ${label}`);
  const cap = limits.memoryBytes + limits.perInputByte * size;
  if (grew > cap) throw new ContractViolation(`${target.name}: ArrayBuffers grew by ${grew} bytes (cap ${cap}), ended as ${label}`);
  if (prototypeFingerprint() !== fingerprint || ({} as Record<string, unknown>).polluted !== undefined) {
    throw new ContractViolation(`${target.name}: a built-in prototype gained properties`);
  }
  return { label, ms, multiline };
}

/** Fuzzes one target with fast-check (seeded, shrinking on failure). */
export function runTarget<T>(target: FuzzTarget<T>, options: FuzzOptions): FuzzReport {
  const limits = options.limits ?? DEFAULT_LIMITS;
  const outcomes: Record<string, number> = {};
  let slowestMs = 0;
  let slowest: { input: T } | undefined;
  let multilineMessages = 0;
  let index = 0;
  let failing = false;
  const start = performance.now();
  const details = fc.check(
    fc.property(target.input, (input) => {
      if (!failing) options.onInput?.(index++);
      try {
        const r = runOne(target, input, limits);
        if (!failing) {
          outcomes[r.label] = (outcomes[r.label] ?? 0) + 1;
          if (r.ms > slowestMs) {
            slowestMs = r.ms;
            slowest = { input };
          }
          if (r.multiline) multilineMessages++;
        }
      } catch (e) {
        failing = true;
        throw e;
      }
    }),
    { numRuns: options.runs, seed: options.seed, path: options.path, endOnFailure: false },
  );
  const report: FuzzReport = {
    target: target.name,
    parser: target.parser,
    runs: Object.values(outcomes).reduce((a, b) => a + b, 0),
    seed: options.seed,
    seconds: (performance.now() - start) / 1000,
    outcomes,
    slowestMs,
    multilineMessages,
  };
  if (slowest) report.slowestInput = safePreview(target, slowest.input).slice(0, 400);
  if (details.failed) {
    const input = details.counterexample?.[0] as T | undefined;
    const e = details.errorInstance;
    // A contract violation explains itself; anything else escaped the harness, so its stack says where.
    const error = e instanceof ContractViolation ? e.message : e instanceof Error ? `harness error: ${(e.stack ?? e.message).split('\n').slice(0, 8).join('\n    ')}` : String(e);
    report.failure =
      `${error}\n  seed ${details.seed}, path "${details.counterexamplePath}" (replay: FUZZ_TARGETS=${target.name} FUZZ_SEED=${details.seed} FUZZ_PATH=${details.counterexamplePath} FUZZ_RUNS=1)` +
      (input === undefined ? '' : `\n  input: ${safePreview(target, input)}`);
  }
  return report;
}

function safePreview<T>(target: FuzzTarget<T>, input: T): string {
  try {
    return target.preview(input);
  } catch (e) {
    return `(no preview: ${(e as Error).message})`;
  }
}

/** A stable per-target seed, so the CI slice of each parser is reproducible on its own. */
export function seedFor(base: number, name: string): number {
  let h = base | 0;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x9e3779b1);
  return h | 0;
}
