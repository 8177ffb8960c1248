#!/bin/bash
# Steps chain (issue 14): `score` reads `generate`'s output rows (completion as the response); `reward`
# records its max_length in config.json and `score` defaults to it; an over-long prompt in `generate`/`ppo`
# keeps its last tokens (--max_prompt_length, or to fit the positions) with a count on stderr instead of
# stopping the run; `sft` reads Alpaca and question/answer rows and custom field names, each training
# byte-identically to the same examples written as prompt/completion rows, and its --help lists every layout.
set -u
RLHF=${1:?usage: steps_chain.sh path/to/rlhf}
W=$(mktemp -d -t rlhf-chain.XXXXXX)
trap 'rm -rf "$W"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
T=tests/fixtures/tokenizers/gpt2
cfg='"model_type": "gpt2", "vocab_size": 50257, "n_embd": 16, "n_layer": 1, "n_head": 2, "n_positions": 64,
 "bos_token_id": 50256, "eos_token_id": 50256'
echo "{\"architectures\": [\"GPT2LMHeadModel\"], $cfg}" >"$W/lm.json"
echo "{\"architectures\": [\"GPT2ForSequenceClassification\"], $cfg, \"num_labels\": 1, \"pad_token_id\": 50256}" >"$W/rm.json"
"$RLHF" init --config "$W/lm.json" --tokenizer $T --output_dir "$W/lm" --seed 1 >/dev/null 2>&1 || fail "init lm"
"$RLHF" init --config "$W/rm.json" --tokenizer $T --output_dir "$W/xrm0" --seed 2 >/dev/null 2>&1 || fail "init rm"

# ---- reward records max_length; score defaults to it
for i in $(seq 1 8); do echo "{\"prompt\": \"Q$i\", \"chosen\": \" good answer $i\", \"rejected\": \" bad $i\"}"; done >"$W/pairs.jsonl"
"$RLHF" reward --model_name_or_path "$W/xrm0" --dataset_name "$W/pairs.jsonl" --output_dir "$W/xrm" --max_length 12 \
  --per_device_train_batch_size 4 --save_strategy no --threads 1 --quiet >/dev/null 2>"$W/xrm.err" ||
  fail "reward: $(tail -n 1 "$W/xrm.err")"
grep -q '"rlhf_max_length": 12' "$W/xrm/config.json" || fail "config.json does not record max_length 12"
long=$(for i in $(seq 1 30); do printf 'word%d ' "$i"; done)
"$RLHF" score --model_name_or_path "$W/xrm" --prompt "Q" --response "$long" >/dev/null 2>"$W/s1.err" || fail "score"
echo "{\"prompt\": \"Q\", \"response\": \"$long\"}" >"$W/long.jsonl"
"$RLHF" score --model_name_or_path "$W/xrm" --dataset_name "$W/long.jsonl" >/dev/null 2>"$W/s2.err" || fail "score file"
grep -q "1 rows truncated to 12 tokens" "$W/s2.err" || fail "score did not default to the trained max_length: $(cat "$W/s2.err")"
"$RLHF" score --model_name_or_path "$W/xrm" --dataset_name "$W/long.jsonl" --max_length 40 >/dev/null 2>"$W/s3.err"
grep -q "truncated to 40 tokens" "$W/s3.err" || fail "--max_length 40 did not win: $(cat "$W/s3.err")"

# ---- generate -> score
printf '{"prompt": "Hello there"}\n{"prompt": "The number 7"}\n' >"$W/prompts.jsonl"
"$RLHF" generate --model_name_or_path "$W/lm" --dataset_name "$W/prompts.jsonl" --max_new_tokens 5 \
  --output_file "$W/gen.jsonl" --threads 1 2>"$W/gen.err" || fail "generate: $(tail -n 1 "$W/gen.err")"
"$RLHF" score --model_name_or_path "$W/xrm" --dataset_name "$W/gen.jsonl" --output_file "$W/scores.jsonl" \
  >"$W/score.out" 2>"$W/score.err" || fail "score of generate's rows: $(tail -n 1 "$W/score.err")"
[ "$(grep -c '"score"' "$W/scores.jsonl")" = 2 ] || fail "score rows: $(cat "$W/scores.jsonl")"
tail -n 1 "$W/score.out" | grep -q '"n": 2' || fail "score summary: $(tail -n 1 "$W/score.out")"
# the same as scoring prompt + completion given as response
python3 - "$W/gen.jsonl" "$W/as_resp.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
with open(sys.argv[2], "w") as f:
    for r in rows: f.write(json.dumps({"prompt": r["prompt"], "response": r["completion"]}) + "\n")
PY
"$RLHF" score --model_name_or_path "$W/xrm" --dataset_name "$W/as_resp.jsonl" --output_file "$W/scores2.jsonl" \
  >/dev/null 2>&1 || fail "score as response"
cmp -s "$W/scores.jsonl" "$W/scores2.jsonl" || fail "completion rows scored differently from response rows"

# ---- generate: over-long prompts keep their last tokens
ids=$(seq -s, 100 179)   # 80 tokens: over 64 positions
tail8=$(seq -s, 172 179)
printf '{"prompt_ids": [%s]}\n{"prompt_ids": [%s]}\n{"prompt_ids": [1, 2, 3]}\n' "$ids" "$tail8" >"$W/long_p.jsonl"
"$RLHF" generate --model_name_or_path "$W/lm" --dataset_name "$W/long_p.jsonl" --max_new_tokens 4 \
  --output_file "$W/g1.jsonl" --threads 1 2>"$W/g1.err" || fail "generate over-long prompt: $(tail -n 1 "$W/g1.err")"
grep -q "1 of 3 prompts truncated from the left to 60 tokens (the model's positions less --max_new_tokens)" "$W/g1.err" ||
  fail "generate truncation count: $(cat "$W/g1.err")"
"$RLHF" generate --model_name_or_path "$W/lm" --dataset_name "$W/long_p.jsonl" --max_new_tokens 4 --max_prompt_length 8 \
  --output_file "$W/g2.jsonl" --threads 1 2>"$W/g2.err" || fail "generate --max_prompt_length"
grep -q "1 of 3 prompts truncated from the left to 8 tokens (--max_prompt_length)" "$W/g2.err" ||
  fail "--max_prompt_length count: $(cat "$W/g2.err")"
python3 - "$W/g2.jsonl" <<'PY' || fail "a truncated prompt does not generate as its last 8 tokens"
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])]
assert r[0]["completion_ids"] == r[1]["completion_ids"], r
PY

# ---- ppo: over-long prompts truncated, counted, the run goes on
cat >"$W/awk" <<'EOF'
BEGIN { srand(3); for (r = 0; r < 16; r++) { s = 2 + int(rand() * 14); n = (r == 0 ? 40 : 4);
  for (i = 1; i < n; i++) s = s "," (2 + int(rand() * 14)); printf "{\"prompt_ids\": [%s]}\n", s } }
EOF
. tests/cli/ppo_fixture.bash
awk -f "$W/awk" >"$W/pp.jsonl"
pp=(ppo --model_name_or_path "$W/policy" --sft_model_path "$W/policy" --reward_model_path "$W/rm"
  --dataset_name "$W/pp.jsonl" --per_device_train_batch_size 8 --response_length 4 --num_ppo_epochs 1 --total_episodes 16
  --threads 2 --quiet --save_steps 0)
"$RLHF" "${pp[@]}" --output_dir "$W/ppo1" 2>"$W/ppo1.err" || fail "ppo with a 40-token prompt: $(tail -n 1 "$W/ppo1.err")"
grep -q "1 of 16 prompts truncated from the left to 28 tokens" "$W/ppo1.err" || fail "ppo count: $(cat "$W/ppo1.err")"
"$RLHF" "${pp[@]}" --max_prompt_length 3 --output_dir "$W/ppo2" 2>"$W/ppo2.err" || fail "ppo --max_prompt_length"
grep -q "16 of 16 prompts truncated from the left to 3 tokens (--max_prompt_length)" "$W/ppo2.err" ||
  fail "ppo --max_prompt_length count: $(cat "$W/ppo2.err")"

# ---- sft layouts: each trains exactly as the same examples written as prompt/completion rows
python3 - "$W" <<'PY'
import json, sys
W = sys.argv[1]
head_in = ("Below is an instruction that describes a task, paired with an input that provides further context. "
           "Write a response that appropriately completes the request.\n\n### Instruction:\n")
head = ("Below is an instruction that describes a task. Write a response that appropriately completes the "
        "request.\n\n### Instruction:\n")
alp, alp_pc, qa, qa_pc, custom, txt, txt_pc = [], [], [], [], [], [], []
for i in range(8):
    ins, inp, out = "Add %d and %d." % (i, i), ("numbers" if i % 2 else ""), " %d" % (2 * i)
    alp.append({"instruction": ins, "input": inp, "output": out})
    p = (head_in + ins + "\n\n### Input:\n" + inp + "\n\n### Response:\n") if inp else (head + ins + "\n\n### Response:\n")
    alp_pc.append({"prompt": p, "completion": out})
    qa.append({"question": "What is %d+%d?" % (i, i), "answer": " %d" % (2 * i)})
    qa_pc.append({"prompt": "What is %d+%d?" % (i, i), "completion": " %d" % (2 * i)})
    custom.append({"q": "What is %d+%d?" % (i, i), "a": " %d" % (2 * i)})
    txt.append({"body": "The number %d is nice." % i})
    txt_pc.append({"text": "The number %d is nice." % i})
for name, rows in [("alp", alp), ("alp_pc", alp_pc), ("qa", qa), ("qa_pc", qa_pc), ("custom", custom),
                   ("txt", txt), ("txt_pc", txt_pc)]:
    with open("%s/%s.jsonl" % (W, name), "w") as f:
        for r in rows: f.write(json.dumps(r) + "\n")
PY
sft() { local out=$1; shift; "$RLHF" sft --model_name_or_path "$W/lm" --output_dir "$W/$out" --max_steps 2 \
  --per_device_train_batch_size 4 --learning_rate 1e-2 --save_strategy no --threads 1 --quiet "$@" >/dev/null 2>"$W/$out.err" ||
  fail "sft $out: $(tail -n 1 "$W/$out.err")"; }
sft alp --dataset_name "$W/alp.jsonl"; sft alp_pc --dataset_name "$W/alp_pc.jsonl"
sft qa --dataset_name "$W/qa.jsonl"; sft qa_pc --dataset_name "$W/qa_pc.jsonl"
sft custom --dataset_name "$W/custom.jsonl" --prompt_field q --completion_field a
sft txt --dataset_name "$W/txt.jsonl" --dataset_text_field body; sft txt_pc --dataset_name "$W/txt_pc.jsonl"
cmp -s "$W/alp/model.safetensors" "$W/alp_pc/model.safetensors" || fail "Alpaca rows train differently"
cmp -s "$W/qa/model.safetensors" "$W/qa_pc/model.safetensors" || fail "question/answer rows train differently"
cmp -s "$W/custom/model.safetensors" "$W/qa_pc/model.safetensors" || fail "--prompt_field/--completion_field differ"
cmp -s "$W/txt/model.safetensors" "$W/txt_pc/model.safetensors" || fail "--dataset_text_field differs"
echo '{"title": "x", "body": "y"}' >"$W/odd.jsonl"
c=0
"$RLHF" sft --model_name_or_path "$W/lm" --dataset_name "$W/odd.jsonl" --output_dir "$W/odd" 2>"$W/odd.err" || c=$?
[ "$c" = 2 ] && grep -q 'odd.jsonl:1: no known layout' "$W/odd.err" && grep -q 'Alpaca' "$W/odd.err" &&
  grep -q -- '--dataset_text_field' "$W/odd.err" && [ ! -e "$W/odd" ] || fail "unknown layout: exit $c: $(cat "$W/odd.err")"
help=$("$RLHF" sft --help)
for l in '"messages"' '"instruction", "input", "output"' '"question", "answer"' '"prompt", "completion"' '"text"' \
  '"prompt_ids"' --dataset_text_field --prompt_field --completion_field; do
  grep -qF -- "$l" <<<"$help" || fail "sft --help does not list $l"
done

[ "$fails" = 0 ] && echo "steps_chain: all ok"
exit "$fails"
