// libFuzzer target for SentencePiece model files (tokenizer.model / spm.model without tokenizer.json): the input
// is written as the model file of a directory configured for each converter (Llama, Gemma, DeBERTa-v2), loaded
// (protobuf-c parse, piece checks, merge generation, tokenizer.json tree), and when it loads, fixed texts are
// encoded and decoded. Nothing may crash, leak or trip a sanitizer; errors must come back as statuses.
// Build: tests/fuzz/build.sh; run from the repo root: build-fuzz/fuzz_spm -max_total_time=60 tests/fuzz/corpus/spm
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tokenizer/tokenizer.h"

#define FUZZ_N_DIRS 3
static char dirs[FUZZ_N_DIRS][64];   // fuzz harness state: created once, one per converter
static const char *const FILES[FUZZ_N_DIRS] = {"tokenizer.model", "tokenizer.model", "spm.model"};

static void write_file(const char *dir, const char *name, const void *p, size_t n) {
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (n && fwrite(p, 1, n, f) != n) abort();
    fclose(f);
}

static void cleanup(void) {
    for (int i = 0; i < FUZZ_N_DIRS; i++) {
        char path[128];
        snprintf(path, sizeof path, "%s/%s", dirs[i], FILES[i]);
        unlink(path);
        snprintf(path, sizeof path, "%s/tokenizer_config.json", dirs[i]);
        unlink(path);
        rmdir(dirs[i]);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    static const char *const CFG[FUZZ_N_DIRS] = {
        "{\"tokenizer_class\": \"LlamaTokenizer\", \"add_eos_token\": true}",
        "{\"tokenizer_class\": \"GemmaTokenizer\"}",
        "{\"tokenizer_class\": \"DebertaV2Tokenizer\", \"do_lower_case\": true, \"split_by_punct\": true}"};
    for (int i = 0; i < FUZZ_N_DIRS; i++) {
        snprintf(dirs[i], sizeof dirs[i], "/tmp/rlhf_fuzz_spm_XXXXXX");
        if (!mkdtemp(dirs[i])) abort();
        write_file(dirs[i], "tokenizer_config.json", CFG[i], strlen(CFG[i]));
    }
    atexit(cleanup);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *const TEXTS[] = {"Hello world", "  two  spaces\tand a tab", "<s>[CLS]<0x41> \xe6\x9d\xb1\xf0\x9f\x98\x80", ""};
    for (int i = 0; i < FUZZ_N_DIRS; i++) {
        write_file(dirs[i], FILES[i], data, size);
        tokenizer *t = NULL;
        rlhf_err err = {0};
        if (tokenizer_load(&t, dirs[i], &err) != RLHF_OK) continue;
        for (size_t k = 0; k < sizeof TEXTS / sizeof TEXTS[0]; k++) {
            tok_encoding e;
            if (tokenizer_encode(t, TEXTS[k], k ? TEXTS[k - 1] : NULL, 1, 0, TRUNC_LONGEST_FIRST, &e, &err) != RLHF_OK) continue;
            char *s = NULL;
            if (tokenizer_decode(t, e.ids, e.n, 0, &s, &err) == RLHF_OK) free(s);
            tok_encoding_free(&e);
        }
        tokenizer_free(t);
    }
    return 0;
}
