"""GPT2LMHeadModel in plain PyTorch (transformers is not installable here): pre-LN blocks, Conv1D layers
(y = x @ W + b), tanh-GELU (gelu_new), causal attention scaled by 1/sqrt(head_dim), learned positions,
lm_head tied to wte, no dropout. Weights come from a Hugging Face directory (config.json +
model.safetensors) as torch Parameters named exactly as HF names them.

Right-padded batches only (positions 0..T-1; real tokens never attend to the padding after them), which
is what the DPO reference feeds it. check() compares against the transformers-written fixture
tests/fixtures/hf/gpt2_lm (case "right", real tokens).
"""
import json
import math
import os

import torch
import torch.nn.functional as F

from hfio import load_config, load_safetensors


class GPT2:
    def __init__(self, model_dir):
        cfg = load_config(model_dir)
        self.C, self.L, self.H = cfg["n_embd"], cfg["n_layer"], cfg["n_head"]
        self.eps = cfg.get("layer_norm_epsilon", 1e-5)
        w = load_safetensors(os.path.join(model_dir, "model.safetensors"))
        self.params = {k: torch.nn.Parameter(v.clone()) for k, v in w.items() if not k.startswith("lm_head")}

    def p(self, name):
        return self.params["transformer." + name]

    def forward(self, ids):
        B, T = ids.shape
        C, H = self.C, self.H
        hd = C // H
        x = self.p("wte.weight")[ids] + self.p("wpe.weight")[torch.arange(T)]
        causal = torch.ones(T, T, dtype=torch.bool).tril()
        for i in range(self.L):
            pre = "h.%d." % i
            h = F.layer_norm(x, (C,), self.p(pre + "ln_1.weight"), self.p(pre + "ln_1.bias"), self.eps)
            qkv = h @ self.p(pre + "attn.c_attn.weight") + self.p(pre + "attn.c_attn.bias")
            q, k, v = (t.view(B, T, H, hd).transpose(1, 2) for t in qkv.split(C, dim=2))
            s = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
            s = s.masked_fill(~causal, torch.finfo(s.dtype).min)
            y = (s.softmax(-1) @ v).transpose(1, 2).reshape(B, T, C)
            x = x + y @ self.p(pre + "attn.c_proj.weight") + self.p(pre + "attn.c_proj.bias")
            h = F.layer_norm(x, (C,), self.p(pre + "ln_2.weight"), self.p(pre + "ln_2.bias"), self.eps)
            h = F.gelu(h @ self.p(pre + "mlp.c_fc.weight") + self.p(pre + "mlp.c_fc.bias"), approximate="tanh")
            x = x + h @ self.p(pre + "mlp.c_proj.weight") + self.p(pre + "mlp.c_proj.bias")
        x = F.layer_norm(x, (C,), self.p("ln_f.weight"), self.p("ln_f.bias"), self.eps)
        return x @ self.p("wte.weight").t()


def check(fixture_dir):
    """Max |logit - transformers' logit| over the real tokens of the fixture's right-padded case."""
    m = GPT2(fixture_dir)
    case = json.load(open(os.path.join(fixture_dir, "inputs.json")))["cases"]["right"]
    want = load_safetensors(os.path.join(fixture_dir, "expected.safetensors"))["right.logits"]
    ids, mask = torch.tensor(case["input_ids"]), torch.tensor(case["attention_mask"]).bool()
    with torch.no_grad():
        got = m.forward(ids)
    return (got - want)[mask].abs().max().item()
