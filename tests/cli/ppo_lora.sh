#!/bin/bash
# `rlhf ppo --use_peft` on the tiny task of ppo_fixture.bash (16-token vocabulary, token 7 rewarded):
# LoRA and QLoRA (NF4, double quant) policies train with the reference = the policy with its adapters
# off (one copy of the weights): objective/kl of the first update is exactly 0 (lora_B starts at 0), every
# logged stat is finite, the scores rise with fp32 LoRA; the output is a peft adapter
# (adapter_config.json naming the input model, only lora_A/lora_B tensors) that `rlhf generate` loads, and
# --merge_adapter adds a merged HF model equal to base + alpha/r B A. Bad combinations exit 2 naming the flag.
set -u
RLHF=${1:?usage: ppo_lora.sh path/to/rlhf}
W=$(mktemp -d -t rlhf-ppo-lora.XXXXXX)
trap 'rm -rf "$W"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

. tests/cli/ppo_fixture.bash
# A policy whose logits have room to move: with GPT-2's initializer_range 0.02 the tied, frozen wte of
# this 32-wide model keeps every logit within ~0.1 of the others whatever the adapters do, so only
# full fine-tuning (which trains wte) could raise the score. 0.2 gives a policy with a real distribution.
sed 's/"initializer_range": 0.02/"initializer_range": 0.2/' "$W/policy.json" >"$W/lpolicy.json"
"$RLHF" init --config "$W/lpolicy.json" --tokenizer tests/fixtures/tokenizers/gpt2 --output_dir "$W/lp" --seed 1 \
  >/dev/null 2>&1 || fail "init lp"
rm -f "$W/lp"/{tokenizer.json,vocab.json,merges.txt,tokenizer_config.json,special_tokens_map.json}

ppo=(ppo --model_name_or_path "$W/lp" --sft_model_path "$W/lp" --reward_model_path "$W/rm"
  --dataset_name "$W/prompts.jsonl" --per_device_train_batch_size 16 --response_length 8 --temperature 1.0
  --num_ppo_epochs 4 --save_steps 0 --threads 2 --quiet --seed 3 --kl_coef 0.01 --use_peft --lora_r 8
  --lora_alpha 16 --lora_dropout 0)
"$RLHF" "${ppo[@]}" --learning_rate 1e-2 --total_episodes 192 --merge_adapter --output_dir "$W/lora" \
  2>"$W/lora.err" || fail "ppo --use_peft: $(tail -n 3 "$W/lora.err")"
grep -q "reference is the policy with its adapters off" "$W/lora.err" || fail "no LoRA notice: $(head -n 2 "$W/lora.err")"
"$RLHF" "${ppo[@]}" --learning_rate 3e-2 --total_episodes 64 --load_in_4bit --bnb_4bit_use_double_quant \
  --output_dir "$W/qlora" 2>"$W/qlora.err" || fail "ppo --use_peft --load_in_4bit: $(tail -n 3 "$W/qlora.err")"
grep -q "4-bit base" "$W/qlora.err" || fail "no 4-bit notice: $(head -n 2 "$W/qlora.err")"
for run in lora qlora; do
  for f in adapter_config.json adapter_model.safetensors generation_config.json training_log.csv report.html; do
    [ -s "$W/$run/$f" ] || fail "$run: missing $f"
  done
done
/usr/bin/python3 - "$W" <<'PY' || fails=$((fails + 1))
import csv, json, math, sys
sys.path.insert(0, "tests/cli/lib")
from safetensors_f32 import absmax, tensors, check_merged
W = sys.argv[1]
for run, rise in (("lora", True), ("qlora", False)):
    rows = list(csv.DictReader(open("%s/%s/training_log.csv" % (W, run))))
    assert rows, run
    assert float(rows[0]["objective/kl"]) == 0.0, "%s: objective/kl at the first update is %s, not exactly 0" % (run, rows[0]["objective/kl"])
    for r in rows:
        for k, v in r.items():
            assert math.isfinite(float(v)) or k == "val/ratio_var", "%s: %s = %s" % (run, k, v)
    s = [float(r["objective/scores"]) for r in rows]
    print("%s: objective/scores %.3f -> %.3f, last kl %s" % (run, s[0], s[-1], rows[-1]["objective/kl"]))
    if rise:
        assert sum(s[-3:]) / 3 > sum(s[:3]) / 3 + 0.8, "%s: scores did not rise: %s" % (run, s)
    c = json.load(open("%s/%s/adapter_config.json" % (W, run)))
    assert c["base_model_name_or_path"] == W + "/lp" and c["task_type"] == "CAUSAL_LM" and c["r"] == 8, c
    ad = tensors("%s/%s/adapter_model.safetensors" % (W, run))
    assert ad and all(k.endswith(("lora_A.weight", "lora_B.weight")) for k in ad), sorted(ad)[:3]
    assert any(absmax(v) > 0 for k, v in ad.items() if "lora_B" in k), "%s: lora_B never trained" % run
# merged = base + alpha/r * B A (Conv1D layers store W as (in, out): + (B A)^T); other tensors untouched
n_adapted = check_merged(tensors(W + "/lp/model.safetensors"), tensors(W + "/lora/model.safetensors"),
                         tensors(W + "/lora/adapter_model.safetensors"), 16 / 8, 8)
print("merged == base + alpha/r B A on %d layers; every other tensor byte-identical" % n_adapted)
PY
# rlhf generate loads the adapter directory (base + adapter) and the merged model alike
echo '{"prompt_ids": [3, 4, 5, 6]}' >"$W/p.jsonl"
for d in lora qlora; do
  "$RLHF" generate --model_name_or_path "$W/$d" --dataset_name "$W/p.jsonl" --max_new_tokens 6 --stop_token none \
    --output_file "$W/gen.$d.jsonl" --threads 2 2>"$W/gen.$d.err" || fail "generate from the $d adapter: $(tail -n 2 "$W/gen.$d.err")"
  grep -q '"completion_ids":\[[0-9]' "$W/gen.$d.jsonl" 2>/dev/null || fail "generate $d: no tokens"
done
mkdir -p "$W/adapter_only"
cp "$W/lora"/adapter_* "$W/adapter_only/"
"$RLHF" generate --model_name_or_path "$W/adapter_only" --dataset_name "$W/p.jsonl" --max_new_tokens 6 --stop_token none \
  --output_file "$W/gen.a.jsonl" --threads 2 2>"$W/gen.a.err" || fail "generate from the adapter: $(tail -n 2 "$W/gen.a.err")"
cmp -s <(grep -o '"completion_ids":\[[^]]*\]' "$W/gen.lora.jsonl") <(grep -o '"completion_ids":\[[^]]*\]' "$W/gen.a.jsonl") ||
  fail "greedy tokens of the merged model and of base + adapter differ"

# a LoRA reward model (`rlhf reward --use_peft` adapter directory) serves as reward and value model
"$RLHF" reward --model_name_or_path "$W/rm-init" --dataset_name "$W/pairs.jsonl" --output_dir "$W/rm-lora" \
  --max_steps 4 --learning_rate 3e-3 --per_device_train_batch_size 16 --save_strategy no --threads 2 --quiet \
  --use_peft --lora_r 4 >/dev/null 2>"$W/rm-lora.err" || fail "reward --use_peft: $(tail -n 2 "$W/rm-lora.err")"
"$RLHF" "${ppo[@]}" --reward_model_path "$W/rm-lora" --load_in_4bit --learning_rate 1e-2 --total_episodes 32 \
  --output_dir "$W/ppo-rm-lora" 2>"$W/ppo-rm-lora.err" || fail "ppo with an adapter reward model: $(tail -n 2 "$W/ppo-rm-lora.err")"
grep -q "using a value head" "$W/ppo-rm-lora.err" && fail "the adapter reward model did not serve as value model"

# bad combinations: exit 2 naming the flag, nothing written
expect2() { # name, stderr regex, args...
  local name=$1 pat=$2 c=0; shift 2
  "$RLHF" ppo --model_name_or_path "$W/policy" --sft_model_path "$W/policy" --reward_model_path "$W/rm" \
    --dataset_name "$W/prompts.jsonl" --total_episodes 16 --quiet "$@" --output_dir "$W/bad.$name" >/dev/null 2>"$W/$name.err" || c=$?
  if [ "$c" != 2 ]; then fail "$name: exit $c, expected 2 ($(tail -n 1 "$W/$name.err"))"
  elif ! grep -qE -- "$pat" "$W/$name.err"; then fail "$name: stderr does not match /$pat/: $(cat "$W/$name.err")"
  elif [ -e "$W/bad.$name" ]; then fail "$name: created --output_dir"; fi
}
expect2 4bit-no-peft '--load_in_4bit' --load_in_4bit
expect2 merge-no-peft '--merge_adapter' --merge_adapter
expect2 rank0 '--lora_r' --use_peft --lora_r 0
expect2 alpha '--lora_alpha' --use_peft --lora_alpha -1
expect2 dropout '--lora_dropout' --use_peft --lora_dropout 1.5
expect2 quant-type '--bnb_4bit_quant_type' --use_peft --load_in_4bit --bnb_4bit_quant_type int8
expect2 compute '--bnb_4bit_compute_dtype' --use_peft --load_in_4bit --bnb_4bit_compute_dtype float16
expect2 targets '--lora_target_modules' --use_peft --lora_target_modules q_proj
expect2 adapter-base 'peft adapter' --use_peft --model_name_or_path "$W/adapter_only"

[ "$fails" = 0 ] && echo "ppo_lora: all passed" || { echo "ppo_lora: $fails failed"; exit 1; }
