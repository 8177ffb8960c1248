// PPO checkpoints and outputs. checkpoint-{UPDATE}/ is the policy as an HF model directory (loadable by
// `rlhf generate` / from_pretrained) plus the whole PPO state: optimizer.safetensors (AdamW moments of
// the policy, train/checkpoint.h's format), value_head.safetensors (v_head.summary.* and their moments)
// or value_model/ (the value model and its optimizer file), and ppo_state.json (update reached, KL
// coefficient, run shape, log history) beside trainer_state.json (TRL's: transformers' TrainerState with
// "episode"). It is built under checkpoint-{UPDATE}.tmp and renamed into
// place, so a directory named checkpoint-* is always whole. Resume needs nothing else: every random
// draw is keyed by (seed, update, ...), so restoring the weights, moments and KL coefficient replays
// the uninterrupted run exactly.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/files.h"
#include "io/json_util.h"
#include "io/safetensors.h"
#include "models/decoder.h"
#include "models/peft.h"
#include "train/rollout.h"
#include "train/checkpoint.h"
#include "train/ppo_trainer_impl.h"
#include "train/report.h"

#define PPO_STATE_FILE "ppo_state.json"
#define PPO_VHEAD_FILE "value_head.safetensors"
#define PPO_VALUE_DIR "value_model"

rlhf_status ppo_log_add(ppo_run *r, const ppo_log_row *row, rlhf_err *err) {
    if (r->n_log == r->cap_log) {
        int cap = r->cap_log ? 2 * r->cap_log : 64;
        ppo_log_row *g = realloc(r->log, (size_t)cap * sizeof *g);
        if (!g) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory (log history)");
        r->log = g;
        r->cap_log = cap;
    }
    r->log[r->n_log++] = *row;
    return RLHF_OK;
}

// episode, step, val/num_eos_tokens and eps are counts; the rest full-precision-enough decimals.
void ppo_format_value(char *buf, size_t n, int column, double v) {
    if (isnan(v)) snprintf(buf, n, "nan");
    else if (column == 0 || column == 1 || column == 15 || column == 17) snprintf(buf, n, "%lld", (long long)v);
    else snprintf(buf, n, "%.9g", v);
}

rlhf_status ppo_log_rewrite(const ppo_run *r, const char *path, rlhf_err *err) {
    static const char *const cols[PPO_LOG_N_COLUMNS] = {PPO_LOG_COLUMNS};
    size_t cap = 1024 + (size_t)r->n_log * PPO_LOG_N_COLUMNS * 32, len = 0;
    char *buf = malloc(cap);
    if (!buf) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    for (int c = 0; c < PPO_LOG_N_COLUMNS; c++) len += (size_t)snprintf(buf + len, cap - len, "%s%s", c ? "," : "", cols[c]);
    buf[len++] = '\n';
    for (int i = 0; i < r->n_log; i++) {
        for (int c = 0; c < PPO_LOG_N_COLUMNS; c++) {
            char cell[40];
            ppo_format_value(cell, sizeof cell, c, r->log[i].v[c]);
            len += (size_t)snprintf(buf + len, cap - len, "%s%s", c ? "," : "", cell);
        }
        buf[len++] = '\n';
    }
    rlhf_status st = atomic_write(path, buf, len, err);
    free(buf);
    return st;
}

rlhf_status ppo_save_policy_dir(const ppo_run *r, const char *dir, int checkpoint, rlhf_err *err) {
    // With LoRA: peft's adapter layout, its base the policy's input model (checkpoints resume from it).
    if (peft_active(r->policy))
        RLHF_TRY(peft_save_adapter(r->policy, dir, r->a->model_name_or_path, err));
    else
        RLHF_TRY(checkpoint ? model_save_f32(r->policy, dir, err) : model_save(r->policy, dir, err));
    if (r->policy_tok) RLHF_TRY(tokenizer_save(r->policy_tok, dir, err));
    return decoder_save_generation_config(r->policy, dir, err);
}

static rlhf_status vhead_save(const ppo_run *r, const char *path, rlhf_err *err) {
    int64_t C = (int64_t)r->vhead_n - 1;
    int64_t step = r->vhead_opt.step;
    const float *bufs[3] = {r->vhead, r->vhead_opt.m, r->vhead_opt.v};
    static const char *const prefix[3] = {"", "exp_avg.", "exp_avg_sq."};
    char names[6][80];
    st_write_tensor t[7];
    memset(t, 0, sizeof t);
    for (int k = 0; k < 3; k++) {
        snprintf(names[2 * k], sizeof names[0], "%sv_head.summary.weight", prefix[k]);
        snprintf(names[2 * k + 1], sizeof names[0], "%sv_head.summary.bias", prefix[k]);
        t[2 * k] = (st_write_tensor){.name = names[2 * k], .dtype = ST_F32, .ndim = 2, .shape = {1, C}, .data = bufs[k]};
        t[2 * k + 1] = (st_write_tensor){.name = names[2 * k + 1], .dtype = ST_F32, .ndim = 1, .shape = {1},
                                         .data = bufs[k] + C};
    }
    t[6] = (st_write_tensor){.name = "step", .dtype = ST_I64, .ndim = 0, .data = &step};
    return st_write(path, t, 7, NULL, 0, err);
}

static rlhf_status vhead_load(ppo_run *r, const char *path, rlhf_err *err) {
    st_file f;
    RLHF_TRY(st_open(&f, path, err));
    int64_t C = (int64_t)r->vhead_n - 1;
    float *bufs[3] = {r->vhead, r->vhead_opt.m, r->vhead_opt.v};
    static const char *const prefix[3] = {"", "exp_avg.", "exp_avg_sq."};
    rlhf_status st = RLHF_OK;
    for (int k = 0; k < 3 && !st; k++)
        for (int j = 0; j < 2 && !st; j++) {
            char name[80];
            snprintf(name, sizeof name, "%sv_head.summary.%s", prefix[k], j ? "bias" : "weight");
            const st_tensor *t = st_find(&f, name);
            int64_t want = j ? 1 : C;
            if (!t || t->numel != want)
                st = rlhf_fail(err, RLHF_EINPUT, "%s: tensor %s missing or not of %lld elements", path, name,
                               (long long)want);
            else
                st = st_to_f32(t, bufs[k] + (j ? C : 0), err);
        }
    const st_tensor *s = st_find(&f, "step");
    if (!st && (!s || s->dtype != ST_I64 || s->numel != 1))
        st = rlhf_fail(err, RLHF_EINPUT, "%s: tensor step missing or not one I64", path);
    if (!st) memcpy(&r->vhead_opt.step, s->data, sizeof(int64_t));
    st_close(&f);
    return st;
}

static cJSON *state_json(const ppo_run *r, long long update) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "update", (double)update);
    cJSON_AddNumberToObject(o, "episode", (double)update * r->batch);
    cJSON_AddNumberToObject(o, "num_updates", (double)r->num_updates);
    cJSON_AddNumberToObject(o, "batch", r->batch);
    cJSON_AddNumberToObject(o, "n_prompts", r->n_prompts);
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)r->a->seed);
    cJSON_AddStringToObject(o, "seed", seed);
    cJSON_AddStringToObject(o, "value_model", r->value ? "reward" : "head");
    cJSON_AddNumberToObject(o, "kl_coef", r->klc.value);
    static const char *const cols[PPO_LOG_N_COLUMNS] = {PPO_LOG_COLUMNS};
    cJSON *c = cJSON_AddArrayToObject(o, "log_columns");
    for (int i = 0; i < PPO_LOG_N_COLUMNS; i++) cJSON_AddItemToArray(c, cJSON_CreateString(cols[i]));
    cJSON *h = cJSON_AddArrayToObject(o, "log_history");
    for (int i = 0; i < r->n_log; i++) {
        cJSON *row = cJSON_CreateArray();
        for (int k = 0; k < PPO_LOG_N_COLUMNS; k++)
            cJSON_AddItemToArray(row, isfinite(r->log[i].v[k]) ? cJSON_CreateNumber(r->log[i].v[k]) : cJSON_CreateNull());
        cJSON_AddItemToArray(h, row);
    }
    return o;
}

// trainer_state.json as TRL's PPOTrainer writes it (transformers' TrainerState plus OnlineTrainerState's
// "episode"); log_history holds one dict per update with the training_log.csv columns and "epoch".
static cJSON *hf_state_json(const ppo_run *r, long long update) {
    static const char *const cols[PPO_LOG_N_COLUMNS + 1] = {PPO_LOG_COLUMNS, "epoch"};
    cJSON *hist = cJSON_CreateArray();
    for (int i = 0; hist && i < r->n_log; i++) {
        double v[PPO_LOG_N_COLUMNS + 1];
        memcpy(v, r->log[i].v, sizeof(double) * PPO_LOG_N_COLUMNS);
        v[PPO_LOG_N_COLUMNS] = r->n_prompts > 0 ? r->log[i].v[0] / r->n_prompts : NAN;
        cJSON_AddItemToArray(hist, hf_log_entry(cols, v, PPO_LOG_N_COLUMNS + 1));
    }
    double episode = (double)update * r->batch;
    hf_state_fields h = {r->n_prompts > 0 ? episode / r->n_prompts : 0, update, r->num_updates, 1, 0,
                         r->a->save_steps, r->a->per_device_train_batch_size, r->a->num_train_epochs};
    cJSON *j = hf_trainer_state_json(&h, hist, NULL);
    if (j) cJSON_AddNumberToObject(j, "episode", episode);
    return j;
}

static rlhf_status checkpoint_write(ppo_run *r, const char *tmp, long long update, rlhf_err *err) {
    char p[4400];
    RLHF_TRY(ppo_save_policy_dir(r, tmp, 1, err));
    RLHF_TRY(optimizer_state_save(path_join(p, sizeof p, tmp, "optimizer.safetensors"), r->policy, &r->policy_opt, err));
    if (r->value) {
        char vd[4400];
        path_join(vd, sizeof vd, tmp, PPO_VALUE_DIR);
        RLHF_TRY(model_save_f32(r->value, vd, err));
        RLHF_TRY(optimizer_state_save(path_join(p, sizeof p, vd, "optimizer.safetensors"), r->value, &r->value_opt, err));
    } else {
        RLHF_TRY(vhead_save(r, path_join(p, sizeof p, tmp, PPO_VHEAD_FILE), err));
    }
    if (r->samples_len)
        RLHF_TRY(atomic_write(path_join(p, sizeof p, tmp, "samples.jsonl"), r->samples, r->samples_len, err));
    for (int k = 0; k < 2; k++) {
        cJSON *s = k ? hf_state_json(r, update) : state_json(r, update);
        if (!s) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
        rlhf_status st = json_save_file(path_join(p, sizeof p, tmp, k ? "trainer_state.json" : PPO_STATE_FILE), s, err);
        cJSON_Delete(s);
        RLHF_TRY(st);
    }
    return RLHF_OK;
}

rlhf_status ppo_checkpoint_save(ppo_run *r, long long update, rlhf_err *err) {
    char dir[4200], tmp[4300];
    checkpoint_path(dir, sizeof dir, r->a->output_dir, update);
    RLHF_TRY(checkpoint_begin(dir, tmp, sizeof tmp, err));
    rlhf_status st = checkpoint_write(r, tmp, update, err);
    if (st) {
        checkpoint_abort(tmp);
        return st;
    }
    RLHF_TRY(checkpoint_commit(tmp, dir, err));
    RLHF_TRY(checkpoint_rotate(r->a->output_dir, r->a->save_total_limit, update, err));
    return ppo_report_write(r, err);
}

rlhf_status ppo_checkpoint_load(ppo_run *r, const char *dir, long long *update, rlhf_err *err) {
    char p[4400];
    cJSON *s = NULL;
    RLHF_TRY(json_load_file(path_join(p, sizeof p, dir, PPO_STATE_FILE), &s, err));
    rlhf_status st = RLHF_OK;
    long long u = 0, batch = 0, n_prompts = 0;
    double kl = 0;
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)r->a->seed);
    if ((st = json_get_int(s, "update", -1, &u, p, err)) || (st = json_get_int(s, "batch", -1, &batch, p, err)) ||
        (st = json_get_int(s, "n_prompts", -1, &n_prompts, p, err)) ||
        (st = json_get_double(s, "kl_coef", NAN, &kl, p, err)))
        goto out;
    if (u < 0 || !isfinite(kl)) {
        st = rlhf_fail(err, RLHF_EINPUT, "%s: missing update or kl_coef", p);
        goto out;
    }
    if (batch != r->batch || n_prompts != r->n_prompts || strcmp(json_get_string(s, "seed", ""), seed)) {
        st = rlhf_fail(err, RLHF_EINPUT,
                       "--resume_from_checkpoint %s: the checkpoint was made with batch %lld, %lld prompts, seed %s; "
                       "this run has batch %d, %d prompts, seed %s (resume needs the same data and flags)",
                       dir, batch, n_prompts, json_get_string(s, "seed", "?"), r->batch, r->n_prompts, seed);
        goto out;
    }
    if (u > r->num_updates) {
        st = rlhf_fail(err, RLHF_EINPUT, "--resume_from_checkpoint %s: update %lld is past this run's %lld updates", dir,
                       u, r->num_updates);
        goto out;
    }
    r->klc.value = kl;
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(s, "log_history");
    const cJSON *row;
    cJSON_ArrayForEach(row, h) {
        ppo_log_row lr;
        for (int k = 0; k < PPO_LOG_N_COLUMNS; k++) {
            const cJSON *v = cJSON_GetArrayItem(row, k);
            lr.v[k] = cJSON_IsNumber(v) ? v->valuedouble : NAN;
        }
        if ((st = ppo_log_add(r, &lr, err))) goto out;
    }
    if ((st = optimizer_state_load(path_join(p, sizeof p, dir, "optimizer.safetensors"), r->policy, &r->policy_opt, err)))
        goto out;
    if (r->value) {
        char vd[4400];
        path_join(vd, sizeof vd, dir, PPO_VALUE_DIR);
        st = optimizer_state_load(path_join(p, sizeof p, vd, "optimizer.safetensors"), r->value, &r->value_opt, err);
    } else {
        st = vhead_load(r, path_join(p, sizeof p, dir, PPO_VHEAD_FILE), err);
    }
    if (!st) st = rollout_samples_restore(dir, u, &r->samples, &r->samples_len, err);
    *update = u;
out:
    cJSON_Delete(s);
    return st;
}

static double json_num_or(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

typedef struct {
    char **cells;  // rows x 4: update (episode), prompt, completion, score
    int rows;
} sample_table;

static void sample_table_free(sample_table *t) {
    for (int i = 0; t->cells && i < t->rows * 4; i++) free(t->cells[i]);
    free(t->cells);
    memset(t, 0, sizeof *t);
}

// A text field, or the ids field as "[1, 2, ...]" (pre-tokenized runs without a tokenizer).
static char *field_text(const cJSON *o, const char *text_key, const char *ids_key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, text_key);
    if (cJSON_IsString(v)) return strdup(v->valuestring);
    v = cJSON_GetObjectItemCaseSensitive(o, ids_key);
    return v ? cJSON_PrintUnformatted(v) : strdup("");
}

// The rows of r->samples (samples.jsonl) as table cells, in order.
static rlhf_status samples_table(const ppo_run *r, sample_table *t, rlhf_err *err) {
    memset(t, 0, sizeof *t);
    int lines = 0;
    for (size_t i = 0; i < r->samples_len; i++) lines += r->samples[i] == '\n';
    if (!lines) return RLHF_OK;
    t->cells = calloc((size_t)lines * 4, sizeof *t->cells);
    if (!t->cells) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory (report)");
    for (const char *line = r->samples; *line && t->rows < lines;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        cJSON *o = cJSON_ParseWithLength(line, len);
        line += len + (nl ? 1 : 0);
        if (!o) continue;
        char **c = t->cells + (size_t)t->rows * 4;
        char num[64];
        snprintf(num, sizeof num, "%.0f (%.0f)", json_num_or(o, "step"), json_num_or(o, "episode"));
        c[0] = strdup(num);
        c[1] = field_text(o, "prompt", "prompt_ids");
        c[2] = field_text(o, "response", "response_ids");
        snprintf(num, sizeof num, "%.4f", json_num_or(o, "score"));
        c[3] = strdup(num);
        cJSON_Delete(o);
        t->rows++;
        if (!c[0] || !c[1] || !c[2] || !c[3]) {
            sample_table_free(t);
            return rlhf_fail(err, RLHF_ERUNTIME, "out of memory (report)");
        }
    }
    return RLHF_OK;
}

rlhf_status ppo_report_write(const ppo_run *r, rlhf_err *err) {
    int n = r->n_log;
    double *x = malloc(((size_t)n + 1) * sizeof(double));
    double *y[6] = {0};
    static const int cols[6] = {6, 2, 3, 12, 9, 10};  // scores, kl, entropy, policy entropy, pg loss, vf loss
    int ok = x != NULL;
    for (int k = 0; k < 6; k++) ok &= (y[k] = malloc(((size_t)n + 1) * sizeof(double))) != NULL;
    rlhf_status st = RLHF_OK;
    if (!ok) {
        st = rlhf_fail(err, RLHF_ERUNTIME, "out of memory (report)");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        x[i] = r->log[i].v[0];
        for (int k = 0; k < 6; k++) y[k][i] = r->log[i].v[cols[k]];
    }
    report_series s_score = {"objective/scores", x, y[0], n};
    report_series s_kl = {"objective/kl", x, y[1], n};
    report_series s_ent[2] = {{"objective/entropy (sum over response)", x, y[2], n},
                              {"policy/entropy_avg (per token)", x, y[3], n}};
    report_series s_loss[2] = {{"loss/policy_avg", x, y[4], n}, {"loss/value_avg", x, y[5], n}};
    // The two losses differ by orders of magnitude: each on its own axis.
    report_chart charts[6] = {{"Reward model score (objective/scores)", "episode", &s_score, 1},
                              {"KL from the reference (objective/kl)", "episode", &s_kl, 1},
                              {"Entropy (sum over response)", "episode", &s_ent[0], 1},
                              {"Entropy per token", "episode", &s_ent[1], 1},
                              {"Policy loss (loss/policy_avg)", "episode", &s_loss[0], 1},
                              {"Value loss (loss/value_avg)", "episode", &s_loss[1], 1}};
    char summary[512];
    if (n > 0)
        snprintf(summary, sizeof summary,
                 "updates: %d of %lld\nepisodes: %.0f\nobjective/scores: first %.4f, last %.4f\nobjective/kl: last %.4f\n"
                 "kl_coef: %.6g%s",
                 n, r->num_updates, r->log[n - 1].v[0], r->log[0].v[6], r->log[n - 1].v[6], r->log[n - 1].v[2],
                 r->klc.value, r->klc.adaptive ? " (adaptive)" : "");
    else
        snprintf(summary, sizeof summary, "no updates yet");
    sample_table tab;
    if (!(st = samples_table(r, &tab, err))) {
        static const char *const heads[4] = {"update (episode)", "prompt", "completion", "score"};
        report_table t = {"Samples over training (samples.jsonl)", heads, (const char *const *)tab.cells, tab.rows, 4};
        char p[4200];
        st = report_write_html_tables(path_join(p, sizeof p, r->a->output_dir, "report.html"), "rlhf ppo", summary,
                                      charts, 6, &t, 1, err);
    }
    sample_table_free(&tab);
out:
    free(x);
    for (int k = 0; k < 6; k++) free(y[k]);
    return st;
}
