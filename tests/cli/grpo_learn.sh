#!/bin/bash
# `rlhf grpo` and `rlhf rloo` end to end on the PPO task (tests/cli/ppo_fixture.bash: a 16-token vocabulary,
# 7 the "good" token, a tiny GPT-2 policy and a GPT-2 reward model trained to like token 7, no tokenizers):
# the logged reward rises clearly with a rule reward (a Python reward program: the share of 7s), with the
# reward model (GRPO and RLOO), and with beta > 0, num_iterations 2 and sequence-level importance sampling
# (the reference and old log-prob paths); the log has TRL's columns; samples.jsonl and report.html exist.
set -u
RLHF=${1:?usage: grpo_learn.sh path/to/rlhf}
W=$(mktemp -d -t rlhf-grpo-learn.XXXXXX)
trap 'rm -rf "$W"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

. tests/cli/ppo_fixture.bash

cat >"$W/sevens.py" <<'PY'
import json, sys
for line in sys.stdin:
    ids = json.loads(line)["completion_ids"]
    print(sum(t == 7 for t in ids) / max(len(ids), 1), flush=True)
PY
common=(--model_name_or_path "$W/policy" --dataset_name "$W/prompts.jsonl" --learning_rate 1e-2
  --per_device_train_batch_size 16 --max_completion_length 8 --max_steps 24 --logging_steps 4 --save_steps 0
  --threads 2 --quiet --seed 3)
# reward: column of "reward" in a log; rises: mean of the last two rows above the first row by $2
rises() { # name log margin
  awk -F, -v m="$3" -v name="$1" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "reward") c = i; next }
    { r[NR - 1] = $c; n = NR - 1 }
    END { last = (r[n] + r[n - 1]) / 2; printf "%s: reward %.3f -> %.3f\n", name, r[1], last; exit !(c && last > r[1] + m) }' "$2" ||
    fail "$1: the reward did not rise clearly"
}

"$RLHF" grpo "${common[@]}" --num_generations 8 --reward_funcs "exec:python3 $W/sevens.py" --output_dir "$W/rule" \
  2>"$W/rule.err" || fail "grpo with a reward program: $(tail -n 3 "$W/rule.err")"
rises "grpo, reward program" "$W/rule/training_log.csv" 0.3
want='step,epoch,loss,grad_norm,learning_rate,num_tokens,completions/mean_length,completions/min_length,completions/max_length,completions/clipped_ratio,completions/mean_terminated_length,rewards/sevens.py/mean,rewards/sevens.py/std,reward,reward_std,frac_reward_zero_std,entropy,clip_ratio/low_mean,clip_ratio/high_mean,clip_ratio/region_mean'
[ "$(head -n 1 "$W/rule/training_log.csv")" = "$want" ] || fail "header: $(head -n 1 "$W/rule/training_log.csv")"
[ "$(tail -n +2 "$W/rule/training_log.csv" | wc -l)" = 6 ] || fail "expected 6 logged rows (24 steps / 4)"
for f in config.json model.safetensors generation_config.json samples.jsonl report.html; do
  [ -s "$W/rule/$f" ] || fail "missing $f"
done
head -n 1 "$W/rule/samples.jsonl" | grep -q '"prompt_ids".*"completion_ids".*"rewards":{"sevens.py":.*"reward".*"advantage"' ||
  fail "samples.jsonl row: $(head -n 1 "$W/rule/samples.jsonl")"

"$RLHF" grpo "${common[@]}" --num_generations 4 --reward_model_name_or_path "$W/rm" --output_dir "$W/rm-grpo" \
  2>"$W/rm-grpo.err" || fail "grpo with a reward model: $(tail -n 3 "$W/rm-grpo.err")"
rises "grpo, reward model" "$W/rm-grpo/training_log.csv" 0.5
grep -q "rewards/rm/mean" "$W/rm-grpo/training_log.csv" || fail "no rewards/rm/mean column"

"$RLHF" rloo "${common[@]}" --num_generations 4 --reward_model_name_or_path "$W/rm" --output_dir "$W/rm-rloo" \
  2>"$W/rm-rloo.err" || fail "rloo with a reward model: $(tail -n 3 "$W/rm-rloo.err")"
rises "rloo, reward model" "$W/rm-rloo/training_log.csv" 0.5
head -n 1 "$W/rm-rloo/training_log.csv" | grep -q ',kl,' || fail "rloo (beta 0.05): no kl column"

# the reference and old log-prob paths: beta > 0, two iterations per generation batch, GSPO's sequence ratio,
# two reward sources with weights
"$RLHF" grpo "${common[@]}" --num_generations 4 --reward_model_name_or_path "$W/rm" --reward_funcs "exec:python3 $W/sevens.py" \
  --reward_weights 1,2 --beta 0.04 --num_iterations 2 --importance_sampling_level sequence --loss_type grpo \
  --epsilon_high 0.28 --output_dir "$W/mix" 2>"$W/mix.err" || fail "grpo beta/iterations/sequence: $(tail -n 3 "$W/mix.err")"
rises "grpo, beta 0.04, 2 iterations, sequence level" "$W/mix/training_log.csv" 0.5
awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) { if ($i == "kl") k = i; if ($i == "clip_ratio/region_mean") c = i } next }
  { if ($k == "nan" || $k <= 0) bad = 1; if ($c > 0) clipped = 1 } END { exit !(k && c && !bad && clipped) }' "$W/mix/training_log.csv" ||
  fail "beta 0.04 with 2 iterations: expected a positive kl and some clipping ($(tail -n 1 "$W/mix/training_log.csv"))"

[ "$fails" = 0 ] && echo "grpo_learn: all passed" || echo "grpo_learn: $fails failed"
exit $((fails > 0))
