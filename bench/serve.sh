#!/usr/bin/env bash
# Reward model as a service (issue 18): `rlhf serve` vs a plain PyTorch HTTP server of the same BERT reward
# model (bench/torch_rm_server.py: one forward per request, as OpenRLHF's serve_rm; tokenization untimed),
# at 1, 8 and 32 concurrent clients (bench/serve_load.py: keep-alive connections, one (prompt, response) row
# per request, texts from data/learn-demo/eval.jsonl), for a bert-mini-size and a bert-base-size model made
# by `rlhf init`. Both servers get THREADS threads; the load generator runs on the same machine.
# Prints a markdown section. usage: bench/serve.sh BUILD_DIR
set -euo pipefail
BUILD=${1:-build}
THREADS=${THREADS:-$(nproc)}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}
PY=/usr/bin/python3
W=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do { kill -KILL "$p" && wait "$p"; } 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT
bert() {  # NAME H L HEADS I
  cat >"$W/$1.json" <<JSON
{"architectures": ["BertForSequenceClassification"], "model_type": "bert", "vocab_size": 30522,
 "hidden_size": $2, "num_hidden_layers": $3, "num_attention_heads": $4, "intermediate_size": $5,
 "max_position_embeddings": 512, "type_vocab_size": 2, "initializer_range": 0.02, "pad_token_id": 0,
 "num_labels": 1}
JSON
  "$BUILD/rlhf" init --config "$W/$1.json" --tokenizer tests/fixtures/tokenizers/bert-base-uncased \
    --output_dir "$W/$1" --seed 1 >/dev/null 2>&1
}
bert mini 256 4 4 1024
bert base 768 12 12 3072
# rows: prompt + chosen of the held-out demo pairs; the PyTorch side gets them pre-tokenized as sentence pairs
$PY - data/learn-demo/eval.jsonl "$W/rows.jsonl" "$W/tok.in" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])][:64]
with open(sys.argv[2], "w") as f, open(sys.argv[3], "w") as g:
    for r in rows:
        f.write(json.dumps({"prompt": r["prompt"], "response": r["chosen"]}) + "\n")
        g.write(json.dumps({"text": r["prompt"], "pair": r["chosen"]}) + "\n")
PY
"$BUILD/rlhf" tokenize --tokenizer "$W/mini" --input "$W/tok.in" --max_length 512 >"$W/tok.out"
$PY - "$W/rows.jsonl" "$W/tok.out" "$W/tok.jsonl" <<'PY'
import json, sys
with open(sys.argv[3], "w") as f:
    for r, t in zip(open(sys.argv[1]), open(sys.argv[2])):
        r, t = json.loads(r), json.loads(t)
        f.write(json.dumps({**r, "input_ids": t["input_ids"], "token_type_ids": t["token_type_ids"]}) + "\n")
PY
ntok=$($PY -c 'import json,sys; v=[len(json.loads(l)["input_ids"]) for l in open(sys.argv[1])]; print("%d-%d, mean %.0f" % (min(v), max(v), sum(v)/len(v)))' "$W/tok.jsonl")

start_rlhf() {  # MODEL -> PORT
  "$BUILD/rlhf" serve --model_name_or_path "$W/$1" --port 0 --threads "$THREADS" --batch_size 32 2>"$W/serve.log" &
  PIDS+=("$!")
  for _ in $(seq 600); do
    PORT=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9]*\) .*|\1|p' "$W/serve.log")
    [ -n "$PORT" ] && return 0
    sleep 0.1
  done
  echo "rlhf serve did not start: $(cat "$W/serve.log")" >&2
  return 1
}
start_torch() {  # MODEL -> PORT
  rm -f "$W/torch.port"
  $PY bench/torch_rm_server.py "$W/$1" "$W/tok.jsonl" "$THREADS" "$W/torch.port" 2>"$W/torch.log" &
  PIDS+=("$!")
  for _ in $(seq 1200); do
    [ -s "$W/torch.port" ] && { PORT=$(cat "$W/torch.port"); return 0; }
    sleep 0.1
  done
  echo "torch server did not start: $(cat "$W/torch.log")" >&2
  return 1
}
stop_last() { local p=${PIDS[-1]}; kill -TERM "$p"; wait "$p" || true; unset 'PIDS[-1]'; }

declare -A RES
load_avg_before=$(cut -d' ' -f1-3 /proc/loadavg)
for m in mini base; do
  secs=$SECONDS_PER_RUN
  [ "$m" = base ] && secs=$((SECONDS_PER_RUN * 2))
  for side in rlhf torch; do
    "start_$side" "$m"
    for c in 1 8 32; do
      RES[$m.$side.$c]=$($PY bench/serve_load.py "$PORT" "$W/rows.jsonl" "$c" "$secs")
    done
    stop_last
  done
done
load_avg_after=$(cut -d' ' -f1-3 /proc/loadavg)

echo "## Reward model as a service (issue 18)"
echo
echo "\`rlhf serve\` (--batch_size 32, --max_wait_ms 5) vs a plain PyTorch $($PY -c 'import torch; print(torch.__version__)') HTTP server"
echo "of the same model (bench/torch_rm_server.py: one forward per request, as OpenRLHF's serve_rm, texts"
echo "pre-tokenized so its tokenization is free); $THREADS threads each. Each client keeps one connection and posts"
echo "one (prompt, response) row ($ntok tokens) at a time for ${SECONDS_PER_RUN} s (bert-base: twice as long); the load"
echo "generator (Python) runs on the same cores. Models: \`rlhf init\` BERT, bert-mini size (H 256, L 4) and"
echo "bert-base size (H 768, L 12). **The machine is shared and was busy (load average $load_avg_before before,"
echo "$load_avg_after after, on $(nproc) cores): every number here, ratios included, is rough.**"
echo
echo "| model | clients | rlhf req/s | rlhf p50 ms | rlhf p99 ms | PyTorch req/s | PyTorch p50 ms | PyTorch p99 ms | req/s ratio |"
echo "|---|---|---|---|---|---|---|---|---|"
for m in mini base; do
  for c in 1 8 32; do
    $PY - "$m" "$c" "${RES[$m.rlhf.$c]}" "${RES[$m.torch.$c]}" <<'PY'
import json, sys
m, c, a, b = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
name = {"mini": "bert-mini (H 256, L 4)", "base": "bert-base (H 768, L 12)"}[m]
err = "" if a["errors"] + b["errors"] == 0 else " (errors: %d / %d)" % (a["errors"], b["errors"])
print("| %s | %s | %.1f | %.0f | %.0f | %.1f | %.0f | %.0f | %.2fx%s |" % (name, c, a["req_per_s"], a["p50_ms"],
      a["p99_ms"], b["req_per_s"], b["p50_ms"], b["p99_ms"], a["req_per_s"] / b["req_per_s"], err))
PY
  done
done
echo
