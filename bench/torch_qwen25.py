"""PyTorch side of bench/qwen25.sh: one LoRA training step of a Qwen2 model of Qwen2.5-0.5B's shape in plain
torch (Debian's python3-torch 1.13 has no transformers/peft): RMSNorm, RoPE (theta 1e6), GQA attention with q/k/v
biases, SwiGLU MLP, tied embeddings; LoRA (peft's init: A kaiming-uniform, B zero; r 16, alpha 32, dropout 0.05)
on every q/k/v/o/gate/up/down projection (168 layers), the base frozen in fp32.
  sft:    causal-LM loss over B rows of T tokens (all real), backward, AdamW on the adapters.
  reward: Qwen2ForSequenceClassification (score head trained in full, as peft's modules_to_save) over the chosen
          and rejected rows of P pairs (2P rows of T tokens), -logsigmoid(chosen - rejected), backward, AdamW.
  ppo:    `rlhf ppo --use_peft --value_model head` (TRL PPOTrainer.train): ROWS prompts of 16 random ids, T tokens
          sampled with a KV cache at temperature 0.7; policy log-probs, reference log-probs (the same model with
          the adapters disabled, as peft's reference), values from a head on the policy's last hidden states,
          the score of a separate frozen Qwen2ForSequenceClassification (fp32) at the last token; k1 KL penalty,
          GAE, whitened advantages; one PPO epoch: clipped policy + value loss, backward, clipping, AdamW.
Prints one JSON line: {"step_s": median seconds per step after one warm-up step, "peak_rss_mb": ru_maxrss}.

usage: python3 bench/torch_qwen25.py sft|reward|ppo ROWS_OR_PAIRS T STEPS THREADS
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

from torch_common import sample

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

    enabled = True  # False: the base model alone (peft's disable_adapter(), the PPO reference)

    def forward(self, x):
        if not LoraLinear.enabled:
            return self.base(x)
        return self.base(x) + (self.drop(x) @ self.lora_A.t() @ self.lora_B.t()) * self.scaling


class RMSNorm(nn.Module):
    def __init__(self, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(C), requires_grad=False)
        self.eps = eps

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def rope_cache(T, start=0):
    inv = 1.0 / (1e6 ** (torch.arange(0, HD, 2, dtype=torch.float32) / HD))
    f = torch.outer(torch.arange(start, start + T, dtype=torch.float32), inv)
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

    def forward(self, x, cos, sin, mask, past=None):
        B, T, _ = x.shape
        h = self.ln1(x)
        q = self.q(h).view(B, T, NH, HD).transpose(1, 2)
        k = self.k(h).view(B, T, NKV, HD).transpose(1, 2)
        v = self.v(h).view(B, T, NKV, HD).transpose(1, 2)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        if past is not None:  # the KV cache of the earlier positions
            k, v = torch.cat([past[0], k], 2), torch.cat([past[1], v], 2)
        kv = (k, v)
        k = k.repeat_interleave(NH // NKV, 1)
        v = v.repeat_interleave(NH // NKV, 1)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(HD)
        if mask is not None:
            s = s + mask
        y = (s.softmax(-1) @ v).transpose(1, 2).reshape(B, T, NH * HD)
        x = x + self.o(y)
        h = self.ln2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h)), kv


class Qwen2(nn.Module):
    def __init__(self, seqcls):
        super().__init__()
        self.embed = nn.Embedding(V, C)
        self.embed.weight.data.normal_(0, 0.02)
        self.embed.requires_grad_(False)
        self.layers = nn.ModuleList(Block() for _ in range(L))
        self.norm = RMSNorm()
        self.score = nn.Linear(C, 1, bias=False) if seqcls else None  # trained in full

    def forward(self, ids, start=0, past=None, keep=None, hidden=False):
        T = ids.shape[1]
        cos, sin = rope_cache(T, start)
        mask = torch.full((T, T), float("-inf")).triu(1) if T > 1 else None  # one new token sees every key
        x = self.embed(ids)
        new = []
        for i, blk in enumerate(self.layers):
            x, kv = blk(x, cos, sin, mask, None if past is None else past[i])
            new.append(kv)
        if keep is not None:  # transformers' logits_to_keep: positions keep[0] .. keep[1] - 1 only
            x = x[:, keep[0]:keep[1]]
        x = self.norm(x)
        if hidden:
            return x, new
        if self.score is not None:
            return self.score(x[:, -1])[:, 0]  # every row full length: the last token is the pooled one
        return x @ self.embed.weight.t(), new  # tied LM head


model = Qwen2(MODE == "reward")
model.train()
value_head = None
if MODE == "ppo":
    value_head = nn.Linear(C, 1)  # rlhf ppo --value_model head: trained with the policy's adapters
    reward_model = Qwen2(True)
    reward_model.requires_grad_(False)
    reward_model.eval()
trainable = [p for p in model.parameters() if p.requires_grad]
if value_head is not None:
    trainable += list(value_head.parameters())
opt = torch.optim.AdamW(trainable, lr=1e-4 if MODE != "ppo" else 1e-5, weight_decay=0.0)
g = torch.Generator().manual_seed(1)
rows = NB if MODE != "reward" else 2 * NB
ids = torch.randint(0, 50257, (rows, T), generator=g)
P, TEMP = 16, 0.7 + 1e-7


def ppo_logprobs(logits, resp):
    return torch.gather(F.log_softmax(logits / TEMP, -1), 2, resp.unsqueeze(-1)).squeeze(-1)


def ppo_step():
    B, R = NB, T
    queries = torch.randint(0, 50257, (B, P), generator=g)
    with torch.no_grad():
        resp = sample(model, queries, R, TEMP)  # KV cache, the head on the last prompt position
        qr = torch.cat([queries, resp], 1)
        h, _ = model(qr, hidden=True)
        old_lp = ppo_logprobs(h[:, P - 1:-1] @ model.embed.weight.t(), resp)
        old_v = value_head(h[:, P - 1:-1])[..., 0]
        LoraLinear.enabled = False
        ref_lp = ppo_logprobs(model(qr, keep=(P - 1, P + R - 1))[0], resp)
        LoraLinear.enabled = True
        scores = reward_model(qr)
        rewards = -0.05 * (old_lp - ref_lp)
        rewards[:, -1] += scores
        adv_rev, last = [], 0.0
        for t in reversed(range(R)):
            nv = old_v[:, t + 1] if t < R - 1 else 0.0
            last = rewards[:, t] + nv - old_v[:, t] + 0.95 * last
            adv_rev.append(last)
        adv = torch.stack(adv_rev[::-1], 1)
        ret = adv + old_v
        adv = (adv - adv.mean()) * torch.rsqrt(adv.var() + 1e-8)
    h, _ = model(qr, hidden=True)
    h = h[:, P - 1:-1]
    new_lp = ppo_logprobs(h @ model.embed.weight.t(), resp)
    vpred = value_head(h)[..., 0]
    vclip = torch.clamp(vpred, old_v - 0.2, old_v + 0.2)
    vf = 0.5 * torch.max((vpred - ret) ** 2, (vclip - ret) ** 2).mean()
    ratio = torch.exp(new_lp - old_lp)
    pg = torch.max(-adv * ratio, -adv * torch.clamp(ratio, 0.8, 1.2)).mean()
    loss = pg + 0.1 * vf
    opt.zero_grad(set_to_none=False)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(trainable, 1.0)
    opt.step()


def step():
    if MODE == "ppo":
        return ppo_step()
    if MODE == "sft":
        logits, _ = model(ids)
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
