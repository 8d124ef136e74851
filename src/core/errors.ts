/**
 * Typed errors. Every failure a user can cause (bad spec, bad file, wrong shape, numeric blow-up)
 * surfaces as a LoomError subclass carrying a one-line, human-readable message, so callers can
 * `instanceof`-check and the CLI can print it without a stack.
 */
export class LoomError extends Error {
  override name = 'LoomError';

  constructor(message?: string, options?: ErrorOptions) {
    super(message === undefined ? undefined : oneLine(message), options);
  }
}

/** Control characters (a newline inside a JSON key, say) are escaped so a message stays one line. */
export function oneLine(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f\u2028\u2029]/g, (c) => CONTROL_ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

const CONTROL_ESCAPES: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/** A value in a JSON document (spec, model, config) is missing or malformed. `path` is like `layers[3].kernel_size`. */
export class SpecError extends LoomError {
  override name = 'SpecError';
  constructor(
    readonly path: string,
    readonly expected: string,
    readonly got?: unknown,
  ) {
    super(`${path}: expected ${expected}${got === undefined ? '' : `, got ${describeValue(got)}`}`);
  }

  /** For problems that are not "expected X, got Y" (unknown field, duplicate coordinate). */
  static at(path: string, problem: string): SpecError {
    const e = new SpecError(path, problem);
    e.message = oneLine(`${path}: ${problem}`);
    return e;
  }
}

/** A binary or text file does not follow its format (wrong magic, truncated, inconsistent counts). */
export class FormatError extends LoomError {
  override name = 'FormatError';
  constructor(
    readonly source: string,
    detail: string,
  ) {
    super(`${source}: ${detail}`);
  }
}

/** A tensor's shape does not fit what a layer or function expects. */
export class ShapeError extends LoomError {
  override name = 'ShapeError';
}

/** NaN or Inf appeared where it must not (training, loading). */
export class NumericError extends LoomError {
  override name = 'NumericError';
}

/** A command-line usage mistake (unknown flag, missing argument). */
export class UsageError extends LoomError {
  override name = 'UsageError';
}

export function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return `an array of length ${v.length}`;
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? v.slice(0, 57) + '...' : v);
  if (typeof v === 'object') return 'an object';
  return String(v);
}
