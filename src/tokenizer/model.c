// The model section of tokenizer.json: vocabulary loading shared by all models, type dispatch (with
// the type inferred when absent, as bert-base-uncased's file needs), and WordLevel.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

#define TOK_MAX_VOCAB (1 << 24)   // ids beyond this are treated as a malformed file, not allocated

static rlhf_status add_token(tok_model *m, const char *tok, size_t len, int id, const char *what, rlhf_err *err) {
    if (id < 0 || id >= TOK_MAX_VOCAB) return rlhf_fail(err, RLHF_EINPUT, "%s: token id %d out of range [0, %d)", what, id, TOK_MAX_VOCAB);
    if (id >= m->vocab_n) {
        int n = m->vocab_n ? m->vocab_n : 1024;
        while (n <= id) n *= 2;
        char **v = realloc(m->vocab, (size_t)n * sizeof *v);
        if (!v) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
        memset(v + m->vocab_n, 0, (size_t)(n - m->vocab_n) * sizeof *v);
        m->vocab = v;
        m->vocab_n = n;
    }
    char *c = tok_strndup(tok, len);
    if (!c) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    if (m->vocab[id]) {
        char **e = realloc(m->extra, (size_t)(m->n_extra + 1) * sizeof *e);
        if (!e) {
            free(c);
            return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
        }
        m->extra = e;
        m->extra[m->n_extra++] = c;
    } else {
        m->vocab[id] = c;
    }
    if (tk_strmap_put(&m->tok2id, c, len, id)) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    int chars = 0;
    for (size_t i = 0; i < len; i++) chars += ((unsigned char)tok[i] & 0xC0) != 0x80;
    if (chars > m->max_token_chars) m->max_token_chars = chars;
    return RLHF_OK;
}

// Shrinks vocab_n to 1 + the largest id present.
static void trim_vocab(tok_model *m) {
    while (m->vocab_n > 0 && !m->vocab[m->vocab_n - 1]) m->vocab_n--;
}

rlhf_status tk_model_vocab_from_object(const cJSON *vocab, tok_model *m, const char *what, rlhf_err *err) {
    if (!cJSON_IsObject(vocab)) return rlhf_fail(err, RLHF_EINPUT, "%s: model \"vocab\" must be an object {token: id}", what);
    if (tk_strmap_init(&m->tok2id, (size_t)cJSON_GetArraySize(vocab))) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) {
        if (!cJSON_IsNumber(e) || e->valuedouble != floor(e->valuedouble))
            return rlhf_fail(err, RLHF_EINPUT, "%s: vocab entry \"%.80s\" must have an integer id", what, e->string);
        size_t len = strlen(e->string);
        if (tk_utf8_valid_prefix(e->string, len) != len)
            return rlhf_fail(err, RLHF_EINPUT, "%s: vocab token is not valid UTF-8", what);
        if (e->valuedouble < 0 || e->valuedouble >= TOK_MAX_VOCAB)
            return rlhf_fail(err, RLHF_EINPUT, "%s: vocab entry \"%.80s\" has id %.0f out of range", what, e->string, e->valuedouble);
        RLHF_TRY(add_token(m, e->string, len, (int)e->valuedouble, what, err));
    }
    trim_vocab(m);
    return RLHF_OK;
}

rlhf_status tk_model_add_token(tok_model *m, const char *tok, size_t len, int id, const char *what, rlhf_err *err) {
    RLHF_TRY(add_token(m, tok, len, id, what, err));
    trim_vocab(m);
    return RLHF_OK;
}

rlhf_status tk_model_unk(const cJSON *j, tok_model *m) {
    const char *unk = tk_tj_str(j, "unk_token");
    m->unk_id = unk ? tk_strmap_get(&m->tok2id, unk, strlen(unk)) : -1;
    return RLHF_OK;
}

rlhf_status tk_wordlevel_parse(const cJSON *j, tok_model *m, const char *what, rlhf_err *err) {
    m->type = MODEL_WORDLEVEL;
    RLHF_TRY(tk_model_vocab_from_object(cJSON_GetObjectItemCaseSensitive(j, "vocab"), m, what, err));
    return tk_model_unk(j, m);
}

rlhf_status tk_model_parse(const cJSON *j, tok_model *m, const char *what, rlhf_err *err) {
    memset(m, 0, sizeof *m);
    m->unk_id = -1;
    for (int b = 0; b < 256; b++) m->byte_ids[b] = -1;
    if (!cJSON_IsObject(j)) return rlhf_fail(err, RLHF_EINPUT, "%s: missing \"model\" object", what);
    const char *type = tk_tj_str(j, "type");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(j, "vocab");
    if (!type) {   // older files (bert-base-uncased) omit it: infer from the fields, as serde's untagged enum
        if (cJSON_GetObjectItemCaseSensitive(j, "merges")) type = "BPE";
        else if (cJSON_IsArray(vocab)) type = "Unigram";
        else if (cJSON_GetObjectItemCaseSensitive(j, "continuing_subword_prefix") ||
                 cJSON_GetObjectItemCaseSensitive(j, "max_input_chars_per_word"))
            type = "WordPiece";
        else type = "WordLevel";
    }
    if (!strcmp(type, "BPE")) return tk_bpe_parse(j, m, what, err);
    if (!strcmp(type, "WordPiece")) return tk_wordpiece_parse(j, m, what, err);
    if (!strcmp(type, "Unigram")) return tk_unigram_parse(j, m, what, err);
    if (!strcmp(type, "WordLevel")) return tk_wordlevel_parse(j, m, what, err);
    return rlhf_fail(err, RLHF_EINPUT, "%s: unknown model type \"%s\" (supported: BPE, WordPiece, Unigram, WordLevel)", what, type);
}

void tk_model_free(tok_model *m) {
    for (int i = 0; i < m->vocab_n; i++) free(m->vocab[i]);
    free(m->vocab);
    for (int i = 0; i < m->n_extra; i++) free(m->extra[i]);
    free(m->extra);
    tk_strmap_free(&m->tok2id);
    tk_pairmap_free(&m->merges);
    free(m->csp);
    free(m->eow);
    free(m->wp_prefix);
    free(m->scores);
    memset(m, 0, sizeof *m);
}

int tk_model_tokenize(const tok_model *m, const char *s, size_t n, ivec *out, tok_scratch *sc) {
    if (n == 0) return 0;
    switch (m->type) {
    case MODEL_BPE:
        return tk_bpe_tokenize(m, s, n, out, sc);
    case MODEL_WORDPIECE:
        return tk_wordpiece_tokenize(m, s, n, out, sc);
    case MODEL_UNIGRAM:
        return tk_unigram_tokenize(m, s, n, out, sc);
    case MODEL_WORDLEVEL: {
        int32_t id = tk_strmap_get(&m->tok2id, s, n);
        if (id < 0) id = m->unk_id;
        if (id < 0) return -2;   // no unk token: HF fails the encode
        return tk_ivec_push(out, id);
    }
    }
    return -1;
}
