// SentencePiece model files (tokenizer.model, spm.model) in a directory without tokenizer.json: the file is
// a protobuf ModelProto, read with protobuf-c (code generated at build time from proto/sentencepiece_model.proto),
// and turned into the tokenizer.json tree that transformers 4.44's converters (convert_slow_tokenizer.py) build
// from it, so it loads like any other tokenizer.json and the ids equal the fast tokenizer's. Three converters:
//   LlamaConverter (LlamaTokenizer, CodeLlamaTokenizer; model types llama, mistral, mixtral): byte-fallback BPE
//     (or Unigram), legacy normalizer Prepend("▁") + Replace(" ", "▁") or, with legacy=false, a Metaspace
//     pre-tokenizer (prepend_scheme "first", no split); decoder Replace, ByteFallback, Fuse, Strip(" ", 1, 0).
//   GemmaConverter (GemmaTokenizer; gemma, gemma2): byte-fallback BPE, Replace(" ", "▁"), <0x09> renamed "\t".
//   DebertaV2Converter (DebertaV2Tokenizer; deberta-v2): Unigram without byte fallback, normalizer [Lowercase]
//     Strip Precompiled(charsmap) Replace(/ {2,}/, " "), pre-tokenizer [Punctuation] Metaspace(always).
// BPE merges are not stored in the file: generate_merges rebuilds them from the vocabulary, every split of a
// piece into two pieces, ordered by the piece's score (descending; ties keep vocabulary order).
// The post-processor (BOS for Llama/Gemma, [CLS]/[SEP] for DeBERTa-v2) needs the final ids, so the loader adds
// it after building (tk_spm_post_processor).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sentencepiece_model.pb-c.h"
#include "tokenizer/tok_internal.h"

#define SPM_PATH_MAX 4096
#define SPM_PIECE_NORMAL 1   // ModelProto.SentencePiece.Type
#define SPM_PIECE_CONTROL 3
#define SPM_PIECE_USER_DEFINED 4
#define SPM_MODEL_UNIGRAM 1   // TrainerSpec.ModelType
#define SPM_MODEL_BPE 2

static const char META[] = "\xe2\x96\x81";   // U+2581, SentencePiece's whitespace symbol

static cJSON *read_json(const char *dir, const char *name) {
    char p[SPM_PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    char *txt;
    if (tok_read_file(p, &txt, NULL, NULL) != RLHF_OK) return NULL;
    cJSON *j = cJSON_Parse(txt);
    free(txt);
    return j;
}

static cJSON *typed(const char *type) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", type);
    return o;
}

static cJSON *replace(const char *kind, const char *pattern, const char *content) {
    cJSON *r = typed("Replace"), *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, kind, pattern);
    cJSON_AddItemToObject(r, "pattern", p);
    cJSON_AddStringToObject(r, "content", content);
    return r;
}

static cJSON *sequence(const char *key, cJSON *items) {
    cJSON *s = typed("Sequence");
    cJSON_AddItemToObject(s, key, items);
    return s;
}

static cJSON *metaspace(const char *scheme, int split) {
    cJSON *m = typed("Metaspace");
    cJSON_AddStringToObject(m, "replacement", META);
    cJSON_AddStringToObject(m, "prepend_scheme", scheme);
    cJSON_AddBoolToObject(m, "split", split);
    return m;
}

// ---- which converter: tokenizer_config.json's tokenizer_class, else config.json's model_type (AutoTokenizer's
// mapping), else the file name (spm.model is DeBERTa-v2's, tokenizer.model Llama's) ----

static int kind_from_class(const char *cls, spm_kind *k) {
    size_t n = strlen(cls);
    if (n > 4 && !strcmp(cls + n - 4, "Fast")) n -= 4;
    static const struct {
        const char *name;
        spm_kind kind;
    } CLASSES[] = {{"LlamaTokenizer", SPM_LLAMA}, {"CodeLlamaTokenizer", SPM_LLAMA}, {"GemmaTokenizer", SPM_GEMMA},
                   {"DebertaV2Tokenizer", SPM_DEBERTA_V2}};
    for (size_t i = 0; i < sizeof CLASSES / sizeof CLASSES[0]; i++)
        if (strlen(CLASSES[i].name) == n && !strncmp(cls, CLASSES[i].name, n)) {
            *k = CLASSES[i].kind;
            return 1;
        }
    return 0;
}

static int kind_from_model_type(const char *mt, spm_kind *k) {
    static const struct {
        const char *name;
        spm_kind kind;
    } TYPES[] = {{"llama", SPM_LLAMA}, {"mistral", SPM_LLAMA}, {"mixtral", SPM_LLAMA}, {"gemma", SPM_GEMMA},
                 {"gemma2", SPM_GEMMA}, {"deberta-v2", SPM_DEBERTA_V2}};
    for (size_t i = 0; i < sizeof TYPES / sizeof TYPES[0]; i++)
        if (!strcmp(mt, TYPES[i].name)) {
            *k = TYPES[i].kind;
            return 1;
        }
    return 0;
}

static rlhf_status pick_kind(const char *dir, const char *file, const cJSON *cfg, const cJSON *mcfg, spm_kind *k,
                             rlhf_err *err) {
    const char *cls = tk_tj_str(cfg, "tokenizer_class"), *mt = tk_tj_str(mcfg, "model_type");
    if (cls) {
        if (kind_from_class(cls, k)) return RLHF_OK;
        return rlhf_fail(err, RLHF_EINPUT,
                         "%s/tokenizer_config.json: tokenizer_class \"%s\" has no SentencePiece converter here (expected "
                         "LlamaTokenizer, CodeLlamaTokenizer, GemmaTokenizer or DebertaV2Tokenizer, or a tokenizer.json)",
                         dir, cls);
    }
    if (mt) {
        if (kind_from_model_type(mt, k)) return RLHF_OK;
        return rlhf_fail(err, RLHF_EINPUT,
                         "%s/config.json: model_type \"%s\" has no SentencePiece converter here (expected llama, mistral, "
                         "mixtral, gemma, gemma2 or deberta-v2, or a tokenizer.json)", dir, mt);
    }
    *k = !strcmp(file, "spm.model") ? SPM_DEBERTA_V2 : SPM_LLAMA;
    return RLHF_OK;
}

// A special token setting of the class: the config's string or {"content": ...}, null for none, else the default.
static const char *cfg_special(const cJSON *cfg, const cJSON *map, const char *key, const char *def) {
    for (int i = 0; i < 2; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(i ? map : cfg, key);
        if (!v) continue;
        if (cJSON_IsString(v)) return v->valuestring;
        return tk_tj_str(v, "content");   // null or an object without content: none
    }
    return def;
}

// ---- BPE merges as transformers' SentencePieceExtractor.extract(vocab_scores) ----

typedef struct {
    int32_t l, r;   // ids in the extractor vocabulary (the file's pieces)
    double score;
    int order;      // position before the sort: the sort is stable
    int name, split;   // the merged word names[name] splits at byte split
} spm_merge;

static int merge_cmp(const void *a, const void *b) {
    const spm_merge *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;   // descending score (reverse=True)
    return (x->order > y->order) - (x->order < y->order);
}

static int local_cmp(const void *a, const void *b) {   // (vocab[l], vocab[r]) ascending
    const spm_merge *x = a, *y = b;
    if (x->l != y->l) return (x->l > y->l) - (x->l < y->l);
    return (x->r > y->r) - (x->r < y->r);
}

// names/scores: the converter's vocabulary list (vocab_scores); pieces: the file's pieces (the extractor's
// vocabulary, {piece: id} with the last id winning, plus Gemma's "\t" alias of <0x09>).
static rlhf_status bpe_merges(char *const *names, const double *scores, int n, char *const *pieces, int n_pieces,
                              int tab_alias, cJSON *out, rlhf_err *err) {
    strmap ex = {0}, first = {0}, last = {0};
    spm_merge *m = NULL;
    size_t nm = 0, cap = 0;
    rlhf_status st = RLHF_ERUNTIME;
    if (tk_strmap_init(&ex, (size_t)n_pieces + 1) || tk_strmap_init(&first, (size_t)n) || tk_strmap_init(&last, (size_t)n))
        goto done;
    for (int i = 0; i < n_pieces; i++)
        if (tk_strmap_put(&ex, pieces[i], strlen(pieces[i]), i)) goto done;
    if (tab_alias) {
        int32_t tab = tk_strmap_get(&ex, "<0x09>", 6);
        if (tab >= 0 && tk_strmap_put(&ex, "\t", 1, tab)) goto done;
    }
    for (int i = 0; i < n; i++) {
        size_t len = strlen(names[i]);
        if ((tk_strmap_get(&first, names[i], len) < 0 && tk_strmap_put(&first, names[i], len, i)) ||
            tk_strmap_put(&last, names[i], len, i))
            goto done;
    }
    // dict(vocab_scores): keys in first-occurrence order, each with the score of its last occurrence
    for (int i = 0; i < n; i++) {
        const char *s = names[i];
        size_t len = strlen(s);
        if (tk_strmap_get(&first, s, len) != i) continue;
        double score = scores[tk_strmap_get(&last, s, len)];
        size_t nl = 0;
        for (size_t k = 1; k < len; k++) {   // every split at a code point boundary (Python slices characters)
            if (((unsigned char)s[k] & 0xC0) == 0x80) continue;
            int32_t l = tk_strmap_get(&ex, s, k), r = tk_strmap_get(&ex, s + k, len - k);
            if (l < 0 || r < 0) continue;
            if (nm + nl + 1 > cap) {
                cap = cap ? cap * 2 : 4096;
                spm_merge *g = realloc(m, cap * sizeof *g);
                if (!g) goto done;
                m = g;
            }
            m[nm + nl++] = (spm_merge){l, r, score, 0, i, (int)k};
        }
        if (nl > 1) qsort(m + nm, nl, sizeof *m, local_cmp);
        for (size_t k = 0; k < nl; k++) m[nm + k].order = (int)(nm + k);
        nm += nl;
    }
    if (nm > 1) qsort(m, nm, sizeof *m, merge_cmp);
    for (size_t k = 0; k < nm; k++) {
        cJSON *pair = cJSON_CreateArray();
        const char *w = names[m[k].name];
        char *l = tok_strndup(w, (size_t)m[k].split);
        if (!l) {
            cJSON_Delete(pair);
            goto done;
        }
        cJSON_AddItemToArray(pair, cJSON_CreateString(l));
        cJSON_AddItemToArray(pair, cJSON_CreateString(w + m[k].split));
        free(l);
        cJSON_AddItemToArray(out, pair);
    }
    st = RLHF_OK;
done:
    if (st != RLHF_OK) rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    free(m);
    tk_strmap_free(&ex);
    tk_strmap_free(&first);
    tk_strmap_free(&last);
    return st;
}

static char *base64(const uint8_t *p, size_t n) {
    static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *o = malloc((n + 2) / 3 * 4 + 1), *q = o;
    if (!o) return NULL;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        *q++ = A[v >> 18 & 63];
        *q++ = A[v >> 12 & 63];
        *q++ = i + 1 < n ? A[v >> 6 & 63] : '=';
        *q++ = i + 2 < n ? A[v & 63] : '=';
    }
    *q = 0;
    return o;
}

static cJSON *added(const char *content, int special) {
    cJSON *a = cJSON_CreateObject();
    cJSON_AddNumberToObject(a, "id", 0);   // a hint only: tk_added_vocab_finish assigns the id as HF does
    cJSON_AddStringToObject(a, "content", content);
    cJSON_AddBoolToObject(a, "single_word", 0);
    cJSON_AddBoolToObject(a, "lstrip", 0);
    cJSON_AddBoolToObject(a, "rstrip", 0);
    cJSON_AddBoolToObject(a, "normalized", 0);
    cJSON_AddBoolToObject(a, "special", special);
    return a;
}

static int has_added(const cJSON *arr, const char *content) {
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) {
        const char *c = tk_tj_str(e, "content");
        if (c && !strcmp(c, content)) return 1;
    }
    return 0;
}

// Added tokens in the order transformers adds them: the converter's control (special) and user-defined
// pieces; then PreTrainedTokenizerFast.__init__'s tokenizer_config.json added_tokens_decoder entries (by id)
// and the class's special tokens (bos, eos, unk, sep, pad, cls, mask, additional) not yet present.
static rlhf_status added_tokens(cJSON *root, const Sentencepiece__ModelProto *mp, spm_kind kind, const cJSON *cfg,
                                const cJSON *map, const spm_class *c, rlhf_err *err) {
    cJSON *at = cJSON_AddArrayToObject(root, "added_tokens");
    for (size_t i = 0; i < mp->n_pieces; i++) {
        int type = mp->pieces[i]->has_type ? (int)mp->pieces[i]->type : SPM_PIECE_NORMAL;
        if (type != SPM_PIECE_CONTROL && type != SPM_PIECE_USER_DEFINED) continue;
        const char *p = mp->pieces[i]->piece;
        // GemmaConverter.special_tokens: the chat-turn markers are special although user-defined
        int special = type == SPM_PIECE_CONTROL ||
                      (kind == SPM_GEMMA && (!strcmp(p, "<start_of_turn>") || !strcmp(p, "<end_of_turn>")));
        cJSON_AddItemToArray(at, added(p, special));
    }
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(cfg, "added_tokens_decoder");
    if (cJSON_IsObject(dec)) {
        int n = cJSON_GetArraySize(dec);
        const cJSON **ents = calloc((size_t)n + 1, sizeof *ents);
        long *ids = calloc((size_t)n + 1, sizeof *ids);
        if (!ents || !ids) {
            free(ents);
            free(ids);
            return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
        }
        int k = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, dec) {
            char *end;
            long id = strtol(e->string, &end, 10);
            if (*end || id < 0 || !tk_tj_str(e, "content")) {
                free(ents);
                free(ids);
                return rlhf_fail(err, RLHF_EINPUT, "%s: tokenizer_config.json: added_tokens_decoder entry \"%.40s\" must be "
                                 "\"<id>\": {\"content\": ...}", c->dir, e->string);
            }
            int at_k = k++;   // insertion sort by id (sorted(added_tokens_decoder.items()))
            while (at_k > 0 && ids[at_k - 1] > id) {
                ids[at_k] = ids[at_k - 1];
                ents[at_k] = ents[at_k - 1];
                at_k--;
            }
            ids[at_k] = id;
            ents[at_k] = e;
        }
        for (int i = 0; i < k; i++) {
            const char *content = tk_tj_str(ents[i], "content");
            if (has_added(at, content)) continue;
            cJSON *a = added(content, tk_tj_bool(ents[i], "special", 0));
            static const char *const FLAGS[] = {"single_word", "lstrip", "rstrip", "normalized"};
            for (int f = 0; f < 4; f++) {
                cJSON_DeleteItemFromObjectCaseSensitive(a, FLAGS[f]);
                cJSON_AddBoolToObject(a, FLAGS[f], tk_tj_bool(ents[i], FLAGS[f], f == 3 ? !tk_tj_bool(ents[i], "special", 0) : 0));
            }
            cJSON_SetNumberValue(cJSON_GetObjectItemCaseSensitive(a, "id"), (double)ids[i]);
            cJSON_AddItemToArray(at, a);
        }
        free(ents);
        free(ids);
    }
    static const char *const KEYS[] = {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token",
                                       "mask_token"};
    for (int i = 0; i < 7; i++) {
        const char *tok = cfg_special(cfg, map, KEYS[i], c->defaults[i]);
        if (tok && *tok && !has_added(at, tok)) cJSON_AddItemToArray(at, added(tok, 1));
    }
    for (int i = 0; i < 2; i++) {
        const cJSON *extra = cJSON_GetObjectItemCaseSensitive(i ? map : cfg, "additional_special_tokens");
        const cJSON *e;
        cJSON_ArrayForEach(e, extra) {
            const char *tok = cJSON_IsString(e) ? e->valuestring : tk_tj_str(e, "content");
            if (tok && *tok && !has_added(at, tok)) cJSON_AddItemToArray(at, added(tok, 1));
        }
        if (extra) break;   // tokenizer_config.json's list wins over special_tokens_map.json's
    }
    return RLHF_OK;
}

static rlhf_status check_pieces(const Sentencepiece__ModelProto *mp, const char *path, rlhf_err *err) {
    if (mp->n_pieces == 0) return rlhf_fail(err, RLHF_EINPUT, "%s: SentencePiece model has no pieces", path);
    if (mp->n_pieces >= (1u << 24)) return rlhf_fail(err, RLHF_EINPUT, "%s: %zu pieces is more than 2^24", path, mp->n_pieces);
    for (size_t i = 0; i < mp->n_pieces; i++) {
        const char *p = mp->pieces[i]->piece;
        if (!p || !*p) return rlhf_fail(err, RLHF_EINPUT, "%s: piece %zu is empty", path, i);
        if (tk_utf8_valid_prefix(p, strlen(p)) != strlen(p)) return rlhf_fail(err, RLHF_EINPUT, "%s: piece %zu is not valid UTF-8", path, i);
        if (!isfinite(mp->pieces[i]->score)) return rlhf_fail(err, RLHF_EINPUT, "%s: piece %zu has a non-finite score", path, i);
    }
    return RLHF_OK;
}

rlhf_status tk_fallback_spm_json(const char *dir, const char *file, cJSON **out, spm_class *c, rlhf_err *err) {
    *out = NULL;
    char path[SPM_PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    char *buf;
    size_t len;
    RLHF_TRY(tok_read_file(path, &buf, &len, err));
    Sentencepiece__ModelProto *mp = sentencepiece__model_proto__unpack(NULL, len, (const uint8_t *)buf);
    free(buf);
    if (!mp) return rlhf_fail(err, RLHF_EINPUT, "%s: not a SentencePiece model (the protobuf ModelProto does not parse)", path);
    cJSON *cfg = read_json(dir, "tokenizer_config.json"), *map = read_json(dir, "special_tokens_map.json"),
          *mcfg = read_json(dir, "config.json"), *root = NULL;
    char **names = NULL;
    double *scores = NULL;
    spm_kind kind = SPM_LLAMA;
    rlhf_status st = check_pieces(mp, path, err);
    if (st == RLHF_OK) st = pick_kind(dir, file, cfg, mcfg, &kind, err);
    if (st != RLHF_OK) goto done;
    const Sentencepiece__TrainerSpec *ts = mp->trainer_spec;
    int model_type = ts && ts->has_model_type ? (int)ts->model_type : SPM_MODEL_UNIGRAM;
    if (model_type != SPM_MODEL_UNIGRAM && model_type != SPM_MODEL_BPE) {
        st = rlhf_fail(err, RLHF_EINPUT, "%s: SentencePiece model_type %d (WORD or CHAR) has no transformers converter; "
                       "expected UNIGRAM (1) or BPE (2)", path, model_type);
        goto done;
    }
    int n = (int)mp->n_pieces;
    memset(c, 0, sizeof *c);
    c->kind = kind;
    c->dir = dir;
    // the class's defaults: bos, eos, unk, sep, pad, cls, mask (transformers' __init__ signatures)
    static const char *const DEF[3][7] = {
        {"<s>", "</s>", "<unk>", NULL, NULL, NULL, NULL},
        {"<bos>", "</s>" /* replaced below */, "<unk>", NULL, "<pad>", NULL, NULL},
        {"[CLS]", "[SEP]", "[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]"},
    };
    for (int i = 0; i < 7; i++) c->defaults[i] = DEF[kind][i];
    if (kind == SPM_GEMMA) c->defaults[1] = "<eos>";
    c->clean_up = kind == SPM_DEBERTA_V2;   // Llama's and Gemma's fast classes default it to False
    c->file = file;
    // the converter's vocabulary (vocab_scores)
    names = calloc((size_t)n, sizeof *names);
    scores = calloc((size_t)n, sizeof *scores);
    if (!names || !scores) {
        st = rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++) {
        names[i] = mp->pieces[i]->piece;
        scores[i] = mp->pieces[i]->score;
    }
    if (kind == SPM_LLAMA)   // convert_ids_to_tokens(0..2) with score 0
        for (int i = 0; i < 3 && i < n; i++) scores[i] = 0.0;
    if (kind == SPM_GEMMA) {   // pad, eos, bos at 0..2; <0x09> becomes "\t"
        const char *first3[3] = {cfg_special(cfg, map, "pad_token", "<pad>"), cfg_special(cfg, map, "eos_token", "<eos>"),
                                 cfg_special(cfg, map, "bos_token", "<bos>")};
        for (int i = 0; i < 3 && i < n; i++) {
            if (!first3[i]) {
                st = rlhf_fail(err, RLHF_EINPUT, "%s: Gemma's converter needs pad, eos and bos tokens (one is null in the config)", dir);
                goto done;
            }
            names[i] = (char *)first3[i];
            scores[i] = 0.0;
        }
        for (int i = 3; i < n; i++)
            if (!strcmp(names[i], "<0x09>")) names[i] = "\t";
    }
    int handle_byte_fallback = kind != SPM_DEBERTA_V2;
    int unk_id = kind == SPM_LLAMA ? 0 : kind == SPM_GEMMA ? 3 : (ts && ts->has_unk_id ? ts->unk_id : 0);
    root = cJSON_CreateObject();
    cJSON *model;
    if (model_type == SPM_MODEL_UNIGRAM) {
        if (unk_id < 0 || unk_id >= n) {
            st = rlhf_fail(err, RLHF_EINPUT, "%s: unk_id %d is not a piece id (0..%d)", path, unk_id, n - 1);
            goto done;
        }
        model = typed("Unigram");
        cJSON_AddNumberToObject(model, "unk_id", unk_id);
        cJSON *v = cJSON_AddArrayToObject(model, "vocab");
        for (int i = 0; i < n; i++) {
            cJSON *e = cJSON_CreateArray();
            cJSON_AddItemToArray(e, cJSON_CreateString(names[i]));
            cJSON_AddItemToArray(e, cJSON_CreateNumber(scores[i]));
            cJSON_AddItemToArray(v, e);
        }
        cJSON_AddBoolToObject(model, "byte_fallback", handle_byte_fallback);
    } else {
        model = typed("BPE");
        cJSON_AddNullToObject(model, "dropout");
        cJSON_AddStringToObject(model, "unk_token", ts && ts->unk_piece ? ts->unk_piece : "<unk>");
        cJSON_AddNullToObject(model, "continuing_subword_prefix");
        cJSON_AddNullToObject(model, "end_of_word_suffix");
        cJSON_AddBoolToObject(model, "fuse_unk", 1);
        cJSON_AddBoolToObject(model, "byte_fallback", handle_byte_fallback);
        cJSON_AddBoolToObject(model, "ignore_merges", 0);
        // {word: i for i, word in enumerate(vocab)}: a repeated word keeps its last id
        strmap last = {0};
        if (tk_strmap_init(&last, (size_t)n)) {
            st = rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
            goto done;
        }
        for (int i = 0; i < n; i++) tk_strmap_put(&last, names[i], strlen(names[i]), i);
        cJSON *v = cJSON_AddObjectToObject(model, "vocab");
        for (int i = 0; i < n; i++)
            if (tk_strmap_get(&last, names[i], strlen(names[i])) == i) cJSON_AddNumberToObject(v, names[i], i);
        tk_strmap_free(&last);
        char **pieces = malloc((size_t)n * sizeof *pieces);
        if (!pieces) {
            st = rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
            goto done;
        }
        for (int i = 0; i < n; i++) pieces[i] = mp->pieces[i]->piece;
        st = bpe_merges(names, scores, n, pieces, n, kind == SPM_GEMMA, cJSON_AddArrayToObject(model, "merges"), err);
        free(pieces);
        if (st != RLHF_OK) goto done;
    }
    cJSON_AddItemToObject(root, "model", model);
    if ((st = added_tokens(root, mp, kind, cfg, map, c, err)) != RLHF_OK) goto done;
    // normalizer, pre-tokenizer, decoder
    int legacy = tk_tj_bool(cfg, "legacy", 1), prefix = tk_tj_bool(cfg, "add_prefix_space", 1);
    if (kind == SPM_LLAMA) {
        if (legacy) {
            cJSON *ns = cJSON_CreateArray();
            if (prefix) {
                cJSON *p = typed("Prepend");
                cJSON_AddStringToObject(p, "prepend", META);
                cJSON_AddItemToArray(ns, p);
            }
            cJSON_AddItemToArray(ns, replace("String", " ", META));
            cJSON_AddItemToObject(root, "normalizer", sequence("normalizers", ns));
        } else {
            cJSON_AddItemToObject(root, "pre_tokenizer", metaspace(prefix ? "first" : "never", 0));
        }
    } else if (kind == SPM_GEMMA) {
        cJSON_AddItemToObject(root, "normalizer", replace("String", " ", META));
    } else {
        cJSON *ns = cJSON_CreateArray();
        if (tk_tj_bool(cfg, "do_lower_case", 0)) cJSON_AddItemToArray(ns, typed("Lowercase"));
        cJSON *strip = typed("Strip");
        cJSON_AddBoolToObject(strip, "strip_left", 1);
        cJSON_AddBoolToObject(strip, "strip_right", 1);
        cJSON_AddItemToArray(ns, strip);
        const Sentencepiece__NormalizerSpec *nsp = mp->normalizer_spec;
        if (nsp && nsp->has_precompiled_charsmap && nsp->precompiled_charsmap.len > 0) {
            char *b64 = base64(nsp->precompiled_charsmap.data, nsp->precompiled_charsmap.len);
            if (!b64) {
                st = rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
                goto done;
            }
            cJSON *pc = typed("Precompiled");
            cJSON_AddStringToObject(pc, "precompiled_charsmap", b64);
            free(b64);
            cJSON_AddItemToArray(ns, pc);
        }
        cJSON_AddItemToArray(ns, replace("Regex", " {2,}", " "));
        cJSON_AddItemToObject(root, "normalizer", sequence("normalizers", ns));
        cJSON *ps = cJSON_CreateArray();
        if (tk_tj_bool(cfg, "split_by_punct", 0)) {
            cJSON *p = typed("Punctuation");
            cJSON_AddStringToObject(p, "behavior", "Isolated");
            cJSON_AddItemToArray(ps, p);
        }
        const char *scheme = prefix ? "always" : "never";   // DebertaV2Tokenizer has no legacy flag
        cJSON_AddItemToArray(ps, metaspace(scheme, 1));
        cJSON_AddItemToObject(root, "pre_tokenizer", sequence("pretokenizers", ps));
        cJSON_AddItemToObject(root, "decoder", metaspace(scheme, 1));
    }
    if (kind != SPM_DEBERTA_V2) {
        cJSON *ds = cJSON_CreateArray();
        cJSON_AddItemToArray(ds, replace("String", META, " "));
        cJSON_AddItemToArray(ds, typed("ByteFallback"));
        cJSON_AddItemToArray(ds, typed("Fuse"));
        if (kind == SPM_LLAMA && prefix) {
            cJSON *s = typed("Strip");
            cJSON_AddStringToObject(s, "content", " ");
            cJSON_AddNumberToObject(s, "start", 1);
            cJSON_AddNumberToObject(s, "stop", 0);
            cJSON_AddItemToArray(ds, s);
        }
        cJSON_AddItemToObject(root, "decoder", sequence("decoders", ds));
    }
done:
    free(names);
    free(scores);
    cJSON_Delete(cfg);
    cJSON_Delete(map);
    cJSON_Delete(mcfg);
    sentencepiece__model_proto__free_unpacked(mp, NULL);
    if (st != RLHF_OK) {
        cJSON_Delete(root);
        return st;
    }
    *out = root;
    return RLHF_OK;
}

// The post-processor the fast class installs: LlamaTokenizerFast / GemmaTokenizerFast.update_post_processor
// ([bos] $A [eos], add_bos_token default true, add_eos_token default false), DebertaV2Converter's
// [CLS] $A [SEP] / [CLS] $A [SEP] $B:1 [SEP]:1 with the ids of the literal "[CLS]" and "[SEP]" (the unknown id
// when absent, as the slow tokenizer's convert_tokens_to_ids).
rlhf_status tk_spm_post_processor(tokenizer *t, const spm_class *c, const cJSON *cfg, rlhf_err *err) {
    postproc *p = NULL;
    if (c->kind == SPM_DEBERTA_V2) {
        int32_t cls = tokenizer_token_to_id(t, "[CLS]"), sep = tokenizer_token_to_id(t, "[SEP]");
        if (cls < 0) cls = t->model.unk_id;
        if (sep < 0) sep = t->model.unk_id;
        if (cls < 0 || sep < 0)
            return rlhf_fail(err, RLHF_EINPUT, "%s/%s: DeBERTa-v2 needs [CLS] and [SEP] (or an unknown piece)", c->dir, c->file);
        RLHF_TRY(tk_postproc_wrap(&p, "[CLS]", cls, "[SEP]", sep, 0, &t->model, &t->added, c->dir, err));
    } else {
        int add_bos = tk_tj_bool(cfg, "add_bos_token", 1), add_eos = tk_tj_bool(cfg, "add_eos_token", 0);
        const char *bos = tokenizer_id_to_token(t, t->bos_id), *eos = tokenizer_id_to_token(t, t->eos_id);
        if ((add_bos && !bos) || (add_eos && !eos))
            return rlhf_fail(err, RLHF_EINPUT, "%s: add_%s_token is set but the tokenizer has no %s token", c->dir,
                             add_bos && !bos ? "bos" : "eos", add_bos && !bos ? "bos" : "eos");
        RLHF_TRY(tk_postproc_wrap(&p, add_bos ? bos : NULL, t->bos_id, add_eos ? eos : NULL, t->eos_id, 1, &t->model,
                                  &t->added, c->dir, err));
    }
    tk_postproc_free(t->post);
    t->post = p;
    return RLHF_OK;
}
