"""PyTorch CPU peer for bench/layers.ts: the Conv2d pair forward (64x1x28x28 -> 16 -> 32 channels, 3x3,
stride 1, padding 1), nn.LSTM(32, 64) on (seq 50, batch 16) forward and forward+backward, and causal
nn.MultiheadAttention(256, 8) and a SwiGLU MLP (256 -> 1024) on 8 x 128 tokens forward+backward, and
cross-entropy's loss and gradient over 512 x 2048 logits, one thread count.
Prints one JSON object. Usage: python3 torch_layers.py <threads> <seconds>"""
import json
import sys
import time

import torch

threads = int(sys.argv[1])
budget = float(sys.argv[2])
torch.set_num_threads(threads)
torch.manual_seed(0)


def timed(fn):
    """Median and best (minimum) ms per call, and the sample count; each sample is one call after 3 warm-ups."""
    for _ in range(3):
        fn()
    samples = []
    deadline = time.perf_counter() + budget
    while time.perf_counter() < deadline or len(samples) < 5:
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    samples.sort()
    return samples[len(samples) // 2] * 1000, samples[0] * 1000, len(samples)


cases = []
conv1 = torch.nn.Conv2d(1, 16, 3, padding=1)
conv2 = torch.nn.Conv2d(16, 32, 3, padding=1)
x = torch.rand(64, 1, 28, 28)


def conv_pair():
    with torch.no_grad():
        conv2(conv1(x))


ms, best, n = timed(conv_pair)
cases.append({"case": "conv2d pair fwd" + (" 2T" if threads == 2 else ""), "ms": ms, "best_ms": best, "samples": n})

lstm = torch.nn.LSTM(32, 64)
seq = torch.rand(50, 16, 32)


def lstm_fwd():
    with torch.no_grad():
        lstm(seq)


def lstm_fwd_bwd():
    lstm.zero_grad(set_to_none=True)
    out, _ = lstm(seq)
    out.sum().backward()


ms, best, n = timed(lstm_fwd)
cases.append({"case": "lstm fwd", "ms": ms, "best_ms": best, "samples": n})
ms, best, n = timed(lstm_fwd_bwd)
cases.append({"case": "lstm fwd+bwd", "ms": ms, "best_ms": best, "samples": n})
suffix = " 2T" if threads == 2 else ""
tokens = torch.rand(8, 128, 256, requires_grad=True)
grad_tokens = torch.rand(8, 128, 256)
mha = torch.nn.MultiheadAttention(256, 8, batch_first=True)
causal = torch.triu(torch.ones(128, 128, dtype=torch.bool), 1)


def mha_fwd_bwd():
    mha.zero_grad(set_to_none=True)
    tokens.grad = None
    y, _ = mha(tokens, tokens, tokens, attn_mask=causal, need_weights=False)
    y.backward(grad_tokens)


gate_up = torch.nn.Linear(256, 2048)
down = torch.nn.Linear(1024, 256)


def swiglu_fwd_bwd():
    gate_up.zero_grad(set_to_none=True)
    down.zero_grad(set_to_none=True)
    tokens.grad = None
    g, u = gate_up(tokens).chunk(2, dim=-1)
    down(torch.nn.functional.silu(g) * u).backward(grad_tokens)


ms, best, n = timed(mha_fwd_bwd)
cases.append({"case": "mha fwd+bwd" + suffix, "ms": ms, "best_ms": best, "samples": n})
ms, best, n = timed(swiglu_fwd_bwd)
cases.append({"case": "swiglu fwd+bwd" + suffix, "ms": ms, "best_ms": best, "samples": n})
logits = torch.rand(512, 2048, requires_grad=True)
labels = torch.arange(512) * 7919 % 2048


def cross_entropy():
    logits.grad = None
    torch.nn.functional.cross_entropy(logits, labels).backward()


ms, best, n = timed(cross_entropy)
cases.append({"case": "cross-entropy 512×2048 loss+grad" + suffix, "ms": ms, "best_ms": best, "samples": n})
print(json.dumps({"peer": "pytorch", "version": torch.__version__, "threads": threads, "cases": cases}))
