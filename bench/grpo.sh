#!/usr/bin/env bash
# GRPO steps, `rlhf grpo` vs the same step in PyTorch (bench/torch_grpo.py), same shapes, same machine, same
# thread count, in one run. Prints a markdown section. usage: bench/grpo.sh BUILD_DIR
# The rlhf side is the real command on random-init models (`rlhf init`, tokenizer files removed so prompts are
# random {"prompt_ids"}). Both sides time the same way, inside one process: one warm-up step, then the median
# of N timed steps (rlhf: the stamps of its per-step log lines).
set -euo pipefail
BUILD=${1:-build}
RLHF=$BUILD/rlhf
. bench/lib.sh
if [ "${2:-}" = --rlhf ]; then W=$3; else W=$(mktemp -d -t rlhf-bench-grpo.XXXXXX); trap 'rm -rf "$W"' EXIT; fi

# One rlhf measurement, as one JSON line (lib.sh's step_times: the median of steps 2 .. N + 1 of one run):
# bench/grpo.sh BUILD --rlhf W name B G R N [flags...]
if [ "${2:-}" = --rlhf ]; then
  name=$4 B=$5 G=$6 R=$7 N=$8
  shift 8
  rm -rf "$W/$name-out"
  step_times "$W" "$N" "$B" completions_per_s step_s "$RLHF" grpo --model_name_or_path "$W/$name-policy" \
    --reward_model_name_or_path "$W/$name-rm" --allow_new_reward_head --dataset_name "$W/$name-prompts.jsonl" \
    --output_dir "$W/$name-out" --per_device_train_batch_size "$B" --num_generations "$G" \
    --max_completion_length "$R" --max_steps $((N + 1)) --save_steps 0 --logging_steps 1 --num_completions_to_log 0 \
    --threads "$THREADS" "$@"
  exit 0
fi

row() { # name H L NH P R B G STEPS [lora]
  local name=$1 H=$2 L=$3 NH=$4 P=$5 R=$6 B=$7 G=$8 N=$9 lora=${10:-} flags="" label=""
  row_wanted "$name" || return 0
  [ -d "$W/$name-policy" ] || gpt2_setup "$W" "$name" "$H" "$L" "$NH" "$P"
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
echo "rlhf with OMP_NUM_THREADS=$THREADS; rlhf's peak RSS includes loading both models. Both sides time inside one"
echo "process: one warm-up step, then the median of N timed steps (rlhf: the arrival of its per-step stdout log"
echo "lines; loading and saving outside)."
echo "Fixed seeds: every run samples the same tokens. LoRA rows: the policy frozen, adapters (r 16, alpha 32) on every"
echo "linear layer of the blocks (rlhf's all-linear default), only they are clipped and stepped; the PyTorch side"
echo "writes peft's LoRA out by hand (same init and scaling). Both sides score with the same fp32 GPT-2 reward model."
interleave_note
echo
interleave_header s/step
row tiny 64 2 2 16 16 32 8 3
row gpt2-small 768 12 12 16 16 16 8 5
row gpt2-small 768 12 12 16 16 16 8 5 lora
echo
echo "Where rlhf's peak RSS goes (per item, before/after the activation savings of 2026-12-08): bench/results/grpo_memory.md."
echo
