"""Safetensors reference files for test/io/safetensors.test.ts and test/io/universalLoader.test.ts.

The files are written by the small pure-python writer below (`serialize`), which follows the format
as the reference implementation (huggingface/safetensors, Rust) writes it:

* 8 bytes: N, the header length, u64 little-endian; then N bytes of JSON; then the data.
* The JSON is compact (no spaces), UTF-8 (no \\u escapes for non-ASCII), `__metadata__` first when
  there is metadata, then the tensors in data order, each as {"dtype","shape","data_offsets"}.
* Data order: by dtype, widest first (the reference's enum order, descending), then by name (bytes).
* The header is padded with spaces to a multiple of 8 bytes, so the data starts 8-aligned.

When the real `safetensors` package is importable (it is not in Debian's Python; e.g. run with
PYTHONPATH pointing at a `pip install --target` directory), every file is also written with it and
the script fails unless both are byte-identical. The committed files were checked that way against
safetensors 0.8.0. Metadata has a single key: the reference stores metadata in a hash map, so the
order of several keys is not reproducible.

Outputs in test/fixtures/safetensors/:
  dtypes.safetensors   one tensor per dtype: F64 F32 F16 BF16 I64 I32 I16 I8 U64 U32 U16 U8 BOOL
                       F8_E4M3 F8_E5M2 (all 256 codes each) F4 (all 16 codes, first value in the low
                       nibble), a scalar (shape []) and an empty tensor (shape [0, 3]);
                       metadata {"format": "pt"}
  mlp.safetensors      the state_dict of nn.Sequential(Linear(6,16), ReLU, Linear(16,12,bias=False),
                       ReLU, Linear(12,4)): names 0.weight 0.bias 2.weight 4.weight 4.bias
  sharded/             the same tensors in two shards (model-00001-of-00002.safetensors: 0.*, 2.*;
                       model-00002-of-00002.safetensors: 4.*) with model.safetensors.index.json
                       ({"metadata": {"total_size"}, "weight_map"}, as transformers writes it)
  conv.safetensors     nn.Sequential(Conv2d(2,4,3), ReLU, Conv2d(4,3,3,bias=False), ReLU, Flatten,
                       Linear(48,5)) on 2×8×8 inputs: names 0.weight 0.bias 2.weight 5.weight 5.bias
  safetensors.json     {"generator", "torch",
                        "dtypes": {"metadata", "tensors": {name: {"dtype", "shape", "data_offsets",
                                   "hex": raw bytes, "values": decoded values}}},
                        "mlp":  {"x", "x_shape", "y", "y_linear", "y_shape"},
                        "conv": {"x", "x_shape", "y", "y_shape"},
                        "tolerance": {"rtol", "atol"}}
                       Decoded values are float32 (as a JSON number of that float32); NaN and ±Inf are
                       the strings "NaN", "Infinity", "-Infinity". `y` is the model's output (with its
                       ReLUs); mlp `y_linear` is the same weights without the ReLUs.
"""
from _common import FIXTURES, ROOT, setup  # first: it configures torch before torch loads

import ctypes
import json
import math
import os
import struct
import sys

import numpy as np
import torch

OUT = os.path.join(FIXTURES, "safetensors")

# The reference's Dtype enum order; serialization puts higher ranks first (alignment).
DTYPE_ORDER = ["BOOL", "F4", "F6_E2M3", "F6_E3M2", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E8M0",
               "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "C64", "F64", "I64", "U64"]
RANK = {d: i for i, d in enumerate(DTYPE_ORDER)}
BITS = {"BOOL": 8, "F4": 4, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "I16": 16, "U16": 16,
        "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32, "F64": 64, "I64": 64, "U64": 64}


def serialize(tensors, metadata=None):
    """tensors: {name: (dtype, shape, data bytes)} → the file's bytes."""
    order = sorted(tensors, key=lambda n: (-RANK[tensors[n][0]], n.encode("utf-8")))
    header = {}
    if metadata:
        header["__metadata__"] = metadata
    offset = 0
    for name in order:
        dtype, shape, data = tensors[name]
        count = math.prod(shape)
        if count * BITS[dtype] != len(data) * 8:
            raise ValueError(f"{name}: {count} {dtype} values need {count * BITS[dtype] / 8} bytes, got {len(data)}")
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(tensors[n][2] for n in order)


def reference_library():
    # This script is itself named safetensors.py and its folder comes first on sys.path.
    here = os.path.dirname(os.path.abspath(__file__))
    saved = sys.path[:]
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    try:
        import safetensors
        from safetensors import TensorSpec, serialize as ref_serialize
    except ImportError:
        return None
    finally:
        sys.path[:] = saved
    torch_names = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
                   "I32": "int32", "I16": "int16", "I8": "int8", "U64": "uint64", "U32": "uint32",
                   "U16": "uint16", "U8": "uint8", "BOOL": "bool", "F8_E4M3": "float8_e4m3fn",
                   "F8_E5M2": "float8_e5m2", "F4": "float4_e2m1fn_x2"}

    def write(tensors, metadata=None):
        keep, specs = [], {}
        for name, (dtype, shape, data) in tensors.items():
            buf = ctypes.create_string_buffer(data, max(1, len(data)))
            keep.append(buf)
            # float4_e2m1fn_x2 counts bytes: its last dimension is half the F4 one.
            spec_shape = list(shape[:-1]) + [shape[-1] // 2] if dtype == "F4" else list(shape)
            specs[name] = TensorSpec(dtype=torch_names[dtype], shape=spec_shape,
                                     data_ptr=ctypes.addressof(buf), data_len=len(data))
        return bytes(ref_serialize(specs, metadata=metadata))

    return safetensors.__version__, write


REFERENCE = reference_library()


def write_file(relative, tensors, metadata=None):
    data = serialize(tensors, metadata)
    if REFERENCE is not None and REFERENCE[1](tensors, metadata) != data:
        raise AssertionError(f"{relative}: the pure-python writer differs from safetensors {REFERENCE[0]}")
    path = os.path.join(OUT, relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    print(f"wrote {os.path.relpath(path, ROOT)} ({len(data)} bytes)")
    return data


def f32(v):
    """A decoded value as JSON: the float32 it becomes; NaN/±Inf as strings."""
    v = float(np.float32(v))
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return v


# Independent decoders for the formats without numpy support, from their definitions.
def fp8(code, exp_bits, man_bits, bias, has_inf):
    sign = -1.0 if code & 0x80 else 1.0
    e = (code >> man_bits) & ((1 << exp_bits) - 1)
    m = code & ((1 << man_bits) - 1)
    top = (1 << exp_bits) - 1
    if has_inf and e == top:  # E5M2: IEEE-like
        return sign * math.inf if m == 0 else math.nan
    if not has_inf and e == top and m == (1 << man_bits) - 1:  # E4M3FN: only S.1111.111 is NaN
        return math.nan
    if e == 0:
        return sign * m * 2.0 ** (1 - bias - man_bits)
    return sign * (1 + m / (1 << man_bits)) * 2.0 ** (e - bias)


def e2m1(code):
    sign = -1.0 if code & 8 else 1.0
    e, m = (code >> 1) & 3, code & 1
    return sign * (m * 0.5 if e == 0 else (1 + m / 2) * 2.0 ** (e - 1))


def dtype_tensors():
    rng = np.random.default_rng(7)
    t = {}
    v = {}

    def add(name, dtype, shape, data, values):
        t[name] = (dtype, shape, data)
        if isinstance(values, np.ndarray):
            values = values.reshape(-1).tolist()
        v[name] = [f32(x) for x in values]

    a = np.array([[1 / 3, -2.5, 1e-30], [65504.0, -0.0, 123456789.123]], dtype="<f8")
    add("f64", "F64", [2, 3], a.tobytes(), a.reshape(-1))
    a = rng.standard_normal(4).astype("<f4")
    add("f32", "F32", [4], a.tobytes(), a)
    a = np.array([[1.0, -2.0], [6e-8, 65504.0]], dtype="<f2")  # 6e-8: a subnormal half
    add("f16", "F16", [2, 2], a.tobytes(), a.astype(np.float32))
    b = torch.tensor([1.0, -3.140625, 1e-20], dtype=torch.bfloat16)
    add("bf16", "BF16", [3], b.view(torch.int16).numpy().astype("<i2").tobytes(), b.float().numpy())
    a = np.array([-5, 2 ** 40, 123456789], dtype="<i8")
    add("i64", "I64", [3], a.tobytes(), a)
    a = np.array([[-2147483648, 2147483647], [0, -7]], dtype="<i4")
    add("i32", "I32", [2, 2], a.tobytes(), a)
    a = np.array([-32768, 32767, 3], dtype="<i2")
    add("i16", "I16", [3], a.tobytes(), a)
    a = np.array([-128, 127, 0, -1], dtype="i1")
    add("i8", "I8", [4], a.tobytes(), a)
    a = np.array([2 ** 64 - 1, 2 ** 53 + 1], dtype="<u8")
    add("u64", "U64", [2], a.tobytes(), [float(int(x)) for x in a])
    a = np.array([4294967295, 16777217], dtype="<u4")
    add("u32", "U32", [2], a.tobytes(), a)
    a = np.array([65535, 1], dtype="<u2")
    add("u16", "U16", [2], a.tobytes(), a)
    a = np.array([[0, 1, 255], [128, 7, 42]], dtype="u1")
    add("u8", "U8", [2, 3], a.tobytes(), a)
    add("bool", "BOOL", [5], bytes([1, 0, 0, 1, 1]), [1, 0, 0, 1, 1])
    codes = bytes(range(256))
    add("f8_e4m3", "F8_E4M3", [256], codes, [fp8(c, 4, 3, 7, False) for c in codes])
    add("f8_e5m2", "F8_E5M2", [16, 16], codes, [fp8(c, 5, 2, 15, True) for c in codes])
    add("f4", "F4", [16], bytes(((2 * i + 1) << 4) | (2 * i) for i in range(8)), [e2m1(c) for c in range(16)])
    a = np.array([42.5], dtype="<f4")
    add("scalar", "F32", [], a.tobytes(), a)
    add("empty", "F32", [0, 3], b"", [])
    return t, v


def tensor_bytes(p):
    return p.detach().contiguous().numpy().astype("<f4").tobytes()


def state_dict_tensors(module):
    return {name: ("F32", list(p.shape), tensor_bytes(p)) for name, p in module.state_dict().items()}


def drift_check(name, y32, y64, rtol, atol):
    worst = ((y32.double() - y64).abs() / (atol + rtol * y64.abs())).max().item()
    print(f"{name}: float32-vs-float64 drift {worst:.3f} of the tolerance")
    if worst > 0.5:
        raise AssertionError(f"{name}: float32 drift uses {worst:.2f} of the tolerance")


def main():
    setup(20240611)
    rtol, atol = 1e-5, 1e-6
    doc = {"generator": "scripts/golden/safetensors.py", "torch": torch.__version__,
           "tolerance": {"rtol": rtol, "atol": atol}}

    tensors, values = dtype_tensors()
    meta = {"format": "pt"}
    data = write_file("dtypes.safetensors", tensors, meta)
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    doc["dtypes"] = {"metadata": meta, "tensors": {
        name: {"dtype": dt, "shape": shape, "data_offsets": header[name]["data_offsets"], "hex": raw.hex(),
               "values": values[name]}
        for name, (dt, shape, raw) in tensors.items()}}

    mlp = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 12, bias=False),
                              torch.nn.ReLU(), torch.nn.Linear(12, 4))
    x = torch.randn(5, 6)
    y = mlp(x)
    linears = [mlp[0], mlp[2], mlp[4]]
    y_linear = x
    for lin in linears:
        y_linear = lin(y_linear)
    mlp64 = mlp.double()
    drift_check("mlp", y, mlp64(x.double()), rtol, atol)
    h = x.double()
    for lin in linears:
        h = lin(h)
    drift_check("mlp linear", y_linear, h, rtol, atol)
    mlp.float()
    st = state_dict_tensors(mlp)
    write_file("mlp.safetensors", st, meta)
    shards = [{k: st[k] for k in ("0.weight", "0.bias", "2.weight")}, {k: st[k] for k in ("4.weight", "4.bias")}]
    weight_map = {}
    for i, shard in enumerate(shards):
        fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        write_file(os.path.join("sharded", fname), shard, meta)
        weight_map.update({k: fname for k in shard})
    index = {"metadata": {"total_size": sum(len(b) for _, _, b in st.values())}, "weight_map": weight_map}
    with open(os.path.join(OUT, "sharded", "model.safetensors.index.json"), "w") as f:
        f.write(json.dumps(index, indent=2, sort_keys=True) + "\n")
    doc["mlp"] = {"x": x.reshape(-1).tolist(), "x_shape": list(x.shape), "y": y.detach().reshape(-1).tolist(),
                  "y_linear": y_linear.detach().reshape(-1).tolist(), "y_shape": list(y.shape)}

    conv = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 3, 3, bias=False),
                               torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(48, 5))
    xc = torch.randn(2, 2, 8, 8)
    yc = conv(xc)
    drift_check("conv", yc, conv.double()(xc.double()), rtol, atol)
    conv.float()
    write_file("conv.safetensors", state_dict_tensors(conv), meta)
    doc["conv"] = {"x": xc.reshape(-1).tolist(), "x_shape": list(xc.shape), "y": yc.detach().reshape(-1).tolist(),
                   "y_shape": list(yc.shape)}

    path = os.path.join(OUT, "safetensors.json")
    with open(path, "w") as f:
        json.dump(doc, f, separators=(",", ":"), allow_nan=False)
        f.write("\n")
    print(f"wrote {os.path.relpath(path, ROOT)} ({os.path.getsize(path)} bytes)")
    if REFERENCE is None:
        print("note: the safetensors package is not importable; files were not cross-checked", file=sys.stderr)
    else:
        print(f"all files are byte-identical to what safetensors {REFERENCE[0]} writes")


if __name__ == "__main__":
    main()
