"""MultiHeadAttention forward/backward reference: test/fixtures/attention.json.

A hand-written attention in torch, laid out as Loom's parameter vector: Wq [q×d], Wk [kv×d],
Wv [kv×d], Wo [d×q], bq [q], bk [kv], bv [kv], bo [d] (torch.nn.Linear weights). RoPE is the
rotate-half form (pairs i and i + head_dim/2, angle pos/θ^(2i/head_dim)), as the original's mha.go
and HF Llama apply it; query head h reads key/value head h // (num_heads/num_kv_heads).

Each case: config (the layer's JSON fields), x [batch, seq, d_model], params (flat), gradOutput,
y, gradInput, gradParams (flat, same layout).
"""
from _common import flat, setup, write_cases  # first: it pins torch's CPU kernels

import math

import torch


def rope_tables(seq, head_dim, theta, dtype):
    half = head_dim // 2
    pos = torch.arange(seq, dtype=torch.float64)[:, None]
    exponent = torch.arange(half, dtype=torch.float64)[None, :] * 2 / head_dim
    angle = pos / theta ** exponent
    return angle.cos().to(dtype), angle.sin().to(dtype)


def rotate(t, cos, sin):
    half = t.shape[-1] // 2
    a, b = t[..., :half], t[..., half:]
    return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)


def attention(x, params, cfg):
    B, S, d = x.shape
    H, KVH, hd = cfg["num_heads"], cfg["num_kv_heads"], cfg["head_dim"]
    q, kv = H * hd, KVH * hd
    sizes = [q * d, kv * d, kv * d, d * q, q, kv, kv, d]
    Wq, Wk, Wv, Wo, bq, bk, bv, bo = torch.split(params, sizes)
    Wq, Wk, Wv, Wo = Wq.view(q, d), Wk.view(kv, d), Wv.view(kv, d), Wo.view(d, q)
    Q = (x @ Wq.T + bq).view(B, S, H, hd).transpose(1, 2)
    K = (x @ Wk.T + bk).view(B, S, KVH, hd).transpose(1, 2)
    V = (x @ Wv.T + bv).view(B, S, KVH, hd).transpose(1, 2)
    theta = cfg.get("rope_freq_base", 10000)
    if theta > 0:
        cos, sin = rope_tables(S, hd, theta, x.dtype)
        Q, K = rotate(Q, cos, sin), rotate(K, cos, sin)
    K = K.repeat_interleave(H // KVH, dim=1)
    V = V.repeat_interleave(H // KVH, dim=1)
    scores = Q @ K.transpose(-1, -2) / math.sqrt(hd)
    if cfg.get("causal", False):
        mask = torch.ones(S, S, dtype=torch.bool).triu(1)
        scores = scores.masked_fill(mask, float("-inf"))
    P = torch.softmax(scores, dim=-1)
    A = (P @ V).transpose(1, 2).reshape(B, S, q)
    return A @ Wo.T + bo, P


def make_case(cfg, batch, seq, param_scale):
    d = cfg["d_model"]
    H = cfg["num_heads"]
    cfg = dict(cfg)
    cfg.setdefault("num_kv_heads", H)
    cfg.setdefault("head_dim", d // H)
    q, kv = H * cfg["head_dim"], cfg["num_kv_heads"] * cfg["head_dim"]
    n_params = 2 * q * d + 2 * kv * d + q + 2 * kv + d
    x = torch.randn(batch, seq, d)
    params = torch.randn(n_params) * param_scale
    # O(1) outputs and gradients: float32 cancellation then stays well under atol (the self-check below).
    gradOutput = torch.randn(batch, seq, d) * 0.25

    results = {}
    for dtype in (torch.float32, torch.float64):
        xt = x.detach().to(dtype).clone().requires_grad_(True)
        pt = params.detach().to(dtype).clone().requires_grad_(True)
        y, P = attention(xt, pt, cfg)
        (y * gradOutput.to(dtype)).sum().backward()
        results[dtype] = (y, xt.grad, pt.grad, P.detach())

    # Self-check: the float32 reference must sit well inside (at most half) the tolerance of the exact (float64) values.
    names = ["y", "gradInput", "gradParams"]
    excess = {}
    for name, a, e in zip(names, results[torch.float32], results[torch.float64]):
        a, e = a.detach().double(), e.detach()
        excess[name] = ((a - e).abs() / (1e-6 + 1e-5 * e.abs())).max().item()
    worst = max(excess, key=excess.get)
    last_row = results[torch.float32][3][..., -1, :]  # the query that sees every key
    print(f"  {cfg}: worst |float32 - float64| = {excess[worst]:.3f} x tolerance ({worst}); last query's largest weight {last_row.max().item():.3f}")
    if excess[worst] > 0.5:
        raise AssertionError("float32 reference is more than half the tolerance off float64")

    y, gx, gp, _ = results[torch.float32]
    return {
        "config": cfg,
        "shapes": {"x": [batch, seq, d], "params": [n_params]},
        "x": flat(x),
        "params": flat(params),
        "gradOutput": flat(gradOutput),
        "y": flat(y),
        "gradInput": flat(gx),
        "gradParams": flat(gp),
    }


def main():
    setup(7)
    cases = {
        # GQA (2 query heads per K/V head) with RoPE at Llama's base, causal, as decoders use it.
        "gqa_rope_causal": make_case({"d_model": 16, "num_heads": 4, "num_kv_heads": 2, "rope_freq_base": 10000, "causal": True}, 2, 5, 0.25),
        # Plain MHA: no RoPE (rope_freq_base <= 0), no mask.
        "mha_plain": make_case({"d_model": 16, "num_heads": 4, "rope_freq_base": -1, "causal": False}, 2, 5, 0.25),
        # Multi-query attention with head_dim·num_heads != d_model (query_dim 24 on d_model 8), a small RoPE base.
        "mqa_wide_heads": make_case({"d_model": 8, "num_heads": 4, "num_kv_heads": 1, "head_dim": 6, "rope_freq_base": 100, "causal": True}, 2, 6, 0.3),
    }
    write_cases("attention", cases)


if __name__ == "__main__":
    main()
