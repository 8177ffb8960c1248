#!/bin/bash
# `rlhf generate`: pre-tokenized prompts through the causal-LM fixtures (batch == one at a time, the
# exact number of new tokens, EOS stops), text prompts through a freshly initialised GPT-2 with the
# real GPT-2 tokenizer, and bad input (exit 2 naming FILE:LINE / the flag, nothing written).
set -u
RLHF=${1:-build/rlhf}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
FIX=tests/fixtures/hf
fail=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fail=1; }

cat >"$W/rows.jsonl" <<'EOF'
{"prompt_ids": [25, 97, 10, 84, 103, 49, 64, 9]}
{"prompt_ids": [98, 9, 45, 5, 95]}
{"prompt_ids": [98, 24, 54]}
{"prompt_ids": [28, 34, 66, 56, 15, 105]}
EOF

for fx in gpt2_lm gptneox_lm llama_lm mistral_lm qwen2_lm gemma_lm gemma2_lm phi3_lm; do
  for bs in 1 3; do
    "$RLHF" generate --model_name_or_path $FIX/$fx --dataset_name "$W/rows.jsonl" --max_new_tokens 5 \
      --stop_token none --batch_size $bs --output_file "$W/$fx.$bs.jsonl" --threads 1 2>"$W/err" ||
      bad "$fx bs=$bs exit $?: $(cat "$W/err")"
  done
  if cmp -s "$W/$fx.1.jsonl" "$W/$fx.3.jsonl"; then ok "$fx: batch 3 == one at a time"; else bad "$fx: batch differs"; fi
  n=$(python3 -c "import json,sys; r=[json.loads(l) for l in open(sys.argv[1])]; print(sum(len(x['completion_ids'])==5 for x in r))" "$W/$fx.1.jsonl")
  [ "$n" = 4 ] && ok "$fx: 4 rows of 5 new tokens" || bad "$fx: rows with 5 tokens: $n"
  # sampling with the same seed is reproducible across batch sizes too
  for bs in 1 4; do
    "$RLHF" generate --model_name_or_path $FIX/$fx --dataset_name "$W/rows.jsonl" --max_new_tokens 6 --do_sample \
      --temperature 0.9 --top_k 50 --top_p 0.9 --seed 3 --num_return_sequences 2 --stop_token none \
      --batch_size $bs --output_file "$W/$fx.s$bs.jsonl" --threads 1 2>"$W/err" || bad "$fx sample exit $?: $(cat "$W/err")"
  done
  cmp -s "$W/$fx.s1.jsonl" "$W/$fx.s4.jsonl" && ok "$fx: sampled batch == one at a time" || bad "$fx: sampled batch differs"
  [ "$(wc -l <"$W/$fx.s1.jsonl")" = 8 ] && ok "$fx: 2 sequences per prompt" || bad "$fx: num_return_sequences"
done

# stop on a given token id: the first greedy token of row 1 ends row 1 after one token
first=$(python3 -c "import json; print(json.loads(open('$W/gpt2_lm.1.jsonl').readline())['completion_ids'][0])")
"$RLHF" generate --model_name_or_path $FIX/gpt2_lm --dataset_name "$W/rows.jsonl" --max_new_tokens 5 \
  --stop_token "$first" --output_file "$W/stop.jsonl" --threads 1 2>/dev/null || bad "stop token run"
python3 -c "import json; r=json.loads(open('$W/stop.jsonl').readline()); assert r['completion_ids']==[$first], r" &&
  ok "stop token ends the row (stop token kept)" || bad "stop token"

# bad input: exit 2, FILE:LINE, no output file
printf '{"prompt_ids": [1, 2]}\n{"text": "x"}\n' >"$W/bad.jsonl"
"$RLHF" generate --model_name_or_path $FIX/gpt2_lm --dataset_name "$W/bad.jsonl" --output_file "$W/bad.out" 2>"$W/err"
c=$?
[ $c = 2 ] && grep -q "bad.jsonl:2" "$W/err" && [ ! -e "$W/bad.out" ] && ok "missing prompt: exit 2 naming FILE:LINE" ||
  bad "missing prompt: exit $c: $(cat "$W/err")"
printf '{"prompt_ids": [1, 999]}\n' >"$W/oov.jsonl"
"$RLHF" generate --model_name_or_path $FIX/gpt2_lm --dataset_name "$W/oov.jsonl" 2>"$W/err"
[ $? = 2 ] && ok "out-of-vocabulary id: exit 2" || bad "oov: $(cat "$W/err")"
"$RLHF" generate --model_name_or_path $FIX/gpt2_lm --prompt "hello" 2>"$W/err"
[ $? = 2 ] && ok "text prompt without tokenizer: exit 2" || bad "no tokenizer: $(cat "$W/err")"
"$RLHF" generate --model_name_or_path $FIX/gpt2_lm --dataset_name "$W/rows.jsonl" --top_p 0 2>"$W/err"
[ $? = 2 ] && grep -q -- "--top_p" "$W/err" && ok "bad --top_p: exit 2" || bad "top_p: $(cat "$W/err")"

# text prompts: a tiny GPT-2 with the real GPT-2 tokenizer
cat >"$W/cfg.json" <<'EOF'
{"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": 50257, "n_embd": 16, "n_layer": 1,
 "n_head": 2, "n_positions": 64, "bos_token_id": 50256, "eos_token_id": 50256}
EOF
if "$RLHF" init --config "$W/cfg.json" --tokenizer tests/fixtures/tokenizers/gpt2 --output_dir "$W/tiny" 2>"$W/err"; then
  out=$("$RLHF" generate --model_name_or_path "$W/tiny" --prompt "Hello there" --max_new_tokens 4 --stop_token none 2>"$W/err")
  [ $? = 0 ] && ok "text --prompt prints a completion ($out)" || bad "text prompt: $(cat "$W/err")"
  printf '{"prompt": "Hello there"}\n{"prompt": "The cat"}\n' >"$W/text.jsonl"
  "$RLHF" generate --model_name_or_path "$W/tiny" --dataset_name "$W/text.jsonl" --max_new_tokens 4 \
    --stop_token none --output_file "$W/text.out" 2>"$W/err" || bad "text rows: $(cat "$W/err")"
  python3 -c "
import json; r=[json.loads(l) for l in open('$W/text.out')]
assert [x['prompt'] for x in r]==['Hello there','The cat'], r
assert all(isinstance(x['completion'],str) and len(x['completion_ids'])==4 for x in r), r" &&
    ok "text rows: prompt, completion, completion_ids" || bad "text rows output"
else
  bad "init tiny gpt2: $(cat "$W/err")"
fi
exit $fail
