// Checkpoint writing and reading (layout in checkpoint.h). The model and tokenizer go through their
// own savers; this file owns the optimizer file, the trainer state and the build-then-rename of the
// directory.
#include "train/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/files.h"
#include "io/json_util.h"
#include "io/safetensors.h"
#include "models/peft.h"

#define PATH_MAX_LEN 4096
#define TRAINER_STATE_FORMAT 2  // bumped when trainer_state.json changes meaning

// ---- trainer state ----------------------------------------------------------------------------

rlhf_status trainer_state_add_log(trainer_state *s, const train_log_entry *e, rlhf_err *err) {
    if (s->n_log == s->cap_log) {
        int cap = s->cap_log ? s->cap_log * 2 : 64;
        train_log_entry *p = realloc(s->log, sizeof *p * (size_t)cap);
        if (!p) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory (log history)");
        s->log = p;
        s->cap_log = cap;
    }
    s->log[s->n_log++] = *e;
    return RLHF_OK;
}

void trainer_state_free(trainer_state *s) {
    free(s->order);
    free(s->log);
    memset(s, 0, sizeof *s);
}

// ---- HF TrainerState ---------------------------------------------------------------------------

cJSON *hf_log_entry(const char *const *names, const double *vals, int n) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    for (int i = 0; i < n; i++)
        if (isfinite(vals[i])) cJSON_AddNumberToObject(o, names[i], vals[i]);
    return o;
}

cJSON *hf_trainer_state_json(const hf_state_fields *h, cJSON *log_history, cJSON *resume) {
    cJSON *j = cJSON_CreateObject();
    if (!j) {
        cJSON_Delete(log_history);
        cJSON_Delete(resume);
        return NULL;
    }
    cJSON_AddNullToObject(j, "best_global_step");
    cJSON_AddNullToObject(j, "best_metric");
    cJSON_AddNullToObject(j, "best_model_checkpoint");
    json_add_float(j, "epoch", h->epoch);
    cJSON_AddNumberToObject(j, "eval_steps", (double)h->eval_steps);
    cJSON_AddNumberToObject(j, "global_step", (double)h->global_step);
    cJSON_AddFalseToObject(j, "is_hyper_param_search");
    cJSON_AddTrueToObject(j, "is_local_process_zero");
    cJSON_AddTrueToObject(j, "is_world_process_zero");
    cJSON_AddItemToObject(j, "log_history", log_history ? log_history : cJSON_CreateArray());
    cJSON_AddNumberToObject(j, "logging_steps", (double)h->logging_steps);
    cJSON_AddNumberToObject(j, "max_steps", (double)h->max_steps);
    cJSON_AddNumberToObject(j, "num_input_tokens_seen", 0);
    cJSON_AddNumberToObject(j, "num_train_epochs", h->num_train_epochs);
    cJSON_AddNumberToObject(j, "save_steps", (double)h->save_steps);
    cJSON *cb = cJSON_AddObjectToObject(j, "stateful_callbacks");
    cJSON *tc = cJSON_AddObjectToObject(cb, "TrainerControl");
    cJSON *ta = cJSON_AddObjectToObject(tc, "args");
    cJSON_AddFalseToObject(ta, "should_epoch_stop");
    cJSON_AddFalseToObject(ta, "should_evaluate");
    cJSON_AddFalseToObject(ta, "should_log");
    cJSON_AddTrueToObject(ta, "should_save");
    cJSON_AddFalseToObject(ta, "should_training_stop");
    cJSON_AddObjectToObject(tc, "attributes");
    if (resume) {
        cJSON *rs = cJSON_AddObjectToObject(cb, "RlhfResumeState");
        cJSON_AddItemToObject(rs, "args", resume);
        cJSON_AddObjectToObject(rs, "attributes");
    }
    cJSON_AddNumberToObject(j, "total_flos", 0);
    cJSON_AddNumberToObject(j, "train_batch_size", (double)h->train_batch_size);
    cJSON_AddNullToObject(j, "trial_name");
    cJSON_AddNullToObject(j, "trial_params");
    return j;
}

// ---- reward / sft trainer state ----------------------------------------------------------------

static const char *const LOG_KEYS[] = {"epoch", "step", "loss", "learning_rate", "grad_norm", "accuracy",
                                       "margin", "eval_loss", "eval_accuracy", "eval_margin"};
#define N_LOG_KEYS 10

static void entry_values(const train_log_entry *e, double v[N_LOG_KEYS]) {
    double w[N_LOG_KEYS] = {e->epoch, (double)e->step, e->loss, e->learning_rate, e->grad_norm, e->accuracy,
                            e->margin, e->eval_loss, e->eval_accuracy, e->eval_margin};
    memcpy(v, w, sizeof w);
}

rlhf_status trainer_state_save(const char *path, const trainer_state *s, rlhf_err *err) {
    cJSON *r = cJSON_CreateObject(), *hist = cJSON_CreateArray();
    if (!r || !hist) {
        cJSON_Delete(r);
        cJSON_Delete(hist);
        return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    }
    cJSON_AddNumberToObject(r, "format", TRAINER_STATE_FORMAT);
    cJSON_AddNumberToObject(r, "epochs_done", s->epochs_done);
    cJSON_AddNumberToObject(r, "micro_batches_in_epoch", s->micro_in_epoch);
    cJSON_AddNumberToObject(r, "skipped_steps", (double)s->skipped_steps);
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)s->seed);
    cJSON_AddStringToObject(r, "seed", seed);  // a string: a JSON number cannot hold every 64-bit seed
    cJSON_AddNumberToObject(r, "n_train", s->n_train);
    cJSON_AddNumberToObject(r, "gradient_accumulation_steps", s->grad_accum);
    if (s->order) cJSON_AddItemToObject(r, "data_order", cJSON_CreateIntArray(s->order, s->n_train));
    if (s->n_aux > 0) cJSON_AddItemToObject(r, "aux_state", cJSON_CreateDoubleArray(s->aux, s->n_aux));
    for (int i = 0; i < s->n_log; i++) {
        double v[N_LOG_KEYS];
        entry_values(&s->log[i], v);
        cJSON_AddItemToArray(hist, hf_log_entry(LOG_KEYS, v, N_LOG_KEYS));
    }
    hf_state_fields h = {(double)s->epochs_done, s->global_step, s->max_steps, s->logging_steps, s->eval_steps,
                         s->save_steps, s->train_batch_size, s->num_train_epochs};
    if (s->micro_per_epoch > 0) h.epoch += (double)s->micro_in_epoch / (double)s->micro_per_epoch;
    cJSON *j = hf_trainer_state_json(&h, hist, r);
    if (!j) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    rlhf_status st = json_save_file(path, j, err);
    cJSON_Delete(j);
    return st;
}

static double get_num(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

rlhf_status trainer_state_load(const char *path, trainer_state *s, rlhf_err *err) {
    memset(s, 0, sizeof *s);
    cJSON *j = NULL;
    RLHF_TRY(json_load_file(path, &j, err));
    rlhf_status st = RLHF_OK;
    // The resume fields: in stateful_callbacks.RlhfResumeState.args (format 2), or at the top level with
    // "epoch" counting completed epochs (format 1, checkpoints of earlier versions).
    const cJSON *cbs = cJSON_GetObjectItemCaseSensitive(j, "stateful_callbacks");
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(cbs, "RlhfResumeState"), "args");
    const cJSON *ep;
    if (cJSON_IsObject(r)) {
        ep = cJSON_GetObjectItemCaseSensitive(r, "epochs_done");
    } else {
        r = j;
        ep = cJSON_GetObjectItemCaseSensitive(j, "epoch");
    }
    const cJSON *gs = cJSON_GetObjectItemCaseSensitive(j, "global_step");
    const cJSON *mi = cJSON_GetObjectItemCaseSensitive(r, "micro_batches_in_epoch");
    const cJSON *nt = cJSON_GetObjectItemCaseSensitive(r, "n_train");
    const char *seed = json_get_string(r, "seed", NULL);
    if (!cJSON_IsNumber(gs) || !cJSON_IsNumber(ep) || !cJSON_IsNumber(mi) || !cJSON_IsNumber(nt) || !seed) {
        st = rlhf_fail(err, RLHF_EINPUT,
                       "%s: not an rlhf trainer state (needs global_step and stateful_callbacks.RlhfResumeState with "
                       "epochs_done, micro_batches_in_epoch, n_train, seed)", path);
        goto done;
    }
    s->global_step = (long long)gs->valuedouble;
    s->epochs_done = ep->valueint;
    s->micro_in_epoch = mi->valueint;
    s->n_train = nt->valueint;
    double skipped = get_num(r, "skipped_steps");
    s->skipped_steps = isfinite(skipped) && skipped > 0 ? (long long)skipped : 0;
    double bs = get_num(j, "train_batch_size"), ga = get_num(r, "gradient_accumulation_steps");
    s->train_batch_size = isfinite(bs) ? (int)bs : 0;
    s->grad_accum = isfinite(ga) ? (int)ga : 0;
    s->seed = strtoull(seed, NULL, 10);
    const cJSON *aux = cJSON_GetObjectItemCaseSensitive(r, "aux_state"), *ax;
    s->n_aux = 0;
    cJSON_ArrayForEach(ax, aux) if (cJSON_IsNumber(ax) && s->n_aux < TRAINER_STATE_MAX_AUX) s->aux[s->n_aux++] = ax->valuedouble;
    const cJSON *order = cJSON_GetObjectItemCaseSensitive(r, "data_order");
    if (cJSON_IsArray(order)) {
        if (cJSON_GetArraySize(order) != s->n_train) {
            st = rlhf_fail(err, RLHF_EINPUT, "%s: data_order has %d entries for n_train %d", path,
                           cJSON_GetArraySize(order), s->n_train);
            goto done;
        }
        s->order = malloc(sizeof(int) * (size_t)(s->n_train > 0 ? s->n_train : 1));
        if (!s->order) {
            st = rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
            goto done;
        }
        int i = 0;
        const cJSON *v;
        cJSON_ArrayForEach(v, order) s->order[i++] = v->valueint;
    }
    const cJSON *hist = cJSON_GetObjectItemCaseSensitive(j, "log_history"), *o;
    cJSON_ArrayForEach(o, hist) {
        double step = get_num(o, "step");
        train_log_entry e = {get_num(o, "epoch"), isfinite(step) ? (long long)step : 0, get_num(o, "loss"),
                             get_num(o, "learning_rate"), get_num(o, "grad_norm"), get_num(o, "accuracy"),
                             get_num(o, "margin"), get_num(o, "eval_loss"), get_num(o, "eval_accuracy"),
                             get_num(o, "eval_margin")};
        if ((st = trainer_state_add_log(s, &e, err))) goto done;
    }
done:
    cJSON_Delete(j);
    if (st) trainer_state_free(s);
    return st;
}

// ---- optimizer ---------------------------------------------------------------------------------

// The optimizer covers the trainable view (models/peft.h): the whole model, or with adapters only
// the adapters and trained heads, named as peft saves them.
rlhf_status optimizer_state_save(const char *path, const model *m, const adamw_state *opt, rlhf_err *err) {
    model_trainable tv;
    model_trainable_view((model *)m, &tv);  // reads only
    int n = 2 * tv.n_specs + 1;
    st_write_tensor *t = calloc((size_t)n, sizeof *t);
    char **names = calloc((size_t)n, sizeof *names);
    if (!t || !names) {
        free(t);
        free(names);
        return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    }
    rlhf_status st = RLHF_OK;
    int64_t step = opt->step;
    for (int i = 0; i < tv.n_specs && !st; i++) {
        const param_spec *p = &tv.specs[i];
        for (int k = 0; k < 2; k++) {
            int at = 2 * i + k;
            if (asprintf(&names[at], "%s.%s", k ? "exp_avg_sq" : "exp_avg", p->name) < 0) {
                names[at] = NULL;
                st = rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
                break;
            }
            t[at].name = names[at];
            t[at].dtype = ST_F32;
            t[at].ndim = p->ndim;
            for (int d = 0; d < p->ndim; d++) t[at].shape[d] = p->shape[d];
            t[at].data = (k ? opt->v : opt->m) + p->offset;
        }
    }
    if (!st) {
        t[n - 1].name = "step";
        t[n - 1].dtype = ST_I64;
        t[n - 1].ndim = 1;
        t[n - 1].shape[0] = 1;
        t[n - 1].data = &step;
        const char *meta[] = {"format", "rlhf-adamw"};
        st = st_write(path, t, n, meta, 1, err);
    }
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    free(t);
    return st;
}

rlhf_status optimizer_state_load(const char *path, const model *m, adamw_state *opt, rlhf_err *err) {
    model_trainable tv;
    model_trainable_view((model *)m, &tv);
    if (opt->n != tv.n)
        return rlhf_fail(err, RLHF_ERUNTIME, "optimizer of %zu values for %zu trainable parameters", opt->n, tv.n);
    st_file f;
    RLHF_TRY(st_open(&f, path, err));
    rlhf_status st = RLHF_OK;
    char name[MODEL_NAME_MAX * 2 + 16];
    for (int i = 0; i < tv.n_specs && !st; i++) {
        const param_spec *p = &tv.specs[i];
        for (int k = 0; k < 2 && !st; k++) {
            snprintf(name, sizeof name, "%s.%s", k ? "exp_avg_sq" : "exp_avg", p->name);
            const st_tensor *t = st_find(&f, name);
            if (!t) {
                st = rlhf_fail(err, RLHF_EINPUT, "%s: tensor '%s' missing", path, name);
            } else if (t->dtype != ST_F32 || (size_t)t->numel != p->numel) {
                st = rlhf_fail(err, RLHF_EINPUT, "%s: tensor '%s' must be F32 with %zu values", path, name, p->numel);
            } else {
                memcpy((k ? opt->v : opt->m) + p->offset, t->data, sizeof(float) * p->numel);
            }
        }
    }
    if (!st) {
        const st_tensor *t = st_find(&f, "step");
        if (!t || t->dtype != ST_I64 || t->numel != 1) {
            st = rlhf_fail(err, RLHF_EINPUT, "%s: tensor 'step' (I64, 1 value) missing", path);
        } else {
            int64_t step;
            memcpy(&step, t->data, sizeof step);
            opt->step = step;
        }
    }
    st_close(&f);
    return st;
}

// ---- directories -------------------------------------------------------------------------------

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

rlhf_status remove_tree(const char *path, rlhf_err *err) {
    struct stat sb;
    if (lstat(path, &sb) != 0) return RLHF_OK;
    if (nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return rlhf_fail(err, RLHF_ERUNTIME, "%s: cannot remove (%s)", path, strerror(errno));
    return RLHF_OK;
}

// Writes every file of a checkpoint into the fresh directory tmp.
static rlhf_status checkpoint_write_files(const char *tmp, const model *m, const tokenizer *tok, const adamw_state *opt,
                                          const trainer_state *st, const char *base_model_name, rlhf_err *err) {
    char path[PATH_MAX_LEN];
    if (peft_active(m))
        RLHF_TRY(peft_save_adapter(m, tmp, base_model_name, err));
    else
        RLHF_TRY(model_save_f32(m, tmp, err));  // fp32 master weights: resume is exact whatever the dtype
    if (tok) RLHF_TRY(tokenizer_save(tok, tmp, err));
    RLHF_TRY(optimizer_state_save(path_join(path, sizeof path, tmp, "optimizer.safetensors"), m, opt, err));
    RLHF_TRY(trainer_state_save(path_join(path, sizeof path, tmp, "trainer_state.json"), st, err));
    return RLHF_OK;  // checkpoint_commit fsyncs the directory
}

rlhf_status checkpoint_begin(const char *dir, char *tmp, size_t n, rlhf_err *err) {
    if ((size_t)snprintf(tmp, n, "%s.tmp", dir) >= n) return rlhf_fail(err, RLHF_EINPUT, "%s: path too long", dir);
    RLHF_TRY(remove_tree(tmp, err));
    return make_dirs(tmp, err);
}

void checkpoint_abort(const char *tmp) {
    // A failed write (full disk, file size limit) leaves no half-built directory behind; the previous
    // checkpoints were never touched. The caller's error already names the file.
    rlhf_err ignored = {0};
    remove_tree(tmp, &ignored);
}

rlhf_status checkpoint_commit(const char *tmp, const char *dir, rlhf_err *err) {
    char parent[PATH_MAX_LEN];
    rlhf_status s = fsync_dir(tmp, err);
    if (!s) s = remove_tree(dir, err);
    if (!s && rename(tmp, dir) != 0)
        s = rlhf_fail(err, RLHF_ERUNTIME, "cannot rename %s to %s (%s)", tmp, dir, strerror(errno));
    if (s) {
        checkpoint_abort(tmp);
        return s;
    }
    snprintf(parent, sizeof parent, "%s", dir);
    char *slash = strrchr(parent, '/');
    if (slash) *slash = '\0';
    else snprintf(parent, sizeof parent, ".");
    return fsync_dir(parent, err);
}

rlhf_status checkpoint_save(const char *dir, const model *m, const tokenizer *tok, const adamw_state *opt,
                            const trainer_state *st, const char *base_model_name, rlhf_err *err) {
    char tmp[PATH_MAX_LEN];
    RLHF_TRY(checkpoint_begin(dir, tmp, sizeof tmp, err));
    rlhf_status s = checkpoint_write_files(tmp, m, tok, opt, st, base_model_name, err);
    if (s != RLHF_OK) {
        checkpoint_abort(tmp);
        return s;
    }
    return checkpoint_commit(tmp, dir, err);
}

// ---- naming, resume, rotation --------------------------------------------------------------------

char *checkpoint_path(char *out, size_t n, const char *output_dir, long long step) {
    char name[48];
    snprintf(name, sizeof name, "checkpoint-%lld", step);
    return path_join(out, n, output_dir, name);
}

// The N of a name that is exactly checkpoint-<digits> (HF's ^checkpoint\-(\d+)$), else -1.
static long long checkpoint_step_of(const char *name) {
    if (strncmp(name, "checkpoint-", 11) != 0 || !name[11]) return -1;
    long long v = 0;
    for (const char *c = name + 11; *c; c++) {
        if (*c < '0' || *c > '9' || v > (LLONG_MAX - 9) / 10) return -1;
        v = v * 10 + (*c - '0');
    }
    return v;
}

// The steps of every checkpoint-<N> directory under dir, ascending (*steps malloc'd; NULL when none).
static int list_checkpoints(const char *dir, long long **steps) {
    *steps = NULL;
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0, cap = 0;
    struct dirent *e;
    char p[PATH_MAX_LEN];
    while ((e = readdir(d))) {
        long long k = checkpoint_step_of(e->d_name);
        if (k < 0 || !dir_exists(path_join(p, sizeof p, dir, e->d_name))) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            long long *g = realloc(*steps, sizeof *g * (size_t)cap);
            if (!g) break;
            *steps = g;
        }
        (*steps)[n++] = k;
    }
    closedir(d);
    for (int i = 1; i < n; i++)  // insertion sort: a run holds few checkpoints
        for (int k = i; k > 0 && (*steps)[k - 1] > (*steps)[k]; k--) {
            long long t = (*steps)[k];
            (*steps)[k] = (*steps)[k - 1];
            (*steps)[k - 1] = t;
        }
    return n;
}

void checkpoint_find_last(const char *output_dir, char *out, size_t n, long long *step) {
    long long *steps;
    int k = list_checkpoints(output_dir, &steps);
    *step = k > 0 ? steps[k - 1] : -1;
    if (k > 0) checkpoint_path(out, n, output_dir, *step);
    else if (n) out[0] = '\0';
    free(steps);
}

rlhf_status checkpoint_resolve_resume(const char *value, const char *output_dir, char *out, size_t n,
                                      rlhf_err *err) {
    out[0] = '\0';
    if (!value || !strcmp(value, "false") || !strcmp(value, "False")) return RLHF_OK;
    if (!*value || !strcmp(value, "true") || !strcmp(value, "True")) {
        if (!output_dir)
            return rlhf_fail(err, RLHF_EINPUT, "--resume_from_checkpoint without a directory needs --output_dir");
        long long step;
        checkpoint_find_last(output_dir, out, n, &step);
        if (step < 0)
            return rlhf_fail(err, RLHF_EINPUT, "--resume_from_checkpoint: no checkpoint-<N> directory in --output_dir "
                             "%s to resume from (give a checkpoint directory, or start without the flag)", output_dir);
        fprintf(stderr, "rlhf: resuming from %s (the newest checkpoint in %s)\n", out, output_dir);
        return RLHF_OK;
    }
    char p[PATH_MAX_LEN];
    if (!strchr(value, '/') && output_dir && dir_exists(path_join(p, sizeof p, output_dir, value))) {
        snprintf(out, n, "%s", p);
        return RLHF_OK;
    }
    if (dir_exists(value)) {
        if ((size_t)snprintf(out, n, "%s", value) >= n)
            return rlhf_fail(err, RLHF_EINPUT, "--resume_from_checkpoint %s: path too long", value);
        return RLHF_OK;
    }
    if (!strchr(value, '/') && output_dir)
        return rlhf_fail(err, RLHF_EINPUT, "--resume_from_checkpoint %s: no such checkpoint directory (neither %s nor "
                         "./%s; 'true' or the flag alone takes the newest checkpoint-<N> in --output_dir)", value, p, value);
    return rlhf_fail(err, RLHF_EINPUT, "--resume_from_checkpoint %s: no such checkpoint directory", value);
}

rlhf_status checkpoint_remove_stale(const char *output_dir, rlhf_err *err) {
    DIR *d = opendir(output_dir);
    if (!d) return RLHF_OK;
    struct dirent *e;
    rlhf_status st = RLHF_OK;
    char p[PATH_MAX_LEN];
    while (!st && (e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (strncmp(e->d_name, "checkpoint-", 11) || len < 15 || strcmp(e->d_name + len - 4, ".tmp")) continue;
        if (!dir_exists(path_join(p, sizeof p, output_dir, e->d_name))) continue;
        fprintf(stderr, "rlhf: removing %s (a checkpoint left half-written by an interrupted run)\n", p);
        st = remove_tree(p, err);
    }
    closedir(d);
    return st;
}

rlhf_status checkpoint_rotate(const char *output_dir, long long limit, long long keep_step, rlhf_err *err) {
    if (limit <= 0) return RLHF_OK;
    long long *steps;
    int n = list_checkpoints(output_dir, &steps);
    rlhf_status st = RLHF_OK;
    char p[PATH_MAX_LEN];
    for (int i = 0, left = n; i < n && left > limit && !st; i++) {
        if (steps[i] == keep_step) continue;
        st = remove_tree(checkpoint_path(p, sizeof p, output_dir, steps[i]), err);
        left--;
    }
    free(steps);
    DIR *dh = st ? NULL : opendir(output_dir);
    for (struct dirent *e; dh && (e = readdir(dh));) {  // epoch aliases left pointing at nothing
        if (strncmp(e->d_name, "checkpoint-epoch", 16) != 0) continue;
        struct stat sb;
        path_join(p, sizeof p, output_dir, e->d_name);
        if (stat(p, &sb) != 0 && lstat(p, &sb) == 0 && S_ISLNK(sb.st_mode)) unlink(p);
    }
    if (dh) closedir(dh);
    return st;
}

rlhf_status checkpoint_epoch_alias(const char *output_dir, int epoch, long long step, rlhf_err *err) {
    char link[PATH_MAX_LEN], target[64], tmp[PATH_MAX_LEN + 8];
    snprintf(target, sizeof target, "checkpoint-%lld", step);
    char name[64];
    snprintf(name, sizeof name, "checkpoint-epoch%d", epoch);
    path_join(link, sizeof link, output_dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", link);
    unlink(tmp);
    if (symlink(target, tmp) != 0 || rename(tmp, link) != 0) {
        int e = errno;
        unlink(tmp);
        return rlhf_fail(err, RLHF_ERUNTIME, "%s: cannot link to %s (%s)", link, target, strerror(e));
    }
    return RLHF_OK;
}
