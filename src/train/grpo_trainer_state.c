// GRPO / RLOO outputs and checkpoints. checkpoint-{STEP}/ is the policy as an HF model directory (or a
// peft adapter with LoRA) plus optimizer.safetensors (train/checkpoint.h's format), grpo_state.json
// (step, tokens seen, run shape, log columns and history: what resume reads) and trainer_state.json (HF's
// TrainerState with TRL's metric names in log_history). It is built under checkpoint-{STEP}.tmp and
// renamed into place, so a directory named checkpoint-* is always whole. Checkpoints are taken only
// where a generation batch is used up, and every random draw is keyed by (seed, generation, row), so
// restoring weights and moments replays the uninterrupted run exactly.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/files.h"
#include "io/json_util.h"
#include "models/decoder.h"
#include "models/peft.h"
#include "train/rollout.h"
#include "train/checkpoint.h"
#include "train/grpo_trainer_impl.h"
#include "train/report.h"

#define GRPO_STATE_FILE "grpo_state.json"

rlhf_status grpo_log_add(grpo_run *r, const grpo_log_row *row, rlhf_err *err) {
    if (r->n_log == r->cap_log) {
        int cap = r->cap_log ? 2 * r->cap_log : 64;
        grpo_log_row *g = realloc(r->log, (size_t)cap * sizeof *g);
        if (!g) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory (log history)");
        r->log = g;
        r->cap_log = cap;
    }
    r->log[r->n_log++] = *row;
    return RLHF_OK;
}

void grpo_format_value(char *buf, size_t n, int column, double v) {
    if (isnan(v)) snprintf(buf, n, "nan");
    else if (column == GC_STEP || column == GC_NUM_TOKENS) snprintf(buf, n, "%lld", (long long)v);
    else snprintf(buf, n, "%.9g", v);
}

rlhf_status grpo_log_rewrite(const grpo_run *r, const char *path, rlhf_err *err) {
    size_t cap = 4096 + (size_t)r->n_log * r->n_columns * 32, len = 0;
    char *buf = malloc(cap);
    if (!buf) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    for (int c = 0; c < r->n_columns; c++) len += (size_t)snprintf(buf + len, cap - len, "%s%s", c ? "," : "", r->columns[c]);
    buf[len++] = '\n';
    for (int i = 0; i < r->n_log; i++) {
        for (int c = 0; c < r->n_columns; c++) {
            char cell[40];
            grpo_format_value(cell, sizeof cell, c, r->log[i].v[c]);
            len += (size_t)snprintf(buf + len, cap - len, "%s%s", c ? "," : "", cell);
        }
        buf[len++] = '\n';
    }
    rlhf_status st = atomic_write(path, buf, len, err);
    free(buf);
    return st;
}

// samples.jsonl: at each logged step, the first completions of the latest generation batch (one prompt's
// group when num_completions_to_log <= num_generations) with every reward, the total and the advantage.
rlhf_status grpo_samples_add(grpo_run *r, long long step, rlhf_err *err) {
    int n = r->N < r->a->num_completions_to_log ? r->N : r->a->num_completions_to_log;
    for (int b = 0; b < n; b++) {
        const rollout_prompt *p = &r->prompts[r->row_prompt[b]];
        cJSON *o = cJSON_CreateObject();
        if (!o) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
        cJSON_AddNumberToObject(o, "step", (double)step);
        if (p->text) {
            cJSON_AddStringToObject(o, "prompt", p->text);
        } else {
            cJSON *ids = cJSON_AddArrayToObject(o, "prompt_ids");
            for (int i = 0; i < p->n; i++) cJSON_AddItemToArray(ids, cJSON_CreateNumber(p->ids[i]));
        }
        char *text = NULL;
        rlhf_status st = grpo_completion_text(r, b, &text, err);
        if (st) {
            cJSON_Delete(o);
            return st;
        }
        if (text) cJSON_AddStringToObject(o, "completion", text);
        free(text);
        cJSON *ids = cJSON_AddArrayToObject(o, "completion_ids");
        for (int i = 0; i < r->lengths[b]; i++) cJSON_AddItemToArray(ids, cJSON_CreateNumber(r->responses[(size_t)b * r->R + i]));
        cJSON *rw = cJSON_AddObjectToObject(o, "rewards");
        size_t gb = (size_t)r->rank * r->N + (size_t)b;
        for (int k = 0; k < r->K; k++) {
            float v = r->per_func[gb * (size_t)r->K + k];
            cJSON_AddItemToObject(rw, r->rewards[k]->name, isnan(v) ? cJSON_CreateNull() : cJSON_CreateNumber(v));
        }
        float tot = r->rewards_all[gb];
        cJSON_AddItemToObject(o, "reward", isnan(tot) ? cJSON_CreateNull() : cJSON_CreateNumber(tot));
        cJSON_AddNumberToObject(o, "advantage", r->adv[b]);
        RLHF_TRY(rollout_samples_append(&r->samples, &r->samples_len, o, err));
    }
    char path[4200];
    return atomic_write(path_join(path, sizeof path, r->a->common.output_dir, "samples.jsonl"), r->samples,
                        r->samples_len, err);
}

rlhf_status grpo_save_policy_dir(const grpo_run *r, const char *dir, int checkpoint, rlhf_err *err) {
    if (peft_active(r->policy))
        RLHF_TRY(peft_save_adapter(r->policy, dir, r->a->model_name_or_path, err));
    else  // checkpoints keep fp32 weights whatever the model's dtype, so that resume is exact
        RLHF_TRY(checkpoint ? model_save_f32(r->policy, dir, err) : model_save(r->policy, dir, err));
    if (r->tok) RLHF_TRY(tokenizer_save(r->tok, dir, err));
    return decoder_save_generation_config(r->policy, dir, err);
}

static cJSON *state_json(const grpo_run *r, long long step) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "trainer", r->cmd);
    cJSON_AddNumberToObject(o, "global_step", (double)step);
    cJSON_AddNumberToObject(o, "max_steps", (double)r->max_steps);
    cJSON_AddNumberToObject(o, "num_input_tokens_seen", r->num_tokens);
    cJSON_AddNumberToObject(o, "generation_batch", r->N * r->world);
    cJSON_AddNumberToObject(o, "num_generations", r->G);
    cJSON_AddNumberToObject(o, "n_prompts", r->n_prompts);
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)r->a->common.seed);
    cJSON_AddStringToObject(o, "seed", seed);
    cJSON *c = cJSON_AddArrayToObject(o, "log_columns");
    for (int i = 0; i < r->n_columns; i++) cJSON_AddItemToArray(c, cJSON_CreateString(r->columns[i]));
    cJSON *h = cJSON_AddArrayToObject(o, "log_history");
    for (int i = 0; i < r->n_log; i++) {
        cJSON *row = cJSON_CreateArray();
        for (int k = 0; k < r->n_columns; k++)
            cJSON_AddItemToArray(row, isfinite(r->log[i].v[k]) ? cJSON_CreateNumber(r->log[i].v[k]) : cJSON_CreateNull());
        cJSON_AddItemToArray(h, row);
    }
    return o;
}

// trainer_state.json as TRL's GRPOTrainer / RLOOTrainer leave it (transformers' TrainerState): log_history
// holds one dict per logged row with TRL's metric names (training rows and, as their own entries, the
// evaluations' eval_* rows), only the values measured.
static cJSON *hf_state_json(const grpo_run *r, long long step) {
    cJSON *hist = cJSON_CreateArray();
    for (int i = 0; hist && i < r->n_log; i++) cJSON_AddItemToArray(hist, hf_log_entry(r->columns, r->log[i].v, r->n_columns));
    const grpo_args *a = r->a;
    long long micro_per_epoch = r->gens_per_epoch * r->spg * r->iters;
    hf_state_fields h = {(double)step * r->ga / (double)micro_per_epoch, step, r->max_steps, a->common.logging_steps,
                         a->common.eval_steps, a->common.save_steps, a->common.train_batch_size, a->common.num_train_epochs};
    cJSON *j = hf_trainer_state_json(&h, hist, NULL);
    if (j) cJSON_ReplaceItemInObject(j, "num_input_tokens_seen", cJSON_CreateNumber(r->num_tokens));
    return j;
}

static rlhf_status checkpoint_write(grpo_run *r, const char *tmp, long long step, rlhf_err *err) {
    char p[4400];
    RLHF_TRY(grpo_save_policy_dir(r, tmp, 1, err));
    RLHF_TRY(optimizer_state_save(path_join(p, sizeof p, tmp, "optimizer.safetensors"), r->policy, &r->opt, err));
    if (r->samples_len) RLHF_TRY(atomic_write(path_join(p, sizeof p, tmp, "samples.jsonl"), r->samples, r->samples_len, err));
    for (int k = 0; k < 2; k++) {
        cJSON *s = k ? hf_state_json(r, step) : state_json(r, step);
        if (!s) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
        rlhf_status st = json_save_file(path_join(p, sizeof p, tmp, k ? "trainer_state.json" : GRPO_STATE_FILE), s, err);
        cJSON_Delete(s);
        RLHF_TRY(st);
    }
    return RLHF_OK;
}

// OUTPUT_DIR/checkpoint-{STEP}, built under checkpoint-{STEP}.tmp and renamed into place (train/checkpoint.h);
// --save_total_limit then removes the oldest.
rlhf_status grpo_checkpoint_save(grpo_run *r, long long step, rlhf_err *err) {
    if (!dist_is_main(r->a->dist)) return RLHF_OK;
    char dir[4200], tmp[4300];
    checkpoint_path(dir, sizeof dir, r->a->common.output_dir, step);
    RLHF_TRY(checkpoint_begin(dir, tmp, sizeof tmp, err));
    rlhf_status st = checkpoint_write(r, tmp, step, err);
    if (st) {  // a failed write (full disk) leaves the previous checkpoints as they were
        checkpoint_abort(tmp);
        return st;
    }
    RLHF_TRY(checkpoint_commit(tmp, dir, err));
    RLHF_TRY(checkpoint_rotate(r->a->common.output_dir, r->a->common.save_total_limit, step, err));
    return grpo_report_write(r, err);
}

rlhf_status grpo_checkpoint_load(grpo_run *r, const char *dir, long long *step, rlhf_err *err) {
    char p[4400];
    cJSON *s = NULL;
    RLHF_TRY(json_load_file(path_join(p, sizeof p, dir, GRPO_STATE_FILE), &s, err));
    rlhf_status st = RLHF_OK;
    long long u = 0, gb = 0, g = 0, n_prompts = 0;
    double tokens = 0;
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)r->a->common.seed);
    if ((st = json_get_int(s, "global_step", -1, &u, p, err)) ||
        (st = json_get_int(s, "generation_batch", -1, &gb, p, err)) ||
        (st = json_get_int(s, "num_generations", -1, &g, p, err)) ||
        (st = json_get_int(s, "n_prompts", -1, &n_prompts, p, err)) ||
        (st = json_get_double(s, "num_input_tokens_seen", 0, &tokens, p, err)))
        goto out;
    if (u < 0) {
        st = rlhf_fail(err, RLHF_EINPUT, "%s: missing global_step", p);
        goto out;
    }
    if (strcmp(json_get_string(s, "trainer", ""), r->cmd) || gb != r->N * r->world || g != r->G ||
        n_prompts != r->n_prompts || strcmp(json_get_string(s, "seed", ""), seed)) {
        st = rlhf_fail(err, RLHF_EINPUT,
                       "--resume_from_checkpoint %s: the checkpoint was made by `rlhf %s` with a generation batch of "
                       "%lld, %lld generations, %lld prompts, seed %s; this run has %d, %d, %d, seed %s (resume needs "
                       "the same data and flags)",
                       dir, json_get_string(s, "trainer", "?"), gb, g, n_prompts, json_get_string(s, "seed", "?"),
                       r->N * r->world, r->G, r->n_prompts, seed);
        goto out;
    }
    if (u > r->max_steps) {
        st = rlhf_fail(err, RLHF_EINPUT, "--resume_from_checkpoint %s: step %lld is past this run's %lld steps", dir, u,
                       r->max_steps);
        goto out;
    }
    const cJSON *cols = cJSON_GetObjectItemCaseSensitive(s, "log_columns");
    if (cJSON_GetArraySize(cols) != r->n_columns) {
        st = rlhf_fail(err, RLHF_EINPUT, "--resume_from_checkpoint %s: its log has other columns (other rewards?)", dir);
        goto out;
    }
    r->num_tokens = tokens;
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(s, "log_history");
    const cJSON *row;
    cJSON_ArrayForEach(row, h) {
        grpo_log_row lr;
        for (int k = 0; k < r->n_columns; k++) {
            const cJSON *v = cJSON_GetArrayItem(row, k);
            lr.v[k] = cJSON_IsNumber(v) ? v->valuedouble : NAN;
        }
        if ((st = grpo_log_add(r, &lr, err))) goto out;
    }
    if ((st = optimizer_state_load(path_join(p, sizeof p, dir, "optimizer.safetensors"), r->policy, &r->opt, err)))
        goto out;
    st = rollout_samples_restore(dir, u, &r->samples, &r->samples_len, err);
    *step = u;
out:
    cJSON_Delete(s);
    return st;
}

rlhf_status grpo_report_write(const grpo_run *r, rlhf_err *err) {
    int n = r->n_log;
    enum { NS = 7 };  // the last: eval_reward, drawn beside reward
    const char *names[NS] = {"reward", "completions/mean_length", "entropy", "kl", "loss", "clip_ratio/region_mean",
                             "eval_reward"};
    double *x = malloc(((size_t)n + 1) * sizeof(double));
    double *y[NS] = {0};
    int ok = x != NULL;
    for (int k = 0; k < NS; k++) ok &= (y[k] = malloc(((size_t)n + 1) * sizeof(double))) != NULL;
    rlhf_status st = RLHF_OK;
    if (!ok) {
        st = rlhf_fail(err, RLHF_ERUNTIME, "out of memory (report)");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        x[i] = r->log[i].v[GC_STEP];
        for (int k = 0; k < NS; k++) {
            int c = grpo_column(r, names[k]);
            y[k][i] = c >= 0 ? r->log[i].v[c] : NAN;
        }
    }
    report_series series[NS];
    report_chart charts[NS - 1];
    static const char *const titles[NS - 1] = {"Reward (weighted sum; eval_reward: the evaluation set)",
                                               "Completion length (tokens)", "Entropy per token",
                                               "KL from the reference", "Loss", "Clipped ratio (region)"};
    for (int k = 0; k < NS; k++) series[k] = (report_series){names[k], x, y[k], n};
    // the reward chart: reward and, with an evaluation set, eval_reward
    report_series reward_pair[2] = {series[0], series[NS - 1]};
    charts[0] = (report_chart){titles[0], "step", reward_pair, r->first_eval_column ? 2 : 1};
    for (int k = 1; k < NS - 1; k++) charts[k] = (report_chart){titles[k], "step", &series[k], 1};
    char summary[512];
    // first and last finite values of reward and eval_reward (evaluation rows have no training reward)
    double fl[2][2] = {{NAN, NAN}, {NAN, NAN}};
    for (int k = 0; k < 2; k++) {
        int c = grpo_column(r, k ? "eval_reward" : "reward");
        for (int i = 0; c >= 0 && i < n; i++)
            if (isfinite(r->log[i].v[c])) {
                if (isnan(fl[k][0])) fl[k][0] = r->log[i].v[c];
                fl[k][1] = r->log[i].v[c];
            }
    }
    if (n > 0) {
        int len = snprintf(summary, sizeof summary, "steps: %.0f of %lld\nreward: first %.4f, last %.4f\nrewards: %d source(s)",
                           r->log[n - 1].v[GC_STEP], r->max_steps, fl[0][0], fl[0][1], r->K);
        if (!isnan(fl[1][0]) && len > 0 && (size_t)len < sizeof summary)
            snprintf(summary + len, sizeof summary - (size_t)len, "\neval_reward: first %.4f, last %.4f", fl[1][0], fl[1][1]);
    } else {
        snprintf(summary, sizeof summary, "no steps logged yet");
    }
    char p[4200], title[32];
    snprintf(title, sizeof title, "rlhf %s", r->cmd);
    st = report_write_html(path_join(p, sizeof p, r->a->common.output_dir, "report.html"), title, summary, charts,
                           NS - 1, err);
out:
    free(x);
    for (int k = 0; k < NS; k++) free(y[k]);
    return st;
}
