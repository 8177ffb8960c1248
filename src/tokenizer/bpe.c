// Byte-pair encoding as HF's models/bpe: a word starts as one symbol per character (with
// continuing_subword_prefix / end_of_word_suffix, byte_fallback to <0xHH> tokens, unk fusing), then the
// lowest-ranked adjacent pair is merged until none applies. The merge queue is a binary heap ordered by
// (rank, position), which reproduces HF's leftmost-lowest-rank order in O(n log n) per word.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

static rlhf_status merge_parts(const cJSON *e, int rank, const char **a, size_t *al, const char **b, size_t *bl,
                               const char *what, rlhf_err *err) {
    if (cJSON_IsString(e)) {   // "a b": split at the first space
        const char *s = e->valuestring, *sp = strchr(s, ' ');
        if (!sp) return rlhf_fail(err, RLHF_EINPUT, "%s: merge %d (\"%.80s\") is not two tokens separated by a space", what, rank, s);
        *a = s;
        *al = (size_t)(sp - s);
        *b = sp + 1;
        *bl = strlen(sp + 1);
        return RLHF_OK;
    }
    if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 && cJSON_IsString(cJSON_GetArrayItem(e, 0)) &&
        cJSON_IsString(cJSON_GetArrayItem(e, 1))) {   // ["a", "b"] (newer tokenizers)
        *a = cJSON_GetArrayItem(e, 0)->valuestring;
        *b = cJSON_GetArrayItem(e, 1)->valuestring;
        *al = strlen(*a);
        *bl = strlen(*b);
        return RLHF_OK;
    }
    return rlhf_fail(err, RLHF_EINPUT, "%s: merge %d must be \"a b\" or [\"a\", \"b\"]", what, rank);
}

rlhf_status tk_bpe_parse(const cJSON *j, tok_model *m, const char *what, rlhf_err *err) {
    m->type = MODEL_BPE;
    RLHF_TRY(tk_model_vocab_from_object(cJSON_GetObjectItemCaseSensitive(j, "vocab"), m, what, err));
    RLHF_TRY(tk_model_unk(j, m));
    m->byte_fallback = tk_tj_bool(j, "byte_fallback", 0);
    m->ignore_merges = tk_tj_bool(j, "ignore_merges", 0);
    m->fuse_unk = tk_tj_bool(j, "fuse_unk", 0);
    const char *csp = tk_tj_str(j, "continuing_subword_prefix"), *eow = tk_tj_str(j, "end_of_word_suffix");
    // HF treats "" like null for both (an empty prefix changes nothing)
    if (csp && *csp && !(m->csp = tok_strndup(csp, strlen(csp)))) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    if (eow && *eow && !(m->eow = tok_strndup(eow, strlen(eow)))) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(j, "dropout");
    if (cJSON_IsNumber(dropout) && dropout->valuedouble != 0.0)
        fprintf(stderr, "tokenizer: %s: BPE dropout %g ignored (inference encodes deterministically)\n", what, dropout->valuedouble);
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        m->byte_ids[b] = tk_strmap_get(&m->tok2id, name, 6);
    }
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(j, "merges");
    if (merges && !cJSON_IsArray(merges)) return rlhf_fail(err, RLHF_EINPUT, "%s: BPE \"merges\" must be an array", what);
    if (tk_pairmap_init(&m->merges, merges ? (size_t)cJSON_GetArraySize(merges) : 0)) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    size_t csp_len = m->csp ? strlen(m->csp) : 0;
    tbuf joined = {0};
    int rank = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, merges) {
        const char *a = NULL, *b = NULL;
        size_t al = 0, bl = 0;
        rlhf_status st = merge_parts(e, rank, &a, &al, &b, &bl, what, err);
        if (st != RLHF_OK) {
            tk_tbuf_free(&joined);
            return st;
        }
        int32_t ia = tk_strmap_get(&m->tok2id, a, al), ib = tk_strmap_get(&m->tok2id, b, bl);
        if (ia < 0 || ib < 0) {
            tk_tbuf_free(&joined);
            return rlhf_fail(err, RLHF_EINPUT, "%s: merge %d uses token \"%.*s\" that is not in the vocab", what, rank,
                             ia < 0 ? (int)(al > 80 ? 80 : al) : (int)(bl > 80 ? 80 : bl), ia < 0 ? a : b);
        }
        // the merged token drops b's continuing_subword_prefix (HF: format!("{a}{}", &b[prefix_len..]))
        size_t skip = (csp_len && bl >= csp_len && memcmp(b, m->csp, csp_len) == 0) ? csp_len : 0;
        joined.n = 0;
        if (tk_tbuf_put(&joined, a, al) || tk_tbuf_put(&joined, b + skip, bl - skip)) {
            tk_tbuf_free(&joined);
            return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
        }
        int32_t id = tk_strmap_get(&m->tok2id, joined.p, joined.n);
        if (id < 0) {
            rlhf_fail(err, RLHF_EINPUT, "%s: merge %d result \"%.80s\" is not in the vocab", what, rank, joined.p);
            tk_tbuf_free(&joined);
            return RLHF_EINPUT;
        }
        if (tk_pairmap_put(&m->merges, ia, ib, rank, id)) {
            tk_tbuf_free(&joined);
            return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
        }
        rank++;
    }
    tk_tbuf_free(&joined);
    return RLHF_OK;
}

static int grow_symbols(tok_scratch *sc, int need) {
    if (need <= sc->sym_cap) return 0;
    int cap = sc->sym_cap ? sc->sym_cap : 64;
    while (cap < need) cap *= 2;
    int32_t *id = realloc(sc->sym_id, (size_t)cap * sizeof *id);
    if (id) sc->sym_id = id;
    int *p = realloc(sc->sym_prev, (size_t)cap * sizeof *p);
    if (p) sc->sym_prev = p;
    int *nx = realloc(sc->sym_next, (size_t)cap * sizeof *nx);
    if (nx) sc->sym_next = nx;
    int *ln = realloc(sc->sym_len, (size_t)cap * sizeof *ln);
    if (ln) sc->sym_len = ln;
    uint64_t *h = realloc(sc->heap, (size_t)cap * 4 * sizeof *h);
    if (h) sc->heap = h;
    int32_t *hn = realloc(sc->heap_new, (size_t)cap * 4 * sizeof *hn);
    if (hn) sc->heap_new = hn;
    if (!id || !p || !nx || !ln || !h || !hn) return -1;
    sc->sym_cap = cap;
    sc->heap_cap = cap * 4;   // pushes: n-1 initial + at most 2 per merge
    return 0;
}

// Binary min-heap of (rank << 32 | position) with the merged id alongside.
static void heap_push(tok_scratch *sc, int *hn, uint64_t key, int32_t new_id) {
    int i = (*hn)++;
    while (i > 0) {
        int p = (i - 1) / 2;
        if (sc->heap[p] <= key) break;
        sc->heap[i] = sc->heap[p];
        sc->heap_new[i] = sc->heap_new[p];
        i = p;
    }
    sc->heap[i] = key;
    sc->heap_new[i] = new_id;
}

static void heap_pop(tok_scratch *sc, int *hn) {
    int n = --(*hn);
    uint64_t key = sc->heap[n];
    int32_t nid = sc->heap_new[n];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && sc->heap[c + 1] < sc->heap[c]) c++;
        if (key <= sc->heap[c]) break;
        sc->heap[i] = sc->heap[c];
        sc->heap_new[i] = sc->heap_new[c];
        i = c;
    }
    sc->heap[i] = key;
    sc->heap_new[i] = nid;
}

static void push_pair(const tok_model *m, tok_scratch *sc, int *hn, int pos) {
    int nx = sc->sym_next[pos];
    if (nx < 0) return;
    int32_t rank, id;
    if (tk_pairmap_get(&m->merges, sc->sym_id[pos], sc->sym_id[nx], &rank, &id) && *hn < sc->heap_cap)
        heap_push(sc, hn, ((uint64_t)(uint32_t)rank << 32) | (uint32_t)pos, id);
}

int tk_bpe_tokenize(const tok_model *m, const char *s, size_t n, ivec *out, tok_scratch *sc) {
    if (m->ignore_merges) {
        int32_t id = tk_strmap_get(&m->tok2id, s, n);
        if (id >= 0) return tk_ivec_push(out, id);
    }
    // 1. initial symbols
    if (grow_symbols(sc, (int)n + 2)) return -1;
    int ns = 0;
    int32_t unk = -1;   // pending unknown symbol (fused when fuse_unk)
    size_t i = 0;
    while (i < n) {
        size_t st = i;
        i += (size_t)tk_utf8_len((unsigned char)s[i]);
        if (i > n) i = n;
        int first = st == 0, last = i == n;
        const char *tok = s + st;
        size_t tl = i - st;
        if ((!first && m->csp) || (last && m->eow)) {
            sc->word.n = 0;
            if ((!first && m->csp && tk_tbuf_put(&sc->word, m->csp, strlen(m->csp))) || tk_tbuf_put(&sc->word, s + st, i - st) ||
                (last && m->eow && tk_tbuf_put(&sc->word, m->eow, strlen(m->eow))))
                return -1;
            tok = sc->word.p;
            tl = sc->word.n;
        }
        int32_t id = tk_strmap_get(&m->tok2id, tok, tl);
        if (id >= 0) {
            if (unk >= 0) {
                sc->sym_id[ns++] = unk;
                unk = -1;
            }
            sc->sym_id[ns++] = id;
            continue;
        }
        if (m->byte_fallback) {
            int ok = 1;
            for (size_t k = 0; k < tl; k++) ok &= m->byte_ids[(unsigned char)tok[k]] >= 0;
            if (ok) {
                if (grow_symbols(sc, ns + (int)tl + (int)(n - i) + 2)) return -1;
                for (size_t k = 0; k < tl; k++) sc->sym_id[ns++] = m->byte_ids[(unsigned char)tok[k]];
                continue;
            }
        }
        if (m->unk_id < 0) continue;   // HF drops characters it cannot represent when there is no unk token
        if (unk >= 0 && !m->fuse_unk) sc->sym_id[ns++] = unk;
        unk = m->unk_id;
    }
    if (unk >= 0) sc->sym_id[ns++] = unk;
    if (ns == 0) return 0;
    // 2. merges
    for (int k = 0; k < ns; k++) {
        sc->sym_prev[k] = k - 1;
        sc->sym_next[k] = k + 1 < ns ? k + 1 : -1;
        sc->sym_len[k] = 1;
    }
    int hn = 0;
    for (int k = 0; k + 1 < ns; k++) push_pair(m, sc, &hn, k);
    while (hn > 0) {
        uint64_t top = sc->heap[0];
        int32_t new_id = sc->heap_new[0];
        heap_pop(sc, &hn);
        int pos = (int)(uint32_t)top;
        if (sc->sym_len[pos] == 0) continue;   // merged away
        int nx = sc->sym_next[pos];
        if (nx < 0) continue;
        int32_t rank, id;
        if (!tk_pairmap_get(&m->merges, sc->sym_id[pos], sc->sym_id[nx], &rank, &id) || id != new_id) continue;   // stale
        sc->sym_id[pos] = new_id;
        sc->sym_len[pos] += sc->sym_len[nx];
        sc->sym_len[nx] = 0;
        sc->sym_next[pos] = sc->sym_next[nx];
        if (sc->sym_next[nx] >= 0) sc->sym_prev[sc->sym_next[nx]] = pos;
        if (sc->sym_prev[pos] >= 0) push_pair(m, sc, &hn, sc->sym_prev[pos]);
        push_pair(m, sc, &hn, pos);
    }
    for (int k = 0; k >= 0; k = sc->sym_next[k])
        if (tk_ivec_push(out, sc->sym_id[k])) return -1;
    return 0;
}
