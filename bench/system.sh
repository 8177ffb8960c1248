#!/usr/bin/env bash
# This machine's roofline (issue 19): OpenBLAS sgemm GFLOP/s with the benchmark's thread count on large squares and
# on the exact GEMM shapes of the training steps, and the stream-like triad / read bandwidth. Prints markdown and
# leaves the numbers in bench/results/system.json for bench/profile.sh. usage: bench/system.sh BUILD_DIR
set -euo pipefail
BUILD=${1:-build}
. bench/lib.sh
out=$(timed "$BUILD/bench_gemm" peak)
echo "$out" >bench/results/system.json
echo "$out" >>"$BENCH_RAW"
echo "## This machine's peaks (issue 19)"
echo
echo "\`bench_gemm peak\`: OpenBLAS (OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-auto}) cblas_sgemm with OMP_NUM_THREADS=$THREADS, best of"
echo ">= 3 calls after a warm-up call; the per-head attention shapes run one GEMM per OpenMP thread as"
echo "src/nn/attention.c does. Bandwidth: a = b + s c over three 128 MiB float arrays (bytes of the three arrays"
echo "per pass) and a read-only sum, best of 5. These are the peaks the roofline tables below compare with."
echo
/usr/bin/python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in sys.argv[1].splitlines() if l.strip()]
print("| GEMM (M x N x K) | step | GFLOP/s |")
print("|---|---|---|")
for r in rows:
    if "gflops" in r:
        print("| %s | %s | %.1f |" % (r["shape"], r.get("step", "-"), r["gflops"]))
for r in rows:
    if "triad_gbs" in r:
        print()
        print("Memory bandwidth: triad %.1f GB/s, read %.1f GB/s." % (r["triad_gbs"], r["read_gbs"]))
PY
echo
