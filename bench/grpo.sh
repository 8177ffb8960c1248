#!/usr/bin/env bash
# GRPO steps, `rlhf grpo` vs the same step in PyTorch (bench/torch_grpo.py), same shapes, same machine, same
# thread count, in one run. Prints a markdown section. usage: bench/grpo.sh BUILD_DIR
# The rlhf side is the real command on random-init models (`rlhf init`, tokenizer files removed so prompts are
# random {"prompt_ids"}); its per-step time is (time of 1 + N steps - time of 1 step) / N, so loading the models
# and the first step are not counted (PyTorch: one warm-up step).
set -euo pipefail
BUILD=${1:-build}
RLHF=$BUILD/rlhf
. bench/lib.sh
if [ "${2:-}" = --rlhf ]; then W=$3; else W=$(mktemp -d -t rlhf-bench-grpo.XXXXXX); trap 'rm -rf "$W"' EXIT; fi

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
  # no EOS in the sampled ids' reach: the completions run the full R tokens on both sides
  awk -v P="$P" 'BEGIN { srand(3); for (r = 0; r < 64; r++) { s = ""; for (i = 0; i < P; i++) s = s (i ? "," : "") int(rand() * 50000); print "{\"prompt_ids\": [" s "]}" } }' \
    >"$W/$name-prompts.jsonl"
}

run_rlhf() { # name B G R STEPS [flags...] -> seconds and peak RSS KiB
  local name=$1 B=$2 G=$3 R=$4 N=$5
  shift 5
  rm -rf "$W/$name-out"
  /usr/bin/time -f "%e %M" -o "$W/time" "$RLHF" grpo --model_name_or_path "$W/$name-policy" \
    --reward_model_name_or_path "$W/$name-rm" --allow_new_reward_head --dataset_name "$W/$name-prompts.jsonl" \
    --output_dir "$W/$name-out" --per_device_train_batch_size "$B" --num_generations "$G" \
    --max_completion_length "$R" --max_steps "$N" --save_steps 0 --logging_steps 1000 --num_completions_to_log 0 \
    --threads "$THREADS" --quiet "$@" >/dev/null 2>"$W/err" || { cat "$W/err" >&2; return 1; }
  cat "$W/time"
}

# One rlhf measurement (a run of 1 step and one of 1 + N: their difference / N is the step without loading
# and the first step), as one JSON line: bench/grpo.sh BUILD --rlhf W name B G R N [flags...]
if [ "${2:-}" = --rlhf ]; then
  shift 3
  read -r t1 _ < <(run_rlhf "$1" "$2" "$3" "$4" 1 "${@:6}")
  read -r tn rss < <(run_rlhf "$1" "$2" "$3" "$4" $(($5 + 1)) "${@:6}")
  /usr/bin/python3 -c 'import sys; t1, tn, rss, n = map(float, sys.argv[1:5]); print("{\"step_s\": %.4f, \"peak_rss_mb\": %.0f}" % (max(tn - t1, 1e-9) / n, rss / 1024))' "$t1" "$tn" "$rss" "$5"
  exit 0
fi

row() { # name H L NH P R B G STEPS [lora]
  local name=$1 H=$2 L=$3 NH=$4 P=$5 R=$6 B=$7 G=$8 N=$9 lora=${10:-} flags="" label=""
  [ -d "$W/$name-policy" ] || setup "$name" "$H" "$L" "$NH" "$P"
  # LoRA: rlhf's defaults for GPT-2 (r 16, alpha 32, all-linear: c_attn, c_proj, c_fc, mlp c_proj), as the peer
  [ -n "$lora" ] && flags="--use_peft --lora_r 16 --lora_alpha 32" label=", LoRA r 16 all-linear"
  interleave "$name (H $H, L $L, prompt $P, completion $R, $B completions = $((B / G)) prompts x $G$label)" step_s lower \
    "bash bench/grpo.sh '$BUILD' --rlhf '$W' $name $B $G $R $N $flags" \
    "/usr/bin/python3 bench/torch_grpo.py 50257 $H $L $NH $P $R $B $G $N $THREADS $lora"
}

echo "## GRPO step (issue 17)"
echo
echo "One step with TRL's GRPOConfig defaults (beta 0: no reference model; loss dapo; one micro-batch per generation"
echo "batch, so on-policy): sample G completions per prompt (KV cache, temperature 1), reward-model scores, group"
echo "advantages, one forward + backward of the policy through the clipped surrogate, clipping, AdamW. GPT-2 shapes"
echo "with the 50257-token vocabulary, random weights. PyTorch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)') with torch.set_num_threads($THREADS);"
echo "rlhf with OMP_NUM_THREADS=$THREADS; rlhf's peak RSS includes loading both models. rlhf s/step = (time of 1 + N"
echo "steps - time of 1 step) / N: loading and the first step not counted; PyTorch: one warm-up step, then N timed."
echo "Fixed seeds: every run samples the same tokens. LoRA rows: the policy frozen, adapters (r 16, alpha 32) on every"
echo "linear layer of the blocks (rlhf's all-linear default), only they are clipped and stepped; the PyTorch side"
echo "writes peft's LoRA out by hand (same init and scaling). Both sides score with the same fp32 GPT-2 reward model."
interleave_note
echo
interleave_header s/step
row tiny 64 2 2 16 16 32 8 2
row gpt2-small 768 12 12 16 16 16 8 1
row gpt2-small 768 12 12 16 16 16 8 1 lora
echo
