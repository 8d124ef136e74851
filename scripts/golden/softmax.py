"""Softmax layer variants, forward and input gradient: test/fixtures/softmax.json.

{"generator", "torch", "dtype": "float32", "tolerance": {"rtol": 1e-5, "atol": 1e-6},
 "cases": {name: {"layer": {JSON layer fields: softmax_type, temperature, mask, ...},
                  "shape": [...], "x": [...], "gradOutput": [...], "y": [...], "gradInput": [...],
                  "reference": "float32" | "float64"}}}

L = sum(y * gradOutput), gradInput = dL/dx. Standard, Temperature and Masked are torch's own float32
softmax (checked against float64). The others have no torch twin: they are written here with
differentiable torch ops in float64 (sparsemax and entmax-1.5 by sorting, Peters et al. 2019), so
their gradients come from autograd, independently of the engine's closed-form backward; y and
gradInput are those float64 values rounded to float32.
"""
from _common import flat, setup, write_cases  # noqa: I001  (before torch: it pins the CPU kernels)

import torch
import torch.nn.functional as F


def grouped(fn, x, group):
    """Applies fn over the last dim of x viewed as rows of `group` values."""
    shape = x.shape
    return fn(x.reshape(-1, group)).reshape(shape)


def sparsemax(z):
    zs, _ = torch.sort(z, dim=-1, descending=True)
    k = torch.arange(1, z.shape[-1] + 1, dtype=z.dtype)
    cum = zs.cumsum(-1)
    size = (1 + k * zs > cum).sum(-1, keepdim=True)
    tau = (cum.gather(-1, size - 1) - 1) / size
    return torch.clamp(z - tau, min=0)


def entmax15(z):
    z = (z - z.max(-1, keepdim=True).values.detach()) / 2
    zs, _ = torch.sort(z, dim=-1, descending=True)
    rho = torch.arange(1, z.shape[-1] + 1, dtype=z.dtype)
    mean = zs.cumsum(-1) / rho
    mean_sq = (zs ** 2).cumsum(-1) / rho
    delta = (1 - rho * (mean_sq - mean ** 2)) / rho
    tau = mean - torch.sqrt(torch.clamp(delta, min=0))
    size = (tau <= zs).sum(-1, keepdim=True)
    tau_star = tau.gather(-1, size - 1)
    return torch.clamp(z - tau_star, min=0) ** 2


def masked_softmax(z, mask):
    return torch.softmax(z.masked_fill(~mask, float("-inf")), dim=-1)


def make_case(layer, shape, fn, scale=2.0, reference="float32"):
    x = torch.randn(*shape) * scale
    g = torch.randn(*shape)
    out = {}
    for dtype in (torch.float32, torch.float64):
        xx = x.to(dtype).clone().requires_grad_(True)
        y = fn(xx)
        (y * g.to(dtype)).sum().backward()
        out[dtype] = (y.detach(), xx.grad)
    y32, g32 = out[torch.float32]
    y64, g64 = out[torch.float64]
    excess = max(((a.double() - e).abs() / (1e-6 + 1e-5 * e.abs())).max().item() for a, e in ((y32, y64), (g32, g64)))
    if reference == "float64":
        y32, g32 = y64.float(), g64.float()
    elif excess > 0.5:
        raise AssertionError(f"{layer}: float32 reference is {excess:.2f} x the tolerance off float64")
    print(f"  {layer['softmax_type']:13s} {str(list(shape)):12s} float32 drift {excess:.3f} x tolerance (reference {reference})")
    return {"layer": layer, "shape": list(shape), "x": flat(x), "gradOutput": flat(g), "y": flat(y32),
            "gradInput": flat(g32), "reference": reference}


def main():
    setup(3)
    row_mask = [True, False, True, True, False, True]
    sample_mask = [i % 4 <= i // 4 for i in range(12)]  # causal 3x4: row r sees columns 0..r
    mix = lambda a: (lambda z: (2 - a) * torch.softmax(z, -1) + (a - 1) * sparsemax(z))
    adaptive = lambda t: (lambda z: torch.softmax(F.layer_norm(z, z.shape[-1:], eps=1e-5) / t, -1))
    cases = {
        "standard": make_case({"softmax_type": "Standard"}, (3, 7), lambda z: torch.softmax(z, -1)),
        "standard_rows": make_case({"softmax_type": "standard", "input_height": 5}, (2, 3, 5), lambda z: torch.softmax(z, -1)),
        "temperature_sharp": make_case({"softmax_type": "Temperature", "temperature": 0.5}, (3, 6), lambda z: torch.softmax(z / 0.5, -1)),
        "temperature_smooth": make_case({"softmax_type": "TEMPERATURE", "temperature": 3}, (2, 9), lambda z: torch.softmax(z / 3, -1)),
        "masked_row": make_case({"softmax_type": "Masked", "mask": row_mask}, (3, 6), lambda z: masked_softmax(z, torch.tensor(row_mask))),
        "masked_sample": make_case(
            {"softmax_type": "Masked", "input_height": 4, "mask": sample_mask, "temperature": 0.8},
            (2, 12), lambda z: grouped(lambda r: masked_softmax(r / 0.8, torch.tensor(sample_mask).reshape(3, 4).repeat(2, 1)), z, 4)),
        "grid": make_case({"softmax_type": "Grid", "softmax_rows": 3, "softmax_cols": 4}, (2, 12), lambda z: grouped(lambda r: torch.softmax(r, -1), z, 4)),
        "hierarchical": make_case({"softmax_type": "Hierarchical", "hierarchy_levels": [2, 3, 4], "temperature": 1.5}, (2, 24),
                                  lambda z: grouped(lambda r: torch.softmax(r / 1.5, -1), z, 4)),
        "sparse": make_case({"softmax_type": "Sparse"}, (4, 8), sparsemax, reference="float64"),
        "sparse_temperature": make_case({"softmax_type": "Sparse", "temperature": 0.7}, (3, 10), lambda z: sparsemax(z / 0.7), reference="float64"),
        "entmax": make_case({"softmax_type": "Entmax"}, (4, 8), entmax15, reference="float64"),
        "entmax_rows": make_case({"softmax_type": "Entmax", "entmax_alpha": 1.5, "input_height": 6, "temperature": 0.5}, (2, 18),
                                 lambda z: grouped(lambda r: entmax15(r / 0.5), z, 6), reference="float64"),
        "mixture": make_case({"softmax_type": "Mixture"}, (3, 8), mix(1.5), reference="float64"),
        "mixture_alpha": make_case({"softmax_type": "Mixture", "entmax_alpha": 1.25, "temperature": 2}, (3, 8), lambda z: mix(1.25)(z / 2), reference="float64"),
        "adaptive": make_case({"softmax_type": "Adaptive"}, (3, 7), adaptive(1.0), reference="float64"),
        "adaptive_temperature": make_case({"softmax_type": "Adaptive", "temperature": 0.5, "input_height": 5}, (2, 3, 5), adaptive(0.5), scale=4.0, reference="float64"),
    }
    write_cases("softmax", cases)


if __name__ == "__main__":
    main()
