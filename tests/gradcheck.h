// Gradient checks for the nn ops: a double-precision reference forward y = f(x) (all differentiable
// inputs packed in one vector x), the numeric gradient of L = sum_j w[j] y[j] by central differences,
// and a comparison against the op's float backward that names the tensor and prints the worst error.
// Header-only (static functions) so each tests/test_nn_*.c stays one executable.
#ifndef RLHF_TESTS_GRADCHECK_H
#define RLHF_TESTS_GRADCHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "testutil.h"

// Central-difference step: the reference is double, so truncation (h^2) and rounding (eps/h) are
// both ~1e-10, far below the float backward's error.
#define GC_STEP 1e-5
// Float backward vs double numeric gradient: float rounding of O(1) values across a few ops.
#define GC_ATOL 2e-4
#define GC_RTOL 2e-3

typedef void (*gc_forward_fn)(void *ctx, const double *x, double *y);

// grad[i] = dL/dx[i] with L = sum_j w[j] * f(x)[j], by central differences
static inline void gc_numeric_grad(gc_forward_fn f, void *ctx, const double *x0, int n_in, int n_out, const double *w,
                            double *grad) {
    double *x = malloc(sizeof(double) * n_in), *y = malloc(sizeof(double) * n_out);
    memcpy(x, x0, sizeof(double) * n_in);
    for (int i = 0; i < n_in; i++) {
        double keep = x[i], lp = 0.0, lm = 0.0;
        x[i] = keep + GC_STEP;
        f(ctx, x, y);
        for (int j = 0; j < n_out; j++) lp += w[j] * y[j];
        x[i] = keep - GC_STEP;
        f(ctx, x, y);
        for (int j = 0; j < n_out; j++) lm += w[j] * y[j];
        x[i] = keep;
        grad[i] = (lp - lm) / (2.0 * GC_STEP);
    }
    free(x);
    free(y);
}

// Passes when |analytic - numeric| <= atol + rtol * |numeric| everywhere; prints the worst element.
static inline int gc_compare(const char *name, const float *analytic, const double *numeric, int n, double atol,
                      double rtol) {
    int worst = -1;
    double worst_ratio = 0.0;
    for (int i = 0; i < n; i++) {
        double err = fabs((double)analytic[i] - numeric[i]), bound = atol + rtol * fabs(numeric[i]);
        double ratio = err / bound;
        if (!(ratio <= worst_ratio) || worst < 0) {
            worst_ratio = ratio;
            worst = i;
        }
    }
    int ok = n == 0 || worst_ratio <= 1.0;
    if (n > 0)
        fprintf(ok ? stdout : stderr, "%s %s: worst [%d] analytic %.8g numeric %.8g (err/bound %.3g)\n",
                ok ? "ok  " : "FAIL", name, worst, analytic[worst], numeric[worst], worst_ratio);
    CHECK(ok, "gradient %s", name);
    return ok;
}

// Compares a float forward output against the double reference.
static inline int gc_compare_fwd(const char *name, const float *got, const double *want, int n, double atol, double rtol) {
    return gc_compare(name, got, want, n, atol, rtol);
}

// Deterministic test data: normal(0, scale) floats and their double copies.
static inline void gc_fill(float *f, double *d, int n, uint64_t key, float scale) {
    for (int i = 0; i < n; i++) {
        f[i] = scale * rng_normal(key, (uint64_t)i);
        if (d) d[i] = f[i];
    }
}

static inline float *gc_floats(int n) { return calloc((size_t)(n > 0 ? n : 1), sizeof(float)); }
static inline double *gc_doubles(int n) { return calloc((size_t)(n > 0 ? n : 1), sizeof(double)); }

// Random upstream gradient w (float for the op, double for the numeric check).
static inline void gc_weights(float *wf, double *wd, int n, uint64_t key) { gc_fill(wf, wd, n, key ^ 0x5eedull, 1.0f); }

#endif
