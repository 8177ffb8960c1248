// The LM head on some positions only (model_batch.head_from / head_count, transformers' logits_to_keep):
// for every causal-LM family, its logits are the full forward's rows at those positions, and its backward
// (gradient given at those rows) matches the full backward with zero gradient elsewhere, every parameter's
// gradient. Within 1e-5 of the largest value, not bit for bit: the head's sgemm rounds by its row count.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "io/json_util.h"
#include "models/model.h"
#include "testutil.h"

static int32_t *read_matrix(const cJSON *arr, int *B, int *T) {
    *B = cJSON_GetArraySize(arr);
    *T = cJSON_GetArraySize(cJSON_GetArrayItem(arr, 0));
    int32_t *out = malloc(sizeof(int32_t) * (size_t)*B * *T);
    for (int b = 0; b < *B; b++)
        for (int t = 0; t < *T; t++) out[b * *T + t] = cJSON_GetArrayItem(cJSON_GetArrayItem(arr, b), t)->valueint;
    return out;
}

static void head_rows_case(const char *name) {
    char dir[256], path[300];
    snprintf(dir, sizeof dir, TU_FIXTURES "/hf/%s", name);
    snprintf(path, sizeof path, "%s/inputs.json", dir);
    rlhf_err err;
    model *a = NULL, *b = NULL;
    model_load_opts opts = {.quiet = 1, .init_seed = 0};
    cJSON *in = NULL;
    if (model_load(&a, dir, HEAD_LM, &opts, &err) != RLHF_OK || model_load(&b, dir, HEAD_LM, &opts, &err) != RLHF_OK ||
        json_load_file(path, &in, &err) != RLHF_OK) {
        CHECK(0, "%s: load: %s", name, err.msg);
        model_free(a);
        model_free(b);
        return;
    }
    const cJSON *cs = cJSON_GetObjectItem(cJSON_GetObjectItem(in, "cases"), "left");
    int B, T;
    int32_t *ids = read_matrix(cJSON_GetObjectItem(cs, "input_ids"), &B, &T);
    int32_t *mask = read_matrix(cJSON_GetObjectItem(cs, "attention_mask"), &B, &T);
    cJSON_Delete(in);
    const int V = a->cfg.vocab_size, from = T / 3, K = T - 1 - from;  // positions [from, T - 1)
    CHECK(K > 0, "%s: sequence too short (%d)", name, T);
    model_batch full = {.B = B, .T = T, .input_ids = ids, .attention_mask = mask};
    model_batch part = full;
    part.head_from = from, part.head_count = K;
    float *dfull = calloc((size_t)B * T * V, sizeof(float)), *dpart = calloc((size_t)B * K * V, sizeof(float));
    CHECK(model_alloc_grads(a, &err) == RLHF_OK && model_alloc_grads(b, &err) == RLHF_OK, "%s: grads", name);
    CHECK(model_forward(a, &full, &err) == RLHF_OK, "%s: forward: %s", name, err.msg);
    CHECK(model_forward(b, &part, &err) == RLHF_OK, "%s: head-rows forward: %s", name, err.msg);
    double dmax = 0, amax = 0;
    for (int r = 0; r < B; r++)
        for (size_t i = 0; i < (size_t)K * V; i++) {
            double x = a->out[((size_t)r * T + from) * V + i], d = fabs(b->out[(size_t)r * K * V + i] - x);
            if (d > dmax) dmax = d;
            if (fabs(x) > amax) amax = fabs(x);
        }
    CHECK(dmax <= 1e-5 * amax, "%s: head-rows logits differ from the full forward's (max %.3g of %.3g)", name, dmax,
          amax);
    for (int r = 0; r < B; r++)
        for (int k = 0; k < K; k++)
            for (int v = 0; v < V; v++) {
                float g = (float)(rng_uniform_double(rng_key(3, 0, (uint64_t)r, (uint64_t)k), (uint64_t)v) - 0.5);
                dpart[((size_t)r * K + k) * V + v] = g;
                dfull[((size_t)r * T + from + k) * V + v] = g;
            }
    CHECK(model_backward(a, dfull, NULL, &err) == RLHF_OK, "%s: backward: %s", name, err.msg);
    CHECK(model_backward(b, dpart, NULL, &err) == RLHF_OK, "%s: head-rows backward: %s", name, err.msg);
    double gd = 0, gmax = 0;
    for (size_t i = 0; i < a->n_params; i++) {
        double d = fabs((double)a->grads[i] - b->grads[i]);
        if (d > gd) gd = d;
        if (fabs(a->grads[i]) > gmax) gmax = fabs(a->grads[i]);
    }
    CHECK(gmax > 0 && gd <= 1e-5 * gmax, "%s: head-rows gradients differ (max %.3g of %.3g)", name, gd, gmax);
    // a range outside the batch is refused
    part.head_from = T - K + 1;
    CHECK(model_forward(b, &part, &err) != RLHF_OK && strstr(err.msg, "LM head positions"),
          "%s: out-of-range head positions not refused", name);
    free(dfull);
    free(dpart);
    free(ids);
    free(mask);
    model_free(a);
    model_free(b);
}

int main(void) {
    static const char *const lm[] = {"gpt2_lm", "gptneox_lm", "llama_lm", "mistral_lm", "qwen2_lm",
                                     "gemma_lm", "gemma2_lm", "phi3_lm", NULL};
    for (int i = 0; lm[i]; i++) head_rows_case(lm[i]);
    return tu_finish("models_head_rows");
}
