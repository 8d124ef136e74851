"""End-to-end training reference: a 3-layer MLP trained with several optimizer/scheduler/loss
combinations from the same initial weights. Writes test/fixtures/train_mlp.json (schema in README.md)."""
import math

from _common import flat, ints, scalar, setup, write_json  # first: it pins torch's CPU kernels

import torch
import torch.nn as nn
import torch.nn.functional as F

ARCH = [
    {"in": 8, "out": 16, "activation": "ReLU", "bias": True},
    {"in": 16, "out": 12, "activation": "Tanh", "bias": True},
    {"in": 12, "out": 4, "activation": "Linear", "bias": True},
]
ACT = {"ReLU": torch.relu, "Tanh": torch.tanh, "Linear": lambda t: t}
N, BATCH, STEPS = 32, 8, 20
# Suggested comparison tolerances (|a - e| <= atol + rtol*|e|). They are at least 10x the drift
# between this float32 run and the same run in float64 (checked below, recorded per run).
TOLERANCE = {
    "loss": {"rtol": 1e-5, "atol": 1e-6},
    "grad_norm": {"rtol": 1e-5, "atol": 1e-6},
    "lr": {"rtol": 1e-9, "atol": 0.0},
    "weights": {"rtol": 1e-4, "atol": 1e-5},
}

# name -> run configuration. "optimizer"/"scheduler" use the engine's names ("type") and
# list every hyper-parameter that applies, defaults included.
RUNS = {
    "sgd": {
        "loss": "cross_entropy",
        "optimizer": {"type": "sgd", "lr": 0.1, "momentum": 0.0, "dampening": 0.0, "nesterov": False, "weight_decay": 0.0},
        "scheduler": None,
        "clip_grad_norm": None,
    },
    "sgd_momentum_step": {
        "loss": "cross_entropy",
        "optimizer": {"type": "sgd", "lr": 0.1, "momentum": 0.9, "dampening": 0.0, "nesterov": False, "weight_decay": 0.0},
        "scheduler": {"type": "step", "torch": "StepLR", "step_size": 5, "gamma": 0.5},
        "clip_grad_norm": None,
    },
    "adamw_cosine": {
        "loss": "cross_entropy",
        "optimizer": {"type": "adamw", "lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.01, "amsgrad": False},
        "scheduler": {"type": "cosine", "torch": "CosineAnnealingLR", "T_max": 20, "eta_min": 0.001},
        "clip_grad_norm": None,
    },
    "rmsprop_exp": {
        "loss": "mse",
        "optimizer": {"type": "rmsprop", "lr": 0.01, "alpha": 0.99, "eps": 1e-8, "momentum": 0.0, "centered": False, "weight_decay": 0.0},
        "scheduler": {"type": "exponential", "torch": "ExponentialLR", "gamma": 0.95},
        "clip_grad_norm": None,
    },
    "adamw_clip_onecycle": {
        "loss": "cross_entropy",
        "optimizer": {"type": "adamw", "lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0, "amsgrad": False},
        "scheduler": {"type": "onecycle", "torch": "OneCycleLR", "max_lr": 0.05, "total_steps": 20, "pct_start": 0.3,
                      "anneal_strategy": "cos", "div_factor": 25.0, "final_div_factor": 1e4, "three_phase": False,
                      "cycle_momentum": False},
        "clip_grad_norm": 0.5,
    },
    "sgd_warmup": {
        "loss": "cross_entropy",
        "optimizer": {"type": "sgd", "lr": 0.1, "momentum": 0.0, "dampening": 0.0, "nesterov": False, "weight_decay": 0.0},
        "scheduler": {"type": "warmup", "torch": "LinearLR", "start_factor": 0.1, "end_factor": 1.0, "total_iters": 5},
        "clip_grad_norm": None,
    },
}


def make_optimizer(params, o):
    if o["type"] == "sgd":
        return torch.optim.SGD(params, lr=o["lr"], momentum=o["momentum"], dampening=o["dampening"],
                               nesterov=o["nesterov"], weight_decay=o["weight_decay"], foreach=False)
    if o["type"] == "adamw":
        return torch.optim.AdamW(params, lr=o["lr"], betas=(o["beta1"], o["beta2"]), eps=o["eps"],
                                 weight_decay=o["weight_decay"], amsgrad=o["amsgrad"], foreach=False)
    if o["type"] == "rmsprop":
        return torch.optim.RMSprop(params, lr=o["lr"], alpha=o["alpha"], eps=o["eps"], momentum=o["momentum"],
                                   centered=o["centered"], weight_decay=o["weight_decay"], foreach=False)
    raise ValueError(o["type"])


def make_scheduler(opt, s):
    if s is None:
        return None
    kw = {k: v for k, v in s.items() if k not in ("type", "torch")}
    return getattr(torch.optim.lr_scheduler, s["torch"])(opt, **kw)


def layers_json(params):
    out = []
    for spec, (W, b) in zip(ARCH, zip(params[0::2], params[1::2])):
        out.append({"shapes": {"W": [spec["out"], spec["in"]], "b": [spec["out"]]}, "W": flat(W.float()), "b": flat(b.float())})
    return out


def forward(params, x):
    h = x
    for spec, W, b in zip(ARCH, params[0::2], params[1::2]):
        h = ACT[spec["activation"]](F.linear(h, W, b))
    return h


def global_norm(params):
    # Exactly what torch.nn.utils.clip_grad_norm_ computes (and returns).
    return torch.norm(torch.stack([torch.norm(p.grad.detach(), 2.0) for p in params]), 2.0)


def train(init, data, cfg, dtype):
    params = [p.detach().clone().to(dtype).requires_grad_(True) for p in init]
    X, labels, Y = data["X"].to(dtype), data["labels"], data["Y"].to(dtype)
    opt = make_optimizer(params, cfg["optimizer"])
    sched = make_scheduler(opt, cfg["scheduler"])
    rec = {"loss": [], "lr": [], "grad_norm": [], "after_first_step": None}
    for s in range(STEPS):
        lo = (s * BATCH) % N
        xb = X[lo:lo + BATCH]
        opt.zero_grad(set_to_none=True)
        out = forward(params, xb)
        if cfg["loss"] == "cross_entropy":
            loss = F.cross_entropy(out, labels[lo:lo + BATCH])
        else:
            loss = F.mse_loss(out, Y[lo:lo + BATCH], reduction="mean")
        loss.backward()
        if cfg["clip_grad_norm"] is not None:
            norm = torch.nn.utils.clip_grad_norm_(params, cfg["clip_grad_norm"])
        else:
            norm = global_norm(params)
        rec["loss"].append(loss.detach())
        rec["grad_norm"].append(norm.detach())
        rec["lr"].append(opt.param_groups[0]["lr"])  # the lr this step's optimizer.step() uses
        opt.step()
        if s == 0:
            rec["after_first_step"] = [p.detach().clone() for p in params]
        if sched is not None:
            sched.step()
    rec["final"] = [p.detach().clone() for p in params]
    return rec


def main():
    setup(0)
    # Initial weights: default nn.Linear init (kaiming-uniform W, uniform b), layers created in order.
    layers = [nn.Linear(a["in"], a["out"], bias=a["bias"]) for a in ARCH]
    init = [t.detach().clone() for L in layers for t in (L.weight, L.bias)]

    torch.manual_seed(1)
    X = torch.randn(N, 8)
    teacher = torch.randn(8, 4)
    labels = torch.argmax(X @ teacher, dim=1)
    Y = 0.5 * (X @ torch.randn(8, 4)) + 0.1 * torch.randn(N, 4)
    data = {"X": X, "labels": labels, "Y": Y}
    assert set(ints(labels)) == {0, 1, 2, 3}, "every class should appear"

    runs = {}
    for name, cfg in RUNS.items():
        r32 = train(init, data, cfg, torch.float32)
        r64 = train(init, data, cfg, torch.float64)  # only to measure float32 rounding drift
        loss = [scalar(t) for t in r32["loss"]]
        final32 = torch.cat([p.reshape(-1) for p in r32["final"]]).double()
        final64 = torch.cat([p.reshape(-1) for p in r64["final"]])
        loss64 = torch.tensor([t.item() for t in r64["loss"]], dtype=torch.float64)
        gn64 = torch.tensor([t.item() for t in r64["grad_norm"]], dtype=torch.float64)
        gn32 = torch.tensor([t.item() for t in r32["grad_norm"]], dtype=torch.float64)
        loss32 = torch.tensor(loss, dtype=torch.float64)

        def in_tol(a, e, tol):  # the worst |a - e| in units of the suggested tolerance
            return float(((a - e).abs() / (tol["atol"] + tol["rtol"] * e.abs())).max())

        dev = {
            "loss_max_abs": float((loss32 - loss64).abs().max()),
            "grad_norm_max_abs": float((gn32 - gn64).abs().max()),
            "final_max_abs": float((final32 - final64).abs().max()),
            "worst_in_tolerance_units": max(in_tol(loss32, loss64, TOLERANCE["loss"]),
                                            in_tol(gn32, gn64, TOLERANCE["grad_norm"]),
                                            in_tol(final32, final64, TOLERANCE["weights"])),
        }
        assert dev["worst_in_tolerance_units"] <= 0.1, f"{name}: float32 drift too close to the tolerance: {dev}"
        first4, last4 = sum(loss[:4]) / 4, sum(loss[-4:]) / 4
        assert last4 < first4, f"{name}: loss did not fall ({first4} -> {last4})"
        assert all(math.isfinite(v) for v in loss)
        print(f"  {name:20s} loss {loss[0]:.4f} -> {loss[-1]:.4f} (mean of first/last 4 batches {first4:.4f} -> {last4:.4f}); "
              f"float32 vs float64: loss {dev['loss_max_abs']:.1e}, weights {dev['final_max_abs']:.1e}, "
              f"worst {dev['worst_in_tolerance_units']:.3f} x tolerance")
        runs[name] = {
            "config": {"loss": cfg["loss"], "targets": "labels" if cfg["loss"] == "cross_entropy" else "Y",
                       "steps": STEPS, "batch_size": BATCH, "optimizer": cfg["optimizer"], "scheduler": cfg["scheduler"],
                       "clip_grad_norm": cfg["clip_grad_norm"]},
            "loss": loss,
            "lr": [float(v) for v in r32["lr"]],
            "grad_norm": [scalar(t) for t in r32["grad_norm"]],
            "after_first_step": layers_json(r32["after_first_step"]),
            "final": layers_json(r32["final"]),
            "float64_deviation": dev,
        }

    write_json("train_mlp.json", {
        "generator": "scripts/golden/train_mlp.py",
        "torch": torch.__version__,
        "dtype": "float32",
        "architecture": ARCH,
        "steps": STEPS,
        "batch_size": BATCH,
        "batch_rows": [[(s * BATCH) % N, (s * BATCH) % N + BATCH] for s in range(STEPS)],
        "tolerance": TOLERANCE,
        "init": layers_json(init),
        "data": {
            "X": flat(X), "X_shape": [N, 8],
            "labels": ints(labels), "labels_shape": [N],
            "Y": flat(Y), "Y_shape": [N, 4],
        },
        "runs": runs,
    })


if __name__ == "__main__":
    main()
