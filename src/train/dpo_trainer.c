// DPO training loop (see dpo_trainer.h).
#include "train/dpo_trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/progress.h"
#include "base/rng.h"
#include "io/csv_log.h"
#include "io/files.h"
#include "models/peft.h"
#include "nn/ops.h"
#include "train/checkpoint.h"
#include "train/optimizer.h"
#include "train/report.h"
#include "train/trainer_common.h"
#include "train/sft.h"


const char *const dpo_metric_names[DPO_N_METRICS] = {
    "loss",         "rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins",
    "logps/chosen", "logps/rejected", "logits/chosen",    "logits/rejected",    "nll_loss"};

// training_log.csv: epoch, step, learning_rate, grad_norm, the metrics, then eval_ + the metrics.
#define DPO_LOG_N_COLUMNS (4 + 2 * DPO_N_METRICS)

// ---- one micro-batch ------------------------------------------------------------------------------

typedef struct {
    int32_t *ids, *mask, *targets;  // (2P, T)
    float *tok_lp, *dout;           // (2P, T)
    size_t cap_tok;
    double *lp;                     // (2P) sequence log-probs (length-averaged for ipo)
    double *lg;                     // (2P) sum of logits over the vocabulary and scored positions
    int *cnt;                       // (2P) scored tokens
    int cap_rows;
} dpo_scratch;

static void scratch_free(dpo_scratch *s) {
    free(s->ids), free(s->mask), free(s->targets), free(s->tok_lp), free(s->dout);
    free(s->lp), free(s->lg), free(s->cnt);
    memset(s, 0, sizeof *s);
}

// Row k of the 2P-row batch: pair idx[k] chosen for k < P, pair idx[k - P] rejected after.
static const token_seq *batch_seq(const pref_set *s, const int *idx, int P, int k, int *prompt_n) {
    const pref_row *r = &s->rows[idx[k < P ? k : k - P]];
    *prompt_n = k < P ? r->chosen_prompt_n : r->rejected_prompt_n;
    return k < P ? &r->chosen : &r->rejected;
}

// Right-padded ids/mask and targets: targets[k, t] = ids[k, t + 1] where token t + 1 is a response
// token (TRL's rolled loss mask), else CE_IGNORE_INDEX. Returns T.
static rlhf_status build_batch(dpo_scratch *sc, const pref_set *s, const int *idx, int P, int pad_id, int *Tout,
                               rlhf_err *err) {
    int T = 0, R = 2 * P, pn;
    for (int k = 0; k < R; k++) {
        const token_seq *q = batch_seq(s, idx, P, k, &pn);
        if (q->n > T) T = q->n;
    }
    size_t N = (size_t)R * T;
    if (N > sc->cap_tok) {
        free(sc->ids), free(sc->mask), free(sc->targets), free(sc->tok_lp), free(sc->dout);
        sc->ids = malloc(sizeof(int32_t) * N), sc->mask = malloc(sizeof(int32_t) * N);
        sc->targets = malloc(sizeof(int32_t) * N);
        sc->tok_lp = malloc(sizeof(float) * N), sc->dout = malloc(sizeof(float) * N);
        sc->cap_tok = N;
        if (!sc->ids || !sc->mask || !sc->targets || !sc->tok_lp || !sc->dout) {
            sc->cap_tok = 0;
            return rlhf_fail(err, RLHF_ERUNTIME, "out of memory (batch)");
        }
    }
    if (R > sc->cap_rows) {
        free(sc->lp), free(sc->lg), free(sc->cnt);
        sc->lp = malloc(sizeof(double) * (size_t)R), sc->lg = malloc(sizeof(double) * (size_t)R);
        sc->cnt = malloc(sizeof(int) * (size_t)R);
        sc->cap_rows = R;
        if (!sc->lp || !sc->lg || !sc->cnt) {
            sc->cap_rows = 0;
            return rlhf_fail(err, RLHF_ERUNTIME, "out of memory (batch)");
        }
    }
    for (int k = 0; k < R; k++) {
        const token_seq *q = batch_seq(s, idx, P, k, &pn);
        int first = pn > 1 ? pn : 1;  // the first scored token: a response token with a token before it
        for (int t = 0; t < T; t++) {
            size_t i = (size_t)k * T + t;
            sc->ids[i] = t < q->n ? q->ids[t] : pad_id;
            sc->mask[i] = t < q->n;
            sc->targets[i] = t + 1 < q->n && t + 1 >= first ? q->ids[t + 1] : CE_IGNORE_INDEX;
        }
    }
    *Tout = T;
    return RLHF_OK;
}

// Sequence log-probs (sums over scored tokens; averages with ipo), scored-token counts and logit sums of
// the R rows of logits (R, T, V).
static void sequence_logps(dpo_scratch *sc, const float *logits, int R, int T, int V, int ipo, int want_logits) {
    size_t N = (size_t)R * T;
    token_logprobs_forward(sc->tok_lp, logits, sc->targets, (int)N, V, 1.0f);
    for (int k = 0; k < R; k++) {
        double s = 0, lg = 0;
        int c = 0;
        for (int t = 0; t < T; t++) {
            size_t i = (size_t)k * T + t;
            if (sc->targets[i] == CE_IGNORE_INDEX) continue;
            s += sc->tok_lp[i];
            c++;
            if (want_logits) {
                const float *z = logits + i * V;
                double zs = 0;
                for (int v = 0; v < V; v++) zs += z[v];
                lg += zs;
            }
        }
        sc->cnt[k] = c;
        sc->lp[k] = ipo && c ? s / c : s;
        sc->lg[k] = lg;
    }
}

// Forward of the 2P rows through the reference: ref, or m with its adapters off (ref NULL).
static rlhf_status reference_forward(model *ref, model *m, const model_batch *mb, rlhf_err *err) {
    if (ref) return model_forward_no_grad(ref, mb, err);
    return peft_reference_forward(m, mb, err);
}

rlhf_status dpo_reference_logps(model *ref, const pref_set *s, int batch_size, int ipo, double *out, rlhf_err *err) {
    dpo_scratch sc;
    memset(&sc, 0, sizeof sc);
    int *idx = malloc(sizeof(int) * (size_t)(batch_size > 0 ? batch_size : 1));
    if (!idx) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    int pad = ref->cfg.pad_token_id >= 0 && ref->cfg.pad_token_id < ref->cfg.vocab_size ? ref->cfg.pad_token_id : 0;
    int saved = ref->no_grad;
    ref->no_grad = 1;
    rlhf_status st = RLHF_OK;
    for (int r0 = 0; r0 < s->n && st == RLHF_OK; r0 += batch_size) {
        int P = s->n - r0 < batch_size ? s->n - r0 : batch_size, T;
        for (int i = 0; i < P; i++) idx[i] = r0 + i;
        st = build_batch(&sc, s, idx, P, pad, &T, err);
        if (st) break;
        model_batch mb = {.B = 2 * P, .T = T, .input_ids = sc.ids, .attention_mask = sc.mask};
        st = peft_reference_forward(ref, &mb, err);  // a model without adapters: a plain forward
        if (st) break;
        sequence_logps(&sc, ref->out, 2 * P, T, ref->cfg.vocab_size, ipo, 0);
        for (int i = 0; i < P; i++) {
            out[2 * (size_t)(r0 + i)] = sc.lp[i];
            out[2 * (size_t)(r0 + i) + 1] = sc.lp[P + i];
        }
    }
    ref->no_grad = saved;
    model_release_activations(ref);  // the precomputed log-probs are all that is kept
    free(idx);
    scratch_free(&sc);
    return st;
}

typedef struct {
    const dpo_args *a;
    model *m;
    dpo_scratch sc;
    dpo_running running;  // bco_pair
    int pad_id;
} dpo_run;

// Sums over ranks of the batch's per-pair metric sums and pair count; means into out (DPO_N_METRICS).
static rlhf_status reduce_metrics(const dpo_args *a, double *sums, int P, double lgc, double lgr, double *out,
                                  rlhf_err *err) {
    // [metric sums (DPO_N_METRICS), pairs, logits means (2), ranks]
    double buf[DPO_N_METRICS + 4];
    memcpy(buf, sums, sizeof(double) * DPO_N_METRICS);
    buf[DPO_N_METRICS] = P;
    buf[DPO_N_METRICS + 1] = lgc, buf[DPO_N_METRICS + 2] = lgr, buf[DPO_N_METRICS + 3] = 1;
    RLHF_TRY(dist_allreduce_sum_f64(a->dist, buf, DPO_N_METRICS + 4, err));
    for (int i = 0; i < DPO_N_METRICS; i++) out[i] = buf[i] / buf[DPO_N_METRICS];
    // TRL gathers each rank's mean logits (one value per rank) and averages them
    out[DPO_M_LOGITS_CHOSEN] = buf[DPO_N_METRICS + 1] / buf[DPO_N_METRICS + 3];
    out[DPO_M_LOGITS_REJECTED] = buf[DPO_N_METRICS + 2] / buf[DPO_N_METRICS + 3];
    if (isnan(a->rpo_alpha)) out[DPO_M_NLL_LOSS] = NAN;
    return RLHF_OK;
}

// bco_pair: the running mean after adding this micro-batch's 2P rewards (over every rank).
static rlhf_status bco_delta(dpo_run *r, const double *lp, const double *ref, int P, double *delta, rlhf_err *err) {
    const double beta = r->a->loss.beta;
    double sc[2] = {0, 0};
    for (int k = 0; k < 2 * P; k++) sc[0] += beta * (lp[k] - ref[k]);
    sc[1] = 2.0 * P;
    RLHF_TRY(dist_allreduce_sum_f64(r->a->dist, sc, 2, err));
    double mean = sc[0] / sc[1], ss = 0;
    for (int k = 0; k < 2 * P; k++) {
        double x = beta * (lp[k] - ref[k]) - mean;
        ss += x * x;
    }
    RLHF_TRY(dist_allreduce_sum_f64(r->a->dist, &ss, 1, err));
    dpo_running_update(&r->running, mean, ss / sc[1], sc[1]);
    *delta = r->running.mean;
    return RLHF_OK;
}

// Forward (and with grad_scale > 0 backward) of pairs idx[0..P) of s. ref_table: 2 per row of s (NULL:
// run the reference). metrics: DPO_N_METRICS means over the pairs of every rank. update_running: bco's
// running moments take this batch (training only).
static rlhf_status dpo_batch(dpo_run *r, const pref_set *s, const int *idx, int P, const double *ref_table,
                             int training, uint64_t key, float grad_scale, double *metrics, rlhf_err *err) {
    const dpo_args *a = r->a;
    model *m = r->m;
    dpo_scratch *sc = &r->sc;
    const int V = m->cfg.vocab_size, R = 2 * P, ipo = a->loss.type == DPO_IPO;
    int T;
    RLHF_TRY(build_batch(sc, s, idx, P, r->pad_id, &T, err));
    model_batch mb = {.B = R, .T = T, .input_ids = sc->ids, .attention_mask = sc->mask};
    double *ref = malloc(sizeof(double) * (size_t)R * 2);
    if (!ref) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    double *lp = ref + R;
    rlhf_status st = RLHF_OK;
    if (ref_table) {
        for (int i = 0; i < P; i++) ref[i] = ref_table[2 * (size_t)idx[i]], ref[P + i] = ref_table[2 * (size_t)idx[i] + 1];
    } else {
        // before the policy forward: with peft it runs on the policy's own weights and activations
        st = reference_forward(a->ref, m, &mb, err);
        if (!st) {
            sequence_logps(sc, a->ref ? a->ref->out : m->out, R, T, V, ipo, 0);
            memcpy(ref, sc->lp, sizeof(double) * (size_t)R);
        }
        // a separate reference's activations and logits are released before the policy's forward, so the
        // peak holds one of the two (the decoder lays its arena out again on every forward)
        if (a->ref) model_release_activations(a->ref);
    }
    if (!st) {
        mb.training = training && !a->common.disable_dropout;
        mb.dropout_key = key;
        st = model_forward(m, &mb, err);
    }
    if (st) {
        free(ref);
        return st;
    }
    sequence_logps(sc, m->out, R, T, V, ipo, 1);
    memcpy(lp, sc->lp, sizeof(double) * (size_t)R);
    double delta = 0;
    if (a->loss.type == DPO_BCO_PAIR) {
        if (training) {
            st = bco_delta(r, lp, ref, P, &delta, err);
            if (st) {
                free(ref);
                return st;
            }
        } else {
            delta = r->running.mean;  // evaluation reads the running mean without moving it
        }
    }
    // NLL of the chosen responses (RPO): mean token cross-entropy over the chosen rows' scored tokens
    double nll_sum = 0;
    long long nll_n = 0;
    for (int k = 0; k < P; k++) {
        for (int t = 0; t < T; t++) {
            size_t i = (size_t)k * T + t;
            if (sc->targets[i] != CE_IGNORE_INDEX) nll_sum -= sc->tok_lp[i], nll_n++;
        }
    }
    const double nll = nll_n ? nll_sum / (double)nll_n : 0.0;
    const int rpo = !isnan(a->rpo_alpha);
    double sums[DPO_N_METRICS] = {0}, *g = malloc(sizeof(double) * (size_t)R);
    if (!g) {
        free(ref);
        return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    }
    const double beta = a->loss.beta;
    for (int i = 0; i < P; i++) {
        double dpc, dpr;
        double l = dpo_pair_loss(&a->loss, lp[i], lp[P + i], ref[i], ref[P + i], delta, &dpc, &dpr);
        if (rpo) l += a->rpo_alpha * nll;
        double rc = beta * (lp[i] - ref[i]), rr = beta * (lp[P + i] - ref[P + i]);
        // TRL compares float32 rewards
        float rcf = (float)(beta * ((float)lp[i] - (float)ref[i])), rrf = (float)(beta * ((float)lp[P + i] - (float)ref[P + i]));
        sums[DPO_M_LOSS] += l;
        sums[DPO_M_REWARDS_CHOSEN] += rc;
        sums[DPO_M_REWARDS_REJECTED] += rr;
        sums[DPO_M_REWARDS_ACCURACIES] += rcf > rrf;
        sums[DPO_M_REWARDS_MARGINS] += rc - rr;
        sums[DPO_M_LOGPS_CHOSEN] += lp[i];
        sums[DPO_M_LOGPS_REJECTED] += lp[P + i];
        sums[DPO_M_NLL_LOSS] += nll;
        g[i] = dpc / P, g[P + i] = dpr / P;
    }
    // mean logits as TRL: over every (scored position, vocabulary entry) of the chosen / rejected rows
    double lgc = 0, lgr = 0;
    long long nc = 0, nr = 0;
    for (int k = 0; k < R; k++) {
        if (k < P) lgc += sc->lg[k], nc += sc->cnt[k];
        else lgr += sc->lg[k], nr += sc->cnt[k];
    }
    lgc = nc ? lgc / ((double)nc * V) : NAN;
    lgr = nr ? lgr / ((double)nr * V) : NAN;
    st = reduce_metrics(a, sums, P, lgc, lgr, metrics, err);
    if (!st && grad_scale > 0) {
        // d loss / d token log-prob: the sequence's gradient (/ length for ipo), plus rpo_alpha's NLL term
        size_t N = (size_t)R * T;
        for (int k = 0; k < R; k++) {
            double gk = g[k] / (ipo && sc->cnt[k] ? sc->cnt[k] : 1);
            if (k < P && rpo && nll_n) gk -= a->rpo_alpha / (double)nll_n;
            for (int t = 0; t < T; t++) {
                size_t i = (size_t)k * T + t;
                sc->dout[i] = sc->targets[i] != CE_IGNORE_INDEX ? (float)(gk * grad_scale) : 0.0f;
            }
        }
        // the logits are not needed any more: their gradient overwrites them (no second (2P, T, V) buffer),
        // unless the backward reads them (Gemma 2's final soft-cap): then a buffer of its own
        if (!m->backward_reads_out) {
            token_logprobs_backward_inplace(m->out, sc->dout, sc->targets, (int)N, V, 1.0f);
            st = model_backward(m, m->out, NULL, err);
        } else {
            float *dl = calloc(N * (size_t)V, sizeof(float));
            if (!dl) {
                st = rlhf_fail(err, RLHF_ERUNTIME, "out of memory (logit gradients)");
            } else {
                token_logprobs_backward(dl, sc->dout, m->out, sc->targets, (int)N, V, 1.0f);
                st = model_backward(m, dl, NULL, err);
                free(dl);
            }
        }
    }
    free(g);
    free(ref);
    return st;
}

// ---- evaluation ------------------------------------------------------------------------------------

// TRL: eval_loss is HF's evaluation loss (batch losses weighted by their pairs); every other eval_ metric
// is the mean of the per-batch means.
static rlhf_status dpo_evaluate(dpo_run *r, double *out, rlhf_err *err) {
    const dpo_args *a = r->a;
    const pref_set *s = a->eval;
    int bs = a->common.eval_batch_size > 0 ? a->common.eval_batch_size : 1;
    int W = dist_size(a->dist), rank = dist_rank(a->dist);
    // DistributedSampler without shuffling: rank r reads rows r, r + W, ... (padded by wrapping around)
    int per = (s->n + W - 1) / W;
    int *rows = malloc(sizeof(int) * (size_t)(per > 0 ? per : 1));
    if (!rows) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    for (int i = 0; i < per; i++) rows[i] = (rank + i * W) % s->n;
    double acc[DPO_N_METRICS] = {0}, loss_w = 0;
    int nb = 0;
    rlhf_status st = RLHF_OK;
    for (int b0 = 0; b0 < per && !st; b0 += bs) {
        int P = per - b0 < bs ? per - b0 : bs;
        double mt[DPO_N_METRICS];
        st = dpo_batch(r, s, rows + b0, P, a->ref_eval, 0, 0, 0.0f, mt, err);
        if (st) break;
        for (int i = 0; i < DPO_N_METRICS; i++) acc[i] += mt[i];
        loss_w += mt[DPO_M_LOSS] * P * W;
        nb++;
    }
    free(rows);
    if (st) return st;
    for (int i = 0; i < DPO_N_METRICS; i++) out[i] = nb ? acc[i] / nb : NAN;
    out[DPO_M_LOSS] = nb ? loss_w / ((double)per * W) : NAN;
    return RLHF_OK;
}

// ---- logging -----------------------------------------------------------------------------------------

static void fmt(char *buf, size_t n, double v) {
    if (isfinite(v))
        snprintf(buf, n, "%.8g", v);
    else
        buf[0] = 0;
}

static const char *const *log_columns(void) {
    static char names[DPO_LOG_N_COLUMNS][40];
    static const char *cols[DPO_LOG_N_COLUMNS];
    if (!cols[0]) {
        snprintf(names[0], 40, "epoch"), snprintf(names[1], 40, "step");
        snprintf(names[2], 40, "learning_rate"), snprintf(names[3], 40, "grad_norm");
        for (int i = 0; i < DPO_N_METRICS; i++) {
            snprintf(names[4 + i], 40, "%s", dpo_metric_names[i]);
            snprintf(names[4 + DPO_N_METRICS + i], 40, "eval_%s", dpo_metric_names[i]);
        }
        for (int i = 0; i < DPO_LOG_N_COLUMNS; i++) cols[i] = names[i];
    }
    return cols;
}

// One row: train metrics (m, may be NULL) or eval metrics (e, may be NULL). Also printed on stdout as
// HF Trainer's log dict unless quiet.
static rlhf_status log_row(csv_log *log, const dpo_args *a, double epoch, long long step, double lr, double norm,
                           const double *m, const double *e, rlhf_err *err) {
    char cells[DPO_LOG_N_COLUMNS][40];
    const char *vals[DPO_LOG_N_COLUMNS];
    fmt(cells[0], 40, epoch), snprintf(cells[1], 40, "%lld", step);
    fmt(cells[2], 40, m ? lr : NAN), fmt(cells[3], 40, m ? norm : NAN);
    for (int i = 0; i < DPO_N_METRICS; i++) {
        fmt(cells[4 + i], 40, m ? m[i] : NAN);
        fmt(cells[4 + DPO_N_METRICS + i], 40, e ? e[i] : NAN);
    }
    for (int i = 0; i < DPO_LOG_N_COLUMNS; i++) vals[i] = cells[i];
    if (!dist_is_main(a->dist)) return RLHF_OK;
    if (!a->common.quiet) {
        const char *const *cols = log_columns();
        printf("{\"epoch\": %.4g, \"step\": %lld", epoch, step);
        for (int i = 2; i < DPO_LOG_N_COLUMNS; i++)
            if (cells[i][0]) printf(", \"%s\": %s", cols[i], cells[i]);
        printf("}\n");
        fflush(stdout);
    }
    return csv_log_row(log, vals, err);
}

// The logged rows of training_log.csv as numbers (NaN for empty cells): rows x DPO_LOG_N_COLUMNS.
static rlhf_status read_log(const char *path, double **out, int *n_rows, rlhf_err *err) {
    char *text = NULL;
    size_t len;
    *out = NULL, *n_rows = 0;
    RLHF_TRY(read_file(path, &text, &len, err));
    int lines = 0;
    for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
    double *v = malloc(sizeof(double) * (size_t)(lines + 1) * DPO_LOG_N_COLUMNS);
    if (!v) {
        free(text);
        return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    }
    int n = 0;
    char *line = strchr(text, '\n');  // skip the header
    while (line && line[1]) {
        char *p = line + 1, *end = strchr(p, '\n');
        if (!end) break;  // a torn last line
        double *row = v + (size_t)n * DPO_LOG_N_COLUMNS;
        for (int c = 0; c < DPO_LOG_N_COLUMNS; c++) {
            char *q = p;
            while (q < end && *q != ',') q++;
            row[c] = q > p ? strtod(p, NULL) : NAN;
            p = q < end ? q + 1 : end;
        }
        n++;
        line = end;
    }
    free(text);
    *out = v, *n_rows = n;
    return RLHF_OK;
}

// report.html from training_log.csv (so a resumed run draws its whole history).
static rlhf_status write_report(const dpo_args *a, const dpo_result *res, int n_train, rlhf_err *err) {
    char path[4200];
    double *v;
    int n;
    RLHF_TRY(read_log(path_join(path, sizeof path, a->common.output_dir, "training_log.csv"), &v, &n, err));
    double *x = malloc(sizeof(double) * (size_t)(n + 1) * 9);
    if (!x) {
        free(v);
        return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    }
    double *y[8];
    for (int k = 0; k < 8; k++) y[k] = x + (size_t)(n + 1) * (k + 1);
    // columns: loss, eval loss, acc, eval acc, margins, eval margins, chosen, rejected
    const int cols[8] = {4 + DPO_M_LOSS,
                         4 + DPO_N_METRICS + DPO_M_LOSS,
                         4 + DPO_M_REWARDS_ACCURACIES,
                         4 + DPO_N_METRICS + DPO_M_REWARDS_ACCURACIES,
                         4 + DPO_M_REWARDS_MARGINS,
                         4 + DPO_N_METRICS + DPO_M_REWARDS_MARGINS,
                         4 + DPO_M_REWARDS_CHOSEN,
                         4 + DPO_M_REWARDS_REJECTED};
    for (int i = 0; i < n; i++) {
        x[i] = v[(size_t)i * DPO_LOG_N_COLUMNS + 1];
        for (int k = 0; k < 8; k++) y[k][i] = v[(size_t)i * DPO_LOG_N_COLUMNS + cols[k]];
    }
    report_series s[8] = {{"train", x, y[0], n},          {"eval", x, y[1], n},
                          {"train", x, y[2], n},          {"eval", x, y[3], n},
                          {"train", x, y[4], n},          {"eval", x, y[5], n},
                          {"rewards/chosen", x, y[6], n}, {"rewards/rejected", x, y[7], n}};
    report_chart ch[4] = {{"DPO loss", "step", s, 2},
                          {"rewards/accuracies", "step", s + 2, 2},
                          {"rewards/margins", "step", s + 4, 2},
                          {"implicit rewards (train)", "step", s + 6, 2}};
    char summary[512];
    snprintf(summary, sizeof summary,
             "%lld optimizer steps on %d pairs; loss_type %s, beta %g; final loss %.4f; "
             "eval_rewards/accuracies %.4f -> %.4f; eval_rewards/chosen %.4f -> %.4f",
             res->global_step, n_train, dpo_loss_type_name(a->loss.type), a->loss.beta, res->last_loss,
             res->first_eval[DPO_M_REWARDS_ACCURACIES], res->eval[DPO_M_REWARDS_ACCURACIES],
             res->first_eval[DPO_M_REWARDS_CHOSEN], res->eval[DPO_M_REWARDS_CHOSEN]);
    rlhf_status st = report_write_html(path_join(path, sizeof path, a->common.output_dir, "report.html"), "rlhf dpo", summary,
                                       ch, 4, err);
    free(x);
    free(v);
    return st;
}

// A resume drops the rows logged after its checkpoint (a run killed later logged more), then appends.
static rlhf_status open_log(csv_log **log, const dpo_args *a, long long resume_step, rlhf_err *err) {
    char path[4200];
    path_join(path, sizeof path, a->common.output_dir, "training_log.csv");
    const char *const *cols = log_columns();
    if (a->common.resume_from && file_exists(path)) {
        double *v;
        int n;
        RLHF_TRY(read_log(path, &v, &n, err));
        csv_log *l;
        rlhf_status st = csv_log_open(&l, path, cols, DPO_LOG_N_COLUMNS, 0, err);
        for (int i = 0; i < n && !st; i++) {
            const double *row = v + (size_t)i * DPO_LOG_N_COLUMNS;
            if (!(row[1] <= (double)resume_step)) continue;
            char cells[DPO_LOG_N_COLUMNS][40];
            const char *vals[DPO_LOG_N_COLUMNS];
            fmt(cells[0], 40, row[0]), snprintf(cells[1], 40, "%lld", (long long)row[1]);
            for (int c = 2; c < DPO_LOG_N_COLUMNS; c++) fmt(cells[c], 40, row[c]);
            for (int c = 0; c < DPO_LOG_N_COLUMNS; c++) vals[c] = cells[c];
            st = csv_log_row(l, vals, err);
        }
        free(v);
        if (st) {
            csv_log_close(l);
            return st;
        }
        *log = l;
        return RLHF_OK;
    }
    return csv_log_open(log, path, cols, DPO_LOG_N_COLUMNS, 0, err);
}

// ---- training loop -----------------------------------------------------------------------------------

// The final directory: the model (HF layout), or the peft adapter (+ the merged model).
static rlhf_status save_model_dir(model *m, const tokenizer *tok, const dpo_args *a, rlhf_err *err) {
    return sft_save_model_dir(m, tok, a->common.output_dir, a->base_model_name, a->merge_adapter, err);
}

// checkpoint-{STEP} (HF naming whatever the strategy), then --save_total_limit's rotation; a step saved
// already (an epoch's end that is also the interruption point) is not written twice.
static rlhf_status save_checkpoint(dpo_run *r, const tokenizer *tok, const adamw_state *opt, trainer_state *ts,
                                   long long *last_saved, rlhf_err *err) {
    if (!dist_is_main(r->a->dist) || *last_saved == ts->global_step) return RLHF_OK;
    char path[4200];
    ts->n_aux = 0;
    if (r->a->loss.type == DPO_BCO_PAIR) {
        ts->aux[0] = r->running.mean;
        ts->aux[1] = r->running.var;
        ts->aux[2] = r->running.count;
        ts->n_aux = 3;
    }
    RLHF_TRY(checkpoint_save(checkpoint_path(path, sizeof path, r->a->common.output_dir, ts->global_step), r->m, tok, opt, ts,
                             r->a->base_model_name, err));
    *last_saved = ts->global_step;
    return checkpoint_rotate(r->a->common.output_dir, r->a->common.save_total_limit, ts->global_step, err);
}

// DistributedSampler: the epoch's permutation (or identity), padded by wrapping to a multiple of the
// process count; this rank's share is every W-th entry from its rank. Returns the share's length.
static int epoch_rows(const dpo_args *a, int n, int epoch, int *perm, int *mine) {
    if (a->common.shuffle)
        rng_permutation(rng_key(a->common.seed, RNG_STREAM_SHUFFLE, (uint64_t)epoch, 0), perm, n);
    else
        for (int i = 0; i < n; i++) perm[i] = i;
    int W = dist_size(a->dist), rank = dist_rank(a->dist), per = (n + W - 1) / W;
    for (int i = 0; i < per; i++) mine[i] = perm[(rank + (size_t)i * W) % (size_t)n];
    return per;
}

rlhf_status dpo_train(model *m, const tokenizer *tok, const pref_set *train, const dpo_args *a, dpo_result *res,
                      rlhf_err *err) {
    memset(res, 0, sizeof *res);
    for (int i = 0; i < DPO_N_METRICS; i++) res->first_eval[i] = res->eval[i] = NAN;
    const long long save_every = trainer_save_every(&a->common), eval_every = trainer_eval_every(&a->common);
    const int n = train->n, bs = a->common.train_batch_size, accum = a->common.grad_accum, W = dist_size(a->dist);
    const int per = (n + W - 1) / W;
    const int n_batches = (per + bs - 1) / bs;
    const long long steps_per_epoch = (n_batches + accum - 1) / accum;
    const long long total = trainer_total_steps(&a->common, steps_per_epoch);
    const long long warmup = trainer_warmup_steps(&a->common, total);
    adamw_config ac = {ADAMW_DEFAULT_BETA1, ADAMW_DEFAULT_BETA2, ADAMW_DEFAULT_EPS, a->common.weight_decay};
    dpo_run run;
    memset(&run, 0, sizeof run);
    run.a = a, run.m = m;
    run.pad_id = m->cfg.pad_token_id >= 0 && m->cfg.pad_token_id < m->cfg.vocab_size ? m->cfg.pad_token_id : 0;
    dpo_running_init(&run.running);
    if (a->ref) a->ref->no_grad = 1;

    RLHF_TRY(model_alloc_grads(m, err));
    model_zero_grads(m);
    model_trainable tv;
    model_trainable_view(m, &tv);
    adamw_state opt;
    RLHF_TRY(adamw_init(&opt, tv.n, err));
    char path[4200];
    csv_log *log = NULL;
    trainer_state ts;
    memset(&ts, 0, sizeof ts);
    rlhf_status st = dist_is_main(a->dist) ? checkpoint_remove_stale(a->common.output_dir, err) : RLHF_OK;
    long long last_saved = -1;
    if (st == RLHF_OK && a->common.resume_from) {
        st = trainer_state_load(path_join(path, sizeof path, a->common.resume_from, "trainer_state.json"), &ts, err);
        if (st == RLHF_OK && (ts.n_train != n || ts.seed != a->common.seed))
            st = rlhf_fail(err, RLHF_EINPUT,
                           "--resume_from_checkpoint %s: it trained on %d pairs with seed %llu; this run has %d "
                           "with seed %llu",
                           a->common.resume_from, ts.n_train, (unsigned long long)ts.seed, n,
                           (unsigned long long)a->common.seed);
        if (st == RLHF_OK && ts.train_batch_size && (ts.train_batch_size != bs || ts.grad_accum != accum))
            st = rlhf_fail(err, RLHF_EINPUT,
                           "--resume_from_checkpoint %s: it used --per_device_train_batch_size %d and "
                           "--gradient_accumulation_steps %d; this run has %d and %d",
                           a->common.resume_from, ts.train_batch_size, ts.grad_accum, bs, accum);
        if (st == RLHF_OK)
            st = optimizer_state_load(path_join(path, sizeof path, a->common.resume_from, "optimizer.safetensors"), m, &opt,
                                      err);
        if (st == RLHF_OK && a->loss.type == DPO_BCO_PAIR && ts.n_aux >= 3)
            run.running.mean = ts.aux[0], run.running.var = ts.aux[1], run.running.count = ts.aux[2];
        free(ts.order);  // recomputed from (seed, epoch)
        ts.order = NULL;
    }
    if (st == RLHF_OK && dist_is_main(a->dist)) st = open_log(&log, a, ts.global_step, err);
    int *perm = malloc(sizeof(int) * (size_t)n), *mine = malloc(sizeof(int) * (size_t)per);
    ts.seed = a->common.seed;
    ts.n_train = n;
    ts.train_batch_size = bs;  // and the HF TrainerState fields of trainer_state.json
    ts.grad_accum = accum;
    ts.micro_per_epoch = n_batches;
    ts.max_steps = total;
    ts.logging_steps = a->common.logging_steps;
    ts.eval_steps = eval_every;
    ts.save_steps = save_every;
    ts.num_train_epochs = (double)((total + steps_per_epoch - 1) / steps_per_epoch);
    if (st == RLHF_OK && (!perm || !mine)) st = rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    if (st == RLHF_OK && a->eval && !a->common.resume_from) st = dpo_evaluate(&run, res->first_eval, err);
    progress *pg = a->common.quiet || !dist_is_main(a->dist) ? NULL : progress_start("dpo", total, "steps");
    long long step = ts.global_step;
    int start_epoch = ts.epochs_done, skip = ts.micro_in_epoch;
    double log_sum[DPO_N_METRICS] = {0}, log_loss = 0;
    int log_micro = 0, log_steps = 0, skip_streak = 0;
    for (int epoch = start_epoch; st == RLHF_OK && step < total && !res->interrupted; epoch++) {
        epoch_rows(a, n, epoch, perm, mine);
        double step_loss = 0;
        int mb_end = n_batches;
        for (int mb = epoch == start_epoch ? skip : 0; mb < n_batches && st == RLHF_OK; mb++) {
            int B = per - mb * bs < bs ? per - mb * bs : bs;
            double mt[DPO_N_METRICS];
            uint64_t key = rng_key(a->common.seed, RNG_STREAM_DROPOUT, (uint64_t)step,
                                   (uint64_t)mb * (uint64_t)W + (uint64_t)dist_rank(a->dist));
            // HF Trainer divides every micro-batch loss by gradient_accumulation_steps; DDP averages ranks
            st = dpo_batch(&run, train, mine + (size_t)mb * bs, B, a->ref_train, 1, key, 1.0f / (float)(accum * W),
                           mt, err);
            if (st != RLHF_OK) break;
            step_loss += mt[DPO_M_LOSS] / accum;
            for (int i = 0; i < DPO_N_METRICS; i++) log_sum[i] += mt[i];
            log_micro++;
            if ((mb + 1) % accum != 0 && mb != n_batches - 1) continue;
            st = dist_allreduce_sum_f32(a->dist, tv.grads, tv.n, err);
            if (st != RLHF_OK) break;
            double norm = clip_grad_norm(tv.grads, tv.n, a->common.max_grad_norm);
            double lr = lr_at(a->common.schedule, a->common.learning_rate, step, warmup, total);
            int take;
            st = trainer_skip_guard("dpo", step_loss, norm, step, dist_is_main(a->dist), pg != NULL, &skip_streak,
                                    &ts.skipped_steps, &take, err);
            if (st != RLHF_OK) break;
            if (take) adamw_step(&opt, tv.params, tv.grads, tv.specs, tv.n_specs, lr, &ac);
            model_zero_grads(m);
            step++;
            res->last_loss = step_loss;
            log_loss += step_loss, log_steps++;
            step_loss = 0;
            double ep = epoch + (double)(mb + 1) / n_batches;
            if (step % a->common.logging_steps == 0 || step == total) {
                // TRL: loss = mean step loss since the last log; the other metrics the mean of the
                // micro-batch values stored since then
                double lm[DPO_N_METRICS];
                for (int i = 0; i < DPO_N_METRICS; i++) lm[i] = log_sum[i] / log_micro;
                lm[DPO_M_LOSS] = log_loss / log_steps;
                st = log_row(log, a, ep, step, lr, norm, lm, NULL, err);
                train_log_entry le = {ep,  step, lm[DPO_M_LOSS], lr, norm, lm[DPO_M_REWARDS_ACCURACIES],
                                      lm[DPO_M_REWARDS_MARGINS], NAN, NAN, NAN};
                if (st == RLHF_OK) st = trainer_state_add_log(&ts, &le, err);
                memset(log_sum, 0, sizeof log_sum);
                log_loss = 0, log_micro = 0, log_steps = 0;
            }
            int epoch_end = mb + 1 >= n_batches;
            if (st == RLHF_OK && a->eval && eval_every > 0 && step % eval_every == 0 && !epoch_end) {
                st = dpo_evaluate(&run, res->eval, err);
                if (st == RLHF_OK) st = log_row(log, a, ep, step, 0, 0, NULL, res->eval, err);
            }
            if (st == RLHF_OK && save_every > 0 && step % save_every == 0 && !epoch_end && step < total) {
                ts.epochs_done = epoch, ts.micro_in_epoch = mb + 1, ts.global_step = step;
                st = save_checkpoint(&run, tok, &opt, &ts, &last_saved, err);
            }
            if (st != RLHF_OK) break;
            if (pg) {
                char extra[64];
                snprintf(extra, sizeof extra, "loss %.4f", res->last_loss);
                progress_update(pg, step, extra);
            }
            int stop = dist_any(a->dist, a->stop && *a->stop);
            if (stop && mb + 1 < n_batches) {
                res->interrupted = 1;
                mb_end = mb + 1;
                break;
            }
            if (step >= total) break;
        }
        int ended = st == RLHF_OK && !(res->interrupted && mb_end < n_batches);
        int eval_now = a->eval && (a->common.eval_strategy == STRATEGY_EPOCH || (eval_every > 0 && step % eval_every == 0));
        if (ended && eval_now) {
            st = dpo_evaluate(&run, res->eval, err);
            if (st == RLHF_OK) st = log_row(log, a, epoch + 1.0, step, 0, 0, NULL, res->eval, err);
        }
        ts.epochs_done = res->interrupted ? epoch : epoch + 1;
        ts.micro_in_epoch = res->interrupted ? mb_end : 0;
        ts.global_step = step;
        if (st == RLHF_OK && dist_any(a->dist, a->stop && *a->stop)) res->interrupted = 1;
        if (st == RLHF_OK && a->common.save_strategy == STRATEGY_EPOCH && ts.micro_in_epoch == 0)
            st = save_checkpoint(&run, tok, &opt, &ts, &last_saved, err);
        if (st == RLHF_OK && save_every > 0 && step % save_every == 0 && !res->interrupted && step > 0)
            st = save_checkpoint(&run, tok, &opt, &ts, &last_saved, err);
    }
    if (pg) progress_finish(pg, NULL);
    res->global_step = step;
    if (st == RLHF_OK && res->interrupted) {
        ts.global_step = step;
        st = save_checkpoint(&run, tok, &opt, &ts, &last_saved, err);
        if (st == RLHF_OK)
            st = rlhf_fail(err, RLHF_EINTERRUPT, "interrupted: saved %s/checkpoint-%lld", a->common.output_dir, step);
    }
    if (log) csv_log_close(log);
    log = NULL;
    if (st == RLHF_OK && dist_is_main(a->dist)) st = save_model_dir(m, tok, a, err);
    if (st == RLHF_OK && dist_is_main(a->dist)) st = write_report(a, res, n, err);
    trainer_state_free(&ts);
    scratch_free(&run.sc);
    free(perm);
    free(mine);
    adamw_free(&opt);
    return st;
}
