#!/bin/bash
# `mpirun -np 2 rlhf sft` over loopback TCP equals one process at the same global batch (per_device 2 x 2
# processes against 4 x 1): rows of different lengths, so each micro-batch's token mean must be taken over the
# global micro-batch's tokens, not averaged per rank; losses, grad norms, eval_loss and the final weights
# within 1e-4 relative; a rerun with 2 processes is bit-identical; a 1-process checkpoint resumes with 2. With
# dropout on (GPT-2's 0.1 everywhere), 2 processes still equal one: masks follow a row's place in the global batch.
set -u
RLHF=${1:?usage: mpi_sft.sh path/to/rlhf}
source "$(dirname "$0")/mpi_common.bash"
W=$(mktemp -d -t rlhf-mpi-sft.XXXXXX)
trap 'rm -rf "$W"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
cat >"$W/cfg.json" <<'JSON'
{"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": 50257, "n_embd": 16, "n_layer": 1,
 "n_head": 2, "n_positions": 64, "bos_token_id": 50256, "eos_token_id": 50256}
JSON
"$RLHF" init --config "$W/cfg.json" --tokenizer tests/fixtures/tokenizers/gpt2 --output_dir "$W/tiny" >/dev/null 2>&1 ||
  { echo "FAIL: init"; exit 1; }
/usr/bin/python3 - "$W/data.jsonl" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(22):
        f.write(json.dumps({"prompt": "Q: %d plus %d%s?" % (i, i, " and more" * (i % 4)),
                            "completion": " A: %d%s" % (2 * i, " indeed" * (i % 3))}) + "\n")
PY
args=(sft --model_name_or_path "$W/tiny" --dataset_name "$W/data.jsonl" --num_train_epochs 2 --learning_rate 3e-3
  --logging_steps 1 --gradient_accumulation_steps 2 --eval_split 0.2 --eval_strategy steps --eval_steps 2
  --per_device_eval_batch_size 2 --save_strategy steps --save_steps 2 --seed 5 --threads 1 --quiet)
COLS=loss,learning_rate,grad_norm,eval_loss
"$RLHF" "${args[@]}" --per_device_train_batch_size 4 --output_dir "$W/np1" >/dev/null 2>"$W/np1.err" ||
  { tail -n 3 "$W/np1.err"; echo "FAIL: np 1 run"; exit 1; }
for r in a b; do
  "${MPIRUN[@]}" "$RLHF" "${args[@]}" --per_device_train_batch_size 2 --output_dir "$W/np2$r" >"$W/np2$r.out" 2>&1 ||
    { tail -n 5 "$W/np2$r.out"; echo "FAIL: np 2 run $r"; exit 1; }
done
msg=$(close_logs "$W/np1/training_log.csv" "$W/np2a/training_log.csv" $COLS 2>&1) || fail "np 2 log vs np 1: $msg"
msg=$(close_weights "$W/np1/model.safetensors" "$W/np2a/model.safetensors" 2>&1) || fail "np 2 weights vs np 1: $msg"
cmp -s "$W/np2a/model.safetensors" "$W/np2b/model.safetensors" || fail "np 2 rerun: model.safetensors differs"
cmp -s "$W/np2a/training_log.csv" "$W/np2b/training_log.csv" || fail "np 2 rerun: training_log.csv differs"
n=$(grep -c "rlhf sft: .* steps" "$W/np2a.out"); [ "$n" = 1 ] || fail "np 2 printed the summary $n times"
# the 1-process checkpoint-2 resumes with 2 processes to the same weights
mkdir -p "$W/r12" && cp -r "$W/np1/checkpoint-2" "$W/r12/"
"${MPIRUN[@]}" "$RLHF" "${args[@]}" --per_device_train_batch_size 2 --output_dir "$W/r12" \
  --resume_from_checkpoint "$W/r12/checkpoint-2" >"$W/r12.out" 2>&1 || { tail -n 5 "$W/r12.out"; fail "resume r12"; }
msg=$(close_weights "$W/np2a/model.safetensors" "$W/r12/model.safetensors" 2>&1) || fail "np 2 resumed from np 1 checkpoint: $msg"
# dropout on: np 2 equals np 1
dargs=("${args[@]}" --disable_dropout false --eval_strategy no --save_strategy no)
"$RLHF" "${dargs[@]}" --per_device_train_batch_size 4 --output_dir "$W/d1" >/dev/null 2>"$W/d1.err" ||
  { tail -n 3 "$W/d1.err"; fail "dropout np 1 run"; }
"${MPIRUN[@]}" "$RLHF" "${dargs[@]}" --per_device_train_batch_size 2 --output_dir "$W/d2" >"$W/d2.out" 2>&1 ||
  { tail -n 5 "$W/d2.out"; fail "dropout np 2 run"; }
msg=$(close_logs "$W/d1/training_log.csv" "$W/d2/training_log.csv" loss,grad_norm 2>&1) || fail "dropout: np 2 vs np 1: $msg"
msg=$(close_weights "$W/d1/model.safetensors" "$W/d2/model.safetensors" 2>&1) || fail "dropout: np 2 weights: $msg"
cmp -s <(cut -d, -f1-3 "$W/d1/training_log.csv") <(cut -d, -f1-3 "$W/np1/training_log.csv") && fail "dropout had no effect"
[ "$fails" = 0 ] && echo "mpi_sft: all passed" || { echo "mpi_sft: $fails failed"; exit 1; }
