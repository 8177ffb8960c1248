// Frozen models: the no_grad forward (torch.no_grad: one layer's activations, reused by every layer) of
// every family gives bit-identical outputs to the training forward with a smaller activation arena, and
// a backward after it is refused; a frozen model loaded from a bf16 checkpoint keeps its weights bf16 and
// gives the outputs of the fp32 model loaded from the same file; the bf16 panel kernels equal fp32 ones.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/json_util.h"
#include "models/model.h"
#include "models/peft.h"
#include "nn/linear_bf16.h"
#include "nn/ops.h"
#include "testutil.h"

typedef struct {
    int B, T;
    int32_t *ids, *mask;
} fx_case;

static int32_t *read_matrix(const cJSON *arr, int *B, int *T) {
    *B = cJSON_GetArraySize(arr);
    *T = cJSON_GetArraySize(cJSON_GetArrayItem(arr, 0));
    int32_t *out = malloc(sizeof(int32_t) * (size_t)*B * *T);
    for (int b = 0; b < *B; b++)
        for (int t = 0; t < *T; t++) out[b * *T + t] = cJSON_GetArrayItem(cJSON_GetArrayItem(arr, b), t)->valueint;
    return out;
}

// The fixture's left-padded case (decoders) or its right-padded one (encoders).
static int load_case(const char *dir, fx_case *c) {
    char path[300];
    snprintf(path, sizeof path, "%s/inputs.json", dir);
    cJSON *in = NULL;
    rlhf_err err;
    if (json_load_file(path, &in, &err) != RLHF_OK) return 0;
    const cJSON *cases = cJSON_GetObjectItem(in, "cases");
    const cJSON *cs = cJSON_GetObjectItem(cases, "left");
    if (!cs) cs = cJSON_GetObjectItem(cases, "right");
    const cJSON *ids = cJSON_GetObjectItem(cs, "input_ids"), *mask = cJSON_GetObjectItem(cs, "attention_mask");
    int ok = ids && mask;
    if (ok) {
        c->ids = read_matrix(ids, &c->B, &c->T);
        c->mask = read_matrix(mask, &c->B, &c->T);
    }
    cJSON_Delete(in);
    return ok;
}

static size_t out_size(const model *m, const fx_case *c) {
    return m->head == HEAD_LM ? (size_t)c->B * c->T * m->cfg.vocab_size : (size_t)c->B * m->cfg.num_labels;
}

static void no_grad_case(const char *name, model_head head) {
    char dir[256];
    snprintf(dir, sizeof dir, TU_FIXTURES "/hf/%s", name);
    rlhf_err err;
    model *a = NULL, *b = NULL;
    model_load_opts opts = {.quiet = 1, .init_seed = 0};
    if (model_load(&a, dir, head, &opts, &err) != RLHF_OK || model_load(&b, dir, head, &opts, &err) != RLHF_OK) {
        CHECK(0, "%s: load: %s", name, err.msg);
        model_free(a);
        return;
    }
    fx_case c = {0};
    CHECK(load_case(dir, &c), "%s: inputs", name);
    if (!c.ids) goto out;
    model_batch mb = {.B = c.B, .T = c.T, .input_ids = c.ids, .attention_mask = c.mask};
    CHECK(model_forward(a, &mb, &err) == RLHF_OK, "%s: forward: %s", name, err.msg);
    CHECK(model_forward_no_grad(b, &mb, &err) == RLHF_OK, "%s: no_grad forward: %s", name, err.msg);
    size_t n = out_size(a, &c), C = (size_t)a->cfg.hidden_size;
    CHECK(!memcmp(a->out, b->out, n * sizeof(float)), "%s: no_grad outputs differ", name);
    if (a->cfg.is_decoder)  // encoders' last_hidden is the last layer's output, the same buffer kind
        CHECK(!memcmp(a->last_hidden, b->last_hidden, (size_t)c.B * c.T * C * sizeof(float)),
              "%s: no_grad last hidden state differs", name);
    CHECK(b->acts.cap < a->acts.cap, "%s: no_grad arena %zu bytes, training forward's %zu", name, b->acts.cap,
          a->acts.cap);
    CHECK(b->no_grad == 0, "%s: model_forward_no_grad left no_grad set", name);
    // a scorer's activations freed between uses (model_release_activations): the next forward lays its
    // arena out again (a family that kept its old plan would write into freed memory) with the same outputs
    model_release_activations(b);
    CHECK(b->acts.base == NULL && b->out == NULL, "%s: activations not released", name);
    CHECK(model_forward_no_grad(b, &mb, &err) == RLHF_OK, "%s: no_grad forward after release: %s", name, err.msg);
    CHECK(b->acts.base != NULL && b->out != NULL && !memcmp(a->out, b->out, n * sizeof(float)),
          "%s: no_grad forward after release differs", name);
    // a backward needs the training forward's activations
    float *dout = calloc(n, sizeof(float));
    CHECK(model_backward(b, dout, NULL, &err) != RLHF_OK && strstr(err.msg, "no_grad"),
          "%s: backward after a no_grad forward was not refused", name);
    // and a training forward after it works again, with the same outputs
    CHECK(model_forward(b, &mb, &err) == RLHF_OK && !memcmp(a->out, b->out, n * sizeof(float)),
          "%s: training forward after no_grad", name);
    CHECK(model_backward(b, dout, NULL, &err) == RLHF_OK, "%s: backward: %s", name, err.msg);
    free(dout);
out:
    free(c.ids);
    free(c.mask);
    model_free(a);
    model_free(b);
}

// The fixture saved in bf16 (model_save rounds to nearest even), then loaded twice: plain (fp32 widened
// from bf16) and frozen (bf16 kept): the outputs agree bit for bit, the frozen one holds its big tensors
// in half the bytes, and a backward on it is refused.
static void bf16_case(const char *name, model_head head) {
    char dir[256], tmp[] = "/tmp/rlhf-frozen-XXXXXX";
    snprintf(dir, sizeof dir, TU_FIXTURES "/hf/%s", name);
    rlhf_err err;
    model *src = NULL, *a = NULL, *b = NULL;
    model_load_opts opts = {.quiet = 1, .init_seed = 0}, fro = {.quiet = 1, .init_seed = 0, .frozen = 1};
    CHECK(mkdtemp(tmp) != NULL, "mkdtemp");
    if (model_load(&src, dir, head, &opts, &err) != RLHF_OK || model_set_torch_dtype(src, "bfloat16", &err) ||
        model_save(src, tmp, &err) || model_load(&a, tmp, head, &opts, &err) ||
        model_load(&b, tmp, head, &fro, &err)) {
        CHECK(0, "%s: bf16 round trip: %s", name, err.msg);
        goto out;
    }
    int nt = 0;
    int64_t bytes = peft_bf16_bytes(b, &nt);
    CHECK(nt > 0 && bytes > (int64_t)a->n_params, "%s: %d tensors (%lld bytes) kept bf16", name, nt, (long long)bytes);
    CHECK(b->no_grad == 1 && peft_bf16_bytes(a, NULL) == 0, "%s: frozen flags", name);
    fx_case c = {0};
    CHECK(load_case(dir, &c), "%s: inputs", name);
    if (c.ids) {
        model_batch mb = {.B = c.B, .T = c.T, .input_ids = c.ids, .attention_mask = c.mask};
        CHECK(model_forward_no_grad(a, &mb, &err) == RLHF_OK, "%s: fp32 forward: %s", name, err.msg);
        CHECK(model_forward(b, &mb, &err) == RLHF_OK, "%s: bf16 forward: %s", name, err.msg);
        size_t n = out_size(a, &c);
        CHECK(!memcmp(a->out, b->out, n * sizeof(float)), "%s: bf16-kept outputs differ from the fp32 load", name);
        float *dout = calloc(n, sizeof(float));
        CHECK(model_backward(b, dout, NULL, &err) != RLHF_OK, "%s: backward on a frozen bf16 model ran", name);
        free(dout);
        // merge_and_unload widens it back to a plain fp32 model with the same outputs
        CHECK(peft_merge_and_unload(b, &err) == RLHF_OK && peft_bf16_bytes(b, NULL) == 0, "%s: unload", name);
        float *keep = malloc(n * sizeof(float));
        memcpy(keep, a->out, n * sizeof(float));
        CHECK(model_forward(b, &mb, &err) == RLHF_OK && !memcmp(keep, b->out, n * sizeof(float)),
              "%s: widened model's outputs", name);
        free(keep);
    }
    free(c.ids);
    free(c.mask);
out:
    if (tmp[0]) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
        CHECK(system(cmd) == 0, "rm");
    }
    model_free(src);
    model_free(a);
    model_free(b);
}

static uint16_t to_bf16(float x) {  // truncation is enough for test data
    uint32_t u;
    memcpy(&u, &x, 4);
    return (uint16_t)(u >> 16);
}

// Several panels (a small panel size) against the fp32 op on the widened weight, both layouts.
static void panel_kernels(void) {
    const int N = 5, C = 7, OC = 11;
    uint16_t w[7 * 11];
    float wf[7 * 11], inp[5 * 7], bias[11], want[5 * 11], got[5 * 11], table_f[11 * 7], rows[3 * 7];
    for (int i = 0; i < C * OC; i++) w[i] = to_bf16((float)((i * 37) % 23 - 11) / 7.0f);
    bf16_to_f32(wf, w, (size_t)C * OC);
    for (int i = 0; i < N * C; i++) inp[i] = (float)((i * 13) % 17 - 8) / 5.0f;
    for (int j = 0; j < OC; j++) bias[j] = (float)j / 3.0f;
    for (int conv = 0; conv < 2; conv++)
        for (size_t panel = 1; panel <= (size_t)C * OC; panel += 20) {
            float scratch[7 * 11 + 5 * 11];
            CHECK(linear_bf16_scratch(N, C, OC, panel) <= sizeof scratch / sizeof *scratch, "scratch size");
            if (conv)
                conv1d_forward(want, inp, wf, bias, N, C, OC);
            else
                linear_forward(want, inp, wf, bias, N, C, OC);
            linear_bf16_forward(got, inp, w, bias, N, C, OC, conv, scratch, panel);
            CHECK(!memcmp(want, got, sizeof want), "bf16 %s panel %zu differs", conv ? "conv1d" : "linear", panel);
        }
    int32_t ids[3] = {4, 0, 10};
    bf16_to_f32(table_f, w, (size_t)C * OC);  // as an (11, 7) table
    embedding_bf16_forward(rows, ids, w, 3, C);
    for (int r = 0; r < 3; r++)
        CHECK(!memcmp(rows + r * C, table_f + ids[r] * C, C * sizeof(float)), "bf16 embedding row %d", r);
}

int main(void) {
    static const char *const lm[] = {"gpt2_lm", "gptneox_lm", "llama_lm", "mistral_lm", "qwen2_lm",
                                     "gemma_lm", "gemma2_lm", "phi3_lm", NULL};
    static const char *const seqcls[] = {"gpt2_seqcls_1", "gptneox_seqcls_1", "llama_seqcls_1", "qwen2_seqcls_1",
                                         "gemma_seqcls_1", "gemma2_seqcls_1", "phi3_seqcls_1", "bert_seqcls_1",
                                         "distilbert_seqcls_1", "roberta_seqcls_1", "debertav2_seqcls_1", NULL};
    for (int i = 0; lm[i]; i++) no_grad_case(lm[i], HEAD_LM);
    for (int i = 0; seqcls[i]; i++) no_grad_case(seqcls[i], HEAD_SEQCLS);
    for (int i = 0; lm[i]; i++) bf16_case(lm[i], HEAD_LM);
    for (int i = 0; seqcls[i]; i++) bf16_case(seqcls[i], HEAD_SEQCLS);
    panel_kernels();
    return tu_finish("models_frozen");
}
