// Added tokens (AddedVocabulary in HF): tokens matched in the text before the model sees it, with
// leftmost-longest matching. Tokens with normalized=false are found in the raw text, the others in
// each normalized piece; lstrip/rstrip swallow adjacent whitespace, single_word rejects matches inside
// words. Candidates are indexed by first byte and tried longest first.
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

rlhf_status tk_added_vocab_parse(const cJSON *arr, added_vocab *av, const char *what, rlhf_err *err) {
    memset(av, 0, sizeof *av);
    if (!arr || cJSON_IsNull(arr)) return RLHF_OK;
    if (!cJSON_IsArray(arr)) return rlhf_fail(err, RLHF_EINPUT, "%s: \"added_tokens\" must be an array", what);
    int n = cJSON_GetArraySize(arr);
    av->tokens = calloc((size_t)n + 1, sizeof *av->tokens);
    if (!av->tokens) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    const cJSON *e;
    int i = 0;
    cJSON_ArrayForEach(e, arr) {
        const char *content = tk_tj_str(e, "content");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        if (!content || !cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble >= (1 << 24))
            return rlhf_fail(err, RLHF_EINPUT, "%s: added_tokens[%d] needs a string \"content\" and an id in [0, 2^24)", what, i);
        size_t len = strlen(content);
        if (tk_utf8_valid_prefix(content, len) != len)
            return rlhf_fail(err, RLHF_EINPUT, "%s: added_tokens[%d] content is not valid UTF-8", what, i);
        added_token *t = &av->tokens[av->n];
        if (!(t->content = tok_strndup(content, len))) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
        av->n++;
        t->id = (int32_t)id->valuedouble;
        t->special = tk_tj_bool(e, "special", 0);
        t->lstrip = tk_tj_bool(e, "lstrip", 0);
        t->rstrip = tk_tj_bool(e, "rstrip", 0);
        t->single_word = tk_tj_bool(e, "single_word", 0);
        t->normalized = tk_tj_bool(e, "normalized", !t->special);
        i++;
    }
    return RLHF_OK;
}

typedef struct {
    size_t len;
    int idx;
} len_idx;
static int by_len_desc(const void *a, const void *b) {
    const len_idx *x = a, *y = b;
    if (x->len != y->len) return x->len < y->len ? 1 : -1;
    return x->idx - y->idx;
}

int tk_added_vocab_finish(added_vocab *av, const normalizer *nm, const tok_model *m) {
    tbuf norm = {0};
    pcre2_match_data *md = pcre2_match_data_create(32, NULL);
    if (!md) return -1;
    int max_id = -1;
    int32_t next_id = (int32_t)m->tok2id.n;   // HF: model.get_vocab_size(), the number of vocabulary entries
    for (int i = 0; i < av->n; i++) {
        added_token *t = &av->tokens[i];
        int32_t id = -1;
        for (int k = 0; k < i && id < 0; k++)
            if (!strcmp(av->tokens[k].content, t->content)) id = av->tokens[k].id;
        if (id < 0) id = tk_strmap_get(&m->tok2id, t->content, strlen(t->content));
        if (id < 0) id = next_id++;
        t->id = id;
        if (t->id > max_id) max_id = t->id;
        const char *m = t->content;
        size_t ml = strlen(m);
        if (t->normalized && nm) {
            if (tk_normalizer_apply(nm, t->content, ml, &norm, md)) goto fail;
            m = norm.p ? norm.p : "";
            ml = norm.n;
        }
        if (!(t->match = tok_strndup(m, ml))) goto fail;
        t->match_len = ml;
    }
    // HF keeps one entry per id (the last one read wins in its id map)
    av->n_by_id = max_id + 1;
    av->by_id = malloc(((size_t)av->n_by_id + 1) * sizeof *av->by_id);
    if (!av->by_id) goto fail;
    for (int i = 0; i < av->n_by_id; i++) av->by_id[i] = -1;
    for (int i = 0; i < av->n; i++) av->by_id[av->tokens[i].id] = i;
    // bucket by first byte in order of decreasing length, so the first hit at a position is the longest
    len_idx *order = malloc(((size_t)av->n + 1) * sizeof *order);
    if (!order) goto fail;
    for (int i = 0; i < av->n; i++) order[i] = (len_idx){av->tokens[i].match_len, i};
    qsort(order, (size_t)av->n, sizeof *order, by_len_desc);
    for (int pass = 0; pass < 2; pass++)
        for (int oi = 0; oi < av->n; oi++) {
            int i = order[oi].idx;
            added_token *t = &av->tokens[i];
            if (t->normalized != pass || t->match_len == 0 || av->by_id[t->id] != i) continue;
            unsigned char c = (unsigned char)t->match[0];
            int *l = realloc(av->by_byte[pass][c], (size_t)(av->n_by_byte[pass][c] + 1) * sizeof *l);
            if (!l) {
                free(order);
                goto fail;
            }
            av->by_byte[pass][c] = l;
            l[av->n_by_byte[pass][c]++] = i;
        }
    free(order);
    tk_tbuf_free(&norm);
    pcre2_match_data_free(md);
    return 0;
fail:
    tk_tbuf_free(&norm);
    pcre2_match_data_free(md);
    return -1;
}

void tk_added_vocab_free(added_vocab *av) {
    for (int i = 0; i < av->n; i++) {
        free(av->tokens[i].content);
        free(av->tokens[i].match);
    }
    free(av->tokens);
    for (int p = 0; p < 2; p++)
        for (int c = 0; c < 256; c++) free(av->by_byte[p][c]);
    free(av->by_id);
    memset(av, 0, sizeof *av);
}

const added_token *tk_added_vocab_by_id(const added_vocab *av, int32_t id) {
    if (id < 0 || id >= av->n_by_id || av->by_id[id] < 0) return NULL;
    return &av->tokens[av->by_id[id]];
}

// The code point ending just before position end (s valid UTF-8).
static uint32_t cp_before(const char *s, size_t end, size_t *start) {
    size_t st = end - 1;
    while (st > 0 && ((unsigned char)s[st] & 0xC0) == 0x80) st--;
    size_t i = st;
    if (start) *start = st;
    return tk_utf8_next(s, end, &i);
}

static int push_seg(added_seg **segs, int *n, int *cap, size_t a, size_t b, int32_t id) {
    if (*n == *cap) {
        int c = *cap ? *cap * 2 : 8;
        added_seg *p = realloc(*segs, (size_t)c * sizeof *p);
        if (!p) return -1;
        *segs = p;
        *cap = c;
    }
    (*segs)[(*n)++] = (added_seg){a, b, id};
    return 0;
}

int tk_added_vocab_split(const added_vocab *av, int pass, const char *s, size_t n, added_seg **segs, int *n_segs,
                      int *cap_segs) {
    *n_segs = 0;
    size_t pos = 0, start_offset = 0;
    while (pos < n) {
        unsigned char c = (unsigned char)s[pos];
        int nc = av->n_by_byte[pass][c];
        const added_token *t = NULL;
        for (int k = 0; k < nc; k++) {
            const added_token *x = &av->tokens[av->by_byte[pass][c][k]];
            if (x->match_len <= n - pos && memcmp(s + pos, x->match, x->match_len) == 0) {
                t = x;
                break;
            }
        }
        if (!t) {
            pos++;
            continue;
        }
        size_t start = pos, stop = pos + t->match_len;
        pos = stop;
        if (t->single_word) {
            int start_space = start == 0 || !tk_uc_is_word(cp_before(s, start, NULL));
            size_t i = stop;
            int stop_space = stop == n || !tk_uc_is_word(tk_utf8_next(s, n, &i));
            if (!start_space || !stop_space) continue;
        }
        if (t->lstrip) {
            size_t ns = start, st;
            while (ns > 0 && tk_uc_is_whitespace(cp_before(s, ns, &st))) ns = st;
            start = ns > start_offset ? ns : start_offset;
        }
        if (t->rstrip) {
            size_t i = stop;
            while (i < n) {
                size_t j = i;
                if (!tk_uc_is_whitespace(tk_utf8_next(s, n, &j))) break;
                i = j;
            }
            stop = i;
            pos = stop;
        }
        if (start_offset < start && push_seg(segs, n_segs, cap_segs, start_offset, start, -1)) return -1;
        if (push_seg(segs, n_segs, cap_segs, start, stop, t->id)) return -1;
        start_offset = stop;
    }
    if (start_offset < n && push_seg(segs, n_segs, cap_segs, start_offset, n, -1)) return -1;
    if (n == 0 && push_seg(segs, n_segs, cap_segs, 0, 0, -1)) return -1;   // HF: an empty text is one empty piece
    return 0;
}
