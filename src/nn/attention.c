// Scaled dot-product attention with causal / key-padding / sliding-window masks, grouped-query heads
// and attention-probability dropout. Each (batch, head) is two strided sgemms (q, k, v stay in their
// (B, T, H, HD) layout: leading dimension H * HD, no copies) inside an OpenMP loop, where OpenBLAS
// runs single-threaded. The backward loops over (batch, kv head) and walks the query heads sharing
// that kv head in order, so dk/dv accumulate without atomics and results are bit-deterministic.
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn_internal.h"
#include "nn/ops.h"

// Visible keys of query i: [lo, hi] intersected with key_mask.
static void visible_range(const attention_shape *s, int i, int *lo, int *hi) {
    *hi = s->causal ? i : s->T - 1;
    *lo = 0;
    if (s->window > 0 && i - s->window + 1 > 0) *lo = i - s->window + 1;
}

// probs row i of one (b, h): masked softmax of the raw scores already in row (written in place).
// Keys outside the causal / window range [lo, hi] are zeroed without touching exp; the padding mask
// is applied inside the range.
static void masked_softmax_row(float *row, const int32_t *km, int i, const attention_shape *s) {
    int lo, hi;
    visible_range(s, i, &lo, &hi);
    if (lo > 0) memset(row, 0, sizeof(float) * (size_t)lo);
    if (hi + 1 < s->T) memset(row + hi + 1, 0, sizeof(float) * (size_t)(s->T - hi - 1));
    float *r = row + lo;
    const int n = hi - lo + 1;
    const int32_t *m = km ? km + lo : NULL;
    float mx = -INFINITY;
    if (m) {
#pragma omp simd reduction(max : mx)
        for (int j = 0; j < n; j++) mx = (m[j] && r[j] > mx) ? r[j] : mx;
    } else {
#pragma omp simd reduction(max : mx)
        for (int j = 0; j < n; j++) mx = r[j] > mx ? r[j] : mx;
    }
    float sum = 0.0f;
    if (m) {
#pragma omp simd reduction(+ : sum)
        for (int j = 0; j < n; j++) {
            float e = m[j] ? nn_expf(r[j] - mx) : 0.0f;
            r[j] = e;
            sum += e;
        }
    } else {
#pragma omp simd reduction(+ : sum)
        for (int j = 0; j < n; j++) {
            r[j] = nn_expf(r[j] - mx);
            sum += r[j];
        }
    }
    if (sum > 0.0f) {
        float inv = 1.0f / sum;
#pragma omp simd
        for (int j = 0; j < n; j++) r[j] *= inv;
    } else {   // no visible key: a zero row (the query is padding)
        memset(r, 0, sizeof(float) * (size_t)n);
    }
}

static void fill_nan(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = NAN;
}

void attention_forward(float *out, float *probs, const float *q, const float *k, const float *v,
                       const int32_t *key_mask, const attention_shape *s) {
    const int B = s->B, T = s->T, NH = s->NH, NKV = s->NKV, HD = s->HD, rep = NH / NKV;
    const int ldq = NH * HD, ldk = NKV * HD;
    const int dropping = s->dropout_p > 0.0f;
    int failed = 0;
#pragma omp parallel reduction(| : failed)
    {
        float *pd = dropping ? malloc(sizeof(float) * (size_t)T * T) : NULL;
        if (dropping && !pd) failed = 1;
#pragma omp for schedule(static)
        for (int bh = 0; bh < B * NH; bh++) {
            if (dropping && !pd) continue;
            int b = bh / NH, h = bh % NH, g = h / rep;
            const float *qp = q + (int64_t)b * T * ldq + (int64_t)h * HD;
            const float *kp = k + (int64_t)b * T * ldk + (int64_t)g * HD;
            const float *vp = v + (int64_t)b * T * ldk + (int64_t)g * HD;
            float *op = out + (int64_t)b * T * ldq + (int64_t)h * HD;
            float *P = probs + (int64_t)bh * T * T;
            const int32_t *km = key_mask ? key_mask + (int64_t)b * T : NULL;
            // scores (T, T) = scale * Q K^T
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, HD, s->scale, qp, ldq, kp, ldk, 0.0f, P, T);
            for (int i = 0; i < T; i++) masked_softmax_row(P + (int64_t)i * T, km, i, s);
            const float *pv = P;
            if (dropping) {
                nn_dropout_mask(pd, s->dropout_key, (int64_t)bh * T * T, (int64_t)T * T, s->dropout_p);
#pragma omp simd
                for (int64_t e = 0; e < (int64_t)T * T; e++) pd[e] *= P[e];
                pv = pd;
            }
            // out (T, HD) = P V
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, HD, T, 1.0f, pv, T, vp, ldk, 0.0f, op, ldq);
        }
        free(pd);
    }
    if (failed) fill_nan(out, (int64_t)B * T * NH * HD);
}

void attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *probs, const float *q,
                        const float *k, const float *v, const attention_shape *s) {
    const int B = s->B, T = s->T, NH = s->NH, NKV = s->NKV, HD = s->HD, rep = NH / NKV;
    const int ldq = NH * HD, ldk = NKV * HD;
    const int dropping = s->dropout_p > 0.0f;
    const int64_t TT = (int64_t)T * T;
    int failed = 0;
#pragma omp parallel reduction(| : failed)
    {
        // dp: dL/dprobs then dL/dscores; mask: dropout mask (also P * mask for the dv product)
        float *dp = malloc(sizeof(float) * (size_t)TT);
        float *mask = dropping ? malloc(sizeof(float) * (size_t)TT) : NULL;
        float *pm = dropping ? malloc(sizeof(float) * (size_t)TT) : NULL;   // P * mask
        int ok = dp && (!dropping || (mask && pm));
        if (!ok) failed = 1;
#pragma omp for schedule(static)
        for (int bg = 0; bg < B * NKV; bg++) {
            if (!ok) continue;
            int b = bg / NKV, g = bg % NKV;
            const float *kp = k + (int64_t)b * T * ldk + (int64_t)g * HD;
            const float *vp = v + (int64_t)b * T * ldk + (int64_t)g * HD;
            float *dkp = dk ? dk + (int64_t)b * T * ldk + (int64_t)g * HD : NULL;
            float *dvp = dv ? dv + (int64_t)b * T * ldk + (int64_t)g * HD : NULL;
            for (int h = g * rep; h < (g + 1) * rep; h++) {
                int64_t bh = (int64_t)b * NH + h;
                const float *P = probs + bh * TT;
                const float *qp = q + (int64_t)b * T * ldq + (int64_t)h * HD;
                const float *dop = dout + (int64_t)b * T * ldq + (int64_t)h * HD;
                float *dqp = dq ? dq + (int64_t)b * T * ldq + (int64_t)h * HD : NULL;
                // dP (T, T) = dO V^T (gradient w.r.t. the dropped probabilities)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, HD, 1.0f, dop, ldq, vp, ldk, 0.0f, dp, T);
                if (dropping) nn_dropout_mask(mask, s->dropout_key, bh * TT, TT, s->dropout_p);
                if (dvp) {
                    // dV (T, HD) += (P * mask)^T dO
                    const float *pv = P;
                    if (dropping) {
#pragma omp simd
                        for (int64_t e = 0; e < TT; e++) pm[e] = P[e] * mask[e];
                        pv = pm;
                    }
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, HD, T, 1.0f, pv, T, dop, ldq, 1.0f, dvp,
                                ldk);
                }
                // softmax backward row-wise: dS = P * (dP*mask - sum(dP*mask * P)); masked P are 0
                for (int i = 0; i < T; i++) {
                    float *r = dp + (int64_t)i * T;
                    const float *pr = P + (int64_t)i * T;
                    if (dropping) {
                        const float *mr = mask + (int64_t)i * T;
#pragma omp simd
                        for (int j = 0; j < T; j++) r[j] *= mr[j];
                    }
                    float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
                    for (int j = 0; j < T; j++) dot += r[j] * pr[j];
#pragma omp simd
                    for (int j = 0; j < T; j++) r[j] = pr[j] * (r[j] - dot);
                }
                // dQ += scale * dS K; dK += scale * dS^T Q
                if (dqp)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, HD, T, s->scale, dp, T, kp, ldk, 1.0f,
                                dqp, ldq);
                if (dkp)
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, HD, T, s->scale, dp, T, qp, ldq, 1.0f,
                                dkp, ldk);
            }
        }
        free(dp);
        free(mask);
        free(pm);
    }
    if (failed && dq) fill_nan(dq, (int64_t)B * T * NH * HD);
}
