import { dtypeName, packedByteLength, parseDType } from '../core/dtype.js';
import { decodeBase64 } from '../core/base64.js';
import { FormatError, LoomError, NumericError, SpecError } from '../core/errors.js';
import { mixSeed, Rng } from '../core/rng.js';
import { WeightStore } from '../core/weightStore.js';
import { parseActivation } from '../layers/activations.js';
import '../layers/index.js';
import { coordText, type Layer } from '../layers/layer.js';
import { findLayerKind, layerKindNames } from '../layers/registry.js';
import { CONFIG_FIELDS, STRUCTURAL_KEYS, type LayerConfig } from './fields.js';
import { VolumetricNetwork } from './network.js';

export interface BuildOptions {
  /** Seed for initializing layers that carry no weights in the document (default 1). */
  seed?: number;
  /** Accept NaN/Inf in stored weights (refused by default). */
  allowNonFinite?: boolean;
  /** Most parameters one layer may have; checked before anything is allocated (default MAX_LAYER_PARAMETERS). */
  maxParameters?: number;
  /**
   * false: layers without weights in the document keep zeros instead of their initializer's random
   * values, for a caller that writes every parameter next (a checkpoint import; seconds saved on
   * large models). Default true.
   */
  initialize?: boolean;
}

/** Default parameter cap per layer: 2^31 - 1 float32 values (8 GiB of master weights). */
export const MAX_LAYER_PARAMETERS = 2 ** 31 - 1;
/** Largest grid accepted: the cell array is allocated up front, so a header claiming 10^12 cells must fail first. */
export const MAX_GRID_CELLS = 2 ** 20;
/** Deepest nesting of container layers; deeper specs would overflow the stack in parsing and in the engine. */
export const MAX_NESTING_DEPTH = 64;

const TOP_LEVEL_KEYS = ['id', 'depth', 'rows', 'cols', 'layers_per_cell', 'layers', 'optimizer_state'];
const KNOWN_LAYER_KEYS = new Set([...STRUCTURAL_KEYS, ...CONFIG_FIELDS.map((f) => f.json)]);

/**
 * Builds a network from the Loom JSON network spec or from a saved model (the persistence format is
 * the spec plus weights). Accepts a JSON string or an already parsed value. Every problem is a
 * SpecError naming the path, e.g. `layers[3].kernel_size: expected a positive integer, got -1`.
 */
export function buildNetwork(document: unknown, options: BuildOptions = {}): VolumetricNetwork {
  const doc = typeof document === 'string' ? parseJson(document, 'network spec') : document;
  const top = asObject(doc, '(root)');
  rejectUnknownKeys(top, TOP_LEVEL_KEYS, '');
  const dims = (['depth', 'rows', 'cols', 'layers_per_cell'] as const).map((k) =>
    top[k] === undefined ? 1 : positiveInt(top[k], k),
  );
  const cells = dims[0] * dims[1] * dims[2] * dims[3];
  if (cells > MAX_GRID_CELLS) {
    throw SpecError.at('(root)', `grid depth × rows × cols × layers_per_cell = ${cells} cells, above the limit of ${MAX_GRID_CELLS}`);
  }
  const id = top.id === undefined ? 'network' : stringValue(top.id, 'id');
  const net = new VolumetricNetwork(dims[0], dims[1], dims[2], dims[3], id);
  const layers = top.layers === undefined ? [] : top.layers;
  if (!Array.isArray(layers)) throw new SpecError('layers', 'an array of layer objects', layers);

  const seed = options.seed ?? 1;
  const placedBy = new Map<number, number>();
  const ties: { layer: Layer; target: Coord; path: string }[] = [];
  layers.forEach((entry, i) => {
    const path = `layers[${i}]`;
    const layer = parseLayer(entry, path, net, seed, options);
    const tiedTo = (entry as Record<string, unknown>).tied_to;
    if (tiedTo !== undefined && tiedTo !== null) ties.push({ layer, target: parseTie(tiedTo, `${path}.tied_to`, net), path });
    const index = net.index(layer.z, layer.y, layer.x, layer.l);
    const previous = placedBy.get(index);
    if (previous !== undefined) throw SpecError.at(path, `coordinate ${coordText(layer)} is already used by layers[${previous}]`);
    placedBy.set(index, i);
    net.setLayer(layer);
  });
  for (const [index, layer] of net.entries()) {
    if (layer.remote && !net.contains(layer.remote)) {
      throw SpecError.at(`layers[${placedBy.get(index)}].target_z`, `remote link target ${coordText(layer.remote)} is outside the grid`);
    }
    checkLinkWidths(net, layer, `layers[${placedBy.get(index)}]`);
  }
  resolveTies(net, ties);
  return net;
}

type Coord = { z: number; y: number; x: number; l: number };

function parseTie(v: unknown, path: string, net: VolumetricNetwork): Coord {
  const o = asObject(v, path);
  rejectUnknownKeys(o, ['z', 'y', 'x', 'l'], `${path}.`);
  return {
    z: gridCoord(o.z, `${path}.z`, net.depth),
    y: gridCoord(o.y, `${path}.y`, net.rows),
    x: gridCoord(o.x, `${path}.x`, net.cols),
    l: gridCoord(o.l, `${path}.l`, net.layersPerCell),
  };
}

/**
 * `tied_to`: the layer has no parameter vector of its own and uses the one of the grid layer at that
 * coordinate (a tied LM head reads the embedding matrix, as Hugging Face's tie_word_embeddings).
 */
function resolveTies(net: VolumetricNetwork, ties: readonly { layer: Layer; target: Coord; path: string }[]): void {
  const tied = new Set(ties.map((t) => t.layer));
  for (const { layer, target, path } of ties) {
    const owner = net.getLayer(target.z, target.y, target.x, target.l);
    const where = `${path}.tied_to`;
    if (!owner) throw SpecError.at(where, `no layer at ${coordText(target)} to share weights with`);
    if (owner === layer) throw SpecError.at(where, 'a layer cannot be tied to itself');
    if (tied.has(owner)) throw SpecError.at(where, `${owner.kind.name} at ${coordText(owner)} is itself tied; tie to the layer that owns the weights`);
    const count = layer.kind.parameterCount(layer);
    if (!owner.weights || owner.weights.count !== count) {
      throw SpecError.at(where, `${layer.kind.name} at ${coordText(layer)} has ${count} parameters, ${owner.kind.name} at ${coordText(owner)} has ${owner.weights?.count ?? 0}`);
    }
    layer.weights = owner.weights;
  }
}

/** A remote link whose target writes a different number of values per sample than the reader takes (both fixed by their configs). */
function checkLinkWidths(net: VolumetricNetwork, layer: Layer, path: string): void {
  if (!layer.remote || layer.kind.takesSkip) return;
  const { z, y, x, l } = layer.remote;
  const source = net.getLayer(z, y, x, l);
  const produced = source?.kind.sampleWidths?.(source).output;
  const taken = layer.kind.sampleWidths?.(layer).input;
  if (source && produced !== undefined && taken !== undefined && produced !== taken) {
    throw SpecError.at(
      `${path}.target_z`,
      `remote link from ${coordText(layer)} to ${coordText(source)}: ${source.kind.name} at ${coordText(source)} writes ${produced} values per sample but ${layer.kind.name} at ${coordText(layer)} reads ${taken}`,
    );
  }
}

/**
 * Parses one layer entry. Grid layers (`nested` false) must sit inside the grid; layers nested in
 * containers keep whatever coordinates they carry, and their parameters are seeded from `nestedSeed`.
 */
function parseLayer(entry: unknown, path: string, net: VolumetricNetwork, seed: number, options: BuildOptions, nestedSeed?: number, depth = 0): Layer {
  if (depth > MAX_NESTING_DEPTH) throw SpecError.at(path, `layers nested more than ${MAX_NESTING_DEPTH} deep`);
  const o = asObject(entry, path);
  rejectUnknownKeys(o, [...KNOWN_LAYER_KEYS], `${path}.`);
  const nested = nestedSeed !== undefined;
  const coord = {
    z: gridCoord(o.z, `${path}.z`, nested ? Infinity : net.depth),
    y: gridCoord(o.y, `${path}.y`, nested ? Infinity : net.rows),
    x: gridCoord(o.x, `${path}.x`, nested ? Infinity : net.cols),
    l: gridCoord(o.l, `${path}.l`, nested ? Infinity : net.layersPerCell),
  };
  const ownSeed = nested ? nestedSeed : mixSeed(seed, net.index(coord.z, coord.y, coord.x, coord.l));
  if (o.type === undefined) throw new SpecError(`${path}.type`, `a layer type (one of ${layerKindNames().join(', ')})`);
  const typeName = stringValue(o.type, `${path}.type`);
  const kind = findLayerKind(typeName);
  if (!kind) throw new SpecError(`${path}.type`, `a supported layer type (one of ${layerKindNames().join(', ')})`, typeName);

  const config: LayerConfig = {};
  for (const field of CONFIG_FIELDS) {
    const v = o[field.json];
    if (v === undefined || v === null) continue;
    (config as Record<string, unknown>)[field.key] = fieldValue(v, field.kind, `${path}.${field.json}`);
  }

  let remote = null;
  if (o.is_remote_link !== undefined && boolValue(o.is_remote_link, `${path}.is_remote_link`)) {
    remote = {
      z: nonNegativeInt(o.target_z ?? 0, `${path}.target_z`),
      y: nonNegativeInt(o.target_y ?? 0, `${path}.target_y`),
      x: nonNegativeInt(o.target_x ?? 0, `${path}.target_x`),
      l: nonNegativeInt(o.target_l ?? 0, `${path}.target_l`),
    };
  }

  const layer: Layer = {
    ...coord,
    kind,
    activation: parseActivation(o.activation, `${path}.activation`),
    dtype: parseDType(o.dtype, `${path}.dtype`),
    config,
    weights: null,
    disabled: o.is_disabled === undefined ? false : boolValue(o.is_disabled, `${path}.is_disabled`),
    remote,
  };
  for (const field of ['sequential_layers', 'parallel_branches'] as const) {
    const list = o[field];
    if (list === undefined || list === null) continue;
    if (kind.childrenField !== field) throw SpecError.at(`${path}.${field}`, `${kind.name} has no nested layers`);
    if (!Array.isArray(list)) throw new SpecError(`${path}.${field}`, 'an array of layer objects', list);
    layer.children = list.map((child, i) => parseLayer(child, `${path}.${field}[${i}]`, net, seed, options, mixSeed(ownSeed, i), depth + 1));
  }
  for (const field of ['filter_gate']) {
    if (o[field] === undefined || o[field] === null) continue;
    if (!kind.namedChildFields?.includes(field)) throw SpecError.at(`${path}.${field}`, `${kind.name} takes no ${field}`);
    layer.namedChildren = { ...layer.namedChildren, [field]: parseLayer(o[field], `${path}.${field}`, net, seed, options, mixSeed(ownSeed, 1 << 20), depth + 1) };
  }
  kind.configure(layer, path);

  const tied = o.tied_to !== undefined && o.tied_to !== null;
  if (tied && nested) throw SpecError.at(`${path}.tied_to`, 'only grid layers can be tied');
  if (tied && o.weights !== undefined && o.weights !== '') throw SpecError.at(`${path}.weights`, 'a tied layer stores no weights of its own (tied_to names the layer that does)');
  const count = kind.parameterCount(layer);
  const maxParameters = options.maxParameters ?? MAX_LAYER_PARAMETERS;
  if (!Number.isSafeInteger(count) || count > maxParameters) {
    throw SpecError.at(path, `${kind.name} would have ${count} parameters, above the limit of ${maxParameters}`);
  }
  // A tied layer's store is its owner's, shared by resolveTies once every layer is placed.
  if (count > 0 && !tied) {
    // Weights are decoded (memory in proportion to the document) and their length checked before the
    // store is allocated, so a file claiming a huge layer with a short weights string fails cheaply.
    const loaded = o.weights !== undefined && o.weights !== '' ? decodeWeights(layer, count, o, path) : null;
    const store = new WeightStore(count);
    if (loaded) {
      loadWeights(store, layer, loaded, o, path, options);
    } else if (options.initialize !== false) {
      kind.initParameters(layer, store.master, new Rng(ownSeed));
    }
    layer.weights = store;
  } else if (o.weights !== undefined && o.weights !== '') {
    throw SpecError.at(`${path}.weights`, `${kind.name} has no parameters, but weights were given`);
  }
  return layer;
}

interface DecodedWeights {
  bytes: Uint8Array;
  native: boolean;
}

/** Decodes `weights` and checks its length against what `count` parameters need in the stored form. */
function decodeWeights(layer: Layer, count: number, o: Record<string, unknown>, path: string): DecodedWeights {
  const where = `${path}.weights`;
  const bytes = decodeBase64(stringValue(o.weights, where), where);
  const native = o.native === undefined ? false : boolValue(o.native, `${path}.native`);
  // Legacy files hold the float32 master, 4 little-endian bytes per value.
  const expected = native ? packedByteLength(layer.dtype, count) : count * 4;
  if (bytes.length !== expected) {
    throw new FormatError(where, `expected ${expected} bytes of ${native ? dtypeName(layer.dtype) : 'float32'} for ${count} parameters, got ${bytes.length}`);
  }
  return { bytes, native };
}

function loadWeights(store: WeightStore, layer: Layer, { bytes, native }: DecodedWeights, o: Record<string, unknown>, path: string, options: BuildOptions): void {
  const where = `${path}.weights`;
  const scale = o.scale === undefined ? 1 : finiteNumber(o.scale, `${path}.scale`);
  const zeroPoint = o.zero_point === undefined ? 0 : nonNegativeInt(o.zero_point, `${path}.zero_point`);
  if (native) {
    store.setLoaded(layer.dtype, bytes, { scale: Math.fround(scale), zeroPoint }, where);
  } else {
    store.master.set(new Float32Array(bytes.buffer, bytes.byteOffset, store.count));
  }
  if (!options.allowNonFinite) {
    const bad = store.master.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) {
      throw new NumericError(
        `${where}: parameter ${bad} of ${layer.kind.name} at ${coordText(layer)} is ${store.master[bad]} (${dtypeName(layer.dtype)}); pass allowNonFinite to load it anyway`,
      );
    }
  }
}

export function parseJson(text: string, source: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new FormatError(source, `invalid JSON (${(e as Error).message})`);
  }
}

function fieldValue(v: unknown, kind: string, path: string): unknown {
  switch (kind) {
    case 'count':
      return nonNegativeInt(v, path);
    case 'number':
      return finiteNumber(v, path);
    case 'bool':
      return boolValue(v, path);
    case 'string':
      return stringValue(v, path);
    case 'nameOrIndex':
      if (typeof v === 'number') return nonNegativeInt(v, path);
      return stringValue(v, path);
    case 'boolArray':
      if (!Array.isArray(v)) throw new SpecError(path, 'an array of booleans', v);
      return v.map((b, i) => boolValue(b, `${path}[${i}]`));
    case 'countArray':
      if (!Array.isArray(v)) throw new SpecError(path, 'an array of non-negative integers', v);
      return v.map((n, i) => nonNegativeInt(n, `${path}[${i}]`));
    default:
      throw new LoomError(`internal: unknown field kind ${kind}`);
  }
}

function rejectUnknownKeys(o: Record<string, unknown>, known: readonly string[], prefix: string): void {
  for (const key of Object.keys(o)) {
    if (known.includes(key)) continue;
    const near = closest(key, known);
    throw SpecError.at(`${prefix}${key}`, `unknown field${near ? ` (did you mean "${near}"?)` : ''}`);
  }
}

function closest(key: string, candidates: readonly string[]): string | undefined {
  // Edit distance is quadratic; a megabyte-long key would take seconds and deserves no suggestion.
  if (key.length > 64) return undefined;
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(key.length / 3)) + 1;
  for (const c of candidates) {
    const d = editDistance(key.toLowerCase(), c);
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length];
}

function asObject(v: unknown, path: string): Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new SpecError(path, 'an object', v);
  return v as Record<string, unknown>;
}

function gridCoord(v: unknown, path: string, size: number): number {
  const n = v === undefined ? 0 : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n >= size) {
    const expected = size === Infinity ? 'a non-negative integer' : size === 1 ? 'the integer 0 (the grid has size 1 on this axis)' : `an integer in 0..${size - 1}`;
    throw new SpecError(path, expected, n);
  }
  return n;
}

function positiveInt(v: unknown, path: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new SpecError(path, 'a positive integer', v);
  return v;
}

function nonNegativeInt(v: unknown, path: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new SpecError(path, 'a non-negative integer', v);
  return v;
}

function finiteNumber(v: unknown, path: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new SpecError(path, 'a finite number', v);
  return v;
}

function boolValue(v: unknown, path: string): boolean {
  if (typeof v !== 'boolean') throw new SpecError(path, 'true or false', v);
  return v;
}

function stringValue(v: unknown, path: string): string {
  if (typeof v !== 'string') throw new SpecError(path, 'a string', v);
  return v;
}

