/** Node-side IDX access: files, gzip, and MNIST-layout directories. The format itself is in idxFormat.ts. */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { FormatError } from '../core/errors.js';
import type { Dataset } from './dataset.js';
import { readDataBytes } from './files.js';
import { idxToDataset, parseIdx, type IdxArray } from './idxFormat.js';

export { IDX_DEFAULT_MAX_BYTES, idxToDataset, isGzip, parseIdx, type IdxArray, type IdxData, type IdxOptions } from './idxFormat.js';

/** Reads a plain or gzipped IDX file; maxBytes caps the payload (and the inflated size). */
export function readIdxFile(path: string, options: { maxBytes?: number } = {}): IdxArray {
  const gunzip = (bytes: Uint8Array, maxOutputBytes: number): Uint8Array => {
    try {
      return gunzipSync(bytes, { maxOutputLength: maxOutputBytes });
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (err.code === 'ERR_BUFFER_TOO_LARGE' || e instanceof RangeError) {
        throw new FormatError(path, `gzip data inflates to more than ${maxOutputBytes} bytes, above the IDX size limit`);
      }
      throw new FormatError(path, `corrupt gzip data (${err.message})`);
    }
  };
  return parseIdx(readDataBytes(path), path, { maxBytes: options.maxBytes, gunzip });
}

/** An images file [N, ...] and its labels file [N] as one classification dataset. */
export function readIdxDataset(imagesPath: string, labelsPath: string): Dataset {
  const images = readIdxFile(imagesPath);
  const labels = readIdxFile(labelsPath);
  if (labels.dims.length === 1 && images.dims.length >= 1 && labels.dims[0] !== images.dims[0]) {
    throw new FormatError(labelsPath, `${labels.dims[0]} labels, but ${imagesPath} holds ${images.dims[0]} images`);
  }
  return idxToDataset(images, labels, imagesPath);
}

const MNIST_FILES = [
  ['train', 'images', 3],
  ['train', 'labels', 1],
  ['t10k', 'images', 3],
  ['t10k', 'labels', 1],
] as const;

/**
 * Reads train-{images,labels} and t10k-{images,labels} from `dir`, each plain or gzipped
 * (the Kaggle spelling `train-images.idx3-ubyte` is accepted too).
 */
export function loadMnistDirectory(dir: string): { train: Dataset; test: Dataset } {
  if (!existsSync(dir)) throw new FormatError(dir, 'no such directory');
  if (!statSync(dir).isDirectory()) throw new FormatError(dir, 'not a directory; expected one holding MNIST-style IDX files');
  const found: string[] = [];
  const missing: string[] = [];
  for (const [split, kind, rank] of MNIST_FILES) {
    const names = [`${split}-${kind}-idx${rank}-ubyte`, `${split}-${kind}.idx${rank}-ubyte`];
    const path = names.flatMap((n) => [n, `${n}.gz`]).map((n) => join(dir, n)).find((p) => existsSync(p));
    if (path) found.push(path);
    else missing.push(`${names[0]}(.gz)`);
  }
  if (missing.length > 0) throw new FormatError(dir, `missing MNIST-style IDX file${missing.length > 1 ? 's' : ''}: ${missing.join(', ')}`);
  return { train: readIdxDataset(found[0], found[1]), test: readIdxDataset(found[2], found[3]) };
}
