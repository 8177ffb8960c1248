// Batched text generation with a KV cache, as transformers' generate() does it for causal LMs:
// prompts left-padded, position ids cumsum(mask) - 1, the attention mask over the cache, greedy or
// sampling with HF's logits warpers (temperature, then top-k, then top-p), per-row stop on EOS or a
// stop token (finished rows are padded and masked). Sampling draws are counter-based
// (RNG_STREAM_SAMPLE, counter = (row id, step)), so a row's tokens do not depend on which other rows
// share its batch.
#ifndef RLHF_TRAIN_GENERATE_H
#define RLHF_TRAIN_GENERATE_H

#include <stdint.h>

#include "models/model.h"

typedef struct {
    int max_new_tokens;
    int do_sample;        // 0: greedy (argmax of the raw logits, as HF ignores warpers then)
    float temperature;    // > 0; also scales the returned log-probs
    int top_k;            // 0: off
    float top_p;          // 1: off
    float min_p;          // 0: off (MinPLogitsWarper: drop tokens below min_p x the top probability)
    float repetition_penalty;  // 0 or 1: off (RepetitionPenaltyLogitsProcessor over prompt + generated tokens)
    int eos_token_id;     // -1: none
    int stop_token_id;    // -1: none (a second stop id)
    int pad_token_id;     // written after a row stops; -1 writes 0
    uint64_t seed;
} gen_config;

typedef struct {
    int B, max_new;       // rows; columns of each (B, max_new) array
    int32_t *tokens;      // new token ids; pad after the row stopped
    int32_t *mask;        // 1 for generated tokens (the stop token included), 0 after
    float *logprobs;      // log_softmax(logits / temperature)[token], 0 where mask is 0
    int *lengths;         // (B) generated tokens per row
} gen_output;

// Generates for B prompts (prompts[b]: prompt_lens[b] >= 1 ids). row_ids[b] names row b for the
// sampling counters (NULL: 0..B-1). out is allocated here; free with gen_output_free.
rlhf_status generate(model *m, const int32_t *const *prompts, const int *prompt_lens, const uint64_t *row_ids,
                     int B, const gen_config *g, gen_output *out, rlhf_err *err);
void gen_output_free(gen_output *o);

// HF's sampling warpers on one row: probs (V) = softmax over the tokens that survive
// TemperatureLogitsWarper, TopKLogitsWarper (ties with the k-th kept), TopPLogitsWarper (drop the
// smallest tokens whose cumulative probability is <= 1 - top_p, keep at least one) and MinPLogitsWarper
// (min_p > 0: drop tokens whose probability is below min_p times the largest); removed tokens get
// probability 0.
void gen_warp_probs(float *probs, const float *logits, int V, float temperature, int top_k, float top_p,
                    float min_p);
// The k-th largest of x[0..n) (1 <= k <= n), in O(n) (quickselect on a copy in scratch, n floats): the top-k
// warper's threshold, the value a full ascending sort has at n - k.
float gen_topk_threshold(const float *x, int n, int k, float *scratch);
// RepetitionPenaltyLogitsProcessor on one row: every token id in hist[0..n) once, its logit divided by
// penalty when positive, multiplied when negative (in place).
void gen_repetition_penalty(float *logits, const int32_t *hist, int n, float penalty);
// The sampled token for uniform draw u in [0, 1) under probs (inverse CDF in token order).
int gen_sample(const float *probs, int V, double u);

#endif
