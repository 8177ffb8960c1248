# shellcheck shell=bash
# Helpers shared by the bench sections (source it; BUILD and THREADS set by the caller).
#   interleave NAME METRIC DIRECTION CMD_RLHF CMD_TORCH
# runs CMD_RLHF, CMD_TORCH, CMD_RLHF, CMD_TORCH, ... REPS times each (default 3), each printing one JSON line
# with METRIC and peak_rss_mb, and prints one markdown row: the median of each side with its min-max spread,
# the ratio of the medians (rlhf faster > 1) with the range of the per-pair ratios, peak RSS of each side
# (largest of the runs) and rlhf's RSS as a share of PyTorch's. DIRECTION: "higher" (rates) or "lower"
# (seconds). Every raw JSON line is kept in bench/results/raw/<section>.jsonl for the record.
REPS=${REPS:-3}
THREADS=${THREADS:-$(nproc)}
export OMP_NUM_THREADS=$THREADS
# Both sides get OpenBLAS's AVX-512 kernels: Debian's OpenBLAS misdetects recent Xeons (see src/main.c).
if grep -q avx512bw /proc/cpuinfo && [ -z "${OPENBLAS_CORETYPE:-}" ]; then export OPENBLAS_CORETYPE=SkylakeX; fi
BENCH_RAW=${BENCH_RAW:-/dev/null}
# timed CMD...: runs CMD holding `flock $BENCH_LOCK` when BENCH_LOCK is set (one shared machine, many users).
# With BENCH_AUTOGROUP_NICE=N (root, shared machines only) CMD runs in its own session whose scheduler autogroup
# gets nice N: with kernel.sched_autogroup_enabled=1 (Debian's default) `nice -n 19` on other users' builds
# does not lower their share against a timed run started from another session (each session is one group and
# groups share the CPU equally), so without this a "quiet" timing still loses most of the cores to them.
timed() {
  local pre=()
  [ -n "${BENCH_LOCK:-}" ] && pre=(flock "$BENCH_LOCK")
  if [ -n "${BENCH_AUTOGROUP_NICE:-}" ]; then
    "${pre[@]}" setsid -w sh -c 'echo "$0" >/proc/self/autogroup && exec "$@"' "$BENCH_AUTOGROUP_NICE" "$@"
  else
    "${pre[@]}" "$@"
  fi
}

interleave() {
  local name=$1 metric=$2 dir=$3 a=$4 b=$5 fa fb i
  fa=$(mktemp) fb=$(mktemp)
  for ((i = 0; i < REPS; i++)); do
    eval "timed $a" >>"$fa" || echo '{"failed": 1}' >>"$fa"
    eval "timed $b" >>"$fb" || echo '{"failed": 1}' >>"$fb"
  done
  { sed "s/^/{\"row\": \"$name\", \"side\": \"rlhf\", \"run\": /; s/\$/}/" "$fa"
    sed "s/^/{\"row\": \"$name\", \"side\": \"torch\", \"run\": /; s/\$/}/" "$fb"; } >>"$BENCH_RAW"
  /usr/bin/python3 bench/stats.py "$name" "$metric" "$dir" "$fa" "$fb"
  rm -f "$fa" "$fb"
}

# The header that goes with interleave's rows; $1 = the metric's column title, e.g. "pairs/s".
interleave_header() {
  echo "| shape | rlhf $1 | PyTorch $1 | speed ratio | rlhf peak RSS MiB | PyTorch peak RSS MiB | RSS ratio |"
  echo "|---|---|---|---|---|---|---|"
}

interleave_note() {
  echo "Each cell: median of $REPS runs per side, interleaved (rlhf, PyTorch, rlhf, ...), with [min-max]; the"
  echo "speed ratio is median over median (> 1: rlhf faster) with [the range of the per-pair ratios]; peak RSS"
  echo "is the largest of the runs (whole process); the RSS ratio is rlhf's over PyTorch's."
}
