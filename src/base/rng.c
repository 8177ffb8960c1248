// Philox4x32-10 and the draws built on it.
#include "base/rng.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void philox4x32(uint64_t key, uint64_t counter_hi, uint64_t counter_lo, uint32_t out[4]) {
    uint32_t c0 = (uint32_t)counter_lo, c1 = (uint32_t)(counter_lo >> 32);
    uint32_t c2 = (uint32_t)counter_hi, c3 = (uint32_t)(counter_hi >> 32);
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0, p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1, n3 = (uint32_t)p0;
        c0 = n0; c1 = n1; c2 = n2; c3 = n3;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

static uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

uint64_t rng_key(uint64_t seed, uint64_t stream, uint64_t a, uint64_t b) {
    uint64_t k = splitmix64(seed);
    k = splitmix64(k ^ stream);
    k = splitmix64(k ^ a);
    return splitmix64(k ^ b);
}

float rng_uniform(uint64_t key, uint64_t i) {
    uint32_t w[4];
    philox4x32(key, 0, i, w);
    return (float)(w[0] >> 8) * (1.0f / 16777216.0f);
}

double rng_uniform_double(uint64_t key, uint64_t i) {
    uint32_t w[4];
    philox4x32(key, 0, i, w);
    uint64_t bits = ((uint64_t)w[0] << 21) ^ (uint64_t)w[1];
    return (double)(bits & ((1ull << 53) - 1)) * (1.0 / 9007199254740992.0);
}

float rng_normal(uint64_t key, uint64_t i) {
    uint32_t w[4];
    philox4x32(key, 1, i, w);
    double u1 = ((double)w[0] + 1.0) / 4294967297.0;  // (0, 1]: log never sees 0
    double u2 = (double)w[1] / 4294967296.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

uint64_t rng_below(uint64_t key, uint64_t i, uint64_t n) {
    uint32_t w[4];
    philox4x32(key, 2, i, w);
    uint64_t x = ((uint64_t)w[0] << 32) | w[1];
    return n ? x % n : 0;  // bias below 2^-32 for n < 2^32
}

void rng_permutation(uint64_t key, int *perm, int n) {
    for (int i = 0; i < n; i++) perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)rng_below(key, (uint64_t)i, (uint64_t)i + 1);
        int t = perm[i]; perm[i] = perm[j]; perm[j] = t;
    }
}
