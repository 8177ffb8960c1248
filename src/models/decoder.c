// Forward and backward of the shared causal-LM backbone (see decoder.h). One pre-norm block:
//   sequential (GPT-2, Llama, NeoX without use_parallel_residual):
//     h = x + drop(attn(norm1(x)));  out = h + drop(mlp(norm2(h)))
//   parallel (GPT-NeoX use_parallel_residual):
//     out = x + drop(attn(norm1(x))) + drop(mlp(norm2(x)))
//   sandwich (Gemma 2): h = x + post_attn_norm(attn(norm1(x)));  out = h + post_mlp_norm(mlp(norm2(h)))
// Activations live in model.acts, carved for the batch shape; the backward reads them back and uses
// its own scratch arena. Backward ops accumulate, so every scratch gradient is zeroed before use.
#include "models/decoder.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "io/json_util.h"
#include "models/peft.h"

// Dropout sites inside a block (part of the dropout key, so each gets an independent mask).
enum { SITE_EMBD = 0, SITE_ATTN_PROBS = 1, SITE_ATTN_OUT = 2, SITE_MLP_OUT = 3 };

typedef struct {
    float *ln1, *ln1_mean, *ln1_rstd;
    float *qkv;             // fused projection output (N, 3*NH*HD), GPT2/NEOX layouts
    float *q, *k, *v;       // (B, T, NH|NKV, HD), rotated
    float *probs;           // (B, NH, T, T)
    float *atty;            // (N, NH*HD) attention output before o_proj
    float *res1;            // sequential: the stream after the attention residual (N, C)
    float *ln2, *ln2_mean, *ln2_rstd;
    float *fc;              // (N, I) MLP pre-activation (GATED: gate)
    float *up;              // (N, I) GATED up projection
    float *act;             // (N, I) activation output
    float *attn_br, *attn_br_rstd;  // sandwich: o_proj output (N, C) before its norm, and the norm's rstd
    float *mlp_br, *mlp_br_rstd;    // sandwich: down_proj output (N, C) before its norm
} dec_layer_acts;

typedef struct {
    int B, T;
    int training;
    int checkpointing;      // every layer shares layers[0]'s buffers; the backward re-runs each block first
    int no_grad;            // no backward follows: layers share layers[0]'s buffers (and, without
                            // keep_hidden_states, the stream is two (N, C) buffers used in turn)
    int pingpong;           // resid holds 2 streams: block l reads stream l % 2, writes (l + 1) % 2
    int shared;             // training without checkpointing: ln1, qkv, ln2 and act are one buffer each, shared
                            // by every layer; the backward recomputes ln1 / ln2 / act of a block from its kept
                            // inputs (the stream, res1, fc / up) before its backward (same kernels, same bits)
    uint64_t dropout_key;
    const int64_t *drop_pos;  // model_batch.dropout_pos (NULL: this batch) and its row length
    int drop_T;
    int32_t *ids, *mask, *pos;  // copies of the batch (mask NULL when the batch had none)
    float *resid;           // (L+1, N, C): embeddings, then each block's output
    dec_layer_acts *layers;
    float *lnf_mean, *lnf_rstd;
    float *attn_proj, *mlp_proj;  // (N, C) scratch, not needed by the backward
    float *gu;              // (N, 2I) fused gate_up output scratch (Phi-3), else NULL
    int *pool;              // (B) seq-cls pooled positions
    float *pooled;          // (B, C)
    int head_from, head_count;  // LM head rows: positions [head_from, head_from + head_count) (0: all T)
    float *head_in;         // (B, head_count, C) the final norm's output at those positions (head_count > 0)
} dec_acts;

static size_t round_up64(size_t n) { return (n + RLHF_ALIGN - 1) & ~(size_t)(RLHF_ALIGN - 1); }

// Two-pass carving: with a == NULL only counts the bytes needed.
typedef struct {
    rlhf_arena *a;
    size_t need;
} carver;
static void *carve(carver *cv, size_t bytes) {
    cv->need += round_up64(bytes ? bytes : 1);
    return cv->a ? arena_alloc(cv->a, bytes ? bytes : 1) : NULL;
}
static float *carve_f(carver *cv, size_t n) { return carve(cv, n * sizeof(float)); }

// Elements below which splitting a fused projection stays on one thread (as NN_PARALLEL_MIN in src/nn).
#define SPLIT_PARALLEL_MIN 32768

static inline float *P(const model *m, size_t off) { return off == DEC_NONE ? NULL : m->params + off; }
static inline float *G(const model *m, size_t off) { return model_grad(m, off); }  // NULL: frozen (LoRA)

static uint64_t drop_key(uint64_t key, int layer, int site) {
    return rng_key(key, RNG_STREAM_DROPOUT, (uint64_t)layer, (uint64_t)site);
}

// In-place dropout of a (B, T, C) stream tensor, each row masked by its place in the global micro-batch when
// the batch names one (model_batch.dropout_pos), else by its place in this batch.
static void drop_rows(const dec_acts *a, int C, float *x, float p, uint64_t key) {
    dropout_rows_forward(x, x, p, key, a->drop_pos, a->B, a->T, a->drop_T, C);
}

// ---- building blocks (also used by decoder_decode.c) ---------------------------------------------

// Projections go through the model's linear dispatch (dense / LoRA / 4-bit, models/peft.h). Its only
// failure is running out of memory for adapter scratch: the output (input gradient) is then NaN, which
// the trainers already treat as a failed step, as the attention ops do.
void dec_proj_forward(model *m, float *out, const float *inp, size_t w, size_t b, int N, int C, int OC) {
    const decoder_cfg *c = &((const decoder_state *)m->impl)->cfg;
    rlhf_err err;
    if (model_linear_forward(m, w, b, c->conv1d, out, inp, N, C, OC, &err) != RLHF_OK)
        for (size_t i = 0; i < (size_t)N * OC; i++) out[i] = NAN;
}
static void proj_backward(model *m, float *dinp, size_t w, size_t b, const float *dout, const float *inp, int N,
                          int C, int OC) {
    const decoder_cfg *c = &((const decoder_state *)m->impl)->cfg;
    rlhf_err err;
    if (model_linear_backward(m, w, b, c->conv1d, dinp, dout, inp, N, C, OC, &err) != RLHF_OK)
        for (size_t i = 0; i < (size_t)N * C; i++) dinp[i] = NAN;
}
void dec_norm_forward(const decoder_cfg *c, float *out, float *mean, float *rstd, const float *inp,
                         const float *w, const float *b, int N) {
    if (c->norm == DEC_NORM_LAYER)
        layernorm_forward(out, mean, rstd, inp, w, b, N, c->C, c->norm_eps);
    else if (c->norm_unit_offset)
        rmsnorm1p_forward(out, rstd, inp, w, N, c->C, c->norm_eps);
    else
        rmsnorm_forward(out, rstd, inp, w, N, c->C, c->norm_eps);
}
static void norm_backward(const decoder_cfg *c, float *dinp, float *dw, float *db, const float *dout,
                          const float *inp, const float *w, const float *mean, const float *rstd, int N) {
    if (c->norm == DEC_NORM_LAYER)
        layernorm_backward(dinp, dw, db, dout, inp, w, mean, rstd, N, c->C);
    else if (c->norm_unit_offset)
        rmsnorm1p_backward(dinp, dw, dout, inp, w, rstd, N, c->C);
    else
        rmsnorm_backward(dinp, dw, dout, inp, w, rstd, N, c->C);
}

int dec_qkv_width(const decoder_cfg *c) { return (c->NH + 2 * c->NKV) * c->HD; }

int dec_layer_window(const decoder_cfg *c, int l) {
    if (c->window <= 0 || l < c->window_from || (c->window_even && l % 2)) return 0;
    return c->window;
}

float dec_attn_scale(const decoder_cfg *c, int l) {
    float s = c->attn_scale > 0 ? c->attn_scale : c->scale_attn_weights ? 1.0f / sqrtf((float)c->HD) : 1.0f;
    if (c->scale_by_inverse_layer_idx) s /= (float)(l + 1);
    return s;
}

const rope_freqs *dec_rope(const decoder_cfg *c, const int32_t *pos, size_t n) {
    if (c->rope_long_from <= 0) return &c->rope;
    int32_t mx = 0;
    for (size_t i = 0; i < n; i++) mx = pos[i] > mx ? pos[i] : mx;
    return mx >= c->rope_long_from ? &c->rope_long : &c->rope;  // HF: max(position_ids) + 1 > original_max
}

void dec_gated_forward(const decoder_cfg *c, float *out, const float *gate, const float *up, int64_t n) {
    if (c->act == ACT_GELU_TANH)
        geglu_forward(out, gate, up, n);
    else
        swiglu_forward(out, gate, up, n);
}
static void gated_backward(const decoder_cfg *c, float *dgate, float *dup, const float *dout, const float *gate,
                           const float *up, int64_t n) {
    if (c->act == ACT_GELU_TANH)
        geglu_backward(dgate, dup, dout, gate, up, n);
    else
        swiglu_backward(dgate, dup, dout, gate, up, n);
}

// Fused gate_up output (N, 2I) <-> gate, up (N, I) each.
void dec_split_gate_up(float *gate, float *up, const float *gu, size_t N, int I) {
#pragma omp parallel for schedule(static) if (N * I > SPLIT_PARALLEL_MIN)
    for (size_t n = 0; n < N; n++) {
        memcpy(gate + n * I, gu + n * 2 * I, (size_t)I * sizeof(float));
        memcpy(up + n * I, gu + n * 2 * I + I, (size_t)I * sizeof(float));
    }
}
static void merge_gate_up(float *dgu, const float *dgate, const float *dup, size_t N, int I) {
#pragma omp parallel for schedule(static) if (N * I > SPLIT_PARALLEL_MIN)
    for (size_t n = 0; n < N; n++) {
        memcpy(dgu + n * 2 * I, dgate + n * I, (size_t)I * sizeof(float));
        memcpy(dgu + n * 2 * I + I, dup + n * I, (size_t)I * sizeof(float));
    }
}

// Column offset of (head h, feature d) of q (which = 0), k (1), v (2) inside the fused projection row.
static inline size_t fused_col(const decoder_cfg *c, int which, int h, int d) {
    if (c->qkv == DEC_QKV_GPT2) return (size_t)which * c->NH * c->HD + (size_t)h * c->HD + d;
    return (size_t)h * 3 * c->HD + (size_t)which * c->HD + d;  // NEOX: view (NH, 3*HD)
}

void dec_split_qkv(const decoder_cfg *c, float *q, float *k, float *v, const float *qkv, size_t N) {
    if (c->qkv == DEC_QKV_FUSED) {  // contiguous runs: [q | k | v]
        size_t QD = (size_t)c->NH * c->HD, KD = (size_t)c->NKV * c->HD, W = QD + 2 * KD;
#pragma omp parallel for schedule(static) if (N * W > SPLIT_PARALLEL_MIN)
        for (size_t n = 0; n < N; n++) {
            memcpy(q + n * QD, qkv + n * W, QD * sizeof(float));
            memcpy(k + n * KD, qkv + n * W + QD, KD * sizeof(float));
            memcpy(v + n * KD, qkv + n * W + QD + KD, KD * sizeof(float));
        }
        return;
    }
    int NH = c->NH, HD = c->HD;
    size_t W = (size_t)3 * NH * HD;
    // a decode step's few rows are copied faster than a parallel region forks
#pragma omp parallel for schedule(static) if (N * W > SPLIT_PARALLEL_MIN)
    for (size_t n = 0; n < N; n++)
        for (int h = 0; h < NH; h++)
            for (int d = 0; d < HD; d++) {
                size_t o = n * NH * HD + (size_t)h * HD + d;
                q[o] = qkv[n * W + fused_col(c, 0, h, d)];
                k[o] = qkv[n * W + fused_col(c, 1, h, d)];
                v[o] = qkv[n * W + fused_col(c, 2, h, d)];
            }
}
static void merge_qkv(const decoder_cfg *c, float *dqkv, const float *dq, const float *dk, const float *dv,
                      size_t N) {
    if (c->qkv == DEC_QKV_FUSED) {
        size_t QD = (size_t)c->NH * c->HD, KD = (size_t)c->NKV * c->HD, W = QD + 2 * KD;
#pragma omp parallel for schedule(static)
        for (size_t n = 0; n < N; n++) {
            memcpy(dqkv + n * W, dq + n * QD, QD * sizeof(float));
            memcpy(dqkv + n * W + QD, dk + n * KD, KD * sizeof(float));
            memcpy(dqkv + n * W + QD + KD, dv + n * KD, KD * sizeof(float));
        }
        return;
    }
    int NH = c->NH, HD = c->HD;
    size_t W = (size_t)3 * NH * HD;
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++)
        for (int h = 0; h < NH; h++)
            for (int d = 0; d < HD; d++) {
                size_t o = n * NH * HD + (size_t)h * HD + d;
                dqkv[n * W + fused_col(c, 0, h, d)] = dq[o];
                dqkv[n * W + fused_col(c, 1, h, d)] = dk[o];
                dqkv[n * W + fused_col(c, 2, h, d)] = dv[o];
            }
}

// ---- helpers for the family files ----------------------------------------------------------------

rlhf_status decoder_state_new(model *m, int L, rlhf_err *err) {
    decoder_state *st = calloc(1, sizeof *st);
    if (!st) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    st->cfg.layers = malloc((size_t)(L > 0 ? L : 1) * sizeof(dec_layer_offsets));
    if (!st->cfg.layers) {
        free(st);
        return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    }
    for (int l = 0; l < L; l++) {
        size_t *o = (size_t *)&st->cfg.layers[l];
        for (size_t i = 0; i < sizeof(dec_layer_offsets) / sizeof(size_t); i++) o[i] = DEC_NONE;
    }
    m->hidden_states = calloc((size_t)L + 1, sizeof(float *));  // freed by model_free
    if (!m->hidden_states) {
        free(st->cfg.layers);
        free(st);
        return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    }
    st->cfg.L = L;
    st->cfg.wte = st->cfg.wpe = st->cfg.lnf_w = st->cfg.lnf_b = st->cfg.head = DEC_NONE;
    st->cfg.padding_idx = -1;
    m->impl = st;
    return RLHF_OK;
}

rlhf_status decoder_add(model *m, size_t *off, const char *name, int ndim, int64_t d0, int64_t d1,
                        param_init init, int no_decay, int is_head, int padding_row, rlhf_err *err) {
    int64_t shape[4] = {d0, d1, 0, 0};
    RLHF_TRY(model_add_param(m, name, ndim, shape, init, no_decay, is_head, padding_row, err));
    *off = m->specs[m->n_specs - 1].offset;
    return RLHF_OK;
}

int decoder_num_labels(const cJSON *config) {
    const cJSON *id2label = cJSON_GetObjectItemCaseSensitive(config, "id2label");
    if (cJSON_IsObject(id2label)) {
        int n = cJSON_GetArraySize(id2label);
        if (n > 0) return n;
    }
    const cJSON *nl = cJSON_GetObjectItemCaseSensitive(config, "num_labels");
    if (cJSON_IsNumber(nl) && nl->valueint > 0) return nl->valueint;
    return 2;
}

rlhf_status decoder_cfg_int(const cJSON *config, const char *key, long long def, long long min, int *out,
                            rlhf_err *err) {
    long long v;
    RLHF_TRY(json_get_int(config, key, def, &v, "config.json", err));
    if (v < min || v > INT32_MAX)
        return rlhf_fail(err, RLHF_EINPUT, "config.json: field '%s' is %lld, expected an integer >= %lld", key, v, min);
    *out = (int)v;
    return RLHF_OK;
}

rlhf_status decoder_cfg_float(const cJSON *config, const char *key, double def, float *out, rlhf_err *err) {
    double v;
    RLHF_TRY(json_get_double(config, key, def, &v, "config.json", err));
    *out = (float)v;
    return RLHF_OK;
}

int decoder_token_id(const cJSON *config, const char *key, int def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(config, key);
    if (cJSON_IsArray(v)) v = cJSON_GetArrayItem(v, 0);
    if (cJSON_IsNumber(v)) return v->valueint;
    return def;
}

void decoder_fill_model_config(model *m, int bos_def, int eos_def) {
    const decoder_cfg *c = &((decoder_state *)m->impl)->cfg;
    model_config *mc = &m->cfg;
    mc->vocab_size = c->V;
    mc->hidden_size = c->C;
    mc->num_layers = c->L;
    mc->num_heads = c->NH;
    mc->max_positions = c->max_positions;
    mc->num_labels = decoder_num_labels(m->config_json);
    mc->pad_token_id = decoder_token_id(m->config_json, "pad_token_id", -1);
    mc->bos_token_id = decoder_token_id(m->config_json, "bos_token_id", bos_def);
    mc->eos_token_id = decoder_token_id(m->config_json, "eos_token_id", eos_def);
    mc->type_vocab_size = 0;
    mc->is_decoder = 1;
    m->backward_reads_out = m->head == HEAD_LM && c->final_softcap > 0;  // the soft-cap's backward reads it
}

void decoder_pool_index(int *pool, const int32_t *mask, int B, int T) {
    for (int b = 0; b < B; b++) {
        pool[b] = T - 1;
        if (!mask) continue;
        for (int t = T - 1; t >= 0; t--)
            if (mask[(size_t)b * T + t]) {
                pool[b] = t;
                break;
            }
    }
}

void decoder_destroy(model *m) {
    decoder_state *st = m->impl;
    if (!st) return;
    free(st->cfg.layers);
    arena_free(&st->bwd);
    arena_free(&st->dec);
    free(st);
    m->impl = NULL;
}

// ---- forward -------------------------------------------------------------------------------------

static dec_acts *layout_acts(model *m, int B, int T, int head_count, carver *cv) {
    const decoder_cfg *c = &((decoder_state *)m->impl)->cfg;
    size_t N = (size_t)B * T, C = c->C, QD = (size_t)c->NH * c->HD, KD = (size_t)c->NKV * c->HD;
    dec_acts *a = carve(cv, sizeof(dec_acts));
    dec_layer_acts *layers = carve(cv, sizeof(dec_layer_acts) * c->L);
    int32_t *ids = carve(cv, N * sizeof(int32_t)), *mask = carve(cv, N * sizeof(int32_t));
    int32_t *pos = carve(cv, N * sizeof(int32_t));
    // no_grad (scoring, frozen models): one block's activations, reused by every layer, and without
    // keep_hidden_states only two streams; --gradient_checkpointing: one block's activations (the stream kept)
    const int no_grad = m->no_grad != 0, checkpointing = m->gradient_checkpointing && !no_grad;
    const int pingpong = no_grad && !m->keep_hidden_states && c->L > 1;
    float *resid = carve_f(cv, (size_t)(pingpong ? 2 : c->L + 1) * N * C);
    dec_layer_acts tmp[1];
    // Training: a block's backward needs its inputs of the projections' weight gradients, but ln1, ln2 and
    // act are cheap functions of what is kept (the stream, res1, fc / up) and qkv is only split into q, k, v:
    // one buffer each for all layers (layer_refill recomputes them), 9 (N, C) per layer less for GPT-2.
    const int shared = !checkpointing && !no_grad && c->L > 1;
    for (int l = 0; l < c->L; l++) {
        if ((checkpointing || no_grad) && l > 0) {
            if (cv->a) layers[l] = layers[0];
            continue;
        }
        dec_layer_acts *la = cv->a ? &layers[l] : tmp;
        if (shared && l > 0) {
            if (cv->a) {
                la->ln1 = layers[0].ln1, la->qkv = layers[0].qkv;
                la->ln2 = layers[0].ln2, la->act = layers[0].act;
            }
        } else {
            la->ln1 = carve_f(cv, N * C);
            la->qkv = c->qkv == DEC_QKV_SEPARATE ? NULL : carve_f(cv, N * dec_qkv_width(c));
            la->ln2 = carve_f(cv, N * C);
            la->act = carve_f(cv, N * c->I);
        }
        la->ln1_mean = carve_f(cv, N);
        la->ln1_rstd = carve_f(cv, N);
        la->q = carve_f(cv, N * QD);
        la->k = carve_f(cv, N * KD);
        la->v = carve_f(cv, N * KD);
        la->probs = NULL;  // not kept: the backward recomputes the probabilities (nn/ops.h)
        la->atty = carve_f(cv, N * QD);
        la->res1 = c->parallel_residual ? NULL : carve_f(cv, N * C);
        la->ln2_mean = carve_f(cv, N);
        la->ln2_rstd = carve_f(cv, N);
        la->fc = carve_f(cv, N * c->I);
        la->up = c->mlp == DEC_MLP_GATED ? carve_f(cv, N * c->I) : NULL;
        int sandwich = c->layers[l].post_attn_w != DEC_NONE;
        la->attn_br = sandwich ? carve_f(cv, N * C) : NULL;
        la->attn_br_rstd = sandwich ? carve_f(cv, N) : NULL;
        la->mlp_br = sandwich ? carve_f(cv, N * C) : NULL;
        la->mlp_br_rstd = sandwich ? carve_f(cv, N) : NULL;
    }
    float *gu = c->fused_gate_up ? carve_f(cv, N * 2 * c->I) : NULL;
    float *last_hidden = carve_f(cv, N * C);
    float *lnf_mean = carve_f(cv, N), *lnf_rstd = carve_f(cv, N);
    float *attn_proj = carve_f(cv, N * C), *mlp_proj = carve_f(cv, N * C);
    int *pool = carve(cv, (size_t)B * sizeof(int));
    float *pooled = carve_f(cv, (size_t)B * C);
    const int lm_rows = m->head == HEAD_LM && head_count > 0;  // the LM head on some positions only
    float *head_in = lm_rows ? carve_f(cv, (size_t)B * head_count * C) : NULL;
    float *out = m->head == HEAD_LM ? carve_f(cv, (lm_rows ? (size_t)B * head_count : N) * c->V)
                                    : carve_f(cv, (size_t)B * m->cfg.num_labels);
    if (!cv->a) return NULL;
    a->head_count = lm_rows ? head_count : 0;
    a->head_in = head_in;
    a->B = B, a->T = T;
    a->checkpointing = checkpointing;
    a->no_grad = no_grad;
    a->pingpong = pingpong;
    a->shared = shared;
    a->layers = layers, a->ids = ids, a->mask = mask, a->pos = pos, a->resid = resid;
    a->lnf_mean = lnf_mean, a->lnf_rstd = lnf_rstd, a->attn_proj = attn_proj, a->mlp_proj = mlp_proj;
    a->pool = pool, a->pooled = pooled, a->gu = gu;
    m->last_hidden = last_hidden;
    m->out = out;
    for (int l = 0; l < c->L; l++) m->hidden_states[l] = pingpong ? NULL : resid + (size_t)l * N * C;
    m->hidden_states[c->L] = last_hidden;
    return a;
}

// The residual stream entering block l (l = L: the final norm's input).
static float *stream(const dec_acts *a, int l, size_t NC) {
    return a->resid + (size_t)(a->pingpong ? l % 2 : l) * NC;
}

static rlhf_status check_batch(const model *m, const model_batch *b, rlhf_err *err) {
    const decoder_cfg *c = &((decoder_state *)m->impl)->cfg;
    if (b->B <= 0 || b->T <= 0) return rlhf_fail(err, RLHF_ERUNTIME, "empty batch (B=%d, T=%d)", b->B, b->T);
    if (b->head_count < 0 || (b->head_count > 0 && (b->head_from < 0 || b->head_from + b->head_count > b->T)))
        return rlhf_fail(err, RLHF_ERUNTIME, "LM head positions [%d, %d) outside the batch's %d", b->head_from,
                         b->head_from + b->head_count, b->T);
    size_t N = (size_t)b->B * b->T;
    for (size_t i = 0; i < N; i++)
        if (b->input_ids[i] < 0 || b->input_ids[i] >= c->V)
            return rlhf_fail(err, RLHF_EINPUT, "token id %d at row %zu position %zu is outside the vocabulary [0, %d)",
                             b->input_ids[i], i / b->T, i % b->T, c->V);
    if (c->max_positions > 0) {
        if (!b->position_ids && b->T > c->max_positions)
            return rlhf_fail(err, RLHF_EINPUT, "sequence length %d exceeds the model's %d positions (n_positions)",
                             b->T, c->max_positions);
        if (b->position_ids)
            for (size_t i = 0; i < N; i++)
                if (b->position_ids[i] < 0 || b->position_ids[i] >= c->max_positions)
                    return rlhf_fail(err, RLHF_EINPUT, "position id %d outside [0, %d) (n_positions)",
                                     b->position_ids[i], c->max_positions);
    }
    return RLHF_OK;
}

static attention_shape attn_shape(const decoder_cfg *c, int B, int T, int l, int training, uint64_t key) {
    attention_shape s;
    memset(&s, 0, sizeof s);
    s.B = B, s.T = T, s.NH = c->NH, s.NKV = c->NKV, s.HD = c->HD;
    s.causal = 1;
    s.window = dec_layer_window(c, l);
    s.scale = dec_attn_scale(c, l);
    s.softcap = c->attn_softcap;
    s.dropout_p = training ? c->attn_pdrop : 0.0f;
    s.dropout_key = drop_key(key, l, SITE_ATTN_PROBS);
    return s;
}

// Block l of the stream: a->resid[l] -> a->resid[l + 1], its activations in a->layers[l]. The backward
// of a checkpointing forward calls it again to refill them (same inputs, same dropout keys: same values).
static void layer_forward(model *m, dec_acts *a, int l) {
    const decoder_cfg *c = &((decoder_state *)m->impl)->cfg;
    int B = a->B, T = a->T, C = c->C, QD = c->NH * c->HD, KD = c->NKV * c->HD;
    size_t N = (size_t)B * T;
    int drop = a->training;
    const rope_freqs *rope = dec_rope(c, a->pos, N);
    const dec_layer_offsets *o = &c->layers[l];
    dec_layer_acts *la = &a->layers[l];
    float *xin = stream(a, l, N * C), *xout = stream(a, l + 1, N * C);
    // attention
    dec_norm_forward(c, la->ln1, la->ln1_mean, la->ln1_rstd, xin, P(m, o->ln1_w), P(m, o->ln1_b), (int)N);
    if (c->qkv == DEC_QKV_SEPARATE) {
        dec_proj_forward(m, la->q, la->ln1, o->q_w, o->q_b, (int)N, C, QD);
        dec_proj_forward(m, la->k, la->ln1, o->k_w, o->k_b, (int)N, C, KD);
        dec_proj_forward(m, la->v, la->ln1, o->v_w, o->v_b, (int)N, C, KD);
    } else {
        dec_proj_forward(m, la->qkv, la->ln1, o->qkv_w, o->qkv_b, (int)N, C, dec_qkv_width(c));
        dec_split_qkv(c, la->q, la->k, la->v, la->qkv, N);
    }
    if (c->rot_dim > 0) {
        rope_forward_freqs(la->q, a->pos, B, T, c->NH, c->HD, c->rot_dim, rope, ROPE_HALF);
        rope_forward_freqs(la->k, a->pos, B, T, c->NKV, c->HD, c->rot_dim, rope, ROPE_HALF);
    }
    attention_shape s = attn_shape(c, B, T, l, drop, a->dropout_key);
    s.row_pos = a->drop_pos, s.T_global = a->drop_T;
    attention_forward(la->atty, la->probs, la->q, la->k, la->v, a->mask, &s);
    if (la->attn_br) {  // Gemma 2: the branch output is normed before the residual
        dec_proj_forward(m, la->attn_br, la->atty, o->o_w, o->o_b, (int)N, QD, C);
        dec_norm_forward(c, a->attn_proj, NULL, la->attn_br_rstd, la->attn_br, P(m, o->post_attn_w), NULL, (int)N);
    } else {
        dec_proj_forward(m, a->attn_proj, la->atty, o->o_w, o->o_b, (int)N, QD, C);
    }
    if (drop && c->resid_pdrop > 0)
        drop_rows(a, C, a->attn_proj, c->resid_pdrop, drop_key(a->dropout_key, l + 1, SITE_ATTN_OUT));
    const float *mlp_in = xin;
    if (!c->parallel_residual) {
        add_forward(la->res1, xin, a->attn_proj, (int64_t)N * C);
        mlp_in = la->res1;
    }
    // MLP
    dec_norm_forward(c, la->ln2, la->ln2_mean, la->ln2_rstd, mlp_in, P(m, o->ln2_w), P(m, o->ln2_b), (int)N);
    if (c->mlp == DEC_MLP_GATED) {
        if (c->fused_gate_up) {
            dec_proj_forward(m, a->gu, la->ln2, o->fc_w, o->fc_b, (int)N, C, 2 * c->I);
            dec_split_gate_up(la->fc, la->up, a->gu, N, c->I);
        } else {
            dec_proj_forward(m, la->fc, la->ln2, o->fc_w, o->fc_b, (int)N, C, c->I);
            dec_proj_forward(m, la->up, la->ln2, o->up_w, o->up_b, (int)N, C, c->I);
        }
        dec_gated_forward(c, la->act, la->fc, la->up, (int64_t)N * c->I);
    } else {
        dec_proj_forward(m, la->fc, la->ln2, o->fc_w, o->fc_b, (int)N, C, c->I);
        activation_forward(c->act, la->act, la->fc, (int64_t)N * c->I);
    }
    if (la->mlp_br) {
        dec_proj_forward(m, la->mlp_br, la->act, o->down_w, o->down_b, (int)N, c->I, C);
        dec_norm_forward(c, a->mlp_proj, NULL, la->mlp_br_rstd, la->mlp_br, P(m, o->post_mlp_w), NULL, (int)N);
    } else {
        dec_proj_forward(m, a->mlp_proj, la->act, o->down_w, o->down_b, (int)N, c->I, C);
    }
    if (drop && c->resid_pdrop > 0)
        drop_rows(a, C, a->mlp_proj, c->resid_pdrop, drop_key(a->dropout_key, l + 1, SITE_MLP_OUT));
    if (c->parallel_residual) {
        add_forward(xout, xin, a->attn_proj, (int64_t)N * C);
        add_forward(xout, xout, a->mlp_proj, (int64_t)N * C);
    } else {
        add_forward(xout, la->res1, a->mlp_proj, (int64_t)N * C);
    }
}

// Shared buffers (a->shared): ln1, ln2 and act of block l recomputed from what the forward kept (its input
// stream, res1, fc / up) by the forward's own kernels, so they hold the forward's values bit for bit.
static void layer_refill(model *m, dec_acts *a, int l) {
    const decoder_cfg *c = &((decoder_state *)m->impl)->cfg;
    size_t N = (size_t)a->B * a->T;
    const dec_layer_offsets *o = &c->layers[l];
    dec_layer_acts *la = &a->layers[l];
    const float *xin = stream(a, l, N * c->C);
    dec_norm_forward(c, la->ln1, la->ln1_mean, la->ln1_rstd, xin, P(m, o->ln1_w), P(m, o->ln1_b), (int)N);
    dec_norm_forward(c, la->ln2, la->ln2_mean, la->ln2_rstd, c->parallel_residual ? xin : la->res1, P(m, o->ln2_w),
                     P(m, o->ln2_b), (int)N);
    if (c->mlp == DEC_MLP_GATED)
        dec_gated_forward(c, la->act, la->fc, la->up, (int64_t)N * c->I);
    else
        activation_forward(c->act, la->act, la->fc, (int64_t)N * c->I);
}

rlhf_status decoder_forward(model *m, const model_batch *b, rlhf_err *err) {
    decoder_state *st = m->impl;
    const decoder_cfg *c = &st->cfg;
    RLHF_TRY(check_batch(m, b, err));
    int B = b->B, T = b->T, C = c->C;
    size_t N = (size_t)B * T;

    carver count = {NULL, 0};
    layout_acts(m, B, T, b->head_count, &count);
    RLHF_TRY(arena_reserve(&m->acts, count.need, err));
    arena_reset(&m->acts);
    carver cv = {&m->acts, 0};
    dec_acts *a = layout_acts(m, B, T, b->head_count, &cv);
    if (!a) return rlhf_fail(err, RLHF_ERUNTIME, "activation arena too small");
    st->saved = a, st->B = B, st->T = T;
    a->training = b->training;
    a->dropout_key = b->dropout_key;
    a->head_from = a->head_count ? b->head_from : 0;
    a->drop_pos = b->dropout_pos;
    a->drop_T = b->dropout_pos ? b->dropout_T : T;
    if (a->drop_T < T) return rlhf_fail(err, RLHF_ERUNTIME, "decoder: dropout_T %d < T %d", a->drop_T, T);
    memcpy(a->ids, b->input_ids, N * sizeof(int32_t));
    if (b->attention_mask)
        memcpy(a->mask, b->attention_mask, N * sizeof(int32_t));
    else
        a->mask = NULL;
    for (size_t i = 0; i < N; i++) a->pos[i] = b->position_ids ? b->position_ids[i] : (int32_t)(i % T);
    int drop = b->training;

    // embeddings: wte[ids] (+ wpe[pos]) (Gemma: * sqrt(hidden)) then embedding dropout
    float *x = a->resid;
    model_embedding_forward(m, c->wte, x, a->ids, (int)N, C);  // fp32, or bf16 rows of a frozen model
    if (c->wpe != DEC_NONE) {
        float *pe = a->attn_proj;  // scratch
        embedding_forward(pe, a->pos, P(m, c->wpe), (int)N, C);
        add_forward(x, x, pe, (int64_t)N * C);
    }
    if (c->embed_scale > 0)
        for (size_t i = 0; i < N * C; i++) x[i] *= c->embed_scale;
    if (drop && c->embd_pdrop > 0) drop_rows(a, C, x, c->embd_pdrop, drop_key(b->dropout_key, 0, SITE_EMBD));

    for (int l = 0; l < c->L; l++) layer_forward(m, a, l);
    dec_norm_forward(c, m->last_hidden, a->lnf_mean, a->lnf_rstd, stream(a, c->L, N * C), P(m, c->lnf_w),
                 P(m, c->lnf_b), (int)N);

    if (m->head == HEAD_LM) {
        const float *hin = m->last_hidden;
        size_t rows = N;
        if (a->head_count) {  // the head's rows gathered: (B, head_count, C)
            for (int r = 0; r < B; r++)
                memcpy(a->head_in + (size_t)r * a->head_count * C, m->last_hidden + ((size_t)r * T + a->head_from) * C,
                       (size_t)a->head_count * C * sizeof(float));
            hin = a->head_in;
            rows = (size_t)B * a->head_count;
        }
        RLHF_TRY(model_linear_forward(m, c->head, DEC_NONE, 0, m->out, hin, (int)rows, C, c->V, err));  // bf16 too
        if (c->final_softcap > 0) softcap_forward(m->out, m->out, c->final_softcap, (int64_t)rows * c->V);
    } else {
        decoder_pool_index(a->pool, a->mask, B, T);
        for (int r = 0; r < B; r++)
            memcpy(a->pooled + (size_t)r * C, m->last_hidden + ((size_t)r * T + a->pool[r]) * C, C * sizeof(float));
        linear_forward(m->out, a->pooled, P(m, c->head), NULL, B, C, m->cfg.num_labels);
    }
    return RLHF_OK;
}

// ---- backward ------------------------------------------------------------------------------------

// d(branch output) from d(stream): through the residual dropout when it was on.
static const float *branch_grad(const dec_acts *a, int C, float *scratch, const float *dstream, int on, float p,
                                uint64_t key) {
    if (!on || p <= 0) return dstream;
    memset(scratch, 0, (size_t)a->B * a->T * C * sizeof(float));
    dropout_rows_backward(scratch, dstream, p, key, a->drop_pos, a->B, a->T, a->drop_T, C);
    return scratch;
}

// Rows of LM logits per chunk of the final soft-cap's backward (its scratch is chunk x vocab).
#define SOFTCAP_ROWS 64

rlhf_status decoder_backward(model *m, const float *dout, const float *dhidden, rlhf_err *err) {
    decoder_state *st = m->impl;
    const decoder_cfg *c = &st->cfg;
    dec_acts *a = st->saved;
    if (!a) return rlhf_fail(err, RLHF_ERUNTIME, "backward without a forward");
    if (a->no_grad)
        return rlhf_fail(err, RLHF_ERUNTIME, "%s: backward after a no_grad forward (clear model.no_grad to train)",
                         m->cfg.model_type);
    if (!m->grads && !peft_active(m)) return rlhf_fail(err, RLHF_ERUNTIME, "backward before model_alloc_grads");
    int B = a->B, T = a->T, C = c->C, QD = c->NH * c->HD, KD = c->NKV * c->HD, I = c->I;
    size_t N = (size_t)B * T, NC = N * C;
    int drop = a->training;
    const rope_freqs *rope = dec_rope(c, a->pos, N);

    size_t big = (size_t)I, W = (size_t)dec_qkv_width(c);
    if (W > big) big = W;
    if (c->fused_gate_up && (size_t)2 * I > big) big = (size_t)2 * I;
    int capped = m->head == HEAD_LM && c->final_softcap > 0 && dout;
    // LM head rows: every position, or head_count of every row (their gradient gathered in dhead, then
    // scattered into dlh)
    const size_t NO = a->head_count ? (size_t)B * a->head_count : N;
    const float *hin = a->head_count ? a->head_in : m->last_hidden;
    size_t cap_rows = NO < SOFTCAP_ROWS ? NO : SOFTCAP_ROWS;
    size_t need = 0;
    int gated = c->mlp == DEC_MLP_GATED, sandwich = 0;
    for (int l = 0; l < c->L; l++) sandwich |= c->layers[l].post_attn_w != DEC_NONE;
    size_t n_up = gated ? N * I : 1, n_br = sandwich ? NC : 1;  // dup: gated MLPs only; dbr: sandwich norms only
    size_t sizes[] = {NC, NC, NC, NC, NC, NC, N * big, N * I, n_up, N * QD, N * KD, N * KD, N * QD, (size_t)B * C,
                      n_br, capped ? cap_rows * c->V : 1};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) need += round_up64(sizes[i] * sizeof(float));
    RLHF_TRY(arena_reserve(&st->bwd, need, err));
    arena_reset(&st->bwd);
    float *dlh = arena_floats(&st->bwd, NC), *dx = arena_floats(&st->bwd, NC), *dxin = arena_floats(&st->bwd, NC);
    float *dres1 = arena_floats(&st->bwd, NC), *dln = arena_floats(&st->bwd, NC), *dtmp = arena_floats(&st->bwd, NC);
    float *dbig = arena_floats(&st->bwd, N * big), *dfc = arena_floats(&st->bwd, N * I);
    float *dup = arena_floats(&st->bwd, n_up), *dq = arena_floats(&st->bwd, N * QD);
    float *dk = arena_floats(&st->bwd, N * KD), *dv = arena_floats(&st->bwd, N * KD);
    float *datty = arena_floats(&st->bwd, N * QD), *dpooled = arena_floats(&st->bwd, (size_t)B * C);
    float *dbr = arena_floats(&st->bwd, n_br), *dcap = arena_floats(&st->bwd, capped ? cap_rows * c->V : 1);

    memset(dlh, 0, NC * sizeof(float));
    if (dout) {
        float *dhead = a->head_count ? dtmp : dlh;  // dtmp is free until the layers' backward
        if (a->head_count) memset(dhead, 0, NO * C * sizeof(float));
        if (m->head == HEAD_LM && capped) {  // through the final soft-cap, a chunk of rows at a time
            for (size_t r0 = 0; r0 < NO; r0 += cap_rows) {
                size_t rows = NO - r0 < cap_rows ? NO - r0 : cap_rows, off = r0 * c->V;
                memset(dcap, 0, rows * c->V * sizeof(float));
                softcap_backward(dcap, dout + off, m->out + off, c->final_softcap, (int64_t)(rows * c->V));
                linear_backward(dhead + r0 * C, G(m, c->head), NULL, dcap, hin + r0 * C, P(m, c->head),
                                (int)rows, C, c->V);
            }
        } else if (m->head == HEAD_LM) {
            linear_backward(dhead, G(m, c->head), NULL, dout, hin, P(m, c->head), (int)NO, C, c->V);
        } else {
            memset(dpooled, 0, (size_t)B * C * sizeof(float));
            linear_backward(dpooled, G(m, c->head), NULL, dout, a->pooled, P(m, c->head), B, C, m->cfg.num_labels);
            for (int r = 0; r < B; r++) {
                float *d = dlh + ((size_t)r * T + a->pool[r]) * C;
                for (int i = 0; i < C; i++) d[i] += dpooled[(size_t)r * C + i];
            }
        }
        if (m->head == HEAD_LM && a->head_count)
            for (int r = 0; r < B; r++)
                memcpy(dlh + ((size_t)r * T + a->head_from) * C, dhead + (size_t)r * a->head_count * C,
                       (size_t)a->head_count * C * sizeof(float));
    }
    if (dhidden)
        for (size_t i = 0; i < NC; i++) dlh[i] += dhidden[i];
    memset(dx, 0, NC * sizeof(float));
    norm_backward(c, dx, G(m, c->lnf_w), G(m, c->lnf_b), dlh, a->resid + (size_t)c->L * NC, P(m, c->lnf_w),
                  a->lnf_mean, a->lnf_rstd, (int)N);

    for (int l = c->L - 1; l >= 0; l--) {
        const dec_layer_offsets *o = &c->layers[l];
        dec_layer_acts *la = &a->layers[l];
        const float *xin = a->resid + (size_t)l * NC;
        // checkpointing: refill the shared buffers with this block's activations (the last block's are
        // still there from the forward)
        if (a->checkpointing && l < c->L - 1) layer_forward(m, a, l);
        if (a->shared && l < c->L - 1) layer_refill(m, a, l);  // the last block's are still there
        // dx: gradient of this block's output. MLP branch first.
        const float *dmlp = branch_grad(a, C, dtmp, dx, drop, c->resid_pdrop,
                                         drop_key(a->dropout_key, l + 1, SITE_MLP_OUT));
        if (la->mlp_br) {  // through the post-MLP norm
            memset(dbr, 0, NC * sizeof(float));
            norm_backward(c, dbr, G(m, o->post_mlp_w), NULL, dmlp, la->mlp_br, P(m, o->post_mlp_w), NULL,
                          la->mlp_br_rstd, (int)N);
            dmlp = dbr;
        }
        float *dact = dbig;
        memset(dact, 0, N * I * sizeof(float));
        proj_backward(m, dact, o->down_w, o->down_b, dmlp, la->act, (int)N, I, C);
        memset(dln, 0, NC * sizeof(float));
        memset(dfc, 0, N * I * sizeof(float));
        if (c->mlp == DEC_MLP_GATED) {
            memset(dup, 0, N * I * sizeof(float));
            gated_backward(c, dfc, dup, dact, la->fc, la->up, (int64_t)N * I);
            if (c->fused_gate_up) {  // dact (in dbig) is spent: dbig takes [dgate | dup]
                merge_gate_up(dbig, dfc, dup, N, I);
                proj_backward(m, dln, o->fc_w, o->fc_b, dbig, la->ln2, (int)N, C, 2 * I);
            } else {
                proj_backward(m, dln, o->fc_w, o->fc_b, dfc, la->ln2, (int)N, C, I);
                proj_backward(m, dln, o->up_w, o->up_b, dup, la->ln2, (int)N, C, I);
            }
        } else {
            activation_backward(c->act, dfc, dact, la->fc, la->act, (int64_t)N * I);
            proj_backward(m, dln, o->fc_w, o->fc_b, dfc, la->ln2, (int)N, C, I);
        }
        const float *dattn_stream;  // gradient of the stream the attention branch was added to
        memcpy(dxin, dx, NC * sizeof(float));
        if (c->parallel_residual) {
            norm_backward(c, dxin, G(m, o->ln2_w), G(m, o->ln2_b), dln, xin, P(m, o->ln2_w), la->ln2_mean,
                          la->ln2_rstd, (int)N);
            dattn_stream = dx;
        } else {
            memcpy(dres1, dx, NC * sizeof(float));
            norm_backward(c, dres1, G(m, o->ln2_w), G(m, o->ln2_b), dln, la->res1, P(m, o->ln2_w), la->ln2_mean,
                          la->ln2_rstd, (int)N);
            memcpy(dxin, dres1, NC * sizeof(float));
            dattn_stream = dres1;
        }
        // attention branch
        const float *dattn = branch_grad(a, C, dtmp, dattn_stream, drop, c->resid_pdrop,
                                         drop_key(a->dropout_key, l + 1, SITE_ATTN_OUT));
        if (la->attn_br) {  // through the post-attention norm
            memset(dbr, 0, NC * sizeof(float));
            norm_backward(c, dbr, G(m, o->post_attn_w), NULL, dattn, la->attn_br, P(m, o->post_attn_w), NULL,
                          la->attn_br_rstd, (int)N);
            dattn = dbr;
        }
        memset(datty, 0, N * QD * sizeof(float));
        proj_backward(m, datty, o->o_w, o->o_b, dattn, la->atty, (int)N, QD, C);
        memset(dq, 0, N * QD * sizeof(float));
        memset(dk, 0, N * KD * sizeof(float));
        memset(dv, 0, N * KD * sizeof(float));
        attention_shape s = attn_shape(c, B, T, l, drop, a->dropout_key);
        s.row_pos = a->drop_pos, s.T_global = a->drop_T;
        attention_backward_recompute(dq, dk, dv, datty, la->probs, la->q, la->k, la->v, a->mask, &s);
        if (c->rot_dim > 0) {
            rope_backward_freqs(dq, a->pos, B, T, c->NH, c->HD, c->rot_dim, rope, ROPE_HALF);
            rope_backward_freqs(dk, a->pos, B, T, c->NKV, c->HD, c->rot_dim, rope, ROPE_HALF);
        }
        memset(dln, 0, NC * sizeof(float));
        if (c->qkv == DEC_QKV_SEPARATE) {
            proj_backward(m, dln, o->q_w, o->q_b, dq, la->ln1, (int)N, C, QD);
            proj_backward(m, dln, o->k_w, o->k_b, dk, la->ln1, (int)N, C, KD);
            proj_backward(m, dln, o->v_w, o->v_b, dv, la->ln1, (int)N, C, KD);
        } else {
            merge_qkv(c, dbig, dq, dk, dv, N);
            proj_backward(m, dln, o->qkv_w, o->qkv_b, dbig, la->ln1, (int)N, C, (int)W);
        }
        norm_backward(c, dxin, G(m, o->ln1_w), G(m, o->ln1_b), dln, xin, P(m, o->ln1_w), la->ln1_mean, la->ln1_rstd,
                      (int)N);
        float *t = dx;
        dx = dxin;
        dxin = t;
    }
    const float *demb = branch_grad(a, C, dtmp, dx, drop, c->embd_pdrop, drop_key(a->dropout_key, 0, SITE_EMBD));
    if (c->embed_scale > 0) {  // Gemma: d(table row) = d(scaled embedding) * sqrt(hidden)
        for (size_t i = 0; i < NC; i++) dtmp[i] = demb[i] * c->embed_scale;
        demb = dtmp;
    }
    if (G(m, c->wte)) embedding_backward(G(m, c->wte), demb, a->ids, (int)N, C, c->padding_idx);
    if (G(m, c->wpe)) embedding_backward(G(m, c->wpe), demb, a->pos, (int)N, C, -1);
    return RLHF_OK;
}
