"""Conv and transposed-conv forward/backward reference: test/fixtures/conv.json.

Each case: the Loom-TS layer type and config, x, W (in Loom's layout), b (or null), gradOutput, and
PyTorch's y, preActivation, gradInput, gradW (Loom's layout), gradB. Loom's CNN weights are
[filters][in_channels][k...] like torch's Conv; its ConvTransposed weights are [filters][in_channels][k...]
(the original's conv_transposed*.go) while torch's ConvTranspose weight is [in_channels][filters][k...],
so W and gradW of transposed cases are torch's with the first two axes swapped.
"""
from _common import flat, setup, write_cases  # first: it configures torch before torch loads

import torch
import torch.nn.functional as F

ACTIVATIONS = {
    "Linear": lambda t: t,
    "ReLU": torch.relu,
    "Tanh": torch.tanh,
}

# Pre-activations closer than this to 0 are resampled (ReLU kink).
KINK_MARGIN = 1e-3

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
NAMES = {(False, 1): "CNN1", (False, 2): "CNN2", (False, 3): "CNN3",
         (True, 1): "ConvTransposed1D", (True, 2): "ConvTransposed2D", (True, 3): "ConvTransposed3D"}


def run(transposed, x, w, b, stride, padding, output_padding, activation):
    rank = x.dim() - 2
    if transposed:
        pre = CONV_T[rank](x, w, b, stride=stride, padding=padding, output_padding=output_padding)
    else:
        pre = CONV[rank](x, w, b, stride=stride, padding=padding)
    return pre, ACTIVATIONS[activation](pre)


def make_case(transposed, batch, c_in, filters, sizes, k, stride, padding, output_padding=0, bias=False, activation="Linear"):
    rank = len(sizes)
    w_shape = (c_in, filters) if transposed else (filters, c_in)
    w_shape = w_shape + (k,) * rank
    fan_in = (filters if transposed else c_in) * k ** rank
    for _ in range(1000):
        x = torch.randn(batch, c_in, *sizes)
        w = torch.randn(*w_shape) / fan_in ** 0.5
        b = torch.randn(filters) * 0.5 if bias else None
        pre, _ = run(transposed, x, w, b, stride, padding, output_padding, activation)
        if activation != "ReLU" or pre.abs().min().item() >= KINK_MARGIN:
            break
    else:
        raise RuntimeError("could not draw a case away from the kink")
    gradOutput = torch.randn(pre.shape)

    leaves = [x.clone().requires_grad_(True), w.clone().requires_grad_(True)]
    if bias:
        leaves.append(b.clone().requires_grad_(True))
    pre, y = run(transposed, leaves[0], leaves[1], leaves[2] if bias else None, stride, padding, output_padding, activation)
    (y * gradOutput).sum().backward()

    # The reference is torch's float64 computation rounded to float32: the float32 kernels' own
    # rounding (sums with cancellation in gradW) can reach most of the 1e-5 tolerance on its own.
    leaves64 = [t.detach().double().requires_grad_(True) for t in leaves]
    pre64, y64 = run(transposed, leaves64[0], leaves64[1], leaves64[2] if bias else None, stride, padding, output_padding, activation)
    (y64 * gradOutput.double()).sum().backward()
    pairs = {"preActivation": (pre, pre64), "y": (y, y64), "gradInput": (leaves[0].grad, leaves64[0].grad),
             "gradW": (leaves[1].grad, leaves64[1].grad)}
    if bias:
        pairs["gradB"] = (leaves[2].grad, leaves64[2].grad)
    excess = {n: ((a.detach().double() - e.detach()).abs() / (1e-6 + 1e-5 * e.detach().abs())).max().item() for n, (a, e) in pairs.items()}
    worst = max(excess, key=excess.get)
    name = NAMES[(transposed, rank)]
    print(f"  {name} {list(x.shape)} k{k} s{stride} p{padding} op{output_padding} bias={bias} {activation} -> {list(pre.shape)}: "
          f"torch float32 is {excess[worst]:.3f} x tolerance off float64 ({worst})")
    ref = {n: e.detach().float() for n, (_, e) in pairs.items()}

    def loom_w(t):
        return t.transpose(0, 1).contiguous() if transposed else t

    return {
        "type": name,
        "activation": activation,
        "batch": batch,
        "input_channels": c_in,
        "filters": filters,
        "kernel_size": k,
        "stride": stride,
        "padding": padding,
        "output_padding": output_padding,
        "input_sizes": list(sizes),
        "output_sizes": list(pre.shape[2:]),
        "bias": bias,
        "x": flat(x),
        "W": flat(loom_w(w)),
        "b": flat(b) if bias else None,
        "gradOutput": flat(gradOutput),
        "y": flat(ref["y"]),
        "preActivation": flat(ref["preActivation"]),
        "gradInput": flat(ref["gradInput"]),
        "gradW": flat(loom_w(ref["gradW"])),
        "gradB": flat(ref["gradB"]) if bias else None,
    }


def main():
    setup(7)
    cases = {
        "conv1d_s2p1": make_case(False, 2, 3, 4, (11,), 3, 2, 1),
        "conv1d_bias_relu": make_case(False, 2, 3, 4, (9,), 5, 1, 0, bias=True, activation="ReLU"),
        "conv2d_s2p1": make_case(False, 2, 3, 4, (7, 6), 3, 2, 1),
        "conv2d_bias_relu": make_case(False, 2, 3, 5, (5, 5), 3, 1, 1, bias=True, activation="ReLU"),
        "conv3d_s2p1": make_case(False, 2, 2, 3, (5, 4, 6), 3, 2, 1),
        "conv3d_bias_tanh": make_case(False, 1, 2, 3, (4, 4, 4), 2, 1, 0, bias=True, activation="Tanh"),
        "convT1d_s2p1": make_case(True, 2, 3, 2, (5,), 3, 2, 1),
        "convT1d_bias_op": make_case(True, 2, 3, 2, (5,), 4, 3, 1, output_padding=1, bias=True, activation="Tanh"),
        "convT2d_s2p1": make_case(True, 2, 3, 2, (4, 3), 3, 2, 1),
        "convT2d_bias_op": make_case(True, 2, 2, 3, (3, 3), 3, 2, 1, output_padding=1, bias=True, activation="ReLU"),
        "convT3d_s2p1": make_case(True, 1, 2, 2, (3, 3, 2), 3, 2, 1),
        "convT3d_bias_op": make_case(True, 2, 2, 2, (2, 3, 2), 2, 2, 1, output_padding=1, bias=True),
    }
    write_cases("conv", cases)


if __name__ == "__main__":
    main()
