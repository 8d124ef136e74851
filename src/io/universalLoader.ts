import { NumericError, SpecError, FormatError } from '../core/errors.js';
import type { VolumetricNetwork } from '../grid/network.js';
import { buildNetwork } from '../grid/spec.js';
import { activationName, parseActivation } from '../layers/activations.js';
import '../layers/index.js';
import {
  LOOM_FORMAT,
  LOOM_META_NETWORK,
  loadNetworkWeights,
  type SafetensorsDType,
  type TensorInfo,
  type TensorSource,
  type WeightLoadReport,
} from './safetensors.js';

/** A tensor the loader could not place, and why. */
export interface UnplacedTensor {
  name: string;
  reason: string;
}

/** A Linear-style weight [out, in] (+ bias [out]) → Dense with use_bias. */
export interface DetectedDense {
  type: 'Dense';
  /** The name without `.weight`, e.g. "0" or "fc1". */
  prefix: string;
  weight: string;
  bias?: string;
  inputSize: number;
  outputSize: number;
  dtype: SafetensorsDType;
}

/** A Conv weight [filters, in_channels, k] (CNN1) or [filters, in_channels, k, k] (CNN2), + bias [filters]. */
export interface DetectedConv {
  type: 'CNN1' | 'CNN2';
  prefix: string;
  weight: string;
  bias?: string;
  inputChannels: number;
  filters: number;
  kernelSize: number;
  dtype: SafetensorsDType;
}

export type DetectedLayer = DetectedDense | DetectedConv;

/** What the tensors of an HF Llama-style decoder say about it (config.json holds the rest). */
export interface LlamaDims {
  /** Prefix of the decoder's tensors, e.g. "model.". */
  prefix: string;
  /** Decoder blocks: one more than the highest `layers.N` index. */
  blocks: number;
  hiddenSize: number;
  intermediateSize: number;
  vocabSize: number;
  /** Rows of q_proj: num_heads × head_dim. */
  queryDim: number;
  /** Rows of k_proj / v_proj: num_kv_heads × head_dim. */
  kvDim: number;
  /** From q_norm (Qwen3-style checkpoints); with it, the head counts follow. */
  headDim?: number;
  numHeads?: number;
  numKVHeads?: number;
  /** No lm_head.weight: the output projection reuses the embeddings. */
  tiedEmbeddings: boolean;
  hasFinalNorm: boolean;
  /** q/k/v projections carry biases (Qwen2-style). */
  attentionBias: boolean;
  qkNorm: boolean;
  /** Dtype of the embeddings. */
  dtype: SafetensorsDType;
  /** Block tensors that should exist and do not. */
  missing: string[];
}

interface DetectionBase {
  unplaced: UnplacedTensor[];
  notes: string[];
}

/** What detectArchitecture found. */
export type Detection =
  | (DetectionBase & { architecture: 'loom'; network: Record<string, unknown> })
  | (DetectionBase & { architecture: 'loom-flat'; layers: number })
  | (DetectionBase & { architecture: 'llama-decoder'; llama: LlamaDims })
  | (DetectionBase & { architecture: 'mlp' | 'conv'; layers: DetectedLayer[] })
  | (DetectionBase & { architecture: 'unknown' });

/** What detection reads: a header, a reader or a sharded checkpoint. */
export interface HeaderLike {
  readonly tensors: readonly TensorInfo[];
  readonly metadata?: Readonly<Record<string, string>>;
  readonly source?: string;
}

/**
 * Detects the architecture from tensor names and shapes alone: a Loom-written file (its spec is in
 * `__metadata__`), the original engine's flat `layer_N.weights` export, an HF Llama-style decoder,
 * or a chain of Linear/Conv layers (`<prefix>.weight`, optional `<prefix>.bias`).
 */
export function detectArchitecture(header: HeaderLike): Detection {
  const metadata = header.metadata ?? {};
  const tensors = header.tensors;
  if (metadata.format === LOOM_FORMAT && metadata[LOOM_META_NETWORK] !== undefined) {
    let network: unknown;
    try {
      network = JSON.parse(metadata[LOOM_META_NETWORK]);
    } catch (e) {
      throw new FormatError(header.source ?? 'safetensors', `__metadata__.${LOOM_META_NETWORK} is not valid JSON (${(e as Error).message})`);
    }
    if (network === null || typeof network !== 'object' || Array.isArray(network)) {
      throw new FormatError(header.source ?? 'safetensors', `__metadata__.${LOOM_META_NETWORK} must be a network spec object`);
    }
    return { architecture: 'loom', network: network as Record<string, unknown>, unplaced: [], notes: [] };
  }
  if (metadata.format === LOOM_FORMAT) {
    return {
      architecture: 'unknown',
      unplaced: [],
      notes: ['a Loom file saved without its network spec: build the network from its spec and use loadNetworkWeights'],
    };
  }
  if (tensors.length > 0 && tensors.every((t) => /^layer_\d+\.weights$/.test(t.name))) {
    return {
      architecture: 'loom-flat',
      layers: tensors.length,
      unplaced: [],
      notes: [
        "the original Loom's SaveSafetensors layout: each tensor is one layer's whole parameter vector (flat index N), " +
          'so the file does not describe the layers; build the network from its spec and use loadNetworkWeights',
      ],
    };
  }
  const embed = tensors.find((t) => t.name.endsWith('embed_tokens.weight'));
  if (embed) {
    const prefix = embed.name.slice(0, -'embed_tokens.weight'.length);
    if (tensors.some((t) => t.name.startsWith(`${prefix}layers.`))) return detectLlama(tensors, embed, prefix);
  }
  return detectChain(tensors);
}

// ---- Llama-style decoders ----

const BLOCK_PARTS = [
  'input_layernorm.weight',
  'self_attn.q_proj.weight',
  'self_attn.k_proj.weight',
  'self_attn.v_proj.weight',
  'self_attn.o_proj.weight',
  'post_attention_layernorm.weight',
  'mlp.gate_proj.weight',
  'mlp.up_proj.weight',
  'mlp.down_proj.weight',
] as const;

/** Where a Llama-family checkpoint goes instead: its config.json holds what the tensors do not say. */
export const LLAMA_IMPORT_NOTE =
  'a Llama-style decoder (Llama, Qwen2, SmolLM) is not mounted from its tensors alone: import its model folder, ' +
  'which holds config.json, with importLlama(dir) from "loom/node" (or buildLlama(parseLlamaConfig(config), tensors)), ' +
  'or on the command line loom convert|generate|chat <model-dir>';

function detectLlama(tensors: readonly TensorInfo[], embed: TensorInfo, prefix: string): Detection {
  const unplaced: UnplacedTensor[] = [];
  const notes: string[] = [];
  const byName = new Map(tensors.map((t) => [t.name, t]));
  const blockRe = new RegExp(`^${escapeRegExp(prefix)}layers\\.(\\d+)\\.(.+)$`);
  let blocks = 0;
  for (const t of tensors) {
    const m = blockRe.exec(t.name);
    if (m) blocks = Math.max(blocks, Number(m[1]) + 1);
  }
  const part = (i: number, p: string): TensorInfo | undefined => byName.get(`${prefix}layers.${i}.${p}`);
  /** The most common size (first seen on ties) of axis `axis` of these block tensors: one odd block cannot set the dims. */
  const common = (...uses: [string, number][]): number => {
    const counts = new Map<number, number>();
    for (let i = 0; i < blocks; i++) {
      for (const [p, axis] of uses) {
        const t = part(i, p);
        if (t && t.shape.length === 2) counts.set(t.shape[axis], (counts.get(t.shape[axis]) ?? 0) + 1);
      }
    }
    let best = 0;
    let bestCount = 0;
    for (const [size, n] of counts) if (n > bestCount) [best, bestCount] = [size, n];
    return best;
  };
  const [vocab, hidden] = embed.shape.length === 2 ? embed.shape : [0, 0];
  const queryDim = common(['self_attn.q_proj.weight', 0], ['self_attn.o_proj.weight', 1]);
  const kvDim = common(['self_attn.k_proj.weight', 0], ['self_attn.v_proj.weight', 0]);
  const inter = common(['mlp.gate_proj.weight', 0], ['mlp.up_proj.weight', 0], ['mlp.down_proj.weight', 1]);
  const first = (p: string): TensorInfo | undefined => {
    for (let i = 0; i < blocks; i++) {
      const t = part(i, p);
      if (t) return t;
    }
    return undefined;
  };
  const qNorm = first('self_attn.q_norm.weight');
  const headDim = qNorm?.shape.length === 1 ? qNorm.shape[0] : undefined;
  const expected: Record<string, readonly number[]> = {
    'input_layernorm.weight': [hidden],
    'self_attn.q_proj.weight': [queryDim, hidden],
    'self_attn.k_proj.weight': [kvDim, hidden],
    'self_attn.v_proj.weight': [kvDim, hidden],
    'self_attn.o_proj.weight': [hidden, queryDim],
    'post_attention_layernorm.weight': [hidden],
    'mlp.gate_proj.weight': [inter, hidden],
    'mlp.up_proj.weight': [inter, hidden],
    'mlp.down_proj.weight': [hidden, inter],
    'self_attn.q_proj.bias': [queryDim],
    'self_attn.k_proj.bias': [kvDim],
    'self_attn.v_proj.bias': [kvDim],
    'self_attn.o_proj.bias': [hidden],
    'self_attn.q_norm.weight': [headDim ?? 0],
    'self_attn.k_norm.weight': [headDim ?? 0],
  };
  const globals: Record<string, readonly number[]> = {
    [embed.name]: [vocab, hidden],
    [`${prefix}norm.weight`]: [hidden],
    'lm_head.weight': [vocab, hidden],
  };
  if (embed.shape.length !== 2) unplaced.push({ name: embed.name, reason: `shape [${embed.shape.join(', ')}], expected [vocab_size, hidden_size]` });

  const missing: string[] = [];
  for (let i = 0; i < blocks; i++) for (const p of BLOCK_PARTS) if (!part(i, p)) missing.push(`${prefix}layers.${i}.${p}`);
  let attentionBias = false;
  let qkNorm = false;
  for (const t of tensors) {
    const m = blockRe.exec(t.name);
    const want = m ? expected[m[2]] : globals[t.name];
    if (!want) {
      const reason = m && m[2].endsWith('rotary_emb.inv_freq')
        ? 'rotary frequencies are recomputed from config.json'
        : 'not a tensor of a Llama-style decoder';
      unplaced.push({ name: t.name, reason });
      continue;
    }
    if (!sameShape(t.shape, want)) {
      unplaced.push({ name: t.name, reason: `shape [${t.shape.join(', ')}], expected [${want.join(', ')}]` });
      continue;
    }
    if (m && m[2].endsWith('_proj.bias')) attentionBias = true;
    if (m && m[2].endsWith('_norm.weight') && m[2].startsWith('self_attn.')) qkNorm = true;
  }
  const llama: LlamaDims = {
    prefix, blocks, hiddenSize: hidden, intermediateSize: inter, vocabSize: vocab, queryDim, kvDim,
    tiedEmbeddings: !byName.has('lm_head.weight'),
    hasFinalNorm: byName.has(`${prefix}norm.weight`),
    attentionBias, qkNorm, dtype: embed.dtype, missing,
  };
  if (headDim && queryDim % headDim === 0 && kvDim % headDim === 0) {
    llama.headDim = headDim;
    llama.numHeads = queryDim / headDim;
    llama.numKVHeads = kvDim / headDim;
  } else {
    notes.push(`the head counts need config.json: q_proj has num_heads × head_dim = ${queryDim} rows, k_proj num_kv_heads × head_dim = ${kvDim}`);
  }
  notes.push(LLAMA_IMPORT_NOTE);
  return { architecture: 'llama-decoder', llama, unplaced, notes };
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

// ---- Linear / Conv chains ----

/** Name order with numeric segments compared as numbers ("2" < "10"). */
export function compareNatural(a: string, b: string): number {
  const x = a.split('.');
  const y = b.split('.');
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] === y[i]) continue;
    const nx = /^\d+$/.test(x[i]) ? Number(x[i]) : NaN;
    const ny = /^\d+$/.test(y[i]) ? Number(y[i]) : NaN;
    if (!Number.isNaN(nx) && !Number.isNaN(ny)) return nx - ny;
    return x[i] < y[i] ? -1 : 1;
  }
  return x.length - y.length;
}

function detectChain(tensors: readonly TensorInfo[]): Detection {
  const unplaced: UnplacedTensor[] = [];
  const notes: string[] = [];
  const groups = new Map<string, { weight?: TensorInfo; bias?: TensorInfo }>();
  for (const t of tensors) {
    const m = /^(?:(.*)\.)?(weight|bias)$/.exec(t.name);
    if (!m) {
      unplaced.push({ name: t.name, reason: 'not a weight or bias of a Linear or Conv layer' });
      continue;
    }
    const g = groups.get(m[1] ?? '') ?? {};
    g[m[2] as 'weight' | 'bias'] = t;
    groups.set(m[1] ?? '', g);
  }

  const convs: DetectedConv[] = [];
  const denses: DetectedDense[] = [];
  for (const prefix of [...groups.keys()].sort(compareNatural)) {
    const { weight: w, bias: b } = groups.get(prefix)!;
    const refuse = (reason: string): void => {
      for (const t of [w, b]) if (t) unplaced.push({ name: t.name, reason });
    };
    if (!w) {
      refuse('a bias without a weight');
      continue;
    }
    const s = w.shape;
    const outSize = s[0];
    if (b && !(b.shape.length === 1 && b.shape[0] === outSize)) {
      refuse(`bias shape [${b.shape.join(', ')}] does not fit weight shape [${s.join(', ')}] (expected [${outSize}])`);
      continue;
    }
    if (s.some((d) => d === 0)) {
      refuse(`weight shape [${s.join(', ')}] is empty`);
      continue;
    }
    const common = { prefix, weight: w.name, ...(b ? { bias: b.name } : {}), dtype: w.dtype };
    if (s.length === 2) denses.push({ type: 'Dense', ...common, inputSize: s[1], outputSize: s[0] });
    else if (s.length === 3) convs.push({ type: 'CNN1', ...common, filters: s[0], inputChannels: s[1], kernelSize: s[2] });
    else if (s.length === 4 && s[2] === s[3]) convs.push({ type: 'CNN2', ...common, filters: s[0], inputChannels: s[1], kernelSize: s[2] });
    else if (s.length === 4) refuse(`non-square kernel ${s[2]}×${s[3]} (CNN2 kernels are square)`);
    else refuse(`a ${s.length}-D weight${s.length === 1 ? ' (a normalization scale?)' : s.length === 5 ? ' (a 3-D conv?)' : ''} has no Dense or Conv mapping`);
  }

  // Convolutions come first (a conv stack feeding a classifier), whatever the names sort as.
  const convChain = chain(convs, (l) => (l as DetectedConv).inputChannels, (l) => (l as DetectedConv).filters, 'channels', unplaced, notes);
  const kinds = new Set(convChain.map((l) => l.type));
  if (kinds.size > 1) {
    const keep = convChain[0].type;
    for (const l of convChain.filter((c) => c.type !== keep)) refuseLayer(l, `a ${l.type} layer in a chain of ${keep} layers`, unplaced);
  }
  const convsKept = convChain.filter((l) => l.type === convChain[0]?.type);
  const denseChain = chain(denses, (l) => (l as DetectedDense).inputSize, (l) => (l as DetectedDense).outputSize, 'features', unplaced, notes);
  const layers: DetectedLayer[] = [...convsKept, ...denseChain];
  if (layers.length === 0) return { architecture: 'unknown', unplaced, notes: [...notes, 'no Linear or Conv weights found'] };
  return { architecture: convsKept.length > 0 ? 'conv' : 'mlp', layers, unplaced, notes };
}

function refuseLayer(l: DetectedLayer, reason: string, unplaced: UnplacedTensor[]): void {
  unplaced.push({ name: l.weight, reason });
  if (l.bias) unplaced.push({ name: l.bias, reason });
}

/**
 * Orders layers so each one's input fits the previous one's output: the names' natural order when it
 * does; otherwise the chain found by matching sizes, when that uses every layer; otherwise the
 * natural order up to the first misfit, the rest reported.
 */
function chain<T extends DetectedLayer>(
  items: T[],
  inOf: (l: T) => number,
  outOf: (l: T) => number,
  unit: string,
  unplaced: UnplacedTensor[],
  notes: string[],
): T[] {
  const fits = (list: T[]): number => {
    for (let i = 1; i < list.length; i++) if (inOf(list[i]) !== outOf(list[i - 1])) return i;
    return list.length;
  };
  if (fits(items) === items.length) return items;
  const byInput = (size: number, left: T[]): T | undefined => left.find((l) => inOf(l) === size);
  const starts = items.filter((l) => !items.some((o) => o !== l && outOf(o) === inOf(l)));
  if (starts.length === 1) {
    const left = items.filter((l) => l !== starts[0]);
    const ordered = [starts[0]];
    for (let next = byInput(outOf(starts[0]), left); next; next = byInput(outOf(next), left)) {
      ordered.push(next);
      left.splice(left.indexOf(next), 1);
    }
    if (ordered.length === items.length) {
      notes.push(`the names do not order the ${ordered[0].type} layers into a chain; ordered by matching ${unit}: ${ordered.map((l) => l.prefix).join(' → ')}`);
      return ordered;
    }
  }
  const cut = fits(items);
  for (const l of items.slice(cut)) {
    refuseLayer(l, `does not continue the chain: ${inOf(l)} input ${unit} after ${items[cut - 1].prefix} with ${outOf(items[cut - 1])} output ${unit}`, unplaced);
  }
  return items.slice(0, cut);
}

// ---- mounting ----

export interface UniversalLoadOptions {
  /**
   * Activations, which safetensors does not store: one name for every layer but the last (which stays
   * Linear), or one per placed layer. Default: all Linear.
   */
  activations?: string | readonly string[];
  /** Input height (CNN1: length) of a conv stack; inferred from the first Dense layer when not given (square for CNN2). */
  inputHeight?: number;
  /** Input width of a CNN2 stack (default: inputHeight). */
  inputWidth?: number;
  /** Stride of every conv layer (default 1). */
  stride?: number;
  /** Zero padding of every conv layer (default 0). */
  padding?: number;
  /** Seed for initializing what the file does not fill (default 1). */
  seed?: number;
  /** Network id (default "universal"). */
  id?: string;
  allowNonFinite?: boolean;
}

export interface UniversalLoadResult {
  detection: Detection;
  /** Absent when nothing could be mounted (see notes). */
  network?: VolumetricNetwork;
  /** The network spec that was built (no weights). */
  spec?: Record<string, unknown>;
  /** Tensors left out, with reasons: detection's plus those mounting had to drop. */
  unplaced: UnplacedTensor[];
  notes: string[];
  /** For Loom files: what loadNetworkWeights reported. */
  weights?: WeightLoadReport;
}

/**
 * Detects the architecture of a safetensors source and mounts a network with its weights: Loom
 * files from their embedded spec, Linear/Conv chains as Dense/CNN1/CNN2 layers (one cell, one layer
 * per slot, as the original's MountGeometrically). Llama-family decoders are only detected: they are
 * imported with importLlama (see LLAMA_IMPORT_NOTE), which reads their config.json.
 */
export function loadUniversal(source: TensorSource, options: UniversalLoadOptions = {}): UniversalLoadResult {
  const detection = detectArchitecture(source);
  const unplaced = [...detection.unplaced];
  const notes = [...detection.notes];
  const result: UniversalLoadResult = { detection, unplaced, notes };
  if (detection.architecture === 'loom') {
    const network = buildNetwork(detection.network, { seed: options.seed ?? 1 });
    const report = loadNetworkWeights(network, source, { strict: true, allowNonFinite: options.allowNonFinite });
    for (const name of report.unused) unplaced.push({ name, reason: 'no layer of the embedded network spec uses it' });
    return { ...result, network, spec: detection.network, weights: report };
  }
  if (detection.architecture !== 'mlp' && detection.architecture !== 'conv') return result;

  const placed = placeLayers(detection.layers, options, unplaced, notes);
  if (placed.length === 0) return result;
  const acts = activationsFor(placed.length, options.activations);
  if (options.activations === undefined) notes.push('safetensors stores no activations: every layer is Linear (pass activations to set them)');
  const spec = {
    id: options.id ?? 'universal',
    depth: 1, rows: 1, cols: 1,
    layers_per_cell: placed.length,
    layers: placed.map((p, l) => ({ z: 0, y: 0, x: 0, l, activation: acts[l], dtype: layerDType(source, p.layer), ...p.fields })),
  };
  const network = buildNetwork(spec, { seed: options.seed ?? 1 });
  placed.forEach((p, l) => {
    const layer = network.getLayer(0, 0, 0, l)!;
    const store = layer.weights!;
    const w = source.float32(p.layer.weight);
    store.master.set(w);
    if (p.layer.bias) store.master.set(source.float32(p.layer.bias), w.length);
    store.markMasterChanged();
    if (!options.allowNonFinite) {
      const bad = store.master.findIndex((v) => !Number.isFinite(v));
      if (bad >= 0) throw new NumericError(`${source.source}: ${p.layer.weight}: parameter ${bad} is ${store.master[bad]}; pass allowNonFinite to load it anyway`);
    }
  });
  return { ...result, network, spec };
}

interface Placed {
  layer: DetectedLayer;
  fields: Record<string, unknown>;
}

/** Spec fields per layer, following the sizes through the conv stack; layers that cannot fit are reported. */
function placeLayers(layers: readonly DetectedLayer[], options: UniversalLoadOptions, unplaced: UnplacedTensor[], notes: string[]): Placed[] {
  const stride = options.stride ?? 1;
  const padding = options.padding ?? 0;
  if (!Number.isInteger(stride) || stride <= 0) throw new SpecError('stride', 'a positive integer', stride);
  if (!Number.isInteger(padding) || padding < 0) throw new SpecError('padding', 'a non-negative integer', padding);
  const convs = layers.filter((l): l is DetectedConv => l.type !== 'Dense');
  const denses = layers.filter((l): l is DetectedDense => l.type === 'Dense');
  const placed: Placed[] = [];
  if (convs.length > 0) {
    const twoD = convs[0].type === 'CNN2';
    const outSize = (n: number, k: number): number => Math.floor((n + 2 * padding - k) / stride) + 1;
    const through = (h: number): number => convs.reduce((n, c) => (n >= 1 && n + 2 * padding >= c.kernelSize ? outSize(n, c.kernelSize) : 0), h);
    const last = convs[convs.length - 1];
    let h = options.inputHeight;
    let w = twoD ? options.inputWidth ?? h : 1;
    if (h === undefined) {
      if (denses.length === 0) {
        notes.push('a conv stack without a Dense layer after it needs inputHeight (and inputWidth) to be mounted');
        for (const l of layers) refuseLayer(l, 'the input size is unknown', unplaced);
        return [];
      }
      const want = denses[0].inputSize;
      for (let c = 1; c <= 4096 && h === undefined; c++) {
        const o = through(c);
        if (o > 0 && last.filters * o * (twoD ? o : 1) === want) h = c;
      }
      if (h === undefined) {
        notes.push(`no ${twoD ? 'square ' : ''}input size makes the conv stack produce the ${want} inputs of ${denses[0].prefix}; pass inputHeight`);
        for (const l of layers) refuseLayer(l, 'the input size could not be inferred', unplaced);
        return [];
      }
      w = twoD ? h : 1;
      notes.push(`conv input size inferred as ${twoD ? `${h}×${w}` : h} from the ${want} inputs of ${denses[0].prefix} (stride ${stride}, padding ${padding})`);
    }
    if (!Number.isInteger(h) || h <= 0) throw new SpecError('inputHeight', 'a positive integer', h);
    if (!Number.isInteger(w) || w! <= 0) throw new SpecError('inputWidth', 'a positive integer', w);
    let height = h;
    let width = w!;
    for (const c of convs) {
      if (height + 2 * padding < c.kernelSize || (twoD && width + 2 * padding < c.kernelSize)) {
        refuseLayer(c, `kernel ${c.kernelSize} is larger than its padded input ${height}${twoD ? `×${width}` : ''}`, unplaced);
        for (const rest of layers.slice(layers.indexOf(c) + 1)) refuseLayer(rest, 'follows a layer that could not be placed', unplaced);
        return placed;
      }
      placed.push({
        layer: c,
        fields: {
          type: c.type, input_channels: c.inputChannels, filters: c.filters, kernel_size: c.kernelSize,
          stride, padding, input_height: height, ...(twoD ? { input_width: width } : {}), use_bias: c.bias !== undefined,
        },
      });
      height = outSize(height, c.kernelSize);
      if (twoD) width = outSize(width, c.kernelSize);
    }
    const features = last.filters * height * width;
    if (denses.length > 0 && denses[0].inputSize !== features) {
      const shape = twoD ? `${last.filters}×${height}×${width}` : `${last.filters}×${height}`;
      for (const d of denses) refuseLayer(d, `the conv stack gives ${features} values per sample (${shape}), ${denses[0].prefix} takes ${denses[0].inputSize}`, unplaced);
      return placed;
    }
  }
  for (const d of denses) {
    placed.push({ layer: d, fields: { type: 'Dense', input_height: d.inputSize, output_height: d.outputSize, use_bias: d.bias !== undefined } });
  }
  return placed;
}

function activationsFor(n: number, given: string | readonly string[] | undefined): string[] {
  if (given === undefined) return new Array(n).fill('Linear');
  if (typeof given === 'string') {
    const name = activationName(parseActivation(given, 'activations'));
    return Array.from({ length: n }, (_, i) => (i === n - 1 ? 'Linear' : name));
  }
  if (given.length !== n) throw new SpecError('activations', `${n} activation names (one per placed layer)`, given);
  return given.map((a, i) => activationName(parseActivation(a, `activations[${i}]`)));
}

/** Float files keep their precision (as the original's mount does); other dtypes compute in float32. */
function layerDType(source: TensorSource, l: DetectedLayer): string {
  const dtype = l.dtype;
  if (l.bias && source.info(l.bias).dtype !== dtype) return 'float32';
  return dtype === 'F64' ? 'float64' : dtype === 'F16' ? 'float16' : dtype === 'BF16' ? 'bfloat16' : 'float32';
}
