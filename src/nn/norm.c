// LayerNorm (torch: biased variance, eps inside the sqrt) and Llama's RMSNorm (HF LlamaRMSNorm:
// weight * (x * rsqrt(mean(x^2) + eps)) in fp32). Row statistics are accumulated in double so the
// result tracks torch's to float rounding; weight/bias gradients are column sums done by column
// chunks (rows in fixed order), the input gradient by rows: no atomics, bit-deterministic.
#include <math.h>

#include "nn/nn_internal.h"
#include "nn/ops.h"

// Columns per parallel chunk of the weight-gradient column sums.
#define NORM_COL_CHUNK 64

// One output row of LayerNorm from its statistics: o = (x - m) * r * weight + bias. layernorm_forward and
// layernorm_apply both use it, so an output recomputed from kept statistics is bit-identical.
static inline void ln_row_apply(float *o, const float *x, float m, float r, const float *weight, const float *bias,
                                int C) {
#pragma omp simd
    for (int c = 0; c < C; c++) {
        float y = (x[c] - m) * r;
        if (weight) y *= weight[c];
        if (bias) y += bias[c];
        o[c] = y;
    }
}

// out, inp: (N, C); mean, rstd: (N); weight, bias: (C) (either may be NULL: identity)
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                       const float *bias, int N, int C, float eps) {
#pragma omp parallel for if ((int64_t)N * C > NN_PARALLEL_MIN)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (int64_t)n * C;
        float *o = out + (int64_t)n * C;
        double s = 0.0;
#pragma omp simd reduction(+ : s)
        for (int c = 0; c < C; c++) s += x[c];
        float m = (float)(s / C);
        double v = 0.0;
#pragma omp simd reduction(+ : v)
        for (int c = 0; c < C; c++) {
            double d = (double)x[c] - m;
            v += d * d;
        }
        float r = (float)(1.0 / sqrt(v / C + (double)eps));
        ln_row_apply(o, x, m, r, weight, bias, C);
        if (mean) mean[n] = m;
        if (rstd) rstd[n] = r;
    }
}

// out (N, C) = layernorm_forward's output recomputed from its input and the mean / rstd it kept (bit-identical)
void layernorm_apply(float *out, const float *inp, const float *mean, const float *rstd, const float *weight,
                     const float *bias, int N, int C) {
#pragma omp parallel for if ((int64_t)N * C > NN_PARALLEL_MIN)
    for (int n = 0; n < N; n++)
        ln_row_apply(out + (int64_t)n * C, inp + (int64_t)n * C, mean[n], rstd[n], weight, bias, C);
}

// dinp += rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dout * weight, xhat = (x - mean) * rstd
void layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                        const float *weight, const float *mean, const float *rstd, int N, int C) {
    int par = (int64_t)N * C > NN_PARALLEL_MIN;
    if (dweight || dbias) {
        int nchunks = (C + NORM_COL_CHUNK - 1) / NORM_COL_CHUNK;
#pragma omp parallel for if (par)
        for (int ch = 0; ch < nchunks; ch++) {
            int c0 = ch * NORM_COL_CHUNK, c1 = c0 + NORM_COL_CHUNK < C ? c0 + NORM_COL_CHUNK : C;
            for (int n = 0; n < N; n++) {
                const float *x = inp + (int64_t)n * C, *g = dout + (int64_t)n * C;
                float m = mean[n], r = rstd[n];
#pragma omp simd
                for (int c = c0; c < c1; c++) {
                    if (dweight) dweight[c] += g[c] * ((x[c] - m) * r);
                    if (dbias) dbias[c] += g[c];
                }
            }
        }
    }
    if (!dinp) return;
#pragma omp parallel for if (par)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (int64_t)n * C, *g = dout + (int64_t)n * C;
        float *dx = dinp + (int64_t)n * C;
        float m = mean[n], r = rstd[n];
        double sg = 0.0, sgx = 0.0;
#pragma omp simd reduction(+ : sg, sgx)
        for (int c = 0; c < C; c++) {
            float gw = weight ? g[c] * weight[c] : g[c];
            sg += gw;
            sgx += (double)gw * ((x[c] - m) * r);
        }
        float mg = (float)(sg / C), mgx = (float)(sgx / C);
#pragma omp simd
        for (int c = 0; c < C; c++) {
            float gw = weight ? g[c] * weight[c] : g[c];
            float xhat = (x[c] - m) * r;
            dx[c] += r * (gw - mg - xhat * mgx);
        }
    }
}

// out, inp: (N, C); rstd: (N); weight: (C). The scale is offset + weight (Llama 0, Gemma 1).
static void rmsnorm_fwd(float *out, float *rstd, const float *inp, const float *weight, float offset, int N, int C,
                        float eps) {
#pragma omp parallel for if ((int64_t)N * C > NN_PARALLEL_MIN)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (int64_t)n * C;
        float *o = out + (int64_t)n * C;
        double ss = 0.0;
#pragma omp simd reduction(+ : ss)
        for (int c = 0; c < C; c++) ss += (double)x[c] * x[c];
        float r = (float)(1.0 / sqrt(ss / C + (double)eps));
        // HF order: the normalised value is rounded to fp32 before the weight (Gemma: 1 + weight in fp32)
        // multiplies it
#pragma omp simd
        for (int c = 0; c < C; c++) o[c] = weight ? (offset + weight[c]) * (x[c] * r) : x[c] * r;
        if (rstd) rstd[n] = r;
    }
}

// y = s * x * r, s = offset + w, r = (mean(x^2) + eps)^-1/2: dx = r * (g - x * r^2 * mean(g * x)), g = dout * s;
// dw = dout * x * r
static void rmsnorm_bwd(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight,
                        float offset, const float *rstd, int N, int C) {
    int par = (int64_t)N * C > NN_PARALLEL_MIN;
    if (dweight) {
        int nchunks = (C + NORM_COL_CHUNK - 1) / NORM_COL_CHUNK;
#pragma omp parallel for if (par)
        for (int ch = 0; ch < nchunks; ch++) {
            int c0 = ch * NORM_COL_CHUNK, c1 = c0 + NORM_COL_CHUNK < C ? c0 + NORM_COL_CHUNK : C;
            for (int n = 0; n < N; n++) {
                const float *x = inp + (int64_t)n * C, *g = dout + (int64_t)n * C;
                float r = rstd[n];
#pragma omp simd
                for (int c = c0; c < c1; c++) dweight[c] += g[c] * (x[c] * r);
            }
        }
    }
    if (!dinp) return;
#pragma omp parallel for if (par)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (int64_t)n * C, *g = dout + (int64_t)n * C;
        float *dx = dinp + (int64_t)n * C;
        float r = rstd[n];
        double sgx = 0.0;
#pragma omp simd reduction(+ : sgx)
        for (int c = 0; c < C; c++) sgx += (double)(weight ? g[c] * (offset + weight[c]) : g[c]) * x[c];
        float k = (float)(sgx / C) * r * r;
#pragma omp simd
        for (int c = 0; c < C; c++) {
            float gw = weight ? g[c] * (offset + weight[c]) : g[c];
            dx[c] += r * (gw - x[c] * k);
        }
    }
}

void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, int N, int C, float eps) {
    rmsnorm_fwd(out, rstd, inp, weight, 0.0f, N, C, eps);
}
void rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight,
                      const float *rstd, int N, int C) {
    rmsnorm_bwd(dinp, dweight, dout, inp, weight, 0.0f, rstd, N, C);
}
void rmsnorm1p_forward(float *out, float *rstd, const float *inp, const float *weight, int N, int C, float eps) {
    rmsnorm_fwd(out, rstd, inp, weight, 1.0f, N, C, eps);
}
void rmsnorm1p_backward(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight,
                        const float *rstd, int N, int C) {
    rmsnorm_bwd(dinp, dweight, dout, inp, weight, 1.0f, rstd, N, C);
}
