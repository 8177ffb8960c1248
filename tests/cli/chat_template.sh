#!/bin/bash
# Conversational rows through the model's chat template: a decoder reward model whose tokenizer_config.json
# carries a chat_template reads {"prompt": [messages], "chosen": [messages], ...} as the template renders
# prompt + response (as TRL's RewardTrainer applies apply_chat_template), so its scores equal those of the
# same text given as plain rows; without the template the plain "role: content" rendering gives other
# scores; a template's raise_exception is exit 2 naming FILE:LINE; a broken template names its line.
set -u
RLHF=${1:?usage: chat_template.sh path/to/rlhf}
W=$(mktemp -d -t rlhf-chat-template.XXXXXX)
trap 'rm -rf "$W"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
cat >"$W/gpt2.json" <<'JSON'
{"architectures": ["GPT2ForSequenceClassification"], "model_type": "gpt2", "vocab_size": 50257, "n_embd": 32,
 "n_layer": 1, "n_head": 2, "n_positions": 128, "n_inner": 64, "resid_pdrop": 0.0, "embd_pdrop": 0.0,
 "attn_pdrop": 0.0, "initializer_range": 0.02, "bos_token_id": 50256, "eos_token_id": 50256, "num_labels": 1}
JSON
"$RLHF" init --config "$W/gpt2.json" --tokenizer tests/fixtures/tokenizers/gpt2 --output_dir "$W/m" --seed 5 \
  >/dev/null 2>"$W/init.err" || { cat "$W/init.err"; echo "FAIL: init"; exit 1; }
cp "$W/m/tokenizer_config.json" "$W/plain_config.json"
/usr/bin/python3 - "$W/m/tokenizer_config.json" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["chat_template"] = ("{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('no system role') }}{% endif %}"
                      "<|{{ m.role }}|>{{ m.content | trim }}\n{% endfor %}{{ eos_token }}")
json.dump(c, open(p, "w"))
PY
cat >"$W/conv.jsonl" <<'EOF2'
{"prompt": [{"role": "user", "content": "Hi"}], "chosen": [{"role": "assistant", "content": " Hello! "}], "rejected": [{"role": "assistant", "content": "Go away."}]}
{"chosen": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}], "rejected": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "5"}]}
{"conversations": [{"from": "human", "value": "Name a colour"}], "chosen": {"from": "gpt", "value": "Blue"}, "rejected": {"from": "gpt", "value": "Seven"}}
EOF2
# The same conversations as the template renders them (plain rows get EOS appended = the template's last token).
cat >"$W/text.jsonl" <<'EOF2'
{"chosen": "<|user|>Hi\n<|assistant|>Hello!\n", "rejected": "<|user|>Hi\n<|assistant|>Go away.\n"}
{"chosen": "<|user|>2+2?\n<|assistant|>4\n", "rejected": "<|user|>2+2?\n<|assistant|>5\n"}
{"chosen": "<|user|>Name a colour\n<|assistant|>Blue\n", "rejected": "<|user|>Name a colour\n<|assistant|>Seven\n"}
EOF2
score() { # model dataset out
  "$RLHF" score --model_name_or_path "$1" --dataset_name "$2" --output_file "$3" --threads 1 >/dev/null 2>"$3.err" ||
    fail "score $2: exit $? ($(tail -n 1 "$3.err"))"
}
score "$W/m" "$W/conv.jsonl" "$W/conv.out"
score "$W/m" "$W/text.jsonl" "$W/text.out"
cmp -s "$W/conv.out" "$W/text.out" || fail "template scores differ from the rendered text's: $(paste -d' ' "$W/conv.out" "$W/text.out")"
mkdir -p "$W/plain" && cp "$W/m"/* "$W/plain/" && cp "$W/plain_config.json" "$W/plain/tokenizer_config.json"
score "$W/plain" "$W/conv.jsonl" "$W/plain.out"
cmp -s "$W/conv.out" "$W/plain.out" && fail "without a chat template the scores should differ (plain role template)"
# raise_exception in the template: exit 2, the row's FILE:LINE and the template's message.
echo '{"prompt": [{"role": "system", "content": "x"}, {"role": "user", "content": "Hi"}], "chosen": [{"role": "assistant", "content": "a"}], "rejected": [{"role": "assistant", "content": "b"}]}' >"$W/sys.jsonl"
"$RLHF" score --model_name_or_path "$W/m" --dataset_name "$W/sys.jsonl" >/dev/null 2>"$W/sys.err"
c=$?
[ "$c" = 2 ] && grep -q 'sys\.jsonl:1:.*no system role' "$W/sys.err" || fail "raise_exception: exit $c ($(cat "$W/sys.err"))"
# A template outside the supported subset is refused with its line, before anything is written.
/usr/bin/python3 - "$W/m/tokenizer_config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["chat_template"] = "{% for m in messages %}\n{% macro x() %}{% endmacro %}{% endfor %}"
json.dump(c, open(sys.argv[1], "w"))
PY
"$RLHF" reward --model_name_or_path "$W/m" --dataset_name "$W/conv.jsonl" --output_dir "$W/out" --threads 1 \
  >/dev/null 2>"$W/bad.err"
c=$?
[ "$c" = 2 ] && grep -q 'tokenizer_config.json: chat_template line 2' "$W/bad.err" && [ ! -e "$W/out" ] ||
  fail "unsupported template: exit $c ($(cat "$W/bad.err"))"
# Causal LMs: sft on {"messages"} and conversational prompt/completion rows, generate and ppo on
# conversational prompts (rendered with the generation prompt).
sed 's/GPT2ForSequenceClassification/GPT2LMHeadModel/' "$W/gpt2.json" >"$W/lm.json"
"$RLHF" init --config "$W/lm.json" --tokenizer tests/fixtures/tokenizers/gpt2 --output_dir "$W/lm" --seed 5 \
  >/dev/null 2>"$W/init.err" || { cat "$W/init.err"; echo "FAIL: init lm"; exit 1; }
cp "$W/lm/tokenizer_config.json" "$W/lm_plain_config.json"
/usr/bin/python3 - "$W/lm/tokenizer_config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["chat_template"] = ("{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}"
                      "{% if add_generation_prompt %}<|assistant|>{% endif %}")
json.dump(c, open(sys.argv[1], "w"))
PY
for i in 1 2 3 4 5 6 7 8; do
  echo '{"messages": [{"role": "user", "content": "Say hi"}, {"role": "assistant", "content": "hi hi hi"}]}'
  echo '{"prompt": [{"role": "user", "content": "Count"}], "completion": [{"role": "assistant", "content": "one two"}]}'
done >"$W/sft.jsonl"
"$RLHF" sft --model_name_or_path "$W/lm" --dataset_name "$W/sft.jsonl" --output_dir "$W/sft" --num_train_epochs 3 \
  --learning_rate 3e-3 --per_device_train_batch_size 4 --save_strategy no --logging_steps 1 --threads 1 \
  >/dev/null 2>"$W/sft.err" || fail "sft on conversational rows: $(tail -n 2 "$W/sft.err")"
/usr/bin/python3 - "$W/sft/training_log.csv" <<'PY' || fail "sft on conversational rows did not lower its loss"
import csv, sys
loss = [float(r["loss"]) for r in csv.DictReader(open(sys.argv[1])) if r.get("loss")]
assert len(loss) >= 4 and loss[-1] < loss[0], loss
PY
echo '{"prompt": [{"role": "user", "content": "Say hi"}]}' >"$W/chat_prompts.jsonl"
"$RLHF" generate --model_name_or_path "$W/sft" --dataset_name "$W/chat_prompts.jsonl" --max_new_tokens 4 \
  --output_file "$W/gen.jsonl" --threads 1 >/dev/null 2>"$W/gen.err" || fail "generate: $(tail -n 1 "$W/gen.err")"
/usr/bin/python3 - "$W/gen.jsonl" <<'PY' || fail "generate: the prompt was not rendered with the generation prompt"
import json, sys
row = json.loads(open(sys.argv[1]).readline())
assert row["prompt"] == "<|user|>Say hi\n<|assistant|>", row
PY
"$RLHF" ppo --model_name_or_path "$W/sft" --sft_model_path "$W/sft" --reward_model_path "$W/m" \
  --dataset_name "$W/chat_prompts.jsonl" --per_device_train_batch_size 2 --total_episodes 2 --response_length 4 \
  --num_ppo_epochs 1 --save_steps 0 --threads 1 --quiet --output_dir "$W/ppo" >/dev/null 2>"$W/ppo.err" ||
  fail "ppo on conversational prompts: $(tail -n 2 "$W/ppo.err")"
# Without a template, conversational rows of causal-LM commands are refused naming the row and the field.
cp "$W/lm_plain_config.json" "$W/lm/tokenizer_config.json"
"$RLHF" sft --model_name_or_path "$W/lm" --dataset_name "$W/sft.jsonl" --output_dir "$W/sft2" --threads 1 \
  >/dev/null 2>"$W/sft2.err"
c=$?
[ "$c" = 2 ] && grep -q 'sft\.jsonl:1: field .messages. is a list of messages, but .* has no "chat_template"' "$W/sft2.err" &&
  [ ! -e "$W/sft2" ] || fail "sft without a template: exit $c ($(cat "$W/sft2.err"))"
"$RLHF" generate --model_name_or_path "$W/lm" --dataset_name "$W/chat_prompts.jsonl" >/dev/null 2>"$W/gen2.err"
c=$?
[ "$c" = 2 ] && grep -q 'chat_prompts\.jsonl:1: field .prompt.' "$W/gen2.err" || fail "generate without a template: exit $c"
[ "$fails" = 0 ] && echo "chat_template: all passed" || { echo "chat_template: $fails failed"; exit 1; }
