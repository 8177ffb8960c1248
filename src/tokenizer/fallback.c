// Directories without tokenizer.json: build the tokenizer.json tree that transformers' converters
// (convert_slow_tokenizer.py) would produce, then load it like any other. BERT: vocab.txt +
// tokenizer_config.json (do_lower_case, strip_accents, tokenize_chinese_chars). GPT-2 / RoBERTa:
// vocab.json + merges.txt; RoBERTa (<s> A </s></s> B </s>) when the config or directory says roberta.
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

#define FB_PATH_MAX 4096

static cJSON *read_json(const char *dir, const char *name) {
    char p[FB_PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    char *txt;
    if (tok_read_file(p, &txt, NULL, NULL) != RLHF_OK) return NULL;
    cJSON *j = cJSON_Parse(txt);
    free(txt);
    return j;
}

static const char *cfg_token(const cJSON *cfg, const char *key, const char *def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsString(v)) return v->valuestring;
    const char *c = tk_tj_str(v, "content");
    return c ? c : def;
}

static cJSON *added(int id, const char *content, int lstrip, int normalized) {
    cJSON *a = cJSON_CreateObject();
    cJSON_AddNumberToObject(a, "id", id);
    cJSON_AddStringToObject(a, "content", content);
    cJSON_AddBoolToObject(a, "single_word", 0);
    cJSON_AddBoolToObject(a, "lstrip", lstrip);
    cJSON_AddBoolToObject(a, "rstrip", 0);
    cJSON_AddBoolToObject(a, "normalized", normalized);
    cJSON_AddBoolToObject(a, "special", 1);
    return a;
}

static cJSON *typed(const char *type) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", type);
    return o;
}

static cJSON *tok_pair(const char *tok, int id) {
    cJSON *a = cJSON_CreateArray();
    cJSON_AddItemToArray(a, cJSON_CreateString(tok));
    cJSON_AddItemToArray(a, cJSON_CreateNumber(id));
    return a;
}

static int vocab_id(const cJSON *vocab, const char *tok) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(vocab, tok);
    return cJSON_IsNumber(v) ? (int)v->valuedouble : -1;
}

rlhf_status tk_fallback_bert_json(const char *dir, cJSON **out, rlhf_err *err) {
    char p[FB_PATH_MAX];
    snprintf(p, sizeof p, "%s/vocab.txt", dir);
    char *txt;
    size_t len;
    RLHF_TRY(tok_read_file(p, &txt, &len, err));
    if (tk_utf8_valid_prefix(txt, len) != len) {
        free(txt);
        return rlhf_fail(err, RLHF_EINPUT, "%s: not valid UTF-8", p);
    }
    cJSON *cfg = read_json(dir, "tokenizer_config.json");
    cJSON *root = cJSON_CreateObject(), *vocab = cJSON_CreateObject();
    // one token per line, id = line number; a repeated token keeps its last line (Python dict)
    int id = 0;
    for (char *line = txt; line < txt + len; id++) {
        char *nl = memchr(line, '\n', (size_t)(txt + len - line));
        char *end = nl ? nl : txt + len;
        char *e = end;
        while (e > line && (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t')) e--;   // load_vocab: rstrip("\n")...
        char save = *e;
        *e = 0;
        cJSON_DeleteItemFromObjectCaseSensitive(vocab, line);
        cJSON_AddNumberToObject(vocab, line, id);
        *e = save;
        line = end + 1;
        if (!nl) break;
    }
    free(txt);
    const char *unk = cfg_token(cfg, "unk_token", "[UNK]"), *cls = cfg_token(cfg, "cls_token", "[CLS]"),
               *sep = cfg_token(cfg, "sep_token", "[SEP]"), *pad = cfg_token(cfg, "pad_token", "[PAD]"),
               *mask = cfg_token(cfg, "mask_token", "[MASK]");
    cJSON *at = cJSON_AddArrayToObject(root, "added_tokens");
    const char *specials[] = {pad, unk, cls, sep, mask};
    for (int i = 0; i < 5; i++)
        if (vocab_id(vocab, specials[i]) >= 0) cJSON_AddItemToArray(at, added(vocab_id(vocab, specials[i]), specials[i], 0, 0));
    cJSON *nm = typed("BertNormalizer");
    cJSON_AddBoolToObject(nm, "clean_text", 1);
    cJSON_AddBoolToObject(nm, "handle_chinese_chars", tk_tj_bool(cfg, "tokenize_chinese_chars", 1));
    const cJSON *sa = cJSON_GetObjectItemCaseSensitive(cfg, "strip_accents");
    if (cJSON_IsBool(sa)) cJSON_AddBoolToObject(nm, "strip_accents", cJSON_IsTrue(sa));
    else cJSON_AddNullToObject(nm, "strip_accents");
    cJSON_AddBoolToObject(nm, "lowercase", tk_tj_bool(cfg, "do_lower_case", 1));
    cJSON_AddItemToObject(root, "normalizer", nm);
    cJSON_AddItemToObject(root, "pre_tokenizer", typed("BertPreTokenizer"));
    cJSON *model = typed("WordPiece");
    cJSON_AddStringToObject(model, "unk_token", unk);
    cJSON_AddStringToObject(model, "continuing_subword_prefix", "##");
    cJSON_AddNumberToObject(model, "max_input_chars_per_word", 100);
    cJSON_AddItemToObject(model, "vocab", vocab);
    cJSON_AddItemToObject(root, "model", model);
    if (vocab_id(vocab, cls) >= 0 && vocab_id(vocab, sep) >= 0) {
        cJSON *post = typed("BertProcessing");
        cJSON_AddItemToObject(post, "sep", tok_pair(sep, vocab_id(vocab, sep)));
        cJSON_AddItemToObject(post, "cls", tok_pair(cls, vocab_id(vocab, cls)));
        cJSON_AddItemToObject(root, "post_processor", post);
    }
    cJSON *dec = typed("WordPiece");
    cJSON_AddStringToObject(dec, "prefix", "##");
    cJSON_AddBoolToObject(dec, "cleanup", 1);
    cJSON_AddItemToObject(root, "decoder", dec);
    cJSON_Delete(cfg);
    *out = root;
    return RLHF_OK;
}

static int contains_ci(const char *s, const char *needle) {
    size_t n = strlen(needle);
    for (; s && *s; s++) {
        size_t i = 0;
        while (i < n && s[i] && tolower((unsigned char)s[i]) == needle[i]) i++;
        if (i == n) return 1;
    }
    return 0;
}

rlhf_status tk_fallback_bpe_json(const char *dir, cJSON **out, rlhf_err *err) {
    char p[FB_PATH_MAX];
    snprintf(p, sizeof p, "%s/vocab.json", dir);
    char *txt;
    size_t len;
    RLHF_TRY(tok_read_file(p, &txt, &len, err));
    const char *end = NULL;
    cJSON *vocab = cJSON_ParseWithLengthOpts(txt, len, &end, 0);
    if (!vocab) {
        rlhf_fail(err, RLHF_EINPUT, "%s: invalid JSON near byte %zu", p, end ? (size_t)(end - txt) : (size_t)0);
        free(txt);
        return RLHF_EINPUT;
    }
    free(txt);
    if (!cJSON_IsObject(vocab)) {
        cJSON_Delete(vocab);
        return rlhf_fail(err, RLHF_EINPUT, "%s: expected an object {token: id}", p);
    }
    snprintf(p, sizeof p, "%s/merges.txt", dir);
    rlhf_status st = tok_read_file(p, &txt, &len, err);
    if (st != RLHF_OK) {
        cJSON_Delete(vocab);
        return st;
    }
    cJSON *merges = cJSON_CreateArray();
    int lineno = 0;
    for (char *line = txt; line < txt + len; lineno++) {
        char *nl = memchr(line, '\n', (size_t)(txt + len - line));
        char *e = nl ? nl : txt + len;
        char *next = e + 1;
        while (e > line && e[-1] == '\r') e--;
        *e = 0;
        // the first line is "#version: ..."; blank lines carry no merge
        if (!(lineno == 0 && !strncmp(line, "#version", 8)) && *line) cJSON_AddItemToArray(merges, cJSON_CreateString(line));
        line = next;
        if (!nl) break;
    }
    free(txt);
    cJSON *cfg = read_json(dir, "tokenizer_config.json"), *mcfg = read_json(dir, "config.json");
    const char *slash = strrchr(dir, '/');
    int roberta = contains_ci(tk_tj_str(cfg, "tokenizer_class"), "roberta") || contains_ci(tk_tj_str(mcfg, "model_type"), "roberta") ||
                  contains_ci(slash && slash[1] ? slash + 1 : dir, "roberta");
    int prefix = tk_tj_bool(cfg, "add_prefix_space", 0);
    cJSON *root = cJSON_CreateObject();
    cJSON *at = cJSON_AddArrayToObject(root, "added_tokens");
    if (roberta) {
        const char *names[] = {cfg_token(cfg, "bos_token", "<s>"), cfg_token(cfg, "pad_token", "<pad>"),
                               cfg_token(cfg, "eos_token", "</s>"), cfg_token(cfg, "unk_token", "<unk>")};
        for (int i = 0; i < 4; i++)
            if (vocab_id(vocab, names[i]) >= 0) cJSON_AddItemToArray(at, added(vocab_id(vocab, names[i]), names[i], 0, 1));
        const char *mask = cfg_token(cfg, "mask_token", "<mask>");
        if (vocab_id(vocab, mask) >= 0) cJSON_AddItemToArray(at, added(vocab_id(vocab, mask), mask, 1, 0));
    } else {
        const char *eos = cfg_token(cfg, "eos_token", "<|endoftext|>");
        if (vocab_id(vocab, eos) >= 0) cJSON_AddItemToArray(at, added(vocab_id(vocab, eos), eos, 0, 1));
    }
    cJSON *pre = typed("ByteLevel");
    cJSON_AddBoolToObject(pre, "add_prefix_space", prefix);
    cJSON_AddBoolToObject(pre, "trim_offsets", 1);
    cJSON_AddBoolToObject(pre, "use_regex", 1);
    cJSON_AddItemToObject(root, "pre_tokenizer", pre);
    cJSON *model = typed("BPE");
    cJSON_AddItemToObject(model, "vocab", vocab);
    cJSON_AddItemToObject(model, "merges", merges);
    cJSON_AddItemToObject(root, "model", model);
    if (roberta) {
        const char *bos = cfg_token(cfg, "bos_token", "<s>"), *eos = cfg_token(cfg, "eos_token", "</s>");
        cJSON *post = typed("RobertaProcessing");
        cJSON_AddItemToObject(post, "sep", tok_pair(eos, vocab_id(vocab, eos)));
        cJSON_AddItemToObject(post, "cls", tok_pair(bos, vocab_id(vocab, bos)));
        cJSON_AddItemToObject(root, "post_processor", post);
    } else {
        cJSON_AddItemToObject(root, "post_processor", typed("ByteLevel"));
    }
    cJSON_AddItemToObject(root, "decoder", typed("ByteLevel"));
    cJSON_Delete(cfg);
    cJSON_Delete(mcfg);
    *out = root;
    return RLHF_OK;
}
