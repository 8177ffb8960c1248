#!/bin/bash
# No silent surprises: LoRA / 4-bit flags without --use_peft / --load_in_4bit are errors naming the flag
# (also from --config); ppo refuses a reward model whose score head is newly initialised (a causal LM given
# as --reward_model_path) unless --allow_new_reward_head; rows with messages rendered by the plain
# "role: content" fallback get a notice with their count; "N malformed rows" lists whole reasons only and
# "(and M more)" counts exactly the rows not listed; reward and sft share one table of trainer flags with the
# same defaults. Every error exits 2 before anything is written.
set -u
RLHF=${1:?usage: no_surprises.sh path/to/rlhf}
W=$(mktemp -d -t rlhf-no-surprises.XXXXXX)
trap 'rm -rf "$W"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
T=tests/fixtures/tokenizers/gpt2

cfg='"model_type": "gpt2", "vocab_size": 50257, "n_positions": 64, "n_embd": 16, "n_layer": 1, "n_head": 2,
 "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0, "bos_token_id": 50256, "eos_token_id": 50256'
echo "{\"architectures\": [\"GPT2LMHeadModel\"], $cfg}" >"$W/lm.json"
echo "{\"architectures\": [\"GPT2ForSequenceClassification\"], $cfg, \"num_labels\": 1, \"pad_token_id\": 50256}" >"$W/rm.json"
"$RLHF" init --config "$W/lm.json" --tokenizer $T --output_dir "$W/lm" --seed 1 >/dev/null 2>&1 || fail "init lm"
"$RLHF" init --config "$W/rm.json" --tokenizer $T --output_dir "$W/rm" --seed 2 >/dev/null 2>&1 || fail "init rm"
for i in 1 2 3 4; do echo "{\"prompt\": \"Q$i\", \"completion\": \" A$i\"}"; done >"$W/sft.jsonl"
for i in 1 2 3 4; do echo "{\"prompt\": \"Q$i\", \"chosen\": \" yes\", \"rejected\": \" no\"}"; done >"$W/pairs.jsonl"
echo '{"prompt": "Q1"}' >"$W/prompts.jsonl"

expect2() { # name, stderr regex, args...
  local name=$1 pat=$2 c=0; shift 2
  "$RLHF" "$@" >"$W/$name.out" 2>"$W/$name.err" || c=$?
  if [ "$c" != 2 ]; then fail "$name: exit $c, expected 2 ($(tail -n 1 "$W/$name.err"))"
  elif ! grep -qE -- "$pat" "$W/$name.err"; then fail "$name: stderr does not match /$pat/: $(cat "$W/$name.err")"
  elif [ -e "$W/out" ]; then fail "$name: wrote --output_dir"; fi
}

# LoRA / 4-bit flags that would be ignored
reward=(reward --model_name_or_path "$W/rm" --dataset_name "$W/pairs.jsonl" --output_dir "$W/out" --threads 2)
sft=(sft --model_name_or_path "$W/lm" --dataset_name "$W/sft.jsonl" --output_dir "$W/out" --threads 2)
ppo=(ppo --model_name_or_path "$W/lm" --sft_model_path "$W/lm" --reward_model_path "$W/rm"
  --dataset_name "$W/prompts.jsonl" --output_dir "$W/out" --threads 2 --total_episodes 2
  --per_device_train_batch_size 2 --response_length 2 --num_ppo_epochs 1 --save_steps 0 --quiet)
expect2 lora_r "--lora_r needs --use_peft \(without it the whole model is trained" "${reward[@]}" --lora_r 8
expect2 lora_alpha "--lora_alpha needs --use_peft" "${sft[@]}" --lora_alpha 8
expect2 lora_targets "--lora_target_modules needs --use_peft" "${ppo[@]}" --lora_target_modules c_attn
expect2 bnb "--bnb_4bit_compute_dtype needs --load_in_4bit" "${sft[@]}" --use_peft --bnb_4bit_compute_dtype bfloat16
expect2 4bit "--load_in_4bit: a 4-bit base is frozen, so training needs --use_peft" "${reward[@]}" --load_in_4bit
printf 'lora_dropout: 0.1\n' >"$W/lora.yaml"
expect2 yaml_lora "--lora_dropout needs --use_peft" "${sft[@]}" --config "$W/lora.yaml"
# ... a bool given as off is not a request
expect2 double_quant_off "--num_train_epochs must be > 0" "${sft[@]}" --bnb_4bit_use_double_quant false --num_train_epochs 0

# ppo: a causal LM as reward model has a random score head
expect2 new_head "--reward_model_path $W/lm: not a reward model: .*--allow_new_reward_head" \
  "${ppo[@]/#$W\/rm/$W/lm}"
"$RLHF" "${ppo[@]/#$W\/rm/$W/lm}" --allow_new_reward_head >/dev/null 2>"$W/allow.err" ||
  fail "--allow_new_reward_head: $(tail -n 2 "$W/allow.err")"
grep -q "newly initialized" "$W/allow.err" || fail "--allow_new_reward_head: no notice of the new head"
rm -rf "$W/out"

# the plain "role: content" fallback for rows with messages is announced with its count
for i in 1 2 3; do
  echo '{"prompt": [{"role": "user", "content": "hi"}], "chosen": [{"role": "assistant", "content": "hello"}], "rejected": [{"role": "assistant", "content": "go"}]}'
done >"$W/conv.jsonl"
echo '{"prompt": "plain", "chosen": " a", "rejected": " b"}' >>"$W/conv.jsonl"
"$RLHF" score --model_name_or_path "$W/rm" --dataset_name "$W/conv.jsonl" --threads 2 >/dev/null 2>"$W/score.err" ||
  fail "score on conversational rows: $(tail -n 1 "$W/score.err")"
grep -q "notice: 3 rows hold messages and $W/rm has no chat_template .*plain \"role: content\" lines" "$W/score.err" ||
  fail "no fallback notice: $(cat "$W/score.err")"
"$RLHF" score --model_name_or_path "$W/rm" --dataset_name "$W/pairs.jsonl" --threads 2 >/dev/null 2>"$W/score2.err"
grep -q "role: content" "$W/score2.err" && fail "fallback notice without messages: $(cat "$W/score2.err")"

# 30 malformed rows in a file with a long name: whole reasons, then an exact "(and M more)"
long="$W/a_rather_long_dataset_file_name_so_that_every_reason_takes_most_of_a_line_in_the_message.jsonl"
for i in $(seq 30); do echo '{"prompt": "x", "answer": "y"}'; done >"$long"
expect2 many_rows "^rlhf reward: 30 malformed rows in " "${reward[@]/#$W\/pairs.jsonl/$long}"
listed=$(grep -c "\.jsonl:[0-9]*: field 'chosen' missing (expected .*\"rejected_ids\")$" "$W/many_rows.err")
more=$(sed -n 's/^(and \([0-9]*\) more)$/\1/p' "$W/many_rows.err")
[ "${listed:-0}" -ge 1 ] && [ -n "$more" ] && [ $((listed + more)) = 30 ] ||
  fail "row errors: $listed whole reasons listed + '(and ${more:-?} more)' != 30: $(tail -n 3 "$W/many_rows.err")"
[ "$(grep -c "\.jsonl:[0-9]*:" "$W/many_rows.err")" = "$listed" ] || fail "a reason was cut: $(tail -n 2 "$W/many_rows.err")"

# reward and sft: one table of trainer flags, same defaults and help
shared="output_dir eval_dataset_name eval_split per_device_train_batch_size per_device_eval_batch_size num_train_epochs
  max_steps gradient_accumulation_steps lr_scheduler_type warmup_ratio warmup_steps weight_decay max_grad_norm seed
  no_shuffle disable_dropout gradient_checkpointing logging_steps eval_strategy eval_steps save_strategy save_steps
  resume_from_checkpoint overwrite_output_dir threads quiet"
"$RLHF" reward --help >"$W/reward.help"
"$RLHF" sft --help >"$W/sft.help"
for f in $shared; do
  a=$(grep -E "^  --$f( |$)" "$W/reward.help") b=$(grep -E "^  --$f( |$)" "$W/sft.help")
  [ -n "$a" ] && [ "$a" = "$b" ] || fail "--$f differs: reward '$a' vs sft '$b'"
done
grep -q -- "--disable_dropout .*(default: true)" "$W/sft.help" || fail "sft: --disable_dropout is not on by default"
grep -q -- "--learning_rate .*(default: 5e-5)" "$W/reward.help" && grep -q -- "--learning_rate .*(default: 2e-5)" \
  "$W/sft.help" || fail "the commands' own --learning_rate defaults (TRL RewardConfig 5e-5, SFTConfig 2e-5) are gone"
# --warmup_steps drives sft's schedule: as HF, the second step runs at lr * 1/warmup_steps
"$RLHF" "${sft[@]}" --warmup_steps 4 --max_steps 2 --learning_rate 1e-3 --logging_steps 1 --save_strategy no \
  --per_device_train_batch_size 2 --quiet >/dev/null 2>"$W/warm.err" || fail "sft --warmup_steps: $(tail -n 1 "$W/warm.err")"
lr1=$(awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "learning_rate") c = i } NR == 3 { print $c }' \
  "$W/out/training_log.csv" 2>/dev/null)
awk -v v="${lr1:-x}" 'BEGIN { exit !(v + 0 > 0 && (v - 2.5e-4) ^ 2 < 1e-14) }' ||
  fail "sft --warmup_steps 4: second learning_rate '${lr1:-?}', expected 0.00025"

[ $fails = 0 ] && echo "no_surprises: all passed"
exit $((fails > 0))
