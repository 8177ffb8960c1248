// Tests of the dense ops: linear, conv1d, embedding, layernorm, rmsnorm. Each op: a forward checked
// against hand-computed values and against a double reference, and a backward checked against
// central finite differences of that reference (gradcheck.h).
#include <math.h>
#include <string.h>

#include "gradcheck.h"
#include "nn/ops.h"

// ---- linear / conv1d ----------------------------------------------------------------------------
typedef struct { int N, C, OC, bias, conv; } dense_ctx;

// x = [inp (N, C), weight (OC, C) or (C, OC) for conv, bias (OC)]; y = (N, OC)
static void dense_ref(void *vc, const double *x, double *y) {
    dense_ctx *c = vc;
    const double *inp = x, *w = x + c->N * c->C, *b = w + c->OC * c->C;
    for (int n = 0; n < c->N; n++)
        for (int o = 0; o < c->OC; o++) {
            double s = c->bias ? b[o] : 0.0;
            for (int i = 0; i < c->C; i++) s += inp[n * c->C + i] * (c->conv ? w[i * c->OC + o] : w[o * c->C + i]);
            y[n * c->OC + o] = s;
        }
}

static void test_dense(int conv, int bias) {
    // hand case: inp [[1, 2]], weight (OC=2, C=2) [[1, 0], [3, -1]], bias [0.5, -1]
    float inp1[2] = {1, 2}, w1[4] = {1, 0, 3, -1}, wt1[4] = {1, 3, 0, -1}, b1[2] = {0.5f, -1}, o1[2];
    if (conv) conv1d_forward(o1, inp1, wt1, b1, 1, 2, 2);
    else linear_forward(o1, inp1, w1, b1, 1, 2, 2);
    CHECK(o1[0] == 1.5f && o1[1] == 0.0f, "%s hand: %g %g", conv ? "conv1d" : "linear", o1[0], o1[1]);

    dense_ctx c = {5, 7, 3, bias, conv};
    int nin = c.N * c.C + c.OC * c.C + c.OC, nout = c.N * c.OC;
    float *x = gc_floats(nin), *y = gc_floats(nout), *w = gc_floats(nout), *dx = gc_floats(nin);
    double *xd = gc_doubles(nin), *yd = gc_doubles(nout), *wd = gc_doubles(nout), *num = gc_doubles(nin);
    gc_fill(x, xd, nin, 11 + conv, 1.0f);
    if (!bias) for (int o = 0; o < c.OC; o++) x[nin - c.OC + o] = 0, xd[nin - c.OC + o] = 0;
    float *inp = x, *wt = x + c.N * c.C, *b = wt + c.OC * c.C;
    if (conv) conv1d_forward(y, inp, wt, bias ? b : NULL, c.N, c.C, c.OC);
    else linear_forward(y, inp, wt, bias ? b : NULL, c.N, c.C, c.OC);
    dense_ref(&c, xd, yd);
    gc_compare_fwd(conv ? "conv1d forward" : "linear forward", y, yd, nout, 1e-5, 1e-5);
    gc_weights(w, wd, nout, 3);
    float *dinp = dx, *dw = dx + c.N * c.C, *db = dw + c.OC * c.C;
    if (conv) conv1d_backward(dinp, dw, bias ? db : NULL, w, inp, wt, c.N, c.C, c.OC);
    else linear_backward(dinp, dw, bias ? db : NULL, w, inp, wt, c.N, c.C, c.OC);
    gc_numeric_grad(dense_ref, &c, xd, nin, nout, wd, num);
    gc_compare(conv ? "conv1d dinp" : "linear dinp", dinp, num, c.N * c.C, GC_ATOL, GC_RTOL);
    gc_compare(conv ? "conv1d dweight" : "linear dweight", dw, num + c.N * c.C, c.OC * c.C, GC_ATOL, GC_RTOL);
    if (bias) gc_compare(conv ? "conv1d dbias" : "linear dbias", db, num + nin - c.OC, c.OC, GC_ATOL, GC_RTOL);
    // accumulation: a second backward doubles the gradient
    float before = dw[0];
    if (conv) conv1d_backward(NULL, dw, NULL, w, inp, wt, c.N, c.C, c.OC);
    else linear_backward(NULL, dw, NULL, w, inp, wt, c.N, c.C, c.OC);
    CHECK(fabsf(dw[0] - 2 * before) <= 1e-5f * (1 + fabsf(before)), "backward accumulates: %g vs %g", dw[0], before);
    free(x); free(y); free(w); free(dx); free(xd); free(yd); free(wd); free(num);
}

// ---- embedding ----------------------------------------------------------------------------------
static void test_embedding(void) {
    enum { V = 5, C = 3, N = 6, PAD = 1 };
    float table[V * C], out[N * C], dout[N * C], dtable[V * C] = {0}, want[V * C] = {0};
    int32_t ids[N] = {2, 1, 2, 4, 0, 1};
    for (int i = 0; i < V * C; i++) table[i] = (float)i;
    embedding_forward(out, ids, table, N, C);
    CHECK(out[0] == 6 && out[2] == 8 && out[3 * C + 1] == 13 && out[4 * C] == 0, "embedding rows");
    for (int i = 0; i < N * C; i++) dout[i] = 0.5f * i - 2;
    embedding_backward(dtable, dout, ids, N, C, PAD);
    for (int n = 0; n < N; n++)
        if (ids[n] != PAD)
            for (int c = 0; c < C; c++) want[ids[n] * C + c] += dout[n * C + c];
    tu_close("embedding dtable (repeated ids, padding row skipped)", dtable, want, V * C, 0, 0);
    CHECK(dtable[PAD * C] == 0 && dtable[PAD * C + 2] == 0, "padding row gets no gradient");
    // without padding_idx the padding row does accumulate
    memset(dtable, 0, sizeof dtable);
    embedding_backward(dtable, dout, ids, N, C, -1);
    CHECK(dtable[PAD * C] == dout[1 * C] + dout[5 * C], "no padding_idx: row 1 = %g", dtable[PAD * C]);
}

// ---- layernorm / rmsnorm ------------------------------------------------------------------------
typedef struct { int N, C, rms; double eps; } norm_ctx;  // rms 2: Gemma's (1 + weight) scale

// x = [inp (N, C), weight (C), bias (C) (layernorm only)]; y = (N, C)
static void norm_ref(void *vc, const double *x, double *y) {
    norm_ctx *c = vc;
    const double *w = x + c->N * c->C, *b = w + c->C;
    for (int n = 0; n < c->N; n++) {
        const double *r = x + n * c->C;
        double m = 0, v = 0;
        for (int i = 0; i < c->C; i++) m += r[i];
        m /= c->C;
        if (c->rms) m = 0;
        for (int i = 0; i < c->C; i++) v += (r[i] - m) * (r[i] - m);
        v /= c->C;
        double rs = 1.0 / sqrt(v + c->eps);
        for (int i = 0; i < c->C; i++)
            y[n * c->C + i] = (r[i] - m) * rs * (c->rms == 2 ? 1.0 + w[i] : w[i]) + (c->rms ? 0.0 : b[i]);
    }
}

static void test_norm(int rms) {
    const char *nm = rms == 2 ? "rmsnorm1p" : rms ? "rmsnorm" : "layernorm";
    // hand case: [1, 2, 3]: mean 2, biased var 2/3 -> (-1.2247, 0, 1.2247); rms: sqrt(14/3)
    float h[3] = {1, 2, 3}, one[3] = {1, 1, 1}, zero[3] = {0}, ho[3], hm, hr;
    if (rms == 2) {  // weight 0: scale 1
        rmsnorm1p_forward(ho, &hr, h, zero, 1, 3, 0.0f);
        float want[3] = {0.46291005f, 0.9258201f, 1.38873015f};
        tu_close("rmsnorm1p hand", ho, want, 3, 1e-6, 1e-6);
    } else if (rms) {
        rmsnorm_forward(ho, &hr, h, one, 1, 3, 0.0f);
        float want[3] = {0.46291005f, 0.9258201f, 1.38873015f};
        tu_close("rmsnorm hand", ho, want, 3, 1e-6, 1e-6);
    } else {
        layernorm_forward(ho, &hm, &hr, h, one, zero, 1, 3, 0.0f);
        float want[3] = {-1.22474487f, 0.0f, 1.22474487f};
        tu_close("layernorm hand", ho, want, 3, 1e-6, 1e-6);
        CHECK(hm == 2.0f, "mean saved %g", hm);
    }
    norm_ctx c = {4, 9, rms, 1e-5};
    int nin = c.N * c.C + 2 * c.C, nout = c.N * c.C;
    float *x = gc_floats(nin), *y = gc_floats(nout), *w = gc_floats(nout), *dx = gc_floats(nin);
    float mean[4], rstd[4];
    double *xd = gc_doubles(nin), *yd = gc_doubles(nout), *wd = gc_doubles(nout), *num = gc_doubles(nin);
    gc_fill(x, xd, nin, 21 + rms, 1.0f);
    for (int i = 0; i < c.C; i++) x[c.N * c.C + i] += 1.0f, xd[c.N * c.C + i] += 1.0;   // weight near 1
    float *inp = x, *wt = x + c.N * c.C, *b = wt + c.C;
    if (rms == 2) rmsnorm1p_forward(y, rstd, inp, wt, c.N, c.C, (float)c.eps);
    else if (rms) rmsnorm_forward(y, rstd, inp, wt, c.N, c.C, (float)c.eps);
    else layernorm_forward(y, mean, rstd, inp, wt, b, c.N, c.C, (float)c.eps);
    norm_ref(&c, xd, yd);
    char name[64];
    snprintf(name, sizeof name, "%s forward", nm);
    gc_compare_fwd(name, y, yd, nout, 1e-5, 1e-5);
    gc_weights(w, wd, nout, 4);
    if (rms == 2) rmsnorm1p_backward(dx, dx + c.N * c.C, w, inp, wt, rstd, c.N, c.C);
    else if (rms) rmsnorm_backward(dx, dx + c.N * c.C, w, inp, wt, rstd, c.N, c.C);
    else layernorm_backward(dx, dx + c.N * c.C, dx + c.N * c.C + c.C, w, inp, wt, mean, rstd, c.N, c.C);
    gc_numeric_grad(norm_ref, &c, xd, nin, nout, wd, num);
    snprintf(name, sizeof name, "%s dinp", nm);
    gc_compare(name, dx, num, c.N * c.C, GC_ATOL, GC_RTOL);
    snprintf(name, sizeof name, "%s dweight", nm);
    gc_compare(name, dx + c.N * c.C, num + c.N * c.C, c.C, GC_ATOL, GC_RTOL);
    if (!rms) gc_compare("layernorm dbias", dx + c.N * c.C + c.C, num + c.N * c.C + c.C, c.C, GC_ATOL, GC_RTOL);
    free(x); free(y); free(w); free(dx); free(xd); free(yd); free(wd); free(num);
}

// Bigger shapes take the OpenMP paths; two runs must agree bit for bit.
static void test_determinism(void) {
    enum { N = 512, C = 256 };
    float *x = gc_floats(N * C), *g = gc_floats(N * C), *w = gc_floats(C), *b = gc_floats(C);
    float *y = gc_floats(N * C), *m = gc_floats(N), *r = gc_floats(N);
    float *d1 = gc_floats(N * C + 2 * C), *d2 = gc_floats(N * C + 2 * C);
    gc_fill(x, NULL, N * C, 31, 1.0f);
    gc_fill(g, NULL, N * C, 32, 1.0f);
    gc_fill(w, NULL, C, 33, 1.0f);
    layernorm_forward(y, m, r, x, w, b, N, C, 1e-5f);
    layernorm_backward(d1, d1 + N * C, d1 + N * C + C, g, x, w, m, r, N, C);
    layernorm_backward(d2, d2 + N * C, d2 + N * C + C, g, x, w, m, r, N, C);
    CHECK(memcmp(d1, d2, sizeof(float) * (N * C + 2 * C)) == 0, "layernorm backward deterministic");
    // the output recomputed from the kept statistics (what the encoder's backward does) is the forward's
    gc_fill(b, NULL, C, 34, 1.0f);
    layernorm_forward(y, m, r, x, w, b, N, C, 1e-5f);
    layernorm_apply(d1, x, m, r, w, b, N, C);
    CHECK(memcmp(y, d1, sizeof(float) * N * C) == 0, "layernorm_apply == layernorm_forward's output");
    layernorm_forward(y, m, r, x, NULL, NULL, N, C, 1e-5f);
    layernorm_apply(d1, x, m, r, NULL, NULL, N, C);
    CHECK(memcmp(y, d1, sizeof(float) * N * C) == 0, "layernorm_apply without affine");
    free(x); free(g); free(w); free(b); free(y); free(m); free(r); free(d1); free(d2);
}

int main(void) {
    test_dense(0, 1);
    test_dense(0, 0);
    test_dense(1, 1);
    test_embedding();
    test_norm(0);
    test_norm(1);
    test_norm(2);
    test_determinism();
    return tu_finish("nn_dense");
}
