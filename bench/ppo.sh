#!/usr/bin/env bash
# PPO episodes/s, `rlhf ppo` vs the same update in PyTorch (bench/torch_ppo.py), same shapes, same machine,
# same thread count, in one run. Prints a markdown section. usage: bench/ppo.sh BUILD_DIR
# The rlhf side is the real command on random-init models (`rlhf init`, tokenizer files removed so prompts
# are random {"prompt_ids"} as on the PyTorch side); its per-update time is (time of 1 + N updates - time
# of 1 update) / N, so loading the models and the first update are not counted (PyTorch: one warm-up).
set -euo pipefail
BUILD=${1:-build}
RLHF=$BUILD/rlhf
. bench/lib.sh
if [ "${2:-}" = --rlhf ]; then W=$3; else W=$(mktemp -d -t rlhf-bench-ppo.XXXXXX); trap 'rm -rf "$W"' EXIT; fi

setup() { # name H L NH P
  local name=$1 H=$2 L=$3 NH=$4 P=$5
  local cfg="\"model_type\": \"gpt2\", \"vocab_size\": 50257, \"n_positions\": 1024, \"n_embd\": $H, \"n_layer\": $L,
    \"n_head\": $NH, \"activation_function\": \"gelu_new\", \"resid_pdrop\": 0.0, \"embd_pdrop\": 0.0,
    \"attn_pdrop\": 0.0, \"layer_norm_epsilon\": 1e-05, \"initializer_range\": 0.02, \"bos_token_id\": 50256,
    \"eos_token_id\": 50256"
  echo "{\"architectures\": [\"GPT2LMHeadModel\"], $cfg}" >"$W/$name-policy.json"
  echo "{\"architectures\": [\"GPT2ForSequenceClassification\"], $cfg, \"num_labels\": 1}" >"$W/$name-rm.json"
  "$RLHF" init --config "$W/$name-policy.json" --tokenizer tests/fixtures/tokenizers/gpt2 --output_dir "$W/$name-policy" \
    --seed 1 >/dev/null 2>&1
  "$RLHF" init --config "$W/$name-rm.json" --tokenizer tests/fixtures/tokenizers/gpt2 --output_dir "$W/$name-rm" \
    --seed 2 >/dev/null 2>&1
  for d in policy rm; do
    rm -f "$W/$name-$d"/{tokenizer.json,vocab.json,merges.txt,tokenizer_config.json,special_tokens_map.json}
  done
  awk -v P="$P" 'BEGIN { srand(3); for (r = 0; r < 64; r++) { s = ""; for (i = 0; i < P; i++) s = s (i ? "," : "") int(rand() * 50000); print "{\"prompt_ids\": [" s "]}" } }' \
    >"$W/$name-prompts.jsonl"
}

run_rlhf() { # name B R EPOCHS UPDATES -> seconds and peak RSS KiB
  local name=$1 B=$2 R=$3 E=$4 N=$5
  rm -rf "$W/$name-out"
  /usr/bin/time -f "%e %M" -o "$W/time" "$RLHF" ppo --model_name_or_path "$W/$name-policy" \
    --sft_model_path "$W/$name-policy" --reward_model_path "$W/$name-rm" --dataset_name "$W/$name-prompts.jsonl" \
    --output_dir "$W/$name-out" --per_device_train_batch_size "$B" --local_rollout_forward_batch_size "$B" \
    --total_episodes $((B * N)) --response_length "$R" --num_ppo_epochs "$E" --temperature 0.7 --stop_token none \
    --value_model reward --learning_rate 1e-5 --save_steps 0 --num_sample_generations 0 --threads "$THREADS" \
    --quiet >/dev/null 2>"$W/err" || { cat "$W/err" >&2; return 1; }
  cat "$W/time"
}

# One rlhf measurement (a run of 1 update and one of 1 + N: their difference / N is the update without loading
# and the first update), as one JSON line: bench/ppo.sh BUILD --rlhf W name B R EPOCHS N
if [ "${2:-}" = --rlhf ]; then
  shift 3
  read -r t1 _ < <(run_rlhf "$1" "$2" "$3" "$4" 1)
  read -r tn rss < <(run_rlhf "$1" "$2" "$3" "$4" $(($5 + 1)))
  /usr/bin/python3 -c 'import sys; t1, tn, rss, n, b = map(float, sys.argv[1:6]); u = max(tn - t1, 1e-9) / n; print("{\"episodes_per_s\": %.4f, \"update_s\": %.4f, \"peak_rss_mb\": %.0f}" % (b / u, u, rss / 1024))' "$t1" "$tn" "$rss" "$5" "$2"
  exit 0
fi

row() { # name H L NH P R B EPOCHS UPDATES
  local name=$1 H=$2 L=$3 NH=$4 P=$5 R=$6 B=$7 E=$8 N=$9
  setup "$name" "$H" "$L" "$NH" "$P"
  interleave "$name (H $H, L $L, prompt $P, response $R, batch $B, $E PPO epochs)" episodes_per_s higher \
    "bash bench/ppo.sh '$BUILD' --rlhf '$W' $name $B $R $E $N" \
    "/usr/bin/python3 bench/torch_ppo.py 50257 $H $L $NH $P $R $B $E $N $THREADS"
}

echo "## PPO update (issue 7)"
echo
echo "One update = sample the responses (KV cache), policy + reference log-probs, values from a copy of the reward"
echo "model, reward-model scores, KL penalty, GAE, whitening, then PPO epochs of clipped policy + value loss with"
echo "backward through policy and value model, clipping, AdamW. GPT-2 shapes with the 50257-token vocabulary, random"
echo "weights. PyTorch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)') with torch.set_num_threads($THREADS); rlhf with OMP_NUM_THREADS=$THREADS;"
echo "rlhf's peak RSS includes loading four models. rlhf's per-update time = (time of 1 + N updates - time of 1) / N;"
echo "PyTorch: one warm-up update, then N timed (generation prefill: logits of the last prompt position only, as"
echo "transformers' generate). Fixed seeds: every run does the same work."
interleave_note
echo
interleave_header episodes/s
row tiny 64 2 2 16 16 16 4 3
row gpt2-small 768 12 12 16 16 8 1 5
echo
