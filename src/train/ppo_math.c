// PPO update math on (B, T) response arrays: masks, rewards, GAE, whitening, the clipped losses and
// their gradients, entropy, rollout metrics and the KL controller. The formulas are TRL PPOTrainer's
// (see ppo_math.h for the two places where we deliberately differ). Sums accumulate in double so
// the result does not depend on B*T, and padded slots are skipped rather than multiplied by 0.
#include "train/ppo_math.h"

#include <math.h>
#include <string.h>

// ---- masked statistics -------------------------------------------------------------------------

static double mask_sum(const float *mask, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m += mask[i];
    return m;
}

double ppo_masked_mean(const float *values, const float *mask, int64_t n) {
    double s = 0, m = 0;
    for (int64_t i = 0; i < n; i++) {
        if (mask[i] == 0) continue;
        s += (double)values[i] * mask[i];
        m += mask[i];
    }
    return m == 0 ? NAN : s / m;
}

rlhf_status ppo_masked_var(double *out, const float *values, const float *mask, int64_t n, int unbiased,
                           const char *what, rlhf_err *err) {
    double m = mask_sum(mask, n);
    if (m == 0 || (unbiased && m <= 1))
        return rlhf_fail(err, RLHF_EINPUT,
                         "%s: variance over %g real token(s) is undefined (need at least 2); increase the "
                         "mini-batch size or gradient_accumulation_steps",
                         what, m);
    double mean = ppo_masked_mean(values, mask, n);
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        if (mask[i] == 0) continue;
        double d = values[i] - mean;
        s += d * d * mask[i];
    }
    double var = s / m;
    if (unbiased) var *= m / (m - 1);
    *out = var;
    return RLHF_OK;
}

rlhf_status ppo_masked_whiten(float *out, const float *values, const float *mask, int64_t n, int shift_mean,
                              const char *what, rlhf_err *err) {
    double var;
    RLHF_TRY(ppo_masked_var(&var, values, mask, n, 1, what, err));
    double mean = ppo_masked_mean(values, mask, n);
    double rstd = 1.0 / sqrt(var + PPO_WHITEN_EPS);
    for (int64_t i = 0; i < n; i++) {
        if (mask[i] == 0) {
            out[i] = 0;
            continue;
        }
        double w = (values[i] - mean) * rstd;
        if (!shift_mean) w += mean;
        out[i] = (float)w;
    }
    return RLHF_OK;
}

// ---- response post-processing ------------------------------------------------------------------

void ppo_truncate_responses(float *mask, int *lengths, int *has_stop, const int32_t *responses,
                            const int *n_generated, int stop_token_id, int B, int T) {
    for (int b = 0; b < B; b++) {
        const int32_t *r = responses + (int64_t)b * T;
        int n = n_generated ? n_generated[b] : T;
        if (n > T) n = T;
        if (n < 0) n = 0;
        int len = n, stop = 0;
        if (stop_token_id >= 0) {
            for (int t = 0; t < n; t++) {
                if (r[t] == stop_token_id) {
                    len = t + 1;  // the stop token stays in the response
                    stop = 1;
                    break;
                }
            }
        }
        for (int t = 0; t < T; t++) mask[(int64_t)b * T + t] = t < len ? 1.0f : 0.0f;
        lengths[b] = len;
        if (has_stop) has_stop[b] = stop;
    }
}

void ppo_missing_eos_penalty(float *scores, const int *has_stop, float penalty, int B) {
    for (int b = 0; b < B; b++)
        if (!has_stop[b]) scores[b] -= penalty;
}

// ---- rewards -----------------------------------------------------------------------------------

rlhf_status ppo_kl_estimator_parse(const char *name, ppo_kl_estimator *out, rlhf_err *err) {
    if (strcmp(name, "k1") == 0) *out = PPO_KL_K1;
    else if (strcmp(name, "k3") == 0) *out = PPO_KL_K3;
    else return rlhf_fail(err, RLHF_EINPUT, "--kl_estimator: expected k1 or k3, got '%s'", name);
    return RLHF_OK;
}

void ppo_compute_rewards(float *rewards, float *kl, float *non_score_reward, const float *logprobs,
                         const float *ref_logprobs, const float *scores, const float *mask, const int *lengths,
                         float kl_coef, ppo_kl_estimator estimator, int B, int T) {
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            int64_t i = (int64_t)b * T + t;
            if (mask[i] == 0) {
                kl[i] = non_score_reward[i] = rewards[i] = 0;
                continue;
            }
            double logr = (double)ref_logprobs[i] - logprobs[i];
            double k = estimator == PPO_KL_K1 ? -logr : expm1(logr) - logr;
            kl[i] = (float)k;
            non_score_reward[i] = (float)(-(double)kl_coef * k);
            rewards[i] = non_score_reward[i];
        }
        // The score rewards the whole response, so it is the reward of its last action (TRL issue 3750:
        // TRL puts it one slot later, on padding).
        if (lengths[b] > 0) rewards[(int64_t)b * T + lengths[b] - 1] += scores[b];
    }
}

rlhf_status ppo_whiten_rewards(float *rewards, const float *mask, int B, int T, rlhf_err *err) {
    return ppo_masked_whiten(rewards, rewards, mask, (int64_t)B * T, 0, "whiten_rewards", err);
}

// ---- advantages --------------------------------------------------------------------------------

void ppo_gae(float *advantages, float *returns, const float *rewards, const float *values, const float *mask,
             float gamma, float lam, int B, int T) {
    for (int b = 0; b < B; b++) {
        const int64_t o = (int64_t)b * T;
        double lastgaelam = 0, nextvalue = 0;
        for (int t = T - 1; t >= 0; t--) {
            int real = mask[o + t] != 0;
            double v = real ? values[o + t] : 0.0;
            double r = real ? rewards[o + t] : 0.0;
            double delta = r + (double)gamma * nextvalue - v;
            lastgaelam = delta + (double)gamma * lam * lastgaelam;
            advantages[o + t] = real ? (float)lastgaelam : 0.0f;
            returns[o + t] = real ? (float)(lastgaelam + v) : 0.0f;
            nextvalue = v;
        }
    }
}

rlhf_status ppo_whiten_advantages(float *advantages, const float *mask, int B, int T, rlhf_err *err) {
    return ppo_masked_whiten(advantages, advantages, mask, (int64_t)B * T, 1, "advantages", err);
}

// ---- the clipped loss --------------------------------------------------------------------------

static double clampd(double x, double lo, double hi) { return x < lo ? lo : (x > hi ? hi : x); }

rlhf_status ppo_loss_forward(ppo_loss_stats *st, const float *new_logprobs, const float *new_values,
                             const float *old_logprobs, const float *old_values, const float *advantages,
                             const float *returns, const float *mask, const ppo_loss_config *c, int B, int T,
                             rlhf_err *err) {
    memset(st, 0, sizeof *st);
    const int64_t n = (int64_t)B * T;
    double m = 0, pg = 0, vf = 0, pgc = 0, vfc = 0, akl = 0, ratio_sum = 0;
    for (int64_t i = 0; i < n; i++) {
        if (mask[i] == 0) continue;
        double w = mask[i];
        m += w;
        double diff = (double)new_logprobs[i] - old_logprobs[i];
        double ratio = exp(diff);
        double adv = advantages[i];
        double pg1 = -adv * ratio;
        double pg2 = -adv * clampd(ratio, 1.0 - c->cliprange, 1.0 + c->cliprange);
        pg += w * (pg1 > pg2 ? pg1 : pg2);
        pgc += w * (pg2 > pg1);
        double v = new_values[i], ret = returns[i];
        double vc = clampd(v, (double)old_values[i] - c->cliprange_value, (double)old_values[i] + c->cliprange_value);
        double vf1 = (v - ret) * (v - ret), vf2 = (vc - ret) * (vc - ret);
        vf += w * (vf1 > vf2 ? vf1 : vf2);
        vfc += w * (vf2 > vf1);
        akl += w * diff * diff;
        ratio_sum += w * ratio;
    }
    if (m == 0) return rlhf_fail(err, RLHF_EINPUT, "ppo loss: the mini-batch has no real response token");
    st->pg_loss = pg / m;
    st->vf_loss = 0.5 * vf / m;
    st->loss = st->pg_loss + (double)c->vf_coef * st->vf_loss;
    st->pg_clipfrac = pgc / m;
    st->vf_clipfrac = vfc / m;
    st->approxkl = 0.5 * akl / m;
    st->ratio_mean = ratio_sum / m;
    return RLHF_OK;
}

// Weights torch.max(a, b) gives a's and b's gradients: 1/0, 0/1, or 1/2 each on a tie.
static void max_grad_weights(double a, double b, double *wa, double *wb) {
    if (a > b) *wa = 1, *wb = 0;
    else if (a < b) *wa = 0, *wb = 1;
    else *wa = *wb = 0.5;
}

void ppo_loss_backward(float *dlogprobs, float *dvalues, const float *new_logprobs, const float *new_values,
                       const float *old_logprobs, const float *old_values, const float *advantages,
                       const float *returns, const float *mask, const ppo_loss_config *c, float grad_scale,
                       int B, int T) {
    const int64_t n = (int64_t)B * T;
    double m = mask_sum(mask, n);
    if (m == 0) return;
    const double lo = 1.0 - c->cliprange, hi = 1.0 + c->cliprange;
    for (int64_t i = 0; i < n; i++) {
        if (mask[i] == 0) continue;
        double w = mask[i] * (double)grad_scale / m;
        if (dlogprobs) {
            double ratio = exp((double)new_logprobs[i] - old_logprobs[i]);
            double adv = advantages[i];
            double pg1 = -adv * ratio, pg2 = -adv * clampd(ratio, lo, hi);
            double w1, w2;
            max_grad_weights(pg1, pg2, &w1, &w2);
            double dclip = (ratio >= lo && ratio <= hi) ? 1.0 : 0.0;  // torch clamp: inclusive bounds
            // d ratio / d logprob = ratio
            dlogprobs[i] += (float)(w * (w1 * -adv * ratio + w2 * -adv * dclip * ratio));
        }
        if (dvalues) {
            double v = new_values[i], ret = returns[i];
            double vlo = (double)old_values[i] - c->cliprange_value, vhi = (double)old_values[i] + c->cliprange_value;
            double vc = clampd(v, vlo, vhi);
            double vf1 = (v - ret) * (v - ret), vf2 = (vc - ret) * (vc - ret);
            double w1, w2;
            max_grad_weights(vf1, vf2, &w1, &w2);
            double dclip = (v >= vlo && v <= vhi) ? 1.0 : 0.0;
            double g = w1 * 2 * (v - ret) + w2 * 2 * (vc - ret) * dclip;
            dvalues[i] += (float)(w * (double)c->vf_coef * 0.5 * g);
        }
    }
}

// ---- entropy -----------------------------------------------------------------------------------

void ppo_entropy_from_logits(float *out, const float *logits, float temperature, int N, int V) {
    const double inv_t = 1.0 / temperature;
    for (int n = 0; n < N; n++) {
        const float *z = logits + (int64_t)n * V;
        double mx = -INFINITY;
        for (int v = 0; v < V; v++)
            if (z[v] * inv_t > mx) mx = z[v] * inv_t;
        double se = 0, sez = 0;
        for (int v = 0; v < V; v++) {
            double zv = z[v] * inv_t;
            double e = exp(zv - mx);
            se += e;
            sez += e * zv;
        }
        // logsumexp(z) - sum softmax(z) * z
        out[n] = (float)(mx + log(se) - sez / se);
    }
}

// ---- rollout metrics ---------------------------------------------------------------------------

void ppo_rollout_stats_compute(ppo_rollout_stats *s, const float *kl, const float *non_score_reward,
                               const float *logprobs, const float *scores, const float *mask,
                               const int *has_stop, int B, int T) {
    memset(s, 0, sizeof *s);
    if (B <= 0) return;
    double skl = 0, sent = 0, snsr = 0, ssc = 0;
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            int64_t i = (int64_t)b * T + t;
            if (mask[i] == 0) continue;
            skl += kl[i];
            sent += -(double)logprobs[i];
            snsr += non_score_reward[i];
        }
        ssc += scores[b];
        if (has_stop) s->num_stop_tokens += has_stop[b] != 0;
    }
    s->kl = skl / B;
    s->entropy = sent / B;
    s->non_score_reward = snsr / B;
    s->scores = ssc / B;
    s->rlhf_reward = s->non_score_reward + s->scores;
}

// ---- KL controller -----------------------------------------------------------------------------

rlhf_status ppo_kl_controller_init(ppo_kl_controller *c, double init_kl_coef, int adaptive, double target,
                                   double horizon, rlhf_err *err) {
    if (!(init_kl_coef >= 0) || !isfinite(init_kl_coef))
        return rlhf_fail(err, RLHF_EINPUT, "--kl_coef: expected a finite value >= 0, got %g", init_kl_coef);
    if (adaptive && !(target > 0))
        return rlhf_fail(err, RLHF_EINPUT, "adaptive KL: target must be > 0, got %g", target);
    if (adaptive && !(horizon > 0))
        return rlhf_fail(err, RLHF_EINPUT, "adaptive KL: horizon must be > 0, got %g", horizon);
    c->value = init_kl_coef;
    c->target = target;
    c->horizon = horizon;
    c->adaptive = adaptive;
    return RLHF_OK;
}

void ppo_kl_controller_update(ppo_kl_controller *c, double current_kl, int n_steps) {
    // A non-finite KL (a diverged update) would poison the coefficient for the rest of the run.
    if (!c->adaptive || !isfinite(current_kl)) return;
    double e = clampd(current_kl / c->target - 1.0, -PPO_KL_CTL_CLIP, PPO_KL_CTL_CLIP);
    c->value *= 1.0 + e * n_steps / c->horizon;
}
