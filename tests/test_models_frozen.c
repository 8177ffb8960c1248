// Frozen models: the no_grad forward (torch.no_grad: one layer's activations, reused by every layer) of
// every family gives bit-identical outputs to the training forward with a smaller activation arena, and
// a backward after it is refused.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/json_util.h"
#include "models/model.h"
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

int main(void) {
    static const char *const lm[] = {"gpt2_lm", "gptneox_lm", "llama_lm", "mistral_lm", "qwen2_lm",
                                     "gemma_lm", "gemma2_lm", "phi3_lm", NULL};
    static const char *const seqcls[] = {"gpt2_seqcls_1", "gptneox_seqcls_1", "llama_seqcls_1", "qwen2_seqcls_1",
                                         "gemma_seqcls_1", "gemma2_seqcls_1", "phi3_seqcls_1", "bert_seqcls_1",
                                         "distilbert_seqcls_1", "roberta_seqcls_1", "debertav2_seqcls_1", NULL};
    for (int i = 0; lm[i]; i++) no_grad_case(lm[i], HEAD_LM);
    for (int i = 0; seqcls[i]; i++) no_grad_case(seqcls[i], HEAD_SEQCLS);
    return tu_finish("models_frozen");
}
