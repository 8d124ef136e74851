/**
 * Node-only loading of a Hugging Face tokenizer folder: tokenizer.json, tokenizer_config.json
 * (bos/eos tokens, chat_template) and chat_template.jinja / chat_template.json when present.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { FormatError, LoomError } from '../core/errors.js';
import { readTextFile } from '../io/modelFiles.js';
import { ChatTemplateError, selectChatTemplate, type ChatTemplate } from './templates.js';
import { Tokenizer, type TokenizerOptions } from './tokenizer.js';

/** What loadTokenizerDir finds in a model folder. */
export interface TokenizerBundle {
  tokenizer: Tokenizer;
  /** The model's own template, else ChatML / Llama-3 by marker tokens; null for a tokenizer with neither. */
  chatTemplate: ChatTemplate | null;
  /** tokenizer_config.json as parsed, or null when the folder has none. */
  config: Record<string, unknown> | null;
}

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

/** tokenizer_config.json writes special tokens as a string or as {"content": ...}. */
function tokenField(config: Record<string, unknown>, key: string, path: string): string | null {
  const v = config[key];
  if (v === undefined || v === null) return null;
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && !Array.isArray(v) && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  throw new FormatError(path, `${key}: expected a string or {"content": "..."}`);
}

/** Loads a model folder's tokenizer and chat template (chat_template.jinja wins over tokenizer_config.json's field, as in transformers). */
export function loadTokenizerDir(dir: string): TokenizerBundle {
  const configPath = join(dir, 'tokenizer_config.json');
  const config = existsSync(configPath) ? readJsonObject(configPath) : null;
  const tokenizer = loadTokenizerFile(join(dir, 'tokenizer.json'), {
    bosToken: config === null ? null : tokenField(config, 'bos_token', configPath),
    eosToken: config === null ? null : tokenField(config, 'eos_token', configPath),
  });
  let templateField: unknown = config?.chat_template;
  const jinjaPath = join(dir, 'chat_template.jinja');
  const jsonPath = join(dir, 'chat_template.json');
  if (existsSync(jinjaPath)) templateField = readTextFile(jinjaPath);
  else if (templateField === undefined && existsSync(jsonPath)) templateField = readJsonObject(jsonPath).chat_template;
  const has = (t: string): boolean => tokenizer.hasToken(t);
  let chatTemplate: ChatTemplate | null;
  if (templateField !== undefined && templateField !== null) chatTemplate = selectChatTemplate(templateField, has);
  else {
    try {
      chatTemplate = selectChatTemplate(null, has);
    } catch (e) {
      if (!(e instanceof ChatTemplateError)) throw e;
      chatTemplate = null;
    }
  }
  return { tokenizer, chatTemplate, config };
}
