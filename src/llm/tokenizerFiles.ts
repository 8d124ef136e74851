/**
 * Node-only loading of a Hugging Face tokenizer folder: tokenizer.json, tokenizer_config.json
 * (bos/eos tokens, chat_template) and chat_template.jinja / chat_template.json when present.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { FormatError, LoomError } from '../core/errors.js';
import { readTextFile } from '../io/modelFiles.js';
import { Tokenizer, type TokenizerOptions } from './tokenizer.js';
import { tokenizerBundleFromText, type TokenizerBundle } from './tokenizerBundle.js';

export type { TokenizerBundle } from './tokenizerBundle.js';

/** Reads one tokenizer.json; FormatError names the file and the field on bad content. */
export function loadTokenizerFile(path: string, options: Omit<TokenizerOptions, 'source'> = {}): Tokenizer {
  return Tokenizer.fromJSON(readTextFile(path), { ...options, source: path });
}

function readJsonObject(path: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(readTextFile(path));
  } catch (e) {
    if (e instanceof LoomError) throw e;
    throw new FormatError(path, `not valid JSON (${(e as Error).message})`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new FormatError(path, 'expected a JSON object at the top level');
  return v as Record<string, unknown>;
}

/** Loads a model folder's tokenizer and chat template (chat_template.jinja wins over tokenizer_config.json's field, as in transformers). */
export function loadTokenizerDir(dir: string): TokenizerBundle {
  const configPath = join(dir, 'tokenizer_config.json');
  const jinjaPath = join(dir, 'chat_template.jinja');
  const jsonPath = join(dir, 'chat_template.json');
  const tokenizerPath = join(dir, 'tokenizer.json');
  return tokenizerBundleFromText({
    tokenizerJson: readTextFile(tokenizerPath),
    tokenizerSource: tokenizerPath,
    configJson: existsSync(configPath) ? readTextFile(configPath) : null,
    configSource: configPath,
    chatTemplate: existsSync(jinjaPath) ? readTextFile(jinjaPath) : existsSync(jsonPath) ? readJsonObject(jsonPath).chat_template : undefined,
  });
}
