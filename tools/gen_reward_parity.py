"""Training-parity reference for `rlhf reward` (issue 5): 20 optimizer steps of the pairwise reward loss on the
bert_seqcls_1 fixture (dropout 0 in its config) in plain PyTorch, with the same batches (no shuffle, dynamic
right padding), HF Trainer's AdamW groups, clipping and linear schedule with warmup. Writes
tests/fixtures/parity/{pairs.jsonl,expected.json}; tests/cli/reward_parity.sh compares rlhf's training_log.csv.

usage: /usr/bin/python3 tools/gen_reward_parity.py
"""
import json
import math
import os
import random
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "torch_ref"))
from bert import BertForSequenceClassification, decay_groups  # noqa: E402
from hfio import load_config, load_safetensors  # noqa: E402

FIX = "tests/fixtures/hf/bert_seqcls_1"
OUT = "tests/fixtures/parity"
N_PAIRS, BATCH, LR, WD, WARMUP_RATIO, MAX_GRAD_NORM = 40, 2, 1e-3, 0.01, 0.1, 1.0
torch.manual_seed(0)
rng = random.Random(1234)
cfg = load_config(FIX)
V = cfg["vocab_size"]

# Learnable signal: chosen responses contain low ids, rejected high ids.
pairs = []
for _ in range(N_PAIRS):
    c = [rng.randrange(1, V // 2) for _ in range(rng.randint(3, 9))]
    r = [rng.randrange(V // 2, V) for _ in range(rng.randint(3, 9))]
    pairs.append({"chosen_ids": c, "rejected_ids": r})

model = BertForSequenceClassification(cfg)
model.load_hf(load_safetensors(os.path.join(FIX, "model.safetensors")))
model.train()  # dropout probabilities are 0 in this config: train mode is deterministic
steps = N_PAIRS // BATCH
warmup = math.ceil(WARMUP_RATIO * steps)
opt = torch.optim.AdamW(decay_groups(model, WD), lr=LR, betas=(0.9, 0.999), eps=1e-8)
lam = lambda s: s / max(1, warmup) if s < warmup else max(0.0, (steps - s) / max(1, steps - warmup))
sched = torch.optim.lr_scheduler.LambdaLR(opt, lam)


def pad(seqs):
    T = max(len(s) for s in seqs)
    ids = torch.tensor([s + [0] * (T - len(s)) for s in seqs])
    mask = torch.tensor([[1] * len(s) + [0] * (T - len(s)) for s in seqs])
    return ids, mask


losses, lrs, norms = [], [], []
for step in range(steps):
    batch = pairs[step * BATCH:(step + 1) * BATCH]
    ids, mask = pad([p["chosen_ids"] for p in batch] + [p["rejected_ids"] for p in batch])
    r = model(ids, mask)[:, 0]
    loss = -F.logsigmoid(r[:BATCH] - r[BATCH:]).mean()
    opt.zero_grad()
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
    lrs.append(opt.param_groups[0]["lr"])
    opt.step()
    sched.step()
    losses.append(loss.item())
    norms.append(norm.item())

os.makedirs(OUT, exist_ok=True)
with open(os.path.join(OUT, "pairs.jsonl"), "w") as f:
    for p in pairs:
        f.write(json.dumps(p) + "\n")
args = ["--per_device_train_batch_size", str(BATCH), "--num_train_epochs", "1", "--learning_rate", repr(LR),
        "--weight_decay", repr(WD), "--warmup_ratio", repr(WARMUP_RATIO), "--lr_scheduler_type", "linear",
        "--max_grad_norm", repr(MAX_GRAD_NORM), "--no_shuffle", "--logging_steps", "1", "--eval_strategy", "no",
        "--save_strategy", "no", "--disable_dropout", "true"]
json.dump({"fixture": FIX, "args": args, "losses": losses, "grad_norms": norms, "learning_rates": lrs,
           "note": "loss of each optimizer step before its update; grad_norm before clipping; lr used by the step"},
          open(os.path.join(OUT, "expected.json"), "w"), indent=1)
print("losses", ["%.5f" % l for l in losses])
