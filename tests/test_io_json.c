// json_util.c: every fixture config.json (written by transformers save_pretrained) is re-written
// byte-identically, floats print as Python repr, parse errors name file/line, getters check types.
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/files.h"
#include "io/json_util.h"
#include "testutil.h"

static char tmpdir[256];

static void test_configs_roundtrip(void) {
    DIR *d = opendir(TU_FIXTURES "/hf");
    CHECK(d != NULL, "fixtures");
    if (!d) return;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *names[] = {"config.json", "generation_config.json"};
        for (int k = 0; k < 2; k++) {
            char path[1024], out[600];
            snprintf(path, sizeof path, TU_FIXTURES "/hf/%s/%s", e->d_name, names[k]);
            if (e->d_name[0] == '.' || !file_exists(path)) continue;
            rlhf_err err;
            cJSON *j;
            if (json_load_file(path, &j, &err) != RLHF_OK) {
                CHECK(0, "%s", err.msg);
                continue;
            }
            snprintf(out, sizeof out, "%s/c.json", tmpdir);
            CHECK(json_save_file(out, j, &err) == RLHF_OK, "%s", err.msg);
            cJSON *back;
            CHECK(json_load_file(out, &back, &err) == RLHF_OK, "%s", err.msg);
            CHECK(cJSON_Compare(j, back, 1), "%s: same keys/values after round trip", path);
            char *a, *b;
            size_t la, lb;
            read_file(path, &a, &la, &err);
            read_file(out, &b, &lb, &err);
            size_t i = 0;
            while (i < la && i < lb && a[i] == b[i]) i++;
            CHECK(la == lb && memcmp(a, b, la) == 0, "%s: bytes differ at %zu: '%.40s' vs '%.40s'", path, i, a + i,
                  b + i);
            free(a);
            free(b);
            cJSON_Delete(back);
            cJSON_Delete(j);
            n++;
        }
    }
    closedir(d);
    CHECK(n >= 12, "%d configs", n);
}

static void expect_print(const char *json_in, const char *want) {
    cJSON *j = cJSON_Parse(json_in);
    char *s = json_print_hf(j, 1);
    CHECK(s && strcmp(s, want) == 0, "print %s: got '%s' want '%s'", json_in, s ? s : "(null)", want);
    free(s);
    cJSON_Delete(j);
}

static void test_printing(void) {
    expect_print("{\"b\":0.02,\"a\":1e-12}", "{\n  \"a\": 1e-12,\n  \"b\": 0.02\n}\n");
    expect_print("[0.1,1e16,1e-5,0.0001,123456789.125,-2.5e-7,3]",
                 "[\n  0.1,\n  1e+16,\n  1e-05,\n  0.0001,\n  123456789.125,\n  -2.5e-07,\n  3\n]\n");
    expect_print("{\"z\":{\"y\":[],\"x\":{}},\"s\":\"caf\\u00e9 \\ud83d\\ude00 \\\"q\\\" \\n\"}",
                 "{\n  \"s\": \"caf\\u00e9 \\ud83d\\ude00 \\\"q\\\" \\n\",\n  \"z\": {\n    \"x\": {},\n    \"y\": []\n  }\n}\n");
    expect_print("{\"t\":true,\"f\":false,\"n\":null}", "{\n  \"f\": false,\n  \"n\": null,\n  \"t\": true\n}\n");
    cJSON *o = cJSON_CreateObject();
    json_add_float(o, "epoch", 1.0);
    cJSON_AddNumberToObject(o, "step", 10);
    json_add_float(o, "lr", 5e-05);
    char *t = json_print_hf(o, 1);
    CHECK(strcmp(t, "{\n  \"epoch\": 1.0,\n  \"lr\": 5e-05,\n  \"step\": 10\n}\n") == 0, "json_float: %s", t);
    cJSON *dup = cJSON_Duplicate(o, 1);
    char *t2 = json_print_hf(dup, 1);
    CHECK(strcmp(t, t2) == 0, "duplicate keeps float marks: %s", t2);
    free(t);
    free(t2);
    cJSON_Delete(dup);
    cJSON_Delete(o);
    // Float literals keep their ".0" through load + save.
    char path[512];
    rlhf_err err;
    snprintf(path, sizeof path, "%s/f.json", tmpdir);
    const char *src = "{\"rope_theta\": 10000.0, \"n\": 10000, \"e\": 1E2, \"s\": \"1.0 is a string\", \"k\": [2, 3.0]}";
    atomic_write(path, src, strlen(src), &err);
    cJSON *j;
    CHECK(json_load_file(path, &j, &err) == RLHF_OK, "%s", err.msg);
    char *s = json_print_hf(j, 1);
    CHECK(strcmp(s, "{\n  \"e\": 100.0,\n  \"k\": [\n    2,\n    3.0\n  ],\n  \"n\": 10000,\n  \"rope_theta\": 10000.0,\n"
                    "  \"s\": \"1.0 is a string\"\n}\n") == 0,
          "floats kept: %s", s);
    free(s);
    long long iv;
    double dv;
    int bv;
    CHECK(json_get_int(j, "n", 0, &iv, "f.json", &err) == RLHF_OK && iv == 10000, "int");
    CHECK(json_get_int(j, "missing", 7, &iv, "f.json", &err) == RLHF_OK && iv == 7, "int default");
    CHECK(json_get_int(j, "s", 0, &iv, "f.json", &err) == RLHF_EINPUT && strstr(err.msg, "\"s\""), "int type: %s",
          err.msg);
    CHECK(json_get_double(j, "rope_theta", 0, &dv, "f.json", &err) == RLHF_OK && dv == 10000.0, "double");
    CHECK(json_get_bool(j, "n", 0, &bv, "f.json", &err) == RLHF_EINPUT, "bool type");
    CHECK(strcmp(json_get_string(j, "s", "d"), "1.0 is a string") == 0, "string");
    CHECK(strcmp(json_get_string(j, "n", "d"), "d") == 0, "string default on wrong type");
    cJSON_Delete(j);
    // Parse errors name the file and line.
    const char *bad = "{\n  \"a\": 1,\n  \"b\": [1, 2,,]\n}\n";
    atomic_write(path, bad, strlen(bad), &err);
    CHECK(json_load_file(path, &j, &err) == RLHF_EINPUT && strstr(err.msg, "f.json") && strstr(err.msg, "line 3"),
          "error position: %s", err.msg);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/rlhf_test_json_XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    test_configs_roundtrip();
    test_printing();
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return tu_finish("io_json");
}
