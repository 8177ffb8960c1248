# Reads F32 safetensors files and checks a merged LoRA model, with Python's standard library only (tests
# must run on a fresh machine where /usr/bin/python3 has no numpy). Imported by tests/cli/*.sh.
import array
import json
import struct
import sys


def tensors(path):
    """{name: (shape, flat array('f'))} of an F32 safetensors file."""
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    out = {}
    for k, v in json.loads(raw[8:8 + n]).items():
        if k == "__metadata__":
            continue
        assert v["dtype"] == "F32", (k, v["dtype"])
        a, b = v["data_offsets"]
        t = array.array("f")
        t.frombytes(raw[8 + n + a:8 + n + b])
        if sys.byteorder != "little":
            t.byteswap()
        out[k] = (tuple(v["shape"]), t)
    return out


def absmax(t):
    return max((abs(x) for x in t[1]), default=0.0)


def check_merged(base, merged, adapter, scale, n_expected):
    """merged == base + scale (B A)^T on every adapted Conv1D weight (stored (in, out)); every other tensor
    byte-identical. Returns the number of adapted layers (asserts it is n_expected)."""
    assert set(base) == set(merged), set(base) ^ set(merged)
    n = 0
    for name, (shape, w) in base.items():
        mod = name[:-len(".weight")] if name.endswith(".weight") else None
        key = "base_model.model.%s.lora_A.weight" % mod
        if mod and key in adapter:
            (r, n_in), A = adapter[key]
            (n_out, r2), B = adapter[key.replace("lora_A", "lora_B")]
            assert r == r2 and shape == (n_in, n_out), (name, shape, r, n_in, n_out, r2)
            assert absmax((None, B)) > 0, key + ": lora_B never trained"
            m = merged[name][1]
            err = 0.0
            for i in range(n_in):
                for o in range(n_out):
                    ba = sum(B[o * r + k] * A[k * n_in + i] for k in range(r))
                    err = max(err, abs(m[i * n_out + o] - (w[i * n_out + o] + scale * ba)))
            assert err < 1e-5, "%s: merged differs from base + alpha/r BA by %g" % (name, err)
            n += 1
        else:
            assert merged[name][1].tobytes() == w.tobytes(), name + " changed without an adapter"
    assert n == n_expected, n
    return n
