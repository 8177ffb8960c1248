// WordPiece as HF's models/wordpiece: greedy longest-match-first from the left, continuation pieces
// carry the "##" prefix; a word longer than max_input_chars_per_word or with any unmatched stretch
// becomes the single unknown token.
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

#define WORDPIECE_DEFAULT_MAX_CHARS 100   // HF's default max_input_chars_per_word

rlhf_status tk_wordpiece_parse(const cJSON *j, tok_model *m, const char *what, rlhf_err *err) {
    m->type = MODEL_WORDPIECE;
    RLHF_TRY(tk_model_vocab_from_object(cJSON_GetObjectItemCaseSensitive(j, "vocab"), m, what, err));
    RLHF_TRY(tk_model_unk(j, m));
    const char *unk = tk_tj_str(j, "unk_token");
    if (!unk) unk = "[UNK]";
    m->unk_id = tk_strmap_get(&m->tok2id, unk, strlen(unk));
    const char *p = tk_tj_str(j, "continuing_subword_prefix");
    if (!p) p = "##";
    if (!(m->wp_prefix = tok_strndup(p, strlen(p)))) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    const cJSON *mc = cJSON_GetObjectItemCaseSensitive(j, "max_input_chars_per_word");
    m->max_chars = cJSON_IsNumber(mc) ? (int)mc->valuedouble : WORDPIECE_DEFAULT_MAX_CHARS;
    return RLHF_OK;
}

int tk_wordpiece_tokenize(const tok_model *m, const char *s, size_t n, ivec *out, tok_scratch *sc) {
    int chars = 0;
    for (size_t i = 0; i < n; i++) chars += ((unsigned char)s[i] & 0xC0) != 0x80;
    if (chars > m->max_chars) goto unk;
    int base = out->n;
    size_t plen = strlen(m->wp_prefix), start = 0;
    while (start < n) {
        size_t end = n;
        int32_t found = -1;
        while (start < end) {
            int32_t id;
            if (start > 0) {
                sc->word.n = 0;
                if (tk_tbuf_put(&sc->word, m->wp_prefix, plen) || tk_tbuf_put(&sc->word, s + start, end - start)) return -1;
                id = tk_strmap_get(&m->tok2id, sc->word.p, sc->word.n);
            } else {
                id = tk_strmap_get(&m->tok2id, s, end);
            }
            if (id >= 0) {
                found = id;
                break;
            }
            do end--;   // back to the previous character boundary
            while (end > start && ((unsigned char)s[end] & 0xC0) == 0x80);
        }
        if (found < 0) {
            out->n = base;
            goto unk;
        }
        if (tk_ivec_push(out, found)) return -1;
        start = end;
    }
    return 0;
unk:
    if (m->unk_id < 0) return -2;
    return tk_ivec_push(out, m->unk_id);
}
