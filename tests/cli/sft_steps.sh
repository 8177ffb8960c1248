#!/bin/bash
# `rlhf sft` with step-based checkpoints and evaluation (--save_strategy steps --save_steps N,
# --eval_strategy steps --eval_steps N): checkpoint-{N} directories appear mid-epoch, eval_loss rows appear
# every N steps, and resuming from a mid-epoch checkpoint ends with a model byte-identical to the
# uninterrupted run's; bad values exit 2 naming the flag.
set -u
RLHF=${1:?usage: sft_steps.sh path/to/rlhf}
W=$(mktemp -d -t rlhf-sft-steps.XXXXXX)
trap 'rm -rf "$W"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
cat >"$W/cfg.json" <<'JSON'
{"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": 50257, "n_embd": 16, "n_layer": 1,
 "n_head": 2, "n_positions": 64, "bos_token_id": 50256, "eos_token_id": 50256}
JSON
"$RLHF" init --config "$W/cfg.json" --tokenizer tests/fixtures/tokenizers/gpt2 --output_dir "$W/tiny" 2>"$W/err" ||
  { cat "$W/err"; echo "FAIL: init"; exit 1; }
for i in $(seq 0 19); do echo "{\"prompt\": \"Q: $i plus $i?\", \"completion\": \" A: $((2 * i))\"}"; done >"$W/data.jsonl"
args=(sft --model_name_or_path "$W/tiny" --dataset_name "$W/data.jsonl" --num_train_epochs 2 --learning_rate 3e-3
  --per_device_train_batch_size 2 --eval_split 0.2 --eval_strategy steps --eval_steps 3 --save_strategy steps
  --save_steps 5 --logging_steps 1 --threads 1 --quiet)
"$RLHF" "${args[@]}" --output_dir "$W/full" 2>"$W/full.err" || fail "sft: $(tail -n 2 "$W/full.err")"
# 16 train rows / batch 2 = 8 steps an epoch, 16 in all: checkpoints at 5, 10, 15 (10 and 15 mid-epoch 2).
for s in 5 10 15; do [ -s "$W/full/checkpoint-$s/model.safetensors" ] || fail "no checkpoint-$s"; done
[ -e "$W/full/checkpoint-8" ] && fail "--save_strategy steps wrote an epoch-end checkpoint"
/usr/bin/python3 - "$W/full/training_log.csv" <<'PY' || fail "eval_loss rows not every 3 steps"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
steps = [int(r["step"]) for r in rows if r["eval_loss"]]
assert steps == [3, 6, 9, 12, 15], steps
PY
# Resume from the mid-epoch checkpoint-10: the final model equals the uninterrupted run's, byte for byte.
cp -r "$W/full/checkpoint-10" "$W/ck10"
"$RLHF" "${args[@]}" --output_dir "$W/resumed" --resume_from_checkpoint "$W/ck10" 2>"$W/res.err" ||
  fail "resume: $(tail -n 2 "$W/res.err")"
cmp -s "$W/full/model.safetensors" "$W/resumed/model.safetensors" || fail "resumed model differs from the uninterrupted one"
# Bad values.
expect2() { # name regex args...
  local name=$1 pat=$2 c=0; shift 2
  "$RLHF" sft --model_name_or_path "$W/tiny" --dataset_name "$W/data.jsonl" --output_dir "$W/bad.$name" "$@" \
    >/dev/null 2>"$W/$name.err" || c=$?
  [ "$c" = 2 ] && grep -qE -- "$pat" "$W/$name.err" && [ ! -e "$W/bad.$name" ] || fail "$name: exit $c ($(cat "$W/$name.err"))"
}
expect2 save-steps 'save_steps' --save_strategy steps --save_steps 0
expect2 save-strategy 'save_strategy' --save_strategy weekly
expect2 eval-strategy 'eval_strategy' --eval_strategy steps
expect2 eval-steps 'eval_steps' --eval_split 0.2 --eval_strategy steps --eval_steps -1
[ "$fails" = 0 ] && echo "sft_steps: all passed" || { echo "sft_steps: $fails failed"; exit 1; }
