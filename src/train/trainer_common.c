// Batching and reward reading shared by `rlhf reward`, `rlhf score` and (later) PPO's reward calls.
#include "train/trainer_common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/files.h"
#include "models/peft.h"
#include "nn/ops.h"

rlhf_status batch_collate(padded_batch *b, const token_seq *const *seqs, int B, int pad_id, rlhf_err *err) {
    memset(b, 0, sizeof *b);
    int T = 1;
    for (int i = 0; i < B; i++)
        if (seqs[i]->n > T) T = seqs[i]->n;
    size_t n = (size_t)B * (size_t)T;
    b->input_ids = malloc(n * sizeof(int32_t));
    b->attention_mask = calloc(n, sizeof(int32_t));
    b->token_type_ids = calloc(n, sizeof(int32_t));
    if (!b->input_ids || !b->attention_mask || !b->token_type_ids) {
        padded_batch_free(b);
        return rlhf_fail(err, RLHF_ERUNTIME, "out of memory (batch of %d x %d tokens)", B, T);
    }
    b->B = B;
    b->T = T;
    for (int i = 0; i < B; i++) {
        const token_seq *s = seqs[i];
        int32_t *ids = b->input_ids + (size_t)i * T;
        for (int t = 0; t < T; t++) ids[t] = t < s->n ? s->ids[t] : pad_id;
        for (int t = 0; t < s->n; t++) b->attention_mask[(size_t)i * T + t] = 1;
        if (s->type_ids) memcpy(b->token_type_ids + (size_t)i * T, s->type_ids, sizeof(int32_t) * (size_t)s->n);
    }
    return RLHF_OK;
}

void padded_batch_free(padded_batch *b) {
    free(b->input_ids);
    free(b->attention_mask);
    free(b->token_type_ids);
    memset(b, 0, sizeof *b);
}

int model_pad_id(const model *m) {
    int p = m->cfg.pad_token_id;
    return p >= 0 && p < m->cfg.vocab_size ? p : 0;
}

double reward_read(const float *row, int num_labels) {
    if (num_labels == 2) return 1.0 / (1.0 + exp((double)row[0] - (double)row[1]));
    return row[0];
}

float reward_train_value(const float *row, int num_labels) {
    return num_labels == 2 ? row[1] - row[0] : row[0];
}

void reward_train_backward(float *drow, float g, int num_labels) {
    if (num_labels == 2) {
        drow[1] += g;
        drow[0] -= g;
    } else {
        drow[0] += g;
    }
}

rlhf_status pairs_forward_backward(model *m, const pref_set *set, const int *idx, int P, int pad_id,
                                   float center_coef, int training, uint64_t dropout_key, const pair_places *places,
                                   int want_backward, float grad_scale, pair_metrics *metrics, rlhf_err *err) {
    memset(metrics, 0, sizeof *metrics);
    int L = m->cfg.num_labels;
    const token_seq **seqs = malloc(sizeof(token_seq *) * (size_t)(2 * P));
    float *buf = calloc((size_t)P * 5 + (size_t)2 * P * L, sizeof(float));
    int64_t *pos = places && places->gpos ? malloc(sizeof(int64_t) * (size_t)(2 * P)) : NULL;
    if (!seqs || !buf || (places && places->gpos && !pos)) {
        free(seqs);
        free(buf);
        free(pos);
        return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    }
    float *chosen = buf, *rejected = buf + P, *margin = buf + 2 * P, *dchosen = buf + 3 * P,
          *drejected = buf + 4 * P, *dout = buf + 5 * P;
    for (int p = 0; p < P; p++) {
        const pref_row *r = &set->rows[idx[p]];
        seqs[p] = &r->chosen;
        seqs[P + p] = &r->rejected;
        margin[p] = r->margin;
        if (pos) {
            pos[p] = places->gpos[p];
            pos[P + p] = places->GP + places->gpos[p];
        }
    }
    padded_batch b;
    rlhf_status s = batch_collate(&b, seqs, 2 * P, pad_id, err);
    free(seqs);
    if (s) {
        free(buf);
        free(pos);
        return s;
    }
    model_batch mb = {.B = b.B, .T = b.T, .input_ids = b.input_ids, .attention_mask = b.attention_mask,
                      .token_type_ids = m->cfg.type_vocab_size > 0 ? b.token_type_ids : NULL,
                      .position_ids = NULL, .training = training, .dropout_key = dropout_key,
                      .dropout_pos = pos, .dropout_T = pos ? places->GT : 0};
    s = want_backward ? model_forward(m, &mb, err) : model_forward_no_grad(m, &mb, err);
    if (!s) {
        for (int p = 0; p < P; p++) {
            const float *rc = m->out + (size_t)p * L, *rr = m->out + (size_t)(P + p) * L;
            chosen[p] = reward_train_value(rc, L);
            rejected[p] = reward_train_value(rr, L);
            double c = reward_read(rc, L), r = reward_read(rr, L);
            metrics->correct += c > r;
            metrics->margin_sum += c - r;
        }
        const float *mg = set->has_margin ? margin : NULL;
        metrics->loss = pairwise_loss_forward(chosen, rejected, mg, center_coef, P);
        metrics->P = P;
        if (want_backward) {
            pairwise_loss_backward(dchosen, drejected, chosen, rejected, mg, center_coef, P, grad_scale);
            for (int p = 0; p < P; p++) {
                reward_train_backward(dout + (size_t)p * L, dchosen[p], L);
                reward_train_backward(dout + (size_t)(P + p) * L, drejected[p], L);
            }
            s = model_backward(m, dout, NULL, err);
        }
    }
    padded_batch_free(&b);
    free(buf);
    free(pos);
    return s;
}

int model_dir_has_tokenizer(const char *dir) {
    return tokenizer_files_present(dir);
}

static rlhf_status load_reward_model(model **m, tokenizer **tok, const char *dir, uint64_t init_seed,
                                     const struct peft_options *peft, int frozen, rlhf_err *err);

rlhf_status reward_model_load(model **m, tokenizer **tok, const char *dir, uint64_t init_seed, rlhf_err *err) {
    return load_reward_model(m, tok, dir, init_seed, NULL, 1, err);
}

rlhf_status reward_model_load_peft(model **m, tokenizer **tok, const char *dir, uint64_t init_seed,
                                   const struct peft_options *peft, rlhf_err *err) {
    return load_reward_model(m, tok, dir, init_seed, peft, 0, err);
}

rlhf_status reward_model_load_scoring(model **m, tokenizer **tok, const char *dir, const struct peft_options *quant,
                                      rlhf_err *err) {
    return load_reward_model(m, tok, dir, 0, quant, 1, err);
}

static rlhf_status load_reward_model(model **m, tokenizer **tok, const char *dir, uint64_t init_seed,
                                     const struct peft_options *peft, int frozen, rlhf_err *err) {
    *m = NULL;
    *tok = NULL;
    model_load_opts lo = {.quiet = 0, .init_seed = init_seed, .peft = peft, .frozen = frozen};
    char cfg[4096];
    // A peft adapter directory (no config.json of its own): its base with the adapter applied.
    if (peft_is_adapter_dir(dir) && !file_exists(path_join(cfg, sizeof cfg, dir, "config.json"))) {
        if (peft && peft->use_peft)
            return rlhf_fail(err, RLHF_EINPUT, "%s is a peft adapter: new adapters start from a full model "
                             "(its base_model_name_or_path)", dir);
        lo.peft = NULL;
        RLHF_TRY(peft_load_adapter_model(m, dir, HEAD_SEQCLS, peft, &lo, err));
    } else {
        RLHF_TRY(model_load(m, dir, HEAD_SEQCLS, &lo, err));
    }
    int L = (*m)->cfg.num_labels;
    if (L != 1 && L != 2) {
        model_free(*m);
        *m = NULL;
        return rlhf_fail(err, RLHF_EINPUT,
                         "%s/config.json: a reward model needs 1 label (the reward is its logit) or 2 labels (the "
                         "reward is the probability of label 1); this one has %d", dir, L);
    }
    if (model_dir_has_tokenizer(dir)) {
        rlhf_status s = tokenizer_load(tok, dir, err);
        if (!s) s = tokenizer_check_model_vocab(*tok, (*m)->cfg.vocab_size, dir, err);
        if (s) {
            tokenizer_free(*tok);
            model_free(*m);
            *m = NULL;
            *tok = NULL;
            return s;
        }
    }
    return RLHF_OK;
}

void pref_opts_for_model(pref_opts *o, const model *m, const tokenizer *tok, int max_length, pref_encoding enc,
                         const char *model_dir) {
    memset(o, 0, sizeof *o);
    o->tok = tok;
    o->vocab_size = m->cfg.vocab_size;
    o->type_vocab_size = m->cfg.type_vocab_size;
    int limit = m->cfg.max_positions;
    // RoBERTa's position table reserves padding_idx + 1 rows before the first position.
    if (!strcmp(m->cfg.model_type, "roberta") && limit > 2) limit -= 2;
    o->max_length = max_length;
    if (limit > 0 && (o->max_length <= 0 || o->max_length > limit)) o->max_length = limit;
    o->encoding = enc;
    o->is_decoder = m->cfg.is_decoder;
    o->eos_id = m->cfg.eos_token_id;
    o->bos_id = m->cfg.bos_token_id;
    if (tok) {
        if (tokenizer_eos_id(tok) >= 0) o->eos_id = tokenizer_eos_id(tok);
        if (tokenizer_bos_id(tok) >= 0) o->bos_id = tokenizer_bos_id(tok);
    }
    o->model_dir = model_dir;
}

rlhf_status reward_encoding_record(model *m, pref_encoding enc, rlhf_err *err) {
    if (!m->config_json) return RLHF_OK;
    cJSON_DeleteItemFromObjectCaseSensitive(m->config_json, REWARD_ENCODING_CONFIG_KEY);
    if (!cJSON_AddStringToObject(m->config_json, REWARD_ENCODING_CONFIG_KEY,
                                 enc == PREF_ENCODING_CONCAT ? "concat" : "pair"))
        return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    return RLHF_OK;
}

rlhf_status reward_max_length_record(model *m, int max_length, rlhf_err *err) {
    if (!m->config_json || max_length <= 0) return RLHF_OK;
    cJSON_DeleteItemFromObjectCaseSensitive(m->config_json, REWARD_MAX_LENGTH_CONFIG_KEY);
    if (!cJSON_AddNumberToObject(m->config_json, REWARD_MAX_LENGTH_CONFIG_KEY, max_length))
        return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    return RLHF_OK;
}

int reward_max_length_of(const model *m) {
    const cJSON *v = m->config_json ? cJSON_GetObjectItemCaseSensitive(m->config_json, REWARD_MAX_LENGTH_CONFIG_KEY)
                                    : NULL;
    return cJSON_IsNumber(v) && v->valuedouble >= 1 && v->valuedouble < 1e9 ? (int)v->valuedouble : 0;
}

pref_encoding reward_encoding_of(const model *m, pref_encoding def) {
    const cJSON *v = m->config_json ? cJSON_GetObjectItemCaseSensitive(m->config_json, REWARD_ENCODING_CONFIG_KEY)
                                    : NULL;
    if (cJSON_IsString(v) && !strcmp(v->valuestring, "concat")) return PREF_ENCODING_CONCAT;
    if (cJSON_IsString(v) && !strcmp(v->valuestring, "pair")) return PREF_ENCODING_PAIR;
    return def;
}

rlhf_status reward_encoding_parse(const char *flag_value, const model *m, pref_encoding *out, rlhf_err *err) {
    if (!flag_value) {
        *out = reward_encoding_of(m, PREF_ENCODING_PAIR);
        return RLHF_OK;
    }
    if (!strcmp(flag_value, "pair")) *out = PREF_ENCODING_PAIR;
    else if (!strcmp(flag_value, "concat")) *out = PREF_ENCODING_CONCAT;
    else return rlhf_fail(err, RLHF_EINPUT, "--encoding: expected pair or concat, got '%s'", flag_value);
    return RLHF_OK;
}

rlhf_status trainer_skip_guard(const char *command, double loss, double norm, long long step, int notice,
                               int newline, int *streak, long long *skipped, int *take, rlhf_err *err) {
    *take = isfinite(loss) && isfinite(norm);
    if (*take) {
        *streak = 0;
        return RLHF_OK;
    }
    (*skipped)++;
    if (++*streak >= TRAINER_MAX_CONSECUTIVE_SKIPS)
        return rlhf_fail(err, RLHF_ERUNTIME, "training diverged: %d steps in a row with a non-finite loss or gradient "
                         "norm (up to step %lld); try a lower --learning_rate or --max_grad_norm", *streak, step + 1);
    if (notice)
        fprintf(stderr, "%srlhf %s: step %lld: non-finite %s (%g); step skipped (%lld skipped so far)\n",
                newline ? "\n" : "", command, step + 1, isfinite(loss) ? "gradient norm" : "loss",
                isfinite(loss) ? norm : loss, *skipped);
    return RLHF_OK;
}
