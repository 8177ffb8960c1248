"""PyTorch side of the DPO benchmark (bench/dpo.sh): one DPO optimizer step as TRL's DPOTrainer takes it, in plain
torch on a GPT-2 shape (pre-LN blocks, tanh-GELU, tied lm_head, no dropout): the policy's concatenated forward over
[chosen; rejected] (prompt + completion, right-padded), the frozen reference's forward under no_grad, log-probs
summed over completion tokens (selective log-softmax), the sigmoid loss, backward, clip_grad_norm_, AdamW.
Prints one JSON line: {"step_s", "peak_rss_mb"} (step_s: mean of STEPS steps after one warm-up step).

usage: python3 bench/torch_dpo.py N_EMBD N_LAYER N_HEAD PAIRS PROMPT COMPLETION STEPS THREADS
"""
import copy
import json
import math
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

V, NPOS = 50257, 1024
C, L, NH, P, TP, TC, K, THREADS = map(int, sys.argv[1:9])
torch.set_num_threads(THREADS)
torch.set_flush_denormal(True)
torch.manual_seed(0)
HD = C // NH


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.c_attn, self.c_proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
        self.c_fc, self.mlp_proj = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)

    def forward(self, x):
        b, t, _ = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (y.view(b, t, NH, HD).transpose(1, 2) for y in (q, k, v))
        s = q @ k.transpose(-1, -2) / math.sqrt(HD)
        s = s.masked_fill(~torch.ones(t, t, dtype=torch.bool).tril(), float("-inf"))
        y = (s.softmax(-1) @ v).transpose(1, 2).reshape(b, t, C)
        x = x + self.c_proj(y)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT2(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, C), nn.Embedding(NPOS, C)
        self.h = nn.ModuleList(Block() for _ in range(L))
        self.ln_f = nn.LayerNorm(C)

    def forward(self, ids):
        x = self.wte(ids) + self.wpe(torch.arange(ids.shape[1]))
        for blk in self.h:
            x = blk(x)
        return F.linear(self.ln_f(x), self.wte.weight)


def seq_logps(logits, ids, mask):
    labels = torch.roll(ids, -1, 1)
    lm = torch.roll(mask, -1, 1)
    labels = labels.masked_fill(~lm, 0)
    sel = torch.gather(logits, 2, labels.unsqueeze(-1)).squeeze(-1)
    lse = torch.stack([torch.logsumexp(lg, dim=-1) for lg in logits])  # TRL's selective_log_softmax loop
    return ((sel - lse) * lm).sum(-1)


policy = GPT2()
ref = copy.deepcopy(policy).eval()
for p in ref.parameters():
    p.requires_grad_(False)
T = TP + TC
ids = torch.randint(0, V, (2 * P, T))
mask = torch.zeros(2 * P, T, dtype=torch.bool)
mask[:, TP:] = True
opt = torch.optim.AdamW(policy.parameters(), lr=1e-6)
total = 0.0
for s in range(K + 1):
    t0 = time.time()
    opt.zero_grad()
    lp = seq_logps(policy(ids), ids, mask)
    with torch.no_grad():
        rp = seq_logps(ref(ids), ids, mask)
    logits = (lp[:P] - lp[P:]) - (rp[:P] - rp[P:])
    loss = -F.logsigmoid(0.1 * logits).mean()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
    opt.step()
    if s > 0:
        total += time.time() - t0
print(json.dumps({"step_s": total / K, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
