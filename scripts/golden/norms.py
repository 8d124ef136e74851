"""PyTorch references for RMSNorm, LayerNorm, Embedding and KMeans: forward outputs and the gradients of
L = sum(y * gradOutput) with respect to the input and every parameter.

Writes test/fixtures/norms.json: {"rmsnorm": {...cases}, "layernorm": {...}, "embedding": {...}, "kmeans": {...}}.
Every array is flat row-major float32 values; shapes are listed beside them. Inputs and parameters are
drawn in float32; the references are then computed by the same torch ops in float64 and rounded to float32,
because Loom-TS accumulates in doubles and torch's float32 LayerNorm loses ~1e-5 relative when |mean| >> std
(the "offset" case). The script prints how far torch's own float32 results are from those references.
"""
import json
import os

import torch

torch.manual_seed(20240607)
torch.set_num_threads(1)
OUT = os.path.join(os.path.dirname(__file__), "..", "..", "test", "fixtures", "norms.json")


def flat(t):
    return [float(v) for v in t.detach().float().reshape(-1).tolist()]


float32_gap = {}


def reference(kind, run):
    """run(dtype) -> (y, gradOutput, [tensors whose .grad to report]). Backpropagates sum(y * gradOutput)
    in float32 and float64, records the float32 gap, and returns [y, grads...] in float64."""
    results = {}
    for dt in (torch.float32, torch.float64):
        y, gy, leaves = run(dt)
        (y * gy.to(dt)).sum().backward()
        results[dt] = [y.detach()] + [t.grad for t in leaves]
    gap = max(float(((a.double() - b) / b.abs().clamp_min(1e-6)).abs().max())
              for a, b in zip(results[torch.float32], results[torch.float64]))
    float32_gap[kind] = max(float32_gap.get(kind, 0.0), gap)
    return results[torch.float64]


def leaf(t, dt):
    return t.detach().to(dt).clone().requires_grad_()


def rms_norm(x, g, eps):
    # torch 1.13 has no nn.RMSNorm.
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * g


def rmsnorm_case(shape, eps, scale=1.0, offset=0.0):
    h = shape[-1]
    x = torch.randn(*shape) * scale + offset
    g = 1 + 0.5 * torch.randn(h)
    gy = torch.randn(*shape)

    def run(dt):
        xl, gl = leaf(x, dt), leaf(g, dt)
        return rms_norm(xl, gl, 1e-6 if eps is None else eps), gy, [xl, gl]

    y, gx, gg = reference("RMSNorm", run)
    return {"shape": list(shape), "epsilon": eps, "x": flat(x), "g": flat(g), "gradOutput": flat(gy),
            "y": flat(y), "gradInput": flat(gx), "gradG": flat(gg)}


def layernorm_case(shape, eps, scale=1.0, offset=0.0):
    h = shape[-1]
    x = torch.randn(*shape) * scale + offset
    gamma = 1 + 0.5 * torch.randn(h)
    beta = 0.5 * torch.randn(h)
    gy = torch.randn(*shape)

    def run(dt):
        ln = torch.nn.LayerNorm(h, eps=1e-5 if eps is None else eps).to(dt)
        with torch.no_grad():
            ln.weight.copy_(gamma)
            ln.bias.copy_(beta)
        xl = leaf(x, dt)
        return ln(xl), gy, [xl, ln.weight, ln.bias]

    y, gx, ggamma, gbeta = reference("LayerNorm", run)
    return {"shape": list(shape), "epsilon": eps, "x": flat(x), "gamma": flat(gamma), "beta": flat(beta),
            "gradOutput": flat(gy), "y": flat(y), "gradInput": flat(gx), "gradGamma": flat(ggamma),
            "gradBeta": flat(gbeta)}


def embedding_case(vocab, dim, ids):
    ids = torch.tensor(ids, dtype=torch.long)
    table = torch.randn(vocab, dim)
    gy = torch.randn(*ids.shape, dim)

    def run(dt):
        emb = torch.nn.Embedding(vocab, dim).to(dt)
        with torch.no_grad():
            emb.weight.copy_(table)
        return emb(ids), gy, [emb.weight]

    y, gtable = reference("Embedding", run)
    return {"vocab": vocab, "dim": dim, "idsShape": list(ids.shape), "ids": [int(v) for v in ids.reshape(-1)],
            "table": flat(table), "gradOutput": flat(gy), "y": flat(y), "yShape": list(y.shape),
            "gradTable": flat(gtable)}


def kmeans_case(shape, k, temperature, mode):
    h = shape[-1]
    x = torch.randn(*shape)
    c = torch.randn(k, h)
    t = temperature or 1.0
    out_shape = list(shape[:-1]) + [k if mode == "probabilities" else h]
    gy = torch.randn(*out_shape)

    def run(dt):
        xl, cl = leaf(x, dt), leaf(c, dt)
        d2 = ((xl.unsqueeze(-2) - cl) ** 2).sum(-1)
        a = torch.softmax(-d2 / (2 * t * t), dim=-1)
        return (a if mode == "probabilities" else a @ cl), gy, [xl, cl]

    y, gx, gc = reference("KMeans " + mode, run)
    return {"shape": list(shape), "k": k, "temperature": temperature, "mode": mode, "x": flat(x), "centers": flat(c),
            "gradOutput": flat(gy), "y": flat(y), "yShape": out_shape, "gradInput": flat(gx),
            "gradCenters": flat(gc)}


fixture = {
    "rmsnorm": {
        "batch-rows": rmsnorm_case((4, 16), None),
        "per-position": rmsnorm_case((2, 5, 8), None),
        "eps-1e-3-small": rmsnorm_case((3, 6), 1e-3, scale=0.05),
        "large": rmsnorm_case((2, 64), None, scale=30.0, offset=4.0),
    },
    "layernorm": {
        "batch-rows": layernorm_case((4, 16), None),
        "per-position": layernorm_case((2, 5, 8), None),
        "eps-1e-3-small": layernorm_case((3, 6), 1e-3, scale=0.05),
        "offset": layernorm_case((2, 64), None, scale=2.0, offset=50.0),
    },
    "embedding": {
        "sequence-repeats": embedding_case(11, 6, [[3, 7, 3, 0], [10, 3, 7, 7]]),
        "flat-ids": embedding_case(5, 4, [4, 0, 4, 2, 4]),
    },
    "kmeans": {
        "probabilities": kmeans_case((5, 6), 4, 0.0, "probabilities"),
        "probabilities-t2-seq": kmeans_case((2, 3, 4), 3, 2.0, "probabilities"),
        "features": kmeans_case((4, 5), 3, 1.5, "features"),
    },
}

with open(OUT, "w") as f:
    json.dump(fixture, f, separators=(",", ":"))
print("wrote", OUT, os.path.getsize(OUT), "bytes")
print("max relative gap of torch float32 from the float64 references:", {k: "%.2e" % v for k, v in float32_gap.items()})
