#!/usr/bin/env bash
# End-to-end reward-model training on HH-RLHF harmless pairs (issue 5): `rlhf reward` (reading the .jsonl.gz,
# tokenizing, dynamic padding, training one epoch) vs the seed's PyTorch loop (every batch padded to max_length)
# and a dynamic-padding PyTorch loop, same BERT shape and init, same thread count. PyTorch gets its ids
# pre-tokenized (untimed). Prints a markdown section. usage: bench/reward_e2e.sh BUILD_DIR
set -euo pipefail
BUILD=${1:-build}
THREADS=${THREADS:-$(nproc)}
N=${N:-256}            # pairs
MAXLEN=${MAXLEN:-512}  # the seed's max_length
BATCH=${BATCH:-8}
export OMP_NUM_THREADS=$THREADS
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
cat >"$W/cfg.json" <<'JSON'
{"architectures": ["BertForSequenceClassification"], "model_type": "bert", "vocab_size": 30522,
 "hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 1024,
 "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 512,
 "type_vocab_size": 2, "initializer_range": 0.02, "pad_token_id": 0, "num_labels": 1}
JSON
"$BUILD/rlhf" init --config "$W/cfg.json" --tokenizer tests/fixtures/tokenizers/bert-base-uncased \
  --output_dir "$W/init" --seed 1 >/dev/null 2>&1
zcat data/hh-rlhf/harmless-base_test.jsonl.gz | head -n "$N" >"$W/pairs.jsonl" || true  # head closes the pipe
# rlhf: everything from the compressed-format file to the trained model, timed with peak RSS
/usr/bin/time -f "%e %M" -o "$W/rlhf.time" "$BUILD/rlhf" reward --model_name_or_path "$W/init" \
  --dataset_name "$W/pairs.jsonl" --output_dir "$W/out" --max_length "$MAXLEN" --per_device_train_batch_size "$BATCH" \
  --learning_rate 5e-5 --save_strategy no --disable_dropout false --threads "$THREADS" --quiet >/dev/null 2>"$W/rlhf.err"
# the same (prompt, response) pairs as sentence pairs, tokenized by rlhf for the PyTorch side
/usr/bin/python3 - "$W/pairs.jsonl" "$W/tok.in" <<'PY'
import json, sys
CUE = "\n\nAssistant:"
with open(sys.argv[2], "w") as out:
    for line in open(sys.argv[1], encoding="utf-8"):
        row = json.loads(line)
        c, r = row["chosen"], row["rejected"]
        i = 0
        while i < min(len(c), len(r)) and c[i] == r[i]:
            i += 1
        k = c.rfind(CUE, 0, i)
        p = k + len(CUE) if k >= 0 else i
        for resp in (c[p:], r[p:]):
            out.write(json.dumps({"text": c[:p], "pair": resp}) + "\n")
PY
"$BUILD/rlhf" tokenize --tokenizer tests/fixtures/tokenizers/bert-base-uncased --input "$W/tok.in" >"$W/tok.out"
/usr/bin/python3 - "$W/tok.out" "$W/pairs.ids.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
with open(sys.argv[2], "w") as f:
    for i in range(0, len(rows), 2):
        f.write(json.dumps({"chosen": rows[i], "rejected": rows[i + 1]}) + "\n")
PY
read -r secs kb <"$W/rlhf.time"
pad=$(/usr/bin/python3 tools/bench_reward_e2e_torch.py "$W/init" "$W/pairs.ids.jsonl" "$MAXLEN" pad "$BATCH" "$THREADS")
dyn=$(/usr/bin/python3 tools/bench_reward_e2e_torch.py "$W/init" "$W/pairs.ids.jsonl" "$MAXLEN" dynamic "$BATCH" "$THREADS")
echo "## End-to-end reward training on HH-RLHF (issue 5)"
echo
echo "$N harmless-base pairs, one epoch, batch $BATCH pairs, max_length $MAXLEN, BERT H 256 L 4 (random init),"
echo "dropout on, $THREADS threads. rlhf is timed end to end (gzip JSONL, tokenization, training); PyTorch"
echo "$(/usr/bin/python3 -c 'import torch; print(torch.__version__)') gets pre-tokenized ids (tokenization untimed)."
echo
echo "| run | pairs/s | seconds | peak RSS MiB | rlhf speed-up |"
echo "|---|---|---|---|---|"
/usr/bin/python3 - "$N" "$secs" "$kb" "$pad" "$dyn" <<'PY'
import json, sys
n, secs, kb = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
pad, dyn = json.loads(sys.argv[4]), json.loads(sys.argv[5])
ours = n / secs
print("| rlhf reward (dynamic padding) | %.2f | %.1f | %.0f | |" % (ours, secs, kb / 1024))
print("| PyTorch, padded to max_length (seed loop) | %.2f | %.1f | %.0f | %.2fx |" % (
    pad["pairs_per_s"], pad["seconds"], pad["peak_rss_mb"], ours / pad["pairs_per_s"]))
print("| PyTorch, dynamic padding | %.2f | %.1f | %.0f | %.2fx |" % (
    dyn["pairs_per_s"], dyn["seconds"], dyn["peak_rss_mb"], ours / dyn["pairs_per_s"]))
PY
echo
