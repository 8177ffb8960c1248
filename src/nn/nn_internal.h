// Helpers shared by the op files of src/nn and nowhere else: the parallel-loop threshold and the
// dropout mask, which must be the same function of (key, element index) in every op that drops.
#ifndef RLHF_NN_INTERNAL_H
#define RLHF_NN_INTERNAL_H

#include <stdint.h>

#include "base/rng.h"

// Below this many elements an OpenMP fork costs more than the loop (a few microseconds per fork).
#define NN_PARALLEL_MIN 32768

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
