// Dense layers: nn.Linear (weight (OC, C)) and GPT-2's Conv1D (weight (C, OC)), all through
// cblas_sgemm. These are called outside OpenMP regions with big matrices, so OpenBLAS threads them;
// the bias gradient is a column sum done by columns so every element sums its rows in fixed order.
#include <cblas.h>
#include <stdlib.h>

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

// Few rows (token-by-token decoding: N = batch size) make sgemm spend its time packing the whole weight
// matrix for a handful of output rows; reading each weight row once and finishing every output that needs
// it is memory-bound optimal there. Each output is summed by one thread in a fixed order: deterministic.
#define SMALL_N_ROWS 16

// out: (N, OC) (+)= inp: (N, C) . weight rows: (OC, C)
static void linear_forward_small_n(float *out, const float *inp, const float *weight, int N, int C, int OC,
                                   int accumulate) {
#pragma omp parallel for schedule(static) if ((int64_t)OC * C > NN_PARALLEL_MIN)
    for (int j = 0; j < OC; j++) {
        const float *w = weight + (int64_t)j * C;
        for (int n = 0; n < N; n++) {
            const float *x = inp + (int64_t)n * C;
            float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
            for (int c = 0; c < C; c++) acc += x[c] * w[c];
            out[(int64_t)n * OC + j] = accumulate ? out[(int64_t)n * OC + j] + acc : acc;
        }
    }
}

// out: (N, OC) (+)= inp: (N, C) @ weight: (C, OC) — GPT-2's Conv1D layout. Rows go in blocks of
// SMALL_N_ROW_BLOCK (missing rows read zeros) and columns in chunks of SMALL_N_COL_CHUNK, so the
// accumulators of a block (8 x 32 floats) stay in registers while the weight streams through once.
#define SMALL_N_ROW_BLOCK 8
#define SMALL_N_COL_CHUNK 32
static void conv1d_forward_small_n(float *out, const float *inp, const float *weight, int N, int C, int OC,
                                   int accumulate) {
    int nchunks = (OC + SMALL_N_COL_CHUNK - 1) / SMALL_N_COL_CHUNK;
    float *xt = malloc(sizeof(float) * (size_t)C * SMALL_N_ROW_BLOCK);  // one row block transposed: (C, 8)
    if (!xt) {  // no room for the block: sgemm needs none
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, OC, C, 1.0f, inp, C, weight, OC,
                    accumulate ? 1.0f : 0.0f, out, OC);
        return;
    }
    for (int n0 = 0; n0 < N; n0 += SMALL_N_ROW_BLOCK) {
        int nb = N - n0 < SMALL_N_ROW_BLOCK ? N - n0 : SMALL_N_ROW_BLOCK;
        for (int c = 0; c < C; c++)  // missing rows read zeros so full blocks run the fixed-size loop
            for (int n = 0; n < SMALL_N_ROW_BLOCK; n++)
                xt[c * SMALL_N_ROW_BLOCK + n] = n < nb ? inp[(int64_t)(n0 + n) * C + c] : 0.0f;
#pragma omp parallel for schedule(static) if ((int64_t)OC * C > NN_PARALLEL_MIN)
        for (int ch = 0; ch < nchunks; ch++) {
            int j0 = ch * SMALL_N_COL_CHUNK, len = OC - j0 < SMALL_N_COL_CHUNK ? OC - j0 : SMALL_N_COL_CHUNK;
            float acc[SMALL_N_ROW_BLOCK][SMALL_N_COL_CHUNK] = {{0}};
            if (len == SMALL_N_COL_CHUNK) {
                for (int c = 0; c < C; c++) {
                    const float *w = weight + (int64_t)c * OC + j0;
                    const float *x = xt + c * SMALL_N_ROW_BLOCK;
                    for (int n = 0; n < SMALL_N_ROW_BLOCK; n++)
#pragma omp simd
                        for (int j = 0; j < SMALL_N_COL_CHUNK; j++) acc[n][j] += x[n] * w[j];
                }
            } else {
                for (int c = 0; c < C; c++) {
                    const float *w = weight + (int64_t)c * OC + j0;
                    for (int n = 0; n < nb; n++)
                        for (int j = 0; j < len; j++) acc[n][j] += xt[c * SMALL_N_ROW_BLOCK + n] * w[j];
                }
            }
            for (int n = 0; n < nb; n++) {
                float *o = out + (int64_t)(n0 + n) * OC + j0;
                for (int j = 0; j < len; j++) o[j] = accumulate ? o[j] + acc[n][j] : acc[n][j];
            }
        }
    }
    free(xt);
}

// out: (N, OC) = inp: (N, C) @ weight^T, weight: (OC, C), + bias: (OC)
void linear_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int C, int OC) {
    if (N <= 0 || OC <= 0) return;
    if (bias) fill_bias(out, bias, N, OC);
    if (N <= SMALL_N_ROWS) {
        linear_forward_small_n(out, inp, weight, N, C, OC, bias != NULL);
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
    if (N <= SMALL_N_ROWS) {
        conv1d_forward_small_n(out, inp, weight, N, C, OC, bias != NULL);
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
