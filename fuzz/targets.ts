/**
 * One fuzz target per parser: an input arbitrary (valid documents and mutations of them), the call
 * under test, and invariants a successful result must satisfy.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { readTensorFile } from '../src/cli/modelCommands.js';
import { parseCsv } from '../src/data/csv.js';
import type { Dataset } from '../src/data/dataset.js';
import { readIdxFile } from '../src/data/idx.js';
import { idxToDataset, isGzip, parseIdx } from '../src/data/idxFormat.js';
import { parseJsonDataset } from '../src/data/jsonData.js';
import type { VolumetricNetwork } from '../src/grid/network.js';
import { deserializeNetwork, serializeNetwork } from '../src/grid/persistence.js';
import { buildNetwork, parseJson } from '../src/grid/spec.js';
import { parseSafetensors } from '../src/io/safetensors.js';
import { renderChat } from '../src/llm/templates.js';
import { Tokenizer } from '../src/llm/tokenizer.js';
import { tokenizerBundleFromText } from '../src/llm/tokenizerBundle.js';
import { optimizerFromState } from '../src/train/optimizers.js';
import {
  applyByteOps,
  applyTextOps,
  applyTreeOps,
  bytesMutation,
  jsonMutation,
  materializeJson,
  mutatedTree,
  stringifyTree,
  textMutation,
  textOp,
  treeOp,
  type BytesMutation,
  type Json,
  type JsonMutation,
  type TextMutation,
  type TextOp,
  type TreeOp,
} from './mutate.js';
import { csvText, encodeSafetensors, idxFile, idxPair, jsonDataset, networkSpec, optimizerState, persistenceDoc, safetensorsHeader, tensorDoc, tokenizerConfigDoc, tokenizerDoc, CONFIG_TOKENIZER } from './valid.js';

export interface FuzzTarget<T = any> {
  /** Short name used by FUZZ_TARGETS and in reports. */
  name: string;
  /** The entry point under test. */
  parser: string;
  input: fc.Arbitrary<T>;
  /** Runs the parser; throws what the parser throws. Returns the parse result for `check`. */
  run(input: T): unknown;
  /** Invariants of a successful parse; throws a plain Error when one is broken. */
  check?(result: unknown, input: T): void;
  /** Bytes of input, for the allocation cap (a parser may allocate in proportion to what it reads). */
  size(input: T): number;
  /** True when the input is a generated valid document with no mutation applied (it must parse). */
  unmutated(input: T): boolean;
  /** Short printable form for failure reports. */
  preview(input: T): string;
}

/** A parser named by the hardening issue whose module is not in this build yet. */
export interface PendingTarget {
  name: string;
  parser: string;
  pending: string;
}

/** Parameter cap the harness passes to buildNetwork: random specs must not request gigabytes legitimately. */
export const FUZZ_MAX_PARAMETERS = 1 << 20;

let scratch: string | undefined;
/** A per-process scratch directory for targets whose entry point reads a file. */
function scratchFile(name: string): string {
  scratch ??= mkdtempSync(join(tmpdir(), 'loom-fuzz-'));
  return join(scratch, name);
}

export function removeScratch(): void {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
  scratch = undefined;
}

function preview(text: string, max = 300): string {
  return JSON.stringify(text.length > max ? `${text.slice(0, max)}… (${text.length} chars)` : text);
}

function previewBytes(b: Uint8Array, max = 96): string {
  const hex = Array.from(b.subarray(0, max), (x) => x.toString(16).padStart(2, '0')).join('');
  return `${b.length} bytes: ${hex}${b.length > max ? '…' : ''}`;
}

function isPlain(m: JsonMutation): boolean {
  return m.tree.length === 0 && m.text.length === 0;
}

function assertDataset(d: Dataset): void {
  const features = d.inputShape.reduce((a, b) => a * b, 1);
  if (!(d.count >= 1) || d.inputs.length !== d.count * features) throw new Error(`dataset: ${d.count} samples × ${features} features but ${d.inputs.length} inputs`);
  if (d.labels && d.labels.length !== d.count) throw new Error(`dataset: ${d.labels.length} labels for ${d.count} samples`);
  if (d.targets && d.targets.length !== d.count * d.targetWidth) throw new Error(`dataset: ${d.targets.length} targets for ${d.count} × ${d.targetWidth}`);
  if (!d.labels && !d.targets) throw new Error('dataset: neither labels nor targets');
  for (const v of d.inputs) if (!Number.isFinite(v)) throw new Error(`dataset: non-finite input ${v}`);
  if (d.targets) for (const v of d.targets) if (!Number.isFinite(v)) throw new Error(`dataset: non-finite target ${v}`);
}

/** A network that parsed must save and load back to the same document. */
function assertRoundTrip(net: VolumetricNetwork): void {
  const saved = serializeNetwork(net);
  const again = serializeNetwork(deserializeNetwork(saved, { allowNonFinite: true, maxParameters: FUZZ_MAX_PARAMETERS }));
  if (again !== saved) throw new Error('network: serialize → deserialize → serialize changed the document');
}

/** Network documents are fuzzed both as text (deserializeNetwork) and as already-parsed values (buildNetwork). */
interface NetworkInput {
  m: JsonMutation;
  asValue: boolean;
  allowNonFinite: boolean;
}

function networkTarget(name: string, parser: string, valid: fc.Arbitrary<Json>): FuzzTarget<NetworkInput> {
  const extraKeys = ['weights', 'native', 'scale', 'zero_point', 'layers', 'type', 'sequential_layers', 'parallel_branches', 'filter_gate', 'input_height', 'vocab_size', 'depth'];
  return {
    name,
    parser,
    input: fc.record({ m: jsonMutation(valid, extraKeys), asValue: fc.boolean(), allowNonFinite: fc.boolean() }),
    run({ m, asValue, allowNonFinite }) {
      const options = { allowNonFinite, maxParameters: FUZZ_MAX_PARAMETERS };
      // Text mutations only make sense on text; tree-mutated values go in as built (own "__proto__" keys included).
      if (asValue && m.text.length === 0) return buildNetwork(mutatedTree(m), options);
      return deserializeNetwork(materializeJson(m), options);
    },
    check: (net) => assertRoundTrip(net as VolumetricNetwork),
    unmutated: ({ m }) => isPlain(m),
    size: ({ m }) => 2 * materializeJson(m).length,
    preview: ({ m, asValue }) => `${asValue && m.text.length === 0 ? 'value' : 'text'} ${preview(materializeJson(m))}`,
  };
}

const idxInput = fc.oneof(
  { weight: 3, arbitrary: fc.record({ images: bytesMutation(idxFile), labels: fc.constant(null), smallCap: fc.boolean() }) },
  {
    weight: 1,
    arbitrary: idxPair.chain(([images, labels]) =>
      fc.record({ images: bytesMutation(fc.constant(images)), labels: bytesMutation(fc.constant(labels)), smallCap: fc.boolean() }),
    ),
  },
);
type IdxInput = typeof idxInput extends fc.Arbitrary<infer T> ? T : never;

/** Gzipped input goes through readIdxFile (the Node gunzip with its inflation cap); plain bytes through parseIdx. */
function readIdx(b: BytesMutation, maxBytes: number | undefined, which: string) {
  const bytes = applyByteOps(b.bytes, b.ops);
  if (!isGzip(bytes)) return parseIdx(bytes, which, { maxBytes });
  const path = scratchFile(`${which}.idx.gz`);
  writeFileSync(path, bytes);
  return readIdxFile(path, { maxBytes });
}

const idxTarget: FuzzTarget<IdxInput> = {
  name: 'idx',
  parser: 'src/data/idxFormat.ts parseIdx (+ readIdxFile for gzip, idxToDataset for pairs)',
  input: idxInput,
  run({ images, labels, smallCap }) {
    const maxBytes = smallCap ? 1 << 16 : undefined;
    const a = readIdx(images, maxBytes, 'images');
    if (!labels) return a;
    return idxToDataset(a, readIdx(labels, maxBytes, 'labels'), 'fuzz');
  },
  check(result) {
    if ('dims' in (result as object)) {
      const { dims, data } = result as { dims: number[]; data: ArrayLike<number> };
      const elements = dims.includes(0) ? 0 : dims.reduce((a, b) => a * b, 1);
      if (data.length !== elements) throw new Error(`idx: dims [${dims}] but ${data.length} elements`);
    } else assertDataset(result as Dataset);
  },
  unmutated: ({ images, labels }) => images.ops.length === 0 && (labels === null || labels.ops.length === 0),
  size: ({ images, labels }) => applyByteOps(images.bytes, images.ops).length + (labels ? applyByteOps(labels.bytes, labels.ops).length : 0),
  preview: ({ images, labels, smallCap }) =>
    `images ${previewBytes(applyByteOps(images.bytes, images.ops))}${labels ? `; labels ${previewBytes(applyByteOps(labels.bytes, labels.ops))}` : ''}${smallCap ? '; maxBytes 65536' : ''}`,
};

const csvTarget: FuzzTarget<TextMutation> = {
  name: 'csv',
  parser: 'src/data/csv.ts parseCsv',
  input: textMutation(csvText),
  run: (m) => parseCsv(applyTextOps(m.text, m.ops), 'fuzz.csv'),
  check: (d) => assertDataset(d as Dataset),
  unmutated: (m) => m.ops.length === 0,
  size: (m) => 2 * applyTextOps(m.text, m.ops).length,
  preview: (m) => preview(applyTextOps(m.text, m.ops)),
};

const jsonDatasetTarget: FuzzTarget<JsonMutation> = {
  name: 'json-dataset',
  parser: 'src/data/jsonData.ts parseJsonDataset',
  input: jsonMutation(jsonDataset, ['inputs', 'targets', 'shape']),
  run: (m) => parseJsonDataset(materializeJson(m), 'fuzz.json'),
  check: (d) => assertDataset(d as Dataset),
  unmutated: isPlain,
  size: (m) => 2 * materializeJson(m).length,
  preview: (m) => preview(materializeJson(m)),
};

const tensorFileTarget: FuzzTarget<JsonMutation> = {
  name: 'tensor-file',
  parser: 'src/cli/modelCommands.ts readTensorFile',
  input: jsonMutation(tensorDoc, ['shape', 'data']),
  run(m) {
    const path = scratchFile('input.json');
    writeFileSync(path, materializeJson(m));
    return readTensorFile(path);
  },
  check(t) {
    const { shape, data } = t as { shape: number[]; data: Float32Array };
    if (data.length !== shape.reduce((a, b) => a * b, 1)) throw new Error(`tensor: shape [${shape}] but ${data.length} values`);
  },
  unmutated: isPlain,
  size: (m) => 2 * materializeJson(m).length,
  preview: (m) => preview(materializeJson(m)),
};

/** The `optimizer_state` object of a model file, as `loom train --resume` reads it (parsed, then rebuilt). */
const optimizerStateTarget: FuzzTarget<JsonMutation> = {
  name: 'optimizer-state',
  parser: 'src/train/optimizers.ts optimizerFromState',
  input: jsonMutation(optimizerState, ['type', 'options', 'steps', 'buffers', 'lr', 'momentum', 'exp_avg', 'momentum_buffer']),
  run: (m) => optimizerFromState(parseJson(materializeJson(m), 'fuzz'), 'optimizer_state'),
  unmutated: isPlain,
  size: (m) => 2 * materializeJson(m).length,
  preview: (m) => preview(materializeJson(m)),
};

/**
 * Safetensors inputs: the header mutated as JSON (re-encoded with a consistent length prefix) and/or
 * the whole file mutated as bytes (length prefix included).
 */
const safetensorsInput = fc.record({
  file: safetensorsHeader,
  tree: fc.oneof(fc.constant([] as TreeOp[]), fc.array(treeOp(['dtype', 'shape', 'data_offsets', '__metadata__']), { minLength: 1, maxLength: 3 })),
  headerText: fc.oneof(fc.constant([] as TextOp[]), fc.array(textOp, { minLength: 1, maxLength: 2 })),
  bytes: bytesMutation(fc.constant(new Uint8Array(0))).map((b) => b.ops),
});
type SafetensorsInput = typeof safetensorsInput extends fc.Arbitrary<infer T> ? T : never;

function safetensorsBytes(i: SafetensorsInput): Uint8Array {
  const header = i.tree.length > 0 ? applyTreeOps(i.file.header, i.tree) : i.file.header;
  return applyByteOps(encodeSafetensors(header, i.file.dataBytes, applyTextOps(stringifyTree(header), i.headerText)), i.bytes);
}

const safetensorsTarget: FuzzTarget<SafetensorsInput> = {
  name: 'safetensors',
  parser: 'src/io/safetensors.ts parseSafetensors',
  input: safetensorsInput,
  run: (i) => parseSafetensors(safetensorsBytes(i), 'fuzz.safetensors'),
  unmutated: (i) => i.tree.length === 0 && i.headerText.length === 0 && i.bytes.length === 0,
  size: (i) => safetensorsBytes(i).length,
  preview: (i) => previewBytes(safetensorsBytes(i), 400),
};

/** Parses, then encodes and decodes a short hostile text, since BPE loops are where hangs hide. */
const tokenizerTarget: FuzzTarget<{ m: JsonMutation; text: string }> = {
  name: 'tokenizer',
  parser: 'src/llm/tokenizer.ts Tokenizer.fromJSON',
  input: fc.record({ m: jsonMutation(tokenizerDoc, ['model', 'vocab', 'merges', 'type', 'added_tokens', 'pre_tokenizer', 'decoder', 'normalizer']), text: fc.string({ unit: 'binary', maxLength: 40 }) }),
  run({ m, text }) {
    const tok = Tokenizer.fromJSON(materializeJson(m), { source: 'fuzz-tokenizer.json' });
    tok.decode(tok.encode(text));
    return tok;
  },
  unmutated: ({ m }) => isPlain(m),
  size: ({ m }) => 2 * materializeJson(m).length,
  preview: ({ m, text }) => `${preview(materializeJson(m))} encode ${JSON.stringify(text)}`,
};

/** tokenizer_config.json with its chat template, then a two-turn chat rendered through whatever template results. */
const tokenizerConfigTarget: FuzzTarget<{ m: JsonMutation; user: string }> = {
  name: 'tokenizer-config',
  parser: 'src/llm/tokenizerBundle.ts tokenizerBundleFromText',
  input: fc.record({ m: jsonMutation(tokenizerConfigDoc, ['bos_token', 'eos_token', 'chat_template', 'content', 'name', 'template']), user: fc.string({ maxLength: 30 }) }),
  run({ m, user }) {
    const bundle = tokenizerBundleFromText({ tokenizerJson: CONFIG_TOKENIZER, configJson: materializeJson(m), configSource: 'fuzz-tokenizer_config.json' });
    if (bundle.chatTemplate) {
      const messages = [
        { role: 'user', content: user },
        { role: 'assistant', content: 'ok' },
        { role: 'user', content: user },
      ];
      renderChat(messages, { template: bundle.chatTemplate, addGenerationPrompt: true, bosToken: '<s>', eosToken: '</s>' });
    }
    return bundle;
  },
  unmutated: ({ m }) => isPlain(m),
  size: ({ m }) => 2 * materializeJson(m).length,
  preview: ({ m, user }) => `${preview(materializeJson(m))} user ${JSON.stringify(user)}`,
};

/** Every target available in this build, plus the ones whose modules do not exist yet. */
export async function loadTargets(): Promise<{ targets: FuzzTarget[]; pending: PendingTarget[] }> {
  const targets: FuzzTarget[] = [
    networkTarget('network-spec', 'src/grid/spec.ts buildNetwork', networkSpec),
    networkTarget('persistence', 'src/grid/persistence.ts deserializeNetwork', persistenceDoc),
    idxTarget,
    csvTarget,
    jsonDatasetTarget,
    tensorFileTarget,
    optimizerStateTarget,
    safetensorsTarget,
    tokenizerTarget,
    tokenizerConfigTarget,
  ];
  const pending: PendingTarget[] = [];
  return { targets, pending };
}
