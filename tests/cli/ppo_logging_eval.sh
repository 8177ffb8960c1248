#!/bin/bash
# `rlhf ppo --logging_steps N`: a training_log.csv row and a JSON line on stdout every N updates (and at
# the last), as the other trainers print theirs; --quiet prints none. An eval set (--eval_dataset_name, or
# --eval_split held out of --dataset_name) is scored at the start, at every logged update and at the end
# ({"eval/scores": ...} lines, and "eval/scores A -> B" in the summary) without changing the training: the
# policy trained beside an eval set is byte-identical to the one trained without. Bad values exit 2.
set -u
RLHF=${1:?usage: ppo_logging_eval.sh path/to/rlhf}
W=$(mktemp -d -t rlhf-ppo-log.XXXXXX)
trap 'rm -rf "$W"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
. tests/cli/ppo_fixture.bash
head -n 16 "$W/prompts.jsonl" >"$W/eval.jsonl"

ppo=(ppo --model_name_or_path "$W/policy" --sft_model_path "$W/policy" --reward_model_path "$W/rm"
  --dataset_name "$W/prompts.jsonl" --per_device_train_batch_size 8 --response_length 4 --num_ppo_epochs 1
  --total_episodes 32 --save_steps 0 --threads 2 --seed 3)
"$RLHF" "${ppo[@]}" --output_dir "$W/plain" --logging_steps 2 >"$W/plain.out" 2>"$W/plain.err" ||
  fail "ppo --logging_steps 2: $(tail -n 2 "$W/plain.err")"
steps=$(awk -F, 'NR > 1 { printf "%s ", $2 }' "$W/plain/training_log.csv")
[ "$steps" = "2 4 " ] || fail "--logging_steps 2 over 4 updates: training_log.csv steps '$steps', expected '2 4 '"
[ "$(grep -c '^{"episode": [0-9]*, "step": [24], "objective/kl": ' "$W/plain.out")" = 2 ] ||
  fail "stdout log lines: $(head -c 300 "$W/plain.out")"
/usr/bin/python3 -c "
import json, sys
for l in open(sys.argv[1]): r = json.loads(l); assert 'objective/scores' in r and 'loss/policy_avg' in r, r" "$W/plain.out" ||
  fail "stdout log lines are not JSON rows of the logged metrics"

"$RLHF" "${ppo[@]}" --output_dir "$W/eval" --logging_steps 2 --eval_dataset_name "$W/eval.jsonl" \
  >"$W/eval.out" 2>"$W/eval.err" || fail "ppo --eval_dataset_name: $(tail -n 2 "$W/eval.err")"
evsteps=$(sed -n 's/^{"episode": [0-9]*, "step": \([0-9]*\), "eval\/scores": [-0-9.e]*}$/\1/p' "$W/eval.out" | tr '\n' ' ')
[ "$evsteps" = "0 2 4 " ] || fail "eval/scores lines at steps '$evsteps', expected '0 2 4 ': $(cat "$W/eval.out" | head -5)"
grep -q "eval/scores [-0-9.]* -> [-0-9.]*" "$W/eval.err" || fail "no eval/scores in the summary: $(tail -n 1 "$W/eval.err")"
cmp -s "$W/plain/model.safetensors" "$W/eval/model.safetensors" || fail "scoring an eval set changed the training"
cmp -s "$W/plain/training_log.csv" "$W/eval/training_log.csv" ||
  cmp -s <(cut -d, -f1-17 "$W/plain/training_log.csv") <(cut -d, -f1-17 "$W/eval/training_log.csv") ||
  fail "scoring an eval set changed the logged metrics"

"$RLHF" "${ppo[@]}" --output_dir "$W/split" --eval_split 0.25 --quiet >"$W/split.out" 2>"$W/split.err" ||
  fail "ppo --eval_split: $(tail -n 2 "$W/split.err")"
[ -s "$W/split.out" ] && fail "--quiet printed log lines: $(head -c 200 "$W/split.out")"
grep -q "eval/scores" "$W/split.err" || fail "--eval_split: no eval/scores in the summary"

expect2() { # name, stderr regex, args...
  local name=$1 pat=$2 c=0; shift 2
  "$RLHF" "${ppo[@]}" --output_dir "$W/bad" "$@" >/dev/null 2>"$W/$name.err" || c=$?
  if [ "$c" != 2 ]; then fail "$name: exit $c, expected 2 ($(tail -n 1 "$W/$name.err"))"
  elif ! grep -qE -- "$pat" "$W/$name.err"; then fail "$name: stderr does not match /$pat/: $(cat "$W/$name.err")"
  elif [ -e "$W/bad" ]; then fail "$name: created --output_dir"; fi
}
expect2 log0 "--logging_steps must be >= 1, got 0" --logging_steps 0
expect2 split "--eval_split must be in \[0, 1\), got 1.5" --eval_split 1.5
expect2 both "--eval_split and --eval_dataset_name exclude each other" --eval_split 0.5 --eval_dataset_name "$W/eval.jsonl"
expect2 missing "nope.jsonl" --eval_dataset_name "$W/nope.jsonl"

[ $fails = 0 ] && echo "ppo_logging_eval: all passed"
exit $((fails > 0))
