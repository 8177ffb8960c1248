#!/bin/bash
# Checkpoints with adapters continue bit for bit. For `rlhf reward` (QLoRA: NF4 + double quant, dropout
# on), `rlhf sft` (LoRA with lora_dropout) and `rlhf ppo` (LoRA, value head): a checkpoint holds the
# adapter (peft layout), the AdamW moments of the trainable range only and the trainer state, no full
# model; --resume_from_checkpoint loads the base, applies the adapter, restores the moments and ends on
# an adapter byte-identical to the uninterrupted run's. A resume with another --lora_r exits 2.
set -u
RLHF=${1:?usage: lora_resume.sh path/to/rlhf}
W=$(mktemp -d -t rlhf-lora-resume.XXXXXX)
trap 'rm -rf "$W"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
only_adapter_moments() { # checkpoint dir: optimizer.safetensors names only adapters / trained heads
  /usr/bin/python3 - "$1/optimizer.safetensors" <<'PY'
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
keys = [k for k in json.loads(raw[8:8 + struct.unpack("<Q", raw[:8])[0]]) if k not in ("__metadata__", "step")]
assert keys and all(k.startswith(("exp_avg.base_model.model.", "exp_avg_sq.base_model.model.")) for k in keys), keys[:3]
assert all(".lora_" in k or ".classifier." in k for k in keys), [k for k in keys if ".lora_" not in k][:3]
PY
}
check_ckpt() { # name, checkpoint dir
  for f in adapter_config.json adapter_model.safetensors optimizer.safetensors; do
    [ -s "$2/$f" ] || fail "$1: $2 lacks $f"
  done
  [ -e "$2/model.safetensors" ] && fail "$1: the checkpoint holds a full model"
  only_adapter_moments "$2" || fail "$1: optimizer state beyond the trainable range"
}

# ---- reward: QLoRA on a tiny BERT, dropout on
cat >"$W/bert.json" <<'JSON'
{"architectures": ["BertForSequenceClassification"], "model_type": "bert", "vocab_size": 30522,
 "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
 "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 128,
 "type_vocab_size": 2, "initializer_range": 0.02, "pad_token_id": 0, "num_labels": 1}
JSON
"$RLHF" init --config "$W/bert.json" --tokenizer tests/fixtures/tokenizers/bert-base-uncased --output_dir "$W/bert" \
  --seed 3 >/dev/null 2>&1 || fail "init bert"
rw=(reward --model_name_or_path "$W/bert" --dataset_name data/learn-demo/eval.jsonl --max_steps 6 --save_strategy steps
  --save_steps 3 --logging_steps 3 --per_device_train_batch_size 8 --learning_rate 2e-3 --threads 2 --quiet --use_peft --lora_r 4
  --lora_alpha 8 --load_in_4bit --bnb_4bit_use_double_quant --disable_dropout false)
"$RLHF" "${rw[@]}" --output_dir "$W/rw_full" >/dev/null 2>"$W/rw_full.err" || fail "reward: $(tail -n 2 "$W/rw_full.err")"
check_ckpt reward "$W/rw_full/checkpoint-3"
"$RLHF" "${rw[@]}" --output_dir "$W/rw_res" --resume_from_checkpoint "$W/rw_full/checkpoint-3" >/dev/null \
  2>"$W/rw_res.err" || fail "reward resume: $(tail -n 2 "$W/rw_res.err")"
cmp -s "$W/rw_full/adapter_model.safetensors" "$W/rw_res/adapter_model.safetensors" ||
  fail "reward: the resumed adapter differs from the uninterrupted run's"
cmp -s "$W/rw_full/training_log.csv" "$W/rw_res/training_log.csv" >/dev/null ||
  fail "reward: the resumed training_log.csv differs"
c=0
"$RLHF" "${rw[@]}" --lora_r 8 --output_dir "$W/rw_bad" --resume_from_checkpoint "$W/rw_full/checkpoint-3" \
  >/dev/null 2>"$W/rw_bad.err" || c=$?
[ "$c" = 2 ] && grep -q -- "--lora_r" "$W/rw_bad.err" || fail "reward resume with another --lora_r: exit $c ($(cat "$W/rw_bad.err"))"

# ---- sft: LoRA with dropout on a tiny GPT-2
cat >"$W/gpt2.json" <<'JSON'
{"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": 50257, "n_embd": 32, "n_layer": 2,
 "n_head": 2, "n_positions": 64, "bos_token_id": 50256, "eos_token_id": 50256}
JSON
"$RLHF" init --config "$W/gpt2.json" --tokenizer tests/fixtures/tokenizers/gpt2 --output_dir "$W/gpt2" --seed 4 \
  >/dev/null 2>&1 || fail "init gpt2"
for i in $(seq 0 23); do echo "{\"prompt\": \"Q: $i plus $i?\", \"completion\": \" A: $((2 * i))\"}"; done >"$W/sft.jsonl"
sf=(sft --model_name_or_path "$W/gpt2" --dataset_name "$W/sft.jsonl" --num_train_epochs 3 --learning_rate 1e-2
  --per_device_train_batch_size 4 --threads 2 --use_peft --lora_r 8 --lora_alpha 16 --lora_dropout 0.1)
"$RLHF" "${sf[@]}" --output_dir "$W/sf_full" 2>"$W/sf_full.err" || fail "sft: $(tail -n 2 "$W/sf_full.err")"
check_ckpt sft "$W/sf_full/checkpoint-6"
"$RLHF" "${sf[@]}" --output_dir "$W/sf_res" --resume_from_checkpoint "$W/sf_full/checkpoint-6" \
  2>"$W/sf_res.err" || fail "sft resume: $(tail -n 2 "$W/sf_res.err")"
cmp -s "$W/sf_full/adapter_model.safetensors" "$W/sf_res/adapter_model.safetensors" ||
  fail "sft: the resumed adapter differs from the uninterrupted run's"

c=0
"$RLHF" sft --model_name_or_path "$W/gpt2" --dataset_name "$W/sft.jsonl" --output_dir "$W/sf_bad" \
  --resume_from_checkpoint "$W/sf_full/checkpoint-6" >/dev/null 2>"$W/sf_bad.err" || c=$?
[ "$c" = 2 ] && grep -q -- "--use_peft" "$W/sf_bad.err" || fail "sft resume of an adapter without --use_peft: exit $c ($(cat "$W/sf_bad.err"))"

# ---- ppo: LoRA policy, value head
. tests/cli/ppo_fixture.bash
pp=(ppo --model_name_or_path "$W/policy" --sft_model_path "$W/policy" --reward_model_path "$W/rm"
  --dataset_name "$W/prompts.jsonl" --learning_rate 1e-2 --per_device_train_batch_size 8 --num_mini_batches 2
  --response_length 8 --num_ppo_epochs 2 --threads 2 --quiet --seed 5 --value_model head --total_episodes 96
  --save_steps 2 --use_peft --lora_r 4 --lora_alpha 8)
"$RLHF" "${pp[@]}" --output_dir "$W/pp_full" 2>"$W/pp_full.err" || fail "ppo: $(tail -n 2 "$W/pp_full.err")"
check_ckpt ppo "$W/pp_full/checkpoint-2"
"$RLHF" "${pp[@]}" --output_dir "$W/pp_res" --resume_from_checkpoint "$W/pp_full/checkpoint-2" 2>"$W/pp_res.err" ||
  fail "ppo resume: $(tail -n 2 "$W/pp_res.err")"
cmp -s "$W/pp_full/adapter_model.safetensors" "$W/pp_res/adapter_model.safetensors" ||
  fail "ppo: the resumed adapter differs from the uninterrupted run's"
diff -q <(cut -d, -f1-17 "$W/pp_full/training_log.csv") <(cut -d, -f1-17 "$W/pp_res/training_log.csv") >/dev/null ||
  fail "ppo: the resumed training_log.csv differs (eps aside)"

[ "$fails" = 0 ] && echo "lora_resume: all passed" || { echo "lora_resume: $fails failed"; exit 1; }
