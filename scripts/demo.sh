#!/usr/bin/env bash
# make demo: the whole pipeline on bundled data, from nothing to a PPO-tuned policy, in a few minutes on 2 cores.
#   1. rlhf init    a tiny BERT reward model and a tiny GPT-2 policy (random weights; no downloads)
#   2. rlhf sft     the policy on data/demo/sft.jsonl: every prompt with a polite AND a rude answer
#   3. rlhf reward  the BERT reward model on data/learn-demo (polite preferred), scored on 100 held-out pairs
#   4. rlhf ppo     the policy against the BERT reward model (a tokenizer TRL could not pair with a GPT-2 policy)
#   5. a summary: held-out reward accuracy, mean reward of held-out generations before and after PPO, final KL,
#      and two prompts with their responses before and after.
set -euo pipefail
cd "$(dirname "$0")/.."
RLHF=${RLHF:-build/rlhf}
OUT=${DEMO_DIR:-demo-output}
THREADS=${THREADS:-$(nproc)}
# Sizes (tests/cli/demo_pipeline_slow.sh runs a smaller demo through these).
SFT_EPOCHS=${DEMO_SFT_EPOCHS:-3}
PPO_EPISODES=${DEMO_PPO_EPISODES:-960}
rm -rf "$OUT"
mkdir -p "$OUT"
T0=$SECONDS
step() { echo; echo "== $* (t=$((SECONDS - T0))s)"; }

step "1. init: tiny BERT reward model and tiny GPT-2 policy"
$RLHF init --config configs/tiny-bert-reward.json --tokenizer tests/fixtures/tokenizers/bert-base-uncased \
  --output_dir "$OUT/rm-init" --seed 1
$RLHF init --config configs/tiny-gpt2-policy.json --tokenizer tests/fixtures/tokenizers/gpt2 \
  --output_dir "$OUT/policy-init" --seed 1

step "2. sft: policy learns to answer (politely or rudely)"
$RLHF sft --model_name_or_path "$OUT/policy-init" --dataset_name data/demo/sft.jsonl --output_dir "$OUT/sft" \
  --num_train_epochs $SFT_EPOCHS --learning_rate 2e-3 --per_device_train_batch_size 16 --warmup_ratio 0.05 \
  --max_length 96 --save_strategy no --threads "$THREADS"

step "3. reward: BERT reward model on polite-vs-rude pairs"
$RLHF reward --model_name_or_path "$OUT/rm-init" --dataset_name data/learn-demo/train.jsonl \
  --eval_dataset_name data/learn-demo/eval.jsonl --output_dir "$OUT/rm" --num_train_epochs 2 \
  --learning_rate 5e-4 --per_device_train_batch_size 16 --threads "$THREADS"
$RLHF score --model_name_or_path "$OUT/rm" --dataset_name data/learn-demo/eval.jsonl \
  --output_file "$OUT/rm-eval-scores.jsonl" --threads "$THREADS" | tail -n 1 >"$OUT/rm-eval-summary.json"

step "generations before PPO"
$RLHF generate --model_name_or_path "$OUT/sft" --dataset_name data/demo/eval_prompts.jsonl --max_new_tokens 32 \
  --do_sample --temperature 0.7 --seed 3 --output_file "$OUT/before.jsonl" --threads "$THREADS" >/dev/null

step "4. ppo: policy against the reward model"
$RLHF ppo --model_name_or_path "$OUT/sft" --sft_model_path "$OUT/sft" --reward_model_path "$OUT/rm" \
  --dataset_name data/demo/prompts.jsonl --output_dir "$OUT/ppo" --learning_rate 1e-4 \
  --per_device_train_batch_size 16 --total_episodes $PPO_EPISODES --response_length 32 --temperature 0.7 \
  --kl_coef 0.1 --stop_token eos --missing_eos_penalty 1.0 --value_model head --num_ppo_epochs 2 \
  --threads "$THREADS"

step "generations after PPO"
$RLHF generate --model_name_or_path "$OUT/ppo" --dataset_name data/demo/eval_prompts.jsonl --max_new_tokens 32 \
  --do_sample --temperature 0.7 --seed 3 --output_file "$OUT/after.jsonl" --threads "$THREADS" >/dev/null

step "5. summary"
for which in before after; do
  # rows {"prompt", "completion"} -> {"prompt", "response"} for rlhf score
  sed 's/"completion":/"response":/' "$OUT/$which.jsonl" >"$OUT/$which.score-in.jsonl"
  $RLHF score --model_name_or_path "$OUT/rm" --dataset_name "$OUT/$which.score-in.jsonl" \
    --output_file "$OUT/$which.scores.jsonl" --threads "$THREADS" | tail -n 1 >"$OUT/$which.summary.json"
done
scripts/demo_summary.sh "$OUT"
echo
echo "demo finished in $((SECONDS - T0)) s; reports: $OUT/rm/report.html $OUT/ppo/report.html $OUT/sft/report.html"
