#!/usr/bin/env python3
"""Rotary frequencies for rope_scaling, computed with torch in fp32 exactly as transformers 4.44
(modeling_rope_utils: _compute_default_rope_parameters, _compute_linear_scaling_rope_parameters,
_compute_llama3_parameters) computes them. Written as this project's reading of that code; the C side is
src/models/rope_scaling.c.

usage: /usr/bin/python3 tools/gen_rope_scaling_reference.py > tests/fixtures/rope/inv_freq.json
"""
import json
import math

import torch


def default(dim, base):
    return 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))


def linear(dim, base, factor):
    return default(dim, base) / factor


def llama3(dim, base, factor, low_freq_factor, high_freq_factor, old_context_len):
    inv_freq = default(dim, base)
    low_freq_wavelen = old_context_len / low_freq_factor
    high_freq_wavelen = old_context_len / high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    inv_freq_llama = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth_factor = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    smoothed_inv_freq = (1 - smooth_factor) * inv_freq_llama / factor + smooth_factor * inv_freq_llama
    is_medium_freq = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
    return torch.where(is_medium_freq, smoothed_inv_freq, inv_freq_llama)


cases = []
for dim, base in ((64, 500000.0), (128, 500000.0), (16, 10000.0)):
    cases.append({"rot_dim": dim, "theta": base, "rope_scaling": None, "inv_freq": default(dim, base).tolist()})
    cases.append({"rot_dim": dim, "theta": base, "rope_scaling": {"type": "linear", "factor": 4.0},
                  "inv_freq": linear(dim, base, 4.0).tolist()})
    rs = {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 8192}
    cases.append({"rot_dim": dim, "theta": base, "rope_scaling": rs,
                  "inv_freq": llama3(dim, base, 32.0, 1.0, 4.0, 8192).tolist()})
print(json.dumps({"generator": "tools/gen_rope_scaling_reference.py", "torch": torch.__version__, "cases": cases}))
