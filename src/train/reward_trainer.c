// The reward trainer's loop (see reward_trainer.h). Order of work per optimizer step: micro-batches
// (forward + backward, chosen and rejected in one batch), clip, AdamW at the scheduled lr, then at the
// step boundary: log, evaluate, checkpoint, and honour a stop request. The data order of an epoch is
// rng_permutation(rng_key(seed, SHUFFLE, epoch)); dropout keys are rng_key(seed, DROPOUT, step,
// micro), each row masked by its place in the global micro-batch (N processes drop as one); the lr
// is lr_at(step): nothing depends on how the run got to a step, which is what makes a
// resumed run bit-identical to an uninterrupted one.
#include "train/reward_trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/progress.h"
#include "base/rng.h"
#include "io/csv_log.h"
#include "io/files.h"
#include "models/peft.h"
#include "train/checkpoint.h"
#include "train/optimizer.h"
#include "train/report.h"
#include "train/reward_scoring.h"
#include "train/trainer_common.h"

#define PATH_LEN 4096
// torch.optim.AdamW defaults (HF TrainingArguments adam_beta1/adam_beta2/adam_epsilon).
#define ADAM_BETA1 0.9
#define ADAM_BETA2 0.999
#define ADAM_EPS 1e-8

static long long ceil_div(long long a, long long b) { return (a + b - 1) / b; }

// Pairs per global micro-batch: per process x processes.
static long long global_batch(const reward_train_args *a) {
    return (long long)a->common.train_batch_size * dist_size(a->dist);
}

static long long updates_per_epoch(int n_train, const reward_train_args *a) {
    long long batches = ceil_div(n_train, global_batch(a));
    long long u = ceil_div(batches, a->common.grad_accum);
    return u > 0 ? u : 1;
}

long long reward_total_steps(int n_train, const reward_train_args *a) {
    if (a->common.max_steps > 0) return a->common.max_steps;
    long long t = (long long)ceil(a->common.num_train_epochs * (double)updates_per_epoch(n_train, a) - 1e-9);
    return t > 0 ? t : 1;
}

rlhf_status reward_evaluate(model *m, const pref_set *set, int batch_size, float center_coef, dist *d,
                            reward_eval_result *out, rlhf_err *err) {
    memset(out, 0, sizeof *out);
    int *idx = malloc(sizeof(int) * (size_t)batch_size);
    if (!idx) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    double loss_sum = 0, margin_sum = 0;
    long correct = 0;
    int pad = model_pad_id(m);
    const int N = dist_size(d), rank = dist_rank(d);
    for (int s = 0, b = 0; s < set->n; s += batch_size, b++) {
        if (b % N != rank) continue;
        int P = set->n - s < batch_size ? set->n - s : batch_size;
        for (int p = 0; p < P; p++) idx[p] = s + p;
        pair_metrics pm;
        rlhf_status st = pairs_forward_backward(m, set, idx, P, pad, center_coef, 0, 0, NULL, 0, 0.0f, &pm, err);
        if (st) {
            free(idx);
            return st;
        }
        loss_sum += pm.loss * P;
        margin_sum += pm.margin_sum;
        correct += pm.correct;
    }
    free(idx);
    double sums[3] = {loss_sum, margin_sum, (double)correct};
    RLHF_TRY(dist_allreduce_sum_f64(d, sums, 3, err));
    loss_sum = sums[0], margin_sum = sums[1], correct = (long)sums[2];
    out->n = set->n;
    out->loss = loss_sum / set->n;
    out->accuracy = (double)correct / set->n;
    out->margin = margin_sum / set->n;
    return RLHF_OK;
}

// Without an evaluation set the statistics come from at most this many training pairs, evenly spaced: the
// whole training set would be one more forward pass over it (a third of an epoch) for two numbers.
#define REWARD_STATS_MAX_TRAIN_PAIRS 1024

// Scores every sequence of set (chosen and rejected rewards, read as `rlhf score` reads them) and records
// their mean and std in m's config.json ("mean", "std", OpenRLHF's keys). max_pairs > 0: only that many
// rows of set, evenly spaced (row i * n / max_pairs).
static rlhf_status record_reward_stats(model *m, const pref_set *set, const char *which, int max_pairs,
                                       const reward_train_args *a, rlhf_err *err) {
    pref_set view = *set;
    pref_row *picked = NULL;
    if (max_pairs > 0 && set->n > max_pairs) {
        picked = malloc(sizeof(pref_row) * (size_t)max_pairs);
        if (!picked) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
        for (int i = 0; i < max_pairs; i++) picked[i] = set->rows[(int64_t)i * set->n / max_pairs];
        view.rows = picked;
        view.n = max_pairs;
    }
    double *v = malloc(sizeof(double) * (size_t)view.n * 2);
    if (!v) {
        free(picked);
        return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    }
    rlhf_status s = reward_score_set(m, &view, a->common.eval_batch_size, v, v + view.n, err);
    long n = view.n;
    for (int r = 0; r < view.n; r++)
        if (view.rows[r].is_pair) v[n++] = v[view.n + r];
    double mean = 0, std = 0;
    if (!s) s = reward_norm_record(m, v, n, &mean, &std, err);
    if (!s && !a->common.quiet) {
        char rows[96];
        if (view.n < set->n) snprintf(rows, sizeof rows, "%d of the %d %s pairs (evenly spaced)", view.n, set->n, which);
        else snprintf(rows, sizeof rows, "the %d %s pairs", set->n, which);
        fprintf(stderr, "rlhf reward: rewards on %s: mean %.6g, std %.6g (saved in config.json as \"mean\"/\"std\" for "
                        "--normalize_reward)\n", rows, mean, std);
    }
    free(v);
    free(picked);
    return s;
}

// ---- logging -----------------------------------------------------------------------------------

static void fmt_cell(char *buf, size_t n, double v) {
    if (isfinite(v)) snprintf(buf, n, "%.8g", v);
    else buf[0] = '\0';
}

static rlhf_status log_row_write(csv_log *log, const train_log_entry *e, rlhf_err *err) {
    char cells[REWARD_LOG_N_COLUMNS][40];
    snprintf(cells[0], sizeof cells[0], "%.6g", e->epoch);
    snprintf(cells[1], sizeof cells[1], "%lld", e->step);
    double v[] = {e->loss, e->learning_rate, e->grad_norm, e->accuracy, e->margin,
                  e->eval_loss, e->eval_accuracy, e->eval_margin};
    for (int i = 0; i < 8; i++) fmt_cell(cells[2 + i], sizeof cells[0], v[i]);
    const char *vals[REWARD_LOG_N_COLUMNS];
    for (int i = 0; i < REWARD_LOG_N_COLUMNS; i++) vals[i] = cells[i];
    return csv_log_row(log, vals, err);
}

static void log_row_print(const train_log_entry *e) {
    printf("{\"epoch\": %.4g, \"step\": %lld", e->epoch, e->step);
    const char *names[] = {"loss", "learning_rate", "grad_norm", "accuracy", "margin",
                           "eval_loss", "eval_accuracy", "eval_margin"};
    double v[] = {e->loss, e->learning_rate, e->grad_norm, e->accuracy, e->margin,
                  e->eval_loss, e->eval_accuracy, e->eval_margin};
    for (int i = 0; i < 8; i++)
        if (isfinite(v[i])) printf(", \"%s\": %.6g", names[i], v[i]);
    printf("}\n");
    fflush(stdout);
}

// Rewrites training_log.csv from the log history (a resume drops rows logged after its checkpoint),
// then reopens it for appending.
static rlhf_status open_log(csv_log **log, const char *path, const trainer_state *st, rlhf_err *err) {
    static const char *const cols[] = {REWARD_LOG_COLUMNS};
    RLHF_TRY(csv_log_open(log, path, cols, REWARD_LOG_N_COLUMNS, 0, err));
    for (int i = 0; i < st->n_log; i++) {
        rlhf_status s = log_row_write(*log, &st->log[i], err);
        if (s) {
            csv_log_close(*log);
            *log = NULL;
            return s;
        }
    }
    return RLHF_OK;
}

static rlhf_status write_report(const char *output_dir, const trainer_state *st, const char *summary,
                                rlhf_err *err) {
    int n = st->n_log;
    double *buf = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1) * 9);
    if (!buf) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    double *x = buf, *col[8];
    for (int k = 0; k < 8; k++) col[k] = buf + (size_t)(k + 1) * (n > 0 ? n : 1);
    for (int i = 0; i < n; i++) {
        const train_log_entry *e = &st->log[i];
        x[i] = (double)e->step;
        double v[] = {e->loss, e->eval_loss, e->accuracy, e->eval_accuracy, e->margin, e->eval_margin,
                      e->learning_rate, e->grad_norm};
        for (int k = 0; k < 8; k++) col[k][i] = v[k];
    }
    report_series s[8] = {{"train loss", x, col[0], n}, {"eval loss", x, col[1], n},
                          {"train accuracy", x, col[2], n}, {"eval accuracy", x, col[3], n},
                          {"train margin (r_c - r_r)", x, col[4], n}, {"eval margin", x, col[5], n},
                          {"learning rate", x, col[6], n}, {"grad norm (before clipping)", x, col[7], n}};
    report_chart charts[] = {{"Pairwise loss", "optimizer step", s, 2},
                             {"Accuracy (share of pairs with r_chosen > r_rejected)", "optimizer step", s + 2, 2},
                             {"Reward margin", "optimizer step", s + 4, 2},
                             {"Learning rate", "optimizer step", s + 6, 1},
                             {"Gradient norm", "optimizer step", s + 7, 1}};
    char path[PATH_LEN];
    rlhf_status r = report_write_html(path_join(path, sizeof path, output_dir, "report.html"),
                                      "rlhf reward: training report", summary, charts, 5, err);
    free(buf);
    return r;
}

// ---- the loop ----------------------------------------------------------------------------------

typedef struct {  // training metrics since the last logged row
    double loss_sum;
    long steps;
    long pairs, correct;
    double margin_sum;
} pending_metrics;

// checkpoint-{global_step}, then --save_total_limit's rotation and the report.
static rlhf_status save_checkpoint(const reward_train_args *a, const model *m, const tokenizer *tok,
                                   const adamw_state *opt, trainer_state *st, const int *order, const char *summary,
                                   rlhf_err *err) {
    char dir[PATH_LEN];
    checkpoint_path(dir, sizeof dir, a->common.output_dir, st->global_step);
    int *saved = st->order;
    st->order = st->micro_in_epoch > 0 ? (int *)order : NULL;  // only a partial epoch needs its order
    // With adapters the checkpoint holds the adapter (peft layout) and the moments of the trainable range.
    rlhf_status s = checkpoint_save(dir, m, tok, opt, st, a->base_model_name, err);
    st->order = saved;
    if (!s) s = checkpoint_rotate(a->common.output_dir, a->common.save_total_limit, st->global_step, err);
    if (!s) s = write_report(a->common.output_dir, st, summary, err);
    return s;
}

// save_checkpoint on rank 0, after every rank gave its slice of sharded moments (ZeRO-1), so the checkpoint
// holds the whole optimizer state whatever the process count.
static rlhf_status save_checkpoint_dist(const reward_train_args *a, const model *m, const tokenizer *tok,
                                        const adamw_state *opt, trainer_state *st, const int *order,
                                        const char *summary, rlhf_err *err) {
    adamw_state full = {0};
    rlhf_status s = RLHF_OK;
    if (adamw_sharded(opt)) s = adamw_gather(opt, a->dist, &full, err);
    if (!s && dist_is_main(a->dist))
        s = save_checkpoint(a, m, tok, adamw_sharded(opt) ? &full : opt, st, order, summary, err);
    adamw_free(&full);
    return s;
}

static void summary_text(char *buf, size_t n, const trainer_state *st, long long total, int n_train,
                         int n_eval) {
    const train_log_entry *last = st->n_log ? &st->log[st->n_log - 1] : NULL;
    double eval_acc = NAN;
    for (int i = st->n_log - 1; i >= 0; i--)
        if (isfinite(st->log[i].eval_accuracy)) {
            eval_acc = st->log[i].eval_accuracy;
            break;
        }
    snprintf(buf, n, "step %lld of %lld; %d training pairs, %d evaluation pairs; skipped steps %lld\n"
                     "last logged loss %.6g; last eval accuracy %.4f",
             st->global_step, total, n_train, n_eval, st->skipped_steps, last ? last->loss : NAN, eval_acc);
}

rlhf_status reward_train(model *m, const tokenizer *tok, const pref_set *train, const pref_set *eval,
                         const reward_train_args *a, reward_train_result *res, rlhf_err *err) {
    memset(res, 0, sizeof *res);
    res->eval_loss = res->eval_accuracy = res->eval_margin = NAN;
    const int n = train->n, B = a->common.train_batch_size;
    dist *d = a->dist;
    const int N = dist_size(d), rank = dist_rank(d), main_rank = dist_is_main(d);
    const long long GB = global_batch(a);
    const long long n_micro = ceil_div(n, GB);
    const long long total = reward_total_steps(n, a);
    const long long upe = updates_per_epoch(n, a);
    const int n_epochs = (int)ceil_div(total, upe);
    const long long warmup =
        a->common.warmup_steps > 0 ? a->common.warmup_steps : (long long)ceil(a->common.warmup_ratio * (double)total - 1e-9);
    const int have_eval = eval && eval->n > 0 && a->common.eval_strategy != STRATEGY_NO;
    const float center = (float)a->center_rewards_coefficient;
    const adamw_config acfg = {ADAM_BETA1, ADAM_BETA2, ADAM_EPS, a->common.weight_decay};

    trainer_state st = {0};
    adamw_state opt = {0};
    csv_log *log = NULL;
    progress *bar = NULL;
    int *order = malloc(sizeof(int) * (size_t)n), *idx = malloc(sizeof(int) * (size_t)B);
    int *gpos = malloc(sizeof(int) * (size_t)B);  // idx's places in the global micro-batch
    char path[PATH_LEN], summary[512];
    rlhf_status s = RLHF_OK;
    if (!order || !idx || !gpos) {
        s = rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
        goto done;
    }
    // With LoRA (models/peft.h) the optimizer sees only the adapters and trained heads.
    model_trainable tv;
    if ((s = model_alloc_grads(m, err))) goto done;
    model_trainable_view(m, &tv);
    if ((s = adamw_init(&opt, tv.n, err))) goto done;
    st.seed = a->common.seed;
    st.n_train = n;
    // The state records the global micro-batch, so a checkpoint resumes with any process count that
    // keeps per_device x processes.
    st.train_batch_size = (int)GB;
    st.grad_accum = a->common.grad_accum;
    if (main_rank && (s = checkpoint_remove_stale(a->common.output_dir, err))) goto done;
    if (a->common.resume_from) {
        if ((s = trainer_state_load(path_join(path, sizeof path, a->common.resume_from, "trainer_state.json"), &st, err)))
            goto done;
        if (st.n_train != n) {
            s = rlhf_fail(err, RLHF_EINPUT,
                          "--resume_from_checkpoint %s: the checkpoint was trained on %d pairs, this dataset gives %d",
                          a->common.resume_from, st.n_train, n);
            goto done;
        }
        if ((st.train_batch_size && st.train_batch_size != GB) || (st.grad_accum && st.grad_accum != a->common.grad_accum)) {
            s = rlhf_fail(err, RLHF_EINPUT, "--resume_from_checkpoint %s: the checkpoint ran with "
                          "--per_device_train_batch_size %d --gradient_accumulation_steps %d (per device x "
                          "processes); give values with the same product to continue it (got %d x %d processes and "
                          "%d)", a->common.resume_from, st.train_batch_size, st.grad_accum, B, N, a->common.grad_accum);
            goto done;
        }
        st.train_batch_size = (int)GB;
        st.grad_accum = a->common.grad_accum;
        if (st.seed != a->common.seed) {
            s = rlhf_fail(err, RLHF_EINPUT, "--seed %llu differs from the checkpoint's %llu (the data order and "
                          "dropout would not continue the run)", (unsigned long long)a->common.seed,
                          (unsigned long long)st.seed);
            goto done;
        }
        if ((s = optimizer_state_load(path_join(path, sizeof path, a->common.resume_from, "optimizer.safetensors"), m,
                                      &opt, err)))
            goto done;
    }
    if (a->zero_stage == 1 && (s = adamw_shard(&opt, d, err))) goto done;
    // HF TrainerState fields of trainer_state.json
    st.micro_per_epoch = (int)n_micro;
    st.max_steps = total;
    st.logging_steps = a->common.logging_steps;
    st.eval_steps = a->common.eval_steps;
    st.save_steps = a->common.save_steps;
    st.num_train_epochs = n_epochs;
    if (main_rank && (s = open_log(&log, path_join(path, sizeof path, a->common.output_dir, "training_log.csv"), &st, err)))
        goto done;
    if (!a->common.quiet && main_rank) {
        fprintf(stderr, "rlhf reward: %d training pairs, %d evaluation pairs; %lld optimizer steps (%d epochs of "
                        "%lld), %lld warmup%s\n",
                n, eval ? eval->n : 0, total, n_epochs, upe, warmup,
                a->common.resume_from ? "; resuming" : "");
        bar = progress_start("reward", total, "steps");
        progress_update(bar, st.global_step, NULL);
    }

    pending_metrics pend = {0};
    double last_norm = NAN, last_lr = NAN;
    int skip_streak = 0;
    for (int epoch = st.epochs_done; epoch < n_epochs && st.global_step < total; epoch++) {
        for (int i = 0; i < n; i++) order[i] = i;
        if (a->common.shuffle) rng_permutation(rng_key(a->common.seed, RNG_STREAM_SHUFFLE, (uint64_t)epoch, 0), order, n);
        if (st.order && st.micro_in_epoch > 0) {  // resuming inside this epoch: same data order?
            if (memcmp(st.order, order, sizeof(int) * (size_t)n) != 0) {
                s = rlhf_fail(err, RLHF_EINPUT, "--resume_from_checkpoint %s: the data order differs from the "
                              "checkpoint's (different --no_shuffle or dataset?)", a->common.resume_from);
                goto done;
            }
        }
        free(st.order);
        st.order = NULL;
        long long micro = epoch == st.epochs_done ? st.micro_in_epoch : 0;
        while (micro < n_micro && st.global_step < total) {
            long long group_start = micro, group_end = micro + a->common.grad_accum;
            if (group_end > n_micro) group_end = n_micro;
            // Each micro-batch's mean loss is divided by the micro-batches in its step, as HF Trainer
            // divides by gradient_accumulation_steps (a short last step keeps a mean, not a fraction).
            float grad_scale = 1.0f / (float)(group_end - group_start);
            model_zero_grads(m);
            // Summed over ranks: loss, pairs, correct, margin. A rank's share of a micro-batch mean is
            // weighted by its pairs over the global micro-batch's, so the sum is the global mean.
            double step_sums[4] = {0, 0, 0, 0};
            for (long long k = group_start; k < group_end; k++) {
                long long lo = k * GB, hi = (k + 1) * GB < n ? (k + 1) * GB : n;
                int P = 0;
                for (long long i = lo + rank; i < hi; i += N) {  // DistributedSampler
                    gpos[P] = (int)(i - lo);
                    idx[P++] = order[i];
                }
                if (P == 0) continue;  // a short last micro-batch may leave a rank nothing
                double share = (double)P / (double)(hi - lo);
                // Dropout keys per (step, micro-batch); with N processes each row takes the mask of its place
                // in the global micro-batch (the longest of its sides sets the row length), as one process.
                uint64_t key = rng_key(a->common.seed, RNG_STREAM_DROPOUT, (uint64_t)st.global_step,
                                       (uint64_t)(k - group_start));
                pair_places places = {.gpos = gpos, .GP = (int)(hi - lo), .GT = 1};
                for (long long i = lo; N > 1 && i < hi; i++) {
                    const pref_row *r = &train->rows[order[i]];
                    if (r->chosen.n > places.GT) places.GT = r->chosen.n;
                    if (r->rejected.n > places.GT) places.GT = r->rejected.n;
                }
                pair_metrics pm;
                if ((s = pairs_forward_backward(m, train, idx, P, model_pad_id(m), center, !a->common.disable_dropout, key,
                                                N > 1 ? &places : NULL, 1, (float)(grad_scale * share), &pm, err)))
                    goto done;
                step_sums[0] += pm.loss * share;  // the mean of micro-batch means, as HF logs (share 1: one process)
                step_sums[1] += P;
                step_sums[2] += pm.correct;
                step_sums[3] += pm.margin_sum;
            }
            if ((s = dist_allreduce_sum_f32(d, tv.grads, tv.n, err)) || (s = dist_allreduce_sum_f64(d, step_sums, 4, err)))
                goto done;
            double step_loss = step_sums[0] / (double)(group_end - group_start);
            long step_pairs = (long)step_sums[1], step_correct = (long)step_sums[2];
            double step_margin = step_sums[3];
            double lr = lr_at(a->common.schedule, a->common.learning_rate, st.global_step, warmup, total);
            double norm = clip_grad_norm(tv.grads, tv.n, a->common.max_grad_norm);
            int take;
            if ((s = trainer_skip_guard("reward", step_loss, norm, st.global_step, 1, bar != NULL, &skip_streak,
                                        &st.skipped_steps, &take, err)))
                goto done;
            if (take) {
                adamw_step(&opt, tv.params, tv.grads, tv.specs, tv.n_specs, lr, &acfg);
                if ((s = adamw_gather_params(&opt, d, tv.params, err))) goto done;  // ZeRO-1: the others' slices
                pend.loss_sum += step_loss;
                pend.steps++;
                pend.pairs += step_pairs;
                pend.correct += step_correct;
                pend.margin_sum += step_margin;
            }
            last_norm = norm;
            last_lr = lr;
            st.global_step++;
            micro = group_end;
            int epoch_end = micro == n_micro;
            st.micro_in_epoch = epoch_end ? 0 : (int)micro;
            st.epochs_done = epoch_end ? epoch + 1 : epoch;
            res->last_loss = step_loss;

            // -- step boundary: log, evaluate, save, stop --
            int final_step = st.global_step == total;
            int do_log = pend.steps > 0 && (st.global_step % a->common.logging_steps == 0 || final_step);
            int do_eval = have_eval && ((a->common.eval_strategy == STRATEGY_STEPS &&
                                         st.global_step % a->common.eval_steps == 0) ||
                                        (a->common.eval_strategy == STRATEGY_EPOCH && epoch_end) || final_step);
            if (do_log || do_eval) {
                train_log_entry e = {epoch + (double)micro / (double)n_micro, st.global_step, NAN, NAN, NAN, NAN,
                                     NAN, NAN, NAN, NAN};
                if (do_log) {
                    e.loss = pend.loss_sum / (double)pend.steps;
                    e.learning_rate = last_lr;
                    e.grad_norm = last_norm;
                    e.accuracy = (double)pend.correct / (double)pend.pairs;
                    e.margin = pend.margin_sum / (double)pend.pairs;
                    memset(&pend, 0, sizeof pend);
                }
                if (do_eval) {
                    reward_eval_result ev;
                    if ((s = reward_evaluate(m, eval, a->common.eval_batch_size, center, d, &ev, err))) goto done;
                    e.eval_loss = res->eval_loss = ev.loss;
                    e.eval_accuracy = res->eval_accuracy = ev.accuracy;
                    e.eval_margin = res->eval_margin = ev.margin;
                }
                if ((s = trainer_state_add_log(&st, &e, err)) || (log && (s = log_row_write(log, &e, err)))) goto done;
                if (!a->common.quiet) {
                    if (bar) fprintf(stderr, "\n");
                    log_row_print(&e);
                }
            }
            summary_text(summary, sizeof summary, &st, total, n, eval ? eval->n : 0);
            int saved = (a->common.save_strategy == STRATEGY_STEPS && st.global_step % a->common.save_steps == 0) ||
                        (a->common.save_strategy == STRATEGY_EPOCH && epoch_end);
            if (saved && (s = save_checkpoint_dist(a, m, tok, &opt, &st, order, summary, err))) goto done;
            if (saved && main_rank && a->common.save_strategy == STRATEGY_EPOCH &&
                (s = checkpoint_epoch_alias(a->common.output_dir, epoch + 1, st.global_step, err)))
                goto done;
            if (bar) {
                char extra[128];
                snprintf(extra, sizeof extra, "loss %.4f lr %.3g", step_loss, lr);
                progress_update(bar, st.global_step, extra);
            }
            // Every rank stops at the same step when any of them saw the signal.
            if (dist_any(d, a->stop && *a->stop) && !final_step) {
                if (!saved && (s = save_checkpoint_dist(a, m, tok, &opt, &st, order, summary, err))) goto done;
                res->interrupted = 1;
                s = rlhf_fail(err, RLHF_EINTERRUPT, "interrupted: state saved in %s/checkpoint-%lld (continue "
                              "with --resume_from_checkpoint)", a->common.output_dir, st.global_step);
                goto done;
            }
        }
    }
    // OpenRLHF's reward normalisation statistics: mean and std of the rewards of the evaluation set (here:
    // else the training set), saved in config.json for --normalize_reward.
    int stats_on_eval = eval && eval->n > 0;
    if ((s = record_reward_stats(m, stats_on_eval ? eval : train, stats_on_eval ? "evaluation" : "training",
                                 stats_on_eval ? 0 : REWARD_STATS_MAX_TRAIN_PAIRS, a, err)))
        goto done;
    // The final model (HF layout) at the output directory's root, then the report.
    if (!main_rank) {
        // only rank 0 writes
    } else if (peft_active(m)) {
        // peft's save_pretrained layout; --merge_adapter also writes the merged model in HF layout.
        if ((s = peft_save_adapter(m, a->common.output_dir, a->base_model_name, err))) goto done;
        if (a->merge_adapter && ((s = peft_merge_and_unload(m, err)) || (s = model_save(m, a->common.output_dir, err))))
            goto done;
    } else if ((s = model_save(m, a->common.output_dir, err))) {
        goto done;
    }
    if (main_rank && tok && (s = tokenizer_save(tok, a->common.output_dir, err))) goto done;
    summary_text(summary, sizeof summary, &st, total, n, eval ? eval->n : 0);
    if (main_rank && (s = write_report(a->common.output_dir, &st, summary, err))) goto done;
done:
    if (bar) progress_finish(bar, s == RLHF_OK ? "done" : "stopped");
    res->global_step = st.global_step;
    res->skipped_steps = st.skipped_steps;
    if (log) csv_log_close(log);
    trainer_state_free(&st);
    adamw_free(&opt);
    free(order);
    free(idx);
    free(gpos);
    return s;
}
