// `rlhf tokenize`: encodes --text (and --text_pair) or every row {"text": ..., "pair": ... | null} of a
// JSONL file with a tokenizer directory, printing one {"input_ids","token_type_ids","attention_mask"}
// object per text in input order. All rows are read and validated before anything is printed; rows are
// encoded in parallel (the tokenizer is immutable and thread-safe).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "io/dataset.h"
#include "io/files.h"
#include "tokenizer/tokenizer.h"

#define TOKENIZE_ROW_CHUNK 16   // rows per OpenMP work item: rows are short, scheduling is dynamic

typedef struct {
    const char *tokenizer_dir, *text, *text_pair, *input, *truncation;
    long long max_length, threads;
    int no_special_tokens;
} tokenize_flags;

static void print_ids(FILE *f, const char *key, const int32_t *v, int n, const char *sep) {
    fprintf(f, "\"%s\":[", key);
    for (int i = 0; i < n; i++) fprintf(f, i ? ",%d" : "%d", v[i]);
    fprintf(f, "]%s", sep);
}

static void print_encoding(FILE *f, const tok_encoding *e) {
    fputc('{', f);
    print_ids(f, "input_ids", e->ids, e->n, ",");
    print_ids(f, "token_type_ids", e->type_ids, e->n, ",");
    print_ids(f, "attention_mask", e->attention_mask, e->n, "");
    fputs("}\n", f);
}

static rlhf_status parse_truncation(const char *s, tok_truncation *out, rlhf_err *err) {
    if (!strcmp(s, "longest_first")) *out = TRUNC_LONGEST_FIRST;
    else if (!strcmp(s, "only_first")) *out = TRUNC_ONLY_FIRST;
    else if (!strcmp(s, "only_second")) *out = TRUNC_ONLY_SECOND;
    else return rlhf_fail(err, RLHF_EINPUT, "--truncation: expected longest_first, only_first or only_second, got '%s'", s);
    return RLHF_OK;
}

// A copy of a dataset string field with JSON \u0000 escapes restored as NUL bytes (see tok_json_protect_nul).
static rlhf_status row_text(const dataset *d, int row, const char *field, int required, char **out, size_t *len,
                            rlhf_err *err) {
    const char *s;
    *out = NULL;
    *len = 0;
    RLHF_TRY(dataset_get_string(d, row, field, required, &s, err));
    if (!s) return RLHF_OK;
    size_t n = strlen(s);
    if (!(*out = malloc(n + 1))) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    memcpy(*out, s, n + 1);
    *len = tok_json_restore_nul(*out);
    return RLHF_OK;
}

static rlhf_status run_file(const tokenize_flags *f, const tokenizer *tok, tok_truncation trunc, rlhf_err *err) {
    char *raw;
    size_t len;
    RLHF_TRY(read_file(f->input, &raw, &len, err));
    char *prot = tok_json_protect_nul(raw);
    free(raw);
    if (!prot) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    dataset d;
    memset(&d, 0, sizeof d);
    rlhf_status st = dataset_load_text(&d, f->input, prot, strlen(prot), err);
    free(prot);
    if (st != RLHF_OK) return st;
    int n = d.n;
    char **text = calloc((size_t)n + 1, sizeof *text), **pair = calloc((size_t)n + 1, sizeof *pair);
    size_t *text_len = calloc((size_t)n + 1, sizeof *text_len), *pair_len = calloc((size_t)n + 1, sizeof *pair_len);
    tok_encoding *enc = calloc((size_t)n + 1, sizeof *enc);
    rlhf_status *row_st = calloc((size_t)n + 1, sizeof *row_st);
    rlhf_err *row_err = calloc((size_t)n + 1, sizeof *row_err);
    if (!text || !pair || !text_len || !pair_len || !enc || !row_st || !row_err) st = rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    for (int i = 0; i < n && st == RLHF_OK; i++) {
        st = row_text(&d, i, "text", 1, &text[i], &text_len[i], err);
        if (st == RLHF_OK) st = row_text(&d, i, "pair", 0, &pair[i], &pair_len[i], err);
    }
    if (st == RLHF_OK) {
#pragma omp parallel for schedule(dynamic, TOKENIZE_ROW_CHUNK)
        for (int i = 0; i < n; i++)
            row_st[i] = tokenizer_encode_n(tok, text[i], text_len[i], pair[i], pair_len[i], !f->no_special_tokens,
                                           (int)f->max_length, trunc, &enc[i], &row_err[i]);
        for (int i = 0; i < n && st == RLHF_OK; i++)
            if (row_st[i] != RLHF_OK) st = rlhf_fail(err, row_st[i], "%s:%d: %s", d.path, d.lines[i], row_err[i].msg);
    }
    if (st == RLHF_OK) {
        for (int i = 0; i < n; i++) print_encoding(stdout, &enc[i]);
        if (fflush(stdout) != 0) st = rlhf_fail(err, RLHF_ERUNTIME, "writing stdout failed");
    }
    for (int i = 0; i < n; i++) {
        if (text) free(text[i]);
        if (pair) free(pair[i]);
        if (enc) tok_encoding_free(&enc[i]);
    }
    free(text);
    free(pair);
    free(text_len);
    free(pair_len);
    free(enc);
    free(row_st);
    free(row_err);
    dataset_free(&d);
    return st;
}

static rlhf_status run_tokenize(const tokenize_flags *f, rlhf_err *err) {
    if (!f->tokenizer_dir) return rlhf_fail(err, RLHF_EINPUT, "--tokenizer DIR is required");
    if (!f->text == !f->input) return rlhf_fail(err, RLHF_EINPUT, "give exactly one of --text or --input");
    if (f->text_pair && !f->text) return rlhf_fail(err, RLHF_EINPUT, "--text_pair needs --text (with --input, rows carry \"pair\")");
    if (f->max_length < 0) return rlhf_fail(err, RLHF_EINPUT, "--max_length must be >= 0, got %lld", f->max_length);
    tok_truncation trunc = TRUNC_LONGEST_FIRST;
    RLHF_TRY(parse_truncation(f->truncation, &trunc, err));
    tokenizer *tok;
    RLHF_TRY(tokenizer_load(&tok, f->tokenizer_dir, err));
    rlhf_status st;
    if (f->text) {
        tok_encoding e;
        st = tokenizer_encode(tok, f->text, f->text_pair, !f->no_special_tokens, (int)f->max_length, trunc, &e, err);
        if (st != RLHF_OK) rlhf_err_prefix(err, "--text: ");
        else {
            print_encoding(stdout, &e);
            tok_encoding_free(&e);
        }
    } else {
        st = run_file(f, tok, trunc, err);
    }
    tokenizer_free(tok);
    return st;
}

int cmd_tokenize(int argc, char **argv) {
    tokenize_flags f;
    memset(&f, 0, sizeof f);
    arg_spec specs[] = {
        {"tokenizer", ARG_STRING, &f.tokenizer_dir, NULL,
         "tokenizer directory (tokenizer.json, or vocab.txt, or vocab.json + merges.txt, or tokenizer.model / spm.model)", NULL, 0},
        {"text", ARG_STRING, &f.text, NULL, "one text to encode", NULL, 0},
        {"text_pair", ARG_STRING, &f.text_pair, NULL, "second text of a pair (with --text)", NULL, 0},
        {"input", ARG_STRING, &f.input, NULL, "JSONL rows {\"text\": str, \"pair\": str or null (optional)}", NULL, 0},
        {"no_special_tokens", ARG_BOOL, &f.no_special_tokens, "false", "encode without special tokens (add_special_tokens=False)", NULL, 0},
        {"max_length", ARG_INT, &f.max_length, "0", "truncate to this many tokens (0 = no truncation)", NULL, 0},
        {"truncation", ARG_STRING, &f.truncation, "longest_first", "longest_first | only_first | only_second", NULL, 0},
        {"threads", ARG_INT, &f.threads, "0", "threads (0 = all cores)", NULL, 0},
    };
    const int n = (int)(sizeof specs / sizeof specs[0]);
    rlhf_err err = {0};
    int parsed = cli_parse_flags("tokenize", "usage: rlhf tokenize --tokenizer DIR (--text T [--text_pair T2] | --input FILE.jsonl) [flags]\n"
                        "  prints {\"input_ids\",\"token_type_ids\",\"attention_mask\"} per text, one JSON object a line", specs, n, argc, argv);
    if (parsed >= 0) return parsed;
    cli_set_threads(f.threads);
    rlhf_status st = run_tokenize(&f, &err);
    return cli_report("tokenize", st, err.msg);
}
