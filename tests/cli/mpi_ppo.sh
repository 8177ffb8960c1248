#!/bin/bash
# `mpirun -np 2 rlhf ppo` over loopback TCP equals one process at the same global batch (TRL's arithmetic:
# per_device 4 x 2 processes against 8 x 1): each rank generates, values and scores its half of an update's
# episodes (sampling keyed by the global row), the rollout is gathered so rewards, GAE and whitening use the
# whole batch, and each PPO micro-batch is split across the ranks with every mean over its global tokens.
# Every logged metric (eps aside) and the final policy within 1e-4 relative; a rerun with 2 processes is
# bit-identical; a 1-process checkpoint resumes with 2 processes.
set -u
RLHF=${1:?usage: mpi_ppo.sh path/to/rlhf}
source "$(dirname "$0")/mpi_common.bash"
W=$(mktemp -d -t rlhf-mpi-ppo.XXXXXX)
trap 'rm -rf "$W"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
. tests/cli/ppo_fixture.bash
ppo=(ppo --model_name_or_path "$W/policy" --sft_model_path "$W/policy" --reward_model_path "$W/rm"
  --dataset_name "$W/prompts.jsonl" --learning_rate 1e-3 --gradient_accumulation_steps 2 --num_mini_batches 2
  --response_length 8 --num_ppo_epochs 2 --threads 1 --quiet --seed 5 --whiten_rewards --missing_eos_penalty 0.5
  --total_episodes 96 --save_steps 2)
COLS="objective/kl,objective/entropy,objective/non_score_reward,objective/rlhf_reward,objective/scores"
COLS="$COLS,policy/approxkl_avg,policy/clipfrac_avg,loss/policy_avg,loss/value_avg,val/clipfrac_avg"
COLS="$COLS,policy/entropy_avg,val/ratio,val/ratio_var,val/num_eos_tokens,lr,episode"
"$RLHF" "${ppo[@]}" --per_device_train_batch_size 4 --output_dir "$W/np1" 2>"$W/np1.err" ||
  { tail -n 3 "$W/np1.err"; echo "FAIL: np 1 run"; exit 1; }
for r in a b; do
  "${MPIRUN[@]}" "$RLHF" "${ppo[@]}" --per_device_train_batch_size 2 --output_dir "$W/np2$r" >"$W/np2$r.out" 2>&1 ||
    { tail -n 5 "$W/np2$r.out"; echo "FAIL: np 2 run $r"; exit 1; }
done
msg=$(close_logs "$W/np1/training_log.csv" "$W/np2a/training_log.csv" "$COLS" 1e-5 2>&1) || fail "np 2 log vs np 1: $msg"
msg=$(close_weights "$W/np1/model.safetensors" "$W/np2a/model.safetensors" 2>&1) || fail "np 2 policy vs np 1: $msg"
cmp -s "$W/np2a/model.safetensors" "$W/np2b/model.safetensors" || fail "np 2 rerun: model.safetensors differs"
strip_eps() { cut -d, -f1-17 "$1"; }
diff -q <(strip_eps "$W/np2a/training_log.csv") <(strip_eps "$W/np2b/training_log.csv") >/dev/null ||
  fail "np 2 rerun: training_log.csv differs"
diff -q "$W/np1/samples.jsonl" "$W/np2a/samples.jsonl" >/dev/null || fail "samples.jsonl differs from np 1"
n=$(grep -c "rlhf ppo: .* updates" "$W/np2a.out"); [ "$n" = 1 ] || fail "np 2 printed the summary $n times"
mkdir -p "$W/r12" && cp -r "$W/np1/checkpoint-2" "$W/r12/"
"${MPIRUN[@]}" "$RLHF" "${ppo[@]}" --per_device_train_batch_size 2 --output_dir "$W/r12" \
  --resume_from_checkpoint "$W/r12/checkpoint-2" >"$W/r12.out" 2>&1 || { tail -n 5 "$W/r12.out"; fail "resume r12"; }
msg=$(close_weights "$W/np2a/model.safetensors" "$W/r12/model.safetensors" 2>&1) || fail "np 2 resumed from np 1 checkpoint: $msg"
[ "$fails" = 0 ] && echo "mpi_ppo: all passed" || { echo "mpi_ppo: $fails failed"; exit 1; }
