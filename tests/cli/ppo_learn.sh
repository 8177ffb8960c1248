#!/bin/bash
# `rlhf ppo` end to end on a task small enough to learn in seconds: a 16-token vocabulary (0 pad, 1 EOS,
# 7 the "good" token). The test builds everything: a tiny GPT-2 policy (`rlhf init`), a tiny GPT-2
# reward model (`rlhf init` + `rlhf reward` on pairs whose chosen responses are rich in token 7), both
# without tokenizer files (pre-tokenized {"prompt_ids"} rows: the reward model reads the policy's ids).
# Checks: objective/scores rises clearly while objective/kl stays finite; with a large kl_coef the policy
# stays near the reference (far smaller KL); the outputs (log columns, samples, report, HF policy dir);
# bad input is exit 2 with nothing written.
set -u
RLHF=${1:?usage: ppo_learn.sh path/to/rlhf}
W=$(mktemp -d -t rlhf-ppo-learn.XXXXXX)
trap 'rm -rf "$W"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

. tests/cli/ppo_fixture.bash

ppo=(ppo --model_name_or_path "$W/policy" --sft_model_path "$W/policy" --reward_model_path "$W/rm"
  --dataset_name "$W/prompts.jsonl" --learning_rate 1e-2 --per_device_train_batch_size 16 --total_episodes 192
  --response_length 8 --temperature 1.0 --num_ppo_epochs 4 --save_steps 0 --threads 2 --quiet --seed 3)
"$RLHF" "${ppo[@]}" --kl_coef 0.01 --output_dir "$W/low" 2>"$W/low.err" || fail "ppo (kl 0.01): $(tail -n 3 "$W/low.err")"
"$RLHF" "${ppo[@]}" --kl_coef 1.0 --output_dir "$W/high" 2>"$W/high.err" || fail "ppo (kl 1.0): $(tail -n 3 "$W/high.err")"

want='episode,step,objective/kl,objective/entropy,objective/non_score_reward,objective/rlhf_reward,objective/scores,policy/approxkl_avg,policy/clipfrac_avg,loss/policy_avg,loss/value_avg,val/clipfrac_avg,policy/entropy_avg,val/ratio,val/ratio_var,val/num_eos_tokens,lr,eps'
for run in low high; do
  L="$W/$run/training_log.csv"
  [ -f "$L" ] || { fail "$run: no training_log.csv"; continue; }
  [ "$(head -n 1 "$L")" = "$want" ] || fail "$run: header is $(head -n 1 "$L")"
  [ "$(tail -n +2 "$L" | wc -l)" = 12 ] || fail "$run: expected 12 rows (192 episodes / 16), got $(tail -n +2 "$L" | wc -l)"
  awk -F, 'NR > 1 && ($3 == "nan" || $3 == "inf" || $3 == "-inf" || $3 == "") { bad = 1 } END { exit bad }' "$L" ||
    fail "$run: objective/kl not finite on every row"
  for f in config.json model.safetensors generation_config.json samples.jsonl report.html; do
    [ -s "$W/$run/$f" ] || fail "$run: missing $f"
  done
done
# scores: mean of the last 3 updates well above the mean of the first 3
read -r first last kl_low < <(awk -F, 'NR > 1 { s[NR - 1] = $7; k[NR - 1] = $3; n = NR - 1 }
  END { printf "%f %f %f\n", (s[1] + s[2] + s[3]) / 3, (s[n] + s[n - 1] + s[n - 2]) / 3, (k[n] + k[n - 1] + k[n - 2]) / 3 }' \
  "$W/low/training_log.csv")
echo "kl_coef 0.01: objective/scores $first -> $last, final objective/kl $kl_low"
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b > a + 0.8) }' || fail "objective/scores did not rise clearly ($first -> $last)"
kl_high=$(awk -F, 'NR > 1 { k[NR - 1] = $3; n = NR - 1 } END { printf "%f\n", (k[n] + k[n - 1] + k[n - 2]) / 3 }' \
  "$W/high/training_log.csv")
echo "kl_coef 1.0: final objective/kl $kl_high"
awk -v lo="$kl_low" -v hi="$kl_high" 'BEGIN { exit !(hi < lo / 4) }' ||
  fail "a large kl_coef did not keep the policy near the reference (kl $kl_high vs $kl_low)"
# samples carry the prompt, the response and its score
head -n 1 "$W/low/samples.jsonl" | grep -q '"prompt_ids".*"response_ids".*"score"' || fail "samples.jsonl row: $(head -n 1 "$W/low/samples.jsonl")"

# bad input: exit 2 naming the file/line or the flag, nothing written
expect2() { # name, stderr regex, args...
  local name=$1 pat=$2 c=0; shift 2
  "$RLHF" "${ppo[@]}" "$@" --output_dir "$W/bad.$name" >/dev/null 2>"$W/$name.err" || c=$?
  if [ "$c" != 2 ]; then fail "$name: exit $c, expected 2 ($(tail -n 1 "$W/$name.err"))"
  elif ! grep -qE -- "$pat" "$W/$name.err"; then fail "$name: stderr does not match /$pat/: $(cat "$W/$name.err")"
  elif [ -e "$W/bad.$name" ]; then fail "$name: created --output_dir"; fi
}
{ head -n 3 "$W/prompts.jsonl"; echo '{"prompt_ids": [1, 99]}'; } >"$W/badids.jsonl"
expect2 bad-ids 'badids\.jsonl:4' --dataset_name "$W/badids.jsonl"
{ head -n 2 "$W/prompts.jsonl"; echo '{"prompt_ids": [1, 2'; } >"$W/badjson.jsonl"
expect2 bad-json 'badjson\.jsonl:3' --dataset_name "$W/badjson.jsonl"
echo '{"prompt": "hello"}' >"$W/text.jsonl"
expect2 text-no-tokenizer 'text\.jsonl:1:.*tokenizer' --dataset_name "$W/text.jsonl"
expect2 long-response 'response_length' --response_length 40
expect2 kl-estimator 'kl_estimator' --kl_estimator k9
expect2 temperature 'temperature' --temperature 0
expect2 value-model 'value_model' --value_model critic
expect2 missing-rm 'nowhere' --reward_model_path "$W/nowhere"
"$RLHF" "${ppo[@]}" --output_dir "$W/low" >/dev/null 2>"$W/again.err"
[ $? = 2 ] && grep -q 'overwrite_output_dir' "$W/again.err" || fail "a second run into a used --output_dir is not refused"

[ "$fails" = 0 ] && echo "ppo_learn: all checks passed" || echo "ppo_learn: $fails failed"
[ "$fails" = 0 ]
