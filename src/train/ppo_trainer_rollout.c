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
#include "train/generate.h"
#include "models/peft.h"
#include "train/ppo_trainer_impl.h"
#include "train/trainer_common.h"

void ppo_positions(int32_t *pos, const int32_t *mask, int B, int T) {
    for (int b = 0; b < B; b++) {
        int32_t c = 0;
        for (int t = 0; t < T; t++) {
            int32_t m = mask[(size_t)b * T + t] ? 1 : 0;
            c += m;
            pos[(size_t)b * T + t] = c - m;
        }
    }
}

// log-sum-exp of z / tau over one row of V logits (float exp: this loop is the hot spot of small models).
float ppo_logsumexp(const float *z, int V, float inv) {
    float mx = -INFINITY;
    for (int v = 0; v < V; v++) mx = z[v] * inv > mx ? z[v] * inv : mx;
    float s = 0;
    for (int v = 0; v < V; v++) s += expf(z[v] * inv - mx);
    return mx + logf(s);
}

void ppo_response_logprobs(float *out, float *lse, const float *logits, const int32_t *resp, int nb, int T, int P,
                           int R, int V, double temperature) {
    if (!lse) {  // the nn op's vectorised exp: R slots of row b are R consecutive rows of logits
        for (int b = 0; b < nb; b++)
            token_logprobs_forward(out + (size_t)b * R, logits + ((size_t)b * T + P - 1) * V, resp + (size_t)b * R, R,
                                   V, (float)(temperature + PPO_TEMPERATURE_EPS));
        return;
    }
    const float inv = (float)(1.0 / (temperature + PPO_TEMPERATURE_EPS));
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < nb; b++) {
        for (int t = 0; t < R; t++) {
            const float *z = logits + ((size_t)b * T + (P - 1 + t)) * V;
            float l = ppo_logsumexp(z, V, inv);
            if (lse) lse[(size_t)b * R + t] = l;
            out[(size_t)b * R + t] = z[resp[(size_t)b * R + t]] * inv - l;
        }
    }
}

// One slot's softmax p = exp(z / tau - lse): its entropy (returned) and, when g != 0, the gradient of
// g * logprob(tok) into dz (V): g / tau * (onehot - p). One exp pass serves both.
float ppo_slot_entropy_backward(float *dz, const float *z, float lse, int32_t tok, float g, int V, float inv) {
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

// Samples R tokens for rows [b0, b0 + nb) with train/generate.h (KV cache, HF's temperature warper at
// temperature + 1e-7 as TRL's generation config), stopping a row at its first stop token. The draws are
// keyed by (seed, update) and the row's place in the batch, so they do not depend on the chunking.
static rlhf_status generate_chunk(ppo_run *r, int b0, int nb, long long update, rlhf_err *err) {
    const int R = r->R;
    const int32_t **prompts = malloc((size_t)nb * sizeof *prompts);
    int *lens = malloc((size_t)nb * sizeof *lens);
    uint64_t *row_ids = malloc((size_t)nb * sizeof *row_ids);
    if (!prompts || !lens || !row_ids) {
        free(prompts);
        free(lens);
        free(row_ids);
        return rlhf_fail(err, RLHF_ERUNTIME, "out of memory sampling responses");
    }
    for (int i = 0; i < nb; i++) {
        const ppo_prompt *p = &r->prompts[r->rows[b0 + i]];
        prompts[i] = p->ids;
        lens[i] = p->n;
        row_ids[i] = (uint64_t)(b0 + i);
    }
    gen_config g = {.max_new_tokens = R, .do_sample = 1,
                    .temperature = (float)(r->a->temperature + PPO_TEMPERATURE_EPS), .top_k = 0, .top_p = 1.0f,
                    .eos_token_id = r->stop_id, .stop_token_id = -1, .pad_token_id = r->fill_id,
                    .seed = rng_key(r->a->seed, RNG_STREAM_SAMPLE, (uint64_t)update, 0)};
    gen_output out = {0};
    rlhf_status st = generate(r->policy, prompts, lens, row_ids, nb, &g, &out, err);
    if (!st) {
        for (int i = 0; i < nb; i++) {
            int b = b0 + i;
            r->n_generated[b] = out.lengths[i];
            for (int t = 0; t < R; t++)
                r->responses[(size_t)b * R + t] = t < out.lengths[i] && t < out.max_new
                                                      ? out.tokens[(size_t)i * out.max_new + t]
                                                      : r->fill_id;
        }
    }
    gen_output_free(&out);
    free(prompts);
    free(lens);
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

static rlhf_status score_chunk(ppo_run *r, int b0, int nb, rlhf_err *err) {
    if (r->remote) return score_chunk_remote(r, b0, nb, err);
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
        r->scores[b0 + i] = (float)reward_norm_apply(
            &r->rm_norm, reward_read(r->reward->out + (size_t)i * r->reward->cfg.num_labels, r->reward->cfg.num_labels));
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
    // left-padded prompts (as HF generate pads), then every response slot real for the forwards:
    // slots after a stop token only follow it causally, and the response mask drops them.
    for (int b = 0; b < B; b++) {
        const ppo_prompt *p = &r->prompts[r->rows[b]];
        int32_t *ids = r->qr_ids + (size_t)b * T, *msk = r->qr_mask + (size_t)b * T;
        for (int t = 0; t < P - p->n; t++) {
            ids[t] = r->fill_id;
            msk[t] = 0;
        }
        memcpy(ids + P - p->n, p->ids, (size_t)p->n * sizeof *ids);
        for (int t = P - p->n; t < T; t++) msk[t] = 1;
        r->n_generated[b] = R;
    }
    for (int b0 = lo; b0 < hi; b0 += r->fwd) {
        int nb = hi - b0 < r->fwd ? hi - b0 : r->fwd;
        RLHF_TRY(generate_chunk(r, b0, nb, update, err));
    }
    RLHF_TRY(gather_rows(r, r->responses, (size_t)R * sizeof(int32_t), err));
    RLHF_TRY(gather_rows(r, r->n_generated, sizeof(int), err));
    for (int b = 0; b < B; b++) memcpy(r->qr_ids + (size_t)b * T + P, r->responses + (size_t)b * R, (size_t)R * 4);
    ppo_positions(r->qr_pos, r->qr_mask, B, T);
    ppo_truncate_responses(r->mask, r->lengths, r->has_stop, r->responses, r->n_generated, r->stop_id, B, R);

    for (int b0 = lo; b0 < hi; b0 += r->fwd) {
        int nb = hi - b0 < r->fwd ? hi - b0 : r->fwd;
        model_batch mb = {.B = nb, .T = T, .input_ids = r->qr_ids + (size_t)b0 * T,
                          .attention_mask = r->qr_mask + (size_t)b0 * T, .position_ids = r->qr_pos + (size_t)b0 * T};
        const int32_t *resp = r->responses + (size_t)b0 * R;
        RLHF_TRY(model_forward(r->policy, &mb, err));
        ppo_response_logprobs(r->logprobs + (size_t)b0 * R, NULL, r->policy->out, resp, nb, T, P, R,
                              r->policy->cfg.vocab_size, r->a->temperature);
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
        ppo_response_logprobs(r->ref_logprobs + (size_t)b0 * R, NULL, ref->out, resp, nb, T, P, R,
                              ref->cfg.vocab_size, r->a->temperature);
        if (r->value_source == PPO_VALUE_REWARD) {
            RLHF_TRY(model_forward(r->value, &mb, err));
            ppo_values_from_hidden(r->values + (size_t)b0 * R, r->value->last_hidden,
                                   r->value->params + r->value_score_off, 0.0f, nb, T, P, R,
                                   r->value->cfg.hidden_size);
        }
        RLHF_TRY(score_chunk(r, b0, nb, err));
    }
    RLHF_TRY(gather_rows(r, r->logprobs, (size_t)R * sizeof(float), err));
    RLHF_TRY(gather_rows(r, r->ref_logprobs, (size_t)R * sizeof(float), err));
    RLHF_TRY(gather_rows(r, r->values, (size_t)R * sizeof(float), err));
    RLHF_TRY(gather_rows(r, r->scores, sizeof(float), err));
    if (r->a->has_missing_eos_penalty)
        ppo_missing_eos_penalty(r->scores, r->has_stop, (float)r->a->missing_eos_penalty, B);
    return RLHF_OK;
}
