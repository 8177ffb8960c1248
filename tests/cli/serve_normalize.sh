#!/bin/bash
# Reward normalisation as OpenRLHF: `rlhf reward` writes the mean and (unbiased) std of its rewards on the
# evaluation set into config.json ("mean", "std"), else those of (up to 1024 of) the training pairs; --normalize_reward in
# `score`, `serve` and `ppo` returns (r - mean) / std (exit 2 for a model without them); ppo with a local
# normalised reward model and ppo against `rlhf serve --normalize_reward` give the same run.
set -u
RLHF=${1:?usage: serve_normalize.sh path/to/rlhf}
W=$(mktemp -d -t rlhf-serve-norm.XXXXXX)
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
. tests/cli/serve_common.bash

cat >"$W/bert.json" <<'EOF'
{"architectures": ["BertForSequenceClassification"], "model_type": "bert", "vocab_size": 30522, "hidden_size": 32,
 "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 128,
 "type_vocab_size": 2, "pad_token_id": 0, "num_labels": 1}
EOF
"$RLHF" init --config "$W/bert.json" --tokenizer tests/fixtures/tokenizers/bert-base-uncased --output_dir "$W/rm0" \
  --seed 1 >/dev/null 2>&1 || fail "init bert"
head -n 24 data/learn-demo/eval.jsonl >"$W/eval.jsonl"
train() {  # OUT [flags]: a few steps of reward training
  local out=$1
  shift
  "$RLHF" reward --model_name_or_path "$W/rm0" --dataset_name data/learn-demo/train.jsonl --output_dir "$W/$out" \
    --max_steps 4 --learning_rate 1e-3 --per_device_train_batch_size 8 --max_length 64 --save_strategy no \
    --threads 2 --quiet "$@" >/dev/null 2>"$W/$out.err" || fail "reward $out: $(tail -n 2 "$W/$out.err")"
}
train rm --eval_dataset_name "$W/eval.jsonl"
train rm_noeval --max_steps 2
stats() {  # MODEL DATA -> checks config mean/std against rlhf score's rewards of DATA
  "$RLHF" score --model_name_or_path "$1" --dataset_name "$2" --max_length 64 --threads 2 --output_file "$W/s.jsonl" \
    >/dev/null 2>&1 || { fail "score $2"; return; }
  python3 - "$1/config.json" "$W/s.jsonl" <<'EOF' || fail "config.json mean/std of $1 are not those of the rewards of $2"
import json, math, sys
c = json.load(open(sys.argv[1]))
v = [x for l in open(sys.argv[2]) for x in (json.loads(l)["chosen_score"], json.loads(l)["rejected_score"])]
m = sum(v) / len(v); s = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1))
print("config mean %.6g std %.6g; rewards mean %.6g std %.6g (n=%d)" % (c["mean"], c["std"], m, s, len(v)))
sys.exit(0 if abs(c["mean"] - m) <= 1e-5 * max(1, abs(m)) and abs(c["std"] - s) <= 1e-5 * max(1, s) else 1)
EOF
}
stats "$W/rm" "$W/eval.jsonl"
stats "$W/rm_noeval" data/learn-demo/train.jsonl
# more than 1024 training pairs and no evaluation set: the statistics of 1024 of them, row i * n / 1024
python3 - "$W" <<'EOF'
import sys
rows = [l for _ in range(3) for l in open("data/learn-demo/train.jsonl")][:1100]
open(sys.argv[1] + "/big.jsonl", "w").writelines(rows)
open(sys.argv[1] + "/big_picked.jsonl", "w").writelines(rows[i * 1100 // 1024] for i in range(1024))
EOF
"$RLHF" reward --model_name_or_path "$W/rm0" --dataset_name "$W/big.jsonl" --output_dir "$W/rm_big" --max_steps 1 \
  --per_device_train_batch_size 8 --max_length 64 --save_strategy no --threads 2 >/dev/null 2>"$W/rm_big.err" ||
  fail "reward rm_big: $(tail -n 2 "$W/rm_big.err")"
grep -q 'rewards on 1024 of the 1100 training pairs (evenly spaced)' "$W/rm_big.err" ||
  fail "reward rm_big: no message about the 1024 pairs: $(grep rewards "$W/rm_big.err")"
stats "$W/rm_big" "$W/big_picked.jsonl"

# score --normalize_reward == (r - mean) / std
raw=$("$RLHF" score --model_name_or_path "$W/rm" --prompt "Can you help me?" --response " Of course, gladly." --threads 1)
norm=$("$RLHF" score --model_name_or_path "$W/rm" --prompt "Can you help me?" --response " Of course, gladly." \
  --threads 1 --normalize_reward)
python3 - "$W/rm/config.json" "$raw" "$norm" <<'EOF' || fail "score --normalize_reward: raw $raw, normalised $norm"
import json, sys
c = json.load(open(sys.argv[1])); raw, norm = float(sys.argv[2]), float(sys.argv[3])
sys.exit(0 if abs((raw - c["mean"]) / c["std"] - norm) <= 1e-5 * max(1, abs(norm)) else 1)
EOF
"$RLHF" score --model_name_or_path "$W/rm0" --prompt a --response b --normalize_reward >/dev/null 2>"$W/err"
rc=$?
[ "$rc" = 2 ] && grep -q 'has no reward statistics' "$W/err" || fail "score --normalize_reward without mean/std: exit $rc"

# serve --normalize_reward answers the normalised reward
serve_start RM --model_name_or_path "$W/rm" --threads 2 --batch_size 64 --normalize_reward || exit 1
got=$(curl -s -d '{"prompt": ["Can you help me?"], "response": [" Of course, gladly."]}' \
  "http://127.0.0.1:$RM_PORT/get_reward")
python3 -c 'import json, sys; g = json.loads(sys.argv[1])["rewards"][0]; sys.exit(0 if abs(g - float(sys.argv[2])) <= 1e-5 * max(1, abs(g)) else 1)' \
  "$got" "$norm" || fail "serve --normalize_reward: $got, score gives $norm"

# ppo --normalize_reward (local) == ppo against serve --normalize_reward
cat >"$W/policy.json" <<'EOF'
{"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": 50257, "n_positions": 128, "n_embd": 16,
 "n_layer": 1, "n_head": 2, "bos_token_id": 50256, "eos_token_id": 50256}
EOF
"$RLHF" init --config "$W/policy.json" --tokenizer tests/fixtures/tokenizers/gpt2 --output_dir "$W/policy" --seed 1 \
  >/dev/null 2>&1 || fail "init policy"
ppo() {  # OUT REWARD [flags]
  local out=$1 rm=$2
  shift 2
  "$RLHF" ppo --model_name_or_path "$W/policy" --sft_model_path "$W/policy" --reward_model_path "$rm" \
    --dataset_name data/demo/prompts.jsonl --output_dir "$W/$out" --per_device_train_batch_size 8 --total_episodes 16 \
    --response_length 6 --num_ppo_epochs 1 --value_model head --threads 2 --quiet "$@" 2>"$W/$out.err" ||
    fail "ppo $out: $(tail -n 2 "$W/$out.err")"
}
ppo local "$W/rm" --normalize_reward
ppo remote "http://127.0.0.1:$RM_PORT/get_reward"
ppo raw "$W/rm"
python3 - "$W/local/training_log.csv" "$W/remote/training_log.csv" "$W/raw/training_log.csv" "$W/rm/config.json" <<'EOF' ||
import csv, json, sys
a, b, r = (list(csv.DictReader(open(p))) for p in sys.argv[1:4])
c = json.load(open(sys.argv[4]))
for x in a + b + r: x.pop("eps")
ok = a == b and len(a) == 2
# the first update's scores are the raw ones normalised (same policy, same samples)
s_raw, s_norm = float(r[0]["objective/scores"]), float(a[0]["objective/scores"])
ok = ok and abs((s_raw - c["mean"]) / c["std"] - s_norm) <= 1e-4 * max(1, abs(s_norm))
print("objective/scores raw %.6g, normalised %.6g; local == remote: %s" % (s_raw, s_norm, a == b))
sys.exit(0 if ok else 1)
EOF
  fail "ppo --normalize_reward"
serve_stop RM
[ "$RM_RC" = 0 ] || fail "serve exit $RM_RC"

[ "$fails" = 0 ] && echo "serve_normalize: all checks passed" || echo "serve_normalize: $fails failed"
[ "$fails" = 0 ]
