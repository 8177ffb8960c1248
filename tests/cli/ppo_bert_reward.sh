#!/bin/bash
# `rlhf ppo` with an ENCODER reward model (BERT, its own WordPiece tokenizer) and a GPT-2 policy (byte-level
# BPE): the pairing TRL cannot run (its issues 3595, 1979, 2718). The test builds a tiny BERT reward model
# (`rlhf init` + `rlhf reward` on data/learn-demo) and a tiny GPT-2 policy (`rlhf init`), runs a few PPO
# updates on data/demo/prompts.jsonl, and checks: the run completes with every metric finite; --value_model
# reward falls back to a value head with a notice (an encoder gives no per-token values); the responses are
# decoded text; and each score PPO logged equals what `rlhf score` gives the same (prompt, response) — the
# response was decoded with the policy tokenizer and re-encoded as a BERT sentence pair.
set -u
RLHF=${1:?usage: ppo_bert_reward.sh path/to/rlhf}
W=$(mktemp -d -t rlhf-ppo-bert.XXXXXX)
trap 'rm -rf "$W"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

cat >"$W/bert.json" <<'EOF'
{"architectures": ["BertForSequenceClassification"], "model_type": "bert", "vocab_size": 30522, "hidden_size": 32,
 "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64, "hidden_act": "gelu",
 "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 128,
 "type_vocab_size": 2, "initializer_range": 0.02, "layer_norm_eps": 1e-12, "pad_token_id": 0, "num_labels": 1}
EOF
cat >"$W/policy.json" <<'EOF'
{"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": 50257, "n_positions": 128, "n_embd": 32,
 "n_layer": 2, "n_head": 2, "activation_function": "gelu_new", "resid_pdrop": 0.0, "embd_pdrop": 0.0,
 "attn_pdrop": 0.0, "layer_norm_epsilon": 1e-05, "initializer_range": 0.02, "bos_token_id": 50256,
 "eos_token_id": 50256}
EOF
"$RLHF" init --config "$W/bert.json" --tokenizer tests/fixtures/tokenizers/bert-base-uncased --output_dir "$W/rm-init" \
  --seed 1 >/dev/null 2>&1 || fail "init bert"
"$RLHF" init --config "$W/policy.json" --tokenizer tests/fixtures/tokenizers/gpt2 --output_dir "$W/policy" --seed 1 \
  >/dev/null 2>&1 || fail "init policy"
"$RLHF" reward --model_name_or_path "$W/rm-init" --dataset_name data/learn-demo/train.jsonl --output_dir "$W/rm" \
  --num_train_epochs 1 --learning_rate 1e-3 --per_device_train_batch_size 16 --max_length 64 --save_strategy no \
  --threads 2 --quiet >/dev/null 2>"$W/reward.err" || { fail "rlhf reward: $(tail -n 3 "$W/reward.err")"; exit 1; }

"$RLHF" ppo --model_name_or_path "$W/policy" --sft_model_path "$W/policy" --reward_model_path "$W/rm" \
  --dataset_name data/demo/prompts.jsonl --output_dir "$W/ppo" --learning_rate 1e-3 --per_device_train_batch_size 8 \
  --total_episodes 24 --response_length 12 --temperature 1.0 --num_ppo_epochs 1 --num_sample_generations 3 \
  --threads 2 --quiet 2>"$W/ppo.err" || fail "ppo: $(tail -n 3 "$W/ppo.err")"
grep -q 'notice: --value_model reward.*encoder.*value head' "$W/ppo.err" ||
  fail "no notice of the value-head fallback: $(cat "$W/ppo.err")"
L="$W/ppo/training_log.csv"
[ "$(tail -n +2 "$L" | wc -l)" = 3 ] || fail "expected 3 log rows, got $(tail -n +2 "$L" | wc -l)"
awk -F, 'NR > 1 { for (i = 1; i <= 14; i++) if ($i !~ /^-?[0-9.]+(e[-+][0-9]+)?$/) bad = 1 } END { exit bad }' "$L" ||
  fail "non-finite metrics: $(cat "$L")"
for f in config.json model.safetensors tokenizer.json generation_config.json report.html samples.jsonl; do
  [ -s "$W/ppo/$f" ] || fail "missing $f"
done
S="$W/ppo/samples.jsonl"
[ "$(wc -l <"$S")" -ge 8 ] || fail "samples.jsonl has $(wc -l <"$S") rows"
grep -q '"prompt":"[^"]' "$S" && grep -q '"response":"' "$S" || fail "samples lack prompt/response text: $(head -n 1 "$S")"
# each logged score equals `rlhf score` of the same (prompt, response) as a BERT sentence pair
"$RLHF" score --model_name_or_path "$W/rm" --dataset_name "$S" --output_file "$W/rescored.jsonl" --threads 2 \
  >/dev/null 2>"$W/score.err" || fail "rlhf score: $(tail -n 2 "$W/score.err")"
paste -d' ' <(grep -o '"score":[-0-9.e]*' "$S" | cut -d: -f2) <(grep -o '"score":[ ]*[-0-9.e]*' "$W/rescored.jsonl" | sed 's/.*://') |
  awk '{ n++; d = $1 - $2; if (d < 0) d = -d; if (d > 1e-4) { bad++; print "score mismatch: " $0 } } END { exit !(n >= 8 && !bad) }' ||
  fail "PPO scores differ from rlhf score on the same (prompt, response)"
# the policy PPO wrote is a causal LM the other commands load
"$RLHF" generate --model_name_or_path "$W/ppo" --prompt "Hello" --max_new_tokens 4 --threads 2 >/dev/null 2>"$W/gen.err" ||
  fail "rlhf generate cannot load the PPO policy: $(tail -n 2 "$W/gen.err")"

[ "$fails" = 0 ] && echo "ppo_bert_reward: all checks passed" || echo "ppo_bert_reward: $fails failed"
[ "$fails" = 0 ]
