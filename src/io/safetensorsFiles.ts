import { closeSync, fstatSync, mkdirSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { FormatError, LoomError, describeValue } from '../core/errors.js';
import type { Tensor } from '../core/tensor.js';
import type { VolumetricNetwork } from '../grid/network.js';
import { writeFileAtomic } from './atomicWrite.js';
import { resolveInside } from './safePath.js';
import {
  SafetensorsReader,
  encodeSafetensors,
  loadNetworkWeights,
  networkToSafetensors,
  parseSafetensorsHeader,
  readHeaderLength,
  type LoadWeightsOptions,
  type NetworkSafetensorsOptions,
  type SafetensorsReadOptions,
  type TensorData,
  type TensorInfo,
  type TensorSource,
  type WeightLoadReport,
} from './safetensors.js';
import { loadUniversal, type UniversalLoadOptions, type UniversalLoadResult } from './universalLoader.js';

/** The index file of a sharded checkpoint, as transformers names it. */
export const SAFETENSORS_INDEX = 'model.safetensors.index.json';
/** The single-file checkpoint name transformers uses. */
export const SAFETENSORS_SINGLE = 'model.safetensors';

function fileError(path: string, e: unknown): FormatError {
  const code = (e as NodeJS.ErrnoException).code;
  return new FormatError(path, code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory, expected a file' : `cannot read (${code ?? (e as Error).message})`);
}

/** Reads exactly `length` bytes at `position` (readSync may return less per call). */
function readExactly(fd: number, length: number, position: number, path: string): Uint8Array {
  const out = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, out, done, length - done, position + done);
    if (n === 0) throw new FormatError(path, `file ended early: expected ${length} bytes at offset ${position}, got ${done} (was it truncated while reading?)`);
    done += n;
  }
  return out;
}

/**
 * Opens one safetensors file lazily: only the header is read now (its length checked against the
 * cap and the file size before anything is allocated); each tensor's bytes are read on request.
 */
export function openSafetensorsFile(path: string, options: SafetensorsReadOptions = {}): SafetensorsReader {
  const source = options.source ?? path;
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw fileError(path, e);
  }
  let header;
  try {
    const size = fstatSync(fd).size;
    if (size < 8) throw new FormatError(source, `${size} bytes is too short for safetensors (a file starts with an 8-byte header length)`);
    const n = readHeaderLength(readExactly(fd, 8, 0, source), size, { ...options, source });
    header = parseSafetensorsHeader(readExactly(fd, n, 8, source), size - 8 - n, { ...options, source });
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  closeSync(fd);
  const dataStart = header.dataStart;
  return new SafetensorsReader(header, source, (begin, end) => {
    if (end === begin) return new Uint8Array(0);
    let f: number;
    try {
      f = openSync(path, 'r');
    } catch (e) {
      throw fileError(path, e);
    }
    try {
      return readExactly(f, end - begin, dataStart + begin, source);
    } finally {
      closeSync(f);
    }
  });
}

/** A sharded checkpoint: `model.safetensors.index.json` ({"metadata": {...}, "weight_map": {tensor: shard file}}) and its shards. */
export class ShardedSafetensors implements TensorSource {
  readonly tensors: readonly TensorInfo[];
  readonly metadata: Readonly<Record<string, string>>;
  /** Shard readers by the file name the index uses. */
  readonly shards: ReadonlyMap<string, SafetensorsReader>;
  private readonly where: Map<string, SafetensorsReader>;
  private readonly byName: Map<string, TensorInfo>;

  constructor(
    readonly source: string,
    weightMap: ReadonlyMap<string, string>,
    shards: ReadonlyMap<string, SafetensorsReader>,
  ) {
    this.shards = shards;
    this.where = new Map();
    this.byName = new Map();
    const metadata: Record<string, string> = {};
    for (const reader of shards.values()) for (const [k, v] of Object.entries(reader.metadata)) if (!(k in metadata)) metadata[k] = v;
    this.metadata = metadata;
    const tensors: TensorInfo[] = [];
    for (const [name, file] of weightMap) {
      const reader = shards.get(file)!;
      if (!reader.has(name)) throw new FormatError(source, `weight_map puts ${describeValue(name)} in ${describeValue(file)}, which has no such tensor`);
      const info: TensorInfo = { ...reader.info(name), shard: file };
      tensors.push(info);
      this.where.set(name, reader);
      this.byName.set(name, info);
    }
    this.tensors = tensors;
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  info(name: string): TensorInfo {
    const t = this.byName.get(name);
    if (!t) throw new FormatError(this.source, `no tensor named ${JSON.stringify(name)} in the weight_map`);
    return t;
  }

  raw(name: string): Uint8Array {
    this.info(name);
    return this.where.get(name)!.raw(name);
  }

  float32(name: string): Float32Array {
    this.info(name);
    return this.where.get(name)!.float32(name);
  }

  tensor(name: string): Tensor {
    this.info(name);
    return this.where.get(name)!.tensor(name);
  }
}

/**
 * Opens a sharded checkpoint from its index file. Shard names must stay inside the index's folder
 * (no absolute paths, `..` or symlinks out); every tensor in the weight_map must be in its shard.
 * Tensors a shard holds but the weight_map does not list are ignored, as transformers does.
 */
export function openShardedSafetensors(indexPath: string, options: SafetensorsReadOptions = {}): ShardedSafetensors {
  let text: string;
  try {
    text = readFileSync(indexPath, 'utf8');
  } catch (e) {
    throw fileError(indexPath, e);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new FormatError(indexPath, `invalid JSON (${(e as Error).message})`);
  }
  const map = (doc as { weight_map?: unknown } | null)?.weight_map;
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc) || map === null || typeof map !== 'object' || Array.isArray(map)) {
    throw new FormatError(indexPath, 'expected an object with "weight_map": {tensor name: shard file}');
  }
  const dir = dirname(indexPath);
  const weightMap = new Map<string, string>();
  const shards = new Map<string, SafetensorsReader>();
  for (const [name, file] of Object.entries(map as Record<string, unknown>)) {
    if (typeof file !== 'string') throw new FormatError(indexPath, `weight_map[${describeValue(name)}] must be a file name, got ${describeValue(file)}`);
    weightMap.set(name, file);
    if (!shards.has(file)) {
      const path = resolveInside(dir, file);
      shards.set(file, openSafetensorsFile(path, { ...options, source: join(dir, file) }));
    }
  }
  return new ShardedSafetensors(indexPath, weightMap, shards);
}

/**
 * Opens whatever `path` names: a `.safetensors` file, an index `.json`, or a folder holding
 * model.safetensors.index.json or model.safetensors.
 */
export function openSafetensors(path: string, options: SafetensorsReadOptions = {}): TensorSource {
  let isDir = false;
  try {
    isDir = statSync(path).isDirectory();
  } catch (e) {
    throw fileError(path, e);
  }
  if (isDir) {
    for (const [name, open] of [[SAFETENSORS_INDEX, openShardedSafetensors], [SAFETENSORS_SINGLE, openSafetensorsFile]] as const) {
      const candidate = join(path, name);
      try {
        statSync(candidate);
      } catch {
        continue;
      }
      return open(candidate, options);
    }
    throw new FormatError(path, `no ${SAFETENSORS_INDEX} or ${SAFETENSORS_SINGLE} in this folder`);
  }
  return path.endsWith('.json') ? openShardedSafetensors(path, options) : openSafetensorsFile(path, options);
}

/** Writes a safetensors file atomically (readers see the old file or the new one, never a torn one). */
export function writeSafetensorsFile(
  path: string,
  tensors: Readonly<Record<string, TensorData>> | ReadonlyMap<string, TensorData>,
  metadata?: Readonly<Record<string, string>>,
): void {
  writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}

export interface ShardOptions {
  /** Largest data size of one shard in bytes; a bigger tensor gets a shard of its own (default 5 GB, as transformers). */
  maxShardBytes?: number;
  /** File name stem: `<stem>-00001-of-00003.safetensors` and `<stem>.safetensors.index.json` (default "model"). */
  stem?: string;
  metadata?: Readonly<Record<string, string>>;
}

/**
 * Writes tensors as a sharded checkpoint in `dir` (created if needed): shards filled in the given
 * tensor order up to maxShardBytes, then the index, each file atomically. Returns the index path.
 */
export function writeShardedSafetensors(
  dir: string,
  tensors: Readonly<Record<string, TensorData>> | ReadonlyMap<string, TensorData>,
  options: ShardOptions = {},
): string {
  const entries = tensors instanceof Map ? [...tensors] : Object.entries(tensors);
  const max = options.maxShardBytes ?? 5_000_000_000;
  if (!(max > 0)) throw new LoomError(`maxShardBytes must be positive, got ${max}`);
  const stem = options.stem ?? 'model';
  if (stem === '' || basename(stem) !== stem) throw new LoomError(`stem must be a plain file name, got ${JSON.stringify(stem)}`);
  const groups: [string, TensorData][][] = [];
  let size = 0;
  for (const entry of entries) {
    const n = entry[1].data.length;
    if (groups.length === 0 || (size + n > max && size > 0)) {
      groups.push([]);
      size = 0;
    }
    groups[groups.length - 1].push(entry);
    size += n;
  }
  if (groups.length === 0) groups.push([]);
  mkdirSync(dir, { recursive: true });
  const pad = (i: number): string => String(i).padStart(5, '0');
  const weightMap = new Map<string, string>();
  let total = 0;
  groups.forEach((group, i) => {
    const file = `${stem}-${pad(i + 1)}-of-${pad(groups.length)}.safetensors`;
    writeSafetensorsFile(join(dir, file), new Map(group), options.metadata);
    for (const [name, t] of group) {
      weightMap.set(name, file);
      total += t.data.length;
    }
  });
  // Written by hand, as json.dumps(indent=2, sort_keys=True) does: a JS object would reorder integer-like names.
  const lines = [...weightMap.keys()].sort().map((k) => `    ${JSON.stringify(k)}: ${JSON.stringify(weightMap.get(k))}`);
  const map = lines.length ? `{\n${lines.join(',\n')}\n  }` : '{}';
  const indexPath = join(dir, `${stem}.safetensors.index.json`);
  writeFileAtomic(indexPath, `{\n  "metadata": {\n    "total_size": ${total}\n  },\n  "weight_map": ${map}\n}\n`);
  return indexPath;
}

/** Saves a network's weights natively packed as safetensors (see networkToSafetensors), atomically. */
export function saveNetworkSafetensors(net: VolumetricNetwork, path: string, options: NetworkSafetensorsOptions = {}): void {
  writeFileAtomic(path, networkToSafetensors(net, options));
}

/** Loads weights from a safetensors file, index or model folder into a network built from the same spec. */
export function loadNetworkSafetensors(
  net: VolumetricNetwork,
  path: string,
  options: LoadWeightsOptions & SafetensorsReadOptions = {},
): WeightLoadReport {
  return loadNetworkWeights(net, openSafetensors(path, options), options);
}

/** Detects the architecture of a safetensors file, index or model folder and mounts a network (see loadUniversal). */
export function loadUniversalFile(path: string, options: UniversalLoadOptions & SafetensorsReadOptions = {}): UniversalLoadResult {
  return loadUniversal(openSafetensors(path, options), options);
}
