/** One entry point for the CLI: picks the reader from what the path is. Node-only. */
import { existsSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { FormatError } from '../core/errors.js';
import { readCsv } from './csv.js';
import type { Dataset } from './dataset.js';
import { loadMnistDirectory, readIdxDataset } from './idx.js';
import { readJsonDataset } from './jsonData.js';

const SUPPORTED =
  'a directory of MNIST-style IDX files, a .csv file, a .json file, or an IDX images file (.idx, *-ubyte, .gz) next to its labels file';

export function loadDataset(path: string): { train: Dataset; test?: Dataset } {
  if (!existsSync(path)) throw new FormatError(path, 'no such file or directory');
  if (statSync(path).isDirectory()) return loadMnistDirectory(path);

  const name = basename(path).toLowerCase();
  const inner = name.endsWith('.gz') ? name.slice(0, -3) : name;
  if (name.endsWith('.csv')) return { train: readCsv(path) };
  if (name.endsWith('.json')) return { train: readJsonDataset(path) };
  if (inner.endsWith('.csv') || inner.endsWith('.json')) {
    throw new FormatError(path, 'compressed CSV/JSON is not supported; decompress it first');
  }
  if (name.endsWith('.gz') || inner.endsWith('.idx') || inner.includes('ubyte')) {
    return { train: readIdxDataset(path, findLabelsFile(path)) };
  }
  throw new FormatError(path, `unknown kind of data file; supported: ${SUPPORTED}`);
}

/** The labels file next to an images file: "images" → "labels" (and idx3 → idx1), plain or gzipped. */
function findLabelsFile(imagesPath: string): string {
  const base = basename(imagesPath);
  const at = base.toLowerCase().lastIndexOf('images');
  if (at < 0) {
    const what = base.toLowerCase().includes('labels') ? 'this is a labels file' : 'cannot tell which labels file goes with it';
    throw new FormatError(imagesPath, `${what}; pass an IDX images file whose name contains "images" (its labels file beside it), or the directory`);
  }
  const swapped = base.slice(0, at) + 'labels' + base.slice(at + 'images'.length);
  const stem = swapped.replace(/\.gz$/i, '');
  const candidates = [...new Set([stem, stem.replace(/idx3/i, 'idx1')])].flatMap((s) => [s, `${s}.gz`]);
  const dir = dirname(imagesPath);
  for (const c of candidates) if (existsSync(join(dir, c))) return join(dir, c);
  throw new FormatError(imagesPath, `no labels file beside it; looked for ${candidates.join(', ')} in ${dir}`);
}
