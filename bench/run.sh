#!/usr/bin/env bash
# Runs every benchmark section (bench/*.sh other than this one) and rewrites bench/RESULTS.md.
# usage: bench/run.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
# Both sides get OpenBLAS's AVX-512 kernels: Debian's OpenBLAS misdetects recent Xeons (see src/main.c).
if grep -q avx512bw /proc/cpuinfo && [ -z "${OPENBLAS_CORETYPE:-}" ]; then export OPENBLAS_CORETYPE=SkylakeX; fi
out=bench/RESULTS.md.tmp
{
  echo "# Benchmark results"
  echo
  echo "Written by \`make bench\` on $(date -u +%Y-%m-%d): $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'),"
  echo "$(free -g | awk '/Mem:/{print $2}') GiB. Ratios > 1 mean rlhf is faster."
  echo
  for s in bench/*.sh; do
    [ "$s" = bench/run.sh ] && continue
    echo "running $s" >&2
    bash "$s" "$BUILD" || echo "(section $s failed: exit $?)"
  done
} >"$out"
mv "$out" bench/RESULTS.md
echo "wrote bench/RESULTS.md" >&2
