#!/bin/bash
# Decoder reward models: a tiny GPT-2 from `rlhf init` (GPT-2 BPE tokenizer, no pad token of its own) trains on
# data/learn-demo reading prompt + response + EOS, right-padded with a mask, and reaches held-out accuracy
# >= 0.95; `rlhf score` reads pairs the same way (its rows agree with the summary).
set -u
RLHF=${1:?usage: reward_decoder.sh path/to/rlhf}
W=$(mktemp -d -t rlhf-reward-decoder.XXXXXX)
trap 'rm -rf "$W"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
cat >"$W/gpt2.json" <<'JSON'
{"architectures": ["GPT2ForSequenceClassification"], "model_type": "gpt2", "vocab_size": 50257, "n_embd": 64,
 "n_layer": 2, "n_head": 2, "n_positions": 256, "n_inner": 128, "resid_pdrop": 0.0, "embd_pdrop": 0.0,
 "attn_pdrop": 0.0, "initializer_range": 0.02, "bos_token_id": 50256, "eos_token_id": 50256, "num_labels": 1}
JSON
"$RLHF" init --config "$W/gpt2.json" --tokenizer tests/fixtures/tokenizers/gpt2 --output_dir "$W/init" --seed 3 \
  >/dev/null 2>"$W/init.err" || { cat "$W/init.err"; echo "FAIL: init"; exit 1; }
"$RLHF" reward --model_name_or_path "$W/init" --dataset_name data/learn-demo/train.jsonl \
  --eval_dataset_name data/learn-demo/eval.jsonl --output_dir "$W/rm" --num_train_epochs 2 --learning_rate 5e-4 \
  --per_device_train_batch_size 16 --threads 1 --quiet >/dev/null 2>"$W/train.err" ||
  { tail -n 3 "$W/train.err"; echo "FAIL: reward exit"; exit 1; }
"$RLHF" score --model_name_or_path "$W/rm" --dataset_name data/learn-demo/eval.jsonl --output_file "$W/s.jsonl" \
  --threads 1 >"$W/score.out" 2>"$W/score.err" || fail "score exit ($(tail -n 1 "$W/score.err"))"
/usr/bin/python3 - "$W/score.out" "$W/s.jsonl" <<'PY' || fails=$((fails + 1))
import json, sys
summary = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
rows = [json.loads(l) for l in open(sys.argv[2])]
acc = sum(r["chosen_score"] > r["rejected_score"] for r in rows) / len(rows)
assert len(rows) == 100 and abs(acc - summary["accuracy"]) < 1e-9, (len(rows), acc, summary)
assert acc >= 0.95, "decoder held-out accuracy %.3f < 0.95" % acc
print("decoder held-out accuracy %.3f" % acc)
PY
[ "$fails" = 0 ] && echo "reward_decoder: all passed" || { echo "reward_decoder: $fails failed"; exit 1; }
