"""Scaled RoPE reference: test/fixtures/rope_scaling.json.

Hugging Face's rope_type "default", "linear" and "llama3" inverse frequencies, computed in torch as
transformers' modeling_rope_utils does, but in float64 (transformers works in float32; float64 makes
this a reference for the formula, not for one rounding):

    inv_freq[i] = 1 / theta^(2i / head_dim)                       i < head_dim / 2
    linear:  inv_freq / factor
    llama3:  wavelen = 2*pi / inv_freq
             wavelen > original_max_position_embeddings / low_freq_factor   -> inv_freq / factor
             wavelen < original_max_position_embeddings / high_freq_factor  -> inv_freq
             otherwise s = (original_max_position_embeddings / wavelen - low_freq_factor)
                           / (high_freq_factor - low_freq_factor)
                       -> (1 - s) * inv_freq / factor + s * inv_freq

and rotate-half RoPE applied with them: for x [n, head_dim] at positions start..start+n-1,
angle[p][i] = p * inv_freq[i], pairs (i, i + head_dim/2):
    out[:, i] = x[:, i] cos - x[:, i + half] sin,  out[:, i + half] = x[:, i] sin + x[:, i + half] cos.

Each case: head_dim, theta, scaling (null or transformers' rope_parameters keys), inv_freq [half]
(float64), segments: [{start, n, x [n*head_dim] (float32 values), rotated [n*head_dim] (float64)}].
Where transformers can be imported (the GPU machine), its own ROPE_INIT_FUNCTIONS are checked against
these inverse frequencies too, and it writes test/fixtures/llama/rope_scaling_logits.json: the
committed tiny Llama (test/fixtures/llama/llama) loaded by LlamaForCausalLM with its rope_parameters
replaced by each of MODEL_CASES, and the float32 logits at LOGIT_POSITIONS of PROMPT:
  {"prompt": [ids], "positions": [..], "cases": {name: {"rope_parameters": {..}, "logits": [[vocab] per position]}}}
"""
from _common import FIXTURES, flat, setup, write_json  # first: it pins torch's CPU kernels

import math
import os
import sys

import torch

CASES = {
    # Llama 3.1's own settings: all three wavelength bands occur for head_dim 64.
    "llama3_8b": {"head_dim": 64, "theta": 500000.0,
                  "scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                              "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
                  "starts": [0, 20000]},
    "llama3_small": {"head_dim": 16, "theta": 10000.0,
                     "scaling": {"rope_type": "llama3", "factor": 4.0, "low_freq_factor": 1.0,
                                 "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
                     "starts": [0, 300]},
    "linear": {"head_dim": 16, "theta": 10000.0, "scaling": {"rope_type": "linear", "factor": 2.5},
               "starts": [0, 1000]},
    "default": {"head_dim": 16, "theta": 10000.0, "scaling": None, "starts": [0, 1000]},
}
ROWS = 6

# For the end-to-end check: an original context of 64 puts the 16-wide heads' pairs in all three llama3 bands.
MODEL_CASES = {
    "llama3": {"rope_type": "llama3", "rope_theta": 10000.0, "factor": 4.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
    "linear": {"rope_type": "linear", "rope_theta": 10000.0, "factor": 3.0},
}
PROMPT = [(37 * i + 11) % 535 for i in range(48)]
LOGIT_POSITIONS = [5, 23, 47]


def default_inv_freq(head_dim, theta):
    return 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).to(torch.float64) / head_dim))


def inv_freq_for(head_dim, theta, scaling):
    inv_freq = default_inv_freq(head_dim, theta)
    if scaling is None:
        return inv_freq
    factor = scaling["factor"]
    if scaling["rope_type"] == "linear":
        return inv_freq / factor
    low, high = scaling["low_freq_factor"], scaling["high_freq_factor"]
    context = scaling["original_max_position_embeddings"]
    low_freq_wavelen = context / low
    high_freq_wavelen = context / high
    wavelen = 2 * math.pi / inv_freq
    inv_freq_llama = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth = (context / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * inv_freq_llama / factor + smooth * inv_freq_llama
    is_medium = ~(wavelen < high_freq_wavelen) & ~(wavelen > low_freq_wavelen)
    return torch.where(is_medium, smoothed, inv_freq_llama)


def rotate(x, positions, inv_freq):
    angle = positions[:, None] * inv_freq[None, :]
    cos, sin = angle.cos(), angle.sin()
    half = x.shape[-1] // 2
    a, b = x[:, :half], x[:, half:]
    return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)


def import_transformers():
    """transformers' LlamaConfig, LlamaForCausalLM and ROPE_INIT_FUNCTIONS, or None where it is not installed."""
    # This folder holds scripts named like packages transformers imports (tokenizers.py, safetensors.py).
    here = os.path.dirname(os.path.abspath(__file__))
    saved = sys.path[:]
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    try:
        from transformers import LlamaConfig, LlamaForCausalLM
        from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
        return LlamaConfig, LlamaForCausalLM, ROPE_INIT_FUNCTIONS
    except ImportError:
        return None
    finally:
        sys.path[:] = saved


def check_against_transformers(name, case, inv_freq):
    """transformers' own inverse frequencies (float32), when it is installed; None when it is not."""
    found = import_transformers()
    if found is None:
        return None
    LlamaConfig, _, ROPE_INIT_FUNCTIONS = found
    head_dim = case["head_dim"]
    rope = {"rope_theta": case["theta"], **(case["scaling"] or {"rope_type": "default"})}
    config = LlamaConfig(hidden_size=head_dim * 2, num_attention_heads=2, head_dim=head_dim,
                         max_position_embeddings=131072, rope_parameters=rope)
    rope_type = rope["rope_type"]
    if rope_type == "default":
        theirs = default_inv_freq(head_dim, case["theta"]).float()
    else:
        theirs, attention_factor = ROPE_INIT_FUNCTIONS[rope_type](config, "cpu")
        assert attention_factor == 1.0, f"{name}: attention_factor {attention_factor}"
    rel = ((theirs.double() - inv_freq).abs() / inv_freq).max().item()
    assert rel < 1e-6, f"{name}: transformers' inv_freq differs by {rel:.3g} (relative)"
    return rel


def main():
    setup(0)
    out = {"generator": "scripts/golden/rope_scaling.py", "torch": torch.__version__, "dtype": "float64",
           "tolerance": {"inv_freq_rtol": 1e-12, "rotated_atol": 1e-6}, "cases": {}}
    for name, case in CASES.items():
        inv_freq = inv_freq_for(case["head_dim"], case["theta"], case["scaling"])
        checked = check_against_transformers(name, case, inv_freq)
        if checked is not None:
            print(f"{name}: transformers' inv_freq within {checked:.3g} (relative, float32)")
        segments = []
        for start in case["starts"]:
            x = torch.randn(ROWS, case["head_dim"], dtype=torch.float32)
            positions = torch.arange(start, start + ROWS, dtype=torch.float64)
            rotated = rotate(x.double(), positions, inv_freq)
            segments.append({"start": start, "n": ROWS, "x": [float(v) for v in x.reshape(-1).tolist()],
                             "rotated": [float(v) for v in rotated.reshape(-1).tolist()]})
        out["cases"][name] = {"head_dim": case["head_dim"], "theta": case["theta"], "scaling": case["scaling"],
                              "inv_freq": [float(v) for v in inv_freq.tolist()], "segments": segments}
    write_json("rope_scaling.json", out)
    write_model_logits()


def write_model_logits():
    found = import_transformers()
    if found is None:
        print("rope_scaling.py: transformers is not installed; llama/rope_scaling_logits.json not rewritten")
        return
    LlamaConfig, LlamaForCausalLM, _ = found
    model_dir = os.path.join(FIXTURES, "llama", "llama")
    cases = {}
    for name, rope in MODEL_CASES.items():
        config = LlamaConfig.from_pretrained(model_dir, rope_parameters=dict(rope))
        model = LlamaForCausalLM.from_pretrained(model_dir, config=config, attn_implementation="eager").float().eval()
        rotary = model.model.rotary_emb
        assert rotary.rope_type == rope["rope_type"], rotary.rope_type
        ours = inv_freq_for(16, rope["rope_theta"], rope)
        rel = ((rotary.inv_freq.double() - ours).abs() / ours).max().item()
        assert rel < 1e-6, f"{name}: the model's inv_freq differs from the formula by {rel:.3g}"
        with torch.no_grad():
            logits = model(torch.tensor([PROMPT])).logits[0]
        cases[name] = {"rope_parameters": rope, "logits": [flat(logits[p]) for p in LOGIT_POSITIONS]}
        print(f"{name}: model inv_freq within {rel:.3g} of the formula")
    write_json(os.path.join("llama", "rope_scaling_logits.json"), {
        "generator": "scripts/golden/rope_scaling.py", "torch": torch.__version__, "model": "test/fixtures/llama/llama",
        "prompt": PROMPT, "positions": LOGIT_POSITIONS, "cases": cases})


if __name__ == "__main__":
    main()
