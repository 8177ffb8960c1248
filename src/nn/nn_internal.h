// Helpers shared by the op files of src/nn and nowhere else: the parallel-loop threshold and the
// dropout mask, which must be the same function of (key, element index) in every op that drops.
#ifndef RLHF_NN_INTERNAL_H
#define RLHF_NN_INTERNAL_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "base/rng.h"

// Below this many elements an OpenMP fork costs more than the loop (a few microseconds per fork).
#define NN_PARALLEL_MIN 32768

// expf that GCC can vectorise (glibc's expf only vectorises under -ffast-math): Cephes' range
// reduction x = n ln2 + r and degree-6 polynomial, 2^n built in the exponent bits, all without a
// float-to-int conversion so NaN stays NaN. 2^n is applied as 2^(n-1) * 2 so n = 128 stays finite.
// Max error ~2 ulp on [-86.5, 88.72]; below -86.5 (results < 3e-38) it returns 0, above 88.72 inf.
#define NN_EXP_HI 88.7228f
#define NN_EXP_LO -86.5f
static inline float nn_expf(float x) {
    const float shifter = 12582912.0f;   // 1.5 * 2^23: adding it rounds to an integer in the low bits
    float xc = x > NN_EXP_HI ? NN_EXP_HI : x;
    xc = xc < NN_EXP_LO ? NN_EXP_LO : xc;
    float t = xc * 1.44269504088896341f + shifter;
    float n = t - shifter;
    float r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float y = p * r * r + r + 1.0f;
    uint32_t tb, sb;
    float shift_f = shifter;
    memcpy(&tb, &t, 4);
    memcpy(&sb, &shift_f, 4);
    uint32_t eb = (tb - sb + 126u) << 23;   // n - 1 + 127 in the exponent field
    float scale;
    memcpy(&scale, &eb, 4);
    float out = (y * scale) * 2.0f;
    out = x > NN_EXP_HI ? INFINITY : out;
    return x < NN_EXP_LO ? 0.0f : out;
}

// erf by Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7), the same approximation torch's vectorised
// CPU erf uses, so GELU matches torch to float rounding and the loop vectorises.
static inline float nn_erff(float x) {
    float ax = x < 0.0f ? -x : x;
    float t = 1.0f / (1.0f + 0.3275911f * ax);
    float poly = 1.061405429f;
    poly = poly * t - 1.453152027f;
    poly = poly * t + 1.421413741f;
    poly = poly * t - 0.284496736f;
    poly = poly * t + 0.254829592f;
    float r = 1.0f - poly * t * nn_expf(-ax * ax);
    return x < 0.0f ? -r : r;
}

// Dropout mask: element i of a key keeps iff the 24-bit uniform from word (i & 3) of Philox block
// (i >> 2) is >= p. One Philox call serves four consecutive elements, so masks cost a quarter of a
// draw per element, and the mask depends only on (key, i): never on threads or call order.
static inline uint32_t nn_dropout_threshold(float p) {
    double t = (double)p * 16777216.0;   // 2^24: keep iff (w >> 8) >= ceil(p * 2^24)
    uint32_t ti = (uint32_t)t;
    return ((double)ti < t) ? ti + 1 : ti;
}

// Reference mask: fills scale[0..n) with the mask values (0 or 1/(1-p)) of elements first..first+n-1, one
// philox4x32 call (base/rng.c) per block of four. nn_dropout_mask computes the same values faster; tests
// compare the two bit for bit.
static inline void nn_dropout_mask_ref(float *scale, uint64_t key, int64_t first, int64_t n, float p) {
    uint32_t thr = nn_dropout_threshold(p);
    float keep = 1.0f / (1.0f - p);
    int64_t i = 0;
    while (i < n) {
        uint64_t e = (uint64_t)(first + i);
        uint32_t w[4];
        philox4x32(key, 0, e >> 2, w);
        for (int j = (int)(e & 3); j < 4 && i < n; j++, i++) scale[i] = (w[j] >> 8) >= thr ? keep : 0.0f;
    }
}

// Philox4x32-10 (the rounds of base/rng.c's philox4x32) of the NN_PHILOX_LANES consecutive blocks
// blk0, blk0 + 1, ... (counter high word 0), one block per SIMD lane; w[4 * l + j] = word j of block l.
#define NN_PHILOX_LANES 16
static inline void nn_philox_lanes(uint64_t key, uint64_t blk0, uint32_t w[4 * NN_PHILOX_LANES]) {
    uint32_t c0[NN_PHILOX_LANES], c1[NN_PHILOX_LANES], c2[NN_PHILOX_LANES], c3[NN_PHILOX_LANES];
#pragma omp simd
    for (int l = 0; l < NN_PHILOX_LANES; l++) {
        uint64_t b = blk0 + (uint64_t)l;
        c0[l] = (uint32_t)b, c1[l] = (uint32_t)(b >> 32), c2[l] = 0, c3[l] = 0;
    }
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    for (int r = 0; r < 10; r++) {
#pragma omp simd
        for (int l = 0; l < NN_PHILOX_LANES; l++) {
            uint64_t p0 = (uint64_t)0xD2511F53u * c0[l], p1 = (uint64_t)0xCD9E8D57u * c2[l];
            uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1[l] ^ k0, n1 = (uint32_t)p1;
            uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3[l] ^ k1, n3 = (uint32_t)p0;
            c0[l] = n0, c1[l] = n1, c2[l] = n2, c3[l] = n3;
        }
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    for (int l = 0; l < NN_PHILOX_LANES; l++)
        w[4 * l] = c0[l], w[4 * l + 1] = c1[l], w[4 * l + 2] = c2[l], w[4 * l + 3] = c3[l];
}

// Fills scale[0..n) with the mask values (0 or 1/(1-p)) of elements first..first+n-1: the values of
// nn_dropout_mask_ref, with NN_PHILOX_LANES Philox blocks computed side by side in SIMD lanes.
static inline void nn_dropout_mask(float *scale, uint64_t key, int64_t first, int64_t n, float p) {
    const int64_t chunk = 4 * NN_PHILOX_LANES;
    int64_t head = (4 - (first & 3)) & 3;   // elements before the first whole block
    if (head > n) head = n;
    if (head) nn_dropout_mask_ref(scale, key, first, head, p);
    int64_t i = head;
    if (n - i >= chunk) {
        uint32_t thr = nn_dropout_threshold(p);
        float keep = 1.0f / (1.0f - p);
        uint32_t w[4 * NN_PHILOX_LANES];
        for (; n - i >= chunk; i += chunk) {
            nn_philox_lanes(key, (uint64_t)(first + i) >> 2, w);
            float *s = scale + i;
#pragma omp simd
            for (int j = 0; j < 4 * NN_PHILOX_LANES; j++) s[j] = (w[j] >> 8) >= thr ? keep : 0.0f;
        }
    }
    if (i < n) nn_dropout_mask_ref(scale + i, key, first + i, n - i, p);
}

#endif
