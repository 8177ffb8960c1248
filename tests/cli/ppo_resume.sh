#!/bin/bash
# `rlhf ppo` checkpoints: --resume_from_checkpoint continues bit-identically (the final policy is
# byte-identical and the logged metrics equal, eps aside) with a value head (--value_model head) and the
# adaptive KL controller, whose state both live in the checkpoint; SIGINT writes checkpoint-N and exits
# 130, and that checkpoint resumes.
set -u
RLHF=${1:?usage: ppo_resume.sh path/to/rlhf}
W=$(mktemp -d -t rlhf-ppo-resume.XXXXXX)
trap 'rm -rf "$W"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

. tests/cli/ppo_fixture.bash

ppo=(ppo --model_name_or_path "$W/policy" --sft_model_path "$W/policy" --reward_model_path "$W/rm"
  --dataset_name "$W/prompts.jsonl" --learning_rate 1e-2 --per_device_train_batch_size 8
  --gradient_accumulation_steps 2 --num_mini_batches 2 --response_length 8 --num_ppo_epochs 2 --threads 2 --quiet
  --seed 5 --value_model head --adap_kl_ctrl --target 1 --horizon 200 --missing_eos_penalty 0.5)
"$RLHF" "${ppo[@]}" --total_episodes 192 --save_steps 2 --output_dir "$W/full" 2>"$W/full.err" ||
  fail "uninterrupted run: $(tail -n 3 "$W/full.err")"
for f in config.json model.safetensors generation_config.json optimizer.safetensors value_head.safetensors ppo_state.json; do
  [ -s "$W/full/checkpoint-2/$f" ] || fail "checkpoint-2 lacks $f"
done
[ -d "$W/full/checkpoint-6" ] && fail "checkpoint at the last update (the final model is at the root)"
"$RLHF" "${ppo[@]}" --total_episodes 192 --save_steps 2 --resume_from_checkpoint "$W/full/checkpoint-2" \
  --output_dir "$W/resumed" 2>"$W/resumed.err" || fail "resumed run: $(tail -n 3 "$W/resumed.err")"
cmp -s "$W/full/model.safetensors" "$W/resumed/model.safetensors" ||
  fail "resumed policy differs from the uninterrupted run's"
strip_eps() { cut -d, -f1-17 "$1"; }
if ! diff <(strip_eps "$W/full/training_log.csv") <(strip_eps "$W/resumed/training_log.csv") >"$W/log.diff"; then
  fail "resumed training_log.csv differs: $(head -n 4 "$W/log.diff")"
fi
diff -q "$W/full/samples.jsonl" "$W/resumed/samples.jsonl" >/dev/null || fail "resumed samples.jsonl differs"

# SIGINT at an update boundary: checkpoint-N, exit 130, and the checkpoint resumes
"$RLHF" "${ppo[@]}" --total_episodes 3200 --save_steps 0 --output_dir "$W/int" 2>"$W/int.err" &
pid=$!
for _ in $(seq 1 600); do
  [ "$(tail -n +2 "$W/int/training_log.csv" 2>/dev/null | wc -l)" -ge 2 ] && break
  sleep 0.1
done
kill -INT "$pid"
wait "$pid"
code=$?
[ "$code" = 130 ] || fail "SIGINT: exit $code, expected 130 ($(tail -n 2 "$W/int.err"))"
ck=$(ls -d "$W"/int/checkpoint-* 2>/dev/null | grep -v '\.tmp$' | tail -n 1)
if [ -z "$ck" ] || [ ! -s "$ck/ppo_state.json" ]; then
  fail "SIGINT left no whole checkpoint"
else
  n=${ck##*-}
  "$RLHF" "${ppo[@]}" --total_episodes $(((n + 1) * 32)) --resume_from_checkpoint "$ck" --output_dir "$W/int" \
    2>"$W/int2.err" || fail "resume after SIGINT: $(tail -n 3 "$W/int2.err")"
  [ "$(tail -n +2 "$W/int/training_log.csv" | wc -l)" = $((n + 1)) ] || fail "log after resume: expected $((n + 1)) rows"
fi

[ "$fails" = 0 ] && echo "ppo_resume: all checks passed" || echo "ppo_resume: $fails failed"
[ "$fails" = 0 ]
