// Tests of attention (causal, key padding, sliding window, grouped-query heads, probability dropout,
// soft-capping)
// and rotary embeddings (rotate_half and interleaved, partial rot_dim): hand-computed forwards,
// double-precision reference forwards, and finite-difference checks of every backward.
#include <math.h>
#include <string.h>

#include "gradcheck.h"
#include "nn/ops.h"

// ---- attention ----------------------------------------------------------------------------------
// Longest sequence the reference handles (its score row lives on the stack).
#define ATT_REF_MAX_T 256
typedef struct { attention_shape s; const int32_t *key_mask; } attn_ctx;

// x = [q (B,T,NH,HD), k (B,T,NKV,HD), v (B,T,NKV,HD)]; y = out (B,T,NH,HD)
static void attn_ref(void *vc, const double *x, double *y) {
    attn_ctx *c = vc;
    const attention_shape *s = &c->s;
    int B = s->B, T = s->T, NH = s->NH, NKV = s->NKV, HD = s->HD;
    const double *q = x, *k = q + B * T * NH * HD, *v = k + B * T * NKV * HD;
    double p[ATT_REF_MAX_T];
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            int g = h / (NH / NKV);
            for (int i = 0; i < T; i++) {
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j < T; j++) {
                    int vis = (!s->causal || j <= i) && (s->window <= 0 || i - j < s->window) &&
                              (!c->key_mask || c->key_mask[b * T + j]);
                    double sc = 0;
                    for (int d = 0; d < HD; d++)
                        sc += q[((b * T + i) * NH + h) * HD + d] * k[((b * T + j) * NKV + g) * HD + d];
                    sc *= s->scale;
                    if (s->softcap > 0) sc = s->softcap * tanh(sc / s->softcap);
                    p[j] = vis ? sc : -INFINITY;
                    mx = fmax(mx, p[j]);
                }
                for (int j = 0; j < T; j++) {
                    p[j] = p[j] == -INFINITY ? 0.0 : exp(p[j] - mx);
                    sum += p[j];
                }
                for (int d = 0; d < HD; d++) {
                    double o = 0;
                    for (int j = 0; j < T && sum > 0; j++) {
                        double keep = s->dropout_p > 0
                                          ? dropout_scale_at(s->dropout_key, (((int64_t)b * NH + h) * T + i) * T + j,
                                                             s->dropout_p)
                                          : 1.0;
                        o += p[j] / sum * keep * v[((b * T + j) * NKV + g) * HD + d];
                    }
                    y[((b * T + i) * NH + h) * HD + d] = o;
                }
            }
        }
}

static void test_attention_hand(void) {
    // one head, HD 1: q = [1, 1], k = [0, ln 2], v = [1, 4]; scores row = [0, ln 2] -> probs [1/3, 2/3]
    float q[2] = {1, 1}, k[2] = {0, logf(2.0f)}, v[2] = {1, 4}, out[2], probs[4];
    attention_shape s = {.B = 1, .T = 2, .NH = 1, .NKV = 1, .HD = 1, .causal = 0, .scale = 1.0f};
    attention_forward(out, probs, q, k, v, NULL, &s);
    CHECK(fabsf(out[0] - 3.0f) < 1e-6f && fabsf(out[1] - 3.0f) < 1e-6f, "bidirectional: %g %g", out[0], out[1]);
    s.causal = 1;
    attention_forward(out, probs, q, k, v, NULL, &s);
    CHECK(fabsf(out[0] - 1.0f) < 1e-6f && fabsf(out[1] - 3.0f) < 1e-6f, "causal: %g %g", out[0], out[1]);
    CHECK(probs[1] == 0.0f && fabsf(probs[2] - 1.0f / 3) < 1e-6f, "causal probs %g %g", probs[1], probs[2]);
    int32_t km[2] = {0, 1};   // left padding: query 0 sees nothing under the causal mask
    attention_forward(out, probs, q, k, v, km, &s);
    CHECK(out[0] == 0.0f && fabsf(out[1] - 4.0f) < 1e-6f, "causal+padding: %g %g", out[0], out[1]);
}

static void attention_case(const char *name, attention_shape s, const int32_t *key_mask) {
    attn_ctx c = {s, key_mask};
    int nq = s.B * s.T * s.NH * s.HD, nk = s.B * s.T * s.NKV * s.HD, nin = nq + 2 * nk;
    float *x = gc_floats(nin), *y = gc_floats(nq), *w = gc_floats(nq), *dx = gc_floats(nin);
    float *probs = gc_floats(s.B * s.NH * s.T * s.T), *y2 = gc_floats(nq), *dx2 = gc_floats(nin);
    double *xd = gc_doubles(nin), *yd = gc_doubles(nq), *wd = gc_doubles(nq), *num = gc_doubles(nin);
    gc_fill(x, xd, nin, 81, 1.0f);
    attention_forward(y, probs, x, x + nq, x + nq + nk, key_mask, &s);
    attn_ref(&c, xd, yd);
    char msg[128];
    snprintf(msg, sizeof msg, "%s forward", name);
    gc_compare_fwd(msg, y, yd, nq, 1e-6, 1e-5);
    gc_weights(w, wd, nq, 9);
    attention_backward(dx, dx + nq, dx + nq + nk, w, probs, x, x + nq, x + nq + nk, &s);
    gc_numeric_grad(attn_ref, &c, xd, nin, nq, wd, num);
    snprintf(msg, sizeof msg, "%s dq", name);
    gc_compare(msg, dx, num, nq, GC_ATOL, GC_RTOL);
    snprintf(msg, sizeof msg, "%s dk", name);
    gc_compare(msg, dx + nq, num + nq, nk, GC_ATOL, GC_RTOL);
    snprintf(msg, sizeof msg, "%s dv", name);
    gc_compare(msg, dx + nq + nk, num + nq + nk, nk, GC_ATOL, GC_RTOL);
    // determinism: a second forward/backward is bit-identical
    attention_forward(y2, probs, x, x + nq, x + nq + nk, key_mask, &s);
    attention_backward(dx2, dx2 + nq, dx2 + nq + nk, w, probs, x, x + nq, x + nq + nk, &s);
    CHECK(memcmp(y, y2, sizeof(float) * nq) == 0 && memcmp(dx, dx2, sizeof(float) * nin) == 0,
          "%s deterministic", name);
    // keeping no probabilities (forward with probs NULL, the backward recomputes them from q, k and the mask)
    // gives bit-identical outputs and gradients: the kept-probs path is the reference
    float *y3 = gc_floats(nq), *dx3 = gc_floats(nin);
    attention_forward(y3, NULL, x, x + nq, x + nq + nk, key_mask, &s);
    attention_backward_recompute(dx3, dx3 + nq, dx3 + nq + nk, w, NULL, x, x + nq, x + nq + nk, key_mask, &s);
    CHECK(memcmp(y, y3, sizeof(float) * nq) == 0, "%s forward without kept probs", name);
    CHECK(memcmp(dx, dx3, sizeof(float) * nin) == 0, "%s backward with recomputed probs", name);
    // the backward that also rebuilds the forward's output: the same gradients, and the forward's out bit for bit
    float *y4 = gc_floats(nq), *dx4 = gc_floats(nin);
    attention_backward_recompute_ctx(dx4, dx4 + nq, dx4 + nq + nk, y4, w, x, x + nq, x + nq + nk, key_mask, &s);
    CHECK(memcmp(y, y4, sizeof(float) * nq) == 0, "%s out rebuilt by the backward", name);
    CHECK(memcmp(dx, dx4, sizeof(float) * nin) == 0, "%s backward that rebuilds out", name);
    free(y3); free(dx3); free(y4); free(dx4);
    free(x); free(y); free(w); free(dx); free(probs); free(y2); free(dx2);
    free(xd); free(yd); free(wd); free(num);
}

static void test_attention_grad(void) {
    // causal decoder, left padding (batch 1 starts at t = 2: its rows 0, 1 see no key), sliding
    // window 3, GQA 4 query heads on 2 kv heads, attention dropout
    int32_t km_left[2 * 6] = {1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1};
    attention_shape s = {.B = 2, .T = 6, .NH = 4, .NKV = 2, .HD = 3, .causal = 1, .window = 3,
                         .scale = 1.0f / sqrtf(3.0f), .dropout_p = 0.3f,
                         .dropout_key = rng_key(7, RNG_STREAM_DROPOUT, 1, 0)};
    attention_case("attention causal+pad+window+gqa+dropout", s, km_left);
    // encoder: bidirectional, right padding, MHA, dropout
    int32_t km_right[2 * 6] = {1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1};
    attention_shape e = {.B = 2, .T = 6, .NH = 2, .NKV = 2, .HD = 4, .causal = 0, .scale = 0.5f,
                         .dropout_p = 0.1f, .dropout_key = 12345};
    attention_case("attention bidirectional+pad+dropout", e, km_right);
    // plain causal, multi-query (NKV = 1), no mask, no dropout
    attention_shape m = {.B = 1, .T = 5, .NH = 3, .NKV = 1, .HD = 2, .causal = 1, .scale = 0.7f};
    attention_case("attention causal mqa", m, NULL);
    // longer than attention.c's 64-row blocks: blocked causal / window paths, GQA, padding, dropout
    enum { LT = 80 };
    int32_t km_long[LT];
    for (int t = 0; t < LT; t++) km_long[t] = t >= 3;
    attention_shape lw = {.B = 1, .T = LT, .NH = 2, .NKV = 1, .HD = 2, .causal = 1, .window = 20, .scale = 0.8f,
                          .dropout_p = 0.2f, .dropout_key = 99};
    attention_case("attention T80 causal+window 20+pad+gqa+dropout", lw, km_long);
    attention_shape lc = {.B = 1, .T = LT, .NH = 2, .NKV = 2, .HD = 2, .causal = 1, .scale = 0.8f};
    attention_case("attention T80 causal", lc, NULL);
    // Gemma 2: soft-capped scores (cap below the raw scores' range so tanh bites) with window and padding
    attention_shape sc = {.B = 2, .T = 6, .NH = 4, .NKV = 2, .HD = 3, .causal = 1, .window = 3, .scale = 1.3f,
                          .softcap = 0.9f, .dropout_p = 0.2f, .dropout_key = 5};
    attention_case("attention softcap+causal+pad+window+gqa+dropout", sc, km_left);
    attention_shape scl = {.B = 1, .T = LT, .NH = 2, .NKV = 1, .HD = 2, .causal = 1, .window = 20, .scale = 0.8f,
                           .softcap = 1.1f};
    attention_case("attention T80 softcap+window", scl, km_long);
}

// ---- rope ---------------------------------------------------------------------------------------
typedef struct { int B, T, H, D, rot; double theta; rope_layout layout; const int32_t *pos; } rope_ctx;

static void rope_ref(void *vc, const double *x, double *y) {
    rope_ctx *c = vc;
    int half = c->rot / 2;
    memcpy(y, x, sizeof(double) * c->B * c->T * c->H * c->D);
    for (int bt = 0; bt < c->B * c->T; bt++)
        for (int h = 0; h < c->H; h++)
            for (int i = 0; i < half; i++) {
                double ang = c->pos[bt] * pow(c->theta, -2.0 * i / c->rot);
                int a = c->layout == ROPE_HALF ? i : 2 * i, b = c->layout == ROPE_HALF ? i + half : 2 * i + 1;
                const double *r = x + ((int64_t)bt * c->H + h) * c->D;
                double *o = y + ((int64_t)bt * c->H + h) * c->D;
                o[a] = r[a] * cos(ang) - r[b] * sin(ang);
                o[b] = r[b] * cos(ang) + r[a] * sin(ang);
            }
}

static void rope_case(const char *name, rope_layout layout, int rot) {
    enum { B = 2, T = 3, H = 2, D = 8, N = B * T * H * D };
    int32_t pos[B * T] = {0, 1, 2, 5, 6, 7};
    rope_ctx c = {B, T, H, D, rot, 10000.0, layout, pos};
    float x[N], y[N], w[N], dx[N];
    double xd[N], yd[N], wd[N], num[N];
    gc_fill(x, xd, N, 91, 1.0f);
    memcpy(y, x, sizeof y);
    rope_forward(y, pos, B, T, H, D, rot, 10000.0f, layout);
    rope_ref(&c, xd, yd);
    char msg[96];
    snprintf(msg, sizeof msg, "%s forward", name);
    gc_compare_fwd(msg, y, yd, N, 1e-6, 1e-5);
    int untouched = 1;
    for (int r = 0; r < B * T * H; r++)
        for (int d = rot; d < D; d++) untouched &= y[r * D + d] == x[r * D + d];
    CHECK(untouched, "%s: features beyond rot_dim untouched", name);
    gc_weights(w, wd, N, 10);
    memcpy(dx, w, sizeof dx);
    rope_backward(dx, pos, B, T, H, D, rot, 10000.0f, layout);
    gc_numeric_grad(rope_ref, &c, xd, N, N, wd, num);
    snprintf(msg, sizeof msg, "%s backward", name);
    gc_compare(msg, dx, num, N, GC_ATOL, GC_RTOL);
}

static void test_rope(void) {
    // hand: D 2, theta any, position 1: inv_freq[0] = 1, so (1, 0) turns by 1 radian
    float x[2] = {1, 0};
    int32_t pos = 1;
    rope_forward(x, &pos, 1, 1, 1, 2, 2, 10000.0f, ROPE_HALF);
    CHECK(fabsf(x[0] - 0.5403023f) < 1e-6f && fabsf(x[1] - 0.84147098f) < 1e-6f, "rope hand: %g %g", x[0], x[1]);
    // rotate_half vs interleaved on D 4 at position 1: pair (0, 2) vs pair (0, 1) turns by 1 radian
    float h[4] = {1, 0, 0, 0}, il[4] = {1, 0, 0, 0};
    rope_forward(h, &pos, 1, 1, 1, 4, 4, 10000.0f, ROPE_HALF);
    rope_forward(il, &pos, 1, 1, 1, 4, 4, 10000.0f, ROPE_INTERLEAVED);
    CHECK(fabsf(h[2] - 0.84147098f) < 1e-6f && h[1] == 0.0f, "half layout pairs (0, 2)");
    CHECK(fabsf(il[1] - 0.84147098f) < 1e-6f && il[2] == 0.0f, "interleaved layout pairs (0, 1)");
    rope_case("rope half full", ROPE_HALF, 8);
    rope_case("rope half partial rot_dim 4", ROPE_HALF, 4);
    rope_case("rope interleaved partial rot_dim 6", ROPE_INTERLEAVED, 6);
}

int main(void) {
    test_attention_hand();
    test_attention_grad();
    test_rope();
    return tu_finish("nn_attention");
}
