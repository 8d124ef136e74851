"""PyTorch CPU peer for bench/llm.ts: decode tokens/s of a Llama-shaped model with random weights.

Usage: torch_llm.py THREADS HIDDEN LAYERS HEADS KV_HEADS INTERMEDIATE VOCAB PROMPT STEPS
A hand-written decoder (RMSNorm, GQA attention with RoPE and a KV cache, SwiGLU, tied LM head) in
float32 under torch.inference_mode; prints one JSON object.
"""
import json
import sys
import time

import torch


def main():
    threads, d, L, H, KV, inter, vocab, prompt, steps = (int(v) for v in sys.argv[1:10])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    hd = d // H
    g = H // KV
    lin = lambda o, i: (torch.randn(o, i) / i ** 0.5).contiguous()
    emb = torch.randn(vocab, d) * 0.02
    layers = [dict(n1=torch.ones(d), q=lin(H * hd, d), k=lin(KV * hd, d), v=lin(KV * hd, d), o=lin(d, H * hd),
                   n2=torch.ones(d), gate=lin(inter, d), up=lin(inter, d), down=lin(d, inter)) for _ in range(L)]
    norm = torch.ones(d)
    maxlen = prompt + steps + 1
    inv = 1.0 / (10000 ** (torch.arange(0, hd, 2).float() / hd))
    ang = torch.outer(torch.arange(maxlen).float(), inv)
    cos = torch.cat([ang.cos(), ang.cos()], -1)
    sin = torch.cat([ang.sin(), ang.sin()], -1)
    kc = [torch.zeros(KV, maxlen, hd) for _ in range(L)]
    vc = [torch.zeros(KV, maxlen, hd) for _ in range(L)]

    def rms(x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w

    def rot(x, pos):
        half = hd // 2
        r = torch.cat([-x[..., half:], x[..., :half]], -1)
        return x * cos[pos] + r * sin[pos]

    def step(ids, start):
        n = ids.shape[0]
        pos = torch.arange(start, start + n)
        x = emb[ids]
        for i, p in enumerate(layers):
            h = rms(x, p['n1'])
            q = (h @ p['q'].T).view(n, H, hd).transpose(0, 1)
            k = (h @ p['k'].T).view(n, KV, hd).transpose(0, 1)
            v = (h @ p['v'].T).view(n, KV, hd).transpose(0, 1)
            q, k = rot(q, pos), rot(k, pos)
            kc[i][:, start:start + n] = k
            vc[i][:, start:start + n] = v
            K = kc[i][:, :start + n].repeat_interleave(g, 0)
            V = vc[i][:, :start + n].repeat_interleave(g, 0)
            s = (q @ K.transpose(1, 2)) / hd ** 0.5
            mask = torch.arange(start + n)[None, :] > pos[:, None]
            s = s.masked_fill(mask, float('-inf')).softmax(-1)
            a = (s @ V).transpose(0, 1).reshape(n, H * hd)
            x = x + a @ p['o'].T
            h = rms(x, p['n2'])
            x = x + (torch.nn.functional.silu(h @ p['gate'].T) * (h @ p['up'].T)) @ p['down'].T
        return rms(x[-1], norm) @ emb.T

    with torch.inference_mode():
        logits = step(torch.arange(prompt) % vocab, 0)
        times = []
        for t in range(steps):
            tok = torch.tensor([int(logits.argmax())])
            t0 = time.perf_counter()
            logits = step(tok, prompt + t)
            times.append(time.perf_counter() - t0)
    times.sort()
    ms = times[len(times) // 2] * 1000
    print(json.dumps({"peer": "pytorch", "version": torch.__version__, "threads": threads, "ms_per_token": ms,
                      "tokens_per_s": 1000 / ms, "weights_bytes": 4 * (emb.numel() + sum(t.numel() for p in layers for t in p.values()) + d)}))


if __name__ == "__main__":
    main()
