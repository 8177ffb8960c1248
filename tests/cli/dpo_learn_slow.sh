#!/bin/bash
# `rlhf dpo` learns the bundled preference (data/learn-demo: polite vs rude answers): one epoch of sigmoid DPO
# (beta 0.1) on 200 of the training pairs from a tiny randomly initialised GPT-2 puts the implicit reward of the
# chosen answer above the rejected one on >= 90% of 60 held-out pairs (eval_rewards/accuracies; 0 before
# training, when policy == reference), with a positive held-out margin. Named *slow*: skipped under ASan.
set -u
RLHF=${1:?usage: dpo_learn_slow.sh path/to/rlhf}
W=$(mktemp -d -t rlhf-dpo-learn.XXXXXX)
trap 'rm -rf "$W"' EXIT
cat >"$W/cfg.json" <<'EOF2'
{"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": 50257, "n_embd": 32, "n_layer": 1,
 "n_head": 2, "n_positions": 96, "bos_token_id": 50256, "eos_token_id": 50256}
EOF2
"$RLHF" init --config "$W/cfg.json" --tokenizer tests/fixtures/tokenizers/gpt2 --output_dir "$W/init" >/dev/null 2>&1 ||
  { echo "FAIL: init"; exit 1; }
head -n 200 data/learn-demo/train.jsonl >"$W/train.jsonl"
head -n 60 data/learn-demo/eval.jsonl >"$W/eval.jsonl"
"$RLHF" dpo --model_name_or_path "$W/init" --dataset_name "$W/train.jsonl" --eval_dataset_name "$W/eval.jsonl" \
  --output_dir "$W/out" --beta 0.1 --learning_rate 5e-3 \
  --per_device_train_batch_size 8 --per_device_eval_batch_size 30 --num_train_epochs 1 --logging_steps 10 \
  --save_strategy no --threads 2 --quiet >"$W/out.log" 2>"$W/err" || { tail -n 3 "$W/err"; echo "FAIL: dpo"; exit 1; }
python3 - "$W/out/training_log.csv" <<'PY' || exit 1
import csv, sys
ev = [r for r in csv.DictReader(open(sys.argv[1])) if r["eval_loss"]]
acc, margin = float(ev[-1]["eval_rewards/accuracies"]), float(ev[-1]["eval_rewards/margins"])
print("held-out eval_rewards/accuracies %.3f, eval_rewards/margins %.3f, eval_rewards/chosen %.3f after one epoch"
      % (acc, margin, float(ev[-1]["eval_rewards/chosen"])))
assert acc >= 0.9 and margin > 0, "DPO did not learn the preference"
PY
grep -q "eval_rewards/accuracies 0.0000 -> " "$W/err" || { echo "FAIL: summary line: $(tail -n 1 "$W/err")"; exit 1; }
echo "dpo_learn_slow: passed"
