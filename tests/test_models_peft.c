// LoRA / QLoRA models (models/peft.h) on the seq-cls and causal-LM fixtures: the adapted forward
// equals the merged dense model, adapter gradients match finite differences, adapters off == base,
// adapter files round-trip, the merged save loads as a plain model with the same outputs, and a
// 4-bit base stays close to fp32 while its weights take less than 1/6 of the memory.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/rng.h"
#include "io/json_util.h"
#include "models/kv_cache.h"
#include "models/model.h"
#include "models/peft.h"
#include "testutil.h"

#define MERGE_ATOL 1e-5      // LoRA forward vs merged dense model (the brief's bound)
#define FD_EPS 1e-2          // finite-difference step on adapter parameters
#define FD_RTOL 2e-2         // float32 central differences
#define FD_ATOL 2e-4
#define NF4_REL_L2 0.25      // 4-bit logits vs fp32, relative L2 (NF4 rounding of every weight)
#define NF4_REL_L2_DEEP 0.35
#define NF4_MEM_RATIO 6.0    // quantized weights must take < 1/6 of their fp32 bytes
#define B_ 2
#define T_ 7

static size_t out_size(const model *m) {
    return m->head == HEAD_LM ? (size_t)B_ * T_ * m->cfg.vocab_size : (size_t)B_ * m->cfg.num_labels;
}

static float *forward_copy(model *m, const int32_t *ids, const int32_t *mask) {
    model_batch b = {.B = B_, .T = T_, .input_ids = ids, .attention_mask = mask};
    rlhf_err err;
    if (model_forward(m, &b, &err) != RLHF_OK) {
        fprintf(stderr, "forward: %s\n", err.msg);
        return NULL;
    }
    size_t n = out_size(m);
    float *o = malloc(n * sizeof *o);
    memcpy(o, m->out, n * sizeof *o);
    return o;
}

static model *load_peft(const char *dir, model_head head, const peft_options *o) {
    model *m = NULL;
    rlhf_err err;
    model_load_opts lo = {.quiet = 1, .init_seed = 7};
    if (model_load(&m, dir, head, &lo, &err) != RLHF_OK) {
        fprintf(stderr, "%s: %s\n", dir, err.msg);
        return NULL;
    }
    if (o && peft_apply(m, o, 1234, &err) != RLHF_OK) {
        fprintf(stderr, "peft_apply: %s\n", err.msg);
        model_free(m);
        return NULL;
    }
    return m;
}

static double loss_of(const float *out, const float *w, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)out[i] * w[i];
    return s;
}

static void check_family(const char *name, model_head head) {
    char dir[256];
    snprintf(dir, sizeof dir, TU_FIXTURES "/hf/%s", name);
    peft_options o;
    peft_options_default(&o);
    o.use_peft = 1;
    o.lora.r = 4;
    o.lora.alpha = 8;
    o.lora.dropout = 0;
    model *base = load_peft(dir, head, NULL), *m = load_peft(dir, head, &o);
    CHECK(base && m, "%s: load", name);
    if (!base || !m) {
        model_free(base);
        model_free(m);
        return;
    }
    CHECK(peft_n_adapted(m) > 0, "%s: no layer adapted", name);
    int32_t ids[B_ * T_], mask[B_ * T_];
    for (int i = 0; i < B_ * T_; i++) {
        ids[i] = 1 + (int32_t)(rng_uniform(99, (uint64_t)i) * (float)(m->cfg.vocab_size - 2));
        mask[i] = !(i >= T_ && i % T_ >= T_ - 2);  // row 1 has two padding tokens at the end
    }
    if (m->cfg.is_decoder) {  // decoders pad on the left
        for (int t = 0; t < T_; t++) mask[T_ + t] = t >= 2;
    }
    // Non-zero adapters (a fresh B is 0) so the adapter path is exercised.
    model_trainable v;
    model_trainable_view(m, &v);
    CHECK(v.n > 0 && v.n < m->n_params / 2, "%s: trainable %zu of %zu", name, v.n, m->n_params);
    for (size_t i = 0; i < v.n; i++) v.params[i] += 0.05f * (2 * rng_uniform(5, i) - 1);

    float *out = forward_copy(m, ids, mask), *ref = forward_copy(base, ids, mask);
    size_t n = out_size(m);
    // adapters off == base (heads of a seq-cls model are trained, so compare LM logits only there)
    float *off = NULL;
    {
        model_batch rb = {.B = B_, .T = T_, .input_ids = ids, .attention_mask = mask};
        rlhf_err e0;
        CHECK(peft_reference_forward(m, &rb, &e0) == RLHF_OK, "reference forward");
        off = malloc(out_size(m) * sizeof *off);
        memcpy(off, m->out, out_size(m) * sizeof *off);
    }
    float *again = forward_copy(m, ids, mask);  // adapters back on after the reference forward
    if (again && out) CHECK(tu_close("adapters back on", again, out, out_size(m), 0, 0), "%s", name);
    free(again);
    if (head == HEAD_LM && off && ref) CHECK(tu_close("adapters off vs base", off, ref, n, 1e-6, 0), "%s", name);
    double diff = 0;
    for (size_t i = 0; out && ref && i < n; i++) diff = fmax(diff, fabs(out[i] - ref[i]));
    CHECK(diff > 1e-4, "%s: adapters change nothing (%g)", name, diff);

    // KV-cache decoding goes through the same dispatch: the prefill's last-token logits with adapters
    // equal the full forward's (all tokens real).
    if (head == HEAD_LM) {
        int32_t ones[B_ * T_], pos[B_ * T_];
        for (int i = 0; i < B_ * T_; i++) ones[i] = 1, pos[i] = i % T_;
        float *full = forward_copy(m, ids, ones);
        kv_cache kc;
        rlhf_err e2;
        const int V = m->cfg.vocab_size;
        float *lg = malloc(sizeof(float) * (size_t)B_ * V), *want = malloc(sizeof(float) * (size_t)B_ * V);
        CHECK(kv_cache_for_model(&kc, m, B_, T_, &e2) == RLHF_OK, "kv cache");
        CHECK(m->family->decode(m, &kc, ids, ones, pos, T_, lg, &e2) == RLHF_OK, "decode");
        for (int r = 0; r < B_ && full; r++) memcpy(want + (size_t)r * V, full + ((size_t)r * T_ + T_ - 1) * V, sizeof(float) * V);
        if (full) CHECK(tu_close("decode with adapters", lg, want, (size_t)B_ * V, 1e-4, 0), "%s", name);
        kv_cache_free(&kc);
        free(lg);
        free(want);
        free(full);
    }
    // Merged dense model == LoRA model.
    model *mm = load_peft(dir, head, &o);
    rlhf_err err;
    if (mm) {
        model_trainable mv;
        model_trainable_view(mm, &mv);
        memcpy(mv.params, v.params, v.n * sizeof(float));
        CHECK(peft_merge_and_unload(mm, &err) == RLHF_OK, "merge: %s", err.msg);
        CHECK(!peft_active(mm), "merged model still has adapters");
        float *merged = forward_copy(mm, ids, mask);
        if (merged && out) CHECK(tu_close("lora vs merged", out, merged, n, MERGE_ATOL, 0), "%s", name);
        // The merged save loads as a plain model with the same outputs.
        char tmp[] = "/tmp/test_peft_mergedXXXXXX";
        CHECK(mkdtemp(tmp) != NULL, "mkdtemp");
        CHECK(model_save(mm, tmp, &err) == RLHF_OK, "save merged: %s", err.msg);
        model *re = load_peft(tmp, head, NULL);
        float *reo = re ? forward_copy(re, ids, mask) : NULL;
        if (reo && merged) CHECK(tu_close("merged save reloaded", reo, merged, n, 1e-6, 0), "%s", name);
        free(reo);
        free(merged);
        model_free(re);
        model_free(mm);
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
        CHECK(system(cmd) == 0, "rm");
    }

    // Adapter save / load round trip.
    char adir[] = "/tmp/test_peft_adapterXXXXXX";
    CHECK(mkdtemp(adir) != NULL, "mkdtemp");
    CHECK(peft_save_adapter(m, adir, dir, &err) == RLHF_OK, "save adapter: %s", err.msg);
    CHECK(peft_is_adapter_dir(adir), "adapter_config.json missing");
    model *la = NULL;
    model_load_opts lo = {.quiet = 1};
    CHECK(peft_load_adapter_model(&la, adir, head, NULL, &lo, &err) == RLHF_OK, "load adapter: %s", err.msg);
    if (la) {
        float *lao = forward_copy(la, ids, mask);
        if (lao && out) CHECK(tu_close("adapter round trip", lao, out, n, 1e-6, 0), "%s", name);
        free(lao);
        model_free(la);
    }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", adir);
    CHECK(system(cmd) == 0, "rm");

    // Gradients of the trainable tensors vs central differences of loss = sum(out * w).
    float *w = malloc(n * sizeof *w);
    for (size_t i = 0; i < n; i++) w[i] = 2 * rng_uniform(11, i) - 1;
    model_batch b = {.B = B_, .T = T_, .input_ids = ids, .attention_mask = mask};
    CHECK(model_forward(m, &b, &err) == RLHF_OK, "forward");
    CHECK(model_alloc_grads(m, &err) == RLHF_OK, "grads");
    model_zero_grads(m);
    CHECK(m->grads == NULL, "%s: a full-size gradient buffer exists under LoRA", name);
    CHECK(model_backward(m, w, NULL, &err) == RLHF_OK, "backward: %s", err.msg);
    model_trainable_view(m, &v);
    int bad = 0, checked = 0;
    for (int si = 0; si < v.n_specs; si += 3) {  // every third tensor, two elements each
        const param_spec *s = &v.specs[si];
        for (int k = 0; k < 2; k++) {
            size_t i = s->offset + (size_t)(rng_uniform(17, (uint64_t)(si * 2 + k)) * (float)s->numel) % s->numel;
            float keep = v.params[i];
            v.params[i] = keep + (float)FD_EPS;
            float *op = forward_copy(m, ids, mask);
            v.params[i] = keep - (float)FD_EPS;
            float *om = forward_copy(m, ids, mask);
            v.params[i] = keep;
            double fd = (loss_of(op, w, n) - loss_of(om, w, n)) / (2 * FD_EPS);
            double g = v.grads[i];
            checked++;
            if (fabs(fd - g) > FD_ATOL + FD_RTOL * fabs(fd)) {
                if (bad++ < 5) fprintf(stderr, "  %s[%zu]: grad %g vs finite difference %g\n", s->name, i - s->offset, g, fd);
            }
            free(op);
            free(om);
        }
    }
    CHECK(bad == 0 && checked > 4, "%s: %d of %d adapter gradients off", name, bad, checked);
    free(w);
    free(out);
    free(ref);
    free(off);
    model_free(m);
    model_free(base);
}

static void check_4bit(const char *name, model_head head, double max_rel) {
    char dir[256];
    snprintf(dir, sizeof dir, TU_FIXTURES "/hf/%s", name);
    peft_options o;
    peft_options_default(&o);
    o.use_peft = 1;
    o.load_in_4bit = 1;
    o.double_quant = 1;
    model *base = load_peft(dir, head, NULL), *q = load_peft(dir, head, &o);
    CHECK(base && q, "%s 4-bit: load", name);
    if (!base || !q) {
        model_free(base);
        model_free(q);
        return;
    }
    int32_t ids[B_ * T_];
    for (int i = 0; i < B_ * T_; i++) ids[i] = 1 + (int32_t)(rng_uniform(3, (uint64_t)i) * (float)(q->cfg.vocab_size - 2));
    float *a = forward_copy(base, ids, NULL), *b = forward_copy(q, ids, NULL);
    size_t n = out_size(base);
    double num = 0, den = 0;
    for (size_t i = 0; a && b && i < n; i++) {
        num += (double)(a[i] - b[i]) * (a[i] - b[i]);
        den += (double)a[i] * a[i];
    }
    double rel = sqrt(num / (den > 0 ? den : 1));
    CHECK(a && b && rel < max_rel && rel > 0, "%s 4-bit: relative L2 of outputs %g", name, rel);
    // Quantizing while loading (model_load_opts.peft) gives the same model as quantizing after.
    model *ql = NULL;
    rlhf_err err;
    model_load_opts lo = {.quiet = 1, .init_seed = 1234, .peft = &o};
    CHECK(model_load(&ql, dir, head, &lo, &err) == RLHF_OK, "load-time 4-bit: %s", err.msg);
    float *l = ql ? forward_copy(ql, ids, NULL) : NULL;
    if (l && b) CHECK(tu_close("load-time vs post-load 4-bit", l, b, n, 0, 0), "%s", name);
    free(l);
    model_free(ql);
    // bf16 compute runs too
    model_free(q);
    o.compute = NF4_COMPUTE_BF16;
    o.quant_type = NF4_QUANT_FP4;
    q = load_peft(dir, head, &o);
    float *c = q ? forward_copy(q, ids, NULL) : NULL;
    CHECK(c != NULL && isfinite(c[0]), "%s fp4/bf16 forward", name);
    free(a);
    free(b);
    free(c);
    model_free(q);
    model_free(base);
}

// Memory of the quantized weights on a BERT with 256-wide layers (the fixtures' 32-wide layers are
// dominated by per-tensor constants).
static void check_4bit_memory(void) {
    cJSON *cfg = NULL;
    rlhf_err err;
    CHECK(json_load_file(TU_FIXTURES "/hf/bert_seqcls_1/config.json", &cfg, &err) == RLHF_OK, "config");
    if (!cfg) return;
    cJSON_ReplaceItemInObject(cfg, "hidden_size", cJSON_CreateNumber(256));
    cJSON_ReplaceItemInObject(cfg, "intermediate_size", cJSON_CreateNumber(1024));
    cJSON_ReplaceItemInObject(cfg, "num_attention_heads", cJSON_CreateNumber(4));
    model *m = NULL;
    CHECK(model_create(&m, cfg, HEAD_SEQCLS, 3, &err) == RLHF_OK, "create: %s", err.msg);
    cJSON_Delete(cfg);
    peft_options o;
    peft_options_default(&o);
    o.use_peft = 1;
    o.load_in_4bit = 1;
    for (int dq = 0; m && dq < 2; dq++) {
        o.double_quant = dq;
        model *q = NULL;
        CHECK(model_create(&q, m->config_json, HEAD_SEQCLS, 3, &err) == RLHF_OK, "create");
        CHECK(q && peft_apply(q, &o, 1, &err) == RLHF_OK, "apply: %s", err.msg);
        int64_t qb = 0, fb = 0;
        if (q) peft_quantized_bytes(q, &qb, &fb);
        CHECK(qb > 0 && (double)qb * NF4_MEM_RATIO < (double)fb, "4-bit (double_quant %d): %lld bytes for %lld fp32 bytes",
              dq, (long long)qb, (long long)fb);
        model_free(q);
    }
    model_free(m);
}

static void check_bad_target(void) {
    peft_options o;
    peft_options_default(&o);
    o.use_peft = 1;
    snprintf(o.target_modules, sizeof o.target_modules, "query,no_such_proj");
    model *m = load_peft(TU_FIXTURES "/hf/bert_seqcls_1", HEAD_SEQCLS, NULL);
    rlhf_err err;
    CHECK(m && peft_apply(m, &o, 1, &err) == RLHF_EINPUT && strstr(err.msg, "no_such_proj"), "bad target accepted");
    model_free(m);
}

// peft's module names per family: Phi-3's fused qkv_proj / gate_up_proj, Qwen2's q_proj / v_proj, Gemma 2's
// gate_proj; each adapts exactly those linears of every layer (2 layers in the fixtures).
static void check_targets(const char *name, model_head head, const char *targets, int want) {
    char dir[256];
    snprintf(dir, sizeof dir, TU_FIXTURES "/hf/%s", name);
    peft_options o;
    peft_options_default(&o);
    o.use_peft = 1;
    snprintf(o.target_modules, sizeof o.target_modules, "%s", targets);
    model *m = load_peft(dir, head, &o);
    CHECK(m && peft_n_adapted(m) == want, "%s: --lora_target_modules %s adapts %d layers, expected %d", name, targets,
          m ? peft_n_adapted(m) : -1, want);
    model_free(m);
}

int main(void) {
    check_family("bert_seqcls_1", HEAD_SEQCLS);
    check_family("gpt2_lm", HEAD_LM);
    // every other family: the same dispatch, other layouts (fused NeoX QKV, Llama's SwiGLU, DeBERTa's
    // relative-position projections through the adapted key/query layers, RoBERTa's two-layer head)
    check_family("roberta_seqcls_1", HEAD_SEQCLS);
    check_family("distilbert_seqcls_1", HEAD_SEQCLS);
    check_family("debertav2_seqcls_1", HEAD_SEQCLS);
    check_family("gptneox_lm", HEAD_LM);
    check_family("llama_lm", HEAD_LM);
    check_family("gpt2_seqcls_1", HEAD_SEQCLS);
    // Qwen2 (q/k/v biases), Gemma (scaled embeddings), Gemma 2 (soft-caps, windows), Phi-3 (fused qkv /
    // gate_up: the adapters cover the fused output)
    check_family("qwen2_lm", HEAD_LM);
    check_family("qwen2_seqcls_1", HEAD_SEQCLS);
    check_family("gemma_lm", HEAD_LM);
    check_family("gemma2_lm", HEAD_LM);
    check_family("gemma2_seqcls_1", HEAD_SEQCLS);
    check_family("phi3_lm", HEAD_LM);
    check_family("phi3_seqcls_1", HEAD_SEQCLS);
    check_targets("phi3_lm", HEAD_LM, "qkv_proj,gate_up_proj", 4);
    check_targets("qwen2_seqcls_1", HEAD_SEQCLS, "q_proj,v_proj", 4);
    check_targets("gemma2_lm", HEAD_LM, "gate_proj", 2);
    // the Qwen2 / Phi-3 fixtures (weights drawn with std 0.2, perturbed 1-D params) amplify NF4's per-weight
    // error a little more than BERT / GPT-2 do
    check_4bit("qwen2_lm", HEAD_LM, NF4_REL_L2_DEEP);
    check_4bit("gemma2_lm", HEAD_LM, NF4_REL_L2);
    check_4bit("phi3_seqcls_1", HEAD_SEQCLS, NF4_REL_L2_DEEP);
    check_4bit("bert_seqcls_1", HEAD_SEQCLS, NF4_REL_L2);
    check_4bit("gpt2_lm", HEAD_LM, NF4_REL_L2);
    check_4bit_memory();
    check_bad_target();
    return tu_finish("models_peft");
}
