// Pre-tokenizers of HF tokenizers: each splits a piece of normalized text into smaller pieces with
// NormalizedString::split's semantics (matches found by a regex, a literal or a char predicate, then one
// of the five delimiter behaviours; empty pieces dropped). ByteLevel also maps bytes to GPT-2's
// printable code points, Metaspace turns spaces into U+2581.
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

#define PRE_MAX_NESTING 16
// GPT-2's pre-tokenization regex (HF pre_tokenizers/byte_level.rs).
static const char GPT2_REGEX[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
// Whitespace pre-tokenizer's regex \w+|[^\w\s]+ with \w spelled out as the Rust regex crate defines it
// (Alphabetic + marks + decimal digits + connector punctuation + joiners); PCRE2 10.42's \w lacks marks.
#define RUST_WORD "\\p{L}\\p{Nl}\\p{M}\\p{Nd}\\p{Pc}\\x{200C}\\x{200D}\\x{24B6}-\\x{24E9}\\x{1F130}-\\x{1F189}"
static const char WHITESPACE_REGEX[] = "[" RUST_WORD "]+|[^" RUST_WORD "\\s]+";

static rlhf_status parse_behavior(const cJSON *j, split_behavior def, split_behavior *out, const char *what,
                                  rlhf_err *err) {
    const char *b = tk_tj_str(j, "behavior");
    *out = def;
    if (!b) return RLHF_OK;
    if (!strcmp(b, "Removed")) *out = SPLIT_REMOVED;
    else if (!strcmp(b, "Isolated")) *out = SPLIT_ISOLATED;
    else if (!strcmp(b, "MergedWithPrevious")) *out = SPLIT_MERGED_PREV;
    else if (!strcmp(b, "MergedWithNext")) *out = SPLIT_MERGED_NEXT;
    else if (!strcmp(b, "Contiguous")) *out = SPLIT_CONTIGUOUS;
    else return rlhf_fail(err, RLHF_EINPUT, "%s: unknown split behavior \"%s\"", what, b);
    return RLHF_OK;
}

static rlhf_status parse_scheme(const cJSON *j, prepend_scheme *out, const char *what, rlhf_err *err) {
    const char *s = tk_tj_str(j, "prepend_scheme");
    if (!s) {   // older files: add_prefix_space (default true)
        *out = tk_tj_bool(j, "add_prefix_space", 1) ? PREPEND_ALWAYS : PREPEND_NEVER;
        return RLHF_OK;
    }
    if (!strcmp(s, "always")) *out = PREPEND_ALWAYS;
    else if (!strcmp(s, "first")) *out = PREPEND_FIRST;
    else if (!strcmp(s, "never")) *out = PREPEND_NEVER;
    else return rlhf_fail(err, RLHF_EINPUT, "%s: unknown prepend_scheme \"%s\"", what, s);
    return RLHF_OK;
}

rlhf_status tok_parse_replacement(const cJSON *j, uint32_t *out, const char *what, rlhf_err *err) {
    const char *r = tk_tj_str(j, "replacement");
    if (!r) r = "\xE2\x96\x81";
    size_t n = strlen(r), i = 0;
    if (n == 0 || tk_utf8_valid_prefix(r, n) != n) return rlhf_fail(err, RLHF_EINPUT, "%s: bad \"replacement\"", what);
    *out = tk_utf8_next(r, n, &i);
    if (i != n) return rlhf_fail(err, RLHF_EINPUT, "%s: \"replacement\" must be one character", what);
    return RLHF_OK;
}

static rlhf_status parse_rec(const cJSON *j, pretok **out, const char *what, int depth, rlhf_err *err) {
    const char *type;
    RLHF_TRY(tk_tj_type(j, &type, what, err));
    if (depth > PRE_MAX_NESTING) return rlhf_fail(err, RLHF_EINPUT, "%s: Sequence nested too deeply", what);
    pretok *p = calloc(1, sizeof *p);
    if (!p) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    *out = p;
    if (!strcmp(type, "BertPreTokenizer")) p->type = PRE_BERT;
    else if (!strcmp(type, "ByteLevel")) {
        p->type = PRE_BYTELEVEL;
        p->add_prefix_space = tk_tj_bool(j, "add_prefix_space", 1);
        p->use_regex = tk_tj_bool(j, "use_regex", 1);
        if (p->use_regex) RLHF_TRY(tok_regex_compile(GPT2_REGEX, sizeof GPT2_REGEX - 1, &p->re, what, err));
    } else if (!strcmp(type, "Split")) {
        p->type = PRE_SPLIT;
        RLHF_TRY(parse_behavior(j, SPLIT_ISOLATED, &p->behavior, what, err));
        if (!tk_tj_str(j, "behavior")) return rlhf_fail(err, RLHF_EINPUT, "%s: Split needs a \"behavior\"", what);
        p->invert = tk_tj_bool(j, "invert", 0);
        RLHF_TRY(tok_parse_pattern(j, &p->literal, &p->literal_len, &p->re, what, err));
    } else if (!strcmp(type, "Metaspace")) {
        p->type = PRE_METASPACE;
        RLHF_TRY(tok_parse_replacement(j, &p->replacement, what, err));
        RLHF_TRY(parse_scheme(j, &p->scheme, what, err));
        p->split = tk_tj_bool(j, "split", 1);
    } else if (!strcmp(type, "Whitespace")) {
        p->type = PRE_WHITESPACE;
        RLHF_TRY(tok_regex_compile(WHITESPACE_REGEX, sizeof WHITESPACE_REGEX - 1, &p->re, what, err));
    } else if (!strcmp(type, "WhitespaceSplit")) p->type = PRE_WHITESPACE_SPLIT;
    else if (!strcmp(type, "Digits")) {
        p->type = PRE_DIGITS;
        p->individual_digits = tk_tj_bool(j, "individual_digits", 0);
    } else if (!strcmp(type, "Punctuation")) {
        p->type = PRE_PUNCTUATION;
        RLHF_TRY(parse_behavior(j, SPLIT_ISOLATED, &p->behavior, what, err));
    } else if (!strcmp(type, "Sequence")) {
        p->type = PRE_SEQUENCE;
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "pretokenizers");
        if (!cJSON_IsArray(arr)) return rlhf_fail(err, RLHF_EINPUT, "%s: Sequence needs an array \"pretokenizers\"", what);
        p->children = calloc((size_t)cJSON_GetArraySize(arr) + 1, sizeof *p->children);
        if (!p->children) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
        const cJSON *c;
        cJSON_ArrayForEach(c, arr) {
            p->n_children++;   // counted before parsing so a failed child is freed too
            RLHF_TRY(parse_rec(c, &p->children[p->n_children - 1], what, depth + 1, err));
        }
    } else {
        return rlhf_fail(err, RLHF_EINPUT, "%s: unknown pre_tokenizer type \"%s\" (supported: BertPreTokenizer, ByteLevel, "
                         "Split, Metaspace, Whitespace, WhitespaceSplit, Digits, Punctuation, Sequence)", what, type);
    }
    return RLHF_OK;
}

rlhf_status tk_pretok_parse(const cJSON *j, pretok **out, const char *what, rlhf_err *err) {
    *out = NULL;
    rlhf_status st = parse_rec(j, out, what, 0, err);
    if (st != RLHF_OK) {
        tk_pretok_free(*out);
        *out = NULL;
    }
    return st;
}

void tk_pretok_free(pretok *p) {
    if (!p) return;
    for (int i = 0; i < p->n_children; i++) tk_pretok_free(p->children[i]);
    free(p->children);
    free(p->literal);
    if (p->re) pcre2_code_free(p->re);
    free(p);
}

// ---- NormalizedString::split ----
typedef struct {
    size_t a, b;
    int match;
} seg;
typedef struct {
    seg *v;
    int n, cap;
} segs;

static int seg_push(segs *s, size_t a, size_t b, int match) {
    if (s->n == s->cap) {
        int cap = s->cap ? s->cap * 2 : 32;
        seg *v = realloc(s->v, (size_t)cap * sizeof *v);
        if (!v) return -1;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = (seg){a, b, match};
    return 0;
}

typedef int (*char_pred)(uint32_t c);

static int find_pred(const char *s, size_t n, char_pred pred, segs *out) {
    size_t last = 0, i = 0;
    while (i < n) {
        size_t st = i;
        uint32_t c = tk_utf8_next(s, n, &i);
        if (pred(c)) {
            if (last < st && seg_push(out, last, st, 0)) return -1;
            if (seg_push(out, st, i, 1)) return -1;
            last = i;
        }
    }
    if (last < n && seg_push(out, last, n, 0)) return -1;
    return 0;
}

static int find_regex(const char *s, size_t n, const pcre2_code *re, pcre2_match_data *md, segs *out) {
    size_t prev = 0, search = 0, ms, me;
    while (search <= n) {
        int r = tok_regex_next(re, md, s, n, search, &ms, &me);
        if (r < 0) return -1;
        if (r == 0) break;
        if (prev != ms && seg_push(out, prev, ms, 0)) return -1;
        if (seg_push(out, ms, me, 1)) return -1;
        prev = me;
        search = me;
        if (me == ms) {
            if (me >= n) break;
            search = me + (size_t)tk_utf8_len((unsigned char)s[me]);
        }
    }
    if (prev != n && seg_push(out, prev, n, 0)) return -1;
    return 0;
}

static int find_literal(const char *s, size_t n, const char *lit, size_t lit_len, segs *out) {
    if (lit_len == 0) return seg_push(out, 0, n, 0);
    size_t prev = 0, pos = 0;
    while (pos + lit_len <= n) {
        const char *hit = memmem(s + pos, n - pos, lit, lit_len);
        if (!hit) break;
        size_t h = (size_t)(hit - s);
        if (prev != h && seg_push(out, prev, h, 0)) return -1;
        if (seg_push(out, h, h + lit_len, 1)) return -1;
        prev = pos = h + lit_len;
    }
    if (prev != n && seg_push(out, prev, n, 0)) return -1;
    return 0;
}

// Applies behaviour to the matches and pushes the kept, non-empty pieces of s to out.
static int emit_split(const char *s, segs *m, split_behavior beh, int invert, int first, plist *out) {
    if (invert)
        for (int i = 0; i < m->n; i++) m->v[i].match = !m->v[i].match;
    // in place: v[k] = (a, b, remove)
    int k = 0;
    if (beh == SPLIT_ISOLATED) {
        for (int i = 0; i < m->n; i++) m->v[i].match = 0;
        k = m->n;
    } else if (beh == SPLIT_REMOVED) {
        k = m->n;
    } else if (beh == SPLIT_CONTIGUOUS || beh == SPLIT_MERGED_PREV) {
        int prev_match = 0;
        for (int i = 0; i < m->n; i++) {
            seg g = m->v[i];
            int merge = beh == SPLIT_CONTIGUOUS ? g.match == prev_match : (g.match && !prev_match);
            if (merge && k > 0) m->v[k - 1].b = g.b;
            else m->v[k++] = (seg){g.a, g.b, 0};
            prev_match = g.match;
        }
    } else {   // MERGED_NEXT: fold from the right
        int prev_match = 0;
        int w = m->n;   // write from the right end
        for (int i = m->n - 1; i >= 0; i--) {
            seg g = m->v[i];
            if (g.match && !prev_match && w < m->n) m->v[w].a = g.a;
            else m->v[--w] = (seg){g.a, g.b, 0};
            prev_match = g.match;
        }
        memmove(m->v, m->v + w, (size_t)(m->n - w) * sizeof *m->v);
        k = m->n - w;
    }
    for (int i = 0; i < k; i++) {
        seg g = m->v[i];
        if (g.match || g.b == g.a) continue;
        if (tk_plist_push(out, s + g.a, g.b - g.a, first && g.a == 0)) return -1;
    }
    return 0;
}

static int split_with(const char *s, size_t n, int first, plist *out, split_behavior beh, int invert,
                      char_pred pred, const pcre2_code *re, const char *lit, size_t lit_len, pcre2_match_data *md) {
    segs m = {0};
    int rc;
    if (pred) rc = find_pred(s, n, pred, &m);
    else if (re) rc = find_regex(s, n, re, md, &m);
    else rc = find_literal(s, n, lit, lit_len, &m);
    if (!rc) rc = emit_split(s, &m, beh, invert, first, out);
    free(m.v);
    return rc;
}

static int is_metaspace_rep(uint32_t c) { return c == 0x2581; }

static int push_mapped(plist *out, const char *s, size_t n, int first, tbuf *tmp) {
    tmp->n = 0;
    if (tk_tbuf_reserve(tmp, 2 * n)) return -1;
    for (size_t k = 0; k < n; k++) {
        const unsigned char *u = tk_bytelevel_utf8((unsigned char)s[k]);
        memcpy(tmp->p + tmp->n, u + 1, u[0]);
        tmp->n += u[0];
    }
    return tk_plist_push(out, tmp->p, tmp->n, first);
}

static int bytelevel_piece(const pretok *p, const char *s, size_t n, int first, plist *out, pcre2_match_data *md) {
    tbuf pre = {0}, tmp = {0};
    plist parts = {0};
    int rc = 0;
    if (p->add_prefix_space && !(n > 0 && s[0] == ' ')) {
        if (tk_tbuf_putc(&pre, ' ') || tk_tbuf_put(&pre, s, n)) rc = -1;
        s = pre.p;
        n = pre.n;
    }
    if (!rc && p->use_regex) {
        rc = split_with(s, n, first, &parts, SPLIT_ISOLATED, 0, NULL, p->re, NULL, 0, md);
        for (int i = 0; i < parts.n && !rc; i++)
            rc = push_mapped(out, parts.text.p + parts.off[i], parts.len[i], parts.first[i], &tmp);
    } else if (!rc && n) {
        rc = push_mapped(out, s, n, first, &tmp);
    }
    tk_tbuf_free(&pre);
    tk_tbuf_free(&tmp);
    tk_plist_free(&parts);
    return rc;
}

static int metaspace_piece(const pretok *p, const char *s, size_t n, int first, plist *out) {
    tbuf t = {0};
    int rc = 0;
    char rep[5];
    tbuf r = {0};
    if (tk_tbuf_put_cp(&r, p->replacement)) return -1;
    size_t rl = r.n;
    memcpy(rep, r.p, rl);
    tk_tbuf_free(&r);
    int starts = n >= rl && memcmp(s, rep, rl) == 0;
    // a leading space becomes the replacement, so it counts as "starts with" too
    if (!starts && n > 0 && s[0] == ' ') starts = 1;
    if ((p->scheme == PREPEND_ALWAYS || (p->scheme == PREPEND_FIRST && first)) && !starts) rc |= tk_tbuf_put(&t, rep, rl);
    for (size_t i = 0; i < n && !rc; i++) rc |= s[i] == ' ' ? tk_tbuf_put(&t, rep, rl) : tk_tbuf_putc(&t, s[i]);
    if (!rc && t.n) {
        if (p->split) rc = split_with(t.p, t.n, first, out, SPLIT_MERGED_NEXT, 0, NULL, NULL, rep, rl, NULL);
        else rc = tk_plist_push(out, t.p, t.n, first);
    }
    tk_tbuf_free(&t);
    return rc;
}

static int piece(const pretok *p, const char *s, size_t n, int first, plist *out, pcre2_match_data *md) {
    switch (p->type) {
    case PRE_BERT: {
        plist tmp = {0};
        int rc = split_with(s, n, first, &tmp, SPLIT_REMOVED, 0, tk_uc_is_whitespace, NULL, NULL, 0, md);
        for (int i = 0; i < tmp.n && !rc; i++)
            rc = split_with(tmp.text.p + tmp.off[i], tmp.len[i], tmp.first[i], out, SPLIT_ISOLATED, 0, tk_uc_is_punct, NULL,
                            NULL, 0, md);
        tk_plist_free(&tmp);
        return rc;
    }
    case PRE_BYTELEVEL:
        return bytelevel_piece(p, s, n, first, out, md);
    case PRE_SPLIT:
        return split_with(s, n, first, out, p->behavior, p->invert, NULL, p->re, p->literal, p->literal_len, md);
    case PRE_METASPACE:
        return metaspace_piece(p, s, n, first, out);
    case PRE_WHITESPACE:
        return split_with(s, n, first, out, SPLIT_REMOVED, 1, NULL, p->re, NULL, 0, md);
    case PRE_WHITESPACE_SPLIT:
        return split_with(s, n, first, out, SPLIT_REMOVED, 0, tk_uc_is_whitespace, NULL, NULL, 0, md);
    case PRE_DIGITS:
        return split_with(s, n, first, out, p->individual_digits ? SPLIT_ISOLATED : SPLIT_CONTIGUOUS, 0, tk_uc_is_numeric,
                          NULL, NULL, 0, md);
    case PRE_PUNCTUATION:
        return split_with(s, n, first, out, p->behavior, 0, tk_uc_is_punct, NULL, NULL, 0, md);
    case PRE_SEQUENCE: {
        plist a = {0}, b = {0};
        int rc = tk_plist_push(&a, s, n, first);
        for (int c = 0; c < p->n_children && !rc; c++) {
            tk_plist_clear(&b);
            for (int i = 0; i < a.n && !rc; i++)
                rc = piece(p->children[c], a.text.p + a.off[i], a.len[i], a.first[i], &b, md);
            plist t = a;
            a = b;
            b = t;
        }
        for (int i = 0; i < a.n && !rc; i++) rc = tk_plist_push(out, a.text.p + a.off[i], a.len[i], a.first[i]);
        tk_plist_free(&a);
        tk_plist_free(&b);
        return rc;
    }
    }
    (void)is_metaspace_rep;
    return -1;
}

int tk_pretok_apply(const pretok *p, const plist *in, plist *out, pcre2_match_data *md) {
    tk_plist_clear(out);
    for (int i = 0; i < in->n; i++)
        if (piece(p, in->text.p + in->off[i], in->len[i], in->first[i], out, md)) return -1;
    return 0;
}
