#!/usr/bin/python3
"""Reference values for src/train/ppo_math.c: TRL PPOTrainer's update math re-stated in PyTorch.

Each step below follows the lines of trl/experimental/ppo/ppo_trainer.py (masked_mean, masked_var,
masked_whiten, truncate_response, the k1/k3 KL, non-score reward, GAE loop, advantage whitening,
clipped policy/value losses, approxkl, clipfrac, entropy from logits) and trl's AdaptiveKLController,
with one deliberate change (TRL issue 3750): the score is added at the last REAL token
(sequence_length) instead of sequence_length + 1, and the value mask is the real-token mask instead
of TRL's padding_mask_p1. Gradients of the loss w.r.t. the new log-probs and values come from
autograd. Computation is in float64 on float32-representable inputs.

Run: /usr/bin/python3 tools/gen_ppo_reference.py   (torch 1.13; writes tests/fixtures/ppo/*.json)
"""
import json
import os

import torch

OUT_DIR = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "ppo")


def masked_mean(values, mask):
    return (values * mask).sum() / mask.sum()


def masked_var(values, mask, unbiased=True):
    mean = masked_mean(values, mask)
    variance = masked_mean((values - mean) ** 2, mask)
    if unbiased:
        mask_sum = mask.sum()
        variance = variance * (mask_sum / (mask_sum - 1))
    return variance


def masked_whiten(values, mask, shift_mean=True):
    mean, var = masked_mean(values, mask), masked_var(values, mask)
    whitened = (values - mean) * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        whitened += mean
    return whitened


def first_true_indices(bools):
    # TRL utils: index of the first True per row, row length when none.
    row_len = bools.size(-1)
    zero_or_index = row_len * (~bools).type(torch.long) + torch.arange(row_len)
    return torch.min(zero_or_index, dim=-1).values


def f32(t):
    """Rounds to float32 and back so the C side sees exactly the same inputs."""
    return t.to(torch.float32).to(torch.float64)


def make_case(seed, B, T, V, stop, kl_coef, estimator, whiten_rewards, gamma, lam, cliprange, cliprange_value,
              vf_coef, missing_eos_penalty, temperature):
    g = torch.Generator().manual_seed(seed)
    responses = torch.randint(0, V, (B, T), generator=g)
    responses[responses == stop] = (stop + 1) % V
    n_generated = torch.full((B,), T, dtype=torch.long)
    # Row patterns: stop mid-way; no stop; stop in the last slot; two stops (the first counts); a row
    # that finished early whose filler holds the stop id (must be ignored).
    responses[0, 2] = stop
    if B > 2:
        responses[2, T - 1] = stop
    if B > 3:
        responses[3, 1] = stop
        responses[3, 4] = stop
    if B > 4:
        n_generated[4] = 3
        responses[4, 4] = stop

    # --- truncation (truncate_response semantics + n_generated), mask of real tokens
    idxs = torch.arange(T).view(1, T)
    in_gen = idxs < n_generated.view(B, 1)
    trunc = first_true_indices((responses == stop) & in_gen)
    has_stop = trunc < T
    lengths = torch.where(has_stop, trunc + 1, n_generated)
    padding_mask = idxs >= lengths.view(B, 1)          # TRL: response_idxs > sequence_lengths
    mask = (~padding_mask).to(torch.float64)

    logprobs = f32(-torch.rand(B, T, generator=g, dtype=torch.float64) * 3)
    ref_logprobs = f32(logprobs + torch.randn(B, T, generator=g, dtype=torch.float64) * 0.3)
    values = f32(torch.randn(B, T, generator=g, dtype=torch.float64))
    raw_scores = f32(torch.randn(B, generator=g, dtype=torch.float64) * 2)
    logits = f32(torch.randn(B, T, V, generator=g, dtype=torch.float64) * 2)

    # --- missing EOS penalty
    scores = raw_scores.clone()
    scores[~has_stop] -= missing_eos_penalty

    # --- rewards
    lp = torch.masked_fill(logprobs, padding_mask, 1.0)   # INVALID_LOGPROB
    rlp = torch.masked_fill(ref_logprobs, padding_mask, 1.0)
    vals = torch.masked_fill(values, padding_mask, 0)      # TRL masks with padding_mask_p1 (issue 3750)
    logr = rlp - lp
    kl = -logr if estimator == "k1" else (logr.exp() - 1) - logr
    non_score_reward = -kl_coef * kl
    rewards = non_score_reward.clone()
    rewards[torch.arange(B), lengths - 1] += scores        # TRL: sequence_lengths + 1 (issue 3750)
    if whiten_rewards:
        rewards = masked_whiten(rewards, mask, shift_mean=False)
        rewards = torch.masked_fill(rewards, padding_mask, 0)

    # --- GAE
    lastgaelam = 0
    adv_rev = []
    for t in reversed(range(T)):
        nextvalues = vals[:, t + 1] if t < T - 1 else 0.0
        delta = rewards[:, t] + gamma * nextvalues - vals[:, t]
        lastgaelam = delta + gamma * lam * lastgaelam
        adv_rev.append(lastgaelam)
    advantages_raw = torch.stack(adv_rev[::-1], axis=1)
    returns = advantages_raw + vals
    advantages = masked_whiten(advantages_raw, mask)
    advantages = torch.masked_fill(advantages, padding_mask, 0)

    # --- one micro-batch of the PPO loss on perturbed new log-probs / values
    new_logprobs = f32(logprobs + torch.randn(B, T, generator=g, dtype=torch.float64) * 0.25).requires_grad_(True)
    new_values = f32(values + torch.randn(B, T, generator=g, dtype=torch.float64) * 0.4).requires_grad_(True)
    nlp = torch.masked_fill(new_logprobs, padding_mask, 1.0)
    vpred = torch.masked_fill(new_values, padding_mask, 0)
    vpredclipped = torch.clamp(vpred, vals - cliprange_value, vals + cliprange_value)
    vf_losses1 = torch.square(vpred - returns)
    vf_losses2 = torch.square(vpredclipped - returns)
    vf_loss = 0.5 * masked_mean(torch.max(vf_losses1, vf_losses2), mask)
    vf_clipfrac = masked_mean((vf_losses2 > vf_losses1).double(), mask)
    logprobs_diff = nlp - lp
    ratio = torch.exp(logprobs_diff)
    pg_losses = -advantages * ratio
    pg_losses2 = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    pg_loss = masked_mean(torch.max(pg_losses, pg_losses2), mask)
    loss = pg_loss + vf_coef * vf_loss
    loss.backward()
    pg_clipfrac = masked_mean((pg_losses2 > pg_losses).double(), mask)
    approxkl_real = 0.5 * masked_mean(logprobs_diff ** 2, mask)    # over real tokens (ours)
    approxkl_trl = 0.5 * (logprobs_diff ** 2).mean()                # TRL: over all B*T slots
    ratio_mean = masked_mean(ratio, mask)

    z = logits / temperature
    prob = torch.softmax(z, dim=-1)
    entropy = torch.logsumexp(z, dim=-1) - torch.sum(prob * z, dim=-1)

    # --- rollout metrics (sums over real tokens)
    stats = {
        "kl": (kl * mask).sum(1).mean().item(),
        "entropy": (-logprobs * mask).sum(1).mean().item(),
        "non_score_reward": (non_score_reward * mask).sum(1).mean().item(),
        "scores": scores.mean().item(),
        "num_stop_tokens": int(has_stop.sum().item()),
    }
    stats["rlhf_reward"] = stats["non_score_reward"] + stats["scores"]

    # --- AdaptiveKLController over a few updates
    kl_ctl = {"init": 0.2, "target": 6.0, "horizon": 10000.0, "n_steps": 64,
              "kls": [3.0, 12.0, 6.6, 5.9, 0.0], "values": []}
    value = kl_ctl["init"]
    for cur in kl_ctl["kls"]:
        e = min(max(cur / kl_ctl["target"] - 1, -0.2), 0.2)
        value *= 1 + e * kl_ctl["n_steps"] / kl_ctl["horizon"]
        kl_ctl["values"].append(value)

    def L(t):
        return [float(x) for x in t.detach().reshape(-1).tolist()]

    return {
        "B": B, "T": T, "V": V, "stop_token_id": stop,
        "config": {"kl_coef": kl_coef, "kl_estimator": estimator, "whiten_rewards": whiten_rewards,
                   "gamma": gamma, "lam": lam, "cliprange": cliprange, "cliprange_value": cliprange_value,
                   "vf_coef": vf_coef, "missing_eos_penalty": missing_eos_penalty, "temperature": temperature},
        "inputs": {"responses": [int(x) for x in responses.reshape(-1).tolist()],
                   "n_generated": [int(x) for x in n_generated.tolist()],
                   "logprobs": L(logprobs), "ref_logprobs": L(ref_logprobs), "values": L(values),
                   "raw_scores": L(raw_scores), "logits": L(logits),
                   "new_logprobs": L(new_logprobs), "new_values": L(new_values)},
        "expected": {"mask": L(mask), "lengths": [int(x) for x in lengths.tolist()],
                     "has_stop": [int(x) for x in has_stop.tolist()], "scores": L(scores),
                     "kl": L(kl * mask), "non_score_reward": L(non_score_reward * mask), "rewards": L(rewards),
                     "advantages_raw": L(advantages_raw * mask), "returns": L(returns * mask),
                     "advantages": L(advantages),
                     "loss": loss.item(), "pg_loss": pg_loss.item(), "vf_loss": vf_loss.item(),
                     "pg_clipfrac": pg_clipfrac.item(), "vf_clipfrac": vf_clipfrac.item(),
                     "approxkl": approxkl_real.item(), "approxkl_trl": approxkl_trl.item(),
                     "ratio_mean": ratio_mean.item(),
                     "dlogprobs": L(new_logprobs.grad), "dvalues": L(new_values.grad),
                     "entropy": L(entropy), "stats": stats},
        "kl_controller": kl_ctl,
    }


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    cases = {
        "case_k1.json": make_case(seed=1, B=5, T=7, V=11, stop=3, kl_coef=0.05, estimator="k1", whiten_rewards=False,
                                  gamma=1.0, lam=0.95, cliprange=0.2, cliprange_value=0.2, vf_coef=0.1,
                                  missing_eos_penalty=1.0, temperature=0.7),
        "case_k3_whiten.json": make_case(seed=2, B=6, T=9, V=13, stop=5, kl_coef=0.3, estimator="k3",
                                         whiten_rewards=True, gamma=0.9, lam=0.8, cliprange=0.1,
                                         cliprange_value=0.3, vf_coef=0.5, missing_eos_penalty=0.5,
                                         temperature=1.0),
    }
    for name, case in cases.items():
        with open(os.path.join(OUT_DIR, name), "w") as f:
            json.dump(case, f, indent=None, separators=(",", ":"))
            f.write("\n")
        print("wrote", name)


if __name__ == "__main__":
    torch.set_default_dtype(torch.float64)
    main()
