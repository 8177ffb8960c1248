// PPO rollouts: sampling responses from the policy (train/generate.h, KV cache), the log-probs of policy and
// reference on the same tokens at the same temperature, the values, and the reward model's scores.
// The reward model reads the response through its OWN tokenizer: the response ids are decoded with the
// policy tokenizer and (prompt, response) re-encoded as `rlhf score` reads it (decoders: prompt +
// response + EOS; encoders: a sentence pair, or one text with --encoding concat). This is what lets a
// GPT-2 policy train against a BERT reward model (TRL issues 3595, 1979, 2718).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "nn/ops.h"
#include "models/peft.h"
#include "train/ppo_trainer_impl.h"
#include "train/reward_funcs.h"
#include "train/reward_scoring.h"
#include "train/trainer_common.h"

void ppo_values_from_hidden(float *out, const float *hidden, const float *w, float bias, int nb, int T, int P,
                            int R, int C) {
    for (int b = 0; b < nb; b++)
        for (int t = 0; t < R; t++) {
            const float *h = hidden + ((size_t)b * T + (P - 1 + t)) * C;
            double s = bias;
            for (int c = 0; c < C; c++) s += (double)h[c] * w[c];
            out[(size_t)b * R + t] = (float)s;
        }
}

// Samples R tokens for rows [b0, b0 + nb) (train/rollout.h: KV cache, HF's temperature warper at
// temperature + 1e-7 as TRL's generation config), stopping a row at its first stop token. The draws are
// keyed by (seed, update) and the row's place in the batch, so they do not depend on the chunking.
static rlhf_status generate_chunk(ppo_run *r, int b0, int nb, long long update, rlhf_err *err) {
    const ppo_prompt **prompts = calloc((size_t)(nb > 0 ? nb : 1), sizeof *prompts);
    uint64_t *row_ids = malloc((size_t)(nb > 0 ? nb : 1) * sizeof *row_ids);
    if (!prompts || !row_ids) {
        free(prompts);
        free(row_ids);
        return rlhf_fail(err, RLHF_ERUNTIME, "out of memory sampling responses");
    }
    for (int i = 0; i < nb; i++) {
        prompts[i] = &r->prompts[r->rows[b0 + i]];
        row_ids[i] = (uint64_t)(b0 + i);
    }
    rollout_sampling s = {.max_new_tokens = r->R, .temperature = (float)(r->a->temperature + PPO_TEMPERATURE_EPS),
                          .top_k = 0, .top_p = 1.0, .min_p = 0, .repetition_penalty = 1.0, .stop_id = r->stop_id,
                          .fill_id = r->fill_id, .seed = rng_key(r->a->seed, RNG_STREAM_SAMPLE, (uint64_t)update, 0)};
    rlhf_status st = rollout_sample(r->policy, prompts, row_ids, nb, &s, r->responses + (size_t)b0 * r->R,
                                    r->n_generated + b0, err);
    free(prompts);
    free(row_ids);
    return st;
}

rlhf_status ppo_response_text(const ppo_run *r, int b, char **out, rlhf_err *err) {
    int n = r->lengths[b] - (r->has_stop[b] ? 1 : 0);
    return tokenizer_decode(r->policy_tok, r->responses + (size_t)b * r->R, n, 1, out, err);
}

// Remote rewards: the decoded (prompt, response) texts of rows [b0, b0 + nb) posted as one request. On the id
// route the prompt text is decoded from its ids.
static rlhf_status score_chunk_remote(ppo_run *r, int b0, int nb, rlhf_err *err) {
    char **prompts = calloc((size_t)nb, sizeof *prompts), **responses = calloc((size_t)nb, sizeof *responses);
    char **decoded = calloc((size_t)nb, sizeof *decoded);
    rlhf_status st = prompts && responses && decoded ? RLHF_OK
                                                     : rlhf_fail(err, RLHF_ERUNTIME, "out of memory scoring responses");
    for (int i = 0; i < nb && !st; i++) {
        const ppo_prompt *p = &r->prompts[r->rows[b0 + i]];
        if (!p->text) st = tokenizer_decode(r->policy_tok, p->ids, p->n, 1, &decoded[i], err);
        prompts[i] = p->text ? p->text : decoded[i];
        if (!st) st = ppo_response_text(r, b0 + i, &responses[i], err);
    }
    float *out = r->scores + b0;
    if (!st) {
        st = reward_source_score(r->remote, (const char *const *)prompts, (const char *const *)responses, nb, out, err);
        r->remote_failed = st != RLHF_OK;
    }
    for (int i = 0; i < nb; i++) {
        if (responses) free(responses[i]);
        if (decoded) free(decoded[i]);
    }
    free(prompts);
    free(responses);
    free(decoded);
    return st;
}

// The local reward model's scores of rows [b0, b0 + nb) (train/reward_funcs.h: the scorer grpo and rloo
// share), normalised with --normalize_reward.
static rlhf_status score_chunk(ppo_run *r, int b0, int nb, rlhf_err *err) {
    if (r->remote) return score_chunk_remote(r, b0, nb, err);
    reward_item *items = calloc((size_t)(nb > 0 ? nb : 1), sizeof *items);
    if (!items) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory scoring responses");
    for (int i = 0; i < nb; i++) {
        int b = b0 + i;
        const ppo_prompt *p = &r->prompts[r->rows[b]];
        items[i] = (reward_item){.prompt_text = p->text, .prompt_ids = p->ids, .prompt_n = p->n,
                                 .completion_ids = r->responses + (size_t)b * r->R,
                                 .completion_n = r->lengths[b] - (r->has_stop[b] ? 1 : 0), .line = p->line};
    }
    rm_scorer sc = {.m = r->reward, .tok = r->reward_tok, .policy_tok = r->policy_tok, .eos = r->rm_eos,
                    .max_len = r->rm_max_len, .encoding = r->a->encoding, .dataset_name = r->a->dataset_name};
    rlhf_status st = rm_scorer_score(&sc, items, nb, r->scores + b0, err);
    for (int i = 0; !st && i < nb; i++) r->scores[b0 + i] = (float)reward_norm_apply(&r->rm_norm, r->scores[b0 + i]);
    free(items);
    return st;
}

// Gathers rows [lo, lo + local) of each rank into every rank's buffer (elem bytes per row).
static rlhf_status gather_rows(ppo_run *r, void *buf, size_t row_bytes, rlhf_err *err) {
    if (r->n_ranks == 1) return RLHF_OK;
    char *p = buf;
    return dist_allgather(r->a->dist, p + (size_t)r->lo * row_bytes, p, (size_t)r->local * row_bytes, err);
}

rlhf_status ppo_rollout(ppo_run *r, long long update, rlhf_err *err) {
    const int B = r->batch, R = r->R, lo = r->lo, hi = r->lo + r->local;
    int P = 1;
    for (int b = 0; b < B; b++)
        if (r->prompts[r->rows[b]].n > P) P = r->prompts[r->rows[b]].n;
    r->P = P;
    r->T = P + R;
    const int T = r->T;
    for (int b = 0; b < B; b++) r->n_generated[b] = R;
    for (int b0 = lo; b0 < hi; b0 += r->fwd) {
        int nb = hi - b0 < r->fwd ? hi - b0 : r->fwd;
        RLHF_TRY(generate_chunk(r, b0, nb, update, err));
    }
    RLHF_TRY(gather_rows(r, r->responses, (size_t)R * sizeof(int32_t), err));
    RLHF_TRY(gather_rows(r, r->n_generated, sizeof(int), err));
    // left-padded prompts (as HF generate pads), then every response slot real for the forwards:
    // slots after a stop token only follow it causally, and the response mask drops them.
    const ppo_prompt **rows = calloc((size_t)(B > 0 ? B : 1), sizeof *rows);
    if (!rows) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    for (int b = 0; b < B; b++) rows[b] = &r->prompts[r->rows[b]];
    rollout_pack(r->qr_ids, r->qr_mask, r->qr_pos, rows, r->responses, B, P, R, r->fill_id);
    free(rows);
    ppo_truncate_responses(r->mask, r->lengths, r->has_stop, r->responses, r->n_generated, r->stop_id, B, R);

    for (int b0 = lo; b0 < hi; b0 += r->fwd) {
        int nb = hi - b0 < r->fwd ? hi - b0 : r->fwd;
        // LM heads on the R positions that predict the response only (logits (nb, R, V)); the value model
        // (a sequence-classification model) ignores the range
        model_batch mb = {.B = nb, .T = T, .input_ids = r->qr_ids + (size_t)b0 * T,
                          .attention_mask = r->qr_mask + (size_t)b0 * T, .position_ids = r->qr_pos + (size_t)b0 * T,
                          .head_from = P - 1, .head_count = R};
        const int32_t *resp = r->responses + (size_t)b0 * R;
        // no backward follows the rollout's forwards (the update re-runs the policy): no_grad
        RLHF_TRY(model_forward_no_grad(r->policy, &mb, err));
        rollout_logprobs(r->logprobs + (size_t)b0 * R, NULL, r->policy->out, resp, nb, R, 1, R,
                         r->policy->cfg.vocab_size, r->a->temperature + PPO_TEMPERATURE_EPS);
        if (r->value_source == PPO_VALUE_HEAD)
            ppo_values_from_hidden(r->values + (size_t)b0 * R, r->policy->last_hidden, r->vhead,
                                   r->vhead[r->vhead_n - 1], nb, T, P, R, r->policy->cfg.hidden_size);
        // With LoRA the reference is the policy itself with its adapters off (one copy of the weights);
        // its forward overwrites the policy's outputs, which were read above.
        model *ref = r->ref ? r->ref : r->policy;
        if (r->ref)
            RLHF_TRY(model_forward_no_grad(r->ref, &mb, err));
        else
            RLHF_TRY(peft_reference_forward(r->policy, &mb, err));
        rollout_logprobs(r->ref_logprobs + (size_t)b0 * R, NULL, ref->out, resp, nb, R, 1, R,
                         ref->cfg.vocab_size, r->a->temperature + PPO_TEMPERATURE_EPS);
        if (r->value_source == PPO_VALUE_REWARD) {
            RLHF_TRY(model_forward_no_grad(r->value, &mb, err));
            ppo_values_from_hidden(r->values + (size_t)b0 * R, r->value->last_hidden,
                                   r->value->params + r->value_score_off, 0.0f, nb, T, P, R,
                                   r->value->cfg.hidden_size);
        }
        RLHF_TRY(score_chunk(r, b0, nb, err));
    }
    // the frozen models' activations are not resident while the policy trains
    if (r->ref) model_release_activations(r->ref);
    if (r->reward && !r->remote) model_release_activations(r->reward);
    RLHF_TRY(gather_rows(r, r->logprobs, (size_t)R * sizeof(float), err));
    RLHF_TRY(gather_rows(r, r->ref_logprobs, (size_t)R * sizeof(float), err));
    RLHF_TRY(gather_rows(r, r->values, (size_t)R * sizeof(float), err));
    RLHF_TRY(gather_rows(r, r->scores, sizeof(float), err));
    if (r->a->has_missing_eos_penalty)
        ppo_missing_eos_penalty(r->scores, r->has_stop, (float)r->a->missing_eos_penalty, B);
    return RLHF_OK;
}
