"""Minimal safetensors / config reading for the PyTorch reference scripts (standard library + numpy + torch).

The references under tools/torch_ref re-implement Hugging Face model classes in plain PyTorch (transformers is
not installable here) so that training parity and speed can be measured against the same math.
"""
import json
import os
import struct

import numpy as np
import torch

_DT = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32}


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        base = 8 + n
        out = {}
        for name, t in header.items():
            if name == "__metadata__":
                continue
            s, e = t["data_offsets"]
            f.seek(base + s)
            if t["dtype"] == "BF16":
                raw = np.frombuffer(f.read(e - s), dtype=np.uint16).astype(np.uint32) << 16
                arr = raw.view(np.float32)
            else:
                arr = np.frombuffer(f.read(e - s), dtype=_DT[t["dtype"]])
            out[name] = torch.from_numpy(arr.copy().reshape(t["shape"]))
    return out


def load_config(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        return json.load(f)
