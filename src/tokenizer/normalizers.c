// Normalizers of HF tokenizers, as plain string rewrites (ids need no offset tracking): BertNormalizer,
// NFC/NFD/NFKC/NFKD (utf8proc), Lowercase, Strip, StripAccents, Replace, Prepend, Sequence, and
// Precompiled (SentencePiece's charsmap: a double-array trie over UTF-8 plus replacement strings, applied
// per grapheme cluster as HF's spm_precompiled crate does, quirks included).
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "tokenizer/tok_internal.h"

#define NORM_MAX_NESTING 16   // Sequence depth limit (a malformed file must not exhaust the stack)

static rlhf_status parse_rec(const cJSON *j, normalizer **out, const char *what, int depth, rlhf_err *err);

// Replace's {"String": s} / {"Regex": r} pattern, shared with the decoder of the same name.
rlhf_status tok_parse_pattern(const cJSON *j, char **literal, size_t *lit_len, pcre2_code **re, const char *what,
                              rlhf_err *err) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "pattern");
    const char *s = tk_tj_str(p, "String"), *r = tk_tj_str(p, "Regex");
    if (s) {
        *literal = tok_strndup(s, strlen(s));
        *lit_len = strlen(s);
        return *literal ? RLHF_OK : rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    }
    if (r) return tok_regex_compile(r, strlen(r), re, what, err);
    return rlhf_fail(err, RLHF_EINPUT, "%s: \"pattern\" must be {\"String\": ...} or {\"Regex\": ...}", what);
}

static int b64_value(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

// precompiled_charsmap: base64 of [u32 LE trie byte size][trie units][NUL-separated UTF-8 replacements].
static rlhf_status parse_precompiled(normalizer *nm, const char *b64, const char *what, rlhf_err *err) {
    if (!b64) return rlhf_fail(err, RLHF_EINPUT, "%s: Precompiled needs a string \"precompiled_charsmap\"", what);
    size_t n = strlen(b64);
    unsigned char *bin = malloc(n / 4 * 3 + 4);
    if (!bin) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    size_t len = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        if (b64[i] == '=') break;
        int v = b64_value(b64[i]);
        if (v < 0) {
            free(bin);
            return rlhf_fail(err, RLHF_EINPUT, "%s: precompiled_charsmap is not base64 (byte %zu)", what, i);
        }
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            bin[len++] = (unsigned char)(acc >> bits);
        }
    }
    size_t trie_bytes = len >= 4 ? (size_t)bin[0] | (size_t)bin[1] << 8 | (size_t)bin[2] << 16 | (size_t)bin[3] << 24 : 0;
    if (len < 4 || trie_bytes / 4 * 4 > len - 4 || trie_bytes < 4) {
        free(bin);
        return rlhf_fail(err, RLHF_EINPUT, "%s: cannot parse precompiled_charsmap (trie size out of range)", what);
    }
    nm->trie_n = trie_bytes / 4;
    nm->trie = malloc(nm->trie_n * sizeof *nm->trie);
    size_t blob = 4 + nm->trie_n * 4;
    nm->norm_len = len - blob;
    nm->norm_blob = malloc(nm->norm_len + 1);
    if (!nm->trie || !nm->norm_blob) {
        free(bin);
        return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    }
    for (size_t i = 0; i < nm->trie_n; i++) {
        const unsigned char *p = bin + 4 + 4 * i;
        nm->trie[i] = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    }
    memcpy(nm->norm_blob, bin + blob, nm->norm_len);
    nm->norm_blob[nm->norm_len] = 0;
    free(bin);
    if (tk_utf8_valid_prefix(nm->norm_blob, nm->norm_len) != nm->norm_len)
        return rlhf_fail(err, RLHF_EINPUT, "%s: precompiled_charsmap replacements are not valid UTF-8", what);
    return RLHF_OK;
}

// spm_precompiled's transform: the FIRST (shortest) prefix of key found in the trie, not the longest, and
// not necessarily all of key. Returns the replacement (length in *rl) or NULL.
static const char *precompiled_transform(const normalizer *nm, const char *key, size_t n, size_t *rl) {
#define PC_OFFSET(u) ((size_t)((u) >> 10) << (((u) & (1u << 9)) >> 6))
#define PC_LABEL(u) ((u) & ((1u << 31) | 0xFFu))
    const uint32_t *a = nm->trie;
    size_t pos = PC_OFFSET(a[0]);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)key[i];
        if (c == 0) break;
        pos ^= c;
        if (pos >= nm->trie_n) return NULL;
        uint32_t u = a[pos];
        if (PC_LABEL(u) != c) return NULL;
        pos ^= PC_OFFSET(u);
        if ((u >> 8) & 1) {
            if (pos >= nm->trie_n) return NULL;
            size_t idx = a[pos] & ((1u << 31) - 1);
            if (idx > nm->norm_len) return NULL;
            const char *r = nm->norm_blob + idx;
            *rl = strlen(r);
            return r;
        }
    }
    return NULL;
#undef PC_OFFSET
#undef PC_LABEL
}

#define PRECOMPILED_MAX_GRAPHEME 6   // spm_precompiled only looks whole graphemes shorter than this up

static int precompiled_apply(const normalizer *nm, const char *s, size_t n, tbuf *out) {
    out->n = 0;
    size_t g = 0;   // start of the current grapheme cluster
    utf8proc_int32_t state = 0;
    while (g < n) {
        size_t i = g;
        uint32_t prev = tk_utf8_next(s, n, &i);
        size_t end = i;
        while (end < n) {
            size_t j = end;
            uint32_t c = tk_utf8_next(s, n, &j);
            if (utf8proc_grapheme_break_stateful((utf8proc_int32_t)prev, (utf8proc_int32_t)c, &state)) break;
            prev = c;
            end = j;
        }
        size_t rl;
        const char *r;
        if (end - g < PRECOMPILED_MAX_GRAPHEME && (r = precompiled_transform(nm, s + g, end - g, &rl))) {
            if (tk_tbuf_put(out, r, rl)) return -1;
        } else {
            for (size_t k = g; k < end;) {
                size_t st = k;
                k += (size_t)tk_utf8_len((unsigned char)s[k]);
                if (k > end) k = end;
                r = precompiled_transform(nm, s + st, k - st, &rl);
                if (r ? tk_tbuf_put(out, r, rl) : tk_tbuf_put(out, s + st, k - st)) return -1;
            }
        }
        g = end;
    }
    return tk_tbuf_put(out, "", 0);
}

static rlhf_status parse_rec(const cJSON *j, normalizer **out, const char *what, int depth, rlhf_err *err) {
    const char *type;
    RLHF_TRY(tk_tj_type(j, &type, what, err));
    if (depth > NORM_MAX_NESTING) return rlhf_fail(err, RLHF_EINPUT, "%s: Sequence nested too deeply", what);
    normalizer *nm = calloc(1, sizeof *nm);
    if (!nm) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    *out = nm;
    if (!strcmp(type, "BertNormalizer")) {
        nm->type = NORM_BERT;
        nm->clean_text = tk_tj_bool(j, "clean_text", 1);
        nm->chinese = tk_tj_bool(j, "handle_chinese_chars", 1);
        nm->lowercase = tk_tj_bool(j, "lowercase", 1);
        nm->strip_accents = tk_tj_bool(j, "strip_accents", nm->lowercase);   // null follows lowercase, as HF
    } else if (!strcmp(type, "NFC")) nm->type = NORM_NFC;
    else if (!strcmp(type, "NFD")) nm->type = NORM_NFD;
    else if (!strcmp(type, "NFKC")) nm->type = NORM_NFKC;
    else if (!strcmp(type, "NFKD")) nm->type = NORM_NFKD;
    else if (!strcmp(type, "Lowercase")) nm->type = NORM_LOWERCASE;
    else if (!strcmp(type, "StripAccents")) nm->type = NORM_STRIP_ACCENTS;
    else if (!strcmp(type, "Strip")) {
        nm->type = NORM_STRIP;
        nm->left = tk_tj_bool(j, "strip_left", 1);
        nm->right = tk_tj_bool(j, "strip_right", 1);
    } else if (!strcmp(type, "Replace")) {
        nm->type = NORM_REPLACE;
        const char *c = tk_tj_str(j, "content");
        if (!c) return rlhf_fail(err, RLHF_EINPUT, "%s: Replace needs a string \"content\"", what);
        nm->content = tok_strndup(c, strlen(c));
        nm->content_len = strlen(c);
        if (!nm->content) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
        RLHF_TRY(tok_parse_pattern(j, &nm->pattern, &nm->pattern_len, &nm->re, what, err));
    } else if (!strcmp(type, "Prepend")) {
        nm->type = NORM_PREPEND;
        const char *c = tk_tj_str(j, "prepend");
        if (!c) return rlhf_fail(err, RLHF_EINPUT, "%s: Prepend needs a string \"prepend\"", what);
        nm->content = tok_strndup(c, strlen(c));
        nm->content_len = strlen(c);
        if (!nm->content) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    } else if (!strcmp(type, "Precompiled")) {
        nm->type = NORM_PRECOMPILED;
        RLHF_TRY(parse_precompiled(nm, tk_tj_str(j, "precompiled_charsmap"), what, err));
    } else if (!strcmp(type, "Sequence")) {
        nm->type = NORM_SEQUENCE;
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "normalizers");
        if (!cJSON_IsArray(arr)) return rlhf_fail(err, RLHF_EINPUT, "%s: Sequence needs an array \"normalizers\"", what);
        int n = cJSON_GetArraySize(arr);
        nm->children = calloc((size_t)n + 1, sizeof *nm->children);
        if (!nm->children) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
        const cJSON *c;
        cJSON_ArrayForEach(c, arr) {
            nm->n_children++;   // counted before parsing so a failed child is freed too
            RLHF_TRY(parse_rec(c, &nm->children[nm->n_children - 1], what, depth + 1, err));
        }
    } else {
        return rlhf_fail(err, RLHF_EINPUT, "%s: unknown normalizer type \"%s\" (supported: BertNormalizer, NFC, NFD, NFKC, "
                         "NFKD, Lowercase, Strip, StripAccents, Replace, Prepend, Precompiled, Sequence)", what, type);
    }
    return RLHF_OK;
}

rlhf_status tk_normalizer_parse(const cJSON *j, normalizer **out, const char *what, rlhf_err *err) {
    *out = NULL;
    rlhf_status st = parse_rec(j, out, what, 0, err);
    if (st != RLHF_OK) {
        tk_normalizer_free(*out);
        *out = NULL;
    }
    return st;
}

void tk_normalizer_free(normalizer *nm) {
    if (!nm) return;
    for (int i = 0; i < nm->n_children; i++) tk_normalizer_free(nm->children[i]);
    free(nm->children);
    free(nm->pattern);
    free(nm->content);
    free(nm->trie);
    free(nm->norm_blob);
    if (nm->re) pcre2_code_free(nm->re);
    free(nm);
}

static int is_chinese(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

// Rust char::to_lowercase, one char at a time as NormalizedString::lowercase does (no final-sigma rule).
static int put_lower(tbuf *out, uint32_t c) {
    if (c < 0x80) return tk_tbuf_putc(out, (char)((c >= 'A' && c <= 'Z') ? c + 32 : c));
    if (c == 0x130) return tk_tbuf_put(out, "i\xCC\x87", 3);   // the only unconditional multi-char lowercase
    return tk_tbuf_put_cp(out, (uint32_t)utf8proc_tolower((utf8proc_int32_t)c));
}

static int unicode_form(const char *s, size_t n, tbuf *out, int options) {
    out->n = 0;
    if (n == 0) return tk_tbuf_put(out, "", 0);
    utf8proc_uint8_t *dst = NULL;
    utf8proc_ssize_t k = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &dst,
                                      (utf8proc_option_t)(UTF8PROC_STABLE | options));
    if (k < 0) return -1;
    int rc = tk_tbuf_put(out, (const char *)dst, (size_t)k);
    free(dst);
    return rc;
}

static int is_ascii(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80) return 0;
    return 1;
}

static int bert_normalize(const normalizer *nm, const char *s, size_t n, tbuf *out) {
    out->n = 0;
    if (tk_tbuf_reserve(out, n)) return -1;
    if (is_ascii(s, n)) {   // fast path: no Chinese characters, NFD is the identity
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)s[i];
            if (nm->clean_text) {
                if (c == '\t' || c == '\n' || c == '\r') c = ' ';
                else if (c < 0x20 || c == 0x7F) continue;
            }
            if (nm->lowercase && c >= 'A' && c <= 'Z') c += 32;
            out->p[out->n++] = (char)c;
        }
        out->p[out->n] = 0;
        return 0;
    }
    tbuf a = {0}, b = {0};
    int rc = 0;
    size_t i = 0;
    while (i < n && !rc) {   // clean text + Chinese characters
        uint32_t c = tk_utf8_next(s, n, &i);
        if (nm->clean_text) {
            if (c == 0 || c == 0xFFFD) continue;
            if (c == '\t' || c == '\n' || c == '\r') c = ' ';
            else {
                utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
                if (k == UTF8PROC_CATEGORY_CC || k == UTF8PROC_CATEGORY_CF || k == UTF8PROC_CATEGORY_CS ||
                    k == UTF8PROC_CATEGORY_CO || k == UTF8PROC_CATEGORY_CN)
                    continue;   // Rust is_control: any C* category, even White_Space ones like U+0085
                if (tk_uc_is_whitespace(c)) c = ' ';
            }
        }
        if (nm->chinese && is_chinese(c)) {
            rc = tk_tbuf_putc(&a, ' ') || tk_tbuf_put_cp(&a, c) || tk_tbuf_putc(&a, ' ');
        } else {
            rc = tk_tbuf_put_cp(&a, c);
        }
    }
    if (!rc && nm->strip_accents) {
        rc = unicode_form(a.p ? a.p : "", a.n, &b, UTF8PROC_DECOMPOSE);
        a.n = 0;
        for (size_t j = 0; j < b.n && !rc;) {
            size_t st = j;
            uint32_t c = tk_utf8_next(b.p, b.n, &j);
            if (c >= 0x80 && utf8proc_category((utf8proc_int32_t)c) == UTF8PROC_CATEGORY_MN) continue;
            rc = tk_tbuf_put(&a, b.p + st, j - st);
        }
    }
    if (!rc) {
        for (size_t j = 0; j < a.n && !rc;) {
            size_t st = j;
            uint32_t c = tk_utf8_next(a.p, a.n, &j);
            rc = nm->lowercase ? put_lower(out, c) : tk_tbuf_put(out, a.p + st, j - st);
        }
        if (!rc) rc = tk_tbuf_put(out, "", 0);
    }
    tk_tbuf_free(&a);
    tk_tbuf_free(&b);
    return rc;
}

static int replace_all(const normalizer *nm, const char *s, size_t n, tbuf *out, pcre2_match_data *md) {
    out->n = 0;
    size_t pos = 0;
    if (nm->pattern) {
        if (nm->pattern_len == 0) return tk_tbuf_put(out, s, n);
        for (;;) {
            const char *hit = nm->pattern_len <= n - pos ? memmem(s + pos, n - pos, nm->pattern, nm->pattern_len) : NULL;
            if (!hit) break;
            size_t h = (size_t)(hit - s);
            if (tk_tbuf_put(out, s + pos, h - pos) || tk_tbuf_put(out, nm->content, nm->content_len)) return -1;
            pos = h + nm->pattern_len;
        }
        return tk_tbuf_put(out, s + pos, n - pos);
    }
    size_t search = 0, ms, me;
    for (;;) {
        int r = tok_regex_next(nm->re, md, s, n, search, &ms, &me);
        if (r < 0) return -1;
        if (r == 0) break;
        if (tk_tbuf_put(out, s + pos, ms - pos) || tk_tbuf_put(out, nm->content, nm->content_len)) return -1;
        pos = me;
        search = me;
        if (me == ms) {   // empty match: step over one character
            if (me >= n) break;
            search = me + (size_t)tk_utf8_len((unsigned char)s[me]);
        }
    }
    return tk_tbuf_put(out, s + pos, n - pos);
}

static int apply_rec(const normalizer *nm, const char *s, size_t n, tbuf *out, pcre2_match_data *md) {
    out->n = 0;
    switch (nm->type) {
    case NORM_BERT:
        return bert_normalize(nm, s, n, out);
    case NORM_NFC:
        return unicode_form(s, n, out, UTF8PROC_COMPOSE);
    case NORM_NFD:
        return unicode_form(s, n, out, UTF8PROC_DECOMPOSE);
    case NORM_NFKC:
        return unicode_form(s, n, out, UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
    case NORM_NFKD:
        return unicode_form(s, n, out, UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT);
    case NORM_LOWERCASE:
        for (size_t i = 0; i < n;)
            if (put_lower(out, tk_utf8_next(s, n, &i))) return -1;
        return tk_tbuf_put(out, "", 0);
    case NORM_STRIP_ACCENTS:
        for (size_t i = 0; i < n;) {
            size_t st = i;
            uint32_t c = tk_utf8_next(s, n, &i);
            utf8proc_category_t k = c < 0x80 ? UTF8PROC_CATEGORY_CN : utf8proc_category((utf8proc_int32_t)c);
            if (k == UTF8PROC_CATEGORY_MN || k == UTF8PROC_CATEGORY_MC || k == UTF8PROC_CATEGORY_ME) continue;
            if (tk_tbuf_put(out, s + st, i - st)) return -1;
        }
        return tk_tbuf_put(out, "", 0);
    case NORM_STRIP: {
        size_t a = 0, b = n;
        if (nm->left)
            while (a < b) {
                size_t i = a;
                if (!tk_uc_is_whitespace(tk_utf8_next(s, n, &i))) break;
                a = i;
            }
        if (nm->right)
            while (b > a) {
                size_t st = b - 1;
                while (st > a && ((unsigned char)s[st] & 0xC0) == 0x80) st--;
                size_t i = st;
                if (!tk_uc_is_whitespace(tk_utf8_next(s, n, &i))) break;
                b = st;
            }
        return tk_tbuf_put(out, s + a, b - a);
    }
    case NORM_REPLACE:
        return replace_all(nm, s, n, out, md);
    case NORM_PRECOMPILED:
        return precompiled_apply(nm, s, n, out);
    case NORM_PREPEND:
        if (n && tk_tbuf_put(out, nm->content, nm->content_len)) return -1;
        return tk_tbuf_put(out, s, n);
    case NORM_SEQUENCE: {
        tbuf cur = {0};
        if (tk_tbuf_put(&cur, s, n)) return -1;
        for (int i = 0; i < nm->n_children; i++) {
            if (apply_rec(nm->children[i], cur.p, cur.n, out, md)) {
                tk_tbuf_free(&cur);
                return -1;
            }
            tbuf t = cur;
            cur = *out;
            *out = t;
        }
        out->n = 0;
        int rc = tk_tbuf_put(out, cur.p, cur.n);
        tk_tbuf_free(&cur);
        return rc;
    }
    }
    return -1;
}

int tk_normalizer_apply(const normalizer *nm, const char *s, size_t n, tbuf *out, pcre2_match_data *md) {
    return apply_rec(nm, s, n, out, md);
}
