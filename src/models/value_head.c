// The PPO value head (see value_head.h): one Linear(C, 1), forward and backward over positions.
#include "models/value_head.h"

#include <string.h>

#include "base/arena.h"
#include "base/rng.h"
#include "nn/ops.h"

rlhf_status value_head_init(value_head *v, int C, float std, uint64_t seed, rlhf_err *err) {
    memset(v, 0, sizeof *v);
    v->params = rlhf_calloc_aligned((size_t)(C + 1) * sizeof(float));
    v->grads = rlhf_calloc_aligned((size_t)(C + 1) * sizeof(float));
    if (!v->params || !v->grads) {
        value_head_free(v);
        return rlhf_fail(err, RLHF_ERUNTIME, "out of memory (value head)");
    }
    v->C = C;
    uint64_t key = rng_key(seed, RNG_STREAM_INIT, 0x76686561ull /* "vhea" */, 0);
    for (int i = 0; i < C; i++) v->params[i] = std * rng_normal(key, (uint64_t)i);
    v->params[C] = 0.0f;
    return RLHF_OK;
}

void value_head_free(value_head *v) {
    rlhf_free(v->params);
    rlhf_free(v->grads);
    memset(v, 0, sizeof *v);
}

rlhf_status value_head_load(value_head *v, const st_file *f, int *found, rlhf_err *err) {
    const st_tensor *w = st_find(f, VALUE_HEAD_WEIGHT), *b = st_find(f, VALUE_HEAD_BIAS);
    *found = 0;
    if (!w && !b) return RLHF_OK;
    if (!w || !b || w->numel != v->C || b->numel != 1)
        return rlhf_fail(err, RLHF_EINPUT, "value head: expected %s [1, %d] and %s [1]", VALUE_HEAD_WEIGHT, v->C,
                         VALUE_HEAD_BIAS);
    RLHF_TRY(st_to_f32(w, v->params, err));
    RLHF_TRY(st_to_f32(b, v->params + v->C, err));
    *found = 1;
    return RLHF_OK;
}

void value_head_tensors(const value_head *v, st_write_tensor out[2]) {
    memset(out, 0, 2 * sizeof *out);
    out[0].name = VALUE_HEAD_WEIGHT, out[0].dtype = ST_F32, out[0].ndim = 2;
    out[0].shape[0] = 1, out[0].shape[1] = v->C, out[0].data = v->params;
    out[1].name = VALUE_HEAD_BIAS, out[1].dtype = ST_F32, out[1].ndim = 1;
    out[1].shape[0] = 1, out[1].data = v->params + v->C;
}

void value_head_forward(const value_head *v, float *values, const float *hidden, int N) {
    linear_forward(values, hidden, v->params, v->params + v->C, N, v->C, 1);
}

void value_head_backward(value_head *v, float *dhidden, const float *dvalues, const float *hidden, int N) {
    linear_backward(dhidden, v->grads, v->grads + v->C, dvalues, hidden, v->params, N, v->C, 1);
}
