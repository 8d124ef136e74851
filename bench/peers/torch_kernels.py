"""PyTorch CPU peer for bench/kernels.ts: float32 sgemm n³ (torch.mm) and gemv (torch.mv), one thread count.
Prints one JSON object. Usage: python3 torch_kernels.py <threads> <seconds> <sgemm sizes, comma-separated> <gemv n>"""
import ctypes
import json
import os
import sys
import time

import torch

threads = int(sys.argv[1])
budget = float(sys.argv[2])
sizes = [int(s) for s in sys.argv[3].split(",") if s]
gemv_n = int(sys.argv[4])
torch.set_num_threads(threads)
torch.manual_seed(0)


def blas_info():
    """Build-time BLAS_INFO plus what is really loaded: Debian's libblas.so.3 is an alternative (reference or OpenBLAS)."""
    config = torch.__config__.show()
    info = {"build_blas_info": config.split("BLAS_INFO=")[1].split(",")[0] if "BLAS_INFO=" in config else "unknown"}
    with open("/proc/self/maps") as maps:
        libs = sorted({line.split()[-1] for line in maps if "blas" in line.lower() and "/" in line})
    info["loaded_blas_libraries"] = sorted({os.path.realpath(p) for p in libs})
    for path in info["loaded_blas_libraries"]:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        if hasattr(lib, "openblas_get_config"):
            lib.openblas_get_config.restype = ctypes.c_char_p
            lib.openblas_get_corename.restype = ctypes.c_char_p
            info["openblas_config"] = lib.openblas_get_config().decode()
            info["openblas_core"] = lib.openblas_get_corename().decode()
            info["openblas_get_num_threads"] = lib.openblas_get_num_threads()
    info["env"] = {k: v for k, v in os.environ.items() if k.startswith(("OPENBLAS_", "OMP_", "MKL_"))}
    return info


def timed(fn):
    """Median seconds per call, best (minimum) seconds per call, sample count, and process CPU time per wall time
    (about the threads really busy). Each sample is one call. The first call is a warm-up unless it alone exceeds the
    budget (then it is the only sample, median and best alike). The best is kept because the VM alternates fast and
    slow host phases."""
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    if first >= budget:
        return first, first, 1, (time.process_time() - c0) / first
    samples = []
    c0, start = time.process_time(), time.perf_counter()
    deadline = start + budget
    while time.perf_counter() < deadline or len(samples) < 3:
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    busy = (time.process_time() - c0) / (time.perf_counter() - start)
    samples.sort()
    return samples[len(samples) // 2], samples[0], len(samples), busy


cases = []
for n in sizes:
    a = torch.rand(n, n) - 0.5
    b = torch.rand(n, n) - 0.5
    c = torch.empty(n, n)
    s, best, count, busy = timed(lambda: torch.mm(a, b, out=c))
    cases.append({"case": f"sgemm {n}³", "ms": s * 1e3, "gflops": 2 * n**3 / s / 1e9, "best_ms": best * 1e3, "best_gflops": 2 * n**3 / best / 1e9, "samples": count, "cpu_per_wall": busy})
w = torch.rand(gemv_n, gemv_n) - 0.5
x = torch.rand(gemv_n) - 0.5
y = torch.empty(gemv_n)
s, best, count, busy = timed(lambda: torch.mv(w, x, out=y))
cases.append({"case": f"gemv {gemv_n}²", "ms": s * 1e3, "gflops": 2 * gemv_n**2 / s / 1e9, "best_ms": best * 1e3, "best_gflops": 2 * gemv_n**2 / best / 1e9, "samples": count, "cpu_per_wall": busy})
blas = blas_info()
print(json.dumps({"peer": "pytorch", "version": torch.__version__, "threads": threads, "torch_threads": torch.get_num_threads(), "blas": blas, "cases": cases}))
