// JSON files: parse with errors naming file, line and column; write exactly as transformers writes
// config.json (`json.dumps(d, indent=2, sort_keys=True) + "\n"`: keys sorted at every level, ASCII-only
// with \uXXXX escapes, Python's shortest float repr). cJSON keeps numbers as doubles only, so
// json_load_file remembers which numbers were written as floats ("10000.0") to write them back the
// same way: such number items carry the marker string JSON_FLOAT_MARK in valuestring (cJSON ignores
// valuestring for numbers and frees it with the item).
#include "base/strbuf.h"
#include "io/json_util.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/files.h"

#define JSON_FLOAT_MARK "float"
#define JSON_INDENT 2


// ---- marking float literals ----

// Walks the source text's number tokens in document order (cJSON's children are in document order
// too) and marks the items whose literal has a '.' or an exponent.
typedef struct {
    const char *p, *end;
} scan;

static int next_number_is_float(scan *s) {
    while (s->p < s->end) {
        char c = *s->p;
        if (c == '"') {
            s->p++;
            while (s->p < s->end && *s->p != '"') s->p += (*s->p == '\\' && s->p + 1 < s->end) ? 2 : 1;
            if (s->p < s->end) s->p++;
            continue;
        }
        if (c == '-' || (c >= '0' && c <= '9')) {
            int is_float = 0;
            while (s->p < s->end && strchr("+-0123456789.eE", *s->p)) {
                if (*s->p == '.' || *s->p == 'e' || *s->p == 'E') is_float = 1;
                s->p++;
            }
            return is_float;
        }
        s->p++;
    }
    return 0;
}

static void mark_floats(cJSON *item, scan *s) {
    for (; item; item = item->next) {
        if (cJSON_IsNumber(item)) {
            if (next_number_is_float(s) && !item->valuestring) item->valuestring = strdup(JSON_FLOAT_MARK);
        } else if (cJSON_IsArray(item) || cJSON_IsObject(item)) {
            mark_floats(item->child, s);
        }
    }
}

rlhf_status json_load_file(const char *path, cJSON **out, rlhf_err *err) {
    *out = NULL;
    char *buf;
    size_t len;
    RLHF_TRY(read_file(path, &buf, &len, err));
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(buf, len + 1, &end, 1);
    if (!j) {
        size_t off = end && end >= buf ? (size_t)(end - buf) : 0;
        if (off > len) off = len;
        int line = 1, col = 1;
        for (size_t i = 0; i < off; i++) {
            if (buf[i] == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
        free(buf);
        return rlhf_fail(err, RLHF_EINPUT, "%s: invalid JSON near byte %zu (line %d, column %d)", path, off, line,
                         col);
    }
    scan s = {buf, buf + len};
    mark_floats(j, &s);
    free(buf);
    *out = j;
    return RLHF_OK;
}

// ---- printing as Python's json.dumps(indent=2, sort_keys=True) ----

// Python's repr(float): the shortest digits that round-trip, fixed notation for exponents in
// [-4, 16), otherwise d.ddde+XX.
static void print_double_py(strbuf *b, double v) {
    char tmp[64];
    if (!isfinite(v)) {
        strbuf_puts(b, "null");  // Python writes NaN/Infinity, which no strict parser (nor cJSON) reads back
        return;
    }
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, v);
        if (strtod(tmp, NULL) == v) break;
    }
    // tmp = [-]d[.ddd]e[+-]XX
    char digits[32];
    int nd = 0, neg = 0;
    const char *q = tmp;
    if (*q == '-') {
        neg = 1;
        q++;
    }
    for (; *q && *q != 'e'; q++)
        if (*q != '.') digits[nd++] = *q;
    int e10 = atoi(q + 1);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    digits[nd] = 0;
    char out[96];
    int o = 0;
    if (neg) out[o++] = '-';
    if (e10 >= -4 && e10 < 16) {
        if (e10 >= 0) {
            for (int i = 0; i <= e10; i++) out[o++] = i < nd ? digits[i] : '0';
            out[o++] = '.';
            if (nd > e10 + 1)
                for (int i = e10 + 1; i < nd; i++) out[o++] = digits[i];
            else
                out[o++] = '0';
        } else {
            out[o++] = '0';
            out[o++] = '.';
            for (int i = 0; i < -e10 - 1; i++) out[o++] = '0';
            for (int i = 0; i < nd; i++) out[o++] = digits[i];
        }
        out[o] = 0;
    } else {
        out[o++] = digits[0];
        if (nd > 1) {
            out[o++] = '.';
            for (int i = 1; i < nd; i++) out[o++] = digits[i];
        }
        snprintf(out + o, sizeof out - (size_t)o, "e%c%02d", e10 < 0 ? '-' : '+', abs(e10));
    }
    strbuf_puts(b, out);
}

static void print_number(strbuf *b, const cJSON *item) {
    double v = item->valuedouble;
    int marked_float = item->valuestring && strcmp(item->valuestring, JSON_FLOAT_MARK) == 0;
    // Integral values not written as floats print as Python ints (exact up to 2^53).
    if (!marked_float && isfinite(v) && v == floor(v) && fabs(v) < 9007199254740992.0) {
        char tmp[32];
        snprintf(tmp, sizeof tmp, "%lld", (long long)v);
        strbuf_puts(b, tmp);
        return;
    }
    print_double_py(b, v);
}

// Decodes one UTF-8 sequence at s (n bytes left); returns its length or 0 if invalid.
static int utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    int len = (s[0] & 0xE0) == 0xC0 ? 2 : (s[0] & 0xF0) == 0xE0 ? 3 : (s[0] & 0xF8) == 0xF0 ? 4 : 0;
    if (!len || (size_t)len > n) return 0;
    uint32_t c = s[0] & (0x7F >> len);
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        c = (c << 6) | (s[i] & 0x3F);
    }
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (c < min_cp[len] || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
    *cp = c;
    return len;
}

// Python json.dumps with ensure_ascii=True: \" \\ \n \r \t \b \f, other controls and all non-ASCII as
// lowercase \uXXXX (UTF-16 surrogate pairs above U+FFFF).
static void print_string_py(strbuf *b, const char *str) {
    const unsigned char *s = (const unsigned char *)(str ? str : "");
    size_t n = strlen((const char *)s);
    strbuf_put(b, "\"", 1);
    char tmp[16];
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        const char *esc = NULL;
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        default: break;
        }
        if (esc) {
            strbuf_puts(b, esc);
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(tmp, sizeof tmp, "\\u%04x", c);
            strbuf_puts(b, tmp);
            i++;
        } else if (c < 0x80) {
            strbuf_put(b, (const char *)&s[i], 1);
            i++;
        } else {
            uint32_t cp;
            int len = utf8_decode(s + i, n - i, &cp);
            if (!len) {  // invalid byte: keep it visible rather than dropping it
                cp = c;
                len = 1;
            }
            if (cp >= 0x10000) {
                uint32_t v = cp - 0x10000;
                snprintf(tmp, sizeof tmp, "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
            } else {
                snprintf(tmp, sizeof tmp, "\\u%04x", cp);
            }
            strbuf_puts(b, tmp);
            i += (size_t)len;
        }
    }
    strbuf_put(b, "\"", 1);
}

static void indent(strbuf *b, int depth) {
    strbuf_put(b, "\n", 1);
    for (int i = 0; i < depth * JSON_INDENT; i++) strbuf_put(b, " ", 1);
}

static int cmp_item_keys(const void *a, const void *b) {
    const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
    return strcmp(x->string ? x->string : "", y->string ? y->string : "");
}

static void print_value(strbuf *b, const cJSON *item, int depth, int sort_keys) {
    switch (item->type & 0xFF) {
    case cJSON_NULL: strbuf_puts(b, "null"); return;
    case cJSON_False: strbuf_puts(b, "false"); return;
    case cJSON_True: strbuf_puts(b, "true"); return;
    case cJSON_Number: print_number(b, item); return;
    case cJSON_String: print_string_py(b, item->valuestring); return;
    case cJSON_Raw: strbuf_puts(b, item->valuestring ? item->valuestring : "null"); return;
    default: break;
    }
    int is_obj = cJSON_IsObject(item);
    int n = 0;
    for (const cJSON *c = item->child; c; c = c->next) n++;
    if (n == 0) {
        strbuf_puts(b, is_obj ? "{}" : "[]");
        return;
    }
    const cJSON **kids = malloc(sizeof *kids * (size_t)n);
    if (!kids) {
        b->oom = 1;
        return;
    }
    int k = 0;
    for (const cJSON *c = item->child; c; c = c->next) kids[k++] = c;
    // Python's sort is stable; so is insertion sort on equal keys (qsort is not, but duplicate keys
    // cannot round-trip through Python dicts anyway).
    if (is_obj && sort_keys) qsort(kids, (size_t)n, sizeof *kids, cmp_item_keys);
    strbuf_put(b, is_obj ? "{" : "[", 1);
    for (int i = 0; i < n; i++) {
        indent(b, depth + 1);
        if (is_obj) {
            print_string_py(b, kids[i]->string);
            strbuf_put(b, ": ", 2);
        }
        print_value(b, kids[i], depth + 1, sort_keys);
        if (i + 1 < n) strbuf_put(b, ",", 1);
    }
    indent(b, depth);
    strbuf_put(b, is_obj ? "}" : "]", 1);
    free(kids);
}

char *json_print_hf(const cJSON *json, int sort_keys) {
    strbuf b = {0};
    print_value(&b, json, 0, sort_keys);
    strbuf_put(&b, "\n", 1);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

rlhf_status json_save_file(const char *path, const cJSON *json, rlhf_err *err) {
    char *text = json_print_hf(json, 1);
    if (!text) return rlhf_fail(err, RLHF_ERUNTIME, "%s: out of memory formatting JSON", path);
    rlhf_status s = atomic_write(path, text, strlen(text), err);
    free(text);
    return s;
}

cJSON *json_float(double v) {
    cJSON *n = cJSON_CreateNumber(v);
    if (n && !(n->valuestring = strdup(JSON_FLOAT_MARK))) {
        cJSON_Delete(n);
        return NULL;
    }
    return n;
}

cJSON *json_add_float(cJSON *obj, const char *key, double v) {
    cJSON *n = json_float(v);
    if (n && !cJSON_AddItemToObject(obj, key, n)) {
        cJSON_Delete(n);
        return NULL;
    }
    return n;
}

// ---- typed getters ----

static const cJSON *get(const cJSON *obj, const char *key) {
    const cJSON *v = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
    return (v && !cJSON_IsNull(v)) ? v : NULL;
}

rlhf_status json_get_int(const cJSON *obj, const char *key, long long def, long long *out, const char *what,
                         rlhf_err *err) {
    const cJSON *v = get(obj, key);
    if (!v) {
        *out = def;
        return RLHF_OK;
    }
    double d = v->valuedouble;
    if (!cJSON_IsNumber(v) || d != floor(d) || fabs(d) > 9007199254740992.0)
        return rlhf_fail(err, RLHF_EINPUT, "%s: \"%s\" must be an integer", what, key);
    *out = (long long)d;
    return RLHF_OK;
}

rlhf_status json_get_double(const cJSON *obj, const char *key, double def, double *out, const char *what,
                            rlhf_err *err) {
    const cJSON *v = get(obj, key);
    if (!v) {
        *out = def;
        return RLHF_OK;
    }
    if (!cJSON_IsNumber(v)) return rlhf_fail(err, RLHF_EINPUT, "%s: \"%s\" must be a number", what, key);
    *out = v->valuedouble;
    return RLHF_OK;
}

rlhf_status json_get_bool(const cJSON *obj, const char *key, int def, int *out, const char *what, rlhf_err *err) {
    const cJSON *v = get(obj, key);
    if (!v) {
        *out = def;
        return RLHF_OK;
    }
    if (!cJSON_IsBool(v)) return rlhf_fail(err, RLHF_EINPUT, "%s: \"%s\" must be true or false", what, key);
    *out = cJSON_IsTrue(v);
    return RLHF_OK;
}

const char *json_get_string(const cJSON *obj, const char *key, const char *def) {
    const cJSON *v = get(obj, key);
    return (v && cJSON_IsString(v)) ? v->valuestring : def;
}
