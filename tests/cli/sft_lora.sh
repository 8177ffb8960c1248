#!/bin/bash
# `rlhf sft --use_peft` on a tiny GPT-2 with the real GPT-2 tokenizer: LoRA lowers the held-out loss and
# writes a peft adapter (adapter_config.json naming the input model, only lora_A/lora_B tensors); the
# input model's files are untouched; --merge_adapter's merged model equals base + alpha/r B A on the
# adapted layers and is byte-identical elsewhere (so training changed nothing but the adapters); QLoRA
# (NF4, double quant, bf16 compute) trains too; `rlhf generate` loads the adapter directory and the merged
# model to the same greedy tokens. Bad combinations exit 2 naming the flag, before anything is written.
set -u
RLHF=${1:?usage: sft_lora.sh path/to/rlhf}
W=$(mktemp -d -t rlhf-sft-lora.XXXXXX)
trap 'rm -rf "$W"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

cat >"$W/cfg.json" <<'JSON'
{"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": 50257, "n_embd": 32, "n_layer": 2,
 "n_head": 2, "n_positions": 64, "bos_token_id": 50256, "eos_token_id": 50256}
JSON
"$RLHF" init --config "$W/cfg.json" --tokenizer tests/fixtures/tokenizers/gpt2 --output_dir "$W/base" --seed 4 \
  >/dev/null 2>"$W/init.err" || { cat "$W/init.err"; echo "FAIL: init"; exit 1; }
/usr/bin/python3 - "$W/data.jsonl" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(32):
        f.write(json.dumps({"prompt": "Q: %d plus %d?" % (i, i), "completion": " A: %d" % (2 * i)}) + "\n")
PY
before=$(md5sum "$W/base/model.safetensors" | cut -d' ' -f1)
sft=(sft --model_name_or_path "$W/base" --dataset_name "$W/data.jsonl" --num_train_epochs 3 --learning_rate 1e-2
  --logging_steps 1 --per_device_train_batch_size 4 --eval_split 0.25 --threads 2 --use_peft --lora_r 8 --lora_alpha 16)
"$RLHF" "${sft[@]}" --lora_dropout 0 --merge_adapter --output_dir "$W/lora" 2>"$W/lora.err" ||
  fail "sft --use_peft: $(tail -n 3 "$W/lora.err")"
"$RLHF" "${sft[@]}" --load_in_4bit --bnb_4bit_use_double_quant --bnb_4bit_compute_dtype bfloat16 --save_strategy no \
  --output_dir "$W/qlora" 2>"$W/qlora.err" || fail "sft --use_peft --load_in_4bit: $(tail -n 3 "$W/qlora.err")"
grep -q "4-bit base weights" "$W/qlora.err" || fail "no 4-bit notice: $(head -n 2 "$W/qlora.err")"
[ "$(md5sum "$W/base/model.safetensors" | cut -d' ' -f1)" = "$before" ] || fail "the input model's weights changed"
for run in lora qlora; do
  for f in adapter_config.json adapter_model.safetensors tokenizer.json training_log.csv report.html; do
    [ -s "$W/$run/$f" ] || fail "$run: missing $f"
  done
  # "eval loss A -> B": held-out loss before training and after
  read -r a b < <(sed -n 's/.*eval loss \([0-9.]*\) -> \([0-9.]*\).*/\1 \2/p' "$W/$run.err")
  echo "$run: held-out loss ${a:-?} -> ${b:-?}"
  awk -v a="${a:-0}" -v b="${b:-0}" 'BEGIN { exit !(a > 0 && b < a - 0.1) }' || fail "$run: held-out loss did not fall"
done
[ -s "$W/lora/checkpoint-6/adapter_model.safetensors" ] || fail "checkpoint-6 holds no adapter"
[ -e "$W/lora/checkpoint-6/model.safetensors" ] && fail "checkpoint-6 holds a full model"
/usr/bin/python3 - "$W" <<'PY' || fails=$((fails + 1))
import json, sys
sys.path.insert(0, "tests/cli/lib")
from safetensors_f32 import tensors, check_merged
W = sys.argv[1]
c = json.load(open(W + "/lora/adapter_config.json"))
assert c["base_model_name_or_path"] == W + "/base" and c["task_type"] == "CAUSAL_LM", c
assert c["r"] == 8 and c["lora_alpha"] == 16 and c["fan_in_fan_out"] is True and c["modules_to_save"] is None, c
ad = tensors(W + "/lora/adapter_model.safetensors")
assert len(ad) == 16 and all(k.endswith(("lora_A.weight", "lora_B.weight")) for k in ad), sorted(ad)[:3]
n = check_merged(tensors(W + "/base/model.safetensors"), tensors(W + "/lora/model.safetensors"), ad, 16 / 8, 8)
print("merged == base + alpha/r B A on %d layers; every other tensor byte-identical" % n)
PY
# the optimizer state of a checkpoint covers the adapters only
/usr/bin/python3 - "$W/lora/checkpoint-6/optimizer.safetensors" <<'PY' || fail "checkpoint optimizer holds more than the adapters"
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
keys = [k for k in json.loads(raw[8:8 + struct.unpack("<Q", raw[:8])[0]]) if k not in ("__metadata__", "step")]
assert len(keys) == 32 and all(".lora_" in k for k in keys), keys[:4]
PY
# rlhf generate: the adapter directory (base + adapter) and the merged model give the same greedy tokens
mkdir -p "$W/adapter_only"
cp "$W/lora"/adapter_* "$W/lora"/tokenizer* "$W/adapter_only/"
for d in lora adapter_only qlora; do
  "$RLHF" generate --model_name_or_path "$W/$d" --prompt "Q: 3 plus 3?" --max_new_tokens 5 --stop_token none \
    --threads 2 >"$W/gen.$d" 2>"$W/gen.$d.err" || fail "generate from $d: $(tail -n 2 "$W/gen.$d.err")"
done
[ -s "$W/gen.lora" ] && cmp -s "$W/gen.lora" "$W/gen.adapter_only" ||
  fail "merged and adapter generations differ: '$(cat "$W/gen.lora")' vs '$(cat "$W/gen.adapter_only")'"

expect2() { # name, stderr regex, args...
  local name=$1 pat=$2 c=0; shift 2
  "$RLHF" sft --model_name_or_path "$W/base" --dataset_name "$W/data.jsonl" --threads 2 "$@" \
    --output_dir "$W/bad.$name" >/dev/null 2>"$W/$name.err" || c=$?
  if [ "$c" != 2 ]; then fail "$name: exit $c, expected 2 ($(tail -n 1 "$W/$name.err"))"
  elif ! grep -qE -- "$pat" "$W/$name.err"; then fail "$name: stderr does not match /$pat/: $(cat "$W/$name.err")"
  elif [ -e "$W/bad.$name" ]; then fail "$name: created --output_dir"; fi
}
expect2 4bit-no-peft '--load_in_4bit' --load_in_4bit
expect2 merge-no-peft '--merge_adapter' --merge_adapter
expect2 rank0 '--lora_r' --use_peft --lora_r 0
expect2 dropout '--lora_dropout' --use_peft --lora_dropout 1
expect2 quant-type '--bnb_4bit_quant_type' --use_peft --load_in_4bit --bnb_4bit_quant_type nf8
expect2 targets "--lora_target_modules: 'q_proj'" --use_peft --lora_target_modules c_attn,q_proj
expect2 adapter-base 'peft adapter' --use_peft --model_name_or_path "$W/adapter_only"
expect2 resume-rank '--lora_r 4 differs' --use_peft --lora_r 4 --resume_from_checkpoint "$W/lora/checkpoint-6"
expect2 resume-full 'holds a full model' --use_peft --resume_from_checkpoint "$W/base"

[ "$fails" = 0 ] && echo "sft_lora: all passed" || { echo "sft_lora: $fails failed"; exit 1; }
