#!/bin/bash
# `mpirun -np 2 rlhf dpo` over loopback TCP equals one process at the same global batch (per_device 2 x 2
# processes against 4 x 1; 16 pairs, so no rank needs DistributedSampler's wrap-around padding): every logged
# metric, eval metrics included (eval batch 2 x 2 against 4 x 1), and the final weights within 1e-4 relative; a
# rerun is bit-identical. Not compared: logits/* (each rank's mean over its tokens, averaged over ranks as TRL's
# gather_for_metrics(...).mean() does, so by design not the one-process token mean).
set -u
RLHF=${1:?usage: mpi_dpo.sh path/to/rlhf}
source "$(dirname "$0")/mpi_common.bash"
W=$(mktemp -d -t rlhf-mpi-dpo.XXXXXX)
trap 'rm -rf "$W"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
cat >"$W/cfg.json" <<'JSON'
{"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": 50257, "n_embd": 16, "n_layer": 1,
 "n_head": 2, "n_positions": 128, "bos_token_id": 50256, "eos_token_id": 50256}
JSON
"$RLHF" init --config "$W/cfg.json" --tokenizer tests/fixtures/tokenizers/gpt2 --output_dir "$W/init" >/dev/null 2>&1 ||
  { echo "FAIL: init"; exit 1; }
head -n 16 data/learn-demo/train.jsonl >"$W/pairs.jsonl"
head -n 40 data/learn-demo/train.jsonl | tail -n 4 >"$W/eval.jsonl"
args=(dpo --model_name_or_path "$W/init" --dataset_name "$W/pairs.jsonl" --eval_dataset_name "$W/eval.jsonl"
  --eval_strategy steps --eval_steps 1 --num_train_epochs 1 --learning_rate 1e-3
  --gradient_accumulation_steps 2 --seed 5 --save_strategy no --logging_steps 1 --threads 1 --quiet)
"$RLHF" "${args[@]}" --per_device_train_batch_size 4 --per_device_eval_batch_size 4 --output_dir "$W/np1" >/dev/null 2>"$W/np1.err" ||
  { tail -n 3 "$W/np1.err"; echo "FAIL: np 1 run"; exit 1; }
for r in a b; do
  "${MPIRUN[@]}" "$RLHF" "${args[@]}" --per_device_train_batch_size 2 --per_device_eval_batch_size 2 --output_dir "$W/np2$r" >"$W/np2$r.out" 2>&1 ||
    { tail -n 5 "$W/np2$r.out"; echo "FAIL: np 2 run $r"; exit 1; }
done
COLS=$(head -n 1 "$W/np1/training_log.csv" | tr ',' '\n' | grep -vx 'epoch\|step' | grep -v 'logits/' | paste -sd,)
msg=$(close_logs "$W/np1/training_log.csv" "$W/np2a/training_log.csv" "$COLS" 2>&1) || fail "np 2 log vs np 1: $msg"
msg=$(close_weights "$W/np1/model.safetensors" "$W/np2a/model.safetensors" 2>&1) || fail "np 2 weights vs np 1: $msg"
cmp -s "$W/np2a/model.safetensors" "$W/np2b/model.safetensors" || fail "np 2 rerun: model.safetensors differs"
cmp -s "$W/np2a/training_log.csv" "$W/np2b/training_log.csv" || fail "np 2 rerun: training_log.csv differs"
n=$(grep -c "rlhf dpo: .* steps" "$W/np2a.out"); [ "$n" = 1 ] || fail "np 2 printed the summary $n times"
[ "$fails" = 0 ] && echo "mpi_dpo: all passed" || { echo "mpi_dpo: $fails failed"; exit 1; }
