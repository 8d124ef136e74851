"""Loss reference values and gradients: test/fixtures/losses.json (schema in README.md)."""
from _common import flat, ints, scalar, setup, write_json  # first: it pins torch's CPU kernels

import torch
import torch.nn.functional as F


def mse_case():
    pred = torch.randn(6, 3).requires_grad_(True)
    target = torch.randn(6, 3)
    loss = F.mse_loss(pred, target, reduction="mean")
    loss.backward()
    return {
        "shape": [6, 3],
        "pred": flat(pred),
        "target": flat(target),
        "loss": scalar(loss),
        "grad": flat(pred.grad),
    }


def cross_entropy_case():
    logits = torch.randn(5, 4) * 2
    logits[1] = torch.tensor([80.0, -80.0, 0.5, 3.0])    # label 0: confident and right (loss ~ 0)
    logits[2] = torch.tensor([-80.0, 80.0, 2.0, -1.0])   # label 0: confident and wrong (loss ~ 160)
    logits[3] = torch.tensor([80.0, 80.0, -80.0, 79.0])  # label 1: two tied maxima at 80
    labels = torch.tensor([3, 0, 0, 1, 2])
    logits.requires_grad_(True)
    loss = F.cross_entropy(logits, labels)  # mean over the batch
    loss.backward()
    return {
        "shape": [5, 4],
        "logits": flat(logits),
        "labels": ints(labels),
        "loss": scalar(loss),
        "grad": flat(logits.grad),
    }


def main():
    setup(2)
    mse = mse_case()
    ce = cross_entropy_case()
    assert all(abs(v) < float("inf") for v in ce["grad"]) and ce["loss"] > 30
    write_json("losses.json", {
        "generator": "scripts/golden/losses.py",
        "torch": torch.__version__,
        "dtype": "float32",
        "tolerance": {"loss": {"rtol": 1e-6, "atol": 1e-7}, "grad": {"rtol": 1e-5, "atol": 1e-7}},
        "mse": mse,
        "cross_entropy": ce,
    })


if __name__ == "__main__":
    main()
