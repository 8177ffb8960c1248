// Decoders: HF's decode_chain over the list of token strings (each decoder rewrites the list; the
// final strings are concatenated). ByteLevel, WordPiece (with its cleanup), Metaspace, ByteFallback,
// Fuse, Strip, Replace, BPEDecoder and Sequence.
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

#define DEC_MAX_NESTING 16

static rlhf_status parse_rec(const cJSON *j, decoder **out, const char *what, int depth, rlhf_err *err) {
    const char *type;
    RLHF_TRY(tk_tj_type(j, &type, what, err));
    if (depth > DEC_MAX_NESTING) return rlhf_fail(err, RLHF_EINPUT, "%s: Sequence nested too deeply", what);
    decoder *d = calloc(1, sizeof *d);
    if (!d) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    *out = d;
    if (!strcmp(type, "ByteLevel")) d->type = DEC_BYTELEVEL;
    else if (!strcmp(type, "WordPiece")) {
        d->type = DEC_WORDPIECE;
        const char *p = tk_tj_str(j, "prefix");
        if (!p) p = "##";
        if (!(d->prefix = tok_strndup(p, strlen(p)))) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
        d->cleanup = tk_tj_bool(j, "cleanup", 1);
    } else if (!strcmp(type, "Metaspace")) {
        d->type = DEC_METASPACE;
        RLHF_TRY(tok_parse_replacement(j, &d->replacement, what, err));
        const char *s = tk_tj_str(j, "prepend_scheme");
        if (s) d->scheme = !strcmp(s, "never") ? PREPEND_NEVER : !strcmp(s, "first") ? PREPEND_FIRST : PREPEND_ALWAYS;
        else d->scheme = tk_tj_bool(j, "add_prefix_space", 1) ? PREPEND_ALWAYS : PREPEND_NEVER;
    } else if (!strcmp(type, "ByteFallback")) d->type = DEC_BYTEFALLBACK;
    else if (!strcmp(type, "Fuse")) d->type = DEC_FUSE;
    else if (!strcmp(type, "Strip")) {
        d->type = DEC_STRIP;
        const char *c = tk_tj_str(j, "content");
        size_t i = 0;
        if (!c || !*c || tk_utf8_valid_prefix(c, strlen(c)) != strlen(c)) return rlhf_fail(err, RLHF_EINPUT, "%s: Strip needs a one-character \"content\"", what);
        d->strip_content = tk_utf8_next(c, strlen(c), &i);
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "start"), *b = cJSON_GetObjectItemCaseSensitive(j, "stop");
        d->strip_start = cJSON_IsNumber(a) ? (int)a->valuedouble : 0;
        d->strip_stop = cJSON_IsNumber(b) ? (int)b->valuedouble : 0;
    } else if (!strcmp(type, "Replace")) {
        d->type = DEC_REPLACE;
        const char *c = tk_tj_str(j, "content");
        if (!c) return rlhf_fail(err, RLHF_EINPUT, "%s: Replace needs a string \"content\"", what);
        if (!(d->content = tok_strndup(c, strlen(c)))) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
        size_t len;
        RLHF_TRY(tok_parse_pattern(j, &d->pattern, &len, &d->re, what, err));
    } else if (!strcmp(type, "BPEDecoder")) {
        d->type = DEC_BPE;
        const char *s = tk_tj_str(j, "suffix");
        if (!s) s = "</w>";
        if (!(d->content = tok_strndup(s, strlen(s)))) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    } else if (!strcmp(type, "Sequence")) {
        d->type = DEC_SEQUENCE;
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "decoders");
        if (!cJSON_IsArray(arr)) return rlhf_fail(err, RLHF_EINPUT, "%s: Sequence needs an array \"decoders\"", what);
        d->children = calloc((size_t)cJSON_GetArraySize(arr) + 1, sizeof *d->children);
        if (!d->children) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
        const cJSON *c;
        cJSON_ArrayForEach(c, arr) {
            d->n_children++;   // counted before parsing so a failed child is freed too
            RLHF_TRY(parse_rec(c, &d->children[d->n_children - 1], what, depth + 1, err));
        }
    } else {
        return rlhf_fail(err, RLHF_EINPUT, "%s: unknown decoder type \"%s\" (supported: ByteLevel, WordPiece, Metaspace, "
                         "ByteFallback, Fuse, Strip, Replace, BPEDecoder, Sequence)", what, type);
    }
    return RLHF_OK;
}

rlhf_status tk_decoder_parse(const cJSON *j, decoder **out, const char *what, rlhf_err *err) {
    *out = NULL;
    rlhf_status st = parse_rec(j, out, what, 0, err);
    if (st != RLHF_OK) {
        tk_decoder_free(*out);
        *out = NULL;
    }
    return st;
}

void tk_decoder_free(decoder *d) {
    if (!d) return;
    for (int i = 0; i < d->n_children; i++) tk_decoder_free(d->children[i]);
    free(d->children);
    free(d->prefix);
    free(d->pattern);
    free(d->content);
    if (d->re) pcre2_code_free(d->re);
    free(d);
}

// Replaces token i of l with b's contents.
static int set_token(slist *l, int i, const tbuf *b) {
    char *c = tok_strndup(b->p ? b->p : "", b->n);
    if (!c) return -1;
    free(l->s[i]);
    l->s[i] = c;
    l->len[i] = b->n;
    return 0;
}

static int replace_str(const char *s, size_t n, const char *pat, const char *rep, tbuf *out) {
    size_t pl = strlen(pat), rl = strlen(rep);
    const char *e = s + n;
    out->n = 0;
    if (!pl) return tk_tbuf_put(out, s, n);
    for (;;) {
        const char *h = memmem(s, (size_t)(e - s), pat, pl);
        if (!h) break;
        if (tk_tbuf_put(out, s, (size_t)(h - s)) || tk_tbuf_put(out, rep, rl)) return -1;
        s = h + pl;
    }
    return tk_tbuf_put(out, s, (size_t)(e - s));
}

// HF decoders/wordpiece.rs cleanup(), applied to each token.
static int wordpiece_cleanup(tbuf *b, tbuf *t) {
    static const char *const RULES[][2] = {{" .", "."},     {" ?", "?"},   {" !", "!"},        {" ,", ","},
                                           {" ' ", "'"},    {" n't", "n't"}, {" 'm", "'m"},   {" do not", " don't"},
                                           {" 's", "'s"},   {" 've", "'ve"}, {" 're", "'re"}};
    for (size_t r = 0; r < sizeof RULES / sizeof RULES[0]; r++) {
        if (!b->n || !memmem(b->p, b->n, RULES[r][0], strlen(RULES[r][0]))) continue;
        if (replace_str(b->p, b->n, RULES[r][0], RULES[r][1], t)) return -1;
        tbuf x = *b;
        *b = *t;
        *t = x;
    }
    return 0;
}

static int apply_one(const decoder *d, slist *l) {
    tbuf b = {0}, t = {0};
    int rc = 0;
    switch (d->type) {
    case DEC_BYTELEVEL: {
        for (int i = 0; i < l->n && !rc; i++) {
            const char *s = l->s[i];
            size_t n = l->len[i], k = 0, mark = t.n;
            int raw = 0;
            while (k < n && !rc) {
                int byte = tk_bytelevel_byte(tk_utf8_next(s, n, &k));
                if (byte < 0) {
                    raw = 1;
                    break;
                }
                rc = tk_tbuf_putc(&t, (char)byte);
            }
            if (raw) {   // a char outside the byte map: HF keeps the token's own bytes
                t.n = mark;
                rc = tk_tbuf_put(&t, s, n);
            }
        }
        if (!rc) rc = tk_utf8_lossy(&b, (const unsigned char *)(t.p ? t.p : ""), t.n);
        if (!rc) {
            for (int i = 1; i < l->n; i++) free(l->s[i]);
            l->n = l->n ? 1 : 0;
            if (l->n) rc = set_token(l, 0, &b);
            else rc = tk_slist_push(l, b.p ? b.p : "", b.n);
        }
        break;
    }
    case DEC_WORDPIECE: {
        size_t pl = strlen(d->prefix);
        for (int i = 0; i < l->n && !rc; i++) {
            b.n = 0;
            const char *s = l->s[i];
            size_t n = l->len[i];
            if (i != 0) {
                if (n >= pl && !memcmp(s, d->prefix, pl)) rc = tk_tbuf_put(&b, s + pl, n - pl);
                else rc = tk_tbuf_putc(&b, ' ') || tk_tbuf_put(&b, s, n);
            } else {
                rc = tk_tbuf_put(&b, s, n);
            }
            if (!rc && d->cleanup) rc = wordpiece_cleanup(&b, &t);
            if (!rc) rc = set_token(l, i, &b);
        }
        break;
    }
    case DEC_METASPACE:
        for (int i = 0; i < l->n && !rc; i++) {
            b.n = 0;
            const char *s = l->s[i];
            size_t n = l->len[i], k = 0;
            rc = tk_tbuf_put(&b, "", 0);
            while (k < n && !rc) {
                size_t st = k;
                uint32_t c = tk_utf8_next(s, n, &k);
                if (c == d->replacement) {
                    if (!(i == 0 && d->scheme != PREPEND_NEVER)) rc = tk_tbuf_putc(&b, ' ');
                } else {
                    rc = tk_tbuf_put(&b, s + st, k - st);
                }
            }
            if (!rc) rc = set_token(l, i, &b);
        }
        break;
    case DEC_BYTEFALLBACK: {
        slist o = {0};
        tbuf bytes = {0};
        for (int i = 0; i <= l->n && !rc; i++) {
            const char *s = i < l->n ? l->s[i] : NULL;
            size_t sn = i < l->n ? l->len[i] : 0;
            int byte = -1;
            if (s && sn == 6 && !strncmp(s, "<0x", 3) && s[5] == '>') {
                char *end;
                char hex[3] = {s[3], s[4], 0};
                long v = strtol(hex, &end, 16);
                if (*end == 0 && hex[0] != '+' && hex[0] != '-' && hex[0] != ' ') byte = (int)v;
            }
            if (byte >= 0) {
                rc = tk_tbuf_putc(&bytes, (char)byte);
                continue;
            }
            if (bytes.n) {
                if (tk_utf8_valid_prefix(bytes.p, bytes.n) == bytes.n) rc = tk_slist_push(&o, bytes.p, bytes.n);
                else
                    for (size_t k = 0; k < bytes.n && !rc; k++) rc = tk_slist_push(&o, "\xEF\xBF\xBD", 3);
                bytes.n = 0;
            }
            if (s && !rc) rc = tk_slist_push(&o, s, sn);
        }
        tk_tbuf_free(&bytes);
        tk_slist_free(l);
        *l = o;
        break;
    }
    case DEC_FUSE:
        for (int i = 0; i < l->n && !rc; i++) rc = tk_tbuf_put(&b, l->s[i], l->len[i]);
        if (!rc) {
            for (int i = 0; i < l->n; i++) free(l->s[i]);
            l->n = 0;
            rc = tk_slist_push(l, b.p ? b.p : "", b.n);
        }
        break;
    case DEC_STRIP:
        for (int i = 0; i < l->n && !rc; i++) {
            const char *s = l->s[i];
            size_t n = l->len[i];
            size_t a = 0, e = n;
            size_t k = 0;
            for (int c = 0; c < d->strip_start && k < n; c++) {
                size_t st = k;
                if (tk_utf8_next(s, n, &k) != d->strip_content) {
                    k = st;
                    break;
                }
                a = k;
            }
            for (int c = 0; c < d->strip_stop && e > a; c++) {
                size_t st = e - 1;
                while (st > a && ((unsigned char)s[st] & 0xC0) == 0x80) st--;
                size_t j = st;
                if (tk_utf8_next(s, n, &j) != d->strip_content) break;
                e = st;
            }
            b.n = 0;
            rc = tk_tbuf_put(&b, s + a, e - a) || set_token(l, i, &b);
        }
        break;
    case DEC_REPLACE:
        for (int i = 0; i < l->n && !rc; i++) {
            if (d->pattern) {
                rc = replace_str(l->s[i], l->len[i], d->pattern, d->content, &b) || set_token(l, i, &b);
            } else {
                normalizer nm = {.type = NORM_REPLACE, .re = d->re, .content = d->content, .content_len = strlen(d->content)};
                pcre2_match_data *md = pcre2_match_data_create(32, NULL);
                if (!md) rc = -1;
                else {
                    rc = tk_normalizer_apply(&nm, l->s[i], l->len[i], &b, md) || set_token(l, i, &b);
                    pcre2_match_data_free(md);
                }
            }
        }
        break;
    case DEC_BPE:
        for (int i = 0; i < l->n && !rc; i++)
            rc = replace_str(l->s[i], l->len[i], d->content, i == l->n - 1 ? "" : " ", &b) || set_token(l, i, &b);
        break;
    case DEC_SEQUENCE:
        for (int i = 0; i < d->n_children && !rc; i++) rc = apply_one(d->children[i], l);
        break;
    }
    tk_tbuf_free(&b);
    tk_tbuf_free(&t);
    return rc;
}

int tk_decoder_apply(const decoder *d, slist *tokens) { return apply_one(d, tokens); }
