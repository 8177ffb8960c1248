// GRPO and RLOO update math, as TRL's GRPOTrainer and RLOOTrainer compute it (trl/trainer/grpo_trainer.py
// _generate_and_score_completions and _compute_loss; trl/trainer/rloo_trainer.py), on flat arrays: N
// completions in groups of G consecutive rows (the G completions of one prompt), per-token arrays (B, T)
// with a float mask (1 real completion token, 0 padding / masked). Pure functions; the trainer
// (grpo_trainer*.c) owns models, rollouts and files. Values in masked slots are never read.
//
// Rewards follow TRL's None convention: NaN is "no reward for this sample". A completion whose every
// reward function gave NaN is unscorable: it is left out of the group baselines and its advantage is 0.
#ifndef RLHF_TRAIN_GRPO_MATH_H
#define RLHF_TRAIN_GRPO_MATH_H

#include <stdint.h>

#include "base/error.h"

// TRL adds 1e-4 to the standard deviation it divides the advantages by.
#define GRPO_ADV_STD_EPS 1e-4

typedef enum { GRPO_LOSS_GRPO, GRPO_LOSS_DR_GRPO, GRPO_LOSS_DAPO, GRPO_LOSS_BNPO } grpo_loss_type;
typedef enum { GRPO_SCALE_GROUP, GRPO_SCALE_BATCH, GRPO_SCALE_NONE } grpo_scale_rewards;
typedef enum { GRPO_IS_TOKEN, GRPO_IS_SEQUENCE } grpo_is_level;

// --loss_type / --scale_rewards / --importance_sampling_level; anything else is RLHF_EINPUT naming the flag.
rlhf_status grpo_loss_type_parse(const char *s, grpo_loss_type *out, rlhf_err *err);
rlhf_status grpo_scale_rewards_parse(const char *s, grpo_scale_rewards *out, rlhf_err *err);
rlhf_status grpo_is_level_parse(const char *s, grpo_is_level *out, rlhf_err *err);
const char *grpo_loss_type_name(grpo_loss_type t);

// ---- rewards --------------------------------------------------------------------------------------
// torch.nanmean / TRL's nanstd (Bessel-corrected; NaN with fewer than 2 values) over x[0], x[stride], ...
double grpo_nanmean(const float *x, int n, int stride);
double grpo_nanstd(const float *x, int n, int stride);

// rewards (N) = sum_k weights[k] * per_func[i, k] over the non-NaN entries (torch.nansum); NaN when every
// entry of the row is NaN (unscorable). per_func: (N, K).
void grpo_combine_rewards(float *rewards, const float *per_func, const float *weights, int N, int K);

typedef struct {
    double reward;         // reward: nanmean of the combined rewards
    double reward_std;     // reward_std: nanstd of the combined rewards
    double frac_zero_std;  // frac_reward_zero_std: share of rows whose group (or batch) std is ~0
} grpo_reward_stats;

// GRPO advantages (N) from the combined rewards (N, NaN = unscorable), groups of G:
// A = r - nanmean(group); divided by (std + 1e-4) with std the group's (group) or the batch's (batch)
// nanstd, not divided with none. Unscorable rows get 0. st may be NULL.
void grpo_advantages(float *adv, grpo_reward_stats *st, const float *rewards, int N, int G, grpo_scale_rewards scale);

// RLOO advantages (N). rewards are the combined rewards; reward_clip (lo, hi) clamps them when not NULL;
// with beta != 0, seq_kl (N) = sum over the completion of (old_logprob - ref_logprob) is subtracted times
// beta. The baseline of each completion is the mean reward of its scorable siblings (leave one out);
// normalize: (A - nanmean A) / (nanstd A + 1e-4). Unscorable rows get 0. st may be NULL.
void rloo_advantages(float *adv, grpo_reward_stats *st, const float *rewards, const float *seq_kl, float beta,
                     const float *reward_clip, int normalize, int N, int G);

// ---- the clipped surrogate --------------------------------------------------------------------------
typedef struct {
    grpo_loss_type loss_type;
    grpo_is_level is_level;
    float epsilon_low, epsilon_high;  // --epsilon, --epsilon_high (defaults to --epsilon)
    float beta;                       // per-token KL (k3) to the reference added to the loss; 0: none
    int max_completion_length;        // dr_grpo's constant normaliser
    double num_items;                 // dapo: real tokens of the whole generation batch (all processes) / processes
    double grad_accum;                // grpo / bnpo / dr_grpo divide the micro-batch loss by it
} grpo_loss_config;

// Sums and counts for the logged metrics, to be summed over processes and micro-batches before dividing
// (TRL's global_masked_mean): token level counts real tokens, sequence level counts rows.
typedef struct {
    double loss;                                // this micro-batch's loss as TRL returns it (normalisers included)
    double kl_sum, tok_count;                   // per-token KL over real tokens (beta != 0)
    double low_sum, high_sum, region_sum, clip_count;  // clip_ratio/{low,high,region}_mean numerators, denominator
} grpo_loss_stats;

// new_logprobs, old_logprobs, ref_logprobs (NULL when beta == 0), mask: (B, T); advantages: (B).
// old_logprobs may be new_logprobs itself (TRL's on-policy per_token_logps.detach(): ratio exactly 1).
void grpo_loss_forward(grpo_loss_stats *st, const float *new_logprobs, const float *old_logprobs,
                       const float *ref_logprobs, const float *advantages, const float *mask,
                       const grpo_loss_config *c, int B, int T);
// d loss / d new_logprobs ACCUMULATED (+=) into dlogprobs (B, T); 0 on masked slots. torch's conventions:
// min() splits the gradient evenly on ties, clamp() passes it at the bounds inclusive.
void grpo_loss_backward(float *dlogprobs, const float *new_logprobs, const float *old_logprobs,
                        const float *ref_logprobs, const float *advantages, const float *mask,
                        const grpo_loss_config *c, int B, int T);

// RLOO's sequence-level loss: ratio = exp(sum_t mask * (new - old)), loss = mean_b -min(ratio A, clip(ratio) A)
// / grad_accum. Stats: loss and the clip sums over rows (clip_count = B); kl is not part of it.
void rloo_loss_forward(grpo_loss_stats *st, const float *new_logprobs, const float *old_logprobs,
                       const float *advantages, const float *mask, float epsilon_low, float epsilon_high,
                       double grad_accum, int B, int T);
void rloo_loss_backward(float *dlogprobs, const float *new_logprobs, const float *old_logprobs,
                        const float *advantages, const float *mask, float epsilon_low, float epsilon_high,
                        double grad_accum, int B, int T);

#endif
