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

// The reward model's input for row b as `rlhf score` reads (prompt, response).
static rlhf_status reward_input(const ppo_run *r, int b, token_seq *seq, rlhf_err *err) {
    const ppo_prompt *p = &r->prompts[r->rows[b]];
    const int is_dec = r->reward->cfg.is_decoder;
    int n_resp = r->lengths[b] - (r->has_stop[b] ? 1 : 0);
    const int32_t *resp = r->responses + (size_t)b * r->R;
    int32_t *ids = NULL, *types = NULL;
    int n = 0;
    if (!r->reward_tok) {  // the id route: the vocabularies are the same (checked at load)
        n = p->n + n_resp + (is_dec && r->rm_eos >= 0);
        ids = malloc((size_t)n * sizeof *ids);
        types = calloc((size_t)n, sizeof *types);
        if (!ids || !types) goto oom;
        memcpy(ids, p->ids, (size_t)p->n * sizeof *ids);
        memcpy(ids + p->n, resp, (size_t)n_resp * sizeof *ids);
        if (is_dec && r->rm_eos >= 0) ids[n - 1] = r->rm_eos;
    } else {
        char *text = NULL;
        RLHF_TRY(tokenizer_decode(r->policy_tok, resp, n_resp, 1, &text, err));
        tok_encoding e = {0};
        rlhf_status st;
        if (is_dec || r->a->encoding == PREF_ENCODING_CONCAT) {
            size_t lp = strlen(p->text), lr = strlen(text);
            char *joined = malloc(lp + lr + 1);
            if (!joined) {
                free(text);
                goto oom;
            }
            memcpy(joined, p->text, lp);
            memcpy(joined + lp, text, lr + 1);
            st = tokenizer_encode(r->reward_tok, joined, NULL, 1, is_dec ? 0 : r->rm_max_len, TRUNC_LONGEST_FIRST,
                                  &e, err);
            free(joined);
        } else {
            st = tokenizer_encode(r->reward_tok, p->text, text, 1, r->rm_max_len, TRUNC_LONGEST_FIRST, &e, err);
        }
        free(text);
        if (st) return rlhf_err_prefix(err, "scoring a response of %s:%d: ", r->a->dataset_name, p->line);
        int add_eos = is_dec && r->rm_eos >= 0;
        n = e.n + add_eos;
        ids = malloc((size_t)(n > 0 ? n : 1) * sizeof *ids);
        types = calloc((size_t)(n > 0 ? n : 1), sizeof *types);
        if (!ids || !types) {
            tok_encoding_free(&e);
            goto oom;
        }
        memcpy(ids, e.ids, (size_t)e.n * sizeof *ids);
        if (e.type_ids) memcpy(types, e.type_ids, (size_t)e.n * sizeof *types);
        if (add_eos) ids[n - 1] = r->rm_eos;
        tok_encoding_free(&e);
    }
    // A decoder reads its score at the last token: keep the tail when the input is too long.
    if (r->rm_max_len > 0 && n > r->rm_max_len) {
        int cut = n - r->rm_max_len;
        memmove(ids, ids + cut, (size_t)r->rm_max_len * sizeof *ids);
        memmove(types, types + cut, (size_t)r->rm_max_len * sizeof *types);
        n = r->rm_max_len;
    }
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= r->reward->cfg.vocab_size) {
            int bad = ids[i];
            free(ids);
            free(types);
            return rlhf_fail(err, RLHF_EINPUT, "%s:%d: token id %d is outside the reward model's vocabulary (%d)",
                             r->a->dataset_name, p->line, bad, r->reward->cfg.vocab_size);
        }
    seq->ids = ids;
    seq->type_ids = types;
    seq->n = n;
    return RLHF_OK;
oom:
    free(ids);
    free(types);
    return rlhf_fail(err, RLHF_ERUNTIME, "out of memory building reward model inputs");
}

static rlhf_status score_chunk(ppo_run *r, int b0, int nb, rlhf_err *err) {
    token_seq *seqs = calloc((size_t)nb, sizeof *seqs);
    const token_seq **ptrs = calloc((size_t)nb, sizeof *ptrs);
    padded_batch pb = {0};
    rlhf_status st = RLHF_OK;
    if (!seqs || !ptrs) {
        st = rlhf_fail(err, RLHF_ERUNTIME, "out of memory scoring responses");
        goto out;
    }
    for (int i = 0; i < nb; i++) {
        st = reward_input(r, b0 + i, &seqs[i], err);
        if (st) goto out;
        ptrs[i] = &seqs[i];
    }
    st = batch_collate(&pb, ptrs, nb, model_pad_id(r->reward), err);
    if (st) goto out;
    model_batch mb = {.B = pb.B, .T = pb.T, .input_ids = pb.input_ids, .attention_mask = pb.attention_mask,
                      .token_type_ids = r->reward->cfg.type_vocab_size > 0 ? pb.token_type_ids : NULL};
    st = model_forward(r->reward, &mb, err);
    if (st) goto out;
    for (int i = 0; i < nb; i++)
        r->scores[b0 + i] = (float)reward_read(r->reward->out + (size_t)i * r->reward->cfg.num_labels,
                                               r->reward->cfg.num_labels);
out:
    if (seqs)
        for (int i = 0; i < nb; i++) {
            free(seqs[i].ids);
            free(seqs[i].type_ids);
        }
    free(seqs);
    free(ptrs);
    padded_batch_free(&pb);
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
