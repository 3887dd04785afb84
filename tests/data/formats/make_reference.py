#!/usr/bin/env python3
"""Writes reference.json: what an independent reader (Python struct, no safetensors library)
finds in the HF-written .safetensors files here. formats_test.cpp compares lumen's reader to it.

Files: clip/model.safetensors (models/clip of the public fixtures) and
kosmos2_5_inputs.safetensors (cases/kosmos2_5_forward/inputs.safetensors), both written by
safetensors.torch.save_file. Run from this directory: python3 make_reference.py
"""
import json
import struct

FILES = ["clip/model.safetensors", "kosmos2_5_inputs.safetensors"]
FORMATS = {"F32": ("<f", 4), "I64": ("<q", 8), "I32": ("<i", 4), "U8": ("<B", 1)}


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


def describe(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    data = raw[8 + n :]
    out = {"metadata": header.pop("__metadata__", {}), "tensors": {}}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        fmt, size = FORMATS[info["dtype"]]
        count = min(4, (end - begin) // size)
        first = [struct.unpack_from(fmt, data, begin + i * size)[0] for i in range(count)]
        out["tensors"][name] = {
            "dtype": info["dtype"],
            "shape": info["shape"],
            "fnv1a64": fnv1a64(data[begin:end]),
            "first": first,
        }
    return out


if __name__ == "__main__":
    ref = {path: describe(path) for path in FILES}
    with open("reference.json", "w") as f:
        json.dump(ref, f, indent=1, sort_keys=True)
