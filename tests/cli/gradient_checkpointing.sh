#!/bin/bash
# --gradient_checkpointing (reward, sft, ppo, dpo): the same run with and without it writes byte-identical
# weights and the same training log (dropout on, 3 layers, so layers are really recomputed), for an
# encoder reward model, a decoder SFT, DPO and a PPO policy + value model.
set -u
RLHF=${1:?usage: gradient_checkpointing.sh path/to/rlhf}
W=$(mktemp -d -t rlhf-gc.XXXXXX)
trap 'rm -rf "$W"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

echo '{"architectures": ["BertForSequenceClassification"], "model_type": "bert", "vocab_size": 30522,
 "hidden_size": 16, "num_hidden_layers": 3, "num_attention_heads": 2, "intermediate_size": 32,
 "max_position_embeddings": 64, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "num_labels": 1}' \
  >"$W/bert.json"
echo '{"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": 50257, "n_positions": 64,
 "n_embd": 16, "n_layer": 3, "n_head": 2, "resid_pdrop": 0.1, "embd_pdrop": 0.1, "attn_pdrop": 0.1,
 "bos_token_id": 50256, "eos_token_id": 50256}' >"$W/gpt2.json"
sed 's/GPT2LMHeadModel/GPT2ForSequenceClassification/; s/"eos_token_id": 50256}/"eos_token_id": 50256, "num_labels": 1, "pad_token_id": 50256}/' \
  "$W/gpt2.json" >"$W/gpt2rm.json"
"$RLHF" init --config "$W/bert.json" --tokenizer tests/fixtures/tokenizers/bert-base-uncased --output_dir "$W/bert" \
  >/dev/null 2>&1 || fail "init bert"
"$RLHF" init --config "$W/gpt2.json" --tokenizer tests/fixtures/tokenizers/gpt2 --output_dir "$W/gpt2" >/dev/null 2>&1 ||
  fail "init gpt2"
"$RLHF" init --config "$W/gpt2rm.json" --tokenizer tests/fixtures/tokenizers/gpt2 --output_dir "$W/rm" >/dev/null 2>&1 ||
  fail "init rm"
for i in $(seq 8); do
  echo "{\"prompt\": \"question $i\", \"chosen\": \" a kind answer $i\", \"rejected\": \" go away $i\", \"completion\": \" answer $i\"}"
done >"$W/data.jsonl"

same() { # name, output dirs a b
  cmp -s "$2/model.safetensors" "$3/model.safetensors" || fail "$1: weights differ with --gradient_checkpointing"
  cmp -s <(cut -d, -f1-5 "$2/training_log.csv") <(cut -d, -f1-5 "$3/training_log.csv") ||
    fail "$1: training logs differ: $(diff <(cut -d, -f1-5 "$2/training_log.csv") <(cut -d, -f1-5 "$3/training_log.csv") | head -3)"
}
for gc in false true; do
  "$RLHF" reward --model_name_or_path "$W/bert" --dataset_name "$W/data.jsonl" --output_dir "$W/reward-$gc" \
    --disable_dropout false --num_train_epochs 2 --per_device_train_batch_size 4 --learning_rate 1e-3 \
    --logging_steps 1 --save_strategy no --threads 2 --quiet --gradient_checkpointing $gc 2>"$W/reward-$gc.err" ||
    fail "reward --gradient_checkpointing $gc: $(tail -n 1 "$W/reward-$gc.err")"
  "$RLHF" sft --model_name_or_path "$W/gpt2" --dataset_name "$W/data.jsonl" --output_dir "$W/sft-$gc" \
    --disable_dropout false --num_train_epochs 2 --per_device_train_batch_size 4 --learning_rate 1e-3 \
    --logging_steps 1 --save_strategy no --threads 2 --quiet --gradient_checkpointing $gc 2>"$W/sft-$gc.err" ||
    fail "sft --gradient_checkpointing $gc: $(tail -n 1 "$W/sft-$gc.err")"
  "$RLHF" ppo --model_name_or_path "$W/gpt2" --sft_model_path "$W/gpt2" --reward_model_path "$W/rm" \
    --dataset_name "$W/data.jsonl" --output_dir "$W/ppo-$gc" --total_episodes 8 --per_device_train_batch_size 4 \
    --response_length 4 --num_ppo_epochs 2 --save_steps 0 --threads 2 --quiet --learning_rate 1e-3 \
    --gradient_checkpointing $gc >/dev/null 2>"$W/ppo-$gc.err" ||
    fail "ppo --gradient_checkpointing $gc: $(tail -n 1 "$W/ppo-$gc.err")"
  "$RLHF" dpo --model_name_or_path "$W/gpt2" --dataset_name "$W/data.jsonl" --output_dir "$W/dpo-$gc" \
    --disable_dropout false --num_train_epochs 2 --per_device_train_batch_size 4 --learning_rate 1e-3 \
    --logging_steps 1 --save_strategy no --threads 2 --quiet --gradient_checkpointing $gc >/dev/null 2>"$W/dpo-$gc.err" ||
    fail "dpo --gradient_checkpointing $gc: $(tail -n 1 "$W/dpo-$gc.err")"
done
same reward "$W/reward-false" "$W/reward-true"
same dpo "$W/dpo-false" "$W/dpo-true"
same sft "$W/sft-false" "$W/sft-true"
same ppo "$W/ppo-false" "$W/ppo-true"
cmp -s "$W/ppo-false/value_model/model.safetensors" "$W/ppo-true/value_model/model.safetensors" 2>/dev/null ||
  [ ! -e "$W/ppo-false/value_model" ] || fail "ppo: value model differs with --gradient_checkpointing"
# the weights really moved (the comparison is not between two untouched models)
cmp -s "$W/gpt2/model.safetensors" "$W/sft-true/model.safetensors" && fail "sft did not train"

[ $fails = 0 ] && echo "gradient_checkpointing: all passed"
exit $((fails > 0))
