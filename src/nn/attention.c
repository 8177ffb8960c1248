// Scaled dot-product attention with causal / key-padding / sliding-window masks, grouped-query heads
// and attention-probability dropout. Each (batch, head) is two strided sgemms (q, k, v stay in their
// (B, T, H, HD) layout: leading dimension H * HD, no copies) inside an OpenMP loop, where OpenBLAS
// runs single-threaded. The backward loops over (batch, kv head) and walks the query heads sharing
// that kv head in order, so dk/dv accumulate without atomics and results are bit-deterministic.
// The probabilities (B, NH, T, T) need not be kept: with probs NULL the forward uses a per-thread buffer and
// attention_backward_recompute rebuilds each row block from q, k and the key mask right before using it
// (one more QK^T per head; at bert-base's 8 pairs x 256 this saves 50 MB per layer).
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

// Query rows per block under a causal or window mask: each block multiplies only against the keys
// its rows can see, which skips most of the masked upper triangle (about 40% of the work at T = 256)
// while each sgemm stays big enough to run at full speed.
#define ATT_ROW_BLOCK 64

// Keys [*jlo, *jhi] visible to some query row in [i0, i1)
static void key_block(const attention_shape *s, int i0, int i1, int *jlo, int *jhi) {
    *jlo = (s->window > 0 && i0 - s->window + 1 > 0) ? i0 - s->window + 1 : 0;
    *jhi = s->causal ? i1 - 1 : s->T - 1;
}

// Gemma 2's attention soft-capping on a block of scores (M rows of n, leading dimension ld), in place.
static void softcap_block(float *S, int M, int n, int ld, float cap) {
    for (int i = 0; i < M; i++) {
        float *r = S + (int64_t)i * ld;
        for (int j = 0; j < n; j++) r[j] = tanhf(r[j] / cap) * cap;
    }
}

// Flat dropout index of probs element (b, h, i, 0): the local batch's, or the global batch's (row_pos).
static int64_t drop_row(const attention_shape *s, int b, int h, int i) {
    if (!s->row_pos) return (((int64_t)b * s->NH + h) * s->T + i) * s->T;
    return ((s->row_pos[b] * s->NH + h) * s->T_global + i) * (int64_t)s->T_global;
}

static int row_block(const attention_shape *s) { return (s->causal || s->window > 0) ? ATT_ROW_BLOCK : s->T; }

// Rows [i0, i1) of one (b, h)'s probabilities P (T, T), keys [jlo, jhi]: scores = scale * Q[i0:i1] K[jlo:jhi]^T
// (soft-capped), then the masked row softmax, which zeroes the rest of each row. qp, kp: this head's q and k
// (leading dimensions NH * HD, NKV * HD). The forward and the backward's recompute both call this, with the
// same shapes from a single-threaded context, so the recomputed probabilities are bit-identical.
static void probs_block(float *P, const float *qp, const float *kp, const int32_t *km, int i0, int i1, int jlo,
                        int jhi, const attention_shape *s) {
    const int T = s->T, HD = s->HD, ldq = s->NH * HD, ldk = s->NKV * HD, M = i1 - i0, jn = jhi - jlo + 1;
    float *Pb = P + (int64_t)i0 * T + jlo;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, jn, HD, s->scale, qp + (int64_t)i0 * ldq, ldq,
                kp + (int64_t)jlo * ldk, ldk, 0.0f, Pb, T);
    if (s->softcap > 0.0f) softcap_block(Pb, M, jn, T, s->softcap);
    for (int i = i0; i < i1; i++) masked_softmax_row(P + (int64_t)i * T, km, i, s);
}

void attention_forward(float *out, float *probs, const float *q, const float *k, const float *v,
                       const int32_t *key_mask, const attention_shape *s) {
    const int B = s->B, T = s->T, NH = s->NH, NKV = s->NKV, HD = s->HD, rep = NH / NKV;
    const int ldq = NH * HD, ldk = NKV * HD, RB = row_block(s);
    const int dropping = s->dropout_p > 0.0f;
    int failed = 0;
#pragma omp parallel reduction(| : failed)
    {
        float *pd = dropping ? malloc(sizeof(float) * (size_t)T * T) : NULL;   // P * dropout mask
        float *ps = probs ? NULL : malloc(sizeof(float) * (size_t)T * T);    // P when the caller keeps none
        int ok = (!dropping || pd) && (probs || ps);
        if (!ok) failed = 1;
#pragma omp for schedule(static)
        for (int bh = 0; bh < B * NH; bh++) {
            if (!ok) continue;
            int b = bh / NH, h = bh % NH, g = h / rep;
            const float *qp = q + (int64_t)b * T * ldq + (int64_t)h * HD;
            const float *kp = k + (int64_t)b * T * ldk + (int64_t)g * HD;
            const float *vp = v + (int64_t)b * T * ldk + (int64_t)g * HD;
            float *op = out + (int64_t)b * T * ldq + (int64_t)h * HD;
            float *P = probs ? probs + (int64_t)bh * T * T : ps;
            const int32_t *km = key_mask ? key_mask + (int64_t)b * T : NULL;
            for (int i0 = 0; i0 < T; i0 += RB) {
                int i1 = i0 + RB < T ? i0 + RB : T, M = i1 - i0, jlo, jhi;
                key_block(s, i0, i1, &jlo, &jhi);
                int jn = jhi - jlo + 1;
                float *Pb = P + (int64_t)i0 * T + jlo;
                probs_block(P, qp, kp, km, i0, i1, jlo, jhi, s);
                const float *pv = Pb;
                if (dropping) {
                    for (int i = i0; i < i1; i++) {
                        float *d = pd + (int64_t)i * T + jlo;
                        const float *pr = P + (int64_t)i * T + jlo;
                        nn_dropout_mask(d, s->dropout_key, drop_row(s, b, h, i) + jlo, jn, s->dropout_p);
#pragma omp simd
                        for (int j = 0; j < jn; j++) d[j] *= pr[j];
                    }
                    pv = pd + (int64_t)i0 * T + jlo;
                }
                // out[i0:i1] (M, HD) = P[i0:i1, jlo:jhi] V[jlo:jhi]
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, HD, jn, 1.0f, pv, T, vp + (int64_t)jlo * ldk,
                            ldk, 0.0f, op + (int64_t)i0 * ldq, ldq);
            }
        }
        free(pd);
        free(ps);
    }
    if (failed) fill_nan(out, (int64_t)B * T * NH * HD);
}

void attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *probs, const float *q,
                        const float *k, const float *v, const attention_shape *s) {
    attention_backward_recompute(dq, dk, dv, dout, probs, q, k, v, NULL, s);
}

static void backward_impl(float *dq, float *dk, float *dv, float *ctx, const float *dout, const float *probs,
                          const float *q, const float *k, const float *v, const int32_t *key_mask,
                          const attention_shape *s);

void attention_backward_recompute(float *dq, float *dk, float *dv, const float *dout, const float *probs,
                                  const float *q, const float *k, const float *v, const int32_t *key_mask,
                                  const attention_shape *s) {
    backward_impl(dq, dk, dv, NULL, dout, probs, q, k, v, key_mask, s);
}

void attention_backward_recompute_ctx(float *dq, float *dk, float *dv, float *ctx, const float *dout,
                                      const float *q, const float *k, const float *v, const int32_t *key_mask,
                                      const attention_shape *s) {
    backward_impl(dq, dk, dv, ctx, dout, NULL, q, k, v, key_mask, s);
}

// ctx (B, T, NH * HD), when not NULL: the forward's output again, each row block the same sgemm of the same
// (dropped) probabilities the forward multiplied by V.
static void backward_impl(float *dq, float *dk, float *dv, float *ctx, const float *dout, const float *probs,
                          const float *q, const float *k, const float *v, const int32_t *key_mask,
                          const attention_shape *s) {
    const int B = s->B, T = s->T, NH = s->NH, NKV = s->NKV, HD = s->HD, rep = NH / NKV;
    const int ldq = NH * HD, ldk = NKV * HD, RB = row_block(s);
    const int dropping = s->dropout_p > 0.0f;
    const int64_t TT = (int64_t)T * T;
    int failed = 0;
#pragma omp parallel reduction(| : failed)
    {
        // dp: dL/dprobs then dL/dscores; mask: dropout mask; pm: P * mask for the dv product
        float *dp = malloc(sizeof(float) * (size_t)TT);
        float *mask = dropping ? malloc(sizeof(float) * (size_t)TT) : NULL;
        float *pm = dropping ? malloc(sizeof(float) * (size_t)TT) : NULL;
        float *sc = s->softcap > 0.0f ? malloc(sizeof(float) * (size_t)TT) : NULL;  // recomputed raw scores
        float *ps = probs ? NULL : malloc(sizeof(float) * (size_t)TT);  // recomputed probabilities
        int ok = dp && (!dropping || (mask && pm)) && (s->softcap <= 0.0f || sc) && (probs || ps);
        if (!ok) failed = 1;
#pragma omp for schedule(static)
        for (int bg = 0; bg < B * NKV; bg++) {
            if (!ok) continue;
            int b = bg / NKV, g = bg % NKV;
            const float *kp = k + (int64_t)b * T * ldk + (int64_t)g * HD;
            const float *vp = v + (int64_t)b * T * ldk + (int64_t)g * HD;
            float *dkp = dk ? dk + (int64_t)b * T * ldk + (int64_t)g * HD : NULL;
            float *dvp = dv ? dv + (int64_t)b * T * ldk + (int64_t)g * HD : NULL;
            // query heads sharing this kv head, then row blocks, in a fixed order: dk/dv sums are deterministic
            for (int h = g * rep; h < (g + 1) * rep; h++) {
                int64_t bh = (int64_t)b * NH + h;
                const float *P = probs ? probs + bh * TT : ps;
                const float *qp = q + (int64_t)b * T * ldq + (int64_t)h * HD;
                const int32_t *km = key_mask ? key_mask + (int64_t)b * T : NULL;
                const float *dop = dout + (int64_t)b * T * ldq + (int64_t)h * HD;
                float *dqp = dq ? dq + (int64_t)b * T * ldq + (int64_t)h * HD : NULL;
                for (int i0 = 0; i0 < T; i0 += RB) {
                    int i1 = i0 + RB < T ? i0 + RB : T, M = i1 - i0, jlo, jhi;
                    key_block(s, i0, i1, &jlo, &jhi);
                    int jn = jhi - jlo + 1;
                    int64_t blk = (int64_t)i0 * T + jlo;
                    const float *qb = qp + (int64_t)i0 * ldq, *dob = dop + (int64_t)i0 * ldq;
                    if (!probs) probs_block(ps, qp, kp, km, i0, i1, jlo, jhi, s);  // as the forward made them
                    // dP (M, jn) = dO[i0:i1] V[jlo:jhi]^T (gradient w.r.t. the dropped probabilities)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, jn, HD, 1.0f, dob, ldq,
                                vp + (int64_t)jlo * ldk, ldk, 0.0f, dp + blk, T);
                    if (dropping)
                        for (int i = i0; i < i1; i++) {
                            int64_t o = (int64_t)i * T + jlo;
                            nn_dropout_mask(mask + o, s->dropout_key, drop_row(s, b, h, i) + jlo, jn, s->dropout_p);
#pragma omp simd
                            for (int j = 0; j < jn; j++) pm[o + j] = P[o + j] * mask[o + j];
                        }
                    // ctx[i0:i1] (M, HD) = (P * mask)[i0:i1, jlo:jhi] V[jlo:jhi], as attention_forward
                    if (ctx)
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, HD, jn, 1.0f, (dropping ? pm : P) + blk,
                                    T, vp + (int64_t)jlo * ldk, ldk, 0.0f,
                                    ctx + (int64_t)b * T * ldq + (int64_t)h * HD + (int64_t)i0 * ldq, ldq);
                    // dV[jlo:jhi] (jn, HD) += (P * mask)^T dO
                    if (dvp)
                        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, jn, HD, M, 1.0f, (dropping ? pm : P) + blk,
                                    T, dob, ldq, 1.0f, dvp + (int64_t)jlo * ldk, ldk);
                    // softmax backward per row: dS = P * (dP*mask - sum(dP*mask * P)); P is 0 where masked
                    for (int i = i0; i < i1; i++) {
                        int64_t o = (int64_t)i * T + jlo;
                        float *r = dp + o;
                        const float *pr = P + o;
                        if (dropping) {
                            const float *mr = mask + o;
#pragma omp simd
                            for (int j = 0; j < jn; j++) r[j] *= mr[j];
                        }
                        float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
                        for (int j = 0; j < jn; j++) dot += r[j] * pr[j];
#pragma omp simd
                        for (int j = 0; j < jn; j++) r[j] = pr[j] * (r[j] - dot);
                    }
                    if (sc) {  // through the cap: d raw = d capped * (1 - tanh(raw / cap)^2)
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, jn, HD, s->scale, qb, ldq,
                                    kp + (int64_t)jlo * ldk, ldk, 0.0f, sc + blk, T);
                        for (int i = i0; i < i1; i++) {
                            int64_t o = (int64_t)i * T + jlo;
                            for (int j = 0; j < jn; j++) {
                                float t = tanhf(sc[o + j] / s->softcap);
                                dp[o + j] *= 1.0f - t * t;
                            }
                        }
                    }
                    // dQ[i0:i1] += scale * dS K[jlo:jhi]; dK[jlo:jhi] += scale * dS^T Q[i0:i1]
                    if (dqp)
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, HD, jn, s->scale, dp + blk, T,
                                    kp + (int64_t)jlo * ldk, ldk, 1.0f, dqp + (int64_t)i0 * ldq, ldq);
                    if (dkp)
                        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, jn, HD, M, s->scale, dp + blk, T, qb, ldq,
                                    1.0f, dkp + (int64_t)jlo * ldk, ldk);
                }
            }
        }
        free(dp);
        free(mask);
        free(pm);
        free(sc);
        free(ps);
    }
    if (failed && dq) fill_nan(dq, (int64_t)B * T * NH * HD);
    if (failed && ctx) fill_nan(ctx, (int64_t)B * T * NH * HD);
}
