import { existsSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { LoomError, UsageError } from '../core/errors.js';
import { decodeResidentBytes, quantizeNetwork } from '../engine/decode.js';
import { GpuUnavailableError } from '../gpu/context.js';
import type { VolumetricNetwork } from '../grid/network.js';
import { tiedOwners } from '../grid/persistence.js';
import { loadNetworkFile, saveNetworkFile } from '../io/modelFiles.js';
import { openSafetensors, loadUniversalFile, saveNetworkSafetensors } from '../io/safetensorsFiles.js';
import { detectArchitecture } from '../io/universalLoader.js';
import { withThreads } from '../kernels/backend.js';
import { parseQuantFormat } from '../kernels/quant.js';
import { ChatSession, TextModel } from '../llm/chat.js';
import { Generation, type GenerateOptions, type LanguageModel } from '../llm/generate.js';
import type { LlamaConfig } from '../llm/llama.js';
import { importLlama, readLlamaConfig, type ImportLlamaOptions } from '../llm/llamaFiles.js';
import { numberFlag, parseCommandArgs, requireOne, stringFlag, type OptionSpec, type ParsedArgs } from './args.js';
import { formatBytes } from './modelCommands.js';

const SAMPLING_FLAGS: OptionSpec = {
  'max-tokens': { type: 'string' },
  temperature: { type: 'string' },
  'top-k': { type: 'string' },
  'top-p': { type: 'string' },
  'repetition-penalty': { type: 'string' },
  'repetition-window': { type: 'string' },
  seed: { type: 'string' },
  dtype: { type: 'string' },
  stop: { type: 'string' },
  threads: { type: 'string' },
};

/** --threads N (default every core, at most 8): kernel threads for the products, decoding steps included; the same tokens on any count. */
function threadsFlag(values: ParsedArgs['values']): number {
  return numberFlag(values, 'threads', Math.min(8, availableParallelism()), (v) => Number.isInteger(v) && v > 0, 'a positive integer');
}

function samplingOptions(values: ParsedArgs['values']): GenerateOptions {
  const stop = stringFlag(values, 'stop');
  return {
    maxTokens: numberFlag(values, 'max-tokens', 128, (v) => Number.isInteger(v) && v >= 0, 'an integer ≥ 0'),
    temperature: numberFlag(values, 'temperature', 0, (v) => v >= 0, 'a number ≥ 0 (0 = greedy)'),
    topK: numberFlag(values, 'top-k', 0, (v) => Number.isInteger(v) && v >= 0, 'an integer ≥ 0 (0 = off)'),
    topP: numberFlag(values, 'top-p', 1, (v) => v > 0 && v <= 1, 'a number in (0, 1]'),
    repetitionPenalty: numberFlag(values, 'repetition-penalty', 1, (v) => v > 0, 'a number > 0 (1 = off)'),
    repetitionWindow: numberFlag(values, 'repetition-window', 64, (v) => Number.isInteger(v) && v >= 0, 'an integer ≥ 0'),
    seed: numberFlag(values, 'seed', 0, (v) => Number.isInteger(v), 'an integer'),
    ...(stop !== undefined ? { stopStrings: [stop] } : {}),
  };
}

/** `cpu`: the model decodes on the CPU, so float32 matrices move into WebAssembly row panels (same bits, about 2.5× faster per token). */
function loadTextModel(dir: string, values: ParsedArgs['values'], command: string, cpu = true): TextModel {
  const dtypeText = stringFlag(values, 'dtype');
  const dtype: ImportLlamaOptions['dtype'] = dtypeText === undefined || dtypeText === 'float32' ? 'float32' : parseQuantFormat(dtypeText, '--dtype');
  const model = importLlama(dir, { dtype });
  if (cpu && dtype === 'float32') quantizeNetwork(model.network, 'float32', { release: true });
  if (!model.tokenizer) throw new UsageError(`${command}: ${join(dir, 'tokenizer.json')} is missing (generation needs the model's tokenizer)`);
  return new TextModel(model.network, model.config, model.tokenizer);
}

/**
 * loom generate <model-dir> --prompt <text> [sampling flags] [--gpu]: streams the continuation to
 * stdout. --gpu decodes on the GPU (src/gpu/llama.ts), falling back to the CPU with a message.
 */
export async function generateCommand(argv: string[], write: (s: string) => void, err: (s: string) => void): Promise<void> {
  const { positionals, values } = parseCommandArgs('generate', argv, { ...SAMPLING_FLAGS, prompt: { type: 'string' }, stats: { type: 'boolean' }, gpu: { type: 'boolean' } });
  const dir = requireOne(positionals, 'generate', 'model-dir');
  const prompt = stringFlag(values, 'prompt');
  if (prompt === undefined) throw new UsageError('generate: missing --prompt <text>');
  const options = samplingOptions(values);
  // The pool starts before the model loads: its packed matrices then live in the pool's memory.
  await withThreads(threadsFlag(values), () => generate(dir, prompt, options, values, write, err));
}

async function generate(dir: string, prompt: string, options: GenerateOptions, values: ParsedArgs['values'], write: (s: string) => void, err: (s: string) => void): Promise<void> {
  const dtype = stringFlag(values, 'dtype');
  const gpuDtype = values.gpu ? (dtype === undefined || dtype === 'float32' ? 'float32' : parseQuantFormat(dtype, '--dtype')) : null;
  // On the GPU the float32 weights are packed there, so the CPU keeps no second packed copy.
  const model = loadTextModel(dir, gpuDtype ? { ...values, dtype: undefined } : values, 'generate', !gpuDtype);
  let onGpu: { llama: import('../gpu/llama.js').GpuLlama; model: LanguageModel } | null = null;
  if (gpuDtype) {
    const { GpuLlama } = await import('../gpu/llama.js');
    try {
      const llama = await GpuLlama.create(model.network, model.config, { dtype: gpuDtype, maxSeq: model.session.maxSeq });
      onGpu = { llama, model: { session: llama, vocabSize: model.vocabSize, decode: (ids) => model.decode(ids) } };
    } catch (e) {
      if (!(e instanceof GpuUnavailableError)) throw e;
      err(`loom: --gpu: ${e.message}`);
      quantizeNetwork(model.network, gpuDtype, { release: true });
    }
  }
  const start = performance.now();
  const generation = onGpu ? new Generation(onGpu.model, model.encode(prompt), { stopTokens: model.stopTokens(), ...options }) : model.generate(prompt, options);
  let n = 0;
  try {
    for await (const step of generation) {
      write(step.text);
      n++;
    }
  } finally {
    onGpu?.llama.destroy();
  }
  write('\n');
  if (values.stats) {
    const s = (performance.now() - start) / 1000;
    const where = onGpu ? `on the GPU (${onGpu.llama.ctx.adapterInfo.description || onGpu.llama.ctx.adapterInfo.vendor || 'WebGPU'}), weights ${formatBytes(onGpu.llama.residentBytes)}` : `weights ${formatBytes(decodeResidentBytes(model.network))}`;
    err(`${n} tokens in ${s.toFixed(2)} s (${(n / s).toFixed(1)} tokens/s, prefill included), ended by ${generation.finishReason}; ${where}`);
  }
}

/** loom chat <model-dir> [--system <text>] [sampling flags]: one line per user turn from stdin (a terminal or a pipe). */
export async function chatCommand(argv: string[], write: (s: string) => void, interactive: boolean): Promise<void> {
  const { positionals, values } = parseCommandArgs('chat', argv, { ...SAMPLING_FLAGS, system: { type: 'string' } });
  const dir = requireOne(positionals, 'chat', 'model-dir');
  const options = samplingOptions(values);
  await withThreads(threadsFlag(values), () => chatLoop(dir, options, values, write, interactive));
}

async function chatLoop(dir: string, options: GenerateOptions, values: ParsedArgs['values'], write: (s: string) => void, interactive: boolean): Promise<void> {
  const chat = new ChatSession(loadTextModel(dir, values, 'chat'), stringFlag(values, 'system'));
  const rl = createInterface({ input: process.stdin, terminal: interactive });
  const prompt = (): void => {
    if (interactive) write('> ');
  };
  prompt();
  for await (const line of rl) {
    const text = line.trim();
    if (text === '/exit' || text === '/quit') break;
    if (text === '') {
      prompt();
      continue;
    }
    for await (const step of chat.send(text, options)) write(step.text);
    write('\n');
    prompt();
  }
  rl.close();
}

/** loom convert <in> <out>: safetensors ↔ Loom JSON by extension; a Hugging Face Llama folder converts too. */
export function convertCommand(argv: string[], out: (s: string) => void): void {
  const { positionals } = parseCommandArgs('convert', argv, {});
  if (positionals.length !== 2) throw new UsageError('convert: expected <in> <out> (usage: loom convert model.json model.safetensors, or the reverse)');
  const [input, output] = positionals;
  const outKind = output.endsWith('.safetensors') ? 'safetensors' : output.endsWith('.json') ? 'json' : null;
  if (!outKind) throw new UsageError(`convert: ${output}: expected a .json or .safetensors output file`);
  const isDir = existsSync(input) && statSync(input).isDirectory();
  let net;
  if (isDir && existsSync(join(input, 'config.json'))) {
    net = importLlama(input).network;
  } else if (input.endsWith('.json') && !isDir) {
    net = loadNetworkFile(input);
  } else {
    const loaded = loadUniversalFile(input);
    if (loaded.detection.architecture === 'llama-decoder') {
      const dir = isDir ? input : dirname(input);
      const hint = existsSync(join(dir, 'config.json')) ? `: loom convert ${dir} ${output}` : ` (put the model's config.json beside ${basename(input)} and convert the folder)`;
      throw new UsageError(`convert: ${input} holds a Llama-style decoder's tensors; its config.json says how to mount them, so convert the model folder${hint}`);
    }
    if (!loaded.network) throw new UsageError(`convert: ${input}: nothing to mount (${loaded.notes.join('; ') || 'unknown architecture'})`);
    net = loaded.network;
  }
  if (outKind === 'safetensors') saveNetworkSafetensors(net, output);
  else saveNetworkFile(net, output);
  const tied = tiedOwners(net).size;
  out(`converted ${input} → ${output}: ${net.layers().length} layers, ${distinctParameterCount(net)} parameters${tied ? ` (${tied} tied layer${tied > 1 ? 's' : ''} sharing another's)` : ''}`);
}

/** Parameters counted once per weight store, so a tied LM head does not count twice. */
function distinctParameterCount(net: VolumetricNetwork): number {
  const seen = new Set<unknown>();
  let n = 0;
  for (const layer of net.allLayers()) {
    if (!layer.weights || seen.has(layer.weights)) continue;
    seen.add(layer.weights);
    n += layer.weights.count;
  }
  return n;
}

/** Whether `loom info` should describe `path` as tensors (a .safetensors file, an index or a model folder). */
export function isTensorPath(path: string): boolean {
  if (path.endsWith('.safetensors') || path.endsWith('.safetensors.index.json')) return true;
  return existsSync(path) && statSync(path).isDirectory();
}

/** loom info on a safetensors file or model folder: tensors, detected architecture, config.json. */
export function tensorInfoCommand(path: string, json: boolean, out: (s: string) => void): void {
  const source = openSafetensors(path);
  const detection = detectArchitecture(source);
  const isDir = statSync(path).isDirectory();
  const config = isDir && existsSync(join(path, 'config.json')) ? readLlamaConfig(path) : null;
  const bytes = source.tensors.reduce((n, t) => n + (t.end - t.begin), 0);
  const params = source.tensors.reduce((n, t) => n + t.count, 0);
  const summary = {
    source: source.source,
    tensors: source.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape })),
    parameters: params,
    bytes,
    architecture: detection.architecture,
    notes: detection.notes,
    ...(config ? { config } : {}),
  };
  if (json) {
    out(JSON.stringify(summary, null, 2));
    return;
  }
  out(`${source.source}: ${source.tensors.length} tensors, ${params} parameters, ${formatBytes(bytes)}; architecture ${detection.architecture}`);
  if (config) {
    out(
      `${config.architecture}: hidden ${config.hiddenSize}, ${config.numLayers} layers, ${config.numHeads} heads (${config.numKVHeads} KV, head_dim ${config.headDim}), ` +
        `intermediate ${config.intermediateSize}, vocab ${config.vocabSize}, rope_theta ${config.ropeTheta}${ropeScalingText(config)}, ${config.tieWordEmbeddings ? 'tied' : 'untied'} embeddings`,
    );
  }
  const shown = source.tensors.slice(0, 40);
  for (const t of shown) out(`  ${t.name}  ${t.dtype}  [${t.shape.join(', ')}]`);
  if (source.tensors.length > shown.length) out(`  … ${source.tensors.length - shown.length} more (--json lists all)`);
  for (const note of detection.notes) out(`note: ${note}`);
}

function ropeScalingText({ ropeScaling: s }: LlamaConfig): string {
  if (!s) return '';
  if (s.type === 'linear') return ` (linear scaling ×${s.factor})`;
  return ` (llama3 scaling ×${s.factor}, low/high frequency factors ${s.lowFreqFactor}/${s.highFreqFactor}, original context ${s.originalMaxPositions})`;
}

/** Runs an async command and reports its failure as main() does for synchronous ones. */
export function runAsyncCommand(task: Promise<void>, err: (s: string) => void): void {
  task.catch((e: unknown) => {
    if (e instanceof LoomError) {
      err(`loom: ${e.message}`);
      process.exitCode = e instanceof UsageError ? 2 : 1;
      return;
    }
    err(`loom: internal error: ${(e as Error)?.message ?? String(e)}${process.env.LOOM_DEBUG ? `\n${(e as Error).stack}` : ' (set LOOM_DEBUG=1 for the stack)'}`);
    process.exitCode = 70;
  });
}
