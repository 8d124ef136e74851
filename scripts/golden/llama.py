"""Tiny random Hugging Face decoders saved with save_pretrained, and their logits and greedy continuations.

Needs transformers >= 5 with torch >= 2 (Debian's /usr/bin/python3 has neither; the GPU machine of
DEVELOPERS.md has both). Everything runs on the CPU in float32, so no GPU is used:
    python3 scripts/golden/llama.py --out test/fixtures/llama

Outputs, one folder per model under --out:
  llama/   LlamaForCausalLM: GQA (4 heads, 2 KV heads), tied embeddings, hidden 64, 2 layers,
           eos_token_id a list
  qwen2/   Qwen2ForCausalLM: q/k/v biases, untied LM head, rope_theta 1e6
Each holds config.json and model.safetensors (from save_pretrained), tokenizer.json (the byte-level
SmolLM2-style fixture of test/fixtures/tokenizers, so the folder is a complete model for the CLI),
tokenizer_config.json (ChatML template) and expected.json:
  {"prompt": [ids], "logits": [[vocab] per prompt position], "greedy": [20 ids],
   "margins": [top1 - top2 logit at each greedy step]}
The greedy ids come from a full forward per step (no KV cache), so they test the cache against the
plain computation; HF's cached generate() is checked to agree.
"""
import argparse
import inspect
import json
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import _common  # noqa: E402  (pins torch's CPU kernels; must precede torch)

# This folder's tokenizers.py would shadow the `tokenizers` package that transformers imports.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != HERE]
import torch  # noqa: E402

PROMPT = [536, 10, 200, 33, 400, 7, 99, 1, 512, 77, 301]
STEPS = 20
VOCAB = 544
CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def randomize(model, seed):
    # The default init (std 0.02, unit norm gains) gives near-uniform logits whose greedy choices
    # hinge on the last bits; larger random weights give clear margins.
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith(".bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.12 * torch.randn(p.shape, generator=g))


def expected_for(model):
    ids = torch.tensor([PROMPT])
    with torch.no_grad():
        logits = model(ids).logits[0]
        seq = list(PROMPT)
        greedy, margins = [], []
        for _ in range(STEPS):
            last = model(torch.tensor([seq])).logits[0, -1]
            top = torch.topk(last, 2)
            nxt = int(top.indices[0])
            greedy.append(nxt)
            margins.append(float(top.values[0] - top.values[1]))
            seq.append(nxt)
        cached = model.generate(ids, max_new_tokens=STEPS, do_sample=False, eos_token_id=None, pad_token_id=0,
                                min_new_tokens=STEPS)[0, len(PROMPT):].tolist()
    if cached != greedy:
        raise RuntimeError(f"HF cached generate disagrees with the full forward: {cached} vs {greedy}")
    return {"prompt": PROMPT, "logits": [[float(v) for v in row] for row in logits.tolist()],
            "greedy": greedy, "margins": margins}


def save(model, out, name, eos):
    folder = os.path.join(out, name)
    os.makedirs(folder, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    for extra in ("generation_config.json",):
        path = os.path.join(folder, extra)
        if os.path.exists(path):
            os.remove(path)
    shutil.copyfile(os.path.join(_common.FIXTURES, "tokenizers", "bytelevel-smollm2.json"), os.path.join(folder, "tokenizer.json"))
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump({"chat_template": CHATML, "eos_token": eos, "bos_token": None}, f, indent=1)
    with open(os.path.join(folder, "expected.json"), "w") as f:
        json.dump(expected_for(model), f)
    print(name, "->", folder, sorted(os.listdir(folder)))


def rope(config_class, theta):
    # transformers 5 keeps RoPE settings in rope_parameters (older versions: rope_theta).
    if "rope_parameters" in inspect.signature(config_class.__init__).parameters:
        return {"rope_parameters": {"rope_type": "default", "rope_theta": theta}}
    return {"rope_theta": theta}


def main():
    try:
        from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM
    except ImportError as e:
        # make_all.py runs every script with Debian's python, which lacks transformers.
        print(f"llama.py: skipped, {e} (needs transformers >= 5; see the module docstring)")
        return

    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=os.path.join(_common.FIXTURES, "llama"))
    out = parser.parse_args().out
    _common.setup(7)

    llama = LlamaForCausalLM(LlamaConfig(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-5, **rope(LlamaConfig, 10000.0),
        tie_word_embeddings=True, bos_token_id=535, eos_token_id=[535, 537], attn_implementation="eager",
    )).float().eval()
    randomize(llama, 1)
    save(llama, out, "llama", "<|im_end|>")

    qwen = Qwen2ForCausalLM(Qwen2Config(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-6, **rope(Qwen2Config, 1000000.0),
        tie_word_embeddings=False, bos_token_id=535, eos_token_id=537, attn_implementation="eager",
    )).float().eval()
    randomize(qwen, 2)
    save(qwen, out, "qwen2", "<|im_end|>")


if __name__ == "__main__":
    main()
