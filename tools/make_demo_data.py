"""Builds data/demo/ from data/learn-demo (the synthetic polite-vs-rude preference pairs) for `make demo`:
  sft.jsonl           {"prompt", "completion"}: every train prompt twice, once with its polite (chosen) and once with
                      its rude/off-topic (rejected) response, so the SFT policy says either with about even odds;
  prompts.jsonl       {"prompt"}: the train prompts, for PPO rollouts;
  eval_prompts.jsonl  {"prompt"}: the held-out prompts, for before/after generations.
PPO then has something visible to do: move the policy toward the responses the reward model prefers.

usage: python3 tools/make_demo_data.py   (standard library only; output is committed)
"""
import json
import os

SRC, OUT = "data/learn-demo", "data/demo"
os.makedirs(OUT, exist_ok=True)
train = [json.loads(l) for l in open(os.path.join(SRC, "train.jsonl"))]
evals = [json.loads(l) for l in open(os.path.join(SRC, "eval.jsonl"))]
with open(os.path.join(OUT, "sft.jsonl"), "w") as f:
    for r in train:
        for resp in (r["chosen"], r["rejected"]):
            f.write(json.dumps({"prompt": r["prompt"] + "\n", "completion": " " + resp}) + "\n")
with open(os.path.join(OUT, "prompts.jsonl"), "w") as f:
    for r in train:
        f.write(json.dumps({"prompt": r["prompt"] + "\n"}) + "\n")
with open(os.path.join(OUT, "eval_prompts.jsonl"), "w") as f:
    for r in evals:
        f.write(json.dumps({"prompt": r["prompt"] + "\n"}) + "\n")
print("wrote", OUT)
