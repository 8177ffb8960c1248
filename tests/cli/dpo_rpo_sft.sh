#!/usr/bin/env bash
# DPO's gradient through every decoder head, Gemma 2's final logit soft-cap included: with rpo_alpha 1 and a
# vanishing beta (1e-9), DPO's loss is ln 2 + the NLL of the chosen completions and its gradient is the NLL's
# (the sigmoid term's is beta / 2 times a log-prob difference), which is exactly what SFT on the same prompt /
# chosen pairs computes. One step of each on the same pre-tokenized rows must log the same NLL and grad_norm.
# (Gemma 2's soft-cap backward reads the logits: a trainer that writes their gradient over them, as dpo did
# before, logs another grad_norm here.)
set -euo pipefail
RLHF=$1
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
for fam in gpt2 gemma2 llama; do
  M=tests/fixtures/hf/${fam}_lm
  eos=$(/usr/bin/python3 -c "import json; print(json.load(open('$M/config.json'))['eos_token_id'])")
  # 4 rows, completions ending in the model's eos (neither trainer appends one to pre-tokenized rows then)
  /usr/bin/python3 - "$W/$fam" "$eos" <<'PY'
import json, random, sys
out, eos = sys.argv[1], int(sys.argv[2])
rng = random.Random(7)
ids = lambda n: [rng.randrange(3, 120) for _ in range(n)]
with open(out + ".dpo.jsonl", "w") as d, open(out + ".sft.jsonl", "w") as s:
    for _ in range(4):
        p, c, r = ids(rng.randrange(3, 8)), ids(rng.randrange(2, 9)) + [eos], ids(rng.randrange(2, 9)) + [eos]
        d.write(json.dumps({"prompt_input_ids": p, "chosen_input_ids": c, "rejected_input_ids": r}) + "\n")
        s.write(json.dumps({"prompt_ids": p, "completion_ids": c}) + "\n")
PY
  common=(--model_name_or_path "$M" --max_steps 1 --per_device_train_batch_size 4 --logging_steps 1 --no_shuffle
          --save_strategy no --learning_rate 1e-3 --threads 2 --quiet)
  "$RLHF" dpo "${common[@]}" --dataset_name "$W/$fam.dpo.jsonl" --output_dir "$W/$fam.dpo" --beta 1e-9 \
    --rpo_alpha 1 >"$W/log" 2>&1 || { cat "$W/log"; exit 1; }
  "$RLHF" sft "${common[@]}" --dataset_name "$W/$fam.sft.jsonl" --output_dir "$W/$fam.sft" \
    >"$W/log" 2>&1 || { cat "$W/log"; exit 1; }
  /usr/bin/python3 - "$W/$fam.dpo/training_log.csv" "$W/$fam.sft/training_log.csv" $fam <<'PY'
import csv, math, sys
d = [r for r in csv.DictReader(open(sys.argv[1])) if r["loss"]][0]
s = [r for r in csv.DictReader(open(sys.argv[2])) if r["loss"]][0]
nll_d, nll_s = float(d["loss"]) - math.log(2), float(s["loss"])
gd, gs = float(d["grad_norm"]), float(s["grad_norm"])
assert abs(nll_d - nll_s) <= 1e-5 * nll_s, (nll_d, nll_s)
assert abs(gd - gs) <= 1e-4 * gs, "%s: dpo grad_norm %.8g, sft %.8g" % (sys.argv[3], gd, gs)
print("%s: dpo (beta 1e-9, rpo_alpha 1) = sft: nll %.6f, grad_norm %.6f / %.6f" % (sys.argv[3], nll_s, gd, gs))
PY
done
echo "dpo_rpo_sft: all passed"
