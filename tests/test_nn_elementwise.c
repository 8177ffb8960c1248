// Tests of the elementwise ops (gelu erf/tanh, relu, silu, tanh, swiglu, geglu, softcap, add), softmax and dropout:
// hand-computed forward values, double-reference forwards and finite-difference backward checks,
// dropout mask consistency between forward, backward and dropout_scale_at.
#include <math.h>
#include <string.h>

#include "gradcheck.h"
#include "nn/nn_internal.h"
#include "nn/ops.h"

// ---- activations --------------------------------------------------------------------------------
typedef struct { activation_kind k; int n; } act_ctx;

static double act_ref1(activation_kind k, double x) {
    switch (k) {
    case ACT_GELU_ERF: return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
    case ACT_GELU_TANH: return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
    case ACT_RELU: return x > 0 ? x : 0;
    case ACT_SILU: return x / (1.0 + exp(-x));
    case ACT_TANH: return tanh(x);
    default: return NAN;
    }
}

static void act_ref(void *vc, const double *x, double *y) {
    act_ctx *c = vc;
    for (int i = 0; i < c->n; i++) y[i] = act_ref1(c->k, x[i]);
}

static void test_activation(const char *name, float hand_in, float hand_out) {
    activation_kind k = activation_from_name(name);
    CHECK(k != ACT_UNKNOWN, "activation %s known", name);
    float ho;
    activation_forward(k, &ho, &hand_in, 1);
    CHECK(fabsf(ho - hand_out) <= 1e-6f, "%s(%g) = %.8g, want %.8g", name, hand_in, ho, hand_out);
    enum { N = 40 };
    act_ctx c = {k, N};
    float x[N], y[N], w[N], dx[N] = {0};
    double xd[N], yd[N], wd[N], num[N];
    gc_fill(x, xd, N, 41 + k, 2.0f);
    activation_forward(k, y, x, N);
    act_ref(&c, xd, yd);
    char msg[64];
    snprintf(msg, sizeof msg, "%s forward", name);
    gc_compare_fwd(msg, y, yd, N, 1e-6, 1e-5);
    gc_weights(w, wd, N, 5);
    activation_backward(k, dx, w, x, y, N);
    gc_numeric_grad(act_ref, &c, xd, N, N, wd, num);
    snprintf(msg, sizeof msg, "%s backward", name);
    gc_compare(msg, dx, num, N, GC_ATOL, GC_RTOL);
    // the in-place backward (d *= f'(x)) gives activation_backward's values (the reference) exactly
    float d[N];
    memcpy(d, w, sizeof d);
    int has = activation_backward_inplace(k, d, x, N);
    CHECK(has == activation_has_inplace_backward(k), "%s in-place backward availability", name);
    if (has)
        for (int i = 0; i < N; i++) CHECK(d[i] == dx[i], "%s in-place backward [%d]: %g vs %g", name, i, d[i], dx[i]);
    else
        CHECK(memcmp(d, w, sizeof d) == 0, "%s: no in-place backward leaves d as it was", name);
}

typedef struct { int n; } swiglu_ctx;
static void swiglu_ref(void *vc, const double *x, double *y) {
    int n = ((swiglu_ctx *)vc)->n;
    for (int i = 0; i < n; i++) y[i] = x[i] / (1.0 + exp(-x[i])) * x[n + i];
}

static void test_swiglu(void) {
    enum { N = 30 };
    float g1 = 1.0f, u1 = 2.0f, o1;
    swiglu_forward(&o1, &g1, &u1, 1);
    CHECK(fabsf(o1 - 1.4621171573f) < 1e-6f, "swiglu(1, 2) = %.8g", o1);
    swiglu_ctx c = {N};
    float x[2 * N], y[N], w[N], dx[2 * N] = {0};
    double xd[2 * N], yd[N], wd[N], num[2 * N];
    gc_fill(x, xd, 2 * N, 51, 2.0f);
    swiglu_forward(y, x, x + N, N);
    swiglu_ref(&c, xd, yd);
    gc_compare_fwd("swiglu forward", y, yd, N, 1e-6, 1e-5);
    gc_weights(w, wd, N, 6);
    swiglu_backward(dx, dx + N, w, x, x + N, N);
    gc_numeric_grad(swiglu_ref, &c, xd, 2 * N, N, wd, num);
    gc_compare("swiglu dgate", dx, num, N, GC_ATOL, GC_RTOL);
    gc_compare("swiglu dup", dx + N, num + N, N, GC_ATOL, GC_RTOL);
}

// GeGLU (Gemma): gelu_tanh(gate) * up
static void geglu_ref(void *vc, const double *x, double *y) {
    int n = ((swiglu_ctx *)vc)->n;
    for (int i = 0; i < n; i++) {
        double g = x[i];
        y[i] = 0.5 * g * (1.0 + tanh(0.7978845608028654 * (g + 0.044715 * g * g * g))) * x[n + i];
    }
}

static void test_geglu(void) {
    enum { N = 30 };
    float g1 = 1.0f, u1 = 2.0f, o1;
    geglu_forward(&o1, &g1, &u1, 1);
    CHECK(fabsf(o1 - 2.0f * 0.8411919906f) < 1e-6f, "geglu(1, 2) = %.8g", o1);
    swiglu_ctx c = {N};
    float x[2 * N], y[N], w[N], dx[2 * N] = {0};
    double xd[2 * N], yd[N], wd[N], num[2 * N];
    gc_fill(x, xd, 2 * N, 52, 2.0f);
    geglu_forward(y, x, x + N, N);
    geglu_ref(&c, xd, yd);
    gc_compare_fwd("geglu forward", y, yd, N, 1e-6, 1e-5);
    gc_weights(w, wd, N, 7);
    geglu_backward(dx, dx + N, w, x, x + N, N);
    gc_numeric_grad(geglu_ref, &c, xd, 2 * N, N, wd, num);
    gc_compare("geglu dgate", dx, num, N, GC_ATOL, GC_RTOL);
    gc_compare("geglu dup", dx + N, num + N, N, GC_ATOL, GC_RTOL);
}

// soft-capping (Gemma 2): cap * tanh(x / cap), on values beyond the cap so tanh saturates
typedef struct { int n; double cap; } softcap_ctx;
static void softcap_ref(void *vc, const double *x, double *y) {
    softcap_ctx *c = vc;
    for (int i = 0; i < c->n; i++) y[i] = c->cap * tanh(x[i] / c->cap);
}

static void test_softcap(void) {
    enum { N = 30 };
    softcap_ctx c = {N, 1.5};
    float x[N], y[N], w[N], dx[N] = {0};
    double xd[N], yd[N], wd[N], num[N];
    gc_fill(x, xd, N, 53, 4.0f);
    softcap_forward(y, x, (float)c.cap, N);
    softcap_ref(&c, xd, yd);
    gc_compare_fwd("softcap forward", y, yd, N, 1e-6, 1e-5);
    float big = 1000.0f, capped;
    softcap_forward(&capped, &big, 3.0f, 1);
    CHECK(capped == 3.0f, "softcap(1000, 3) = %g", capped);
    gc_weights(w, wd, N, 8);
    softcap_backward(dx, w, y, (float)c.cap, N);
    gc_numeric_grad(softcap_ref, &c, xd, N, N, wd, num);
    gc_compare("softcap backward", dx, num, N, GC_ATOL, GC_RTOL);
}

static void test_names_and_add(void) {
    CHECK(activation_from_name("gelu") == ACT_GELU_ERF, "gelu");
    CHECK(activation_from_name("gelu_pytorch_tanh") == ACT_GELU_TANH, "gelu_pytorch_tanh");
    CHECK(activation_from_name("swish") == ACT_SILU, "swish");
    CHECK(activation_from_name("gelu_fast") == ACT_UNKNOWN, "unknown name");
    float a[3] = {1, 2, 3}, b[3] = {0.5f, -2, 4}, o[3], want[3] = {1.5f, 0, 7};
    add_forward(o, a, b, 3);
    tu_close("add", o, want, 3, 0, 0);
}

// ---- softmax ------------------------------------------------------------------------------------
typedef struct { int N, C; } sm_ctx;
static void softmax_ref(void *vc, const double *x, double *y) {
    sm_ctx *c = vc;
    for (int n = 0; n < c->N; n++) {
        double mx = -INFINITY, s = 0;
        for (int i = 0; i < c->C; i++) mx = fmax(mx, x[n * c->C + i]);
        for (int i = 0; i < c->C; i++) s += exp(x[n * c->C + i] - mx);
        for (int i = 0; i < c->C; i++) y[n * c->C + i] = exp(x[n * c->C + i] - mx) / s;
    }
}

static void test_softmax(void) {
    float h[3] = {0, logf(2.0f), 0}, ho[3], hw[3] = {0.25f, 0.5f, 0.25f};
    softmax_forward(ho, h, 1, 3);
    tu_close("softmax hand", ho, hw, 3, 1e-7, 1e-6);
    float big[2] = {1000.0f, 1000.0f}, bo[2];
    softmax_forward(bo, big, 1, 2);
    CHECK(bo[0] == 0.5f && bo[1] == 0.5f, "softmax stable at 1000: %g %g", bo[0], bo[1]);
    enum { N = 3, C = 7 };
    sm_ctx c = {N, C};
    float x[N * C], y[N * C], w[N * C], dx[N * C] = {0};
    double xd[N * C], yd[N * C], wd[N * C], num[N * C];
    gc_fill(x, xd, N * C, 61, 2.0f);
    softmax_forward(y, x, N, C);
    softmax_ref(&c, xd, yd);
    gc_compare_fwd("softmax forward", y, yd, N * C, 1e-7, 1e-5);
    gc_weights(w, wd, N * C, 7);
    softmax_backward(dx, w, y, N, C);
    gc_numeric_grad(softmax_ref, &c, xd, N * C, N * C, wd, num);
    gc_compare("softmax backward", dx, num, N * C, GC_ATOL, GC_RTOL);
}

// ---- dropout ------------------------------------------------------------------------------------
typedef struct { int n; float p; uint64_t key; } drop_ctx;
static void dropout_ref(void *vc, const double *x, double *y) {
    drop_ctx *c = vc;
    for (int i = 0; i < c->n; i++) y[i] = x[i] * dropout_scale_at(c->key, i, c->p);
}

static void test_dropout(void) {
    enum { N = 100003 };   // odd size: crosses mask blocks and a partial Philox block
    const float p = 0.25f;
    const uint64_t key = rng_key(1, RNG_STREAM_DROPOUT, 2, 3);
    float *x = gc_floats(N), *y = gc_floats(N), *y2 = gc_floats(N), *dx = gc_floats(N), *g = gc_floats(N);
    gc_fill(x, NULL, N, 71, 1.0f);
    for (int i = 0; i < N; i++) g[i] = 1.0f;
    dropout_forward(y, x, p, key, N);
    int dropped = 0, bad = 0, mism = 0;
    for (int i = 0; i < N; i++) {
        float s = dropout_scale_at(key, i, p);
        if (y[i] == 0.0f) dropped++;
        else if (fabsf(y[i] - x[i] / (1 - p)) > 1e-6f * fabsf(x[i])) bad++;
        if (y[i] != x[i] * s) mism++;
    }
    double frac = (double)dropped / N;
    CHECK(fabs(frac - p) < 0.01, "dropped fraction %.4f, want %.2f", frac, p);
    CHECK(bad == 0, "%d kept values not scaled by 1/(1-p)", bad);
    CHECK(mism == 0, "%d elements differ from dropout_scale_at", mism);
    dropout_backward(dx, g, p, key, N);
    int incons = 0;
    for (int i = 0; i < N; i++)
        if ((dx[i] == 0.0f) != (y[i] == 0.0f && x[i] != 0.0f)) incons++;
    CHECK(incons == 0, "backward mask regenerated: %d inconsistent elements", incons);
    dropout_forward(y2, x, p, key, N);
    CHECK(memcmp(y, y2, sizeof(float) * N) == 0, "dropout deterministic");
    dropout_forward(y2, x, p, key + 1, N);
    CHECK(memcmp(y, y2, sizeof(float) * N) != 0, "another key, another mask");
    dropout_forward(y2, x, 0.0f, key, N);
    CHECK(memcmp(x, y2, sizeof(float) * N) == 0, "p = 0 copies");
    // finite differences on a small case
    enum { M = 37 };
    drop_ctx c = {M, 0.5f, key};
    float xs[M], w[M], dxs[M] = {0};
    double xd[M], wd[M], num[M];
    gc_fill(xs, xd, M, 72, 1.0f);
    gc_weights(w, wd, M, 8);
    dropout_backward(dxs, w, c.p, key, M);
    gc_numeric_grad(dropout_ref, &c, xd, M, M, wd, num);
    gc_compare("dropout backward", dxs, num, M, GC_ATOL, GC_RTOL);
    free(x); free(y); free(y2); free(dx); free(g);
}

// The SIMD-lane Philox mask (nn_dropout_mask) against the one-block-at-a-time reference, bit for bit, at
// every alignment of the first element and lengths around the lane chunk, for keys with both key words set.
static void test_dropout_mask_lanes(void) {
    enum { N = 700 };
    float a[N], b[N];
    int bad = 0;
    const float ps[] = {0.1f, 0.5f, 0.9f};
    for (int pi = 0; pi < 3; pi++)
        for (int64_t first = 0; first < 9; first++)
            for (int n = 0; n <= N; n += (n < 140 ? 1 : 37)) {
                uint64_t key = rng_key(7, RNG_STREAM_DROPOUT, (uint64_t)pi, (uint64_t)first);
                int64_t f = first + (first & 1 ? ((int64_t)1 << 33) : 0);   // counters above 2^32 too
                nn_dropout_mask_ref(a, key, f, n, ps[pi]);
                nn_dropout_mask(b, key, f, n, ps[pi]);
                if (memcmp(a, b, sizeof(float) * (size_t)n)) bad++;
            }
    CHECK(bad == 0, "%d (p, first, n) cases where nn_dropout_mask differs from nn_dropout_mask_ref", bad);
}

// The vectorisable exp and erf behind every activation, softmax and loss.
static void test_fast_math(void) {
    double worst_ulp = 0, worst_erf = 0;
    for (float x = -86.4f; x < 88.7f; x += 0.00173f) {
        double e = exp((double)x);
        float ulp = nextafterf((float)e, INFINITY) - (float)e;
        double u = fabs(nn_expf(x) - e) / ulp;
        if (u > worst_ulp) worst_ulp = u;
    }
    for (float x = -6.0f; x < 6.0f; x += 0.0003f) {
        double d = fabs(nn_erff(x) - erf((double)x));
        if (d > worst_erf) worst_erf = d;
    }
    CHECK(worst_ulp <= 2.0, "nn_expf worst error %.2f ulp", worst_ulp);
    CHECK(worst_erf <= 1e-6, "nn_erff worst abs error %.3g", worst_erf);
    CHECK(nn_expf(0.0f) == 1.0f && nn_expf(-INFINITY) == 0.0f && isinf(nn_expf(100.0f)) && isnan(nn_expf(NAN)),
          "exp edge cases");
}

int main(void) {
    test_fast_math();
    test_activation("gelu", 1.0f, 0.8413447461f);
    test_activation("gelu_new", 1.0f, 0.8411919906f);
    test_activation("relu", -1.0f, 0.0f);
    test_activation("silu", 1.0f, 0.7310585786f);
    test_activation("tanh", 0.5f, 0.4621171573f);
    test_swiglu();
    test_geglu();
    test_softcap();
    test_names_and_add();
    test_softmax();
    test_dropout();
    test_dropout_mask_lanes();
    return tu_finish("nn_elementwise");
}
