"""AdamW training of a tied embedding/LM head: one shared matrix, summed gradients, one optimizer state."""
from _common import flat, ints, setup, write_json  # first: it pins torch's CPU kernels

import torch
import torch.nn.functional as F

VOCAB, DIM, N, STEPS, LR = 7, 4, 6, 5, 0.05


def main():
    setup(11)
    table = torch.randn(VOCAB, DIM) * 0.5
    ids = torch.randint(0, VOCAB, (N,))
    labels = torch.randint(0, VOCAB, (N,))
    weight = torch.nn.Parameter(table.clone())
    opt = torch.optim.AdamW([weight], lr=LR, weight_decay=0.01)
    losses = []
    for _ in range(STEPS):
        opt.zero_grad()
        logits = weight[ids] @ weight.T
        loss = F.cross_entropy(logits, labels)
        loss.backward()
        opt.step()
        losses.append(float(loss.item()))
    write_json("tied_training.json", {
        "generator": "scripts/golden/tied_training.py",
        "torch": torch.__version__,
        "dtype": "float32",
        "vocab": VOCAB,
        "dim": DIM,
        "lr": LR,
        "weight_decay": 0.01,
        "init": flat(table),
        "ids": ints(ids),
        "labels": ints(labels),
        "losses": losses,
        "final": flat(weight),
        "tolerance": {"rtol": 1e-4, "atol": 1e-6},
    })


if __name__ == "__main__":
    main()
