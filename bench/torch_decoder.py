"""PyTorch side of the decoder benchmark (bench/bench_decoder.c): the same GPT-2 shape written in plain
torch (pre-LN blocks, tanh-GELU, tied lm_head, no dropout) with its own KV-cache loop (keys/values
concatenated per step, as transformers' DynamicCache does), or one training step.
Prints one JSON line: {"tokens_per_s", "step_s", "peak_rss_mb"}.

usage: python3 bench/torch_decoder.py gen|train N_EMBD N_LAYER N_HEAD B T NEW_OR_STEPS THREADS
"""
import json
import math
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

V, NPOS = 50257, 1024
mode = sys.argv[1]
C, L, NH, B, T, K, THREADS = map(int, sys.argv[2:9])
torch.set_num_threads(THREADS)
torch.set_flush_denormal(True)  # tiny gradients of a fresh model are denormal; without FTZ the mm backward is ~20x slower
torch.manual_seed(0)
HD = C // NH


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.c_attn, self.c_proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
        self.c_fc, self.mlp_proj = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)

    def forward(self, x, cache=None):
        b, t, _ = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (y.view(b, t, NH, HD).transpose(1, 2) for y in (q, k, v))
        if cache is not None:
            if cache[0] is not None:
                k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
            cache[0], cache[1] = k, v
        s = q @ k.transpose(-1, -2) / math.sqrt(HD)
        tk = k.shape[2]
        causal = torch.ones(t, tk, dtype=torch.bool).tril(tk - t)
        s = s.masked_fill(~causal, float("-inf"))
        y = (s.softmax(-1) @ v).transpose(1, 2).reshape(b, t, C)
        x = x + self.c_proj(y)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT2(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, C), nn.Embedding(NPOS, C)
        self.h = nn.ModuleList(Block() for _ in range(L))
        self.ln_f = nn.LayerNorm(C)

    def forward(self, ids, start=0, caches=None, last_only=False):
        pos = torch.arange(start, start + ids.shape[1])
        x = self.wte(ids) + self.wpe(pos)
        for i, blk in enumerate(self.h):
            x = blk(x, caches[i] if caches is not None else None)
        if last_only:  # transformers' generate: logits_to_keep=1, the lm_head on the last position only
            x = x[:, -1:]
        return F.linear(self.ln_f(x), self.wte.weight)  # as HF: nn.Linear lm_head tied to wte


model = GPT2()
ids = torch.randint(0, V, (B, T))
if mode == "gen":
    model.eval()

    def generate():
        caches = [[None, None] for _ in range(L)]
        logits = model(ids, 0, caches, last_only=True)[:, -1]
        for step in range(K):
            nxt = logits.argmax(-1, keepdim=True)
            if step == K - 1:
                break
            logits = model(nxt, T + step, caches, last_only=True)[:, -1]

    with torch.inference_mode():
        generate()  # warm-up: allocator and OpenBLAS buffers, page faults (rlhf's side warms up the same way)
        t0 = time.time()
        generate()
        dt = time.time() - t0
    out = {"tokens_per_s": B * K / dt, "step_s": dt / K}
else:
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    total = 0.0
    for s in range(K + 1):
        t0 = time.time()
        opt.zero_grad()
        logits = model(ids)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if s > 0:
            total += time.time() - t0
    out = {"tokens_per_s": B * T * K / total, "step_s": total / K}
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
