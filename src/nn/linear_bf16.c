// bf16-weight dense layers and embeddings (see linear_bf16.h): widen a panel of the weight into fp32
// scratch, then the fp32 op (linear_forward / conv1d_forward) on it.
#include "nn/linear_bf16.h"

#include <string.h>

#include "nn/nn_internal.h"
#include "nn/ops.h"

static inline float bf16_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

void bf16_to_f32(float *dst, const uint16_t *src, size_t n) {
#pragma omp parallel for schedule(static) if (n > NN_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) dst[i] = bf16_f32(src[i]);
}

// Output columns per panel: whole rows (Linear) or whole columns (Conv1D) of the weight, each C long.
static int panel_cols(int C, int OC, size_t panel) {
    size_t p = panel / (size_t)(C > 0 ? C : 1);
    if (p < 1) p = 1;
    return p >= (size_t)OC ? OC : (int)p;
}

size_t linear_bf16_scratch(int N, int C, int OC, size_t panel) {
    int P = panel_cols(C, OC, panel);
    size_t w = (size_t)P * C;
    return P == OC ? w : w + (size_t)N * P;  // a partial panel writes its outputs to scratch first
}

void linear_bf16_forward(float *out, const float *inp, const uint16_t *weight, const float *bias, int N, int C,
                         int OC, int conv1d, float *scratch, size_t panel) {
    if (N <= 0 || OC <= 0) return;
    const int P = panel_cols(C, OC, panel);
    float *w = scratch;
    if (P == OC) {  // the whole weight: exactly the fp32 op
        bf16_to_f32(w, weight, (size_t)OC * C);
        if (conv1d)
            conv1d_forward(out, inp, w, bias, N, C, OC);
        else
            linear_forward(out, inp, w, bias, N, C, OC);
        return;
    }
    float *tmp = scratch + (size_t)P * C;  // (N, P) outputs of one panel
    for (int j0 = 0; j0 < OC; j0 += P) {
        const int np = OC - j0 < P ? OC - j0 : P;
        if (conv1d) {  // columns j0 .. j0+np of W (C, OC) -> (C, np)
#pragma omp parallel for schedule(static) if ((size_t)C * np > NN_PARALLEL_MIN)
            for (int c = 0; c < C; c++)
                for (int j = 0; j < np; j++) w[(size_t)c * np + j] = bf16_f32(weight[(size_t)c * OC + j0 + j]);
            conv1d_forward(tmp, inp, w, bias ? bias + j0 : NULL, N, C, np);
        } else {  // rows j0 .. j0+np of W (OC, C)
            bf16_to_f32(w, weight + (size_t)j0 * C, (size_t)np * C);
            linear_forward(tmp, inp, w, bias ? bias + j0 : NULL, N, C, np);
        }
#pragma omp parallel for schedule(static) if ((size_t)N * np > NN_PARALLEL_MIN)
        for (int n = 0; n < N; n++) memcpy(out + (size_t)n * OC + j0, tmp + (size_t)n * np, (size_t)np * sizeof(float));
    }
}

void embedding_bf16_forward(float *out, const int32_t *ids, const uint16_t *table, int N, int C) {
#pragma omp parallel for schedule(static) if ((int64_t)N * C > NN_PARALLEL_MIN)
    for (int n = 0; n < N; n++) {
        const uint16_t *row = table + (size_t)ids[n] * C;
        float *o = out + (size_t)n * C;
        for (int c = 0; c < C; c++) o[c] = bf16_f32(row[c]);
    }
}
