// Chat templates: the lexer (text / tags / expression tokens, with jinja2's whitespace rules as
// transformers configures them: trim_blocks, lstrip_blocks, and the "-" markers) and the recursive-descent
// parser building the syntax tree of chat_template_internal.h, with jinja2's operator precedence
// (filters and tests bind tighter than arithmetic; "~" between + and *).
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/chat_template_internal.h"

// ---- pool ------------------------------------------------------------------------------------------
#define CT_BLOCK_BYTES 16384

struct ct_block {
    ct_block *next;
    size_t used, cap;
    max_align_t data[];
};

void *ct_alloc(ct_pool *p, size_t bytes) {
    size_t a = sizeof(max_align_t);
    bytes = (bytes + a - 1) / a * a;
    if (bytes == 0) bytes = a;
    if (p->limit && p->total + bytes > p->limit) return NULL;
    ct_block *b = p->head;
    if (!b || b->cap - b->used < bytes) {
        size_t cap = bytes > CT_BLOCK_BYTES ? bytes : CT_BLOCK_BYTES;
        b = malloc(sizeof *b + cap);
        if (!b) return NULL;
        b->used = 0, b->cap = cap, b->next = p->head;
        p->head = b;
    }
    void *r = (char *)b->data + b->used;
    b->used += bytes;
    p->total += bytes;
    memset(r, 0, bytes);
    return r;
}

char *ct_strndup(ct_pool *p, const char *s, size_t n) {
    char *r = ct_alloc(p, n + 1);
    if (r) memcpy(r, s, n), r[n] = 0;
    return r;
}

void ct_pool_free(ct_pool *p) {
    for (ct_block *b = p->head, *nx; b; b = nx) nx = b->next, free(b);
    p->head = NULL, p->total = 0;
}

// ---- lexer -----------------------------------------------------------------------------------------
typedef enum { T_TEXT, T_VAR_BEGIN, T_VAR_END, T_BLOCK_BEGIN, T_BLOCK_END, T_NAME, T_STRING, T_INT, T_FLOAT, T_OP,
               T_EOF } ct_tok_kind;

typedef struct {
    ct_tok_kind kind;
    int line;
    const char *s;  // T_TEXT / T_NAME / T_STRING (decoded) / T_OP
    size_t n;
    long long i;
    double f;
} ct_tok;

typedef struct {
    chat_template *t;
    rlhf_err *err;
    ct_tok *toks;
    int n, cap, pos;
    int depth;  // expression nesting: ( [ { and chains of unary - / not (CT_MAX_EXPR_DEPTH)
} ct_parser;

static rlhf_status perr(ct_parser *p, int line, const char *fmt, ...) {
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return rlhf_fail(p->err, RLHF_EINPUT, "%s: chat_template line %d: %s", p->t->what, line, msg);
}

// Expressions nest through recursive descent (about a dozen frames per level); a limit keeps a hostile
// template ("{{ ((((...", "- - - -x") an error instead of a stack overflow (found by
// tests/fuzz/fuzz_chat_template.c). Published templates nest a handful of levels.
#define CT_MAX_EXPR_DEPTH 100

static rlhf_status enter(ct_parser *p) {
    if (++p->depth > CT_MAX_EXPR_DEPTH)
        return perr(p, p->pos < p->n ? p->toks[p->pos].line : 0, "expression nested more than %d deep", CT_MAX_EXPR_DEPTH);
    return RLHF_OK;
}

static rlhf_status push(ct_parser *p, ct_tok tk) {
    if (p->n == p->cap) {
        int cap = p->cap ? p->cap * 2 : 256;
        ct_tok *nt = realloc(p->toks, sizeof *nt * (size_t)cap);
        if (!nt) return rlhf_fail(p->err, RLHF_ERUNTIME, "%s: chat_template: out of memory", p->t->what);
        p->toks = nt, p->cap = cap;
    }
    p->toks[p->n++] = tk;
    return RLHF_OK;
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
static int is_ident_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int count_lines(const char *s, size_t n) {
    int k = 0;
    for (size_t i = 0; i < n; i++) k += s[i] == '\n';
    return k;
}

static void put_utf8(char *o, size_t *k, uint32_t cp) {
    if (cp < 0x80) o[(*k)++] = (char)cp;
    else if (cp < 0x800) o[(*k)++] = (char)(0xC0 | cp >> 6), o[(*k)++] = (char)(0x80 | (cp & 0x3F));
    else if (cp < 0x10000)
        o[(*k)++] = (char)(0xE0 | cp >> 12), o[(*k)++] = (char)(0x80 | ((cp >> 6) & 0x3F)),
        o[(*k)++] = (char)(0x80 | (cp & 0x3F));
    else
        o[(*k)++] = (char)(0xF0 | cp >> 18), o[(*k)++] = (char)(0x80 | ((cp >> 12) & 0x3F)),
        o[(*k)++] = (char)(0x80 | ((cp >> 6) & 0x3F)), o[(*k)++] = (char)(0x80 | (cp & 0x3F));
}

static int hex_value(const char *s, int digits, uint32_t *out) {
    uint32_t v = 0;
    for (int i = 0; i < digits; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return 0;
        v = v * 16 + (uint32_t)d;
    }
    *out = v;
    return 1;
}

// A quoted string literal at s (s[0] is the quote), Python escapes decoded. Returns the bytes consumed, 0
// when unterminated.
static size_t lex_string(ct_parser *p, const char *s, const char *end, ct_tok *tk) {
    char q = s[0];
    size_t i = 1;
    while (s + i < end && s[i] != q) i += (s[i] == '\\' && s + i + 1 < end) ? 2 : 1;
    if (s + i >= end) return 0;
    char *o = ct_alloc(&p->t->pool, i * 2 + 1);  // an escape never grows (\uXXXX: 6 bytes -> <= 3)
    if (!o) return 0;
    size_t k = 0;
    for (size_t j = 1; j < i; j++) {
        if (s[j] != '\\') { o[k++] = s[j]; continue; }
        char c = s[++j];
        uint32_t cp;
        switch (c) {
        case 'n': o[k++] = '\n'; break;
        case 't': o[k++] = '\t'; break;
        case 'r': o[k++] = '\r'; break;
        case '0': o[k++] = '\0'; break;
        case '\\': case '\'': case '"': o[k++] = c; break;
        case '\n': break;  // line continuation
        case 'x':
            if (j + 2 < i && hex_value(s + j + 1, 2, &cp)) { put_utf8(o, &k, cp); j += 2; }
            else o[k++] = '\\', o[k++] = c;
            break;
        case 'u':
            if (j + 4 < i && hex_value(s + j + 1, 4, &cp)) { put_utf8(o, &k, cp); j += 4; }
            else o[k++] = '\\', o[k++] = c;
            break;
        default: o[k++] = '\\', o[k++] = c;  // Python keeps unknown escapes as written
        }
    }
    o[k] = 0;
    tk->kind = T_STRING, tk->s = o, tk->n = k;
    return i + 1;
}

static const char *const TWO_CHAR_OPS[] = {"//", "**", "==", "!=", "<=", ">=", NULL};
static const char ONE_CHAR_OPS[] = "()[]{}.,:|~+-*/%<>=";

// Tokens of one tag's inside, from s up to its closer ("}}" or "%}", optionally preceded by "-").
// Returns the position after the closer and whether it had "-" (strip_after), or NULL on error.
static const char *lex_tag(ct_parser *p, const char *s, const char *end, int block, int *line, int *strip_after) {
    char closer = block ? '%' : '}';
    int depth = 0;  // ( [ { nesting: "}}" inside a dict literal is not the end
    for (;;) {
        while (s < end && is_space(*s)) *line += *s == '\n', s++;
        if (s >= end) {
            perr(p, *line, "tag not closed (expected '%c}')", closer);
            return NULL;
        }
        int dash = s[0] == '-' && s + 2 < end && s[1] == closer && s[2] == '}';
        if (dash || (depth == 0 && s + 1 < end && s[0] == closer && s[1] == '}')) {
            *strip_after = dash;
            ct_tok tk = {block ? T_BLOCK_END : T_VAR_END, *line, NULL, 0, 0, 0};
            if (push(p, tk)) return NULL;
            return s + (dash ? 3 : 2);
        }
        ct_tok tk = {T_OP, *line, s, 1, 0, 0};
        if (*s == '\'' || *s == '"') {
            size_t used = lex_string(p, s, end, &tk);
            if (!used) {
                perr(p, *line, "unterminated string literal");
                return NULL;
            }
            *line += count_lines(s, used);
            s += used;
        } else if (is_digit(*s)) {
            const char *q = s;
            int is_float = 0;
            while (q < end && (is_digit(*q) || *q == '_')) q++;
            if (q + 1 < end && *q == '.' && is_digit(q[1])) {
                is_float = 1, q++;
                while (q < end && is_digit(*q)) q++;
            }
            if (q < end && (*q == 'e' || *q == 'E')) {
                const char *r = q + 1;
                if (r < end && (*r == '+' || *r == '-')) r++;
                if (r < end && is_digit(*r)) {
                    is_float = 1, q = r;
                    while (q < end && is_digit(*q)) q++;
                }
            }
            char num[64];
            size_t nn = 0;
            for (const char *r = s; r < q && nn < sizeof num - 1; r++)
                if (*r != '_') num[nn++] = *r;
            num[nn] = 0;
            if (is_float) tk.kind = T_FLOAT, tk.f = strtod(num, NULL);
            else tk.kind = T_INT, tk.i = strtoll(num, NULL, 10);
            s = q;
        } else if (is_ident_start(*s)) {
            const char *q = s;
            while (q < end && (is_ident_start(*q) || is_digit(*q))) q++;
            tk.kind = T_NAME, tk.n = (size_t)(q - s);
            s = q;
        } else {
            int two = 0;
            for (int k = 0; TWO_CHAR_OPS[k]; k++)
                if (s + 1 < end && s[0] == TWO_CHAR_OPS[k][0] && s[1] == TWO_CHAR_OPS[k][1]) two = 1;
            if (!two && !strchr(ONE_CHAR_OPS, *s)) {
                perr(p, *line, "unexpected character '%c'", *s);
                return NULL;
            }
            tk.n = two ? 2 : 1;
            if (*s == '(' || *s == '[' || *s == '{') depth++;
            if ((*s == ')' || *s == ']' || *s == '}') && depth > 0) depth--;
            s += tk.n;
        }
        if (push(p, tk)) return NULL;
    }
}

static rlhf_status lex(ct_parser *p, const char *src) {
    const char *s = src, *end = src + strlen(src);
    int line = 1, strip_next = 0, trim_newline = 0;
    while (s < end) {
        // Text up to the next tag opener.
        const char *open = s;
        while (open + 1 < end && !(open[0] == '{' && (open[1] == '{' || open[1] == '%' || open[1] == '#'))) open++;
        if (open + 1 >= end) open = end;
        const char *ts = s, *te = open;
        if (strip_next) while (ts < te && is_space(*ts)) ts++;
        else if (trim_newline) {
            if (ts < te && *ts == '\n') ts++;
            else if (ts + 1 < te && ts[0] == '\r' && ts[1] == '\n') ts += 2;
        }
        int kind_char = open < end ? open[1] : 0;
        int dash_before = open < end && open + 2 < end && open[2] == '-';
        int plus_before = open < end && open + 2 < end && open[2] == '+';
        if (dash_before) {
            while (te > ts && is_space(te[-1])) te--;
        } else if ((kind_char == '%' || kind_char == '#') && !plus_before) {
            // lstrip_blocks: spaces and tabs between the start of the line and a block tag go.
            const char *q = open;
            while (q > src && (q[-1] == ' ' || q[-1] == '\t')) q--;
            if ((q == src || q[-1] == '\n') && q >= ts) te = q;
        }
        if (te > ts) {
            ct_tok tk = {T_TEXT, line + count_lines(s, (size_t)(ts - s)), ts, (size_t)(te - ts), 0, 0};
            RLHF_TRY(push(p, tk));
        }
        line += count_lines(s, (size_t)(open - s));
        strip_next = trim_newline = 0;
        if (open >= end) break;
        s = open + 2 + (dash_before || plus_before);
        if (kind_char == '#') {
            const char *c = s;
            while (c + 1 < end && !(c[0] == '#' && c[1] == '}')) c++;
            if (c + 1 >= end) return perr(p, line, "comment not closed (expected '#}')");
            strip_next = c > s && c[-1] == '-';
            trim_newline = !strip_next;
            line += count_lines(s, (size_t)(c - s));
            s = c + 2;
            continue;
        }
        int block = kind_char == '%';
        ct_tok begin = {block ? T_BLOCK_BEGIN : T_VAR_BEGIN, line, NULL, 0, 0, 0};
        RLHF_TRY(push(p, begin));
        s = lex_tag(p, s, end, block, &line, &strip_next);
        if (!s) return RLHF_EINPUT;
        trim_newline = block && !strip_next;
    }
    ct_tok eof = {T_EOF, line, NULL, 0, 0, 0};
    return push(p, eof);
}

// ---- parser ----------------------------------------------------------------------------------------
static ct_tok *peek(ct_parser *p) { return &p->toks[p->pos]; }
static ct_tok *next(ct_parser *p) {
    ct_tok *t = &p->toks[p->pos];
    if (t->kind != T_EOF) p->pos++;
    return t;
}
static int tok_is(const ct_tok *t, ct_tok_kind k, const char *s) {
    return t->kind == k && (!s || (t->n == strlen(s) && !memcmp(t->s, s, t->n)));
}
static int accept(ct_parser *p, ct_tok_kind k, const char *s) {
    if (!tok_is(peek(p), k, s)) return 0;
    next(p);
    return 1;
}
static const char *tok_desc(const ct_tok *t, char *buf, size_t n) {
    switch (t->kind) {
    case T_EOF: return "end of template";
    case T_VAR_END: return "'}}'";
    case T_BLOCK_END: return "'%}'";
    case T_TEXT: return "text";
    case T_STRING: return "a string";
    case T_INT: case T_FLOAT: return "a number";
    default: snprintf(buf, n, "'%.*s'", (int)(t->n > 40 ? 40 : t->n), t->s); return buf;
    }
}
static rlhf_status expect(ct_parser *p, ct_tok_kind k, const char *s, const char *what) {
    if (accept(p, k, s)) return RLHF_OK;
    char b[64];
    return perr(p, peek(p)->line, "expected %s, got %s", what, tok_desc(peek(p), b, sizeof b));
}

static ct_expr *new_expr(ct_parser *p, ct_expr_kind k, int line) {
    ct_expr *e = ct_alloc(&p->t->pool, sizeof *e);
    if (e) e->kind = k, e->line = line;
    return e;
}
#define NEW_EXPR(var, kind, line)                                                                       \
    ct_expr *var = new_expr(p, kind, line);                                                             \
    if (!var) return rlhf_fail(p->err, RLHF_ERUNTIME, "%s: chat_template: out of memory", p->t->what)

// Growable pointer list in the pool (old arrays are left behind: templates are small).
typedef struct {
    void **v;
    const char **kw;
    int n, cap;
} ptr_list;
static rlhf_status list_add(ct_parser *p, ptr_list *l, void *x, const char *kw) {
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 4;
        void **nv = ct_alloc(&p->t->pool, sizeof *nv * (size_t)cap);
        const char **nk = ct_alloc(&p->t->pool, sizeof *nk * (size_t)cap);
        if (!nv || !nk) return rlhf_fail(p->err, RLHF_ERUNTIME, "%s: chat_template: out of memory", p->t->what);
        if (l->n) memcpy(nv, l->v, sizeof *nv * (size_t)l->n), memcpy(nk, l->kw, sizeof *nk * (size_t)l->n);
        l->v = nv, l->kw = nk, l->cap = cap;
    }
    l->kw[l->n] = kw;
    l->v[l->n++] = x;
    return RLHF_OK;
}

static rlhf_status parse_expr(ct_parser *p, ct_expr **out);
static rlhf_status parse_or(ct_parser *p, ct_expr **out);
static rlhf_status parse_unary(ct_parser *p, ct_expr **out, int with_filter);

static char *tok_name(ct_parser *p, const ct_tok *t) { return ct_strndup(&p->t->pool, t->s, t->n); }

// "(" args ")" after a callee / filter / test name: positional and keyword arguments.
static rlhf_status parse_args(ct_parser *p, ct_expr *e) {
    ptr_list l = {0};
    if (!accept(p, T_OP, ")")) {
        for (;;) {
            const char *kw = NULL;
            if (peek(p)->kind == T_NAME && tok_is(&p->toks[p->pos + 1], T_OP, "=")) {
                kw = tok_name(p, next(p));
                next(p);
            }
            ct_expr *a;
            RLHF_TRY(parse_expr(p, &a));
            RLHF_TRY(list_add(p, &l, a, kw));
            if (accept(p, T_OP, ")")) break;
            RLHF_TRY(expect(p, T_OP, ",", "',' or ')' in an argument list"));
            if (accept(p, T_OP, ")")) break;
        }
    }
    e->args = (ct_expr **)l.v, e->kw = l.kw, e->nargs = l.n;
    return RLHF_OK;
}

static rlhf_status parse_primary(ct_parser *p, ct_expr **out) {
    ct_tok *t = next(p);
    char b[64];
    switch (t->kind) {
    case T_STRING: {
        // Adjacent literals concatenate, as in Python.
        size_t n = t->n;
        int k = p->pos;
        while (p->toks[k].kind == T_STRING) n += p->toks[k++].n;
        NEW_EXPR(e, E_STR, t->line);
        char *s = ct_alloc(&p->t->pool, n + 1);
        if (!s) return rlhf_fail(p->err, RLHF_ERUNTIME, "out of memory");
        memcpy(s, t->s, t->n);
        size_t o = t->n;
        while (peek(p)->kind == T_STRING) memcpy(s + o, peek(p)->s, peek(p)->n), o += next(p)->n;
        e->s = s, e->n = n;
        *out = e;
        return RLHF_OK;
    }
    case T_INT: { NEW_EXPR(e, E_INT, t->line); e->i = t->i; *out = e; return RLHF_OK; }
    case T_FLOAT: { NEW_EXPR(e, E_FLOAT, t->line); e->f = t->f; *out = e; return RLHF_OK; }
    case T_NAME: {
        if (tok_is(t, T_NAME, "true") || tok_is(t, T_NAME, "True") || tok_is(t, T_NAME, "false") ||
            tok_is(t, T_NAME, "False")) {
            NEW_EXPR(e, E_BOOL, t->line);
            e->i = t->s[0] == 't' || t->s[0] == 'T';
            *out = e;
            return RLHF_OK;
        }
        if (tok_is(t, T_NAME, "none") || tok_is(t, T_NAME, "None")) {
            NEW_EXPR(e, E_NONE, t->line);
            *out = e;
            return RLHF_OK;
        }
        NEW_EXPR(e, E_NAME, t->line);
        e->s = tok_name(p, t), e->n = t->n;
        *out = e;
        return RLHF_OK;
    }
    case T_OP:
        if (tok_is(t, T_OP, "(")) {
            RLHF_TRY(parse_expr(p, out));
            return expect(p, T_OP, ")", "')'");
        }
        if (tok_is(t, T_OP, "[")) {
            NEW_EXPR(e, E_LIST, t->line);
            ptr_list l = {0};
            while (!accept(p, T_OP, "]")) {
                ct_expr *a;
                RLHF_TRY(parse_expr(p, &a));
                RLHF_TRY(list_add(p, &l, a, NULL));
                if (accept(p, T_OP, "]")) break;
                RLHF_TRY(expect(p, T_OP, ",", "',' or ']' in a list"));
            }
            e->args = (ct_expr **)l.v, e->nargs = l.n;
            *out = e;
            return RLHF_OK;
        }
        if (tok_is(t, T_OP, "{")) {
            NEW_EXPR(e, E_DICT, t->line);
            ptr_list l = {0};
            while (!accept(p, T_OP, "}")) {
                ct_expr *k, *v;
                RLHF_TRY(parse_expr(p, &k));
                RLHF_TRY(expect(p, T_OP, ":", "':' in a dict"));
                RLHF_TRY(parse_expr(p, &v));
                RLHF_TRY(list_add(p, &l, k, NULL));
                RLHF_TRY(list_add(p, &l, v, NULL));
                if (accept(p, T_OP, "}")) break;
                RLHF_TRY(expect(p, T_OP, ",", "',' or '}' in a dict"));
            }
            e->args = (ct_expr **)l.v, e->nargs = l.n;
            *out = e;
            return RLHF_OK;
        }
        break;
    default: break;
    }
    return perr(p, t->line, "expected an expression, got %s", tok_desc(t, b, sizeof b));
}

// Attribute, item / slice and call suffixes.
static rlhf_status parse_postfix(ct_parser *p, ct_expr **e) {
    for (;;) {
        ct_tok *t = peek(p);
        if (tok_is(t, T_OP, ".")) {
            next(p);
            ct_tok *nm = next(p);
            if (nm->kind != T_NAME && nm->kind != T_INT) return perr(p, nm->line, "expected an attribute name after '.'");
            NEW_EXPR(a, E_ATTR, nm->line);
            a->a = *e, a->s = tok_name(p, nm), a->n = nm->n;
            *e = a;
        } else if (tok_is(t, T_OP, "[")) {
            next(p);
            ct_expr *parts[3] = {NULL, NULL, NULL};
            int k = 0, is_slice = 0;
            for (;;) {
                if (tok_is(peek(p), T_OP, ":")) {
                    next(p);
                    if (++k > 2) return perr(p, t->line, "a slice has at most 3 parts");
                    is_slice = 1;
                    continue;
                }
                if (accept(p, T_OP, "]")) break;
                if (parts[k]) return perr(p, t->line, "expected ':' or ']' in a subscript");
                RLHF_TRY(parse_expr(p, &parts[k]));
            }
            if (!is_slice && !parts[0]) return perr(p, t->line, "empty subscript");
            NEW_EXPR(a, is_slice ? E_SLICE : E_ITEM, t->line);
            a->a = *e;
            if (is_slice) {
                a->args = ct_alloc(&p->t->pool, sizeof *a->args * 3);
                if (!a->args) return rlhf_fail(p->err, RLHF_ERUNTIME, "out of memory");
                memcpy(a->args, parts, sizeof parts);
                a->nargs = 3;
            } else {
                a->b = parts[0];
            }
            *e = a;
        } else if (tok_is(t, T_OP, "(")) {
            next(p);
            NEW_EXPR(a, E_CALL, t->line);
            a->a = *e;
            RLHF_TRY(parse_args(p, a));
            *e = a;
        } else {
            return RLHF_OK;
        }
    }
}

// "| filter(args)" and "is [not] test(args)" chains.
static rlhf_status parse_filters(ct_parser *p, ct_expr **e) {
    for (;;) {
        ct_tok *t = peek(p);
        int is_filter = tok_is(t, T_OP, "|"), is_test = tok_is(t, T_NAME, "is");
        if (!is_filter && !is_test) return RLHF_OK;
        next(p);
        int negated = is_test && accept(p, T_NAME, "not");
        ct_tok *nm = next(p);
        if (nm->kind != T_NAME) return perr(p, nm->line, "expected a %s name", is_filter ? "filter" : "test");
        NEW_EXPR(f, is_filter ? E_FILTER : E_TEST, nm->line);
        f->a = *e, f->s = tok_name(p, nm), f->n = nm->n, f->negated = negated;
        if (accept(p, T_OP, "(")) {
            RLHF_TRY(parse_args(p, f));
        } else if (is_test && (peek(p)->kind == T_STRING || peek(p)->kind == T_INT || peek(p)->kind == T_FLOAT ||
                               (peek(p)->kind == T_NAME && !tok_is(peek(p), T_NAME, "and") &&
                                !tok_is(peek(p), T_NAME, "or") && !tok_is(peek(p), T_NAME, "else") &&
                                !tok_is(peek(p), T_NAME, "if") && !tok_is(peek(p), T_NAME, "in") &&
                                !tok_is(peek(p), T_NAME, "is") && !tok_is(peek(p), T_NAME, "not")))) {
            // "x is divisibleby 3", "x is sameas none": one argument without parentheses.
            ct_expr *a;
            RLHF_TRY(parse_unary(p, &a, 0));
            f->args = ct_alloc(&p->t->pool, sizeof *f->args);
            f->kw = ct_alloc(&p->t->pool, sizeof *f->kw);
            if (!f->args || !f->kw) return rlhf_fail(p->err, RLHF_ERUNTIME, "out of memory");
            f->args[0] = a, f->nargs = 1;
        }
        *e = f;
    }
}

static rlhf_status parse_unary(ct_parser *p, ct_expr **out, int with_filter) {
    ct_tok *t = peek(p);
    if (tok_is(t, T_OP, "-") || tok_is(t, T_OP, "+")) {
        next(p);
        NEW_EXPR(e, t->s[0] == '-' ? E_NEG : E_POS, t->line);
        RLHF_TRY(enter(p));
        RLHF_TRY(parse_unary(p, &e->a, 0));
        p->depth--;
        *out = e;
    } else {
        RLHF_TRY(parse_primary(p, out));
        RLHF_TRY(parse_postfix(p, out));
    }
    return with_filter ? parse_filters(p, out) : RLHF_OK;
}

static rlhf_status binary(ct_parser *p, ct_expr **e, ct_op op, int line, ct_expr *rhs) {
    NEW_EXPR(b, E_BIN, line);
    b->op = op, b->a = *e, b->b = rhs;
    *e = b;
    return RLHF_OK;
}

static rlhf_status parse_pow(ct_parser *p, ct_expr **out) {
    RLHF_TRY(parse_unary(p, out, 1));
    while (tok_is(peek(p), T_OP, "**")) {
        int line = next(p)->line;
        ct_expr *r;
        RLHF_TRY(parse_unary(p, &r, 1));
        RLHF_TRY(binary(p, out, OP_POW, line, r));
    }
    return RLHF_OK;
}

static rlhf_status parse_math2(ct_parser *p, ct_expr **out) {
    RLHF_TRY(parse_pow(p, out));
    for (;;) {
        ct_tok *t = peek(p);
        ct_op op;
        if (tok_is(t, T_OP, "*")) op = OP_MUL;
        else if (tok_is(t, T_OP, "/")) op = OP_DIV;
        else if (tok_is(t, T_OP, "//")) op = OP_FLOORDIV;
        else if (tok_is(t, T_OP, "%")) op = OP_MOD;
        else return RLHF_OK;
        next(p);
        ct_expr *r;
        RLHF_TRY(parse_pow(p, &r));
        RLHF_TRY(binary(p, out, op, t->line, r));
    }
}

static rlhf_status parse_concat(ct_parser *p, ct_expr **out) {
    RLHF_TRY(parse_math2(p, out));
    while (tok_is(peek(p), T_OP, "~")) {
        int line = next(p)->line;
        ct_expr *r;
        RLHF_TRY(parse_math2(p, &r));
        RLHF_TRY(binary(p, out, OP_CONCAT, line, r));
    }
    return RLHF_OK;
}

static rlhf_status parse_math1(ct_parser *p, ct_expr **out) {
    RLHF_TRY(parse_concat(p, out));
    for (;;) {
        ct_tok *t = peek(p);
        if (!tok_is(t, T_OP, "+") && !tok_is(t, T_OP, "-")) return RLHF_OK;
        next(p);
        ct_expr *r;
        RLHF_TRY(parse_concat(p, &r));
        RLHF_TRY(binary(p, out, t->s[0] == '+' ? OP_ADD : OP_SUB, t->line, r));
    }
}

static rlhf_status parse_compare(ct_parser *p, ct_expr **out) {
    RLHF_TRY(parse_math1(p, out));
    for (;;) {
        ct_tok *t = peek(p);
        ct_op op;
        if (tok_is(t, T_OP, "==")) op = OP_EQ;
        else if (tok_is(t, T_OP, "!=")) op = OP_NE;
        else if (tok_is(t, T_OP, "<")) op = OP_LT;
        else if (tok_is(t, T_OP, "<=")) op = OP_LE;
        else if (tok_is(t, T_OP, ">")) op = OP_GT;
        else if (tok_is(t, T_OP, ">=")) op = OP_GE;
        else if (tok_is(t, T_NAME, "in")) op = OP_IN;
        else if (tok_is(t, T_NAME, "not") && tok_is(&p->toks[p->pos + 1], T_NAME, "in")) op = OP_NOTIN, next(p);
        else return RLHF_OK;
        next(p);
        ct_expr *r;
        RLHF_TRY(parse_math1(p, &r));
        RLHF_TRY(binary(p, out, op, t->line, r));
    }
}

static rlhf_status parse_not(ct_parser *p, ct_expr **out) {
    ct_tok *t = peek(p);
    if (tok_is(t, T_NAME, "not")) {
        next(p);
        NEW_EXPR(e, E_NOT, t->line);
        RLHF_TRY(enter(p));
        RLHF_TRY(parse_not(p, &e->a));
        p->depth--;
        *out = e;
        return RLHF_OK;
    }
    return parse_compare(p, out);
}

static rlhf_status parse_and(ct_parser *p, ct_expr **out) {
    RLHF_TRY(parse_not(p, out));
    while (tok_is(peek(p), T_NAME, "and")) {
        NEW_EXPR(e, E_AND, next(p)->line);
        e->a = *out;
        RLHF_TRY(parse_not(p, &e->b));
        *out = e;
    }
    return RLHF_OK;
}

static rlhf_status parse_or(ct_parser *p, ct_expr **out) {
    RLHF_TRY(parse_and(p, out));
    while (tok_is(peek(p), T_NAME, "or")) {
        NEW_EXPR(e, E_OR, next(p)->line);
        e->a = *out;
        RLHF_TRY(parse_and(p, &e->b));
        *out = e;
    }
    return RLHF_OK;
}

// Conditional expression: "a if cond [else b]".
static rlhf_status parse_cond_expr(ct_parser *p, ct_expr **out) {
    RLHF_TRY(parse_or(p, out));
    while (tok_is(peek(p), T_NAME, "if")) {
        NEW_EXPR(e, E_COND, next(p)->line);
        e->b = *out;
        RLHF_TRY(parse_or(p, &e->a));
        if (accept(p, T_NAME, "else")) RLHF_TRY(parse_expr(p, &e->c));
        *out = e;
    }
    return RLHF_OK;
}

static rlhf_status parse_expr(ct_parser *p, ct_expr **out) {
    RLHF_TRY(enter(p));
    RLHF_TRY(parse_cond_expr(p, out));
    p->depth--;
    return RLHF_OK;
}

// ---- statements ------------------------------------------------------------------------------------
static ct_stmt *new_stmt(ct_parser *p, ct_stmt_kind k, int line) {
    ct_stmt *s = ct_alloc(&p->t->pool, sizeof *s);
    if (s) s->kind = k, s->line = line;
    return s;
}
#define NEW_STMT(var, kind, line)                                                                       \
    ct_stmt *var = new_stmt(p, kind, line);                                                             \
    if (!var) return rlhf_fail(p->err, RLHF_ERUNTIME, "%s: chat_template: out of memory", p->t->what)

// Parses statements until a block tag whose keyword is in ends (NULL-terminated); *end_kw gets it
// (the parser then stands after the keyword). ends NULL: until the end of the template.
static rlhf_status parse_body(ct_parser *p, ct_body *body, const char *const *ends, const char **end_kw, int depth);

static rlhf_status parse_block_stmt(ct_parser *p, ptr_list *items, int depth) {
    ct_tok *kw = next(p);
    char b[64];
    if (kw->kind != T_NAME) return perr(p, kw->line, "expected a statement name, got %s", tok_desc(kw, b, sizeof b));
    int line = kw->line;
    if (tok_is(kw, T_NAME, "if")) {
        NEW_STMT(s, S_IF, line);
        ptr_list conds = {0}, bodies = {0};
        static const char *const ends[] = {"elif", "else", "endif", NULL};
        const char *end;
        for (;;) {
            ct_expr *c;
            RLHF_TRY(parse_expr(p, &c));
            RLHF_TRY(expect(p, T_BLOCK_END, NULL, "'%}'"));
            ct_body *bd = ct_alloc(&p->t->pool, sizeof *bd);
            if (!bd) return rlhf_fail(p->err, RLHF_ERUNTIME, "out of memory");
            RLHF_TRY(parse_body(p, bd, ends, &end, depth + 1));
            RLHF_TRY(list_add(p, &conds, c, NULL));
            RLHF_TRY(list_add(p, &bodies, bd, NULL));
            if (strcmp(end, "elif")) break;
        }
        if (!strcmp(end, "else")) {
            static const char *const ends2[] = {"endif", NULL};
            RLHF_TRY(expect(p, T_BLOCK_END, NULL, "'%}'"));
            RLHF_TRY(parse_body(p, &s->else_body, ends2, &end, depth + 1));
        }
        s->nbranch = conds.n;
        s->conds = (ct_expr **)conds.v;
        s->bodies = ct_alloc(&p->t->pool, sizeof *s->bodies * (size_t)conds.n);
        if (!s->bodies) return rlhf_fail(p->err, RLHF_ERUNTIME, "out of memory");
        for (int k = 0; k < conds.n; k++) s->bodies[k] = *(ct_body *)bodies.v[k];
        RLHF_TRY(expect(p, T_BLOCK_END, NULL, "'%}'"));
        return list_add(p, items, s, NULL);
    }
    if (tok_is(kw, T_NAME, "for")) {
        NEW_STMT(s, S_FOR, line);
        for (int k = 0; k < 2; k++) {
            ct_tok *v = next(p);
            if (v->kind != T_NAME) return perr(p, v->line, "expected a loop variable name");
            s->var[k] = tok_name(p, v);
            if (!accept(p, T_OP, ",")) break;
        }
        RLHF_TRY(expect(p, T_NAME, "in", "'in'"));
        RLHF_TRY(parse_or(p, &s->expr));  // no conditional expression: "if" here filters the loop
        if (accept(p, T_NAME, "if")) RLHF_TRY(parse_expr(p, &s->filter));
        if (tok_is(peek(p), T_NAME, "recursive")) return perr(p, line, "recursive loops are not supported");
        RLHF_TRY(expect(p, T_BLOCK_END, NULL, "'%}'"));
        static const char *const ends[] = {"else", "endfor", NULL};
        const char *end;
        RLHF_TRY(parse_body(p, &s->body, ends, &end, depth + 1));
        if (!strcmp(end, "else")) {
            static const char *const ends2[] = {"endfor", NULL};
            RLHF_TRY(expect(p, T_BLOCK_END, NULL, "'%}'"));
            RLHF_TRY(parse_body(p, &s->else_body, ends2, &end, depth + 1));
        }
        RLHF_TRY(expect(p, T_BLOCK_END, NULL, "'%}'"));
        return list_add(p, items, s, NULL);
    }
    if (tok_is(kw, T_NAME, "set")) {
        ct_tok *v = next(p);
        if (v->kind != T_NAME) return perr(p, v->line, "expected a variable name after 'set'");
        const char *name = tok_name(p, v), *attr = NULL;
        if (accept(p, T_OP, ".")) {
            ct_tok *a = next(p);
            if (a->kind != T_NAME) return perr(p, a->line, "expected an attribute name");
            attr = tok_name(p, a);
        }
        if (accept(p, T_OP, "=")) {
            NEW_STMT(s, S_SET, line);
            s->var[0] = name, s->var[1] = attr;
            RLHF_TRY(parse_expr(p, &s->expr));
            RLHF_TRY(expect(p, T_BLOCK_END, NULL, "'%}'"));
            return list_add(p, items, s, NULL);
        }
        if (attr) return perr(p, line, "expected '=' after 'set %s.%s'", name, attr);
        NEW_STMT(s, S_SET_BLOCK, line);
        s->var[0] = name;
        RLHF_TRY(expect(p, T_BLOCK_END, NULL, "'=' or '%}'"));
        static const char *const ends[] = {"endset", NULL};
        const char *end;
        RLHF_TRY(parse_body(p, &s->body, ends, &end, depth + 1));
        RLHF_TRY(expect(p, T_BLOCK_END, NULL, "'%}'"));
        return list_add(p, items, s, NULL);
    }
    if (tok_is(kw, T_NAME, "break") || tok_is(kw, T_NAME, "continue")) {
        NEW_STMT(s, kw->s[0] == 'b' ? S_BREAK : S_CONTINUE, line);
        RLHF_TRY(expect(p, T_BLOCK_END, NULL, "'%}'"));
        return list_add(p, items, s, NULL);
    }
    if (tok_is(kw, T_NAME, "generation")) {  // transformers' assistant-mask marker: renders its body
        NEW_STMT(s, S_BODY, line);
        RLHF_TRY(expect(p, T_BLOCK_END, NULL, "'%}'"));
        static const char *const ends[] = {"endgeneration", NULL};
        const char *end;
        RLHF_TRY(parse_body(p, &s->body, ends, &end, depth + 1));
        RLHF_TRY(expect(p, T_BLOCK_END, NULL, "'%}'"));
        return list_add(p, items, s, NULL);
    }
    return perr(p, line, "unsupported or unexpected tag '%.*s'", (int)(kw->n > 40 ? 40 : kw->n), kw->s);
}

#define CT_MAX_NESTING 64

static rlhf_status parse_body(ct_parser *p, ct_body *body, const char *const *ends, const char **end_kw, int depth) {
    if (depth > CT_MAX_NESTING) return perr(p, peek(p)->line, "blocks nested more than %d deep", CT_MAX_NESTING);
    ptr_list items = {0};
    int open_line = peek(p)->line;
    for (;;) {
        ct_tok *t = peek(p);
        if (t->kind == T_EOF) {
            if (ends) {
                int last = 0;
                while (ends[last + 1]) last++;
                return perr(p, open_line, "block not closed (expected '{%% %s %%}')", ends[last]);
            }
            break;
        }
        if (t->kind == T_TEXT) {
            next(p);
            NEW_STMT(s, S_TEXT, t->line);
            s->text = t->s, s->n = t->n;
            RLHF_TRY(list_add(p, &items, s, NULL));
        } else if (t->kind == T_VAR_BEGIN) {
            next(p);
            NEW_STMT(s, S_OUTPUT, t->line);
            RLHF_TRY(parse_expr(p, &s->expr));
            RLHF_TRY(expect(p, T_VAR_END, NULL, "'}}'"));
            RLHF_TRY(list_add(p, &items, s, NULL));
        } else if (t->kind == T_BLOCK_BEGIN) {
            ct_tok *kw = &p->toks[p->pos + 1];
            int is_end = 0;
            for (int k = 0; ends && ends[k]; k++)
                if (tok_is(kw, T_NAME, ends[k])) *end_kw = ends[k], is_end = 1;
            if (is_end) {
                p->pos += 2;
                break;
            }
            next(p);
            RLHF_TRY(parse_block_stmt(p, &items, depth));
        } else {
            char b[64];
            return perr(p, t->line, "unexpected %s", tok_desc(t, b, sizeof b));
        }
    }
    body->items = (ct_stmt **)items.v, body->n = items.n;
    return RLHF_OK;
}

rlhf_status ct_parse(chat_template *t, const char *src, rlhf_err *err) {
    ct_parser p = {t, err, NULL, 0, 0, 0, 0};
    rlhf_status s = lex(&p, src);
    if (!s) s = parse_body(&p, &t->root, NULL, NULL, 0);
    free(p.toks);
    return s;
}
