// GPT-2, GPT-NeoX, Llama, Mistral, Qwen2, Gemma, Gemma 2 and Phi-3 against the transformers 4.44
// fixtures (tests/fixtures/hf/*):
// logits and every hidden state on real tokens in the three padding cases (right, left with default
// positions, left with cumsum positions), the loss, every parameter's gradient, and a byte-identical
// save of the loaded tensors.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/json_util.h"
#include "io/safetensors.h"
#include "models/decoder.h"
#include "models/model.h"
#include "nn/ops.h"
#include "testutil.h"

#define OUT_ATOL 1e-4   // logits / hidden states vs transformers (brief: 1e-4)
#define LOSS_ATOL 1e-5  // scalar loss
#define GRAD_RTOL 1e-3  // gradients: relative to the tensor's largest entry

typedef struct {
    int B, T;
    int32_t *ids, *mask, *pos;
} fx_case;

static int32_t *read_matrix(const cJSON *arr, int *B, int *T) {
    *B = cJSON_GetArraySize(arr);
    *T = cJSON_GetArraySize(cJSON_GetArrayItem(arr, 0));
    int32_t *out = malloc(sizeof(int32_t) * (size_t)*B * *T);
    for (int b = 0; b < *B; b++)
        for (int t = 0; t < *T; t++) out[b * *T + t] = cJSON_GetArrayItem(cJSON_GetArrayItem(arr, b), t)->valueint;
    return out;
}

static void load_case(const cJSON *inputs, const char *name, fx_case *c) {
    const cJSON *cs = cJSON_GetObjectItem(cJSON_GetObjectItem(inputs, "cases"), name);
    c->ids = read_matrix(cJSON_GetObjectItem(cs, "input_ids"), &c->B, &c->T);
    c->mask = read_matrix(cJSON_GetObjectItem(cs, "attention_mask"), &c->B, &c->T);
    const cJSON *p = cJSON_GetObjectItem(cs, "position_ids");
    c->pos = p ? read_matrix(p, &c->B, &c->T) : NULL;
}
static void free_case(fx_case *c) {
    free(c->ids);
    free(c->mask);
    free(c->pos);
}

static float *expected(const st_file *f, const char *name, size_t *n) {
    const st_tensor *t = st_find(f, name);
    if (!t) return NULL;
    float *out = malloc(sizeof(float) * (size_t)t->numel);
    rlhf_err err;
    if (st_to_f32(t, out, &err) != RLHF_OK) {
        free(out);
        return NULL;
    }
    *n = (size_t)t->numel;
    return out;
}

// Compares rows (B*T of width W) only where mask == 1.
static void close_on_real(const char *name, const float *got, const float *want, const int32_t *mask, int BT, int W) {
    float *g = malloc(sizeof(float) * (size_t)BT * W), *w = malloc(sizeof(float) * (size_t)BT * W);
    size_t n = 0;
    for (int i = 0; i < BT; i++)
        if (mask[i]) {
            memcpy(g + n, got + (size_t)i * W, sizeof(float) * W);
            memcpy(w + n, want + (size_t)i * W, sizeof(float) * W);
            n += W;
        }
    CHECK(tu_close(name, g, w, n, OUT_ATOL, 0), "%s", name);
    free(g);
    free(w);
}

static double max_abs(const float *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(x[i]));
    return m;
}

// Loss of the right-padded case per the fixture's README; fills dout (m->out's shape).
static float fixture_loss(const model *m, const fx_case *c, float *dout) {
    if (m->head == HEAD_LM) {
        int N = c->B * c->T, V = m->cfg.vocab_size, n_counted;
        int32_t *targets = malloc(sizeof(int32_t) * N);
        for (int b = 0; b < c->B; b++)
            for (int t = 0; t < c->T; t++) {
                int i = b * c->T + t;
                targets[i] = t + 1 < c->T && c->mask[i + 1] ? c->ids[i + 1] : CE_IGNORE_INDEX;
            }
        float loss = cross_entropy_forward(m->out, targets, N, V, &n_counted);
        memset(dout, 0, sizeof(float) * (size_t)N * V);
        cross_entropy_backward(dout, m->out, targets, N, V, n_counted, 1.0f);
        free(targets);
        return loss;
    }
    int NL = m->cfg.num_labels, P = c->B / 2;
    float chosen[8], rejected[8], dc[8] = {0}, dr[8] = {0};
    for (int p = 0; p < P; p++) chosen[p] = m->out[(2 * p) * NL], rejected[p] = m->out[(2 * p + 1) * NL];
    float loss = pairwise_loss_forward(chosen, rejected, NULL, 0.0f, P);
    pairwise_loss_backward(dc, dr, chosen, rejected, NULL, 0.0f, P, 1.0f);
    memset(dout, 0, sizeof(float) * (size_t)c->B * NL);
    for (int p = 0; p < P; p++) dout[(2 * p) * NL] = dc[p], dout[(2 * p + 1) * NL] = dr[p];
    return loss;
}

static void check_save_identical(const model *m, const char *dir) {
    char tmp[] = "/tmp/rlhf_test_dec_XXXXXX", a[512], b[512];
    if (!mkdtemp(tmp)) {
        CHECK(0, "mkdtemp");
        return;
    }
    rlhf_err err;
    CHECK(model_save(m, tmp, &err) == RLHF_OK, "save: %s", err.msg);
    snprintf(a, sizeof a, "%s/model.safetensors", dir);
    snprintf(b, sizeof b, "%s/model.safetensors", tmp);
    st_file fa, fb;
    if (st_open(&fa, a, &err) == RLHF_OK) {
        if (st_open(&fb, b, &err) == RLHF_OK) {
            CHECK(fa.n == fb.n, "%s: %d tensors saved, HF saved %d", dir, fb.n, fa.n);
            for (int i = 0; i < fa.n; i++) {
                const st_tensor *t = st_find(&fb, fa.tensors[i].name);
                CHECK(t && t->nbytes == fa.tensors[i].nbytes && !memcmp(t->data, fa.tensors[i].data, t->nbytes),
                      "%s: tensor %s differs after load+save", dir, fa.tensors[i].name);
            }
            st_close(&fb);
        }
        st_close(&fa);
    }
    unlink(b);
    snprintf(b, sizeof b, "%s/config.json", tmp);
    unlink(b);
    rmdir(tmp);
}

static void run_fixture(const char *name, model_head head) {
    char dir[256], path[300];
    snprintf(dir, sizeof dir, TU_FIXTURES "/hf/%s", name);
    rlhf_err err;
    model *m = NULL;
    model_load_opts opts = {.quiet = 1, .init_seed = 0};
    if (model_load(&m, dir, head, &opts, &err) != RLHF_OK) {
        CHECK(0, "%s: load: %s", name, err.msg);
        return;
    }
    cJSON *inputs = NULL;
    snprintf(path, sizeof path, "%s/inputs.json", dir);
    CHECK(json_load_file(path, &inputs, &err) == RLHF_OK, "%s", err.msg);
    st_file exp;
    snprintf(path, sizeof path, "%s/expected.safetensors", dir);
    CHECK(st_open(&exp, path, &err) == RLHF_OK, "%s", err.msg);
    m->keep_hidden_states = 1;
    int L = m->cfg.num_layers, C = m->cfg.hidden_size;
    const char *cases[] = {"right", "left", "left_pos"};
    for (int ci = 0; ci < 3; ci++) {
        fx_case c;
        load_case(inputs, cases[ci], &c);
        model_batch b = {.B = c.B, .T = c.T, .input_ids = c.ids, .attention_mask = c.mask, .position_ids = c.pos};
        CHECK(model_forward(m, &b, &err) == RLHF_OK, "%s: forward: %s", name, err.msg);
        char key[256], label[512];
        size_t n;
        snprintf(key, sizeof key, "%s.logits", cases[ci]);
        float *want = expected(&exp, key, &n);
        snprintf(label, sizeof label, "%s %s", name, key);
        if (head == HEAD_LM) {
            CHECK(want && n == (size_t)c.B * c.T * m->cfg.vocab_size, "%s size", label);
            if (want) close_on_real(label, m->out, want, c.mask, c.B * c.T, m->cfg.vocab_size);
        } else {
            CHECK(want && n == (size_t)c.B * m->cfg.num_labels, "%s size", label);
            if (want) CHECK(tu_close(label, m->out, want, n, OUT_ATOL, 0), "%s", label);
            // the pooled position agrees with HF's seqcls_pool_index
            int pool[16];
            decoder_pool_index(pool, c.mask, c.B, c.T);
            const cJSON *pi = cJSON_GetObjectItem(cJSON_GetObjectItem(inputs, "seqcls_pool_index"), cases[ci]);
            for (int r = 0; r < c.B && pi; r++)
                CHECK(pool[r] == cJSON_GetArrayItem(pi, r)->valueint, "%s row %d pool %d", label, r, pool[r]);
        }
        free(want);
        for (int i = 0; i <= L; i++) {
            snprintf(key, sizeof key, "%s.hidden_states.%d", cases[ci], i);
            snprintf(label, sizeof label, "%s %s", name, key);
            want = expected(&exp, key, &n);
            CHECK(want && n == (size_t)c.B * c.T * C, "%s missing", label);
            if (want) close_on_real(label, m->hidden_states[i], want, c.mask, c.B * c.T, C);
            free(want);
        }
        if (ci == 0) {  // loss and gradients on the right-padded case
            size_t nout = head == HEAD_LM ? (size_t)c.B * c.T * m->cfg.vocab_size : (size_t)c.B * m->cfg.num_labels;
            float *dout = malloc(sizeof(float) * nout);
            float loss = fixture_loss(m, &c, dout);
            float *wl = expected(&exp, "loss", &n);
            CHECK(wl && fabsf(loss - wl[0]) <= LOSS_ATOL, "%s loss %.7f vs HF %.7f", name, loss, wl ? wl[0] : NAN);
            free(wl);
            model_alloc_grads(m, &err);
            model_zero_grads(m);
            CHECK(model_backward(m, dout, NULL, &err) == RLHF_OK, "%s backward: %s", name, err.msg);
            int n_checked = 0;
            for (int s = 0; s < m->n_specs; s++) {
                snprintf(key, sizeof key, "grad.%s", m->specs[s].name);
                want = expected(&exp, key, &n);
                CHECK(want && n == m->specs[s].numel, "%s: %s missing", name, key);
                if (!want) continue;
                snprintf(label, sizeof label, "%s %s", name, key);
                double tol = GRAD_RTOL * max_abs(want, n) + 1e-7;
                CHECK(tu_close(label, m->grads + m->specs[s].offset, want, n, tol, GRAD_RTOL), "%s", label);
                n_checked++;
                free(want);
            }
            const cJSON *gp = cJSON_GetObjectItem(inputs, "grad_params");
            CHECK(n_checked == cJSON_GetArraySize(gp), "%s: %d grads checked, fixture has %d", name, n_checked,
                  cJSON_GetArraySize(gp));
            free(dout);
        }
        free_case(&c);
    }
    check_save_identical(m, dir);
    st_close(&exp);
    cJSON_Delete(inputs);
    model_free(m);
}

// Finite differences through training-mode forward (dropout on, fixed key) on tiny random models:
// dropout, GQA, parallel residual and partial rotary backward paths that the (eval-mode) fixtures
// do not reach. L = sum(out * g); a few entries of every tensor are perturbed.
static double probe_loss(model *m, const model_batch *b, const float *g, size_t n_out) {
    rlhf_err err;
    if (model_forward(m, b, &err) != RLHF_OK) return NAN;
    double s = 0;
    for (size_t i = 0; i < n_out; i++) s += (double)m->out[i] * g[i];
    return s;
}

static void gradcheck(const char *json, model_head head) {
    rlhf_err err;
    cJSON *cfg = cJSON_Parse(json);
    model *m;
    if (model_create(&m, cfg, head, 3, &err) != RLHF_OK) {
        CHECK(0, "create: %s", err.msg);
        cJSON_Delete(cfg);
        return;
    }
    cJSON_Delete(cfg);
    for (size_t i = 0; i < m->n_params; i++) m->params[i] += 0.05f * sinf((float)i);  // non-trivial norms/biases
    enum { B = 2, T = 5 };
    int32_t ids[B * T] = {1, 4, 7, 2, 9, 3, 3, 8, 0, 0}, mask[B * T] = {1, 1, 1, 1, 1, 1, 1, 1, 0, 0};
    model_batch b = {.B = B, .T = T, .input_ids = ids, .attention_mask = mask, .training = 1, .dropout_key = 77};
    probe_loss(m, &b, NULL, 0);
    size_t n_out = head == HEAD_LM ? (size_t)B * T * m->cfg.vocab_size : (size_t)B * m->cfg.num_labels;
    float *g = malloc(sizeof(float) * n_out);
    for (size_t i = 0; i < n_out; i++) g[i] = cosf(0.37f * i);
    if (head == HEAD_LM)  // padding positions are not read
        for (int r = 0; r < B * T; r++)
            if (!mask[r])
                for (int v = 0; v < m->cfg.vocab_size; v++) g[(size_t)r * m->cfg.vocab_size + v] = 0;
    model_alloc_grads(m, &err);
    model_zero_grads(m);
    probe_loss(m, &b, g, n_out);
    CHECK(model_backward(m, g, NULL, &err) == RLHF_OK, "%s", err.msg);
    const double eps = 1e-2;
    int bad = 0, checked = 0;
    for (int s = 0; s < m->n_specs; s++) {
        const param_spec *p = &m->specs[s];
        for (int k = 0; k < 3; k++) {
            size_t j = p->offset + (size_t)(k * 7919) % p->numel;
            float keep = m->params[j];
            m->params[j] = keep + (float)eps;
            double up = probe_loss(m, &b, g, n_out);
            m->params[j] = keep - (float)eps;
            double down = probe_loss(m, &b, g, n_out);
            m->params[j] = keep;
            double fd = (up - down) / (2 * eps), an = m->grads[j];
            checked++;
            if (fabs(fd - an) > 2e-2 * fmax(1.0, fabs(fd))) {
                bad++;
                fprintf(stderr, "  %s %s[%zu]: analytic %.5f, finite difference %.5f\n", m->cfg.model_type, p->name,
                        j - p->offset, an, fd);
            }
        }
    }
    CHECK(bad == 0, "%s: %d of %d gradient probes disagree with finite differences", m->cfg.model_type, bad, checked);
    free(g);
    model_free(m);
}

int main(void) {
    gradcheck("{\"model_type\": \"gpt2\", \"vocab_size\": 11, \"n_embd\": 8, \"n_layer\": 2, \"n_head\": 2,"
              " \"n_positions\": 8, \"resid_pdrop\": 0.2, \"embd_pdrop\": 0.2, \"attn_pdrop\": 0.2,"
              " \"initializer_range\": 0.3}", HEAD_LM);
    gradcheck("{\"model_type\": \"gpt_neox\", \"vocab_size\": 11, \"hidden_size\": 8, \"num_hidden_layers\": 2,"
              " \"num_attention_heads\": 2, \"intermediate_size\": 12, \"rotary_pct\": 0.5,"
              " \"hidden_dropout\": 0.2, \"attention_dropout\": 0.2, \"initializer_range\": 0.3}", HEAD_LM);
    gradcheck("{\"model_type\": \"gpt_neox\", \"vocab_size\": 11, \"hidden_size\": 8, \"num_hidden_layers\": 1,"
              " \"num_attention_heads\": 2, \"intermediate_size\": 12, \"use_parallel_residual\": false, \"rotary_pct\": 1.0,"
              " \"tie_word_embeddings\": true, \"initializer_range\": 0.3}", HEAD_LM);
    gradcheck("{\"model_type\": \"llama\", \"vocab_size\": 11, \"hidden_size\": 8, \"num_hidden_layers\": 2,"
              " \"num_attention_heads\": 4, \"num_key_value_heads\": 1, \"intermediate_size\": 12,"
              " \"attention_dropout\": 0.2, \"tie_word_embeddings\": true, \"pad_token_id\": 0,"
              " \"initializer_range\": 0.3}", HEAD_LM);
    gradcheck("{\"model_type\": \"mistral\", \"vocab_size\": 11, \"hidden_size\": 8, \"num_hidden_layers\": 1,"
              " \"num_attention_heads\": 2, \"num_key_value_heads\": 2, \"intermediate_size\": 12,"
              " \"sliding_window\": 2, \"num_labels\": 2, \"initializer_range\": 0.3}", HEAD_SEQCLS);
    // Qwen2: q/k/v biases, GQA, tied head, use_sliding_window on layers >= max_window_layers (1)
    gradcheck("{\"model_type\": \"qwen2\", \"vocab_size\": 11, \"hidden_size\": 8, \"num_hidden_layers\": 2,"
              " \"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"intermediate_size\": 12,"
              " \"attention_dropout\": 0.2, \"tie_word_embeddings\": true, \"pad_token_id\": 0,"
              " \"use_sliding_window\": true, \"sliding_window\": 2, \"max_window_layers\": 1,"
              " \"initializer_range\": 0.3}", HEAD_LM);
    // Gemma: scaled embeddings, (1 + w) norms, GeGLU, head_dim independent of hidden / heads, biases
    gradcheck("{\"model_type\": \"gemma\", \"vocab_size\": 11, \"hidden_size\": 8, \"num_hidden_layers\": 2,"
              " \"num_attention_heads\": 2, \"num_key_value_heads\": 1, \"head_dim\": 6, \"intermediate_size\": 12,"
              " \"attention_bias\": true, \"attention_dropout\": 0.2, \"initializer_range\": 0.3}", HEAD_LM);
    // Gemma 2: sandwich norms, both soft-caps biting, window 2 on layer 0 only, query_pre_attn_scalar
    gradcheck("{\"model_type\": \"gemma2\", \"vocab_size\": 11, \"hidden_size\": 8, \"num_hidden_layers\": 2,"
              " \"num_attention_heads\": 2, \"num_key_value_heads\": 1, \"head_dim\": 6, \"intermediate_size\": 12,"
              " \"query_pre_attn_scalar\": 3, \"attn_logit_softcapping\": 0.5, \"final_logit_softcapping\": 0.4,"
              " \"sliding_window\": 2, \"initializer_range\": 0.5}", HEAD_LM);
    gradcheck("{\"model_type\": \"gemma2\", \"vocab_size\": 11, \"hidden_size\": 8, \"num_hidden_layers\": 1,"
              " \"num_attention_heads\": 2, \"num_key_value_heads\": 2, \"head_dim\": 4, \"intermediate_size\": 12,"
              " \"attn_logit_softcapping\": 0.5, \"sliding_window\": 2, \"num_labels\": 2,"
              " \"initializer_range\": 0.5}", HEAD_SEQCLS);
    // Phi-3: fused qkv with GQA, fused gate_up, residual dropout, LongRoPE past original_max (3 < T)
    gradcheck("{\"model_type\": \"phi3\", \"vocab_size\": 11, \"hidden_size\": 8, \"num_hidden_layers\": 2,"
              " \"num_attention_heads\": 2, \"num_key_value_heads\": 1, \"intermediate_size\": 12,"
              " \"resid_pdrop\": 0.2, \"attention_dropout\": 0.2, \"max_position_embeddings\": 12,"
              " \"original_max_position_embeddings\": 3, \"rope_scaling\": {\"type\": \"su\","
              " \"short_factor\": [1.0, 1.5], \"long_factor\": [2.0, 3.0]}, \"initializer_range\": 0.3}", HEAD_LM);
    gradcheck("{\"model_type\": \"phi3\", \"vocab_size\": 11, \"hidden_size\": 8, \"num_hidden_layers\": 1,"
              " \"num_attention_heads\": 2, \"intermediate_size\": 12, \"num_labels\": 1,"
              " \"initializer_range\": 0.3}", HEAD_SEQCLS);
    run_fixture("gpt2_lm", HEAD_LM);
    run_fixture("gpt2_seqcls_1", HEAD_SEQCLS);
    run_fixture("gptneox_lm", HEAD_LM);
    run_fixture("gptneox_seqcls_1", HEAD_SEQCLS);
    run_fixture("llama_lm", HEAD_LM);
    run_fixture("llama_seqcls_1", HEAD_SEQCLS);
    run_fixture("mistral_lm", HEAD_LM);
    run_fixture("qwen2_lm", HEAD_LM);
    run_fixture("qwen2_seqcls_1", HEAD_SEQCLS);
    run_fixture("gemma_lm", HEAD_LM);
    run_fixture("gemma_seqcls_1", HEAD_SEQCLS);
    run_fixture("gemma2_lm", HEAD_LM);
    run_fixture("gemma2_seqcls_1", HEAD_SEQCLS);
    run_fixture("phi3_lm", HEAD_LM);
    run_fixture("phi3_seqcls_1", HEAD_SEQCLS);
    return tu_finish("models_decoders");
}
