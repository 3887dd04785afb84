"""Minimal safetensors reader/writer on numpy (Debian bookworm has no python3-safetensors).

Format: 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}}
(plus optional "__metadata__"), then the raw little-endian tensor bytes.
"""
import json
import struct

import numpy as np

_NP_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8,
    "U8": np.uint8, "BOOL": np.bool_,
}
_ST_DTYPES = {np.dtype(v): k for k, v in _NP_DTYPES.items()}


def read_header(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    return header, 8 + n


def load(path, names=None, as_float32=True):
    """Returns {name: np.ndarray}. Tensors are memory-mapped, so loading a multi-GB file is cheap
    until values are touched. BF16/F16 are widened to F32 when as_float32 is set."""
    header, data_start = read_header(path)
    header.pop("__metadata__", None)
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    out = {}
    for name, info in header.items():
        if names is not None and name not in names:
            continue
        begin, end = info["data_offsets"]
        chunk = raw[data_start + begin:data_start + end]
        shape = tuple(info["shape"])
        dtype = info["dtype"]
        if dtype == "BF16":
            # bf16 is the top half of an f32: widen by shifting into the high 16 bits.
            arr = (chunk.view(np.uint16).astype(np.uint32) << 16).view(np.float32).reshape(shape)
        elif dtype in _NP_DTYPES:
            arr = chunk.view(_NP_DTYPES[dtype]).reshape(shape)
            if as_float32 and dtype == "F16":
                arr = arr.astype(np.float32)
        else:
            raise ValueError(f"{path}: tensor '{name}' has unsupported dtype {dtype}")
        out[name] = arr
    return out


def save(path, tensors, metadata=None):
    """Writes {name: np.ndarray} (little-endian dtypes) in name order."""
    entries = [(name, arr.dtype, arr.shape, (lambda a=arr: a)) for name, arr in tensors.items()]
    save_lazy(path, entries, metadata)


def save_lazy(path, entries, metadata=None):
    """Writes [(name, numpy dtype, shape, make() -> ndarray)] in name order, calling make() for one
    tensor at a time so that a multi-GB checkpoint never has to sit in memory whole."""
    header = {}
    offset = 0
    entries = sorted(entries, key=lambda e: e[0])
    for name, dtype, shape, _ in entries:
        dtype = np.dtype(dtype)
        if dtype not in _ST_DTYPES:
            raise ValueError(f"tensor '{name}': unsupported numpy dtype {dtype}")
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        header[name] = {"dtype": _ST_DTYPES[dtype], "shape": [int(d) for d in shape],
                        "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # keep tensor data 8-byte aligned, as the reference writer does
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for name, dtype, shape, make in entries:
            arr = np.ascontiguousarray(make(), dtype=dtype)
            if tuple(arr.shape) != tuple(shape):
                raise ValueError(f"tensor '{name}': made shape {arr.shape}, declared {tuple(shape)}")
            arr.tofile(f)
