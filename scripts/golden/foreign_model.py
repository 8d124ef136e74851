"""Writes Loom persistence JSON files from the format description alone (not with Loom-TS), plus
PyTorch's outputs for them, so tests can check that `loom run` reads models written elsewhere.

Outputs in test/fixtures/foreign/:
  mlp-float32.json   3 Dense layers (no bias, as the original engine has none), native float32 weights
  mlp-int8.json      the same network with int8 weights (scale = maxAbs/127) and a uint4 layer
                     (the original's unsigned encoding: code*scale, no zero point)
  input.json         {"shape": [4, 6], "data": [...]}
  expected-float32.json / expected-int8.json   {"shape": [4, 3], "data": [...]} from torch
"""
import base64
import json
import os
import struct

import torch

torch.manual_seed(1234)
torch.set_num_threads(1)
OUT = os.path.join(os.path.dirname(__file__), "..", "..", "test", "fixtures", "foreign")
os.makedirs(OUT, exist_ok=True)

sizes = [(6, 8, "Tanh"), (8, 5, "ReLU"), (5, 3, "Linear")]
weights = [torch.randn(o, i) * 0.5 for i, o, _ in sizes]
x = torch.randn(4, 6)
ACT = {"Tanh": torch.tanh, "ReLU": torch.relu, "Linear": lambda t: t}


def layer_entry(idx, i, o, act, dtype, blob, scale):
    return {
        "z": 0, "y": 0, "x": idx, "l": 0,
        "type": "Dense", "activation": act, "dtype": dtype,
        "input_height": i, "output_height": o,
        "weights": base64.b64encode(blob).decode("ascii"), "native": True, "scale": scale,
    }


def forward(ws):
    h = x
    for w, (_, _, act) in zip(ws, sizes):
        h = ACT[act](h @ w.T)
    return h


def write(name, obj):
    with open(os.path.join(OUT, name), "w") as f:
        json.dump(obj, f, indent=2)


def as_tensor_json(t):
    return {"shape": list(t.shape), "data": [float(v) for v in t.flatten()]}


# float32 model
layers = []
for idx, ((i, o, act), w) in enumerate(zip(sizes, weights)):
    blob = struct.pack("<%df" % w.numel(), *w.flatten().tolist())
    layers.append(layer_entry(idx, i, o, act, "float32", blob, 1))
write("mlp-float32.json", {"id": "foreign", "depth": 1, "rows": 1, "cols": 3, "layers_per_cell": 1, "layers": layers})
write("input.json", as_tensor_json(x))
write("expected-float32.json", as_tensor_json(forward(weights)))

# quantized model: int8, int8, uint4 (original's unsigned rule: abs(round(w/scale)), two per byte, high nibble first)
layers, deq = [], []
for idx, ((i, o, act), w) in enumerate(zip(sizes, weights)):
    flat = w.flatten()
    if idx < 2:
        scale = float(torch.tensor(flat.abs().max().item() / 127.0, dtype=torch.float32))
        codes = [max(-128, min(127, int(round(v / scale)))) for v in flat.tolist()]
        blob = struct.pack("<%db" % len(codes), *codes)
        layers.append(layer_entry(idx, i, o, act, "int8", blob, scale))
        deq.append(torch.tensor(codes, dtype=torch.float32).reshape(o, i) * scale)
    else:
        scale = float(torch.tensor(flat.abs().max().item() / 7.0, dtype=torch.float32))
        codes = [min(15, abs(int(round(v / scale)))) for v in flat.tolist()]
        padded = codes + [0] * (len(codes) % 2)
        blob = bytes((padded[k] << 4) | padded[k + 1] for k in range(0, len(padded), 2))
        layers.append(layer_entry(idx, i, o, act, "uint4", blob, scale))
        deq.append(torch.tensor(codes, dtype=torch.float32).reshape(o, i) * scale)
write("mlp-int8.json", {"id": "foreign-q", "depth": 1, "rows": 1, "cols": 3, "layers_per_cell": 1, "layers": layers})
write("expected-int8.json", as_tensor_json(forward(deq)))
print("wrote", sorted(os.listdir(OUT)))
