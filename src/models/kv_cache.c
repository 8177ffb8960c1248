// KV cache allocation (see kv_cache.h).
#include "models/kv_cache.h"

#include <string.h>

#include "base/arena.h"
#include "models/decoder.h"

rlhf_status kv_cache_init(kv_cache *c, int L, int B, int max_T, int NKV, int HD, rlhf_err *err) {
    memset(c, 0, sizeof *c);
    if (L <= 0 || B <= 0 || max_T <= 0 || NKV <= 0 || HD <= 0)
        return rlhf_fail(err, RLHF_ERUNTIME, "kv cache: bad shape L=%d B=%d T=%d NKV=%d HD=%d", L, B, max_T,
                         NKV, HD);
    size_t n = (size_t)L * B * max_T * NKV * HD;
    c->k = rlhf_calloc_aligned(n * sizeof(float));
    c->v = rlhf_calloc_aligned(n * sizeof(float));
    c->mask = rlhf_calloc_aligned((size_t)B * max_T * sizeof(int32_t));
    if (!c->k || !c->v || !c->mask) {
        kv_cache_free(c);
        return rlhf_fail(err, RLHF_ERUNTIME, "out of memory: kv cache of %.1f MiB",
                         2.0 * n * sizeof(float) / (1 << 20));
    }
    c->L = L, c->B = B, c->max_T = max_T, c->NKV = NKV, c->HD = HD;
    return RLHF_OK;
}

rlhf_status kv_cache_for_model(kv_cache *c, const model *m, int B, int max_T, rlhf_err *err) {
    if (!m->family->decode)
        return rlhf_fail(err, RLHF_EINPUT, "model_type '%s' has no incremental decoding (not a causal LM)",
                         m->cfg.model_type);
    const decoder_cfg *d = &((const decoder_state *)m->impl)->cfg;  // every decode family is a decoder
    return kv_cache_init(c, d->L, B, max_T, d->NKV, d->HD, err);
}

void kv_cache_copy_rows(kv_cache *dst, const kv_cache *src, const int *rows) {
    const size_t n = (size_t)src->len * src->NKV * src->HD * sizeof(float);
    for (int l = 0; l < dst->L; l++)
        for (int b = 0; b < dst->B; b++) {
            memcpy(kv_cache_k(dst, l, b, 0), kv_cache_k(src, l, rows[b], 0), n);
            memcpy(kv_cache_v(dst, l, b, 0), kv_cache_v(src, l, rows[b], 0), n);
        }
    for (int b = 0; b < dst->B; b++)
        memcpy(dst->mask + (size_t)b * dst->max_T, src->mask + (size_t)rows[b] * src->max_T,
               (size_t)src->len * sizeof(int32_t));
    dst->len = src->len;
}

void kv_cache_clear(kv_cache *c) { c->len = 0; }

void kv_cache_free(kv_cache *c) {
    rlhf_free(c->k);
    rlhf_free(c->v);
    rlhf_free(c->mask);
    memset(c, 0, sizeof *c);
}
