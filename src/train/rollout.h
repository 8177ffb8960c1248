// What the online trainers (ppo, grpo, rloo) share about rollouts: reading prompt rows, sampling
// completions from the policy with the KV cache (train/generate.h), packing prompt + completion rows for
// the full forwards, and the per-token log-probs / entropies of the sampled tokens under a model's
// logits. One copy of each, so the trainers cannot drift apart.
#ifndef RLHF_TRAIN_ROLLOUT_H
#define RLHF_TRAIN_ROLLOUT_H

#include <stdint.h>

#include "base/error.h"
#include "io/dataset.h"
#include "models/model.h"
#include "tokenizer/tokenizer.h"

typedef struct {
    int32_t *ids;      // prompt tokens for the policy (n)
    int n;
    char *text;        // the prompt text a reward model / reward function reads; NULL on the id route
    int line;          // line in the dataset file
    int row;           // row index in the dataset
} rollout_prompt;

typedef struct {
    const char *dataset_name;  // for messages
    const char *model_dir;     // the policy's directory (chat template, messages)
    const tokenizer *tok;      // NULL: only {"prompt_ids"} rows can be read
    int vocab_size;            // the policy's (id rows are checked against it)
    int max_positions;         // the tightest context of the models that read the rows (0: unbounded)
    int max_new_tokens;        // completion length the context must leave room for
    const char *length_flag;   // the flag of max_new_tokens, for messages ("--response_length")
    long long max_prompt_length;  // > 0: longer prompts keep their LAST max_prompt_length tokens (TRL); 0: off
    const char *cmd;           // for the truncation notice ("ppo")
} rollout_prompt_opts;

// Prompt rows {"prompt": str}, {"prompt": [messages]} (rendered by the policy's chat template with the
// generation prompt, as TRL's maybe_apply_chat_template) or {"prompt_ids": [...]}, every row of d. Errors
// name the file and line. A prompt longer than max_prompt_length, or than the positions leave beside
// max_new_tokens, keeps its end (TRL truncates prompts from the left) and its text is re-decoded from the
// kept tokens (what a reward model then reads); one notice counts them. *max_prompt: the longest prompt.
rlhf_status rollout_load_prompts(const dataset *d, const rollout_prompt_opts *o, rollout_prompt **out, int *n,
                                 int *max_prompt, rlhf_err *err);
void rollout_prompts_free(rollout_prompt *p, int n);

// The policy of an online trainer (ppo, grpo, rloo): from resume_dir when resuming (with peft: the checkpoint's
// adapter on its 4-bit or full base), else model_dir with new adapters when peft->use_peft (a peft adapter
// directory is refused: new adapters start from a full model), else model_dir with any adapter merged so the
// whole model trains. Must be a causal LM; errors name --model_name_or_path.
struct peft_options;
rlhf_status rollout_load_policy(model **out, const char *model_dir, const char *resume_dir,
                                const struct peft_options *peft, const model_load_opts *lo, rlhf_err *err);
// The LoRA / QLoRA flag checks every online trainer makes (--load_in_4bit and --merge_adapter need --use_peft).
rlhf_status rollout_check_peft(const struct peft_options *peft, int merge_adapter, rlhf_err *err);
// --eval_split: moves ceil(frac x n) of the n prompts at *prompts, drawn by a seeded permutation
// (RNG_STREAM_SPLIT, as the other trainers' splits), into *eval (n_eval); the rest stay in *prompts (*n), both
// in file order and each array owning its prompts. Neither part may be empty (EINPUT naming --eval_split).
rlhf_status rollout_split_prompts(rollout_prompt **prompts, int *n, double frac, uint64_t seed, rollout_prompt **eval,
                                  int *n_eval, rlhf_err *err);

typedef struct {
    int max_new_tokens;
    double temperature;        // the exact divisor of the logits (PPO passes temperature + 1e-7, as TRL)
    int top_k;                 // 0: off
    double top_p;              // 1: off
    double min_p;              // 0: off
    double repetition_penalty; // 1: off
    int stop_id;               // -1: none
    int fill_id;               // written in the slots after a row stopped
    uint64_t seed;             // counter-based: draws keyed by (seed, row id, step)
} rollout_sampling;

// Samples completions for prompts[0..nb) into responses (nb, R = s->max_new_tokens), slots after a stop
// filled with fill_id; n_generated (nb): tokens actually sampled. row_ids[i] names row i for the
// sampling counters, so a row's tokens do not depend on which rows share its chunk.
rlhf_status rollout_sample(model *policy, const rollout_prompt *const *prompts, const uint64_t *row_ids, int nb,
                           const rollout_sampling *s, int32_t *responses, int *n_generated, rlhf_err *err);

// Rows of (P + R) tokens: each prompt left-padded to P with fill_id (mask 0), then its R response slots,
// every one real for the forward (slots after a stop only follow it causally; the loss mask drops
// them). pos = cumsum(mask) - mask, as TRL's forward.
void rollout_pack(int32_t *ids, int32_t *mask, int32_t *pos, const rollout_prompt *const *prompts,
                  const int32_t *responses, int B, int P, int R, int fill_id);
// Positions as TRL's forward: cumsum(mask) - mask (left padding gets 0).
void rollout_positions(int32_t *pos, const int32_t *mask, int B, int T);

// Log-probs (nb, R) of resp under logits (nb, T, V) at positions P-1.., the logits divided by tau;
// lse (nb, R), may be NULL: the log-sum-exp of each slot's scaled logits (for the backward).
void rollout_logprobs(float *out, float *lse, const float *logits, const int32_t *resp, int nb, int T, int P, int R,
                      int V, double tau);
float rollout_logsumexp(const float *z, int V, float inv);
// One response slot: with p = exp(z * inv - lse), returns the entropy of p and writes dz (V) =
// g * inv * (onehot(tok) - p), the gradient of g * logprob(tok) (one exp pass for both).
float rollout_slot_entropy_backward(float *dz, const float *z, float lse, int32_t tok, float g, int V, float inv);

// The gradient of sum_{b,t} dlp[b,t] * logprob[b,t] into dlogits (nb, T, V) (zero outside the response
// slots), the per-slot entropies into entropy (nb, R) on the way. lse from rollout_logprobs.
void rollout_logprobs_backward(float *dlogits, float *entropy, const float *logits, const float *lse,
                               const int32_t *resp, const float *dlp, int nb, int T, int P, int R, int V, double tau);

// samples.jsonl of a checkpoint dir, keeping the lines whose "step" <= step (the resumed run may write
// to another --output_dir). *out (malloc'd, NUL-terminated, *len bytes) stays NULL when there is no file.
rlhf_status rollout_samples_restore(const char *dir, long long step, char **out, size_t *len, rlhf_err *err);
// Appends o as one line of samples.jsonl to the NUL-terminated buffer *buf (*len bytes, grown here) and
// deletes o.
struct cJSON;
rlhf_status rollout_samples_append(char **buf, size_t *len, struct cJSON *o, rlhf_err *err);

#endif
