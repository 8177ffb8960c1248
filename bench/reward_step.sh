#!/usr/bin/env bash
# Reward-model training step, rlhf vs PyTorch, same shapes, same machine, same thread count, in one run.
# Prints a markdown section. usage: bench/reward_step.sh BUILD_DIR
set -euo pipefail
BUILD=${1:-build}
THREADS=${THREADS:-$(nproc)}
export OMP_NUM_THREADS=$THREADS
row() { # name H L NH I T P STEPS
  local name=$1; shift
  local c t
  c=$("$BUILD/bench_reward_step" "$@")
  t=$(/usr/bin/python3 bench/torch_reward_step.py "$@" "$THREADS")
  /usr/bin/python3 - "$name" "$c" "$t" "$@" <<'PY'
import json, sys
name, c, t = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
H, L, NH, I, T, P, S = sys.argv[4:11]
print("| %s (H %s, L %s, T %s, %s pairs) | %.2f | %.2f | %.2fx | %.0f | %.0f |" % (
    name, H, L, T, P, c["pairs_per_s"], t["pairs_per_s"], c["pairs_per_s"] / t["pairs_per_s"],
    c["peak_rss_mb"], t["peak_rss_mb"]))
PY
}
echo "## Reward-model training step (issue 4)"
echo
echo "One step = chosen + rejected of every pair in one forward, pairwise loss, backward, clipping, AdamW;"
echo "BertForSequenceClassification with dropout on, vocabulary 30522. PyTorch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)') with the"
echo "OpenMP OpenBLAS, torch.set_num_threads($THREADS); rlhf with OMP_NUM_THREADS=$THREADS."
echo
echo "| shape | rlhf pairs/s | PyTorch pairs/s | ratio | rlhf peak RSS MiB | PyTorch peak RSS MiB |"
echo "|---|---|---|---|---|---|"
row bert-mini 256 4 4 1024 256 8 5
row bert-base 768 12 12 3072 256 8 2
echo
