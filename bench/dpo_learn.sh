#!/bin/bash
# DPO on the bundled polite-vs-rude pairs (data/learn-demo), as README "Direct preference optimisation" reports:
# the demo's tiny GPT-2 after the demo's SFT (scripts/demo.sh steps 1-3), then one epoch of sigmoid DPO (beta 0.1,
# lr 5e-4, 8 pairs per step) without and with --rpo_alpha 1; held-out metrics every 10 steps on the 100 eval pairs,
# and the mean reward (BERT reward model trained on the same pairs) of completions sampled for the 100 held-out
# prompts before and after. usage: bench/dpo_learn.sh [OUT_DIR]  (about 10-20 min on 2 cores)
set -euo pipefail
RLHF=${RLHF:-build/rlhf}
OUT=${1:-/tmp/rlhf-dpo-learn}
T=${THREADS:-2}
mkdir -p "$OUT"
[ -d "$OUT/sft" ] || {
  $RLHF init --config configs/tiny-bert-reward.json --tokenizer tests/fixtures/tokenizers/bert-base-uncased \
    --output_dir "$OUT/rm-init" --seed 1
  $RLHF init --config configs/tiny-gpt2-policy.json --tokenizer tests/fixtures/tokenizers/gpt2 \
    --output_dir "$OUT/policy-init" --seed 1
  $RLHF sft --model_name_or_path "$OUT/policy-init" --dataset_name data/demo/sft.jsonl --output_dir "$OUT/sft" \
    --num_train_epochs 3 --learning_rate 2e-3 --per_device_train_batch_size 16 --warmup_ratio 0.05 \
    --max_length 96 --save_strategy no --threads $T --quiet
  $RLHF reward --model_name_or_path "$OUT/rm-init" --dataset_name data/learn-demo/train.jsonl \
    --eval_dataset_name data/learn-demo/eval.jsonl --output_dir "$OUT/rm" --num_train_epochs 2 \
    --learning_rate 5e-4 --per_device_train_batch_size 16 --threads $T --quiet >/dev/null
}
score() {  # mean reward-model score of sampled completions for the held-out prompts
  $RLHF generate --model_name_or_path "$1" --dataset_name data/demo/eval_prompts.jsonl --max_new_tokens 32 \
    --do_sample --temperature 0.7 --seed 3 --output_file "$OUT/$2.gen.jsonl" --threads $T >/dev/null
  sed 's/"completion":/"response":/' "$OUT/$2.gen.jsonl" >"$OUT/$2.score-in.jsonl"
  $RLHF score --model_name_or_path "$OUT/rm" --dataset_name "$OUT/$2.score-in.jsonl" --threads $T | tail -n 1
}
echo "sft: sampled completions under the reward model: $(score "$OUT/sft" sft)"
for v in plain rpo; do
  extra=(); [ $v = rpo ] && extra=(--rpo_alpha 1.0)
  rm -rf "$OUT/dpo-$v"
  $RLHF dpo --model_name_or_path "$OUT/sft" --dataset_name data/learn-demo/train.jsonl \
    --eval_dataset_name data/learn-demo/eval.jsonl --output_dir "$OUT/dpo-$v" --beta 0.1 --learning_rate 5e-4 \
    --per_device_train_batch_size 8 --num_train_epochs 1 --logging_steps 5 --eval_strategy steps --eval_steps 10 \
    --save_strategy no --max_length 96 --threads $T --quiet "${extra[@]}" >/dev/null
  python3 - "$OUT/dpo-$v/training_log.csv" "$v" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
ev = [r for r in rows if r["eval_loss"]]
print("dpo %s: eval step: accuracy / margin / rewards chosen / rewards rejected / logps chosen" % sys.argv[2])
for r in ev:
    print("  %4s  %.3f  %7.3f  %7.3f  %7.3f  %8.2f" % (r["step"], float(r["eval_rewards/accuracies"]),
          float(r["eval_rewards/margins"]), float(r["eval_rewards/chosen"]), float(r["eval_rewards/rejected"]),
          float(r["eval_logps/chosen"])))
PY
  echo "dpo $v: sampled completions under the reward model: $(score "$OUT/dpo-$v" dpo-$v)"
done
