// rope_scaling: the rotary frequencies of default / linear / llama3 match transformers' fp32 computation
// (tests/fixtures/rope/inv_freq.json from tools/gen_rope_scaling_reference.py) to 1 ulp-level tolerance,
// unsupported or malformed settings are errors naming the field, and a rotation with frequencies equals
// the plain theta rotation when there is no scaling.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/model.h"
#include "models/rope_scaling.h"
#include "testutil.h"

#define INV_FREQ_RTOL 1e-6

static void test_reference(void) {
    char *txt = tu_read_file(TU_FIXTURES "/rope/inv_freq.json", NULL);
    CHECK(txt != NULL, "fixture missing");
    if (!txt) return;
    cJSON *root = cJSON_Parse(txt);
    free(txt);
    const cJSON *c;
    int n = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) {
        cJSON *cfg = cJSON_CreateObject();
        cJSON *rs = cJSON_GetObjectItem(c, "rope_scaling");
        cJSON_AddItemToObject(cfg, "rope_scaling", cJSON_Duplicate(rs, 1));
        int rot = cJSON_GetObjectItem(c, "rot_dim")->valueint;
        float theta = (float)cJSON_GetObjectItem(c, "theta")->valuedouble;
        rope_freqs f;
        rlhf_err err = {0};
        rlhf_status s = rope_scaling_from_config(cfg, rot, theta, &f, &err);
        CHECK(s == RLHF_OK, "case %d: %s", n, err.msg);
        const cJSON *want = cJSON_GetObjectItem(c, "inv_freq");
        CHECK(f.half == cJSON_GetArraySize(want), "case %d: %d frequencies", n, f.half);
        double worst = 0;
        for (int i = 0; i < f.half && i < cJSON_GetArraySize(want); i++) {
            double w = cJSON_GetArrayItem(want, i)->valuedouble;
            double e = fabs(f.inv_freq[i] - w) / fabs(w);
            if (e > worst) worst = e;
        }
        CHECK(worst <= INV_FREQ_RTOL, "case %d (rot %d): worst relative error %.3g", n, rot, worst);
        cJSON_Delete(cfg);
        n++;
    }
    CHECK(n == 9, "%d cases", n);
    cJSON_Delete(root);
}

static void expect_error(const char *json, const char *needle) {
    cJSON *cfg = cJSON_Parse(json);
    rope_freqs f;
    rlhf_err err = {0};
    rlhf_status s = rope_scaling_from_config(cfg, 64, 10000.0f, &f, &err);
    CHECK(s == RLHF_EINPUT && strstr(err.msg, needle), "%s: %d %s", json, s, err.msg);
    cJSON_Delete(cfg);
}

static void test_errors(void) {
    expect_error("{\"rope_scaling\": {\"type\": \"dynamic\", \"factor\": 2}}", "dynamic");
    expect_error("{\"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 2}}", "'yarn' is not supported");
    expect_error("{\"rope_scaling\": {\"type\": \"linear\"}}", "rope_scaling.factor is required");
    expect_error("{\"rope_scaling\": {\"type\": \"linear\", \"factor\": \"x\"}}", "rope_scaling.factor must be a number");
    expect_error("{\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8, \"low_freq_factor\": 4, "
                 "\"high_freq_factor\": 1, \"original_max_position_embeddings\": 8192}}", "low_freq_factor");
    expect_error("{\"rope_scaling\": 3}", "object or null");
}

static void test_rotation_equivalence(void) {
    enum { B = 2, T = 3, H = 2, D = 8 };
    float a[B * T * H * D], b[B * T * H * D];
    int32_t pos[B * T] = {0, 1, 2, 5, 9, 100};
    for (int i = 0; i < B * T * H * D; i++) a[i] = b[i] = sinf((float)i * 0.37f);
    rope_freqs f;
    rope_freqs_default(&f, 6, 10000.0f);
    rope_forward(a, pos, B, T, H, D, 6, 10000.0f, ROPE_HALF);
    rope_forward_freqs(b, pos, B, T, H, D, 6, &f, ROPE_HALF);
    CHECK(!memcmp(a, b, sizeof a), "frequency table rotation differs from the theta rotation");
}

// Wired into the model: a Llama with linear scaling factor 2 at positions 0, 2, 4, 6 rotates exactly as the
// unscaled model at 0, 1, 2, 3 (inv_freq / 2 and 2q * (inv_freq / 2) are exact), so its logits are
// bit-identical; and a llama3 scaling changes them.
static model *tiny_llama(const char *scaling) {
    char json[1024];
    snprintf(json, sizeof json,
             "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"vocab_size\": 64, "
             "\"hidden_size\": 32, \"intermediate_size\": 64, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, "
             "\"num_key_value_heads\": 2, \"max_position_embeddings\": 128, \"rope_theta\": 10000.0, "
             "\"rope_scaling\": %s}", scaling);
    cJSON *cfg = cJSON_Parse(json);
    model *m = NULL;
    rlhf_err err = {0};
    CHECK(model_create(&m, cfg, HEAD_LM, 11, &err) == RLHF_OK, "model_create (%s): %s", scaling, err.msg);
    cJSON_Delete(cfg);
    return m;
}

static void test_in_model(void) {
    model *plain = tiny_llama("null"), *lin = tiny_llama("{\"type\": \"linear\", \"factor\": 2.0}"),
          *l3 = tiny_llama("{\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 1.0, "
                           "\"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 4}");
    if (!plain || !lin || !l3) return;
    enum { T = 4, V = 64 };
    int32_t ids[T] = {3, 17, 42, 9}, pos1[T] = {0, 1, 2, 3}, pos2[T] = {0, 2, 4, 6};
    float a[T * V], b[T * V], c[T * V];
    rlhf_err err = {0};
    model_batch b1 = {.B = 1, .T = T, .input_ids = ids, .position_ids = pos1};
    model_batch b2 = {.B = 1, .T = T, .input_ids = ids, .position_ids = pos2};
    CHECK(model_forward(plain, &b1, &err) == RLHF_OK, "%s", err.msg);
    memcpy(a, plain->out, sizeof a);
    CHECK(model_forward(lin, &b2, &err) == RLHF_OK, "%s", err.msg);
    memcpy(b, lin->out, sizeof b);
    CHECK(!memcmp(a, b, sizeof a), "linear factor 2 at even positions differs from the plain model at half of them");
    CHECK(model_forward(l3, &b1, &err) == RLHF_OK, "%s", err.msg);
    memcpy(c, l3->out, sizeof c);
    CHECK(!memcmp(a, c, V * sizeof(float)) && memcmp(a, c, sizeof a), "llama3 scaling: position 0 must match, later differ");
    model_free(plain), model_free(lin), model_free(l3);
}

int main(void) {
    test_reference();
    test_in_model();
    test_errors();
    test_rotation_equivalence();
    return tu_finish("models_rope_scaling");
}
