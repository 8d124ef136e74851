"""SwiGLU y = down(act(gate(x)) * up(x)) with nn.Linear gate/up (in -> inter) and down (inter -> in),
act = SiLU (Loom's default) and relu(.)^2 (activation ReLU2): forward and every gradient, for
test/layers/swiglu.test.ts. Weights in the original Loom layout: gate.weight [inter][in],
up.weight [inter][in], down.weight [in][inter], gate.bias, up.bias, down.bias.
Writes test/fixtures/swiglu.json: {"cases": {name: {"activation", "in", "inter", "x_shape", "x",
"weights", "grad_output", "y", "grad_input", "grad_weights"}}}, flat row-major arrays.
"""
from _common import flat, setup, write_json  # first: it pins torch's kernels before torch loads

import torch

setup(5)
GATES = {"Silu": torch.nn.functional.silu, "ReLU2": lambda g: torch.relu(g) ** 2}


def case(activation, x_shape, n_in, inter):
    gate, up, down = torch.nn.Linear(n_in, inter), torch.nn.Linear(n_in, inter), torch.nn.Linear(inter, n_in)
    params = [gate.weight, up.weight, down.weight, gate.bias, up.bias, down.bias]
    x = torch.randn(*x_shape, requires_grad=True)
    y = down(GATES[activation](gate(x)) * up(x))
    g = torch.randn_like(y)
    (y * g).sum().backward()
    return {"activation": activation, "in": n_in, "inter": inter, "x_shape": list(x_shape), "x": flat(x),
            "weights": sum((flat(p) for p in params), []), "grad_output": flat(g), "y": flat(y),
            "grad_input": flat(x.grad), "grad_weights": sum((flat(p.grad) for p in params), [])}


doc = {"cases": {
    "silu_seq": case("Silu", (2, 3, 6), 6, 10),
    "silu_rows": case("Silu", (5, 8), 8, 12),
    "relu2": case("ReLU2", (4, 6), 6, 9),
}}
write_json("swiglu.json", doc)
