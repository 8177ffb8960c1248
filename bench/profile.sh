#!/usr/bin/env bash
# Where the training steps' time goes (issue 19): `perf record` of the rlhf side of the bert-base and bert-mini
# reward steps and the GPT-2-small causal-LM step, samples split into forward / backward / optimizer by the
# benches' BENCH_MARKS timestamps and grouped by kernel, with achieved GFLOP/s (GEMMs) or GB/s (memory-bound
# passes, bytes counted analytically) against the peaks of bench/system.sh (bench/results/system.json; run
# that section first). Prints markdown. usage: bench/profile.sh BUILD_DIR
set -euo pipefail
BUILD=${1:-build}
. bench/lib.sh
command -v perf >/dev/null || { echo "profile.sh: perf not installed (linux-perf)" >&2; exit 1; }
W=$(mktemp -d -t rlhf-bench-profile.XXXXXX)
trap 'rm -rf "$W"' EXIT
prof() { # name kind args...
  local name=$1; shift
  BENCH_MARKS=1 timed perf record -q -k CLOCK_MONOTONIC -F 999 -o "$W/$name.data" -- "$@" >"$W/$name.json" 2>"$W/$name.marks"
  perf script -i "$W/$name.data" -F time,ip,sym,dso 2>/dev/null | /usr/bin/python3 bench/profile_table.py "$name" \
    "$W/$name.marks" "$W/$name.json" bench/results/system.json >"$W/$name.md"
}
prof bert-base "$BUILD/bench_reward_step" 768 12 12 3072 256 8 2 0.1
prof bert-mini "$BUILD/bench_reward_step" 256 4 4 1024 128 8 4 0.1
prof gpt2-small "$BUILD/bench_decoder" train 768 12 12 4 128 2
echo "## Where the time goes: roofline per phase (issue 19)"
echo
echo "\`perf record -F 999 -k CLOCK_MONOTONIC\` of the rlhf benches (OMP_NUM_THREADS=$THREADS), one warm-up step then the"
echo "timed steps; samples (both threads) are split into forward / backward / optimizer by the timestamps the benches print"
echo "with BENCH_MARKS=1, grouped by kernel, and turned into seconds per step as (share of the phase's samples) x (the"
echo "phase's wall time). GEMM = everything inside OpenBLAS (packing included; the attention score and context GEMMs"
echo "too); its GFLOP/s uses the step's analytic FLOPs (2 M N K per GEMM; backward = 2 x forward) against the best"
echo "sgemm rate of bench/system.sh. Memory-bound passes: GB/s from the bytes each pass must read and write (analytic,"
echo "fp32), against the triad bandwidth. \"OpenMP\" is time in libgomp (barriers, threads waiting for each other)."
echo
for n in bert-base bert-mini gpt2-small; do cat "$W/$n.md"; echo; done
