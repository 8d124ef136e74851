"""Parallel combine modes add / avg / concat over Dense branches (tanh and linear, with bias):
forward and every gradient, for test/layers/containers.test.ts. Writes test/fixtures/parallel.json:
{"x": [...], "x_shape": [B, in], "grad_output": {mode: [...]},
 "branches": [{"in", "out", "activation", "W": [out*in], "b": [out]}, ...],
 "cases": {mode: {"y": [...], "y_shape": [...], "grad_input": [...], "grad_W": [[...] per branch], "grad_b": [[...] per branch]}}}
"""
import json
import os

import torch

torch.manual_seed(7)
torch.set_num_threads(1)
OUT = os.path.join(os.path.dirname(__file__), "..", "..", "test", "fixtures", "parallel.json")
B, IN = 3, 5
specs = [(4, "Tanh"), (4, "Linear"), (4, "Tanh")]
x0 = torch.randn(B, IN)
branches = [(torch.randn(o, IN) * 0.5, torch.randn(o) * 0.1, act) for o, act in specs]
ACT = {"Tanh": torch.tanh, "Linear": lambda t: t}

doc = {"x": x0.flatten().tolist(), "x_shape": [B, IN], "grad_output": {}, "cases": {},
       "branches": [{"in": IN, "out": W.shape[0], "activation": act, "W": W.flatten().tolist(), "b": b.tolist()} for W, b, act in branches]}
for mode in ["add", "avg", "concat"]:
    x = x0.clone().requires_grad_(True)
    params = [(W.clone().requires_grad_(True), b.clone().requires_grad_(True), act) for W, b, act in branches]
    outs = [ACT[act](x @ W.T + b) for W, b, act in params]
    if mode == "add":
        y = sum(outs)
    elif mode == "avg":
        y = sum(outs) / len(outs)
    else:
        y = torch.cat(outs, dim=1)
    g = torch.randn_like(y)
    (y * g).sum().backward()
    doc["grad_output"][mode] = g.flatten().tolist()
    doc["cases"][mode] = {"y": y.detach().flatten().tolist(), "y_shape": list(y.shape), "grad_input": x.grad.flatten().tolist(),
                          "grad_W": [W.grad.flatten().tolist() for W, _, _ in params], "grad_b": [b.grad.tolist() for _, b, _ in params]}
with open(OUT, "w") as f:
    json.dump(doc, f, separators=(",", ":"))
print("wrote", OUT)
