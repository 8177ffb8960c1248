// The key/value cache of incremental decoding: per layer, the keys and values of every position
// decoded so far, preallocated once for (B, max_T) so generation never reallocates per token. All
// rows share one time axis (prompts are left-padded as HF generate pads them); which cached positions
// a row may attend to is the cache's attention mask.
#ifndef RLHF_MODELS_KV_CACHE_H
#define RLHF_MODELS_KV_CACHE_H

#include <stdint.h>

#include "base/error.h"

typedef struct kv_cache {
    int L, B, max_T, NKV, HD;
    int len;          // positions filled so far (same for every row)
    float *k, *v;     // (L, B, max_T, NKV, HD)
    int32_t *mask;    // (B, max_T): 1 = a real token, 0 = padding
} kv_cache;

rlhf_status kv_cache_init(kv_cache *c, int L, int B, int max_T, int NKV, int HD, rlhf_err *err);
struct model;
// A cache shaped for a causal LM (its layers, key/value heads and head size); RLHF_EINPUT when the
// model's family has no KV-cache decoding.
rlhf_status kv_cache_for_model(kv_cache *c, const struct model *m, int B, int max_T, rlhf_err *err);
// Fills dst (fresh, len 0) with the cached positions of src: dst row b gets src row rows[b] (keys, values and
// mask), for dst's B rows; dst->len = src->len. Shapes (L, NKV, HD) must match and src->len <= dst->max_T.
void kv_cache_copy_rows(kv_cache *dst, const kv_cache *src, const int *rows);
// Forgets the cached positions (keeps the allocation).
void kv_cache_clear(kv_cache *c);
void kv_cache_free(kv_cache *c);
// Pointer to the keys (or values) of layer l, row b, position t: NKV * HD floats.
static inline float *kv_cache_k(const kv_cache *c, int l, int b, int t) {
    return c->k + ((((size_t)l * c->B + b) * c->max_T + t) * c->NKV) * c->HD;
}
static inline float *kv_cache_v(const kv_cache *c, int l, int b, int t) {
    return c->v + ((((size_t)l * c->B + b) * c->max_T + t) * c->NKV) * c->HD;
}

#endif
