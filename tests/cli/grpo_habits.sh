#!/bin/bash
# `rlhf grpo` / `rlhf rloo` with a TRL user's habits (issue 14 for the GRPO trainers): the shared TrainingArguments
# flags (cli/trainer_flags.h) accepted and effective, --config YAML, TRL's GRPOConfig / RLOOConfig defaults in
# --help, HF checkpoints (checkpoint-{STEP} with trainer_state.json, --save_total_limit, --resume_from_checkpoint
# alone / by bare name, *.tmp removed, resume bit-identical) and evaluation as TRL's GRPOTrainer does it (eval_*
# metrics at --eval_steps or at every epoch, in training_log.csv, trainer_state.json, stdout and report.html).
# A tiny GPT-2 policy (`rlhf init`, 16-token vocabulary, no tokenizer) and a reward program (the share of 7s).
set -u
RLHF=${1:?usage: grpo_habits.sh path/to/rlhf}
W=$(mktemp -d -t rlhf-grpo-habits.XXXXXX)
trap 'rm -rf "$W"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

cat >"$W/policy.json" <<'EOF'
{"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": 16, "n_positions": 32, "n_embd": 16,
 "n_layer": 1, "n_head": 2, "activation_function": "gelu_new", "resid_pdrop": 0.0, "embd_pdrop": 0.0,
 "attn_pdrop": 0.0, "layer_norm_epsilon": 1e-05, "initializer_range": 0.02, "bos_token_id": 1, "eos_token_id": 1}
EOF
"$RLHF" init --config "$W/policy.json" --tokenizer tests/fixtures/tokenizers/gpt2 --output_dir "$W/policy" --seed 1 \
  >/dev/null 2>&1 || { echo "FAIL: init"; exit 1; }
rm -f "$W/policy"/{tokenizer.json,vocab.json,merges.txt,tokenizer_config.json,special_tokens_map.json}
prompts() { awk -v seed="$1" -v n="$2" 'BEGIN { srand(seed); for (r = 0; r < n; r++) {
  s = 2 + int(rand() * 14); for (i = 1; i < 3; i++) s = s "," 2 + int(rand() * 14); printf "{\"prompt_ids\": [%s]}\n", s } }'; }
prompts 2 16 >"$W/prompts.jsonl"
prompts 9 3 >"$W/eval.jsonl"
cat >"$W/sevens.py" <<'PY'
import json, sys
for line in sys.stdin:
    ids = json.loads(line)["completion_ids"]
    print(sum(t == 7 for t in ids) / max(len(ids), 1), flush=True)
PY
cat >"$W/config.yaml" <<'EOF'
# TRL's CLI reads the same file; flags on the command line win
learning_rate: 5.0e-3
weight_decay: 0.01
lr_scheduler_type: constant_with_warmup
warmup_steps: 2
report_to: none
EOF
csv_col() { # csv column: the values of column $2 in $1, one per line
  awk -F, -v name="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == name) c = i; next } c { print $c }' "$1"; }

# ---- defaults: TRL's GRPOConfig / RLOOConfig (TRL v1.9.0) -----------------------------------------------------------
help_has() { "$RLHF" "$1" --help 2>&1 | grep -qE -- "--$2 .*\(default: $3\)" || fail "$1 --help: --$2 default is not $3"; }
for f in "learning_rate 1e-6" "num_generations 8" "max_completion_length 256" "beta 0.0" "epsilon 0.2" \
  "temperature 1.0" "logging_steps 10" "num_train_epochs 3" "loss_type dapo" "scale_rewards group" \
  "per_device_train_batch_size 8" "per_device_eval_batch_size 8" "lr_scheduler_type linear" "max_grad_norm 1.0" \
  "save_strategy steps" "save_steps 500" "adam_beta1 0.9" "adam_beta2 0.999" "adam_epsilon 1e-8"; do
  help_has grpo $f
done
for f in "learning_rate 1e-6" "num_generations 2" "beta 0.05" "epsilon 0.2" "max_completion_length 256"; do
  help_has rloo $f
done

# ---- grpo: flags, checkpoints, evaluation every 3 steps ---------------------------------------------------------------
common=(--model_name_or_path "$W/policy" --dataset_name "$W/prompts.jsonl" --reward_funcs "exec:python3 $W/sevens.py"
  --num_generations 4 --per_device_train_batch_size 8 --max_completion_length 4 --max_steps 7 --logging_steps 1
  --threads 1 --seed 3 --config "$W/config.yaml")
grpo_args=(grpo "${common[@]}" --eval_dataset_name "$W/eval.jsonl" --eval_strategy steps --eval_steps 3
  --per_device_eval_batch_size 8 --save_steps 2 --save_total_limit 2)
"$RLHF" "${grpo_args[@]}" --quiet --output_dir "$W/g" >/dev/null 2>"$W/g.err" || fail "grpo: $(tail -n 2 "$W/g.err")"
# stdout log lines (without --quiet): one per logged row, the evaluations' too
"$RLHF" "${grpo_args[@]}" --output_dir "$W/g-out" >"$W/g-out.stdout" 2>"$W/g-out.err" ||
  fail "grpo (stdout): $(tail -n 2 "$W/g-out.err")"
[ "$(grep -c '^{"step": [0-9]*, "epoch": .*"reward": ' "$W/g-out.stdout")" = 7 ] ||
  fail "stdout: expected 7 training log lines: $(head -c 300 "$W/g-out.stdout")"
[ "$(grep -c '"eval_reward": ' "$W/g-out.stdout")" = 2 ] || fail "stdout: expected 2 evaluation lines"
cmp -s "$W/g/training_log.csv" "$W/g-out/training_log.csv" || fail "--quiet changed the log"
# the evaluation rows: steps 3 and 6, eval_* metrics only
[ "$(awk -F, 'NR > 1 && $3 == "nan" { printf "%s ", $1 }' "$W/g/training_log.csv")" = "3 6 " ] ||
  fail "evaluation rows not at steps 3 and 6: $(cut -d, -f1-3 "$W/g/training_log.csv" | paste -sd' ')"
head -n 1 "$W/g/training_log.csv" | grep -q ',eval_loss,eval_completions/mean_length,.*,eval_rewards/sevens.py/mean,eval_rewards/sevens.py/std,eval_reward,eval_reward_std,eval_frac_reward_zero_std$' ||
  fail "eval columns: $(head -n 1 "$W/g/training_log.csv")"
[ "$(csv_col "$W/g/training_log.csv" eval_reward | grep -vc nan)" = 2 ] || fail "eval_reward: expected 2 values"
# constant_with_warmup, warmup_steps 2, learning_rate 5e-3 from --config: 0, 2.5e-3, then 5e-3 (HF's lr_lambda)
[ "$(csv_col "$W/g/training_log.csv" learning_rate | grep -v nan | paste -sd' ')" = "0 0.0025 0.005 0.005 0.005 0.005 0.005" ] ||
  fail "learning_rate column: $(csv_col "$W/g/training_log.csv" learning_rate | paste -sd' ')"
# checkpoints at 2, 4, 6 (7 is the end: the model itself); --save_total_limit 2 keeps 4 and 6
[ "$(cd "$W/g" && ls -d checkpoint-* | paste -sd' ')" = "checkpoint-4 checkpoint-6" ] ||
  fail "checkpoints: $(ls "$W/g")"
for f in trainer_state.json grpo_state.json optimizer.safetensors model.safetensors config.json; do
  [ -s "$W/g/checkpoint-6/$f" ] || fail "checkpoint-6/$f missing"
done
python3 - "$W/g/checkpoint-6/trainer_state.json" <<'PY' || fail "trainer_state.json"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["global_step"] == 6 and s["max_steps"] == 7 and s["logging_steps"] == 1, s
h = s["log_history"]
train = [e for e in h if "reward" in e]; ev = [e for e in h if "eval_reward" in e]
assert [e["step"] for e in train] == [1, 2, 3, 4, 5, 6], train
assert [e["step"] for e in ev] == [3, 6], ev
for k in ("loss", "grad_norm", "learning_rate", "num_tokens", "reward_std", "frac_reward_zero_std", "entropy",
          "completions/mean_length", "completions/clipped_ratio", "rewards/sevens.py/mean", "clip_ratio/region_mean"):
    assert k in train[0], k
for k in ("eval_loss", "eval_reward_std", "eval_rewards/sevens.py/mean", "eval_completions/mean_length"):
    assert k in ev[0], k
assert not any(k.startswith("eval_") for k in train[0]) and "reward" not in ev[0]
PY
grep -q 'eval_reward' "$W/g/report.html" || fail "report.html: no eval_reward series"

# --gradient_checkpointing: the same numbers
"$RLHF" "${grpo_args[@]}" --quiet --gradient_checkpointing --output_dir "$W/g-ckpt" >/dev/null 2>"$W/g-ckpt.err" ||
  fail "grpo --gradient_checkpointing: $(tail -n 2 "$W/g-ckpt.err")"
cmp -s "$W/g/training_log.csv" "$W/g-ckpt/training_log.csv" && cmp -s "$W/g/model.safetensors" "$W/g-ckpt/model.safetensors" ||
  fail "--gradient_checkpointing changed the log or the model"
# the flags are effective: another scheduler moves the learning_rate column (the command line beats --config)
"$RLHF" "${grpo_args[@]}" --quiet --lr_scheduler_type cosine --warmup_steps 0 --save_strategy no --output_dir "$W/g-cos" \
  >/dev/null 2>"$W/g-cos.err" || fail "grpo cosine: $(tail -n 2 "$W/g-cos.err")"
[ "$(csv_col "$W/g-cos/training_log.csv" learning_rate | grep -v nan | head -n 2 | paste -sd' ')" = "0.005 0.00475242217" ] ||
  fail "cosine learning_rate: $(csv_col "$W/g-cos/training_log.csv" learning_rate | paste -sd' ')"
ls -d "$W/g-cos"/checkpoint-* >/dev/null 2>&1 && fail "--save_strategy no wrote checkpoints"
# --adam_beta1 / --adam_beta2 / --adam_epsilon reach the optimizer; --num_generations_eval 2 allows evaluation
# batches of 2 completions (with --num_generations 4 that is exit 2)
"$RLHF" "${grpo_args[@]}" --quiet --adam_beta1 0.5 --adam_epsilon 1e-6 --save_strategy no --output_dir "$W/g-adam" \
  --num_generations_eval 2 --per_device_eval_batch_size 2 >/dev/null 2>"$W/g-adam.err" ||
  fail "grpo --adam_* --num_generations_eval: $(tail -n 2 "$W/g-adam.err")"
[ "$(csv_col "$W/g-adam/training_log.csv" eval_reward | grep -vc nan)" = 2 ] || fail "--num_generations_eval 2: no evaluations"
cmp -s "$W/g/model.safetensors" "$W/g-adam/model.safetensors" && fail "--adam_beta1 / --adam_epsilon had no effect"

# resume: --resume_from_checkpoint alone takes the newest checkpoint-<N> (a *.tmp is ignored and removed);
# the log and the policy equal the uninterrupted run's
cp -r "$W/g" "$W/g-res"
rm -rf "$W/g-res/checkpoint-6" "$W/g-res/model.safetensors" "$W/g-res/training_log.csv"
mkdir "$W/g-res/checkpoint-8.tmp"
"$RLHF" "${grpo_args[@]}" --quiet --output_dir "$W/g-res" --resume_from_checkpoint >/dev/null 2>"$W/g-res.err" ||
  fail "grpo resume: $(tail -n 2 "$W/g-res.err")"
grep -q "resuming from $W/g-res/checkpoint-4" "$W/g-res.err" || fail "resume did not take checkpoint-4: $(head -n 2 "$W/g-res.err")"
[ -e "$W/g-res/checkpoint-8.tmp" ] && fail "checkpoint-8.tmp not removed"
cmp -s "$W/g/training_log.csv" "$W/g-res/training_log.csv" || fail "resumed log differs"
cmp -s "$W/g/model.safetensors" "$W/g-res/model.safetensors" || fail "resumed policy differs"

# ---- rloo: --eval_split, evaluation and checkpoints every epoch; resume by bare checkpoint name -------------------------
# 16 prompts: 4 held out, 12 left; 8 completions of 2 per generation = 4 prompts: 3 steps per epoch
rloo_args=(rloo "${common[@]}" --num_generations 2 --max_steps -1 --num_train_epochs 2 --eval_split 0.25
  --per_device_eval_batch_size 4 --save_strategy epoch --quiet)
"$RLHF" "${rloo_args[@]}" --output_dir "$W/r" >/dev/null 2>"$W/r.err" || fail "rloo: $(tail -n 2 "$W/r.err")"
[ "$(awk -F, 'NR > 1 && $3 == "nan" { printf "%s ", $1 }' "$W/r/training_log.csv")" = "3 6 " ] ||
  fail "rloo: evaluation rows not at the epochs' ends (3, 6): $(cut -d, -f1-3 "$W/r/training_log.csv" | paste -sd' ')"
head -n 1 "$W/r/training_log.csv" | grep -q ',eval_kl$' || fail "rloo (beta 0.05): no eval_kl column"
[ "$(cd "$W/r" && ls -d checkpoint-* | paste -sd' ')" = "checkpoint-3" ] || fail "rloo checkpoints: $(ls "$W/r")"
python3 -c "import json, sys; s = json.load(open(sys.argv[1])); assert s['global_step'] == 3 and s['epoch'] == 1.0, s" \
  "$W/r/checkpoint-3/trainer_state.json" || fail "rloo trainer_state.json"
cp -r "$W/r" "$W/r-res"
rm -f "$W/r-res/model.safetensors" "$W/r-res/training_log.csv"
"$RLHF" "${rloo_args[@]}" --output_dir "$W/r-res" --resume_from_checkpoint checkpoint-3 >/dev/null 2>"$W/r-res.err" ||
  fail "rloo resume: $(tail -n 2 "$W/r-res.err")"
cmp -s "$W/r/training_log.csv" "$W/r-res/training_log.csv" && cmp -s "$W/r/model.safetensors" "$W/r-res/model.safetensors" ||
  fail "rloo resumed by name differs"

[ "$fails" = 0 ] && echo "grpo_habits: all passed" || { echo "grpo_habits: $fails failed"; exit 1; }
