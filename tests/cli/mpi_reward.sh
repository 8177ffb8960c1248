#!/bin/bash
# `mpirun -np 2 rlhf reward` over loopback TCP equals one process at the same global batch: per_device 8 x 2
# processes against per_device 16 x 1 (losses, grad norms, accuracy, eval metrics within 1e-4 relative, final
# weights too); a rerun with 2 processes is bit-identical; a 2-process checkpoint resumes bit-identically with
# 2 processes, and a 1-process checkpoint resumes with 2 processes to the same weights. With dropout on (0.1 in
# every BERT site), 2 processes still equal one: each row's masks follow its place in the global micro-batch.
set -u
RLHF=${1:?usage: mpi_reward.sh path/to/rlhf}
source "$(dirname "$0")/mpi_common.bash"
W=$(mktemp -d -t rlhf-mpi-reward.XXXXXX)
trap 'rm -rf "$W"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
tiny_bert "$W/init" || { echo "FAIL: init"; exit 1; }
args=(reward --model_name_or_path "$W/init" --dataset_name data/learn-demo/train.jsonl --max_steps 6
  --learning_rate 1e-3 --gradient_accumulation_steps 2 --seed 9 --logging_steps 1 --eval_split 0.1
  --eval_strategy steps --eval_steps 3 --save_strategy steps --save_steps 3 --threads 1 --quiet)
COLS=loss,learning_rate,grad_norm,accuracy,margin,eval_loss,eval_accuracy,eval_margin
"$RLHF" "${args[@]}" --per_device_train_batch_size 16 --output_dir "$W/np1" >/dev/null 2>"$W/np1.err" ||
  { tail -n 3 "$W/np1.err"; echo "FAIL: np 1 run"; exit 1; }
for r in a b; do
  "${MPIRUN[@]}" "$RLHF" "${args[@]}" --per_device_train_batch_size 8 --output_dir "$W/np2$r" >"$W/np2$r.out" 2>&1 ||
    { tail -n 5 "$W/np2$r.out"; echo "FAIL: np 2 run $r"; exit 1; }
done
msg=$(close_logs "$W/np1/training_log.csv" "$W/np2a/training_log.csv" $COLS 2>&1) || fail "np 2 log vs np 1: $msg"
msg=$(close_weights "$W/np1/model.safetensors" "$W/np2a/model.safetensors" 2>&1) || fail "np 2 weights vs np 1: $msg"
cmp -s "$W/np2a/model.safetensors" "$W/np2b/model.safetensors" || fail "np 2 rerun: model.safetensors differs"
cmp -s "$W/np2a/training_log.csv" "$W/np2b/training_log.csv" || fail "np 2 rerun: training_log.csv differs"
# only rank 0 prints: one summary line
n=$(grep -c "rlhf reward: done" "$W/np2a.out"); [ "$n" = 1 ] || fail "np 2 printed the summary $n times"
# resume with 2 processes from the 2-process checkpoint-3 (bit-identical) and from the 1-process one
mkdir -p "$W/r22" "$W/r12" && cp -r "$W/np2a/checkpoint-3" "$W/r22/" && cp -r "$W/np1/checkpoint-3" "$W/r12/"
for d in r22 r12; do
  "${MPIRUN[@]}" "$RLHF" "${args[@]}" --per_device_train_batch_size 8 --output_dir "$W/$d" \
    --resume_from_checkpoint "$W/$d/checkpoint-3" >"$W/$d.out" 2>&1 || { tail -n 5 "$W/$d.out"; fail "resume $d"; }
done
cmp -s "$W/np2a/model.safetensors" "$W/r22/model.safetensors" || fail "np 2 resumed from np 2 checkpoint: model differs"
cmp -s "$W/np2a/training_log.csv" "$W/r22/training_log.csv" || fail "np 2 resumed from np 2 checkpoint: log differs"
msg=$(close_weights "$W/np2a/model.safetensors" "$W/r12/model.safetensors" 2>&1) || fail "np 2 resumed from np 1 checkpoint: $msg"
# dropout on: masks keyed by the row's place in the global micro-batch, so np 2 equals np 1 (within 1e-4)
dargs=("${args[@]}" --disable_dropout false --eval_strategy no --save_strategy no)
"$RLHF" "${dargs[@]}" --per_device_train_batch_size 16 --output_dir "$W/d1" >/dev/null 2>"$W/d1.err" ||
  { tail -n 3 "$W/d1.err"; fail "dropout np 1 run"; }
"${MPIRUN[@]}" "$RLHF" "${dargs[@]}" --per_device_train_batch_size 8 --output_dir "$W/d2" >"$W/d2.out" 2>&1 ||
  { tail -n 5 "$W/d2.out"; fail "dropout np 2 run"; }
msg=$(close_logs "$W/d1/training_log.csv" "$W/d2/training_log.csv" loss,grad_norm,accuracy,margin 2>&1) ||
  fail "dropout: np 2 log vs np 1: $msg"
msg=$(close_weights "$W/d1/model.safetensors" "$W/d2/model.safetensors" 2>&1) || fail "dropout: np 2 weights vs np 1: $msg"
# (and dropout was on: the losses differ from the run without it)
cmp -s <(cut -d, -f1-3 "$W/d1/training_log.csv") <(cut -d, -f1-3 "$W/np1/training_log.csv") && fail "dropout had no effect"
# a global batch other than the checkpoint's is refused (exit 2, naming the flag)
mkdir -p "$W/bad" && cp -r "$W/np1/checkpoint-3" "$W/bad/"
"${MPIRUN[@]}" "$RLHF" "${args[@]}" --per_device_train_batch_size 16 --output_dir "$W/bad" \
  --resume_from_checkpoint "$W/bad/checkpoint-3" >"$W/bad.out" 2>&1
c=$?
[ "$c" = 2 ] && grep -q per_device_train_batch_size "$W/bad.out" || fail "resume with another global batch: exit $c"
[ "$fails" = 0 ] && echo "mpi_reward: all passed" || { echo "mpi_reward: $fails failed"; exit 1; }
