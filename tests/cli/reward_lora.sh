#!/bin/bash
# rlhf reward with LoRA: QLoRA (--use_peft --load_in_4bit, double quant) on a tiny `rlhf init` BERT
# trains (the logged loss falls) and writes a peft adapter (adapter_config.json with peft's fields,
# adapter_model.safetensors with base_model.model.*.lora_A/B and the classifier as modules_to_save);
# `rlhf score` reads the adapter directory; fp32 LoRA with --merge_adapter also writes a merged model that `rlhf score` reads; bad flags exit 2.
set -u
RLHF=${1:?usage: reward_lora.sh path/to/rlhf}
W=$(mktemp -d -t rlhf-reward-lora.XXXXXX)
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
"$RLHF" reward --model_name_or_path "$W/init" --dataset_name data/learn-demo/train.jsonl --output_dir "$W/q" \
  --num_train_epochs 2 --learning_rate 2e-3 --per_device_train_batch_size 16 --logging_steps 5 --seed 5 \
  --threads 1 --use_peft --lora_r 8 --lora_alpha 16 --load_in_4bit --bnb_4bit_use_double_quant \
  >"$W/q.out" 2>"$W/q.err" || { tail -n 5 "$W/q.err"; echo "FAIL: qlora reward exit"; exit 1; }
grep -q "4-bit base weights" "$W/q.err" || fail "no 4-bit notice: $(head -n 3 "$W/q.err")"
for f in adapter_config.json adapter_model.safetensors training_log.csv tokenizer.json; do
  [ -s "$W/q/$f" ] || fail "output lacks $f"
done
/usr/bin/python3 - "$W/q" "$W/init" <<'PY' || fails=$((fails + 1))
import json, struct, sys
out, base = sys.argv[1], sys.argv[2]
c = json.load(open(out + "/adapter_config.json"))
assert c["peft_type"] == "LORA" and c["r"] == 8 and c["lora_alpha"] == 16 and c["task_type"] == "SEQ_CLS", c
assert c["bias"] == "none" and c["modules_to_save"] == ["classifier"] and c["base_model_name_or_path"] == base, c
assert "bert.encoder.layer.0.attention.self.query" in c["target_modules"], c["target_modules"]
assert "classifier" not in c["target_modules"], c["target_modules"]
raw = open(out + "/adapter_model.safetensors", "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
keys = set(json.loads(raw[8:8 + n])) - {"__metadata__"}
q = "base_model.model.bert.encoder.layer.0.attention.self.query."
assert q + "lora_A.weight" in keys and q + "lora_B.weight" in keys, sorted(keys)[:4]
assert "base_model.model.classifier.weight" in keys and "base_model.model.classifier.bias" in keys, sorted(keys)[:4]
assert not any("embeddings" in k for k in keys), "frozen tensors saved"
rows = [l.split(",") for l in open(out + "/training_log.csv").read().splitlines()[1:]]
losses = [float(r[2]) for r in rows if r[2]]
assert len(losses) >= 4, losses
first, last = sum(losses[:2]) / 2, sum(losses[-2:]) / 2
assert last < first - 0.05, "loss did not fall: %s" % losses
print("qlora losses %.3f -> %.3f" % (first, last))
PY
# rlhf score reads the adapter directory (base from base_model_name_or_path + adapter).
v=$("$RLHF" score --model_name_or_path "$W/q" --prompt "Can you help me fix my bike?" \
  --response "Sure, I would be happy to help with your bike." --threads 1 2>"$W/qs.err")
/usr/bin/python3 -c "import math,sys; assert math.isfinite(float(sys.argv[1]))" "$v" 2>/dev/null ||
  fail "score of the adapter dir printed '$v' ($(tail -n 1 "$W/qs.err"))"
# fp32 LoRA + merged model, scored by rlhf score.
"$RLHF" reward --model_name_or_path "$W/init" --dataset_name data/learn-demo/eval.jsonl --output_dir "$W/m" \
  --num_train_epochs 1 --learning_rate 2e-3 --per_device_train_batch_size 16 --seed 5 --threads 1 --use_peft \
  --lora_target_modules query,value --merge_adapter >"$W/m.out" 2>"$W/m.err" ||
  { tail -n 5 "$W/m.err"; fail "lora --merge_adapter exit"; }
for f in adapter_config.json adapter_model.safetensors model.safetensors config.json; do
  [ -s "$W/m/$f" ] || fail "merged output lacks $f"
done
grep -q '"bert.encoder.layer.1.attention.self.value"' "$W/m/adapter_config.json" || fail "value not targeted"
grep -q 'intermediate.dense' "$W/m/adapter_config.json" && fail "intermediate.dense targeted with query,value"
v=$("$RLHF" score --model_name_or_path "$W/m" --prompt "Can you help me fix my bike?" \
  --response "Sure, I would be happy to help with your bike." --threads 1 2>/dev/null)
/usr/bin/python3 -c "import math,sys; assert math.isfinite(float(sys.argv[1]))" "$v" 2>/dev/null ||
  fail "score of the merged model printed '$v'"
# Scoring with a 4-bit backbone (no adapter needed), of the merged model and of the QLoRA adapter dir:
# close to the fp32 reward.
for d in m q; do
  v4=$("$RLHF" score --model_name_or_path "$W/$d" --prompt "Can you help me fix my bike?" --load_in_4bit \
    --response "Sure, I would be happy to help with your bike." --threads 1 2>"$W/s4.err")
  v32=$("$RLHF" score --model_name_or_path "$W/$d" --prompt "Can you help me fix my bike?" \
    --response "Sure, I would be happy to help with your bike." --threads 1 2>/dev/null)
  /usr/bin/python3 -c "import math,sys; a,b=float(sys.argv[1]),float(sys.argv[2]); assert math.isfinite(a) and abs(a-b) < 0.25+0.25*abs(b)" \
    "$v4" "$v32" 2>/dev/null || fail "4-bit score of $d: '$v4' vs fp32 '$v32' ($(tail -n 1 "$W/s4.err"))"
done
# Bad flags exit 2 naming the flag.
"$RLHF" reward --model_name_or_path "$W/init" --dataset_name data/learn-demo/eval.jsonl --output_dir "$W/b1" \
  --load_in_4bit --threads 1 >/dev/null 2>"$W/b1.err"
c=$?; [ "$c" = 2 ] && grep -q -- --use_peft "$W/b1.err" || fail "--load_in_4bit without --use_peft: exit $c"
"$RLHF" reward --model_name_or_path "$W/init" --dataset_name data/learn-demo/eval.jsonl --output_dir "$W/b2" \
  --use_peft --lora_target_modules nope_proj --threads 1 >/dev/null 2>"$W/b2.err"
c=$?; [ "$c" = 2 ] && grep -q nope_proj "$W/b2.err" || fail "unknown target: exit $c"
"$RLHF" reward --model_name_or_path "$W/init" --dataset_name data/learn-demo/eval.jsonl --output_dir "$W/b3" \
  --use_peft --bnb_4bit_quant_type int3 --load_in_4bit --threads 1 >/dev/null 2>"$W/b3.err"
c=$?; [ "$c" = 2 ] || fail "--bnb_4bit_quant_type int3: exit $c"
[ "$fails" = 0 ] && echo "reward_lora: all passed" || { echo "reward_lora: $fails failed"; exit 1; }
