#!/bin/bash
# Checkpoints as HF names them (issue 14): every trainer writes checkpoint-{GLOBAL_STEP}/ (epoch strategy
# included) with a trainer_state.json in transformers' TrainerState layout (only TrainerState's fields at
# the top, global_step, fractional epoch, log_history a list of the logged dicts, best_metric null; PPO's
# with "episode"); --save_total_limit N keeps the newest N; --resume_from_checkpoint alone / true resumes
# from the newest checkpoint-<N> in --output_dir (a checkpoint-<N>.tmp left by a crash is ignored and
# removed by that run) and continues byte-identically; a bare checkpoint name resolves under --output_dir;
# with no checkpoint there it is exit 2 saying so.
set -u
RLHF=${1:?usage: checkpoint_hf.sh path/to/rlhf}
W=$(mktemp -d -t rlhf-ckpt-hf.XXXXXX)
trap 'rm -rf "$W"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
M=tests/fixtures/hf/bert_seqcls_1   # vocab 128, no tokenizer: pre-tokenized rows
RANDOM=4
for i in $(seq 1 24); do
  c=$(for _ in $(seq 1 $((3 + RANDOM % 6))); do printf '%d,' $((1 + RANDOM % 127)); done)
  r=$(for _ in $(seq 1 $((3 + RANDOM % 6))); do printf '%d,' $((1 + RANDOM % 127)); done)
  echo "{\"chosen_ids\": [${c%,}], \"rejected_ids\": [${r%,}]}"
done >"$W/pairs.jsonl"
# 24 pairs / batch 4 = 6 steps an epoch, 2 epochs.
rw=(reward --model_name_or_path "$M" --dataset_name "$W/pairs.jsonl" --per_device_train_batch_size 4
  --num_train_epochs 2 --learning_rate 1e-3 --seed 3 --logging_steps 2 --eval_split 0.2 --threads 1 --quiet)

# ---- epoch strategy: checkpoint-{STEP}; HF's trainer_state.json
"$RLHF" "${rw[@]}" --output_dir "$W/ep" >/dev/null 2>"$W/ep.err" || fail "reward: $(tail -n 2 "$W/ep.err")"
# the contract's checkpoint-epoch{N} survives only as a symlink to the checkpoint-{STEP} directory
for e in "$W"/ep/checkpoint-epoch*; do
  [ -e "$e" ] || continue
  [ -L "$e" ] && [[ "$(readlink "$e")" =~ ^checkpoint-[0-9]+$ ]] || fail "an epoch-named checkpoint directory: $(ls "$W/ep")"
done
[ -L "$W/ep/checkpoint-epoch1" ] || fail "no checkpoint-epoch1 alias: $(ls "$W/ep")"
# 19 train pairs after the split -> 5 steps an epoch: checkpoint-5, checkpoint-10
for d in checkpoint-5 checkpoint-10; do [ -s "$W/ep/$d/trainer_state.json" ] || fail "no $d/trainer_state.json"; done
python3 - "$W/ep/checkpoint-5/trainer_state.json" <<'PY' || fail "reward trainer_state.json layout"
import json, sys
s = json.load(open(sys.argv[1]))
hf = {"epoch", "global_step", "max_steps", "logging_steps", "eval_steps", "save_steps", "train_batch_size",
      "num_train_epochs", "num_input_tokens_seen", "total_flos", "log_history", "best_metric", "best_global_step",
      "best_model_checkpoint", "is_local_process_zero", "is_world_process_zero", "is_hyper_param_search",
      "trial_name", "trial_params", "stateful_callbacks"}
assert set(s) <= hf, set(s) - hf  # TrainerState.load_from_json(cls(**json)) takes it
assert s["global_step"] == 5 and s["epoch"] == 1.0 and s["max_steps"] == 10, s
assert s["best_metric"] is None and s["train_batch_size"] == 4 and s["logging_steps"] == 2, s
h = s["log_history"]
assert isinstance(h, list) and h and all(isinstance(e, dict) for e in h), h
train = [e for e in h if "loss" in e]
assert train and all({"epoch", "step", "loss", "learning_rate", "grad_norm"} <= set(e) for e in train), h
assert all(v is not None for e in h for v in e.values()), "no null cells: HF logs only what it measured"
assert any("eval_loss" in e and e["step"] == 5 for e in h), h
assert "RlhfResumeState" in s["stateful_callbacks"], s["stateful_callbacks"]
assert list(s) == sorted(s), "sorted keys, as save_to_json"
PY

# ---- steps strategy, --save_total_limit 2
"$RLHF" "${rw[@]}" --save_strategy steps --save_steps 1 --save_total_limit 2 --output_dir "$W/full" >/dev/null \
  2>"$W/full.err" || fail "reward --save_total_limit: $(tail -n 2 "$W/full.err")"
got=$(cd "$W/full" && ls -d checkpoint-* | sort -t- -k2 -n | tr '\n' ' ')
[ "$got" = "checkpoint-9 checkpoint-10 " ] || fail "--save_total_limit 2 left: $got"

# ---- --resume_from_checkpoint alone: the newest checkpoint-<N>, a stale .tmp ignored and removed
"$RLHF" "${rw[@]}" --save_strategy steps --save_steps 2 --output_dir "$W/ref" >/dev/null 2>&1 || fail "reference run"
mkdir "$W/cut" && cp -r "$W/ref/checkpoint-4" "$W/cut/" && cp -r "$W/ref/checkpoint-4" "$W/cut/checkpoint-1"
mkdir "$W/cut/checkpoint-9.tmp"                       # left by a crash: ignored, then removed
echo junk >"$W/cut/checkpoint-9.tmp/config.json"
"$RLHF" "${rw[@]}" --save_strategy steps --save_steps 2 --output_dir "$W/cut" --resume_from_checkpoint >/dev/null \
  2>"$W/cut.err" || fail "resume (flag alone): $(tail -n 2 "$W/cut.err")"
grep -q "resuming from $W/cut/checkpoint-4 " "$W/cut.err" || fail "did not say which checkpoint: $(cat "$W/cut.err")"
[ -e "$W/cut/checkpoint-9.tmp" ] && fail "the stale checkpoint-9.tmp was not removed"
cmp -s "$W/ref/model.safetensors" "$W/cut/model.safetensors" || fail "resume (flag alone): model differs"
cmp -s "$W/ref/checkpoint-8/trainer_state.json" "$W/cut/checkpoint-8/trainer_state.json" ||
  fail "resume: checkpoint-8/trainer_state.json differs from the uninterrupted run's"
# 'true' and a bare name, each resolved under --output_dir
rm -rf "$W"/cut/checkpoint-{6,8,10} "$W/cut/model.safetensors"
"$RLHF" "${rw[@]}" --save_strategy steps --save_steps 2 --output_dir "$W/cut" --resume_from_checkpoint true \
  >/dev/null 2>&1 || fail "resume true"
cmp -s "$W/ref/model.safetensors" "$W/cut/model.safetensors" || fail "resume true: model differs"
mkdir "$W/bare" && cp -r "$W/ref/checkpoint-6" "$W/bare/"
"$RLHF" "${rw[@]}" --save_strategy steps --save_steps 2 --output_dir "$W/bare" --resume_from_checkpoint checkpoint-6 \
  >/dev/null 2>"$W/bare.err" || fail "resume checkpoint-6 (bare name): $(tail -n 1 "$W/bare.err")"
cmp -s "$W/ref/model.safetensors" "$W/bare/model.safetensors" || fail "bare name: model differs"
# nothing to resume: exit 2 saying so, nothing written
mkdir "$W/empty"
c=0
"$RLHF" "${rw[@]}" --output_dir "$W/empty" --resume_from_checkpoint >/dev/null 2>"$W/empty.err" || c=$?
[ "$c" = 2 ] && grep -q "no checkpoint-<N> directory in --output_dir" "$W/empty.err" && [ -z "$(ls "$W/empty")" ] ||
  fail "resume with no checkpoint: exit $c: $(cat "$W/empty.err")"
c=0
"$RLHF" "${rw[@]}" --output_dir "$W/empty" --resume_from_checkpoint checkpoint-7 >/dev/null 2>"$W/empty.err" || c=$?
[ "$c" = 2 ] && grep -q "checkpoint-7: no such checkpoint directory" "$W/empty.err" ||
  fail "resume from a missing name: exit $c: $(cat "$W/empty.err")"

# ---- sft: checkpoint-{STEP} at epoch ends, HF trainer_state, resume alone
cat >"$W/gpt2.json" <<'JSON'
{"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": 64, "n_embd": 16, "n_layer": 1,
 "n_head": 2, "n_positions": 32, "bos_token_id": 1, "eos_token_id": 1}
JSON
"$RLHF" init --config "$W/gpt2.json" --tokenizer tests/fixtures/tokenizers/gpt2 --output_dir "$W/lm" --seed 2 >/dev/null \
  2>&1 || fail "init gpt2"
rm -f "$W/lm"/{tokenizer.json,vocab.json,merges.txt,tokenizer_config.json,special_tokens_map.json}
for i in $(seq 1 12); do echo "{\"prompt_ids\": [2, $((i + 3)), 5], \"completion_ids\": [$((i + 9)), 7]}"; done >"$W/sft.jsonl"
sf=(sft --model_name_or_path "$W/lm" --dataset_name "$W/sft.jsonl" --per_device_train_batch_size 4 --num_train_epochs 3
  --learning_rate 1e-2 --logging_steps 1 --threads 1 --quiet)
"$RLHF" "${sf[@]}" --output_dir "$W/sft" --save_total_limit 2 >/dev/null 2>"$W/sft.err" || fail "sft: $(tail -n 2 "$W/sft.err")"
got=$(cd "$W/sft" && ls -d checkpoint-* | sort -t- -k2 -n | tr '\n' ' ')
[ "$got" = "checkpoint-6 checkpoint-9 " ] || fail "sft epoch checkpoints with --save_total_limit 2: $got"
python3 - "$W/sft/checkpoint-6/trainer_state.json" <<'PY' || fail "sft trainer_state.json"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["global_step"] == 6 and s["epoch"] == 2.0 and s["max_steps"] == 9 and len(s["log_history"]) == 6, s
assert all("loss" in e and "step" in e for e in s["log_history"]), s["log_history"]
PY
mkdir "$W/sft2" && cp -r "$W/sft/checkpoint-6" "$W/sft2/"
"$RLHF" "${sf[@]}" --output_dir "$W/sft2" --resume_from_checkpoint >/dev/null 2>"$W/sft2.err" ||
  fail "sft resume alone: $(tail -n 2 "$W/sft2.err")"
cmp -s "$W/sft/model.safetensors" "$W/sft2/model.safetensors" || fail "sft resume alone: model differs"

# ---- ppo: trainer_state.json with its own fields, --save_total_limit, resume alone
. tests/cli/ppo_fixture.bash
pp=(ppo --model_name_or_path "$W/policy" --sft_model_path "$W/policy" --reward_model_path "$W/rm"
  --dataset_name "$W/prompts.jsonl" --per_device_train_batch_size 8 --response_length 4 --num_ppo_epochs 1
  --total_episodes 40 --save_steps 1 --threads 2 --quiet --seed 1)
"$RLHF" "${pp[@]}" --output_dir "$W/ppo" --save_total_limit 1 2>"$W/ppo.err" || fail "ppo: $(tail -n 2 "$W/ppo.err")"
got=$(cd "$W/ppo" && ls -d checkpoint-* | tr '\n' ' ')
[ "$got" = "checkpoint-4 " ] || fail "ppo --save_total_limit 1 left: $got"
python3 - "$W/ppo/checkpoint-4/trainer_state.json" <<'PY' || fail "ppo trainer_state.json"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["global_step"] == 4 and s["episode"] == 32 and s["max_steps"] == 5 and abs(s["epoch"] - 0.5) < 1e-9, s
h = s["log_history"]
assert len(h) == 4 and all("objective/kl" in e and "episode" in e and "epoch" in e for e in h), h
PY
mkdir "$W/ppo2" && cp -r "$W/ppo/checkpoint-4" "$W/ppo2/"
"$RLHF" "${pp[@]}" --output_dir "$W/ppo2" --resume_from_checkpoint 2>"$W/ppo2.err" ||
  fail "ppo resume alone: $(tail -n 2 "$W/ppo2.err")"
cmp -s "$W/ppo/model.safetensors" "$W/ppo2/model.safetensors" || fail "ppo resume alone: policy differs"

[ "$fails" = 0 ] && echo "checkpoint_hf: all ok"
exit "$fails"
