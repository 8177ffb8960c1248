"""PyTorch side of the end-to-end reward benchmark (bench/reward_e2e.sh): one epoch of pairwise reward training
on pre-tokenized HH-RLHF pairs with the plain-PyTorch BERT of tools/torch_ref, either padding every batch to
max_length (the seed script's loop) or to the longest sequence in the batch (dynamic padding), chosen and
rejected in one forward, AdamW, clipping. Tokenization is done beforehand (by `rlhf tokenize`) and not timed,
which favours this side. Prints one JSON line: {"pairs_per_s", "seconds", "peak_rss_mb", "mean_loss"}.

usage: python3 tools/bench_reward_e2e_torch.py MODEL_DIR PAIRS.ids.jsonl MAX_LENGTH pad|dynamic BATCH THREADS
  PAIRS.ids.jsonl rows: {"chosen": {"input_ids": [...], "token_type_ids": [...]}, "rejected": {...}}
"""
import json
import os
import resource
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "torch_ref"))
from bert import BertForSequenceClassification, decay_groups  # noqa: E402
from hfio import load_config, load_safetensors  # noqa: E402

model_dir, pairs_path, max_length, mode, batch, threads = sys.argv[1:7]
max_length, batch, threads = int(max_length), int(batch), int(threads)
torch.set_num_threads(threads)
torch.set_flush_denormal(True)  # denormal gradients of fresh models make the generic mm kernels crawl
torch.manual_seed(0)


def cut(seq):
    """Right truncation keeping the final [SEP] (the benchmark's stand-in for longest_first)."""
    ids, types = seq["input_ids"], seq["token_type_ids"]
    if len(ids) <= max_length:
        return ids, types
    return ids[:max_length - 1] + ids[-1:], types[:max_length - 1] + types[-1:]


pairs = [json.loads(l) for l in open(pairs_path)]
cfg = load_config(model_dir)
model = BertForSequenceClassification(cfg)
model.load_hf(load_safetensors(os.path.join(model_dir, "model.safetensors")))
model.train()
opt = torch.optim.AdamW(decay_groups(model, 0.0), lr=5e-5)

t0 = time.perf_counter()
losses = []
for s in range(0, len(pairs), batch):
    chunk = pairs[s:s + batch]
    seqs = [cut(p["chosen"]) for p in chunk] + [cut(p["rejected"]) for p in chunk]
    T = max_length if mode == "pad" else max(len(i) for i, _ in seqs)
    ids = torch.tensor([i + [0] * (T - len(i)) for i, _ in seqs])
    types = torch.tensor([t + [0] * (T - len(t)) for _, t in seqs])
    mask = torch.tensor([[1] * len(i) + [0] * (T - len(i)) for i, _ in seqs])
    r = model(ids, mask, types)[:, 0]
    P = len(chunk)
    loss = -F.logsigmoid(r[:P] - r[P:]).mean()
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    losses.append(loss.item())
dt = time.perf_counter() - t0
print(json.dumps({"pairs_per_s": len(pairs) / dt, "seconds": dt,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
                  "mean_loss": sum(losses) / len(losses)}))
