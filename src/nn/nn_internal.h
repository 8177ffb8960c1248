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

// Fills scale[0..n) with the mask values (0 or 1/(1-p)) of elements first..first+n-1.
static inline void nn_dropout_mask(float *scale, uint64_t key, int64_t first, int64_t n, float p) {
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

#endif
