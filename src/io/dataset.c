// Dataset files: JSON Lines (gzip'd or not, by magic) or a single JSON array, read whole into one
// cJSON object per row with the line each row starts on, so every later complaint about a row can
// say "PATH:LINE: ...". Validation is strict where cJSON is lax: string fields are checked for valid
// UTF-8, ids for integral values in range.
#include "io/dataset.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/files.h"

#define DATASET_MIN_ROWS 64
// The most text (string bytes, keys included) one row may hold. Far above any example a model here can
// take (4 MiB is ~1M tokens, while max_position_embeddings is at most a few 10^4), and low enough that a
// runaway row (a whole corpus on one line) is refused at once instead of being tokenized for seconds and
// then truncated away.
#define DATASET_MAX_ROW_BYTES (4u << 20)

void dataset_free(dataset *d) {
    if (!d) return;
    for (int i = 0; i < d->n; i++) cJSON_Delete(d->rows[i]);
    free(d->rows);
    free(d->lines);
    free(d->path);
    memset(d, 0, sizeof *d);
}

static rlhf_status push_row(dataset *d, int *cap, cJSON *row, int line, rlhf_err *err) {
    if (d->n == *cap) {
        int ncap = *cap ? *cap * 2 : DATASET_MIN_ROWS;
        cJSON **r = realloc(d->rows, sizeof *r * (size_t)ncap);
        if (!r) return rlhf_fail(err, RLHF_ERUNTIME, "%s: out of memory", d->path);
        d->rows = r;
        int *l = realloc(d->lines, sizeof *l * (size_t)ncap);
        if (!l) return rlhf_fail(err, RLHF_ERUNTIME, "%s: out of memory", d->path);
        d->lines = l;
        *cap = ncap;
    }
    d->rows[d->n] = row;
    d->lines[d->n] = line;
    d->n++;
    return RLHF_OK;
}

static const char *type_name(const cJSON *v) {
    if (!v) return "nothing";
    switch (v->type & 0xFF) {
    case cJSON_False:
    case cJSON_True: return "a boolean";
    case cJSON_NULL: return "null";
    case cJSON_Number: return "a number";
    case cJSON_String: return "a string";
    case cJSON_Array: return "an array";
    case cJSON_Object: return "an object";
    default: return "an unknown value";
    }
}

// Bytes of text in a row: every string value and key, at any depth (stops counting past the limit).
static size_t row_text_bytes(const cJSON *v, size_t acc) {
    for (; v && acc <= DATASET_MAX_ROW_BYTES; v = v->next) {
        if (v->string) acc += strlen(v->string);
        if (cJSON_IsString(v) && v->valuestring) acc += strlen(v->valuestring);
        if (v->child) acc = row_text_bytes(v->child, acc);
    }
    return acc;
}

static rlhf_status check_row_size(const dataset *d, const cJSON *row, int line, rlhf_err *err) {
    size_t n = row_text_bytes(row->child, 0);
    if (n <= DATASET_MAX_ROW_BYTES) return RLHF_OK;
    return rlhf_fail(err, RLHF_EINPUT,
                     "%s:%d: row holds more than %u bytes of text, expected at most that per row (one training "
                     "example; split or shorten it)", d->path, line, DATASET_MAX_ROW_BYTES);
}

static int line_of(const char *buf, size_t off) {
    int line = 1;
    for (size_t i = 0; i < off; i++) line += buf[i] == '\n';
    return line;
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// JSON Lines: one value per line, blank lines skipped. buf is modified (newlines become NULs).
static rlhf_status load_jsonl(dataset *d, char *buf, size_t len, rlhf_err *err) {
    int cap = 0, line = 0;
    size_t pos = 0;
    while (pos < len) {
        line++;
        char *start = buf + pos;
        char *nl = memchr(start, '\n', len - pos);
        size_t linelen = nl ? (size_t)(nl - start) : len - pos;
        pos += linelen + 1;
        int blank = 1;
        for (size_t i = 0; i < linelen && blank; i++) blank = is_space(start[i]);
        if (blank) continue;
        start[linelen] = 0;
        const char *end = NULL;
        cJSON *row = cJSON_ParseWithLengthOpts(start, linelen + 1, &end, 1);
        if (!row || end != start + linelen) {
            size_t col = end && end >= start ? (size_t)(end - start) + 1 : 1;
            cJSON_Delete(row);
            return rlhf_fail(err, RLHF_EINPUT, "%s:%d: invalid JSON (near column %zu: '%.20s')", d->path, line, col,
                             end && end >= start && end < start + linelen ? end : "end of line");
        }
        if (!cJSON_IsObject(row)) {
            rlhf_status s = rlhf_fail(err, RLHF_EINPUT, "%s:%d: expected a JSON object, got %s", d->path, line,
                                      type_name(row));
            cJSON_Delete(row);
            return s;
        }
        rlhf_status s = check_row_size(d, row, line, err);
        if (s == RLHF_OK) s = push_row(d, &cap, row, line, err);
        if (s != RLHF_OK) {
            cJSON_Delete(row);
            return s;
        }
    }
    return RLHF_OK;
}

// One JSON array of objects; each row's line is where its element starts.
static rlhf_status load_array(dataset *d, const char *buf, size_t len, rlhf_err *err) {
    const char *end = NULL;
    cJSON *arr = cJSON_ParseWithLengthOpts(buf, len + 1, &end, 1);
    if (!arr) {
        size_t off = end && end >= buf ? (size_t)(end - buf) : 0;
        if (off > len) off = len;
        return rlhf_fail(err, RLHF_EINPUT, "%s:%d: invalid JSON (near '%.20s')", d->path, line_of(buf, off),
                         off < len ? buf + off : "end of file");
    }
    if (!cJSON_IsArray(arr)) {
        cJSON_Delete(arr);
        return rlhf_fail(err, RLHF_EINPUT, "%s:1: expected a JSON array of objects", d->path);
    }
    // Element start lines: walk the (already validated) text at depth 1.
    int n = cJSON_GetArraySize(arr);
    int *lines = malloc(sizeof *lines * ((size_t)n + 1));
    if (!lines) {
        cJSON_Delete(arr);
        return rlhf_fail(err, RLHF_ERUNTIME, "%s: out of memory", d->path);
    }
    int depth = 0, line = 1, k = 0, expect_elem = 0;
    for (size_t i = 0; i < len && k < n; i++) {
        char c = buf[i];
        if (c == '\n') {
            line++;
            continue;
        }
        if (is_space(c)) continue;
        if (depth == 1 && expect_elem && c != ']') {
            lines[k++] = line;
            expect_elem = 0;
        }
        if (c == '"') {
            for (i++; i < len && buf[i] != '"'; i++) {
                if (buf[i] == '\\') i++;
                else if (buf[i] == '\n') line++;
            }
        } else if (c == '[' || c == '{') {
            depth++;
            if (depth == 1) expect_elem = 1;
        } else if (c == ']' || c == '}') {
            depth--;
        } else if (c == ',' && depth == 1) {
            expect_elem = 1;
        }
    }
    while (k < n) lines[k++] = 1;  // unreachable for valid JSON; keeps the array defined
    rlhf_status s = RLHF_OK;
    int cap = 0, i = 0;
    cJSON *c = arr->child;
    arr->child = NULL;
    cJSON_Delete(arr);
    while (c) {
        cJSON *next = c->next;
        c->next = c->prev = NULL;
        if (s == RLHF_OK && !cJSON_IsObject(c))
            s = rlhf_fail(err, RLHF_EINPUT, "%s:%d: expected a JSON object (array element %d), got %s", d->path,
                          lines[i], i, type_name(c));
        if (s == RLHF_OK) s = check_row_size(d, c, lines[i], err);
        if (s == RLHF_OK) {
            s = push_row(d, &cap, c, lines[i], err);
            if (s != RLHF_OK) cJSON_Delete(c);
        } else {
            cJSON_Delete(c);
        }
        c = next;
        i++;
    }
    free(lines);
    return s;
}

rlhf_status dataset_load_text(dataset *d, const char *name, const char *text, size_t len, rlhf_err *err) {
    memset(d, 0, sizeof *d);
    d->path = strdup(name);
    char *buf = malloc(len + 1);
    if (!d->path || !buf) {
        free(buf);
        dataset_free(d);
        return rlhf_fail(err, RLHF_ERUNTIME, "%s: out of memory", name);
    }
    memcpy(buf, text, len);
    buf[len] = 0;
    char *p = buf;
    size_t n = len;
    if (n >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) {  // UTF-8 byte order mark, as some editors write
        p += 3;
        n -= 3;
    }
    size_t first = 0;
    while (first < n && is_space(p[first])) first++;
    rlhf_status s = RLHF_OK;
    if (first < n && p[first] == '[')
        s = load_array(d, p, n, err);
    else
        s = load_jsonl(d, p, n, err);
    free(buf);
    if (s == RLHF_OK && d->n == 0) s = rlhf_fail(err, RLHF_EINPUT, "%s: no rows (empty dataset)", d->path);
    if (s != RLHF_OK) dataset_free(d);
    return s;
}

rlhf_status dataset_load(dataset *d, const char *path, rlhf_err *err) {
    memset(d, 0, sizeof *d);
    char *text;
    size_t len;
    RLHF_TRY(read_file(path, &text, &len, err));
    rlhf_status s = dataset_load_text(d, path, text, len, err);
    free(text);
    return s;
}

static rlhf_status get_field(const dataset *d, int row, const char *field, int required, const cJSON **out,
                             rlhf_err *err) {
    *out = NULL;
    if (row < 0 || row >= d->n)
        return rlhf_fail(err, RLHF_ERUNTIME, "%s: row %d out of range (%d rows)", d->path, row, d->n);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(d->rows[row], field);
    if (!v || (cJSON_IsNull(v) && !required)) {
        if (required)
            return rlhf_fail(err, RLHF_EINPUT, "%s:%d: field '%s' missing", d->path, d->lines[row], field);
        return RLHF_OK;
    }
    *out = v;
    return RLHF_OK;
}

rlhf_status dataset_get_string(const dataset *d, int row, const char *field, int required, const char **out,
                               rlhf_err *err) {
    *out = NULL;
    const cJSON *v;
    RLHF_TRY(get_field(d, row, field, required, &v, err));
    if (!v) return RLHF_OK;
    if (!cJSON_IsString(v))
        return rlhf_fail(err, RLHF_EINPUT, "%s:%d: field '%s' must be a string, got %s", d->path, d->lines[row], field,
                         type_name(v));
    long bad = utf8_invalid_at(v->valuestring, strlen(v->valuestring));
    if (bad >= 0)
        return rlhf_fail(err, RLHF_EINPUT, "%s:%d: field '%s' is not valid UTF-8 (byte %ld)", d->path, d->lines[row],
                         field, bad);
    *out = v->valuestring;
    return RLHF_OK;
}

rlhf_status dataset_get_ids(const dataset *d, int row, const char *field, int required, int max_id, int32_t **out,
                            int *n, rlhf_err *err) {
    *out = NULL;
    *n = 0;
    const cJSON *v;
    RLHF_TRY(get_field(d, row, field, required, &v, err));
    if (!v) return RLHF_OK;
    int line = d->lines[row];
    if (!cJSON_IsArray(v))
        return rlhf_fail(err, RLHF_EINPUT, "%s:%d: field '%s' must be an array of token ids, got %s", d->path, line,
                         field, type_name(v));
    int count = cJSON_GetArraySize(v);
    int32_t *ids = malloc(sizeof *ids * ((size_t)count + 1));  // +1: an empty list is still non-NULL
    if (!ids) return rlhf_fail(err, RLHF_ERUNTIME, "%s: out of memory", d->path);
    int i = 0;
    for (const cJSON *e = v->child; e; e = e->next, i++) {
        double x = e->valuedouble;
        if (!cJSON_IsNumber(e) || x != floor(x)) {
            free(ids);
            return rlhf_fail(err, RLHF_EINPUT, "%s:%d: field '%s' element %d must be an integer token id, got %s",
                             d->path, line, field, i, cJSON_IsNumber(e) ? "a fraction" : type_name(e));
        }
        if (x < 0 || (max_id > 0 && x >= max_id) || x > INT32_MAX) {
            free(ids);
            if (max_id > 0)
                return rlhf_fail(err, RLHF_EINPUT, "%s:%d: field '%s' element %d is %.0f, outside [0, %d)", d->path,
                                 line, field, i, x, max_id);
            return rlhf_fail(err, RLHF_EINPUT, "%s:%d: field '%s' element %d is %.0f, not a valid token id", d->path,
                             line, field, i, x);
        }
        ids[i] = (int32_t)x;
    }
    *out = ids;
    *n = count;
    return RLHF_OK;
}
