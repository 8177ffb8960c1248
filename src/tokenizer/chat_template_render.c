// Chat templates: rendering a parsed template with jinja2's semantics as transformers sets them up:
// Python values (str / int / float / bool / None / list / dict, plus jinja2's Undefined and namespace),
// Python's str() and repr() for output, the filters, tests, methods and globals that published chat
// templates call, loop scoping (a {% set %} inside a loop is local to that iteration) and limits that
// keep a hostile template from exhausting memory or time.
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/strbuf.h"
#include "tokenizer/chat_template_internal.h"

#define CT_MAX_OUTPUT (64u << 20)       // bytes a render may produce
#define CT_MAX_POOL (512u << 20)        // bytes of values a render may allocate
#define CT_MAX_ITERATIONS 100000L       // loop iterations over a whole render (chats have far fewer turns)
#define CT_MAX_SCOPES 256

typedef enum { V_UNDEF, V_NONE, V_BOOL, V_INT, V_FLOAT, V_STR, V_LIST, V_DICT, V_NS, V_METHOD, V_FUNC } ct_vkind;

typedef struct ct_value ct_value;
typedef struct {
    const char **keys;
    size_t *klen;
    const ct_value **vals;
    int n, cap;
} ct_dict;

struct ct_value {
    ct_vkind k;
    long long i;            // V_BOOL, V_INT
    double f;               // V_FLOAT
    const char *s;          // V_STR bytes; V_METHOD / V_FUNC / V_UNDEF name
    size_t n;               // V_STR length; V_LIST length
    const ct_value **items; // V_LIST
    ct_dict *d;             // V_DICT, V_NS (mutable for namespaces)
    const ct_value *self;   // V_METHOD receiver
};

static const ct_value UNDEF = {V_UNDEF, 0, 0, NULL, 0, NULL, NULL, NULL};
static const ct_value NONE = {V_NONE, 0, 0, NULL, 0, NULL, NULL, NULL};
static const ct_value TRUE_V = {V_BOOL, 1, 0, NULL, 0, NULL, NULL, NULL};
static const ct_value FALSE_V = {V_BOOL, 0, 0, NULL, 0, NULL, NULL, NULL};

typedef struct {
    const char *name;
    const ct_value *v;
} ct_var;
typedef struct {
    ct_var *vars;
    int n, cap;
} ct_scope;

typedef struct {
    const chat_template *t;
    rlhf_err *err;
    ct_pool pool;
    strbuf out;
    ct_scope scopes[CT_MAX_SCOPES];
    int nscopes;
    long iterations;
    int loop_ctl;  // 1 break, 2 continue (pending, inside a loop body)
} ct_ctx;

static rlhf_status rerr(ct_ctx *c, int line, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return rlhf_fail(c->err, RLHF_EINPUT, "%s: chat_template line %d: %s", c->t->what, line, msg);
}
static rlhf_status oom(ct_ctx *c) {
    return rlhf_fail(c->err, RLHF_ERUNTIME, "%s: chat_template: out of memory (a render may use %u MiB)", c->t->what,
                     CT_MAX_POOL >> 20);
}

// ---- values ----------------------------------------------------------------------------------------
static ct_value *new_value(ct_ctx *c, ct_vkind k) {
    ct_value *v = ct_alloc(&c->pool, sizeof *v);
    if (v) v->k = k;
    return v;
}
static const ct_value *mk_int(ct_ctx *c, long long i) {
    ct_value *v = new_value(c, V_INT);
    if (v) v->i = i;
    return v;
}
static const ct_value *mk_float(ct_ctx *c, double f) {
    ct_value *v = new_value(c, V_FLOAT);
    if (v) v->f = f;
    return v;
}
static const ct_value *mk_bool(int b) { return b ? &TRUE_V : &FALSE_V; }
static const ct_value *mk_str(ct_ctx *c, const char *s, size_t n, int copy) {
    ct_value *v = new_value(c, V_STR);
    if (!v) return NULL;
    v->s = copy ? ct_strndup(&c->pool, s, n) : s, v->n = n;
    return v->s ? v : NULL;
}
static const ct_value *mk_list(ct_ctx *c, size_t n) {
    ct_value *v = new_value(c, V_LIST);
    if (!v) return NULL;
    v->n = n;
    v->items = ct_alloc(&c->pool, sizeof *v->items * (n ? n : 1));
    return v->items ? v : NULL;
}
static ct_value *mk_dict(ct_ctx *c, ct_vkind k) {
    ct_value *v = new_value(c, k);
    if (!v) return NULL;
    v->d = ct_alloc(&c->pool, sizeof *v->d);
    return v->d ? v : NULL;
}
static int dict_set(ct_ctx *c, ct_dict *d, const char *key, size_t klen, const ct_value *val) {
    for (int i = 0; i < d->n; i++)
        if (d->klen[i] == klen && !memcmp(d->keys[i], key, klen)) {
            d->vals[i] = val;
            return 1;
        }
    if (d->n == d->cap) {
        int cap = d->cap ? d->cap * 2 : 8;
        const char **nk = ct_alloc(&c->pool, sizeof *nk * (size_t)cap);
        size_t *nl = ct_alloc(&c->pool, sizeof *nl * (size_t)cap);
        const ct_value **nv = ct_alloc(&c->pool, sizeof *nv * (size_t)cap);
        if (!nk || !nl || !nv) return 0;
        if (d->n) {
            memcpy(nk, d->keys, sizeof *nk * (size_t)d->n);
            memcpy(nl, d->klen, sizeof *nl * (size_t)d->n);
            memcpy(nv, d->vals, sizeof *nv * (size_t)d->n);
        }
        d->keys = nk, d->klen = nl, d->vals = nv, d->cap = cap;
    }
    d->keys[d->n] = key, d->klen[d->n] = klen, d->vals[d->n++] = val;
    return 1;
}
static const ct_value *dict_get(const ct_dict *d, const char *key, size_t klen) {
    for (int i = 0; i < d->n; i++)
        if (d->klen[i] == klen && !memcmp(d->keys[i], key, klen)) return d->vals[i];
    return NULL;
}

static const ct_value *from_json(ct_ctx *c, const cJSON *j, int depth) {
    if (depth > 64) return NULL;
    if (cJSON_IsString(j)) return mk_str(c, j->valuestring, strlen(j->valuestring), 0);
    if (cJSON_IsBool(j)) return mk_bool(cJSON_IsTrue(j));
    if (cJSON_IsNull(j)) return &NONE;
    if (cJSON_IsNumber(j)) {
        double f = j->valuedouble;
        if (f == floor(f) && fabs(f) < 9007199254740992.0) return mk_int(c, (long long)f);
        return mk_float(c, f);
    }
    if (cJSON_IsArray(j)) {
        int n = cJSON_GetArraySize(j), i = 0;
        const ct_value *l = mk_list(c, (size_t)n);
        if (!l) return NULL;
        for (const cJSON *e = j->child; e; e = e->next, i++)
            if (!(l->items[i] = from_json(c, e, depth + 1))) return NULL;
        return l;
    }
    if (cJSON_IsObject(j)) {
        ct_value *v = mk_dict(c, V_DICT);
        if (!v) return NULL;
        for (const cJSON *e = j->child; e; e = e->next) {
            const ct_value *x = from_json(c, e, depth + 1);
            if (!x || !dict_set(c, v->d, e->string, strlen(e->string), x)) return NULL;
        }
        return v;
    }
    return &UNDEF;
}

static int truthy(const ct_value *v) {
    switch (v->k) {
    case V_UNDEF: case V_NONE: return 0;
    case V_BOOL: case V_INT: return v->i != 0;
    case V_FLOAT: return v->f != 0;
    case V_STR: case V_LIST: return v->n != 0;
    case V_DICT: return v->d->n != 0;
    default: return 1;
    }
}
static int is_number(const ct_value *v) { return v->k == V_INT || v->k == V_FLOAT || v->k == V_BOOL; }
static double num(const ct_value *v) { return v->k == V_FLOAT ? v->f : (double)v->i; }

static int values_equal(const ct_value *a, const ct_value *b) {
    if (is_number(a) && is_number(b)) {
        if (a->k != V_FLOAT && b->k != V_FLOAT) return a->i == b->i;
        return num(a) == num(b);
    }
    if (a->k != b->k) return 0;
    switch (a->k) {
    case V_UNDEF: case V_NONE: return 1;
    case V_STR: return a->n == b->n && !memcmp(a->s, b->s, a->n);
    case V_LIST:
        if (a->n != b->n) return 0;
        for (size_t i = 0; i < a->n; i++)
            if (!values_equal(a->items[i], b->items[i])) return 0;
        return 1;
    case V_DICT:
        if (a->d->n != b->d->n) return 0;
        for (int i = 0; i < a->d->n; i++) {
            const ct_value *o = dict_get(b->d, a->d->keys[i], a->d->klen[i]);
            if (!o || !values_equal(a->d->vals[i], o)) return 0;
        }
        return 1;
    default: return a == b;
    }
}

// ---- str() / repr() / tojson ------------------------------------------------------------------------
static void put(strbuf *b, const char *s, size_t n) { strbuf_put(b, s, n); }
static void puts_(strbuf *b, const char *s) { strbuf_puts(b, s); }

// Python's repr(float): the shortest digits that read back the same, positional for exponents in
// [-4, 16), else d.ddde+XX; integral values keep ".0".
static void put_float(strbuf *b, double f) {
    if (isnan(f)) { puts_(b, "nan"); return; }
    if (isinf(f)) { puts_(b, f < 0 ? "-inf" : "inf"); return; }
    char e[64];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(e, sizeof e, "%.*e", prec - 1, f);
        if (strtod(e, NULL) == f) break;
    }
    // e = "[-]d.ddde[+-]XX": split mantissa digits and exponent.
    char digits[32];
    int nd = 0, neg = e[0] == '-';
    const char *q = e + neg;
    for (; *q && *q != 'e'; q++)
        if (*q != '.') digits[nd++] = *q;
    int exp = atoi(q + 1);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    char out[64];
    int k = 0;
    if (neg) out[k++] = '-';
    if (exp >= -4 && exp < 16) {
        if (exp < 0) {
            out[k++] = '0', out[k++] = '.';
            for (int i = 0; i < -exp - 1; i++) out[k++] = '0';
            for (int i = 0; i < nd; i++) out[k++] = digits[i];
        } else {
            for (int i = 0; i <= exp; i++) out[k++] = i < nd ? digits[i] : '0';
            out[k++] = '.';
            if (nd > exp + 1) for (int i = exp + 1; i < nd; i++) out[k++] = digits[i];
            else out[k++] = '0';
        }
        out[k] = 0;
    } else {
        out[k++] = digits[0];
        if (nd > 1) {
            out[k++] = '.';
            for (int i = 1; i < nd; i++) out[k++] = digits[i];
        }
        snprintf(out + k, sizeof out - (size_t)k, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    }
    puts_(b, out);
}

static void put_repr(strbuf *b, const ct_value *v);

static void put_str(strbuf *b, const ct_value *v) {
    char tmp[32];
    switch (v->k) {
    case V_UNDEF: return;
    case V_NONE: puts_(b, "None"); return;
    case V_BOOL: puts_(b, v->i ? "True" : "False"); return;
    case V_INT: snprintf(tmp, sizeof tmp, "%lld", v->i); puts_(b, tmp); return;
    case V_FLOAT: put_float(b, v->f); return;
    case V_STR: put(b, v->s, v->n); return;
    case V_NS: puts_(b, "<Namespace>"); return;
    case V_METHOD: case V_FUNC: puts_(b, "<function "), puts_(b, v->s), puts_(b, ">"); return;
    default: put_repr(b, v);
    }
}

static void put_repr_string(strbuf *b, const char *s, size_t n) {
    char q = memchr(s, '\'', n) && !memchr(s, '"', n) ? '"' : '\'';
    put(b, &q, 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        char tmp[8];
        if (ch == '\\') puts_(b, "\\\\");
        else if (ch == (unsigned char)q) put(b, "\\", 1), put(b, &q, 1);
        else if (ch == '\n') puts_(b, "\\n");
        else if (ch == '\r') puts_(b, "\\r");
        else if (ch == '\t') puts_(b, "\\t");
        else if (ch < 0x20 || ch == 0x7f) snprintf(tmp, sizeof tmp, "\\x%02x", ch), puts_(b, tmp);
        else put(b, (const char *)&s[i], 1);
    }
    put(b, &q, 1);
}

static void put_repr(strbuf *b, const ct_value *v) {
    if (v->k == V_STR) { put_repr_string(b, v->s, v->n); return; }
    if (v->k == V_LIST) {
        puts_(b, "[");
        for (size_t i = 0; i < v->n; i++) {
            if (i) puts_(b, ", ");
            put_repr(b, v->items[i]);
        }
        puts_(b, "]");
        return;
    }
    if (v->k == V_DICT) {
        puts_(b, "{");
        for (int i = 0; i < v->d->n; i++) {
            if (i) puts_(b, ", ");
            put_repr_string(b, v->d->keys[i], v->d->klen[i]);
            puts_(b, ": ");
            put_repr(b, v->d->vals[i]);
        }
        puts_(b, "}");
        return;
    }
    put_str(b, v);
}

static void put_json_string(strbuf *b, const char *s, size_t n) {
    puts_(b, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        char tmp[8];
        if (ch == '"') puts_(b, "\\\"");
        else if (ch == '\\') puts_(b, "\\\\");
        else if (ch == '\n') puts_(b, "\\n");
        else if (ch == '\r') puts_(b, "\\r");
        else if (ch == '\t') puts_(b, "\\t");
        else if (ch == '\b') puts_(b, "\\b");
        else if (ch == '\f') puts_(b, "\\f");
        else if (ch < 0x20 || ch == 0x7f) snprintf(tmp, sizeof tmp, "\\u%04x", ch), puts_(b, tmp);
        else put(b, (const char *)&s[i], 1);
    }
    puts_(b, "\"");
}

static void put_indent(strbuf *b, int indent, int level) {
    puts_(b, "\n");
    for (int i = 0; i < indent * level; i++) puts_(b, " ");
}

// json.dumps(v, ensure_ascii=False, indent=indent (< 0: None)), as transformers' tojson filter.
static int put_json(strbuf *b, const ct_value *v, int indent, int level) {
    switch (v->k) {
    case V_NONE: case V_UNDEF: puts_(b, "null"); return 1;
    case V_BOOL: puts_(b, v->i ? "true" : "false"); return 1;
    case V_INT: case V_FLOAT:
        if (v->k == V_FLOAT && isnan(v->f)) puts_(b, "NaN");
        else if (v->k == V_FLOAT && isinf(v->f)) puts_(b, v->f < 0 ? "-Infinity" : "Infinity");
        else put_str(b, v);
        return 1;
    case V_STR: put_json_string(b, v->s, v->n); return 1;
    case V_LIST:
        if (!v->n) { puts_(b, "[]"); return 1; }
        puts_(b, "[");
        for (size_t i = 0; i < v->n; i++) {
            if (i) puts_(b, indent >= 0 ? "," : ", ");
            if (indent >= 0) put_indent(b, indent, level + 1);
            if (!put_json(b, v->items[i], indent, level + 1)) return 0;
        }
        if (indent >= 0) put_indent(b, indent, level);
        puts_(b, "]");
        return 1;
    case V_DICT: case V_NS:
        if (!v->d->n) { puts_(b, "{}"); return 1; }
        puts_(b, "{");
        for (int i = 0; i < v->d->n; i++) {
            if (i) puts_(b, indent >= 0 ? "," : ", ");
            if (indent >= 0) put_indent(b, indent, level + 1);
            put_json_string(b, v->d->keys[i], v->d->klen[i]);
            puts_(b, ": ");
            if (!put_json(b, v->d->vals[i], indent, level + 1)) return 0;
        }
        if (indent >= 0) put_indent(b, indent, level);
        puts_(b, "}");
        return 1;
    default: return 0;
    }
}

static const char *kind_name(const ct_value *v) {
    static const char *const names[] = {"undefined", "None", "bool", "int", "float", "str", "list", "dict",
                                        "namespace", "method", "function"};
    return names[v->k];
}

// A value rendered with str() into the pool.
static const ct_value *to_str_value(ct_ctx *c, const ct_value *v) {
    if (v->k == V_STR) return v;
    strbuf b = {0};
    put_str(&b, v);
    if (b.oom) { strbuf_free(&b); return NULL; }
    const ct_value *r = mk_str(c, b.p ? b.p : "", b.n, 1);
    strbuf_free(&b);
    return r;
}

// ---- scopes ----------------------------------------------------------------------------------------
static const ct_value *lookup(ct_ctx *c, const char *name) {
    for (int s = c->nscopes - 1; s >= 0; s--)
        for (int i = c->scopes[s].n - 1; i >= 0; i--)
            if (!strcmp(c->scopes[s].vars[i].name, name)) return c->scopes[s].vars[i].v;
    return NULL;
}
static rlhf_status assign(ct_ctx *c, const char *name, const ct_value *v) {
    ct_scope *s = &c->scopes[c->nscopes - 1];
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->vars[i].name, name)) {
            s->vars[i].v = v;
            return RLHF_OK;
        }
    if (s->n == s->cap) {
        int cap = s->cap ? s->cap * 2 : 16;
        ct_var *nv = ct_alloc(&c->pool, sizeof *nv * (size_t)cap);
        if (!nv) return oom(c);
        if (s->n) memcpy(nv, s->vars, sizeof *nv * (size_t)s->n);
        s->vars = nv, s->cap = cap;
    }
    s->vars[s->n].name = name, s->vars[s->n++].v = v;
    return RLHF_OK;
}
static rlhf_status push_scope(ct_ctx *c, int line) {
    if (c->nscopes == CT_MAX_SCOPES) return rerr(c, line, "loops nested too deep");
    memset(&c->scopes[c->nscopes++], 0, sizeof(ct_scope));
    return RLHF_OK;
}

// ---- expressions -----------------------------------------------------------------------------------
static rlhf_status eval(ct_ctx *c, const ct_expr *e, const ct_value **out);

#define VCHECK(x)                                                                                       \
    do {                                                                                                \
        if (!(x)) return oom(c);                                                                        \
    } while (0)

static rlhf_status eval_args(ct_ctx *c, const ct_expr *e, const ct_value **pos, int *npos, const char **kwn,
                             const ct_value **kwv, int *nkw, int max) {
    *npos = *nkw = 0;
    for (int i = 0; i < e->nargs; i++) {
        const ct_value *v;
        RLHF_TRY(eval(c, e->args[i], &v));
        if (e->kw && e->kw[i]) {
            if (*nkw == max) return rerr(c, e->line, "too many keyword arguments");
            kwn[*nkw] = e->kw[i], kwv[(*nkw)++] = v;
        } else {
            if (*npos == max) return rerr(c, e->line, "too many arguments");
            pos[(*npos)++] = v;
        }
    }
    return RLHF_OK;
}

// Python index normalisation: negative counts from the end; 0 when out of range.
static int norm_index(long long i, size_t n, size_t *out) {
    if (i < 0) i += (long long)n;
    if (i < 0 || (size_t)i >= n) return 0;
    *out = (size_t)i;
    return 1;
}

static rlhf_status get_item(ct_ctx *c, int line, const ct_value *obj, const ct_value *key, const ct_value **out) {
    size_t idx;
    if (obj->k == V_UNDEF) return rerr(c, line, "'%s' is undefined", obj->s ? obj->s : "value");
    if ((obj->k == V_DICT || obj->k == V_NS) && key->k == V_STR) {
        const ct_value *v = dict_get(obj->d, key->s, key->n);
        *out = v ? v : &UNDEF;
        return RLHF_OK;
    }
    if (obj->k == V_LIST && (key->k == V_INT || key->k == V_BOOL)) {
        *out = norm_index(key->i, obj->n, &idx) ? obj->items[idx] : &UNDEF;
        return RLHF_OK;
    }
    if (obj->k == V_STR && key->k == V_INT) {
        // Python indexes code points; chat templates index ASCII role names, so bytes are compared on
        // the decoded text: find the idx-th code point.
        size_t ncp = 0;
        for (size_t i = 0; i < obj->n; i++) ncp += ((unsigned char)obj->s[i] & 0xC0) != 0x80;
        if (!norm_index(key->i, ncp, &idx)) { *out = &UNDEF; return RLHF_OK; }
        size_t i = 0, cp = 0;
        for (; i < obj->n; i++)
            if (((unsigned char)obj->s[i] & 0xC0) != 0x80 && cp++ == idx) break;
        size_t j = i + 1;
        while (j < obj->n && ((unsigned char)obj->s[j] & 0xC0) == 0x80) j++;
        *out = mk_str(c, obj->s + i, j - i, 0);
        VCHECK(*out);
        return RLHF_OK;
    }
    *out = &UNDEF;  // jinja2: a missing item is undefined, not an error
    return RLHF_OK;
}

static const char *const STR_METHODS[] = {"strip", "lstrip", "rstrip", "startswith", "endswith", "split", "upper",
                                          "lower", "title", "capitalize", "replace", "join", "format", NULL};
static const char *const DICT_METHODS[] = {"get", "items", "keys", "values", NULL};

static int in_list(const char *const *names, const char *s) {
    for (int i = 0; names[i]; i++)
        if (!strcmp(names[i], s)) return 1;
    return 0;
}

static rlhf_status get_attr(ct_ctx *c, int line, const ct_value *obj, const char *name, const ct_value **out) {
    if (obj->k == V_UNDEF) return rerr(c, line, "'%s' is undefined (reading .%s)", obj->s ? obj->s : "value", name);
    if ((obj->k == V_STR && in_list(STR_METHODS, name)) || (obj->k == V_DICT && in_list(DICT_METHODS, name))) {
        ct_value *m = new_value(c, V_METHOD);
        VCHECK(m);
        m->s = name, m->self = obj;
        *out = m;
        return RLHF_OK;
    }
    if (obj->k == V_DICT || obj->k == V_NS) {
        const ct_value *v = dict_get(obj->d, name, strlen(name));
        *out = v ? v : &UNDEF;
        return RLHF_OK;
    }
    *out = &UNDEF;
    return RLHF_OK;
}

// Python slicing of lists and strings (code points).
static rlhf_status slice(ct_ctx *c, const ct_expr *e, const ct_value *obj, const ct_value **out) {
    long long part[3];
    int has[3];
    for (int k = 0; k < 3; k++) {
        has[k] = e->args[k] != NULL;
        if (!has[k]) continue;
        const ct_value *v;
        RLHF_TRY(eval(c, e->args[k], &v));
        if (v->k == V_NONE) { has[k] = 0; continue; }
        if (v->k != V_INT) return rerr(c, e->line, "slice indices must be integers, got %s", kind_name(v));
        part[k] = v->i;
    }
    long long step = has[2] ? part[2] : 1;
    if (step == 0) return rerr(c, e->line, "slice step cannot be zero");
    // Code point offsets for strings.
    size_t n = obj->n, *cps = NULL;
    if (obj->k == V_STR) {
        cps = ct_alloc(&c->pool, sizeof *cps * (obj->n + 1));
        VCHECK(cps);
        n = 0;
        for (size_t i = 0; i < obj->n; i++)
            if (((unsigned char)obj->s[i] & 0xC0) != 0x80) cps[n++] = i;
        cps[n] = obj->n;
    } else if (obj->k != V_LIST) {
        return rerr(c, e->line, "cannot slice a %s", kind_name(obj));
    }
    long long len = (long long)n, start, stop;
    if (step > 0) {
        start = has[0] ? part[0] : 0, stop = has[1] ? part[1] : len;
        if (start < 0) start = start + len < 0 ? 0 : start + len;
        if (stop < 0) stop = stop + len < 0 ? 0 : stop + len;
        if (start > len) start = len;
        if (stop > len) stop = len;
    } else {
        start = has[0] ? part[0] : len - 1, stop = has[1] ? part[1] : -len - 1;
        if (start < 0) start = start + len < 0 ? -1 : start + len;
        if (start >= len) start = len - 1;
        if (stop < 0) stop = stop + len < 0 ? -1 : stop + len;
        if (stop >= len) stop = len - 1;
    }
    size_t count = 0;
    for (long long i = start; step > 0 ? i < stop : i > stop; i += step) count++;
    if (obj->k == V_LIST) {
        const ct_value *l = mk_list(c, count);
        VCHECK(l);
        size_t k = 0;
        for (long long i = start; step > 0 ? i < stop : i > stop; i += step) l->items[k++] = obj->items[i];
        *out = l;
        return RLHF_OK;
    }
    strbuf b = {0};
    for (long long i = start; step > 0 ? i < stop : i > stop; i += step) put(&b, obj->s + cps[i], cps[i + 1] - cps[i]);
    *out = b.oom ? NULL : mk_str(c, b.p ? b.p : "", b.n, 1);
    strbuf_free(&b);
    VCHECK(*out);
    return RLHF_OK;
}

static int is_ws(unsigned char ch) { return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v'; }

// str.strip / lstrip / rstrip / jinja's trim: whitespace, or the characters of chars.
static const ct_value *strip(ct_ctx *c, const ct_value *s, const ct_value *chars, int left, int right) {
    size_t a = 0, b = s->n;
#define STRIPPABLE(ch) (chars ? memchr(chars->s, (ch), chars->n) != NULL : is_ws((unsigned char)(ch)))
    if (left) while (a < b && STRIPPABLE(s->s[a])) a++;
    if (right) while (b > a && STRIPPABLE(s->s[b - 1])) b--;
#undef STRIPPABLE
    return mk_str(c, s->s + a, b - a, 0);
}

static const ct_value *case_map(ct_ctx *c, const ct_value *s, int mode) {  // 0 lower, 1 upper, 2 title, 3 capitalize
    char *o = ct_alloc(&c->pool, s->n + 1);
    if (!o) return NULL;
    int word_start = 1;
    for (size_t i = 0; i < s->n; i++) {
        char ch = s->s[i];
        int alpha = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
        int up = mode == 1 || ((mode == 2 && word_start) || (mode == 3 && i == 0));
        if (alpha) ch = up ? (ch >= 'a' && ch <= 'z' ? (char)(ch - 32) : ch) : (ch >= 'A' && ch <= 'Z' ? (char)(ch + 32) : ch);
        word_start = mode == 2 ? !alpha && !((unsigned char)ch & 0x80) : 0;
        o[i] = ch;
    }
    return mk_str(c, o, s->n, 0);
}

static const ct_value *replace(ct_ctx *c, const ct_value *s, const ct_value *from, const ct_value *to) {
    strbuf b = {0};
    if (!from->n) {  // Python inserts to between every character
        put(&b, to->s, to->n);
        for (size_t i = 0; i < s->n; i++) {
            put(&b, s->s + i, 1);
            if (i + 1 == s->n || ((unsigned char)s->s[i + 1] & 0xC0) != 0x80) put(&b, to->s, to->n);
        }
    } else {
        size_t i = 0;
        while (i < s->n) {
            if (i + from->n <= s->n && !memcmp(s->s + i, from->s, from->n)) put(&b, to->s, to->n), i += from->n;
            else put(&b, s->s + i++, 1);
        }
    }
    const ct_value *r = b.oom ? NULL : mk_str(c, b.p ? b.p : "", b.n, 1);
    strbuf_free(&b);
    return r;
}

static const ct_value *split(ct_ctx *c, const ct_value *s, const ct_value *sep, long long maxsplit) {
    const ct_value **parts = ct_alloc(&c->pool, sizeof *parts * (s->n + 2));
    if (!parts) return NULL;
    size_t np = 0, i = 0;
    if (!sep) {  // whitespace runs, no empty parts
        while (i < s->n) {
            while (i < s->n && is_ws((unsigned char)s->s[i])) i++;
            if (i >= s->n) break;
            size_t j = i;
            if (maxsplit >= 0 && (long long)np == maxsplit) j = s->n;
            else while (j < s->n && !is_ws((unsigned char)s->s[j])) j++;
            if (!(parts[np++] = mk_str(c, s->s + i, j - i, 0))) return NULL;
            i = j;
        }
    } else {
        size_t start = 0;
        while (i + sep->n <= s->n && (maxsplit < 0 || (long long)np < maxsplit)) {
            if (!memcmp(s->s + i, sep->s, sep->n)) {
                if (!(parts[np++] = mk_str(c, s->s + start, i - start, 0))) return NULL;
                i += sep->n, start = i;
            } else {
                i++;
            }
        }
        if (!(parts[np++] = mk_str(c, s->s + start, s->n - start, 0))) return NULL;
    }
    const ct_value *l = mk_list(c, np);
    if (l) memcpy(l->items, parts, sizeof *parts * np);
    return l;
}

static const ct_value *join(ct_ctx *c, const ct_value *list, const ct_value *sep) {
    strbuf b = {0};
    for (size_t i = 0; i < list->n; i++) {
        if (i && sep) put(&b, sep->s, sep->n);
        put_str(&b, list->items[i]);
    }
    const ct_value *r = b.oom ? NULL : mk_str(c, b.p ? b.p : "", b.n, 1);
    strbuf_free(&b);
    return r;
}

#define MAX_ARGS 8

static rlhf_status call_method(ct_ctx *c, int line, const ct_value *m, const ct_value **a, int na,
                               const ct_value **out) {
    const ct_value *self = m->self;
    const char *nm = m->s;
    if (self->k == V_DICT) {
        if (!strcmp(nm, "get")) {
            if (na < 1 || a[0]->k != V_STR) return rerr(c, line, "dict.get expects a string key");
            const ct_value *v = dict_get(self->d, a[0]->s, a[0]->n);
            *out = v ? v : na > 1 ? a[1] : &NONE;
            return RLHF_OK;
        }
        const ct_value *l = mk_list(c, (size_t)self->d->n);
        VCHECK(l);
        for (int i = 0; i < self->d->n; i++) {
            const ct_value *k = mk_str(c, self->d->keys[i], self->d->klen[i], 0);
            VCHECK(k);
            if (!strcmp(nm, "keys")) l->items[i] = k;
            else if (!strcmp(nm, "values")) l->items[i] = self->d->vals[i];
            else {
                const ct_value *pair = mk_list(c, 2);
                VCHECK(pair);
                pair->items[0] = k, pair->items[1] = self->d->vals[i];
                l->items[i] = pair;
            }
        }
        *out = l;
        return RLHF_OK;
    }
    for (int i = 0; i < na; i++)
        if (a[i]->k != V_STR && a[i]->k != V_NONE && !(a[i]->k == V_INT && !strcmp(nm, "split")) &&
            strcmp(nm, "join") && strcmp(nm, "format"))
            return rerr(c, line, "str.%s expects string arguments, got %s", nm, kind_name(a[i]));
    const ct_value *chars = na > 0 && a[0]->k == V_STR ? a[0] : NULL;
    if (!strcmp(nm, "strip")) *out = strip(c, self, chars, 1, 1);
    else if (!strcmp(nm, "lstrip")) *out = strip(c, self, chars, 1, 0);
    else if (!strcmp(nm, "rstrip")) *out = strip(c, self, chars, 0, 1);
    else if (!strcmp(nm, "startswith") || !strcmp(nm, "endswith")) {
        if (!chars) return rerr(c, line, "str.%s expects a string", nm);
        int ok = chars->n <= self->n &&
                 !memcmp(nm[0] == 's' ? self->s : self->s + self->n - chars->n, chars->s, chars->n);
        *out = mk_bool(ok);
    } else if (!strcmp(nm, "split")) {
        long long maxsplit = na > 1 && a[1]->k == V_INT ? a[1]->i : -1;
        if (chars && !chars->n) return rerr(c, line, "str.split: empty separator");
        *out = split(c, self, chars, maxsplit);
    } else if (!strcmp(nm, "upper")) *out = case_map(c, self, 1);
    else if (!strcmp(nm, "lower")) *out = case_map(c, self, 0);
    else if (!strcmp(nm, "title")) *out = case_map(c, self, 2);
    else if (!strcmp(nm, "capitalize")) *out = case_map(c, self, 3);
    else if (!strcmp(nm, "replace")) {
        if (na < 2 || a[0]->k != V_STR || a[1]->k != V_STR) return rerr(c, line, "str.replace expects two strings");
        *out = replace(c, self, a[0], a[1]);
    } else if (!strcmp(nm, "join")) {
        if (na < 1 || a[0]->k != V_LIST) return rerr(c, line, "str.join expects a list");
        *out = join(c, a[0], self);
    } else {
        return rerr(c, line, "str.%s is not supported", nm);
    }
    VCHECK(*out);
    return RLHF_OK;
}

static rlhf_status call_global(ct_ctx *c, int line, const char *nm, const ct_value **a, int na, const char **kwn,
                               const ct_value **kwv, int nkw, const ct_value **out) {
    if (!strcmp(nm, "raise_exception")) {
        strbuf b = {0};
        if (na > 0) put_str(&b, a[0]);
        rlhf_status s = rlhf_fail(c->err, RLHF_EINPUT, "%s: the chat template raised an error: %s", c->t->what,
                                  b.p ? b.p : "");
        strbuf_free(&b);
        return s;
    }
    if (!strcmp(nm, "namespace") || !strcmp(nm, "dict")) {
        ct_value *ns = mk_dict(c, nm[0] == 'n' ? V_NS : V_DICT);
        VCHECK(ns);
        for (int i = 0; i < nkw; i++) VCHECK(dict_set(c, ns->d, kwn[i], strlen(kwn[i]), kwv[i]));
        *out = ns;
        return RLHF_OK;
    }
    if (!strcmp(nm, "range")) {
        long long v[3] = {0, 0, 1};
        if (na < 1 || na > 3) return rerr(c, line, "range expects 1 to 3 integers");
        for (int i = 0; i < na; i++) {
            if (a[i]->k != V_INT) return rerr(c, line, "range expects integers, got %s", kind_name(a[i]));
            v[na == 1 ? 1 : i] = a[i]->i;
        }
        if (v[2] == 0) return rerr(c, line, "range step cannot be zero");
        long long n = v[2] > 0 ? (v[1] - v[0] + v[2] - 1) / v[2] : (v[0] - v[1] - v[2] - 1) / -v[2];
        if (n < 0) n = 0;
        if (n > CT_MAX_ITERATIONS) return rerr(c, line, "range of %lld items is too long", n);
        const ct_value *l = mk_list(c, (size_t)n);
        VCHECK(l);
        for (long long i = 0; i < n; i++) VCHECK(l->items[i] = mk_int(c, v[0] + i * v[2]));
        *out = l;
        return RLHF_OK;
    }
    if (!strcmp(nm, "strftime_now")) {
        if (na < 1 || a[0]->k != V_STR) return rerr(c, line, "strftime_now expects a format string");
        char buf[256];
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        size_t n = strftime(buf, sizeof buf, a[0]->s, &tm);
        *out = mk_str(c, buf, n, 1);
        VCHECK(*out);
        return RLHF_OK;
    }
    return rerr(c, line, "'%s' is not callable", nm);
}

static rlhf_status eval_call(ct_ctx *c, const ct_expr *e, const ct_value **out) {
    const ct_value *pos[MAX_ARGS], *kwv[MAX_ARGS], *callee;
    const char *kwn[MAX_ARGS];
    int np, nk;
    if (e->a->kind == E_NAME && !lookup(c, e->a->s)) {
        RLHF_TRY(eval_args(c, e, pos, &np, kwn, kwv, &nk, MAX_ARGS));
        return call_global(c, e->line, e->a->s, pos, np, kwn, kwv, nk, out);
    }
    RLHF_TRY(eval(c, e->a, &callee));
    RLHF_TRY(eval_args(c, e, pos, &np, kwn, kwv, &nk, MAX_ARGS));
    if (callee->k == V_METHOD) return call_method(c, e->line, callee, pos, np, out);
    return rerr(c, e->line, "a %s is not callable", kind_name(callee));
}

static int length_of(const ct_value *v, long long *n) {
    if (v->k == V_STR) {
        long long k = 0;
        for (size_t i = 0; i < v->n; i++) k += ((unsigned char)v->s[i] & 0xC0) != 0x80;
        *n = k;
    } else if (v->k == V_LIST) *n = (long long)v->n;
    else if (v->k == V_DICT || v->k == V_NS) *n = v->d->n;
    else return 0;
    return 1;
}

static rlhf_status run_test(ct_ctx *c, int line, const char *nm, const ct_value *v, const ct_value **a, int na,
                            int *result);

// Items of a list, a dict's keys, or a string's characters, as a list.
static rlhf_status iterable(ct_ctx *c, int line, const ct_value *v, const ct_value **out) {
    if (v->k == V_LIST) { *out = v; return RLHF_OK; }
    if (v->k == V_DICT) {
        const ct_value *l = mk_list(c, (size_t)v->d->n);
        VCHECK(l);
        for (int i = 0; i < v->d->n; i++) VCHECK(l->items[i] = mk_str(c, v->d->keys[i], v->d->klen[i], 0));
        *out = l;
        return RLHF_OK;
    }
    if (v->k == V_STR) {
        long long n;
        length_of(v, &n);
        const ct_value *l = mk_list(c, (size_t)n);
        VCHECK(l);
        size_t k = 0;
        for (size_t i = 0; i < v->n; k++) {
            size_t j = i + 1;
            while (j < v->n && ((unsigned char)v->s[j] & 0xC0) == 0x80) j++;
            VCHECK(l->items[k] = mk_str(c, v->s + i, j - i, 0));
            i = j;
        }
        *out = l;
        return RLHF_OK;
    }
    if (v->k == V_UNDEF) {  // jinja2 iterates an undefined value as empty
        *out = mk_list(c, 0);
        VCHECK(*out);
        return RLHF_OK;
    }
    return rerr(c, line, "a %s is not iterable", kind_name(v));
}

static rlhf_status apply_filter(ct_ctx *c, const ct_expr *e, const ct_value *v, const ct_value **out) {
    const ct_value *a[MAX_ARGS], *kwv[MAX_ARGS];
    const char *kwn[MAX_ARGS];
    int na, nk;
    RLHF_TRY(eval_args(c, e, a, &na, kwn, kwv, &nk, MAX_ARGS));
    const char *nm = e->s;
    int line = e->line;
    if (!strcmp(nm, "trim")) {
        VCHECK(v = to_str_value(c, v));
        *out = strip(c, v, na > 0 && a[0]->k == V_STR ? a[0] : NULL, 1, 1);
    } else if (!strcmp(nm, "length") || !strcmp(nm, "count")) {
        long long n;
        if (!length_of(v, &n)) return rerr(c, line, "a %s has no length", kind_name(v));
        *out = mk_int(c, n);
    } else if (!strcmp(nm, "upper") || !strcmp(nm, "lower") || !strcmp(nm, "title") || !strcmp(nm, "capitalize")) {
        VCHECK(v = to_str_value(c, v));
        *out = case_map(c, v, nm[0] == 'l' ? 0 : nm[0] == 'u' ? 1 : nm[0] == 't' ? 2 : 3);
    } else if (!strcmp(nm, "string")) {
        *out = to_str_value(c, v);
    } else if (!strcmp(nm, "safe") || !strcmp(nm, "e") || !strcmp(nm, "escape") || !strcmp(nm, "list")) {
        if (!strcmp(nm, "list")) RLHF_TRY(iterable(c, line, v, &v));
        *out = v;  // no autoescaping in chat templates
    } else if (!strcmp(nm, "tojson")) {
        int indent = -1;
        for (int i = 0; i < nk; i++)
            if (!strcmp(kwn[i], "indent") && kwv[i]->k == V_INT) indent = (int)kwv[i]->i;
        if (na > 0 && a[0]->k == V_INT) indent = (int)a[0]->i;
        strbuf b = {0};
        if (!put_json(&b, v, indent, 0)) { strbuf_free(&b); return rerr(c, line, "tojson: a %s is not JSON", kind_name(v)); }
        *out = b.oom ? NULL : mk_str(c, b.p, b.n, 1);
        strbuf_free(&b);
    } else if (!strcmp(nm, "default") || !strcmp(nm, "d")) {
        int boolean = (na > 1 && truthy(a[1]));
        for (int i = 0; i < nk; i++)
            if (!strcmp(kwn[i], "boolean")) boolean = truthy(kwv[i]);
        int use_default = v->k == V_UNDEF || (boolean && !truthy(v));
        *out = use_default ? (na > 0 ? a[0] : mk_str(c, "", 0, 0)) : v;
    } else if (!strcmp(nm, "replace")) {
        VCHECK(v = to_str_value(c, v));
        if (na < 2 || a[0]->k != V_STR || a[1]->k != V_STR) return rerr(c, line, "replace expects two strings");
        *out = replace(c, v, a[0], a[1]);
    } else if (!strcmp(nm, "join")) {
        RLHF_TRY(iterable(c, line, v, &v));
        const ct_value *sep = na > 0 ? to_str_value(c, a[0]) : NULL;
        *out = join(c, v, sep);
    } else if (!strcmp(nm, "first") || !strcmp(nm, "last")) {
        RLHF_TRY(iterable(c, line, v, &v));
        *out = v->n ? v->items[nm[0] == 'f' ? 0 : v->n - 1] : &UNDEF;
    } else if (!strcmp(nm, "reverse")) {  // a string reverses its code points
        const int is_str = v->k == V_STR;
        RLHF_TRY(iterable(c, line, v, &v));
        const ct_value *l = mk_list(c, v->n);
        VCHECK(l);
        for (size_t i = 0; i < v->n; i++) l->items[i] = v->items[v->n - 1 - i];
        *out = is_str ? join(c, l, NULL) : l;
    } else if (!strcmp(nm, "int")) {
        *out = v->k == V_FLOAT ? mk_int(c, (long long)v->f) : v->k == V_STR ? mk_int(c, strtoll(v->s, NULL, 10))
               : v->k == V_INT || v->k == V_BOOL ? mk_int(c, v->i) : mk_int(c, 0);
    } else if (!strcmp(nm, "float")) {
        *out = mk_float(c, v->k == V_STR ? strtod(v->s, NULL) : is_number(v) ? num(v) : 0.0);
    } else if (!strcmp(nm, "abs")) {
        if (!is_number(v)) return rerr(c, line, "abs expects a number");
        *out = v->k == V_FLOAT ? mk_float(c, fabs(v->f)) : mk_int(c, v->i < 0 ? -v->i : v->i);
    } else if (!strcmp(nm, "items")) {
        if (v->k != V_DICT) return rerr(c, line, "items expects a dict, got %s", kind_name(v));
        ct_value m = {V_METHOD, 0, 0, "items", 0, NULL, NULL, v};
        return call_method(c, line, &m, NULL, 0, out);
    } else if (!strcmp(nm, "map") || !strcmp(nm, "selectattr") || !strcmp(nm, "rejectattr") ||
               !strcmp(nm, "select") || !strcmp(nm, "reject")) {
        RLHF_TRY(iterable(c, line, v, &v));
        const ct_value *attr = NULL;
        for (int i = 0; i < nk; i++)
            if (!strcmp(kwn[i], "attribute")) attr = kwv[i];
        int by_attr = nm[0] == 'm' ? attr != NULL : !strcmp(nm, "selectattr") || !strcmp(nm, "rejectattr");
        if (by_attr && !attr) {
            if (na < 1) return rerr(c, line, "%s expects an attribute name", nm);
            attr = a[0];
        }
        if (attr && attr->k != V_STR) return rerr(c, line, "%s: the attribute name must be a string", nm);
        const ct_value *l = mk_list(c, v->n);
        VCHECK(l);
        size_t k = 0;
        for (size_t i = 0; i < v->n; i++) {
            const ct_value *x = v->items[i];
            if (attr) RLHF_TRY(get_attr(c, line, x, attr->s, &x));
            if (nm[0] == 'm') {
                if (!attr) {  // map('filter'): only the string filters are supported
                    if (na < 1 || a[0]->k != V_STR) return rerr(c, line, "map expects attribute= or a filter name");
                    ct_expr f = {0};
                    f.kind = E_FILTER, f.s = a[0]->s, f.n = a[0]->n, f.line = line;
                    RLHF_TRY(apply_filter(c, &f, x, &x));
                }
                l->items[k++] = x;
                continue;
            }
            int first_test_arg = by_attr ? 1 : 0, pass;
            if (na > first_test_arg) {
                if (a[first_test_arg]->k != V_STR) return rerr(c, line, "%s: the test name must be a string", nm);
                RLHF_TRY(run_test(c, line, a[first_test_arg]->s, x, a + first_test_arg + 1, na - first_test_arg - 1,
                                  &pass));
            } else {
                pass = truthy(x);
            }
            if (pass == (strstr(nm, "reject") == NULL)) l->items[k++] = v->items[i];
        }
        ((ct_value *)l)->n = k;
        *out = l;
    } else {
        return rerr(c, line, "unsupported filter '%s'", nm);
    }
    VCHECK(*out);
    return RLHF_OK;
}

static rlhf_status run_test(ct_ctx *c, int line, const char *nm, const ct_value *v, const ct_value **a, int na,
                            int *r) {
    if (!strcmp(nm, "defined")) *r = v->k != V_UNDEF;
    else if (!strcmp(nm, "undefined")) *r = v->k == V_UNDEF;
    else if (!strcmp(nm, "none")) *r = v->k == V_NONE;
    else if (!strcmp(nm, "string")) *r = v->k == V_STR;
    else if (!strcmp(nm, "number")) *r = v->k == V_INT || v->k == V_FLOAT;
    else if (!strcmp(nm, "integer")) *r = v->k == V_INT;
    else if (!strcmp(nm, "float")) *r = v->k == V_FLOAT;
    else if (!strcmp(nm, "boolean")) *r = v->k == V_BOOL;
    else if (!strcmp(nm, "true")) *r = v->k == V_BOOL && v->i;
    else if (!strcmp(nm, "false")) *r = v->k == V_BOOL && !v->i;
    else if (!strcmp(nm, "mapping")) *r = v->k == V_DICT || v->k == V_NS;
    else if (!strcmp(nm, "sequence")) *r = v->k == V_LIST || v->k == V_STR || v->k == V_DICT;
    else if (!strcmp(nm, "iterable")) *r = v->k == V_LIST || v->k == V_STR || v->k == V_DICT;
    else if (!strcmp(nm, "callable")) *r = v->k == V_METHOD || v->k == V_FUNC;
    else if (!strcmp(nm, "lower") || !strcmp(nm, "upper")) {
        int ok = v->k == V_STR;
        for (size_t i = 0; ok && i < v->n; i++)
            if (nm[0] == 'l' ? (v->s[i] >= 'A' && v->s[i] <= 'Z') : (v->s[i] >= 'a' && v->s[i] <= 'z')) ok = 0;
        *r = ok;
    } else if (!strcmp(nm, "even") || !strcmp(nm, "odd")) {
        if (v->k != V_INT) return rerr(c, line, "test '%s' expects an integer", nm);
        *r = ((v->i % 2) != 0) == (nm[0] == 'o');
    } else if (!strcmp(nm, "divisibleby")) {
        if (v->k != V_INT || na < 1 || a[0]->k != V_INT || a[0]->i == 0)
            return rerr(c, line, "test 'divisibleby' expects integers");
        *r = v->i % a[0]->i == 0;
    } else if (!strcmp(nm, "eq") || !strcmp(nm, "equalto") || !strcmp(nm, "==") || !strcmp(nm, "ne") ||
               !strcmp(nm, "!=")) {
        if (na < 1) return rerr(c, line, "test '%s' expects a value", nm);
        *r = values_equal(v, a[0]) == (nm[0] == 'e' || nm[0] == '=');
    } else if (!strcmp(nm, "in")) {
        if (na < 1) return rerr(c, line, "test 'in' expects a value");
        const ct_value *l;
        RLHF_TRY(iterable(c, line, a[0], &l));
        *r = 0;
        for (size_t i = 0; i < l->n && !*r; i++) *r = values_equal(v, l->items[i]);
    } else if (!strcmp(nm, "sameas")) {
        *r = na > 0 && (v == a[0] || (v->k == a[0]->k && (v->k == V_NONE || v->k == V_UNDEF ||
                                                          (v->k == V_BOOL && v->i == a[0]->i))));
    } else {
        return rerr(c, line, "unsupported test '%s'", nm);
    }
    return RLHF_OK;
}

static rlhf_status binop(ct_ctx *c, const ct_expr *e, const ct_value *x, const ct_value *y, const ct_value **out) {
    int line = e->line;
    switch (e->op) {
    case OP_EQ: *out = mk_bool(values_equal(x, y)); return RLHF_OK;
    case OP_NE: *out = mk_bool(!values_equal(x, y)); return RLHF_OK;
    case OP_IN: case OP_NOTIN: {
        int found = 0;
        if (y->k == V_STR) {
            if (x->k != V_STR) return rerr(c, line, "'in <string>' requires a string on the left, got %s", kind_name(x));
            for (size_t i = 0; !found && i + x->n <= y->n; i++) found = !memcmp(y->s + i, x->s, x->n);
        } else if (y->k == V_LIST) {
            for (size_t i = 0; !found && i < y->n; i++) found = values_equal(x, y->items[i]);
        } else if (y->k == V_DICT || y->k == V_NS) {
            found = x->k == V_STR && dict_get(y->d, x->s, x->n) != NULL;
        } else if (y->k != V_UNDEF) {
            return rerr(c, line, "'in' needs a string, list or dict on the right, got %s", kind_name(y));
        }
        *out = mk_bool(found == (e->op == OP_IN));
        return RLHF_OK;
    }
    case OP_CONCAT: {
        strbuf b = {0};
        put_str(&b, x), put_str(&b, y);
        *out = b.oom ? NULL : mk_str(c, b.p ? b.p : "", b.n, 1);
        strbuf_free(&b);
        VCHECK(*out);
        return RLHF_OK;
    }
    default: break;
    }
    if (x->k == V_UNDEF || y->k == V_UNDEF)
        return rerr(c, line, "'%s' is undefined", (x->k == V_UNDEF ? x : y)->s ? (x->k == V_UNDEF ? x : y)->s : "value");
    if (e->op == OP_ADD && x->k == V_STR && y->k == V_STR) {
        char *s = ct_alloc(&c->pool, x->n + y->n + 1);
        VCHECK(s);
        memcpy(s, x->s, x->n), memcpy(s + x->n, y->s, y->n);
        *out = mk_str(c, s, x->n + y->n, 0);
        VCHECK(*out);
        return RLHF_OK;
    }
    if (e->op == OP_ADD && x->k == V_LIST && y->k == V_LIST) {
        const ct_value *l = mk_list(c, x->n + y->n);
        VCHECK(l);
        for (size_t i = 0; i < x->n; i++) l->items[i] = x->items[i];
        for (size_t i = 0; i < y->n; i++) l->items[x->n + i] = y->items[i];
        *out = l;
        return RLHF_OK;
    }
    if (e->op == OP_MUL && ((x->k == V_STR && y->k == V_INT) || (x->k == V_INT && y->k == V_STR))) {
        const ct_value *s = x->k == V_STR ? x : y;
        long long n = x->k == V_INT ? x->i : y->i;
        if (n < 0) n = 0;
        if ((double)n * (double)s->n > CT_MAX_OUTPUT) return rerr(c, line, "string repetition too long");
        char *o = ct_alloc(&c->pool, (size_t)n * s->n + 1);
        VCHECK(o);
        for (long long i = 0; i < n; i++) memcpy(o + (size_t)i * s->n, s->s, s->n);
        *out = mk_str(c, o, (size_t)n * s->n, 0);
        VCHECK(*out);
        return RLHF_OK;
    }
    if (x->k == V_STR && y->k == V_STR && e->op >= OP_LT && e->op <= OP_GE) {
        size_t m = x->n < y->n ? x->n : y->n;
        int cmp = memcmp(x->s, y->s, m);
        if (!cmp) cmp = x->n < y->n ? -1 : x->n > y->n;
        *out = mk_bool(e->op == OP_LT ? cmp < 0 : e->op == OP_LE ? cmp <= 0 : e->op == OP_GT ? cmp > 0 : cmp >= 0);
        return RLHF_OK;
    }
    if (!is_number(x) || !is_number(y)) {
        static const char *const ops[] = {"+", "-", "*", "/", "//", "%", "**", "~", "==", "!=", "<", "<=", ">", ">="};
        return rerr(c, line, "unsupported operand types for %s: %s and %s", ops[e->op], kind_name(x), kind_name(y));
    }
    int ints = x->k != V_FLOAT && y->k != V_FLOAT;
    double a = num(x), b = num(y);
    switch (e->op) {
    case OP_LT: *out = mk_bool(a < b); return RLHF_OK;
    case OP_LE: *out = mk_bool(a <= b); return RLHF_OK;
    case OP_GT: *out = mk_bool(a > b); return RLHF_OK;
    case OP_GE: *out = mk_bool(a >= b); return RLHF_OK;
    // Python's integers are unbounded; ours are 64-bit, so an overflow is an error rather than UB (found by
    // tests/fuzz/fuzz_chat_template.c). No published template comes near it.
    case OP_ADD: case OP_SUB: case OP_MUL: {
        if (!ints) {
            *out = mk_float(c, e->op == OP_ADD ? a + b : e->op == OP_SUB ? a - b : a * b);
            break;
        }
        long long r;
        int ovf = e->op == OP_ADD   ? __builtin_add_overflow(x->i, y->i, &r)
                  : e->op == OP_SUB ? __builtin_sub_overflow(x->i, y->i, &r)
                                    : __builtin_mul_overflow(x->i, y->i, &r);
        if (ovf) return rerr(c, line, "integer overflow (integers are 64-bit here)");
        *out = mk_int(c, r);
        break;
    }
    case OP_DIV:
        if (b == 0) return rerr(c, line, "division by zero");
        *out = mk_float(c, a / b);
        break;
    case OP_FLOORDIV: case OP_MOD:
        if (b == 0) return rerr(c, line, "division by zero");
        if (ints) {
            if (x->i == LLONG_MIN && y->i == -1) return rerr(c, line, "integer overflow (integers are 64-bit here)");
            long long q = x->i / y->i, r = x->i % y->i;
            if (r != 0 && ((r < 0) != (y->i < 0))) q--, r += y->i;  // Python floors
            *out = mk_int(c, e->op == OP_MOD ? r : q);
        } else {
            double q = floor(a / b), r = a - q * b;
            *out = mk_float(c, e->op == OP_MOD ? r : q);
        }
        break;
    case OP_POW:
        if (ints && y->i >= 0) {
            long long r = 1;
            // exact: |x| >= 2 overflows within 64 multiplications; 0, 1 and -1 stay put whatever the exponent
            long long n = (x->i >= -1 && x->i <= 1) ? (y->i & 1) + (y->i > 0 ? 2 : 0) : y->i;
            for (long long i = 0; i < n; i++)
                if (__builtin_mul_overflow(r, x->i, &r)) return rerr(c, line, "integer overflow (integers are 64-bit here)");
            *out = mk_int(c, r);
        } else {
            *out = mk_float(c, pow(a, b));
        }
        break;
    default: return rerr(c, line, "bad operator");
    }
    VCHECK(*out);
    return RLHF_OK;
}

static rlhf_status eval(ct_ctx *c, const ct_expr *e, const ct_value **out) {
    const ct_value *x, *y;
    switch (e->kind) {
    case E_STR: *out = mk_str(c, e->s, e->n, 0); break;
    case E_INT: *out = mk_int(c, e->i); break;
    case E_FLOAT: *out = mk_float(c, e->f); break;
    case E_BOOL: *out = mk_bool((int)e->i); break;
    case E_NONE: *out = &NONE; break;
    case E_NAME: {
        const ct_value *v = lookup(c, e->s);
        if (!v) {
            ct_value *u = new_value(c, V_UNDEF);  // remembers its name for error messages
            VCHECK(u);
            u->s = e->s;
            v = u;
        }
        *out = v;
        break;
    }
    case E_LIST: {
        const ct_value *l = mk_list(c, (size_t)e->nargs);
        VCHECK(l);
        for (int i = 0; i < e->nargs; i++) RLHF_TRY(eval(c, e->args[i], &l->items[i]));
        *out = l;
        break;
    }
    case E_DICT: {
        ct_value *d = mk_dict(c, V_DICT);
        VCHECK(d);
        for (int i = 0; i + 1 < e->nargs; i += 2) {
            RLHF_TRY(eval(c, e->args[i], &x));
            RLHF_TRY(eval(c, e->args[i + 1], &y));
            if (x->k != V_STR) return rerr(c, e->line, "dict keys must be strings here, got %s", kind_name(x));
            VCHECK(dict_set(c, d->d, x->s, x->n, y));
        }
        *out = d;
        break;
    }
    case E_ATTR:
        RLHF_TRY(eval(c, e->a, &x));
        return get_attr(c, e->line, x, e->s, out);
    case E_ITEM:
        RLHF_TRY(eval(c, e->a, &x));
        RLHF_TRY(eval(c, e->b, &y));
        return get_item(c, e->line, x, y, out);
    case E_SLICE:
        RLHF_TRY(eval(c, e->a, &x));
        if (x->k == V_UNDEF) return rerr(c, e->line, "'%s' is undefined", x->s ? x->s : "value");
        return slice(c, e, x, out);
    case E_CALL: return eval_call(c, e, out);
    case E_FILTER:
        RLHF_TRY(eval(c, e->a, &x));
        return apply_filter(c, e, x, out);
    case E_TEST: {
        const ct_value *a[MAX_ARGS], *kwv[MAX_ARGS];
        const char *kwn[MAX_ARGS];
        int na, nk, r;
        RLHF_TRY(eval(c, e->a, &x));
        RLHF_TRY(eval_args(c, e, a, &na, kwn, kwv, &nk, MAX_ARGS));
        RLHF_TRY(run_test(c, e->line, e->s, x, a, na, &r));
        *out = mk_bool(r != e->negated);
        break;
    }
    case E_NOT:
        RLHF_TRY(eval(c, e->a, &x));
        *out = mk_bool(!truthy(x));
        break;
    case E_NEG: case E_POS:
        RLHF_TRY(eval(c, e->a, &x));
        if (!is_number(x)) return rerr(c, e->line, "bad operand type for unary %c: %s", e->kind == E_NEG ? '-' : '+', kind_name(x));
        if (e->kind == E_NEG && x->k != V_FLOAT && x->i == LLONG_MIN)
            return rerr(c, e->line, "integer overflow (integers are 64-bit here)");
        *out = e->kind == E_POS ? x : x->k == V_FLOAT ? mk_float(c, -x->f) : mk_int(c, -x->i);
        break;
    case E_BIN:
        RLHF_TRY(eval(c, e->a, &x));
        RLHF_TRY(eval(c, e->b, &y));
        return binop(c, e, x, y, out);
    case E_AND:  // Python: the deciding operand itself, not a bool
        RLHF_TRY(eval(c, e->a, &x));
        if (!truthy(x)) { *out = x; break; }
        return eval(c, e->b, out);
    case E_OR:
        RLHF_TRY(eval(c, e->a, &x));
        if (truthy(x)) { *out = x; break; }
        return eval(c, e->b, out);
    case E_COND:
        RLHF_TRY(eval(c, e->a, &x));
        if (truthy(x)) return eval(c, e->b, out);
        if (e->c) return eval(c, e->c, out);
        *out = &UNDEF;
        break;
    }
    VCHECK(*out);
    return RLHF_OK;
}

// ---- statements ------------------------------------------------------------------------------------
static rlhf_status exec_body(ct_ctx *c, const ct_body *b);

static rlhf_status emit(ct_ctx *c, int line, const ct_value *v) {
    put_str(&c->out, v);
    if (c->out.oom) return oom(c);
    if (c->out.n > CT_MAX_OUTPUT) return rerr(c, line, "output longer than %u MiB", CT_MAX_OUTPUT >> 20);
    return RLHF_OK;
}

static rlhf_status exec_for(ct_ctx *c, const ct_stmt *s) {
    const ct_value *seq;
    RLHF_TRY(eval(c, s->expr, &seq));
    RLHF_TRY(iterable(c, s->line, seq, &seq));
    // With a filter the loop runs over the items that pass it (loop.length counts those), as jinja2.
    const ct_value **items = (const ct_value **)seq->items;
    size_t n = seq->n;
    if (s->filter) {
        items = ct_alloc(&c->pool, sizeof *items * (n ? n : 1));
        VCHECK(items);
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            RLHF_TRY(push_scope(c, s->line));
            rlhf_status st = RLHF_OK;
            if (s->var[1]) {
                if (seq->items[i]->k != V_LIST || seq->items[i]->n != 2) st = rerr(c, s->line, "cannot unpack into 2 names");
                else st = assign(c, s->var[0], seq->items[i]->items[0]);
                if (!st) st = assign(c, s->var[1], seq->items[i]->items[1]);
            } else {
                st = assign(c, s->var[0], seq->items[i]);
            }
            const ct_value *ok = NULL;
            if (!st) st = eval(c, s->filter, &ok);
            c->nscopes--;
            RLHF_TRY(st);
            if (truthy(ok)) items[k++] = seq->items[i];
        }
        n = k;
    }
    if (n == 0) return exec_body(c, &s->else_body);
    for (size_t i = 0; i < n; i++) {
        if (++c->iterations > CT_MAX_ITERATIONS) return rerr(c, s->line, "more than %ld loop iterations", CT_MAX_ITERATIONS);
        RLHF_TRY(push_scope(c, s->line));
        ct_value *loop = mk_dict(c, V_DICT);
        VCHECK(loop);
        static const char *const names[] = {"index", "index0", "revindex", "revindex0", "length"};
        const long long vals[] = {(long long)i + 1, (long long)i, (long long)(n - i), (long long)(n - i - 1), (long long)n};
        for (int k = 0; k < 5; k++) {
            const ct_value *v = mk_int(c, vals[k]);
            VCHECK(v && dict_set(c, loop->d, names[k], strlen(names[k]), v));
        }
        VCHECK(dict_set(c, loop->d, "first", 5, mk_bool(i == 0)));
        VCHECK(dict_set(c, loop->d, "last", 4, mk_bool(i + 1 == n)));
        VCHECK(dict_set(c, loop->d, "previtem", 8, i > 0 ? items[i - 1] : &UNDEF));
        VCHECK(dict_set(c, loop->d, "nextitem", 8, i + 1 < n ? items[i + 1] : &UNDEF));
        rlhf_status st = assign(c, "loop", loop);
        if (!st && s->var[1]) {
            if (items[i]->k != V_LIST || items[i]->n != 2) st = rerr(c, s->line, "cannot unpack a %s into 2 names", kind_name(items[i]));
            else if (!(st = assign(c, s->var[0], items[i]->items[0]))) st = assign(c, s->var[1], items[i]->items[1]);
        } else if (!st) {
            st = assign(c, s->var[0], items[i]);
        }
        if (!st) st = exec_body(c, &s->body);
        c->nscopes--;
        RLHF_TRY(st);
        int ctl = c->loop_ctl;
        c->loop_ctl = 0;
        if (ctl == 1) break;
    }
    return RLHF_OK;
}

static rlhf_status exec_stmt(ct_ctx *c, const ct_stmt *s) {
    const ct_value *v;
    switch (s->kind) {
    case S_TEXT:
        strbuf_put(&c->out, s->text, s->n);
        if (c->out.oom) return oom(c);
        return c->out.n > CT_MAX_OUTPUT ? rerr(c, s->line, "output too long") : RLHF_OK;
    case S_OUTPUT:
        RLHF_TRY(eval(c, s->expr, &v));
        return emit(c, s->line, v);
    case S_IF:
        for (int k = 0; k < s->nbranch; k++) {
            RLHF_TRY(eval(c, s->conds[k], &v));
            if (truthy(v)) return exec_body(c, &s->bodies[k]);
        }
        return exec_body(c, &s->else_body);
    case S_FOR: return exec_for(c, s);
    case S_SET:
        RLHF_TRY(eval(c, s->expr, &v));
        if (s->var[1]) {
            const ct_value *ns = lookup(c, s->var[0]);
            if (!ns || ns->k != V_NS) return rerr(c, s->line, "'%s' is not a namespace(): cannot set .%s", s->var[0], s->var[1]);
            VCHECK(dict_set(c, ns->d, s->var[1], strlen(s->var[1]), v));
            return RLHF_OK;
        }
        return assign(c, s->var[0], v);
    case S_SET_BLOCK: {
        strbuf saved = c->out;
        memset(&c->out, 0, sizeof c->out);
        rlhf_status st = exec_body(c, &s->body);
        strbuf inner = c->out;
        c->out = saved;
        if (!st) {
            v = inner.oom ? NULL : mk_str(c, inner.p ? inner.p : "", inner.n, 1);
            st = v ? assign(c, s->var[0], v) : oom(c);
        }
        strbuf_free(&inner);
        return st;
    }
    case S_BREAK: case S_CONTINUE:
        c->loop_ctl = s->kind == S_BREAK ? 1 : 2;
        return RLHF_OK;
    case S_BODY: return exec_body(c, &s->body);
    }
    return RLHF_OK;
}

static rlhf_status exec_body(ct_ctx *c, const ct_body *b) {
    for (int i = 0; i < b->n && !c->loop_ctl; i++) RLHF_TRY(exec_stmt(c, b->items[i]));
    return RLHF_OK;
}

rlhf_status chat_template_render(const chat_template *t, const cJSON *messages, int add_generation_prompt,
                                 const char *bos_token, const char *eos_token, char **out, rlhf_err *err) {
    *out = NULL;
    if (!cJSON_IsArray(messages)) return rlhf_fail(err, RLHF_EINPUT, "%s: chat template input must be a list of messages", t->what);
    ct_ctx *c = calloc(1, sizeof *c);
    if (!c) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    c->t = t, c->err = err, c->pool.limit = CT_MAX_POOL;
    c->nscopes = 1;
    const char *bos = bos_token ? bos_token : t->bos ? t->bos : "", *eos = eos_token ? eos_token : t->eos ? t->eos : "";
    const ct_value *msgs = from_json(c, messages, 0), *bv = mk_str(c, bos, strlen(bos), 0),
                   *ev = mk_str(c, eos, strlen(eos), 0);
    rlhf_status s = RLHF_OK;
    if (!msgs || !bv || !ev) s = oom(c);
    if (!s) s = assign(c, "messages", msgs);
    if (!s) s = assign(c, "add_generation_prompt", mk_bool(add_generation_prompt));
    if (!s) s = assign(c, "bos_token", bv);
    if (!s) s = assign(c, "eos_token", ev);
    if (!s) s = exec_body(c, &t->root);
    if (!s && c->out.oom) s = oom(c);
    if (!s) {
        *out = c->out.p ? c->out.p : strdup("");
        if (!*out) s = oom(c);
        c->out.p = NULL;
    }
    strbuf_free(&c->out);
    ct_pool_free(&c->pool);
    free(c);
    return s;
}
