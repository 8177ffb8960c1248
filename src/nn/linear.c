// Dense layers: nn.Linear (weight (OC, C)) and GPT-2's Conv1D (weight (C, OC)), through cblas_sgemm
// (few-row forwards, as in decoding, through linear_small.c). These are called outside OpenMP regions
// with big matrices, so OpenBLAS threads them; the bias gradient is a column sum done by columns so every
// element sums its rows in fixed order.
#include <cblas.h>
#include <stdlib.h>

#include "nn/linear_small.h"
#include "nn/nn_internal.h"
#include "nn/ops.h"

// out: (N, OC) rows each set to bias (or zero) so the sgemm can accumulate with beta = 1
static void fill_bias(float *out, const float *bias, int N, int OC) {
#pragma omp parallel for if ((int64_t)N * OC > NN_PARALLEL_MIN)
    for (int n = 0; n < N; n++) {
        float *o = out + (int64_t)n * OC;
#pragma omp simd
        for (int j = 0; j < OC; j++) o[j] = bias[j];
    }
}

// Columns per parallel chunk of the bias-gradient column sums.
#define BIAS_COL_CHUNK 64

// dbias: (OC) += sum over rows of dout: (N, OC); each column sums its rows in order
static void bias_backward(float *dbias, const float *dout, int N, int OC) {
    int nchunks = (OC + BIAS_COL_CHUNK - 1) / BIAS_COL_CHUNK;
#pragma omp parallel for if ((int64_t)N * OC > NN_PARALLEL_MIN)
    for (int ch = 0; ch < nchunks; ch++) {
        int j0 = ch * BIAS_COL_CHUNK, len = OC - j0 < BIAS_COL_CHUNK ? OC - j0 : BIAS_COL_CHUNK;
        float s[BIAS_COL_CHUNK] = {0};
        for (int n = 0; n < N; n++) {
            const float *g = dout + (int64_t)n * OC + j0;
#pragma omp simd
            for (int j = 0; j < len; j++) s[j] += g[j];
        }
        for (int j = 0; j < len; j++) dbias[j0 + j] += s[j];
    }
}

// out: (N, OC) = inp: (N, C) @ weight^T, weight: (OC, C), + bias: (OC)
void linear_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int C, int OC) {
    if (N <= 0 || OC <= 0) return;
    if (bias) fill_bias(out, bias, N, OC);
    if (N <= LINEAR_SMALL_N) {
        linear_small_n_forward(out, inp, weight, N, C, OC, bias != NULL);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, C, weight, C, bias ? 1.0f : 0.0f,
                out, OC);
}

// dinp: (N, C) += dout @ weight; dweight: (OC, C) += dout^T @ inp; dbias: (OC) += colsum(dout)
void linear_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, int N, int C, int OC) {
    if (N <= 0 || OC <= 0 || C <= 0) return;
    if (dinp)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC, weight, C, 1.0f, dinp, C);
    if (dweight)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dweight, C);
    if (dbias) bias_backward(dbias, dout, N, OC);
}

// out: (N, OC) = inp: (N, C) @ weight, weight: (C, OC), + bias: (OC)
void conv1d_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int C, int OC) {
    if (N <= 0 || OC <= 0) return;
    if (bias) fill_bias(out, bias, N, OC);
    if (N <= LINEAR_SMALL_N) {
        conv1d_small_n_forward(out, inp, weight, N, C, OC, bias != NULL);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, OC, C, 1.0f, inp, C, weight, OC,
                bias ? 1.0f : 0.0f, out, OC);
}

// dinp: (N, C) += dout @ weight^T; dweight: (C, OC) += inp^T @ dout; dbias: (OC) += colsum(dout)
void conv1d_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, int N, int C, int OC) {
    if (N <= 0 || OC <= 0 || C <= 0) return;
    if (dinp)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, C, OC, 1.0f, dout, OC, weight, OC, 1.0f, dinp, C);
    if (dweight)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, C, OC, N, 1.0f, inp, C, dout, OC, 1.0f, dweight, OC);
    if (dbias) bias_backward(dbias, dout, N, OC);
}
