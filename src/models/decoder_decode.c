// Incremental decoding with a KV cache for the shared decoder (model_family.decode): the same block
// math as decoder_forward, run on the new tokens only, with attention over every cached position.
// Nothing is saved for a backward. Scratch is carved from decoder_state.dec, which only grows, so a
// generation loop allocates once (at the prefill) and never per token.
#include <math.h>
#include <omp.h>
#include <string.h>

#include "models/decoder.h"
#include "models/peft.h"

static inline const float *P(const model *m, size_t off) { return off == DEC_NONE ? NULL : m->params + off; }

// Work items per thread that cached_attention aims for (heads are split into groups when rows are few).
#define ATTN_ITEMS_PER_THREAD 2

// Attention of the new queries t0 .. T_new - 1 of every row over the cached keys 0 .. len + T_new - 1.
// q: (B, T_new, NH, HD), out: (B, T_new - t0, NH, HD) (t0 > 0: a prefill's last layer, see decoder_decode).
// A cached key j is visible to the query at cache position i when j <= i,
// the cache mask marks it real, and (with the layer's sliding window) i - j < window, as in decoder_forward.
// One work item is a query and a group of consecutive heads, so it walks the cached rows of its batch row
// in order, reading each position's keys (values) of all its heads as one contiguous run: a head at a time
// would stride NKV * HD floats per key and wait on memory. scores_all: (threads, NH * (max_T + 2)).
static void cached_attention(float *out, float *scores_all, const float *q, const kv_cache *kc, int l,
                             const decoder_cfg *c, int T_new, int t0, float scale) {
    const int window = dec_layer_window(c, l);
    const float cap = c->attn_softcap;
    int B = kc->B, NH = c->NH, HD = c->HD, group = c->NH / c->NKV, len0 = kc->len;
    int TQ = T_new - t0, want = ATTN_ITEMS_PER_THREAD * omp_get_max_threads(), queries = B * TQ;
    int groups = queries >= want ? 1 : (want + queries - 1) / queries;
    if (groups > NH) groups = NH;
    int per = (NH + groups - 1) / groups;
    int total = queries * groups;
#pragma omp parallel for schedule(dynamic, 1)
    for (int w = 0; w < total; w++) {
        int bt = w / groups, h0 = (w % groups) * per, h1 = h0 + per < NH ? h0 + per : NH;
        int b = bt / TQ, t = t0 + bt % TQ, i = len0 + t;
        // this thread's scratch: scores (NH, max_T), then the running max and 1 / sum of every head
        float *scores = scores_all + (size_t)omp_get_thread_num() * NH * (kc->max_T + 2);
        float *mx = scores + (size_t)NH * kc->max_T, *inv = mx + NH;
        const float *qrow = q + ((size_t)b * T_new + t) * NH * HD;
        float *orow = out + (size_t)bt * NH * HD;
        const int32_t *mask = kc->mask + (size_t)b * kc->max_T;
        int j0 = window > 0 && i - window + 1 > 0 ? i - window + 1 : 0;
        for (int h = h0; h < h1; h++) mx[h] = -INFINITY;
        for (int j = j0; j <= i; j++) {
            if (!mask[j]) continue;
            const float *krow = kv_cache_k(kc, l, b, j);
            for (int h = h0; h < h1; h++) {
                const float *qv = qrow + (size_t)h * HD, *kv = krow + (size_t)(h / group) * HD;
                float sc = 0;
#pragma omp simd reduction(+ : sc)
                for (int d = 0; d < HD; d++) sc += qv[d] * kv[d];
                sc *= scale;
                if (cap > 0) sc = tanhf(sc / cap) * cap;  // Gemma 2, as attention_forward
                scores[(size_t)h * kc->max_T + j] = sc;
                if (sc > mx[h]) mx[h] = sc;
            }
        }
        memset(orow + (size_t)h0 * HD, 0, (size_t)(h1 - h0) * HD * sizeof(float));
        if (mx[h0] == -INFINITY) continue;  // no visible key (same for every head): zero output, as attention_forward
        for (int h = h0; h < h1; h++) {
            float *sh = scores + (size_t)h * kc->max_T, sum = 0;
            for (int j = j0; j <= i; j++) {
                float e = mask[j] ? expf(sh[j] - mx[h]) : 0.0f;
                sh[j] = e;
                sum += e;
            }
            inv[h] = 1.0f / sum;
        }
        for (int j = j0; j <= i; j++) {
            if (!mask[j]) continue;
            const float *vrow = kv_cache_v(kc, l, b, j);
            for (int h = h0; h < h1; h++) {
                float p = scores[(size_t)h * kc->max_T + j] * inv[h];
                const float *vv = vrow + (size_t)(h / group) * HD;
                float *o = orow + (size_t)h * HD;
#pragma omp simd
                for (int d = 0; d < HD; d++) o[d] += p * vv[d];
            }
        }
    }
}

rlhf_status decoder_decode(model *m, kv_cache *kc, const int32_t *ids, const int32_t *mask, const int32_t *pos,
                           int T_new, float *logits, rlhf_err *err) {
    decoder_state *st = m->impl;
    const decoder_cfg *c = &st->cfg;
    int B = kc->B, C = c->C, QD = c->NH * c->HD, KD = c->NKV * c->HD, I = c->I;
    if (kc->L != c->L || kc->NKV != c->NKV || kc->HD != c->HD)
        return rlhf_fail(err, RLHF_ERUNTIME, "kv cache shape (L=%d NKV=%d HD=%d) does not match the model", kc->L,
                         kc->NKV, kc->HD);
    if (T_new <= 0 || kc->len + T_new > kc->max_T)
        return rlhf_fail(err, RLHF_ERUNTIME, "kv cache full: %d cached + %d new > %d", kc->len, T_new, kc->max_T);
    size_t N = (size_t)B * T_new;
    const model_batch inference = {.B = B, .T = T_new, .training = 0};
    peft_begin_forward(m, &inference);  // adapters (if any) without dropout while decoding
    for (size_t i = 0; i < N; i++) {
        if (ids[i] < 0 || ids[i] >= c->V)
            return rlhf_fail(err, RLHF_EINPUT, "token id %d is outside the vocabulary [0, %d)", ids[i], c->V);
        if (c->max_positions > 0 && (pos[i] < 0 || pos[i] >= c->max_positions))
            return rlhf_fail(err, RLHF_EINPUT, "position %d outside the model's %d positions (n_positions)", pos[i],
                             c->max_positions);
    }
    int nthreads = omp_get_max_threads();
    int OUT = m->head == HEAD_LM ? c->V : m->cfg.num_labels;
    const int QKVW = dec_qkv_width(c);
    size_t sizes[] = {N * C, N * C, N * C, c->qkv == DEC_QKV_SEPARATE ? 1 : N * QKVW, N * QD, N * KD, N * KD,
                      N * QD, N, N, N * I, N * I, N * I, (size_t)B * C, (size_t)B * C,
                      (size_t)nthreads * c->NH * (kc->max_T + 2),  // cached_attention's scratch
                      c->fused_gate_up ? N * 2 * I : 1};
    enum { NBUF = sizeof sizes / sizeof *sizes };
    size_t need = 0;
    for (size_t i = 0; i < NBUF; i++) need += (sizes[i] * sizeof(float) + 127) & ~(size_t)63;
    RLHF_TRY(arena_reserve(&st->dec, need, err));
    arena_reset(&st->dec);
    float *f[NBUF];
    for (size_t i = 0; i < NBUF; i++) f[i] = arena_floats(&st->dec, sizes[i]);
    float *x = f[0], *ln = f[1], *proj = f[2], *qkv = f[3], *q = f[4], *k = f[5], *v = f[6], *atty = f[7];
    float *mean = f[8], *rstd = f[9], *fc = f[10], *up = f[11], *act = f[12], *last = f[13], *lastn = f[14];
    float *scores = f[15], *gu = f[16];
    const rope_freqs *rope = dec_rope(c, pos, N);

    for (int b = 0; b < B; b++)
        for (int t = 0; t < T_new; t++)
            kc->mask[(size_t)b * kc->max_T + kc->len + t] = mask ? mask[(size_t)b * T_new + t] : 1;

    model_embedding_forward(m, c->wte, x, ids, (int)N, C);
    if (c->wpe != DEC_NONE) {
        embedding_forward(proj, pos, P(m, c->wpe), (int)N, C);
        add_forward(x, x, proj, (int64_t)N * C);
    }
    if (c->embed_scale > 0)
        for (size_t i = 0; i < N * C; i++) x[i] *= c->embed_scale;
    // The logits are those of each row's last new position only, so the last layer needs its keys and
    // values at every new position (they go into the cache) but the rest of it (attention output, MLP) only
    // at the last one: from there on the stream is `last` (B, C), NR = B rows (a prefill's saving: its last
    // layer's attention output and MLP on B rows instead of B * T_new).
    float *xs = x;  // the residual stream: x (N rows), then last (B rows)
    size_t NR = N;
    for (int l = 0; l < c->L; l++) {
        const dec_layer_offsets *o = &c->layers[l];
        dec_norm_forward(c, ln, mean, rstd, x, P(m, o->ln1_w), P(m, o->ln1_b), (int)N);
        if (c->qkv == DEC_QKV_SEPARATE) {
            dec_proj_forward(m, q, ln, o->q_w, o->q_b, (int)N, C, QD);
            dec_proj_forward(m, k, ln, o->k_w, o->k_b, (int)N, C, KD);
            dec_proj_forward(m, v, ln, o->v_w, o->v_b, (int)N, C, KD);
        } else {
            dec_proj_forward(m, qkv, ln, o->qkv_w, o->qkv_b, (int)N, C, QKVW);
            dec_split_qkv(c, q, k, v, qkv, N);
        }
        if (c->rot_dim > 0) {
            rope_forward_freqs(q, pos, B, T_new, c->NH, c->HD, c->rot_dim, rope, ROPE_HALF);
            rope_forward_freqs(k, pos, B, T_new, c->NKV, c->HD, c->rot_dim, rope, ROPE_HALF);
        }
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T_new; t++) {
                memcpy(kv_cache_k(kc, l, b, kc->len + t), k + ((size_t)b * T_new + t) * KD, KD * sizeof(float));
                memcpy(kv_cache_v(kc, l, b, kc->len + t), v + ((size_t)b * T_new + t) * KD, KD * sizeof(float));
            }
        int t0 = 0;  // the first new position whose output is needed
        if (l == c->L - 1 && T_new > 1) {
            for (int b = 0; b < B; b++)
                memcpy(last + (size_t)b * C, x + ((size_t)b * T_new + T_new - 1) * C, C * sizeof(float));
            xs = last, NR = (size_t)B, t0 = T_new - 1;
        }
        cached_attention(atty, scores, q, kc, l, c, T_new, t0, dec_attn_scale(c, l));
        dec_proj_forward(m, proj, atty, o->o_w, o->o_b, (int)NR, QD, C);
        if (o->post_attn_w != DEC_NONE) {  // Gemma 2: normed branch output (ln is free here)
            dec_norm_forward(c, ln, mean, rstd, proj, P(m, o->post_attn_w), NULL, (int)NR);
            memcpy(proj, ln, NR * C * sizeof(float));
        }
        // sequential: x += attn, then the MLP reads norm2(x); parallel: the MLP reads norm2(x) of the
        // block input, so norm2 runs before the attention residual is added.
        if (!c->parallel_residual) add_forward(xs, xs, proj, (int64_t)NR * C);
        dec_norm_forward(c, ln, mean, rstd, xs, P(m, o->ln2_w), P(m, o->ln2_b), (int)NR);
        if (c->parallel_residual) add_forward(xs, xs, proj, (int64_t)NR * C);
        if (c->mlp == DEC_MLP_GATED) {
            if (c->fused_gate_up) {
                dec_proj_forward(m, gu, ln, o->fc_w, o->fc_b, (int)NR, C, 2 * I);
                dec_split_gate_up(fc, up, gu, NR, I);
            } else {
                dec_proj_forward(m, fc, ln, o->fc_w, o->fc_b, (int)NR, C, I);
                dec_proj_forward(m, up, ln, o->up_w, o->up_b, (int)NR, C, I);
            }
            dec_gated_forward(c, act, fc, up, (int64_t)NR * I);
        } else {
            dec_proj_forward(m, fc, ln, o->fc_w, o->fc_b, (int)NR, C, I);
            activation_forward(c->act, act, fc, (int64_t)NR * I);
        }
        dec_proj_forward(m, proj, act, o->down_w, o->down_b, (int)NR, I, C);
        if (o->post_mlp_w != DEC_NONE) {
            dec_norm_forward(c, ln, mean, rstd, proj, P(m, o->post_mlp_w), NULL, (int)NR);
            memcpy(proj, ln, NR * C * sizeof(float));
        }
        add_forward(xs, xs, proj, (int64_t)NR * C);
    }
    kc->len += T_new;
    if (xs == x)  // one new position (or no layers): x's rows are the last positions
        memcpy(last, x, (size_t)B * C * sizeof(float));
    dec_norm_forward(c, lastn, mean, rstd, last, P(m, c->lnf_w), P(m, c->lnf_b), B);
    RLHF_TRY(model_linear_forward(m, c->head, DEC_NONE, 0, logits, lastn, B, C, OUT, err));
    if (m->head == HEAD_LM && c->final_softcap > 0) softcap_forward(logits, logits, c->final_softcap, (int64_t)B * OUT);
    return RLHF_OK;
}
