// Tests of the few-row dense kernels (src/nn/linear_small.c) through linear_forward / conv1d_forward,
// which use them for N <= LINEAR_SMALL_N: every N from 1 to 17 (17 takes sgemm) on shapes whose C and OC
// are not multiples of any vector width, against a double reference, with and without bias; a row's
// outputs must not depend on how many rows share the call; conv1d must equal the in-order float sum.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/linear_small.h"
#include "nn/ops.h"
#include "testutil.h"

#define SMALL_TOL 1e-5  // relative to the sum of |terms|: float rounding over a few hundred terms

static float frand(uint32_t *s) {
    *s = *s * 1664525u + 1013904223u;
    return ((*s >> 8) / 16777216.0f) * 2.0f - 1.0f;
}

// out (N, OC) in double and the scale sum |x w| + |b| of every output, for the tolerance
static void reference(double *ref, double *scale, const float *inp, const float *w, const float *bias, int N, int C,
                      int OC, int conv) {
    for (int n = 0; n < N; n++)
        for (int j = 0; j < OC; j++) {
            double s = bias ? bias[j] : 0.0, a = bias ? fabs(bias[j]) : 0.0;
            for (int c = 0; c < C; c++) {
                double t = (double)inp[n * C + c] * (conv ? w[(size_t)c * OC + j] : w[(size_t)j * C + c]);
                s += t, a += fabs(t);
            }
            ref[n * OC + j] = s, scale[n * OC + j] = a;
        }
}

static void check_shape(int conv, int C, int OC) {
    int maxN = LINEAR_SMALL_N + 1;
    uint32_t seed = 1234u + (uint32_t)(C * 31 + OC + conv);
    float *inp = malloc(sizeof(float) * maxN * C), *w = malloc(sizeof(float) * C * OC);
    float *bias = malloc(sizeof(float) * OC), *out = malloc(sizeof(float) * maxN * OC);
    float *one = malloc(sizeof(float) * OC);
    double *ref = malloc(sizeof(double) * maxN * OC), *scale = malloc(sizeof(double) * maxN * OC);
    for (int i = 0; i < maxN * C; i++) inp[i] = frand(&seed);
    for (int i = 0; i < C * OC; i++) w[i] = frand(&seed);
    for (int i = 0; i < OC; i++) bias[i] = frand(&seed);
    for (int with_bias = 0; with_bias <= 1; with_bias++) {
        const float *b = with_bias ? bias : NULL;
        reference(ref, scale, inp, w, b, maxN, C, OC, conv);
        // row 0 alone: every other N must give it bit for bit (results do not depend on the batch)
        if (conv) conv1d_forward(one, inp, w, b, 1, C, OC);
        else linear_forward(one, inp, w, b, 1, C, OC);
        for (int N = 1; N <= maxN; N++) {
            for (int i = 0; i < N * OC; i++) out[i] = NAN;
            if (conv) conv1d_forward(out, inp, w, b, N, C, OC);
            else linear_forward(out, inp, w, b, N, C, OC);
            double worst = 0;
            int bad = -1;
            for (int i = 0; i < N * OC; i++) {
                double e = fabs(out[i] - ref[i]) / (scale[i] + 1e-30);
                if (!(e <= worst)) worst = e, bad = i;
            }
            CHECK(worst <= SMALL_TOL, "%s C=%d OC=%d N=%d bias=%d: output %d off by %g (relative), want <= %g",
                  conv ? "conv1d" : "linear", C, OC, N, with_bias, bad, worst, SMALL_TOL);
            if (N <= LINEAR_SMALL_N)
                CHECK(memcmp(out, one, sizeof(float) * OC) == 0, "%s C=%d OC=%d: row 0 differs between N=1 and N=%d",
                      conv ? "conv1d" : "linear", C, OC, N);
        }
        if (conv) {  // the documented order: acc = 0, acc += x[c] * w[c][j] for c in order, then the bias
            conv1d_forward(out, inp, w, b, 3, C, OC);
            for (int n = 0; n < 3; n++)
                for (int j = 0; j < OC; j++) {
                    float s = 0;
                    for (int c = 0; c < C; c++) s += inp[n * C + c] * w[(size_t)c * OC + j];
                    if (b) s = b[j] + s;
                    CHECK(out[n * OC + j] == s, "conv1d C=%d OC=%d (%d, %d): %.9g, in-order sum %.9g", C, OC, n, j,
                          out[n * OC + j], s);
                    if (out[n * OC + j] != s) goto done;
                }
        }
    done:;
    }
    free(inp), free(w), free(bias), free(out), free(one), free(ref), free(scale);
}

// accumulate mode of the kernels themselves: out += x . w, as model_linear_forward's adapters rely on
static void check_accumulate(void) {
    int N = 5, C = 37, OC = 41;
    uint32_t seed = 99;
    float inp[5 * 37], w[37 * 41], out[5 * 41], base[5 * 41], fresh[5 * 41];
    for (int i = 0; i < N * C; i++) inp[i] = frand(&seed);
    for (int i = 0; i < C * OC; i++) w[i] = frand(&seed);
    for (int conv = 0; conv <= 1; conv++) {
        for (int i = 0; i < N * OC; i++) base[i] = out[i] = frand(&seed);
        if (conv) conv1d_small_n_forward(fresh, inp, w, N, C, OC, 0), conv1d_small_n_forward(out, inp, w, N, C, OC, 1);
        else linear_small_n_forward(fresh, inp, w, N, C, OC, 0), linear_small_n_forward(out, inp, w, N, C, OC, 1);
        int ok = 1;
        for (int i = 0; i < N * OC; i++) ok &= out[i] == base[i] + fresh[i];
        CHECK(ok, "%s accumulate: out must be old out + the product", conv ? "conv1d" : "linear");
    }
}

int main(void) {
    // the last three span several of conv1d's 48-row tiles (a whole number of them, and a short last one) with
    // more than 32768 weights, so two threads split the columns and prefetch into the next tile's rows
    static const int shapes[][2] = {{1, 1},     {3, 5},     {17, 33},   {37, 41},  {128, 67},
                                    {129, 100}, {131, 257}, {144, 260}, {211, 333}, {100, 1000}};
    for (int conv = 0; conv <= 1; conv++)
        for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) check_shape(conv, shapes[s][0], shapes[s][1]);
    check_accumulate();
    return tu_finish("nn_linear_small");
}
