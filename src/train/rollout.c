// Rollout pieces shared by ppo, grpo and rloo (see rollout.h): prompts, sampling, packing, log-probs.
#include "train/rollout.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "io/files.h"
#include "models/peft.h"
#include "nn/ops.h"
#include "tokenizer/chat_template.h"
#include "train/chat_rows.h"
#include "train/generate.h"

void rollout_prompts_free(rollout_prompt *p, int n) {
    if (!p) return;
    for (int i = 0; i < n; i++) {
        free(p[i].ids);
        free(p[i].text);
    }
    free(p);
}

rlhf_status rollout_load_policy(model **out, const char *model_dir, const char *resume_dir,
                                const struct peft_options *peft, const model_load_opts *lo, rlhf_err *err) {
    const char *policy_dir = resume_dir ? resume_dir : model_dir;
    // peft_options with only the 4-bit settings: a resumed policy's base, whose adapter config comes from the
    // checkpoint
    peft_options quant = *peft;
    quant.use_peft = 0;
    char cfg[4200];
    if (peft->use_peft) {
        if (resume_dir) {
            RLHF_TRY(peft_load_adapter_model(out, policy_dir, HEAD_LM, &quant, lo, err));
        } else if (peft_is_adapter_dir(policy_dir) && !file_exists(path_join(cfg, sizeof cfg, policy_dir, "config.json"))) {
            return rlhf_fail(err, RLHF_EINPUT, "--model_name_or_path %s is a peft adapter: new adapters start from a "
                             "full model (its base_model_name_or_path, or a merged model)", policy_dir);
        } else {
            model_load_opts lp = *lo;
            lp.peft = peft;  // 4-bit weights quantized as they are read
            RLHF_TRY(model_load(out, policy_dir, HEAD_LM, &lp, err));
        }
    } else {
        // A peft adapter directory (e.g. `rlhf sft --use_peft`) loads as its base with the adapter applied
        // and merged, so the whole policy trains.
        RLHF_TRY(peft_load_model_dir(out, policy_dir, HEAD_LM, NULL, lo, err));
        RLHF_TRY(peft_merge_and_unload(*out, err));
    }
    if (!(*out)->cfg.is_decoder || !(*out)->family->decode)
        return rlhf_fail(err, RLHF_EINPUT, "--model_name_or_path %s: model_type '%s' is not a causal LM", policy_dir,
                         (*out)->cfg.model_type);
    return RLHF_OK;
}

rlhf_status rollout_check_peft(const struct peft_options *peft, int merge_adapter, rlhf_err *err) {
    if (!peft->use_peft && peft->load_in_4bit)
        return rlhf_fail(err, RLHF_EINPUT, "--load_in_4bit: a 4-bit policy is frozen, so training needs --use_peft (QLoRA)");
    if (!peft->use_peft && merge_adapter) return rlhf_fail(err, RLHF_EINPUT, "--merge_adapter needs --use_peft");
    return peft->use_peft ? peft_options_check(peft, err) : RLHF_OK;
}

rlhf_status rollout_split_prompts(rollout_prompt **prompts, int *n_io, double frac, uint64_t seed, rollout_prompt **eval_out,
                                  int *n_eval_out, rlhf_err *err) {
    int n = *n_io, n_eval = (int)ceil(frac * n);
    if (n_eval < 1 || n_eval >= n)
        return rlhf_fail(err, RLHF_EINPUT, "--eval_split %g of %d prompts leaves %s empty", frac, n,
                         n_eval < 1 ? "the evaluation set" : "the training set");
    int *perm = malloc((size_t)n * sizeof *perm);
    char *held = calloc((size_t)n, 1);
    rollout_prompt *train = malloc((size_t)n * sizeof *train), *eval = malloc((size_t)n_eval * sizeof *eval);
    if (!perm || !held || !train || !eval) {
        free(perm), free(held), free(train), free(eval);
        return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    }
    rng_permutation(rng_key(seed, RNG_STREAM_SPLIT, 0, 0), perm, n);
    for (int i = 0; i < n_eval; i++) held[perm[i]] = 1;
    int nt = 0, ne = 0;
    for (int i = 0; i < n; i++) {
        if (held[i]) eval[ne++] = (*prompts)[i];
        else train[nt++] = (*prompts)[i];
    }
    free(*prompts);
    *prompts = train, *n_io = nt;
    *eval_out = eval, *n_eval_out = ne;
    free(perm);
    free(held);
    return RLHF_OK;
}

static rlhf_status load_one(const dataset *d, int i, const rollout_prompt_opts *o, const chat_template *chat,
                            long long limit, int *n_trunc, rollout_prompt *p, rlhf_err *err) {
    p->line = d->lines[i];
    p->row = i;
    const char *text = NULL;
    char *rendered = NULL;
    int is_chat = chat_field_is_messages(d, i, "prompt");
    if (is_chat && o->tok)
        RLHF_TRY(chat_render_row(d, i, "prompt", NULL, chat, 1, o->model_dir, &rendered, err));
    else
        RLHF_TRY(dataset_get_string(d, i, "prompt", 0, &text, err));
    if (rendered) text = rendered;
    if (text || is_chat) {
        if (!o->tok)
            return rlhf_fail(err, RLHF_EINPUT,
                             "%s:%d: a text prompt needs the policy's tokenizer, but %s has no tokenizer files "
                             "(use {\"prompt_ids\": [...]} rows)",
                             o->dataset_name, p->line, o->model_dir);
        tok_encoding e = {0};
        rlhf_status st = tokenizer_encode(o->tok, text, NULL, !is_chat, 0, TRUNC_LONGEST_FIRST, &e, err);
        if (st) {
            free(rendered);
            return rlhf_err_prefix(err, "%s:%d: prompt: ", o->dataset_name, p->line);
        }
        p->ids = e.ids;
        p->n = e.n;
        e.ids = NULL;
        tok_encoding_free(&e);
        p->text = rendered ? rendered : strdup(text);
        if (!p->text) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    } else {
        RLHF_TRY(dataset_get_ids(d, i, "prompt_ids", 0, o->vocab_size, &p->ids, &p->n, err));
        if (!p->ids)
            return rlhf_fail(err, RLHF_EINPUT, "%s:%d: expected a \"prompt\" (string) or \"prompt_ids\" (list) field",
                             o->dataset_name, p->line);
        if (o->tok) RLHF_TRY(tokenizer_decode(o->tok, p->ids, p->n, 1, &p->text, err));
    }
    if (p->n < 1)
        return rlhf_fail(err, RLHF_EINPUT, "%s:%d: the prompt has no tokens (the policy needs at least one)",
                         o->dataset_name, p->line);
    if (p->n > limit) {  // TRL keeps the prompt's end
        memmove(p->ids, p->ids + (p->n - limit), sizeof(int32_t) * (size_t)limit);
        p->n = (int)limit;
        (*n_trunc)++;
        if (o->tok) {
            free(p->text);
            p->text = NULL;
            RLHF_TRY(tokenizer_decode(o->tok, p->ids, p->n, 1, &p->text, err));
        }
    }
    return RLHF_OK;
}

rlhf_status rollout_load_prompts(const dataset *d, const rollout_prompt_opts *o, rollout_prompt **out, int *n,
                                 int *max_prompt, rlhf_err *err) {
    *out = NULL;
    *n = 0;
    *max_prompt = 0;
    chat_template *chat = NULL;
    if (o->tok) RLHF_TRY(chat_template_load_dir(&chat, o->model_dir, err));
    rollout_prompt *p = calloc((size_t)d->n, sizeof *p);
    if (!p) {
        chat_template_free(chat);
        return rlhf_fail(err, RLHF_ERUNTIME, "out of memory reading %s", o->dataset_name);
    }
    rlhf_status st = RLHF_OK;
    long long limit = o->max_prompt_length > 0 ? o->max_prompt_length : LLONG_MAX;
    if (o->max_positions > 0 && o->max_positions - o->max_new_tokens < limit)
        limit = (long long)o->max_positions - o->max_new_tokens;
    if (limit < 1)
        st = rlhf_fail(err, RLHF_EINPUT, "%s %d leaves no room for a prompt in the policy's %d positions",
                       o->length_flag, o->max_new_tokens, o->max_positions);
    int n_trunc = 0;
    for (int i = 0; i < d->n && !st; i++) {
        st = load_one(d, i, o, chat, limit, &n_trunc, &p[i], err);
        if (!st && p[i].n > *max_prompt) *max_prompt = p[i].n;
    }
    if (!st && n_trunc)
        fprintf(stderr, "rlhf %s: %d of %d prompts truncated from the left to %lld tokens (%s%s)\n",
                o->cmd ? o->cmd : "rollout", n_trunc, d->n, limit,
                o->max_prompt_length > 0 && o->max_prompt_length == limit ? "--max_prompt_length"
                                                                          : "the policy's positions less ",
                o->max_prompt_length > 0 && o->max_prompt_length == limit ? "" : o->length_flag);
    chat_template_free(chat);
    if (st) {
        rollout_prompts_free(p, d->n);
        *max_prompt = 0;
        return st;
    }
    *out = p;
    *n = d->n;
    return RLHF_OK;
}

rlhf_status rollout_sample(model *policy, const rollout_prompt *const *prompts, const uint64_t *row_ids, int nb,
                           const rollout_sampling *s, int32_t *responses, int *n_generated, rlhf_err *err) {
    const int R = s->max_new_tokens;
    const int32_t **ids = malloc((size_t)nb * sizeof *ids);
    int *lens = malloc((size_t)nb * sizeof *lens);
    if (!ids || !lens) {
        free(ids);
        free(lens);
        return rlhf_fail(err, RLHF_ERUNTIME, "out of memory sampling responses");
    }
    for (int i = 0; i < nb; i++) {
        ids[i] = prompts[i]->ids;
        lens[i] = prompts[i]->n;
    }
    gen_config g = {.max_new_tokens = R, .do_sample = 1, .temperature = (float)s->temperature, .top_k = s->top_k,
                    .top_p = (float)s->top_p, .min_p = (float)s->min_p,
                    .repetition_penalty = (float)s->repetition_penalty, .eos_token_id = s->stop_id,
                    .stop_token_id = -1, .pad_token_id = s->fill_id, .seed = s->seed};
    gen_output out = {0};
    rlhf_status st = generate(policy, ids, lens, row_ids, nb, &g, &out, err);
    if (!st) {
        for (int i = 0; i < nb; i++) {
            n_generated[i] = out.lengths[i];
            for (int t = 0; t < R; t++)
                responses[(size_t)i * R + t] =
                    t < out.lengths[i] && t < out.max_new ? out.tokens[(size_t)i * out.max_new + t] : s->fill_id;
        }
    }
    gen_output_free(&out);
    free(ids);
    free(lens);
    return st;
}

void rollout_positions(int32_t *pos, const int32_t *mask, int B, int T) {
    for (int b = 0; b < B; b++) {
        int32_t c = 0;
        for (int t = 0; t < T; t++) {
            int32_t m = mask[(size_t)b * T + t] ? 1 : 0;
            c += m;
            pos[(size_t)b * T + t] = c - m;
        }
    }
}

void rollout_pack(int32_t *ids, int32_t *mask, int32_t *pos, const rollout_prompt *const *prompts,
                  const int32_t *responses, int B, int P, int R, int fill_id) {
    const int T = P + R;
    for (int b = 0; b < B; b++) {
        const rollout_prompt *p = prompts[b];
        int32_t *id = ids + (size_t)b * T, *m = mask + (size_t)b * T;
        for (int t = 0; t < P - p->n; t++) {
            id[t] = fill_id;
            m[t] = 0;
        }
        memcpy(id + P - p->n, p->ids, (size_t)p->n * sizeof *id);
        for (int t = P - p->n; t < T; t++) m[t] = 1;
        memcpy(id + P, responses + (size_t)b * R, (size_t)R * sizeof *id);
    }
    rollout_positions(pos, mask, B, T);
}

// log-sum-exp of z / tau over one row of V logits (float exp: this loop is the hot spot of small models).
float rollout_logsumexp(const float *z, int V, float inv) {
    float mx = -INFINITY;
    for (int v = 0; v < V; v++) mx = z[v] * inv > mx ? z[v] * inv : mx;
    float s = 0;
    for (int v = 0; v < V; v++) s += expf(z[v] * inv - mx);
    return mx + logf(s);
}

void rollout_logprobs(float *out, float *lse, const float *logits, const int32_t *resp, int nb, int T, int P, int R,
                      int V, double tau) {
    if (!lse) {  // the nn op's vectorised exp: R slots of row b are R consecutive rows of logits
        for (int b = 0; b < nb; b++)
            token_logprobs_forward(out + (size_t)b * R, logits + ((size_t)b * T + P - 1) * V, resp + (size_t)b * R, R,
                                   V, (float)tau);
        return;
    }
    const float inv = (float)(1.0 / tau);
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < nb; b++) {
        for (int t = 0; t < R; t++) {
            const float *z = logits + ((size_t)b * T + (P - 1 + t)) * V;
            float l = rollout_logsumexp(z, V, inv);
            lse[(size_t)b * R + t] = l;
            out[(size_t)b * R + t] = z[resp[(size_t)b * R + t]] * inv - l;
        }
    }
}

float rollout_slot_entropy_backward(float *dz, const float *z, float lse, int32_t tok, float g, int V, float inv) {
    double ez = 0;
    float gi = g * inv;
    for (int v = 0; v < V; v++) {
        float zs = z[v] * inv;
        float p = expf(zs - lse);
        ez += (double)p * zs;
        dz[v] = -gi * p;
    }
    dz[tok] += gi;
    return (float)(lse - ez);
}

void rollout_logprobs_backward(float *dlogits, float *entropy, const float *logits, const float *lse,
                               const int32_t *resp, const float *dlp, int nb, int T, int P, int R, int V, double tau) {
    const float inv = (float)(1.0 / tau);
    for (int i = 0; i < nb; i++) {
        memset(dlogits + (size_t)i * T * V, 0, (size_t)(P - 1) * V * sizeof(float));
        memset(dlogits + ((size_t)i * T + P - 1 + R) * V, 0, (size_t)(T - (P - 1 + R)) * V * sizeof(float));
    }
#pragma omp parallel for collapse(2) schedule(static)
    for (int i = 0; i < nb; i++)
        for (int t = 0; t < R; t++) {
            size_t k = (size_t)i * R + t, at = ((size_t)i * T + P - 1 + t) * V;
            entropy[k] = rollout_slot_entropy_backward(dlogits + at, logits + at, lse[k], resp[k], dlp[k], V, inv);
        }
}

rlhf_status rollout_samples_restore(const char *dir, long long step, char **out, size_t *len, rlhf_err *err) {
    char p[4400];
    path_join(p, sizeof p, dir, "samples.jsonl");
    if (!file_exists(p)) return RLHF_OK;
    char *buf = NULL;
    size_t n_buf = 0;
    RLHF_TRY(read_file(p, &buf, &n_buf, err));
    char *keep = malloc(n_buf + 1);
    if (!keep) {
        free(buf);
        return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    }
    size_t kept = 0;
    for (char *line = buf; *line;) {
        char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) : strlen(line);
        cJSON *o = cJSON_ParseWithLength(line, n);
        const cJSON *s = o ? cJSON_GetObjectItemCaseSensitive(o, "step") : NULL;
        if (cJSON_IsNumber(s) && s->valuedouble <= (double)step) {
            memcpy(keep + kept, line, n);
            kept += n;
            keep[kept++] = '\n';
        }
        cJSON_Delete(o);
        line += n + (nl ? 1 : 0);
    }
    keep[kept] = 0;
    free(buf);
    *out = keep;
    *len = kept;
    return RLHF_OK;
}

rlhf_status rollout_samples_append(char **buf, size_t *len, cJSON *o, rlhf_err *err) {
    char *line = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!line) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    size_t n = strlen(line);
    char *grown = realloc(*buf, *len + n + 2);
    if (!grown) {
        free(line);
        return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    }
    *buf = grown;
    memcpy(grown + *len, line, n);
    *len += n;
    grown[(*len)++] = '\n';
    grown[*len] = 0;
    free(line);
    return RLHF_OK;
}
