#!/usr/bin/env bash
# Qwen2.5-0.5B's real shape (Qwen2ForCausalLM: hidden 896, 24 layers, 14 heads, 2 KV heads, intermediate
# 4864, vocabulary 151936, tied embeddings: 494M parameters, random init by `rlhf init`) through `rlhf sft`,
# `rlhf reward` and `rlhf ppo` with --use_peft (LoRA r 16, all-linear) and with --use_peft --load_in_4bit
# (QLoRA, NF4 with double quantization): peak RSS of the whole process and seconds per optimizer step
# ((time of 1 + N steps - time of 1 step) / N, so loading and the first step are not counted).
# Tokenizer: the bundled GPT-2 byte-level BPE (50257 ids, all below the config's 151936; eos = pad = 50256).
# The reward model is the same checkpoint loaded as Qwen2ForSequenceClassification (a fresh score head, as
# AutoModelForSequenceClassification gives); in ppo it is the frozen reward model (4-bit with --load_in_4bit)
# and the value is a head on the policy (--value_model head), so the 494M-parameter value model is not
# trained in full. The checkpoint is written in bfloat16 (torch_dtype bfloat16, as Qwen2.5 ships): the trained
# models widen it to fp32 master weights, the frozen reward model keeps it bf16 in memory. Prints table rows.
# Not in `make bench`'s default set (each row loads a 494M-parameter model twice: over 30 minutes on 2 busy
# cores): `make bench SECTIONS=qwen25`. Every rlhf command runs holding BENCH_LOCK when set (flock).
# usage: bench/qwen25.sh BUILD_DIR   (env: ROWS="sft reward ppo", SETTINGS="lora qlora",
#        THREADS, STEPS, MAXLEN, BS, RESP, QWEN_DIR = an existing init'ed dir, BENCH_LOCK)
set -euo pipefail
BUILD=${1:-build}
cd "$(dirname "$0")/.."
if grep -q avx512bw /proc/cpuinfo && [ -z "${OPENBLAS_CORETYPE:-}" ]; then export OPENBLAS_CORETYPE=SkylakeX; fi
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
ROWS=${ROWS:-sft reward ppo}
SETTINGS=${SETTINGS:-lora qlora}
LOCK=()
[ -n "${BENCH_LOCK:-}" ] && LOCK=(flock "$BENCH_LOCK")
THREADS=${THREADS:-$(nproc)}
STEPS=${STEPS:-2}    # optimizer steps timed after the first
MAXLEN=${MAXLEN:-128}
BS=${BS:-2}
RESP=${RESP:-16}
RLHF="$BUILD/rlhf"
W=$(mktemp -d -t rlhf-bench-qwen.XXXXXX)
trap 'rm -rf "$W"' EXIT
if [ -n "${QWEN_DIR:-}" ]; then
  POLICY=$QWEN_DIR
else
  cat >"$W/lm.json" <<'JSON'
{"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 151936, "hidden_size": 896,
 "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
 "max_position_embeddings": 32768, "rope_theta": 1000000.0, "torch_dtype": "bfloat16", "rms_norm_eps": 1e-06, "tie_word_embeddings": true,
 "use_sliding_window": false, "sliding_window": 32768, "max_window_layers": 21, "hidden_act": "silu",
 "attention_dropout": 0.0, "initializer_range": 0.02, "bos_token_id": 50256, "eos_token_id": 50256,
 "pad_token_id": 50256}
JSON
  POLICY=$W/policy
  "$RLHF" init --config "$W/lm.json" --tokenizer tests/fixtures/tokenizers/gpt2 --output_dir "$POLICY" --seed 1 \
    >/dev/null
fi
RM=$W/rm
mkdir -p "$RM"
for f in "$POLICY"/*; do ln -s "$(readlink -f "$f")" "$RM/$(basename "$f")"; done
rm "$RM/config.json"
/usr/bin/python3 - "$POLICY/config.json" "$RM/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["architectures"] = ["Qwen2ForSequenceClassification"]
c["num_labels"] = 1
json.dump(c, open(sys.argv[2], "w"), indent=2)
PY
head -n 16 data/demo/prompts.jsonl >"$W/prompts.jsonl"
# sft and reward rows long enough to be truncated at MAXLEN, so every row of every step has MAXLEN tokens on
# both sides (the bundled demo rows are ~40 tokens)
/usr/bin/python3 - "$W" <<'PY'
import json, sys
words = "the quick brown fox jumps over a lazy dog while seven small birds sing about morning light".split()
def text(k, n):
    return " ".join(words[(k * 7 + i) % len(words)] for i in range(n))
with open(sys.argv[1] + "/sft.jsonl", "w") as f:
    for k in range(64):
        f.write(json.dumps({"prompt": text(k, 24) + "\n", "completion": " " + text(k + 1, 400)}) + "\n")
with open(sys.argv[1] + "/pairs.jsonl", "w") as f:
    for k in range(64):
        f.write(json.dumps({"prompt": text(k, 24), "chosen": text(k + 2, 400), "rejected": text(k + 3, 400)}) + "\n")
PY

# timed TAG ARGS... : rlhf ARGS under /usr/bin/time -> "peak_kib seconds"
timed() {
  local tag=$1; shift
  "${LOCK[@]}" /usr/bin/time -f "%M %e" -o "$W/$tag.time" "$RLHF" "$@" >/dev/null 2>"$W/$tag.err" ||
    { tail -n 3 "$W/$tag.err" >&2; exit 1; }
  cat "$W/$tag.time"
}
run() { # CMD NAME N FLAGS...
  local cmd=$1 name=$2 n=$3; shift 3
  case $cmd in
    sft) timed "$cmd.$name.$n" sft --model_name_or_path "$POLICY" --dataset_name "$W/sft.jsonl" \
           --output_dir "$W/out.$cmd.$name.$n" --max_steps "$n" --per_device_train_batch_size "$BS" \
           --max_length "$MAXLEN" --save_strategy no --logging_steps 1 --learning_rate 1e-4 --threads "$THREADS" \
           --quiet "$@" ;;
    reward) timed "$cmd.$name.$n" reward --model_name_or_path "$RM" --dataset_name "$W/pairs.jsonl" --eval_strategy no \
           --output_dir "$W/out.$cmd.$name.$n" --max_steps "$n" --per_device_train_batch_size "$BS" \
           --max_length "$MAXLEN" --save_strategy no --logging_steps 1 --learning_rate 1e-4 --threads "$THREADS" \
           --quiet "$@" ;;
    ppo) timed "$cmd.$name.$n" ppo --model_name_or_path "$POLICY" --sft_model_path "$POLICY" \
           --reward_model_path "$RM" --allow_new_reward_head --value_model head --dataset_name "$W/prompts.jsonl" \
           --output_dir "$W/out.$cmd.$name.$n" --total_episodes $((n * BS)) --per_device_train_batch_size "$BS" \
           --local_rollout_forward_batch_size "$BS" --response_length "$RESP" --num_ppo_epochs 1 \
           --learning_rate 1e-5 --save_steps 0 --num_sample_generations 0 --threads "$THREADS" --quiet "$@" ;;
  esac
}
# torch_row CMD: PyTorch's same LoRA step (bench/torch_qwen25.py) -> "step_s peak_mib", or "n/a n/a"
torch_row() {
  local n=$MAXLEN
  case $1 in sft | reward) ;; ppo) n=$RESP ;; *) echo "n/a n/a"; return ;; esac
  [ "${QWEN_TORCH:-1}" = 1 ] && /usr/bin/python3 -c 'import torch' 2>/dev/null || { echo "n/a n/a"; return; }
  "${LOCK[@]}" /usr/bin/python3 bench/torch_qwen25.py "$1" "$BS" "$n" "$STEPS" "$THREADS" 2>"$W/torch.$1.err" |
    /usr/bin/python3 -c 'import json, sys; d = json.loads(sys.stdin.read()); print("%.2f %.0f" % (d["step_s"], d["peak_rss_mb"]))' ||
    { tail -n 3 "$W/torch.$1.err" >&2; echo "n/a n/a"; }
}
row() { # CMD NAME FLAGS...
  local cmd=$1 name=$2; shift 2
  local one many torch="n/a n/a"
  one=$(run "$cmd" "$name" 1 "$@")
  many=$(run "$cmd" "$name" $((STEPS + 1)) "$@")
  [ "$name" = LoRA ] && torch=$(torch_row "$cmd")
  /usr/bin/python3 - "$cmd" "$name" "$one" "$many" "$STEPS" "$torch" <<'PY'
import sys
cmd, name, one, many, n = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4].split(), int(sys.argv[5])
ts, tr = sys.argv[6].split()
peak = max(int(one[0]), int(many[0])) / 1024
step = (float(many[1]) - float(one[1])) / n
cells = [cmd, name, "%.0f" % peak, "%.1f" % step if step > 0 else "n/a", "%.0f" % float(one[1])]
if ts == "n/a":
    cells += ["n/a", "n/a", "", ""]
else:
    cells += [ts, tr, "%.2fx" % (float(ts) / step) if step > 0 else "", "%.0f%%" % (100 * peak / float(tr))]
print("| " + " | ".join(cells) + " |")
PY
}
echo "## Qwen2.5-0.5B's shape: sft, reward, ppo with LoRA and QLoRA (issue 16)"
echo
echo "Qwen2ForCausalLM / Qwen2ForSequenceClassification with Qwen2.5-0.5B's shape (hidden 896, 24 layers, 14 heads,"
echo "2 KV heads, intermediate 4864, vocabulary 151936, tied embeddings; 494M parameters), random init by \`rlhf init\`,"
echo "GPT-2's byte-level BPE tokenizer. LoRA r 16 / alpha 32 on all-linear (168 layers, 8.8M trainable); QLoRA:"
echo "NF4, double quantization, fp32 compute (the tied 151936 x 896 embedding stays fp32). sft: batch $BS rows and"
echo "reward: batch $BS pairs, every row truncated to max_length $MAXLEN (generated rows longer than that, so both"
echo "sides run $BS x $MAXLEN tokens per step for sft and $((2 * BS)) x $MAXLEN for reward); ppo: $BS prompts per update,"
echo "response_length $RESP, 1 epoch, value head on the policy, the same-shaped reward model frozen (4-bit with"
echo "--load_in_4bit). $THREADS threads, OMP_WAIT_POLICY=$OMP_WAIT_POLICY. Peak RSS of the whole process; s/step ="
echo "(time of 1 + $STEPS steps - time of 1 step) / $STEPS. PyTorch: bench/torch_qwen25.py, the same LoRA step in plain"
echo "torch 1.13 (no transformers/peft in Debian), base weights fp32 as rlhf's trained model, median of $STEPS steps after"
echo "a warm-up step (ppo: prompts of 16 random ids, the reward model a separate fp32 Qwen2 with a score head, the"
echo "reference the policy with its adapters disabled); no peer for QLoRA (no 4-bit CPU kernels in PyTorch 1.13)."
echo
echo "| command | setting | rlhf peak RSS MiB | rlhf s/step | rlhf s for a 1-step run (load + step) | PyTorch s/step | PyTorch peak RSS MiB | speed ratio | RSS ratio |"
echo "|---|---|---|---|---|---|---|---|---|"
for cmd in $ROWS; do
  case " $SETTINGS " in *" lora "*) row "$cmd" "LoRA" --use_peft ;; esac
  case " $SETTINGS " in *" qlora "*) row "$cmd" "QLoRA (NF4)" --use_peft --load_in_4bit --bnb_4bit_use_double_quant ;; esac
done
echo
echo "Reading the table: a 1-step run's time includes loading (the bf16 checkpoint widened to fp32) and, for \`reward\`,"
echo "one no_grad pass over the training pairs that records the reward mean/std in config.json (OpenRLHF's"
echo "normalisation statistics; taken on the evaluation set when there is one): that pass is most of reward's 1-step"
echo "time and cancels out of s/step. n/a: the longer run did not take longer (noise larger than the steps)."
echo
