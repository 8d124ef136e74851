"""Small hand-built tokenizer.json files and the Hugging Face `tokenizers` library's encodings of them,
plus chat-template renderings by Jinja2 configured as transformers configures it.

Outputs in test/fixtures/tokenizers/:
  <name>.json        tokenizer.json files: byte-level BPE (Llama-3 Split regex, GPT-2/SmolLM2 regex with
                     Digits, a possessive-quantifier regex, add_prefix_space with lstrip/rstrip/single_word
                     added tokens) and SentencePiece-style BPE (Prepend/Replace normalizer with byte
                     fallback; Metaspace with unk; NFKC/Lowercase/Whitespace pipeline)
  expected.json      {"texts": [...], "tokenizers": {name: {"prefix": [...], "ids": [[...]],
                     "decoded": [...], "decoded_skip": [...]}}}; ids with add_special_tokens=False (with
                     True they are prefix + ids, checked here), decodes of prefix + ids with
                     skip_special_tokens False / True (null where equal to the first); literal:
                     {text index: ids} with encode_special_tokens=True, where they differ from ids
  templates.json     {"cases": [{"name", "template", "messages", "add_generation_prompt", "bos_token",
                     "eos_token", "extra", "expected" | "error"}]}

Merges are learned here by plain pair counting on a fixed corpus (ties broken by the pair's
characters), so the files do not depend on a trainer's version. Needs `tokenizers` and `jinja2`,
which Debian's /usr/bin/python3 lacks; this machine has wheels for both in /opt/pypi/files:
    /usr/bin/python3 -m venv /tmp/tokvenv
    /tmp/tokvenv/bin/pip install --no-index --no-deps /opt/pypi/files/tokenizers-0.22.2-*.whl \
        /opt/pypi/files/jinja2-3.1.6-*.whl /opt/pypi/files/markupsafe-3.0.3-*.whl
    /tmp/tokvenv/bin/python scripts/golden/tokenizers.py
Without them the script leaves the committed fixtures alone and exits 0 (so make_all.py still runs).
"""
import json
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# This file's name would shadow the `tokenizers` package.
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != HERE]

try:
    from tokenizers import Tokenizer
    from tokenizers import pre_tokenizers
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment
    from jinja2.ext import loopcontrols
except ImportError as e:
    print(f"tokenizers.py: skipped, {e} (see the module docstring for the venv recipe)")
    sys.exit(0)

OUT = os.path.join(HERE, "..", "..", "test", "fixtures", "tokenizers")
os.makedirs(OUT, exist_ok=True)

CORPUS = """The quick brown fox jumps over the lazy dog. It's 2024 and we're testing tokenizers!
Hello world, hello World, HELLO WORLD. I'll say: don't stop, they've gone, she'd know.
Café au lait, naïve façade, résumé, über, señor, Ærøskøbing. Ça va? Très bien.
def tokenize(text): return [t for t in text.split(" ") if t]  # code, 12345 + 678 = 13023
日本語のテキストと中文文本。한국어 텍스트. Emoji: 😀👍🎉 and more emoji 😀😀.
Numbers 3.14159, 1,000,000 and 42; tabs\there; lines
end here.  Double  spaces   and    more.
The the the and and and of of to to in in is is it it that that
"""

LLAMA3_PATTERN = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
POSSESSIVE_PATTERN = r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def learn_merges(words, base, count):
    """words: {tuple_of_symbols: frequency}. Returns merges, extending `base` (list of symbols)."""
    vocab = list(base)
    known = set(vocab)
    merges = []
    words = dict(words)
    for _ in range(count):
        pairs = {}
        for w, c in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] = pairs.get((a, b), 0) + c
        if not pairs:
            break
        best = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        merged = best[0] + best[1]
        merges.append(best)
        if merged not in known:
            known.add(merged)
            vocab.append(merged)
        new_words = {}
        for w, c in words.items():
            out = []
            i = 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(merged)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new_words[tuple(out)] = new_words.get(tuple(out), 0) + c
        words = new_words
    return vocab, merges


def fix_template_ids(post, added_tokens):
    """Fills TemplateProcessing's special token ids from the added tokens' ids."""
    if post is None:
        return
    for p in post.get("processors", [post]):
        for name, entry in p.get("special_tokens", {}).items():
            entry["ids"] = [next(t["id"] for t in added_tokens if t["content"] == name)]


def byte_level_tokenizer(pre_tokenizer, added, post_processor, merges_as_arrays, ignore_merges, n_merges):
    b2u = bytes_to_unicode()
    base = [b2u[b] for b in range(256)]
    # Words for merge learning come from the same pre-tokenizer the file declares.
    probe = Tokenizer.from_str(json.dumps({
        "version": "1.0", "added_tokens": [], "normalizer": None, "pre_tokenizer": pre_tokenizer,
        "post_processor": None, "decoder": None,
        "model": {"type": "BPE", "vocab": {c: i for i, c in enumerate(base)}, "merges": []},
    }))
    words = {}
    for piece, _ in probe.pre_tokenizer.pre_tokenize_str(CORPUS):
        key = tuple(piece)
        words[key] = words.get(key, 0) + 1
    vocab, merges = learn_merges(words, base, n_merges)
    vocab_map = {tok: i for i, tok in enumerate(vocab)}
    added_tokens = []
    for k, (content, special, extra) in enumerate(added):
        tok = {"id": len(vocab) + k, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
               "normalized": not special, "special": special}
        tok.update(extra)
        added_tokens.append(tok)
    fix_template_ids(post_processor, added_tokens)
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added_tokens,
        "normalizer": None,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": post_processor,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
            "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": ignore_merges,
            "vocab": vocab_map,
            "merges": [list(m) for m in merges] if merges_as_arrays else [f"{a} {b}" for a, b in merges],
        },
    }


def spm_tokenizer(normalizer, pre_tokenizer, decoder, byte_fallback, fuse_unk, extra_added, n_merges, post=True, drop_chars=""):
    specials = ["<unk>", "<s>", "</s>"]
    base = list(specials)
    if byte_fallback:
        base += [f"<0x{b:02X}>" for b in range(256)]
    norm = CORPUS.replace(" ", "▁")
    chars = sorted(set("▁" + norm) - set("\n\t") - set(drop_chars))
    base += chars
    words = {}
    for line in norm.split("\n"):
        if line:
            words[tuple("▁" + line)] = words.get(tuple("▁" + line), 0) + 1
    words = {tuple(c for c in w if c in chars): f for w, f in words.items()}
    vocab, merges = learn_merges(words, base, n_merges)
    vocab_map = {tok: i for i, tok in enumerate(vocab)}
    added = [{"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
             for i, s in enumerate(specials)]
    for k, (content, special) in enumerate(extra_added):
        added.append({"id": len(vocab) + k, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
                      "normalized": False, "special": special})
    post_processor = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                 {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}},
    } if post else None
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": normalizer, "pre_tokenizer": pre_tokenizer, "post_processor": post_processor, "decoder": decoder,
        "model": {
            "type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
            "end_of_word_suffix": None, "fuse_unk": fuse_unk, "byte_fallback": byte_fallback, "ignore_merges": False,
            "vocab": vocab_map, "merges": [[a, b] for a, b in merges],
        },
    }


BYTE_LEVEL_NO_REGEX = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}
LLAMA3_SPECIALS = [("<|begin_of_text|>", True, {}), ("<|end_of_text|>", True, {}), ("<|start_header_id|>", True, {}),
                   ("<|end_header_id|>", True, {}), ("<|eot_id|>", True, {}), ("hello world", False, {"normalized": False})]
CHATML_SPECIALS = [("<|endoftext|>", True, {}), ("<|im_start|>", True, {}), ("<|im_end|>", True, {})]

TOKENIZERS = {
    "bytelevel-llama3": byte_level_tokenizer(
        {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3_PATTERN}, "behavior": "Isolated", "invert": False},
            BYTE_LEVEL_NO_REGEX]},
        LLAMA3_SPECIALS,
        {"type": "Sequence", "processors": [
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
            {"type": "TemplateProcessing",
             "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
             "pair": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                      {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
             "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [None], "tokens": ["<|begin_of_text|>"]}}}]},
        merges_as_arrays=True, ignore_merges=True, n_merges=300),
    "bytelevel-smollm2": byte_level_tokenizer(
        {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]},
        CHATML_SPECIALS,
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        merges_as_arrays=False, ignore_merges=False, n_merges=300),
    "bytelevel-possessive": byte_level_tokenizer(
        {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": POSSESSIVE_PATTERN}, "behavior": "Isolated", "invert": False},
            BYTE_LEVEL_NO_REGEX]},
        CHATML_SPECIALS, None, merges_as_arrays=True, ignore_merges=False, n_merges=200),
    "bytelevel-prefix": byte_level_tokenizer(
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        [("<mask>", True, {"lstrip": True}), ("<sep>", True, {"rstrip": True}), ("word", False, {"single_word": True, "normalized": False})],
        None, merges_as_arrays=False, ignore_merges=False, n_merges=150),
    "spm-bytefallback": spm_tokenizer(
        {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
        None,
        {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        byte_fallback=True, fuse_unk=True, extra_added=[("[INST]", True), ("[/INST]", True)], n_merges=250, drop_chars="日本語中文"),
    "spm-metaspace": spm_tokenizer(
        None,
        {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False},
        {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False},
        byte_fallback=False, fuse_unk=False, extra_added=[("[INST]", True)], n_merges=200, post=False, drop_chars="😀👍🎉"),
    "spm-pipeline": spm_tokenizer(
        {"type": "Sequence", "normalizers": [{"type": "NFKC"}, {"type": "Lowercase"}, {"type": "Strip", "strip_left": True, "strip_right": True},
                                             {"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": " "}]},
        {"type": "Sequence", "pretokenizers": [
            {"type": "Whitespace"}, {"type": "Punctuation", "behavior": "Isolated"}, {"type": "Digits", "individual_digits": False},
            {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True}]},
        {"type": "Sequence", "decoders": [{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True}]},
        byte_fallback=True, fuse_unk=True, extra_added=[], n_merges=150),
}

HAND_TEXTS = [
    "", "Hello world", "Hello world!", " Hello", "  leading spaces", "trailing spaces  ", "multiple   spaces    here",
    "new\nline", "two\n\nnewlines\n", "\r\nwindows\r\nlines", "tabs\tand\t\ttabs", "   \n  \n ", "\n",
    "Café résumé naïve", "Cafe\u0301 (decomposed)", "日本語のテキスト", "中文文本和한국어", "emoji 😀👍🎉 family 👨‍👩‍👧 skin 👍🏽",
    "digits 1234567890 and 3.14159", "x=12345;y=678", "I'm you're they've he'd we'll it's", "I'M YOU'RE THEY'VE HE'D WE'LL IT'S",
    "don't DON'T Don't", "<|im_start|>user\nHi<|im_end|>\n", "<|begin_of_text|>Hello<|eot_id|>", "text<|endoftext|>more",
    "[INST] hi [/INST]", "a<s>b</s>c", "def f(x):\n    return x  # comment", "Ærøskøbing ß İstanbul ΣΊΣΥΦΟΣ ﬁne",
    "nbsp\u00a0here ideographic\u3000space nel\u0085line bom\ufeffthere", "zero\u200bwidth", "control\u0001chars\u007f",
    "mixed: Hello 世界 🌍 123 ñ", "hello world and hello  world", "<mask> masked <sep>  after <sep>x", "a word sword words word.",
    "   <mask>", "!!!???...,,,", "'''''", "a" * 300, " " * 50 + "x", "The quick brown fox jumps over the lazy dog.",
]


def random_texts(n, seed):
    rng = random.Random(seed)
    pool = (list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") * 3 + list(" " * 20) +
            list("\n\t\r.,;:!?'\"-_()[]{}<>/\\|@#$%^&*+=~`") + list("éèêëàâäôöùûüçñßøåæœÉÀÇ") + ["e\u0301", "a\u0308"] +
            list("日本語中文字한국어テキストひらがな") + ["😀", "👍", "🎉", "👍🏽", "👨\u200d👩\u200d👧", "🌍"] +
            list("\u00a0\u3000\u0085\u2028\u200b\ufeff") + ["'s", "'LL", "'Ve", "<|im_end|>", "<|endoftext|>", "<s>", "</s>", "[INST]"] +
            list("ΣσςİıſKΩ") + list("ابتثहिन्दी"))
    return ["".join(rng.choice(pool) for _ in range(rng.randint(1, 40))) for _ in range(n)]


TEXTS = HAND_TEXTS + random_texts(120, 1234)

expected = {"texts": TEXTS, "tokenizers": {}}
for name, doc in TOKENIZERS.items():
    text = json.dumps(doc, ensure_ascii=False, indent=None, separators=(",", ":"))
    with open(os.path.join(OUT, f"{name}.json"), "w", encoding="utf-8") as fh:
        fh.write(text)
    tok = Tokenizer.from_str(text)
    prefix = tok.encode("", add_special_tokens=True).ids
    entry = {"prefix": prefix, "ids": [], "decoded": [], "decoded_skip": [], "literal": {}}
    for t in TEXTS:
        plain = tok.encode(t, add_special_tokens=False).ids
        ids = tok.encode(t, add_special_tokens=True).ids
        # Stored once: with special tokens the encoding is always the prefix plus the plain ids here.
        assert ids == prefix + plain, (name, t)
        entry["ids"].append(plain)
        decoded = tok.decode(ids, skip_special_tokens=False)
        skipped = tok.decode(ids, skip_special_tokens=True)
        entry["decoded"].append(decoded)
        entry["decoded_skip"].append(None if skipped == decoded else skipped)
    # Special tokens written in the text treated as plain text (encode_special_tokens).
    tok.encode_special_tokens = True
    for k, t in enumerate(TEXTS):
        literal = tok.encode(t, add_special_tokens=False).ids
        if literal != entry["ids"][k]:
            entry["literal"][str(k)] = literal
    expected["tokenizers"][name] = entry

with open(os.path.join(OUT, "expected.json"), "w", encoding="utf-8") as fh:
    json.dump(expected, fh, ensure_ascii=False, separators=(",", ":"))


# ---------------------------------------------------------------------------------------------
# Chat templates, rendered the way transformers' apply_chat_template renders them.

def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def strftime_now(fmt):
    import datetime
    return datetime.datetime(2024, 7, 26, 9, 5, 3).strftime(fmt)


env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
env.filters["tojson"] = tojson
env.globals["raise_exception"] = raise_exception
env.globals["strftime_now"] = strftime_now

SMOLLM2 = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}"
           "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
           "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
LLAMA3 = ("{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}"
          "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")
QWEN25 = """{%- if tools %}
    {{- '<|im_start|>system\\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are provided with function signatures within <tools></tools> XML tags:\\n<tools>" }}
    {%- for tool in tools %}
        {{- "\\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\"name\\": <function-name>, \\"arguments\\": <args-json-object>}\\n</tool_call><|im_end|>\\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}
    {%- else %}
        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\\n<tool_call>\\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\\n<tool_response>\\n' }}
        {{- message.content }}
        {{- '\\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}
"""
MISTRAL = ("{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
           "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
           "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
           "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}"
           "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}")
LLAMA2 = ("{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}"
          "{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}"
          "{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
          "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
          "{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
          "{% else %}{% set content = message['content'] %}{% endif %}"
          "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
          "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}")
LLAMA32_DATE = """{{- bos_token }}
{%- if not date_string is defined %}
    {%- if strftime_now is defined %}
        {%- set date_string = strftime_now("%d %b %Y") %}
    {%- else %}
        {%- set date_string = "26 Jul 2024" %}
    {%- endif %}
{%- endif %}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{{- "Cutting Knowledge Date: December 2023\\n" }}
{{- "Today Date: " + date_string + "\\n\\n" }}
{{- system_message }}
{{- "<|eot_id|>" }}
{%- for message in messages %}
    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}
"""
# Exercises the rest of the supported language: macros, namespace, slicing, filters, tests, loop vars,
# dict iteration, ternaries, string methods, whitespace control and trim/lstrip blocks, comments.
KITCHEN = """{# a comment line #}
{% macro tag(name, body, sep=': ') -%}
<{{ name | upper }}>{{ sep }}{{ body }}</{{ name }}>
{%- endmacro %}
{% set ns = namespace(count=0, seen=[]) %}
{% for m in messages if m.role != 'system' %}
  {% set ns.count = ns.count + 1 %}
  {{ loop.index }}/{{ loop.length }} {{ loop.index0 }} {{ loop.revindex }} {{ 'first' if loop.first else ('last' if loop.last else 'mid') }}
  {{ tag(m.role, m.content | trim) }}
  {% if m.content is string and m.content | length > 5 %}long{% elif m.content | length == 0 %}empty{% else %}short{% endif %}

{% endfor %}
count={{ ns.count }} total={{ messages | length }} first={{ (messages | first).role }} last={{ (messages | last)['role'] }}
{{ messages[1:3] | map(attribute='role') | join(',') }} {{ messages[::-1] | map(attribute='role') | list | tojson }}
{% for k, v in {'b': 2, 'a': 1}.items() %}{{ k }}={{ v }};{% endfor %}
{{ "Hello World".lower() }} {{ "hello world".title() }} {{ "  pad  ".strip() }}|{{ "xxhixx".strip('x') }}|{{ "a,b,c".split(',') | join('+') }}
{{ "abc".startswith('a') }} {{ "abc".endswith('z') }} {{ "abc" ~ 1 ~ none ~ true }} {{ 7 // 2 }} {{ 7 % 3 }} {{ 2 ** 10 }} {{ 7 / 2 }} {{ -3 + 10 * 2 }}
{{ [1, 2] + [3] }} {{ 'x' * 3 }} {{ 'ell' in 'hello' }} {{ 'z' not in ['a', 'b'] }} {{ undefined_var is defined }} {{ none is none }}
{{ missing | default('dflt') }} {{ '' | default('empty', true) }} {{ [3, 1, 2] | sort | join }} {{ ['a', 'b'] | reverse | join }} {{ 'ab' | capitalize }}
{{ {'x': [1, {'y': 'é"q'}], 'n': none, 't': true} | tojson }} {{ {'k': 1} | tojson(indent=2) }}
{%- for i in range(5) %}{% if i == 1 %}{% continue %}{% endif %}{% if i == 4 %}{% break %}{% endif %}[{{ i }}]{% endfor %}
{{ messages | selectattr('role', 'equalto', 'user') | list | length }} {{ messages | rejectattr('role', 'equalto', 'user') | map(attribute='role') | first }}
{% if add_generation_prompt %}<gen>{% endif %}
  {%+ if true %}kept-indent{% endif %}
{{ strftime_now('%Y-%m-%d %H:%M:%S %b %B %a %A %y %%') }}
"""

CONV = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Hi there!"},
    {"role": "assistant", "content": "Hello. "},
    {"role": "user", "content": "  What is 2+2?\n"},
]
CONV_NOSYS = CONV[1:]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
TOOL_CONV = [
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
    {"role": "tool", "content": "{\"temp\": 21}"},
    {"role": "tool", "content": "{\"sky\": \"clear\"}"},
    {"role": "assistant", "content": "21 and clear."},
    {"role": "user", "content": "Thanks"},
]

CASES = [
    ("smollm2-with-system", SMOLLM2, CONV, True, {}),
    ("smollm2-default-system", SMOLLM2, CONV_NOSYS, True, {}),
    ("smollm2-no-gen", SMOLLM2, CONV_NOSYS, False, {}),
    ("llama3", LLAMA3, CONV, True, {}),
    ("llama3-no-gen", LLAMA3, CONV_NOSYS, False, {}),
    ("qwen25", QWEN25, CONV, True, {}),
    ("qwen25-default-system", QWEN25, CONV_NOSYS, True, {}),
    ("qwen25-tools", QWEN25, TOOL_CONV, True, {"tools": TOOLS}),
    ("mistral", MISTRAL, CONV_NOSYS, False, {}),
    ("mistral-bad-roles", MISTRAL, CONV, False, {}),
    ("llama2-system", LLAMA2, CONV, False, {}),
    ("llama2-bad-roles", LLAMA2, [CONV[1], CONV[1]], False, {}),
    ("llama32-date", LLAMA32_DATE, CONV, True, {}),
    ("llama32-given-date", LLAMA32_DATE, CONV_NOSYS, True, {"date_string": "01 Jan 2025"}),
    ("kitchen-sink", KITCHEN, CONV, True, {}),
    ("kitchen-sink-no-gen", KITCHEN, CONV_NOSYS, False, {}),
]

BOS = {"llama3": "<|begin_of_text|>", "llama32": "<|begin_of_text|>", "mistral": "<s>", "llama2": "<s>"}
EOS = {"llama3": "<|eot_id|>", "llama32": "<|eot_id|>", "mistral": "</s>", "llama2": "</s>"}

cases = []
for name, source, messages, gen, extra in CASES:
    family = name.split("-")[0]
    bos = BOS.get(family, "<|im_start|>")
    eos = EOS.get(family, "<|im_end|>")
    case = {"name": name, "template": source, "messages": messages, "add_generation_prompt": gen, "bos_token": bos,
            "eos_token": eos, "extra": extra}
    try:
        case["expected"] = env.from_string(source).render(messages=messages, add_generation_prompt=gen, bos_token=bos,
                                                          eos_token=eos, **extra)
    except jinja2.exceptions.TemplateError as e:
        case["error"] = str(e)
    cases.append(case)

with open(os.path.join(OUT, "templates.json"), "w", encoding="utf-8") as fh:
    json.dump({"cases": cases}, fh, ensure_ascii=False, indent=1)

sizes = {f: os.path.getsize(os.path.join(OUT, f)) for f in sorted(os.listdir(OUT))}
print("tokenizers.py: wrote", ", ".join(f"{f} ({s // 1024} KB)" for f, s in sizes.items()))
