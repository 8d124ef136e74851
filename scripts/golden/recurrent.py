"""nn.RNN (tanh) and nn.LSTM, batch_first, forward and every gradient, for test/layers/recurrent.test.ts.
Torch's weights are mapped into the original Loom layout: RNN = W_ih [hid][in], W_hh [hid][hid],
b [hid]; LSTM = four such blocks in gate order i, f, g, o (torch's row order). Torch's two biases
are summed into Loom's one (each gets the same gradient). Writes test/fixtures/recurrent.json:
{"rnn": [case], "lstm": [case]}, case = {"batch", "seq", "in", "hid", "x", "weights", "grad_output",
"y", "grad_input", "grad_weights"}, flat row-major arrays ([B, S, in] inputs, [B, S, hid] outputs).
"""
from _common import flat, setup, write_json  # first: it pins torch's kernels before torch loads

import torch

setup(11)


def run(module, batch, seq, n_in, hid):
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * 0.4)
    x = torch.randn(batch, seq, n_in, requires_grad=True)
    y, _ = module(x)
    g = torch.randn_like(y)
    (y * g).sum().backward()
    return x, y, g


def layout(module, gates, grad):
    """Loom's parameter vector (grad=False) or its gradient (grad=True) from torch's weight_ih/hh and bias_ih/hh."""
    hid = module.hidden_size
    val = (lambda p: p.grad) if grad else (lambda p: p)
    out = []
    for k in range(gates):
        rows = slice(k * hid, (k + 1) * hid)
        out += flat(val(module.weight_ih_l0)[rows]) + flat(val(module.weight_hh_l0)[rows])
        out += flat(module.bias_ih_l0.grad[rows]) if grad else flat(module.bias_ih_l0[rows] + module.bias_hh_l0[rows])
    return out


def case(cls, gates, batch, seq, n_in, hid):
    module = cls(n_in, hid, batch_first=True) if cls is torch.nn.LSTM else cls(n_in, hid, nonlinearity="tanh", batch_first=True)
    x, y, g = run(module, batch, seq, n_in, hid)
    assert torch.allclose(module.bias_ih_l0.grad, module.bias_hh_l0.grad, rtol=1e-6, atol=1e-7)
    w, gw = layout(module, gates, False), layout(module, gates, True)
    return {"batch": batch, "seq": seq, "in": n_in, "hid": hid, "x": flat(x), "weights": w, "grad_output": flat(g),
            "y": flat(y), "grad_input": flat(x.grad), "grad_weights": gw}


sizes = [(3, 5, 4, 6), (2, 1, 3, 5), (1, 9, 7, 4)]
doc = {"rnn": [case(torch.nn.RNN, 1, *s) for s in sizes], "lstm": [case(torch.nn.LSTM, 4, *s) for s in sizes]}
write_json("recurrent.json", doc)
