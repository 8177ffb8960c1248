// The public tokenizer API: loading (tokenizer.json or the vocabulary-file fallbacks, plus the special
// token ids from tokenizer_config.json / special_tokens_map.json), the encode pipeline (added tokens ->
// normalizer -> added tokens on normalized text -> pre-tokenizer -> model -> truncation ->
// post-processor) and decode (ids -> token strings -> decoder).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tokenizer/tok_internal.h"

#define TOK_PATH_MAX 4096
#define TOK_MATCH_PAIRS 64   // PCRE2 ovector size; only the whole match is used

rlhf_status tok_read_file(const char *path, char **out, size_t *len, rlhf_err *err) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return rlhf_fail(err, RLHF_EINPUT, "%s: cannot open", path);
    tbuf b = {0};
    char chunk[65536];
    size_t k;
    while ((k = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (tk_tbuf_put(&b, chunk, k)) {
            fclose(f);
            tk_tbuf_free(&b);
            return rlhf_fail(err, RLHF_ERUNTIME, "%s: out of memory", path);
        }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        tk_tbuf_free(&b);
        return rlhf_fail(err, RLHF_ERUNTIME, "%s: read error", path);
    }
    if (tk_tbuf_put(&b, "", 0)) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    *out = b.p;
    if (len) *len = b.n;
    return RLHF_OK;
}

static int is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static cJSON *load_json_opt(const char *dir, const char *name) {
    char p[TOK_PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    if (!is_file(p)) return NULL;
    char *txt;
    if (tok_read_file(p, &txt, NULL, NULL) != RLHF_OK) return NULL;
    cJSON *j = cJSON_Parse(txt);
    free(txt);
    return j;
}

// A special token setting: "tok", {"content": "tok"}, or null. Returns 1 when the key is present.
static int special_from(const cJSON *cfg, const char *key, const char **tok) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (!v) return 0;
    *tok = cJSON_IsString(v) ? v->valuestring : tk_tj_str(v, "content");
    return 1;
}

static void resolve_special(tokenizer *t, const cJSON *cfg, const cJSON *map, const char *key,
                            const char *const *guesses, int *id) {
    const char *tok = NULL;
    if (special_from(cfg, key, &tok) || special_from(map, key, &tok)) {
        *id = tok ? tokenizer_token_to_id(t, tok) : -1;
        return;
    }
    // no configuration: the defaults of the transformers class such a vocabulary implies
    for (int i = 0; guesses[i]; i++)
        if ((*id = tokenizer_token_to_id(t, guesses[i])) >= 0) return;
    *id = -1;
}

static rlhf_status add_file(tokenizer *t, const char *name) {
    if (t->n_files < (int)(sizeof t->files / sizeof t->files[0])) {
        t->files[t->n_files] = tok_strndup(name, strlen(name));
        if (t->files[t->n_files]) t->n_files++;
    }
    return RLHF_OK;
}

// transformers' LlamaTokenizerFast.update_post_processor: with add_bos_token / add_eos_token in
// tokenizer_config.json the template is rebuilt as [bos] $A [eos] ([bos] $B:1 [eos]:1), overriding the file's.
static rlhf_status llama_template(tokenizer *t, const cJSON *cfg, const char *dir, rlhf_err *err) {
    const char *cls = tk_tj_str(cfg, "tokenizer_class");
    if (!cls || (strncmp(cls, "LlamaTokenizer", 14) && strncmp(cls, "CodeLlamaTokenizer", 18))) return RLHF_OK;
    const cJSON *ab = cJSON_GetObjectItemCaseSensitive(cfg, "add_bos_token"), *ae = cJSON_GetObjectItemCaseSensitive(cfg, "add_eos_token");
    if (!cJSON_IsBool(ab) && !cJSON_IsBool(ae)) return RLHF_OK;
    int add_bos = cJSON_IsBool(ab) ? cJSON_IsTrue(ab) : 1, add_eos = cJSON_IsBool(ae) ? cJSON_IsTrue(ae) : 0;
    const char *bos = tokenizer_id_to_token(t, t->bos_id), *eos = tokenizer_id_to_token(t, t->eos_id);
    if ((add_bos && !bos) || (add_eos && !eos))
        return rlhf_fail(err, RLHF_EINPUT, "%s: add_%s_token is set but the tokenizer has no %s token", dir, add_bos && !bos ? "bos" : "eos",
                         add_bos && !bos ? "bos" : "eos");
    postproc *p = NULL;
    RLHF_TRY(tk_postproc_wrap(&p, add_bos ? bos : NULL, t->bos_id, add_eos ? eos : NULL, t->eos_id, 1, &t->model, &t->added,
                              dir, err));
    tk_postproc_free(t->post);
    t->post = p;
    return RLHF_OK;
}

int tokenizer_files_present(const char *dir) {
    static const char *const FILES[] = {"tokenizer.json", "vocab.txt", "vocab.json", "tokenizer.model", "spm.model"};
    char p[TOK_PATH_MAX];
    for (size_t i = 0; i < sizeof FILES / sizeof FILES[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, FILES[i]);
        if (is_file(p)) return 1;
    }
    return 0;
}

rlhf_status tokenizer_load(tokenizer **out, const char *dir, rlhf_err *err) {
    *out = NULL;
    char p[TOK_PATH_MAX];
    tokenizer *t = NULL;
    rlhf_status st;
    const char *spm_file = NULL;   // set when loaded from a SentencePiece model
    spm_class spm;
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    if (is_file(p)) {
        char *txt;
        RLHF_TRY(tok_read_file(p, &txt, NULL, err));
        st = tokenizer_load_json(&t, txt, p, err);
        free(txt);
        if (st != RLHF_OK) return st;
        add_file(t, "tokenizer.json");
    } else {
        cJSON *j = NULL;
        char m[TOK_PATH_MAX];
        snprintf(p, sizeof p, "%s/vocab.txt", dir);
        int bert = is_file(p), gpt2 = 0;
        snprintf(p, sizeof p, "%s/vocab.json", dir);
        snprintf(m, sizeof m, "%s/merges.txt", dir);
        gpt2 = !bert && is_file(p) && is_file(m);
        if (bert) {
            RLHF_TRY(tk_fallback_bert_json(dir, &j, err));
        } else if (gpt2) {
            RLHF_TRY(tk_fallback_bpe_json(dir, &j, err));
        } else {
            // SentencePiece: tokenizer.model (Llama, Gemma) or spm.model (DeBERTa-v2)
            static const char *const SPM_FILES[] = {"tokenizer.model", "spm.model"};
            for (int i = 0; i < 2 && !spm_file; i++) {
                snprintf(p, sizeof p, "%s/%s", dir, SPM_FILES[i]);
                if (is_file(p)) spm_file = SPM_FILES[i];
            }
            if (!spm_file)
                return rlhf_fail(err, RLHF_EINPUT, "%s: no tokenizer files (expected tokenizer.json, vocab.txt, vocab.json + "
                                 "merges.txt, or a SentencePiece tokenizer.model / spm.model)", dir);
            RLHF_TRY(tk_fallback_spm_json(dir, spm_file, &j, &spm, err));
        }
        st = tokenizer_from_json(&t, j, dir, err);
        cJSON_Delete(j);
        if (st != RLHF_OK) return st;
        if (bert) add_file(t, "vocab.txt");
        else if (gpt2) {
            add_file(t, "vocab.json");
            add_file(t, "merges.txt");
        } else {
            add_file(t, spm_file);
        }
    }
    if (!(t->dir = tok_strndup(dir, strlen(dir)))) {
        tokenizer_free(t);
        return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    }
    cJSON *cfg = load_json_opt(dir, "tokenizer_config.json"), *map = load_json_opt(dir, "special_tokens_map.json");
    if (cfg) add_file(t, "tokenizer_config.json");
    if (map) add_file(t, "special_tokens_map.json");
    static const char *const PAD[] = {"[PAD]", "<pad>", NULL};
    static const char *const EOS[] = {"</s>", "<|endoftext|>", NULL};
    static const char *const BOS[] = {"<s>", "<|endoftext|>", NULL};
    // a SentencePiece model's class says its defaults (Gemma's <bos>/<eos>, DeBERTa's [CLS]/[SEP]/[PAD])
    const char *const SPM_PAD[] = {spm_file ? spm.defaults[4] : NULL, NULL}, *const SPM_EOS[] = {spm_file ? spm.defaults[1] : NULL, NULL},
                      *const SPM_BOS[] = {spm_file ? spm.defaults[0] : NULL, NULL};
    resolve_special(t, cfg, map, "pad_token", spm_file ? SPM_PAD : PAD, &t->pad_id);
    resolve_special(t, cfg, map, "eos_token", spm_file ? SPM_EOS : EOS, &t->eos_id);
    resolve_special(t, cfg, map, "bos_token", spm_file ? SPM_BOS : BOS, &t->bos_id);
    t->clean_up_spaces = tk_tj_bool(cfg, "clean_up_tokenization_spaces", spm_file ? spm.clean_up : 1);
    st = spm_file ? tk_spm_post_processor(t, &spm, cfg, err) : RLHF_OK;
    if (st == RLHF_OK) st = llama_template(t, cfg, dir, err);
    cJSON_Delete(cfg);
    cJSON_Delete(map);
    if (st != RLHF_OK) {
        tokenizer_free(t);
        return st;
    }
    *out = t;
    return RLHF_OK;
}

// ---- encode ----

typedef struct {
    tok_scratch sc;
    tbuf norm;
    plist in, out;
    added_seg *segs0, *segs1;
    int cap0, cap1;
} encode_state;

static void encode_state_free(encode_state *e) {
    tok_scratch_free(&e->sc);
    tk_tbuf_free(&e->norm);
    tk_plist_free(&e->in);
    tk_plist_free(&e->out);
    free(e->segs0);
    free(e->segs1);
}

// -1: out of memory, -2: a word needs an unknown token the model lacks
static int encode_seq(const tokenizer *t, const char *s, size_t n, ivec *ids, encode_state *e) {
    int n0, n1;
    if (tk_added_vocab_split(&t->added, 0, s, n, &e->segs0, &n0, &e->cap0)) return -1;
    for (int i = 0; i < n0; i++) {
        added_seg g = e->segs0[i];
        if (g.id >= 0) {
            if (tk_ivec_push(ids, g.id)) return -1;
            continue;
        }
        const char *p = s + g.start;
        size_t pn = g.end - g.start;
        if (t->normalizer) {
            if (tk_normalizer_apply(t->normalizer, p, pn, &e->norm, e->sc.md)) return -1;
            p = e->norm.p ? e->norm.p : "";
            pn = e->norm.n;
        }
        if (tk_added_vocab_split(&t->added, 1, p, pn, &e->segs1, &n1, &e->cap1)) return -1;
        for (int k = 0; k < n1; k++) {
            added_seg h = e->segs1[k];
            if (h.id >= 0) {
                if (tk_ivec_push(ids, h.id)) return -1;
                continue;
            }
            if (h.end == h.start) continue;
            tk_plist_clear(&e->in);
            if (tk_plist_push(&e->in, p + h.start, h.end - h.start, g.start == 0 && h.start == 0)) return -1;
            const plist *words = &e->in;
            if (t->pretok) {
                if (tk_pretok_apply(t->pretok, &e->in, &e->out, e->sc.md)) return -1;
                words = &e->out;
            }
            for (int w = 0; w < words->n; w++) {
                int rc = tk_model_tokenize(&t->model, words->text.p + words->off[w], words->len[w], ids, &e->sc);
                if (rc) return rc;
            }
        }
    }
    return 0;
}

// HF utils/truncation.rs truncate_encodings (no stride, right side).
static rlhf_status truncate(ivec *a, ivec *b, int max_len, tok_truncation strategy, int *truncated, rlhf_err *err) {
    int total = a->n + (b ? b->n : 0);
    if (total <= max_len) return RLHF_OK;
    int to_remove = total - max_len;
    *truncated = 1;
    if (strategy == TRUNC_LONGEST_FIRST) {
        if (!b) {
            a->n = max_len;
            return RLHF_OK;
        }
        int n1 = a->n, n2 = b->n, swap = 0;
        if (n1 > n2) {
            swap = 1;
            int x = n1;
            n1 = n2;
            n2 = x;
        }
        if (n1 > max_len) n2 = n1;
        else n2 = n1 > max_len - n1 ? n1 : max_len - n1;
        if (n1 + n2 > max_len) {
            n1 = max_len / 2;
            n2 = n1 + max_len % 2;
        }
        if (swap) {
            int x = n1;
            n1 = n2;
            n2 = x;
        }
        if (a->n > n1) a->n = n1;
        if (b->n > n2) b->n = n2;
        return RLHF_OK;
    }
    ivec *target = strategy == TRUNC_ONLY_FIRST ? a : b;
    if (!target)
        return rlhf_fail(err, RLHF_EINPUT, "truncation only_second needs a text pair");
    if (target->n <= to_remove)
        return rlhf_fail(err, RLHF_EINPUT, "truncation %s: the %s sequence (%d tokens) is too short to remove %d tokens",
                         strategy == TRUNC_ONLY_FIRST ? "only_first" : "only_second",
                         strategy == TRUNC_ONLY_FIRST ? "first" : "second", target->n, to_remove);
    target->n -= to_remove;
    return RLHF_OK;
}

rlhf_status tokenizer_encode(const tokenizer *t, const char *text, const char *pair, int add_special_tokens,
                             int max_length, tok_truncation strategy, tok_encoding *out, rlhf_err *err) {
    return tokenizer_encode_n(t, text, strlen(text), pair, pair ? strlen(pair) : 0, add_special_tokens, max_length,
                              strategy, out, err);
}

rlhf_status tokenizer_encode_n(const tokenizer *t, const char *text, size_t n, const char *pair, size_t pn,
                               int add_special_tokens, int max_length, tok_truncation strategy, tok_encoding *out,
                               rlhf_err *err) {
    memset(out, 0, sizeof *out);
    size_t v = tk_utf8_valid_prefix(text, n);
    if (v != n) return rlhf_fail(err, RLHF_EINPUT, "invalid UTF-8 at byte %zu", v);
    if (pair) {
        v = tk_utf8_valid_prefix(pair, pn);
        if (v != pn) return rlhf_fail(err, RLHF_EINPUT, "invalid UTF-8 at byte %zu of the text pair", v);
    }
    encode_state e = {0};
    ivec a = {0}, b = {0}, ids = {0}, types = {0};
    rlhf_status st = RLHF_OK;
    int rc = 0;
    if (!(e.sc.md = pcre2_match_data_create(TOK_MATCH_PAIRS, NULL))) rc = -1;
    if (!rc) rc = encode_seq(t, text, n, &a, &e);
    if (!rc && pair) rc = encode_seq(t, pair, pn, &b, &e);
    if (rc == -2) st = rlhf_fail(err, RLHF_EINPUT, "text needs the unknown token but the tokenizer model has none");
    else if (rc) st = rlhf_fail(err, RLHF_ERUNTIME, "encoding failed (out of memory or a regex match limit)");
    if (st == RLHF_OK && max_length > 0) {
        int added = add_special_tokens ? tk_postproc_added(t->post, pair != NULL) : 0;
        int budget = max_length - added;
        st = truncate(&a, pair ? &b : NULL, budget > 0 ? budget : 0, strategy, &out->truncated, err);
    }
    if (st == RLHF_OK && tk_postproc_apply(t->post, &a, pair ? &b : NULL, add_special_tokens, &ids, &types))
        st = rlhf_fail(err, RLHF_ERUNTIME, "out of memory while encoding");
    if (st == RLHF_OK) {
        out->n = ids.n;
        size_t sz = ((size_t)ids.n + 1) * sizeof(int32_t);
        out->ids = malloc(sz);
        out->type_ids = malloc(sz);
        out->attention_mask = malloc(sz);
        if (!out->ids || !out->type_ids || !out->attention_mask) {
            tok_encoding_free(out);
            st = rlhf_fail(err, RLHF_ERUNTIME, "out of memory while encoding");
        } else {
            if (ids.n) {
                memcpy(out->ids, ids.p, (size_t)ids.n * sizeof(int32_t));
                memcpy(out->type_ids, types.p, (size_t)ids.n * sizeof(int32_t));
            }
            for (int i = 0; i < ids.n; i++) out->attention_mask[i] = 1;
        }
    }
    encode_state_free(&e);
    tk_ivec_free(&a);
    tk_ivec_free(&b);
    tk_ivec_free(&ids);
    tk_ivec_free(&types);
    return st;
}

void tok_encoding_free(tok_encoding *e) {
    if (!e) return;
    free(e->ids);
    free(e->type_ids);
    free(e->attention_mask);
    memset(e, 0, sizeof *e);
}

rlhf_status tok_encoding_pad(tok_encoding *e, int length, int pad_to_multiple_of, int32_t pad_id, int32_t pad_type_id,
                             int left, rlhf_err *err) {
    int target = length > e->n ? length : e->n;
    if (pad_to_multiple_of > 0 && target % pad_to_multiple_of) target += pad_to_multiple_of - target % pad_to_multiple_of;
    if (target == e->n) return RLHF_OK;
    size_t sz = (size_t)target * sizeof(int32_t);
    int32_t *ids = malloc(sz), *ty = malloc(sz), *am = malloc(sz);
    if (!ids || !ty || !am) {
        free(ids);
        free(ty);
        free(am);
        return rlhf_fail(err, RLHF_ERUNTIME, "out of memory while padding");
    }
    int pad = target - e->n, at = left ? pad : 0, pad_at = left ? 0 : e->n;
    for (int i = 0; i < e->n; i++) {
        ids[at + i] = e->ids[i];
        ty[at + i] = e->type_ids[i];
        am[at + i] = e->attention_mask[i];
    }
    for (int i = 0; i < pad; i++) {
        ids[pad_at + i] = pad_id;
        ty[pad_at + i] = pad_type_id;
        am[pad_at + i] = 0;
    }
    free(e->ids);
    free(e->type_ids);
    free(e->attention_mask);
    e->ids = ids;
    e->type_ids = ty;
    e->attention_mask = am;
    e->n = target;
    return RLHF_OK;
}

// ---- decode and lookups ----

const char *tokenizer_id_to_token(const tokenizer *t, int32_t id) {
    const added_token *a = tk_added_vocab_by_id(&t->added, id);
    if (a) return a->content;
    if (id < 0 || id >= t->model.vocab_n) return NULL;
    return t->model.vocab[id];
}

rlhf_status tokenizer_decode(const tokenizer *t, const int32_t *ids, int n, int skip_special_tokens, char **out,
                             rlhf_err *err) {
    size_t len;
    RLHF_TRY(tokenizer_decode_n(t, ids, n, skip_special_tokens, out, &len, err));
    if (!t->clean_up_spaces) return RLHF_OK;
    // transformers' clean_up_tokenization, in its order, over the whole text; every rule only shrinks the text
    static const char *const RULES[][2] = {{" .", "."},   {" ?", "?"},     {" !", "!"},   {" ,", ","},   {" ' ", "'"},
                                           {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
    char *s = *out;
    for (size_t r = 0; r < sizeof RULES / sizeof RULES[0]; r++) {
        size_t pl = strlen(RULES[r][0]), rl = strlen(RULES[r][1]), w = 0;
        for (size_t i = 0; i < len;) {
            if (i + pl <= len && !memcmp(s + i, RULES[r][0], pl)) {
                memmove(s + w, RULES[r][1], rl);
                w += rl;
                i += pl;
            } else {
                s[w++] = s[i++];
            }
        }
        len = w;
        s[len] = 0;
    }
    return RLHF_OK;
}

rlhf_status tokenizer_decode_n(const tokenizer *t, const int32_t *ids, int n, int skip_special_tokens, char **out,
                               size_t *len, rlhf_err *err) {
    *out = NULL;
    *len = 0;
    slist l = {0};
    tbuf b = {0};
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        const char *tok = tokenizer_id_to_token(t, ids[i]);
        if (!tok) continue;   // HF skips ids without a token
        if (skip_special_tokens && tokenizer_is_special(t, ids[i])) continue;
        rc = tk_slist_push(&l, tok, strlen(tok));
    }
    if (!rc && t->decoder) rc = tk_decoder_apply(t->decoder, &l);
    for (int i = 0; i < l.n && !rc; i++) {
        if (!t->decoder && i > 0) rc = tk_tbuf_putc(&b, ' ');
        if (!rc) rc = tk_tbuf_put(&b, l.s[i], l.len[i]);
    }
    if (!rc) rc = tk_tbuf_put(&b, "", 0);
    tk_slist_free(&l);
    if (rc) {
        tk_tbuf_free(&b);
        return rlhf_fail(err, RLHF_ERUNTIME, "out of memory while decoding");
    }
    *out = b.p;
    *len = b.n;
    return RLHF_OK;
}

int tokenizer_vocab_size(const tokenizer *t) { return t->vocab_size; }

rlhf_status tokenizer_check_model_vocab(const tokenizer *t, int model_vocab, const char *model_dir, rlhf_err *err) {
    if (t->vocab_size <= model_vocab) return RLHF_OK;
    return rlhf_fail(err, RLHF_EINPUT,
                     "%s/%s: the tokenizer has ids up to %d but %s/config.json has vocab_size %d (expected a tokenizer "
                     "whose ids the model can embed: the model's own tokenizer, or a model resized to >= %d tokens)",
                     t->dir ? t->dir : "(tokenizer)", t->n_files > 0 ? t->files[0] : "tokenizer.json", t->vocab_size - 1,
                     model_dir, model_vocab, t->vocab_size);
}

int tokenizer_token_to_id(const tokenizer *t, const char *token) {
    size_t n = strlen(token);
    for (int i = 0; i < t->added.n; i++)
        if (!strcmp(t->added.tokens[i].content, token)) return t->added.tokens[i].id;
    return tk_strmap_get(&t->model.tok2id, token, n);
}

int tokenizer_pad_id(const tokenizer *t) { return t->pad_id; }
int tokenizer_eos_id(const tokenizer *t) { return t->eos_id; }
int tokenizer_bos_id(const tokenizer *t) { return t->bos_id; }

int tokenizer_is_special(const tokenizer *t, int32_t id) {
    const added_token *a = tk_added_vocab_by_id(&t->added, id);
    return a && a->special;
}

// ---- NUL-preserving JSON strings ----

char *tok_json_protect_nul(const char *json) {
    size_t n = strlen(json), extra = 0;
    for (size_t i = 0; i + 1 < n; i++)
        if (json[i] == '\\') {
            if (json[i + 1] == 'u' && i + 5 < n && !strncmp(json + i + 2, "0000", 4)) extra += 6;
            i++;   // skip the escaped character
        }
    char *out = malloc(n + extra + 1);
    if (!out) return NULL;
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        if (json[i] == '\\' && i + 1 < n) {
            if (json[i + 1] == 'u' && i + 5 < n && !strncmp(json + i + 2, "0000", 4)) {
                memcpy(out + w, "\\uDBFF\\uDFFF", 12);
                w += 12;
                i += 5;
            } else {
                out[w++] = json[i++];
                out[w++] = json[i];
            }
            continue;
        }
        out[w++] = json[i];
    }
    out[w] = 0;
    return out;
}

size_t tok_json_restore_nul(char *s) {
    size_t r = 0, w = 0;
    for (; s[r]; r++) {
        if ((unsigned char)s[r] == 0xF4 && (unsigned char)s[r + 1] == 0x8F && (unsigned char)s[r + 2] == 0xBF &&
            (unsigned char)s[r + 3] == 0xBF) {
            s[w++] = 0;
            r += 3;
            continue;
        }
        s[w++] = s[r];
    }
    s[w] = 0;
    return w;
}
