/** Generators of valid documents for each parser; mutate.ts turns them into hostile ones. */
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { ALL_DTYPES, dtypeName } from '../src/core/dtype.js';
import { networkToJson } from '../src/grid/persistence.js';
import { buildNetwork } from '../src/grid/spec.js';
import { findLayerKind } from '../src/layers/registry.js';
import { createOptimizer, type OptimizerSpec } from '../src/train/optimizers.js';
import type { Json } from './mutate.js';

const small = (max = 6) => fc.integer({ min: 1, max });
const ACTIVATIONS = ['Linear', 'ReLU', 'Tanh', 'Sigmoid', 'GELU', 'Silu', 'LeakyReLU', 'ReLU2'];
const activation = fc.constantFrom(...ACTIVATIONS);

type LayerJson = { [key: string]: Json };

/** Each template yields a valid layer entry; `inner` supplies nested layers for containers. */
function layerTemplates(inner: fc.Arbitrary<LayerJson> | null): Record<string, fc.Arbitrary<LayerJson>> {
  const t: Record<string, fc.Arbitrary<LayerJson>> = {
    Dense: fc.record({ type: fc.constant('Dense'), activation, input_height: small(), output_height: small(), use_bias: fc.boolean() }),
    RMSNorm: fc.record({ type: fc.constant('RMSNorm'), input_height: small() }),
    LayerNorm: fc.record({ type: fc.constant('LayerNorm'), input_height: small(), epsilon: fc.constantFrom(1e-5, 1e-3) }),
    Embedding: fc.record({ type: fc.constant('Embedding'), vocab_size: small(12), embedding_dim: small() }),
    KMeans: fc.record({
      type: fc.constant('KMeans'),
      input_height: small(),
      num_clusters: small(),
      kmeans_temperature: fc.constantFrom(0.1, 0.5, 1),
      output_mode: fc.constantFrom('probabilities', 'features'),
    }),
    RNN: fc.record({ type: fc.constant('RNN'), input_height: small(), output_height: small(), seq_length: small(4) }),
    LSTM: fc.record({ type: fc.constant('LSTM'), input_height: small(), output_height: small(), seq_length: small(4) }),
    SwiGLU: fc.record({ type: fc.constant('SwiGLU'), input_height: small(), output_height: small() }),
    Residual: fc.constant({ type: 'Residual' }),
    Softmax: fc.oneof(
      fc.record({ type: fc.constant('Softmax'), softmax_type: fc.constantFrom('Standard', 'Temperature', 'Sparse', 'Adaptive', 'Gumbel'), temperature: fc.constantFrom(0.5, 1, 2) }),
      fc.tuple(small(4), small(4)).map(([r, c]): LayerJson => ({ type: 'Softmax', softmax_type: 'Grid', softmax_rows: r, softmax_cols: c, input_height: r * c })),
      fc.array(small(3), { minLength: 1, maxLength: 3 }).map((levels): LayerJson => ({
        type: 'Softmax',
        softmax_type: 'Hierarchical',
        hierarchy_levels: levels,
        input_height: levels.reduce((a, b) => a * b, 1),
      })),
      fc.array(fc.boolean(), { minLength: 1, maxLength: 6 }).map((mask): LayerJson => ({ type: 'Softmax', softmax_type: 'Masked', mask, input_height: mask.length })),
      fc.record({ type: fc.constant('Softmax'), softmax_type: fc.constantFrom('Entmax', 'Mixture', 9, 8), entmax_alpha: fc.constantFrom(1, 1.5, 2) }),
    ),
    MultiHeadAttention: fc
      .record({ heads: small(4), group: small(2), half: small(2), seq: small(4), causal: fc.boolean(), rope: fc.constantFrom(10000, 0, 500000) })
      .map(({ heads, group, half, seq, causal, rope }): LayerJson => ({
        type: 'MultiHeadAttention',
        d_model: heads * group * half * 2,
        num_heads: heads * group,
        num_kv_heads: heads,
        head_dim: half * 2,
        seq_length: seq,
        causal,
        rope_freq_base: rope,
      })),
    CNN2: fc
      .record({ c: small(3), f: small(3), k: small(3), s: small(2), p: fc.nat(1), h: fc.integer({ min: 3, max: 6 }), w: fc.integer({ min: 3, max: 6 }), use_bias: fc.boolean() })
      .map(({ c, f, k, s, p, h, w, use_bias }): LayerJson => ({ type: 'CNN2', input_channels: c, filters: f, kernel_size: k, stride: s, padding: p, input_height: h, input_width: w, use_bias })),
    CNN1: fc
      .record({ c: small(3), f: small(3), k: small(3), s: small(2), h: fc.integer({ min: 3, max: 8 }) })
      .map(({ c, f, k, s, h }): LayerJson => ({ type: 'CNN1', input_channels: c, filters: f, kernel_size: k, stride: s, input_height: h })),
    ConvTransposed2D: fc
      .record({ c: small(3), f: small(3), k: small(3), s: small(2), h: small(4) })
      .map(({ c, f, k, s, h }): LayerJson => ({ type: 'ConvTransposed2D', input_channels: c, filters: f, kernel_size: k, stride: s, input_height: h })),
  };
  if (inner) {
    t.Sequential = fc.array(inner, { minLength: 0, maxLength: 3 }).map((children): LayerJson => ({ type: 'Sequential', sequential_layers: children }));
    t.Parallel = fc.oneof(
      fc.record({ combine_mode: fc.constantFrom('add', 'avg', 'concat'), branches: fc.array(inner, { minLength: 1, maxLength: 3 }) }).map(
        ({ combine_mode, branches }): LayerJson => ({ type: 'Parallel', combine_mode, parallel_branches: branches }),
      ),
      fc.record({ n: small(3), i: small(4), o: small(4) }).map(({ n, i, o }): LayerJson => ({
        type: 'Parallel',
        combine_mode: 'filter',
        parallel_branches: Array.from({ length: n }, () => ({ type: 'Dense', input_height: i, output_height: o })),
        filter_gate: { type: 'Dense', input_height: i, output_height: n },
      })),
      fc.record({ n: small(3), i: small(4), o: small(4) }).map(({ n, i, o }): LayerJson => ({
        type: 'Parallel',
        combine_mode: 'grid_scatter',
        parallel_branches: Array.from({ length: n }, () => ({ type: 'Dense', input_height: i, output_height: o })),
      })),
    );
  }
  return t;
}

/** Only kinds registered in this build: conv layers join once src/layers/index.ts imports them. */
function registered(t: Record<string, fc.Arbitrary<LayerJson>>): fc.Arbitrary<LayerJson>[] {
  return Object.entries(t)
    .filter(([name]) => findLayerKind(name) !== undefined)
    .map(([, a]) => a);
}

const leafLayer = fc.oneof(...registered(layerTemplates(null)));
const nestedLayer = fc.oneof(...registered(layerTemplates(fc.oneof(leafLayer, fc.oneof(...registered(layerTemplates(leafLayer)))))));
const anyLayer = fc.oneof({ weight: 3, arbitrary: leafLayer }, { weight: 1, arbitrary: nestedLayer });

/** A grid of up to 3×2×3×2 cells holding 1..5 layers at distinct cells, some disabled or remote-linked. */
export const networkSpec: fc.Arbitrary<LayerJson> = fc
  .record({
    depth: small(3),
    rows: small(2),
    cols: small(3),
    lpc: small(2),
    layers: fc.array(fc.record({ layer: anyLayer, cell: fc.nat(), disabled: fc.boolean(), remote: fc.option(fc.nat(), { freq: 5 }) }), { minLength: 1, maxLength: 5 }),
    id: fc.option(fc.string({ maxLength: 8 })),
    dtype: fc.constantFrom(...ALL_DTYPES),
  })
  .map(({ depth, rows, cols, lpc, layers, id, dtype }) => {
    const cells = depth * rows * cols * lpc;
    const coord = (i: number) => ({ z: Math.floor(i / (lpc * cols * rows)), y: Math.floor(i / (lpc * cols)) % rows, x: Math.floor(i / lpc) % cols, l: i % lpc });
    const used = new Set<number>();
    const placed: LayerJson[] = [];
    for (const { layer, cell, disabled, remote } of layers) {
      const index = cell % cells;
      if (used.has(index)) continue;
      used.add(index);
      const entry: LayerJson = { ...coord(index), ...layer, dtype: dtypeName(dtype) };
      if (disabled) entry.is_disabled = true;
      if (remote !== null) {
        const t = coord(remote % cells);
        Object.assign(entry, { is_remote_link: true, target_z: t.z, target_y: t.y, target_x: t.x, target_l: t.l });
      }
      placed.push(entry);
    }
    const doc: LayerJson = { depth, rows, cols, layers_per_cell: lpc, layers: placed };
    if (id !== null) doc.id = id;
    return withConsistentLinks(doc);
  });

/** Drops the remote links whose two ends disagree on values per sample (buildNetwork rejects those). */
function withConsistentLinks(doc: LayerJson): LayerJson {
  const layers = doc.layers as LayerJson[];
  for (let tries = 0; tries <= layers.length; tries++) {
    try {
      buildNetwork(doc);
      return doc;
    } catch (e) {
      const m = /^layers\[(\d+)\]\.target_z: remote link from /.exec((e as Error).message);
      if (!m) return doc;
      for (const key of ['is_remote_link', 'target_z', 'target_y', 'target_x', 'target_l']) delete layers[Number(m[1])][key];
    }
  }
  return doc;
}

const persistenceCache = new Map<string, Json>();

/** A saved model: a valid spec built, morphed to a random dtype, and written as persistence JSON. */
export const persistenceDoc: fc.Arbitrary<Json> = fc.record({ spec: networkSpec, dtype: fc.constantFrom(...ALL_DTYPES), seed: fc.nat(3) }).map(({ spec, dtype, seed }) => {
  const key = `${JSON.stringify(spec)}|${dtype}|${seed}`;
  let doc = persistenceCache.get(key);
  if (doc === undefined) {
    const net = buildNetwork(spec, { seed });
    net.morph(dtype);
    doc = JSON.parse(JSON.stringify(networkToJson(net))) as Json;
    if (persistenceCache.size > 2000) persistenceCache.clear();
    persistenceCache.set(key, doc);
  }
  return doc;
});

const IDX_TYPES = [
  { code: 0x08, size: 1 },
  { code: 0x09, size: 1 },
  { code: 0x0b, size: 2 },
  { code: 0x0c, size: 4 },
  { code: 0x0d, size: 4 },
  { code: 0x0e, size: 8 },
];

/** A well-formed IDX file (any element type, 0..4 dimensions of 0..5), sometimes gzipped. */
export const idxFile: fc.Arbitrary<Uint8Array> = fc
  .record({ type: fc.constantFrom(...IDX_TYPES), dims: fc.array(fc.nat(5), { maxLength: 4 }), seed: fc.nat(), gzip: fc.boolean() })
  .map(({ type, dims, seed, gzip }) => {
    const elements = dims.reduce((a, b) => a * b, 1);
    const out = new Uint8Array(4 + 4 * dims.length + elements * type.size);
    const view = new DataView(out.buffer);
    out[2] = type.code;
    out[3] = dims.length;
    dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
    let x = seed | 1;
    for (let i = 4 + 4 * dims.length; i < out.length; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      out[i] = x & 255;
    }
    return gzip && seed % 4 === 0 ? new Uint8Array(gzipSync(out)) : out;
  });

/** A coherent images [N, h, w] u8 + labels [N] u8 pair, as an MNIST-style dataset. */
export const idxPair: fc.Arbitrary<[Uint8Array, Uint8Array]> = fc
  .record({ n: small(5), h: small(4), w: small(4), pixels: fc.uint8Array({ minLength: 80, maxLength: 80 }), labels: fc.array(fc.nat(9), { minLength: 5, maxLength: 5 }) })
  .map(({ n, h, w, pixels, labels }) => {
    const images = new Uint8Array(16 + n * h * w);
    const iv = new DataView(images.buffer);
    images[2] = 0x08;
    images[3] = 3;
    [n, h, w].forEach((d, i) => iv.setUint32(4 + 4 * i, d, false));
    for (let i = 0; i < n * h * w; i++) images[16 + i] = pixels[i % pixels.length];
    const lab = new Uint8Array(8 + n);
    lab[2] = 0x08;
    lab[3] = 1;
    new DataView(lab.buffer).setUint32(4, n, false);
    for (let i = 0; i < n; i++) lab[8 + i] = labels[i];
    return [images, lab];
  });

const numberText = fc.oneof(
  fc.integer({ min: -1000, max: 1000 }).map(String),
  fc.double({ min: -1e6, max: 1e6, noNaN: true }).map(String),
  fc.constantFrom('0.5', '-.25', '+3', '1e-3', '2E+2', '7.'),
);

/** CSV with numeric features and a label column: separators, headers, quotes, CRLF, BOM, blank lines. */
export const csvText: fc.Arbitrary<string> = fc
  .record({
    cols: fc.integer({ min: 2, max: 6 }),
    rows: fc.integer({ min: 1, max: 12 }),
    sep: fc.constantFrom(',', ';', '\t'),
    header: fc.constantFrom('none', 'plain', 'quoted'),
    eol: fc.constantFrom('\n', '\r\n'),
    bom: fc.boolean(),
    classLabels: fc.boolean(),
    cells: fc.array(numberText, { minLength: 72, maxLength: 72 }),
    labels: fc.array(fc.nat(9), { minLength: 12, maxLength: 12 }),
  })
  .map(({ cols, rows, sep, header, eol, bom, classLabels, cells, labels }) => {
    const lines: string[] = [];
    if (header !== 'none') lines.push(Array.from({ length: cols }, (_, c) => (header === 'quoted' ? `"col ${c}${sep}x"` : `col${c}`)).join(sep));
    for (let r = 0; r < rows; r++) {
      const row = Array.from({ length: cols - 1 }, (_, c) => cells[(r * 6 + c) % cells.length]);
      row.push(classLabels ? String(labels[r]) : cells[(r * 6 + 5) % cells.length]);
      lines.push(row.join(sep));
      if (r === 0 && rows > 2) lines.push('');
    }
    return (bom ? '\uFEFF' : '') + lines.join(eol) + eol;
  });

const finite = fc.oneof(fc.integer({ min: -100, max: 100 }), fc.double({ min: -1e3, max: 1e3, noNaN: true }));

/** {"inputs": [[...]], "targets": labels | rows, "shape"?: [...]} as parseJsonDataset reads it. */
export const jsonDataset: fc.Arbitrary<Json> = fc
  .record({
    count: fc.integer({ min: 1, max: 8 }),
    dims: fc.array(small(3), { minLength: 1, maxLength: 3 }),
    withShape: fc.boolean(),
    targets: fc.constantFrom('labels', 'scalars', 'rows'),
    values: fc.array(finite, { minLength: 64, maxLength: 64 }),
    labels: fc.array(fc.nat(5), { minLength: 8, maxLength: 8 }),
  })
  .map(({ count, dims, withShape, targets, values, labels }) => {
    const width = dims.reduce((a, b) => a * b, 1);
    const at = (i: number) => values[i % values.length];
    const doc: { [key: string]: Json } = {
      inputs: Array.from({ length: count }, (_, i) => Array.from({ length: width }, (_, j) => at(i * width + j))),
      targets:
        targets === 'labels'
          ? labels.slice(0, count)
          : targets === 'scalars'
            ? Array.from({ length: count }, (_, i) => at(i) + 0.5)
            : Array.from({ length: count }, (_, i) => [at(i), at(i + 1)]),
    };
    if (withShape) doc.shape = dims;
    return doc;
  });

/** {"shape": [...], "data": [...]} as `loom run --input` reads it. */
export const tensorDoc: fc.Arbitrary<Json> = fc
  .record({ shape: fc.array(small(4), { minLength: 1, maxLength: 4 }), values: fc.array(finite, { minLength: 16, maxLength: 16 }) })
  .map(({ shape, values }) => ({ shape, data: Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => values[i % 16]) }));

const SAFETENSORS_DTYPES = [
  { name: 'F32', size: 4 },
  { name: 'F16', size: 2 },
  { name: 'BF16', size: 2 },
  { name: 'F64', size: 8 },
  { name: 'I8', size: 1 },
  { name: 'U8', size: 1 },
  { name: 'I16', size: 2 },
  { name: 'I32', size: 4 },
  { name: 'I64', size: 8 },
  { name: 'BOOL', size: 1 },
];

/** The safetensors header (before its length prefix and data) and the data size it describes. */
export const safetensorsHeader: fc.Arbitrary<{ header: Json; dataBytes: number }> = fc
  .record({
    tensors: fc.uniqueArray(fc.record({ name: fc.string({ minLength: 1, maxLength: 12 }), dtype: fc.constantFrom(...SAFETENSORS_DTYPES), shape: fc.array(fc.nat(4), { maxLength: 3 }) }), {
      maxLength: 4,
      selector: (t) => t.name,
    }),
    metadata: fc.option(fc.dictionary(fc.string({ maxLength: 6 }), fc.string({ maxLength: 8 }), { maxKeys: 3 })),
  })
  .map(({ tensors, metadata }) => {
    const header: { [key: string]: Json } = {};
    if (metadata !== null) header.__metadata__ = { format: 'pt', ...metadata };
    let offset = 0;
    for (const t of tensors) {
      if (t.name === '__metadata__') continue;
      const bytes = t.shape.reduce((a, b) => a * b, 1) * t.dtype.size;
      header[t.name] = { dtype: t.dtype.name, shape: t.shape, data_offsets: [offset, offset + bytes] };
      offset += bytes;
    }
    return { header, dataBytes: offset };
  });

/** A complete safetensors file: u64 little-endian header length, JSON header padded with spaces to 8 bytes, data. */
export function encodeSafetensors(header: Json, dataBytes: number, headerText = JSON.stringify(header)): Uint8Array {
  let h = new TextEncoder().encode(headerText);
  const padded = Math.ceil(h.length / 8) * 8;
  if (padded !== h.length) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(h);
    h = p;
  }
  const out = new Uint8Array(8 + h.length + Math.min(dataBytes, 1 << 20));
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  for (let i = 8 + h.length; i < out.length; i++) out[i] = (i * 37) & 255;
  return out;
}

/** GPT-2's byte-to-unicode table: the 256 printable stand-ins byte-level BPE vocabularies use. */
function byteLevelAlphabet(): string[] {
  const bytes: number[] = [];
  for (let b = 33; b <= 126; b++) bytes.push(b);
  for (let b = 161; b <= 172; b++) bytes.push(b);
  for (let b = 174; b <= 255; b++) bytes.push(b);
  const chars = new Array<string>(256);
  let n = 0;
  for (let b = 0; b < 256; b++) chars[b] = bytes.includes(b) ? String.fromCharCode(b) : String.fromCharCode(256 + n++);
  return chars;
}
const BYTE_ALPHABET = byteLevelAlphabet();

/**
 * A Hugging Face tokenizer.json: byte-level BPE (GPT-2/Llama 3 style) or a SentencePiece-style BPE with
 * byte fallback (Llama 2 style), with merges as "a b" strings or [a, b] pairs and a few added tokens.
 */
export const tokenizerDoc: fc.Arbitrary<Json> = fc
  .record({
    style: fc.constantFrom('byte-level', 'sentencepiece'),
    merges: fc.array(fc.tuple(fc.nat(40), fc.nat(40)), { maxLength: 24 }),
    pairs: fc.boolean(),
    added: fc.array(fc.constantFrom('<s>', '</s>', '<unk>', '<|endoftext|>', '<pad>'), { maxLength: 3 }),
  })
  .map(({ style, merges, pairs, added }) => {
    const sp = style === 'sentencepiece';
    const base = sp ? ['<unk>', '<s>', '</s>', ...Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`), '▁', ...'abcdefghijklmnopqrstuvwxyz'] : [...BYTE_ALPHABET];
    const vocab = new Map<string, number>();
    base.forEach((t) => vocab.has(t) || vocab.set(t, vocab.size));
    const symbols = sp ? ['▁', ...'abcdefghijklmnopqrstuvwxyz'] : BYTE_ALPHABET.slice(65, 91).concat(BYTE_ALPHABET.slice(97, 123));
    const mergeList: [string, string][] = [];
    for (const [a, b] of merges) {
      const left = symbols[a % symbols.length];
      const right = symbols[b % symbols.length];
      if (vocab.has(left + right)) continue;
      mergeList.push([left, right]);
      vocab.set(left + right, vocab.size);
      symbols.push(left + right);
    }
    const addedTokens = [...new Set(added)].map((content) => {
      const id = vocab.get(content) ?? vocab.size;
      if (!vocab.has(content)) vocab.set(content, id);
      return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
    });
    return {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: addedTokens,
      normalizer: sp ? { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] } : null,
      pre_tokenizer: sp ? null : { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
      post_processor: null,
      decoder: sp
        ? { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }] }
        : { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: {
        type: 'BPE',
        dropout: null,
        unk_token: sp ? '<unk>' : null,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: sp,
        byte_fallback: sp,
        vocab: Object.fromEntries(vocab),
        merges: mergeList.map(([a, b]) => (pairs ? [a, b] : `${a} ${b}`)),
      },
    } as Json;
  });

/** A fixed small byte-level tokenizer with ChatML and Llama-style markers, for tokenizer_config.json fuzzing. */
export const CONFIG_TOKENIZER = JSON.stringify({
  version: '1.0',
  added_tokens: ['<s>', '</s>', '<|im_start|>', '<|im_end|>'].map((content, k) => ({ id: 256 + k, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
  normalizer: null,
  pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
  decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
  model: { type: 'BPE', vocab: Object.fromEntries(BYTE_ALPHABET.map((c, i) => [c, i])), merges: [] },
});

/** Jinja chat templates in the styles models ship, including loops, filters, macros and raise_exception. */
const CHAT_TEMPLATES = [
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
  "{{ bos_token }}{% for m in messages %}{% if m.role == 'user' %}[INST] {{ m.content | trim }} [/INST]{% elif m.role == 'system' %}<<SYS>>{{ m.content }}<</SYS>>{% else %}{{ m.content }}{{ eos_token }}{% endif %}{% endfor %}",
  "{% set loop_messages = messages %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('roles must alternate') }}{% endif %}{{ message['content'] | upper }}{% endfor %}",
  "{% macro fmt(m) %}{{ m.role }}: {{ m.content }}{% endmacro %}{% for m in messages[1:] %}{{ fmt(m) }}{{ '\\n' if not loop.last }}{% endfor %}{{ messages | length }}",
];

/** tokenizer_config.json documents: special tokens as strings or {"content"} objects, a template string or a named list. */
export const tokenizerConfigDoc: fc.Arbitrary<Json> = fc
  .record({ template: fc.nat(CHAT_TEMPLATES.length - 1), named: fc.boolean(), objectTokens: fc.boolean() })
  .map(({ template, named, objectTokens }) => {
    const token = (t: string): Json => (objectTokens ? { content: t, lstrip: false, normalized: false, rstrip: false, single_word: false } : t);
    const source = CHAT_TEMPLATES[template];
    return {
      add_bos_token: true,
      bos_token: token('<s>'),
      eos_token: token('</s>'),
      model_max_length: 2048,
      chat_template: named ? [{ name: 'default', template: source }, { name: 'tool_use', template: '{{ messages[0].content }}' }] : source,
    } as Json;
  });

/** An optimizer's saved state (the `optimizer_state` of a model file) after a few steps on small parameters. */
export const optimizerState: fc.Arbitrary<Json> = fc
  .record({
    type: fc.constantFrom('sgd' as const, 'adamw' as const, 'rmsprop' as const),
    lr: fc.constantFrom(0.1, 0.01, 1e-3),
    momentum: fc.constantFrom(0, 0.9),
    steps: fc.integer({ min: 0, max: 3 }),
    sizes: fc.array(small(5), { minLength: 1, maxLength: 3 }),
  })
  .map(({ type, lr, momentum, steps, sizes }) => {
    const spec = { type, lr, ...(type === 'adamw' ? {} : { momentum }) } as OptimizerSpec;
    const opt = createOptimizer(spec);
    const params = sizes.map((n, i) => ({ key: String(i * 3), values: new Float32Array(n).fill(0.5), grad: Float32Array.from({ length: n }, (_, j) => j - 1) }));
    for (let s = 0; s < steps; s++) opt.step(params);
    return JSON.parse(JSON.stringify(opt.state())) as Json;
  });
