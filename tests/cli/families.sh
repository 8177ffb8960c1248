#!/bin/bash
# Qwen2, Gemma, Gemma 2 and Phi-3 through every command: `rlhf init` writes HF's tensor names for the causal
# LM and the reward model (Qwen2's q/k/v biases, Gemma 2's sandwich norms, Phi-3's fused qkv_proj /
# gate_up_proj), sft with LoRA on peft's module names (Phi-3: qkv_proj,gate_up_proj) lowers its loss on the
# model's chat template (Qwen ChatML with its default system prompt, Gemma's turns), generate renders
# conversational prompts with the generation prompt, reward trains with QLoRA, and ppo runs a LoRA update
# with the QLoRA reward model (its adapter directory).
set -u
RLHF=${1:?usage: families.sh path/to/rlhf}
W=$(mktemp -d -t rlhf-families.XXXXXX)
trap 'rm -rf "$W"' EXIT
TOK=tests/fixtures/tokenizers/gpt2
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
COMMON='"vocab_size": 50257, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
 "num_attention_heads": 4, "num_key_value_heads": 2, "initializer_range": 0.02, "bos_token_id": 50256,
 "eos_token_id": 50256, "pad_token_id": 50256'
config() { # family class extra
  echo "{\"architectures\": [\"$2\"], \"model_type\": \"$1\", $COMMON $3}"
}
QWEN_TEMPLATE="{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
GEMMA_TEMPLATE="{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}"
for i in 1 2 3 4; do
  echo '{"messages": [{"role": "user", "content": "Say hi"}, {"role": "assistant", "content": "hi hi hi"}]}'
done >"$W/sft.jsonl"
echo '{"prompt": [{"role": "user", "content": "Say hi"}]}' >"$W/chat_prompts.jsonl"
head -n 8 data/demo/prompts.jsonl >"$W/prompts.jsonl"

# family LM-class seqcls-class extra-config tensor-that-must-exist lora-targets template generation-prompt
check() {
  local fam=$1 lm=$2 cls=$3 extra=$4 tensor=$5 targets=$6 template=$7 genprompt=$8 d=$W/$1
  config "$fam" "$lm" "$extra" >"$W/$fam.lm.json"
  config "$fam" "$cls" "$extra, \"num_labels\": 1" >"$W/$fam.rm.json"
  for k in lm rm; do
    "$RLHF" init --config "$W/$fam.$k.json" --tokenizer $TOK --output_dir "$d.$k" --seed 3 >/dev/null 2>"$d.err" ||
      { fail "$fam init $k: $(tail -n 1 "$d.err")"; return; }
    n=$(head -c 8 "$d.$k/model.safetensors" | od -An -tu8 | tr -d " ")
    head -c $((8 + n)) "$d.$k/model.safetensors" | tail -c "$n" | grep -q "\"$tensor\"" ||
      fail "$fam init $k: model.safetensors lacks $tensor"
  done
  /usr/bin/python3 - "$d.lm/tokenizer_config.json" "$template" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["chat_template"] = sys.argv[2]
json.dump(c, open(sys.argv[1], "w"))
PY
  "$RLHF" sft --model_name_or_path "$d.lm" --dataset_name "$W/sft.jsonl" --output_dir "$d.sft" --num_train_epochs 4 \
    --learning_rate 1e-2 --per_device_train_batch_size 2 --save_strategy no --logging_steps 1 --threads 1 \
    --use_peft --lora_target_modules "$targets" >/dev/null 2>"$d.sft.err" ||
    { fail "$fam sft: $(tail -n 2 "$d.sft.err")"; return; }
  /usr/bin/python3 - "$d.sft/training_log.csv" "$d.sft/adapter_model.safetensors" "${targets%%,*}" <<'PY' ||
import csv, json, struct, sys
loss = [float(r["loss"]) for r in csv.DictReader(open(sys.argv[1])) if r.get("loss")]
assert len(loss) >= 4 and loss[-1] < loss[0], loss
with open(sys.argv[2], "rb") as f:
    names = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
want = "self_attn.o_proj" if sys.argv[3] == "all-linear" else sys.argv[3]
assert any(want + ".lora_A.weight" in k for k in names), sorted(names)[:4]
PY
    fail "$fam sft: loss did not fall or the adapter lacks ${targets%%,*}"
  "$RLHF" generate --model_name_or_path "$d.sft" --dataset_name "$W/chat_prompts.jsonl" --max_new_tokens 4 \
    --output_file "$d.gen.jsonl" --threads 1 >/dev/null 2>"$d.gen.err" || fail "$fam generate: $(tail -n 1 "$d.gen.err")"
  /usr/bin/python3 - "$d.gen.jsonl" "$genprompt" <<'PY' || fail "$fam generate: prompt not rendered by the template"
import json, sys
row = json.loads(open(sys.argv[1]).readline())
assert row["prompt"] == sys.argv[2].encode().decode("unicode_escape"), row["prompt"]
PY
  "$RLHF" reward --model_name_or_path "$d.rm" --dataset_name data/learn-demo/train.jsonl --output_dir "$d.rmout" \
    --max_steps 2 --per_device_train_batch_size 4 --max_length 64 --save_strategy no --threads 1 --use_peft \
    --load_in_4bit >/dev/null 2>"$d.rw.err" || { fail "$fam reward (QLoRA): $(tail -n 2 "$d.rw.err")"; return; }
  "$RLHF" ppo --model_name_or_path "$d.lm" --sft_model_path "$d.lm" --reward_model_path "$d.rmout" \
    --dataset_name "$W/prompts.jsonl" --output_dir "$d.ppo" --total_episodes 4 --per_device_train_batch_size 4 \
    --response_length 6 --num_ppo_epochs 1 --save_steps 0 --num_sample_generations 0 --threads 1 --use_peft \
    --quiet >/dev/null 2>"$d.ppo.err" || { fail "$fam ppo: $(tail -n 2 "$d.ppo.err")"; return; }
  [ -s "$d.ppo/training_log.csv" ] || fail "$fam ppo: no training_log.csv"
  echo "ok   $fam: init (lm, reward), sft LoRA on $targets, generate, reward QLoRA, ppo"
}
QWEN_GEN='<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nSay hi<|im_end|>\n<|im_start|>assistant\n'
GEMMA_GEN='<|endoftext|><start_of_turn>user\nSay hi<end_of_turn>\n<start_of_turn>model\n'
check qwen2 Qwen2ForCausalLM Qwen2ForSequenceClassification ', "tie_word_embeddings": true' \
  model.layers.1.self_attn.k_proj.bias q_proj,v_proj "$QWEN_TEMPLATE" "$QWEN_GEN"
check gemma GemmaForCausalLM GemmaForSequenceClassification ', "head_dim": 16' \
  model.layers.0.mlp.gate_proj.weight all-linear "$GEMMA_TEMPLATE" "$GEMMA_GEN"
check gemma2 Gemma2ForCausalLM Gemma2ForSequenceClassification \
  ', "head_dim": 16, "sliding_window": 4, "attn_logit_softcapping": 5.0, "final_logit_softcapping": 8.0, "query_pre_attn_scalar": 16' \
  model.layers.1.post_feedforward_layernorm.weight gate_proj,up_proj,down_proj "$GEMMA_TEMPLATE" "$GEMMA_GEN"
check phi3 Phi3ForCausalLM Phi3ForSequenceClassification ', "sliding_window": null' \
  model.layers.0.self_attn.qkv_proj.weight qkv_proj,gate_up_proj "$QWEN_TEMPLATE" "$QWEN_GEN"
[ "$fails" = 0 ] && echo "families: all passed" || { echo "families: $fails failed"; exit 1; }
