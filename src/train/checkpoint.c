// Checkpoint writing and reading (layout in checkpoint.h). The model and tokenizer go through their
// own savers; this file owns the optimizer file, the trainer state and the build-then-rename of the
// directory.
#include "train/checkpoint.h"

#include <errno.h>
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
#define TRAINER_STATE_FORMAT 1  // bumped when trainer_state.json changes meaning

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

static void add_num(cJSON *o, const char *k, double v) {
    if (isfinite(v)) cJSON_AddNumberToObject(o, k, v);
    else cJSON_AddNullToObject(o, k);
}

rlhf_status trainer_state_save(const char *path, const trainer_state *s, rlhf_err *err) {
    cJSON *j = cJSON_CreateObject();
    if (!j) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    cJSON_AddNumberToObject(j, "format", TRAINER_STATE_FORMAT);
    cJSON_AddNumberToObject(j, "epoch", s->epochs_done);
    cJSON_AddNumberToObject(j, "micro_batches_in_epoch", s->micro_in_epoch);
    cJSON_AddNumberToObject(j, "global_step", (double)s->global_step);
    cJSON_AddNumberToObject(j, "skipped_steps", (double)s->skipped_steps);
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)s->seed);
    cJSON_AddStringToObject(j, "seed", seed);  // a string: a JSON number cannot hold every 64-bit seed
    cJSON_AddNumberToObject(j, "n_train", s->n_train);
    cJSON_AddNumberToObject(j, "train_batch_size", s->train_batch_size);
    cJSON_AddNumberToObject(j, "gradient_accumulation_steps", s->grad_accum);
    if (s->order) cJSON_AddItemToObject(j, "data_order", cJSON_CreateIntArray(s->order, s->n_train));
    if (s->n_aux > 0) cJSON_AddItemToObject(j, "aux_state", cJSON_CreateDoubleArray(s->aux, s->n_aux));
    cJSON *hist = cJSON_AddArrayToObject(j, "log_history");
    for (int i = 0; i < s->n_log; i++) {
        const train_log_entry *e = &s->log[i];
        cJSON *o = cJSON_CreateObject();
        add_num(o, "epoch", e->epoch);
        cJSON_AddNumberToObject(o, "step", (double)e->step);
        add_num(o, "loss", e->loss);
        add_num(o, "learning_rate", e->learning_rate);
        add_num(o, "grad_norm", e->grad_norm);
        add_num(o, "accuracy", e->accuracy);
        add_num(o, "margin", e->margin);
        add_num(o, "eval_loss", e->eval_loss);
        add_num(o, "eval_accuracy", e->eval_accuracy);
        add_num(o, "eval_margin", e->eval_margin);
        cJSON_AddItemToArray(hist, o);
    }
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
    const cJSON *gs = cJSON_GetObjectItemCaseSensitive(j, "global_step");
    const cJSON *ep = cJSON_GetObjectItemCaseSensitive(j, "epoch");
    const cJSON *mi = cJSON_GetObjectItemCaseSensitive(j, "micro_batches_in_epoch");
    const cJSON *nt = cJSON_GetObjectItemCaseSensitive(j, "n_train");
    const char *seed = json_get_string(j, "seed", NULL);
    if (!cJSON_IsNumber(gs) || !cJSON_IsNumber(ep) || !cJSON_IsNumber(mi) || !cJSON_IsNumber(nt) || !seed) {
        st = rlhf_fail(err, RLHF_EINPUT,
                       "%s: not an rlhf trainer state (needs global_step, epoch, micro_batches_in_epoch, n_train, "
                       "seed)", path);
        goto done;
    }
    s->global_step = (long long)gs->valuedouble;
    s->epochs_done = ep->valueint;
    s->micro_in_epoch = mi->valueint;
    s->n_train = nt->valueint;
    double skipped = get_num(j, "skipped_steps");
    s->skipped_steps = isfinite(skipped) && skipped > 0 ? (long long)skipped : 0;
    double bs = get_num(j, "train_batch_size"), ga = get_num(j, "gradient_accumulation_steps");
    s->train_batch_size = isfinite(bs) ? (int)bs : 0;
    s->grad_accum = isfinite(ga) ? (int)ga : 0;
    s->seed = strtoull(seed, NULL, 10);
    const cJSON *aux = cJSON_GetObjectItemCaseSensitive(j, "aux_state"), *ax;
    s->n_aux = 0;
    cJSON_ArrayForEach(ax, aux) if (cJSON_IsNumber(ax) && s->n_aux < TRAINER_STATE_MAX_AUX) s->aux[s->n_aux++] = ax->valuedouble;
    const cJSON *order = cJSON_GetObjectItemCaseSensitive(j, "data_order");
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
        RLHF_TRY(model_save(m, tmp, err));
    if (tok) RLHF_TRY(tokenizer_save(tok, tmp, err));
    RLHF_TRY(optimizer_state_save(path_join(path, sizeof path, tmp, "optimizer.safetensors"), m, opt, err));
    RLHF_TRY(trainer_state_save(path_join(path, sizeof path, tmp, "trainer_state.json"), st, err));
    return fsync_dir(tmp, err);
}

rlhf_status checkpoint_save(const char *dir, const model *m, const tokenizer *tok, const adamw_state *opt,
                            const trainer_state *st, const char *base_model_name, rlhf_err *err) {
    char tmp[PATH_MAX_LEN], parent[PATH_MAX_LEN];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", dir) >= sizeof tmp)
        return rlhf_fail(err, RLHF_EINPUT, "%s: path too long", dir);
    RLHF_TRY(remove_tree(tmp, err));
    RLHF_TRY(make_dirs(tmp, err));
    rlhf_status s = checkpoint_write_files(tmp, m, tok, opt, st, base_model_name, err);
    if (s != RLHF_OK) {
        // A failed write (full disk, file size limit) leaves no half-built directory behind; the previous
        // checkpoints were never touched. The error already names the file.
        rlhf_err ignored = {0};
        remove_tree(tmp, &ignored);
        return s;
    }
    RLHF_TRY(remove_tree(dir, err));
    if (rename(tmp, dir) != 0)
        return rlhf_fail(err, RLHF_ERUNTIME, "cannot rename %s to %s (%s)", tmp, dir, strerror(errno));
    snprintf(parent, sizeof parent, "%s", dir);
    char *slash = strrchr(parent, '/');
    if (slash) *slash = '\0';
    else snprintf(parent, sizeof parent, ".");
    return fsync_dir(parent, err);
}
