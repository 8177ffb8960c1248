// Tests of the PPO math (src/train/ppo_math.c): hand-computed small cases (truncation at the first
// stop token, score at the last real token, k1/k3, whitening, GAE, clipped losses, entropy, the
// adaptive KL controller), the PyTorch reference of TRL's formulas (tests/fixtures/ppo/*.json from
// tools/gen_ppo_reference.py, gradients from autograd), and finite-difference checks of the loss
// gradients.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/json_util.h"
#include "testutil.h"
#include "train/ppo_math.h"

// Fixture comparisons: the reference is float64 on float32 inputs, ours accumulates in double and
// stores float32, so agreement is to float32 rounding of O(1..10) values.
#define REF_ATOL 2e-5
#define REF_RTOL 1e-5
// Finite differences in double on the float32 inputs: step and tolerance.
#define FD_STEP 1e-3
#define FD_ATOL 2e-4

static int close1(double got, double want, double tol) { return fabs(got - want) <= tol; }

// ---- hand-computed cases -----------------------------------------------------------------------

static void test_truncate(void) {
    enum { B = 4, T = 5, STOP = 7 };
    const int32_t responses[B * T] = {
        1, 7, 2, 7, 3,  // first stop at 1: length 2, the second stop is ignored
        1, 2, 3, 4, 5,  // no stop: all 5 real
        9, 9, 9, 9, 7,  // stop in the last slot
        4, 4, 7, 7, 7,  // generated only 2 (filler after holds the stop id): length 2, no stop
    };
    const int n_generated[B] = {5, 5, 5, 2};
    float mask[B * T];
    int lengths[B], has_stop[B];
    ppo_truncate_responses(mask, lengths, has_stop, responses, n_generated, STOP, B, T);
    const int want_len[B] = {2, 5, 5, 2}, want_stop[B] = {1, 0, 1, 0};
    for (int b = 0; b < B; b++) {
        CHECK(lengths[b] == want_len[b], "row %d length %d want %d", b, lengths[b], want_len[b]);
        CHECK(has_stop[b] == want_stop[b], "row %d has_stop %d", b, has_stop[b]);
        for (int t = 0; t < T; t++)
            CHECK(mask[b * T + t] == (t < want_len[b] ? 1.0f : 0.0f), "mask[%d,%d]", b, t);
    }
    // No stop token (--stop_token none): only n_generated decides.
    ppo_truncate_responses(mask, lengths, NULL, responses, n_generated, -1, B, T);
    CHECK(lengths[0] == 5 && lengths[3] == 2, "no stop: %d %d", lengths[0], lengths[3]);
    // A stop id equal to 0 is a real stop token (TRL's "edge case when stop_token_id is 0").
    const int32_t zero_stop[5] = {3, 0, 3, 3, 3};
    ppo_truncate_responses(mask, lengths, has_stop, zero_stop, NULL, 0, 1, 5);
    CHECK(lengths[0] == 2 && has_stop[0] == 1, "stop id 0: length %d", lengths[0]);

    float scores[B] = {1, 1, 1, 1};
    ppo_truncate_responses(mask, lengths, has_stop, responses, n_generated, STOP, B, T);
    ppo_missing_eos_penalty(scores, has_stop, 2.5f, B);
    CHECK(scores[0] == 1 && scores[1] == -1.5f && scores[2] == 1 && scores[3] == -1.5f, "penalty %g %g %g %g",
          scores[0], scores[1], scores[2], scores[3]);
}

static void test_rewards_hand(void) {
    // Row 0: length 2 of 4 slots; padding holds garbage (NaN) that must not leak.
    enum { B = 2, T = 4 };
    const float logprobs[B * T] = {-1.0f, -2.0f, NAN, NAN, -0.5f, -0.5f, -0.5f, -0.5f};
    const float ref[B * T] = {-1.5f, -2.0f, NAN, 3.0f, -0.5f, -1.0f, -0.25f, -0.5f};
    const float mask[B * T] = {1, 1, 0, 0, 1, 1, 1, 1};
    const int lengths[B] = {2, 4};
    const float scores[B] = {3.0f, -1.0f};
    float rewards[B * T], kl[B * T], nsr[B * T];
    const float kl_coef = 0.1f;
    ppo_compute_rewards(rewards, kl, nsr, logprobs, ref, scores, mask, lengths, kl_coef, PPO_KL_K1, B, T);
    // k1 = logp - ref_logp
    CHECK(close1(kl[0], 0.5, 1e-7) && kl[1] == 0 && kl[2] == 0 && kl[3] == 0, "k1 row0 %g %g %g", kl[0], kl[1],
          kl[2]);
    CHECK(close1(kl[5], 0.5, 1e-7) && close1(kl[6], -0.25, 1e-7), "k1 row1 %g %g", kl[5], kl[6]);
    CHECK(close1(nsr[0], -0.05, 1e-7), "non-score reward %g", nsr[0]);
    // The score sits on the last REAL token (slot 1), not one slot later (TRL issue 3750).
    CHECK(close1(rewards[1], 3.0, 1e-7) && rewards[2] == 0 && rewards[3] == 0, "score slot: %g %g %g", rewards[1],
          rewards[2], rewards[3]);
    CHECK(close1(rewards[7], -1.0, 1e-7), "full row score on the last slot %g", rewards[7]);

    ppo_compute_rewards(rewards, kl, nsr, logprobs, ref, scores, mask, lengths, kl_coef, PPO_KL_K3, B, T);
    // k3 = (exp(logr) - 1) - logr with logr = ref - logp = -0.5
    double k3 = exp(-0.5) - 1 + 0.5;
    CHECK(close1(kl[0], k3, 1e-7), "k3 %g want %g", kl[0], k3);
    CHECK(kl[1] == 0 && kl[6] > 0, "k3 is 0 at equal logprobs and positive otherwise: %g %g", kl[1], kl[6]);

    ppo_kl_estimator e;
    rlhf_err err;
    CHECK(ppo_kl_estimator_parse("k3", &e, &err) == RLHF_OK && e == PPO_KL_K3, "parse k3");
    CHECK(ppo_kl_estimator_parse("k2", &e, &err) == RLHF_EINPUT && strstr(err.msg, "--kl_estimator"), "bad k: %s",
          err.msg);
}

static void test_whiten_hand(void) {
    const float v[4] = {1, 2, 3, NAN};
    const float mask[4] = {1, 1, 1, 0};
    float out[4];
    rlhf_err err;
    // mean 2, unbiased variance 1
    CHECK(ppo_masked_whiten(out, v, mask, 4, 1, "t", &err) == RLHF_OK, "whiten");
    double s = 1 / sqrt(1 + PPO_WHITEN_EPS);
    CHECK(close1(out[0], -s, 1e-7) && out[1] == 0 && close1(out[2], s, 1e-7) && out[3] == 0, "whiten %g %g %g %g",
          out[0], out[1], out[2], out[3]);
    CHECK(ppo_masked_whiten(out, v, mask, 4, 0, "t", &err) == RLHF_OK, "whiten no shift");
    CHECK(close1(out[0], 2 - s, 1e-6) && close1(out[1], 2, 1e-6) && out[3] == 0, "shift_mean=False %g %g", out[0],
          out[1]);
    double var;
    CHECK(ppo_masked_var(&var, v, mask, 4, 0, "t", &err) == RLHF_OK && close1(var, 2.0 / 3, 1e-12), "biased var %g",
          var);
    const float one[4] = {1, 0, 0, 0};
    CHECK(ppo_masked_whiten(out, v, one, 4, 1, "advantages", &err) == RLHF_EINPUT && strstr(err.msg, "advantages"),
          "one token cannot be whitened: %s", err.msg);
    CHECK(isnan(ppo_masked_mean(v, (const float[4]){0, 0, 0, 0}, 4)), "empty mean is NaN");
}

static void test_gae_hand(void) {
    // T = 4, last slot is padding (NaN value/reward must be ignored: the last real token is terminal).
    const float rewards[4] = {0.1f, 0.2f, 1.0f, NAN};
    const float values[4] = {0.5f, 0.4f, 0.3f, NAN};
    const float mask[4] = {1, 1, 1, 0};
    float adv[4], ret[4];
    ppo_gae(adv, ret, rewards, values, mask, 1.0f, 1.0f, 1, 4);
    // gamma = lam = 1: A_t = sum_{k>=t} r_k - V_t
    const float want_adv[4] = {0.8f, 0.8f, 0.7f, 0}, want_ret[4] = {1.3f, 1.2f, 1.0f, 0};
    tu_close("gae adv (1,1)", adv, want_adv, 4, 1e-6, 0);
    tu_close("gae ret (1,1)", ret, want_ret, 4, 1e-6, 0);
    // gamma = lam = 0.5: delta = [-0.2, -0.05, 0.7]; A2 = 0.7, A1 = -0.05 + 0.25*0.7, A0 = -0.2 + 0.25*A1
    ppo_gae(adv, ret, rewards, values, mask, 0.5f, 0.5f, 1, 4);
    const float want2[4] = {-0.16875f, 0.125f, 0.7f, 0};
    tu_close("gae adv (0.5,0.5)", adv, want2, 4, 1e-6, 0);
}

static void test_loss_hand(void) {
    ppo_loss_config c = {.cliprange = 0.2f, .cliprange_value = 0.2f, .vf_coef = 0.1f};
    rlhf_err err;
    ppo_loss_stats st;
    // Two real tokens, one padded. Token 0: A = +1, ratio 1.5 -> clipped (-1.2), no gradient.
    // Token 1: A = -1, ratio 1.5 -> unclipped (1.5) wins, d/dlogprob = -A * ratio = 1.5.
    const float lp_old[3] = {0, 0, 0};
    const float lp_new[3] = {(float)log(1.5), (float)log(1.5), NAN};
    const float adv[3] = {1, -1, 0};
    // Values: token 0 v = 1.0, old 0.5, return 2 -> unclipped (1) < clipped (0.7^2... see below).
    // v=1.0: vf1 = (1-2)^2 = 1; vc = clamp(1, 0.3, 0.7) = 0.7: vf2 = 1.69 -> clipped wins, grad 0.
    // token 1: v = 0.6, old 0.5, return 0 -> vc = 0.6 (inside), vf1 = vf2 = 0.36 -> tie, grad 2*(v-R) = 1.2.
    const float v_new[3] = {1.0f, 0.6f, NAN}, v_old[3] = {0.5f, 0.5f, 0}, ret[3] = {2, 0, 0};
    const float mask[3] = {1, 1, 0};
    CHECK(ppo_loss_forward(&st, lp_new, v_new, lp_old, v_old, adv, ret, mask, &c, 1, 3, &err) == RLHF_OK, "fwd");
    CHECK(close1(st.pg_loss, (-1.2 + 1.5) / 2, 1e-6), "pg_loss %g", st.pg_loss);
    CHECK(close1(st.vf_loss, 0.5 * (1.69 + 0.36) / 2, 1e-6), "vf_loss %g", st.vf_loss);
    CHECK(close1(st.loss, st.pg_loss + (double)c.vf_coef * st.vf_loss, 1e-12), "loss");
    CHECK(close1(st.pg_clipfrac, 0.5, 1e-12) && close1(st.vf_clipfrac, 0.5, 1e-12), "clipfracs %g %g",
          st.pg_clipfrac, st.vf_clipfrac);
    CHECK(close1(st.approxkl, 0.5 * log(1.5) * log(1.5), 1e-6), "approxkl %g", st.approxkl);
    CHECK(close1(st.ratio_mean, 1.5, 1e-6), "ratio %g", st.ratio_mean);
    float dlp[3] = {0, 0, 0}, dv[3] = {0, 0, 0};
    ppo_loss_backward(dlp, dv, lp_new, v_new, lp_old, v_old, adv, ret, mask, &c, 1.0f, 1, 3);
    CHECK(dlp[0] == 0 && close1(dlp[1], 1.5 / 2, 1e-6) && dlp[2] == 0, "dlogprobs %g %g %g", dlp[0], dlp[1], dlp[2]);
    CHECK(dv[0] == 0 && close1(dv[1], 0.1 * 0.5 * 1.2 / 2, 1e-7) && dv[2] == 0, "dvalues %g %g", dv[0], dv[1]);
    // Backward accumulates and scales.
    ppo_loss_backward(dlp, NULL, lp_new, v_new, lp_old, v_old, adv, ret, mask, &c, 0.5f, 1, 3);
    CHECK(close1(dlp[1], 1.5 / 2 * 1.5, 1e-6), "accumulate %g", dlp[1]);
    const float none[3] = {0, 0, 0};
    CHECK(ppo_loss_forward(&st, lp_new, v_new, lp_old, v_old, adv, ret, none, &c, 1, 3, &err) == RLHF_EINPUT,
          "empty mini-batch is an error");
}

static void test_entropy_and_stats(void) {
    const float logits[8] = {0, 0, 0, 0, 100, 0, 0, 0};
    float ent[2];
    ppo_entropy_from_logits(ent, logits, 1.0f, 2, 4);
    CHECK(close1(ent[0], log(4.0), 1e-6) && close1(ent[1], 0, 1e-6), "entropy %g %g", ent[0], ent[1]);
    // Temperature scales logits: [log 2, 0] at T=1 is p = (2/3, 1/3); at T = 0.5 logits double.
    const float two[2] = {(float)log(2.0), 0};
    ppo_entropy_from_logits(ent, two, 0.5f, 1, 2);
    double p = 4.0 / 5, want = -(p * log(p) + (1 - p) * log(1 - p));
    CHECK(close1(ent[0], want, 1e-6), "entropy at temperature %g want %g", ent[0], want);

    const float kl[4] = {0.5f, 0.5f, 9, 1}, nsr[4] = {-0.05f, -0.05f, 9, -0.1f}, lp[4] = {-1, -2, 1, -3};
    const float mask[4] = {1, 1, 0, 1}, scores[2] = {1, 3};
    const int has_stop[2] = {1, 0};
    ppo_rollout_stats s;
    ppo_rollout_stats_compute(&s, kl, nsr, lp, scores, mask, has_stop, 2, 2);
    CHECK(close1(s.kl, (1.0 + 1.0) / 2, 1e-6), "objective/kl %g", s.kl);
    CHECK(close1(s.entropy, (3.0 + 3.0) / 2, 1e-6), "objective/entropy %g (padding excluded)", s.entropy);
    CHECK(close1(s.non_score_reward, (-0.1 - 0.1) / 2, 1e-6), "non_score %g", s.non_score_reward);
    CHECK(close1(s.scores, 2, 1e-9) && close1(s.rlhf_reward, 1.9, 1e-6), "scores %g rlhf %g", s.scores,
          s.rlhf_reward);
    CHECK(s.num_stop_tokens == 1, "eos count %d", s.num_stop_tokens);
}

static void test_kl_controller_hand(void) {
    ppo_kl_controller c;
    rlhf_err err;
    CHECK(ppo_kl_controller_init(&c, 0.05, 0, 0, 0, &err) == RLHF_OK, "fixed");
    ppo_kl_controller_update(&c, 100, 64);
    CHECK(c.value == 0.05, "fixed stays %g", c.value);
    CHECK(ppo_kl_controller_init(&c, 0.1, 1, 6, 100, &err) == RLHF_OK, "adaptive");
    ppo_kl_controller_update(&c, 6.6, 10);  // e = 0.1 -> value *= 1 + 0.1*10/100
    CHECK(close1(c.value, 0.1 * 1.01, 1e-12), "adaptive up %g", c.value);
    ppo_kl_controller_update(&c, 0.0, 10);  // e clipped to -0.2
    CHECK(close1(c.value, 0.1 * 1.01 * 0.98, 1e-12), "adaptive clipped %g", c.value);
    ppo_kl_controller_update(&c, NAN, 10);
    CHECK(close1(c.value, 0.1 * 1.01 * 0.98, 1e-12), "NaN KL ignored %g", c.value);
    CHECK(ppo_kl_controller_init(&c, 0.1, 1, 0, 100, &err) == RLHF_EINPUT, "target 0 rejected");
}

// ---- the PyTorch reference ---------------------------------------------------------------------

typedef struct {
    float *data;
    int n;
} fvec;

static fvec get_floats(const cJSON *obj, const char *key) {
    fvec v = {0};
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsArray(a)) {
        CHECK(0, "fixture: missing array '%s'", key);
        return v;
    }
    v.n = cJSON_GetArraySize(a);
    v.data = calloc(v.n > 0 ? v.n : 1, sizeof(float));
    int i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, a) v.data[i++] = (float)x->valuedouble;
    return v;
}

static int *get_ints(const cJSON *obj, const char *key, int *n) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(obj, key);
    *n = cJSON_IsArray(a) ? cJSON_GetArraySize(a) : 0;
    int *v = calloc(*n > 0 ? *n : 1, sizeof(int));
    int i = 0;
    const cJSON *x;
    if (cJSON_IsArray(a)) cJSON_ArrayForEach(x, a) v[i++] = x->valueint;
    return v;
}

static double get_num(const cJSON *obj, const char *key) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(obj, key);
    CHECK(cJSON_IsNumber(x) || cJSON_IsBool(x), "fixture: missing number '%s'", key);
    return cJSON_IsBool(x) ? (double)cJSON_IsTrue(x) : (x ? x->valuedouble : NAN);
}

static void test_reference(const char *file) {
    char path[512];
    snprintf(path, sizeof path, "%s/ppo/%s", TU_FIXTURES, file);
    cJSON *root = NULL;
    rlhf_err err;
    if (json_load_file(path, &root, &err) != RLHF_OK) {
        CHECK(0, "%s", err.msg);
        return;
    }
    const cJSON *cfg = cJSON_GetObjectItem(root, "config"), *in = cJSON_GetObjectItem(root, "inputs"),
                *ex = cJSON_GetObjectItem(root, "expected");
    const int B = (int)get_num(root, "B"), T = (int)get_num(root, "T"), V = (int)get_num(root, "V");
    const int stop = (int)get_num(root, "stop_token_id");
    const int BT = B * T;
    printf("reference %s: B=%d T=%d V=%d\n", file, B, T, V);

    int n;
    int *resp_i = get_ints(in, "responses", &n);
    int32_t *responses = malloc(sizeof(int32_t) * n);
    for (int i = 0; i < n; i++) responses[i] = resp_i[i];
    int *n_generated = get_ints(in, "n_generated", &n);
    fvec logprobs = get_floats(in, "logprobs"), ref = get_floats(in, "ref_logprobs"),
         values = get_floats(in, "values"), scores = get_floats(in, "raw_scores"), logits = get_floats(in, "logits"),
         new_lp = get_floats(in, "new_logprobs"), new_v = get_floats(in, "new_values");

    // truncation
    float *mask = calloc(BT, sizeof(float));
    int *lengths = calloc(B, sizeof(int)), *has_stop = calloc(B, sizeof(int));
    ppo_truncate_responses(mask, lengths, has_stop, responses, n_generated, stop, B, T);
    fvec want_mask = get_floats(ex, "mask");
    tu_close("mask", mask, want_mask.data, BT, 0, 0);
    int *want_len = get_ints(ex, "lengths", &n), *want_stop = get_ints(ex, "has_stop", &n);
    for (int b = 0; b < B; b++)
        CHECK(lengths[b] == want_len[b] && has_stop[b] == want_stop[b], "row %d: length %d/%d stop %d/%d", b,
              lengths[b], want_len[b], has_stop[b], want_stop[b]);

    // penalty, rewards, whitening
    ppo_missing_eos_penalty(scores.data, has_stop, (float)get_num(cfg, "missing_eos_penalty"), B);
    fvec want_scores = get_floats(ex, "scores");
    tu_close("scores", scores.data, want_scores.data, B, REF_ATOL, REF_RTOL);
    ppo_kl_estimator est;
    CHECK(ppo_kl_estimator_parse(json_get_string(cfg, "kl_estimator", "?"), &est, &err) == RLHF_OK, "estimator");
    float *rewards = calloc(BT, sizeof(float)), *kl = calloc(BT, sizeof(float)), *nsr = calloc(BT, sizeof(float));
    ppo_compute_rewards(rewards, kl, nsr, logprobs.data, ref.data, scores.data, mask, lengths,
                        (float)get_num(cfg, "kl_coef"), est, B, T);
    fvec want_kl = get_floats(ex, "kl"), want_nsr = get_floats(ex, "non_score_reward"),
         want_rewards = get_floats(ex, "rewards");
    tu_close("kl", kl, want_kl.data, BT, REF_ATOL, REF_RTOL);
    tu_close("non_score_reward", nsr, want_nsr.data, BT, REF_ATOL, REF_RTOL);
    if (get_num(cfg, "whiten_rewards") != 0)
        CHECK(ppo_whiten_rewards(rewards, mask, B, T, &err) == RLHF_OK, "whiten rewards: %s", err.msg);
    CHECK(tu_close("rewards", rewards, want_rewards.data, BT, REF_ATOL, REF_RTOL), "rewards");

    // GAE and advantage whitening
    float *adv = calloc(BT, sizeof(float)), *ret = calloc(BT, sizeof(float));
    ppo_gae(adv, ret, rewards, values.data, mask, (float)get_num(cfg, "gamma"), (float)get_num(cfg, "lam"), B, T);
    fvec want_adv_raw = get_floats(ex, "advantages_raw"), want_ret = get_floats(ex, "returns"),
         want_adv = get_floats(ex, "advantages");
    CHECK(tu_close("advantages_raw", adv, want_adv_raw.data, BT, REF_ATOL, REF_RTOL), "gae");
    CHECK(tu_close("returns", ret, want_ret.data, BT, REF_ATOL, REF_RTOL), "returns");
    CHECK(ppo_whiten_advantages(adv, mask, B, T, &err) == RLHF_OK, "whiten adv");
    CHECK(tu_close("advantages", adv, want_adv.data, BT, REF_ATOL, REF_RTOL), "whitened advantages");

    // loss, stats and autograd gradients
    ppo_loss_config c = {.cliprange = (float)get_num(cfg, "cliprange"),
                         .cliprange_value = (float)get_num(cfg, "cliprange_value"),
                         .vf_coef = (float)get_num(cfg, "vf_coef")};
    ppo_loss_stats st;
    CHECK(ppo_loss_forward(&st, new_lp.data, new_v.data, logprobs.data, values.data, adv, ret, mask, &c, B, T, &err) ==
              RLHF_OK,
          "loss");
    struct { const char *name; double got; } sv[] = {
        {"loss", st.loss}, {"pg_loss", st.pg_loss}, {"vf_loss", st.vf_loss}, {"pg_clipfrac", st.pg_clipfrac},
        {"vf_clipfrac", st.vf_clipfrac}, {"approxkl", st.approxkl}, {"ratio_mean", st.ratio_mean}};
    for (size_t i = 0; i < sizeof sv / sizeof sv[0]; i++) {
        double want = get_num(ex, sv[i].name);
        CHECK(close1(sv[i].got, want, REF_ATOL + REF_RTOL * fabs(want)), "%s: got %.9g want %.9g", sv[i].name,
              sv[i].got, want);
    }
    // TRL's approxkl divides by all B*T slots; ours by the real ones.
    double m = 0;
    for (int i = 0; i < BT; i++) m += mask[i];
    CHECK(close1(st.approxkl * m / BT, get_num(ex, "approxkl_trl"), 1e-6), "approxkl vs TRL's dilution");
    CHECK(st.pg_clipfrac > 0 && st.vf_clipfrac > 0, "fixture exercises both clips (%g, %g)", st.pg_clipfrac,
          st.vf_clipfrac);
    float *dlp = calloc(BT, sizeof(float)), *dv = calloc(BT, sizeof(float));
    ppo_loss_backward(dlp, dv, new_lp.data, new_v.data, logprobs.data, values.data, adv, ret, mask, &c, 1.0f, B, T);
    fvec want_dlp = get_floats(ex, "dlogprobs"), want_dv = get_floats(ex, "dvalues");
    CHECK(tu_close("dlogprobs (autograd)", dlp, want_dlp.data, BT, 1e-6, 1e-5), "dlogprobs");
    CHECK(tu_close("dvalues (autograd)", dv, want_dv.data, BT, 1e-6, 1e-5), "dvalues");

    // entropy
    float *ent = calloc(BT, sizeof(float));
    ppo_entropy_from_logits(ent, logits.data, (float)get_num(cfg, "temperature"), BT, V);
    fvec want_ent = get_floats(ex, "entropy");
    CHECK(tu_close("entropy", ent, want_ent.data, BT, REF_ATOL, REF_RTOL), "entropy");

    // rollout stats
    ppo_rollout_stats rs;
    ppo_rollout_stats_compute(&rs, kl, nsr, logprobs.data, scores.data, mask, has_stop, B, T);
    const cJSON *ws = cJSON_GetObjectItem(ex, "stats");
    struct { const char *name; double got; } rv[] = {{"kl", rs.kl}, {"entropy", rs.entropy},
        {"non_score_reward", rs.non_score_reward}, {"scores", rs.scores}, {"rlhf_reward", rs.rlhf_reward}};
    for (size_t i = 0; i < sizeof rv / sizeof rv[0]; i++) {
        double want = get_num(ws, rv[i].name);
        CHECK(close1(rv[i].got, want, 1e-5 + 1e-5 * fabs(want)), "stats %s: got %.9g want %.9g", rv[i].name,
              rv[i].got, want);
    }
    CHECK(rs.num_stop_tokens == (int)get_num(ws, "num_stop_tokens"), "num_stop_tokens %d", rs.num_stop_tokens);

    // adaptive KL controller trajectory
    const cJSON *kc = cJSON_GetObjectItem(root, "kl_controller");
    ppo_kl_controller ctl;
    CHECK(ppo_kl_controller_init(&ctl, get_num(kc, "init"), 1, get_num(kc, "target"), get_num(kc, "horizon"), &err) ==
              RLHF_OK,
          "kl ctl init");
    fvec kls = get_floats(kc, "kls"), kv = get_floats(kc, "values");
    for (int i = 0; i < kls.n; i++) {
        ppo_kl_controller_update(&ctl, kls.data[i], (int)get_num(kc, "n_steps"));
        CHECK(close1(ctl.value, kv.data[i], 1e-7), "kl_coef after update %d: %.9g want %.9g", i, ctl.value,
              kv.data[i]);
    }

    fvec all[] = {logprobs, ref, values, scores, logits, new_lp, new_v, want_mask, want_scores, want_kl, want_nsr,
                  want_rewards, want_adv_raw, want_ret, want_adv, want_dlp, want_dv, want_ent, kls, kv};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i].data);
    free(resp_i); free(responses); free(n_generated); free(mask); free(lengths); free(has_stop);
    free(want_len); free(want_stop); free(rewards); free(kl); free(nsr); free(adv); free(ret);
    free(dlp); free(dv); free(ent);
    cJSON_Delete(root);
}

// ---- finite differences ------------------------------------------------------------------------

static double loss_at(const float *lp, const float *v, const float *old_lp, const float *old_v, const float *adv,
                      const float *ret, const float *mask, const ppo_loss_config *c, int B, int T) {
    ppo_loss_stats st;
    rlhf_err err;
    if (ppo_loss_forward(&st, lp, v, old_lp, old_v, adv, ret, mask, c, B, T, &err) != RLHF_OK) return NAN;
    return st.loss;
}

static void test_loss_finite_differences(void) {
    enum { B = 3, T = 8, N = B * T };
    float lp[N], v[N], old_lp[N], old_v[N], adv[N], ret[N], mask[N];
    uint32_t s = 12345;
    // Small LCG so the test is self-contained; values chosen away from the clip boundaries below.
    for (int i = 0; i < N; i++) {
        s = s * 1664525u + 1013904223u;
        double u = (s >> 8) / 16777216.0;
        old_lp[i] = (float)(-3 * u);
        s = s * 1664525u + 1013904223u;
        double u2 = (s >> 8) / 16777216.0;
        lp[i] = old_lp[i] + (float)(0.6 * (u2 - 0.5));
        old_v[i] = (float)(2 * u - 1);
        v[i] = old_v[i] + (float)(0.8 * (u2 - 0.5));
        adv[i] = (float)(2 * u2 - 1);
        ret[i] = (float)(3 * u - 1.5);
        mask[i] = (i % T) < (T - i / T) ? 1.0f : 0.0f;
    }
    ppo_loss_config c = {.cliprange = 0.2f, .cliprange_value = 0.2f, .vf_coef = 0.1f};
    float dlp[N] = {0}, dv[N] = {0};
    const float scale = 0.5f;  // e.g. 1 / gradient_accumulation_steps
    ppo_loss_backward(dlp, dv, lp, v, old_lp, old_v, adv, ret, mask, &c, scale, B, T);
    double worst = 0;
    int checked = 0;
    for (int i = 0; i < N; i++) {
        for (int which = 0; which < 2; which++) {
            float *x = which ? v : lp;
            float x0 = x[i];
            // Skip points within a step of a clip boundary, where the loss has a kink.
            double r = exp((double)lp[i] - old_lp[i]);
            if (!which && (fabs(r - (1 - c.cliprange)) < 0.01 || fabs(r - (1 + c.cliprange)) < 0.01)) continue;
            if (which && (fabs(v[i] - old_v[i] - c.cliprange_value) < 0.01 ||
                          fabs(v[i] - old_v[i] + c.cliprange_value) < 0.01))
                continue;
            x[i] = x0 + (float)FD_STEP;
            double lp_ = loss_at(lp, v, old_lp, old_v, adv, ret, mask, &c, B, T);
            x[i] = x0 - (float)FD_STEP;
            double lm = loss_at(lp, v, old_lp, old_v, adv, ret, mask, &c, B, T);
            double h = ((double)(x0 + (float)FD_STEP) - (double)(x0 - (float)FD_STEP));
            x[i] = x0;
            double fd = scale * (lp_ - lm) / h;
            double an = which ? dv[i] : dlp[i];
            double e = fabs(fd - an);
            if (e > worst) worst = e;
            checked++;
            CHECK(e <= FD_ATOL, "%s[%d]: analytic %.7g fd %.7g", which ? "dvalues" : "dlogprobs", i, an, fd);
        }
    }
    printf("finite differences: %d checked, worst |error| %.3g (bound %g)\n", checked, worst, FD_ATOL);
    CHECK(checked > N, "enough points checked (%d)", checked);
}

int main(void) {
    test_truncate();
    test_rewards_hand();
    test_whiten_hand();
    test_gae_hand();
    test_loss_hand();
    test_entropy_and_stats();
    test_kl_controller_hand();
    test_reference("case_k1.json");
    test_reference("case_k3_whiten.json");
    test_loss_finite_differences();
    return tu_finish("train_ppo_math");
}
