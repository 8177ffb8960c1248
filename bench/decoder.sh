#!/usr/bin/env bash
# GPT-2-shaped generation and training step, rlhf vs PyTorch, same shapes, same machine, same thread
# count, interleaved runs (issues 6, 19). Prints a markdown section. usage: bench/decoder.sh BUILD_DIR
set -euo pipefail
BUILD=${1:-build}
. bench/lib.sh
row() { # name mode C L NH B T K
  local name=$1 mode=$2 C=$3 L=$4 B=$6 T=$7 K=$8 shape
  if [ "$mode" = gen ]; then shape="prompt $T, $K new"; else shape="T $T"; fi
  interleave "$name $mode (C $C, L $L, B $B, $shape)" tokens_per_s higher \
    "'$BUILD/bench_decoder' ${*:2}" "/usr/bin/python3 bench/torch_decoder.py ${*:2} $THREADS"
}
echo "## Causal LM: generation and training step (issues 6, 19)"
echo
echo "GPT2LMHeadModel shapes, vocabulary 50257, random init, no dropout. gen: batched greedy decoding with a KV"
echo "cache (tokens/s = new tokens over the whole generate call, prefill included, after one untimed warm-up call on"
echo "both sides; PyTorch under inference_mode with the lm_head on the last position only, as transformers' generate);"
echo "train: forward, token"
echo "cross-entropy, backward, clipping, AdamW (tokens/s = B*T per step). PyTorch"
echo "$(/usr/bin/python3 -c 'import torch; print(torch.__version__)') runs the same shapes in plain torch with its own KV-cache loop;"
echo "torch.set_num_threads($THREADS), rlhf with OMP_NUM_THREADS=$THREADS."
interleave_note
echo
interleave_header tokens/s
row tiny gen 256 4 4 8 64 48
row gpt2-small gen 768 12 12 8 64 48
row tiny train 128 2 4 8 128 3
row gpt2-small train 768 12 12 4 128 3
echo
