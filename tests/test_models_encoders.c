// Encoder families against transformers' ground truth (tests/fixtures/hf/<name>/): for every encoder
// fixture, the logits, each layer's hidden states (on real tokens), the head input, the loss named in
// inputs.json and every parameter gradient (DeBERTa-v2 included); plus dropout determinism in training mode.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/json_util.h"
#include "io/safetensors.h"
#include "models/model.h"
#include "nn/ops.h"
#include "testutil.h"

// Bounds of the issue: outputs 1e-4, loss 1e-5, gradients 1e-3 relative or 1e-6 absolute.
#define OUT_ATOL 1e-4
#define LOSS_ATOL 1e-5
#define GRAD_RTOL 1e-3
#define GRAD_ATOL 1e-6

static const char *const ENCODER_FIXTURES[] = {"bert_seqcls_1", "bert_seqcls_2", "distilbert_seqcls_1",
                                               "roberta_seqcls_1", "debertav2_seqcls_1"};

// A (B, T) int matrix from a JSON list of lists; NULL if absent.
static int32_t *int_matrix(const cJSON *obj, const char *key, int *B, int *T) {
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsArray(rows)) return NULL;
    *B = cJSON_GetArraySize(rows);
    *T = cJSON_GetArraySize(cJSON_GetArrayItem(rows, 0));
    int32_t *out = calloc((size_t)*B * *T, sizeof *out);
    for (int b = 0; b < *B; b++)
        for (int t = 0; t < *T; t++)
            out[b * *T + t] = (int32_t)cJSON_GetArrayItem(cJSON_GetArrayItem(rows, b), t)->valuedouble;
    return out;
}

static const float *expected(const st_file *f, const char *name) {
    const st_tensor *t = st_find(f, name);
    if (!t || t->dtype != ST_F32) return NULL;
    return (const float *)t->data;
}

// Compares (B, T, C) tensors on positions with mask == 1 only (pads are HF artefacts).
static void check_masked(const char *name, const float *got, const float *want, const int32_t *mask, int BT, int C) {
    float *g = malloc((size_t)BT * C * sizeof *g), *w = malloc((size_t)BT * C * sizeof *w);
    size_t n = 0;
    for (int i = 0; i < BT; i++)
        if (mask[i]) {
            memcpy(g + n, got + (size_t)i * C, (size_t)C * sizeof *g);
            memcpy(w + n, want + (size_t)i * C, (size_t)C * sizeof *w);
            n += (size_t)C;
        }
    CHECK(tu_close(name, g, w, n, OUT_ATOL, 0), "%s", name);
    free(g);
    free(w);
}

// The loss of inputs.json "loss" on the logits (B, NL) and its gradient dlogits (B, NL).
static float fixture_loss(const cJSON *loss, const float *logits, int B, int NL, float *dlogits) {
    const char *type = json_get_string(loss, "type", "");
    memset(dlogits, 0, (size_t)B * NL * sizeof *dlogits);
    if (!strcmp(type, "pairwise_logsigmoid")) {
        const cJSON *pairs = cJSON_GetObjectItemCaseSensitive(loss, "pairs");
        int P = cJSON_GetArraySize(pairs);
        float *ch = calloc((size_t)P, sizeof *ch), *rj = calloc((size_t)P, sizeof *rj);
        float *dch = calloc((size_t)P, sizeof *dch), *drj = calloc((size_t)P, sizeof *drj);
        int *ic = calloc((size_t)P, sizeof *ic), *ir = calloc((size_t)P, sizeof *ir);
        for (int p = 0; p < P; p++) {
            const cJSON *pair = cJSON_GetArrayItem(pairs, p);
            ic[p] = cJSON_GetArrayItem(pair, 0)->valueint;
            ir[p] = cJSON_GetArrayItem(pair, 1)->valueint;
            ch[p] = logits[ic[p] * NL];
            rj[p] = logits[ir[p] * NL];
        }
        float l = pairwise_loss_forward(ch, rj, NULL, 0.0f, P);
        pairwise_loss_backward(dch, drj, ch, rj, NULL, 0.0f, P, 1.0f);
        for (int p = 0; p < P; p++) {
            dlogits[ic[p] * NL] += dch[p];
            dlogits[ir[p] * NL] += drj[p];
        }
        free(ch), free(rj), free(dch), free(drj), free(ic), free(ir);
        return l;
    }
    CHECK(!strcmp(type, "cross_entropy"), "unknown loss type '%s'", type);
    const cJSON *labels = cJSON_GetObjectItemCaseSensitive(loss, "labels");
    int32_t *t = calloc((size_t)B, sizeof *t);
    for (int b = 0; b < B; b++) t[b] = cJSON_GetArrayItem(labels, b)->valueint;
    int n = 0;
    float l = cross_entropy_forward(logits, t, B, NL, &n);
    cross_entropy_backward(dlogits, logits, t, B, NL, n, 1.0f);
    free(t);
    return l;
}

static void test_fixture(const char *name) {
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/hf/%s", TU_FIXTURES, name);
    rlhf_err err = {0};
    model *m = NULL;
    model_load_opts opts = {.quiet = 1, .init_seed = 0};
    rlhf_status st = model_load(&m, dir, HEAD_SEQCLS, &opts, &err);
    CHECK(st == RLHF_OK, "%s: load: %s", name, err.msg);
    if (st != RLHF_OK) return;
    snprintf(path, sizeof path, "%s/inputs.json", dir);
    cJSON *inputs = NULL;
    CHECK(json_load_file(path, &inputs, &err) == RLHF_OK, "%s", err.msg);
    st_file ex;
    snprintf(path, sizeof path, "%s/expected.safetensors", dir);
    CHECK(st_open(&ex, path, &err) == RLHF_OK, "%s", err.msg);

    const cJSON *c = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(inputs, "cases"), "right");
    int B = 0, T = 0, b2, t2;
    int32_t *ids = int_matrix(c, "input_ids", &B, &T);
    int32_t *mask = int_matrix(c, "attention_mask", &b2, &t2);
    int32_t *types = int_matrix(c, "token_type_ids", &b2, &t2);
    model_batch batch = {.B = B, .T = T, .input_ids = ids, .attention_mask = mask, .token_type_ids = types};
    m->keep_hidden_states = 1;
    st = model_forward(m, &batch, &err);
    CHECK(st == RLHF_OK, "%s: forward: %s", name, err.msg);
    const int NL = m->cfg.num_labels, C = m->cfg.hidden_size, L = m->cfg.num_layers;
    char key[256];
    if (st == RLHF_OK) {
        const float *w = expected(&ex, "right.logits");
        snprintf(key, sizeof key, "%s logits", name);
        CHECK(w && tu_close(key, m->out, w, (size_t)B * NL, OUT_ATOL, 0), "%s", key);
        for (int l = 0; l <= L; l++) {
            snprintf(key, sizeof key, "right.hidden_states.%d", l);
            w = expected(&ex, key);
            CHECK(w != NULL, "%s: no %s", name, key);
            snprintf(key, sizeof key, "%s hidden_states.%d", name, l);
            if (w) check_masked(key, m->hidden_states[l], w, mask, B * T, C);
        }
        w = expected(&ex, "right.last_hidden_state");
        if (w) check_masked("last_hidden_state", m->last_hidden, w, mask, B * T, C);

        float *dlogits = calloc((size_t)B * NL, sizeof *dlogits);
        float loss = fixture_loss(cJSON_GetObjectItemCaseSensitive(inputs, "loss"), m->out, B, NL, dlogits);
        const float *wl = expected(&ex, "loss");
        CHECK(wl && fabsf(loss - wl[0]) <= LOSS_ATOL, "%s: loss %.8f, expected %.8f", name, loss, wl ? wl[0] : 0);
        CHECK(model_alloc_grads(m, &err) == RLHF_OK, "%s", err.msg);
        model_zero_grads(m);
        CHECK(model_backward(m, dlogits, NULL, &err) == RLHF_OK, "%s: backward: %s", name, err.msg);
        int n_grads = 0;
        for (int i = 0; i < m->n_specs; i++) {
            const param_spec *p = &m->specs[i];
            snprintf(key, sizeof key, "grad.%s", p->name);
            w = expected(&ex, key);
            CHECK(w != NULL, "%s: fixture lacks %s", name, key);
            if (!w) continue;
            n_grads++;
            snprintf(key, sizeof key, "%s grad %s", name, p->name);
            CHECK(tu_close(key, m->grads + p->offset, w, p->numel, GRAD_ATOL, GRAD_RTOL), "%s", key);
        }
        int n_expected = 0;
        for (int i = 0; i < ex.n; i++) n_expected += !strncmp(ex.tensors[i].name, "grad.", 5);
        CHECK(n_grads == n_expected, "%s: compared %d gradients, fixture has %d", name, n_grads, n_expected);
        free(dlogits);
    }
    free(ids), free(mask), free(types);
    st_close(&ex);
    cJSON_Delete(inputs);
    model_free(m);
}

// Training mode: dropout masks are a pure function of dropout_key (same key, same logits; another key
// differs), and eval mode ignores the key. Uses a copy of the config with dropout switched on.
static void test_dropout(const char *fixture) {
    char path[512];
    snprintf(path, sizeof path, "%s/hf/%s/config.json", TU_FIXTURES, fixture);
    rlhf_err err = {0};
    cJSON *cfg = NULL;
    CHECK(json_load_file(path, &cfg, &err) == RLHF_OK, "%s", err.msg);
    if (!cfg) return;
    cJSON_ReplaceItemInObjectCaseSensitive(cfg, "hidden_dropout_prob", cJSON_CreateNumber(0.3));
    cJSON_ReplaceItemInObjectCaseSensitive(cfg, "attention_probs_dropout_prob", cJSON_CreateNumber(0.3));
    model *m = NULL;
    CHECK(model_create(&m, cfg, HEAD_SEQCLS, 7, &err) == RLHF_OK, "%s", err.msg);
    cJSON_Delete(cfg);
    if (!m) return;
    int32_t ids[2 * 5] = {2, 5, 9, 11, 3, 4, 8, 6, 0, 0};
    int32_t mask[2 * 5] = {1, 1, 1, 1, 1, 1, 1, 1, 0, 0};
    model_batch b = {.B = 2, .T = 5, .input_ids = ids, .attention_mask = mask};
    float out[4][2];
    uint64_t keys[4] = {11, 11, 12, 12};
    int training[4] = {1, 1, 1, 0};
    for (int r = 0; r < 4; r++) {
        b.training = training[r];
        b.dropout_key = keys[r];
        CHECK(model_forward(m, &b, &err) == RLHF_OK, "%s", err.msg);
        memcpy(out[r], m->out, sizeof out[r]);
    }
    CHECK(!memcmp(out[0], out[1], sizeof out[0]), "same dropout key gives the same logits");
    CHECK(memcmp(out[0], out[2], sizeof out[0]), "another dropout key gives other logits");
    CHECK(memcmp(out[0], out[3], sizeof out[0]), "eval differs from training");
    // Eval twice with different keys: identical.
    b.training = 0;
    b.dropout_key = 99;
    CHECK(model_forward(m, &b, &err) == RLHF_OK, "%s", err.msg);
    CHECK(!memcmp(out[3], m->out, sizeof out[3]), "eval ignores the dropout key");
    model_free(m);
}

// no_grad forwards (scoring) give bit-identical outputs and hidden states with a much smaller plan,
// and refuse a backward.
static void test_no_grad(const char *name) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/hf/%s", TU_FIXTURES, name);
    rlhf_err err = {0};
    model *a = NULL, *b = NULL;
    model_load_opts opts = {.quiet = 1};
    CHECK(model_load(&a, dir, HEAD_SEQCLS, &opts, &err) == RLHF_OK, "%s", err.msg);
    CHECK(model_load(&b, dir, HEAD_SEQCLS, &opts, &err) == RLHF_OK, "%s", err.msg);
    if (!a || !b) {
        model_free(a);
        model_free(b);
        return;
    }
    enum { B = 3, T = 24 };
    int32_t ids[B * T], mask[B * T];
    for (int i = 0; i < B * T; i++) {
        ids[i] = 2 + (i * 37) % 100;
        mask[i] = (i % T) < T - 5 * (i / T);
    }
    model_batch batch = {.B = B, .T = T, .input_ids = ids, .attention_mask = mask};
    b->no_grad = 1;
    CHECK(model_forward(a, &batch, &err) == RLHF_OK, "%s", err.msg);
    CHECK(model_forward(b, &batch, &err) == RLHF_OK, "%s", err.msg);
    int L = a->cfg.num_layers, C = a->cfg.hidden_size;
    CHECK(!memcmp(a->out, b->out, sizeof(float) * B * a->cfg.num_labels), "%s: no_grad logits differ", name);
    int same = 1;
    for (int l = 0; l <= L; l++) same &= !memcmp(a->hidden_states[l], b->hidden_states[l], sizeof(float) * B * T * C);
    CHECK(same, "%s: no_grad hidden states differ", name);
    // no_grad keeps one layer's activations: every further layer's q, k, v, ctx, res1, ln1, res2 and fc1 (at
    // least 8 (B, T, C) buffers) are not in its plan (nor the backward's gradient buffers)
    CHECK(b->acts.cap < a->acts.cap && a->acts.cap - b->acts.cap >= (size_t)(L - 1) * 8 * B * T * C * sizeof(float),
          "%s: no_grad plan %zu bytes vs %zu", name, b->acts.cap, a->acts.cap);
    float dout[B * 2] = {0};
    CHECK(model_backward(b, dout, NULL, &err) == RLHF_ERUNTIME && strstr(err.msg, "no_grad"), "%s: %s", name,
          err.msg);
    model_free(a);
    model_free(b);
}

// Input checks: families without token types ignore them (HF's DistilBERT has no such input); bad
// ids, types and over-long sequences are RLHF_EINPUT naming the limit.
static void test_inputs(void) {
    char dir[512];
    rlhf_err err = {0};
    model_load_opts opts = {.quiet = 1};
    model *d = NULL, *bert = NULL;
    snprintf(dir, sizeof dir, "%s/hf/distilbert_seqcls_1", TU_FIXTURES);
    CHECK(model_load(&d, dir, HEAD_SEQCLS, &opts, &err) == RLHF_OK, "%s", err.msg);
    snprintf(dir, sizeof dir, "%s/hf/bert_seqcls_1", TU_FIXTURES);
    CHECK(model_load(&bert, dir, HEAD_SEQCLS, &opts, &err) == RLHF_OK, "%s", err.msg);
    if (!d || !bert) {
        model_free(d);
        model_free(bert);
        return;
    }
    int32_t ids[2 * 4] = {5, 6, 7, 8, 9, 10, 11, 12}, types[2 * 4] = {0, 0, 1, 1, 0, 1, 1, 1};
    model_batch b = {.B = 2, .T = 4, .input_ids = ids};
    CHECK(model_forward(d, &b, &err) == RLHF_OK, "%s", err.msg);
    float plain[2];
    memcpy(plain, d->out, sizeof plain);
    b.token_type_ids = types;
    CHECK(model_forward(d, &b, &err) == RLHF_OK, "%s", err.msg);
    CHECK(!memcmp(plain, d->out, sizeof plain), "distilbert ignores token_type_ids");
    CHECK(model_forward(bert, &b, &err) == RLHF_OK, "%s", err.msg);
    types[3] = 2;
    CHECK(model_forward(bert, &b, &err) == RLHF_EINPUT && strstr(err.msg, "type_vocab_size"), "%s", err.msg);
    types[3] = 1;
    ids[5] = 128;
    CHECK(model_forward(bert, &b, &err) == RLHF_EINPUT && strstr(err.msg, "vocabulary"), "%s", err.msg);
    enum { LONG = 40 };  // the fixture's max_position_embeddings is 32
    int32_t long_ids[LONG] = {0};
    model_batch lb = {.B = 1, .T = LONG, .input_ids = long_ids};
    CHECK(model_forward(bert, &lb, &err) == RLHF_EINPUT && strstr(err.msg, "max_position_embeddings"), "%s",
          err.msg);
    model_free(d);
    model_free(bert);
}

// With dropout on (the fixtures have it off), the backward must regenerate exactly the forward's
// masks: analytic gradients of loss = sum(logits * w) match central differences at a fixed key.
#define FD_EPS 2e-3f
#define FD_RTOL 3e-2
#define FD_ATOL 2e-3
static double weighted_logits(model *m, const model_batch *b, const float *w) {
    rlhf_err err;
    if (model_forward(m, b, &err) != RLHF_OK) return NAN;
    double l = 0;
    for (int i = 0; i < b->B * m->cfg.num_labels; i++) l += (double)m->out[i] * w[i];
    return l;
}

static void test_dropout_gradients(const char *fixture, const char *const *dropout_keys, int n_keys) {
    char path[512];
    snprintf(path, sizeof path, "%s/hf/%s/config.json", TU_FIXTURES, fixture);
    rlhf_err err = {0};
    cJSON *cfg = NULL;
    CHECK(json_load_file(path, &cfg, &err) == RLHF_OK, "%s", err.msg);
    if (!cfg) return;
    for (int i = 0; i < n_keys; i++) {
        cJSON_DeleteItemFromObjectCaseSensitive(cfg, dropout_keys[i]);
        cJSON_AddNumberToObject(cfg, dropout_keys[i], 0.25);
    }
    model *m = NULL;
    CHECK(model_create(&m, cfg, HEAD_SEQCLS, 3, &err) == RLHF_OK, "%s: %s", fixture, err.msg);
    cJSON_Delete(cfg);
    if (!m) return;
    enum { B = 2, T = 6 };
    int32_t ids[B * T] = {5, 17, 33, 9, 60, 2, 7, 44, 21, 90, 3, 3};
    int32_t mask[B * T] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0};
    model_batch b = {.B = B, .T = T, .input_ids = ids, .attention_mask = mask, .training = 1, .dropout_key = 1234};
    float w[B * 4] = {0.7f, -1.3f, 0.4f, 0.9f, -0.2f, 1.1f, 0.5f, -0.8f};
    CHECK(model_alloc_grads(m, &err) == RLHF_OK, "%s", err.msg);
    model_zero_grads(m);
    weighted_logits(m, &b, w);
    CHECK(model_backward(m, w, NULL, &err) == RLHF_OK, "%s", err.msg);
    int bad = 0, checked = 0;
    for (int i = 0; i < m->n_specs; i++) {
        const param_spec *p = &m->specs[i];
        for (int k = 0; k < 2; k++) {
            size_t j = (size_t)((k * 7919 + i * 104729) % (long)p->numel);
            float *x = m->params + p->offset + j, x0 = *x;
            if (p->padding_row >= 0 && p->ndim == 2 && (int64_t)(j / (size_t)p->shape[1]) == p->padding_row) continue;
            *x = x0 + FD_EPS;
            double up = weighted_logits(m, &b, w);
            *x = x0 - FD_EPS;
            double down = weighted_logits(m, &b, w);
            *x = x0;
            double fd = (up - down) / (2.0 * FD_EPS), g = m->grads[p->offset + j];
            checked++;
            if (!(fabs(fd - g) <= FD_ATOL + FD_RTOL * fabs(fd))) {
                if (bad++ < 5) fprintf(stderr, "  %s %s[%zu]: analytic %.6g, finite difference %.6g\n", fixture, p->name, j, g, fd);
            }
        }
    }
    CHECK(bad == 0, "%s: %d of %d gradient entries disagree with finite differences under dropout", fixture, bad,
          checked);
    model_free(m);
}

int main(void) {
    for (size_t i = 0; i < sizeof ENCODER_FIXTURES / sizeof ENCODER_FIXTURES[0]; i++)
        test_fixture(ENCODER_FIXTURES[i]);
    test_dropout("bert_seqcls_1");
    test_dropout("debertav2_seqcls_1");
    test_inputs();
    const char *bert_drop[] = {"hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout"};
    test_dropout_gradients("bert_seqcls_1", bert_drop, 3);
    test_dropout_gradients("roberta_seqcls_1", bert_drop, 3);
    const char *distil_drop[] = {"dropout", "attention_dropout", "seq_classif_dropout"};
    test_dropout_gradients("distilbert_seqcls_1", distil_drop, 3);
    const char *deberta_drop[] = {"hidden_dropout_prob", "attention_probs_dropout_prob", "pooler_dropout", "cls_dropout"};
    test_dropout_gradients("debertav2_seqcls_1", deberta_drop, 4);
    test_no_grad("bert_seqcls_2");
    test_no_grad("debertav2_seqcls_1");
    return tu_finish("models_encoders");
}
