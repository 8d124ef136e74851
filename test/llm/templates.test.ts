import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { LoomError } from '../../src/core/errors.js';
import { CHATML, ChatTemplateError, IncrementalChat, LLAMA3, compileChatTemplate, nextTurnText, renderChat, selectChatTemplate, type ChatMessage } from '../../src/llm/templates.js';
import { ROOT } from '../helpers.js';

interface Case {
  name: string;
  template: string;
  messages: ChatMessage[];
  add_generation_prompt: boolean;
  bos_token: string;
  eos_token: string;
  extra: Record<string, unknown>;
  expected?: string;
  error?: string;
}

const { cases } = JSON.parse(readFileSync(`${ROOT}test/fixtures/tokenizers/templates.json`, 'utf8')) as { cases: Case[] };
// scripts/golden/tokenizers.py pins strftime_now to this moment.
const NOW = new Date(2024, 6, 26, 9, 5, 3);

const CONV: ChatMessage[] = [
  { role: 'system', content: 'You are terse.' },
  { role: 'user', content: 'Hi there!' },
  { role: 'assistant', content: 'Hello. ' },
  { role: 'user', content: '  What is 2+2?\n' },
];

for (const c of cases) {
  test(`Jinja template "${c.name}" renders as Jinja2 does with transformers' settings (scripts/golden/tokenizers.py)`, () => {
    const render = (): string =>
      renderChat(c.messages, { template: c.template, addGenerationPrompt: c.add_generation_prompt, bosToken: c.bos_token, eosToken: c.eos_token, variables: c.extra, now: NOW });
    if (c.error !== undefined) {
      assert.throws(render, (e: unknown) => e instanceof ChatTemplateError && e instanceof LoomError && e.message === `chat template raised: ${c.error}`);
    } else {
      assert.equal(render(), c.expected);
    }
  });
}

const SMOLLM2 =
  "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}" +
  "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

test('SmolLM2 chat_template: default system prompt, turns and generation prompt (known answer)', () => {
  const out = renderChat([{ role: 'user', content: 'What is 2+2?' }], { template: SMOLLM2, addGenerationPrompt: true });
  assert.equal(
    out,
    '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' +
      '<|im_start|>user\nWhat is 2+2?<|im_end|>\n' +
      '<|im_start|>assistant\n',
  );
  const withSystem = renderChat(CONV.slice(0, 2), { template: SMOLLM2 });
  assert.equal(withSystem, '<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi there!<|im_end|>\n');
});

test('ChatML preset: known answer and equal to the ChatML Jinja template', () => {
  const out = renderChat(CONV, { template: CHATML, addGenerationPrompt: true });
  assert.equal(
    out,
    '<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi there!<|im_end|>\n<|im_start|>assistant\nHello. <|im_end|>\n' +
      '<|im_start|>user\n  What is 2+2?\n<|im_end|>\n<|im_start|>assistant\n',
  );
  const jinja = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
  for (const gen of [false, true]) assert.equal(CHATML.render(CONV, { addGenerationPrompt: gen }), renderChat(CONV, { template: jinja, addGenerationPrompt: gen }));
  assert.equal(CHATML.endOfTurn, '<|im_end|>');
});

test('Llama-3 preset: known answer and equal to Meta\'s template rendered by Jinja2', () => {
  const out = LLAMA3.render(CONV.slice(1, 2), { addGenerationPrompt: true });
  assert.equal(out, '<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi there!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n');
  for (const name of ['llama3', 'llama3-no-gen']) {
    const c = cases.find((x) => x.name === name)!;
    assert.equal(LLAMA3.render(c.messages, { addGenerationPrompt: c.add_generation_prompt }), c.expected, name);
  }
  assert.equal(LLAMA3.endOfTurn, '<|eot_id|>');
});

test('selectChatTemplate: chat_template string or named list first, else ChatML / Llama-3 by marker tokens', () => {
  const none = (): boolean => false;
  assert.equal(selectChatTemplate(SMOLLM2, none).render(CONV.slice(0, 2)), renderChat(CONV.slice(0, 2), { template: SMOLLM2 }));
  const listed = selectChatTemplate([{ name: 'tool_use', template: 'TOOLS' }, { name: 'default', template: 'DEFAULT' }], none);
  assert.equal(listed.render([]), 'DEFAULT');
  assert.equal(selectChatTemplate(undefined, (t) => t === '<|im_start|>' || t === '<|im_end|>'), CHATML);
  assert.equal(selectChatTemplate(null, (t) => t === '<|start_header_id|>' || t === '<|eot_id|>'), LLAMA3);
  assert.throws(() => selectChatTemplate(undefined, none), (e: unknown) => e instanceof ChatTemplateError && /no chat template/.test((e as Error).message));
  assert.throws(() => selectChatTemplate(42, none), ChatTemplateError);
  assert.throws(() => selectChatTemplate([{ name: 'x' }], none), ChatTemplateError);
});

test('nextTurnText / IncrementalChat: only the new turns, and a reset when history was rewritten', () => {
  for (const template of [CHATML, LLAMA3, compileChatTemplate(SMOLLM2)]) {
    const chat = new IncrementalChat({ template });
    const msgs: ChatMessage[] = [{ role: 'user', content: 'Hi' }];
    const first = chat.prefill(msgs);
    assert.equal(first.reset, false);
    assert.equal(first.text, template.render(msgs, { addGenerationPrompt: true }));
    // The model answers; its reply and end-of-turn token go into the cache.
    chat.accept(`Hello!${template.endOfTurn}`);
    msgs.push({ role: 'assistant', content: 'Hello!' }, { role: 'user', content: 'And now?' });
    const second = chat.prefill(msgs);
    assert.equal(second.reset, false, template.name);
    assert.equal(first.text + `Hello!${template.endOfTurn}` + second.text, template.render(msgs, { addGenerationPrompt: true }));
    assert.ok(second.text.length < second.full.length / 2, template.name);
    assert.ok(second.text.includes('And now?') && !second.text.includes('Hi'), template.name);
  }
  // The end-of-turn token not fed back: the delta starts with it.
  const t = nextTurnText('<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHey', [
    { role: 'user', content: 'Hi' },
    { role: 'assistant', content: 'Hey' },
    { role: 'user', content: 'Q' },
  ], { template: CHATML });
  assert.deepEqual([t.reset, t.text], [false, '<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n']);
  const rewritten = nextTurnText('<|im_start|>user\nSomething else', [{ role: 'user', content: 'Hi' }], { template: CHATML });
  assert.equal(rewritten.reset, true);
  assert.equal(rewritten.text, rewritten.full);
});

test('Jinja subset: whitespace control, trim_blocks/lstrip_blocks, scoping, loop variables', () => {
  const r = (src: string, vars: Record<string, unknown> = {}): string => compileChatTemplate(src).render([], { variables: vars });
  assert.equal(r('  {% if true %}\n  a\n  {% endif %}\nb\n'), '  a\nb');
  assert.equal(r('x  {%- if true %} y {% endif -%}  z'), 'x y z');
  assert.equal(r('{{ "a" }}\n{{ "b" }}\n'), 'a\nb');
  assert.equal(r('{% for x in [1,2,3] %}{% if loop.first %}{% set y = 5 %}{% endif %}[{{ y }}]{% endfor %}|{{ y }}'), '[5][][]|');
  assert.equal(r('{% set y = 1 %}{% for x in [1,2] %}{{ y }}{% set y = y + 10 %}{{ y }};{% endfor %}|{{ y }}'), '111;111;|1');
  assert.equal(r('{% if true %}{% set z = 3 %}{% endif %}{{ z }}'), '3');
  assert.equal(r('{% for a in x %}{{ a }}{% else %}none{% endfor %}', { x: [] }), 'none');
  assert.equal(r('{% for k in d %}{{ k }}{% endfor %}', { d: { k: 1, j: 2 } }), 'kj');
  assert.equal(r("{{ 'abc'[1:] }} {{ 'abc'[-1] }} {{ [1,2,3][::2] }} {{ 1 < 2 < 3 }} {{ true + 1 }}"), 'bc c [1, 3] True 2');
  assert.equal(r("{{ '  a b  c  '.split() }} {{ 'a b c'.split(none, 1) }} {{ 'x' if false }}|"), "['a', 'b', 'c'] ['a', 'b c'] |");
  assert.equal(r('{% set out %}in{{ 1 }}{% endset %}[{{ out }}]'), '[in1]');
  assert.equal(r('{% generation %}g{% endgeneration %}'), 'g');
  assert.equal(r('{{ x.y.z }}|{{ none.x }}|{{ missing[0] }}'), '||');
});

test('Jinja sandbox: no host objects reachable, bounded work, errors are ChatTemplateError', () => {
  const r = (src: string, vars: Record<string, unknown> = {}): string => compileChatTemplate(src).render([{ role: 'user', content: 'x' }], { variables: vars });
  assert.equal(r("{{ messages.constructor }}|{{ ''.constructor }}|{{ messages[0].__proto__ }}|{{ messages[0].constructor }}|{{ namespace.fn }}"), '||||');
  assert.equal(r("{{ messages[0]['hasOwnProperty'] }}|{{ {}.toString }}"), '|');
  const fails = (src: string, re: RegExp): void => assert.throws(() => r(src), (e: unknown) => e instanceof ChatTemplateError && re.test((e as Error).message), src);
  fails('{% for i in range(10000000) %}{% endfor %}', /range\(\) longer/);
  fails("{{ 'x' * 1000000000 }}", /too large/);
  fails('{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}', /nested deeper/);
  fails("{{ raise_exception('no tools here') }}", /^chat template raised: no tools here$/);
  fails('{{ 1 + "a" }}', /unsupported operand types for \+: int and str/);
  fails('{{ x | nosuchfilter }}', /unknown filter "nosuchfilter"/);
  fails('{{ undefined_thing() }}', /Undefined is not callable/);
  const parseFails = (src: string, re: RegExp): void => assert.throws(() => compileChatTemplate(src), (e: unknown) => e instanceof ChatTemplateError && re.test((e as Error).message), src);
  parseFails('line1\n{% if x %}\nno end', /line 2: missing \{% endif %\}/);
  parseFails('{{ a + }}', /line 1: expected an expression/);
  parseFails('a\nb\n{% include "x" %}', /line 3: unsupported tag \{% include %\}/);
  parseFails('{{ "unterminated }}', /unterminated string/);
  parseFails('{% for x in y %}{% endif %}', /line 1: unexpected \{% endif %\}/);
  assert.throws(() => CHATML.render([{ role: 'user', content: ['a'] }]), ChatTemplateError);
});
