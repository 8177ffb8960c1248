// `rlhf generate`: completions from a causal LM for one --prompt or a dataset of prompt rows
// ({"prompt": str} encoded with the model directory's tokenizer, or pre-tokenized {"prompt_ids": [...]}
// used as given, which needs no tokenizer). Every row is read and validated before any generation;
// batches are left-padded as HF generate pads them and give the same tokens as one prompt at a time.
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "io/dataset.h"
#include "io/files.h"
#include "models/model.h"
#include "models/peft.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "train/chat_rows.h"
#include "train/generate.h"

#define GEN_DEFAULT_SEED "42"  // TrainingArguments.seed

typedef struct {
    const char *model_dir, *prompt, *dataset, *stop_token, *output_file;
    long long max_new_tokens, top_k, seed, num_return_sequences, batch_size, threads, max_prompt_length;
    double temperature, top_p;
    int do_sample;
} gen_flags;

typedef struct {
    int n;
    int32_t **ids;
    int *lens;
    int *pretokenized;   // row came as prompt_ids
    const char **text;   // the prompt text (NULL for pre-tokenized rows)
    char **rendered;     // chat-template renderings of conversational prompts (owned), else NULL
} prompt_set;

static void prompts_free(prompt_set *p) {
    for (int i = 0; i < p->n; i++) free(p->ids[i]);
    for (int i = 0; p->rendered && i < p->n; i++) free(p->rendered[i]);
    free(p->rendered);
    free(p->ids);
    free(p->lens);
    free(p->pretokenized);
    free(p->text);
    memset(p, 0, sizeof *p);
}

// special: add the tokenizer's special tokens (plain text); a chat-template rendering carries its own.
static rlhf_status encode_prompt(const tokenizer *tok, const char *text, int special, const char *where, int32_t **ids,
                                 int *n, rlhf_err *err) {
    if (!tok)
        return rlhf_fail(err, RLHF_EINPUT,
                         "%s: a text prompt needs tokenizer files in --model_name_or_path (or give \"prompt_ids\")",
                         where);
    tok_encoding e;
    rlhf_status st = tokenizer_encode(tok, text, NULL, special, 0, TRUNC_LONGEST_FIRST, &e, err);
    if (st != RLHF_OK) return rlhf_err_prefix(err, "%s: ", where);
    if (e.n == 0) {
        tok_encoding_free(&e);
        return rlhf_fail(err, RLHF_EINPUT, "%s: the prompt encodes to no tokens", where);
    }
    *ids = malloc(sizeof(int32_t) * (size_t)e.n);
    if (!*ids) {
        tok_encoding_free(&e);
        return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    }
    memcpy(*ids, e.ids, sizeof(int32_t) * (size_t)e.n);
    *n = e.n;
    tok_encoding_free(&e);
    return RLHF_OK;
}

// Rows {"prompt": str}, {"prompt": [messages]} (rendered by the model's chat template with the
// generation prompt, as TRL's maybe_apply_chat_template) or {"prompt_ids": [...]}.
static rlhf_status read_prompts(const gen_flags *f, const dataset *d, const tokenizer *tok, const chat_template *chat,
                                int vocab, prompt_set *p, rlhf_err *err) {
    int n = d ? d->n : 1;
    p->ids = calloc((size_t)n, sizeof *p->ids);
    p->lens = calloc((size_t)n, sizeof *p->lens);
    p->pretokenized = calloc((size_t)n, sizeof *p->pretokenized);
    p->text = calloc((size_t)n, sizeof *p->text);
    p->rendered = calloc((size_t)n, sizeof *p->rendered);
    if (!p->ids || !p->lens || !p->pretokenized || !p->text || !p->rendered)
        return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    p->n = n;
    if (!d) {
        p->text[0] = f->prompt;
        return encode_prompt(tok, f->prompt, 1, "--prompt", &p->ids[0], &p->lens[0], err);
    }
    for (int i = 0; i < n; i++) {
        char where[4200];
        snprintf(where, sizeof where, "%s:%d", d->path, d->lines[i]);
        RLHF_TRY(dataset_get_ids(d, i, "prompt_ids", 0, vocab, &p->ids[i], &p->lens[i], err));
        if (p->ids[i]) {
            if (p->lens[i] == 0) return rlhf_fail(err, RLHF_EINPUT, "%s: field 'prompt_ids' is empty", where);
            p->pretokenized[i] = 1;
            continue;
        }
        const char *text;
        int is_chat = chat_field_is_messages(d, i, "prompt");
        if (is_chat) {
            RLHF_TRY(chat_render_row(d, i, "prompt", NULL, chat, 1, f->model_dir, &p->rendered[i], err));
            text = p->rendered[i];
        } else {
            RLHF_TRY(dataset_get_string(d, i, "prompt", 1, &text, err));
        }
        p->text[i] = text;
        RLHF_TRY(encode_prompt(tok, text, !is_chat, where, &p->ids[i], &p->lens[i], err));
        for (int t = 0; t < p->lens[i]; t++)
            if (p->ids[i][t] >= vocab)
                return rlhf_fail(err, RLHF_EINPUT, "%s: token id %d from the tokenizer is outside the model's vocabulary (%d)",
                                 where, p->ids[i][t], vocab);
    }
    return RLHF_OK;
}

// --stop_token: "eos" (the model's, else the tokenizer's EOS), "none", a token id, or a token string.
static rlhf_status resolve_stop(const gen_flags *f, const model *m, const tokenizer *tok, int *eos, int *stop,
                                rlhf_err *err) {
    *eos = *stop = -1;
    const char *s = f->stop_token;
    if (!strcmp(s, "none")) return RLHF_OK;
    if (!strcmp(s, "eos")) {
        *eos = m->cfg.eos_token_id >= 0 ? m->cfg.eos_token_id : (tok ? tokenizer_eos_id(tok) : -1);
        return RLHF_OK;
    }
    char *end;
    long v = strtol(s, &end, 10);
    if (*s && !*end) {
        if (v < 0 || v >= m->cfg.vocab_size)
            return rlhf_fail(err, RLHF_EINPUT, "--stop_token %s: token id outside [0, %d)", s, m->cfg.vocab_size);
        *stop = (int)v;
        return RLHF_OK;
    }
    int id = tok ? tokenizer_token_to_id(tok, s) : -1;
    if (id < 0)
        return rlhf_fail(err, RLHF_EINPUT, "--stop_token '%s': expected eos, none, a token id or a token of the vocabulary", s);
    *stop = id;
    return RLHF_OK;
}

static char *decode_or_null(const tokenizer *tok, const int32_t *ids, int n, rlhf_err *err, rlhf_status *st) {
    if (!tok) return NULL;
    char *s = NULL;
    *st = tokenizer_decode(tok, ids, n, 1, &s, err);
    return s;
}

static rlhf_status run_generate(const gen_flags *f, rlhf_err *err) {
    if (!f->model_dir) return rlhf_fail(err, RLHF_EINPUT, "--model_name_or_path is required");
    if (!!f->prompt == !!f->dataset) return rlhf_fail(err, RLHF_EINPUT, "give exactly one of --prompt and --dataset_name");
    if (f->max_new_tokens < 1) return rlhf_fail(err, RLHF_EINPUT, "--max_new_tokens must be >= 1, got %lld", f->max_new_tokens);
    if (f->batch_size < 1) return rlhf_fail(err, RLHF_EINPUT, "--batch_size must be >= 1, got %lld", f->batch_size);
    if (f->num_return_sequences < 1)
        return rlhf_fail(err, RLHF_EINPUT, "--num_return_sequences must be >= 1, got %lld", f->num_return_sequences);
    if (!(f->temperature > 0)) return rlhf_fail(err, RLHF_EINPUT, "--temperature must be > 0, got %g", f->temperature);
    if (f->top_k < 0) return rlhf_fail(err, RLHF_EINPUT, "--top_k must be >= 0, got %lld", f->top_k);
    if (!(f->top_p > 0 && f->top_p <= 1)) return rlhf_fail(err, RLHF_EINPUT, "--top_p must be in (0, 1], got %g", f->top_p);
    if (f->seed < 0) return rlhf_fail(err, RLHF_EINPUT, "--seed must be >= 0");
    if (!dir_exists(f->model_dir)) return rlhf_fail(err, RLHF_EINPUT, "--model_name_or_path %s: not a directory", f->model_dir);

    dataset d;
    memset(&d, 0, sizeof d);
    if (f->dataset) RLHF_TRY(dataset_load(&d, f->dataset, err));
    model *m = NULL;
    tokenizer *tok = NULL;
    chat_template *chat = NULL;
    prompt_set p;
    memset(&p, 0, sizeof p);
    gen_output o;
    memset(&o, 0, sizeof o);
    char *buf = NULL;
    size_t len = 0, cap = 0;
    model_load_opts opts = {.quiet = 0, .init_seed = (uint64_t)f->seed};
    int n_trunc = 0;
    // A peft adapter directory (`rlhf sft/ppo --use_peft`) loads as its base with the adapter applied.
    rlhf_status st = peft_load_model_dir(&m, f->model_dir, HEAD_LM, NULL, &opts, err);
    if (st == RLHF_OK) {
        rlhf_err terr = {0};
        if (tokenizer_load(&tok, f->model_dir, &terr) != RLHF_OK) {
            tok = NULL;  // only text prompts need one; a directory that has tokenizer files must load
            if (tokenizer_files_present(f->model_dir)) {
                *err = terr;
                st = terr.code ? terr.code : RLHF_EINPUT;
            }
        }
        if (st == RLHF_OK && tok) st = tokenizer_check_model_vocab(tok, m->cfg.vocab_size, f->model_dir, err);
        if (st == RLHF_OK && tok) st = chat_template_load_dir(&chat, f->model_dir, err);
        if (st == RLHF_OK) st = read_prompts(f, f->dataset ? &d : NULL, tok, chat, m->cfg.vocab_size, &p, err);
        // An over-long prompt keeps its last tokens (TRL truncates prompts from the left to max_prompt_length):
        // to --max_prompt_length, and so that it and --max_new_tokens fit a learned position table.
        long long limit = f->max_prompt_length > 0 ? f->max_prompt_length : LLONG_MAX;
        if (st == RLHF_OK && m->cfg.max_positions > 0 && m->cfg.max_positions - f->max_new_tokens < limit) {
            limit = m->cfg.max_positions - f->max_new_tokens;
            if (limit < 1)
                st = rlhf_fail(err, RLHF_EINPUT, "--max_new_tokens %lld leaves no room for a prompt in the model's %d "
                               "positions", f->max_new_tokens, m->cfg.max_positions);
        }
        for (int i = 0; st == RLHF_OK && i < p.n; i++)
            if (p.lens[i] > limit) {
                memmove(p.ids[i], p.ids[i] + (p.lens[i] - limit), sizeof(int32_t) * (size_t)limit);
                p.lens[i] = (int)limit;
                n_trunc++;
            }
        if (n_trunc)
            fprintf(stderr, "rlhf generate: %d of %d prompts truncated from the left to %lld tokens (%s)\n", n_trunc,
                    p.n, limit, f->max_prompt_length == limit ? "--max_prompt_length"
                                                               : "the model's positions less --max_new_tokens");
    }
    gen_config g = {.max_new_tokens = (int)f->max_new_tokens, .do_sample = f->do_sample,
                    .temperature = (float)f->temperature, .top_k = (int)f->top_k, .top_p = (float)f->top_p,
                    .seed = (uint64_t)f->seed};
    if (st == RLHF_OK) st = resolve_stop(f, m, tok, &g.eos_token_id, &g.stop_token_id, err);
    if (st == RLHF_OK) {
        g.pad_token_id = m->cfg.pad_token_id >= 0 ? m->cfg.pad_token_id : (g.eos_token_id >= 0 ? g.eos_token_id : 0);
    }
    // rows = prompts x num_return_sequences, in input order; a row's sampling counter is its index
    int R = (int)f->num_return_sequences, n_rows = p.n * R, BS = (int)f->batch_size;
    const int32_t **bp = calloc((size_t)BS, sizeof *bp);
    int *bl = calloc((size_t)BS, sizeof *bl);
    uint64_t *bid = calloc((size_t)BS, sizeof *bid);
    if (st == RLHF_OK && (!bp || !bl || !bid)) st = rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    for (int r0 = 0; st == RLHF_OK && r0 < n_rows; r0 += BS) {
        int nb = n_rows - r0 < BS ? n_rows - r0 : BS;
        for (int i = 0; i < nb; i++) {
            int pi = (r0 + i) / R;
            bp[i] = p.ids[pi], bl[i] = p.lens[pi], bid[i] = (uint64_t)(r0 + i);
        }
        st = generate(m, bp, bl, bid, nb, &g, &o, err);
        for (int i = 0; i < nb && st == RLHF_OK; i++) {
            int pi = (r0 + i) / R;
            const int32_t *ids = o.tokens + (size_t)i * o.max_new;
            int n = o.lengths[i];
            char *completion = decode_or_null(tok, ids, n, err, &st);
            if (st != RLHF_OK) break;
            if (f->prompt && !f->output_file) {
                printf("%s\n", completion ? completion : "");
                free(completion);
                continue;
            }
            cJSON *row = cJSON_CreateObject();
            char *prompt_text = NULL;
            if (p.text[pi])
                cJSON_AddStringToObject(row, "prompt", p.text[pi]);
            else if ((prompt_text = decode_or_null(tok, p.ids[pi], p.lens[pi], err, &st)))
                cJSON_AddStringToObject(row, "prompt", prompt_text);
            else
                cJSON_AddNullToObject(row, "prompt");
            if (p.pretokenized[pi]) cJSON_AddItemToObject(row, "prompt_ids", cJSON_CreateIntArray(p.ids[pi], p.lens[pi]));
            if (completion)
                cJSON_AddStringToObject(row, "completion", completion);
            else
                cJSON_AddNullToObject(row, "completion");
            cJSON_AddItemToObject(row, "completion_ids", cJSON_CreateIntArray(ids, n));
            char *line = cJSON_PrintUnformatted(row);
            cJSON_Delete(row);
            free(prompt_text);
            free(completion);
            if (!line) {
                st = rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
                break;
            }
            size_t ll = strlen(line);
            if (len + ll + 2 > cap) {
                size_t nc = (cap + ll + 2) * 2;
                char *nbuf = realloc(buf, nc);
                if (!nbuf) {
                    free(line);
                    st = rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
                    break;
                }
                buf = nbuf, cap = nc;
            }
            memcpy(buf + len, line, ll);
            len += ll;
            buf[len++] = '\n';
            free(line);
        }
        gen_output_free(&o);
    }
    if (st == RLHF_OK && buf) {
        if (f->output_file)
            st = atomic_write(f->output_file, buf, len, err);
        else
            fwrite(buf, 1, len, stdout);
    }
    free(buf);
    free(bp);
    free(bl);
    free(bid);
    prompts_free(&p);
    chat_template_free(chat);
    tokenizer_free(tok);
    model_free(m);
    if (f->dataset) dataset_free(&d);
    return st;
}

int cmd_generate(int argc, char **argv) {
    gen_flags f;
    memset(&f, 0, sizeof f);
    arg_spec specs[] = {
        {"model_name_or_path", ARG_STRING, &f.model_dir, NULL, "causal-LM model directory (Hugging Face layout)", NULL, 0},
        {"prompt", ARG_STRING, &f.prompt, NULL, "one prompt text; prints its completion", NULL, 0},
        {"dataset_name", ARG_STRING, &f.dataset, NULL, "JSONL / JSON rows {\"prompt\": str} or {\"prompt_ids\": [...]}", NULL, 0},
        {"max_new_tokens", ARG_INT, &f.max_new_tokens, "50", "new tokens per completion at most", NULL, 0},
        {"max_prompt_length", ARG_INT, &f.max_prompt_length, "0", "longer prompts keep their last N tokens, as TRL "
         "truncates from the left (0: only to fit the model's positions with --max_new_tokens; counted on stderr)", NULL, 0},
        {"do_sample", ARG_BOOL, &f.do_sample, "false", "sample (default: greedy)", NULL, 0},
        {"temperature", ARG_FLOAT, &f.temperature, "1.0", "sampling temperature (also scales log-probs)", NULL, 0},
        {"top_k", ARG_INT, &f.top_k, "0", "keep the k most likely tokens (0 = off)", NULL, 0},
        {"top_p", ARG_FLOAT, &f.top_p, "1.0", "nucleus sampling mass (1 = off)", NULL, 0},
        {"seed", ARG_INT, &f.seed, GEN_DEFAULT_SEED, "sampling seed", NULL, 0},
        {"stop_token", ARG_STRING, &f.stop_token, "eos", "eos | none | a token id | a token: stop a row there", NULL, 0},
        {"num_return_sequences", ARG_INT, &f.num_return_sequences, "1", "completions per prompt", NULL, 0},
        {"batch_size", ARG_INT, &f.batch_size, "8", "rows generated together (left-padded)", NULL, 0},
        {"output_file", ARG_STRING, &f.output_file, NULL,
         "JSONL output {\"prompt\", \"completion\", \"completion_ids\"} in input order (default: stdout)", NULL, 0},
        {"threads", ARG_INT, &f.threads, "0", "threads (0 = all cores)", NULL, 0},
    };
    const int n = (int)(sizeof specs / sizeof specs[0]);
    rlhf_err err = {0};
    int parsed = cli_parse_flags("generate", "usage: rlhf generate --model_name_or_path DIR (--prompt P | --dataset_name FILE) [flags]\n"
                        "  greedy unless --do_sample; batches are left-padded as HF generate does", specs, n, argc, argv);
    if (parsed >= 0) return parsed;
    cli_set_threads(f.threads);
    rlhf_status st = run_generate(&f, &err);
    return cli_report("generate", st, err.msg);
}
