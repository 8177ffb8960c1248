// Tests of the bitsandbytes-compatible 4-bit quantization (src/nn/nf4.c): the published NF4 and FP4
// code books, nearest-code rounding with ties to the smaller value, blocks of 64 with absmax scales,
// the nibble packing order (even index in the high nibble), the dynamic 8-bit map of double
// quantization, round-trip error bounds, and the quantized linear layer (fp32 and bf16 compute)
// against the dense layer on the dequantized weight.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nf4.h"
#include "testutil.h"

// Slack on top of the analytic bounds for fp32 rounding of scale * code and x * (1 / absmax).
#define ROUND_SLACK 1e-6
// Dense fp32 reference vs tiled sgemm: summation order differs.
#define LINEAR_F32_TOL 1e-5
// bf16 output: one bf16 ulp (2^-8 relative) may flip when fp32 accumulation order differs.
#define LINEAR_BF16_RTOL (1.0 / 128)

static uint32_t lcg_state = 2463534242u;
static float frand(void) {  // uniform in [-1, 1)
    lcg_state = lcg_state * 1664525u + 1013904223u;
    return (float)((lcg_state >> 8) / 8388608.0 - 1.0);
}
static float nrand(void) {  // roughly normal (sum of uniforms), like trained weights
    return (frand() + frand() + frand() + frand()) * 0.5f;
}

static void test_code_books(void) {
    // bitsandbytes get_4bit_type("nf4") as published (QLoRA appendix E).
    const float nf4[16] = {-1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
                           -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
                           0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
                           0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};
    const float *c = nf4_code(NF4_QUANT_NF4);
    for (int i = 0; i < 16; i++) CHECK(c[i] == nf4[i], "nf4[%d] = %.9g want %.9g", i, c[i], nf4[i]);
    // FP4 bit patterns s e1 e0 m: magnitudes 0b000..0b111 = 0, 0.0625, 8, 12, 4, 6, 2, 3, over 12.
    const float fp4_mag[8] = {0, 0.0625f, 8, 12, 4, 6, 2, 3};
    const float *f = nf4_code(NF4_QUANT_FP4);
    for (int i = 0; i < 8; i++) {
        CHECK(f[i] == fp4_mag[i] / 12, "fp4[%d] = %g", i, f[i]);
        CHECK(f[i + 8] == -fp4_mag[i] / 12, "fp4[%d] = %g (sign bit)", i + 8, f[i + 8]);
    }
    // Every code value encodes to itself (FP4's -0 aside, which is +0's value).
    for (int i = 0; i < 16; i++) {
        CHECK(nf4_encode(NF4_QUANT_NF4, c[i]) == i, "nf4 encode(code[%d])", i);
        if (i != 8) CHECK(nf4_encode(NF4_QUANT_FP4, f[i]) == i, "fp4 encode(code[%d]) = %d", i,
                          nf4_encode(NF4_QUANT_FP4, f[i]));
    }
    // Nearest value; a value exactly on a midpoint goes to the smaller code (bucketize right=False,
    // CUDA's `x > midpoint`).
    for (int i = 0; i < 15; i++) {
        float mid = (c[i] + c[i + 1]) / 2;
        CHECK(nf4_encode(NF4_QUANT_NF4, mid) == i, "nf4 tie at midpoint %d", i);
        CHECK(nf4_encode(NF4_QUANT_NF4, nextafterf(mid, 2)) == i + 1, "nf4 above midpoint %d", i);
    }
    // CUDA dQuantizeNF4's first split: x > 0.03979014977812767 -> codes 8..15.
    CHECK(nf4_encode(NF4_QUANT_NF4, 0.0397f) == 7 && nf4_encode(NF4_QUANT_NF4, 0.0398f) == 8, "nf4 split at 0.0398");
    // FP4: the sign comes from x < 0 (CUDA dQuantizeFP4); 0.29166667 = 3.5/12 splits 3 from 4.
    CHECK(nf4_encode(NF4_QUANT_FP4, -1e-6f) == 8 && nf4_encode(NF4_QUANT_FP4, 1e-6f) == 0, "fp4 sign of tiny");
    CHECK(nf4_encode(NF4_QUANT_FP4, 0.29f) == 7 && nf4_encode(NF4_QUANT_FP4, 0.30f) == 4, "fp4 3|4 split");
    CHECK(nf4_encode(NF4_QUANT_FP4, -0.9f) == 0xB, "fp4 -12/12 is 0b1011");

    rlhf_err err;
    nf4_quant_type t;
    nf4_compute k;
    CHECK(nf4_quant_type_parse("fp4", &t, &err) == RLHF_OK && t == NF4_QUANT_FP4, "parse fp4");
    CHECK(nf4_quant_type_parse("int4", &t, &err) == RLHF_EINPUT && strstr(err.msg, "--bnb_4bit_quant_type"), "%s",
          err.msg);
    CHECK(nf4_compute_parse("bfloat16", &k, &err) == RLHF_OK && k == NF4_COMPUTE_BF16, "parse bf16");
    CHECK(nf4_compute_parse("float16", &k, &err) == RLHF_EINPUT, "float16 not offered");
}

static void test_dynamic_map(void) {
    float code[256];
    quant8_dynamic_map(code);
    for (int i = 1; i < 256; i++) CHECK(code[i] > code[i - 1], "sorted and distinct at %d", i);
    CHECK(code[255] == 1.0f && code[127] == 0.0f, "contains 1 and 0: %g %g", code[255], code[127]);
    // Values of bitsandbytes create_dynamic_map() (torch 1.13, float32 bit patterns).
    const uint32_t want[][2] = {{0, 0xbf7e3333u}, {1, 0xbf7a9999u}, {126, 0xb513a3b7u}, {128, 0x3513a3b7u},
                                {243, 0x3f569999u}, {245, 0x3f5dccccu}, {254, 0x3f7e3333u}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        uint32_t u;
        memcpy(&u, &code[want[i][0]], 4);
        CHECK(u == want[i][1], "dynamic map[%u] bits %08x want %08x (%.9g)", want[i][0], u, want[i][1],
              code[want[i][0]]);
    }
    for (int i = 0; i < 256; i++) CHECK(quant8_encode(code, code[i]) == i, "dyn encode(code[%d])", i);
}

static void test_packing_and_blocks(void) {
    rlhf_err err;
    nf4_tensor q;
    // Hand vector: block 0 scale 2 (its max |x|), codes 0, 15, 7, 8 in the first four slots.
    float w[131];
    for (int i = 0; i < 131; i++) w[i] = 0;
    w[0] = -2.0f;                      // -1 * 2 -> code 0
    w[1] = 2.0f;                       // +1 * 2 -> code 15
    w[2] = 0.0f;                       // code 7
    w[3] = 2.0f * 0.07958029955625534f;  // code 8
    w[64] = 0.5f;                      // block 1 scale 0.5, w[65] = -0.5 * 0.6961928 -> code 1
    w[65] = -0.5f * 0.6961928009986877f;
    w[128] = -3.0f;                    // block 2 (partial, 3 values): scale 3
    w[129] = 3.0f * 0.33791524171829224f;  // code 11
    w[130] = 3.0f * 0.44070982933044434f;  // code 12, last value alone in its byte (odd n)
    CHECK(nf4_quantize(&q, w, 131, NF4_QUANT_NF4, 0, "w", &err) == RLHF_OK, "quantize");
    CHECK(q.nblocks == 3 && q.absmax[0] == 2.0f && q.absmax[1] == 0.5f && q.absmax[2] == 3.0f, "absmax %g %g %g",
          q.absmax[0], q.absmax[1], q.absmax[2]);
    CHECK(q.packed[0] == 0x0F, "byte 0 = %02x (code of w[0] in the high nibble)", q.packed[0]);
    CHECK(q.packed[1] == 0x78, "byte 1 = %02x", q.packed[1]);
    CHECK(q.packed[2] == 0x77, "zeros pack as 0x77: %02x", q.packed[2]);
    CHECK(q.packed[32] == 0xF1, "byte 32 = %02x", q.packed[32]);
    CHECK(q.packed[64] == 0x0B, "byte 64 = %02x", q.packed[64]);
    CHECK(q.packed[65] == 0xC7, "odd tail padded with the code of 0.0: %02x", q.packed[65]);
    float d[131];
    nf4_dequantize(d, &q, 0, 131);
    for (int i = 0; i < 131; i++) CHECK(fabsf(d[i] - w[i]) <= 1e-6f, "code values round-trip at %d: %g vs %g", i,
                                        d[i], w[i]);
    // A range that starts mid-block and crosses blocks.
    float part[70];
    nf4_dequantize(part, &q, 61, 70);
    CHECK(memcmp(part, d + 61, sizeof part) == 0, "range dequantization equals the full one");
    nf4_free(&q);

    // FP4 packing of known patterns: +12/12 -> 0b0011, -6/12 -> 0b1101.
    float v[2] = {1.2f, -0.6f};
    CHECK(nf4_quantize(&q, v, 2, NF4_QUANT_FP4, 0, "v", &err) == RLHF_OK && q.packed[0] == 0x3D, "fp4 byte %02x",
          q.packed[0]);
    nf4_free(&q);
    // An all-zero block quantizes to zeros, not NaN.
    float z[64] = {0};
    CHECK(nf4_quantize(&q, z, 64, NF4_QUANT_NF4, 1, "z", &err) == RLHF_OK, "zeros");
    nf4_dequantize(d, &q, 0, 64);
    CHECK(d[0] == 0 && d[63] == 0, "zero block %g", d[0]);
    nf4_free(&q);
    float bad[3] = {1, NAN, 2};
    CHECK(nf4_quantize(&q, bad, 3, NF4_QUANT_NF4, 0, "layer.0.q_proj", &err) == RLHF_EINPUT &&
              strstr(err.msg, "layer.0.q_proj") && strstr(err.msg, "index 1"),
          "non-finite rejected: %s", err.msg);
}

static double max_gap(const float *code, int n, int sorted) {
    float s[256];
    memcpy(s, code, sizeof(float) * n);
    if (!sorted)  // insertion sort of 16 values
        for (int i = 1; i < n; i++)
            for (int j = i; j > 0 && s[j] < s[j - 1]; j--) { float t = s[j]; s[j] = s[j - 1]; s[j - 1] = t; }
    double g = 0;
    for (int i = 1; i < n; i++) g = fmax(g, (double)s[i] - s[i - 1]);
    return g;
}

static void test_round_trip(void) {
    rlhf_err err;
    const int64_t n = 64 * 600 + 17;  // > 256 blocks so double quantization has two scale blocks
    float *w = malloc(sizeof(float) * n), *d = malloc(sizeof(float) * n);
    for (int64_t i = 0; i < n; i++) w[i] = nrand() * (1 + (float)(i / 64 % 7));  // scales vary by block
    for (int type = 0; type < 2; type++) {
        nf4_quant_type t = type ? NF4_QUANT_FP4 : NF4_QUANT_NF4;
        const double half_gap = max_gap(nf4_code(t), 16, t == NF4_QUANT_NF4) / 2;
        nf4_tensor q;
        CHECK(nf4_quantize(&q, w, n, t, 0, "w", &err) == RLHF_OK, "quantize");
        nf4_dequantize(d, &q, 0, n);
        double worst = 0, sq = 0;
        for (int64_t i = 0; i < n; i++) {
            double am = q.absmax[i / 64];
            double e = fabs((double)d[i] - w[i]);
            worst = fmax(worst, e / am);
            sq += e * e;
            if (e > half_gap * am + ROUND_SLACK * am) {
                CHECK(0, "%s round trip at %lld: |%g - %g| > %g", type ? "fp4" : "nf4", (long long)i, d[i], w[i],
                      half_gap * am);
                break;
            }
        }
        printf("%s: worst error / absmax %.4f (bound %.4f), rms error %.4g\n", type ? "fp4" : "nf4", worst, half_gap,
               sqrt(sq / n));
        // Double quantization: scales within half a dynamic-map gap of their block scale, and the
        // weights within the 4-bit bound plus the scale error.
        nf4_tensor q2;
        CHECK(nf4_quantize(&q2, w, n, t, 1, "w", &err) == RLHF_OK, "quantize dq");
        CHECK(q2.absmax == NULL && q2.absmax_q && q2.absmax2, "double-quant layout");
        const double dyn_half_gap = max_gap(q2.dyn_code, 256, 1) / 2;
        double worst_scale = 0;
        for (int64_t b = 0; b < q.nblocks; b++) {
            double s = nf4_block_scale(&q2, b), e = fabs(s - q.absmax[b]);
            double bound = dyn_half_gap * q2.absmax2[b / NF4_NESTED_BLOCKSIZE] + 1e-6 * q.absmax[b];
            worst_scale = fmax(worst_scale, e / q.absmax[b]);
            if (e > bound) {
                CHECK(0, "scale %lld: %g vs %g (bound %g)", (long long)b, s, q.absmax[b], bound);
                break;
            }
        }
        nf4_dequantize(d, &q2, 0, n);
        int ok = 1;
        for (int64_t i = 0; i < n && ok; i++) {
            double am = q.absmax[i / 64], s = nf4_block_scale(&q2, i / 64);
            double bound = half_gap * am + fabs(s - am) + 2 * ROUND_SLACK * am;
            ok = fabs((double)d[i] - w[i]) <= bound;
            CHECK(ok, "dq round trip at %lld: %g vs %g", (long long)i, d[i], w[i]);
        }
        printf("%s double quant: worst relative scale error %.4g; %lld bytes vs %lld fp32\n", type ? "fp4" : "nf4",
               worst_scale, (long long)nf4_bytes(&q2), (long long)(4 * n));
        CHECK(nf4_bytes(&q2) * 7 < 4 * n, "4-bit storage is under 1/7 of fp32 (%lld bytes)",
              (long long)nf4_bytes(&q2));
        nf4_free(&q);
        nf4_free(&q2);
    }
    free(w);
    free(d);
}

static void test_bf16_round(void) {
    CHECK(bf16_round(1.0f) == 1.0f, "exact");
    CHECK(bf16_round(1.0f + 1.0f / 256) == 1.0f, "tie to even (down)");
    CHECK(bf16_round(1.0f + 3.0f / 256) == 1.0f + 4.0f / 256, "tie to even (up)");
    CHECK(bf16_round(1.0f + 1.5f / 256) == 1.0f + 2.0f / 256, "above tie rounds up");
    CHECK(isnan(bf16_round(NAN)) && isinf(bf16_round(INFINITY)), "nan/inf");
}

// Dense reference on the dequantized weight, in double; bf16 rounds operands and output like torch.
static void dense_ref(float *out, const float *inp, const float *w, const float *bias, int N, int C, int OC, int bf16) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double s = 0;
            for (int c = 0; c < C; c++) {
                float x = inp[n * C + c], y = w[(size_t)o * C + c];
                if (bf16) x = bf16_round(x), y = bf16_round(y);
                s += (double)x * y;
            }
            if (bias) s += bf16 ? bf16_round(bias[o]) : bias[o];
            out[n * OC + o] = bf16 ? bf16_round((float)s) : (float)s;
        }
}

static void test_linear(int N, int C, int OC, nf4_quant_type t, int double_quant) {
    rlhf_err err;
    float *w = malloc(sizeof(float) * OC * C), *wd = malloc(sizeof(float) * OC * C);
    float *x = malloc(sizeof(float) * N * C), *bias = malloc(sizeof(float) * OC);
    float *out = malloc(sizeof(float) * N * OC), *ref = malloc(sizeof(float) * N * OC);
    float *dout = malloc(sizeof(float) * N * OC), *dinp = malloc(sizeof(float) * N * C),
          *dref = malloc(sizeof(float) * N * C);
    for (int i = 0; i < OC * C; i++) w[i] = nrand() * 0.1f;
    for (int i = 0; i < N * C; i++) x[i] = nrand();
    for (int i = 0; i < OC; i++) bias[i] = frand();
    for (int i = 0; i < N * OC; i++) dout[i] = frand();
    nf4_tensor q;
    CHECK(nf4_quantize(&q, w, (int64_t)OC * C, t, double_quant, "w", &err) == RLHF_OK, "quantize");
    nf4_dequantize(wd, &q, 0, (int64_t)OC * C);
    char name[128];
    for (int bf = 0; bf < 2; bf++) {
        nf4_compute k = bf ? NF4_COMPUTE_BF16 : NF4_COMPUTE_F32;
        const float *b = (bf == 1) ? bias : NULL;
        CHECK(nf4_linear_forward(out, x, &q, b, N, C, OC, k, &err) == RLHF_OK, "forward: %s", err.msg);
        dense_ref(ref, x, wd, b, N, C, OC, bf);
        snprintf(name, sizeof name, "nf4 linear fwd %s N=%d C=%d OC=%d", bf ? "bf16" : "f32", N, C, OC);
        tu_close(name, out, ref, (size_t)N * OC, bf ? 1e-3 : LINEAR_F32_TOL, bf ? LINEAR_BF16_RTOL : LINEAR_F32_TOL);
        // backward: dinp += dout @ W (accumulates onto 1.0)
        for (int i = 0; i < N * C; i++) dinp[i] = 1.0f;
        CHECK(nf4_linear_backward(dinp, dout, &q, N, C, OC, k, &err) == RLHF_OK, "backward");
        for (int n = 0; n < N; n++)
            for (int c = 0; c < C; c++) {
                double s = 0;
                for (int o = 0; o < OC; o++) {
                    float g = dout[n * OC + o], y = wd[(size_t)o * C + c];
                    if (bf) g = bf16_round(g), y = bf16_round(y);
                    s += (double)g * y;
                }
                dref[n * C + c] = 1.0f + (bf ? bf16_round((float)s) : (float)s);
            }
        snprintf(name, sizeof name, "nf4 linear bwd %s N=%d C=%d OC=%d", bf ? "bf16" : "f32", N, C, OC);
        tu_close(name, dinp, dref, (size_t)N * C, bf ? 1e-3 : LINEAR_F32_TOL, bf ? LINEAR_BF16_RTOL : LINEAR_F32_TOL);
    }
    // Quantization error of the layer output stays small relative to the fp32 layer.
    CHECK(nf4_linear_forward(out, x, &q, NULL, N, C, OC, NF4_COMPUTE_F32, &err) == RLHF_OK, "fwd");
    dense_ref(ref, x, w, NULL, N, C, OC, 0);
    double num = 0, den = 0;
    for (int i = 0; i < N * OC; i++) num += (out[i] - ref[i]) * (double)(out[i] - ref[i]), den += (double)ref[i] * ref[i];
    CHECK(sqrt(num / den) < 0.15, "relative output error of 4-bit weights %.3f", sqrt(num / den));
    CHECK(nf4_linear_forward(out, x, &q, NULL, N, C + 1, OC, NF4_COMPUTE_F32, &err) == RLHF_EINPUT, "shape check");
    nf4_free(&q);
    free(w); free(wd); free(x); free(bias); free(out); free(ref); free(dout); free(dinp); free(dref);
}

int main(void) {
    printf("bf16 path: %s\n", nf4_bf16_native() ? "AVX-512 BF16" : "portable");
    test_code_books();
    test_dynamic_map();
    test_packing_and_blocks();
    test_round_trip();
    test_bf16_round();
    test_linear(5, 64, 40, NF4_QUANT_NF4, 0);
    test_linear(3, 70, 200, NF4_QUANT_NF4, 1);   // blocks span rows; OC spans two tiles
    test_linear(4, 33, 9, NF4_QUANT_FP4, 1);     // odd C (bf16 pair padding), odd element count
    test_linear(1, 128, 70, NF4_QUANT_NF4, 1);   // few rows (decoding): whole blocks per weight row
    test_linear(16, 192, 33, NF4_QUANT_FP4, 0);  // the most rows of the few-row path
    test_linear(17, 128, 20, NF4_QUANT_NF4, 1);  // one past it: the tiled GEMM path
    test_linear(7, 100, 50, NF4_QUANT_NF4, 1);   // few rows, rows not block-aligned (row-decoding fallback)
    return tu_finish("nn_nf4");
}
