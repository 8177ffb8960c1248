#!/usr/bin/env bash
# PPO episodes/s, `rlhf ppo` vs the same update in PyTorch (bench/torch_ppo.py), same shapes, same machine,
# same thread count, in one run. Prints a markdown section. usage: bench/ppo.sh BUILD_DIR
# The rlhf side is the real command on random-init models (`rlhf init`, tokenizer files removed so prompts
# are random {"prompt_ids"} as on the PyTorch side). Both sides time the same way, inside one process: one
# warm-up update, then the median of N timed updates (rlhf: the stamps of its per-update log lines).
set -euo pipefail
BUILD=${1:-build}
RLHF=$BUILD/rlhf
. bench/lib.sh
if [ "${2:-}" = --rlhf ]; then W=$3; else W=$(mktemp -d -t rlhf-bench-ppo.XXXXXX); trap 'rm -rf "$W"' EXIT; fi

# One rlhf measurement, as one JSON line (lib.sh's step_times: the median of updates 2 .. N + 1 of one run):
# bench/ppo.sh BUILD --rlhf W name B R EPOCHS N
if [ "${2:-}" = --rlhf ]; then
  name=$4 B=$5 R=$6 E=$7 N=$8
  rm -rf "$W/$name-out"
  step_times "$W" "$N" "$B" episodes_per_s update_s "$RLHF" ppo --model_name_or_path "$W/$name-policy" \
    --sft_model_path "$W/$name-policy" --reward_model_path "$W/$name-rm" --dataset_name "$W/$name-prompts.jsonl" \
    --output_dir "$W/$name-out" --per_device_train_batch_size "$B" --local_rollout_forward_batch_size "$B" \
    --total_episodes $((B * (N + 1))) --response_length "$R" --num_ppo_epochs "$E" --temperature 0.7 --stop_token none \
    --value_model reward --learning_rate 1e-5 --save_steps 0 --num_sample_generations 0 --logging_steps 1 \
    --threads "$THREADS"
  exit 0
fi

row() { # name H L NH P R B EPOCHS UPDATES
  local name=$1 H=$2 L=$3 NH=$4 P=$5 R=$6 B=$7 E=$8 N=$9
  row_wanted "$name" || return 0
  gpt2_setup "$W" "$name" "$H" "$L" "$NH" "$P"
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
echo "rlhf's peak RSS includes loading four models. Both sides time inside one process: one warm-up update, then"
echo "the median of N timed updates (rlhf: the arrival of its per-update stdout log lines; loading and saving"
echo "outside). PyTorch's generation prefill keeps the logits of the last prompt position only, as transformers'"
echo "generate. Fixed seeds: every run does the same work."
interleave_note
echo
interleave_header episodes/s
row tiny 64 2 2 16 16 16 4 3
row gpt2-small 768 12 12 16 16 8 1 5
echo
