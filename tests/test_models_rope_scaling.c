// rope_scaling: the rotary frequencies of default / linear / llama3 match transformers' fp32 computation
// (tests/fixtures/rope/inv_freq.json from tools/gen_rope_scaling_reference.py) to 1 ulp-level tolerance,
// unsupported or malformed settings are errors naming the field, and a rotation with frequencies equals
// the plain theta rotation when there is no scaling.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/rope_scaling.h"
#include "testutil.h"

#define INV_FREQ_RTOL 1e-6

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) n = 0;
    if (s) s[n] = 0;
    fclose(f);
    return s;
}

static void test_reference(void) {
    char *txt = slurp(TU_FIXTURES "/rope/inv_freq.json");
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

int main(void) {
    test_reference();
    test_errors();
    test_rotation_equivalence();
    return tu_finish("models_rope_scaling");
}
