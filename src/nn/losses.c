// Training losses: TRL's pairwise reward loss (-logsigmoid(chosen - rejected - margin) in the stable
// softplus form, plus center_rewards_coefficient * mean((chosen + rejected)^2)), token cross-entropy
// with ignore_index as torch, and per-token log-probs for PPO. Sums over rows use a fixed number of
// chunks (independent of the thread count) added in order, so losses are bit-deterministic.
#include <math.h>
#include <string.h>

#include "nn/nn_internal.h"
#include "nn/ops.h"

// Row chunks for deterministic parallel sums: fixed, so the summation order never depends on threads.
#define LOSS_CHUNKS 64

// softplus(x) = log(1 + e^x) without overflow
static double softplus(double x) { return (x > 0 ? x : 0.0) + log1p(exp(-fabs(x))); }

float pairwise_loss_forward(const float *chosen, const float *rejected, const float *margin, float center_coef,
                            int P) {
    if (P <= 0) return 0.0f;
    double nll = 0.0, center = 0.0;
    for (int p = 0; p < P; p++) {
        double d = (double)chosen[p] - rejected[p] - (margin ? margin[p] : 0.0);
        nll += softplus(-d);   // -logsigmoid(d)
        double s = (double)chosen[p] + rejected[p];
        center += s * s;
    }
    double loss = nll / P;
    if (center_coef != 0.0f) loss += (double)center_coef * center / P;
    return (float)loss;
}

// d/dd -logsigmoid(d) = sigmoid(d) - 1 = -sigmoid(-d); center term: 2 coef (c + r) / P for both
void pairwise_loss_backward(float *dchosen, float *drejected, const float *chosen, const float *rejected,
                            const float *margin, float center_coef, int P, float grad_scale) {
    if (P <= 0) return;
    for (int p = 0; p < P; p++) {
        double d = (double)chosen[p] - rejected[p] - (margin ? margin[p] : 0.0);
        double g = -1.0 / (1.0 + exp(d)) / P;
        double gc = 2.0 * (double)center_coef * ((double)chosen[p] + rejected[p]) / P;
        if (dchosen) dchosen[p] += (float)((g + gc) * grad_scale);
        if (drejected) drejected[p] += (float)((-g + gc) * grad_scale);
    }
}

static int counted(int32_t t, int V) { return t != CE_IGNORE_INDEX && t >= 0 && t < V; }

// log(sum(exp(x / temperature))) of one row, max-subtracted
static double row_logsumexp(const float *x, int V, float inv_temp) {
    float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
    for (int v = 0; v < V; v++) mx = x[v] > mx ? x[v] : mx;
    float mxs = mx * inv_temp;
    float s = 0.0f;   // sum of V terms in [0, 1]: float with a vectorised (tree-like) order is accurate
#pragma omp simd reduction(+ : s)
    for (int v = 0; v < V; v++) s += nn_expf(x[v] * inv_temp - mxs);
    return mxs + log((double)s);
}

// Targets outside [0, V) other than ignore_index are skipped too (callers validate ids earlier).
float cross_entropy_forward(const float *logits, const int32_t *targets, int N, int V, int *n_counted) {
    double part[LOSS_CHUNKS] = {0};
    int cnt[LOSS_CHUNKS] = {0};
    int64_t per = (N + LOSS_CHUNKS - 1) / LOSS_CHUNKS;
#pragma omp parallel for schedule(static) if ((int64_t)N * V > NN_PARALLEL_MIN)
    for (int ch = 0; ch < LOSS_CHUNKS; ch++) {
        for (int64_t n = ch * per; n < (ch + 1) * per && n < N; n++) {
            if (!counted(targets[n], V)) continue;
            const float *x = logits + n * V;
            part[ch] += row_logsumexp(x, V, 1.0f) - x[targets[n]];
            cnt[ch]++;
        }
    }
    double total = 0.0;
    int c = 0;
    for (int ch = 0; ch < LOSS_CHUNKS; ch++) {
        total += part[ch];
        c += cnt[ch];
    }
    if (n_counted) *n_counted = c;
    return c ? (float)(total / c) : 0.0f;   // torch gives NaN for no counted row; 0 keeps sums finite
}

// dlogits (N, V) += (softmax - onehot(target)) * grad_scale / n_counted on counted rows
void cross_entropy_backward(float *dlogits, const float *logits, const int32_t *targets, int N, int V,
                            int n_counted, float grad_scale) {
    if (n_counted <= 0) return;
    float k = grad_scale / (float)n_counted;
#pragma omp parallel for if ((int64_t)N * V > NN_PARALLEL_MIN)
    for (int64_t n = 0; n < N; n++) {
        if (!counted(targets[n], V)) continue;
        const float *x = logits + n * V;
        float *d = dlogits + n * V;
        float lse = (float)row_logsumexp(x, V, 1.0f);
#pragma omp simd
        for (int v = 0; v < V; v++) d[v] += nn_expf(x[v] - lse) * k;
        d[targets[n]] -= k;
    }
}

void cross_entropy_backward_inplace(float *logits, const int32_t *targets, int N, int V, int n_counted,
                                    float grad_scale) {
    float k = n_counted > 0 ? grad_scale / (float)n_counted : 0.0f;
#pragma omp parallel for if ((int64_t)N * V > NN_PARALLEL_MIN)
    for (int64_t n = 0; n < N; n++) {
        float *x = logits + n * V;
        if (n_counted <= 0 || !counted(targets[n], V)) {
            memset(x, 0, sizeof(float) * (size_t)V);
            continue;
        }
        float lse = (float)row_logsumexp(x, V, 1.0f);
        // 0 + e * k in the out-of-place form: e * k (k > 0, so no -0 to tell apart)
#pragma omp simd
        for (int v = 0; v < V; v++) x[v] = nn_expf(x[v] - lse) * k;
        x[targets[n]] -= k;
    }
}

// out (N) = log_softmax(logits / temperature)[target]; rows with no valid target get 0. TRL divides
// by (temperature + 1e-7): pass that sum if bit-matching TRL matters.
void token_logprobs_forward(float *out, const float *logits, const int32_t *targets, int N, int V,
                            float temperature) {
    float inv_temp = 1.0f / temperature;
#pragma omp parallel for if ((int64_t)N * V > NN_PARALLEL_MIN)
    for (int64_t n = 0; n < N; n++) {
        if (!counted(targets[n], V)) {
            out[n] = 0.0f;
            continue;
        }
        const float *x = logits + n * V;
        out[n] = (float)((double)(x[targets[n]] * inv_temp) - row_logsumexp(x, V, inv_temp));
    }
}

void token_logprobs_backward_inplace(float *logits, const float *dout, const int32_t *targets, int N, int V,
                                     float temperature) {
    float inv_temp = 1.0f / temperature;
#pragma omp parallel for if ((int64_t)N * V > NN_PARALLEL_MIN)
    for (int64_t n = 0; n < N; n++) {
        float *x = logits + n * V;
        if (!counted(targets[n], V) || dout[n] == 0.0f) {
            memset(x, 0, sizeof(float) * (size_t)V);
            continue;
        }
        float lse = (float)row_logsumexp(x, V, inv_temp);
        float k = dout[n] * inv_temp;
#pragma omp simd
        for (int v = 0; v < V; v++) x[v] = -nn_expf(x[v] * inv_temp - lse) * k;
        x[targets[n]] += k;
    }
}

// d logp / d x_v = (onehot_v - softmax(x / T)_v) / T
void token_logprobs_backward(float *dlogits, const float *dout, const float *logits, const int32_t *targets, int N,
                             int V, float temperature) {
    float inv_temp = 1.0f / temperature;
#pragma omp parallel for if ((int64_t)N * V > NN_PARALLEL_MIN)
    for (int64_t n = 0; n < N; n++) {
        if (!counted(targets[n], V) || dout[n] == 0.0f) continue;
        const float *x = logits + n * V;
        float *d = dlogits + n * V;
        float lse = (float)row_logsumexp(x, V, inv_temp);
        float k = dout[n] * inv_temp;
#pragma omp simd
        for (int v = 0; v < V; v++) d[v] -= nn_expf(x[v] * inv_temp - lse) * k;
        d[targets[n]] += k;
    }
}
