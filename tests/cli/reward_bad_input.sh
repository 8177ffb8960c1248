#!/bin/bash
# Bad input to `rlhf reward` / `rlhf score`: each gives exit 2 with a message naming FILE:LINE, the file or
# the flag, and leaves nothing in --output_dir; every malformed row is listed, not only the first.
set -u
RLHF=${1:?usage: reward_bad_input.sh path/to/rlhf}
W=$(mktemp -d -t rlhf-reward-bad.XXXXXX)
trap 'rm -rf "$W"' EXIT
M=tests/fixtures/hf/bert_seqcls_1   # vocab 128, no tokenizer files: pre-tokenized rows
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
good='{"chosen_ids": [5, 6, 7], "rejected_ids": [8, 9]}'
for i in 1 2 3 4 5 6; do echo "$good"; done >"$W/good.jsonl"
base=(reward --model_name_or_path "$M" --per_device_train_batch_size 2 --threads 1 --quiet)
expect2() { # name, stderr regex, args...
  local name=$1 pat=$2 c=0; shift 2
  "$RLHF" "$@" --output_dir "$W/out.$name" >/dev/null 2>"$W/$name.err" || c=$?
  if [ "$c" != 2 ]; then fail "$name: exit $c, expected 2 ($(tail -n 1 "$W/$name.err"))"
  elif ! grep -qE -- "$pat" "$W/$name.err"; then fail "$name: stderr does not match /$pat/: $(cat "$W/$name.err")"
  elif [ -e "$W/out.$name" ]; then fail "$name: created --output_dir"; fi
}
{ echo "$good"; echo '{"chosen_ids": [1, 2], "rejected_ids": [3'; echo "$good"; } >"$W/malformed.jsonl"
expect2 malformed 'malformed\.jsonl:2([^0-9]|$)' "${base[@]}" --dataset_name "$W/malformed.jsonl"
{ echo "$good"; echo '{"chosen_ids": [1, 2]}'; echo "$good"; echo '{"chosen_ids": [1, 500], "rejected_ids": [3]}';
  echo '{"chosen_ids": [1], "rejected_ids": [2], "margin": "x"}'; } >"$W/rows.jsonl"
expect2 every-row 'rows\.jsonl:2:' "${base[@]}" --dataset_name "$W/rows.jsonl"
grep -q 'rows\.jsonl:4:' "$W/every-row.err" && grep -q 'rows\.jsonl:5:' "$W/every-row.err" ||
  fail "every-row: not every malformed row listed: $(cat "$W/every-row.err")"
: >"$W/empty.jsonl"
expect2 empty 'empty\.jsonl' "${base[@]}" --dataset_name "$W/empty.jsonl"
expect2 negative-lr 'learning_rate' "${base[@]}" --dataset_name "$W/good.jsonl" --learning_rate -1
expect2 zero-batch 'per_device_train_batch_size' "${base[@]}" --dataset_name "$W/good.jsonl" --per_device_train_batch_size 0
expect2 eval-split 'eval_split' "${base[@]}" --dataset_name "$W/good.jsonl" --eval_split 1.5
expect2 max-length 'max_length' "${base[@]}" --dataset_name "$W/good.jsonl" --max_length 0
expect2 scheduler 'lr_scheduler_type' "${base[@]}" --dataset_name "$W/good.jsonl" --lr_scheduler_type wavy
echo '{"prompt": "hi", "chosen": "a", "rejected": "b"}' >"$W/text.jsonl"
expect2 text-no-tokenizer 'text\.jsonl:1:.*tokenizer' "${base[@]}" --dataset_name "$W/text.jsonl"
expect2 missing-model 'nowhere' "${base[@]}" --dataset_name "$W/good.jsonl" --model_name_or_path "$W/nowhere"
expect2 resume-missing 'resume_from_checkpoint' "${base[@]}" --dataset_name "$W/good.jsonl" --resume_from_checkpoint "$W/nock"
# A batch larger than the dataset trains (one step) and writes the model.
"$RLHF" "${base[@]}" --dataset_name "$W/good.jsonl" --per_device_train_batch_size 64 --output_dir "$W/big" \
  >/dev/null 2>"$W/big.err" || fail "batch larger than the dataset: exit $? ($(tail -n 1 "$W/big.err"))"
[ -s "$W/big/model.safetensors" ] || fail "batch larger than the dataset: no model"
# NaN/Inf guard: a diverging run skips non-finite steps, then stops with exit 1 naming the divergence.
for i in $(seq 1 30); do echo "$good"; done >"$W/many.jsonl"
"$RLHF" "${base[@]}" --dataset_name "$W/many.jsonl" --per_device_train_batch_size 1 --learning_rate 1e30 \
  --max_grad_norm 0 --output_dir "$W/nan" >/dev/null 2>"$W/nan.err"
c=$?
[ "$c" = 1 ] && grep -q 'step skipped' "$W/nan.err" && grep -q diverged "$W/nan.err" ||
  fail "diverging run: exit $c ($(tail -n 1 "$W/nan.err"))"
# score: bad rows, too.
"$RLHF" score --model_name_or_path "$M" --dataset_name "$W/rows.jsonl" >/dev/null 2>"$W/score.err"
c=$?
[ "$c" = 2 ] && grep -q 'rows\.jsonl:2:' "$W/score.err" || fail "score on bad rows: exit $c ($(cat "$W/score.err"))"
[ "$fails" = 0 ] && echo "reward_bad_input: all passed" || { echo "reward_bad_input: $fails failed"; exit 1; }
