"""PyTorch side of the PPO benchmark: the same update as `rlhf ppo` (TRL PPOTrainer.train) on the same shapes.
Per update: B prompts of P random ids; R tokens sampled with a KV cache at temperature 0.7 (no stop token);
policy and reference log-probs by full forwards; values from a copy of the reward model (its score head per
token, TRL's default value model); reward-model score at the last token; k1 KL penalty, score at the last
token, GAE, whitened advantages; EPOCHS PPO epochs over one mini-batch of B rows: clipped policy + value
loss, backward through policy and value model, global-norm clipping, AdamW. GPT-2 written out (tied head,
gelu_new, pre-LN), random init. One warm-up update, then UPDATES timed; prints one JSON line: {"episodes_per_s",
"update_s" (the median timed update), "steps_s" (every timed update), "peak_rss_mb"}.

usage: python3 bench/torch_ppo.py VOCAB HIDDEN LAYERS HEADS P R B EPOCHS UPDATES THREADS
"""
import math
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

from torch_common import sample, time_steps

VOCAB, H, L, NH, P, R, B, EPOCHS, UPDATES, THREADS = map(int, sys.argv[1:11])
torch.set_num_threads(THREADS)
torch.set_flush_denormal(True)  # denormal gradients of fresh models make the generic mm kernels crawl
torch.manual_seed(0)
TEMP = 0.7 + 1e-7


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


policy, ref, reward = GPT2(), GPT2(), GPT2(score=True)
value = GPT2(score=True)
value.load_state_dict(reward.state_dict())
ref.load_state_dict(policy.state_dict())
for m in (ref, reward):
    m.requires_grad_(False)
params = list(policy.parameters()) + list(value.parameters())
opt = torch.optim.AdamW(params, lr=1e-5, eps=1e-8, weight_decay=0.0)
g = torch.Generator().manual_seed(1)


def logprobs(logits, resp):
    return torch.gather(F.log_softmax(logits[:, P - 1:-1] / TEMP, -1), 2, resp.unsqueeze(-1)).squeeze(-1)


def update():
    queries = torch.randint(0, VOCAB, (B, P), generator=g)
    with torch.no_grad():
        resp = sample(policy, queries, R, TEMP)  # KV cache, the head on the last prompt position
        qr = torch.cat([queries, resp], 1)
        old_lp = logprobs(policy(qr)[0], resp)
        ref_lp = logprobs(ref(qr)[0], resp)
        old_v = value(qr)[0][:, P - 1:-1]
        scores = reward(qr)[0][:, -1]
        kl = old_lp - ref_lp
        rewards = -0.05 * kl
        rewards[:, -1] += scores
        adv_rev, last = [], 0.0
        for t in reversed(range(R)):
            nv = old_v[:, t + 1] if t < R - 1 else 0.0
            delta = rewards[:, t] + nv - old_v[:, t]
            last = delta + 0.95 * last
            adv_rev.append(last)
        adv = torch.stack(adv_rev[::-1], 1)
        ret = adv + old_v
        adv = (adv - adv.mean()) * torch.rsqrt(adv.var() + 1e-8)
    for _ in range(EPOCHS):
        perm = torch.randperm(B, generator=g)
        q, rs, olp, ov, a, rt = qr[perm], resp[perm], old_lp[perm], old_v[perm], adv[perm], ret[perm]
        new_lp = logprobs(policy(q)[0], rs)
        vpred = value(q)[0][:, P - 1:-1]
        vclip = torch.clamp(vpred, ov - 0.2, ov + 0.2)
        vf = 0.5 * torch.max((vpred - rt) ** 2, (vclip - rt) ** 2).mean()
        ratio = torch.exp(new_lp - olp)
        pg = torch.max(-a * ratio, -a * torch.clamp(ratio, 0.8, 1.2)).mean()
        loss = pg + 0.1 * vf
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad()


time_steps(update, UPDATES, B, "episodes_per_s", "update_s")
