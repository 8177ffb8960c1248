// libFuzzer target for the tokenizer: the input is tried as a tokenizer.json (loader and, when it loads,
// encode/decode of fixed texts and of the input itself) and as text for the bundled BERT, GPT-2 and
// Mistral tokenizers (encode with and without a pair and truncation, then decode). Nothing may crash,
// leak or trip a sanitizer; errors must come back as statuses.
// Run (from the repo root): clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Isrc tests/fuzz/fuzz_tokenizer.c $(ls src/tokenizer/*.c | grep -v tokenizer_save) src/base/error.c -lcjson -lpcre2-8 -lutf8proc -o /tmp/fuzz_tokenizer && /tmp/fuzz_tokenizer -max_total_time=60 tests/fuzz/corpus/tokenizer
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer.h"

#define FUZZ_N_TOKENIZERS 3
static tokenizer *loaded[FUZZ_N_TOKENIZERS];   // fuzz harness state: loaded once, read-only afterwards

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *dirs[FUZZ_N_TOKENIZERS] = {"tests/fixtures/tokenizers/bert-base-uncased", "tests/fixtures/tokenizers/gpt2",
                                           "tests/fixtures/tokenizers/mistral-7b-v0.1"};
    for (int i = 0; i < FUZZ_N_TOKENIZERS; i++) {
        rlhf_err err = {0};
        if (tokenizer_load(&loaded[i], dirs[i], &err) != RLHF_OK) loaded[i] = NULL;   // run from the repo root
    }
    return 0;
}

static void roundtrip(const tokenizer *t, const char *text, size_t n, const char *pair, size_t pn) {
    tok_encoding e;
    rlhf_err err = {0};
    for (int special = 0; special < 2; special++) {
        if (tokenizer_encode_n(t, text, n, pair, pn, special, special ? 7 : 0, TRUNC_LONGEST_FIRST, &e, &err) != RLHF_OK)
            continue;
        char *s = NULL;
        size_t len;
        if (tokenizer_decode_n(t, e.ids, e.n, special, &s, &len, &err) == RLHF_OK) free(s);
        tok_encoding_free(&e);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *buf = malloc(size + 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = 0;
    // as text (a NUL byte splits text and pair)
    size_t first = strlen(buf);
    const char *pair = first < size ? buf + first + 1 : NULL;
    size_t pn = pair ? size - first - 1 : 0;
    for (int i = 0; i < FUZZ_N_TOKENIZERS; i++)
        if (loaded[i]) {
            roundtrip(loaded[i], buf, size, NULL, 0);
            roundtrip(loaded[i], buf, first, pair, pn);
        }
    // as tokenizer.json
    tokenizer *t = NULL;
    rlhf_err err = {0};
    if (tokenizer_load_json(&t, buf, "fuzz.json", &err) == RLHF_OK) {
        static const char *texts[] = {"Hello world", "  ab  c\t\n", "日本語 😀 naïve", "<s>x</s>[CLS]", ""};
        for (size_t k = 0; k < sizeof texts / sizeof texts[0]; k++) roundtrip(t, texts[k], strlen(texts[k]), "pair", 4);
        roundtrip(t, buf, first, NULL, 0);
        int32_t ids[] = {0, 1, 2, 3, -1, 1 << 30};
        char *s = NULL;
        size_t len;
        if (tokenizer_decode_n(t, ids, 6, 0, &s, &len, &err) == RLHF_OK) free(s);
        tokenizer_free(t);
    }
    free(buf);
    return 0;
}
