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
#include "train/reward_source.h"

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
    const ppo_prompt **prompts = calloc((size_t)nb, sizeof *prompts);
    uint64_t *row_ids = malloc((size_t)nb * sizeof *row_ids);
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

// The reward model's scores of rows [b0, b0 + nb) (train/reward_source.h: the scorer grpo shares).
static rlhf_status score_chunk(ppo_run *r, int b0, int nb, rlhf_err *err) {
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
    free(items);
    return st;
}

rlhf_status ppo_rollout(ppo_run *r, long long update, rlhf_err *err) {
    const int B = r->batch, R = r->R;
    int P = 1;
    for (int b = 0; b < B; b++)
        if (r->prompts[r->rows[b]].n > P) P = r->prompts[r->rows[b]].n;
    r->P = P;
    r->T = P + R;
    const int T = r->T;
    for (int b0 = 0; b0 < B; b0 += r->fwd) {
        int nb = B - b0 < r->fwd ? B - b0 : r->fwd;
        RLHF_TRY(generate_chunk(r, b0, nb, update, err));
    }
    // left-padded prompts (as HF generate pads), then every response slot real for the forwards
    const ppo_prompt **rows = calloc((size_t)(B > 0 ? B : 1), sizeof *rows);
    if (!rows) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    for (int b = 0; b < B; b++) rows[b] = &r->prompts[r->rows[b]];
    rollout_pack(r->qr_ids, r->qr_mask, r->qr_pos, rows, r->responses, B, P, R, r->fill_id);
    free(rows);
    ppo_truncate_responses(r->mask, r->lengths, r->has_stop, r->responses, r->n_generated, r->stop_id, B, R);

    for (int b0 = 0; b0 < B; b0 += r->fwd) {
        int nb = B - b0 < r->fwd ? B - b0 : r->fwd;
        model_batch mb = {.B = nb, .T = T, .input_ids = r->qr_ids + (size_t)b0 * T,
                          .attention_mask = r->qr_mask + (size_t)b0 * T, .position_ids = r->qr_pos + (size_t)b0 * T};
        const int32_t *resp = r->responses + (size_t)b0 * R;
        RLHF_TRY(model_forward(r->policy, &mb, err));
        rollout_logprobs(r->logprobs + (size_t)b0 * R, NULL, r->policy->out, resp, nb, T, P, R,
                         r->policy->cfg.vocab_size, r->a->temperature + PPO_TEMPERATURE_EPS);
        if (r->value_source == PPO_VALUE_HEAD)
            ppo_values_from_hidden(r->values + (size_t)b0 * R, r->policy->last_hidden, r->vhead,
                                   r->vhead[r->vhead_n - 1], nb, T, P, R, r->policy->cfg.hidden_size);
        // With LoRA the reference is the policy itself with its adapters off (one copy of the weights);
        // its forward overwrites the policy's outputs, which were read above.
        model *ref = r->ref ? r->ref : r->policy;
        if (r->ref)
            RLHF_TRY(model_forward(r->ref, &mb, err));
        else
            RLHF_TRY(peft_reference_forward(r->policy, &mb, err));
        rollout_logprobs(r->ref_logprobs + (size_t)b0 * R, NULL, ref->out, resp, nb, T, P, R,
                         ref->cfg.vocab_size, r->a->temperature + PPO_TEMPERATURE_EPS);
        if (r->value_source == PPO_VALUE_REWARD) {
            RLHF_TRY(model_forward(r->value, &mb, err));
            ppo_values_from_hidden(r->values + (size_t)b0 * R, r->value->last_hidden,
                                   r->value->params + r->value_score_off, 0.0f, nb, T, P, R,
                                   r->value->cfg.hidden_size);
        }
        RLHF_TRY(score_chunk(r, b0, nb, err));
    }
    if (r->a->has_missing_eos_penalty)
        ppo_missing_eos_penalty(r->scores, r->has_stop, (float)r->a->missing_eos_penalty, B);
    return RLHF_OK;
}
