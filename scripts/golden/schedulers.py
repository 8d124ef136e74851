"""Learning-rate schedule reference: test/fixtures/schedulers.json (schema in README.md)."""
import math

from _common import setup, write_json  # first: it pins torch's CPU kernels

import torch
from torch.optim import lr_scheduler as S

BASE_LR = 0.1
# ReduceLROnPlateau input: improves, plateaus (0.79995 is NOT an improvement on 0.8 with
# threshold 1e-4 in 'rel' mode: it would need to be < 0.8 * (1 - 1e-4) = 0.79992), improves, plateaus.
PLATEAU_METRICS = [1.0, 0.9, 0.8, 0.8, 0.8, 0.79995, 0.8, 0.7, 0.7, 0.71, 0.7, 0.7, 0.7, 0.7, 0.69]

# name -> (torch class, kwargs, number of steps, engine's name, closed form lr(t) used as a cross-check)
SCHEDULES = {
    "step": ("StepLR", {"step_size": 3, "gamma": 0.5}, 20, "step",
             lambda t: BASE_LR * 0.5 ** (t // 3)),
    "exponential": ("ExponentialLR", {"gamma": 0.9}, 20, "exponential",
                    lambda t: BASE_LR * 0.9 ** t),
    "cosine": ("CosineAnnealingLR", {"T_max": 10, "eta_min": 0.01}, 20, "cosine",
               lambda t: 0.01 + (BASE_LR - 0.01) * (1 + math.cos(math.pi * t / 10)) / 2),
    "warmup": ("LinearLR", {"start_factor": 0.25, "end_factor": 1.0, "total_iters": 4}, 15, "warmup",
               lambda t: BASE_LR * (0.25 + 0.75 * min(t, 4) / 4)),
    "onecycle": ("OneCycleLR", {"max_lr": 1.0, "total_steps": 30, "pct_start": 0.3, "anneal_strategy": "cos",
                                "div_factor": 25.0, "final_div_factor": 1e4, "three_phase": False,
                                "cycle_momentum": False}, 30, "onecycle", None),
    "plateau": ("ReduceLROnPlateau", {"mode": "min", "factor": 0.5, "patience": 2, "threshold": 1e-4,
                                      "threshold_mode": "rel", "cooldown": 0, "min_lr": 0, "eps": 1e-8},
                len(PLATEAU_METRICS), "plateau", None),
}


def one_cycle_closed(t, max_lr=1.0, total=30, pct=0.3, div=25.0, final_div=1e4):
    initial = max_lr / div
    phases = [(pct * total - 1, initial, max_lr), (total - 1, max_lr, initial / final_div)]
    start = 0
    for i, (end, a, b) in enumerate(phases):
        if t <= end or i == len(phases) - 1:
            p = (t - start) / (end - start)
            return b + (a - b) / 2 * (math.cos(math.pi * p) + 1)
        start = end


def run(torch_name, kwargs, steps, metrics=None):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=BASE_LR)
    sched = getattr(S, torch_name)(opt, **kwargs)
    lrs = []
    for s in range(steps):
        lrs.append(float(opt.param_groups[0]["lr"]))  # the lr that optimizer step s uses
        opt.step()  # no gradient: changes nothing, keeps torch's call-order check quiet
        if metrics is not None:
            sched.step(metrics[s])
        else:
            sched.step()
    return lrs, float(opt.param_groups[0]["lr"])


def main():
    setup(3)
    out = {}
    for name, (torch_name, kwargs, steps, engine_name, closed) in SCHEDULES.items():
        metrics = PLATEAU_METRICS if name == "plateau" else None
        lrs, final = run(torch_name, kwargs, steps, metrics)
        if name == "onecycle":
            closed = one_cycle_closed
        if closed is not None:
            worst = max(abs(a - closed(t)) / abs(closed(t)) for t, a in enumerate(lrs))
            assert worst < 1e-12, f"{name}: torch's recursive lr is {worst} off the closed form"
        entry = {
            "type": engine_name,
            "torch": torch_name,
            "kwargs": kwargs,
            "base_lr": None if name == "onecycle" else BASE_LR,
            "steps": steps,
            "lr": lrs,
            # OneCycleLR is undefined past total_steps (torch extrapolates the cosine), so no lr_final there.
            "lr_final": None if name == "onecycle" else final,
        }
        if metrics is not None:
            entry["metrics"] = metrics
        out[name] = entry
        print(f"  {name:12s} {' '.join(f'{v:.4g}' for v in lrs)} | final {entry['lr_final']}")
    write_json("schedulers.json", {
        "generator": "scripts/golden/schedulers.py",
        "torch": torch.__version__,
        "tolerance": {"rtol": 1e-9, "atol": 0.0},
        "schedulers": out,
    })


if __name__ == "__main__":
    main()
