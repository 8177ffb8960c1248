"""PyTorch side of the reward-step benchmark: one training step = chosen and rejected of P pairs in one forward
(2P rows, T tokens), pairwise loss, backward, grad clipping, AdamW — on the same BERT shape as
bench/bench_reward_step.c. Prints one JSON line: {"pairs_per_s", "step_s", "forward_s", "backward_s", "optimizer_s", "peak_rss_mb"}.

usage: python3 bench/torch_reward_step.py HIDDEN LAYERS HEADS INTERMEDIATE T PAIRS STEPS THREADS [DROPOUT]
(DROPOUT: hidden and attention-probability dropout, default 0.1 as BertConfig)
"""
import json
import os
import resource
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools", "torch_ref"))
from bert import BertForSequenceClassification, decay_groups  # noqa: E402

H, L, NH, I, T, P, STEPS, THREADS = map(int, sys.argv[1:9])
DROP = float(sys.argv[9]) if len(sys.argv) > 9 else 0.1
torch.set_num_threads(THREADS)
torch.set_flush_denormal(True)  # denormal gradients of fresh models make the generic mm kernels crawl
torch.manual_seed(0)
cfg = {"vocab_size": 30522, "hidden_size": H, "num_hidden_layers": L, "num_attention_heads": NH,
       "intermediate_size": I, "max_position_embeddings": 512, "type_vocab_size": 2, "num_labels": 1,
       "hidden_dropout_prob": DROP, "attention_probs_dropout_prob": DROP, "layer_norm_eps": 1e-12, "pad_token_id": 0}
model = BertForSequenceClassification(cfg)
model.train()
opt = torch.optim.AdamW(decay_groups(model, 0.0), lr=1e-5)
g = torch.Generator().manual_seed(1)
ids = torch.randint(1, 30522, (2 * P, T), generator=g)
mask = torch.ones(2 * P, T, dtype=torch.long)


phase = [0.0, 0.0, 0.0]


def step():
    a0 = time.perf_counter()
    opt.zero_grad(set_to_none=False)
    r = model(ids, mask)[:, 0]
    a1 = time.perf_counter()
    loss = -F.logsigmoid(r[:P] - r[P:]).mean()
    loss.backward()
    a2 = time.perf_counter()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    a3 = time.perf_counter()
    return a1 - a0, a2 - a1, a3 - a2


step()  # warm-up (allocations, AdamW state)
t0 = time.perf_counter()
for _ in range(STEPS):
    phase = [x + y for x, y in zip(phase, step())]
dt = (time.perf_counter() - t0) / STEPS
print(json.dumps({"pairs_per_s": P / dt, "step_s": dt, "forward_s": phase[0] / STEPS,
                  "backward_s": phase[1] / STEPS, "optimizer_s": phase[2] / STEPS,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}))
