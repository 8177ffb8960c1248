#!/usr/bin/env bash
# GPT-2-shaped generation and training step, rlhf vs PyTorch, same shapes, same machine, same thread
# count, in one run (issue 6). Prints a markdown section. usage: bench/decoder.sh BUILD_DIR
set -euo pipefail
BUILD=${1:-build}
THREADS=${THREADS:-$(nproc)}
export OMP_NUM_THREADS=$THREADS
REPS=${REPS:-3}
row() { # name mode C L NH B T K: REPS interleaved runs per side (rlhf, PyTorch, rlhf, ...), medians and spread
  local name=$1; shift
  local c="" t="" i
  for ((i = 0; i < REPS; i++)); do
    c="$c $("$BUILD/bench_decoder" "$@")"
    t="$t $(/usr/bin/python3 bench/torch_decoder.py "$@" "$THREADS")"
  done
  /usr/bin/python3 - "$name" "$c" "$t" "$@" <<'PY'
import json, statistics, sys
name = sys.argv[1]
runs = lambda s: [json.loads("{" + x) for x in s.split("{")[1:]]
c, t = runs(sys.argv[2]), runs(sys.argv[3])
mode, C, L, NH, B, T, K = sys.argv[4:11]
med = lambda rs, k: statistics.median(r[k] for r in rs)
spread = lambda rs, k: "%.0f-%.0f" % (min(r[k] for r in rs), max(r[k] for r in rs))
shape = "C %s, L %s, B %s, %s" % (C, L, B, "prompt %s, %s new" % (T, K) if mode == "gen" else "T %s" % T)
print("| %s %s (%s) | %.1f (%s) | %.1f (%s) | %.2fx | %.0f | %.0f |" % (
    name, mode, shape, med(c, "tokens_per_s"), spread(c, "tokens_per_s"), med(t, "tokens_per_s"),
    spread(t, "tokens_per_s"), med(c, "tokens_per_s") / med(t, "tokens_per_s"), med(c, "peak_rss_mb"),
    med(t, "peak_rss_mb")))
PY
}
echo "## Causal LM: generation and training step (issue 6)"
echo
echo "GPT2LMHeadModel shapes, vocabulary 50257, random init, no dropout. gen: batched greedy decoding with a KV"
echo "cache (tokens/s = new tokens over the whole generate call, prefill included, after one untimed warm-up call;"
echo "PyTorch under inference_mode, lm_head on the last position only, as transformers' generate); train: forward, token"
echo "cross-entropy, backward, clipping, AdamW (tokens/s = B*T per step). PyTorch"
echo "$(/usr/bin/python3 -c 'import torch; print(torch.__version__)') runs the same shapes in plain torch with its own KV-cache loop;"
echo "torch.set_num_threads($THREADS), rlhf with OMP_NUM_THREADS=$THREADS. Medians of $REPS interleaved runs per side"
echo "(rlhf, PyTorch, rlhf, ...), the range of the runs in parentheses."
echo
echo "| shape | rlhf tokens/s (range) | PyTorch tokens/s (range) | ratio of medians | rlhf peak RSS MiB | PyTorch peak RSS MiB |"
echo "|---|---|---|---|---|---|"
row tiny gen 256 4 4 8 64 48
row gpt2-small gen 768 12 12 8 64 48
row tiny train 128 2 4 8 128 3
row gpt2-small train 768 12 12 4 128 2
echo
