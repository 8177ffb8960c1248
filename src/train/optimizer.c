// AdamW exactly as torch.optim.AdamW (single-tensor path, torch 1.13 - 2.x):
//   p *= 1 - lr * wd;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//   p -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// in fp32 with the scalar coefficients computed in double and rounded once, as torch does. Weight
// decay is skipped for no_decay specs (biases, norm weights: HF Trainer's parameter groups).
// The gradient norm is summed in a fixed number of chunks so it never depends on the thread count.
#include "train/optimizer.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

// Torch's clip_grad_norm_ adds this to the norm before dividing (clip_coef = max_norm / (norm + 1e-6)).
#define CLIP_NORM_EPS 1e-6
// Fixed chunking of the norm's sum: deterministic whatever OMP_NUM_THREADS is.
#define NORM_CHUNKS 256
// Below this many elements the optimizer loops stay single-threaded.
#define OPT_PARALLEL_MIN 65536

rlhf_status adamw_init(adamw_state *s, size_t n, rlhf_err *err) {
    s->n = n;
    s->step = 0;
    s->lo = 0;
    s->hi = n;
    s->m = calloc(n ? n : 1, sizeof(float));
    s->v = calloc(n ? n : 1, sizeof(float));
    if (!s->m || !s->v) {
        adamw_free(s);
        return rlhf_fail(err, RLHF_ERUNTIME, "out of memory allocating AdamW moments for %zu parameters", n);
    }
    return RLHF_OK;
}

void adamw_free(adamw_state *s) {
    free(s->m);
    free(s->v);
    s->m = s->v = NULL;
    s->n = s->lo = s->hi = 0;
}

// One AdamW update of params[0..n) with moments m, v and the gradient g[i] * gs (gs 1: g as it is; the product
// is the float torch's clip_grad_norm_ would have stored in the gradient). zero_g: g[i] = 0 once read (the
// zero_grad of the next step, fused into this pass).
static void adamw_range(float *p, float *g, float gs, int zero_g, float *m, float *v, int64_t n, float decay_mul,
                        float b1, float one_minus_b1, float b2, float one_minus_b2, float bc2_sqrt, float eps,
                        float neg_step_size) {
#define ADAMW_BODY                                                    \
    float gi = g[i] * gs;                                             \
    float pi = p[i] * decay_mul;                                      \
    float mi = m[i] * b1 + gi * one_minus_b1;                         \
    float vi = v[i] * b2 + one_minus_b2 * gi * gi;                    \
    float denom = sqrtf(vi) / bc2_sqrt + eps;                         \
    m[i] = mi;                                                        \
    v[i] = vi;                                                        \
    p[i] = pi + neg_step_size * (mi / denom);
    if (zero_g) {
#pragma omp parallel for if (n > OPT_PARALLEL_MIN)
        for (int64_t i = 0; i < n; i++) {
            ADAMW_BODY
            g[i] = 0.0f;
        }
    } else {
#pragma omp parallel for if (n > OPT_PARALLEL_MIN)
        for (int64_t i = 0; i < n; i++) {
            ADAMW_BODY
        }
    }
#undef ADAMW_BODY
}

static void adamw_apply(adamw_state *s, float *params, float *grads, float gs, int zero_g, const param_spec *specs,
                        int n_specs, double lr, const adamw_config *c) {
    s->step++;
    double bc1 = 1.0 - pow(c->beta1, (double)s->step);
    double bc2 = 1.0 - pow(c->beta2, (double)s->step);
    float b1 = (float)c->beta1, b2 = (float)c->beta2;
    float omb1 = (float)(1.0 - c->beta1), omb2 = (float)(1.0 - c->beta2);
    float bc2_sqrt = (float)sqrt(bc2), eps = (float)c->eps, neg_step = (float)(-lr / bc1);
    float decay_mul = (float)(1.0 - lr * c->weight_decay);
    if (!specs || n_specs <= 0) {   // no groups: the whole buffer (this rank's slice of it) decays
        adamw_range(params + s->lo, grads + s->lo, gs, zero_g, s->m, s->v, (int64_t)(s->hi - s->lo), decay_mul, b1,
                    omb1, b2, omb2, bc2_sqrt, eps, neg_step);
        return;
    }
    for (int k = 0; k < n_specs; k++) {
        size_t o = specs[k].offset, e = o + specs[k].numel;
        if (o < s->lo) o = s->lo;
        if (e > s->hi) e = s->hi;
        if (o >= e) continue;
        adamw_range(params + o, grads + o, gs, zero_g, s->m + (o - s->lo), s->v + (o - s->lo), (int64_t)(e - o),
                    specs[k].no_decay ? 1.0f : decay_mul, b1, omb1, b2, omb2, bc2_sqrt, eps, neg_step);
    }
}

void adamw_step(adamw_state *s, float *params, const float *grads, const param_spec *specs, int n_specs,
                double lr, const adamw_config *c) {
    // gs 1 and no zeroing: grads is only read
    adamw_apply(s, params, (float *)grads, 1.0f, 0, specs, n_specs, lr, c);
}

void adamw_step_clipped(adamw_state *s, float *params, float *grads, float grad_scale, const param_spec *specs,
                        int n_specs, double lr, const adamw_config *c) {
    adamw_apply(s, params, grads, grad_scale, 1, specs, n_specs, lr, c);
}

// Where rank r's slice starts: N near-equal contiguous parts, the first n % N one element longer.
static size_t shard_start(size_t n, int r, int N) {
    size_t q = n / (size_t)N, extra = n % (size_t)N;
    return q * (size_t)r + ((size_t)r < extra ? (size_t)r : extra);
}

int adamw_sharded(const adamw_state *s) { return s->lo != 0 || s->hi != s->n; }

rlhf_status adamw_shard(adamw_state *s, dist *d, rlhf_err *err) {
    int r = dist_rank(d), N = dist_size(d);
    if (N == 1 || adamw_sharded(s)) return RLHF_OK;
    size_t lo = shard_start(s->n, r, N), hi = shard_start(s->n, r + 1, N), k = hi - lo;
    float *m = malloc(sizeof(float) * (k ? k : 1)), *v = malloc(sizeof(float) * (k ? k : 1));
    if (!m || !v) {
        free(m);
        free(v);
        return rlhf_fail(err, RLHF_ERUNTIME, "out of memory for this rank's %zu AdamW moments", k);
    }
    memcpy(m, s->m + lo, sizeof(float) * k);
    memcpy(v, s->v + lo, sizeof(float) * k);
    free(s->m);
    free(s->v);
    s->m = m, s->v = v, s->lo = lo, s->hi = hi;
    return RLHF_OK;
}

// Each rank's slice length, as adamw_shard cut them.
static rlhf_status shard_counts(const adamw_state *s, dist *d, int **counts, rlhf_err *err) {
    int N = dist_size(d);
    *counts = malloc(sizeof(int) * (size_t)N);
    if (!*counts) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    for (int r = 0; r < N; r++) {
        size_t k = shard_start(s->n, r + 1, N) - shard_start(s->n, r, N);
        if (k > INT_MAX) {
            free(*counts);
            *counts = NULL;
            return rlhf_fail(err, RLHF_ERUNTIME, "ZeRO-1: a slice of %zu moments is too many for MPI's counts", k);
        }
        (*counts)[r] = (int)k;
    }
    return RLHF_OK;
}

rlhf_status adamw_gather_params(const adamw_state *s, dist *d, float *params, rlhf_err *err) {
    if (!adamw_sharded(s)) return RLHF_OK;
    int *counts;
    RLHF_TRY(shard_counts(s, d, &counts, err));
    rlhf_status st = dist_allgatherv_f32(d, params + s->lo, params, counts, err);
    free(counts);
    return st;
}

rlhf_status adamw_gather(const adamw_state *s, dist *d, adamw_state *full, rlhf_err *err) {
    RLHF_TRY(adamw_init(full, s->n, err));
    full->step = s->step;
    int *counts = NULL;
    rlhf_status st = shard_counts(s, d, &counts, err);
    if (!st) st = dist_allgatherv_f32(d, s->m, full->m, counts, err);
    if (!st) st = dist_allgatherv_f32(d, s->v, full->v, counts, err);
    if (counts) free(counts);
    if (st) adamw_free(full);
    return st;
}

double grad_norm(const float *grads, size_t n) {
    double part[NORM_CHUNKS] = {0};
    size_t per = (n + NORM_CHUNKS - 1) / NORM_CHUNKS;
#pragma omp parallel for schedule(static) if (n > OPT_PARALLEL_MIN)
    for (int ch = 0; ch < NORM_CHUNKS; ch++) {
        double s = 0.0;
        for (size_t i = (size_t)ch * per; i < (size_t)(ch + 1) * per && i < n; i++) s += (double)grads[i] * grads[i];
        part[ch] = s;
    }
    double total = 0.0;
    for (int ch = 0; ch < NORM_CHUNKS; ch++) total += part[ch];
    return sqrt(total);
}

float grad_clip_scale(double norm, double max_norm) {
    if (max_norm > 0.0 && isfinite(norm)) {
        double coef = max_norm / (norm + CLIP_NORM_EPS);
        if (coef < 1.0) return (float)coef;
    }
    return 1.0f;
}

double clip_grad_norm(float *grads, size_t n, double max_norm) {
    double norm = grad_norm(grads, n);
    float cf = grad_clip_scale(norm, max_norm);
    if (cf != 1.0f) {
#pragma omp parallel for if (n > OPT_PARALLEL_MIN)
        for (size_t i = 0; i < n; i++) grads[i] *= cf;
    }
    return norm;
}
