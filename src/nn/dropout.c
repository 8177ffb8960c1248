// Inverted dropout whose mask is a pure function of (key, element index) (see nn_internal.h), so
// the backward regenerates it instead of storing it and results never depend on thread count.
#include <string.h>

#include "nn/nn_internal.h"
#include "nn/ops.h"

// Elements per mask block: a multiple of 4 so blocks start on a Philox block boundary.
#define DROPOUT_BLOCK 1024

float dropout_scale_at(uint64_t key, int64_t i, float p) {
    float s;
    if (p <= 0.0f) return 1.0f;
    if (p >= 1.0f) return 0.0f;
    nn_dropout_mask(&s, key, i, 1, p);
    return s;
}

// out = inp * mask of elements first.. (dinp += dout * mask when accumulate), over blocks of DROPOUT_BLOCK
static void apply_mask(float *out, const float *inp, float p, uint64_t key, int64_t first, int64_t n, int accumulate) {
    int64_t nblocks = (n + DROPOUT_BLOCK - 1) / DROPOUT_BLOCK;
#pragma omp parallel for if (n > NN_PARALLEL_MIN / 4)
    for (int64_t bi = 0; bi < nblocks; bi++) {
        float scale[DROPOUT_BLOCK];
        int64_t i0 = bi * DROPOUT_BLOCK, len = n - i0 < DROPOUT_BLOCK ? n - i0 : DROPOUT_BLOCK;
        nn_dropout_mask(scale, key, first + i0, len, p);
        if (accumulate)
#pragma omp simd
            for (int64_t j = 0; j < len; j++) out[i0 + j] += inp[i0 + j] * scale[j];
        else
#pragma omp simd
            for (int64_t j = 0; j < len; j++) out[i0 + j] = inp[i0 + j] * scale[j];
    }
}

void dropout_forward(float *out, const float *inp, float p, uint64_t key, int64_t n) {
    if (p <= 0.0f) {
        if (out != inp) memmove(out, inp, sizeof(float) * (size_t)n);
        return;
    }
    if (p >= 1.0f) {   // torch: everything dropped
        memset(out, 0, sizeof(float) * (size_t)n);
        return;
    }
    apply_mask(out, inp, p, key, 0, n, 0);
}

void dropout_backward(float *dinp, const float *dout, float p, uint64_t key, int64_t n) {
    if (p >= 1.0f) return;
    if (p <= 0.0f) {
#pragma omp parallel for simd if (parallel : n > NN_PARALLEL_MIN)
        for (int64_t i = 0; i < n; i++) dinp[i] += dout[i];
        return;
    }
    apply_mask(dinp, dout, p, key, 0, n, 1);
}

void dropout_rows_forward(float *out, const float *inp, float p, uint64_t key, const int64_t *pos, int B, int T,
                          int Tg, int64_t per_t) {
    const int64_t row = (int64_t)T * per_t;
    if (!pos || p <= 0.0f || p >= 1.0f) {
        dropout_forward(out, inp, p, key, (int64_t)B * row);
        return;
    }
    for (int b = 0; b < B; b++)
        apply_mask(out + (int64_t)b * row, inp + (int64_t)b * row, p, key, pos[b] * Tg * per_t, row, 0);
}

void dropout_rows_backward(float *dinp, const float *dout, float p, uint64_t key, const int64_t *pos, int B, int T,
                           int Tg, int64_t per_t) {
    const int64_t row = (int64_t)T * per_t;
    if (!pos || p <= 0.0f || p >= 1.0f) {
        dropout_backward(dinp, dout, p, key, (int64_t)B * row);
        return;
    }
    for (int b = 0; b < B; b++)
        apply_mask(dinp + (int64_t)b * row, dout + (int64_t)b * row, p, key, pos[b] * Tg * per_t, row, 1);
}
