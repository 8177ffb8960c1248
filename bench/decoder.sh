#!/usr/bin/env bash
# GPT-2-shaped generation and training step, rlhf vs PyTorch, same shapes, same machine, same thread
# count, in one run (issue 6). Prints a markdown section. usage: bench/decoder.sh BUILD_DIR
set -euo pipefail
BUILD=${1:-build}
THREADS=${THREADS:-$(nproc)}
export OMP_NUM_THREADS=$THREADS
row() { # name mode C L NH B T K
  local name=$1; shift
  local c t
  c=$("$BUILD/bench_decoder" "$@")
  t=$(/usr/bin/python3 bench/torch_decoder.py "$@" "$THREADS")
  /usr/bin/python3 - "$name" "$c" "$t" "$@" <<'PY'
import json, sys
name, c, t = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
mode, C, L, NH, B, T, K = sys.argv[4:11]
shape = "C %s, L %s, B %s, %s" % (C, L, B, "prompt %s, %s new" % (T, K) if mode == "gen" else "T %s" % T)
print("| %s %s (%s) | %.1f | %.1f | %.2fx | %.0f | %.0f |" % (
    name, mode, shape, c["tokens_per_s"], t["tokens_per_s"], c["tokens_per_s"] / t["tokens_per_s"],
    c["peak_rss_mb"], t["peak_rss_mb"]))
PY
}
echo "## Causal LM: generation and training step (issue 6)"
echo
echo "GPT2LMHeadModel shapes, vocabulary 50257, random init, no dropout. gen: batched greedy decoding with a KV"
echo "cache (tokens/s = new tokens over the whole generate call, prefill included); train: forward, token"
echo "cross-entropy, backward, clipping, AdamW (tokens/s = B*T per step). PyTorch"
echo "$(/usr/bin/python3 -c 'import torch; print(torch.__version__)') runs the same shapes in plain torch with its own KV-cache loop;"
echo "torch.set_num_threads($THREADS), rlhf with OMP_NUM_THREADS=$THREADS."
echo
echo "| shape | rlhf tokens/s | PyTorch tokens/s | ratio | rlhf peak RSS MiB | PyTorch peak RSS MiB |"
echo "|---|---|---|---|---|---|"
row tiny gen 128 2 4 8 64 48
row gpt2-small gen 768 12 12 8 64 48
row tiny train 128 2 4 8 128 3
row gpt2-small train 768 12 12 4 128 2
echo
