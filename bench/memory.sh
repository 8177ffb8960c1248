#!/usr/bin/env bash
# Memory of reward-model training on a GPT-2-small-shaped model (GPT2ForSequenceClassification, 124M
# parameters) in fp32 (full fine-tuning), fp32 + LoRA and NF4 + LoRA (QLoRA): peak RSS of the whole
# `rlhf reward` process (load, quantization, training) and the seconds per optimizer step
# (time of STEPS + 1 steps minus time of 1 step, over STEPS, so loading is not counted).
# `rlhf ppo` has no --use_peft yet, so the reward trainer stands in. Prints a markdown section.
# usage: bench/memory.sh BUILD_DIR   (env: THREADS, STEPS, BS, MAXLEN, LAYERS)
set -euo pipefail
BUILD=${1:-build}
THREADS=${THREADS:-$(nproc)}
STEPS=${STEPS:-3}
BS=${BS:-2}
MAXLEN=${MAXLEN:-64}
LAYERS=${LAYERS:-12}
RLHF="$BUILD/rlhf"
W=$(mktemp -d -t rlhf-bench-memory.XXXXXX)
trap 'rm -rf "$W"' EXIT
cat >"$W/gpt2-small.json" <<JSON
{"architectures": ["GPT2ForSequenceClassification"], "model_type": "gpt2", "vocab_size": 50257, "n_embd": 768,
 "n_layer": $LAYERS, "n_head": 12, "n_positions": 1024, "n_inner": null, "activation_function": "gelu_new",
 "resid_pdrop": 0.1, "embd_pdrop": 0.1, "attn_pdrop": 0.1, "layer_norm_epsilon": 1e-05,
 "initializer_range": 0.02, "bos_token_id": 50256, "eos_token_id": 50256, "pad_token_id": 50256, "num_labels": 1}
JSON
"$RLHF" init --config "$W/gpt2-small.json" --tokenizer tests/fixtures/tokenizers/gpt2 --output_dir "$W/init" \
  --seed 1 >/dev/null 2>"$W/init.err" || { cat "$W/init.err"; exit 1; }
# run NAME STEPS FLAGS... -> "peak_kib seconds"
run() {
  local name=$1 steps=$2; shift 2
  /usr/bin/time -f "%M %e" -o "$W/$name.$steps.time" "$RLHF" reward --model_name_or_path "$W/init" \
    --dataset_name data/learn-demo/train.jsonl --output_dir "$W/$name.$steps" --max_steps "$steps" \
    --per_device_train_batch_size "$BS" --max_length "$MAXLEN" --save_strategy no --logging_steps 1 \
    --learning_rate 1e-4 --threads "$THREADS" --quiet "$@" >/dev/null 2>"$W/$name.$steps.err" ||
    { tail -n 3 "$W/$name.$steps.err" >&2; exit 1; }
  cat "$W/$name.$steps.time"
}
row() {
  local name=$1; shift
  local one many
  one=$(run "$name" 1 "$@")
  many=$(run "$name" $((STEPS + 1)) "$@")
  /usr/bin/python3 - "$name" "$one" "$many" "$STEPS" "$W/$name.$((STEPS + 1))/training_log.csv" <<'PY'
import sys
name, one, many, steps, log = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), int(sys.argv[4]), sys.argv[5]
peak = max(int(one[0]), int(many[0])) / 1024
per_step = (float(many[1]) - float(one[1])) / steps
losses = [float(l.split(",")[2]) for l in open(log).read().splitlines()[1:] if l.split(",")[2]]
print("| %s | %.0f | %.2f | %.3f -> %.3f |" % (name, peak, per_step, losses[0], losses[-1]))
PY
}
echo "## Memory: fp32 vs LoRA vs QLoRA (issue 8)"
echo
echo "rlhf reward on GPT2ForSequenceClassification with GPT-2 small's shape ($LAYERS layers, 768 wide, vocabulary"
echo "50257), $BS pairs per step, max_length $MAXLEN, $THREADS threads, AdamW. Peak RSS of the whole process"
echo "(/usr/bin/time %M: load, quantization, training); s/step excludes loading. LoRA: r 16, alpha 32,"
echo "all-linear, score head trained (modules_to_save). NF4: double quantization, float32 compute."
echo
echo "| setting | peak RSS MiB | s/step | logged loss first -> last |"
echo "|---|---|---|---|"
row "fp32 full fine-tuning"
row "fp32 + LoRA" --use_peft
row "NF4 + LoRA (QLoRA)" --use_peft --load_in_4bit --bnb_4bit_use_double_quant
echo
