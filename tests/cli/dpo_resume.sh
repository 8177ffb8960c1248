#!/bin/bash
# `rlhf dpo` interrupt and resume: SIGINT once checkpoint-4 appears saves checkpoint-{STEP} and exits 130;
# --resume_from_checkpoint then ends with a model.safetensors and training_log.csv byte-identical to an
# uninterrupted run's (shuffled, dropout on, bco_pair whose running mean lives in trainer_state.json), and so
# does a resume of a mid-epoch checkpoint with --precompute_ref_log_probs (the reference log-probs are
# recomputed from --model_name_or_path, not from the checkpoint). The output directory is an HF causal LM that
# `rlhf generate` loads; report.html is written.
set -u
RLHF=${1:?usage: dpo_resume.sh path/to/rlhf}
W=$(mktemp -d -t rlhf-dpo-resume.XXXXXX)
trap 'rm -rf "$W"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
cat >"$W/cfg.json" <<'EOF2'
{"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": 50257, "n_embd": 16, "n_layer": 1,
 "n_head": 2, "n_positions": 128, "bos_token_id": 50256, "eos_token_id": 50256, "resid_pdrop": 0.1,
 "embd_pdrop": 0.1, "attn_pdrop": 0.1}
EOF2
"$RLHF" init --config "$W/cfg.json" --tokenizer tests/fixtures/tokenizers/gpt2 --output_dir "$W/init" >/dev/null 2>&1 ||
  { echo "FAIL: init"; exit 1; }
head -n 24 data/learn-demo/train.jsonl >"$W/pairs.jsonl"
# 24 pairs / 4 = 6 micro-batches / accumulation 2 = 3 steps per epoch, 2 epochs
args=(dpo --model_name_or_path "$W/init" --dataset_name "$W/pairs.jsonl" --num_train_epochs 2 --learning_rate 1e-3
  --per_device_train_batch_size 4 --gradient_accumulation_steps 2 --seed 5 --disable_dropout false
  --loss_type bco_pair --save_strategy steps --save_steps 2 --logging_steps 1 --threads 1 --quiet)
"$RLHF" "${args[@]}" --output_dir "$W/full" >"$W/full.out" 2>"$W/full.err" || { tail -n 3 "$W/full.err"; echo "FAIL: full run"; exit 1; }
grep -q '"rewards/accuracies"' "$W/full.out" && fail "--quiet printed log lines"
grep -q '"aux_state"' "$W/full/checkpoint-4/trainer_state.json" || fail "bco_pair running moments missing from trainer_state.json"
"$RLHF" "${args[@]}" --output_dir "$W/int" >/dev/null 2>"$W/int.err" &
pid=$!
for _ in $(seq 1 3000); do [ -d "$W/int/checkpoint-4" ] && break; kill -0 $pid 2>/dev/null || break; sleep 0.02; done
kill -INT $pid 2>/dev/null
wait $pid
c=$?
[ "$c" = 130 ] || fail "exit $c after SIGINT, expected 130 ($(tail -n 1 "$W/int.err"))"
last=$(ls -d "$W"/int/checkpoint-* | grep -E 'checkpoint-[0-9]+$' | sort -t- -k2 -n | tail -n 1)
[ -n "$last" ] && [ -s "$last/optimizer.safetensors" ] || fail "no checkpoint after SIGINT"
"$RLHF" "${args[@]}" --output_dir "$W/int" --resume_from_checkpoint >/dev/null 2>"$W/resume.err" ||
  fail "resume from the newest checkpoint: exit $? ($(tail -n 1 "$W/resume.err"))"
cmp -s "$W/full/model.safetensors" "$W/int/model.safetensors" ||
  fail "resumed from $(basename "$last"): model.safetensors differs from the uninterrupted run"
cmp -s "$W/full/training_log.csv" "$W/int/training_log.csv" || fail "training_log.csv differs after resume"
# mid-epoch checkpoint-4 (epoch 2, after 2 of its 6 micro-batches), precomputed reference log-probs
pre=("${args[@]}" --loss_type sigmoid --precompute_ref_log_probs)
"$RLHF" "${pre[@]}" --output_dir "$W/pfull" >/dev/null 2>"$W/pfull.err" || fail "precompute run: $(tail -n 1 "$W/pfull.err")"
mkdir -p "$W/pres" && cp -r "$W/pfull/checkpoint-4" "$W/pres/"
"$RLHF" "${pre[@]}" --output_dir "$W/pres" --resume_from_checkpoint checkpoint-4 >/dev/null 2>"$W/pres.err" ||
  fail "precompute resume: $(tail -n 1 "$W/pres.err")"
cmp -s "$W/pfull/model.safetensors" "$W/pres/model.safetensors" || fail "precompute resume from checkpoint-4: model differs"
for f in config.json generation_config.json tokenizer.json report.html; do
  [ -s "$W/full/$f" ] || fail "missing $f in the output directory"
done
"$RLHF" generate --model_name_or_path "$W/full" --prompt "Can you help me fix my tent?" --max_new_tokens 4 \
  >/dev/null 2>"$W/gen.err" || fail "generate cannot load the dpo output: $(tail -n 1 "$W/gen.err")"
[ "$fails" = 0 ] && echo "dpo_resume: all passed" || { echo "dpo_resume: $fails failed"; exit 1; }
