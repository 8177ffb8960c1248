#!/usr/bin/python3
"""Reference values for src/train/grpo_math.c: TRL's GRPOTrainer and RLOOTrainer math re-stated in PyTorch.

The lines follow trl/trainer/grpo_trainer.py (_generate_and_score_completions: nansum of the weighted rewards,
unscorable rows NaN, group nanmean, group / batch nanstd, advantages / (std + 1e-4), nan_to_num; _compute_loss:
token / sequence log importance weights, coef_1 / coef_2 clipping, -min, k3 KL times beta, the grpo / bnpo /
dr_grpo / dapo normalisers, clip_ratio metrics) and trl/trainer/rloo_trainer.py (reward clipping, KL in the
reward, leave-one-out baseline over scorable siblings, normalize_advantages, the sequence-level loss). The
gradient with respect to the new per-token log-probs comes from autograd. float64 on float32 inputs.

Run: /usr/bin/python3 tools/gen_grpo_reference.py   (torch 1.13; writes tests/fixtures/grpo/reference.json)
"""
import json
import os

import torch

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "grpo", "reference.json")
torch.manual_seed(0)
D = torch.float64

N, G, T, K = 8, 4, 6, 2
GRAD_ACCUM = 2
MAX_COMPLETION_LENGTH = T


def f32(x):
    return x.float().double()


def nanstd(tensor, dim=None, keepdim=False):  # trl.trainer.utils.nanstd
    # torch 1.13's sum() takes keepdim only with a dim: reduce over every dimension explicitly
    kw = {"dim": tuple(range(tensor.dim())) if dim is None else dim}
    mean = torch.nanmean(tensor, keepdim=True, **kw)
    variance = torch.nanmean((tensor - mean) ** 2, keepdim=True, **kw)
    count = torch.sum(~torch.isnan(tensor), keepdim=True, **kw)
    correction = count / (count - 1)
    correction = torch.where(count > 1, correction, torch.full_like(correction, float("nan")))
    variance = variance * correction
    std = torch.sqrt(variance)
    if keepdim or dim is None:
        return std if keepdim else std.reshape(())
    return std.squeeze(dim)


# ---- shared inputs ------------------------------------------------------------------------------------
rewards_per_func = f32(torch.randn(N, K))
rewards_per_func[1, 0] = float("nan")                  # one function returned None
rewards_per_func[6, :] = float("nan")                  # unscorable row
rewards_per_func[4:8, 1] = float("nan")
rewards_per_func[4, 0] = rewards_per_func[5, 0] = rewards_per_func[7, 0] = 0.5  # second group: zero std
weights = torch.tensor([1.0, 0.5], dtype=D)
lengths = [6, 3, 1, 0, 4, 6, 2, 5]                     # row 3 fully masked (mask_truncated_completions)
mask = torch.zeros(N, T, dtype=D)
for b, n in enumerate(lengths):
    mask[b, :n] = 1
old = f32(-torch.rand(N, T, dtype=D) * 3 - 0.05)
new = f32(old + torch.randn(N, T, dtype=D) * 0.25)     # ratios inside and outside [0.8, 1.28]
ref = f32(old + torch.randn(N, T, dtype=D) * 0.3)


def combine():
    unscorable = torch.isnan(rewards_per_func).all(dim=1)
    r = (rewards_per_func * weights.unsqueeze(0)).nansum(dim=1)
    r[unscorable] = float("nan")
    return r


def grpo_advantages(scale):
    rewards = combine()
    mean_g = torch.nanmean(rewards.view(-1, G), dim=1).repeat_interleave(G, dim=0)
    if scale in ("group", "none"):
        std = nanstd(rewards.view(-1, G), dim=1).repeat_interleave(G, dim=0)
    else:
        std = nanstd(rewards).expand_as(rewards)
    adv = rewards - mean_g
    if scale != "none":
        adv = adv / (std + 1e-4)
    is_std_zero = torch.isclose(std, torch.zeros_like(std))
    adv = torch.nan_to_num(adv, nan=0.0)
    stats = {"reward": torch.nanmean(rewards).item(), "reward_std": nanstd(rewards).item(),
             "frac_reward_zero_std": is_std_zero.double().mean().item()}
    return f32(adv), stats


def grpo_loss(adv, loss_type, level, beta, eps_low=0.2, eps_high=0.28):
    logps = new.clone().requires_grad_(True)
    advantages = adv.unsqueeze(1)
    log_ratio = logps - old
    if level == "token":
        liw = log_ratio
    else:
        liw = ((log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).unsqueeze(-1)
    coef_1 = torch.exp(liw)
    if beta != 0.0:
        per_token_kl = torch.exp(ref - logps) - (ref - logps) - 1
    coef_2 = torch.clamp(coef_1, 1 - eps_low, 1 + eps_high)
    per_token_loss = -torch.min(coef_1 * advantages, coef_2 * advantages)
    if beta != 0.0:
        per_token_loss = per_token_loss + beta * per_token_kl
    num_items = mask.sum()
    if loss_type == "grpo":
        loss = ((per_token_loss * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean() / GRAD_ACCUM
    elif loss_type == "bnpo":
        loss = (per_token_loss * mask).sum() / mask.sum().clamp(min=1.0) / GRAD_ACCUM
    elif loss_type == "dr_grpo":
        loss = (per_token_loss * mask).sum() / (per_token_loss.size(0) * MAX_COMPLETION_LENGTH) / GRAD_ACCUM
    else:
        loss = (per_token_loss * mask).sum() / num_items.clamp(min=1.0)
    loss.backward()

    def gmm(x):
        if x.shape[1] == 1:
            return (x.sum() / max(float(x.shape[0]), 1.0)).item()
        return ((x * mask).sum() / mask.sum().clamp(min=1.0)).item()

    low = (coef_1 < 1 - eps_low) & (advantages < 0)
    high = (coef_1 > 1 + eps_high) & (advantages > 0)
    out = {"loss": loss.item(), "grad": logps.grad.flatten().tolist(), "clip_low": gmm(low.double()),
           "clip_high": gmm(high.double()), "clip_region": gmm((low | high).double()),
           "num_items": num_items.item()}
    if beta != 0.0:
        out["kl"] = gmm(per_token_kl.detach())
    return out


def rloo(beta, normalize, clip):
    rewards = combine()
    unscorable = torch.isnan(rewards)
    if clip:
        rewards = rewards.clamp(min=clip[0], max=clip[1])
    seq_kl = ((old - ref) * mask).sum(-1)
    if beta != 0.0:
        rewards = rewards - beta * seq_kl
    grouped = rewards.view(-1, G)
    std = nanstd(grouped, dim=1)
    counts = (~torch.isnan(grouped)).sum(dim=1, keepdim=True)
    gsum = torch.nansum(grouped, dim=1, keepdim=True)
    baselines = ((gsum - grouped) / (counts - 1)).view(-1)
    adv = rewards - baselines
    if normalize:
        adv = (adv - torch.nanmean(adv)) / (nanstd(adv) + 1e-4)
    adv = f32(torch.nan_to_num(adv, nan=0.0))
    logps = new.clone().requires_grad_(True)
    lp = (logps * mask).sum(1)
    old_lp = (old * mask).sum(1)
    coef_1 = torch.exp(lp - old_lp)
    coef_2 = torch.clamp(coef_1, 1 - 0.2, 1 + 0.2)
    loss = -torch.min(coef_1 * adv, coef_2 * adv)
    loss = loss.mean() / GRAD_ACCUM
    loss.backward()
    low = (coef_1 < 0.8) & (adv < 0)
    high = (coef_1 > 1.2) & (adv > 0)
    del unscorable
    return {"beta": beta, "normalize": normalize, "clip": clip, "seq_kl": f32(seq_kl).tolist(),
            "advantages": adv.tolist(), "loss": loss.item(), "grad": logps.grad.flatten().tolist(),
            "clip_low": low.double().mean().item(), "clip_high": high.double().mean().item(),
            "clip_region": (low | high).double().mean().item(),
            "frac_reward_zero_std": torch.isclose(std, torch.zeros_like(std)).double().mean().item()}


def nan_list(x):
    return [None if v != v else v for v in x.flatten().tolist()]


cases = []
for scale in ("group", "batch", "none"):
    adv, stats = grpo_advantages(scale)
    for loss_type in ("grpo", "dr_grpo", "dapo", "bnpo"):
        for level in ("token", "sequence"):
            for beta in (0.0, 0.04):
                c = {"scale_rewards": scale, "loss_type": loss_type, "importance_sampling_level": level,
                     "beta": beta, "advantages": adv.tolist()}
                c.update(stats)
                c.update(grpo_loss(adv, loss_type, level, beta))
                cases.append(c)
rloo_cases = [rloo(b, n, c) for b in (0.0, 0.05) for n in (False, True) for c in (None, [-1.0, 1.0])]
doc = {"N": N, "G": G, "T": T, "K": K, "grad_accum": GRAD_ACCUM, "max_completion_length": MAX_COMPLETION_LENGTH,
       "epsilon": 0.2, "epsilon_high": 0.28, "rewards_per_func": nan_list(rewards_per_func),
       "reward_weights": weights.tolist(), "mask": mask.flatten().tolist(), "old_logprobs": old.flatten().tolist(),
       "new_logprobs": new.flatten().tolist(), "ref_logprobs": ref.flatten().tolist(), "cases": cases,
       "rloo_cases": rloo_cases}
os.makedirs(os.path.dirname(OUT), exist_ok=True)
with open(OUT, "w") as f:
    json.dump(doc, f, separators=(",", ":"))
    f.write("\n")
print(f"wrote {OUT}: {len(cases)} grpo cases, {len(rloo_cases)} rloo cases")
