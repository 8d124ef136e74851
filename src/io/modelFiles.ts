import { readFileSync } from 'node:fs';
import { FormatError } from '../core/errors.js';
import type { VolumetricNetwork } from '../grid/network.js';
import { deserializeNetwork, serializeNetwork } from '../grid/persistence.js';
import type { BuildOptions } from '../grid/spec.js';
import { writeFileAtomic } from './atomicWrite.js';

export function saveNetworkFile(net: VolumetricNetwork, path: string, extra: Record<string, unknown> = {}): void {
  writeFileAtomic(path, serializeNetwork(net, extra));
}

export function loadNetworkFile(path: string, options: BuildOptions = {}): VolumetricNetwork {
  return deserializeNetwork(readTextFile(path), options);
}

export function readTextFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new FormatError(path, code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory, expected a file' : `cannot read (${code ?? (e as Error).message})`);
  }
}
