"""Dense layer forward/backward reference: test/fixtures/dense.json (schema in README.md)."""
from _common import flat, setup, write_cases  # first: it pins torch's CPU kernels

import torch
import torch.nn.functional as F

ACTIVATIONS = {
    "ReLU": torch.relu,
    "Silu": F.silu,
    "GELU": lambda t: F.gelu(t, approximate="tanh"),
    "Tanh": torch.tanh,
    "Sigmoid": torch.sigmoid,
    "LeakyReLU": lambda t: F.leaky_relu(t, negative_slope=0.01),
    "ReLU2": lambda t: torch.relu(t) ** 2,
    "Linear": lambda t: t,
}

# Pre-activations closer than this to 0 are resampled (ReLU-family kinks).
KINK_MARGIN = 1e-3


def make_case(activation, batch, n_in, n_out, bias=True):
    for _ in range(1000):
        x = torch.randn(batch, n_in) * 1.5
        W = torch.randn(n_out, n_in) / n_in ** 0.5
        b = torch.randn(n_out) * 0.5 if bias else None
        pre = F.linear(x, W, b)
        positive = (pre > 0).float().mean().item()
        if pre.abs().min().item() >= KINK_MARGIN and 0.25 <= positive <= 0.75 and (x > 0).any() and (x < 0).any():
            break
    else:
        raise RuntimeError("could not draw a case away from the kinks")
    gradOutput = torch.randn(batch, n_out)

    x = x.clone().requires_grad_(True)
    W = W.clone().requires_grad_(True)
    if b is not None:
        b = b.clone().requires_grad_(True)
    pre = F.linear(x, W, b)  # x·Wᵀ + b
    y = ACTIVATIONS[activation](pre)
    (y * gradOutput).sum().backward()

    # Self-check: the float32 reference must sit well inside (at most half) the tolerance of the exact (float64) values.
    x64, W64 = x.detach().double().requires_grad_(True), W.detach().double().requires_grad_(True)
    b64 = b.detach().double().requires_grad_(True) if b is not None else None
    pre64 = F.linear(x64, W64, b64)
    y64 = ACTIVATIONS[activation](pre64)
    (y64 * gradOutput.double()).sum().backward()
    pairs = {"preActivation": (pre, pre64), "y": (y, y64), "gradInput": (x.grad, x64.grad), "gradW": (W.grad, W64.grad)}
    if b is not None:
        pairs["gradB"] = (b.grad, b64.grad)
    excess = {k: ((a.detach().double() - e.detach()).abs() / (1e-6 + 1e-5 * e.detach().abs())).max().item() for k, (a, e) in pairs.items()}
    worst = max(excess, key=excess.get)
    print(f"  {activation} [{batch}x{n_in}->{n_out}]: worst |float32 - float64| = {excess[worst]:.3f} x tolerance ({worst})")
    if excess[worst] > 0.5:
        raise AssertionError(f"{activation}: float32 reference is more than half the tolerance off float64")

    return {
        "activation": activation,
        "batch": batch,
        "in": n_in,
        "out": n_out,
        "shapes": {
            "x": [batch, n_in], "W": [n_out, n_in], "b": [n_out] if bias else None,
            "gradOutput": [batch, n_out], "y": [batch, n_out], "preActivation": [batch, n_out],
            "gradInput": [batch, n_in], "gradW": [n_out, n_in], "gradB": [n_out] if bias else None,
        },
        "x": flat(x),
        "W": flat(W),
        "b": flat(b) if bias else None,
        "gradOutput": flat(gradOutput),
        "y": flat(y),
        "preActivation": flat(pre),
        "gradInput": flat(x.grad),
        "gradW": flat(W.grad),
        "gradB": flat(b.grad) if bias else None,
        "minAbsPreActivation": float(pre.detach().abs().min().item()),
    }


def main():
    setup(1)
    cases = {}
    for name in ACTIVATIONS:
        cases[name] = make_case(name, 4, 7, 5)
    cases["ReLU_nobias"] = make_case("ReLU", 4, 7, 5, bias=False)
    cases["Tanh_big"] = make_case("Tanh", 3, 33, 17)
    write_cases("dense", cases)


if __name__ == "__main__":
    main()
