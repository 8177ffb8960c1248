// LoRA / QLoRA on any model family (see peft.h for the memory design): the linear-layer table read
// from the spec table, target matching, the rebuilt parameter buffer, the forward/backward dispatch,
// and merge-and-unload. Files (adapter_config.json, adapter_model.safetensors) are peft_io.c's.
#include "models/peft.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "base/rng.h"
#include "models/peft_internal.h"
#include "nn/linear_bf16.h"
#include "nn/ops.h"

// Dropout site of the adapters inside the batch's dropout key (the families use small site ids).
#define LORA_DROPOUT_SITE 0x4c6f5241u  // "LoRA"
// Floats per alignment unit of a tensor start in the flat buffer (64 bytes, as model_add_param).
#define ALIGN_FLOATS 16

static size_t align_floats(size_t n) { return (n + ALIGN_FLOATS - 1) & ~(size_t)(ALIGN_FLOATS - 1); }

void peft_options_default(peft_options *o) {
    memset(o, 0, sizeof *o);
    o->lora.r = PEFT_DEFAULT_R;
    o->lora.alpha = PEFT_DEFAULT_ALPHA;
    o->lora.dropout = PEFT_DEFAULT_DROPOUT;
    snprintf(o->target_modules, sizeof o->target_modules, "%s", PEFT_ALL_LINEAR);
    o->quant_type = NF4_QUANT_NF4;
    o->compute = NF4_COMPUTE_F32;
}

rlhf_status peft_options_check(const peft_options *o, rlhf_err *err) {
    if (o->lora.r < 1) return rlhf_fail(err, RLHF_EINPUT, "--lora_r %d: expected a rank >= 1", o->lora.r);
    if (!(o->lora.alpha > 0)) return rlhf_fail(err, RLHF_EINPUT, "--lora_alpha %g: expected > 0", o->lora.alpha);
    if (!(o->lora.dropout >= 0 && o->lora.dropout < 1))
        return rlhf_fail(err, RLHF_EINPUT, "--lora_dropout %g: expected a probability in [0, 1)", o->lora.dropout);
    if (!o->target_modules[0])
        return rlhf_fail(err, RLHF_EINPUT, "--lora_target_modules is empty (use all-linear or e.g. q_proj,v_proj)");
    return RLHF_OK;
}

int peft_active(const model *m) { return m->peft != NULL; }

// ---- the linear-layer table --------------------------------------------------------------------

// Modules of the families that are 2-D "X.weight" tensors but embeddings, not Linear / Conv1D.
static const char *const EMBEDDING_MODULES[] = {"word_embeddings", "position_embeddings", "token_type_embeddings",
                                                 "rel_embeddings", "wte", "wpe", "embed_in", "embed_tokens", NULL};
// Families whose linear layers are transformers' Conv1D (weight (in, out)).
static int family_uses_conv1d(const model *m) { return !strcmp(m->cfg.model_type, "gpt2"); }

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

// module name of a "X.weight" linear weight spec (into buf), or 0 when the spec is not one.
static int linear_module(const param_spec *p, char *buf, size_t n) {
    if (p->ndim != 2 || !ends_with(p->name, ".weight")) return 0;
    size_t len = strlen(p->name) - strlen(".weight");
    snprintf(buf, n, "%.*s", (int)len, p->name);
    const char *last = strrchr(buf, '.');
    last = last ? last + 1 : buf;
    for (const char *const *e = EMBEDDING_MODULES; *e; e++)
        if (!strcmp(last, *e)) return 0;
    return 1;
}

// peft's _check_target_module_exists for a list: the full name, or a suffix after a dot.
static int target_matches(const char *module, const char *target) {
    size_t n = strlen(module), k = strlen(target);
    if (!strcmp(module, target)) return 1;
    return n > k && module[n - k - 1] == '.' && !strcmp(module + n - k, target);
}

// Marks slots named by the comma-separated list; a name matching nothing is an error.
static rlhf_status mark_targets(model_peft *p, const char *list, rlhf_err *err) {
    if (!strcmp(list, PEFT_ALL_LINEAR)) {
        for (int i = 0; i < p->n_slots; i++) p->slots[i].adapted = !p->slots[i].is_head;
        return RLHF_OK;
    }
    char buf[PEFT_TARGETS_MAX];
    snprintf(buf, sizeof buf, "%s", list);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ') t++;
        int hit = 0;
        for (int i = 0; i < p->n_slots; i++)
            if (!p->slots[i].is_head && target_matches(p->slots[i].module, t)) hit = p->slots[i].adapted = 1;
        if (!hit)
            return rlhf_fail(err, RLHF_EINPUT,
                             "--lora_target_modules: '%s' names no linear layer of %s (e.g. '%s'; or all-linear)", t,
                             p->arch, p->n_slots ? p->slots[0].module : "none");
    }
    return RLHF_OK;
}

static rlhf_status build_slots(model *m, model_peft *p, rlhf_err *err) {
    p->slots = calloc((size_t)m->n_specs + 1, sizeof *p->slots);
    if (!p->slots) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory (peft layer table)");
    const int conv1d = family_uses_conv1d(m);
    for (int i = 0; i < m->n_specs; i++) {
        const param_spec *s = &m->specs[i];
        peft_slot *sl = &p->slots[p->n_slots];
        if (!linear_module(s, sl->module, sizeof sl->module)) continue;
        sl->w = s->offset;
        sl->b = MODEL_NO_PARAM;
        char bias[MODEL_NAME_MAX + 8];
        snprintf(bias, sizeof bias, "%s.bias", sl->module);
        const param_spec *bs = model_find_param(m, bias);
        if (bs) sl->b = bs->offset;
        sl->conv1d = conv1d && !s->is_head;  // GPT-2's lm_head / score are nn.Linear
        sl->C = (int)(sl->conv1d ? s->shape[0] : s->shape[1]);
        sl->OC = (int)(sl->conv1d ? s->shape[1] : s->shape[0]);
        sl->is_head = s->is_head;
        p->n_slots++;
    }
    return RLHF_OK;
}

// The slot of the layer whose weight is at offset w; NULL for output layers (trained fully or
// frozen dense, handled as a plain linear) and for unknown offsets.
static const peft_slot *find_slot(const model_peft *p, size_t w) {
    int lo = 0, hi = p->n_slots - 1;  // slots are in offset order (spec order)
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (p->slots[mid].w == w) return p->slots[mid].is_head ? NULL : &p->slots[mid];
        if (p->slots[mid].w < w)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return NULL;
}

// ---- the trainable view -------------------------------------------------------------------------

static rlhf_status add_view_spec(model_peft *p, const char *name, int ndim, const int64_t *shape, size_t offset,
                                 int no_decay, rlhf_err *err) {
    param_spec *v = realloc(p->view_specs, (size_t)(p->n_view + 1) * sizeof *v);
    if (!v) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory (peft parameter table)");
    p->view_specs = v;
    param_spec *s = &v[p->n_view++];
    memset(s, 0, sizeof *s);
    if (snprintf(s->name, sizeof s->name, "%s", name) >= (int)sizeof s->name)
        return rlhf_fail(err, RLHF_ERUNTIME, "adapter tensor name too long: '%s'", name);
    s->ndim = ndim;
    s->numel = 1;
    for (int d = 0; d < ndim; d++) s->numel *= (size_t)(s->shape[d] = shape[d]);
    s->offset = offset;
    s->no_decay = (uint8_t)no_decay;
    s->padding_row = -1;
    return RLHF_OK;
}

// Builds the view table: trained heads (SEQ_CLS modules_to_save) then every adapter's A and B.
static rlhf_status build_view(model *m, model_peft *p, rlhf_err *err) {
    int first_head = m->n_specs;
    for (int i = 0; i < m->n_specs; i++)
        if (m->specs[i].is_head) {
            first_head = i;
            break;
        }
    for (int i = first_head; i < m->n_specs; i++)
        if (!m->specs[i].is_head)
            return rlhf_fail(err, RLHF_ERUNTIME, "%s: head tensors are not the tail of the parameter table ('%s')",
                             p->arch, m->specs[i].name);
    p->train_heads = m->head == HEAD_SEQCLS && first_head < m->n_specs;
    p->train_start = p->train_heads ? m->specs[first_head].offset : align_floats(m->n_params);
    char name[MODEL_NAME_MAX * 2];
    if (p->train_heads)
        for (int i = first_head; i < m->n_specs; i++) {
            const param_spec *s = &m->specs[i];
            snprintf(name, sizeof name, "%s%s", PEFT_SAVED_PREFIX, s->name);
            RLHF_TRY(add_view_spec(p, name, s->ndim, s->shape, s->offset - p->train_start, s->no_decay, err));
        }
    size_t next = align_floats(m->n_params);
    for (int i = 0; i < p->n_slots; i++) {
        peft_slot *s = &p->slots[i];
        if (!s->adapted) continue;
        const int r = p->o.lora.r;
        int64_t a_shape[2] = {r, s->C}, b_shape[2] = {s->OC, r};
        s->A = next;
        next = align_floats(next + (size_t)r * s->C);
        s->B = next;
        next = align_floats(next + (size_t)s->OC * r);
        snprintf(name, sizeof name, "%s%s.lora_A.weight", PEFT_SAVED_PREFIX, s->module);
        RLHF_TRY(add_view_spec(p, name, 2, a_shape, s->A - p->train_start, 0, err));
        snprintf(name, sizeof name, "%s%s.lora_B.weight", PEFT_SAVED_PREFIX, s->module);
        RLHF_TRY(add_view_spec(p, name, 2, b_shape, s->B - p->train_start, 0, err));
        p->n_adapted++;
    }
    p->total = next;
    p->train_n = next - p->train_start;
    return RLHF_OK;
}

// FNV-1a of the module name: each adapter's initial A depends only on (seed, module).
static uint64_t module_hash(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

// W (OC, C) from a Conv1D weight (C, OC).
static void transpose(float *dst, const float *src, int rows, int cols) {
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) dst[(size_t)j * rows + i] = src[(size_t)i * cols + j];
}

static rlhf_status quantize_slot(model_peft *p, peft_slot *s, const float *w, rlhf_err *err) {
    const int64_t n = (int64_t)s->OC * s->C;
    float *tmp = NULL;
    if (s->conv1d) {  // quantized matmuls take nn.Linear layout
        tmp = malloc(sizeof(float) * (size_t)n);
        if (!tmp) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory quantizing '%s'", s->module);
        transpose(tmp, w, s->C, s->OC);
        w = tmp;
    }
    rlhf_status st = nf4_quantize(&s->q, w, n, p->o.quant_type, p->o.double_quant, s->module, err);
    free(tmp);
    if (st == RLHF_OK) s->quantized = 1;
    return st;
}

// The slot whose weight sits at offset off when it is (to be) stored 4-bit, else NULL.
static peft_slot *quantized_slot(const model_peft *p, size_t off) {
    const peft_slot *s = find_slot(p, off);
    return s && s->quantize ? (peft_slot *)s : NULL;
}

static void release(model_peft *p) {
    for (int i = 0; i < p->n_slots; i++)
        if (p->slots[i].quantized) nf4_free(&p->slots[i].q);
    for (int i = 0; i < p->n_bf; i++) free(p->bf[i].data);
    free(p->bf);
    free(p->bf_scratch);
    if (p->map) munmap(p->map, p->map_bytes ? p->map_bytes : 1);
    free(p->slots);
    free(p->view_specs);
    rlhf_free(p->grads);
    free(p);
}

// Plans the layers (targets, quantization, the trainable view), maps the new parameter buffer and
// initialises the adapters in it; the backbone values are filled in by the caller.
static rlhf_status prepare(model *m, const peft_options *o, uint64_t seed, model_peft **out, rlhf_err *err) {
    *out = NULL;
    if (m->peft) return rlhf_fail(err, RLHF_ERUNTIME, "peft: the model already has adapters");
    if (o->use_peft) RLHF_TRY(peft_options_check(o, err));
    model_peft *p = calloc(1, sizeof *p);
    if (!p) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory (peft)");
    p->o = *o;
    p->enabled = 1;
    snprintf(p->arch, sizeof p->arch, "%s", m->cfg.architecture);
    rlhf_status st = build_slots(m, p, err);
    if (st == RLHF_OK && o->use_peft) st = mark_targets(p, o->target_modules, err);
    if (st == RLHF_OK && !o->use_peft) p->train_start = p->total = align_floats(m->n_params);
    if (st == RLHF_OK && o->use_peft) st = build_view(m, p, err);
    for (int i = 0; i < p->n_slots; i++) p->slots[i].quantize = o->load_in_4bit && !p->slots[i].is_head;
    if (st == RLHF_OK) {
        // An anonymous mapping: zero pages until written. The 4-bit weights are never written into
        // it, so their pages never become resident.
        p->map_bytes = p->total * sizeof(float);
        void *map = mmap(NULL, p->map_bytes ? p->map_bytes : 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                         -1, 0);
        if (map == MAP_FAILED)
            st = rlhf_fail(err, RLHF_ERUNTIME, "out of memory: peft parameter buffer (%.1f MiB)",
                           (double)p->map_bytes / (1 << 20));
        else
            p->map = map;
    }
    if (st != RLHF_OK) {
        release(p);
        return st;
    }
    float *np = p->map;
    for (int i = 0; i < p->n_slots; i++) {
        const peft_slot *s = &p->slots[i];
        if (s->adapted)
            lora_init(np + s->A, np + s->B, o->lora.r, s->C, s->OC,
                      rng_key(seed, RNG_STREAM_INIT, module_hash(s->module), 1));
    }
    *out = p;
    return RLHF_OK;
}

rlhf_status peft_apply(model *m, const peft_options *o, uint64_t seed, rlhf_err *err) {
    if (!o->use_peft && !o->load_in_4bit) return RLHF_OK;
    model_peft *p;
    RLHF_TRY(prepare(m, o, seed, &p, err));
    float *np = p->map;
    for (int i = 0; i < m->n_specs; i++) {
        const param_spec *sp = &m->specs[i];
        peft_slot *q = quantized_slot(p, sp->offset);
        if (!q) {
            memcpy(np + sp->offset, m->params + sp->offset, sp->numel * sizeof(float));
            continue;
        }
        rlhf_status st = quantize_slot(p, q, m->params + sp->offset, err);
        if (st != RLHF_OK) {
            release(p);
            return st;
        }
    }
    rlhf_free(m->params);
    m->params = np;
    rlhf_free(m->grads);
    m->grads = NULL;
    m->peft = p;
    return RLHF_OK;
}

rlhf_status peft_prepare_load(model *m, const peft_options *o, uint64_t seed, rlhf_err *err) {
    model_peft *p;
    RLHF_TRY(prepare(m, o, seed, &p, err));
    rlhf_free(m->params);
    m->params = p->map;
    m->peft = p;
    return RLHF_OK;
}

int peft_quantizes(const model *m, size_t off) { return m->peft && quantized_slot(m->peft, off); }

rlhf_status peft_load_quantized(model *m, size_t off, const st_tensor *t, rlhf_err *err) {
    peft_slot *s = quantized_slot(m->peft, off);
    float *tmp = malloc(sizeof(float) * (size_t)s->OC * s->C);
    if (!tmp) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory loading '%s'", t->name);
    rlhf_status st = st_to_f32(t, tmp, err);
    if (st == RLHF_OK) st = quantize_slot(m->peft, s, tmp, err);
    free(tmp);
    return st;
}

void peft_free(model *m) {
    model_peft *p = m->peft;
    if (!p) return;
    if (m->params == p->map) m->params = NULL;
    release(p);
    m->peft = NULL;
}

void model_trainable_view(model *m, model_trainable *v) {
    const model_peft *p = m->peft;
    if (!p) {
        *v = (model_trainable){m->params, m->grads, m->specs, m->n_specs, m->n_params};
        return;
    }
    *v = (model_trainable){m->params + p->train_start, p->grads, p->view_specs, p->n_view, p->train_n};
}

void peft_set_adapters_enabled(model *m, int on) {
    if (m->peft) m->peft->enabled = on;
}

void peft_quantized_bytes(const model *m, int64_t *quantized, int64_t *fp32) {
    *quantized = *fp32 = 0;
    if (!m->peft) return;
    for (int i = 0; i < m->peft->n_slots; i++) {
        const peft_slot *s = &m->peft->slots[i];
        if (!s->quantized) continue;
        *quantized += nf4_bytes(&s->q);
        *fp32 += (int64_t)s->OC * s->C * (int64_t)sizeof(float);
    }
}

rlhf_status peft_reference_forward(model *m, const model_batch *b, rlhf_err *err) {
    const int was = m->peft ? m->peft->enabled : 1;
    peft_set_adapters_enabled(m, 0);
    rlhf_status st = model_forward_no_grad(m, b, err);  // a reference: no backward follows
    peft_set_adapters_enabled(m, was);
    return st;
}

int peft_n_adapted(const model *m) { return m->peft ? m->peft->n_adapted : 0; }

int peft_rank(const model *m) { return m->peft && m->peft->o.use_peft ? m->peft->o.lora.r : 0; }

rlhf_status peft_alloc_grads(model *m, rlhf_err *err) {
    model_peft *p = m->peft;
    if (p->grads) return RLHF_OK;
    p->grads = rlhf_calloc_aligned((p->train_n ? p->train_n : 1) * sizeof(float));
    if (!p->grads) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory: adapter gradients (%zu floats)", p->train_n);
    return RLHF_OK;
}

void peft_zero_grads(model *m) {
    if (m->peft->grads) memset(m->peft->grads, 0, m->peft->train_n * sizeof(float));
}

float *model_grad(const model *m, size_t off) {
    if (off == MODEL_NO_PARAM) return NULL;
    const model_peft *p = m->peft;
    if (!p) return m->grads ? m->grads + off : NULL;
    if (!p->grads || off < p->train_start) return NULL;
    return p->grads + (off - p->train_start);
}

void peft_begin_forward(model *m, const model_batch *b) {
    if (!m->peft) return;
    m->peft->training = b->training;
    m->peft->dropout_key = b->dropout_key;
}

// ---- dispatch ----------------------------------------------------------------------------------

static lora_base slot_base(const model *m, const peft_slot *s, const float *bias) {
    lora_base base = {0};
    base.bias = bias;
    base.compute = m->peft->o.compute;
    if (s->quantized) {
        base.qweight = &s->q;
    } else {
        base.weight = m->params + s->w;
        base.conv1d = s->conv1d;
    }
    return base;
}

static uint64_t slot_key(const model_peft *p, const peft_slot *s) {
    return rng_key(p->dropout_key, RNG_STREAM_DROPOUT, LORA_DROPOUT_SITE, s->w);
}

// out = inp @ W^T (+ bias) with W kept bf16, through the model's fp32 panel scratch.
static rlhf_status bf16_linear(model *m, const uint16_t *w, const float *bias, int conv1d, float *out,
                               const float *inp, int N, int C, int OC, rlhf_err *err) {
    model_peft *p = m->peft;
    size_t need = linear_bf16_scratch(N, C, OC, LINEAR_BF16_PANEL);
    if (need > p->bf_scratch_n) {
        free(p->bf_scratch);
        p->bf_scratch = malloc(need * sizeof(float));
        p->bf_scratch_n = p->bf_scratch ? need : 0;
        if (!p->bf_scratch) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory (bf16 weight panel, %zu floats)", need);
    }
    linear_bf16_forward(out, inp, w, bias, N, C, OC, conv1d, p->bf_scratch, LINEAR_BF16_PANEL);
    return RLHF_OK;
}

rlhf_status model_linear_forward(model *m, size_t w, size_t b, int conv1d, float *out, const float *inp, int N,
                                 int C, int OC, rlhf_err *err) {
    const float *bias = b == MODEL_NO_PARAM ? NULL : m->params + b;
    const uint16_t *wb = model_bf16_weight(m, w);
    if (wb) return bf16_linear(m, wb, bias, conv1d, out, inp, N, C, OC, err);
    const peft_slot *s = m->peft ? find_slot(m->peft, w) : NULL;
    if (!s) {
        if (conv1d)
            conv1d_forward(out, inp, m->params + w, bias, N, C, OC);
        else
            linear_forward(out, inp, m->params + w, bias, N, C, OC);
        return RLHF_OK;
    }
    const model_peft *p = m->peft;
    lora_base base = slot_base(m, s, bias);
    if (!s->adapted || !p->enabled) return lora_base_forward(out, inp, &base, N, C, OC, err);
    float *xa = malloc(sizeof(float) * (size_t)N * p->o.lora.r);
    if (!xa) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory (adapter of '%s')", s->module);
    rlhf_status st = lora_linear_forward(out, xa, inp, &base, m->params + s->A, m->params + s->B, &p->o.lora,
                                         p->training, slot_key(p, s), N, C, OC, err);
    free(xa);
    return st;
}

// xa (N, r) = dropout(inp) @ A^T, recomputed rather than kept (a layer may run twice per forward,
// e.g. DeBERTa's key projection of the relative embeddings).
static rlhf_status recompute_xa(float *xa, const model *m, const peft_slot *s, const float *inp, int N,
                                rlhf_err *err) {
    const model_peft *p = m->peft;
    const float *h = inp;
    float *owned = NULL;
    if (p->training && p->o.lora.dropout > 0) {
        owned = malloc(sizeof(float) * (size_t)N * s->C);
        if (!owned) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory (adapter backward of '%s')", s->module);
        dropout_forward(owned, inp, p->o.lora.dropout, slot_key(p, s), (int64_t)N * s->C);
        h = owned;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, p->o.lora.r, s->C, 1.0f, h, s->C, m->params + s->A, s->C,
                0.0f, xa, p->o.lora.r);
    free(owned);
    return RLHF_OK;
}

rlhf_status model_linear_backward(model *m, size_t w, size_t b, int conv1d, float *dinp, const float *dout,
                                  const float *inp, int N, int C, int OC, rlhf_err *err) {
    if (model_bf16_weight(m, w))
        return rlhf_fail(err, RLHF_ERUNTIME, "%s: a frozen model kept in bf16 has no backward", m->cfg.architecture);
    const peft_slot *s = m->peft ? find_slot(m->peft, w) : NULL;
    if (!s) {
        if (conv1d)
            conv1d_backward(dinp, model_grad(m, w), model_grad(m, b), dout, inp, m->params + w, N, C, OC);
        else
            linear_backward(dinp, model_grad(m, w), model_grad(m, b), dout, inp, m->params + w, N, C, OC);
        return RLHF_OK;
    }
    const model_peft *p = m->peft;
    lora_base base = slot_base(m, s, NULL);
    if (!s->adapted || !p->enabled) {  // frozen layer: only the input gradient
        if (!dinp) return RLHF_OK;
        if (s->quantized) return nf4_linear_backward(dinp, dout, &s->q, N, C, OC, p->o.compute, err);
        if (s->conv1d)
            conv1d_backward(dinp, NULL, NULL, dout, inp, base.weight, N, C, OC);
        else
            linear_backward(dinp, NULL, NULL, dout, inp, base.weight, N, C, OC);
        return RLHF_OK;
    }
    float *xa = malloc(sizeof(float) * (size_t)N * p->o.lora.r);
    if (!xa) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory (adapter backward of '%s')", s->module);
    rlhf_status st = recompute_xa(xa, m, s, inp, N, err);
    if (st == RLHF_OK)
        st = lora_linear_backward(dinp, model_grad(m, s->A), model_grad(m, s->B), dout, inp, xa, &base,
                                  m->params + s->A, m->params + s->B, &p->o.lora, p->training, slot_key(p, s), N, C,
                                  OC, err);
    free(xa);
    return st;
}

// ---- merge -------------------------------------------------------------------------------------

rlhf_status peft_merge_and_unload(model *m, rlhf_err *err) {
    model_peft *p = m->peft;
    if (!p) return RLHF_OK;
    float *plain = rlhf_calloc_aligned(m->n_params * sizeof(float));
    if (!plain) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory: merged model (%zu parameters)", m->n_params);
    memcpy(plain, m->params, m->n_params * sizeof(float));
    for (int i = 0; i < p->n_bf; i++) bf16_to_f32(plain + p->bf[i].off, p->bf[i].data, p->bf[i].numel);
    for (int i = 0; i < p->n_slots; i++) {
        const peft_slot *s = &p->slots[i];
        float *W = plain + s->w;
        const int64_t n = (int64_t)s->OC * s->C;
        if (s->quantized) {
            float *tmp = s->conv1d ? malloc(sizeof(float) * (size_t)n) : W;
            if (!tmp) {
                rlhf_free(plain);
                return rlhf_fail(err, RLHF_ERUNTIME, "out of memory dequantizing '%s'", s->module);
            }
            nf4_dequantize(tmp, &s->q, 0, n);
            if (s->conv1d) {
                transpose(W, tmp, s->OC, s->C);
                free(tmp);
            }
        }
        if (!s->adapted || !p->enabled) continue;
        const float *A = m->params + s->A, *B = m->params + s->B;
        const int r = p->o.lora.r;
        if (s->conv1d)  // W (C, OC) += s * A^T (C, r) @ B^T (r, OC)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasTrans, s->C, s->OC, r, lora_scaling(&p->o.lora), A, s->C, B, r,
                        1.0f, W, s->OC);
        else
            lora_merge(W, A, B, &p->o.lora, s->C, s->OC);
    }
    peft_free(m);
    rlhf_free(m->params);
    m->params = plain;
    return RLHF_OK;
}

// ---- frozen models kept in bf16 ------------------------------------------------------------------

// Word-embedding tables (read row by row through model_embedding_forward).
static const char *const WORD_EMBEDDINGS[] = {"wte", "embed_tokens", "embed_in", "word_embeddings", NULL};

int peft_bf16_eligible(const model *m, const param_spec *p) {
    if (p->ndim != 2 || !ends_with(p->name, ".weight")) return 0;
    if (p->is_head) return m->head == HEAD_LM;  // an LM head (score heads stay fp32: small, read directly)
    char module[MODEL_NAME_MAX];
    if (linear_module(p, module, sizeof module)) return 1;
    size_t len = strlen(p->name) - strlen(".weight");
    snprintf(module, sizeof module, "%.*s", (int)len, p->name);
    const char *last = strrchr(module, '.');
    last = last ? last + 1 : module;
    for (const char *const *e = WORD_EMBEDDINGS; *e; e++)
        if (!strcmp(last, *e)) return 1;
    return 0;
}

static const peft_bf16_tensor *find_bf16(const model_peft *p, size_t off) {
    int lo = 0, hi = p->n_bf - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (p->bf[mid].off == off) return &p->bf[mid];
        if (p->bf[mid].off < off)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return NULL;
}

const uint16_t *model_bf16_weight(const model *m, size_t off) {
    if (!m->peft || !m->peft->n_bf || off == MODEL_NO_PARAM) return NULL;
    const peft_bf16_tensor *t = find_bf16(m->peft, off);
    return t ? t->data : NULL;
}

int peft_stores_bf16(const model *m, size_t off) { return model_bf16_weight(m, off) != NULL; }

static int cmp_size(const void *a, const void *b) {
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

rlhf_status peft_prepare_bf16(model *m, const size_t *offs, int n, rlhf_err *err) {
    peft_options o;
    peft_options_default(&o);  // no adapters, no 4-bit: only the mapped buffer and the bf16 table
    model_peft *p;
    RLHF_TRY(prepare(m, &o, 0, &p, err));
    p->bf = calloc((size_t)(n > 0 ? n : 1), sizeof *p->bf);
    size_t *sorted = malloc(sizeof(size_t) * (size_t)(n > 0 ? n : 1));
    rlhf_status st = p->bf && sorted ? RLHF_OK : rlhf_fail(err, RLHF_ERUNTIME, "out of memory (bf16 table)");
    if (st == RLHF_OK) {
        memcpy(sorted, offs, sizeof(size_t) * (size_t)n);
        qsort(sorted, (size_t)n, sizeof *sorted, cmp_size);
    }
    for (int i = 0; i < n && st == RLHF_OK; i++) {
        const param_spec *sp = NULL;
        for (int k = 0; k < m->n_specs && !sp; k++)
            if (m->specs[k].offset == sorted[i]) sp = &m->specs[k];
        if (!sp) {
            st = rlhf_fail(err, RLHF_ERUNTIME, "bf16 tensor at unknown offset %zu", sorted[i]);
            break;
        }
        peft_bf16_tensor *t = &p->bf[p->n_bf];
        t->off = sp->offset;
        t->numel = sp->numel;
        t->data = malloc(sizeof(uint16_t) * sp->numel);
        if (!t->data) {
            st = rlhf_fail(err, RLHF_ERUNTIME, "out of memory: bf16 '%s' (%.1f MiB)", sp->name,
                           (double)sp->numel * 2 / (1 << 20));
            break;
        }
        p->n_bf++;
    }
    free(sorted);
    if (st != RLHF_OK) {
        release(p);
        return st;
    }
    rlhf_free(m->params);
    m->params = p->map;
    m->peft = p;
    return RLHF_OK;
}

rlhf_status peft_load_bf16(model *m, size_t off, const st_tensor *t, rlhf_err *err) {
    const peft_bf16_tensor *b = m->peft ? find_bf16(m->peft, off) : NULL;
    if (!b || t->dtype != ST_BF16 || (size_t)t->numel != b->numel)
        return rlhf_fail(err, RLHF_ERUNTIME, "tensor '%s': not the planned bf16 tensor", t->name);
    memcpy(b->data, t->data, b->numel * sizeof(uint16_t));
    return RLHF_OK;
}

int64_t peft_bf16_bytes(const model *m, int *n_tensors) {
    int64_t bytes = 0;
    int n = m->peft ? m->peft->n_bf : 0;
    for (int i = 0; i < n; i++) bytes += (int64_t)m->peft->bf[i].numel * 2;
    if (n_tensors) *n_tensors = n;
    return bytes;
}

void model_embedding_forward(const model *m, size_t off, float *out, const int32_t *ids, int N, int C) {
    const uint16_t *bf = model_bf16_weight(m, off);
    if (bf)
        embedding_bf16_forward(out, ids, bf, N, C);
    else
        embedding_forward(out, ids, m->params + off, N, C);
}
