// Tests of the LoRA linear layer (src/nn/lora.c): peft's initialisation, forward/backward equal to
// the dense layer with merged weights W + (alpha/r) B A (dense and 4-bit bases), and
// finite-difference gradient checks of A, B and the input, with and without dropout.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "nn/lora.h"
#include "nn/ops.h"
#include "testutil.h"

#define MERGED_TOL 1e-5   // the brief's bound for LoRA vs the merged dense layer
#define FD_EPS 1e-2       // central-difference step on fp32 parameters
#define FD_RTOL 2e-3      // relative error allowed between analytic and numeric gradients
#define FD_ATOL 2e-4

enum { N = 6, C = 20, OC = 12, R = 4 };

static uint32_t lcg = 777u;
static float frand(void) {
    lcg = lcg * 1664525u + 1013904223u;
    return (float)((lcg >> 8) / 8388608.0 - 1.0);
}

typedef struct {
    float W[OC * C], bias[OC], A[R * C], B[OC * R], x[N * C], g[N * OC];
} fixture;

static void make_fixture(fixture *f) {
    for (int i = 0; i < OC * C; i++) f->W[i] = frand() * 0.3f;
    for (int i = 0; i < OC; i++) f->bias[i] = frand();
    for (int i = 0; i < R * C; i++) f->A[i] = frand() * 0.5f;
    for (int i = 0; i < OC * R; i++) f->B[i] = frand() * 0.5f;  // non-zero, as after some training
    for (int i = 0; i < N * C; i++) f->x[i] = frand();
    for (int i = 0; i < N * OC; i++) f->g[i] = frand();
}

static void test_init(void) {
    static float A[R * 256], B[OC * R];
    for (int i = 0; i < OC * R; i++) B[i] = 1;
    lora_init(A, B, R, 256, OC, rng_key(1, RNG_STREAM_INIT, 5, 0));
    double bound = 1 / sqrt(256.0), mx = 0, mean = 0;
    for (int i = 0; i < R * 256; i++) mx = fmax(mx, fabs(A[i])), mean += A[i];
    mean /= R * 256;
    CHECK(mx <= bound && mx > 0.9 * bound, "A within kaiming bound 1/sqrt(C) = %g: max %g", bound, mx);
    CHECK(fabs(mean) < 0.1 * bound, "A centred: mean %g", mean);
    int zero = 1;
    for (int i = 0; i < OC * R; i++) zero &= B[i] == 0;
    CHECK(zero, "B initialised to zero");
    static float A2[R * 256];
    lora_init(A2, B, R, 256, OC, rng_key(1, RNG_STREAM_INIT, 5, 0));
    CHECK(memcmp(A, A2, sizeof A) == 0, "init deterministic in the key");

    // A fresh adapter leaves the base output unchanged.
    fixture f;
    make_fixture(&f);
    lora_init(f.A, f.B, R, C, OC, 9);
    lora_config c = {.r = R, .alpha = 16, .dropout = 0.1f};
    lora_base base = {.weight = f.W, .bias = f.bias};
    float out[N * OC], ref[N * OC], xa[N * R];
    rlhf_err err;
    CHECK(lora_linear_forward(out, xa, f.x, &base, f.A, f.B, &c, 1, 3, N, C, OC, &err) == RLHF_OK, "fwd");
    linear_forward(ref, f.x, f.W, f.bias, N, C, OC);
    tu_close("fresh adapter == base", out, ref, N * OC, 1e-6, 0);
}

// LoRA against linear_forward/backward with W + (alpha/r) B A, on a dense or a 4-bit base.
static void test_merged(int quantized) {
    fixture f;
    make_fixture(&f);
    lora_config c = {.r = R, .alpha = 8, .dropout = 0.2f};
    rlhf_err err;
    nf4_tensor q;
    float Wbase[OC * C];
    lora_base base = {.weight = f.W, .bias = f.bias, .compute = NF4_COMPUTE_F32};
    memcpy(Wbase, f.W, sizeof Wbase);
    if (quantized) {
        CHECK(nf4_quantize(&q, f.W, OC * C, NF4_QUANT_NF4, 1, "W", &err) == RLHF_OK, "quantize");
        nf4_dequantize(Wbase, &q, 0, OC * C);  // the merged reference uses the weights the layer sees
        base.weight = NULL;
        base.qweight = &q;
    }
    float merged[OC * C];
    memcpy(merged, Wbase, sizeof merged);
    lora_merge(merged, f.A, f.B, &c, C, OC);
    // merge itself: W + s * B @ A by hand at one element
    double m = Wbase[3 * C + 7];
    for (int k = 0; k < R; k++) m += (double)c.alpha / c.r * f.B[3 * R + k] * f.A[k * C + 7];
    CHECK(fabs(merged[3 * C + 7] - m) < 1e-6, "merge element %g vs %g", merged[3 * C + 7], m);

    float out[N * OC], ref[N * OC], xa[N * R];
    // Evaluation (dropout off even though configured).
    CHECK(lora_linear_forward(out, xa, f.x, &base, f.A, f.B, &c, 0, 11, N, C, OC, &err) == RLHF_OK, "fwd");
    linear_forward(ref, f.x, merged, f.bias, N, C, OC);
    const char *tag = quantized ? "nf4 base" : "dense base";
    char name[96];
    snprintf(name, sizeof name, "lora forward == merged (%s)", tag);
    CHECK(tu_close(name, out, ref, N * OC, MERGED_TOL, MERGED_TOL), "forward");

    float dinp[N * C], dref[N * C], dA[R * C], dB[OC * R];
    memset(dinp, 0, sizeof dinp);
    memset(dref, 0, sizeof dref);
    memset(dA, 0, sizeof dA);
    memset(dB, 0, sizeof dB);
    CHECK(lora_linear_backward(dinp, dA, dB, f.g, f.x, xa, &base, f.A, f.B, &c, 0, 11, N, C, OC, &err) == RLHF_OK,
          "bwd");
    linear_backward(dref, NULL, NULL, f.g, f.x, merged, N, C, OC);
    snprintf(name, sizeof name, "lora dinp == merged (%s)", tag);
    CHECK(tu_close(name, dinp, dref, N * C, MERGED_TOL, MERGED_TOL), "dinp");
    // Merged-weight gradient dW = g^T x; by the chain rule dA = s B^T dW, dB = s dW A^T.
    float dW[OC * C];
    memset(dW, 0, sizeof dW);
    linear_backward(NULL, dW, NULL, f.g, f.x, merged, N, C, OC);
    float wantA[R * C], wantB[OC * R];
    const double s = (double)c.alpha / c.r;
    for (int k = 0; k < R; k++)
        for (int j = 0; j < C; j++) {
            double t = 0;
            for (int o = 0; o < OC; o++) t += f.B[o * R + k] * (double)dW[o * C + j];
            wantA[k * C + j] = (float)(s * t);
        }
    for (int o = 0; o < OC; o++)
        for (int k = 0; k < R; k++) {
            double t = 0;
            for (int j = 0; j < C; j++) t += dW[o * C + j] * (double)f.A[k * C + j];
            wantB[o * R + k] = (float)(s * t);
        }
    snprintf(name, sizeof name, "lora dA == s B^T dW (%s)", tag);
    CHECK(tu_close(name, dA, wantA, R * C, MERGED_TOL, MERGED_TOL), "dA");
    snprintf(name, sizeof name, "lora dB == s dW A^T (%s)", tag);
    CHECK(tu_close(name, dB, wantB, OC * R, MERGED_TOL, MERGED_TOL), "dB");
    if (quantized) nf4_free(&q);
}

// L = sum(out * g) in double.
static double loss(const fixture *f, const lora_base *base, const lora_config *c, int training, uint64_t key) {
    float out[N * OC], xa[N * R];
    rlhf_err err;
    if (lora_linear_forward(out, xa, f->x, base, f->A, f->B, c, training, key, N, C, OC, &err) != RLHF_OK) return NAN;
    double l = 0;
    for (int i = 0; i < N * OC; i++) l += (double)out[i] * f->g[i];
    return l;
}

static void fd_check(const char *name, fixture *f, float *param, const float *grad, int n, const lora_base *base,
                     const lora_config *c, int training, uint64_t key) {
    double worst = 0;
    int bad = 0;
    for (int i = 0; i < n; i++) {
        float p0 = param[i];
        param[i] = p0 + (float)FD_EPS;
        double lp = loss(f, base, c, training, key);
        param[i] = p0 - (float)FD_EPS;
        double lm = loss(f, base, c, training, key);
        double h = (double)(p0 + (float)FD_EPS) - (double)(p0 - (float)FD_EPS);
        param[i] = p0;
        double fd = (lp - lm) / h, e = fabs(fd - grad[i]);
        worst = fmax(worst, e);
        if (e > FD_ATOL + FD_RTOL * fabs(fd) && bad++ < 3)
            fprintf(stderr, "  %s[%d]: analytic %.7g numeric %.7g\n", name, i, grad[i], fd);
    }
    printf("fd %-28s worst |error| %.3g\n", name, worst);
    CHECK(bad == 0, "%s: %d gradient entries off", name, bad);
}

static void test_finite_differences(int training) {
    fixture f;
    make_fixture(&f);
    lora_config c = {.r = R, .alpha = 16, .dropout = 0.3f};
    lora_base base = {.weight = f.W, .bias = f.bias};
    const uint64_t key = rng_key(42, RNG_STREAM_DROPOUT, 7, 1);
    float out[N * OC], xa[N * R], dinp[N * C] = {0}, dA[R * C] = {0}, dB[OC * R] = {0};
    rlhf_err err;
    CHECK(lora_linear_forward(out, xa, f.x, &base, f.A, f.B, &c, training, key, N, C, OC, &err) == RLHF_OK, "fwd");
    CHECK(lora_linear_backward(dinp, dA, dB, f.g, f.x, xa, &base, f.A, f.B, &c, training, key, N, C, OC, &err) ==
              RLHF_OK,
          "bwd");
    fd_check(training ? "dA (dropout 0.3)" : "dA", &f, f.A, dA, R * C, &base, &c, training, key);
    fd_check(training ? "dB (dropout 0.3)" : "dB", &f, f.B, dB, OC * R, &base, &c, training, key);
    fd_check(training ? "dinp (dropout 0.3)" : "dinp", &f, f.x, dinp, N * C, &base, &c, training, key);
    if (training) {
        // Dropout really acts on the adapter path: training output differs from evaluation.
        float ev[N * OC];
        CHECK(lora_linear_forward(ev, xa, f.x, &base, f.A, f.B, &c, 0, key, N, C, OC, &err) == RLHF_OK, "eval");
        double diff = 0;
        for (int i = 0; i < N * OC; i++) diff = fmax(diff, fabs(ev[i] - out[i]));
        CHECK(diff > 1e-3, "dropout changes the training output (max diff %g)", diff);
    }
}

int main(void) {
    test_init();
    test_merged(0);
    test_merged(1);
    test_finite_differences(0);
    test_finite_differences(1);
    return tu_finish("nn_lora");
}
