// Token / position embedding lookup. The backward is a scatter-add: rows may repeat, so it is
// parallelised over feature columns (each thread owns columns and walks the tokens in order),
// which keeps it free of races and bit-deterministic.
#include <string.h>

#include "nn/nn_internal.h"
#include "nn/ops.h"

// Columns per parallel chunk of the scatter-add: a cache line's worth per token row.
#define EMB_COL_CHUNK 64

// out: (N, C) = table[ids[n]]; table: (V, C). ids are validated by the caller (tokenizer / dataset).
void embedding_forward(float *out, const int32_t *ids, const float *table, int N, int C) {
#pragma omp parallel for if ((int64_t)N * C > NN_PARALLEL_MIN)
    for (int n = 0; n < N; n++) memcpy(out + (int64_t)n * C, table + (int64_t)ids[n] * C, sizeof(float) * C);
}

// dtable: (V, C) += scatter of dout: (N, C) by ids; rows with ids == padding_idx get nothing
void embedding_backward(float *dtable, const float *dout, const int32_t *ids, int N, int C, int padding_idx) {
    int nchunks = (C + EMB_COL_CHUNK - 1) / EMB_COL_CHUNK;
#pragma omp parallel for if ((int64_t)N * C > NN_PARALLEL_MIN)
    for (int ch = 0; ch < nchunks; ch++) {
        int c0 = ch * EMB_COL_CHUNK, c1 = c0 + EMB_COL_CHUNK < C ? c0 + EMB_COL_CHUNK : C;
        for (int n = 0; n < N; n++) {
            if (ids[n] == padding_idx) continue;
            float *d = dtable + (int64_t)ids[n] * C;
            const float *g = dout + (int64_t)n * C;
#pragma omp simd
            for (int c = c0; c < c1; c++) d[c] += g[c];
        }
    }
}
