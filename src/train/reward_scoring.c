// Rewards from encoded rows (train/reward_scoring.h): the scoring path `score`, `serve` and the local
// reward source share, so that the three give the same numbers for the same (prompt, response).
#include "train/reward_scoring.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/trainer_common.h"

rlhf_status reward_score_seqs(model *m, const token_seq *const *seqs, int n, double *out, rlhf_err *err) {
    if (n <= 0) return RLHF_OK;
    padded_batch b;
    RLHF_TRY(batch_collate(&b, seqs, n, model_pad_id(m), err));
    model_batch mb = {.B = b.B, .T = b.T, .input_ids = b.input_ids, .attention_mask = b.attention_mask,
                      .token_type_ids = m->cfg.type_vocab_size > 0 ? b.token_type_ids : NULL};
    rlhf_status s = model_forward_no_grad(m, &mb, err);  // scores only: no activations kept
    const int L = m->cfg.num_labels;
    if (!s)
        for (int i = 0; i < n; i++) out[i] = reward_read(m->out + (size_t)i * L, L);
    padded_batch_free(&b);
    return s;
}

rlhf_status reward_score_set(model *m, const pref_set *set, int batch_rows, double *chosen, double *rejected,
                             rlhf_err *err) {
    const token_seq **seqs = malloc(sizeof(token_seq *) * (size_t)batch_rows * 2);
    double *vals = malloc(sizeof(double) * (size_t)batch_rows * 2);
    if (!seqs || !vals) {
        free(seqs);
        free(vals);
        return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    }
    rlhf_status s = RLHF_OK;
    for (int r0 = 0; r0 < set->n && !s; r0 += batch_rows) {
        int nseq = 0;
        for (int r = r0; r < set->n && r < r0 + batch_rows; r++) {
            seqs[nseq++] = &set->rows[r].chosen;
            if (set->rows[r].is_pair) seqs[nseq++] = &set->rows[r].rejected;
        }
        s = reward_score_seqs(m, seqs, nseq, vals, err);
        for (int r = r0, k = 0; !s && r < set->n && r < r0 + batch_rows; r++) {
            chosen[r] = vals[k++];
            if (set->rows[r].is_pair) rejected[r] = vals[k++];
        }
    }
    free(seqs);
    free(vals);
    return s;
}

rlhf_status reward_encode_texts(pref_set *out, const pref_opts *o, const char *const *prompts,
                                const char *const *responses, int n, const char *where, rlhf_err *err) {
    memset(out, 0, sizeof *out);
    cJSON **rows = calloc((size_t)(n > 0 ? n : 1), sizeof *rows);
    int *lines = malloc(sizeof(int) * (size_t)(n > 0 ? n : 1));
    rlhf_status s = rows && lines ? RLHF_OK : rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    for (int i = 0; i < n && !s; i++) {
        lines[i] = i;
        rows[i] = cJSON_CreateObject();
        if (!rows[i] || (prompts && prompts[i] && !cJSON_AddStringToObject(rows[i], "prompt", prompts[i])) ||
            !cJSON_AddStringToObject(rows[i], "response", responses[i]))
            s = rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    }
    if (!s) {
        dataset d = {.rows = rows, .lines = lines, .n = n, .path = (char *)where};
        s = pref_set_build(out, &d, o, err);
    }
    for (int i = 0; rows && i < n; i++) cJSON_Delete(rows[i]);
    free(rows);
    free(lines);
    return s;
}

rlhf_status reward_norm_record(model *m, const double *v, long n, double *mean, double *std, rlhf_err *err) {
    double sum = 0, ss = 0;
    for (long i = 0; i < n; i++) sum += v[i];
    double mu = n > 0 ? sum / (double)n : 0;
    for (long i = 0; i < n; i++) ss += (v[i] - mu) * (v[i] - mu);
    double sd = n > 1 ? sqrt(ss / (double)(n - 1)) : 0;  // torch.std: unbiased (n - 1)
    if (!(sd >= REWARD_NORM_MIN_STD)) sd = REWARD_NORM_MIN_STD;
    *mean = mu;
    *std = sd;
    if (!m->config_json) return RLHF_OK;
    cJSON_DeleteItemFromObjectCaseSensitive(m->config_json, REWARD_NORM_MEAN_KEY);
    cJSON_DeleteItemFromObjectCaseSensitive(m->config_json, REWARD_NORM_STD_KEY);
    if (!cJSON_AddNumberToObject(m->config_json, REWARD_NORM_MEAN_KEY, mu) ||
        !cJSON_AddNumberToObject(m->config_json, REWARD_NORM_STD_KEY, sd))
        return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    return RLHF_OK;
}

rlhf_status reward_norm_load(reward_norm *out, const model *m, int normalize, const char *model_dir,
                             rlhf_err *err) {
    memset(out, 0, sizeof *out);
    if (!normalize) return RLHF_OK;
    const cJSON *mu = m->config_json ? cJSON_GetObjectItemCaseSensitive(m->config_json, REWARD_NORM_MEAN_KEY) : NULL;
    const cJSON *sd = m->config_json ? cJSON_GetObjectItemCaseSensitive(m->config_json, REWARD_NORM_STD_KEY) : NULL;
    if (!cJSON_IsNumber(mu) || !cJSON_IsNumber(sd) || !isfinite(mu->valuedouble) || !(sd->valuedouble > 0) ||
        !isfinite(sd->valuedouble))
        return rlhf_fail(err, RLHF_EINPUT,
                         "--normalize_reward: %s/config.json has no reward statistics (expected numbers \"mean\" and "
                         "\"std\" > 0, which `rlhf reward` writes after training, as OpenRLHF does)",
                         model_dir ? model_dir : "the reward model");
    out->on = 1;
    out->mean = mu->valuedouble;
    out->std = sd->valuedouble;
    return RLHF_OK;
}
