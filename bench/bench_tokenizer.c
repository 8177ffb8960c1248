// Tokenizer throughput: encodes every review of an IMDB JSONL(.gz) file, single-threaded, with the
// tokenizers given on the command line, and prints one JSON object per tokenizer (seconds, texts/s,
// MB/s, total tokens; the token total lets the caller check the reference encodes the same ids).
// usage: bench_tokenizer FILE.jsonl.gz MAX_TEXTS TOKENIZER_DIR...
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <zlib.h>

#include "tokenizer/tokenizer.h"

#define BENCH_LINE_MAX (1 << 20)

static double clock_s(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s FILE.jsonl.gz MAX_TEXTS TOKENIZER_DIR...\n", argv[0]);
        return 2;
    }
    long max_texts = atol(argv[2]);
    gzFile f = gzopen(argv[1], "rb");
    if (!f) {
        fprintf(stderr, "%s: cannot open\n", argv[1]);
        return 2;
    }
    char *line = malloc(BENCH_LINE_MAX);
    char **texts = NULL;
    long n = 0, cap = 0;
    size_t bytes = 0;
    while ((max_texts <= 0 || n < max_texts) && gzgets(f, line, BENCH_LINE_MAX)) {
        cJSON *row = cJSON_Parse(line);
        const cJSON *t = cJSON_GetObjectItem(row, "text");
        if (cJSON_IsString(t)) {
            if (n == cap) {
                cap = cap ? cap * 2 : 1024;
                texts = realloc(texts, (size_t)cap * sizeof *texts);
            }
            texts[n++] = strdup(t->valuestring);
            bytes += strlen(t->valuestring);
        }
        cJSON_Delete(row);
    }
    gzclose(f);
    free(line);
    for (int a = 3; a < argc; a++) {
        tokenizer *tok;
        rlhf_err err = {0};
        if (tokenizer_load(&tok, argv[a], &err) != RLHF_OK) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        long long tokens = 0;
        double t0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
        for (long i = 0; i < n; i++) {
            tok_encoding e;
            if (tokenizer_encode(tok, texts[i], NULL, 1, 0, TRUNC_LONGEST_FIRST, &e, &err) != RLHF_OK) {
                fprintf(stderr, "text %ld: %s\n", i, err.msg);
                return 1;
            }
            tokens += e.n;
            tok_encoding_free(&e);
        }
        double s = clock_s(CLOCK_MONOTONIC) - t0, cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
        printf("{\"tokenizer\":\"%s\",\"texts\":%ld,\"bytes\":%zu,\"seconds\":%.3f,\"cpu_seconds\":%.3f,"
               "\"texts_per_s\":%.1f,\"mb_per_s\":%.2f,\"tokens\":%lld}\n",
               argv[a], n, bytes, s, cpu, (double)n / s, (double)bytes / s / 1e6, tokens);
        fflush(stdout);
        tokenizer_free(tok);
    }
    for (long i = 0; i < n; i++) free(texts[i]);
    free(texts);
    return 0;
}
