// SFT data preparation and training loop (see sft.h).
#include "train/sft.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/progress.h"
#include "base/rng.h"
#include "io/csv_log.h"
#include "io/files.h"
#include "io/json_util.h"
#include "models/decoder.h"
#include "models/peft.h"
#include "nn/ops.h"
#include "train/chat_rows.h"
#include "train/checkpoint.h"
#include "train/optimizer.h"
#include "train/report.h"
#include "train/trainer_common.h"

// ---- data ----------------------------------------------------------------------------------------

static rlhf_status encode(const tokenizer *tok, const char *text, int special, const char *where, int vocab,
                          int32_t **ids, int *n, rlhf_err *err) {
    if (!tok)
        return rlhf_fail(err, RLHF_EINPUT, "%s: text rows need tokenizer files in the model directory (or give ids)",
                         where);
    tok_encoding e;
    if (tokenizer_encode(tok, text, NULL, special, 0, TRUNC_LONGEST_FIRST, &e, err) != RLHF_OK)
        return rlhf_err_prefix(err, "%s: ", where);
    for (int i = 0; i < e.n; i++)
        if (e.ids[i] < 0 || e.ids[i] >= vocab) {
            tok_encoding_free(&e);
            return rlhf_fail(err, RLHF_EINPUT, "%s: token id %d outside the model's vocabulary (%d)", where, e.ids[i],
                             vocab);
        }
    *ids = malloc(sizeof(int32_t) * (size_t)(e.n + 1));
    if (!*ids) {
        tok_encoding_free(&e);
        return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    }
    memcpy(*ids, e.ids, sizeof(int32_t) * (size_t)e.n);
    *n = e.n;
    tok_encoding_free(&e);
    return RLHF_OK;
}

// Encodes a chat-template rendering of row r (see sft_set_load); *is_chat = 1 when the row is one.
static rlhf_status read_chat_row(const dataset *d, int r, const tokenizer *tok, int vocab,
                                 const struct chat_template *chat, const char *model_dir, const sft_fields *f,
                                 const char *where, int32_t **p, int *np, int32_t **c, int *nc, int *is_chat,
                                 rlhf_err *err) {
    int messages = chat_field_is_messages(d, r, "messages"), prompt = chat_field_is_messages(d, r, f->prompt);
    *is_chat = messages || prompt;
    if (!*is_chat) return RLHF_OK;
    char *text = NULL;
    if (messages) {
        RLHF_TRY(chat_render_row(d, r, "messages", NULL, chat, 0, model_dir, &text, err));
        rlhf_status s = encode(tok, text, 0, where, vocab, c, nc, err);
        free(text);
        return s;
    }
    // prompt + completion: the boundary is the rendered prompt's token count, as TRL's completion mask.
    int32_t *full = NULL;
    int nfull = 0;
    rlhf_status s = chat_render_row(d, r, f->prompt, NULL, chat, 1, model_dir, &text, err);
    if (!s) s = encode(tok, text, 0, where, vocab, p, np, err);
    free(text);
    text = NULL;
    if (!s) s = chat_render_row(d, r, f->prompt, f->completion, chat, 0, model_dir, &text, err);
    if (!s) s = encode(tok, text, 0, where, vocab, &full, &nfull, err);
    free(text);
    if (s) {
        free(*p), free(full);
        *p = NULL, *np = 0;
        return s;
    }
    int k = *np < nfull ? *np : nfull;
    memcpy(*p, full, sizeof(int32_t) * (size_t)k);
    *np = k;
    *nc = nfull - k;
    *c = malloc(sizeof(int32_t) * (size_t)(*nc + 1));
    if (*c) memcpy(*c, full + k, sizeof(int32_t) * (size_t)*nc);
    free(full);
    return *c ? RLHF_OK : rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
}

static int has_key(const dataset *d, int r, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(d->rows[r], k);
    return v && !cJSON_IsNull(v);
}

// Stanford Alpaca's prompt (with and without an input), the text its rows were written for.
#define ALPACA_HEAD_INPUT                                                                                    \
    "Below is an instruction that describes a task, paired with an input that provides further context. " \
    "Write a response that appropriately completes the request.\n\n### Instruction:\n"
#define ALPACA_HEAD                                                                                          \
    "Below is an instruction that describes a task. Write a response that appropriately completes the "   \
    "request.\n\n### Instruction:\n"

static rlhf_status alpaca_prompt(const dataset *d, int r, char **out, rlhf_err *err) {
    const char *ins, *input = NULL;
    RLHF_TRY(dataset_get_string(d, r, "instruction", 1, &ins, err));
    RLHF_TRY(dataset_get_string(d, r, "input", 0, &input, err));
    int with_input = input && input[0];
    size_t n = strlen(ALPACA_HEAD_INPUT) + strlen(ins) + (with_input ? strlen(input) : 0) + 64;
    *out = malloc(n);
    if (!*out) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    if (with_input) snprintf(*out, n, "%s%s\n\n### Input:\n%s\n\n### Response:\n", ALPACA_HEAD_INPUT, ins, input);
    else snprintf(*out, n, "%s%s\n\n### Response:\n", ALPACA_HEAD, ins);
    return RLHF_OK;
}

// Reads one row into (prompt part, trained part).
static rlhf_status read_row(const dataset *d, int r, const tokenizer *tok, int vocab,
                            const struct chat_template *chat, const char *model_dir, const sft_fields *f, int32_t **p,
                            int *np, int32_t **c, int *nc, int *is_chat, rlhf_err *err) {
    char where[4200];
    snprintf(where, sizeof where, "%s:%d", d->path, d->lines[r]);
    *p = *c = NULL;
    *np = *nc = 0;
    RLHF_TRY(read_chat_row(d, r, tok, vocab, chat, model_dir, f, where, p, np, c, nc, is_chat, err));
    if (*is_chat) return RLHF_OK;
    RLHF_TRY(dataset_get_ids(d, r, "prompt_ids", 0, vocab, p, np, err));
    if (*p) return dataset_get_ids(d, r, "completion_ids", 1, vocab, c, nc, err);
    RLHF_TRY(dataset_get_ids(d, r, "input_ids", 0, vocab, c, nc, err));
    if (*c) return RLHF_OK;
    const char *prompt, *completion, *text;
    RLHF_TRY(dataset_get_string(d, r, f->prompt, 0, &prompt, err));
    if (prompt) {
        RLHF_TRY(dataset_get_string(d, r, f->completion, 1, &completion, err));
        RLHF_TRY(encode(tok, prompt, 1, where, vocab, p, np, err));
        return encode(tok, completion, 0, where, vocab, c, nc, err);
    }
    if (has_key(d, r, f->text)) {
        RLHF_TRY(dataset_get_string(d, r, f->text, 1, &text, err));
        return encode(tok, text, 1, where, vocab, c, nc, err);
    }
    if (has_key(d, r, "instruction") && has_key(d, r, "output")) {  // Alpaca
        char *ap = NULL;
        RLHF_TRY(alpaca_prompt(d, r, &ap, err));
        rlhf_status s = dataset_get_string(d, r, "output", 1, &completion, err);
        if (!s) s = encode(tok, ap, 1, where, vocab, p, np, err);
        free(ap);
        RLHF_TRY(s);
        return encode(tok, completion, 0, where, vocab, c, nc, err);
    }
    if (has_key(d, r, "question") && has_key(d, r, "answer")) {  // question / answer (GSM8K, ...)
        RLHF_TRY(dataset_get_string(d, r, "question", 1, &prompt, err));
        RLHF_TRY(dataset_get_string(d, r, "answer", 1, &completion, err));
        RLHF_TRY(encode(tok, prompt, 1, where, vocab, p, np, err));
        return encode(tok, completion, 0, where, vocab, c, nc, err);
    }
    return rlhf_fail(err, RLHF_EINPUT,
                     "%s: no known layout; expected one of {\"%s\", \"%s\"}, {\"%s\"}, {\"messages\": [...]}, "
                     "{\"instruction\", \"input\" (optional), \"output\"} (Alpaca), {\"question\", \"answer\"}, "
                     "{\"prompt_ids\", \"completion_ids\"} or {\"input_ids\"} (or name the fields with "
                     "--dataset_text_field / --prompt_field / --completion_field)",
                     where, f->prompt, f->completion, f->text);
}

rlhf_status sft_set_load(sft_set *s, const dataset *d, const tokenizer *tok, int vocab, int eos_id, int max_length,
                         const struct chat_template *chat, const char *model_dir, rlhf_err *err) {
    return sft_set_load_fields(s, d, tok, vocab, eos_id, max_length, chat, model_dir, NULL, err);
}

rlhf_status sft_set_load_fields(sft_set *s, const dataset *d, const tokenizer *tok, int vocab, int eos_id,
                                int max_length, const struct chat_template *chat, const char *model_dir,
                                const sft_fields *fields, rlhf_err *err) {
    sft_fields f = {"text", "prompt", "completion"};
    if (fields && fields->text) f.text = fields->text;
    if (fields && fields->prompt) f.prompt = fields->prompt;
    if (fields && fields->completion) f.completion = fields->completion;
    memset(s, 0, sizeof *s);
    s->ex = calloc((size_t)d->n, sizeof *s->ex);
    if (!s->ex) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    for (int r = 0; r < d->n; r++) {
        int32_t *p = NULL, *c = NULL;
        int np = 0, nc = 0, is_chat = 0;
        rlhf_status st = read_row(d, r, tok, vocab, chat, model_dir, &f, &p, &np, &c, &nc, &is_chat, err);
        int n = np + nc + 1;
        sft_example *e = &s->ex[r];
        if (st == RLHF_OK) {
            e->ids = malloc(sizeof(int32_t) * (size_t)n);
            e->labels = malloc(sizeof(int32_t) * (size_t)n);
            if (!e->ids || !e->labels) st = rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
        }
        if (st == RLHF_OK) {
            for (int i = 0; i < np; i++) e->ids[i] = p[i], e->labels[i] = SFT_IGNORE;
            for (int i = 0; i < nc; i++) e->ids[np + i] = c[i], e->labels[np + i] = c[i];
            e->n = np + nc;
            // TRL appends EOS unless the example already ends with it (a chat template writes its own)
            if (!is_chat && eos_id >= 0 && (e->n == 0 || e->ids[e->n - 1] != eos_id)) {
                e->ids[e->n] = eos_id;
                e->labels[e->n] = eos_id;
                e->n++;
            }
            if (max_length > 0 && e->n > max_length) e->n = max_length;
            if (e->n < 2)
                st = rlhf_fail(err, RLHF_EINPUT, "%s:%d: example has %d token(s); at least 2 are needed", d->path,
                               d->lines[r], e->n);
        }
        free(p);
        free(c);
        s->n = r + 1;
        if (st != RLHF_OK) {
            sft_set_free(s);
            return st;
        }
    }
    return RLHF_OK;
}

void sft_set_free(sft_set *s) {
    for (int i = 0; i < s->n; i++) {
        free(s->ex[i].ids);
        free(s->ex[i].labels);
    }
    free(s->ex);
    memset(s, 0, sizeof *s);
}

// ---- one micro-batch -----------------------------------------------------------------------------

typedef struct {
    int32_t *ids, *mask, *targets;
    float *dlogits;
    size_t cap_tok, cap_logits;
} sft_scratch;

static void scratch_free(sft_scratch *s) {
    free(s->ids);
    free(s->mask);
    free(s->targets);
    free(s->dlogits);
    memset(s, 0, sizeof *s);
}

// Labels a micro-batch trains (targets other than the ignore index after HF's shift), without running it.
static long long count_labels(const sft_set *s, const int *idx, int B) {
    long long c = 0;
    for (int b = 0; b < B; b++) {
        const sft_example *e = &s->ex[idx[b]];
        for (int t = 0; t + 1 < e->n; t++) c += e->labels[t + 1] != CE_IGNORE_INDEX;
    }
    return c;
}

// drop_pos: NULL, or (data-parallel) the rows' places in the global micro-batch whose longest example has
// drop_T tokens, so each row gets the dropout masks one process running the whole micro-batch gives it.
static rlhf_status batch_loss(model *m, const sft_set *s, const int *idx, int B, int pad_id, int training,
                              uint64_t key, const int64_t *drop_pos, int drop_T, float grad_scale, double *loss,
                              sft_scratch *sc, rlhf_err *err) {
    int T = 0, V = m->cfg.vocab_size;
    for (int b = 0; b < B; b++)
        if (s->ex[idx[b]].n > T) T = s->ex[idx[b]].n;
    size_t N = (size_t)B * T;
    if (N > sc->cap_tok) {
        free(sc->ids), free(sc->mask), free(sc->targets);
        sc->ids = malloc(sizeof(int32_t) * N), sc->mask = malloc(sizeof(int32_t) * N);
        sc->targets = malloc(sizeof(int32_t) * N);
        sc->cap_tok = N;
        if (!sc->ids || !sc->mask || !sc->targets) {
            sc->cap_tok = 0;
            return rlhf_fail(err, RLHF_ERUNTIME, "out of memory (batch)");
        }
    }
    for (int b = 0; b < B; b++) {
        const sft_example *e = &s->ex[idx[b]];
        for (int t = 0; t < T; t++) {
            size_t i = (size_t)b * T + t;
            sc->ids[i] = t < e->n ? e->ids[t] : pad_id;
            sc->mask[i] = t < e->n;
            sc->targets[i] = t + 1 < e->n ? e->labels[t + 1] : CE_IGNORE_INDEX;  // HF shift: logits[t] -> labels[t+1]
        }
    }
    model_batch mb = {.B = B, .T = T, .input_ids = sc->ids, .attention_mask = sc->mask, .training = training,
                      .dropout_key = key, .dropout_pos = drop_pos, .dropout_T = drop_T};
    RLHF_TRY(grad_scale > 0 ? model_forward(m, &mb, err) : model_forward_no_grad(m, &mb, err));
    int counted = 0;
    float l = cross_entropy_forward(m->out, sc->targets, (int)N, V, &counted);
    *loss = counted ? l : 0.0;
    if (grad_scale > 0 && counted && !m->backward_reads_out) {
        // the logits are dead after the loss: their gradient overwrites them (no second (B, T, V) buffer)
        cross_entropy_backward_inplace(m->out, sc->targets, (int)N, V, counted, grad_scale);
        RLHF_TRY(model_backward(m, m->out, NULL, err));
    } else if (grad_scale > 0 && counted) {
        size_t nl = N * V;
        if (nl > sc->cap_logits) {
            free(sc->dlogits);
            sc->dlogits = malloc(sizeof(float) * nl);
            sc->cap_logits = sc->dlogits ? nl : 0;
            if (!sc->dlogits) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory (logit gradients)");
        }
        memset(sc->dlogits, 0, sizeof(float) * nl);
        cross_entropy_backward(sc->dlogits, m->out, sc->targets, (int)N, V, counted, grad_scale);
        RLHF_TRY(model_backward(m, sc->dlogits, NULL, err));
    }
    return RLHF_OK;
}

rlhf_status sft_batch_loss(model *m, const sft_set *s, const int *idx, int B, int pad_id, int training,
                           uint64_t dropout_key, float grad_scale, double *loss, rlhf_err *err) {
    sft_scratch sc;
    memset(&sc, 0, sizeof sc);
    rlhf_status st = batch_loss(m, s, idx, B, pad_id, training, dropout_key, NULL, 0, grad_scale, loss, &sc, err);
    scratch_free(&sc);
    return st;
}

rlhf_status sft_evaluate(model *m, const sft_set *s, int batch_size, double *loss, rlhf_err *err) {
    return sft_evaluate_dist(m, s, batch_size, NULL, loss, err);
}

rlhf_status sft_evaluate_dist(model *m, const sft_set *s, int batch_size, dist *d, double *loss, rlhf_err *err) {
    sft_scratch sc;
    memset(&sc, 0, sizeof sc);
    int pad_id = m->cfg.pad_token_id >= 0 && m->cfg.pad_token_id < m->cfg.vocab_size ? m->cfg.pad_token_id : 0;
    int *idx = malloc(sizeof(int) * (size_t)(batch_size > 0 ? batch_size : 1));
    if (!idx) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    double sum = 0;
    rlhf_status st = RLHF_OK;
    const int N = dist_size(d), rank = dist_rank(d);
    for (int r0 = 0, b = 0; r0 < s->n && st == RLHF_OK; r0 += batch_size, b++) {
        if (b % N != rank) continue;
        int B = s->n - r0 < batch_size ? s->n - r0 : batch_size;
        for (int i = 0; i < B; i++) idx[i] = r0 + i;
        double l;
        st = batch_loss(m, s, idx, B, pad_id, 0, 0, NULL, 0, 0.0f, &l, &sc, err);
        sum += l * B;
    }
    if (st == RLHF_OK) st = dist_allreduce_sum_f64(d, &sum, 1, err);
    *loss = s->n ? sum / s->n : NAN;
    free(idx);
    scratch_free(&sc);
    return st;
}

rlhf_status sft_set_split(sft_set *train, sft_set *eval, double fraction, uint64_t seed, rlhf_err *err) {
    memset(eval, 0, sizeof *eval);
    int n = train->n, n_eval = (int)lround(fraction * n);
    if (n_eval < 1 || n_eval >= n)
        return rlhf_fail(err, RLHF_EINPUT, "--eval_split %g of %d examples leaves an empty train or eval set", fraction,
                         n);
    int *perm = malloc(sizeof(int) * (size_t)n);
    char *is_eval = calloc((size_t)n, 1);
    sft_example *tr = malloc(sizeof *tr * (size_t)(n - n_eval)), *ev = malloc(sizeof *ev * (size_t)n_eval);
    if (!perm || !is_eval || !tr || !ev) {
        free(perm), free(is_eval), free(tr), free(ev);
        return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    }
    rng_permutation(rng_key(seed, RNG_STREAM_SPLIT, 0, 0), perm, n);
    for (int i = n - n_eval; i < n; i++) is_eval[perm[i]] = 1;
    int a = 0, b = 0;
    for (int i = 0; i < n; i++) {
        if (is_eval[i])
            ev[b++] = train->ex[i];
        else
            tr[a++] = train->ex[i];
    }
    free(train->ex);
    train->ex = tr, train->n = a;
    eval->ex = ev, eval->n = b;
    free(perm);
    free(is_eval);
    return RLHF_OK;
}

// ---- training loop -------------------------------------------------------------------------------

static void fmt(char *buf, size_t n, double v) {
    if (isfinite(v))
        snprintf(buf, n, "%.8g", v);
    else
        buf[0] = 0;
}

rlhf_status sft_save_model_dir(model *m, const tokenizer *tok, const char *dir, const char *base_model_name,
                               int merge_adapter, rlhf_err *err) {
    if (peft_active(m)) {
        RLHF_TRY(peft_save_adapter(m, dir, base_model_name, err));
        if (merge_adapter) {
            RLHF_TRY(peft_merge_and_unload(m, err));
            RLHF_TRY(model_save(m, dir, err));
        }
    } else {
        RLHF_TRY(model_save(m, dir, err));
    }
    RLHF_TRY(decoder_save_generation_config(m, dir, err));
    if (tok) RLHF_TRY(tokenizer_save(tok, dir, err));
    return RLHF_OK;
}

// One evaluation: eval_loss over the held-out set, logged as its own row (epoch, step, eval_loss).
static rlhf_status eval_and_log(model *m, const sft_args *a, csv_log *log, trainer_state *ts, double epoch,
                                long long step, double *eval_loss, rlhf_err *err) {
    RLHF_TRY(sft_evaluate_dist(m, a->eval, a->common.eval_batch_size, a->dist, eval_loss, err));
    char v[2][48], e[48];
    fmt(v[0], 48, epoch), snprintf(v[1], 48, "%lld", step);
    fmt(e, 48, *eval_loss);
    const char *vals[SFT_LOG_N_COLUMNS] = {v[0], v[1], "", "", "", e};
    if (log) RLHF_TRY(csv_log_row(log, vals, err));
    train_log_entry le = {epoch, step, NAN, NAN, NAN, NAN, NAN, *eval_loss, NAN, NAN};
    return trainer_state_add_log(ts, &le, err);
}

// checkpoint-{STEP} (HF naming whatever the strategy), then --save_total_limit's rotation. A step saved
// already (an epoch's end that is also the interruption point) is not written twice.
static rlhf_status save_ckpt(const model *m, const tokenizer *tok, const adamw_state *opt, trainer_state *ts,
                             const sft_args *a, long long *last_saved, rlhf_err *err) {
    if (*last_saved == ts->global_step || !dist_is_main(a->dist)) return RLHF_OK;  // rank 0 writes
    char path[4200];
    RLHF_TRY(checkpoint_save(checkpoint_path(path, sizeof path, a->common.output_dir, ts->global_step), m, tok, opt, ts,
                             a->base_model_name, err));
    *last_saved = ts->global_step;
    return checkpoint_rotate(a->common.output_dir, a->common.save_total_limit, ts->global_step, err);
}

// report.html: train loss and eval loss (the logged rows of training_log.csv, resumed history included) on
// one chart, then the learning rate and gradient norm.
static rlhf_status write_report(const sft_args *a, const trainer_state *ts, long long step, int n_train,
                                const sft_result *res, rlhf_err *err) {
    int n = ts->n_log;
    double *buf = malloc(sizeof(double) * 5 * (size_t)(n > 0 ? n : 1));
    if (!buf) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory (report)");
    double *x = buf, *col[4];
    for (int k = 0; k < 4; k++) col[k] = buf + (size_t)(k + 1) * (n > 0 ? n : 1);
    for (int i = 0; i < n; i++) {
        const train_log_entry *e = &ts->log[i];
        x[i] = (double)e->step;
        col[0][i] = e->loss, col[1][i] = e->eval_loss, col[2][i] = e->learning_rate, col[3][i] = e->grad_norm;
    }
    report_series s[4] = {{"train loss", x, col[0], n}, {"eval loss", x, col[1], n},
                          {"learning rate", x, col[2], n}, {"grad norm (before clipping)", x, col[3], n}};
    report_chart ch[3] = {{"SFT loss (train and eval)", "optimizer step", s, 2},
                          {"Learning rate", "optimizer step", s + 2, 1},
                          {"Gradient norm", "optimizer step", s + 3, 1}};
    char summary[256], path[4200];
    snprintf(summary, sizeof summary, "%lld optimizer steps on %d examples; final loss %.4f; eval loss %.4f -> %.4f",
             step, n_train, res->last_loss, res->first_eval_loss, res->eval_loss);
    rlhf_status st = report_write_html(path_join(path, sizeof path, a->common.output_dir, "report.html"), "rlhf sft", summary,
                                       ch, 3, err);
    free(buf);
    return st;
}

rlhf_status sft_train(model *m, const tokenizer *tok, const sft_set *train, const sft_args *a, sft_result *res,
                      rlhf_err *err) {
    memset(res, 0, sizeof *res);
    dist *d = a->dist;
    const long long save_every = trainer_save_every(&a->common), eval_every = trainer_eval_every(&a->common);
    const int N = dist_size(d), rank = dist_rank(d), main_rank = dist_is_main(d);
    // bs: rows per process; gbs: rows of a global micro-batch, the unit of the data order
    int n = train->n, bs = a->common.train_batch_size, accum = a->common.grad_accum, gbs = bs * N;
    int n_batches = (n + gbs - 1) / gbs;
    long long steps_per_epoch = (n_batches + accum - 1) / accum;
    const long long total = trainer_total_steps(&a->common, steps_per_epoch);
    const long long warmup = trainer_warmup_steps(&a->common, total);
    int pad_id = m->cfg.pad_token_id >= 0 && m->cfg.pad_token_id < m->cfg.vocab_size ? m->cfg.pad_token_id : 0;
    adamw_config ac = {0.9, 0.999, 1e-8, a->common.weight_decay};

    RLHF_TRY(model_alloc_grads(m, err));
    model_zero_grads(m);
    // With LoRA (models/peft.h) the optimizer sees only the adapters: gradients and moments of that range.
    model_trainable tv;
    model_trainable_view(m, &tv);
    adamw_state opt;
    RLHF_TRY(adamw_init(&opt, tv.n, err));
    char path[4200];
    csv_log *log = NULL;
    static const char *const cols[] = {SFT_LOG_COLUMNS};
    trainer_state ts;
    memset(&ts, 0, sizeof ts);
    rlhf_status st = main_rank ? checkpoint_remove_stale(a->common.output_dir, err) : RLHF_OK;
    long long last_saved = -1;
    if (st == RLHF_OK && a->common.resume_from) {
        st = trainer_state_load(path_join(path, sizeof path, a->common.resume_from, "trainer_state.json"), &ts, err);
        if (st == RLHF_OK && (ts.n_train != n || ts.seed != a->common.seed))
            st = rlhf_fail(err, RLHF_EINPUT,
                           "--resume_from_checkpoint %s: it trained on %d examples with seed %llu; this run has %d "
                           "with seed %llu",
                           a->common.resume_from, ts.n_train, (unsigned long long)ts.seed, n,
                           (unsigned long long)a->common.seed);
        if (st == RLHF_OK)
            st = optimizer_state_load(path_join(path, sizeof path, a->common.resume_from, "optimizer.safetensors"), m, &opt,
                                      err);
        free(ts.order);  // recomputed from (seed, epoch)
        ts.order = NULL;
    }
    if (st == RLHF_OK && main_rank)
        st = csv_log_open(&log, path_join(path, sizeof path, a->common.output_dir, "training_log.csv"), cols,
                          SFT_LOG_N_COLUMNS, a->common.resume_from != NULL, err);
    int *order = malloc(sizeof(int) * (size_t)n), *idx = malloc(sizeof(int) * (size_t)bs);
    int64_t *gpos = malloc(sizeof(int64_t) * (size_t)bs);  // idx's places in the global micro-batch
    ts.seed = a->common.seed;
    ts.n_train = n;
    ts.train_batch_size = gbs;  // HF TrainerState fields of trainer_state.json (global: any N resumes)
    ts.grad_accum = accum;
    ts.micro_per_epoch = n_batches;
    ts.max_steps = total;
    ts.logging_steps = a->common.logging_steps;
    ts.eval_steps = eval_every;
    ts.save_steps = save_every;
    ts.num_train_epochs = (double)((total + steps_per_epoch - 1) / steps_per_epoch);
    sft_scratch sc;
    memset(&sc, 0, sizeof sc);
    if (st == RLHF_OK && (!order || !idx || !gpos)) st = rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    res->first_eval_loss = res->eval_loss = NAN;
    if (st == RLHF_OK && a->eval)
        st = sft_evaluate_dist(m, a->eval, a->common.eval_batch_size, d, &res->first_eval_loss, err);
    progress *pg = a->common.quiet || !main_rank ? NULL : progress_start("sft", total, "steps");
    // a resumed run replays the same (seed, epoch) orders and skips the micro-batches already consumed
    long long step = ts.global_step;
    int start_epoch = ts.epochs_done, skip = ts.micro_in_epoch;
    double log_loss = 0;
    int log_count = 0;
    int skip_streak = 0;  // consecutive skipped (non-finite) steps
    for (int epoch = start_epoch; st == RLHF_OK && step < total && !res->interrupted; epoch++) {
        if (a->common.shuffle)
            rng_permutation(rng_key(a->common.seed, RNG_STREAM_SHUFFLE, (uint64_t)epoch, 0), order, n);
        else
            for (int i = 0; i < n; i++) order[i] = i;
        double step_loss = 0;
        int mb_end = n_batches;
        for (int mb = epoch == start_epoch ? skip : 0; mb < n_batches && st == RLHF_OK; mb++) {
            // the global micro-batch: positions [lo, hi) of the order; this rank's rows: lo + rank, lo + rank + N, ...
            int lo = mb * gbs, hi = n - lo < gbs ? n : lo + gbs, B = 0, GT = 1;
            for (int i = lo + rank; i < hi; i += N) {
                gpos[B] = i - lo;
                idx[B++] = order[i];
            }
            for (int i = lo; N > 1 && i < hi; i++)
                if (train->ex[order[i]].n > GT) GT = train->ex[order[i]].n;
            double loss = 0;
            // dropout: keyed by (step, micro-batch), each row by its place in the global micro-batch (as one process)
            uint64_t key = rng_key(a->common.seed, RNG_STREAM_DROPOUT, (uint64_t)step, (uint64_t)mb);
            // HF Trainer (4.44) divides every micro-batch loss by gradient_accumulation_steps. With processes a
            // rank's token mean is weighted by its share of the global micro-batch's labels (share 1 alone).
            double share = 1.0;
            if (N > 1) {
                long long global = count_labels(train, order + lo, hi - lo), local = count_labels(train, idx, B);
                share = global > 0 ? (double)local / (double)global : 0.0;
            }
            if (B > 0 && share > 0)
                st = batch_loss(m, train, idx, B, pad_id, !a->common.disable_dropout, key, N > 1 ? gpos : NULL, GT,
                                N == 1 ? 1.0f / accum : (float)(share / accum), &loss, &sc, err);
            if (st != RLHF_OK) break;
            step_loss += loss * share / accum;
            if ((mb + 1) % accum != 0 && mb != n_batches - 1) continue;
            if ((st = dist_allreduce_sum_f32(d, tv.grads, tv.n, err)) || (st = dist_allreduce_sum_f64(d, &step_loss, 1, err)))
                break;
            double norm = clip_grad_norm(tv.grads, tv.n, a->common.max_grad_norm);
            double lr = lr_at(a->common.schedule, a->common.learning_rate, step, warmup, total);
            // NaN/Inf guard (as the reward trainer): a non-finite loss or gradient norm skips the update
            int take;
            st = trainer_skip_guard("sft", step_loss, norm, step, 1, pg != NULL, &skip_streak, &ts.skipped_steps, &take,
                                    err);
            if (st != RLHF_OK) break;
            if (take) adamw_step(&opt, tv.params, tv.grads, tv.specs, tv.n_specs, lr, &ac);
            model_zero_grads(m);
            step++;
            res->last_loss = step_loss;
            log_loss += step_loss, log_count++;
            step_loss = 0;
            double ep = epoch + (double)(mb + 1) / n_batches;
            if (step % a->common.logging_steps == 0 || step == total) {
                char v[SFT_LOG_N_COLUMNS][48];
                fmt(v[0], 48, ep), snprintf(v[1], 48, "%lld", step), fmt(v[2], 48, log_loss / log_count);
                fmt(v[3], 48, lr), fmt(v[4], 48, norm), v[5][0] = 0;
                const char *vals[SFT_LOG_N_COLUMNS] = {v[0], v[1], v[2], v[3], v[4], v[5]};
                st = log ? csv_log_row(log, vals, err) : RLHF_OK;
                train_log_entry le = {ep, step, log_loss / log_count, lr, norm, NAN, NAN, NAN, NAN, NAN};
                if (st == RLHF_OK) st = trainer_state_add_log(&ts, &le, err);
                log_loss = 0, log_count = 0;
            }
            // Step-based evaluation and checkpoints inside an epoch; at an epoch's last step they wait for the
            // epoch's end below, so that a checkpoint there resumes at the next epoch with the log complete.
            int epoch_end = mb + 1 >= n_batches;
            if (st == RLHF_OK && a->eval && eval_every > 0 && step % eval_every == 0 && !epoch_end)
                st = eval_and_log(m, a, log, &ts, ep, step, &res->eval_loss, err);
            if (st == RLHF_OK && save_every > 0 && step % save_every == 0 && !epoch_end && step < total) {
                ts.epochs_done = epoch, ts.micro_in_epoch = mb + 1, ts.global_step = step, ts.order = order;
                st = save_ckpt(m, tok, &opt, &ts, a, &last_saved, err);
            }
            if (st != RLHF_OK) break;
            if (pg) {
                char extra[64];
                snprintf(extra, sizeof extra, "loss %.4f", res->last_loss);
                progress_update(pg, step, extra);
            }
            // every rank stops at the same step when any of them saw the signal
            if (dist_any(d, a->stop && *a->stop) && mb + 1 < n_batches) {
                res->interrupted = 1;
                mb_end = mb + 1;
                break;
            }
            if (step >= total) break;
        }
        int ended = st == RLHF_OK && !(res->interrupted && mb_end < n_batches);
        int eval_now = a->eval && (a->common.eval_strategy == STRATEGY_EPOCH || (eval_every > 0 && step % eval_every == 0));
        if (ended && eval_now) st = eval_and_log(m, a, log, &ts, epoch + 1.0, step, &res->eval_loss, err);
        ts.epochs_done = res->interrupted ? epoch : epoch + 1;
        ts.micro_in_epoch = res->interrupted ? mb_end : 0;
        ts.global_step = step;
        ts.order = order;
        if (dist_any(d, a->stop && *a->stop)) res->interrupted = 1;  // stopped on the epoch's last step: resume at the next
        if (st == RLHF_OK && a->common.save_strategy == STRATEGY_EPOCH && ts.micro_in_epoch == 0)
            st = save_ckpt(m, tok, &opt, &ts, a, &last_saved, err);
        if (st == RLHF_OK && save_every > 0 && step % save_every == 0 && !res->interrupted && step > 0)
            st = save_ckpt(m, tok, &opt, &ts, a, &last_saved, err);
    }
    if (pg) progress_finish(pg, NULL);
    res->global_step = step;
    if (st == RLHF_OK && res->interrupted) {
        ts.global_step = step;
        st = save_ckpt(m, tok, &opt, &ts, a, &last_saved, err);
        if (st == RLHF_OK)
            st = rlhf_fail(err, RLHF_EINTERRUPT, "interrupted: saved %s/checkpoint-%lld", a->common.output_dir, step);
    }
    if (st == RLHF_OK && main_rank)
        st = sft_save_model_dir(m, tok, a->common.output_dir, a->base_model_name, a->merge_adapter, err);
    if (st == RLHF_OK && main_rank) {
        st = write_report(a, &ts, step, n, res, err);
    }
    ts.order = NULL;
    trainer_state_free(&ts);
    scratch_free(&sc);
    free(order);
    free(idx);
    free(gpos);
    if (log) csv_log_close(log);
    adamw_free(&opt);
    return st;
}
