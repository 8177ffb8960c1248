#!/bin/bash
# Reward programs and run control of `rlhf grpo` / `rlhf rloo` on the tiny PPO task (tests/cli/ppo_fixture.bash):
# a shell reward program that answers null for some completions; programs that crash, print garbage or hang are
# exit 1 naming the program and the line it was given, with the last checkpoint whole; accuracy_reward and
# think_format_reward on a policy with a tokenizer; resume from a checkpoint and SIGINT + resume are bit-identical
# to an uninterrupted run.
set -u
RLHF=${1:?usage: grpo_rewards.sh path/to/rlhf}
W=$(mktemp -d -t rlhf-grpo-rewards.XXXXXX)
trap 'rm -rf "$W"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

. tests/cli/ppo_fixture.bash

# shell: 1 when the completion starts with token 7, null (no reward) when it starts with 9, else 0
cat >"$W/first7.sh" <<'SH'
while IFS= read -r line; do
  case $line in
    *'"completion_ids":[7'*) echo 1 ;;
    *'"completion_ids":[9'*) echo null ;;
    *) echo 0 ;;
  esac
done
SH
common=(--model_name_or_path "$W/policy" --dataset_name "$W/prompts.jsonl" --learning_rate 1e-2
  --per_device_train_batch_size 8 --num_generations 4 --max_completion_length 6 --threads 2 --quiet --seed 5)

# ---- a shell program with null answers --------------------------------------------------------------------------
"$RLHF" grpo "${common[@]}" --reward_funcs "exec:sh $W/first7.sh" --max_steps 6 --logging_steps 1 --save_steps 0 \
  --output_dir "$W/shell" 2>"$W/shell.err" || fail "shell reward program: $(tail -n 3 "$W/shell.err")"
awk -F, 'NR > 1 && ($14 == "nan" || $14 == "") { bad = 1 } END { exit bad || NR != 7 }' "$W/shell/training_log.csv" ||
  fail "shell program: expected 6 rows with a finite reward: $(cat "$W/shell/training_log.csv")"
grep -q '"first7.sh":null' "$W/shell/samples.jsonl" || grep -q '"first7.sh":[01]' "$W/shell/samples.jsonl" ||
  fail "samples.jsonl has no first7.sh rewards"

# ---- programs that fail: exit 1, a message naming the program and the line, the last checkpoint whole ------------
cat >"$W/crash.py" <<'PY'
import sys
for i, line in enumerate(sys.stdin):
    if i == 20:
        sys.exit(3)
    print(0.5, flush=True)
PY
cat >"$W/garbage.py" <<'PY'
import sys
for line in sys.stdin:
    print("reward: high", flush=True)
PY
cat >"$W/hang.py" <<'PY'
import sys, time
for line in sys.stdin:
    time.sleep(30)
PY
expect1() { # name, stderr regex, reward program, flags...
  local name=$1 pat=$2 prog=$3 c=0
  shift 3
  "$RLHF" grpo "${common[@]}" --reward_funcs "exec:$prog" --max_steps 8 --save_steps 1 "$@" \
    --output_dir "$W/$name" >/dev/null 2>"$W/$name.err" || c=$?
  if [ "$c" != 1 ]; then fail "$name: exit $c, expected 1 ($(tail -n 1 "$W/$name.err"))"
  elif ! grep -qE -- "$pat" "$W/$name.err"; then fail "$name: stderr does not match /$pat/: $(tail -n 1 "$W/$name.err")"
  elif ls -d "$W/$name"/checkpoint-*.tmp >/dev/null 2>&1; then fail "$name: a half-written checkpoint was left"
  fi
}
line='the line it was given: \{"prompt_ids":\[[0-9,]+\],"completion_ids":\[[0-9,]*\]\}'
expect1 crash "reward program 'python3 $W/crash.py' exited with status 3 (before reading its input|without answering); $line" \
  "python3 $W/crash.py"
[ -f "$W/crash/checkpoint-2/grpo_state.json" ] && [ -s "$W/crash/checkpoint-2/model.safetensors" ] ||
  fail "crash at the third generation: checkpoint-2 is not whole ($(ls "$W/crash" 2>&1 | tr '\n' ' '))"
expect1 garbage "reward program 'python3 $W/garbage.py' answered 'reward: high' \(expected a number or null\); $line" \
  "python3 $W/garbage.py"
expect1 hang "reward program 'python3 $W/hang.py' did not answer within --reward_timeout 3 seconds; $line" \
  "python3 $W/hang.py" --reward_timeout 3
expect1 missing "reward program 'no-such-program-xyz' exited with status 127" "no-such-program-xyz"

# ---- built-in rules on a policy with a tokenizer ------------------------------------------------------------------
gpt2='"model_type": "gpt2", "vocab_size": 50257, "n_embd": 16, "n_layer": 1, "n_head": 2, "n_positions": 64,
 "bos_token_id": 50256, "eos_token_id": 50256'
echo "{\"architectures\": [\"GPT2LMHeadModel\"], $gpt2}" >"$W/gpt2.json"
"$RLHF" init --config "$W/gpt2.json" --tokenizer tests/fixtures/tokenizers/gpt2 --output_dir "$W/gpt2" >/dev/null 2>&1 ||
  fail "init gpt2"
for i in 1 2 3 4; do echo "{\"prompt\": \"What is $i + $i?\", \"solution\": \"#### $((i + i))\"}"; done >"$W/math.jsonl"
"$RLHF" grpo --model_name_or_path "$W/gpt2" --dataset_name "$W/math.jsonl" --reward_funcs accuracy_reward \
  --reward_funcs think_format_reward --per_device_train_batch_size 4 --num_generations 2 --max_completion_length 4 \
  --max_steps 2 --logging_steps 1 --threads 2 --quiet --output_dir "$W/rules" 2>"$W/rules.err" ||
  fail "accuracy_reward + think_format_reward: $(tail -n 3 "$W/rules.err")"
head -n 1 "$W/rules/training_log.csv" | grep -q 'rewards/accuracy_reward/mean,rewards/accuracy_reward/std,rewards/think_format_reward/mean' ||
  fail "rule columns: $(head -n 1 "$W/rules/training_log.csv")"
grep -q '"completion":' "$W/rules/samples.jsonl" || fail "samples.jsonl has no completion text"

# ---- resume: checkpoint-4 of an 8-step run, resumed, equals the uninterrupted run bit for bit ---------------------
run=(grpo "${common[@]}" --reward_funcs "exec:sh $W/first7.sh" --max_steps 8 --logging_steps 1 --beta 0.04
  --num_iterations 2)
"$RLHF" "${run[@]}" --save_steps 4 --output_dir "$W/full" 2>"$W/full.err" || fail "full run: $(tail -n 3 "$W/full.err")"
[ -d "$W/full/checkpoint-4" ] || fail "no checkpoint-4"
"$RLHF" "${run[@]}" --save_steps 4 --resume_from_checkpoint "$W/full/checkpoint-4" --output_dir "$W/resumed" \
  2>"$W/resumed.err" || fail "resume: $(tail -n 3 "$W/resumed.err")"
cmp -s "$W/full/model.safetensors" "$W/resumed/model.safetensors" || fail "resumed model differs from the full run"
cmp -s "$W/full/training_log.csv" "$W/resumed/training_log.csv" || fail "resumed log differs: $(diff "$W/full/training_log.csv" "$W/resumed/training_log.csv" | head -n 4)"

# ---- SIGINT: a checkpoint at the next generation boundary, exit 130; resuming finishes the same run ---------------
slow="exec:sh -c 'while IFS= read -r l; do sleep 0.02; case \$l in *\"completion_ids\":[7*) echo 1;; *) echo 0;; esac; done'"
srun=(grpo "${common[@]}" --reward_funcs "$slow" --max_steps 12 --logging_steps 1 --save_steps 0)
"$RLHF" "${srun[@]}" --output_dir "$W/sig-full" 2>"$W/sig-full.err" || fail "slow full run: $(tail -n 3 "$W/sig-full.err")"
"$RLHF" "${srun[@]}" --output_dir "$W/sig" 2>"$W/sig.err" &
pid=$!
for i in $(seq 1 300); do [ -f "$W/sig/training_log.csv" ] && [ "$(wc -l <"$W/sig/training_log.csv")" -ge 3 ] && break; sleep 0.05; done
kill -INT $pid
c=0
wait $pid || c=$?
ck=$(ls -d "$W/sig"/checkpoint-* 2>/dev/null | head -n 1)
if [ "$c" != 130 ] || [ -z "$ck" ]; then
  fail "SIGINT: exit $c, checkpoint '${ck}' ($(tail -n 1 "$W/sig.err"))"
else
  grep -q "interrupted: state saved in .*checkpoint-" "$W/sig.err" || fail "SIGINT message: $(tail -n 1 "$W/sig.err")"
  "$RLHF" "${srun[@]}" --resume_from_checkpoint "$ck" --output_dir "$W/sig" 2>"$W/sig2.err" ||
    fail "resume after SIGINT: $(tail -n 3 "$W/sig2.err")"
  cmp -s "$W/sig-full/model.safetensors" "$W/sig/model.safetensors" || fail "SIGINT + resume differs from the full run"
fi

[ "$fails" = 0 ] && echo "grpo_rewards: all passed" || echo "grpo_rewards: $fails failed"
exit $((fails > 0))
