import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { FormatError, LoomError } from '../../src/core/errors.js';
import { Rng } from '../../src/core/rng.js';
import { BYTE_TO_CHAR, regexSpans, translateOnigRegex } from '../../src/llm/pretokenize.js';
import { CHATML, encodeChat, renderChat } from '../../src/llm/templates.js';
import { Tokenizer } from '../../src/llm/tokenizer.js';
import { loadTokenizerDir, loadTokenizerFile } from '../../src/llm/tokenizerFiles.js';
import { ROOT } from '../helpers.js';

const DIR = `${ROOT}test/fixtures/tokenizers/`;
const NAMES = ['bytelevel-llama3', 'bytelevel-smollm2', 'bytelevel-possessive', 'bytelevel-prefix', 'spm-bytefallback', 'spm-metaspace', 'spm-pipeline'];

interface Expected {
  texts: string[];
  tokenizers: Record<string, { prefix: number[]; ids: number[][]; decoded: string[]; decoded_skip: (string | null)[]; literal: Record<string, number[]> }>;
}

const expected = JSON.parse(readFileSync(`${DIR}expected.json`, 'utf8')) as Expected;
const cache = new Map<string, Tokenizer>();
function load(name: string): Tokenizer {
  let t = cache.get(name);
  if (t === undefined) {
    t = Tokenizer.fromJSON(readFileSync(`${DIR}${name}.json`, 'utf8'), { source: `${name}.json` });
    cache.set(name, t);
  }
  return t;
}

function fixtureJson(name: string): Record<string, any> {
  return JSON.parse(readFileSync(`${DIR}${name}.json`, 'utf8'));
}

function show(s: string): string {
  return JSON.stringify(s.length > 80 ? `${s.slice(0, 77)}...` : s);
}

for (const name of NAMES) {
  test(`${name}: ids and decodes equal the Hugging Face tokenizers library's (scripts/golden/tokenizers.py)`, () => {
    const tok = load(name);
    const e = expected.tokenizers[name];
    expected.texts.forEach((text, k) => {
      const plain = tok.encode(text, { addSpecialTokens: false });
      assert.deepEqual(plain, e.ids[k], `${name} encode ${show(text)}`);
      const ids = tok.encode(text);
      assert.deepEqual(ids, [...e.prefix, ...e.ids[k]], `${name} encode with special tokens ${show(text)}`);
      assert.equal(tok.decode(ids), e.decoded[k], `${name} decode ${show(text)}`);
      assert.equal(tok.decode(ids, { skipSpecialTokens: true }), e.decoded_skip[k] ?? e.decoded[k], `${name} decode skipping specials ${show(text)}`);
      assert.deepEqual(tok.encode(text, { addSpecialTokens: false, parseSpecialTokens: false }), e.literal[k] ?? e.ids[k], `${name} encode with specials as text ${show(text)}`);
    });
  });
}

const POOL = [
  ...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789', ...'      \n\n\t\r', ...'.,;:!?\'"-_()[]{}<>/\\|@#$%^&*+=~`',
  ...'éèàâçñßøÆœ', 'e\u0301', ...'日本語中文한국어テキスト', '😀', '👍🏽', '👨\u200d👩\u200d👧', '🌍', ...'\u00a0\u3000\u0085\u2028\u200b\ufeff', "'s", "'LL", ...'ΣσςİıſK',
];

function randomText(rng: Rng, maxLen: number): string {
  let s = '';
  const n = 1 + rng.int(maxLen);
  for (let i = 0; i < n; i++) s += POOL[rng.int(POOL.length)];
  return s;
}

const ROUND_TRIP_FIXED = [
  'Hello world', '  two leading', 'trailing  ', 'multiple     spaces', 'line\nbreaks\n\n', '\r\n\tmixed\r\n', 'Café naïve façade résumé', 'Cafe\u0301 decomposed',
  '日本語のテキスト', '中文文本', '한국어', 'emoji 😀👍🎉 👨‍👩‍👧 👍🏽', '1234567890 3.14159 1,000,000', "I'm, you're, THEY'LL", 'tabs\t\there', '\u00a0\u3000\u0085\ufeff',
  'x'.repeat(1000), ' '.repeat(100), '\n'.repeat(20), '',
];

test('round trip: decode(encode(s)) == s for byte-level and byte-fallback tokenizers, fixed and 300 random strings each', () => {
  const rng = new Rng(7);
  const random = Array.from({ length: 300 }, () => randomText(rng, 60));
  for (const name of ['bytelevel-llama3', 'bytelevel-smollm2', 'bytelevel-possessive', 'spm-bytefallback']) {
    const tok = load(name);
    for (const s of [...ROUND_TRIP_FIXED, ...random]) {
      assert.equal(tok.decode(tok.encode(s, { addSpecialTokens: false })), s, `${name} ${show(s)}`);
      assert.equal(tok.decode(tok.encode(s), { skipSpecialTokens: true }), s, `${name} skip ${show(s)}`);
    }
  }
  // Special tokens inside the text come back too (byte-level decoding is exact for any token sequence).
  const smol = load('bytelevel-smollm2');
  const chat = '<|im_start|>user\nHi 😀<|im_end|>\n';
  assert.equal(smol.decode(smol.encode(chat)), chat);
  assert.equal(smol.decode(smol.encode(chat), { skipSpecialTokens: true }), 'user\nHi 😀\n');
});

test('special tokens: split out before BPE (longest match first), optional, ids and flags', () => {
  const tok = load('bytelevel-smollm2');
  const start = tok.tokenToId('<|im_start|>')!;
  const end = tok.tokenToId('<|im_end|>')!;
  assert.ok(tok.isSpecial(start) && tok.isSpecial(end));
  assert.equal(tok.idToToken(start), '<|im_start|>');
  const ids = tok.encode('<|im_start|>user<|im_end|>');
  assert.equal(ids[0], start);
  assert.equal(ids[ids.length - 1], end);
  assert.deepEqual(ids.slice(1, -1), tok.encode('user'));
  // Not parsed: the marker is ordinary text and no special id appears.
  const literal = tok.encode('<|im_start|>user', { parseSpecialTokens: false });
  assert.ok(!literal.includes(start));
  assert.equal(tok.decode(literal), '<|im_start|>user');

  // Longest match: with "<a>" and "<a><b>" both added, the longer one wins where both start.
  const doc = fixtureJson('bytelevel-smollm2');
  const next = tok.vocabSize;
  doc.added_tokens.push({ id: next, content: '<a>', special: true, normalized: false }, { id: next + 1, content: '<a><b>', special: true, normalized: false });
  const t2 = Tokenizer.fromJSON(doc);
  assert.deepEqual(t2.encode('<a><b><a>'), [next + 1, next]);
  assert.equal(t2.vocabSize, next + 2);

  // Post-processor BOS: added only when addSpecialTokens is on.
  const llama = load('bytelevel-llama3');
  assert.equal(llama.bosToken, '<|begin_of_text|>');
  assert.equal(llama.encode('hi')[0], llama.bosId);
  assert.notEqual(llama.encode('hi', { addSpecialTokens: false })[0], llama.bosId);
  const spm = load('spm-bytefallback');
  assert.deepEqual([spm.bosToken, spm.bosId, spm.eosToken, spm.eosId], ['<s>', 1, '</s>', 2]);
  assert.deepEqual(spm.encode('[INST] hi').slice(0, 2), [1, spm.tokenToId('[INST]')]);
});

test('byte fallback: characters outside the vocabulary become <0xNN> tokens and decode back; unk without it', () => {
  const spm = load('spm-bytefallback');
  assert.deepEqual(spm.tokenize('日', { addSpecialTokens: false }), ['▁', '<0xE6>', '<0x97>', '<0xA5>']);
  assert.deepEqual(spm.tokenize('a\nb', { addSpecialTokens: false }), ['▁', 'a', '<0x0A>', 'b']);
  assert.equal(spm.decode(spm.encode('日\n本', { addSpecialTokens: false })), '日\n本');
  assert.equal(spm.decode(spm.encode('日\n本')), '<s> 日\n本', 'BOS decodes as text unless skipped, as in Hugging Face');
  // Invalid UTF-8 from stray byte tokens decodes to one U+FFFD per byte, as ByteFallback does.
  const e6 = spm.tokenToId('<0xE6>')!;
  assert.equal(spm.decode([spm.tokenToId('a')!, e6, e6, spm.tokenToId('b')!]), 'a\ufffd\ufffdb');

  const ms = load('spm-metaspace');
  const unk = ms.tokenToId('<unk>')!;
  const ids = ms.encode('a<<b', { addSpecialTokens: false });
  assert.deepEqual(ids.filter((id) => id === unk).length, 2, 'fuse_unk false: one <unk> per unknown character');
  const fused = fixtureJson('spm-metaspace');
  fused.model.fuse_unk = true;
  assert.equal(Tokenizer.fromJSON(fused).encode('a<<b').filter((id) => id === unk).length, 1, 'fuse_unk true: one <unk> for the run');
});

/** A hand-made BPE: merges a+b (rank 0), b+c (1), ab+c (2), a+a (3). */
function tinyBpe(extra: Record<string, unknown> = {}): Tokenizer {
  return Tokenizer.fromJSON({
    model: { type: 'BPE', vocab: { a: 0, b: 1, c: 2, ab: 3, bc: 4, abc: 5, '<unk>': 6, aa: 7 }, merges: ['a b', ['b', 'c'], 'ab c', 'a a'], unk_token: '<unk>', ...extra },
  });
}

test('BPE merges by rank, leftmost first among equal ranks (hand-computed ids)', () => {
  const t = tinyBpe();
  assert.deepEqual(t.encode('abc'), [5]); // a b c → ab c → abc
  assert.deepEqual(t.encode('bcab'), [4, 3]); // (a,b) rank 0 first, then (b,c)
  assert.deepEqual(t.encode('aaaa'), [7, 7]); // leftmost a+a first, then the remaining pair
  assert.deepEqual(t.encode('aaa'), [7, 0]);
  assert.deepEqual(t.encode('xa'), [6, 0]); // unknown x → <unk>
  assert.deepEqual(t.encode('xxa'), [6, 6, 0]);
  assert.deepEqual(tinyBpe({ fuse_unk: true }).encode('xxa'), [6, 0]);
  assert.deepEqual(t.tokenize('abcab'), ['abc', 'ab']);
  assert.equal(t.decode([5, 3]), 'abc ab', 'no decoder: tokens joined with spaces, as Hugging Face does');
  assert.equal(t.vocabSize, 8);
  // ignore_merges: a word that is itself in the vocabulary is taken whole.
  const direct = Tokenizer.fromJSON({ model: { type: 'BPE', vocab: { a: 0, b: 1, c: 2, bc: 3, abc: 4 }, merges: ['b c'], ignore_merges: true } });
  assert.deepEqual(direct.encode('abc'), [4]);
  assert.deepEqual(direct.encode('abcc'), [0, 3, 2]);
});

test('byte-level alphabet is GPT-2\'s bytes_to_unicode', () => {
  assert.equal(BYTE_TO_CHAR[0x20], 'Ġ');
  assert.equal(BYTE_TO_CHAR[0x0a], 'Ċ');
  assert.equal(BYTE_TO_CHAR[0x41], 'A');
  assert.equal(BYTE_TO_CHAR[0xad], 'Ń');
  assert.equal(new Set(BYTE_TO_CHAR).size, 256);
});

test('Oniguruma patterns translate: (?i:...), possessive and atomic groups, Unicode classes, scripts', () => {
  const split = (pattern: string, text: string): string[] => regexSpans(new RegExp(translateOnigRegex(pattern), 'gu'), text).filter(([, , m]) => m).map(([a, b]) => text.slice(a, b));
  const llama3 = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  assert.deepEqual(split(llama3, "I'M here's 12345"), ['I', "'M", ' here', "'s", ' ', '123', '45']);
  assert.deepEqual(split('a++a', 'aaa'), [], 'possessive: never gives back');
  assert.deepEqual(split('(?>a+)b|a', 'aab'), ['aab']);
  assert.deepEqual(split('(?>a|ab)c', 'abc'), [], 'atomic: the first alternative is kept');
  assert.deepEqual(split('\\p{Han}+', 'ab日本c'), ['日本']);
  assert.deepEqual(split('(?i)abc', 'xABCx'), ['ABC']);
  assert.deepEqual(split('\\x{263A}|\\h+', '☺ ff'), ['☺', 'ff']);
  assert.deepEqual(split('[[:alpha:]]+', 'ab1c'), ['ab', 'c']);
  assert.deepEqual(split('\\d+', '٣4'), ['٣4'], '\\d is Unicode Nd, as in Oniguruma');
  assert.deepEqual(split('\\s+', 'a\u0085b\ufeffc'), ['\u0085'], '\\s is White_Space: NEL yes, BOM no');
  assert.deepEqual(split('^a', 'a\na'), ['a', 'a'], '^ is a line anchor in Ruby syntax');
  assert.deepEqual(split('a{,2}', 'aaa'), ['aa', 'a']);
  assert.deepEqual(split('x{2}+', 'xxxxx'), ['xxxx'], 'Ruby syntax: {n}+ repeats, it is not possessive');
  for (const bad of ['(a)\\1', '[a&&b]', '(?x) a', '\\G', '[[:nosuch:]]', '(?<!']) assert.throws(() => translateOnigRegex(bad), Error, bad);
});

test('malformed tokenizer.json: FormatError naming the field', () => {
  const good = (): Record<string, any> => fixtureJson('bytelevel-smollm2');
  const failsWith = (doc: unknown, message: string): void =>
    assert.throws(() => Tokenizer.fromJSON(doc), (e: unknown) => e instanceof FormatError && e instanceof LoomError && e.message === message, message);
  const merges12 = good();
  merges12.model.merges[12] = 42;
  failsWith(merges12, 'tokenizer.json: model.merges[12]: expected "a b" or ["a", "b"], got 42');
  const threeParts = good();
  threeParts.model.merges[3] = 'a b c';
  failsWith(threeParts, 'tokenizer.json: model.merges[3]: expected "a b" or ["a", "b"], got "a b c"');
  const unknownMerge = good();
  unknownMerge.model.merges[0] = 'zz Ġ';
  failsWith(unknownMerge, 'tokenizer.json: model.merges[0]: "zz" is not in model.vocab');
  const wordPiece = good();
  wordPiece.model.type = 'WordPiece';
  failsWith(wordPiece, 'tokenizer.json: model.type: expected BPE, got "WordPiece"');
  const badId = good();
  badId.model.vocab.a = -1;
  failsWith(badId, 'tokenizer.json: model.vocab["a"]: expected a non-negative integer, got -1');
  const badPre = good();
  badPre.pre_tokenizer.pretokenizers[1].type = 'Nonsense';
  assert.throws(() => Tokenizer.fromJSON(badPre), /pre_tokenizer\.pretokenizers\[1\]\.type: expected one of ByteLevel, Split, .*, got "Nonsense"/);
  const badSplit = good();
  badSplit.pre_tokenizer.pretokenizers[0] = { type: 'Split', pattern: { Regex: '(a)\\1' }, behavior: 'Isolated' };
  assert.throws(() => Tokenizer.fromJSON(badSplit), /pre_tokenizer\.pretokenizers\[0\]\.pattern\.Regex: unsupported regex "\(a\)\\\\1"/);
  const badBehavior = good();
  badBehavior.pre_tokenizer.pretokenizers[0] = { type: 'Split', pattern: { String: ' ' }, behavior: 'Sideways' };
  assert.throws(() => Tokenizer.fromJSON(badBehavior), /pre_tokenizer\.pretokenizers\[0\]\.behavior: expected one of Removed, Isolated/);
  const noContent = good();
  delete noContent.added_tokens[1].content;
  failsWith(noContent, 'tokenizer.json: added_tokens[1].content: expected a string, got nothing');
  const badDecoder = good();
  badDecoder.decoder = { type: 'WordPiece' };
  assert.throws(() => Tokenizer.fromJSON(badDecoder), /decoder\.type: expected one of ByteLevel, Metaspace/);
  const badTemplate = fixtureJson('spm-bytefallback');
  badTemplate.post_processor.single[0].SpecialToken.id = '<bos>';
  failsWith(badTemplate, 'tokenizer.json: post_processor.single[0]: "<bos>" is not in post_processor.special_tokens');
  const precompiled = fixtureJson('spm-bytefallback');
  precompiled.normalizer = { type: 'Precompiled', precompiled_charsmap: 'AAAA' };
  assert.throws(() => Tokenizer.fromJSON(precompiled), /normalizer\.type: Precompiled .* not supported/);
  failsWith({}, 'tokenizer.json: model: expected an object, got nothing');
  failsWith([], 'tokenizer.json: (top level): expected an object, got an array of length 0');
  assert.throws(() => Tokenizer.fromJSON('{"model": ', { source: 'x/tokenizer.json' }), (e: unknown) => e instanceof FormatError && /^x\/tokenizer\.json: not valid JSON/.test((e as Error).message));
  // An unk_token that is not in the vocabulary only matters once an unknown character needs it.
  const t = tinyBpe({ unk_token: '<nope>' });
  assert.deepEqual(t.encode('ab'), [3]);
  assert.throws(() => t.encode('x'), /model\.unk_token: "<nope>" is not in model\.vocab/);
});

test('bounded work: 80k-character adversarial inputs run in linear time through every tokenizer', () => {
  const shapes: Record<string, (n: number) => string> = {
    spaces: (n) => `${' '.repeat(n - 1)}x`,
    newlinesAndSpaces: (n) => '\n '.repeat(n / 2),
    punctuation: (n) => '!?'.repeat(n / 2),
    letters: (n) => 'a'.repeat(n),
    apostrophes: (n) => "'".repeat(n),
    digits: (n) => '7'.repeat(n),
    specialLookalike: (n) => '<|im_'.repeat(n / 5),
  };
  for (const name of NAMES) {
    const tok = load(name);
    for (const [shape, make] of Object.entries(shapes)) {
      const small = make(20_000);
      const big = make(80_000);
      tok.encode(small);
      const t0 = performance.now();
      tok.encode(small);
      const t1 = performance.now();
      const ids = tok.encode(big);
      const t2 = performance.now();
      assert.ok(ids.length > 0);
      // Linear work is well under these; a quadratic path (~6e9 steps at 80k) or backtracking blow-up is far over.
      assert.ok(t2 - t1 < 1500, `${name} ${shape}: ${(t2 - t1).toFixed(0)} ms for 80k characters`);
      assert.ok(t2 - t1 < 16 * (t1 - t0) + 100, `${name} ${shape}: ${(t1 - t0).toFixed(0)} ms for 20k, ${(t2 - t1).toFixed(0)} ms for 80k`);
    }
  }
  // Metaspace splitting a 300k-space run into pieces must not overflow the stack.
  const ms = fixtureJson('spm-pipeline');
  ms.pre_tokenizer = { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true };
  ms.normalizer = null;
  assert.equal(Tokenizer.fromJSON(ms).encode(' '.repeat(300_000), { addSpecialTokens: false }).length > 0, true);
});

test('tokenizerFiles: a model folder gives tokenizer, bos/eos from tokenizer_config.json and the chat template', () => {
  const dir = mkdtempSync(join(tmpdir(), 'loom-tok-'));
  try {
    writeFileSync(join(dir, 'tokenizer.json'), readFileSync(`${DIR}bytelevel-smollm2.json`));
    let bundle = loadTokenizerDir(dir);
    assert.equal(bundle.config, null);
    assert.equal(bundle.chatTemplate, CHATML, 'no config: picked by the <|im_start|> marker');
    const template = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ bos_token: null, eos_token: { content: '<|im_end|>', __type: 'AddedToken' }, chat_template: template }));
    bundle = loadTokenizerDir(dir);
    assert.equal(bundle.tokenizer.eosToken, '<|im_end|>');
    assert.equal(bundle.tokenizer.eosId, bundle.tokenizer.tokenToId('<|im_end|>'));
    const msgs = [{ role: 'user', content: 'Hi 2 you' }];
    assert.equal(bundle.chatTemplate!.render(msgs, { addGenerationPrompt: true }), CHATML.render(msgs, { addGenerationPrompt: true }));
    const ids = encodeChat(bundle.tokenizer, msgs, { template: bundle.chatTemplate!, addGenerationPrompt: true });
    assert.deepEqual(ids, bundle.tokenizer.encode(renderChat(msgs, { template: CHATML, addGenerationPrompt: true }), { addSpecialTokens: false }));
    assert.equal(ids[0], bundle.tokenizer.tokenToId('<|im_start|>'));
    writeFileSync(join(dir, 'chat_template.jinja'), 'JINJA FILE WINS\n');
    assert.equal(loadTokenizerDir(dir).chatTemplate!.render([]), 'JINJA FILE WINS');
    writeFileSync(join(dir, 'tokenizer_config.json'), '{"bos_token": 5}');
    assert.throws(() => loadTokenizerDir(dir), (e: unknown) => e instanceof FormatError && /tokenizer_config\.json: bos_token: expected a string/.test((e as Error).message));
    writeFileSync(join(dir, 'tokenizer_config.json'), '{ nope');
    assert.throws(() => loadTokenizerDir(dir), (e: unknown) => e instanceof FormatError && /not valid JSON/.test((e as Error).message));
    assert.equal(loadTokenizerFile(join(dir, 'tokenizer.json')).vocabSize, load('bytelevel-smollm2').vocabSize);
    const plain = join(dir, 'plain');
    writeFileSync(join(dir, 'tokenizer.json'), readFileSync(`${DIR}spm-metaspace.json`));
    rmSync(join(dir, 'chat_template.jinja'));
    rmSync(join(dir, 'tokenizer_config.json'));
    assert.equal(loadTokenizerDir(dir).chatTemplate, null, 'no template and no marker tokens');
    assert.throws(() => loadTokenizerDir(plain), (e: unknown) => e instanceof FormatError && /plain\/tokenizer\.json: no such file/.test((e as Error).message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
