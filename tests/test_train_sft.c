// SFT loss: on the fixtures' right-padded rows (pre-tokenized "input_ids", no EOS appended) the
// micro-batch loss and every gradient equal transformers' causal-LM loss and gradients; with
// prompt_ids/completion_ids only completion tokens are trained; row errors name FILE:LINE.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/dataset.h"
#include "io/json_util.h"
#include "io/safetensors.h"
#include "models/model.h"
#include "nn/ops.h"
#include "testutil.h"
#include "train/sft.h"

// The fixture's right-padded case as {"input_ids"} rows (real tokens only), as JSONL text.
static void fixture_rows(const char *dir, char *out, size_t n) {
    char path[300];
    snprintf(path, sizeof path, "%s/inputs.json", dir);
    cJSON *in = NULL;
    rlhf_err err;
    out[0] = 0;
    if (json_load_file(path, &in, &err) != RLHF_OK) return;
    const cJSON *c = cJSON_GetObjectItem(cJSON_GetObjectItem(in, "cases"), "right");
    const cJSON *ids = cJSON_GetObjectItem(c, "input_ids"), *mask = cJSON_GetObjectItem(c, "attention_mask");
    size_t used = 0;
    for (int b = 0; b < cJSON_GetArraySize(ids); b++) {
        used += (size_t)snprintf(out + used, n - used, "{\"input_ids\": [");
        for (int t = 0; t < cJSON_GetArraySize(cJSON_GetArrayItem(ids, b)); t++)
            if (cJSON_GetArrayItem(cJSON_GetArrayItem(mask, b), t)->valueint)
                used += (size_t)snprintf(out + used, n - used, "%s%d", t ? ", " : "",
                                         cJSON_GetArrayItem(cJSON_GetArrayItem(ids, b), t)->valueint);
        used += (size_t)snprintf(out + used, n - used, "]}\n");
    }
    cJSON_Delete(in);
}

static void parity(const char *fixture) {
    char dir[256], path[300];
    snprintf(dir, sizeof dir, TU_FIXTURES "/hf/%s", fixture);
    rlhf_err err;
    model *m;
    model_load_opts o = {.quiet = 1};
    if (model_load(&m, dir, HEAD_LM, &o, &err) != RLHF_OK) {
        CHECK(0, "%s", err.msg);
        return;
    }
    dataset d;
    char rows[4096];
    fixture_rows(dir, rows, sizeof rows);
    CHECK(dataset_load_text(&d, "rows", rows, strlen(rows), &err) == RLHF_OK, "%s", err.msg);
    sft_set s;
    CHECK(sft_set_load(&s, &d, NULL, m->cfg.vocab_size, -1, 0, NULL, NULL, &err) == RLHF_OK, "%s", err.msg);
    int idx[4] = {0, 1, 2, 3};
    double loss;
    model_alloc_grads(m, &err);
    model_zero_grads(m);
    CHECK(sft_batch_loss(m, &s, idx, 4, 0, 0, 0, 1.0f, &loss, &err) == RLHF_OK, "%s", err.msg);
    st_file exp;
    snprintf(path, sizeof path, "%s/expected.safetensors", dir);
    CHECK(st_open(&exp, path, &err) == RLHF_OK, "%s", err.msg);
    float want;
    st_to_f32(st_find(&exp, "loss"), &want, &err);
    CHECK(fabs(loss - want) < 1e-5, "%s: sft loss %.7f vs HF %.7f", fixture, loss, want);
    for (int i = 0; i < m->n_specs; i++) {
        char key[200];
        snprintf(key, sizeof key, "grad.%s", m->specs[i].name);
        const st_tensor *t = st_find(&exp, key);
        if (!t) continue;
        float *g = malloc(sizeof(float) * m->specs[i].numel);
        st_to_f32(t, g, &err);
        double mx = 0;
        for (size_t j = 0; j < m->specs[i].numel; j++) mx = fmax(mx, fabs(g[j]));
        CHECK(tu_close(key, m->grads + m->specs[i].offset, g, m->specs[i].numel, 1e-3 * mx + 1e-7, 1e-3), "%s %s",
              fixture, key);
        free(g);
    }
    st_close(&exp);

    // completion-only: prompt_ids [25 97 10] + completion_ids [84 103] + EOS 2 trains targets 84, 103, 2
    static const char PC[] = "{\"prompt_ids\": [25, 97, 10], \"completion_ids\": [84, 103]}\n";
    dataset d2;
    sft_set s2;
    CHECK(dataset_load_text(&d2, "pc", PC, strlen(PC), &err) == RLHF_OK, "%s", err.msg);
    CHECK(sft_set_load(&s2, &d2, NULL, m->cfg.vocab_size, 2, 0, NULL, NULL, &err) == RLHF_OK, "%s", err.msg);
    CHECK(s2.ex[0].n == 6 && s2.ex[0].ids[5] == 2 && s2.ex[0].labels[2] == SFT_IGNORE && s2.ex[0].labels[3] == 84,
          "prompt/completion labels");
    CHECK(sft_batch_loss(m, &s2, idx, 1, 0, 0, 0, 0.0f, &loss, &err) == RLHF_OK, "%s", err.msg);
    int32_t targets[6] = {CE_IGNORE_INDEX, CE_IGNORE_INDEX, 84, 103, 2, CE_IGNORE_INDEX};
    int cnt;
    float manual = cross_entropy_forward(m->out, targets, 6, m->cfg.vocab_size, &cnt);
    CHECK(cnt == 3 && fabs(manual - loss) < 1e-6, "%s: completion-only loss %.6f vs %.6f (%d targets)", fixture, loss,
          manual, cnt);
    sft_set_free(&s2);
    dataset_free(&d2);

    static const char BAD[] = "{\"text\": \"x\"}\n{\"foo\": 1}\n";
    dataset d3;
    sft_set s3;
    CHECK(dataset_load_text(&d3, "bad.jsonl", BAD, strlen(BAD), &err) == RLHF_OK, "%s", err.msg);
    CHECK(sft_set_load(&s3, &d3, NULL, m->cfg.vocab_size, 2, 0, NULL, NULL, &err) == RLHF_EINPUT, "bad row accepted");
    CHECK(strstr(err.msg, "bad.jsonl:1") != NULL, "message names FILE:LINE: %s", err.msg);
    dataset_free(&d3);

    sft_set_free(&s);
    dataset_free(&d);
    model_free(m);
}

int main(void) {
    parity("gpt2_lm");
    parity("llama_lm");
    parity("gptneox_lm");
    return tu_finish("train_sft");
}
