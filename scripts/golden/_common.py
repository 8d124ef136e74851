"""Shared helpers for the golden-fixture scripts (not a fixture script itself)."""
import json
import os
import sys

# torch picks float32 kernels (vectorised or not, and with that the order of sums) by the CPU's
# capability, so the last bits of the fixtures would depend on the machine. Pinning the portable
# scalar kernels makes a rerun with the same torch build reproduce the files bit for bit.
# It must be set before torch is imported: every script imports _common first.
if "torch" in sys.modules and os.environ.get("ATEN_CPU_CAPABILITY") != "default":
    raise RuntimeError("import _common before torch (ATEN_CPU_CAPABILITY must be set first)")
os.environ["ATEN_CPU_CAPABILITY"] = "default"

import torch  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
FIXTURES = os.path.join(ROOT, "test", "fixtures")


def setup(seed):
    """Deterministic, single-threaded, float32."""
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(seed)


def flat(t):
    """A tensor as a flat row-major list of Python floats.

    float32 values become the Python float (double) of exactly that float32 value, so
    Math.fround(JSON.parse(...)) is bit-identical to the tensor and nothing is lost.
    """
    t = t.detach()
    if t.dtype != torch.float32:
        raise TypeError(f"expected float32, got {t.dtype}")
    return [float(v) for v in t.reshape(-1).tolist()]


def ints(t):
    return [int(v) for v in t.reshape(-1).tolist()]


def scalar(t):
    t = t.detach()
    if t.dtype != torch.float32 or t.numel() != 1:
        raise TypeError(f"expected a float32 scalar, got {t.dtype} {tuple(t.shape)}")
    return float(t.item())


def write_json(name, obj):
    os.makedirs(FIXTURES, exist_ok=True)
    path = os.path.join(FIXTURES, name)
    with open(path, "w") as f:
        json.dump(obj, f, separators=(",", ":"), allow_nan=False)
        f.write("\n")
    print(f"wrote {os.path.relpath(path, ROOT)} ({os.path.getsize(path)} bytes)")
    return path


def write_cases(script, cases, rtol=1e-5, atol=1e-6):
    """The usual float32 layer fixture: <script>.json holding the cases and how they were made."""
    return write_json(f"{script}.json", {
        "generator": f"scripts/golden/{script}.py",
        "torch": torch.__version__,
        "dtype": "float32",
        "tolerance": {"rtol": rtol, "atol": atol},
        "cases": cases,
    })
