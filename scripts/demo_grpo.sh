#!/usr/bin/env bash
# make demo-grpo: GRPO with a verifiable reward on bundled data, in well under five minutes on 2 cores.
#   1. data     single-digit additions "a + b =" (data/demo-grpo/make_data.awk); the SFT answers are off by one
#               60% of the time, so the SFT policy usually answers wrong but gives the right answer real weight
#   2. rlhf init a tiny GPT-2 (configs/tiny-gpt2-arith.json) with a 24-word tokenizer (data/demo-grpo/tokenizer)
#   3. rlhf sft  on the noisy answers
#   4. rlhf grpo with --reward_funcs accuracy_reward (the row's "solution" against the completion's answer)
#   5. held-out accuracy (20 pairs GRPO never saw, greedy decoding) before and after GRPO
set -euo pipefail
cd "$(dirname "$0")/.."
RLHF=${RLHF:-build/rlhf}
OUT=${DEMO_DIR:-demo-grpo-output}
# a tiny model: one thread is fastest (and leaves the other cores alone)
THREADS=${THREADS:-1}
GRPO_STEPS=${DEMO_GRPO_STEPS:-1200}
rm -rf "$OUT"
mkdir -p "$OUT"
T0=$SECONDS
step() { echo; echo "== $* (t=$((SECONDS - T0))s)"; }

step "1. data: synthetic additions (noisy SFT answers, GRPO prompts, 20 held-out prompts)"
awk -v seed=1 -v what=sft -v reps=8 -v noise=0.6 -f data/demo-grpo/make_data.awk >"$OUT/sft.jsonl"
awk -v what=grpo -f data/demo-grpo/make_data.awk >"$OUT/grpo.jsonl"
awk -v what=eval -f data/demo-grpo/make_data.awk >"$OUT/eval.jsonl"
wc -l "$OUT"/*.jsonl

step "2. init: a tiny GPT-2 with the 24-word tokenizer"
$RLHF init --config configs/tiny-gpt2-arith.json --tokenizer data/demo-grpo/tokenizer --output_dir "$OUT/init" --seed 1

step "3. sft on the noisy answers"
$RLHF sft --model_name_or_path "$OUT/init" --dataset_name "$OUT/sft.jsonl" --output_dir "$OUT/sft" \
  --num_train_epochs 8 --learning_rate 3e-3 --per_device_train_batch_size 32 --save_strategy no --threads "$THREADS"

# accuracy FILE: greedy completions of the held-out prompts against their solutions
accuracy() {
  $RLHF generate --model_name_or_path "$1" --dataset_name "$OUT/eval.jsonl" --max_new_tokens 3 \
    --output_file "$OUT/$2.jsonl" --threads "$THREADS" >/dev/null 2>&1
  paste -d'\t' <(grep -o '"solution": "[0-9]*"' "$OUT/eval.jsonl" | grep -o '[0-9]*') \
    <(grep -o '"completion":"[^"]*"' "$OUT/$2.jsonl" | sed 's/"completion":"//; s/"$//') |
    awk -F'\t' '{ n++; if ($2 != "" && $1 == $2 + 0) c++ } END { printf "%d/%d (%.0f%%)\n", c, n, 100 * c / n }'
}
step "held-out accuracy of the SFT policy"
before=$(accuracy "$OUT/sft" before)
echo "$before"

step "4. grpo with accuracy_reward ($GRPO_STEPS steps, 8 completions per prompt)"
$RLHF grpo --model_name_or_path "$OUT/sft" --dataset_name "$OUT/grpo.jsonl" --reward_funcs accuracy_reward \
  --output_dir "$OUT/grpo" --learning_rate 1e-3 --per_device_train_batch_size 32 --num_generations 8 \
  --max_completion_length 3 --max_steps "$GRPO_STEPS" --logging_steps 100 --save_steps 0 --threads "$THREADS"

step "5. held-out accuracy after GRPO"
after=$(accuracy "$OUT/grpo" after)
echo
echo "== summary (t=$((SECONDS - T0))s)"
awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "reward") c = i; next } NR == 2 { f = $c } { l = $c }
  END { printf "training reward (accuracy_reward, mean of 8 samples): %.3f -> %.3f\n", f, l }' "$OUT/grpo/training_log.csv"
echo "held-out accuracy (greedy, 20 additions GRPO never saw): before GRPO $before, after GRPO $after"
echo "log: $OUT/grpo/training_log.csv, samples: $OUT/grpo/samples.jsonl, report: $OUT/grpo/report.html"
