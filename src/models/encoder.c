// Forward and backward of the post-LayerNorm encoder shared by BERT, RoBERTa and DistilBERT (see
// encoder.h), with its activation plan: every buffer the backward needs is carved once per (B, T)
// from the model's arena, so a training step allocates nothing.
#include "models/encoder.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "models/encoder_disentangled.h"
#include "models/peft.h"
#include "io/json_util.h"

// Dropout sites inside a layer (the rng_key's last word); layer index 0 is the embeddings,
// 1..L the layers and L+1 the classification head.
enum { SITE_ATTN_PROBS = 0, SITE_ATTN_OUT = 1, SITE_FFN_OUT = 2, SITE_EMB = 3, SITE_HEAD_IN = 4, SITE_HEAD_OUT = 5,
       SITE_REL = 6 };

// ---- construction helpers ----------------------------------------------------------------------

rlhf_status encoder_new(model *m, rlhf_err *err) {
    encoder *e = calloc(1, sizeof *e);
    if (!e) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory (encoder)");
    e->type_emb = e->pos_emb = e->rel_emb = e->rel_ln_w = e->rel_ln_b = ENC_NONE;
    m->impl = e;
    return RLHF_OK;
}

void encoder_destroy(model *m) {
    encoder *e = m->impl;
    if (!e) return;
    free(e->layers);
    free(e->acts);
    free(e);
    m->impl = NULL;
}

static size_t last_offset(const model *m) { return m->specs[m->n_specs - 1].offset; }

rlhf_status encoder_add_embedding(model *m, size_t *off, const char *name, int rows, int C, int padding_row,
                                  rlhf_err *err) {
    int64_t shape[2] = {rows, C};
    RLHF_TRY(model_add_param(m, name, 2, shape, INIT_NORMAL, 0, 0, padding_row, err));
    *off = last_offset(m);
    return RLHF_OK;
}

rlhf_status encoder_add_linear(model *m, size_t *w, size_t *b, const char *prefix, int out, int in, int is_head,
                               rlhf_err *err) {
    char name[MODEL_NAME_MAX];
    int64_t wshape[2] = {out, in}, bshape[1] = {out};
    snprintf(name, sizeof name, "%s.weight", prefix);
    RLHF_TRY(model_add_param(m, name, 2, wshape, INIT_NORMAL, 0, is_head, -1, err));
    *w = last_offset(m);
    snprintf(name, sizeof name, "%s.bias", prefix);
    RLHF_TRY(model_add_param(m, name, 1, bshape, INIT_ZEROS, 1, is_head, -1, err));
    *b = last_offset(m);
    return RLHF_OK;
}

rlhf_status encoder_add_layernorm(model *m, size_t *w, size_t *b, const char *prefix, int is_head, rlhf_err *err) {
    encoder *e = m->impl;
    char name[MODEL_NAME_MAX];
    int64_t shape[1] = {e->hp.C};
    snprintf(name, sizeof name, "%s.weight", prefix);
    RLHF_TRY(model_add_param(m, name, 1, shape, INIT_ONES, 1, is_head, -1, err));
    *w = last_offset(m);
    snprintf(name, sizeof name, "%s.bias", prefix);
    RLHF_TRY(model_add_param(m, name, 1, shape, INIT_ZEROS, 1, is_head, -1, err));
    *b = last_offset(m);
    return RLHF_OK;
}

rlhf_status encoder_add_layers(model *m, const char *layer_fmt, const char *const modules[8], rlhf_err *err) {
    encoder *e = m->impl;
    const encoder_hparams *hp = &e->hp;
    e->layers = calloc((size_t)hp->L, sizeof *e->layers);
    if (!e->layers) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory (encoder layers)");
    for (int l = 0; l < hp->L; l++) {
        encoder_layer_params *p = &e->layers[l];
        char pre[MODEL_NAME_MAX], name[MODEL_NAME_MAX * 2];
        snprintf(pre, sizeof pre, layer_fmt, l);
#define NAME(i) (snprintf(name, sizeof name, "%s%s", pre, modules[i]), name)
        RLHF_TRY(encoder_add_linear(m, &p->q_w, &p->q_b, NAME(0), hp->C, hp->C, 0, err));
        RLHF_TRY(encoder_add_linear(m, &p->k_w, &p->k_b, NAME(1), hp->C, hp->C, 0, err));
        RLHF_TRY(encoder_add_linear(m, &p->v_w, &p->v_b, NAME(2), hp->C, hp->C, 0, err));
        RLHF_TRY(encoder_add_linear(m, &p->o_w, &p->o_b, NAME(3), hp->C, hp->C, 0, err));
        RLHF_TRY(encoder_add_layernorm(m, &p->ln1_w, &p->ln1_b, NAME(4), 0, err));
        RLHF_TRY(encoder_add_linear(m, &p->fc1_w, &p->fc1_b, NAME(5), hp->I, hp->C, 0, err));
        RLHF_TRY(encoder_add_linear(m, &p->fc2_w, &p->fc2_b, NAME(6), hp->C, hp->I, 0, err));
        RLHF_TRY(encoder_add_layernorm(m, &p->ln2_w, &p->ln2_b, NAME(7), 0, err));
#undef NAME
    }
    m->hidden_states = calloc((size_t)hp->L + 1, sizeof *m->hidden_states);
    e->acts = calloc((size_t)hp->L, sizeof *e->acts);
    if (!m->hidden_states || !e->acts) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory (encoder)");
    return RLHF_OK;
}

rlhf_status encoder_config_dropout(const model *m, const char *key, double def, float *out, rlhf_err *err) {
    double p;
    RLHF_TRY(json_get_double(m->config_json, key, def, &p, "config.json", err));
    if (!(p >= 0 && p < 1)) return rlhf_fail(err, RLHF_EINPUT, "config.json: '%s' = %g, expected a probability in [0, 1)", key, p);
    *out = (float)p;
    return RLHF_OK;
}

rlhf_status encoder_config_int(const model *m, const char *key, long long def, int *out, rlhf_err *err) {
    long long v;
    RLHF_TRY(json_get_int(m->config_json, key, def, &v, "config.json", err));
    if (v <= 0 || v > (1LL << 30))
        return rlhf_fail(err, RLHF_EINPUT, "config.json: '%s' = %lld, expected a positive size", key, v);
    *out = (int)v;
    return RLHF_OK;
}

// ---- activation plan ---------------------------------------------------------------------------

// Carves buffers in two passes: first measuring (arena NULL), then from the arena sized to fit.
typedef struct {
    rlhf_arena *arena;
    size_t bytes;
} carver;

static void *carve(carver *c, size_t bytes) {
    c->bytes += (bytes + RLHF_ALIGN - 1) & ~(size_t)(RLHF_ALIGN - 1);
    return c->arena ? arena_alloc(c->arena, bytes) : NULL;
}
#define CARVE_F(c, n) ((float *)carve((c), (size_t)(n) * sizeof(float)))

// no_grad or checkpointing: every layer shares layer 0's activation buffers except its output (the next
// layer's input); a checkpointing backward re-runs each layer's forward into them first.
static void carve_plan(encoder *e, carver *c, int B, int T, int no_grad, int checkpointing, int lean, int lean_ctx) {
    const encoder_hparams *hp = &e->hp;
    size_t BT = (size_t)B * T, BTC = BT * hp->C, BTI = BT * hp->I, BC = (size_t)B * hp->C;
    size_t R2 = (size_t)2 * hp->rel_span, R2C = R2 * hp->C;
    e->ids = carve(c, BT * sizeof(int32_t));
    e->type_ids = carve(c, BT * sizeof(int32_t));
    e->pos_ids = carve(c, BT * sizeof(int32_t));
    e->mask = carve(c, BT * sizeof(int32_t));
    e->emb_sum = CARVE_F(c, BTC);
    e->emb_ln = CARVE_F(c, BTC);
    e->emb_mean = CARVE_F(c, BT);
    e->emb_rstd = CARVE_F(c, BT);
    e->emb_out = CARVE_F(c, BTC);
    e->scratch_c = CARVE_F(c, BTC);
    e->scratch_i = CARVE_F(c, BTI);
    if (!no_grad) {
        // Backward scratch (the lean plan's forward also keeps ln1 and the hidden states in some of it).
        float **d[] = {&e->d_a, &e->d_b, &e->d_res, &e->d_ln1, &e->d_ctx, &e->d_tmp};
        for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) *d[i] = CARVE_F(c, BTC);
        // The q / k / v gradients are zeroed and filled after d_ln1, d_res and d_tmp are last read in a layer's
        // backward (layer_backward): they share those buffers. With an in-place activation backward the
        // pre-activation gradient overwrites d_act.
        e->d_q = e->d_ln1, e->d_k = e->d_res, e->d_v = e->d_tmp;
        e->d_act = CARVE_F(c, BTI);
        e->d_fc1 = activation_has_inplace_backward(hp->act) ? e->d_act : CARVE_F(c, BTI);
        for (int i = 0; i < 4; i++) e->d_head[i] = CARVE_F(c, BC);
    } else {
        e->d_a = e->d_b = e->d_res = e->d_ln1 = e->d_q = e->d_k = e->d_v = e->d_ctx = e->d_tmp = NULL;
        e->d_fc1 = e->d_act = NULL;
        for (int i = 0; i < 4; i++) e->d_head[i] = NULL;
    }
    for (int l = 0; l < hp->L; l++) {
        encoder_layer_acts *a = &e->acts[l];
        if ((no_grad || checkpointing) && l > 0) {
            // Every layer reuses layer 0's buffers except its output (a hidden state).
            *a = e->acts[0];
            a->out = CARVE_F(c, BTC);
            continue;
        }
        a->q = CARVE_F(c, BTC);
        a->k = CARVE_F(c, BTC);
        a->v = CARVE_F(c, BTC);
        // Plain attention keeps no probabilities (the backward recomputes them, nn/ops.h); DeBERTa's keeps them.
        a->probs = hp->rel_attention ? CARVE_F(c, (size_t)B * hp->NH * T * T) : NULL;
        a->ctx = lean_ctx ? e->scratch_i : CARVE_F(c, BTC);
        a->res1 = CARVE_F(c, BTC);
        a->ln1 = lean ? e->d_ctx : CARVE_F(c, BTC);
        a->ln1_mean = CARVE_F(c, BT);
        a->ln1_rstd = CARVE_F(c, BT);
        a->fc1 = CARVE_F(c, BTI);
        a->res2 = CARVE_F(c, BTC);
        a->out = !lean ? CARVE_F(c, BTC) : l == hp->L - 1 ? CARVE_F(c, BTC) : (l % 2 ? e->d_tmp : e->d_res);
        a->ln2_mean = CARVE_F(c, BT);
        a->ln2_rstd = CARVE_F(c, BT);
        if (hp->rel_attention) {
            a->rel = CARVE_F(c, R2C);
            a->pk = CARVE_F(c, R2C);
            a->pq = CARVE_F(c, R2C);
        }
    }
    e->cls = CARVE_F(c, BC);
    e->head_x = CARVE_F(c, BC);
    e->head_dense = CARVE_F(c, BC);
    e->head_act = CARVE_F(c, BC);
    e->head_in = CARVE_F(c, BC);
    e->logits = CARVE_F(c, (size_t)B * hp->num_labels);
    if (hp->rel_attention) {
        e->rel_idx = carve(c, (size_t)T * T * sizeof(int32_t));
        e->rel_ln = CARVE_F(c, R2C);
        e->rel_mean = CARVE_F(c, R2);
        e->rel_rstd = CARVE_F(c, R2);
    }
    if (no_grad) {
        e->d_rel = e->d_rel_l = e->d_pk = e->d_pq = NULL;
        return;
    }
    if (hp->rel_attention) {
        e->d_rel = CARVE_F(c, R2C);
        e->d_rel_l = CARVE_F(c, R2C);
        e->d_pk = CARVE_F(c, R2C);
        e->d_pq = CARVE_F(c, R2C);
    }
}

static rlhf_status plan(model *m, int B, int T, rlhf_err *err) {
    encoder *e = m->impl;
    int no_grad = m->no_grad != 0, checkpointing = m->gradient_checkpointing && !no_grad;
    int keep_hidden = m->keep_hidden_states != 0, lean = !no_grad && !checkpointing && !keep_hidden;
    int peft = m->peft != NULL, lean_ctx = lean && !peft && !e->hp.rel_attention;
    // the same plan stands while its arena does (model_release_activations frees it between a scorer's uses)
    if (m->acts.base && e->B == B && e->T == T && e->no_grad == no_grad && e->checkpointing == checkpointing &&
        e->keep_hidden == keep_hidden && e->peft == peft)
        return RLHF_OK;
    carver c = {NULL, 0};
    carve_plan(e, &c, B, T, no_grad, checkpointing, lean, lean_ctx);
    e->B = e->T = 0;
    // Grows only: a smaller batch reuses the buffer (its contents are not needed across shapes).
    RLHF_TRY(arena_reserve(&m->acts, c.bytes, err));
    arena_reset(&m->acts);
    c.arena = &m->acts;
    c.bytes = 0;
    carve_plan(e, &c, B, T, no_grad, checkpointing, lean, lean_ctx);
    e->B = B;
    e->T = T;
    e->no_grad = no_grad;
    e->checkpointing = checkpointing;
    e->keep_hidden = keep_hidden;
    e->lean = lean;
    e->lean_ctx = lean_ctx;
    e->peft = peft;
    e->have_forward = 0;
    return RLHF_OK;
}

// ---- small fused loops -------------------------------------------------------------------------

static void zero(float *p, size_t n) { memset(p, 0, n * sizeof *p); }

// out += a, elementwise
static void add_inplace(float *out, const float *a, size_t n) {
#pragma omp parallel for schedule(static) if (n > 32768)
    for (size_t i = 0; i < n; i++) out[i] += a[i];
}

static float dropout_p(const encoder *e, float p) { return e->training ? p : 0.0f; }

static uint64_t dropout_key(const encoder *e, int layer, int site) {
    return rng_key(e->dropout_key, RNG_STREAM_DROPOUT, (uint64_t)layer, (uint64_t)site);
}

// Dropout of a (B, T, C) activation / of the head's (B, C) rows, each row masked by its place in the global
// micro-batch when the batch names one (model_batch.dropout_pos), else by its place in this batch.
static void drop_tokens(const encoder *e, float *out, const float *inp, float p, uint64_t key) {
    dropout_rows_forward(out, inp, p, key, e->drop_pos, e->B, e->T, e->drop_T, e->hp.C);
}
static void drop_tokens_back(const encoder *e, float *dinp, const float *dout, float p, uint64_t key) {
    dropout_rows_backward(dinp, dout, p, key, e->drop_pos, e->B, e->T, e->drop_T, e->hp.C);
}
static void drop_head(const encoder *e, float *out, const float *inp, float p, uint64_t key) {
    dropout_rows_forward(out, inp, p, key, e->drop_pos, e->B, 1, 1, e->hp.C);
}
static void drop_head_back(const encoder *e, float *dinp, const float *dout, float p, uint64_t key) {
    dropout_rows_backward(dinp, dout, p, key, e->drop_pos, e->B, 1, 1, e->hp.C);
}

// ---- forward -----------------------------------------------------------------------------------

// Copies the batch's ids and derives HF's default positions; checks every id against its table.
static rlhf_status prepare_inputs(encoder *e, const model_batch *b, rlhf_err *err) {
    const encoder_hparams *hp = &e->hp;
    int B = b->B, T = b->T;
    for (int bi = 0; bi < B; bi++) {
        int run = 0;  // RoBERTa: count of non-pad tokens so far
        for (int t = 0; t < T; t++) {
            size_t n = (size_t)bi * T + t;
            int32_t id = b->input_ids[n];
            if (id < 0 || id >= hp->vocab_size)
                return rlhf_fail(err, RLHF_EINPUT, "input id %d at (%d, %d) is outside the vocabulary of %d", id, bi, t,
                                 hp->vocab_size);
            e->ids[n] = id;
            e->mask[n] = b->attention_mask ? (b->attention_mask[n] != 0) : 1;
            // Families without token types (DistilBERT, DeBERTa-v3) ignore them, as HF does.
            int32_t tt = b->token_type_ids && hp->type_vocab_size > 0 ? b->token_type_ids[n] : 0;
            int tv = hp->type_vocab_size > 0 ? hp->type_vocab_size : 1;
            if (tt < 0 || tt >= tv)
                return rlhf_fail(err, RLHF_EINPUT, "token_type_id %d at (%d, %d): type_vocab_size is %d", tt, bi, t,
                                 hp->type_vocab_size);
            e->type_ids[n] = tt;
            int32_t pos;
            if (b->position_ids)
                pos = b->position_ids[n];
            else if (hp->positions == ENC_POS_ROBERTA) {
                int real = id != hp->pad_token_id;
                run += real;
                pos = real ? run + hp->pad_token_id : hp->pad_token_id;
            } else
                pos = t;
            if (pos < 0 || pos >= hp->max_positions)
                return rlhf_fail(err, RLHF_EINPUT,
                                 "position %d at (%d, %d) exceeds max_position_embeddings %d (sequence too long: "
                                 "lower --max_length)",
                                 pos, bi, t, hp->max_positions);
            e->pos_ids[n] = pos;
        }
    }
    return RLHF_OK;
}

// emb_sum: (BT, C) = word[ids] + type[type_ids] + pos[pos_ids] (HF's order of the sums; DeBERTa
// may have neither types nor positions)
static void embeddings_sum(const model *m, encoder *e, const float *params, int BT) {
    const int C = e->hp.C;
    const float *word = params + e->word_emb;
    // a frozen model's bf16 word embeddings: the rows widened into emb_sum first, then summed in place
    const int bf16 = model_bf16_weight(m, e->word_emb) != NULL;
    if (bf16) model_embedding_forward(m, e->word_emb, e->emb_sum, e->ids, BT, C);
    const float *pos = e->pos_emb != ENC_NONE ? params + e->pos_emb : NULL;
    const float *type = e->type_emb != ENC_NONE ? params + e->type_emb : NULL;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < BT; n++) {
        float *o = e->emb_sum + (size_t)n * C;
        const float *w = bf16 ? o : word + (size_t)e->ids[n] * C;
        const float *ty = type ? type + (size_t)e->type_ids[n] * C : NULL;
        const float *p = pos ? pos + (size_t)e->pos_ids[n] * C : NULL;
        if (ty && p) {
            for (int c = 0; c < C; c++) o[c] = (w[c] + ty[c]) + p[c];
        } else if (p) {
            for (int c = 0; c < C; c++) o[c] = w[c] + p[c];
        } else if (ty) {
            for (int c = 0; c < C; c++) o[c] = w[c] + ty[c];
        } else if (w != o) {
            memcpy(o, w, (size_t)C * sizeof *o);
        }
    }
}

// x (BT, C) rows of padding tokens set to zero (DeBERTa's embeddings * mask, and its backward).
static void mask_rows(float *x, const int32_t *mask, int BT, int C) {
    for (int n = 0; n < BT; n++)
        if (!mask[n]) memset(x + (size_t)n * C, 0, (size_t)C * sizeof *x);
}

static disentangled_shape rel_shape(const encoder *e, int layer) {
    const encoder_hparams *hp = &e->hp;
    disentangled_shape s = {0};
    s.B = e->B;
    s.T = e->T;
    s.NH = hp->NH;
    s.HD = hp->C / hp->NH;
    s.R2 = 2 * hp->rel_span;
    s.c2p = hp->c2p;
    s.p2c = hp->p2c;
    s.scale = 1.0f / sqrtf((float)s.HD * (float)(1 + hp->c2p + hp->p2c));
    s.dropout_p = dropout_p(e, hp->attn_dropout);
    s.dropout_key = dropout_key(e, layer + 1, SITE_ATTN_PROBS);
    return s;
}

static attention_shape attn_shape(const encoder *e, int layer) {
    const encoder_hparams *hp = &e->hp;
    attention_shape s = {0};
    s.B = e->B;
    s.T = e->T;
    s.NH = s.NKV = hp->NH;
    s.HD = hp->C / hp->NH;
    s.causal = 0;
    s.window = 0;
    s.scale = 1.0f / sqrtf((float)s.HD);
    s.dropout_p = dropout_p(e, hp->attn_dropout);
    s.dropout_key = dropout_key(e, layer + 1, SITE_ATTN_PROBS);
    s.row_pos = e->drop_pos;
    s.T_global = e->drop_T;
    return s;
}

// Linear layers go through the model's dispatch (dense / LoRA / 4-bit, models/peft.h).
#define LIN(out, inp, w, b, N, Ci, Co) RLHF_TRY(model_linear_forward(m, (w), (b), 0, (out), (inp), (N), (Ci), (Co), err))
#define LINB(dinp, w, b, dout, inp, N, Ci, Co) \
    RLHF_TRY(model_linear_backward(m, (w), (b), 0, (dinp), (dout), (inp), (N), (Ci), (Co), err))

static rlhf_status layer_forward(model *m, encoder *e, const float *params, int l, const float *x, rlhf_err *err) {
    const encoder_hparams *hp = &e->hp;
    const encoder_layer_params *p = &e->layers[l];
    encoder_layer_acts *a = &e->acts[l];
    const int BT = e->B * e->T, C = hp->C, I = hp->I;
    const size_t BTC = (size_t)BT * C, BTI = (size_t)BT * I;
#define W(off) (params + (off))
    LIN(a->q, x, p->q_w, p->q_b, BT, C, C);
    LIN(a->k, x, p->k_w, p->k_b, BT, C, C);
    LIN(a->v, x, p->v_w, p->v_b, BT, C, C);
    if (hp->rel_attention) {
        // The relative embeddings, dropped per layer, through this layer's key / query projections.
        const int R2 = 2 * hp->rel_span;
        dropout_forward(a->rel, e->rel_ln, dropout_p(e, hp->rel_dropout), dropout_key(e, l + 1, SITE_REL),
                        (int64_t)R2 * C);
        if (hp->c2p) LIN(a->pk, a->rel, p->k_w, p->k_b, R2, C, C);
        if (hp->p2c) LIN(a->pq, a->rel, p->q_w, p->q_b, R2, C, C);
        disentangled_shape ds = rel_shape(e, l);
        disentangled_attention_forward(a->ctx, a->probs, a->q, a->k, a->v, a->pk, a->pq, e->rel_idx, e->mask, &ds);
    } else {
        attention_shape s = attn_shape(e, l);
        attention_forward(a->ctx, a->probs, a->q, a->k, a->v, e->mask, &s);
    }
    LIN(e->scratch_c, a->ctx, p->o_w, p->o_b, BT, C, C);
    drop_tokens(e, a->res1, e->scratch_c, dropout_p(e, hp->attn_out_dropout), dropout_key(e, l + 1, SITE_ATTN_OUT));
    add_inplace(a->res1, x, BTC);
    layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, a->res1, W(p->ln1_w), W(p->ln1_b), BT, C, hp->ln_eps);
    LIN(a->fc1, a->ln1, p->fc1_w, p->fc1_b, BT, C, I);
    activation_forward(hp->act, e->scratch_i, a->fc1, (int64_t)BTI);
    LIN(e->scratch_c, e->scratch_i, p->fc2_w, p->fc2_b, BT, I, C);
    drop_tokens(e, a->res2, e->scratch_c, dropout_p(e, hp->ffn_dropout), dropout_key(e, l + 1, SITE_FFN_OUT));
    add_inplace(a->res2, a->ln1, BTC);
    layernorm_forward(a->out, a->ln2_mean, a->ln2_rstd, a->res2, W(p->ln2_w), W(p->ln2_b), BT, C, hp->ln_eps);
#undef W
    return RLHF_OK;
}

// logits (B, NL) from the first token of each row of h (B, T, C).
static rlhf_status head_forward(model *m, encoder *e, const float *h, rlhf_err *err) {
    const encoder_hparams *hp = &e->hp;
    const int B = e->B, T = e->T, C = hp->C;
    const int64_t BC = (int64_t)B * C;
    for (int b = 0; b < B; b++) memcpy(e->cls + (size_t)b * C, h + (size_t)b * T * C, (size_t)C * sizeof(float));
    const int site = hp->L + 1;
    drop_head(e, e->head_x, e->cls, dropout_p(e, hp->head_dropout_in), dropout_key(e, site, SITE_HEAD_IN));
    LIN(e->head_dense, e->head_x, e->head_dense_w, e->head_dense_b, B, C, C);
    activation_forward(hp->head_act, e->head_act, e->head_dense, BC);
    drop_head(e, e->head_in, e->head_act, dropout_p(e, hp->head_dropout_out), dropout_key(e, site, SITE_HEAD_OUT));
    LIN(e->logits, e->head_in, e->head_out_w, e->head_out_b, B, C, hp->num_labels);
    return RLHF_OK;
}

rlhf_status encoder_forward(model *m, const model_batch *b, rlhf_err *err) {
    encoder *e = m->impl;
    const encoder_hparams *hp = &e->hp;
    if (m->head != HEAD_SEQCLS)
        return rlhf_fail(err, RLHF_ERUNTIME, "%s: only the sequence-classification head exists", m->cfg.model_type);
    RLHF_TRY(plan(m, b->B, b->T, err));
    e->have_forward = 0;
    e->training = b->training;
    e->dropout_key = b->dropout_key;
    e->drop_pos = b->dropout_pos;
    e->drop_T = b->dropout_pos ? b->dropout_T : b->T;
    if (e->drop_T < b->T) return rlhf_fail(err, RLHF_ERUNTIME, "encoder: dropout_T %d < T %d", e->drop_T, b->T);
    RLHF_TRY(prepare_inputs(e, b, err));
    const int BT = b->B * b->T;
    const float *params = m->params;
    embeddings_sum(m, e, params, BT);
    layernorm_forward(e->emb_ln, e->emb_mean, e->emb_rstd, e->emb_sum, params + e->emb_ln_w, params + e->emb_ln_b, BT,
                      hp->C, hp->ln_eps);
    if (hp->emb_mask) mask_rows(e->emb_ln, e->mask, BT, hp->C);
    if (hp->rel_attention) {
        const int R2 = 2 * hp->rel_span;
        disentangled_rel_index(e->rel_idx, b->T, hp->rel_buckets, hp->rel_max, hp->rel_span);
        if (e->rel_ln_w != ENC_NONE)
            layernorm_forward(e->rel_ln, e->rel_mean, e->rel_rstd, params + e->rel_emb, params + e->rel_ln_w,
                              params + e->rel_ln_b, R2, hp->C, hp->ln_eps);
        else
            memcpy(e->rel_ln, params + e->rel_emb, (size_t)R2 * hp->C * sizeof(float));
    }
    drop_tokens(e, e->emb_out, e->emb_ln, dropout_p(e, hp->emb_dropout), dropout_key(e, 0, SITE_EMB));
    m->hidden_states[0] = e->emb_out;
    const float *x = e->emb_out;
    for (int l = 0; l < hp->L; l++) {
        RLHF_TRY(layer_forward(m, e, params, l, x, err));
        x = e->acts[l].out;
        m->hidden_states[l + 1] = e->acts[l].out;
    }
    m->last_hidden = (float *)x;
    RLHF_TRY(head_forward(m, e, x, err));
    m->out = e->logits;
    e->have_forward = 1;
    return RLHF_OK;
}

// ---- backward ----------------------------------------------------------------------------------

// dh (B, T, C) += gradient of the head's input (first token of each row) given dlogits (B, NL).
static rlhf_status head_backward(model *m, encoder *e, const float *dlogits, float *dh, rlhf_err *err) {
    const encoder_hparams *hp = &e->hp;
    const int B = e->B, T = e->T, C = hp->C;
    const int64_t BC = (int64_t)B * C;
    const int site = hp->L + 1;
    float *d_in = e->d_head[0], *d_act = e->d_head[1], *d_dense = e->d_head[2], *d_x = e->d_head[3];
    zero(d_in, (size_t)BC);
    LINB(d_in, e->head_out_w, e->head_out_b, dlogits, e->head_in, B, C, hp->num_labels);
    zero(d_act, (size_t)BC);
    drop_head_back(e, d_act, d_in, dropout_p(e, hp->head_dropout_out), dropout_key(e, site, SITE_HEAD_OUT));
    zero(d_dense, (size_t)BC);
    activation_backward(hp->head_act, d_dense, d_act, e->head_dense, e->head_act, BC);
    zero(d_x, (size_t)BC);
    LINB(d_x, e->head_dense_w, e->head_dense_b, d_dense, e->head_x, B, C, C);
    zero(d_in, (size_t)BC);
    drop_head_back(e, d_in, d_x, dropout_p(e, hp->head_dropout_in), dropout_key(e, site, SITE_HEAD_IN));
    for (int b = 0; b < B; b++) add_inplace(dh + (size_t)b * T * C, d_in + (size_t)b * C, (size_t)C);
    return RLHF_OK;
}

// dout: gradient of layer l's output; dx (zeroed by the caller) receives its input's gradient.
static rlhf_status layer_backward(model *m, encoder *e, const float *params, int l, const float *x,
                                  const float *dout, float *dx, rlhf_err *err) {
    const encoder_hparams *hp = &e->hp;
    const encoder_layer_params *p = &e->layers[l];
    const encoder_layer_acts *a = &e->acts[l];
    const int BT = e->B * e->T, C = hp->C, I = hp->I;
    const size_t BTC = (size_t)BT * C, BTI = (size_t)BT * I;
#define W(off) (params + (off))
#define G(off) model_grad(m, (off))  // NULL for frozen tensors (LoRA)
    // The lean plan did not keep ln1 (a->ln1 is d_ctx, free until fc1's backward has read it): recompute it.
    if (e->lean) layernorm_apply(a->ln1, a->res1, a->ln1_mean, a->ln1_rstd, W(p->ln1_w), W(p->ln1_b), BT, C);
    // LayerNorm 2 and its residual: d_res -> d_ln1 (skip) and the feed-forward branch.
    zero(e->d_res, BTC);
    layernorm_backward(e->d_res, G(p->ln2_w), G(p->ln2_b), dout, a->res2, W(p->ln2_w), a->ln2_mean, a->ln2_rstd, BT, C);
    memcpy(e->d_ln1, e->d_res, BTC * sizeof(float));
    zero(e->d_tmp, BTC);
    drop_tokens_back(e, e->d_tmp, e->d_res, dropout_p(e, hp->ffn_dropout), dropout_key(e, l + 1, SITE_FFN_OUT));
    // The activation output was not kept: recompute it for fc2's weight gradient.
    activation_forward(hp->act, e->scratch_i, a->fc1, (int64_t)BTI);
    zero(e->d_act, BTI);
    LINB(e->d_act, p->fc2_w, p->fc2_b, e->d_tmp, e->scratch_i, BT, I, C);
    if (!activation_backward_inplace(hp->act, e->d_act, a->fc1, (int64_t)BTI)) {  // else d_fc1 == d_act
        zero(e->d_fc1, BTI);
        activation_backward(hp->act, e->d_fc1, e->d_act, a->fc1, e->scratch_i, (int64_t)BTI);
    }
    LINB(e->d_ln1, p->fc1_w, p->fc1_b, e->d_fc1, a->ln1, BT, C, I);
    // LayerNorm 1 and its residual: d_res -> dx (skip) and the attention branch.
    zero(e->d_res, BTC);
    layernorm_backward(e->d_res, G(p->ln1_w), G(p->ln1_b), e->d_ln1, a->res1, W(p->ln1_w), a->ln1_mean, a->ln1_rstd,
                       BT, C);
    add_inplace(dx, e->d_res, BTC);
    zero(e->d_tmp, BTC);
    drop_tokens_back(e, e->d_tmp, e->d_res, dropout_p(e, hp->attn_out_dropout), dropout_key(e, l + 1, SITE_ATTN_OUT));
    zero(e->d_ctx, BTC);
    if (e->lean_ctx && !m->peft) {
        // ctx was not kept: the projection's input gradient now, its weight gradient once the attention
        // backward has rebuilt ctx (into scratch_i, free since fc2's backward). d_tmp (d_v's buffer) is read
        // until then, so dv goes to d_act (free since fc1's backward).
        float *dv = e->d_act;
        linear_backward(e->d_ctx, NULL, NULL, e->d_tmp, NULL, W(p->o_w), BT, C, C);
        zero(e->d_q, BTC);
        zero(e->d_k, BTC);
        zero(dv, BTC);
        attention_shape s = attn_shape(e, l);
        attention_backward_recompute_ctx(e->d_q, e->d_k, dv, a->ctx, e->d_ctx, a->q, a->k, a->v, e->mask, &s);
        linear_backward(NULL, G(p->o_w), G(p->o_b), e->d_tmp, a->ctx, W(p->o_w), BT, C, C);
        LINB(dx, p->q_w, p->q_b, e->d_q, x, BT, C, C);
        LINB(dx, p->k_w, p->k_b, e->d_k, x, BT, C, C);
        LINB(dx, p->v_w, p->v_b, dv, x, BT, C, C);
        return RLHF_OK;
    }
    LINB(e->d_ctx, p->o_w, p->o_b, e->d_tmp, a->ctx, BT, C, C);
    zero(e->d_q, BTC);
    zero(e->d_k, BTC);
    zero(e->d_v, BTC);
    if (hp->rel_attention) {
        const int R2 = 2 * hp->rel_span;
        zero(e->d_pk, (size_t)R2 * C);
        zero(e->d_pq, (size_t)R2 * C);
        disentangled_shape ds = rel_shape(e, l);
        disentangled_attention_backward(e->d_q, e->d_k, e->d_v, e->d_pk, e->d_pq, e->d_ctx, a->probs, a->q, a->k, a->v,
                                        a->pk, a->pq, e->rel_idx, &ds);
        zero(e->d_rel_l, (size_t)R2 * C);
        if (hp->c2p) LINB(e->d_rel_l, p->k_w, p->k_b, e->d_pk, a->rel, R2, C, C);
        if (hp->p2c) LINB(e->d_rel_l, p->q_w, p->q_b, e->d_pq, a->rel, R2, C, C);
        dropout_backward(e->d_rel, e->d_rel_l, dropout_p(e, hp->rel_dropout), dropout_key(e, l + 1, SITE_REL),
                         (int64_t)R2 * C);
    } else {
        attention_shape s = attn_shape(e, l);
        attention_backward_recompute(e->d_q, e->d_k, e->d_v, e->d_ctx, a->probs, a->q, a->k, a->v, e->mask, &s);
    }
    LINB(dx, p->q_w, p->q_b, e->d_q, x, BT, C, C);
    LINB(dx, p->k_w, p->k_b, e->d_k, x, BT, C, C);
    LINB(dx, p->v_w, p->v_b, e->d_v, x, BT, C, C);
#undef W
#undef G
    return RLHF_OK;
}

rlhf_status encoder_backward(model *m, const float *dout, const float *dhidden, rlhf_err *err) {
    encoder *e = m->impl;
    const encoder_hparams *hp = &e->hp;
    if (!e->have_forward) return rlhf_fail(err, RLHF_ERUNTIME, "%s: backward without a forward", m->cfg.model_type);
    if (e->no_grad)
        return rlhf_fail(err, RLHF_ERUNTIME, "%s: backward after a no_grad forward (clear model.no_grad to train)",
                         m->cfg.model_type);
    const int BT = e->B * e->T, C = hp->C;
    const size_t BTC = (size_t)BT * C;
    const float *params = m->params;
    float *dh = e->d_a, *dprev = e->d_b;
    if (dhidden)
        memcpy(dh, dhidden, BTC * sizeof(float));
    else
        zero(dh, BTC);
    if (hp->rel_attention) zero(e->d_rel, (size_t)2 * hp->rel_span * C);
    if (dout) RLHF_TRY(head_backward(m, e, dout, dh, err));
    for (int l = hp->L - 1; l >= 0; l--) {
        const float *x = l ? e->acts[l - 1].out : e->emb_out;
        if (e->lean && l > 0) {  // the lean plan did not keep the hidden state: recompute it into scratch_c
            const encoder_layer_acts *pa = &e->acts[l - 1];
            const encoder_layer_params *pp = &e->layers[l - 1];
            layernorm_apply(e->scratch_c, pa->res2, pa->ln2_mean, pa->ln2_rstd, params + pp->ln2_w, params + pp->ln2_b,
                            BT, C);
            x = e->scratch_c;
        }
        // checkpointing: refill the shared buffers with this layer's activations (the last layer's are
        // still there from the forward)
        if (e->checkpointing && l < hp->L - 1) RLHF_TRY(layer_forward(m, e, params, l, x, err));
        zero(dprev, BTC);
        RLHF_TRY(layer_backward(m, e, params, l, x, dh, dprev, err));
        float *t = dh;
        dh = dprev;
        dprev = t;
    }
    // Embeddings: dropout, LayerNorm, then the three lookups (padding rows get no gradient, as
    // nn.Embedding(padding_idx)).
    zero(e->d_tmp, BTC);
    drop_tokens_back(e, e->d_tmp, dh, dropout_p(e, hp->emb_dropout), dropout_key(e, 0, SITE_EMB));
    if (hp->emb_mask) mask_rows(e->d_tmp, e->mask, BT, C);
    if (hp->rel_attention && model_grad(m, e->rel_emb)) {  // frozen under LoRA
        const int R2 = 2 * hp->rel_span;
        if (e->rel_ln_w != ENC_NONE)
            layernorm_backward(model_grad(m, e->rel_emb), model_grad(m, e->rel_ln_w), model_grad(m, e->rel_ln_b), e->d_rel,
                               params + e->rel_emb, params + e->rel_ln_w, e->rel_mean, e->rel_rstd, R2, C);
        else
            add_inplace(model_grad(m, e->rel_emb), e->d_rel, (size_t)R2 * C);
    }
    zero(e->d_res, BTC);
    if (!model_grad(m, e->word_emb)) return RLHF_OK;  // frozen embeddings (LoRA): nothing below trains
    layernorm_backward(e->d_res, model_grad(m, e->emb_ln_w), model_grad(m, e->emb_ln_b), e->d_tmp, e->emb_sum, params + e->emb_ln_w,
                       e->emb_mean, e->emb_rstd, BT, C);
    embedding_backward(model_grad(m, e->word_emb), e->d_res, e->ids, BT, C, hp->pad_token_id);
    if (e->pos_emb != ENC_NONE)
        embedding_backward(model_grad(m, e->pos_emb), e->d_res, e->pos_ids, BT, C, hp->position_padding_idx);
    if (e->type_emb != ENC_NONE) embedding_backward(model_grad(m, e->type_emb), e->d_res, e->type_ids, BT, C, -1);
    return RLHF_OK;
}

rlhf_status encoder_config_pad(const model *m, int def, int *out, rlhf_err *err) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(m->config_json, "pad_token_id");
    if (j && cJSON_IsNull(j)) {
        *out = -1;
        return RLHF_OK;
    }
    long long v;
    RLHF_TRY(json_get_int(m->config_json, "pad_token_id", def, &v, "config.json", err));
    if (v < -1 || v > (1LL << 30)) return rlhf_fail(err, RLHF_EINPUT, "config.json: 'pad_token_id' = %lld", v);
    *out = (int)v;
    return RLHF_OK;
}
