#!/usr/bin/python3
"""PyTorch side of the GRPO benchmark: the same step as `rlhf grpo` (TRL GRPOTrainer with its defaults: beta 0,
so no reference model; loss_type dapo; on-policy, so the ratio is exactly 1) on the same shapes. Per step: B/G
prompts of P random ids, each repeated G times; R tokens sampled with a KV cache at temperature 1 (no stop
token); rewards from a GPT-2 reward model (score head at the last token); group advantages (r - mean) / (std +
1e-4); one forward + backward of the policy over the B completions (logits of the R completion positions
only, TRL's logits_to_keep; selective_log_softmax; entropies under no_grad) with the clipped surrogate summed
over tokens / the token count; global-norm clipping; AdamW. GPT-2 written out (tied head, gelu_new, pre-LN), random init.
With a last argument `lora`: the policy is frozen and every linear layer of the blocks (c_attn, attn c_proj, c_fc,
mlp c_proj: rlhf's all-linear default for GPT-2) gets a LoRA adapter as peft's (r 16, alpha 32, so scaling 2;
A kaiming-uniform(a = sqrt(5)), B zeros; no bias; the adapters' dropout off, as TRL's disable_dropout and
`rlhf grpo`), written out by hand (peft is not a Debian package); only the adapters are clipped and stepped.
One warm-up step, then STEPS timed: prints one JSON line {"completions_per_s", "step_s" (the median step), "steps_s"
(every timed step), "peak_rss_mb"}.

usage: python3 bench/torch_grpo.py VOCAB HIDDEN LAYERS HEADS P R B G STEPS THREADS [lora]
"""
import math
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

from torch_common import sample, time_steps

VOCAB, H, L, NH, P, R, B, G, STEPS, THREADS = map(int, sys.argv[1:11])
LORA = sys.argv[11:12] == ["lora"]
LORA_R, LORA_ALPHA = 16, 32
torch.set_num_threads(THREADS)
torch.set_flush_denormal(True)  # denormal gradients of fresh models make the generic mm kernels crawl
torch.manual_seed(0)
TEMP = 1.0


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(H, eps=1e-5), nn.LayerNorm(H, eps=1e-5)
        self.c_attn, self.c_proj = nn.Linear(H, 3 * H), nn.Linear(H, H)
        self.c_fc, self.mlp_proj = nn.Linear(H, 4 * H), nn.Linear(4 * H, H)

    def forward(self, x, past=None):
        Bx, T, _ = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(H, dim=2)
        q, k, v = (t.view(Bx, T, NH, H // NH).transpose(1, 2) for t in (q, k, v))
        if past is not None:
            k, v = torch.cat([past[0], k], 2), torch.cat([past[1], v], 2)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=past is None) if hasattr(
            F, "scaled_dot_product_attention") else self._attn(q, k, v, past is None)
        x = x + self.c_proj(a.transpose(1, 2).reshape(Bx, T, H))
        x = x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))
        return x, (k, v)

    @staticmethod
    def _attn(q, k, v, causal):
        s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
        if causal:
            T = q.shape[2]
            s = s.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
        return s.softmax(-1) @ v


class GPT2(nn.Module):
    def __init__(self, score=False):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(VOCAB, H), nn.Embedding(P + R, H)
        self.h = nn.ModuleList(Block() for _ in range(L))
        self.ln_f = nn.LayerNorm(H, eps=1e-5)
        self.score = nn.Linear(H, 1, bias=False) if score else None
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.normal_(p, std=0.02)

    def forward(self, ids, start=0, past=None, keep=None):
        x = self.wte(ids) + self.wpe(torch.arange(start, start + ids.shape[1]))
        new = []
        for i, blk in enumerate(self.h):
            x, kv = blk(x, None if past is None else past[i])
            new.append(kv)
        if keep is not None:  # transformers' logits_to_keep: the head on positions keep[0] .. keep[1] - 1 only
            x = x[:, keep[0]:keep[1]]
        x = self.ln_f(x)
        return (self.score(x).squeeze(-1) if self.score is not None else x @ self.wte.weight.T), new


class LoRALinear(nn.Module):
    """peft's lora.Linear: base(x) + B(A(x)) * alpha / r, the base frozen."""

    def __init__(self, base):
        super().__init__()
        self.base = base
        self.lora_A = nn.Linear(base.in_features, LORA_R, bias=False)
        self.lora_B = nn.Linear(LORA_R, base.out_features, bias=False)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)
        self.scaling = LORA_ALPHA / LORA_R

    def forward(self, x):
        return self.base(x) + self.lora_B(self.lora_A(x)) * self.scaling


policy, reward = GPT2(), GPT2(score=True)
reward.requires_grad_(False)
if LORA:
    policy.requires_grad_(False)
    for blk in policy.h:
        for name in ("c_attn", "c_proj", "c_fc", "mlp_proj"):
            setattr(blk, name, LoRALinear(getattr(blk, name)))
params = [p for p in policy.parameters() if p.requires_grad]
opt = torch.optim.AdamW(params, lr=1e-6, eps=1e-8, weight_decay=0.0)
g = torch.Generator().manual_seed(1)


def logprobs(logits, resp):
    """TRL's _get_per_token_logps_and_entropies: logits of the R completion positions only (logits_to_keep),
    / temperature, selective_log_softmax (fp32: gather minus a per-row logsumexp loop), entropies under no_grad."""
    logits = logits / TEMP
    sel = torch.gather(logits, 2, resp.unsqueeze(-1)).squeeze(-1)
    lp = sel - torch.stack([torch.logsumexp(lg, dim=-1) for lg in logits])
    with torch.no_grad():
        ent = torch.stack([-(F.softmax(lg, -1) * F.log_softmax(lg, -1)).sum(-1) for lg in logits])
    return lp, ent


def step():
    queries = torch.randint(0, VOCAB, (B // G, P), generator=g).repeat_interleave(G, 0)
    with torch.no_grad():
        resp = sample(policy, queries, R, TEMP)  # KV cache, the head on the last prompt position
        qr = torch.cat([queries, resp], 1)
        rewards = reward(qr)[0][:, -1]
        grouped = rewards.view(-1, G)
        adv = (rewards - grouped.mean(1).repeat_interleave(G)) / (grouped.std(1).repeat_interleave(G) + 1e-4)
    perm = torch.randperm(B, generator=g)
    q, rs, a = qr[perm], resp[perm], adv[perm].unsqueeze(1)
    lp, _ = logprobs(policy(q, keep=(P - 1, P + R - 1))[0], rs)
    coef_1 = torch.exp(lp - lp.detach())
    coef_2 = torch.clamp(coef_1, 0.8, 1.2)
    loss = -torch.min(coef_1 * a, coef_2 * a).sum() / lp.numel()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    opt.zero_grad()


time_steps(step, STEPS, B, "completions_per_s", "step_s")
