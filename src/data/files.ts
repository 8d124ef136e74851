/** Node-only file reading for the dataset readers, turning fs errors into one-line FormatErrors. */
import { readFileSync } from 'node:fs';
import { FormatError } from '../core/errors.js';

export function readDataBytes(path: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (e) {
    throw fileError(path, e);
  }
}

export function readDataText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw fileError(path, e);
  }
}

function fileError(path: string, e: unknown): FormatError {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return new FormatError(path, 'no such file');
  if (code === 'EISDIR') return new FormatError(path, 'is a directory, expected a file');
  return new FormatError(path, `cannot read (${code ?? (e as Error).message})`);
}
