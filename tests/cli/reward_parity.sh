#!/usr/bin/env bash
# Training parity with PyTorch (issue 5): 20 steps of `rlhf reward` on the bert_seqcls_1 fixture must log the
# same per-step losses as the PyTorch run in tools/gen_reward_parity.py (committed in
# tests/fixtures/parity/expected.json) within 1e-4.
set -euo pipefail
RLHF=$1
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
P=tests/fixtures/parity
mapfile -t ARGS < <(/usr/bin/python3 -c "import json; print('\n'.join(json.load(open('$P/expected.json'))['args']))")
"$RLHF" reward --model_name_or_path tests/fixtures/hf/bert_seqcls_1 --dataset_name $P/pairs.jsonl \
  --output_dir "$W/out" "${ARGS[@]}" --threads 2 >"$W/log" 2>&1 || { cat "$W/log"; exit 1; }
/usr/bin/python3 - "$W/out/training_log.csv" $P/expected.json <<'PY'
import csv, json, sys
rows = list(csv.DictReader(open(sys.argv[1])))
exp = json.load(open(sys.argv[2]))
got = [float(r["loss"]) for r in rows if r.get("loss", "").strip()]
want = exp["losses"]
assert len(got) == len(want), "logged %d step losses, expected %d" % (len(got), len(want))
worst = max(range(len(want)), key=lambda i: abs(got[i] - want[i]))
err = abs(got[worst] - want[worst])
print("max |loss - torch| = %.2e at step %d (got %.6f, torch %.6f)" % (err, worst + 1, got[worst], want[worst]))
assert err <= 1e-4, "parity broken"
print("1 passed, 0 failed")
PY
