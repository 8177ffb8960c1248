// Unigram (SentencePiece) as HF's models/unigram: Viterbi over all vocabulary pieces by log-probability
// score; characters no piece covers cost min_score - 10 as the unknown token, consecutive unknowns are
// fused, and with byte_fallback an unknown stretch becomes its <0xHH> byte tokens.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

#define UNIGRAM_UNK_PENALTY 10.0   // HF's K_UNK_PENALTY

rlhf_status tk_unigram_parse(const cJSON *j, tok_model *m, const char *what, rlhf_err *err) {
    m->type = MODEL_UNIGRAM;
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(j, "vocab");
    if (!cJSON_IsArray(vocab)) return rlhf_fail(err, RLHF_EINPUT, "%s: Unigram \"vocab\" must be an array of [piece, score]", what);
    int n = cJSON_GetArraySize(vocab);
    if (tk_strmap_init(&m->tok2id, (size_t)n)) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    m->vocab = calloc((size_t)n + 1, sizeof *m->vocab);
    m->scores = calloc((size_t)n + 1, sizeof *m->scores);
    if (!m->vocab || !m->scores) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    m->min_score = INFINITY;
    int id = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) {
        const cJSON *p = cJSON_GetArrayItem(e, 0), *sc = cJSON_GetArrayItem(e, 1);
        if (!cJSON_IsArray(e) || !cJSON_IsString(p) || !cJSON_IsNumber(sc))
            return rlhf_fail(err, RLHF_EINPUT, "%s: Unigram vocab entry %d must be [string, number]", what, id);
        size_t len = strlen(p->valuestring);
        if (!(m->vocab[id] = tok_strndup(p->valuestring, len))) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
        m->vocab_n = id + 1;
        m->scores[id] = sc->valuedouble;
        if (sc->valuedouble < m->min_score) m->min_score = sc->valuedouble;
        if (tk_strmap_get(&m->tok2id, p->valuestring, len) < 0 && tk_strmap_put(&m->tok2id, m->vocab[id], len, id))
            return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
        int chars = 0;
        for (size_t i = 0; i < len; i++) chars += ((unsigned char)p->valuestring[i] & 0xC0) != 0x80;
        if (chars > m->max_token_chars) m->max_token_chars = chars;
        id++;
    }
    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(j, "unk_id");
    m->unk_id = cJSON_IsNumber(unk) ? (int)unk->valuedouble : -1;
    if (m->unk_id >= n) return rlhf_fail(err, RLHF_EINPUT, "%s: unk_id %d out of range", what, m->unk_id);
    m->byte_fallback = tk_tj_bool(j, "byte_fallback", 0);
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        m->byte_ids[b] = tk_strmap_get(&m->tok2id, name, 6);
    }
    return RLHF_OK;
}

static int push_unknown(const tok_model *m, const char *s, size_t n, ivec *out) {
    int32_t id = tk_strmap_get(&m->tok2id, s, n);
    if (id >= 0) return tk_ivec_push(out, id);
    if (m->byte_fallback) {
        int ok = 1;
        for (size_t k = 0; k < n; k++) ok &= m->byte_ids[(unsigned char)s[k]] >= 0;
        if (ok) {
            for (size_t k = 0; k < n; k++)
                if (tk_ivec_push(out, m->byte_ids[(unsigned char)s[k]])) return -1;
            return 0;
        }
    }
    if (m->unk_id < 0) return -2;
    return tk_ivec_push(out, m->unk_id);
}

int tk_unigram_tokenize(const tok_model *m, const char *s, size_t n, ivec *out, tok_scratch *sc) {
    if ((size_t)sc->vit_cap < n + 1) {
        int cap = (int)n + 1;
        double *b = realloc(sc->best, (size_t)cap * sizeof *b);
        if (b) sc->best = b;
        int *bl = realloc(sc->best_len, (size_t)cap * sizeof *bl);
        if (bl) sc->best_len = bl;
        int *bi = realloc(sc->best_id, (size_t)cap * sizeof *bi);
        if (bi) sc->best_id = bi;
        if (!b || !bl || !bi) return -1;
        sc->vit_cap = cap;
    }
    double unk_score = m->min_score - UNIGRAM_UNK_PENALTY;
    for (size_t i = 0; i <= n; i++) sc->best_len[i] = 0;   // 0: not reached
    sc->best[0] = 0;
    sc->best_len[0] = -1;
    for (size_t st = 0; st < n;) {
        size_t ch = (size_t)tk_utf8_len((unsigned char)s[st]);
        if (st + ch > n) ch = n - st;
        if (sc->best_len[st] != 0) {
            int single = 0;
            size_t end = st;
            for (int k = 0; k < m->max_token_chars && end < n; k++) {
                end += (size_t)tk_utf8_len((unsigned char)s[end]);
                if (end > n) end = n;
                int32_t id = tk_strmap_get(&m->tok2id, s + st, end - st);
                if (id < 0) continue;
                double score = sc->best[st] + m->scores[id];
                if (sc->best_len[end] == 0 || score > sc->best[end]) {
                    sc->best[end] = score;
                    sc->best_len[end] = (int)(end - st);
                    sc->best_id[end] = id;
                }
                if (end - st == ch) single = 1;
            }
            if (!single) {
                size_t end1 = st + ch;
                double score = sc->best[st] + unk_score;
                if (sc->best_len[end1] == 0 || score > sc->best[end1]) {
                    sc->best[end1] = score;
                    sc->best_len[end1] = (int)ch;
                    sc->best_id[end1] = -1;   // unknown
                }
            }
        }
        st += ch;
    }
    // backtrack into piece boundaries (reversed), fusing consecutive unknowns
    int base = out->n;
    size_t *cuts = malloc((n + 1) * sizeof *cuts);
    int *ids = malloc((n + 1) * sizeof *ids);
    if (!cuts || !ids) {
        free(cuts);
        free(ids);
        return -1;
    }
    int k = 0;
    size_t pos = n;
    while (pos > 0) {
        size_t len = (size_t)sc->best_len[pos];
        if (sc->best_len[pos] <= 0) break;   // unreachable (cannot happen: every char has an unk path)
        int id = sc->best_id[pos];
        if (id < 0 && k > 0 && ids[k - 1] < 0) {
            cuts[k - 1] = pos - len;   // fuse with the following unknown
        } else {
            cuts[k] = pos - len;
            ids[k] = id;
            k++;
        }
        pos -= len;
    }
    int rc = 0;
    size_t end = n;
    // pieces were collected right to left; emit left to right
    size_t *ends = malloc(((size_t)k + 1) * sizeof *ends);
    if (!ends) rc = -1;
    for (int i = 0; i < k && !rc; i++) {
        ends[i] = end;
        end = cuts[i];
    }
    for (int i = k - 1; i >= 0 && !rc; i--) {
        if (ids[i] >= 0) rc = tk_ivec_push(out, ids[i]);
        else rc = push_unknown(m, s + cuts[i], ends[i] - cuts[i], out);
    }
    free(ends);
    free(cuts);
    free(ids);
    if (rc) out->n = base;
    return rc;
}
