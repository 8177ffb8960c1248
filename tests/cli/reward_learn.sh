#!/bin/bash
# rlhf reward end to end: a tiny BERT from `rlhf init` trained on data/learn-demo (2 epochs) leaves the
# final model, training_log.csv with the contract's columns, report.html with inline SVG and
# checkpoint-epoch{1,2}/; `rlhf score` on the 100 held-out pairs gives accuracy >= 0.95 and a JSON
# summary whose accuracy agrees with the rows; --prompt/--response prints one number.
set -u
RLHF=${1:?usage: reward_learn.sh path/to/rlhf}
W=$(mktemp -d -t rlhf-reward-learn.XXXXXX)
trap 'rm -rf "$W"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
cat >"$W/tiny.json" <<'JSON'
{"architectures": ["BertForSequenceClassification"], "model_type": "bert", "vocab_size": 30522,
 "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 128,
 "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 512,
 "type_vocab_size": 2, "initializer_range": 0.02, "pad_token_id": 0, "num_labels": 1}
JSON
"$RLHF" init --config "$W/tiny.json" --tokenizer tests/fixtures/tokenizers/bert-base-uncased \
  --output_dir "$W/init" --seed 11 >/dev/null 2>"$W/init.err" || { cat "$W/init.err"; echo "FAIL: init"; exit 1; }
"$RLHF" reward --model_name_or_path "$W/init" --dataset_name data/learn-demo/train.jsonl \
  --eval_dataset_name data/learn-demo/eval.jsonl --output_dir "$W/rm" --num_train_epochs 2 --learning_rate 5e-4 \
  --per_device_train_batch_size 16 --seed 5 --threads 1 >"$W/train.out" 2>"$W/train.err" ||
  { tail -n 5 "$W/train.err"; echo "FAIL: reward exit"; exit 1; }
for f in config.json model.safetensors tokenizer.json training_log.csv report.html checkpoint-25/model.safetensors \
  checkpoint-25/optimizer.safetensors checkpoint-25/trainer_state.json checkpoint-50/config.json; do
  [ -s "$W/rm/$f" ] || fail "output lacks $f"
done
head -n 1 "$W/rm/training_log.csv" | grep -qx 'epoch,step,loss,learning_rate,grad_norm,accuracy,margin,eval_loss,eval_accuracy,eval_margin' ||
  fail "training_log.csv header: $(head -n 1 "$W/rm/training_log.csv")"
# 50 steps, logging every 10 -> 5 rows with a loss; 2 evaluations (epoch ends).
n_loss=$(awk -F, 'NR > 1 && $3 != ""' "$W/rm/training_log.csv" | wc -l)
n_eval=$(awk -F, 'NR > 1 && $9 != ""' "$W/rm/training_log.csv" | wc -l)
[ "$n_loss" = 5 ] || fail "expected 5 logged losses, got $n_loss"
[ "$n_eval" = 2 ] || fail "expected 2 evaluations, got $n_eval"
grep -q '<svg' "$W/rm/report.html" || fail "report.html has no inline svg"
grep -q '"rlhf_reward_encoding": "pair"' "$W/rm/config.json" || fail "config.json does not record the pair encoding"
grep -q '"global_step": 25' "$W/rm/checkpoint-25/trainer_state.json" || fail "checkpoint-25 is not at step 25"
"$RLHF" score --model_name_or_path "$W/rm" --dataset_name data/learn-demo/eval.jsonl --output_file "$W/scores.jsonl" \
  --threads 1 >"$W/score.out" 2>"$W/score.err" || fail "score exit ($(tail -n 1 "$W/score.err"))"
/usr/bin/python3 - "$W/score.out" "$W/scores.jsonl" <<'PY' || fails=$((fails + 1))
import json, sys
summary = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
rows = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
assert len(rows) == 100 and summary["n"] == 100, (len(rows), summary)
acc = sum(r["chosen_score"] > r["rejected_score"] for r in rows) / len(rows)
assert abs(acc - summary["accuracy"]) < 1e-9, (acc, summary)
assert acc >= 0.95, "held-out accuracy %.3f < 0.95" % acc
print("held-out accuracy %.3f, margin_mean %.3f" % (acc, summary["margin_mean"]))
PY
v=$("$RLHF" score --model_name_or_path "$W/rm" --prompt "Can you help me fix my bike?" \
  --response "Sure, I would be happy to help with your bike." --threads 1 2>/dev/null)
/usr/bin/python3 -c "import math,sys; assert math.isfinite(float(sys.argv[1]))" "$v" 2>/dev/null ||
  fail "--prompt/--response printed '$v', expected one number"
# An output directory holding a run is refused without --overwrite_output_dir.
"$RLHF" reward --model_name_or_path "$W/init" --dataset_name data/learn-demo/eval.jsonl --output_dir "$W/rm" \
  --threads 1 >/dev/null 2>"$W/again.err"
c=$?
[ "$c" = 2 ] && grep -q overwrite_output_dir "$W/again.err" || fail "a second run into the same dir: exit $c"
[ "$fails" = 0 ] && echo "reward_learn: all passed" || { echo "reward_learn: $fails failed"; exit 1; }
