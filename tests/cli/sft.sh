#!/bin/bash
# `rlhf sft` end to end on a tiny GPT-2 with the real GPT-2 tokenizer: prompt/completion and text rows
# train (the loss falls), the output directory is a loadable HF model dir with the log, report and
# per-epoch checkpoints, and a bad row stops the run with exit 2 naming FILE:LINE before any output.
set -u
RLHF=${1:-build/rlhf}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
fail=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fail=1; }

cat >"$W/cfg.json" <<'EOF'
{"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": 50257, "n_embd": 16, "n_layer": 1,
 "n_head": 2, "n_positions": 64, "bos_token_id": 50256, "eos_token_id": 50256}
EOF
"$RLHF" init --config "$W/cfg.json" --tokenizer tests/fixtures/tokenizers/gpt2 --output_dir "$W/tiny" 2>"$W/err" ||
  { bad "init: $(cat "$W/err")"; exit 1; }
python3 - "$W/data.jsonl" <<'EOF'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(12):
        f.write(json.dumps({"prompt": "Q: %d plus %d?" % (i, i), "completion": " A: %d" % (2 * i)}) + "\n")
    for i in range(4):
        f.write(json.dumps({"text": "The number %d is nice." % i}) + "\n")
EOF
"$RLHF" sft --model_name_or_path "$W/tiny" --dataset_name "$W/data.jsonl" --output_dir "$W/out" --num_train_epochs 2 \
  --learning_rate 3e-3 --logging_steps 1 --per_device_train_batch_size 4 --eval_split 0.25 --threads 1 2>"$W/err" ||
  bad "sft exit $?: $(tail -3 "$W/err")"
for f in config.json model.safetensors generation_config.json tokenizer.json training_log.csv report.html \
  checkpoint-3/model.safetensors checkpoint-6/optimizer.safetensors; do
  [ -e "$W/out/$f" ] || bad "missing $f"
done
[ "$(head -1 "$W/out/training_log.csv")" = "epoch,step,loss,learning_rate,grad_norm,eval_loss" ] && ok "log header" ||
  bad "log header"
python3 - "$W/out/training_log.csv" "$W/err" <<'EOF' && ok "train and held-out loss fall" || bad "loss does not fall"
import csv, re, sys
rows = list(csv.DictReader(open(sys.argv[1])))
train = [r for r in rows if r["loss"]]
evals = [r for r in rows if r["eval_loss"]]
assert len(train) == 6 and len(evals) == 2, rows  # 12 train rows / 4 = 3 steps per epoch; 4 held out
assert float(train[-1]["loss"]) < float(train[0]["loss"]), rows
first, last = map(float, re.search(r"eval loss ([0-9.]+) -> ([0-9.]+)", open(sys.argv[2]).read()).groups())
assert last < first, (first, last)
EOF
"$RLHF" generate --model_name_or_path "$W/out" --prompt "Q: 3 plus 3?" --max_new_tokens 3 >/dev/null 2>"$W/err" &&
  ok "trained model generates" || bad "generate on output: $(cat "$W/err")"

# resume from the epoch-1 checkpoint (dropout on, shuffled): the final weights are byte-identical
"$RLHF" sft --model_name_or_path "$W/tiny" --dataset_name "$W/data.jsonl" --output_dir "$W/res" --num_train_epochs 2 \
  --learning_rate 3e-3 --logging_steps 1 --per_device_train_batch_size 4 --eval_split 0.25 --threads 1 \
  --resume_from_checkpoint "$W/out/checkpoint-3" 2>"$W/err" || bad "resume exit $?: $(tail -3 "$W/err")"
cmp -s "$W/out/model.safetensors" "$W/res/model.safetensors" && ok "resume from checkpoint-3: identical model" ||
  bad "resumed model differs"

printf '{"prompt": "a", "completion": "b"}\n{"prompt": "c"}\n' >"$W/bad.jsonl"
"$RLHF" sft --model_name_or_path "$W/tiny" --dataset_name "$W/bad.jsonl" --output_dir "$W/out2" 2>"$W/err"
c=$?
[ $c = 2 ] && grep -q "bad.jsonl:2" "$W/err" && [ ! -e "$W/out2" ] && ok "bad row: exit 2, FILE:LINE, no output" ||
  bad "bad row: exit $c: $(cat "$W/err")"
"$RLHF" sft --model_name_or_path "$W/tiny" --dataset_name "$W/data.jsonl" --output_dir "$W/out" 2>"$W/err"
[ $? = 2 ] && ok "non-empty output_dir refused" || bad "non-empty output_dir"
exit $fail
