// Row-wise softmax (max-subtracted, as torch) and its backward. Attention has its own masked copy
// of the forward in attention.c; this one serves heads and losses.
#include <math.h>

#include "nn/nn_internal.h"
#include "nn/ops.h"

// out, inp: (N, C)
void softmax_forward(float *out, const float *inp, int N, int C) {
#pragma omp parallel for if ((int64_t)N * C > NN_PARALLEL_MIN)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (int64_t)n * C;
        float *o = out + (int64_t)n * C;
        float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
        for (int c = 0; c < C; c++) mx = x[c] > mx ? x[c] : mx;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int c = 0; c < C; c++) {
            o[c] = nn_expf(x[c] - mx);
            s += o[c];
        }
        float inv = 1.0f / s;
#pragma omp simd
        for (int c = 0; c < C; c++) o[c] *= inv;
    }
}

// dinp += out * (dout - sum(dout * out)); all (N, C)
void softmax_backward(float *dinp, const float *dout, const float *out, int N, int C) {
#pragma omp parallel for if ((int64_t)N * C > NN_PARALLEL_MIN)
    for (int n = 0; n < N; n++) {
        const float *g = dout + (int64_t)n * C, *y = out + (int64_t)n * C;
        float *d = dinp + (int64_t)n * C;
        float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
        for (int c = 0; c < C; c++) dot += g[c] * y[c];
#pragma omp simd
        for (int c = 0; c < C; c++) d[c] += y[c] * (g[c] - dot);
    }
}
