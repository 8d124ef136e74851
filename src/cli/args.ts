import { parseArgs } from 'node:util';
import { UsageError } from '../core/errors.js';

export type OptionSpec = Record<string, { type: 'string' | 'boolean'; short?: string }>;

export interface ParsedArgs {
  positionals: string[];
  values: Record<string, string | boolean | undefined>;
}

/** Strict flag parsing: unknown flags and missing values become one-line UsageErrors. */
export function parseCommandArgs(command: string, argv: string[], options: OptionSpec): ParsedArgs {
  try {
    const { values, positionals } = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
    return { positionals, values: values as ParsedArgs['values'] };
  } catch (e) {
    const first = (e as Error).message.split('\n')[0].replace(/\.$/, '').replace(/\. To specify a positional argument.*$/s, '').replace(/^Unknown option/, 'unknown option');
    const hint = /ambiguous/.test(first) ? " (write a value that starts with '-' as --name=-value)" : '';
    throw new UsageError(`${command}: ${first}${hint}`);
  }
}

export function numberFlag(values: ParsedArgs['values'], name: string, fallback: number, check: (v: number) => boolean, expected: string): number {
  const raw = values[name];
  if (raw === undefined) return fallback;
  const v = Number(raw);
  if (typeof raw !== 'string' || raw.trim() === '' || !Number.isFinite(v) || !check(v)) {
    throw new UsageError(`--${name}: expected ${expected}, got ${JSON.stringify(raw)}`);
  }
  return v;
}

export function stringFlag(values: ParsedArgs['values'], name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
}

export function requireOne(positionals: string[], command: string, what: string): string {
  if (positionals.length === 0) throw new UsageError(`${command}: missing ${what} (usage: loom ${command} <${what}> ...)`);
  if (positionals.length > 1) throw new UsageError(`${command}: unexpected extra argument ${JSON.stringify(positionals[1])}`);
  return positionals[0];
}
