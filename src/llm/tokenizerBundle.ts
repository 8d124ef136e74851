/**
 * A Hugging Face tokenizer folder's contents, already read (from files, fetch or memory):
 * tokenizer.json, tokenizer_config.json (bos/eos tokens, chat_template) and a separate template.
 */
import { FormatError } from '../core/errors.js';
import { ChatTemplateError, selectChatTemplate, type ChatTemplate } from './templates.js';
import { Tokenizer } from './tokenizer.js';

/** A tokenizer with its chat template and configuration. */
export interface TokenizerBundle {
  tokenizer: Tokenizer;
  /** The model's own template, else ChatML / Llama-3 by marker tokens; null for a tokenizer with neither. */
  chatTemplate: ChatTemplate | null;
  /** tokenizer_config.json as parsed, or null when the folder has none. */
  config: Record<string, unknown> | null;
}

export interface TokenizerTexts {
  tokenizerJson: string;
  tokenizerSource?: string;
  /** tokenizer_config.json's text, or null when there is none. */
  configJson?: string | null;
  configSource?: string;
  /** A template given apart from the config (chat_template.jinja's text, or chat_template.json's field); it wins over the config's. */
  chatTemplate?: unknown;
}

/** Builds the bundle; malformed content throws FormatError naming the file and field. */
export function tokenizerBundleFromText(texts: TokenizerTexts): TokenizerBundle {
  const configSource = texts.configSource ?? 'tokenizer_config.json';
  const config = texts.configJson === undefined || texts.configJson === null ? null : parseObject(texts.configJson, configSource);
  const tokenizer = Tokenizer.fromJSON(texts.tokenizerJson, {
    source: texts.tokenizerSource ?? 'tokenizer.json',
    bosToken: config === null ? null : tokenField(config, 'bos_token', configSource),
    eosToken: config === null ? null : tokenField(config, 'eos_token', configSource),
  });
  const templateField = texts.chatTemplate !== undefined ? texts.chatTemplate : config?.chat_template;
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

function parseObject(text: string, source: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new FormatError(source, `not valid JSON (${(e as Error).message})`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new FormatError(source, 'expected a JSON object at the top level');
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
