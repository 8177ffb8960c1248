// Every row of tests/fixtures/tokenizers/expected_ids/*.jsonl (HF tokenizers Rust core output) and of
// extra_ids/*.jsonl (tools/gen_tokenizer_ids.js): ids, type_ids, ids without special tokens and the
// decoded text must be identical. Each tokenizer is also loaded through its fallback files where the
// fixture has them (vocab.txt; vocab.json + merges.txt for GPT-2 and RoBERTa).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "sentencepiece_model.pb-c.h"
#include "testutil.h"
#include "tokenizer/tokenizer.h"

#define TOKS TU_FIXTURES "/tokenizers"
#define MAX_REPORTED 3   // mismatching rows printed per file

static int copy(const char *src, const char *dst) {
    size_t n;
    char *b = tu_read_file(src, &n);
    if (!b) return -1;
    FILE *f = fopen(dst, "wb");
    int ok = f && fwrite(b, 1, n, f) == n;
    if (f) fclose(f);
    free(b);
    return ok ? 0 : -1;
}

static int ids_equal(const cJSON *want, const int32_t *got, int n) {
    if (!cJSON_IsArray(want) || cJSON_GetArraySize(want) != n) return 0;
    int i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, want) if ((int32_t)x->valuedouble != got[i++]) return 0;
    return 1;
}

static void print_ids(const char *label, const int32_t *ids, int n) {
    fprintf(stderr, "    %s:", label);
    for (int i = 0; i < n && i < 40; i++) fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, n > 40 ? " ...\n" : "\n");
}

// Returns the number of rows checked.
static int check_file(const char *tok_dir, const char *jsonl, const char *label) {
    tokenizer *t = NULL;
    rlhf_err err = {0};
    rlhf_status st = tokenizer_load(&t, tok_dir, &err);
    CHECK(st == RLHF_OK, "%s: load %s: %s", label, tok_dir, err.msg);
    if (st != RLHF_OK) return 0;
    size_t len;
    char *txt = tu_read_file(jsonl, &len);
    CHECK(txt != NULL, "%s: cannot read %s", label, jsonl);
    if (!txt) {
        tokenizer_free(t);
        return 0;
    }
    int rows = 0, bad = 0, line = 0;
    for (char *l = txt; *l; line++) {
        char *nl = strchr(l, '\n');
        if (nl) *nl = 0;
        char *prot = *l ? tok_json_protect_nul(l) : NULL;   // texts may hold \\u0000
        cJSON *row = prot ? cJSON_Parse(prot) : NULL;
        free(prot);
        l = nl ? nl + 1 : l + strlen(l);
        if (!row) continue;
        char *text = cJSON_GetObjectItem(row, "text")->valuestring;
        size_t text_len = tok_json_restore_nul(text), pair_len = 0;
        const cJSON *pj = cJSON_GetObjectItem(row, "pair");
        char *pair = cJSON_IsString(pj) ? pj->valuestring : NULL;
        if (pair) pair_len = tok_json_restore_nul(pair);
        tok_encoding e = {0}, ns = {0};
        char *dec = NULL;
        size_t dec_len = 0;
        rlhf_status s1 = tokenizer_encode_n(t, text, text_len, pair, pair_len, 1, 0, TRUNC_LONGEST_FIRST, &e, &err);
        rlhf_status s2 =
            s1 == RLHF_OK ? tokenizer_encode_n(t, text, text_len, pair, pair_len, 0, 0, TRUNC_LONGEST_FIRST, &ns, &err) : s1;
        rlhf_status s3 = s2 == RLHF_OK ? tokenizer_decode_n(t, e.ids, e.n, 0, &dec, &dec_len, &err) : s2;
        const cJSON *wskip = cJSON_GetObjectItem(row, "decoded_skip_special");   // extra_ids rows only
        char *dskip = NULL;
        size_t dskip_len = 0;
        if (s3 == RLHF_OK && wskip) s3 = tokenizer_decode_n(t, e.ids, e.n, 1, &dskip, &dskip_len, &err);
        int ok = s3 == RLHF_OK;
        int ok_ids = ok && ids_equal(cJSON_GetObjectItem(row, "ids"), e.ids, e.n);
        int ok_types = ok && ids_equal(cJSON_GetObjectItem(row, "type_ids"), e.type_ids, e.n);
        int ok_ns = ok && ids_equal(cJSON_GetObjectItem(row, "ids_no_special"), ns.ids, ns.n);
        const cJSON *wd = cJSON_GetObjectItem(row, "decoded");
        size_t wd_len = cJSON_IsString(wd) ? tok_json_restore_nul(wd->valuestring) : 0;
        int ok_dec = ok && cJSON_IsString(wd) && wd_len == dec_len && !memcmp(wd->valuestring, dec, dec_len);
        int ok_skip = 1;
        if (ok && wskip) {
            size_t wl = tok_json_restore_nul(wskip->valuestring);
            ok_skip = wl == dskip_len && !memcmp(wskip->valuestring, dskip, wl);
        }
        rows++;
        if (!(ok_ids && ok_types && ok_ns && ok_dec && ok_skip)) {
            if (bad++ < MAX_REPORTED) {
                fprintf(stderr, "%s line %d (%.60s): %s%s%s%s%s%s\n", label, line + 1, text, ok ? "" : err.msg,
                        ok_ids ? "" : " ids", ok_types ? "" : " type_ids", ok_ns ? "" : " ids_no_special", ok_dec ? "" : " decoded",
                        ok_skip ? "" : " decoded_skip_special");
                if (ok && !ok_ids) {
                    char *w = cJSON_PrintUnformatted(cJSON_GetObjectItem(row, "ids"));
                    fprintf(stderr, "    want: %.300s\n", w);
                    free(w);
                    print_ids("got ", e.ids, e.n);
                }
                if (ok && !ok_dec) fprintf(stderr, "    want decoded: %.200s\n    got  decoded: %.200s\n", wd->valuestring, dec);
            }
        }
        tok_encoding_free(&e);
        tok_encoding_free(&ns);
        free(dec);
        free(dskip);
        cJSON_Delete(row);
    }
    CHECK(bad == 0, "%s: %d of %d rows differ from %s", label, bad, rows, jsonl);
    CHECK(rows > 0, "%s: no rows in %s", label, jsonl);
    fprintf(stderr, "%s: %d/%d rows identical\n", label, rows - bad, rows);
    free(txt);
    tokenizer_free(t);
    return rows;
}

// A SentencePiece tokenizer.model shaped like Mistral-7B's, built from its tokenizer.json: the pieces in id order
// (<unk> unknown, <s> </s> control, <0x00>..<0xFF> byte, the rest normal), each piece's score minus the index of its
// first merge in the file (pieces that are no merge's result last), BPE with byte fallback. Loaded through the
// SentencePiece path, transformers' conversion must give back Mistral's 58,980 merges in the file's order, so the
// ids equal those of the tokenizer.json on every row.
typedef struct {
    const char *s;
    int idx;
} named_idx;

static int by_name(const void *a, const void *b) {
    const named_idx *x = a, *y = b;
    int c = strcmp(x->s, y->s);
    return c ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

static int mistral_spm(const char *dir) {
    size_t len;
    char *txt = tu_read_file(TOKS "/mistral-7b-v0.1/tokenizer.json", &len);
    cJSON *j = txt ? cJSON_Parse(txt) : NULL;
    free(txt);
    const cJSON *model = cJSON_GetObjectItem(j, "model"), *vocab = cJSON_GetObjectItem(model, "vocab"),
                *merges = cJSON_GetObjectItem(model, "merges");
    int n = cJSON_GetArraySize(vocab), nm = cJSON_GetArraySize(merges), rc = -1;
    const char **pieces = calloc((size_t)n, sizeof *pieces);
    named_idx *first = calloc((size_t)nm + 1, sizeof *first);
    char **joined = calloc((size_t)nm + 1, sizeof *joined);
    Sentencepiece__ModelProto__SentencePiece *sp = calloc((size_t)n, sizeof *sp), **spp = calloc((size_t)n, sizeof *spp);
    if (!j || !pieces || !first || !joined || !sp || !spp) goto done;
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) if ((int)e->valuedouble < n) pieces[(int)e->valuedouble] = e->string;
    int k = 0;
    cJSON_ArrayForEach(e, merges) {   // "a b": the merged piece is "ab"
        const char *m = e->valuestring, *space = strchr(m, ' ');
        if (!space) goto done;
        joined[k] = malloc(strlen(m));
        if (!joined[k]) goto done;
        memcpy(joined[k], m, (size_t)(space - m));
        strcpy(joined[k] + (space - m), space + 1);
        first[k] = (named_idx){joined[k], k};
        k++;
    }
    qsort(first, (size_t)nm, sizeof *first, by_name);
    for (int i = 0; i < n; i++) {
        if (!pieces[i]) goto done;
        Sentencepiece__ModelProto__SentencePiece init = SENTENCEPIECE__MODEL_PROTO__SENTENCE_PIECE__INIT;
        sp[i] = init;
        sp[i].piece = (char *)pieces[i];
        named_idx key = {pieces[i], -1};
        size_t lo = 0, hi = (size_t)nm;   // first entry >= key: the piece's earliest merge
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (by_name(&first[mid], &key) < 0) lo = mid + 1;
            else hi = mid;
        }
        int rank = lo < (size_t)nm && !strcmp(first[lo].s, pieces[i]) ? first[lo].idx : 1 << 24;
        sp[i].has_score = 1;
        sp[i].score = -(float)rank;
        sp[i].has_type = 1;
        sp[i].type = i == 0 ? SENTENCEPIECE__MODEL_PROTO__SENTENCE_PIECE__TYPE__UNKNOWN
                     : i < 3 ? SENTENCEPIECE__MODEL_PROTO__SENTENCE_PIECE__TYPE__CONTROL
                     : i < 259 ? SENTENCEPIECE__MODEL_PROTO__SENTENCE_PIECE__TYPE__BYTE
                               : SENTENCEPIECE__MODEL_PROTO__SENTENCE_PIECE__TYPE__NORMAL;
        spp[i] = &sp[i];
    }
    Sentencepiece__TrainerSpec ts = SENTENCEPIECE__TRAINER_SPEC__INIT;
    ts.has_model_type = 1;
    ts.model_type = SENTENCEPIECE__TRAINER_SPEC__MODEL_TYPE__BPE;
    ts.has_byte_fallback = 1;
    ts.byte_fallback = 1;
    Sentencepiece__ModelProto mp = SENTENCEPIECE__MODEL_PROTO__INIT;
    mp.n_pieces = (size_t)n;
    mp.pieces = spp;
    mp.trainer_spec = &ts;
    size_t size = sentencepiece__model_proto__get_packed_size(&mp);
    uint8_t *buf = malloc(size);
    char path[600];
    snprintf(path, sizeof path, "%s/tokenizer.model", dir);
    FILE *f = buf ? fopen(path, "wb") : NULL;
    if (f) {
        sentencepiece__model_proto__pack(&mp, buf);
        rc = fwrite(buf, 1, size, f) == size ? 0 : -1;
        fclose(f);
    }
    free(buf);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    if (rc == 0) rc = copy(TOKS "/mistral-7b-v0.1/tokenizer_config.json", path);
done:
    for (int i = 0; i < nm; i++) free(joined[i]);
    free(joined);
    free(first);
    free(pieces);
    free(sp);
    free(spp);
    cJSON_Delete(j);
    return rc;
}

int main(void) {
    char tmp[] = "/tmp/rlhf_tok_test_XXXXXX";
    if (!mkdtemp(tmp)) {
        perror("mkdtemp");
        return 1;
    }
    char d_rob[512], d_rob_fb[512], d_gpt2_fb[512], d_bert_fb[512], p[1024];
    snprintf(d_rob, sizeof d_rob, "%s/roberta-base", tmp);
    snprintf(d_rob_fb, sizeof d_rob_fb, "%s/roberta-base-files", tmp);
    snprintf(d_gpt2_fb, sizeof d_gpt2_fb, "%s/gpt2-files", tmp);
    snprintf(d_bert_fb, sizeof d_bert_fb, "%s/bert-files", tmp);
    mkdir(d_rob, 0700);
    mkdir(d_rob_fb, 0700);
    mkdir(d_gpt2_fb, 0700);
    mkdir(d_bert_fb, 0700);
    int setup = 0;
    snprintf(p, sizeof p, "%s/tokenizer.json", d_rob);
    setup |= copy(TOKS "/roberta-base/tokenizer.constructed.json", p);
    snprintf(p, sizeof p, "%s/vocab.json", d_rob_fb);
    setup |= copy(TOKS "/roberta-base/vocab.json", p);
    snprintf(p, sizeof p, "%s/merges.txt", d_rob_fb);
    setup |= copy(TOKS "/roberta-base/merges.txt", p);
    snprintf(p, sizeof p, "%s/vocab.json", d_gpt2_fb);
    setup |= copy(TOKS "/gpt2/vocab.json", p);
    snprintf(p, sizeof p, "%s/merges.txt", d_gpt2_fb);
    setup |= copy(TOKS "/gpt2/merges.txt", p);
    snprintf(p, sizeof p, "%s/tokenizer_config.json", d_gpt2_fb);
    setup |= copy(TOKS "/gpt2/tokenizer_config.json", p);
    snprintf(p, sizeof p, "%s/vocab.txt", d_bert_fb);
    setup |= copy(TOKS "/bert-base-uncased/vocab.txt", p);
    snprintf(p, sizeof p, "%s/tokenizer_config.json", d_bert_fb);
    setup |= copy(TOKS "/bert-base-uncased/tokenizer_config.json", p);
    CHECK(setup == 0, "copying fixtures into %s", tmp);

    const struct {
        const char *dir, *name, *label;
    } cases[] = {
        {TOKS "/bert-base-uncased", "bert-base-uncased", "bert-base-uncased"},
        {d_bert_fb, "bert-base-uncased", "bert-base-uncased (vocab.txt)"},
        {TOKS "/gpt2", "gpt2", "gpt2"},
        {TOKS "/gpt2-newformat", "gpt2", "gpt2-newformat"},
        {d_gpt2_fb, "gpt2", "gpt2 (vocab.json+merges.txt)"},
        {TOKS "/pythia-gpt-neox-20b", "pythia-gpt-neox-20b", "pythia-gpt-neox-20b"},
        {d_rob, "roberta-base", "roberta-base"},
        {d_rob_fb, "roberta-base", "roberta-base (vocab.json+merges.txt)"},
        {TOKS "/mistral-7b-v0.1", "mistral-7b-v0.1", "mistral-7b-v0.1"},
    };
    int total = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[1024], label[256];
        snprintf(path, sizeof path, TOKS "/expected_ids/%s.jsonl", cases[i].name);
        total += check_file(cases[i].dir, path, cases[i].label);
        snprintf(path, sizeof path, TOKS "/extra_ids/%s.jsonl", cases[i].name);
        snprintf(label, sizeof label, "%s extra", cases[i].label);
        if (access(path, R_OK) == 0) total += check_file(cases[i].dir, path, label);
    }
    // synthetic tokenizer.json files (tools/gen_tokenizer_ids.js) for components the real fixtures lack
    static const char *const SYNTHETIC[] = {"synthetic-wordpiece", "synthetic-whitespace", "synthetic-split-removed",
                                            "synthetic-split-isolated", "synthetic-split-mergedwithprevious",
                                            "synthetic-split-mergedwithnext", "synthetic-split-contiguous",
                                            "synthetic-unigram-always", "synthetic-unigram-first",
                                            "synthetic-unigram-precompiled"};
    for (size_t i = 0; i < sizeof SYNTHETIC / sizeof SYNTHETIC[0]; i++) {
        char dir[512], path[1024];
        snprintf(dir, sizeof dir, TOKS "/extra_ids/%s", SYNTHETIC[i]);
        snprintf(path, sizeof path, TOKS "/extra_ids/%s.jsonl", SYNTHETIC[i]);
        total += check_file(dir, path, SYNTHETIC[i]);
    }
    // SentencePiece model files without tokenizer.json, against the tokenizer.json transformers' converters build
    // from them (tools/gen_spm_fixtures.py, tools/gen_spm_ids.js); DeBERTa-v2 lowercased with punctuation split
    // shares deberta-v2's spm.model
    char d_deb[512];
    snprintf(d_deb, sizeof d_deb, "%s/deberta-v2-lower-punct", tmp);
    mkdir(d_deb, 0700);
    snprintf(p, sizeof p, "%s/spm.model", d_deb);
    int deb_ok = copy(TOKS "/spm/deberta-v2/spm.model", p) == 0;
    snprintf(p, sizeof p, "%s/tokenizer_config.json", d_deb);
    FILE *f = fopen(p, "w");
    deb_ok &= f != NULL;
    if (f) {
        fputs("{\"tokenizer_class\": \"DebertaV2Tokenizer\", \"do_lower_case\": true, \"split_by_punct\": true}\n", f);
        fclose(f);
    }
    CHECK(deb_ok, "copying spm.model into %s", d_deb);
    static const char *const SPM[] = {"llama-bpe", "llama-bpe-nobf", "llama-unigram", "gemma", "deberta-v2"};
    for (size_t i = 0; i < sizeof SPM / sizeof SPM[0]; i++) {
        char dir[512], path[1024], label[256];
        snprintf(dir, sizeof dir, TOKS "/spm/%s", SPM[i]);
        snprintf(path, sizeof path, TOKS "/spm/%s.jsonl", SPM[i]);
        snprintf(label, sizeof label, "spm %s", SPM[i]);
        total += check_file(dir, path, label);
    }
    total += check_file(d_deb, TOKS "/spm/deberta-v2-lower-punct.jsonl", "spm deberta-v2-lower-punct");
    char d_mis[512];
    snprintf(d_mis, sizeof d_mis, "%s/mistral-spm", tmp);
    mkdir(d_mis, 0700);
    CHECK(mistral_spm(d_mis) == 0, "building a Mistral-shaped tokenizer.model in %s", d_mis);
    total += check_file(d_mis, TOKS "/expected_ids/mistral-7b-v0.1.jsonl", "spm mistral-7b-v0.1 (tokenizer.model)");
    total += check_file(d_mis, TOKS "/extra_ids/mistral-7b-v0.1.jsonl", "spm mistral-7b-v0.1 (tokenizer.model) extra");
    fprintf(stderr, "%d rows checked\n", total);
    // clean up the temporary directory
    const char *files[] = {"roberta-base/tokenizer.json", "roberta-base-files/vocab.json", "roberta-base-files/merges.txt",
                           "gpt2-files/vocab.json", "gpt2-files/merges.txt", "gpt2-files/tokenizer_config.json",
                           "bert-files/vocab.txt", "bert-files/tokenizer_config.json",
                           "deberta-v2-lower-punct/spm.model", "deberta-v2-lower-punct/tokenizer_config.json",
                           "mistral-spm/tokenizer.model", "mistral-spm/tokenizer_config.json"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", tmp, files[i]);
        unlink(p);
    }
    rmdir(d_rob);
    rmdir(d_rob_fb);
    rmdir(d_gpt2_fb);
    rmdir(d_bert_fb);
    rmdir(d_deb);
    rmdir(d_mis);
    rmdir(tmp);
    return tu_finish("tokenizer_expected");
}
