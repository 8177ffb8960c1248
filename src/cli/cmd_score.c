// `rlhf score`: the reward of one (prompt, response), or of every row of a dataset. Pair rows give
// {"chosen_score","rejected_score"}, single rows {"score"}; the last stdout line is a JSON summary
// {"n","accuracy","margin_mean","reward_mean","reward_std"}. Rewards are read as the contract says:
// a 1-label head's logit, a 2-label head's softmax probability of label 1.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "io/dataset.h"
#include "io/files.h"
#include "models/peft.h"
#include "train/preference_data.h"
#include "train/reward_scoring.h"
#include "train/trainer_common.h"

#define CMD "score"

typedef struct {
    const char *model, *prompt, *response, *dataset, *output_file, *encoding;
    const char *quant_type, *compute_dtype;
    long long max_length, batch_size, threads;
    int load_in_4bit, double_quant, normalize_reward;
} score_flags;

static const char USAGE[] =
    "usage: rlhf score --model_name_or_path DIR (--prompt P --response R | --dataset_name FILE) [flags]\n"
    "Scores responses with a reward model: a 1-label head gives its logit, a 2-label head the probability of label 1.";

// Fills at most cap specs and returns how many the command has (more than cap: the array is too small).
static int build_specs(arg_spec *s, int cap, score_flags *f) {
    int n = 0;
#define F(name, type, dest, def, help) \
    do { if (n < cap) s[n] = (arg_spec){name, type, dest, def, help, NULL, 0}; n++; } while (0)
    F("model_name_or_path", ARG_STRING, &f->model, NULL, "reward model directory (HF layout, required)");
    F("prompt", ARG_STRING, &f->prompt, NULL, "prompt of the one response to score (with --response)");
    F("response", ARG_STRING, &f->response, NULL, "the response to score; prints the reward alone");
    F("dataset_name", ARG_STRING, &f->dataset, NULL, "rows with prompt/chosen/rejected, prompt/response, "
                                                       "prompt/completion (rlhf generate's output), "
                                                       "chosen_ids/rejected_ids or input_ids");
    F("output_file", ARG_STRING, &f->output_file, NULL, "write the per-row scores here (JSONL) instead of stdout");
    F("max_length", ARG_INT, &f->max_length, "0", "longest sequence in tokens (0: the max_length the model was "
                                                   "trained with, from config.json's rlhf_max_length, else its limit)");
    F("per_device_eval_batch_size", ARG_INT, &f->batch_size, "8", "rows per forward pass");
    F("encoding", ARG_STRING, &f->encoding, NULL, "encoders: pair (tokenizer(prompt, response)) or concat "
                                                   "(default: as the model was trained, from config.json, else pair)");
    F("normalize_reward", ARG_BOOL, &f->normalize_reward, NULL, "return (r - mean) / std with the mean and std "
                                                                 "`rlhf reward` saved in config.json (OpenRLHF)");
    F("threads", ARG_INT, &f->threads, "0", "CPU threads (0: all cores)");
    F("load_in_4bit", ARG_BOOL, &f->load_in_4bit, NULL, "score with 4-bit backbone weights (bitsandbytes NF4/FP4)");
    F("bnb_4bit_quant_type", ARG_STRING, &f->quant_type, "nf4", "nf4 | fp4");
    F("bnb_4bit_use_double_quant", ARG_BOOL, &f->double_quant, NULL, "quantize the quantization constants");
    F("bnb_4bit_compute_dtype", ARG_STRING, &f->compute_dtype, "float32", "bfloat16 | float32");
#undef F
    return n;
}

static rlhf_status validate(const score_flags *f, rlhf_err *err) {
    if (!f->model) return rlhf_fail(err, RLHF_EINPUT, "--model_name_or_path is required");
    if (f->dataset && (f->prompt || f->response))
        return rlhf_fail(err, RLHF_EINPUT, "give either --dataset_name or --prompt/--response, not both");
    if (!f->dataset && !f->response)
        return rlhf_fail(err, RLHF_EINPUT, "give --dataset_name FILE, or --prompt P --response R");
    if (f->prompt && !f->response) return rlhf_fail(err, RLHF_EINPUT, "--prompt needs --response");
    if (f->max_length < 0) return rlhf_fail(err, RLHF_EINPUT, "--max_length must be >= 0, got %lld", f->max_length);
    if (f->batch_size < 1 || f->batch_size > 1 << 20)
        return rlhf_fail(err, RLHF_EINPUT, "--per_device_eval_batch_size must be in [1, %d]", 1 << 20);
    if (f->threads < 0) return rlhf_fail(err, RLHF_EINPUT, "--threads must be >= 0");
    if (f->encoding && strcmp(f->encoding, "pair") && strcmp(f->encoding, "concat"))
        return rlhf_fail(err, RLHF_EINPUT, "--encoding: expected pair or concat, got '%s'", f->encoding);
    if (f->output_file && !f->dataset) return rlhf_fail(err, RLHF_EINPUT, "--output_file needs --dataset_name");
    return RLHF_OK;
}

typedef struct {
    char *s;
    size_t len, cap;
} out_buf;

static int ob_printf(out_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#include <stdarg.h>
static int ob_printf(out_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (w < 0) return 0;
    if (b->len + (size_t)w + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + (size_t)w + 1) cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) return 0;
        b->s = p;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, (size_t)w + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)w;
    return 1;
}

static void json_num(char *buf, size_t n, double v) {
    if (isfinite(v)) snprintf(buf, n, "%.9g", v);
    else snprintf(buf, n, "null");
}

static rlhf_status run(const score_flags *f, rlhf_err *err) {
    RLHF_TRY(validate(f, err));
    cli_set_threads(f->threads);
    model *m = NULL;
    tokenizer *tok = NULL;
    peft_options po;  // --load_in_4bit: a frozen 4-bit backbone, quantized while loading
    peft_options_default(&po);
    po.load_in_4bit = f->load_in_4bit;
    po.double_quant = f->double_quant;
    RLHF_TRY(nf4_quant_type_parse(f->quant_type, &po.quant_type, err));
    RLHF_TRY(nf4_compute_parse(f->compute_dtype, &po.compute, err));
    RLHF_TRY(reward_model_load_scoring(&m, &tok, f->model, f->load_in_4bit ? &po : NULL, err));
    pref_opts o;
    pref_encoding enc = PREF_ENCODING_PAIR;
    reward_encoding_parse(f->encoding, m, &enc, err);  // the value was validated with the flags
    // --max_length 0: the length the model was trained with when it records one (rlhf reward does), else its limit
    int max_length = f->max_length > 0 ? (int)f->max_length : reward_max_length_of(m);
    pref_opts_for_model(&o, m, tok, max_length, enc, f->model);
    o.allow_single = 1;
    o.allow_empty_response = !f->dataset;  // one explicit --response "" is scored; an empty dataset row is a mistake
    pref_set set = {0};
    dataset d = {0};
    rlhf_status s;
    if (f->dataset) {
        s = dataset_load(&d, f->dataset, err);
        if (!s) s = pref_set_build(&set, &d, &o, err);
        dataset_free(&d);
    } else {  // one row {"prompt", "response"} through the same reader as dataset rows
        cJSON *row = cJSON_CreateObject();
        cJSON *rows[1] = {row};
        int lines[1] = {1};
        char where[] = "--response";
        if (f->prompt) cJSON_AddStringToObject(row, "prompt", f->prompt);
        cJSON_AddStringToObject(row, "response", f->response);
        dataset one = {.rows = rows, .lines = lines, .n = 1, .path = where};
        s = pref_set_build(&set, &one, &o, err);
        cJSON_Delete(row);
    }
    double *chosen = NULL, *rejected = NULL;
    out_buf out = {0};
    if (!s) {
        chosen = calloc((size_t)set.n, sizeof(double));
        rejected = calloc((size_t)set.n, sizeof(double));
        if (!chosen || !rejected) s = rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    }
    reward_norm norm = {0};
    if (!s) s = reward_norm_load(&norm, m, f->normalize_reward, f->model, err);
    if (!s) s = reward_score_set(m, &set, (int)f->batch_size, chosen, rejected, err);
    for (int r = 0; !s && norm.on && r < set.n; r++) {
        chosen[r] = reward_norm_apply(&norm, chosen[r]);
        if (set.rows[r].is_pair) rejected[r] = reward_norm_apply(&norm, rejected[r]);
    }
    if (!s && !f->dataset) {
        printf("%.9g\n", chosen[0]);
    } else if (!s) {
        long pairs = 0, correct = 0, n_scores = 0;
        double margin_sum = 0, sum = 0, sumsq = 0;
        char a[40], b[40];
        for (int r = 0; r < set.n && !s; r++) {
            int ok;
            json_num(a, sizeof a, chosen[r]);
            if (set.rows[r].is_pair) {
                json_num(b, sizeof b, rejected[r]);
                ok = ob_printf(&out, "{\"chosen_score\": %s, \"rejected_score\": %s}\n", a, b);
                pairs++;
                correct += chosen[r] > rejected[r];
                margin_sum += chosen[r] - rejected[r];
                sum += chosen[r] + rejected[r];
                sumsq += chosen[r] * chosen[r] + rejected[r] * rejected[r];
                n_scores += 2;
            } else {
                ok = ob_printf(&out, "{\"score\": %s}\n", a);
                sum += chosen[r];
                sumsq += chosen[r] * chosen[r];
                n_scores++;
            }
            if (!ok) s = rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
        }
        if (!s && f->output_file) s = atomic_write(f->output_file, out.s ? out.s : "", out.len, err);
        if (!s) {
            if (!f->output_file && out.s) fputs(out.s, stdout);
            double mean = sum / (double)n_scores, var = sumsq / (double)n_scores - mean * mean;
            char acc[40], mm[40], rm[40], rs[40];
            json_num(acc, sizeof acc, pairs ? (double)correct / (double)pairs : NAN);
            json_num(mm, sizeof mm, pairs ? margin_sum / (double)pairs : NAN);
            json_num(rm, sizeof rm, mean);
            json_num(rs, sizeof rs, sqrt(var > 0 ? var : 0));
            if (set.n_truncated)
                fprintf(stderr, "rlhf score: %d rows truncated to %d tokens\n", set.n_truncated, o.max_length);
            cli_chat_fallback_notice("score", set.n_plain_chat, o.is_decoder, f->model);
            printf("{\"n\": %d, \"pairs\": %ld, \"accuracy\": %s, \"margin_mean\": %s, \"reward_mean\": %s, "
                   "\"reward_std\": %s}\n", set.n, pairs, acc, mm, rm, rs);
        }
    }
    free(out.s);
    free(chosen);
    free(rejected);
    pref_set_free(&set);
    if (tok) tokenizer_free(tok);
    model_free(m);
    return s;
}

int cmd_score(int argc, char **argv) {
    score_flags f;
    memset(&f, 0, sizeof f);
    arg_spec specs[20];
    const int cap = (int)(sizeof specs / sizeof specs[0]);
    int n = build_specs(specs, cap, &f);
    if (n > cap) return cli_report(CMD, RLHF_ERUNTIME, "internal error: more flags than the flag table holds");
    rlhf_err err;
    rlhf_err_clear(&err);
    int parsed = cli_parse_flags(CMD, USAGE, specs, n, argc, argv);
    if (parsed >= 0) return parsed;
    rlhf_status s = run(&f, &err);
    return cli_report(CMD, s, err.msg);
}
