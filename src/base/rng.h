// Counter-based random numbers (Philox4x32-10, Salmon et al. 2011): every draw is a pure function of
// (seed, stream, counter), so dropout masks, shuffles, initialisation and sampling never depend on
// thread scheduling or on how many draws happened before. Streams name what the numbers are for.
#ifndef RLHF_BASE_RNG_H
#define RLHF_BASE_RNG_H

#include <stdint.h>

// Stream ids: one per use, so adding a use never shifts the numbers of another.
enum {
    RNG_STREAM_INIT = 1,      // parameter initialisation (counter = element index, per tensor key)
    RNG_STREAM_DROPOUT = 2,   // dropout masks (key mixes step and layer)
    RNG_STREAM_SHUFFLE = 3,   // data order per epoch
    RNG_STREAM_SAMPLE = 4,    // token sampling in generation
    RNG_STREAM_SPLIT = 5,     // train/eval split
    RNG_STREAM_PPO = 6,       // PPO mini-batch permutations
    RNG_STREAM_GRPO = 7       // GRPO / RLOO: the shuffle of a generation batch into micro-batches
};

// Four 32-bit words for (key, counter).
void philox4x32(uint64_t key, uint64_t counter_hi, uint64_t counter_lo, uint32_t out[4]);

// Mixes several ids into one 64-bit key (SplitMix64 finaliser), e.g. rng_key(seed, STREAM, step, layer).
uint64_t rng_key(uint64_t seed, uint64_t stream, uint64_t a, uint64_t b);

// Uniform in [0, 1) with 24 bits, for element i of a key.
float rng_uniform(uint64_t key, uint64_t i);
// Uniform double in [0, 1) with 53 bits.
double rng_uniform_double(uint64_t key, uint64_t i);
// Standard normal (Box-Muller on the first two words of draw i).
float rng_normal(uint64_t key, uint64_t i);
// Uniform integer in [0, n).
uint64_t rng_below(uint64_t key, uint64_t i, uint64_t n);
// Fisher-Yates permutation of 0..n-1 into perm, driven by key.
void rng_permutation(uint64_t key, int *perm, int n);

#endif
