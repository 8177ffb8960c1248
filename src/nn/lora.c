// LoRA linear layer: frozen base (dense or 4-bit) plus the low-rank adapter path, forward and
// backward. The adapter path is two thin GEMMs through the rank-r bottleneck, so it costs
// O(N * r * (C + OC)) next to the base's O(N * C * OC).
#include "nn/lora.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "nn/ops.h"

void lora_init(float *A, float *B, int r, int C, int OC, uint64_t key) {
    // kaiming_uniform_(a=sqrt(5)): gain = sqrt(2 / (1 + 5)), bound = gain * sqrt(3 / fan_in) = 1/sqrt(C)
    const float bound = 1.0f / sqrtf((float)C);
    for (int64_t i = 0; i < (int64_t)r * C; i++) A[i] = (2.0f * rng_uniform(key, (uint64_t)i) - 1.0f) * bound;
    memset(B, 0, sizeof(float) * (size_t)OC * r);
}

rlhf_status lora_base_forward(float *out, const float *inp, const lora_base *base, int N, int C, int OC,
                              rlhf_err *err) {
    if (base->qweight) return nf4_linear_forward(out, inp, base->qweight, base->bias, N, C, OC, base->compute, err);
    if (base->conv1d)
        conv1d_forward(out, inp, base->weight, base->bias, N, C, OC);
    else
        linear_forward(out, inp, base->weight, base->bias, N, C, OC);
    return RLHF_OK;
}

static int dropout_active(const lora_config *c, int training) { return training && c->dropout > 0.0f; }

// The adapter's input: dropout(inp) in a malloc'd buffer, or inp itself when dropout is off.
static rlhf_status adapter_input(const float **h, float **owned, const float *inp, const lora_config *c,
                                 int training, uint64_t key, int N, int C, rlhf_err *err) {
    *owned = NULL;
    *h = inp;
    if (!dropout_active(c, training)) return RLHF_OK;
    *owned = malloc(sizeof(float) * (size_t)N * C);
    if (!*owned) return rlhf_fail(err, RLHF_ERUNTIME, "lora: out of memory for the dropout of a %d x %d input", N, C);
    dropout_forward(*owned, inp, c->dropout, key, (int64_t)N * C);
    *h = *owned;
    return RLHF_OK;
}

rlhf_status lora_linear_forward(float *out, float *xa, const float *inp, const lora_base *base, const float *A,
                                const float *B, const lora_config *c, int training, uint64_t dropout_key, int N,
                                int C, int OC, rlhf_err *err) {
    RLHF_TRY(lora_base_forward(out, inp, base, N, C, OC, err));
    const float *h;
    float *owned;
    RLHF_TRY(adapter_input(&h, &owned, inp, c, training, dropout_key, N, C, err));
    const int r = c->r;
    // xa (N, r) = h @ A^T
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, r, C, 1.0f, h, C, A, C, 0.0f, xa, r);
    // out (N, OC) += scaling * xa @ B^T
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, r, lora_scaling(c), xa, r, B, r, 1.0f, out, OC);
    free(owned);
    return RLHF_OK;
}

rlhf_status lora_linear_backward(float *dinp, float *dA, float *dB, const float *dout, const float *inp,
                                 const float *xa, const lora_base *base, const float *A, const float *B,
                                 const lora_config *c, int training, uint64_t dropout_key, int N, int C, int OC,
                                 rlhf_err *err) {
    const int r = c->r;
    const float s = lora_scaling(c);
    // dB (OC, r) += s * dout^T @ xa
    if (dB) cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, r, N, s, dout, OC, xa, r, 1.0f, dB, r);
    if (!dA && !dinp) return RLHF_OK;
    float *dxa = malloc(sizeof(float) * (size_t)N * r);
    if (!dxa) return rlhf_fail(err, RLHF_ERUNTIME, "lora backward: out of memory");
    // dxa (N, r) = s * dout @ B
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, r, OC, s, dout, OC, B, r, 0.0f, dxa, r);
    rlhf_status st = RLHF_OK;
    if (dA) {
        const float *h;
        float *owned;
        st = adapter_input(&h, &owned, inp, c, training, dropout_key, N, C, err);
        if (st == RLHF_OK) {
            // dA (r, C) += dxa^T @ h
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, C, N, 1.0f, dxa, r, h, C, 1.0f, dA, C);
            free(owned);
        }
    }
    if (st == RLHF_OK && dinp) {
        // dh (N, C) = dxa @ A, routed back through the dropout mask
        float *dh = malloc(sizeof(float) * (size_t)N * C);
        if (!dh) {
            st = rlhf_fail(err, RLHF_ERUNTIME, "lora backward: out of memory");
        } else {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, r, 1.0f, dxa, r, A, C, 0.0f, dh, C);
            if (dropout_active(c, training)) {
                dropout_backward(dinp, dh, c->dropout, dropout_key, (int64_t)N * C);
            } else {
                for (int64_t i = 0; i < (int64_t)N * C; i++) dinp[i] += dh[i];
            }
            free(dh);
            // the frozen base: dinp += dout @ W
            if (base->qweight)
                st = nf4_linear_backward(dinp, dout, base->qweight, N, C, OC, base->compute, err);
            else if (base->conv1d)
                conv1d_backward(dinp, NULL, NULL, dout, inp, base->weight, N, C, OC);
            else
                linear_backward(dinp, NULL, NULL, dout, inp, base->weight, N, C, OC);
        }
    }
    free(dxa);
    return st;
}

void lora_merge(float *W, const float *A, const float *B, const lora_config *c, int C, int OC) {
    // W (OC, C) += s * B (OC, r) @ A (r, C)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, OC, C, c->r, lora_scaling(c), B, c->r, A, C, 1.0f, W, C);
}
