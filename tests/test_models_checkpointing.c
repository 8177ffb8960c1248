// Gradient checkpointing (model.gradient_checkpointing, --gradient_checkpointing): for every encoder and
// decoder family, with dropout on and a padded batch, the logits and every parameter gradient equal
// (bit for bit) those of the same model trained without it, over two steps; and the activation arena of
// a checkpointing forward is smaller (only the residual stream and one layer's activations are kept). The same
// holds against keep_hidden_states (every activation kept), whose arena is bigger than an encoder's plain one.
// A decoder's plain plan keeps per layer only what no cheap kernel can rebuild (GPT-2: q, k, v, the attention
// output, res1 and the MLP pre-activation; ln1, qkv, ln2 and the activation are one buffer for all layers).
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/json_util.h"
#include "models/model.h"
#include "testutil.h"

static const char *const DROPOUT_KEYS[] = {"hidden_dropout_prob", "attention_probs_dropout_prob", "resid_pdrop",
                                           "embd_pdrop", "attn_pdrop", "attention_dropout", "hidden_dropout",
                                           "dropout", "attention_dropout"};

// The fixture's config with 3 layers and dropout 0.2 wherever the family reads one.
static cJSON *config(const char *fixture) {
    char path[512];
    snprintf(path, sizeof path, "%s/hf/%s/config.json", TU_FIXTURES, fixture);
    rlhf_err err = {0};
    cJSON *cfg = NULL;
    CHECK(json_load_file(path, &cfg, &err) == RLHF_OK, "%s", err.msg);
    if (!cfg) return NULL;
    const char *layers[] = {"num_hidden_layers", "n_layer", "n_layers"};
    for (size_t i = 0; i < sizeof layers / sizeof *layers; i++)
        if (cJSON_GetObjectItem(cfg, layers[i])) cJSON_ReplaceItemInObject(cfg, layers[i], cJSON_CreateNumber(3));
    for (size_t i = 0; i < sizeof DROPOUT_KEYS / sizeof *DROPOUT_KEYS; i++)
        if (cJSON_GetObjectItem(cfg, DROPOUT_KEYS[i]))
            cJSON_ReplaceItemInObject(cfg, DROPOUT_KEYS[i], cJSON_CreateNumber(0.2));
    return cfg;
}

typedef struct {
    float *out, *grads;
    size_t n_out;
    size_t arena_peak;
    int hidden;  // hidden_size
} run_result;

// Two forward/backward steps (different batches and dropout keys) accumulating gradients. mode 0: plain (an
// encoder's lean plan recomputes ln1 and the hidden states in the backward), 1: gradient checkpointing, 2: plain
// with keep_hidden_states (every activation kept).
static int run(const char *fixture, model_head head, int mode, run_result *r) {
    cJSON *cfg = config(fixture);
    if (!cfg) return 0;
    rlhf_err err = {0};
    model *m = NULL;
    int ok = model_create(&m, cfg, head, 5, &err) == RLHF_OK;
    cJSON_Delete(cfg);
    CHECK(ok, "%s: %s", fixture, err.msg);
    if (!ok) return 0;
    CHECK(model_alloc_grads(m, &err) == RLHF_OK, "%s", err.msg);
    model_zero_grads(m);
    m->gradient_checkpointing = mode == 1;
    m->keep_hidden_states = mode == 2;
    const int B = 2, T = 7;
    int32_t ids[2 * 7], mask[2 * 7];
    for (int step = 0; step < 2 && ok; step++) {
        for (int i = 0; i < B * T; i++) {
            ids[i] = 3 + (i * 7 + step * 5) % 20;
            mask[i] = !(i >= T && i % T >= T - 2 - step);  // the second row right-padded
        }
        model_batch b = {.B = B, .T = T, .input_ids = ids, .attention_mask = mask, .training = 1,
                         .dropout_key = 1000 + (uint64_t)step};
        ok = model_forward(m, &b, &err) == RLHF_OK;
        CHECK(ok, "%s forward: %s", fixture, err.msg);
        if (!ok) break;
        size_t n_out = head == HEAD_LM ? (size_t)B * T * m->cfg.vocab_size : (size_t)B * m->cfg.num_labels;
        float *dout = malloc(n_out * sizeof *dout);
        for (size_t i = 0; i < n_out; i++) dout[i] = (float)((int)((i * 2654435761u + step) % 17) - 8) / 64.0f;
        if (step == 1) {
            r->n_out = n_out;
            r->out = malloc(n_out * sizeof *r->out);
            memcpy(r->out, m->out, n_out * sizeof *r->out);
        }
        ok = model_backward(m, dout, NULL, &err) == RLHF_OK;
        CHECK(ok, "%s backward: %s", fixture, err.msg);
        free(dout);
    }
    if (ok) {
        r->grads = malloc(m->n_params * sizeof *r->grads);
        memcpy(r->grads, m->grads, m->n_params * sizeof *r->grads);
        r->arena_peak = m->acts.cap;
        r->hidden = m->cfg.hidden_size;
    }
    size_t n = m->n_params;
    model_free(m);
    return ok ? (int)(n > 0) : 0;
}

// The first gradient that differs between a and b (n when none)
static size_t first_diff(const run_result *a, const run_result *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a->grads[i], &b->grads[i], sizeof(float))) return i;
    return n;
}

static void test_family(const char *fixture, model_head head) {
    run_result plain = {0}, ckpt = {0}, keep = {0};
    if (run(fixture, head, 0, &plain) && run(fixture, head, 1, &ckpt) && run(fixture, head, 2, &keep)) {
        CHECK(plain.n_out == ckpt.n_out && !memcmp(plain.out, ckpt.out, plain.n_out * sizeof(float)),
              "%s: logits differ with gradient checkpointing", fixture);
        CHECK(plain.n_out == keep.n_out && !memcmp(plain.out, keep.out, plain.n_out * sizeof(float)),
              "%s: logits differ with keep_hidden_states", fixture);
        size_t n = 0;
        // the parameter count is the same model's: compare every gradient bit for bit
        cJSON *cfg = config(fixture);
        rlhf_err err = {0};
        model *m = NULL;
        if (cfg && model_create(&m, cfg, head, 5, &err) == RLHF_OK) n = m->n_params;
        model_free(m);
        cJSON_Delete(cfg);
        size_t first = first_diff(&plain, &ckpt, n);
        CHECK(n > 0 && first == n, "%s: gradient %zu of %zu differs with checkpointing (%.9g vs %.9g)", fixture, first,
              n, first < n ? plain.grads[first] : 0.0, first < n ? ckpt.grads[first] : 0.0);
        first = first_diff(&plain, &keep, n);
        CHECK(n > 0 && first == n, "%s: gradient %zu of %zu differs with keep_hidden_states (%.9g vs %.9g)", fixture,
              first, n, first < n ? plain.grads[first] : 0.0, first < n ? keep.grads[first] : 0.0);
        CHECK(ckpt.arena_peak < plain.arena_peak, "%s: checkpointing arena %zu bytes, not below %zu", fixture,
              ckpt.arena_peak, plain.arena_peak);
        // encoders: the plain plan keeps neither ln1 nor the hidden states (2 (B, T, C) buffers less per layer)
        if (head == HEAD_SEQCLS && strncmp(fixture, "gpt2", 4) != 0)
            CHECK(plain.arena_peak < keep.arena_peak, "%s: plain arena %zu bytes, not below keep_hidden_states' %zu",
                  fixture, plain.arena_peak, keep.arena_peak);
        if (!strcmp(fixture, "gpt2_lm")) {
            // the 2 layers beyond the one a checkpointing plan keeps: at most 9 (N, C) buffers each (q, k, v,
            // atty, res1: C wide; fc: 4C) and 4 (N) norm statistics, each rounded up to 64 bytes (was 18 (N, C))
            size_t N = 2 * 7, C = (size_t)plain.hidden, bound = 2 * ((9 * N * C + 4 * N) * sizeof(float) + 10 * 64);
            CHECK(plain.arena_peak - ckpt.arena_peak <= bound,
                  "%s: 2 layers keep %zu bytes of activations, more than %zu (ln1/qkv/ln2/act kept per layer?)",
                  fixture, plain.arena_peak - ckpt.arena_peak, bound);
        }
        printf("%-20s bit-identical; activation arena %zu (all kept) -> %zu -> %zu (checkpointing) bytes\n", fixture,
               keep.arena_peak, plain.arena_peak, ckpt.arena_peak);
    }
    free(plain.out);
    free(plain.grads);
    free(ckpt.out);
    free(ckpt.grads);
    free(keep.out);
    free(keep.grads);
}

int main(void) {
    test_family("bert_seqcls_1", HEAD_SEQCLS);
    test_family("roberta_seqcls_1", HEAD_SEQCLS);
    test_family("distilbert_seqcls_1", HEAD_SEQCLS);
    test_family("debertav2_seqcls_1", HEAD_SEQCLS);
    test_family("gpt2_lm", HEAD_LM);
    test_family("gpt2_seqcls_1", HEAD_SEQCLS);
    test_family("gptneox_lm", HEAD_LM);
    test_family("llama_lm", HEAD_LM);
    test_family("mistral_lm", HEAD_LM);
    test_family("qwen2_lm", HEAD_LM);
    test_family("phi3_lm", HEAD_LM);
    test_family("gemma_lm", HEAD_LM);
    test_family("gemma2_lm", HEAD_LM);
    return tu_finish("models_checkpointing");
}
