// GRPO / RLOO math (see grpo_math.h): reward combination, group advantages, the clipped surrogate of every
// --loss_type at token or sequence level, RLOO's leave-one-out baseline and sequence loss. Everything
// accumulates in double; masked slots are skipped, never multiplied by 0, so garbage there cannot leak.
#include "train/grpo_math.h"

#include <math.h>
#include <string.h>

rlhf_status grpo_loss_type_parse(const char *s, grpo_loss_type *out, rlhf_err *err) {
    if (!strcmp(s, "grpo")) *out = GRPO_LOSS_GRPO;
    else if (!strcmp(s, "dr_grpo")) *out = GRPO_LOSS_DR_GRPO;
    else if (!strcmp(s, "dapo")) *out = GRPO_LOSS_DAPO;
    else if (!strcmp(s, "bnpo")) *out = GRPO_LOSS_BNPO;
    else return rlhf_fail(err, RLHF_EINPUT, "--loss_type: expected grpo, dr_grpo, dapo or bnpo, got '%s'", s);
    return RLHF_OK;
}

const char *grpo_loss_type_name(grpo_loss_type t) {
    static const char *const names[] = {"grpo", "dr_grpo", "dapo", "bnpo"};
    return names[t];
}

rlhf_status grpo_scale_rewards_parse(const char *s, grpo_scale_rewards *out, rlhf_err *err) {
    // TRL also accepts the booleans of its older versions: True = group, False = none.
    if (!strcmp(s, "group") || !strcmp(s, "true")) *out = GRPO_SCALE_GROUP;
    else if (!strcmp(s, "batch")) *out = GRPO_SCALE_BATCH;
    else if (!strcmp(s, "none") || !strcmp(s, "false")) *out = GRPO_SCALE_NONE;
    else return rlhf_fail(err, RLHF_EINPUT, "--scale_rewards: expected group, batch or none, got '%s'", s);
    return RLHF_OK;
}

rlhf_status grpo_is_level_parse(const char *s, grpo_is_level *out, rlhf_err *err) {
    if (!strcmp(s, "token")) *out = GRPO_IS_TOKEN;
    else if (!strcmp(s, "sequence")) *out = GRPO_IS_SEQUENCE;
    else return rlhf_fail(err, RLHF_EINPUT, "--importance_sampling_level: expected token or sequence, got '%s'", s);
    return RLHF_OK;
}

// ---- rewards --------------------------------------------------------------------------------------

double grpo_nanmean(const float *x, int n, int stride) {
    double s = 0;
    int c = 0;
    for (int i = 0; i < n; i++) {
        float v = x[(int64_t)i * stride];
        if (isnan(v)) continue;
        s += v;
        c++;
    }
    return c ? s / c : NAN;
}

double grpo_nanstd(const float *x, int n, int stride) {
    double mean = grpo_nanmean(x, n, stride), s = 0;
    int c = 0;
    for (int i = 0; i < n; i++) {
        float v = x[(int64_t)i * stride];
        if (isnan(v)) continue;
        s += (v - mean) * (v - mean);
        c++;
    }
    if (c < 2) return NAN;
    return sqrt(s / c * ((double)c / (c - 1)));
}

void grpo_combine_rewards(float *rewards, const float *per_func, const float *weights, int N, int K) {
    for (int i = 0; i < N; i++) {
        double s = 0;
        int any = 0;
        for (int k = 0; k < K; k++) {
            float v = per_func[(int64_t)i * K + k];
            if (isnan(v)) continue;
            s += (double)v * weights[k];
            any = 1;
        }
        rewards[i] = any ? (float)s : NAN;
    }
}

// torch.isclose(std, 0) with its default atol 1e-8 (NaN is not close).
static int std_is_zero(double std) { return fabs(std) <= 1e-8; }

void grpo_advantages(float *adv, grpo_reward_stats *st, const float *rewards, int N, int G, grpo_scale_rewards scale) {
    double batch_std = grpo_nanstd(rewards, N, 1);
    int zero = 0;
    for (int g0 = 0; g0 < N; g0 += G) {
        double mean = grpo_nanmean(rewards + g0, G, 1);
        double std = scale == GRPO_SCALE_BATCH ? batch_std : grpo_nanstd(rewards + g0, G, 1);
        for (int i = g0; i < g0 + G; i++) {
            double a = (double)rewards[i] - mean;
            if (scale != GRPO_SCALE_NONE) a /= std + GRPO_ADV_STD_EPS;
            adv[i] = isnan(a) ? 0.0f : (float)a;  // unscorable rows (and NaN group stds) carry no signal
            zero += std_is_zero(std);
        }
    }
    if (st) {
        st->reward = grpo_nanmean(rewards, N, 1);
        st->reward_std = batch_std;
        st->frac_zero_std = N ? (double)zero / N : NAN;
    }
}

void rloo_advantages(float *adv, grpo_reward_stats *st, const float *rewards, const float *seq_kl, float beta,
                     const float *reward_clip, int normalize, int N, int G) {
    // adv first holds the adjusted rewards, then the advantages (NaN for unscorable rows until the end).
    for (int i = 0; i < N; i++) {
        double r = rewards[i];
        if (reward_clip && !isnan(r)) r = r < reward_clip[0] ? reward_clip[0] : (r > reward_clip[1] ? reward_clip[1] : r);
        if (beta != 0.0f) r -= (double)beta * seq_kl[i];
        adv[i] = (float)r;
    }
    int zero = 0;
    for (int g0 = 0; g0 < N; g0 += G) {
        double sum = 0;
        int count = 0;
        for (int i = g0; i < g0 + G; i++)
            if (!isnan(adv[i])) sum += adv[i], count++;
        zero += G * std_is_zero(grpo_nanstd(adv + g0, G, 1));
        for (int i = g0; i < g0 + G; i++) {
            // baseline = the mean of the other scorable completions; one scorable completion: 0/0 = NaN
            double base = G > 1 ? (sum - adv[i]) / (count - 1) : NAN;
            adv[i] = G > 1 ? (float)((double)adv[i] - base) : 0.0f;
        }
    }
    if (normalize) {
        double mean = grpo_nanmean(adv, N, 1), std = grpo_nanstd(adv, N, 1);
        for (int i = 0; i < N; i++) adv[i] = (float)(((double)adv[i] - mean) / (std + GRPO_ADV_STD_EPS));
    }
    for (int i = 0; i < N; i++)
        if (!isfinite(adv[i])) adv[i] = 0.0f;
    if (st) {
        st->reward = grpo_nanmean(rewards, N, 1);
        st->reward_std = grpo_nanstd(rewards, N, 1);
        st->frac_zero_std = N ? (double)zero / N : NAN;
    }
}

// ---- the clipped surrogate --------------------------------------------------------------------------

static double clampd(double x, double lo, double hi) { return x < lo ? lo : (x > hi ? hi : x); }

// -min(c1 A, clamp(c1) A) and its derivative with respect to log c1 (torch's tie and clamp conventions).
static double surrogate(double lw, double A, double lo, double hi, double *dlw) {
    double c1 = exp(lw), c2 = clampd(c1, lo, hi);
    double l1 = c1 * A, l2 = c2 * A;
    double inside = c1 >= lo && c1 <= hi ? 1.0 : 0.0;
    double d1 = l1 < l2 ? 1.0 : (l1 == l2 ? 0.5 : 0.0);  // share of the gradient through l1
    if (dlw) *dlw = -A * (d1 + (1.0 - d1) * inside) * c1;
    return -(l1 < l2 ? l1 : l2);
}

static double row_mask_sum(const float *mask, int T) {
    double m = 0;
    for (int t = 0; t < T; t++) m += mask[t];
    return m;
}

// d loss / d per_token_loss at a real token of row b (before the mask factor).
static double token_weight(const grpo_loss_config *c, double row_len, double total, int B) {
    switch (c->loss_type) {
    case GRPO_LOSS_GRPO: return 1.0 / ((row_len > 1 ? row_len : 1.0) * B * c->grad_accum);
    case GRPO_LOSS_BNPO: return 1.0 / ((total > 1 ? total : 1.0) * c->grad_accum);
    case GRPO_LOSS_DR_GRPO: return 1.0 / ((double)B * c->max_completion_length * c->grad_accum);
    case GRPO_LOSS_DAPO: return 1.0 / c->num_items;
    }
    return 0;
}

// Sequence level: the mean log-ratio over the row's real tokens (clamped count, as TRL's clamp(min=1)).
static double seq_log_ratio(const float *nl, const float *ol, const float *m, int T, double *len) {
    double s = 0;
    *len = 0;
    for (int t = 0; t < T; t++) {
        if (m[t] == 0) continue;
        s += ((double)nl[t] - ol[t]) * m[t];
        *len += m[t];
    }
    return s / (*len > 1 ? *len : 1.0);
}

void grpo_loss_forward(grpo_loss_stats *st, const float *new_logprobs, const float *old_logprobs,
                       const float *ref_logprobs, const float *advantages, const float *mask,
                       const grpo_loss_config *c, int B, int T) {
    memset(st, 0, sizeof *st);
    const double lo = 1.0 - c->epsilon_low, hi = 1.0 + c->epsilon_high;
    const double total = row_mask_sum(mask, B * T);
    for (int b = 0; b < B; b++) {
        const float *nl = new_logprobs + (int64_t)b * T, *ol = old_logprobs + (int64_t)b * T;
        const float *m = mask + (int64_t)b * T;
        const double A = advantages[b];
        double len = row_mask_sum(m, T);
        const double w = token_weight(c, len, total, B);
        double seq_loss = 0, seq_c1 = 0;
        if (c->is_level == GRPO_IS_SEQUENCE) {
            double lw = seq_log_ratio(nl, ol, m, T, &len);
            seq_loss = surrogate(lw, A, lo, hi, NULL);
            seq_c1 = exp(lw);
            int low = seq_c1 < lo && A < 0, high = seq_c1 > hi && A > 0;
            st->low_sum += low;
            st->high_sum += high;
            st->region_sum += low || high;
            st->clip_count += 1;
        }
        for (int t = 0; t < T; t++) {
            if (m[t] == 0) continue;
            double ptl;
            if (c->is_level == GRPO_IS_TOKEN) {
                double lw = (double)nl[t] - ol[t];
                ptl = surrogate(lw, A, lo, hi, NULL);
                double c1 = exp(lw);
                int low = c1 < lo && A < 0, high = c1 > hi && A > 0;
                st->low_sum += m[t] * low;
                st->high_sum += m[t] * high;
                st->region_sum += m[t] * (low || high);
                st->clip_count += m[t];
            } else {
                ptl = seq_loss;
            }
            if (c->beta != 0.0f) {
                double d = (double)ref_logprobs[(int64_t)b * T + t] - nl[t];
                double kl = exp(d) - d - 1.0;
                ptl += (double)c->beta * kl;
                st->kl_sum += m[t] * kl;
            }
            st->tok_count += m[t];
            st->loss += ptl * m[t] * w;
        }
    }
}

void grpo_loss_backward(float *dlogprobs, const float *new_logprobs, const float *old_logprobs,
                        const float *ref_logprobs, const float *advantages, const float *mask,
                        const grpo_loss_config *c, int B, int T) {
    const double lo = 1.0 - c->epsilon_low, hi = 1.0 + c->epsilon_high;
    const double total = row_mask_sum(mask, B * T);
    for (int b = 0; b < B; b++) {
        const int64_t o = (int64_t)b * T;
        const float *nl = new_logprobs + o, *ol = old_logprobs + o, *m = mask + o;
        const double A = advantages[b];
        double len = row_mask_sum(m, T);
        const double w = token_weight(c, len, total, B);
        double g_seq = 0, len_c = 1;
        if (c->is_level == GRPO_IS_SEQUENCE) {
            double dlw;
            surrogate(seq_log_ratio(nl, ol, m, T, &len), A, lo, hi, &dlw);
            // every real token carries the row's loss: d loss / d lw = dlw * sum_t w m_t
            g_seq = dlw * w * len;
            len_c = len > 1 ? len : 1.0;
        }
        for (int t = 0; t < T; t++) {
            if (m[t] == 0) continue;
            double g;
            if (c->is_level == GRPO_IS_TOKEN) {
                double dlw;
                surrogate((double)nl[t] - ol[t], A, lo, hi, &dlw);
                g = w * m[t] * dlw;
            } else {
                g = g_seq * m[t] / len_c;
            }
            if (c->beta != 0.0f) {
                double d = (double)ref_logprobs[o + t] - nl[t];
                g += w * m[t] * (double)c->beta * (1.0 - exp(d));
            }
            dlogprobs[o + t] += (float)g;
        }
    }
}

static double seq_logprob_diff(const float *nl, const float *ol, const float *m, int T) {
    double s = 0;
    for (int t = 0; t < T; t++)
        if (m[t] != 0) s += ((double)nl[t] - ol[t]) * m[t];
    return s;
}

void rloo_loss_forward(grpo_loss_stats *st, const float *new_logprobs, const float *old_logprobs,
                       const float *advantages, const float *mask, float epsilon_low, float epsilon_high,
                       double grad_accum, int B, int T) {
    memset(st, 0, sizeof *st);
    const double lo = 1.0 - epsilon_low, hi = 1.0 + epsilon_high;
    for (int b = 0; b < B; b++) {
        const int64_t o = (int64_t)b * T;
        double lw = seq_logprob_diff(new_logprobs + o, old_logprobs + o, mask + o, T), A = advantages[b];
        st->loss += surrogate(lw, A, lo, hi, NULL) / ((double)B * grad_accum);
        double c1 = exp(lw);
        int low = c1 < lo && A < 0, high = c1 > hi && A > 0;
        st->low_sum += low;
        st->high_sum += high;
        st->region_sum += low || high;
        st->clip_count += 1;
        st->tok_count += row_mask_sum(mask + o, T);
    }
}

void rloo_loss_backward(float *dlogprobs, const float *new_logprobs, const float *old_logprobs,
                        const float *advantages, const float *mask, float epsilon_low, float epsilon_high,
                        double grad_accum, int B, int T) {
    const double lo = 1.0 - epsilon_low, hi = 1.0 + epsilon_high;
    for (int b = 0; b < B; b++) {
        const int64_t o = (int64_t)b * T;
        double dlw;
        surrogate(seq_logprob_diff(new_logprobs + o, old_logprobs + o, mask + o, T), advantages[b], lo, hi, &dlw);
        double g = dlw / ((double)B * grad_accum);
        for (int t = 0; t < T; t++)
            if (mask[o + t] != 0) dlogprobs[o + t] += (float)(g * mask[o + t]);
    }
}
