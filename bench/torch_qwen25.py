"""PyTorch side of bench/qwen25.sh: one LoRA training step of a Qwen2 model of Qwen2.5-0.5B's shape in plain
torch (Debian's python3-torch 1.13 has no transformers/peft): RMSNorm, RoPE (theta 1e6), GQA attention with q/k/v
biases, SwiGLU MLP, tied embeddings; LoRA (peft's init: A kaiming-uniform, B zero; r 16, alpha 32, dropout 0.05)
on every q/k/v/o/gate/up/down projection (168 layers), the base frozen in fp32.
  sft:    causal-LM loss over B rows of T tokens (all real), backward, AdamW on the adapters.
  reward: Qwen2ForSequenceClassification (score head trained in full, as peft's modules_to_save) over the chosen
          and rejected rows of P pairs (2P rows of T tokens), -logsigmoid(chosen - rejected), backward, AdamW.
Prints one JSON line: {"step_s": median seconds per step after one warm-up step, "peak_rss_mb": ru_maxrss}.

usage: python3 bench/torch_qwen25.py sft|reward ROWS_OR_PAIRS T STEPS THREADS
"""
import json
import math
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

MODE, NB, T, STEPS, THREADS = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
torch.set_num_threads(THREADS)
torch.set_flush_denormal(True)
torch.manual_seed(0)
V, C, L, NH, NKV, I = 151936, 896, int(os.environ.get("QWEN_LAYERS", "24")), 14, 2, 4864  # QWEN_LAYERS: smoke tests
HD = C // NH
R, ALPHA, LORA_DROPOUT = 16, 32.0, 0.05


class LoraLinear(nn.Module):
    def __init__(self, cin, cout, bias):
        super().__init__()
        self.base = nn.Linear(cin, cout, bias=bias)
        self.base.weight.data.normal_(0, 0.02)
        if bias:
            self.base.bias.data.zero_()
        self.base.requires_grad_(False)
        self.lora_A = nn.Parameter(torch.empty(R, cin))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.lora_B = nn.Parameter(torch.zeros(cout, R))
        self.drop = nn.Dropout(LORA_DROPOUT)
        self.scaling = ALPHA / R

    def forward(self, x):
        return self.base(x) + (self.drop(x) @ self.lora_A.t() @ self.lora_B.t()) * self.scaling


class RMSNorm(nn.Module):
    def __init__(self, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(C), requires_grad=False)
        self.eps = eps

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def rope_cache(T):
    inv = 1.0 / (1e6 ** (torch.arange(0, HD, 2, dtype=torch.float32) / HD))
    f = torch.outer(torch.arange(T, dtype=torch.float32), inv)
    emb = torch.cat([f, f], -1)
    return emb.cos(), emb.sin()


def rotate(x, cos, sin):
    x1, x2 = x[..., : HD // 2], x[..., HD // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1, self.ln2 = RMSNorm(), RMSNorm()
        self.q = LoraLinear(C, NH * HD, True)
        self.k = LoraLinear(C, NKV * HD, True)
        self.v = LoraLinear(C, NKV * HD, True)
        self.o = LoraLinear(NH * HD, C, False)
        self.gate = LoraLinear(C, I, False)
        self.up = LoraLinear(C, I, False)
        self.down = LoraLinear(I, C, False)

    def forward(self, x, cos, sin, mask):
        B, T, _ = x.shape
        h = self.ln1(x)
        q = self.q(h).view(B, T, NH, HD).transpose(1, 2)
        k = self.k(h).view(B, T, NKV, HD).transpose(1, 2)
        v = self.v(h).view(B, T, NKV, HD).transpose(1, 2)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        k = k.repeat_interleave(NH // NKV, 1)
        v = v.repeat_interleave(NH // NKV, 1)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(HD) + mask
        y = (s.softmax(-1) @ v).transpose(1, 2).reshape(B, T, NH * HD)
        x = x + self.o(y)
        h = self.ln2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Qwen2(nn.Module):
    def __init__(self, seqcls):
        super().__init__()
        self.embed = nn.Embedding(V, C)
        self.embed.weight.data.normal_(0, 0.02)
        self.embed.requires_grad_(False)
        self.layers = nn.ModuleList(Block() for _ in range(L))
        self.norm = RMSNorm()
        self.score = nn.Linear(C, 1, bias=False) if seqcls else None  # trained in full

    def forward(self, ids):
        T = ids.shape[1]
        cos, sin = rope_cache(T)
        mask = torch.full((T, T), float("-inf")).triu(1)
        x = self.embed(ids)
        for blk in self.layers:
            x = blk(x, cos, sin, mask)
        x = self.norm(x)
        if self.score is not None:
            return self.score(x[:, -1])[:, 0]  # every row full length: the last token is the pooled one
        return x @ self.embed.weight.t()  # tied LM head


model = Qwen2(MODE == "reward")
model.train()
trainable = [p for p in model.parameters() if p.requires_grad]
opt = torch.optim.AdamW(trainable, lr=1e-4, weight_decay=0.0)
g = torch.Generator().manual_seed(1)
rows = NB if MODE == "sft" else 2 * NB
ids = torch.randint(0, 50257, (rows, T), generator=g)


def step():
    if MODE == "sft":
        logits = model(ids)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1))
    else:
        r = model(ids)
        loss = -F.logsigmoid(r[:NB] - r[NB:]).mean()
    opt.zero_grad(set_to_none=False)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(trainable, 1.0)
    opt.step()


step()  # warm-up (allocations, AdamW state)
times = []
for _ in range(STEPS):
    t0 = time.perf_counter()
    step()
    times.append(time.perf_counter() - t0)
print(json.dumps({"step_s": statistics.median(times), "steps": times,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}))
