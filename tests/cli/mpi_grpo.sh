#!/bin/bash
# `mpirun -np 2 rlhf grpo` / `rlhf rloo` over loopback TCP against one process at the same global batch
# (per_device 8 x 2 processes against 16 x 1, 8 generations per prompt) on the PPO task: the logged metrics and
# the final policy within 1e-4 relative; a rerun with 2 processes is bit-identical. Both evaluate every 2 steps on 5
# held-out prompts (16 completions per evaluation batch: 8 per process under np 2, so the last batch of one prompt
# leaves the second process no rows): the eval_* columns agree as well.
set -u
RLHF=${1:?usage: mpi_grpo.sh path/to/rlhf}
source "$(dirname "$0")/mpi_common.bash"
W=$(mktemp -d -t rlhf-mpi-grpo.XXXXXX)
trap 'rm -rf "$W"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
. tests/cli/ppo_fixture.bash
awk -v seed=9 -v n=5 -v what=prompts -f "$W/gen.awk" >"$W/eval.jsonl"
for algo in grpo rloo; do
  args=("$algo" --model_name_or_path "$W/policy" --dataset_name "$W/prompts.jsonl" --reward_model_name_or_path "$W/rm"
    --learning_rate 2e-4 --num_generations 8 --max_completion_length 8 --max_steps 3 --logging_steps 1 --save_steps 0
    --threads 1 --quiet --seed 3 --eval_dataset_name "$W/eval.jsonl" --eval_strategy steps --eval_steps 2)
  "$RLHF" "${args[@]}" --per_device_train_batch_size 16 --per_device_eval_batch_size 16 --output_dir "$W/$algo-np1" 2>"$W/$algo-np1.err" ||
    { tail -n 3 "$W/$algo-np1.err"; echo "FAIL: $algo np 1 run"; exit 1; }
  for r in a b; do
    "${MPIRUN[@]}" "$RLHF" "${args[@]}" --per_device_train_batch_size 8 --per_device_eval_batch_size 8 \
      --output_dir "$W/$algo-np2$r" \
      >"$W/$algo-np2$r.out" 2>&1 || { tail -n 5 "$W/$algo-np2$r.out"; echo "FAIL: $algo np 2 run $r"; exit 1; }
  done
  COLS=$(head -n 1 "$W/$algo-np1/training_log.csv" | tr ',' '\n' | grep -vx 'epoch\|step' | paste -sd,)
  grep -q 'eval_reward' <<<"$COLS" || fail "$algo: no eval_reward column"
  [ "$(awk -F, 'NR > 1 && $3 == "nan" { print $1 }' "$W/$algo-np2a/training_log.csv")" = 2 ] ||
    fail "$algo np 2: expected one evaluation row, at step 2 (HF: global_step % eval_steps == 0)"
  msg=$(close_logs "$W/$algo-np1/training_log.csv" "$W/$algo-np2a/training_log.csv" "$COLS" 2>&1) ||
    fail "$algo np 2 log vs np 1: $msg"
  msg=$(close_weights "$W/$algo-np1/model.safetensors" "$W/$algo-np2a/model.safetensors" 2>&1) ||
    fail "$algo np 2 policy vs np 1: $msg"
  cmp -s "$W/$algo-np2a/model.safetensors" "$W/$algo-np2b/model.safetensors" || fail "$algo np 2 rerun: model differs"
done
[ "$fails" = 0 ] && echo "mpi_grpo: all passed" || { echo "mpi_grpo: $fails failed"; exit 1; }
