// Tests of the losses: TRL's pairwise reward loss (with margin and center_rewards_coefficient, stable
// at large reward gaps), token cross-entropy with ignore_index, and token log-probs with temperature:
// hand values, double references, and finite-difference checks of the backwards.
#include <math.h>
#include <string.h>

#include "gradcheck.h"
#include "nn/ops.h"

// ---- pairwise -----------------------------------------------------------------------------------
typedef struct { int P; const double *margin; double coef; } pair_ctx;

// x = [chosen (P), rejected (P)]; y = loss (1)
static void pair_ref(void *vc, const double *x, double *y) {
    pair_ctx *c = vc;
    double l = 0, cen = 0;
    for (int p = 0; p < c->P; p++) {
        double d = x[p] - x[c->P + p] - (c->margin ? c->margin[p] : 0);
        l += log1p(exp(-d));
        cen += (x[p] + x[c->P + p]) * (x[p] + x[c->P + p]);
    }
    y[0] = l / c->P + c->coef * cen / c->P;
}

static void test_pairwise(void) {
    float c1 = 1, r1 = 0;
    float l = pairwise_loss_forward(&c1, &r1, NULL, 0.0f, 1);
    CHECK(fabsf(l - 0.31326169f) < 1e-6f, "-logsigmoid(1) = %.8g", l);
    l = pairwise_loss_forward(&c1, &r1, NULL, 0.01f, 1);
    CHECK(fabsf(l - 0.32326169f) < 1e-6f, "with center coef 0.01: %.8g", l);
    float m1 = 1;
    l = pairwise_loss_forward(&c1, &r1, &m1, 0.0f, 1);
    CHECK(fabsf(l - 0.69314718f) < 1e-6f, "margin 1: log 2 = %.8g", l);
    // stability: a gap of +-200 must give 0 and 200, not inf/nan
    float cb[2] = {100, -100}, rb[2] = {-100, 100}, dc[2] = {0}, dr[2] = {0};
    l = pairwise_loss_forward(cb, rb, NULL, 0.0f, 2);
    CHECK(fabsf(l - 100.0f) < 1e-4f, "stable large gaps: %g", l);
    pairwise_loss_backward(dc, dr, cb, rb, NULL, 0.0f, 2, 1.0f);
    CHECK(fabsf(dc[0]) < 1e-30f && fabsf(dc[1] + 0.5f) < 1e-6f && fabsf(dr[1] - 0.5f) < 1e-6f,
          "stable grads %g %g %g", dc[0], dc[1], dr[1]);

    enum { P = 6 };
    double margin[P] = {0.5, 0, -0.3, 1.0, 0.2, 0};
    float marginf[P];
    for (int p = 0; p < P; p++) marginf[p] = (float)margin[p];
    pair_ctx ctx = {P, margin, 0.05};
    float x[2 * P], dx[2 * P] = {0};
    double xd[2 * P], w = 1.0, num[2 * P], yd;
    gc_fill(x, xd, 2 * P, 101, 2.0f);
    l = pairwise_loss_forward(x, x + P, marginf, 0.05f, P);
    pair_ref(&ctx, xd, &yd);
    gc_compare_fwd("pairwise forward", &l, &yd, 1, 1e-6, 1e-6);
    pairwise_loss_backward(dx, dx + P, x, x + P, marginf, 0.05f, P, 1.0f);
    gc_numeric_grad(pair_ref, &ctx, xd, 2 * P, 1, &w, num);
    gc_compare("pairwise dchosen", dx, num, P, GC_ATOL, GC_RTOL);
    gc_compare("pairwise drejected", dx + P, num + P, P, GC_ATOL, GC_RTOL);
    float dh[2 * P] = {0};
    pairwise_loss_backward(dh, dh + P, x, x + P, marginf, 0.05f, P, 0.5f);
    CHECK(fabsf(dh[0] - 0.5f * dx[0]) < 1e-7f, "grad_scale 0.5 halves: %g vs %g", dh[0], dx[0]);
}

// ---- cross-entropy ------------------------------------------------------------------------------
typedef struct { int N, V; const int32_t *t; double temp; } ce_ctx;

static double ref_logprob(const double *x, int V, int t, double temp) {
    double mx = -INFINITY, s = 0;
    for (int v = 0; v < V; v++) mx = fmax(mx, x[v] / temp);
    for (int v = 0; v < V; v++) s += exp(x[v] / temp - mx);
    return x[t] / temp - mx - log(s);
}

static void ce_ref(void *vc, const double *x, double *y) {
    ce_ctx *c = vc;
    double l = 0;
    int n_counted = 0;
    for (int n = 0; n < c->N; n++) {
        if (c->t[n] == CE_IGNORE_INDEX) continue;
        l -= ref_logprob(x + n * c->V, c->V, c->t[n], 1.0);
        n_counted++;
    }
    y[0] = l / n_counted;
}

static void test_cross_entropy(void) {
    float h[6] = {0, logf(2.0f), 0, 5, 5, 5};
    int32_t ht[2] = {1, CE_IGNORE_INDEX};
    int cnt = -1;
    float l = cross_entropy_forward(h, ht, 2, 3, &cnt);
    CHECK(cnt == 1 && fabsf(l - 0.69314718f) < 1e-6f, "hand CE %.8g count %d", l, cnt);
    float hd[6] = {0};
    cross_entropy_backward(hd, h, ht, 2, 3, cnt, 1.0f);
    float hw[6] = {0.25f, -0.5f, 0.25f, 0, 0, 0};
    tu_close("CE hand grad (ignored row zero)", hd, hw, 6, 1e-6, 1e-6);

    enum { N = 5, V = 7 };
    int32_t t[N] = {3, CE_IGNORE_INDEX, 0, 6, 2};
    ce_ctx c = {N, V, t, 1.0};
    float x[N * V], dx[N * V] = {0};
    double xd[N * V], w = 1.0, num[N * V], yd;
    gc_fill(x, xd, N * V, 111, 2.0f);
    l = cross_entropy_forward(x, t, N, V, &cnt);
    ce_ref(&c, xd, &yd);
    CHECK(cnt == 4, "counted %d", cnt);
    gc_compare_fwd("cross-entropy forward", &l, &yd, 1, 1e-6, 1e-6);
    cross_entropy_backward(dx, x, t, N, V, cnt, 1.0f);
    gc_numeric_grad(ce_ref, &c, xd, N * V, 1, &w, num);
    gc_compare("cross-entropy backward", dx, num, N * V, GC_ATOL, GC_RTOL);

    // a big case takes the parallel path: matches the reference and is deterministic
    enum { BN = 300, BV = 500 };
    float *bx = gc_floats(BN * BV);
    double *bxd = gc_doubles(BN * BV);
    int32_t bt[BN];
    gc_fill(bx, bxd, BN * BV, 112, 3.0f);
    for (int n = 0; n < BN; n++) bt[n] = n % 7 == 0 ? CE_IGNORE_INDEX : (n * 37) % BV;
    ce_ctx bc = {BN, BV, bt, 1.0};
    int bcnt;
    float l1 = cross_entropy_forward(bx, bt, BN, BV, &bcnt), l2 = cross_entropy_forward(bx, bt, BN, BV, &bcnt);
    ce_ref(&bc, bxd, &yd);
    CHECK(l1 == l2, "cross-entropy deterministic");
    // in place (SFT writes the gradient over the logits): bit-identical to the zeroed out-of-place buffer
    float *bd = calloc((size_t)BN * BV, sizeof(float)), *bi = gc_floats(BN * BV);
    memcpy(bi, bx, sizeof(float) * BN * BV);
    cross_entropy_backward(bd, bx, bt, BN, BV, bcnt, 0.5f);
    cross_entropy_backward_inplace(bi, bt, BN, BV, bcnt, 0.5f);
    CHECK(memcmp(bd, bi, sizeof(float) * BN * BV) == 0, "cross-entropy in-place backward == out-of-place");
    free(bd);
    free(bi);
    gc_compare_fwd("cross-entropy big forward", &l1, &yd, 1, 1e-6, 1e-6);
    free(bx);
    free(bxd);
}

// y (N) = log_softmax(x / temp)[target], 0 for ignored rows
static void logprobs_ref(void *vc, const double *x, double *y) {
    ce_ctx *c = vc;
    for (int n = 0; n < c->N; n++) y[n] = c->t[n] < 0 ? 0.0 : ref_logprob(x + n * c->V, c->V, c->t[n], c->temp);
}

static void test_token_logprobs(void) {
    enum { N = 4, V = 9 };
    int32_t t[N] = {2, 8, CE_IGNORE_INDEX, 0};
    float x[N * V], out[N];
    double xd[N * V];
    gc_fill(x, xd, N * V, 121, 2.0f);
    const float temp = 0.7f;
    token_logprobs_forward(out, x, t, N, V, temp);
    double want[N];
    for (int n = 0; n < N; n++) want[n] = t[n] < 0 ? 0.0 : ref_logprob(xd + n * V, V, t[n], (double)temp);
    gc_compare_fwd("token logprobs (temperature 0.7)", out, want, N, 1e-5, 1e-5);
    // backward against finite differences of the double reference
    ce_ctx c = {N, V, t, (double)temp};
    float w[N], dx[N * V] = {0};
    double wd[N], num[N * V];
    gc_weights(w, wd, N, 12);
    token_logprobs_backward(dx, w, x, t, N, V, temp);
    gc_numeric_grad(logprobs_ref, &c, xd, N * V, N, wd, num);
    gc_compare("token logprobs backward", dx, num, N * V, GC_ATOL, GC_RTOL);
    float u[3] = {1, 1, 1}, uo;
    int32_t ut = 1;
    token_logprobs_forward(&uo, u, &ut, 1, 3, 1.0f);
    CHECK(fabsf(uo + logf(3.0f)) < 1e-6f, "uniform logprob -log 3: %g", uo);
}

int main(void) {
    test_pairwise();
    test_cross_entropy();
    test_token_logprobs();
    return tu_finish("nn_losses");
}
