// Tests of the base layer: errors, arena accounting, and the counter-based RNG's determinism.
#include <math.h>
#include <string.h>

#include "base/arena.h"
#include "base/error.h"
#include "base/rng.h"
#include "testutil.h"

static void test_error(void) {
    rlhf_err err;
    rlhf_err_clear(&err);
    CHECK(rlhf_fail(&err, RLHF_EINPUT, "%s:%d: bad", "f.jsonl", 3) == RLHF_EINPUT, "status returned");
    rlhf_err_prefix(&err, "loading %s: ", "data");
    CHECK(strcmp(err.msg, "loading data: f.jsonl:3: bad") == 0, "got '%s'", err.msg);
    CHECK(err.code == RLHF_EINPUT, "code kept");
}

static void test_arena(void) {
    rlhf_err err;
    rlhf_arena a;
    CHECK(arena_init(&a, 1000, &err) == RLHF_OK, "init");
    float *x = arena_floats(&a, 10);
    float *y = arena_floats(&a, 10);
    CHECK(x && y && ((size_t)x % RLHF_ALIGN) == 0 && ((size_t)y % RLHF_ALIGN) == 0, "aligned");
    CHECK(arena_floats(&a, 1000) == NULL, "overflow returns NULL");
    CHECK(a.peak == 128, "peak %zu", a.peak);
    arena_reset(&a);
    CHECK(arena_floats(&a, 10) == x, "reset reuses");
    arena_free(&a);
}

static void test_rng(void) {
    // Philox4x32-10 known-answer test (Random123 kat_vectors: counter 0, key 0).
    uint32_t w[4];
    philox4x32(0, 0, 0, w);
    CHECK(w[0] == 0x6627e8d5u && w[1] == 0xe169c58du && w[2] == 0xbc57ac4cu && w[3] == 0x9b00dbd8u,
          "philox kat: %08x %08x %08x %08x", w[0], w[1], w[2], w[3]);
    uint64_t k = rng_key(42, RNG_STREAM_DROPOUT, 7, 3);
    CHECK(k == rng_key(42, RNG_STREAM_DROPOUT, 7, 3), "key deterministic");
    CHECK(k != rng_key(42, RNG_STREAM_DROPOUT, 7, 4), "key varies");
    double s = 0, s2 = 0;
    int n = 100000;
    for (int i = 0; i < n; i++) {
        float u = rng_uniform(k, i);
        CHECK(u >= 0 && u < 1, "uniform range");
        float z = rng_normal(k, i);
        s += z; s2 += (double)z * z;
    }
    CHECK(fabs(s / n) < 0.02 && fabs(s2 / n - 1) < 0.02, "normal moments %g %g", s / n, s2 / n);
    int perm[50], seen[50] = {0};
    rng_permutation(k, perm, 50);
    for (int i = 0; i < 50; i++) seen[perm[i]]++;
    int ok = 1;
    for (int i = 0; i < 50; i++) ok &= seen[i] == 1;
    CHECK(ok, "permutation is a permutation");
}

int main(void) {
    test_error();
    test_arena();
    test_rng();
    return tu_finish("base_core");
}
