#!/usr/bin/python3
"""Reference values for `rlhf dpo`: TRL 0.27's DPOTrainer computation transcribed into plain PyTorch.

1. tests/fixtures/dpo/losses.json: every loss type of DPOTrainer.dpo_loss (trl/trainer/dpo_trainer.py,
   v0.27.0) on fixed log-probs, with d loss / d (policy chosen, rejected log-probs) from autograd, for
   tests/test_train_dpo_loss.c. bco_pair's RunningMoments (trl/trainer/utils.py) is updated once per case
   with the batch's rewards, as dpo_loss does.
2. tests/fixtures/dpo/parity_*.json: 20 optimizer steps of DPO on the tiny GPT-2 fixture
   (tests/fixtures/hf/gpt2_lm; tools/torch_ref/gpt2.py reproduces transformers' logits to 2e-6) over
   tests/fixtures/dpo/pairs.jsonl (pre-tokenized rows), with TRL's concatenated forward (chosen rows then
   rejected, prompt + completion right-padded), log-probs summed over completion tokens (averaged for ipo),
   a frozen reference copy, the loss mean over pairs (+ rpo_alpha * NLL of the chosen tokens) divided by
   gradient_accumulation_steps, clip_grad_norm_, torch AdamW with HF's linear schedule, and the metrics TRL
   logs (per micro-batch, averaged over the micro-batches of each logged step).

Run: /usr/bin/python3 tools/gen_dpo_reference.py   (torch 1.13)
"""
import json
import math
import os
import random
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "torch_ref"))
from gpt2 import GPT2, check  # noqa: E402

ROOT = os.path.join(HERE, "..")
FIX = os.path.join(ROOT, "tests", "fixtures", "dpo")
MODEL = os.path.join(ROOT, "tests", "fixtures", "hf", "gpt2_lm")


# ---- dpo_loss (v0.27.0), f_divergence reverse_kl, reference_free False --------------------------------
class Running:
    def __init__(self):
        self.mean, self.var, self.count = 0.0, 1.0, 1e-24

    def update(self, xs):
        xs_count = xs.numel()
        xs_var, xs_mean = torch.var_mean(xs, unbiased=False)
        xs_mean, xs_var = xs_mean.float(), xs_var.float()
        delta = xs_mean - self.mean
        tot = self.count + xs_count
        new_sum = xs_var * xs_count
        old_sum = self.var * self.count + delta ** 2 * self.count * xs_count / tot
        self.mean += (delta * xs_count / tot).item()
        self.var = ((old_sum + new_sum) / tot).item()
        self.count = tot


def dpo_loss(pc, pr, rc, rr, loss_type, beta, ls, tau, running):
    logits = (pc - pr) - (rc - rr)
    if loss_type == "sigmoid":
        return -F.logsigmoid(beta * logits) * (1 - ls) - F.logsigmoid(-beta * logits) * ls
    if loss_type == "robust":
        return (-F.logsigmoid(beta * logits) * (1 - ls) + F.logsigmoid(-beta * logits) * ls) / (1 - 2 * ls)
    if loss_type == "exo_pair":
        if ls == 0:
            ls = 1e-3
        return (beta * logits).sigmoid() * (F.logsigmoid(beta * logits) - math.log(1 - ls)) + (
            -beta * logits
        ).sigmoid() * (F.logsigmoid(-beta * logits) - math.log(ls))
    if loss_type == "hinge":
        return torch.relu(1 - beta * logits)
    if loss_type == "ipo":
        return (logits - 1 / (2 * beta)) ** 2
    if loss_type == "bco_pair":
        cl, rl = pc - rc, pr - rr
        rewards = torch.cat((beta * cl, beta * rl), 0).mean().detach()
        running.update(torch.cat((beta * cl, beta * rl), 0).detach())
        delta = running.mean
        return -F.logsigmoid(beta * cl - delta) - F.logsigmoid(-(beta * rl - delta))
    if loss_type == "sppo_hard":
        a, b = pc - rc, pr - rr
        return (a - 0.5 / beta) ** 2 + (b + 0.5 / beta) ** 2
    if loss_type == "nca_pair":
        cr, rj = (pc - rc) * beta, (pr - rr) * beta
        return -F.logsigmoid(cr) - 0.5 * F.logsigmoid(-cr) - 0.5 * F.logsigmoid(-rj)
    if loss_type == "apo_zero":
        return (1 - F.sigmoid(beta * (pc - rc))) + F.sigmoid(beta * (pr - rr))
    if loss_type == "apo_down":
        return F.sigmoid(beta * (pc - rc)) + (1 - F.sigmoid(beta * ((pc - rc) - (pr - rr))))
    if loss_type == "discopop":
        z = logits * beta
        m = torch.sigmoid(z / tau)
        return -F.logsigmoid(z) * (1 - m) + torch.exp(-z) * m
    raise ValueError(loss_type)


LOSS_TYPES = ["sigmoid", "ipo", "hinge", "robust", "exo_pair", "nca_pair", "bco_pair", "sppo_hard", "apo_zero",
              "apo_down", "discopop"]


def gen_losses():
    g = torch.Generator().manual_seed(7)
    P = 6
    pc = (-20 + 10 * torch.rand(P, generator=g, dtype=torch.float64))
    pr = (-20 + 10 * torch.rand(P, generator=g, dtype=torch.float64))
    rc = pc + torch.randn(P, generator=g, dtype=torch.float64) * 2
    rr = pr + torch.randn(P, generator=g, dtype=torch.float64) * 2
    cases = []
    for lt in LOSS_TYPES:
        for beta, ls in [(0.1, 0.0), (0.5, 0.2)]:
            x, y = pc.clone().requires_grad_(), pr.clone().requires_grad_()
            running = Running()
            losses = dpo_loss(x, y, rc, rr, lt, beta, ls, 0.05, running)
            losses.sum().backward()
            cases.append({"loss_type": lt, "beta": beta, "label_smoothing": ls, "discopop_tau": 0.05,
                          "delta": running.mean, "losses": losses.tolist(), "dchosen": x.grad.tolist(),
                          "drejected": y.grad.tolist()})
    out = {"generator": "tools/gen_dpo_reference.py (TRL 0.27 dpo_loss, float64, autograd)",
           "chosen_logps": pc.tolist(), "rejected_logps": pr.tolist(), "ref_chosen_logps": rc.tolist(),
           "ref_rejected_logps": rr.tolist(), "cases": cases}
    with open(os.path.join(FIX, "losses.json"), "w") as f:
        json.dump(out, f, indent=1)


# ---- the 20-step training reference ---------------------------------------------------------------------
def make_pairs(n=16, seed=3):
    rnd = random.Random(seed)
    eos = 2
    rows = []
    for _ in range(n):
        tok = lambda k: [rnd.randrange(3, 128) for _ in range(k)]  # no id 0 (TRL's NLL ignores id 0), no EOS
        rows.append({"prompt_input_ids": tok(rnd.randrange(2, 9)),
                     "chosen_input_ids": tok(rnd.randrange(1, 9)) + [eos],
                     "rejected_input_ids": tok(rnd.randrange(1, 9)) + [eos]})
    with open(os.path.join(FIX, "pairs.jsonl"), "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return rows


def concatenated_forward(model, batch, ipo, want_nll):
    """TRL concatenated_forward for a decoder: rows [chosen..., rejected...], each prompt + completion,
    flushed left (right padding). Returns sequence log-probs, nll, mean logits."""
    P = len(batch)
    seqs = [(r["prompt_input_ids"], r["chosen_input_ids"]) for r in batch] + \
           [(r["prompt_input_ids"], r["rejected_input_ids"]) for r in batch]
    T = max(len(p) + len(c) for p, c in seqs)
    ids = torch.zeros(2 * P, T, dtype=torch.long)
    loss_mask = torch.zeros(2 * P, T, dtype=torch.bool)
    for k, (p, c) in enumerate(seqs):
        ids[k, :len(p) + len(c)] = torch.tensor(p + c)
        loss_mask[k, len(p):len(p) + len(c)] = True
    logits = model.forward(ids)
    labels = torch.roll(ids, shifts=-1, dims=1)
    lm = torch.roll(loss_mask, shifts=-1, dims=1)
    labels = labels.masked_fill(~lm, 0)
    tok_logps = torch.gather(logits.log_softmax(-1), 2, labels.unsqueeze(-1)).squeeze(-1)
    tok_logps = tok_logps.masked_fill(~lm, 0)
    tok_logps = torch.roll(tok_logps, shifts=1, dims=1)
    all_logps = tok_logps[:, 1:].sum(-1)
    nll = None
    if want_nll:
        nll = F.cross_entropy(logits[:P, :-1].flatten(0, 1), labels[:P, :-1].flatten(), ignore_index=0)
    if ipo:
        all_logps = all_logps / lm.sum(-1)
    return {"chosen_logps": all_logps[:P], "rejected_logps": all_logps[P:], "nll_loss": nll,
            "mean_chosen_logits": logits[:P][lm[:P]].mean(), "mean_rejected_logits": logits[P:][lm[P:]].mean()}


def train(rows, loss_type, rpo_alpha, steps=20, bs=2, accum=2, lr=5e-3, beta=0.1, clip=1.0):
    policy, ref = GPT2(MODEL), GPT2(MODEL)
    params = list(policy.params.values())
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    n_batches = (len(rows) + bs - 1) // bs
    ipo = loss_type == "ipo"
    log, step, mb_in_epoch, stored = [], 0, 0, []
    while step < steps:
        step_loss = 0.0
        for a in range(accum):
            batch = rows[mb_in_epoch * bs:(mb_in_epoch + 1) * bs]
            mb_in_epoch = (mb_in_epoch + 1) % n_batches
            out = concatenated_forward(policy, batch, ipo, rpo_alpha is not None)
            with torch.no_grad():
                r = concatenated_forward(ref, batch, ipo, False)
            losses = dpo_loss(out["chosen_logps"], out["rejected_logps"], r["chosen_logps"], r["rejected_logps"],
                              loss_type, beta, 0.0, 0.05, None)
            cr = beta * (out["chosen_logps"] - r["chosen_logps"]).detach()
            rj = beta * (out["rejected_logps"] - r["rejected_logps"]).detach()
            if rpo_alpha is not None:
                losses = losses + rpo_alpha * out["nll_loss"]
            loss = losses.mean()
            (loss / accum).backward()
            step_loss += loss.item() / accum
            m = {"rewards/chosen": cr.mean().item(), "rewards/rejected": rj.mean().item(),
                 "rewards/accuracies": (cr > rj).float().mean().item(), "rewards/margins": (cr - rj).mean().item(),
                 "logps/chosen": out["chosen_logps"].detach().mean().item(),
                 "logps/rejected": out["rejected_logps"].detach().mean().item(),
                 "logits/chosen": out["mean_chosen_logits"].item(),
                 "logits/rejected": out["mean_rejected_logits"].item()}
            if rpo_alpha is not None:
                m["nll_loss"] = out["nll_loss"].item()
            stored.append(m)
        norm = torch.nn.utils.clip_grad_norm_(params, clip).item()
        for gr in opt.param_groups:
            gr["lr"] = lr * max(0.0, (steps - step) / steps)  # get_linear_schedule_with_warmup, no warmup
        cur_lr = opt.param_groups[0]["lr"]
        opt.step()
        opt.zero_grad()
        step += 1
        row = {"step": step, "loss": step_loss, "learning_rate": cur_lr, "grad_norm": norm}
        for k in stored[0]:
            row[k] = sum(s[k] for s in stored) / len(stored)
        stored = []
        log.append(row)
    return log


def main():
    os.makedirs(FIX, exist_ok=True)
    err = check(MODEL)
    assert err < 1e-5, "torch GPT-2 differs from the transformers fixture by %g" % err
    gen_losses()
    rows = make_pairs()
    for name, lt, rpo in [("sigmoid", "sigmoid", None), ("ipo", "ipo", None), ("hinge", "hinge", None),
                          ("sigmoid_rpo", "sigmoid", 1.0)]:
        args = ["--loss_type", lt, "--beta", "0.1", "--learning_rate", "5e-3", "--max_steps", "20",
                "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "2", "--logging_steps", "1",
                "--max_grad_norm", "1.0", "--no_shuffle", "--save_strategy", "no", "--lr_scheduler_type", "linear"]
        if rpo is not None:
            args += ["--rpo_alpha", str(rpo)]
        log = train(rows, lt, rpo)
        with open(os.path.join(FIX, "parity_%s.json" % name), "w") as f:
            json.dump({"generator": "tools/gen_dpo_reference.py", "torch_vs_transformers_logits": err,
                       "args": args, "steps": log}, f, indent=1)
        print(name, "first loss %.6f last loss %.6f" % (log[0]["loss"], log[-1]["loss"]))


if __name__ == "__main__":
    main()
