// Bad input gives RLHF_EINPUT with a message naming the problem (invalid UTF-8, unknown component types,
// malformed tokenizer.json, broken merges, missing files); plus truncation, padding, special ids,
// skip-special decoding, saving, and concurrent encoding from many threads.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"
#include "tokenizer/tokenizer.h"

#define TOKS TU_FIXTURES "/tokenizers"

// A small valid tokenizer.json (WordLevel) that each case breaks in one place.
static const char *BASE =
    "{\"normalizer\": %s, \"pre_tokenizer\": %s, \"post_processor\": %s, \"decoder\": %s, \"added_tokens\": [],"
    " \"model\": %s}";
static const char *MODEL_OK = "{\"type\": \"WordLevel\", \"vocab\": {\"a\": 0, \"b\": 1, \"[UNK]\": 2}, \"unk_token\": \"[UNK]\"}";

static void expect_load_error(const char *label, const char *nm, const char *pre, const char *post, const char *dec,
                              const char *model, const char *want) {
    char json[4096];
    snprintf(json, sizeof json, BASE, nm, pre, post, dec, model);
    tokenizer *t = NULL;
    rlhf_err err = {0};
    rlhf_status st = tokenizer_load_json(&t, json, "test.json", &err);
    CHECK(st == RLHF_EINPUT, "%s: status %d (msg %s)", label, st, err.msg);
    CHECK(strstr(err.msg, want) != NULL, "%s: message \"%s\" lacks \"%s\"", label, err.msg, want);
    CHECK(t == NULL, "%s: tokenizer returned on error", label);
    tokenizer_free(t);
}

static void test_load_errors(void) {
    expect_load_error("ok baseline sanity", "null", "null", "null", "null", "{\"type\": \"Nope\"}", "unknown model type \"Nope\"");
    expect_load_error("normalizer", "{\"type\": \"Frobnicate\"}", "null", "null", "null", MODEL_OK,
                      "normalizer: unknown normalizer type \"Frobnicate\"");
    expect_load_error("nested normalizer", "{\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"NFC\"}, {\"type\": \"Bad\"}]}",
                      "null", "null", "null", MODEL_OK, "unknown normalizer type \"Bad\"");
    expect_load_error("pre_tokenizer", "null", "{\"type\": \"Mystery\"}", "null", "null", MODEL_OK,
                      "pre_tokenizer: unknown pre_tokenizer type \"Mystery\"");
    expect_load_error("post_processor", "null", "null", "{\"type\": \"Weird\"}", "null", MODEL_OK,
                      "post_processor: unknown post_processor type \"Weird\"");
    expect_load_error("decoder", "null", "null", "null", "{\"type\": \"Strange\"}", MODEL_OK,
                      "decoder: unknown decoder type \"Strange\"");
    expect_load_error("missing type", "{\"lowercase\": true}", "null", "null", "null", MODEL_OK, "missing string field \"type\"");
    expect_load_error("bad regex", "null", "{\"type\": \"Split\", \"pattern\": {\"Regex\": \"(unclosed\"}, \"behavior\": \"Isolated\"}",
                      "null", "null", MODEL_OK, "invalid regex");
    expect_load_error("bad behavior", "null", "{\"type\": \"Split\", \"pattern\": {\"String\": \" \"}, \"behavior\": \"Sideways\"}",
                      "null", "null", MODEL_OK, "unknown split behavior \"Sideways\"");
    expect_load_error("merge not in vocab", "null", "null", "null", "null",
                      "{\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [\"a c\"]}",
                      "merge 0 uses token \"c\" that is not in the vocab");
    expect_load_error("merge result not in vocab", "null", "null", "null", "null",
                      "{\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [[\"a\", \"b\"]]}",
                      "merge 0 result \"ab\" is not in the vocab");
    expect_load_error("bad merge", "null", "null", "null", "null",
                      "{\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"nospace\"]}", "merge 0");
    expect_load_error("vocab id type", "null", "null", "null", "null", "{\"type\": \"WordLevel\", \"vocab\": {\"a\": \"zero\"}}",
                      "must have an integer id");
    expect_load_error("vocab id range", "null", "null", "null", "null", "{\"type\": \"WordLevel\", \"vocab\": {\"a\": -4}}",
                      "out of range");
    expect_load_error("template special", "null", "null",
                      "{\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"[X]\", \"type_id\": 0}}],"
                      " \"pair\": [], \"special_tokens\": {}}",
                      "null", MODEL_OK, "template special token \"[X]\" missing");

    tokenizer *t = NULL;
    rlhf_err err = {0};
    CHECK(tokenizer_load_json(&t, "{\"model\": {\"type\": \"BPE\", ", "x.json", &err) == RLHF_EINPUT, "truncated JSON");
    CHECK(strstr(err.msg, "x.json: invalid JSON near byte") != NULL, "truncated JSON message: %s", err.msg);
    CHECK(tokenizer_load_json(&t, "[1, 2]", "x.json", &err) == RLHF_EINPUT && strstr(err.msg, "top level"), "array root: %s", err.msg);
    CHECK(tokenizer_load_json(&t, "{\"normalizer\": null}", "x.json", &err) == RLHF_EINPUT &&
              strstr(err.msg, "missing \"model\""), "no model: %s", err.msg);
    CHECK(tokenizer_load(&t, TU_FIXTURES, &err) == RLHF_EINPUT && strstr(err.msg, "no tokenizer files"), "empty dir: %s", err.msg);
    CHECK(tokenizer_load(&t, "/nonexistent/dir", &err) == RLHF_EINPUT, "missing dir: %s", err.msg);
}

static void test_invalid_utf8(const tokenizer *t) {
    tok_encoding e;
    rlhf_err err = {0};
    rlhf_status st = tokenizer_encode(t, "abc\xC3(", NULL, 1, 0, TRUNC_LONGEST_FIRST, &e, &err);
    CHECK(st == RLHF_EINPUT && strstr(err.msg, "invalid UTF-8 at byte 3"), "lone lead byte: %d %s", st, err.msg);
    st = tokenizer_encode(t, "\xED\xA0\x80 surrogate", NULL, 1, 0, TRUNC_LONGEST_FIRST, &e, &err);
    CHECK(st == RLHF_EINPUT && strstr(err.msg, "invalid UTF-8 at byte 0"), "surrogate: %s", err.msg);
    st = tokenizer_encode(t, "overlong \xC0\xAF", NULL, 1, 0, TRUNC_LONGEST_FIRST, &e, &err);
    CHECK(st == RLHF_EINPUT && strstr(err.msg, "at byte 9"), "overlong: %s", err.msg);
    st = tokenizer_encode(t, "fine", "bad \xFF", 1, 0, TRUNC_LONGEST_FIRST, &e, &err);
    CHECK(st == RLHF_EINPUT && strstr(err.msg, "invalid UTF-8 at byte 4 of the text pair"), "pair: %s", err.msg);
}

static int lens_equal(const tokenizer *t, const char *a, const char *b, int max_len, tok_truncation s, int want_n,
                      int want_trunc) {
    tok_encoding e;
    rlhf_err err = {0};
    if (tokenizer_encode(t, a, b, 1, max_len, s, &e, &err) != RLHF_OK) return 0;
    int ok = e.n == want_n && e.truncated == want_trunc;
    // special tokens survive truncation: [CLS] first, [SEP] last
    ok &= e.ids[0] == 101 && e.ids[e.n - 1] == 102;
    tok_encoding_free(&e);
    return ok;
}

static void test_truncation_padding(const tokenizer *bert) {
    const char *a = "one two three four five six seven eight nine ten", *b = "alpha beta gamma";   // 10 and 3 tokens
    CHECK(lens_equal(bert, a, NULL, 0, TRUNC_LONGEST_FIRST, 12, 0), "no truncation");
    CHECK(lens_equal(bert, a, NULL, 6, TRUNC_LONGEST_FIRST, 6, 1), "single truncated to 6");
    CHECK(lens_equal(bert, a, b, 10, TRUNC_LONGEST_FIRST, 10, 1), "pair longest_first to 10");
    CHECK(lens_equal(bert, a, b, 10, TRUNC_ONLY_FIRST, 10, 1), "pair only_first to 10");
    tok_encoding e;
    rlhf_err err = {0};
    // longest_first with 7 tokens of budget: 3 stays 3, the long side gets 4 (HF: n2 = max(n1, max - n1))
    CHECK(tokenizer_encode(bert, a, b, 1, 10, TRUNC_LONGEST_FIRST, &e, &err) == RLHF_OK, "encode");
    int sep = 0;
    for (int i = 0; i < e.n; i++) sep += e.ids[i] == 102;
    CHECK(sep == 2 && e.ids[5] == 102 && e.type_ids[6] == 1 && e.type_ids[5] == 0, "pair layout after truncation");
    tok_encoding_free(&e);
    CHECK(tokenizer_encode(bert, a, b, 1, 10, TRUNC_ONLY_SECOND, &e, &err) == RLHF_EINPUT && strstr(err.msg, "too short"),
          "only_second too short: %s", err.msg);
    CHECK(tokenizer_encode(bert, a, NULL, 1, 10, TRUNC_ONLY_SECOND, &e, &err) == RLHF_EINPUT, "only_second without pair");
    // padding
    CHECK(tokenizer_encode(bert, "hello world", NULL, 1, 0, TRUNC_LONGEST_FIRST, &e, &err) == RLHF_OK, "encode");
    CHECK(tok_encoding_pad(&e, 6, 0, 0, 0, 0, &err) == RLHF_OK && e.n == 6, "pad right to 6");
    CHECK(e.ids[0] == 101 && e.ids[4] == 0 && e.attention_mask[3] == 1 && e.attention_mask[4] == 0, "right padding layout");
    CHECK(tok_encoding_pad(&e, 0, 8, 0, 0, 1, &err) == RLHF_OK && e.n == 8, "pad left to a multiple of 8");
    CHECK(e.ids[0] == 0 && e.ids[2] == 101 && e.attention_mask[1] == 0 && e.attention_mask[2] == 1, "left padding layout");
    tok_encoding_free(&e);
}

static void test_specials_and_decode(const tokenizer *bert) {
    rlhf_err err = {0};
    CHECK(tokenizer_pad_id(bert) == 0 && tokenizer_eos_id(bert) == -1 && tokenizer_bos_id(bert) == -1, "bert special ids");
    CHECK(tokenizer_vocab_size(bert) == 30522, "bert vocab %d", tokenizer_vocab_size(bert));
    CHECK(tokenizer_token_to_id(bert, "[SEP]") == 102 && tokenizer_token_to_id(bert, "hello") == 7592 &&
              tokenizer_token_to_id(bert, "no-such-token") == -1, "token_to_id");
    CHECK(tokenizer_is_special(bert, 101) && !tokenizer_is_special(bert, 7592), "is_special");
    int32_t ids[] = {101, 7592, 2088, 999, 102, 99999};
    char *s = NULL;
    CHECK(tokenizer_decode(bert, ids, 6, 1, &s, &err) == RLHF_OK && !strcmp(s, "hello world!"), "skip special: %s", s);
    free(s);
    CHECK(tokenizer_decode(bert, ids, 6, 0, &s, &err) == RLHF_OK && !strcmp(s, "[CLS] hello world! [SEP]"), "keep: %s", s);
    free(s);
    tokenizer *t = NULL;
    CHECK(tokenizer_load(&t, TOKS "/gpt2", &err) == RLHF_OK, "gpt2: %s", err.msg);
    if (t) {
        CHECK(tokenizer_eos_id(t) == 50256 && tokenizer_bos_id(t) == 50256 && tokenizer_pad_id(t) == -1, "gpt2 specials");
        tokenizer_free(t);
    }
    CHECK(tokenizer_load(&t, TOKS "/gpt2", &err) == RLHF_OK, "gpt2: %s", err.msg);
    if (t) {   // its tokenizer_config.json sets clean_up_tokenization_spaces: transformers' decode cleans " ." etc.
        tok_encoding e;
        CHECK(tokenizer_encode(t, "Hello . I 'm here , ok ?", NULL, 0, 0, TRUNC_LONGEST_FIRST, &e, &err) == RLHF_OK, "encode");
        size_t len;
        CHECK(tokenizer_decode_n(t, e.ids, e.n, 0, &s, &len, &err) == RLHF_OK && !strcmp(s, "Hello . I 'm here , ok ?"), "raw: %s", s);
        free(s);
        CHECK(tokenizer_decode(t, e.ids, e.n, 0, &s, &err) == RLHF_OK && !strcmp(s, "Hello. I'm here, ok?"), "cleaned: %s", s);
        free(s);
        tok_encoding_free(&e);
        tokenizer_free(t);
    }
    CHECK(tokenizer_load(&t, TOKS "/gpt2-newformat", &err) == RLHF_OK, "gpt2-newformat: %s", err.msg);
    if (t) {   // clean_up_tokenization_spaces false
        int32_t hid[] = {15496, 764};   // "Hello", " ."
        CHECK(tokenizer_decode(t, hid, 2, 0, &s, &err) == RLHF_OK && !strcmp(s, "Hello ."), "gpt2-newformat not cleaned: %s", s);
        free(s);
        tokenizer_free(t);
    }
    CHECK(tokenizer_load(&t, TOKS "/mistral-7b-v0.1", &err) == RLHF_OK, "mistral: %s", err.msg);
    if (t) {
        CHECK(tokenizer_eos_id(t) == 2 && tokenizer_bos_id(t) == 1 && tokenizer_pad_id(t) == -1, "mistral specials");
        tokenizer_free(t);
    }
    CHECK(tokenizer_load(&t, TOKS "/pythia-gpt-neox-20b", &err) == RLHF_OK, "pythia: %s", err.msg);
    if (t) {   // no config: GPTNeoXTokenizerFast defaults
        CHECK(tokenizer_eos_id(t) == 0 && tokenizer_bos_id(t) == 0, "pythia specials %d %d", tokenizer_eos_id(t), tokenizer_bos_id(t));
        tokenizer_free(t);
    }
}

static void test_save(const tokenizer *bert) {
    char dir[] = "/tmp/rlhf_tok_save_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char out[600];
    snprintf(out, sizeof out, "%s/model", dir);
    rlhf_err err = {0};
    CHECK(tokenizer_save(bert, out, &err) == RLHF_OK, "save: %s", err.msg);
    tokenizer *t = NULL;
    CHECK(tokenizer_load(&t, out, &err) == RLHF_OK, "reload: %s", err.msg);
    if (t) {
        tok_encoding e;
        CHECK(tokenizer_encode(t, "Hello world", NULL, 1, 0, TRUNC_LONGEST_FIRST, &e, &err) == RLHF_OK && e.n == 4 &&
                  e.ids[1] == 7592, "reloaded encodes");
        tok_encoding_free(&e);
        tokenizer_free(t);
    }
    const char *files[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"};
    for (int i = 0; i < 3; i++) {
        char p[700];
        snprintf(p, sizeof p, "%s/%s", out, files[i]);
        CHECK(access(p, R_OK) == 0, "saved %s", files[i]);
        unlink(p);
    }
    rmdir(out);
    rmdir(dir);
}

#define THREAD_TEXTS 64
static void test_threads(const tokenizer *t) {
    char texts[THREAD_TEXTS][128];
    int32_t first[THREAD_TEXTS], count[THREAD_TEXTS];
    for (int i = 0; i < THREAD_TEXTS; i++) {
        snprintf(texts[i], sizeof texts[i], "thread %d says héllo wörld %d times, 東京 %d!", i, i * 7, i * 13);
        tok_encoding e;
        rlhf_err err = {0};
        tokenizer_encode(t, texts[i], NULL, 1, 0, TRUNC_LONGEST_FIRST, &e, &err);
        first[i] = e.n > 2 ? e.ids[2] : -1;
        count[i] = e.n;
        tok_encoding_free(&e);
    }
    int bad = 0;
#pragma omp parallel for reduction(+ : bad) num_threads(4)
    for (int r = 0; r < THREAD_TEXTS * 8; r++) {
        int i = r % THREAD_TEXTS;
        tok_encoding e;
        rlhf_err err = {0};
        if (tokenizer_encode(t, texts[i], NULL, 1, 0, TRUNC_LONGEST_FIRST, &e, &err) != RLHF_OK) bad++;
        else bad += e.n != count[i] || (e.n > 2 ? e.ids[2] : -1) != first[i];
        tok_encoding_free(&e);
    }
    CHECK(bad == 0, "%d concurrent encodings differ from serial ones", bad);
}

// Inputs that are slow for naive implementations: one huge word (BPE merges, WordPiece length limit), a long
// whitespace run (GPT-2 regex lookahead, Pythia's whitespace added tokens).
#define LONG_INPUT_BYTES 200000
static void test_long_inputs(void) {
    char *s = malloc(LONG_INPUT_BYTES + 1);
    const char *dirs[] = {TOKS "/gpt2", TOKS "/bert-base-uncased", TOKS "/pythia-gpt-neox-20b", TOKS "/mistral-7b-v0.1"};
    for (int d = 0; d < 4; d++) {
        tokenizer *t = NULL;
        rlhf_err err = {0};
        if (tokenizer_load(&t, dirs[d], &err) != RLHF_OK) {
            CHECK(0, "load %s: %s", dirs[d], err.msg);
            continue;
        }
        for (int kind = 0; kind < 2; kind++) {
            for (int i = 0; i < LONG_INPUT_BYTES; i++) s[i] = kind ? ' ' : (char)('a' + (i * 7) % 26);
            s[LONG_INPUT_BYTES] = 0;
            tok_encoding e;
            rlhf_status st = tokenizer_encode(t, s, NULL, 1, 512, TRUNC_LONGEST_FIRST, &e, &err);
            CHECK(st == RLHF_OK && e.n > 0 && e.n <= 512, "%s long %s: %s", dirs[d], kind ? "spaces" : "word", err.msg);
            tok_encoding_free(&e);
        }
        tokenizer_free(t);
    }
    free(s);
}

// transformers' LlamaTokenizerFast rebuilds the template from add_bos_token / add_eos_token.
static void test_llama_add_eos(void) {
    char dir[] = "/tmp/rlhf_tok_llama_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char p[600], cmd[1400];
    snprintf(cmd, sizeof cmd, "cp " TOKS "/mistral-7b-v0.1/tokenizer.json %s/ && sed 's/\"add_eos_token\": false/\"add_eos_token\": true/' "
             TOKS "/mistral-7b-v0.1/tokenizer_config.json > %s/tokenizer_config.json", dir, dir);
    CHECK(system(cmd) == 0, "prepare %s", dir);
    tokenizer *t = NULL;
    rlhf_err err = {0};
    CHECK(tokenizer_load(&t, dir, &err) == RLHF_OK, "load: %s", err.msg);
    if (t) {
        tok_encoding e;
        CHECK(tokenizer_encode(t, "Hello", "world", 1, 0, TRUNC_LONGEST_FIRST, &e, &err) == RLHF_OK, "encode");
        // <s> Hello </s> <s> world </s>, the second half with type id 1
        CHECK(e.n >= 6 && e.ids[0] == 1 && e.ids[e.n - 1] == 2 && e.type_ids[e.n - 1] == 1 && e.type_ids[0] == 0,
              "add_eos_token template: n %d first %d last %d", e.n, e.n ? e.ids[0] : -1, e.n ? e.ids[e.n - 1] : -1);
        int eos = 0;
        for (int i = 0; i < e.n; i++) eos += e.ids[i] == 2;
        CHECK(eos == 2, "two </s> in a pair, got %d", eos);
        tok_encoding_free(&e);
        tokenizer_free(t);
    }
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
    unlink(p);
    rmdir(dir);
}

// SentencePiece model files: a bad file is refused with the file named, the converter by class or model type;
// tokenizer_save copies the model file and the copy loads to the same ids.
static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL, "open %s", path);
    if (!f) return;
    CHECK(fwrite(p, 1, n, f) == n, "write %s", path);
    fclose(f);
}

static void write_text(const char *path, const char *s) {
    write_bytes(path, s, strlen(s));
}

static void expect_spm_error(const char *dir, const char *label, const char *want) {
    tokenizer *t = NULL;
    rlhf_err err = {0};
    rlhf_status st = tokenizer_load(&t, dir, &err);
    CHECK(st == RLHF_EINPUT && strstr(err.msg, want), "%s: want EINPUT with \"%s\", got %d: %s", label, want, st, err.msg);
    tokenizer_free(t);
}

static void test_spm(void) {
    char dir[] = "/tmp/rlhf_tok_spm_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char model[600], cfg[600], mcfg[600], cmd[1400];
    snprintf(model, sizeof model, "%s/tokenizer.model", dir);
    snprintf(cfg, sizeof cfg, "%s/tokenizer_config.json", dir);
    snprintf(mcfg, sizeof mcfg, "%s/config.json", dir);
    write_bytes(model, "not a protobuf", 14);
    expect_spm_error(dir, "garbage", "tokenizer.model: not a SentencePiece model");
    // ModelProto{trainer_spec{model_type: BPE}} without pieces
    static const unsigned char NO_PIECES[] = {0x12, 0x02, 0x18, 0x02};
    write_bytes(model, NO_PIECES, sizeof NO_PIECES);
    expect_spm_error(dir, "no pieces", "has no pieces");
    // pieces {piece: "\xff"}: not UTF-8
    static const unsigned char BAD_UTF8[] = {0x0a, 0x03, 0x0a, 0x01, 0xff};
    write_bytes(model, BAD_UTF8, sizeof BAD_UTF8);
    expect_spm_error(dir, "bad piece", "piece 0 is not valid UTF-8");
    // pieces {piece: "a"} with trainer_spec{model_type: WORD}
    static const unsigned char WORD[] = {0x0a, 0x03, 0x0a, 0x01, 'a', 0x12, 0x02, 0x18, 0x03};
    write_bytes(model, WORD, sizeof WORD);
    expect_spm_error(dir, "WORD model", "model_type 3 (WORD or CHAR) has no transformers converter");
    snprintf(cmd, sizeof cmd, "cp " TOKS "/spm/llama-bpe/tokenizer.model %s", model);
    CHECK(system(cmd) == 0, "copy tokenizer.model");
    write_text(cfg, "{\"tokenizer_class\": \"T5Tokenizer\"}");
    expect_spm_error(dir, "unknown class", "tokenizer_class \"T5Tokenizer\" has no SentencePiece converter");
    unlink(cfg);
    write_text(mcfg, "{\"model_type\": \"t5\"}");
    expect_spm_error(dir, "unknown model_type", "config.json: model_type \"t5\" has no SentencePiece converter");
    unlink(mcfg);
    write_text(cfg, "{\"tokenizer_class\": \"LlamaTokenizer\", \"bos_token\": null}");
    expect_spm_error(dir, "no bos", "add_bos_token is set but the tokenizer has no bos token");
    // no configuration: tokenizer.model is read as Llama's (<s> first); save copies it and reloads the same
    unlink(cfg);
    tokenizer *t = NULL, *t2 = NULL;
    rlhf_err err = {0};
    CHECK(tokenizer_load(&t, dir, &err) == RLHF_OK, "llama-bpe copy: %s", err.msg);
    char out[] = "/tmp/rlhf_tok_spm_save_XXXXXX";
    CHECK(mkdtemp(out) != NULL, "mkdtemp");
    if (t) {
        CHECK(tokenizer_save(t, out, &err) == RLHF_OK, "save: %s", err.msg);
        CHECK(tokenizer_files_present(out), "saved directory has no tokenizer files");
        CHECK(tokenizer_load(&t2, out, &err) == RLHF_OK, "reload: %s", err.msg);
    }
    if (t && t2) {
        tok_encoding a, b;
        const char *text = "Natalia sold 48 clips in April. \xe6\x9d\xb1";
        CHECK(tokenizer_encode(t, text, NULL, 1, 0, TRUNC_LONGEST_FIRST, &a, &err) == RLHF_OK, "encode");
        CHECK(tokenizer_encode(t2, text, NULL, 1, 0, TRUNC_LONGEST_FIRST, &b, &err) == RLHF_OK, "encode saved");
        CHECK(a.n == b.n && a.n > 0 && !memcmp(a.ids, b.ids, (size_t)a.n * sizeof *a.ids) && a.ids[0] == 1,
              "saved tokenizer.model encodes the same (n %d vs %d, first %d)", a.n, b.n, a.n ? a.ids[0] : -1);
        char *dec = NULL;
        CHECK(tokenizer_decode(t, a.ids, a.n, 1, &dec, &err) == RLHF_OK && dec && !strcmp(dec, text),
              "decode round trip: [%s]", dec ? dec : "(null)");
        free(dec);
        tok_encoding_free(&a);
        tok_encoding_free(&b);
    }
    tokenizer_free(t);
    tokenizer_free(t2);
    snprintf(cmd, sizeof cmd, "rm -rf %s %s", dir, out);
    CHECK(system(cmd) == 0, "clean up");
}

int main(void) {
    test_load_errors();
    test_spm();
    test_llama_add_eos();
    test_long_inputs();
    tokenizer *bert = NULL;
    rlhf_err err = {0};
    CHECK(tokenizer_load(&bert, TOKS "/bert-base-uncased", &err) == RLHF_OK, "bert: %s", err.msg);
    if (bert) {
        test_invalid_utf8(bert);
        test_truncation_padding(bert);
        test_specials_and_decode(bert);
        test_save(bert);
        test_threads(bert);
        tokenizer_free(bert);
    }
    return tu_finish("tokenizer_errors");
}
