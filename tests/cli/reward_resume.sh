#!/bin/bash
# Interrupt and resume: SIGINT once checkpoint-10 appears makes `rlhf reward` save checkpoint-{STEP} and
# exit 130 by itself; --resume_from_checkpoint then ends with a model.safetensors byte-identical to an
# uninterrupted run's (same batches, dropout keys and learning rates), also resuming from an epoch
# checkpoint, and with the same training_log.csv losses.
set -u
RLHF=${1:?usage: reward_resume.sh path/to/rlhf}
W=$(mktemp -d -t rlhf-reward-resume.XXXXXX)
trap 'rm -rf "$W"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
cat >"$W/tiny.json" <<'JSON'
{"architectures": ["BertForSequenceClassification"], "model_type": "bert", "vocab_size": 30522,
 "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
 "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 512,
 "type_vocab_size": 2, "initializer_range": 0.02, "pad_token_id": 0, "num_labels": 2}
JSON
"$RLHF" init --config "$W/tiny.json" --tokenizer tests/fixtures/tokenizers/bert-base-uncased \
  --output_dir "$W/init" --seed 2 >/dev/null 2>&1 || { echo "FAIL: init"; exit 1; }
# dropout on (--disable_dropout false) so the resumed run must replay the dropout keys too
args=(reward --model_name_or_path "$W/init" --dataset_name data/learn-demo/train.jsonl --num_train_epochs 2
  --learning_rate 5e-4 --per_device_train_batch_size 16 --gradient_accumulation_steps 2 --seed 9
  --disable_dropout false --save_strategy steps --save_steps 5 --logging_steps 1 --threads 1 --quiet)
"$RLHF" "${args[@]}" --output_dir "$W/full" >/dev/null 2>"$W/full.err" || { tail -n 3 "$W/full.err"; echo "FAIL: full run"; exit 1; }
"$RLHF" "${args[@]}" --output_dir "$W/int" >/dev/null 2>"$W/int.err" &
pid=$!
for _ in $(seq 1 3000); do [ -d "$W/int/checkpoint-10" ] && break; kill -0 $pid 2>/dev/null || break; sleep 0.02; done
kill -INT $pid 2>/dev/null
wait $pid
c=$?
[ "$c" = 130 ] || fail "exit $c after SIGINT, expected 130 ($(tail -n 1 "$W/int.err"))"
last=$(ls -d "$W"/int/checkpoint-* | grep -E 'checkpoint-[0-9]+$' | sort -t- -k2 -n | tail -n 1)
[ -n "$last" ] && [ -s "$last/optimizer.safetensors" ] || fail "no checkpoint after SIGINT"
ls -d "$W"/int/*.tmp 2>/dev/null && fail "a temporary checkpoint directory was left behind"
"$RLHF" "${args[@]}" --output_dir "$W/int" --resume_from_checkpoint "$last" >/dev/null 2>"$W/resume.err" ||
  fail "resume from $(basename "$last"): exit $? ($(tail -n 1 "$W/resume.err"))"
cmp -s "$W/full/model.safetensors" "$W/int/model.safetensors" ||
  fail "resumed from $(basename "$last"): model.safetensors differs from the uninterrupted run"
cmp -s "$W/full/training_log.csv" "$W/int/training_log.csv" || fail "training_log.csv differs after resume"
# 25 micro-batches / accumulation 2 = 13 steps per epoch; resume a copy of checkpoint-10 in a fresh directory.
mkdir -p "$W/again" && cp -r "$W/full/checkpoint-10" "$W/again/"
"$RLHF" "${args[@]}" --output_dir "$W/again" --resume_from_checkpoint "$W/again/checkpoint-10" >/dev/null 2>"$W/again.err" ||
  fail "resume from a copied checkpoint-10: ($(tail -n 1 "$W/again.err"))"
cmp -s "$W/full/model.safetensors" "$W/again/model.safetensors" || fail "resume from checkpoint-10: model differs"
# Another batch layout cannot continue the run: exit 2 naming the flag.
mkdir -p "$W/other" && cp -r "$W/full/checkpoint-10" "$W/other/"
"$RLHF" "${args[@]}" --per_device_train_batch_size 8 --output_dir "$W/other" \
  --resume_from_checkpoint "$W/other/checkpoint-10" >/dev/null 2>"$W/other.err"
c=$?
[ "$c" = 2 ] && grep -q per_device_train_batch_size "$W/other.err" || fail "resume with another batch size: exit $c"
[ "$fails" = 0 ] && echo "reward_resume: all passed" || { echo "reward_resume: $fails failed"; exit 1; }
