// dataset.c: JSONL, gzip'd JSONL, JSON arrays; exact line numbers in errors; field getters for
// strings (UTF-8 validated) and token-id arrays (range checked); a 10 MB row.
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "io/dataset.h"
#include "io/files.h"
#include "testutil.h"

static char tmpdir[256];

static const char *write_tmp(const char *name, const char *text) {
    static char path[512];  // test-only scratch
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    rlhf_err err;
    if (atomic_write(path, text, strlen(text), &err) != RLHF_OK) fprintf(stderr, "%s\n", err.msg);
    return path;
}

static void test_jsonl(void) {
    const char *p = write_tmp("a.jsonl", "{\"prompt\":\"p1\",\"chosen\":\"c1\",\"rejected\":\"r1\"}\n"
                                         "\n   \n"
                                         "{\"chosen\":\"c\\u00e9\",\"rejected\":\"r2\",\"margin\":0.5}\r\n"
                                         "{\"chosen\":\"c3\",\"rejected\":\"r3\",\"pair\":null}");
    dataset d;
    rlhf_err err;
    CHECK(dataset_load(&d, p, &err) == RLHF_OK, "%s", err.msg);
    CHECK(d.n == 3 && d.lines[0] == 1 && d.lines[1] == 4 && d.lines[2] == 5, "n=%d lines %d %d %d", d.n, d.lines[0],
          d.n > 1 ? d.lines[1] : 0, d.n > 2 ? d.lines[2] : 0);
    const char *s;
    CHECK(dataset_get_string(&d, 1, "chosen", 1, &s, &err) == RLHF_OK && strcmp(s, "c\xc3\xa9") == 0, "utf8 escape");
    CHECK(dataset_get_string(&d, 1, "prompt", 0, &s, &err) == RLHF_OK && s == NULL, "optional missing");
    CHECK(dataset_get_string(&d, 2, "pair", 0, &s, &err) == RLHF_OK && s == NULL, "optional null");
    CHECK(dataset_get_string(&d, 1, "prompt", 1, &s, &err) == RLHF_EINPUT &&
              strstr(err.msg, "a.jsonl:4: field 'prompt' missing"),
          "missing: %s", err.msg);
    CHECK(dataset_get_string(&d, 1, "margin", 1, &s, &err) == RLHF_EINPUT &&
              strstr(err.msg, "a.jsonl:4: field 'margin' must be a string"),
          "type: %s", err.msg);
    CHECK(dataset_get_string(&d, 3, "chosen", 1, &s, &err) == RLHF_ERUNTIME, "row out of range");
    dataset_free(&d);
}

static void test_gz_and_array(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/b.jsonl.gz", tmpdir);
    gzFile g = gzopen(path, "wb");
    gzputs(g, "{\"prompt\":\"x\"}\n{\"prompt\":\"y\"}\n");
    gzclose(g);
    dataset d;
    rlhf_err err;
    const char *s;
    CHECK(dataset_load(&d, path, &err) == RLHF_OK && d.n == 2, "gz: %s", err.msg);
    CHECK(dataset_get_string(&d, 1, "prompt", 1, &s, &err) == RLHF_OK && strcmp(s, "y") == 0, "gz row");
    dataset_free(&d);
    // Same content without a .gz name: detection is by magic, not extension.
    snprintf(path, sizeof path, "%s/plain_name.json", tmpdir);
    g = gzopen(path, "wb");
    gzputs(g, "[{\"a\":\"1\"}]");
    gzclose(g);
    CHECK(dataset_load(&d, path, &err) == RLHF_OK && d.n == 1, "gz by magic: %s", err.msg);
    dataset_free(&d);

    const char *p = write_tmp("c.json", "\n  [\n  {\"prompt\": \"a, [b]\"},\n  {\"prompt\":\n \"q\\\"}\"}, {\"prompt\": \"z\"}\n"
                                        ",\n\n{\"prompt\": \"w\"}]\n");
    CHECK(dataset_load(&d, p, &err) == RLHF_OK && d.n == 4, "array: %s", err.msg);
    if (d.n == 4)
        CHECK(d.lines[0] == 3 && d.lines[1] == 4 && d.lines[2] == 5 && d.lines[3] == 8, "array lines %d %d %d %d",
              d.lines[0], d.lines[1], d.lines[2], d.lines[3]);
    CHECK(dataset_get_string(&d, 1, "prompt", 1, &s, &err) == RLHF_OK && strcmp(s, "q\"}") == 0, "array row");
    dataset_free(&d);
    p = write_tmp("d.json", "[{\"a\":1},\n 5]");
    CHECK(dataset_load(&d, p, &err) == RLHF_EINPUT && strstr(err.msg, "d.json:2: expected a JSON object"),
          "array non-object: %s", err.msg);
    p = write_tmp("e.json", "[{\"a\":1},\n\n {\"a\": tru}]");
    CHECK(dataset_load(&d, p, &err) == RLHF_EINPUT && strstr(err.msg, "e.json:3: invalid JSON"), "array bad: %s",
          err.msg);
}

static void test_errors(void) {
    dataset d;
    rlhf_err err;
    const char *p = write_tmp("bad.jsonl", "{\"a\":\"1\"}\n\n{\"a\":\"2\"}\n{\"a\": \"3\",}\n{\"a\":\"4\"}\n");
    CHECK(dataset_load(&d, p, &err) == RLHF_EINPUT && strstr(err.msg, "bad.jsonl:4: invalid JSON"), "line: %s",
          err.msg);
    p = write_tmp("trail.jsonl", "{\"a\":\"1\"} {\"b\":2}\n");
    CHECK(dataset_load(&d, p, &err) == RLHF_EINPUT && strstr(err.msg, "trail.jsonl:1: invalid JSON"), "trailing: %s",
          err.msg);
    p = write_tmp("arr.jsonl", "{\"a\":\"1\"}\n\"text\"\n");
    CHECK(dataset_load(&d, p, &err) == RLHF_EINPUT && strstr(err.msg, "arr.jsonl:2: expected a JSON object"),
          "non-object: %s", err.msg);
    p = write_tmp("empty.jsonl", "\n  \n");
    CHECK(dataset_load(&d, p, &err) == RLHF_EINPUT && strstr(err.msg, "empty.jsonl: no rows (empty dataset)"),
          "empty: %s", err.msg);
    p = write_tmp("empty2.json", "[]");
    CHECK(dataset_load(&d, p, &err) == RLHF_EINPUT && strstr(err.msg, "no rows"), "empty array: %s", err.msg);
    char missing[512];
    snprintf(missing, sizeof missing, "%s/none.jsonl", tmpdir);
    CHECK(dataset_load(&d, missing, &err) == RLHF_EINPUT && strstr(err.msg, "none.jsonl: cannot open"),
          "missing: %s", err.msg);
    // Invalid UTF-8 inside a string (cJSON accepts it): a lone continuation byte, an overlong '/',
    // a UTF-16 surrogate encoded in UTF-8, a truncated sequence.
    const char *bad[] = {"ok \x80", "ab\xc0\xaf", "\xed\xa0\x80", "abc\xe2\x82"};
    long want_at[] = {3, 2, 0, 3};
    for (int i = 0; i < 4; i++) {
        char text[128];
        snprintf(text, sizeof text, "{\"chosen\":\"good\"}\n{\"chosen\":\"%s\"}\n", bad[i]);
        p = write_tmp("u.jsonl", text);
        CHECK(dataset_load(&d, p, &err) == RLHF_OK, "%s", err.msg);
        const char *s;
        char want[128];
        snprintf(want, sizeof want, "u.jsonl:2: field 'chosen' is not valid UTF-8 (byte %ld)", want_at[i]);
        CHECK(dataset_get_string(&d, 1, "chosen", 1, &s, &err) == RLHF_EINPUT && strstr(err.msg, want),
              "utf8 case %d: %s", i, err.msg);
        dataset_free(&d);
    }
    const char nul_row[] = "{\"a\":\"1\"}\n{\"a\":\"2\"}\0junk\n";
    CHECK(dataset_load_text(&d, "nul.jsonl", nul_row, sizeof nul_row - 1, &err) == RLHF_EINPUT &&
              strstr(err.msg, "nul.jsonl:2: invalid JSON"),
          "NUL byte: %s", err.msg);
    CHECK(utf8_invalid_at("\xf0\x9f\x98\x80 \xe4\xb8\xad", 8) == -1, "valid 4-byte and 3-byte");
    CHECK(utf8_invalid_at("\xf4\x90\x80\x80", 4) == 0, "above U+10FFFF");
}

static void test_ids(void) {
    const char *p = write_tmp("ids.jsonl", "{\"input_ids\":[1,2,3],\"x\":[]}\n{\"input_ids\":[0,99]}\n"
                                           "{\"input_ids\":[1,2.5]}\n{\"input_ids\":[-1]}\n{\"input_ids\":\"1 2\"}\n"
                                           "{\"input_ids\":[1,\"2\"]}\n");
    dataset d;
    rlhf_err err;
    CHECK(dataset_load(&d, p, &err) == RLHF_OK && d.n == 6, "%s", err.msg);
    int32_t *ids;
    int n;
    CHECK(dataset_get_ids(&d, 0, "input_ids", 1, 100, &ids, &n, &err) == RLHF_OK && n == 3 && ids[2] == 3, "ids");
    free(ids);
    CHECK(dataset_get_ids(&d, 0, "x", 1, 100, &ids, &n, &err) == RLHF_OK && n == 0 && ids != NULL, "empty ids");
    free(ids);
    CHECK(dataset_get_ids(&d, 0, "token_type_ids", 0, 2, &ids, &n, &err) == RLHF_OK && ids == NULL && n == 0,
          "optional");
    CHECK(dataset_get_ids(&d, 1, "input_ids", 1, 99, &ids, &n, &err) == RLHF_EINPUT &&
              strstr(err.msg, "ids.jsonl:2: field 'input_ids' element 1 is 99, outside [0, 99)"),
          "range: %s", err.msg);
    CHECK(dataset_get_ids(&d, 1, "input_ids", 1, 100, &ids, &n, &err) == RLHF_OK, "in range");
    free(ids);
    CHECK(dataset_get_ids(&d, 2, "input_ids", 1, 100, &ids, &n, &err) == RLHF_EINPUT && strstr(err.msg, ":3:"),
          "fraction: %s", err.msg);
    CHECK(dataset_get_ids(&d, 3, "input_ids", 1, 100, &ids, &n, &err) == RLHF_EINPUT && strstr(err.msg, "-1"),
          "negative: %s", err.msg);
    CHECK(dataset_get_ids(&d, 4, "input_ids", 1, 100, &ids, &n, &err) == RLHF_EINPUT &&
              strstr(err.msg, "must be an array"),
          "string: %s", err.msg);
    CHECK(dataset_get_ids(&d, 5, "input_ids", 1, 100, &ids, &n, &err) == RLHF_EINPUT && strstr(err.msg, "element 1"),
          "string element: %s", err.msg);
    CHECK(dataset_get_ids(&d, 5, "nope", 1, 100, &ids, &n, &err) == RLHF_EINPUT && strstr(err.msg, "missing"),
          "required ids");
    dataset_free(&d);
}

// A row up to DATASET_MAX_ROW_BYTES (4 MiB of text) loads whole; a 10 MB row is refused naming its line
// (issue 10: a runaway row is bad input, not seconds of tokenizing to be truncated away).
static void test_big_row(void) {
    const size_t sizes[2] = {(4u << 20) - 64, 10u << 20};
    for (int k = 0; k < 2; k++) {
        size_t big = sizes[k];
        char *text = malloc(big + 64);
        size_t o = (size_t)sprintf(text, "{\"prompt\":\"short\"}\n{\"chosen\":\"");
        for (size_t i = 0; i < big; i++) text[o++] = (char)('a' + i % 26);
        o += (size_t)sprintf(text + o, "\",\"rejected\":\"r\"}\n");
        dataset d;
        rlhf_err err = {0};
        rlhf_status st = dataset_load_text(&d, "mem.jsonl", text, o, &err);
        if (k == 0) {
            CHECK(st == RLHF_OK && d.n == 2, "4 MiB row: %s", err.msg);
            const char *s;
            CHECK(st == RLHF_OK && dataset_get_string(&d, 1, "chosen", 1, &s, &err) == RLHF_OK && strlen(s) == big,
                  "4 MiB string");
            if (st == RLHF_OK) dataset_free(&d);
        } else {
            CHECK(st == RLHF_EINPUT && strstr(err.msg, "mem.jsonl:2: row holds more than 4194304 bytes"),
                  "10 MB row refused: %s", err.msg);
        }
        free(text);
    }
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/rlhf_test_ds_XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    test_jsonl();
    test_gz_and_array();
    test_errors();
    test_ids();
    test_big_row();
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return tu_finish("io_dataset");
}
