#!/usr/bin/env bash
# OpenBLAS against the other GEMM libraries Debian ships (BLIS, oneDNN, libxsmm) on the exact shapes of the
# training steps, same thread count (issue 19). Prints markdown. usage: bench/gemm_libs.sh BUILD_DIR
set -euo pipefail
BUILD=${1:-build}
. bench/lib.sh
export BLIS_NUM_THREADS=$THREADS
out=$(for set in bert-base bert-mini gpt2-small; do timed "$BUILD/bench_gemm" libs $set; done)
echo "$out" >>"$BENCH_RAW"
echo "## GEMM libraries on the steps' shapes (issue 19)"
echo
echo "\`bench_gemm libs\`: row-major sgemm, C = op(A) op(B), best of >= 3 calls after a warm-up, OMP_NUM_THREADS=$THREADS"
echo "(BLIS_NUM_THREADS too). OpenBLAS $(dpkg-query -W -f='${Version}' libopenblas0-openmp 2>/dev/null) (openmp), BLIS"
echo "$(dpkg-query -W -f='${Version}' libblis4-openmp 2>/dev/null) (openmp, cblas_sgemm via dlopen), oneDNN $(dpkg-query -W -f='${Version}' libdnnl2 2>/dev/null) (dnnl_sgemm via dlopen),"
echo "libxsmm $(dpkg-query -W -f='${Version}' libxsmm-dev 2>/dev/null) (libxsmm_sgemm_omp, static; it hands large shapes to the BLAS it is linked with: OpenBLAS)."
echo
/usr/bin/python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in sys.argv[1].splitlines() if l.strip()]
libs = []
shapes = {}
for r in rows:
    if r["lib"] not in libs:
        libs.append(r["lib"])
    shapes.setdefault((r["step"], r["shape"]), {})[r["lib"]] = r["gflops"]
print("| step | GEMM (M x N x K) | " + " | ".join(l + " GFLOP/s" for l in libs) + " | best / OpenBLAS |")
print("|---|---|" + "---|" * len(libs) + "---|")
for (step, shape), v in shapes.items():
    best = max(v, key=v.get)
    print("| %s | %s | %s | %.2fx (%s) |" % (step, shape, " | ".join("%.1f" % v.get(l, 0) for l in libs),
                                          v[best] / v["openblas"], best))
PY
echo
