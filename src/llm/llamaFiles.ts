/** Node-only: a Hugging Face Llama-family model folder (config.json, safetensors, tokenizer) onto the grid. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { FormatError } from '../core/errors.js';
import { quantizeNetwork } from '../engine/decode.js';
import type { VolumetricNetwork } from '../grid/network.js';
import { readTextFile } from '../io/modelFiles.js';
import { openSafetensors } from '../io/safetensorsFiles.js';
import type { QuantFormat } from '../kernels/quant.js';
import { buildLlama, parseLlamaConfig, type LlamaConfig } from './llama.js';
import { loadTokenizerDir, type TokenizerBundle } from './tokenizerFiles.js';

export interface LlamaModel {
  network: VolumetricNetwork;
  config: LlamaConfig;
  /** The folder's tokenizer and chat template; null when it has no tokenizer.json. */
  tokenizer: TokenizerBundle | null;
  dir: string;
}

export interface ImportLlamaOptions {
  /** Pack the matrices for inference (default float32); the float32 copies are then released. */
  dtype?: 'float32' | QuantFormat;
}

/** Reads config.json. */
export function readLlamaConfig(dir: string): LlamaConfig {
  const path = join(dir, 'config.json');
  const text = readTextFile(path);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new FormatError(path, `not valid JSON (${(e as Error).message})`);
  }
  return parseLlamaConfig(json, path);
}

/** Imports a model folder: config.json, model.safetensors (or a sharded index) and, when present, tokenizer.json. */
export function importLlama(dir: string, options: ImportLlamaOptions = {}): LlamaModel {
  const config = readLlamaConfig(dir);
  const network = buildLlama(config, openSafetensors(dir));
  if (options.dtype && options.dtype !== 'float32') quantizeNetwork(network, options.dtype, { release: true });
  const tokenizer = existsSync(join(dir, 'tokenizer.json')) ? loadTokenizerDir(dir) : null;
  return { network, config, tokenizer, dir };
}
