// DeBERTa's disentangled self-attention (He et al. 2021; transformers' DisentangledSelfAttention
// with share_att_key): scores = (q_i.k_j + q_i.PK[idx_ij] + k_j.PQ[idx_ij]) / sqrt(HD * factor), where
// PK / PQ are the key / query projections of the relative-position embeddings and idx_ij the
// log-bucketed relative position i - j shifted into [0, 2 span). Masking follows XSoftmax: a pair is
// visible only if both tokens are real; rows of padding queries are all zero.
#include "models/encoder_disentangled.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"

// make_log_bucket_position + build_relative_position + the clamp of disentangled_attention_bias,
// in float32 as torch computes it.
void disentangled_rel_index(int32_t *idx, int T, int buckets, int max_rel, int span) {
    for (int i = 0; i < T; i++)
        for (int j = 0; j < T; j++) {
            int rel = i - j;
            if (buckets > 0 && max_rel > 0) {
                int mid = buckets / 2;
                int sign = (rel > 0) - (rel < 0);
                int abs_pos = (rel < mid && rel > -mid) ? mid - 1 : abs(rel);
                if (abs_pos > mid) {
                    float log_pos = ceilf(logf((float)abs_pos / (float)mid) / logf((float)(max_rel - 1) / (float)mid) *
                                          (float)(mid - 1)) + (float)mid;
                    rel = (int)log_pos * sign;
                }
            }
            int r = rel + span;
            idx[i * T + j] = r < 0 ? 0 : r > 2 * span - 1 ? 2 * span - 1 : r;
        }
}

static float keep_scale(const disentangled_shape *s, size_t flat) {
    if (s->dropout_p <= 0) return 1.0f;
    return rng_uniform(s->dropout_key, flat) < s->dropout_p ? 0.0f : 1.0f / (1.0f - s->dropout_p);
}

void disentangled_attention_forward(float *ctx, float *probs, const float *q, const float *k, const float *v,
                                    const float *pk, const float *pq, const int32_t *idx, const int32_t *mask,
                                    const disentangled_shape *s) {
    const int B = s->B, T = s->T, NH = s->NH, HD = s->HD, R2 = s->R2, C = NH * HD;
#pragma omp parallel
    {
        float *A = malloc(sizeof(float) * ((size_t)2 * T * R2 + (size_t)T * T));
        float *Bm = A + (size_t)T * R2, *pd = Bm + (size_t)T * R2;
#pragma omp for collapse(2) schedule(dynamic, 1)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < NH; h++) {
                const float *qb = q + (size_t)b * T * C + h * HD, *kb = k + (size_t)b * T * C + h * HD;
                const float *vb = v + (size_t)b * T * C + h * HD;
                const int32_t *mb = mask + (size_t)b * T;
                float *P = probs + ((size_t)b * NH + h) * T * T;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, HD, s->scale, qb, C, kb, C, 0.0f, P, T);
                if (s->c2p) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, R2, HD, s->scale, qb, C, pk + h * HD, C, 0.0f, A, R2);
                if (s->p2c) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, R2, HD, s->scale, kb, C, pq + h * HD, C, 0.0f, Bm, R2);
                for (int i = 0; i < T; i++) {
                    float *row = P + (size_t)i * T;
                    if (!mb[i]) {
                        memset(row, 0, sizeof(float) * T);
                        memset(pd + (size_t)i * T, 0, sizeof(float) * T);
                        continue;
                    }
                    float mx = -INFINITY;
                    for (int j = 0; j < T; j++) {
                        int r = idx[i * T + j];
                        if (s->c2p) row[j] += A[(size_t)i * R2 + r];
                        if (s->p2c) row[j] += Bm[(size_t)j * R2 + r];
                        if (mb[j] && row[j] > mx) mx = row[j];
                    }
                    float sum = 0;
                    for (int j = 0; j < T; j++) {
                        row[j] = mb[j] ? expf(row[j] - mx) : 0.0f;
                        sum += row[j];
                    }
                    float inv = sum > 0 ? 1.0f / sum : 0.0f;
                    size_t base = (((size_t)b * NH + h) * T + i) * T;
                    for (int j = 0; j < T; j++) {
                        row[j] *= inv;
                        pd[(size_t)i * T + j] = row[j] * keep_scale(s, base + j);
                    }
                }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, HD, T, 1.0f, pd, T, vb, C, 0.0f,
                            ctx + (size_t)b * T * C + h * HD, C);
            }
        free(A);
    }
}

void disentangled_attention_backward(float *dq, float *dk, float *dv, float *dpk, float *dpq, const float *dctx,
                                     const float *probs, const float *q, const float *k, const float *v,
                                     const float *pk, const float *pq, const int32_t *idx,
                                     const disentangled_shape *s) {
    const int B = s->B, T = s->T, NH = s->NH, HD = s->HD, R2 = s->R2, C = NH * HD;
    // Heads in parallel, batch rows in sequence: dpk / dpq columns of a head have one writer.
#pragma omp parallel
    {
        float *dA = malloc(sizeof(float) * ((size_t)2 * T * R2 + (size_t)2 * T * T));
        float *dB = dA + (size_t)T * R2, *pd = dB + (size_t)T * R2, *dS = pd + (size_t)T * T;
#pragma omp for schedule(dynamic, 1)
        for (int h = 0; h < NH; h++)
            for (int b = 0; b < B; b++) {
                size_t off = (size_t)b * T * C + h * HD;
                const float *P = probs + ((size_t)b * NH + h) * T * T;
                for (int i = 0; i < T; i++) {
                    size_t base = (((size_t)b * NH + h) * T + i) * T;
                    for (int j = 0; j < T; j++) pd[(size_t)i * T + j] = P[(size_t)i * T + j] * keep_scale(s, base + j);
                }
                // dv += pd^T dctx; dpd = dctx v^T (into dS)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, HD, T, 1.0f, pd, T, dctx + off, C, 1.0f, dv + off, C);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, HD, 1.0f, dctx + off, C, v + off, C, 0.0f, dS, T);
                // Through the dropout and the softmax (masked entries have P = 0 and get no gradient).
                for (int i = 0; i < T; i++) {
                    size_t base = (((size_t)b * NH + h) * T + i) * T;
                    float *d = dS + (size_t)i * T;
                    const float *p = P + (size_t)i * T;
                    float dot = 0;
                    for (int j = 0; j < T; j++) {
                        d[j] *= keep_scale(s, base + j);
                        dot += d[j] * p[j];
                    }
                    for (int j = 0; j < T; j++) d[j] = p[j] * (d[j] - dot);
                }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, HD, T, s->scale, dS, T, k + off, C, 1.0f, dq + off, C);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, HD, T, s->scale, dS, T, q + off, C, 1.0f, dk + off, C);
                if (s->c2p || s->p2c) {
                    memset(dA, 0, sizeof(float) * 2 * (size_t)T * R2);
                    for (int i = 0; i < T; i++)
                        for (int j = 0; j < T; j++) {
                            float g = dS[(size_t)i * T + j];
                            int r = idx[i * T + j];
                            dA[(size_t)i * R2 + r] += g;
                            dB[(size_t)j * R2 + r] += g;
                        }
                }
                if (s->c2p) {
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, HD, R2, s->scale, dA, R2, pk + h * HD, C, 1.0f, dq + off, C);
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, R2, HD, T, s->scale, dA, R2, q + off, C, 1.0f, dpk + h * HD, C);
                }
                if (s->p2c) {
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, HD, R2, s->scale, dB, R2, pq + h * HD, C, 1.0f, dk + off, C);
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, R2, HD, T, s->scale, dB, R2, k + off, C, 1.0f, dpq + h * HD, C);
                }
            }
        free(dA);
    }
}
