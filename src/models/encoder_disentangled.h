// DeBERTa(-v2/v3) disentangled self-attention with shared query/key projections for the relative
// positions (models-private; see encoder_disentangled.c).
#ifndef RLHF_MODELS_ENCODER_DISENTANGLED_H
#define RLHF_MODELS_ENCODER_DISENTANGLED_H

#include <stdint.h>

typedef struct {
    int B, T, NH, HD;
    int R2;            // rows of the relative embeddings: 2 * span
    int c2p, p2c;      // pos_att_type terms present
    float scale;       // 1 / sqrt(HD * (1 + c2p + p2c))
    float dropout_p;   // attention-probability dropout (training)
    uint64_t dropout_key;
} disentangled_shape;

// idx: (T, T) index of the relative embedding row for query i, key j.
void disentangled_rel_index(int32_t *idx, int T, int buckets, int max_rel, int span);
// q, k, v, ctx: (B, T, NH*HD); pk, pq: (R2, NH*HD) projections of the relative embeddings;
// probs: (B, NH, T, T) saved (before dropout); mask: (B, T).
void disentangled_attention_forward(float *ctx, float *probs, const float *q, const float *k, const float *v,
                                    const float *pk, const float *pq, const int32_t *idx, const int32_t *mask,
                                    const disentangled_shape *s);
// Accumulates (+=) into dq, dk, dv (B, T, C) and dpk, dpq (R2, C).
void disentangled_attention_backward(float *dq, float *dk, float *dv, float *dpk, float *dpq, const float *dctx,
                                     const float *probs, const float *q, const float *k, const float *v,
                                     const float *pk, const float *pq, const int32_t *idx,
                                     const disentangled_shape *s);

#endif
