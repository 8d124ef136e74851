"""PyTorch eager peer for bench/gpu.ts decode: Hugging Face transformers LlamaForCausalLM with
SmolLM2-135M's shape (random init, float32, CUDA), a 128-token random prompt, then 128 greedy
tokens, each step one forward with past_key_values and the argmax read back (.item()).
Prints one JSON object."""
import json
import sys
import time

import torch

if not torch.cuda.is_available():
    print(json.dumps({"peer": "pytorch+transformers", "error": "CUDA not available"}))
    sys.exit(0)
from transformers import LlamaConfig, LlamaForCausalLM

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
torch.manual_seed(0)
config = LlamaConfig(
    hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
    num_key_value_heads=3, head_dim=64, vocab_size=49152, tie_word_embeddings=True,
    rms_norm_eps=1e-5, rope_theta=100000.0, max_position_embeddings=8192,
)
dev = torch.device("cuda")
model = LlamaForCausalLM(config).to(dev, dtype=torch.float32).eval()
prompt = torch.randint(0, config.vocab_size, (1, 128), device=dev)
steps = 128


@torch.no_grad()
def run():
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = model(input_ids=prompt, use_cache=True)
    token = int(out.logits[0, -1].argmax().item())
    t1 = time.perf_counter()
    past = out.past_key_values
    tokens = [token]
    for _ in range(steps):
        out = model(input_ids=torch.tensor([[token]], device=dev), past_key_values=past, use_cache=True)
        past = out.past_key_values
        token = int(out.logits[0, -1].argmax().item())
        tokens.append(token)
    torch.cuda.synchronize()
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1


@torch.no_grad()
def run_generate():
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=steps, min_new_tokens=steps, do_sample=False, pad_token_id=0)
    torch.cuda.synchronize()
    return time.perf_counter() - t0


run()
best_prefill, best_decode = float("inf"), float("inf")
for _ in range(3):
    p, d = run()
    best_prefill = min(best_prefill, p)
    best_decode = min(best_decode, d)
run_generate()
gen = min(run_generate() for _ in range(2))
import transformers

print(json.dumps({
    "peer": "pytorch+transformers",
    "torch": torch.__version__,
    "transformers": transformers.__version__,
    "device": torch.cuda.get_device_name(0),
    "tokens_per_s": steps / best_decode,
    "prefill_s": best_prefill,
    "generate_128_tokens_s": gen,
    "generate_tokens_per_s_incl_prefill": steps / gen,
}))
