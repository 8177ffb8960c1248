#!/usr/bin/env bash
# Memory of `rlhf ppo` with a GPT-2-small-shaped policy (GPT2LMHeadModel, 124M parameters, `rlhf init`) in
# fp32 full fine-tuning, fp32 + LoRA and NF4 + LoRA (QLoRA): peak RSS of the whole process (load,
# quantization, rollouts, PPO epochs) and the seconds per PPO update ((time of 1 + N updates - time of 1
# update) / N, so loading and the first update are not counted). The reward model is a tiny GPT-2
# (GPT2ForSequenceClassification, 2 layers, 64 wide, GPT-2's vocabulary: 3.3M parameters) so that the
# policy side dominates; it also serves as the value model (TRL's default), trained in full in every row.
# With LoRA the reference is the policy with its adapters off (no second copy); fp32 full loads the
# reference as its own model, as TRL does. Then the same three settings for `rlhf reward` on a
# GPT-2-small-shaped reward model (cheap, kept for comparison). Prints a markdown section.
# usage: bench/memory.sh BUILD_DIR   (env: THREADS, UPDATES, BS, RESP, STEPS, MAXLEN, LAYERS)
set -euo pipefail
BUILD=${1:-build}
# OpenMP threads sleep at barriers instead of spinning: on a shared machine a spinning thread waits out the
# other process's time slice at every one of the many small parallel regions (4-bit matmuls open one per
# weight tile): a 2-update QLoRA run took 111 s instead of 24 s at load average 6.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
THREADS=${THREADS:-$(nproc)}
UPDATES=${UPDATES:-2}  # PPO updates timed after the first
BS=${BS:-4}            # prompts per PPO update (one micro-batch)
RESP=${RESP:-16}       # response_length
STEPS=${STEPS:-3}      # reward-trainer steps timed after the first
MAXLEN=${MAXLEN:-64}
LAYERS=${LAYERS:-12}
RLHF="$BUILD/rlhf"
W=$(mktemp -d -t rlhf-bench-memory.XXXXXX)
trap 'rm -rf "$W"' EXIT
gpt2() { # architectures n_embd n_layer n_head extra
  cat <<JSON
{"architectures": ["$1"], "model_type": "gpt2", "vocab_size": 50257, "n_embd": $2, "n_layer": $3, "n_head": $4,
 "n_positions": 1024, "n_inner": null, "activation_function": "gelu_new", "resid_pdrop": 0.1, "embd_pdrop": 0.1,
 "attn_pdrop": 0.1, "layer_norm_epsilon": 1e-05, "initializer_range": 0.02, "bos_token_id": 50256,
 "eos_token_id": 50256$5}
JSON
}
init() { # name config
  "$RLHF" init --config "$2" --tokenizer tests/fixtures/tokenizers/gpt2 --output_dir "$W/$1" --seed 1 >/dev/null \
    2>"$W/$1.err" || { cat "$W/$1.err" >&2; exit 1; }
}
gpt2 GPT2LMHeadModel 768 "$LAYERS" 12 "" >"$W/policy.json"
gpt2 GPT2ForSequenceClassification 64 2 2 ', "pad_token_id": 50256, "num_labels": 1' >"$W/rm.json"
gpt2 GPT2ForSequenceClassification 768 "$LAYERS" 12 ', "pad_token_id": 50256, "num_labels": 1' >"$W/rm-small.json"
init policy "$W/policy.json"
init rm "$W/rm.json"
init rm-small "$W/rm-small.json"
head -n 32 data/demo/prompts.jsonl >"$W/prompts.jsonl"

# timed TAG ARGS... : runs rlhf ARGS under /usr/bin/time, prints "peak_kib seconds" (stderr kept in TAG.err)
timed() {
  local tag=$1; shift
  /usr/bin/time -f "%M %e" -o "$W/$tag.time" "$RLHF" "$@" >/dev/null 2>"$W/$tag.err" ||
    { tail -n 3 "$W/$tag.err" >&2; exit 1; }
  cat "$W/$tag.time"
}
# ppo_run NAME UPDATES FLAGS... -> "peak_kib seconds"
ppo_run() {
  local name=$1 n=$2; shift 2
  timed "ppo.$name.$n" ppo --model_name_or_path "$W/policy" \
    --sft_model_path "$W/policy" --reward_model_path "$W/rm" --dataset_name "$W/prompts.jsonl" \
    --output_dir "$W/ppo.$name.$n" --total_episodes $((n * BS)) --per_device_train_batch_size "$BS" \
    --local_rollout_forward_batch_size "$BS" --response_length "$RESP" --num_ppo_epochs 1 --learning_rate 1e-5 \
    --save_steps 0 --num_sample_generations 0 --threads "$THREADS" --quiet "$@"
}
ppo_row() {
  local name=$1; shift
  local one many
  one=$(ppo_run "$name" 1 "$@")
  many=$(ppo_run "$name" $((UPDATES + 1)) "$@")
  /usr/bin/python3 - "$name" "$one" "$many" "$UPDATES" "$W/ppo.$name.$((UPDATES + 1))/training_log.csv" \
    "$W/peak.fp32" <<'PY'
import csv, os, sys
name, one, many, n, log, ref = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), int(sys.argv[4]), sys.argv[5], sys.argv[6]
peak = max(int(one[0]), int(many[0])) / 1024
if not os.path.exists(ref):
    open(ref, "w").write(str(peak))
share = 100 * peak / float(open(ref).read())
per_update = (float(many[1]) - float(one[1])) / n
rows = list(csv.DictReader(open(log)))
kl = rows[0]["objective/kl"]
print("| %s | %.0f | %.0f%% | %.1f | %s |" % (name, peak, share, per_update, kl))
PY
}
echo "## Memory: fp32 vs LoRA vs QLoRA (issue 8)"
echo
echo "\`rlhf ppo\`, policy GPT2LMHeadModel with GPT-2 small's shape ($LAYERS layers, 768 wide, vocabulary 50257,"
echo "124M parameters); reward and value model a tiny GPT2ForSequenceClassification (2 layers, 64 wide, 3.3M"
echo "parameters; the value model is trained in full in every row). $BS prompts per update, response_length $RESP,"
echo "1 PPO epoch, 1 mini-batch, AdamW, $THREADS threads, OMP_WAIT_POLICY=$OMP_WAIT_POLICY. Peak RSS of the whole"
echo "process (/usr/bin/time %M: load, quantization, rollouts, update); s/update excludes loading and the first"
echo "update. fp32 full: policy + gradients + AdamW moments + a separate reference model. LoRA: r 16, alpha 32,"
echo "all-linear; the reference is the policy with its adapters off. NF4: double quantization, float32 compute;"
echo "with --load_in_4bit the frozen reward model is 4-bit too. objective/kl of update 1 is exactly 0 (the policy"
echo "starts equal to its reference; with LoRA because lora_B starts at 0)."
echo
echo "| setting | peak RSS MiB | of fp32 full | s/update | objective/kl, update 1 |"
echo "|---|---|---|---|---|"
ppo_row "fp32 full fine-tuning"
ppo_row "fp32 + LoRA" --use_peft
ppo_row "NF4 + LoRA (QLoRA)" --use_peft --load_in_4bit --bnb_4bit_use_double_quant
echo

# reward_run NAME STEPS FLAGS... -> "peak_kib seconds"
reward_run() {
  local name=$1 steps=$2; shift 2
  timed "rw.$name.$steps" reward --model_name_or_path "$W/rm-small" \
    --dataset_name data/learn-demo/train.jsonl --output_dir "$W/rw.$name.$steps" --max_steps "$steps" \
    --per_device_train_batch_size 2 --max_length "$MAXLEN" --save_strategy no --logging_steps 1 \
    --learning_rate 1e-4 --threads "$THREADS" --quiet "$@"
}
reward_row() {
  local name=$1; shift
  local one many
  one=$(reward_run "$name" 1 "$@")
  many=$(reward_run "$name" $((STEPS + 1)) "$@")
  /usr/bin/python3 - "$name" "$one" "$many" "$STEPS" <<'PY'
import sys
name, one, many, steps = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), int(sys.argv[4])
peak = max(int(one[0]), int(many[0])) / 1024
print("| %s | %.0f | %.2f |" % (name, peak, (float(many[1]) - float(one[1])) / steps))
PY
}
echo "\`rlhf reward\` on GPT2ForSequenceClassification with the same shape, 2 pairs per step, max_length $MAXLEN"
echo "(score head trained in full with LoRA: modules_to_save)."
echo
echo "| setting | peak RSS MiB | s/step |"
echo "|---|---|---|"
reward_row "fp32 full fine-tuning"
reward_row "fp32 + LoRA" --use_peft
reward_row "NF4 + LoRA (QLoRA)" --use_peft --load_in_4bit --bnb_4bit_use_double_quant
echo
