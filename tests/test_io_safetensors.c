// safetensors: every committed HF fixture loads and writes back byte-identically (the writer matches
// the Python library), corrupt files fail with RLHF_EINPUT naming the problem, a 2-shard index
// loads, and dtype conversions to fp32 are exact.
#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/files.h"
#include "io/safetensors.h"
#include "testutil.h"

static char tmpdir[256];

// Writes a file image: 8-byte length, header as given (unpadded), then data_len bytes of data.
static void write_raw(const char *path, uint64_t hlen_field, const char *header, size_t data_len) {
    size_t hl = strlen(header);
    size_t total = 8 + hl + data_len;
    unsigned char *b = calloc(1, total);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(hlen_field >> (8 * i));
    memcpy(b + 8, header, hl);
    rlhf_err err;
    CHECK(atomic_write(path, b, total, &err) == RLHF_OK, "write %s", path);
    free(b);
}

static void expect_einput(const char *what, const char *header, int64_t hlen_override, size_t data_len,
                          const char *needle) {
    char path[512];
    snprintf(path, sizeof path, "%s/corrupt.safetensors", tmpdir);
    write_raw(path, hlen_override >= 0 ? (uint64_t)hlen_override : strlen(header), header, data_len);
    st_file f;
    rlhf_err err;
    rlhf_err_clear(&err);
    rlhf_status s = st_open(&f, path, &err);
    CHECK(s == RLHF_EINPUT, "%s: status %d (%s)", what, s, err.msg);
    CHECK(strstr(err.msg, needle) != NULL, "%s: message '%s' lacks '%s'", what, err.msg, needle);
    CHECK(strstr(err.msg, path) != NULL, "%s: message '%s' lacks the file name", what, err.msg);
    if (s == RLHF_OK) st_close(&f);
}

static void test_corrupt(void) {
    expect_einput("header length huge", "{}", 1ull << 40, 0, "100 MB");
    expect_einput("header beyond file", "{}      ", 4096, 0, "beyond the end");
    expect_einput("not json", "{\"a\": nope}", -1, 0, "not valid JSON");
    expect_einput("header not utf-8", "{\"w\xff\":{}}  ", -1, 0, "not valid UTF-8");
    expect_einput("not an object", "[1,2]   ", -1, 0, "not a JSON object");
    expect_einput("bad dtype", "{\"w\":{\"dtype\":\"Q4\",\"shape\":[1],\"data_offsets\":[0,4]}}", -1, 4, "'w'");
    expect_einput("bad dtype names dtype", "{\"w\":{\"dtype\":\"Q4\",\"shape\":[1],\"data_offsets\":[0,4]}}", -1, 4,
                  "unsupported dtype");
    expect_einput("missing shape", "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", -1, 4, "missing \"shape\"");
    expect_einput("missing offsets", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", -1, 4, "data_offsets");
    expect_einput("shape/bytes mismatch", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", -1, 4,
                  "shape/bytes mismatch");
    expect_einput("offsets out of range", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", -1, 8,
                  "out of range");
    expect_einput("overlap",
                  "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                  "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                  -1, 12, "overlap");
    expect_einput("hole",
                  "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                  "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
                  -1, 12, "hole");
    expect_einput("trailing data", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", -1, 8,
                  "trailing");
    expect_einput("negative dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", -1, 4,
                  "shape[0]");
    expect_einput("huge dims overflow",
                  "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", -1, 4,
                  "shape/bytes mismatch");
    expect_einput("duplicate name",
                  "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                  "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                  -1, 8, "twice");
    expect_einput("metadata not strings", "{\"__metadata__\":{\"k\":1}}", -1, 0, "__metadata__");

    // A real fixture truncated by one byte and cut inside the header.
    char *buf;
    size_t len;
    rlhf_err err;
    CHECK(read_file_raw(TU_FIXTURES "/hf/gpt2_lm/model.safetensors", &buf, &len, &err) == RLHF_OK, "%s", err.msg);
    char path[512];
    snprintf(path, sizeof path, "%s/trunc.safetensors", tmpdir);
    size_t cuts[] = {len - 1, 1000, 7, 0};
    for (int i = 0; i < 4; i++) {
        atomic_write(path, buf, cuts[i], &err);
        st_file f;
        rlhf_status s = st_open(&f, path, &err);
        CHECK(s == RLHF_EINPUT && strstr(err.msg, "trunc.safetensors"), "cut at %zu: %d '%s'", cuts[i], s, err.msg);
        if (s == RLHF_OK) st_close(&f);
    }
    // Truncated by a tensor's worth: the message names a tensor.
    atomic_write(path, buf, len - 4096, &err);
    st_file f;
    CHECK(st_open(&f, path, &err) == RLHF_EINPUT && strstr(err.msg, "tensor '"), "names tensor: '%s'", err.msg);
    free(buf);
}

// Loads path, writes it back with the same tensors and metadata, and compares the bytes.
static void roundtrip(const char *path) {
    st_file f;
    rlhf_err err;
    if (st_open(&f, path, &err) != RLHF_OK) {
        CHECK(0, "open %s: %s", path, err.msg);
        return;
    }
    CHECK(f.n > 0, "%s has tensors", path);
    st_write_tensor *w = calloc((size_t)f.n, sizeof *w);
    // Reverse order in, to show the writer orders by itself.
    for (int i = 0; i < f.n; i++) {
        const st_tensor *t = &f.tensors[f.n - 1 - i];
        w[i].name = t->name;
        w[i].dtype = t->dtype;
        w[i].ndim = t->ndim;
        memcpy(w[i].shape, t->shape, sizeof t->shape);
        w[i].data = t->data;
    }
    const char *kv[64];
    int n_kv = 0;
    cJSON *meta = f.metadata_json ? cJSON_Parse(f.metadata_json) : NULL;
    for (cJSON *m = meta ? meta->child : NULL; m && n_kv < 32; m = m->next) {
        kv[2 * n_kv] = m->string;
        kv[2 * n_kv + 1] = m->valuestring;
        n_kv++;
    }
    char out[512];
    snprintf(out, sizeof out, "%s/rt.safetensors", tmpdir);
    CHECK(st_write(out, w, f.n, n_kv ? kv : NULL, n_kv, &err) == RLHF_OK, "write: %s", err.msg);
    char *a, *b;
    size_t la, lb;
    read_file_raw(path, &a, &la, &err);
    read_file_raw(out, &b, &lb, &err);
    size_t first_diff = 0;
    while (first_diff < la && first_diff < lb && a[first_diff] == b[first_diff]) first_diff++;
    CHECK(la == lb && memcmp(a, b, la) == 0, "%s: rewrite differs (sizes %zu vs %zu, first diff at byte %zu)", path,
          la, lb, first_diff);
    free(a);
    free(b);
    cJSON_Delete(meta);
    free(w);
    st_close(&f);
}

static void test_fixtures_roundtrip(void) {
    DIR *d = opendir(TU_FIXTURES "/hf");
    CHECK(d != NULL, "open fixtures dir");
    if (!d) return;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        const char *files[] = {"model.safetensors", "expected.safetensors"};
        for (int i = 0; i < 2; i++) {
            char path[1024];
            snprintf(path, sizeof path, TU_FIXTURES "/hf/%s/%s", e->d_name, files[i]);
            if (!file_exists(path)) continue;
            roundtrip(path);
            n++;
        }
    }
    closedir(d);
    CHECK(n >= 20, "round-tripped %d fixture files", n);
}

// Byte layout checks against the library's own unit tests (tensor.rs test_serialization,
// test_empty) and its dtype ordering.
static void test_writer_layout(void) {
    float v[6] = {0, 1, 2, 3, 4, 5};
    st_write_tensor t = {"attn.0", ST_F32, 3, {1, 2, 3}, v};
    char *h;
    size_t hl;
    int *order;
    rlhf_err err;
    CHECK(st_serialize_header(&t, 1, NULL, 0, &h, &hl, &order, &err) == RLHF_OK, "%s", err.msg);
    const char *want = "{\"attn.0\":{\"dtype\":\"F32\",\"shape\":[1,2,3],\"data_offsets\":[0,24]}}";
    CHECK(hl == 64 && memcmp(h, want, strlen(want)) == 0, "header '%.*s' (%zu)", (int)hl, h, hl);
    free(h);
    free(order);
    CHECK(st_serialize_header(NULL, 0, NULL, 0, &h, &hl, &order, &err) == RLHF_OK, "empty");
    CHECK(hl == 8 && memcmp(h, "{}      ", 8) == 0, "empty header '%.*s'", (int)hl, h);
    free(h);
    free(order);
    const char *kv[2] = {"framework", "pt"};
    CHECK(st_serialize_header(NULL, 0, kv, 1, &h, &hl, &order, &err) == RLHF_OK, "meta");
    CHECK(hl == 40 && memcmp(h, "{\"__metadata__\":{\"framework\":\"pt\"}}     ", 40) == 0, "meta header '%.*s'",
          (int)hl, h);
    free(h);
    free(order);
    // Order: I64 before F64 before F32 before BF16 before F16 before I8 before BOOL; name within dtype.
    unsigned char z[8] = {0};
    st_write_tensor ts[] = {
        {"a_bool", ST_BOOL, 1, {1}, z}, {"b_f16", ST_F16, 1, {1}, z}, {"c_f32", ST_F32, 1, {1}, z},
        {"a_f32", ST_F32, 1, {1}, z},   {"d_i64", ST_I64, 1, {1}, z}, {"e_f64", ST_F64, 1, {1}, z},
        {"f_bf16", ST_BF16, 1, {1}, z}, {"g_i8", ST_I8, 1, {1}, z},
    };
    CHECK(st_serialize_header(ts, 8, NULL, 0, &h, &hl, &order, &err) == RLHF_OK, "mixed");
    const char *names[] = {"d_i64", "e_f64", "a_f32", "c_f32", "f_bf16", "b_f16", "g_i8", "a_bool"};
    for (int i = 0; i < 8; i++) CHECK(strcmp(ts[order[i]].name, names[i]) == 0, "order[%d] = %s", i, ts[order[i]].name);
    free(h);
    free(order);
    // Names needing escapes survive a write/read round trip.
    char path[512];
    snprintf(path, sizeof path, "%s/esc.safetensors", tmpdir);
    st_write_tensor te = {"we\"ird\\na\tme\x01", ST_F32, 0, {0}, v};
    CHECK(st_write(path, &te, 1, NULL, 0, &err) == RLHF_OK, "%s", err.msg);
    st_file f;
    CHECK(st_open(&f, path, &err) == RLHF_OK, "%s", err.msg);
    CHECK(f.n == 1 && strcmp(f.tensors[0].name, te.name) == 0 && f.tensors[0].numel == 1, "escaped name");
    st_close(&f);
}

static void test_dtypes(void) {
    // F16: 1, -2, 65504, subnormal 2^-24, inf; BF16: 1.5, -0.0; F64: 0.1
    uint16_t h[5] = {0x3c00, 0xc000, 0x7bff, 0x0001, 0x7c00};
    uint16_t bf[2] = {0x3fc0, 0x8000};
    double d[1] = {0.1};
    int64_t i64[1] = {7};
    st_write_tensor ts[] = {
        {"h", ST_F16, 1, {5}, h}, {"bf", ST_BF16, 1, {2}, bf}, {"d", ST_F64, 1, {1}, d}, {"i", ST_I64, 1, {1}, i64}};
    char path[512];
    snprintf(path, sizeof path, "%s/dt.safetensors", tmpdir);
    rlhf_err err;
    CHECK(st_write(path, ts, 4, NULL, 0, &err) == RLHF_OK, "%s", err.msg);
    st_file f;
    CHECK(st_open(&f, path, &err) == RLHF_OK, "%s", err.msg);
    float out[5];
    CHECK(st_to_f32(st_find(&f, "h"), out, &err) == RLHF_OK, "f16");
    CHECK(out[0] == 1.0f && out[1] == -2.0f && out[2] == 65504.0f && out[3] == 0x1p-24f && out[4] > 1e38f,
          "f16 %g %g %g %g %g", out[0], out[1], out[2], out[3], out[4]);
    CHECK(st_to_f32(st_find(&f, "bf"), out, &err) == RLHF_OK && out[0] == 1.5f && out[1] == 0.0f, "bf16");
    CHECK(st_to_f32(st_find(&f, "d"), out, &err) == RLHF_OK && out[0] == 0.1f, "f64");
    CHECK(st_to_f32(st_find(&f, "i"), out, &err) == RLHF_EINPUT && strstr(err.msg, "'i'"), "int: %s", err.msg);
    CHECK(st_find(&f, "nope") == NULL, "find missing");
    st_close(&f);
}

static void test_sharded(void) {
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/sharded", tmpdir);
    rlhf_err err;
    CHECK(make_dirs(dir, &err) == RLHF_OK, "%s", err.msg);
    float a[3] = {1, 2, 3}, b[2] = {4, 5}, c[1] = {6};
    st_write_tensor s1[] = {{"a", ST_F32, 1, {3}, a}, {"b", ST_F32, 1, {2}, b}};
    st_write_tensor s2[] = {{"c", ST_F32, 2, {1, 1}, c}};
    snprintf(path, sizeof path, "%s/model-00001-of-00002.safetensors", dir);
    CHECK(st_write(path, s1, 2, NULL, 0, &err) == RLHF_OK, "%s", err.msg);
    snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", dir);
    CHECK(st_write(path, s2, 1, NULL, 0, &err) == RLHF_OK, "%s", err.msg);
    const char *index = "{\"metadata\":{\"total_size\":24},\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\","
                        "\"c\":\"model-00002-of-00002.safetensors\",\"b\":\"model-00001-of-00002.safetensors\"}}";
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    CHECK(atomic_write(path, index, strlen(index), &err) == RLHF_OK, "%s", err.msg);
    st_file f;
    CHECK(st_open_model_dir(&f, dir, &err) == RLHF_OK, "%s", err.msg);
    CHECK(f.n == 3 && f.n_maps == 2, "n=%d maps=%d", f.n, f.n_maps);
    const st_tensor *t = st_find(&f, "c");
    float v = 0;
    CHECK(t && t->ndim == 2 && st_to_f32(t, &v, &err) == RLHF_OK && v == 6.0f, "c from shard 2");
    t = st_find(&f, "b");
    float vb[2] = {0};
    CHECK(t && st_to_f32(t, vb, &err) == RLHF_OK && vb[1] == 5.0f, "b from shard 1");
    st_close(&f);
    // An index naming a tensor its shard lacks, and a shard path escaping the directory.
    const char *bad = "{\"weight_map\":{\"zz\":\"model-00002-of-00002.safetensors\"}}";
    atomic_write(path, bad, strlen(bad), &err);
    CHECK(st_open_model_dir(&f, dir, &err) == RLHF_EINPUT && strstr(err.msg, "'zz'"), "missing: %s", err.msg);
    const char *esc = "{\"weight_map\":{\"a\":\"../x.safetensors\"}}";
    atomic_write(path, esc, strlen(esc), &err);
    CHECK(st_open_model_dir(&f, dir, &err) == RLHF_EINPUT && strstr(err.msg, "plain file name"), "escape: %s",
          err.msg);
    snprintf(path, sizeof path, "%s/nonexistent", tmpdir);
    CHECK(st_open_model_dir(&f, path, &err) == RLHF_EINPUT && strstr(err.msg, "model.safetensors"), "no model: %s",
          err.msg);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/rlhf_test_st_XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    test_fixtures_roundtrip();
    test_writer_layout();
    test_dtypes();
    test_corrupt();
    test_sharded();
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return tu_finish("io_safetensors");
}
