import { lstatSync, realpathSync } from 'node:fs';
import { dirname, isAbsolute, relative as relativePath, resolve, sep, win32 } from 'node:path';
import { FormatError } from '../core/errors.js';

/**
 * Resolves `relative` (a file name taken from a model directory's own files, e.g. a shard named in an
 * index) inside `dir`, and refuses anything that would read outside it: absolute paths, `..` escapes,
 * NUL bytes, and symlinks (of the file or of any directory on the way) whose real path leaves `dir`.
 * Returns the absolute path, with symlinks resolved where the file exists.
 */
export function resolveInside(dir: string, relative: string): string {
  const source = `${dir}: path ${JSON.stringify(relative)}`;
  const refuse = (why: string): never => {
    throw new FormatError(source, why);
  };
  if (typeof relative !== 'string' || relative === '') refuse('expected a non-empty relative path');
  if (relative.includes('\0')) refuse('contains a NUL byte');
  // Windows-style absolute paths are refused on every platform: a model directory written on one OS is read on others.
  if (isAbsolute(relative) || win32.isAbsolute(relative)) refuse('is absolute; expected a path inside the model directory');

  const root = realDirectory(dir);
  const target = resolve(root, relative);
  if (!isWithin(root, target)) refuse('escapes the model directory');

  // The deepest existing ancestor (or the file itself) must really lie inside, so a symlinked
  // subdirectory cannot smuggle a not-yet-created file outside either.
  let existing = target;
  while (!entryExists(existing) && existing !== root) existing = dirname(existing);
  let real: string;
  try {
    real = realpathSync(existing);
  } catch (e) {
    // A dangling symlink: writing through it would create its target, wherever that is.
    return refuse(`cannot be resolved (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (!isWithin(root, real)) refuse('leads outside the model directory through a symbolic link');
  return existing === target ? real : resolve(real, relativePath(existing, target));
}

/** lstat, not exists: a dangling symlink is an entry too. */
function entryExists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

function realDirectory(dir: string): string {
  try {
    return realpathSync(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new FormatError(dir, code === 'ENOENT' ? 'no such directory' : `cannot resolve the model directory (${code ?? (e as Error).message})`);
  }
}

function isWithin(root: string, path: string): boolean {
  const r = relativePath(root, path);
  return r === '' || (!r.startsWith(`..${sep}`) && r !== '..' && !isAbsolute(r));
}
