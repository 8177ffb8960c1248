#!/bin/bash
# `rlhf reward --zero_stage 1` (ZeRO-1: each of 2 processes keeps half of the AdamW moments) trains bit-identically
# to --zero_stage 0 (same per-element AdamW arithmetic; each rank updates its slice, then an all-gather); its
# checkpoints hold the whole optimizer state (optimizer.safetensors identical to stage 0's), so they resume with
# one process, and a 1-process checkpoint resumes with 2 processes under ZeRO-1. --zero_stage 2 is refused
# (exit 2, naming the flag); with one process --zero_stage 1 says it changes nothing.
set -u
RLHF=${1:?usage: mpi_zero.sh path/to/rlhf}
source "$(dirname "$0")/mpi_common.bash"
W=$(mktemp -d -t rlhf-mpi-zero.XXXXXX)
trap 'rm -rf "$W"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
tiny_bert "$W/init" || { echo "FAIL: init"; exit 1; }
args=(reward --model_name_or_path "$W/init" --dataset_name data/learn-demo/train.jsonl --max_steps 6
  --learning_rate 1e-3 --weight_decay 0.1 --gradient_accumulation_steps 2 --seed 9 --logging_steps 1
  --save_strategy steps --save_steps 3 --threads 1 --quiet --per_device_train_batch_size 8)
for z in 0 1; do
  "${MPIRUN[@]}" "$RLHF" "${args[@]}" --zero_stage $z --output_dir "$W/z$z" >"$W/z$z.out" 2>&1 ||
    { tail -n 5 "$W/z$z.out"; echo "FAIL: np 2 zero_stage $z"; exit 1; }
done
for f in model.safetensors training_log.csv checkpoint-3/optimizer.safetensors checkpoint-6/optimizer.safetensors; do
  cmp -s "$W/z0/$f" "$W/z1/$f" || fail "zero_stage 1 vs 0: $f differs"
done
# a ZeRO-1 checkpoint resumes with one process (per_device doubled: the same global batch) ...
mkdir -p "$W/r1" && cp -r "$W/z1/checkpoint-3" "$W/r1/"
"$RLHF" "${args[@]}" --per_device_train_batch_size 16 --output_dir "$W/r1" --resume_from_checkpoint "$W/r1/checkpoint-3" \
  >"$W/r1.out" 2>&1 || { tail -n 3 "$W/r1.out"; fail "np 1 resume from a zero_stage 1 checkpoint"; }
msg=$(close_weights "$W/z1/model.safetensors" "$W/r1/model.safetensors" 2>&1) || fail "np 1 from ZeRO-1 checkpoint: $msg"
# ... and a 1-process checkpoint resumes with 2 processes under ZeRO-1
"$RLHF" "${args[@]}" --per_device_train_batch_size 16 --output_dir "$W/n1" >/dev/null 2>"$W/n1.err" ||
  { tail -n 3 "$W/n1.err"; fail "np 1 run"; }
mkdir -p "$W/r2" && cp -r "$W/n1/checkpoint-3" "$W/r2/"
"${MPIRUN[@]}" "$RLHF" "${args[@]}" --zero_stage 1 --output_dir "$W/r2" --resume_from_checkpoint "$W/r2/checkpoint-3" \
  >"$W/r2.out" 2>&1 || { tail -n 5 "$W/r2.out"; fail "np 2 zero_stage 1 resume from an np 1 checkpoint"; }
msg=$(close_weights "$W/z1/model.safetensors" "$W/r2/model.safetensors" 2>&1) || fail "ZeRO-1 from np 1 checkpoint: $msg"
# bad values and the one-process notice
"${MPIRUN[@]}" "$RLHF" "${args[@]}" --zero_stage 2 --output_dir "$W/bad" >"$W/bad.out" 2>&1
c=$?
[ "$c" = 2 ] && [ "$(grep -c -- '--zero_stage' "$W/bad.out")" = 1 ] && [ ! -e "$W/bad" ] ||
  fail "--zero_stage 2: exit $c, $(head -c 300 "$W/bad.out")"
"$RLHF" "${args[@]}" --zero_stage 1 --max_steps 1 --save_strategy no --output_dir "$W/one" >"$W/one.out" 2>&1 ||
  fail "np 1 with --zero_stage 1"
grep -q "zero_stage 1.*changes nothing" "$W/one.out" || fail "np 1 --zero_stage 1: no notice"
[ "$fails" = 0 ] && echo "mpi_zero: all passed" || { echo "mpi_zero: $fails failed"; exit 1; }
