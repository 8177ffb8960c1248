// Builds a tokenizer from a parsed tokenizer.json tree: each section goes to its component parser,
// which names the section in its errors ("FILE: normalizer: unknown normalizer type ...").
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

#define WHAT_MAX 512

static const cJSON *section(const cJSON *root, const char *key) {
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(root, key);
    return cJSON_IsNull(s) ? NULL : s;
}

rlhf_status tokenizer_from_json(tokenizer **out, const cJSON *root, const char *what, rlhf_err *err) {
    *out = NULL;
    if (!cJSON_IsObject(root)) return rlhf_fail(err, RLHF_EINPUT, "%s: expected a JSON object at the top level", what);
    tokenizer *t = calloc(1, sizeof *t);
    if (!t) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    t->pad_id = t->eos_id = t->bos_id = -1;
    char w[WHAT_MAX];
    rlhf_status st;
    const cJSON *s;
    snprintf(w, sizeof w, "%s: model", what);
    if (!(s = section(root, "model"))) {
        st = rlhf_fail(err, RLHF_EINPUT, "%s: missing \"model\" section", what);
        goto fail;
    }
    if ((st = tk_model_parse(s, &t->model, w, err)) != RLHF_OK) goto fail;
    snprintf(w, sizeof w, "%s: added_tokens", what);
    if ((st = tk_added_vocab_parse(section(root, "added_tokens"), &t->added, w, err)) != RLHF_OK) goto fail;
    snprintf(w, sizeof w, "%s: normalizer", what);
    if ((s = section(root, "normalizer")) && (st = tk_normalizer_parse(s, &t->normalizer, w, err)) != RLHF_OK) goto fail;
    snprintf(w, sizeof w, "%s: pre_tokenizer", what);
    if ((s = section(root, "pre_tokenizer")) && (st = tk_pretok_parse(s, &t->pretok, w, err)) != RLHF_OK) goto fail;
    snprintf(w, sizeof w, "%s: post_processor", what);
    if ((s = section(root, "post_processor")) &&
        (st = tk_postproc_parse(s, &t->post, &t->model, &t->added, w, err)) != RLHF_OK)
        goto fail;
    snprintf(w, sizeof w, "%s: decoder", what);
    if ((s = section(root, "decoder")) && (st = tk_decoder_parse(s, &t->decoder, w, err)) != RLHF_OK) goto fail;
    if (tk_added_vocab_finish(&t->added, t->normalizer, &t->model)) {
        st = rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
        goto fail;
    }
    t->vocab_size = t->model.vocab_n > t->added.n_by_id ? t->model.vocab_n : t->added.n_by_id;
    *out = t;
    return RLHF_OK;
fail:
    tokenizer_free(t);
    return st;
}

void tokenizer_free(tokenizer *t) {
    if (!t) return;
    tk_normalizer_free(t->normalizer);
    tk_pretok_free(t->pretok);
    tk_model_free(&t->model);
    tk_added_vocab_free(&t->added);
    tk_postproc_free(t->post);
    tk_decoder_free(t->decoder);
    free(t->dir);
    for (int i = 0; i < t->n_files; i++) free(t->files[i]);
    free(t);
}

rlhf_status tokenizer_load_json(tokenizer **out, const char *json, const char *what, rlhf_err *err) {
    *out = NULL;
    size_t len = strlen(json);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (!root) {
        size_t at = end && end >= json ? (size_t)(end - json) : 0;
        return rlhf_fail(err, RLHF_EINPUT, "%s: invalid JSON near byte %zu", what, at);
    }
    rlhf_status st = tokenizer_from_json(out, root, what, err);
    cJSON_Delete(root);
    return st;
}
