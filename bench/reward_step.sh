#!/usr/bin/env bash
# Reward-model training step, rlhf vs PyTorch, same shapes, same machine, same thread count, interleaved runs.
# Prints a markdown section. usage: bench/reward_step.sh BUILD_DIR
set -euo pipefail
BUILD=${1:-build}
. bench/lib.sh
row() { # name H L NH I T P STEPS DROPOUT
  local name=$1; shift
  interleave "$name (H $1, L $2, T $5, $6 pairs, dropout $8)" pairs_per_s higher \
    "'$BUILD/bench_reward_step' $*" "/usr/bin/python3 bench/torch_reward_step.py $1 $2 $3 $4 $5 $6 $7 $THREADS $8"
}
echo "## Reward-model training step (issues 4, 19)"
echo
echo "One step = chosen + rejected of every pair in one forward (2P rows of T tokens), pairwise loss, backward,"
echo "clipping, AdamW; BertForSequenceClassification, vocabulary 30522, dropout as given (hidden and attention"
echo "probabilities, both sides). One warm-up step, then the mean of STEPS steps. PyTorch"
echo "$(/usr/bin/python3 -c 'import torch; print(torch.__version__)') with the same OpenMP OpenBLAS, torch.set_num_threads($THREADS); rlhf with OMP_NUM_THREADS=$THREADS;"
echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-auto} for both."
interleave_note
echo
interleave_header pairs/s
row bert-base 768 12 12 3072 256 8 2 0
row bert-base 768 12 12 3072 256 8 2 0.1
row bert-mini 256 4 4 1024 128 8 5 0.1
row bert-mini 256 4 4 1024 256 8 5 0.1
echo
