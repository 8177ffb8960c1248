#!/usr/bin/env bash
# DPO: one optimizer step of `rlhf dpo` vs the same step in PyTorch (bench/torch_dpo.py), same shapes, same
# machine, same thread count, in one run; then the peak RSS of `rlhf dpo` with the reference given three ways.
# Prints a markdown section. usage: bench/dpo.sh BUILD_DIR
# The rlhf side is the real command on a random-init GPT-2 (`rlhf init`, tokenizer files removed, pre-tokenized
# rows); its per-step time is (time of 1 + N steps - time of 1 step) / N, so loading and the first step are not
# counted (PyTorch: one warm-up step).
set -euo pipefail
BUILD=${1:-build}
RLHF=$BUILD/rlhf
THREADS=${THREADS:-$(nproc)}
export OMP_NUM_THREADS=$THREADS OMP_WAIT_POLICY=passive
W=$(mktemp -d -t rlhf-bench-dpo.XXXXXX)
trap 'rm -rf "$W"' EXIT

setup() { # name C L NH PAIRS PROMPT COMPLETION
  local name=$1 C=$2 L=$3 NH=$4 P=$5 TP=$6 TC=$7
  echo "{\"architectures\": [\"GPT2LMHeadModel\"], \"model_type\": \"gpt2\", \"vocab_size\": 50257, \"n_positions\": 1024,
    \"n_embd\": $C, \"n_layer\": $L, \"n_head\": $NH, \"resid_pdrop\": 0.0, \"embd_pdrop\": 0.0, \"attn_pdrop\": 0.0,
    \"bos_token_id\": 50256, \"eos_token_id\": 50256}" >"$W/$name.json"
  "$RLHF" init --config "$W/$name.json" --tokenizer tests/fixtures/tokenizers/gpt2 --output_dir "$W/$name" --seed 1 \
    >/dev/null 2>&1
  rm -f "$W/$name"/{tokenizer.json,vocab.json,merges.txt,tokenizer_config.json,special_tokens_map.json}
  awk -v P="$TP" -v C="$TC" 'BEGIN { srand(3); for (r = 0; r < 32; r++) {
      printf "{\"prompt_input_ids\": ["; for (i = 0; i < P; i++) printf "%s%d", (i ? "," : ""), 3 + int(rand() * 50000)
      printf "], \"chosen_input_ids\": ["; for (i = 0; i < C; i++) printf "%s%d", (i ? "," : ""), 3 + int(rand() * 50000)
      printf "], \"rejected_input_ids\": ["; for (i = 0; i < C; i++) printf "%s%d", (i ? "," : ""), 3 + int(rand() * 50000)
      print "]}" } }' >"$W/$name.jsonl"
}

run_rlhf() { # name PAIRS STEPS [flags...] -> seconds and peak RSS KiB
  local name=$1 P=$2 N=$3
  shift 3
  rm -rf "$W/out"
  /usr/bin/time -f "%e %M" -o "$W/time" "$RLHF" dpo --model_name_or_path "$W/$name" --dataset_name "$W/$name.jsonl" \
    --output_dir "$W/out" --per_device_train_batch_size "$P" --max_steps "$N" --save_strategy no --max_length 1024 \
    --threads "$THREADS" --quiet "$@" >/dev/null 2>"$W/err" || { cat "$W/err" >&2; return 1; }
  cat "$W/time"
}

row() { # name C L NH PAIRS PROMPT COMPLETION STEPS
  local name=$1 C=$2 L=$3 NH=$4 P=$5 TP=$6 TC=$7 N=$8
  setup "$name" "$C" "$L" "$NH" "$P" "$TP" "$TC"
  read -r t1 _ < <(run_rlhf "$name" "$P" 1)
  read -r tn rss < <(run_rlhf "$name" "$P" $((N + 1)))
  local t
  t=$(/usr/bin/python3 bench/torch_dpo.py "$C" "$L" "$NH" "$P" "$TP" "$TC" "$N" "$THREADS")
  /usr/bin/python3 - "$name" "$t1" "$tn" "$rss" "$t" "$C" "$L" "$P" "$TP" "$TC" "$N" <<'PY'
import json, sys
name, t1, tn, rss, t = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), json.loads(sys.argv[5])
C, L, P, TP, TC, N = map(int, sys.argv[6:12])
step = max(tn - t1, 1e-9) / N
print("| %s (C %d, L %d, %d pairs, prompt %d + completion %d) | %.3f | %.3f | %.2fx | %.0f | %.0f | %.0f%% |" % (
    name, C, L, P, TP, TC, step, t["step_s"], t["step_s"] / step, rss / 1024, t["peak_rss_mb"],
    100 * rss / 1024 / t["peak_rss_mb"]))
PY
}

echo "## DPO step (issue 20)"
echo
echo "One optimizer step of sigmoid DPO: the policy's forward over the 2P chosen and rejected rows, the frozen"
echo "reference's forward (no gradients), log-probs summed over the completion tokens, the loss, backward, clipping,"
echo "AdamW. GPT-2 shapes with the 50257-token vocabulary, random weights, pre-tokenized rows. PyTorch"
echo "$(/usr/bin/python3 -c 'import torch; print(torch.__version__)') with torch.set_num_threads($THREADS) (policy + deep-copied reference, TRL's selective"
echo "log-softmax); rlhf with OMP_NUM_THREADS=$THREADS. Peak RSS is the whole process (rlhf: /usr/bin/time %M, loading"
echo "included; PyTorch: ru_maxrss)."
echo
echo "| shape | rlhf s/step | PyTorch s/step | speed ratio | rlhf peak RSS MiB | PyTorch peak RSS MiB | RSS ratio |"
echo "|---|---|---|---|---|---|---|"
row tiny 128 2 4 4 64 64 3
row small 512 8 8 2 64 64 1
echo
echo "Peak RSS of \`rlhf dpo\` by how the reference is given (the small shape above: C 512, L 8, 51M parameters, 2 pairs"
echo "per step, 2 steps; the"
echo "losses are the same in all three, tests/cli/dpo_parity.sh): a frozen copy of the model (TRL's default),"
echo "\`--precompute_ref_log_probs\` (the reference log-probs of every row computed once, then no reference model),"
echo "\`--use_peft\` (LoRA r 16 on all linear layers; the reference is the model with its adapters off)."
echo
echo "| reference | peak RSS MiB | of the frozen copy |"
echo "|---|---|---|"
read -r _ base < <(run_rlhf small 2 2)
read -r _ pre < <(run_rlhf small 2 2 --precompute_ref_log_probs)
read -r _ lora < <(run_rlhf small 2 2 --use_peft --lora_r 16 --lora_alpha 32 --lora_target_modules all-linear)
for r in "frozen copy:$base" "precompute_ref_log_probs:$pre" "use_peft (adapters off):$lora"; do
  awk -v n="${r%%:*}" -v v="${r##*:}" -v b="$base" 'BEGIN { printf "| %s | %.0f | %.0f%% |\n", n, v / 1024, 100 * v / b }'
done
echo
