// GEMM and memory-bandwidth benchmark (issue 19): this machine's sgemm peak and its stream-like triad
// bandwidth (bench/system.sh), and OpenBLAS against the other GEMM libraries Debian ships on the exact shapes of
// the training steps (bench/gemm_libs.sh). Libraries other than OpenBLAS are opened with dlopen (BLIS,
// oneDNN: their BLAS symbols would clash with OpenBLAS's) or linked statically when CMake found them (libxsmm).
// Every GEMM is row-major C (M x N) = op(A) op(B), as src/nn/linear.c and attention.c call them.
// usage: bench_gemm square N         -> one JSON line for an N x N x N GEMM
//        bench_gemm peak            -> JSON lines: {"shape", "gflops"} for square sizes, {"triad_gbs", ...}
//        bench_gemm libs [SET]      -> JSON lines: {"lib", "shape", "gflops"}; SET: all (default) or a step name
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <cblas.h>
#include <dlfcn.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/cpu.h"

#ifdef HAVE_XSMM
#include <libxsmm.h>
#endif

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

typedef struct {
    const char *step, *name;
    char ta, tb;  // 'N' or 'T'
    int M, N, K, batch;  // batch: how many such GEMMs one step does back to back (per-head attention)
} shape;

// bert-base reward step: 8 pairs x 256 tokens = 4096 token rows, H 768, I 3072, 12 heads of 64.
// bert-mini 8 x 128: 2048 rows, H 256, I 1024, 4 heads of 64. GPT-2 small train: 4 x 128 = 512 rows, C 768,
// fused qkv 2304, vocabulary 50257. Linear forward: X W^T (N,T); backward: dX = dY W (N,N), dW = dY^T X (T,N).
static const shape SHAPES[] = {
    {"bert-base", "qkv/out fwd 4096x768x768", 'N', 'T', 4096, 768, 768, 1},
    {"bert-base", "fc1 fwd 4096x3072x768", 'N', 'T', 4096, 3072, 768, 1},
    {"bert-base", "fc2 fwd 4096x768x3072", 'N', 'T', 4096, 768, 3072, 1},
    {"bert-base", "fc1 dX 4096x768x3072", 'N', 'N', 4096, 768, 3072, 1},
    {"bert-base", "fc1 dW 3072x768x4096", 'T', 'N', 3072, 768, 4096, 1},
    {"bert-base", "fc2 dW 768x3072x4096", 'T', 'N', 768, 3072, 4096, 1},
    {"bert-base", "attn QK^T 256x256x64 (x192)", 'N', 'T', 256, 256, 64, 192},
    {"bert-base", "attn PV 256x64x256 (x192)", 'N', 'N', 256, 64, 256, 192},
    {"bert-mini", "qkv fwd 2048x256x256", 'N', 'T', 2048, 256, 256, 1},
    {"bert-mini", "fc1 fwd 2048x1024x256", 'N', 'T', 2048, 1024, 256, 1},
    {"bert-mini", "fc2 fwd 2048x256x1024", 'N', 'T', 2048, 256, 1024, 1},
    {"bert-mini", "fc1 dW 1024x256x2048", 'T', 'N', 1024, 256, 2048, 1},
    {"bert-mini", "attn QK^T 128x128x64 (x64)", 'N', 'T', 128, 128, 64, 64},
    {"gpt2-small", "c_attn fwd 512x2304x768", 'N', 'N', 512, 2304, 768, 1},
    {"gpt2-small", "c_fc fwd 512x3072x768", 'N', 'N', 512, 3072, 768, 1},
    {"gpt2-small", "lm_head fwd 512x50257x768", 'N', 'T', 512, 50257, 768, 1},
    {"gpt2-small", "lm_head dX 512x768x50257", 'N', 'N', 512, 768, 50257, 1},
    {"gpt2-small", "lm_head dW 50257x768x512", 'T', 'N', 50257, 768, 512, 1},
};
#define NSHAPES (int)(sizeof SHAPES / sizeof SHAPES[0])

typedef void (*gemm_fn)(char ta, char tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                        float *C, int ldc);

static void gemm_openblas(char ta, char tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                          float *C, int ldc) {
    cblas_sgemm(CblasRowMajor, ta == 'T' ? CblasTrans : CblasNoTrans, tb == 'T' ? CblasTrans : CblasNoTrans, M, N, K,
                1.0f, A, lda, B, ldb, 0.0f, C, ldc);
}

typedef void (*cblas_sgemm_t)(int, int, int, int, int, int, float, const float *, int, const float *, int, float,
                              float *, int);
static cblas_sgemm_t blis_cblas;
static void gemm_blis(char ta, char tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                      float *C, int ldc) {
    blis_cblas(CblasRowMajor, ta == 'T' ? CblasTrans : CblasNoTrans, tb == 'T' ? CblasTrans : CblasNoTrans, M, N, K,
               1.0f, A, lda, B, ldb, 0.0f, C, ldc);
}

typedef int (*dnnl_sgemm_t)(char, char, int64_t, int64_t, int64_t, float, const float *, int64_t, const float *,
                            int64_t, float, float *, int64_t);
static dnnl_sgemm_t dnnl_sgemm_p;
static void gemm_dnnl(char ta, char tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                      float *C, int ldc) {
    dnnl_sgemm_p(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc);  // oneDNN's sgemm is row-major
}

#ifdef HAVE_XSMM
static void gemm_xsmm(char ta, char tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                      float *C, int ldc) {
    // column-major library: C^T = op(B)^T op(A)^T
    libxsmm_blasint m = N, n = M, k = K, la = ldb, lb = lda, lc = ldc;
    float one = 1.0f, zero = 0.0f;
    libxsmm_sgemm_omp(&tb, &ta, &m, &n, &k, &one, B, &la, A, &lb, &zero, C, &lc);
}
#endif

static float *randv(size_t n, unsigned seed) {
    float *p = aligned_alloc(64, ((n * sizeof(float) + 63) / 64) * 64);
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (float)((seed >> 9) & 0xffff) / 65536.0f - 0.5f;
    }
    return p;
}

// Best GFLOP/s of a few repetitions of one shape (batch GEMMs on distinct operands back to back; batched
// attention shapes run one small GEMM per OpenMP thread, as src/nn/attention.c does).
static double time_shape(gemm_fn f, const shape *s, double min_s) {
    int am = s->ta == 'N' ? s->M : s->K, ak = s->ta == 'N' ? s->K : s->M;
    int bk = s->tb == 'N' ? s->K : s->N, bn = s->tb == 'N' ? s->N : s->K;
    size_t na = (size_t)am * ak, nb = (size_t)bk * bn, nc = (size_t)s->M * s->N;
    int nbat = s->batch;
    float *A = randv(na * nbat, 1), *B = randv(nb * nbat, 2), *C = calloc(nc * nbat, sizeof(float));
    double flops = 2.0 * s->M * s->N * s->K * nbat, best = 1e30, total = 0;
    for (int r = 0; r < 50 && (r < 3 || total < min_s); r++) {
        double t0 = now();
        if (nbat == 1) {
            f(s->ta, s->tb, s->M, s->N, s->K, A, ak, B, bn, C, s->N);
        } else {
#pragma omp parallel for schedule(static)
            for (int i = 0; i < nbat; i++)
                f(s->ta, s->tb, s->M, s->N, s->K, A + i * na, ak, B + i * nb, bn, C + i * nc, s->N);
        }
        double dt = now() - t0;
        total += dt;
        if (r > 0 && dt < best) best = dt;  // the first call warms caches and the library's buffers
    }
    free(A), free(B), free(C);
    return flops / best * 1e-9;
}

// Stream-like triad a = b + s c over 3 x 128 MiB, and a read-only sum; best of 5, GB/s counting the bytes
// the loop names (3 arrays for triad, 1 for the read).
static void bandwidth(void) {
    size_t n = (size_t)32 << 20;
    float *a = aligned_alloc(64, n * 4), *b = aligned_alloc(64, n * 4), *c = aligned_alloc(64, n * 4);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) a[i] = 0, b[i] = 1, c[i] = 2;
    double best = 1e30, bestr = 1e30, sum = 0;
    for (int r = 0; r < 6; r++) {
        double t0 = now();
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < n; i++) a[i] = b[i] + 0.5f * c[i];
        double t1 = now();
        double s = 0;
#pragma omp parallel for simd schedule(static) reduction(+ : s)
        for (size_t i = 0; i < n; i++) s += a[i];
        double t2 = now();
        sum += s;
        if (r && t1 - t0 < best) best = t1 - t0;
        if (r && t2 - t1 < bestr) bestr = t2 - t1;
    }
    printf("{\"triad_gbs\": %.2f, \"read_gbs\": %.2f, \"check\": %.0f}\n", 3.0 * n * 4 / best * 1e-9,
           n * 4 / bestr * 1e-9, sum > 0 ? 1.0 : 0.0);
    free(a), free(b), free(c);
}

int main(int argc, char **argv) {
    cpu_flush_denormals();
    if (argc == 3 && !strcmp(argv[1], "square")) {  // one quick square GEMM rate (kernel A/B checks)
        int n = atoi(argv[2]);
        shape s = {"square", "", 'N', 'N', n, n, n, 1};
        printf("{\"shape\": \"square %d\", \"gflops\": %.1f}\n", n, time_shape(gemm_openblas, &s, 1.0));
        return 0;
    }
    if (argc < 2 || (strcmp(argv[1], "peak") && strcmp(argv[1], "libs"))) {
        fprintf(stderr, "usage: bench_gemm peak | libs [all|bert-base|bert-mini|gpt2-small]\n");
        return 2;
    }
    if (!strcmp(argv[1], "peak")) {
        static const int sq[] = {1024, 2048, 4096};
        for (int i = 0; i < 3; i++) {
            shape s = {"square", "", 'N', 'N', sq[i], sq[i], sq[i], 1};
            printf("{\"shape\": \"square %d\", \"gflops\": %.1f}\n", sq[i], time_shape(gemm_openblas, &s, 1.0));
        }
        for (int i = 0; i < NSHAPES; i++)
            printf("{\"step\": \"%s\", \"shape\": \"%s\", \"gflops\": %.1f}\n", SHAPES[i].step, SHAPES[i].name,
                   time_shape(gemm_openblas, &SHAPES[i], 0.3));
        bandwidth();
        return 0;
    }
    const char *set = argc > 2 ? argv[2] : "all";
    struct {
        const char *name;
        gemm_fn f;
    } libs[4];
    int nl = 0;
    libs[nl].name = "openblas", libs[nl++].f = gemm_openblas;
    void *h = dlopen("libblis.so.4", RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (h && (blis_cblas = (cblas_sgemm_t)dlsym(h, "cblas_sgemm"))) libs[nl].name = "blis", libs[nl++].f = gemm_blis;
    else fprintf(stderr, "bench_gemm: no BLIS (%s)\n", dlerror());
    h = dlopen("libdnnl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (h && (dnnl_sgemm_p = (dnnl_sgemm_t)dlsym(h, "dnnl_sgemm"))) libs[nl].name = "onednn", libs[nl++].f = gemm_dnnl;
    else fprintf(stderr, "bench_gemm: no oneDNN (%s)\n", dlerror());
#ifdef HAVE_XSMM
    libxsmm_init();
    libs[nl].name = "libxsmm", libs[nl++].f = gemm_xsmm;
#endif
    for (int i = 0; i < NSHAPES; i++) {
        if (strcmp(set, "all") && strcmp(set, SHAPES[i].step)) continue;
        for (int l = 0; l < nl; l++)
            printf("{\"lib\": \"%s\", \"step\": \"%s\", \"shape\": \"%s\", \"gflops\": %.1f}\n", libs[l].name,
                   SHAPES[i].step, SHAPES[i].name, time_shape(libs[l].f, &SHAPES[i], 0.3));
        fflush(stdout);
    }
    return 0;
}
