// PPO update math, as TRL's PPOTrainer computes it (trl/experimental/ppo/ppo_trainer.py, formerly
// trl/trainer/ppo_trainer.py), on flat (B, T) response arrays: B responses of T slots each, row-major.
// Which slots are real response tokens is said by a float mask (1 real, 0 padding) built once by
// ppo_truncate_responses from the sampled ids and the stop token; padding is never recognised by
// comparing ids with a pad id (GPT-2, Pythia and Llama have none, and padding with EOS would hide the
// EOS the policy really emitted). Values in padded slots of every input are ignored (they may be
// garbage or NaN), and every output is 0 there.
//
// Differences from TRL, each deliberate:
// - The score is added at the response's LAST REAL token. TRL adds it at `sequence_length + 1`, one
//   slot after the last real token (a padding slot whose value it keeps alive with `padding_mask_p1`),
//   which shifts the terminal reward off the action that earned it (TRL issue 3750). Here the value
//   function, the value loss and reward whitening all use the same real-token mask, so the last real
//   token is terminal: GAE's delta there is r_T - V_T.
// - Means reported per token (approxkl, ratio) are over real tokens; TRL averages over all B*T slots,
//   padding included (where its diff is 0 and its ratio 1). objective/entropy sums -logprob over real
//   tokens only (TRL's sum also adds -INVALID_LOGPROB = -1 per padded slot).
#ifndef RLHF_TRAIN_PPO_MATH_H
#define RLHF_TRAIN_PPO_MATH_H

#include <stdint.h>

#include "base/error.h"

// masked_whiten's epsilon inside rsqrt(var + eps) (TRL utils.masked_whiten).
#define PPO_WHITEN_EPS 1e-8
// AdaptiveKLController clips the proportional error to +-0.2 (Ziegler et al. 2019, TRL utils).
#define PPO_KL_CTL_CLIP 0.2

// ---- masked statistics (double accumulation) ---------------------------------------------------
// values, mask: (n). mean = sum(values * mask) / sum(mask); slots with mask 0 are skipped, not
// multiplied, so non-finite padding cannot leak in. Returns NaN when sum(mask) == 0.
double ppo_masked_mean(const float *values, const float *mask, int64_t n);
// Variance about the masked mean; unbiased multiplies by m / (m - 1) (Bessel), m = sum(mask), as TRL.
// Fails (RLHF_EINPUT) when m == 0, or m <= 1 with unbiased, naming `what`.
rlhf_status ppo_masked_var(double *out, const float *values, const float *mask, int64_t n, int unbiased,
                           const char *what, rlhf_err *err);
// out = (values - mean) * rsqrt(var_unbiased + 1e-8) (+ mean when !shift_mean) on real slots, 0 on
// padding. out may alias values.
rlhf_status ppo_masked_whiten(float *out, const float *values, const float *mask, int64_t n, int shift_mean,
                              const char *what, rlhf_err *err);

// ---- response post-processing ------------------------------------------------------------------
// responses: (B, T) sampled ids. n_generated: (B) how many slots of each row were actually sampled
// (a row that finished early holds filler after that; NULL = all T). stop_token_id < 0: no stop token.
// A response is cut after its FIRST stop token, which stays part of the response (its log-prob is
// trained and the score is read there). Outputs: mask (B, T) 1 on real slots; lengths (B) real token
// count; has_stop (B) 1 when the kept response ends with the stop token (NULL if not needed).
void ppo_truncate_responses(float *mask, int *lengths, int *has_stop, const int32_t *responses,
                            const int *n_generated, int stop_token_id, int B, int T);

// scores (B) -= penalty where has_stop is 0 (TRL missing_eos_penalty; penalty 0 does nothing).
void ppo_missing_eos_penalty(float *scores, const int *has_stop, float penalty, int B);

// ---- rewards -----------------------------------------------------------------------------------
typedef enum { PPO_KL_K1, PPO_KL_K3 } ppo_kl_estimator;
// "k1" / "k3" (--kl_estimator); anything else is RLHF_EINPUT naming the flag.
rlhf_status ppo_kl_estimator_parse(const char *name, ppo_kl_estimator *out, rlhf_err *err);

// Per-token KL estimate of the policy from the reference (Schulman, "Approximating KL divergence"):
// logr = ref_logprob - logprob; k1 = -logr; k3 = (exp(logr) - 1) - logr.
// kl, non_score_reward, rewards: (B, T) outputs; logprobs, ref_logprobs, mask: (B, T); scores,
// lengths: (B). non_score_reward = -kl_coef * kl; rewards = non_score_reward plus scores[b] at slot
// lengths[b] - 1, the last real token (rows of length 0 get no score: there is no action to credit).
void ppo_compute_rewards(float *rewards, float *kl, float *non_score_reward, const float *logprobs,
                         const float *ref_logprobs, const float *scores, const float *mask, const int *lengths,
                         float kl_coef, ppo_kl_estimator estimator, int B, int T);
// --whiten_rewards: masked_whiten(rewards, shift_mean=False) over real tokens, padding 0. In place.
rlhf_status ppo_whiten_rewards(float *rewards, const float *mask, int B, int T, rlhf_err *err);

// ---- advantages --------------------------------------------------------------------------------
// Generalised advantage estimation (Schulman et al. 2016) backwards over the T slots of each row:
// delta_t = r_t + gamma * V_{t+1} - V_t; A_t = delta_t + gamma * lam * A_{t+1}; returns = A + V.
// Values in padded slots (and past the end) count as 0, so the last real token is terminal.
// advantages, returns: (B, T) outputs, raw (not whitened); rewards, values, mask: (B, T).
void ppo_gae(float *advantages, float *returns, const float *rewards, const float *values, const float *mask,
             float gamma, float lam, int B, int T);
// Advantages whitened over real tokens (shift_mean=True), padding 0. In place.
rlhf_status ppo_whiten_advantages(float *advantages, const float *mask, int B, int T, rlhf_err *err);

// ---- the clipped PPO loss of one (micro-)batch ---------------------------------------------------
typedef struct {
    double loss;         // pg_loss + vf_coef * vf_loss
    double pg_loss;      // loss/policy_avg: masked mean of max(-A r, -A clip(r, 1-eps, 1+eps))
    double vf_loss;      // loss/value_avg: 0.5 * masked mean of max((v - R)^2, (clip(v) - R)^2)
    double pg_clipfrac;  // policy/clipfrac_avg: masked mean of [clipped pg term > unclipped]
    double vf_clipfrac;  // val/clipfrac_avg: masked mean of [clipped vf term > unclipped]
    double approxkl;     // policy/approxkl_avg: 0.5 * masked mean of (logprob - old_logprob)^2
    double ratio_mean;   // val/ratio: masked mean of exp(logprob - old_logprob)
} ppo_loss_stats;

typedef struct {
    float cliprange;        // --cliprange (0.2)
    float cliprange_value;  // --cliprange_value (0.2)
    float vf_coef;          // --vf_coef (0.1)
} ppo_loss_config;

// All arrays (B, T). new_logprobs / new_values: from the model being trained (values are the value
// head's outputs at each response slot); old_logprobs, old_values, advantages (whitened), returns:
// from the rollout. Fails (RLHF_EINPUT) when the mask has no real token.
rlhf_status ppo_loss_forward(ppo_loss_stats *stats, const float *new_logprobs, const float *new_values,
                             const float *old_logprobs, const float *old_values, const float *advantages,
                             const float *returns, const float *mask, const ppo_loss_config *c, int B, int T,
                             rlhf_err *err);
// d(grad_scale * loss)/d new_logprobs and /d new_values, ACCUMULATED (+=) into dlogprobs, dvalues (B, T)
// (either may be NULL); 0 on padding. grad_scale is 1 / gradient_accumulation_steps when micro-batch
// gradients are summed into one optimizer step (accelerate scales each micro-batch loss that way). torch's subgradient conventions are kept so the numbers equal
// autograd's: max() splits the gradient evenly on ties, clamp() passes it at the bounds inclusive.
void ppo_loss_backward(float *dlogprobs, float *dvalues, const float *new_logprobs, const float *new_values,
                       const float *old_logprobs, const float *old_values, const float *advantages,
                       const float *returns, const float *mask, const ppo_loss_config *c, float grad_scale,
                       int B, int T);

// ---- entropy -----------------------------------------------------------------------------------
// out (N) = entropy of softmax(logits / temperature) per row: logsumexp(z) - sum(softmax(z) * z), as
// TRL computes policy/entropy_avg from the temperature-scaled logits (TRL divides by temperature +
// 1e-7; pass that to match it to the last bit). logits: (N, V).
void ppo_entropy_from_logits(float *out, const float *logits, float temperature, int N, int V);

// ---- rollout metrics (TRL's objective/* columns) -------------------------------------------------
typedef struct {
    double kl;                // objective/kl: mean over rows of sum_t kl
    double entropy;           // objective/entropy: mean over rows of sum_t -logprob (real tokens)
    double non_score_reward;  // objective/non_score_reward: mean over rows of sum_t non_score_reward
    double scores;            // objective/scores: mean score (after the missing-EOS penalty)
    double rlhf_reward;       // objective/rlhf_reward: non_score_reward + scores
    int num_stop_tokens;      // val/num_eos_tokens: responses that contain the stop token
} ppo_rollout_stats;
void ppo_rollout_stats_compute(ppo_rollout_stats *s, const float *kl, const float *non_score_reward,
                               const float *logprobs, const float *scores, const float *mask,
                               const int *has_stop, int B, int T);

// ---- KL coefficient control --------------------------------------------------------------------
// Fixed (adaptive = 0) or TRL's AdaptiveKLController (Ziegler et al. 2019): after each update,
// e = clip(current_kl / target - 1, -0.2, 0.2); value *= 1 + e * n_steps / horizon.
typedef struct {
    double value;    // the kl_coef in use
    double target;   // target KL (adaptive only)
    double horizon;  // horizon in episodes (adaptive only)
    int adaptive;
} ppo_kl_controller;
rlhf_status ppo_kl_controller_init(ppo_kl_controller *c, double init_kl_coef, int adaptive, double target,
                                   double horizon, rlhf_err *err);
// n_steps: episodes in the update (TRL passes the batch size).
void ppo_kl_controller_update(ppo_kl_controller *c, double current_kl, int n_steps);

#endif
