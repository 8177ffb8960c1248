// Tests of the GRPO / RLOO math (src/train/grpo_math.c) against the PyTorch reference of TRL's code
// (tests/fixtures/grpo/reference.json from tools/gen_grpo_reference.py): advantages, loss, clip metrics and
// the gradient w.r.t. the new log-probs of every --loss_type x --scale_rewards x --importance_sampling_level
// with and without the KL term, and RLOO's advantages and loss; plus hand cases (None rewards, unscorable
// rows, zero-std groups) and a finite-difference check of the gradients.
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "train/grpo_math.h"

// The bound: loss and gradients within 1e-6 of the float64 reference (ours is double inside,
// float32 out; the gradients are O(0.1)).
#define REF_TOL 1e-6

enum { MAXN = 64, MAXT = 64 };

static int read_floats(const cJSON *o, const char *key, float *out, int n) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n) return 0;
    for (int i = 0; i < n; i++) {
        const cJSON *v = cJSON_GetArrayItem(a, i);
        out[i] = cJSON_IsNumber(v) ? (float)v->valuedouble : NAN;
    }
    return 1;
}

static double num(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static int close_d(double got, double want, double tol) { return fabs(got - want) <= tol || (isnan(got) && isnan(want)); }

static void test_reference(void) {
    char *text = tu_read_file(TU_FIXTURES "/grpo/reference.json", NULL);
    CHECK(text != NULL, "cannot read the fixture");
    if (!text) return;
    cJSON *d = cJSON_Parse(text);
    free(text);
    CHECK(d != NULL, "fixture is not JSON");
    if (!d) return;
    const int N = (int)num(d, "N"), G = (int)num(d, "G"), T = (int)num(d, "T"), K = (int)num(d, "K");
    static float per_func[MAXN * 4], weights[4], mask[MAXN * MAXT], old_lp[MAXN * MAXT], new_lp[MAXN * MAXT],
        ref_lp[MAXN * MAXT], rewards[MAXN], adv[MAXN], want_adv[MAXN], grad[MAXN * MAXT], want_grad[MAXN * MAXT],
        seq_kl[MAXN];
    int ok = N <= MAXN && T <= MAXT && K <= 4 && read_floats(d, "rewards_per_func", per_func, N * K) &&
             read_floats(d, "reward_weights", weights, K) && read_floats(d, "mask", mask, N * T) &&
             read_floats(d, "old_logprobs", old_lp, N * T) && read_floats(d, "new_logprobs", new_lp, N * T) &&
             read_floats(d, "ref_logprobs", ref_lp, N * T);
    CHECK(ok, "fixture inputs malformed");
    if (!ok) {
        cJSON_Delete(d);
        return;
    }
    grpo_combine_rewards(rewards, per_func, weights, N, K);
    const cJSON *c;
    int n_cases = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(d, "cases")) {
        const char *scale_s = cJSON_GetObjectItemCaseSensitive(c, "scale_rewards")->valuestring;
        const char *lt_s = cJSON_GetObjectItemCaseSensitive(c, "loss_type")->valuestring;
        const char *lv_s = cJSON_GetObjectItemCaseSensitive(c, "importance_sampling_level")->valuestring;
        grpo_scale_rewards scale;
        grpo_loss_config cfg = {0};
        rlhf_err err;
        CHECK(!grpo_scale_rewards_parse(scale_s, &scale, &err) && !grpo_loss_type_parse(lt_s, &cfg.loss_type, &err) &&
                  !grpo_is_level_parse(lv_s, &cfg.is_level, &err), "parse %s %s %s", scale_s, lt_s, lv_s);
        char name[128];
        snprintf(name, sizeof name, "%s/%s/%s/beta=%g", lt_s, scale_s, lv_s, num(c, "beta"));
        grpo_reward_stats rs;
        grpo_advantages(adv, &rs, rewards, N, G, scale);
        read_floats(c, "advantages", want_adv, N);
        CHECK(tu_close(name, adv, want_adv, (size_t)N, REF_TOL, 0), "advantages");
        CHECK(close_d(rs.reward, num(c, "reward"), REF_TOL) && close_d(rs.reward_std, num(c, "reward_std"), REF_TOL) &&
                  close_d(rs.frac_zero_std, num(c, "frac_reward_zero_std"), 1e-12),
              "%s: reward stats %g %g %g", name, rs.reward, rs.reward_std, rs.frac_zero_std);
        cfg.epsilon_low = (float)num(d, "epsilon");
        cfg.epsilon_high = (float)num(d, "epsilon_high");
        cfg.beta = (float)num(c, "beta");
        cfg.max_completion_length = (int)num(d, "max_completion_length");
        cfg.grad_accum = num(d, "grad_accum");
        cfg.num_items = num(c, "num_items");
        // the loss reads the fixture's float32 advantages (the reference's own inputs)
        grpo_loss_stats st;
        grpo_loss_forward(&st, new_lp, old_lp, cfg.beta != 0 ? ref_lp : NULL, want_adv, mask, &cfg, N, T);
        CHECK(close_d(st.loss, num(c, "loss"), REF_TOL), "%s: loss %.9g want %.9g", name, st.loss, num(c, "loss"));
        double low = st.low_sum / st.clip_count, high = st.high_sum / st.clip_count, reg = st.region_sum / st.clip_count;
        CHECK(close_d(low, num(c, "clip_low"), 1e-12) && close_d(high, num(c, "clip_high"), 1e-12) &&
                  close_d(reg, num(c, "clip_region"), 1e-12),
              "%s: clip ratios %g %g %g want %g %g %g", name, low, high, reg, num(c, "clip_low"), num(c, "clip_high"),
              num(c, "clip_region"));
        if (cfg.beta != 0)
            CHECK(close_d(st.kl_sum / st.tok_count, num(c, "kl"), REF_TOL), "%s: kl %g want %g", name,
                  st.kl_sum / st.tok_count, num(c, "kl"));
        memset(grad, 0, sizeof grad);
        grpo_loss_backward(grad, new_lp, old_lp, cfg.beta != 0 ? ref_lp : NULL, want_adv, mask, &cfg, N, T);
        read_floats(c, "grad", want_grad, N * T);
        CHECK(tu_close(name, grad, want_grad, (size_t)N * T, REF_TOL, 0), "gradient");
        n_cases++;
    }
    CHECK(n_cases == 48, "expected 48 grpo cases, got %d", n_cases);
    n_cases = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(d, "rloo_cases")) {
        float beta = (float)num(c, "beta");
        int normalize = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "normalize"));
        float clip[2];
        int has_clip = read_floats(c, "clip", clip, 2);
        char name[96];
        snprintf(name, sizeof name, "rloo/beta=%g/normalize=%d/clip=%d", beta, normalize, has_clip);
        read_floats(c, "seq_kl", seq_kl, N);
        grpo_reward_stats rs;
        rloo_advantages(adv, &rs, rewards, seq_kl, beta, has_clip ? clip : NULL, normalize, N, G);
        read_floats(c, "advantages", want_adv, N);
        CHECK(tu_close(name, adv, want_adv, (size_t)N, REF_TOL, 0), "rloo advantages");
        CHECK(close_d(rs.frac_zero_std, num(c, "frac_reward_zero_std"), 1e-12), "%s: frac zero std %g", name,
              rs.frac_zero_std);
        grpo_loss_stats st;
        rloo_loss_forward(&st, new_lp, old_lp, want_adv, mask, 0.2f, 0.2f, num(d, "grad_accum"), N, T);
        CHECK(close_d(st.loss, num(c, "loss"), REF_TOL), "%s: loss %.9g want %.9g", name, st.loss, num(c, "loss"));
        CHECK(close_d(st.low_sum / st.clip_count, num(c, "clip_low"), 1e-12) &&
                  close_d(st.high_sum / st.clip_count, num(c, "clip_high"), 1e-12) &&
                  close_d(st.region_sum / st.clip_count, num(c, "clip_region"), 1e-12),
              "%s: clip ratios", name);
        memset(grad, 0, sizeof grad);
        rloo_loss_backward(grad, new_lp, old_lp, want_adv, mask, 0.2f, 0.2f, num(d, "grad_accum"), N, T);
        read_floats(c, "grad", want_grad, N * T);
        CHECK(tu_close(name, grad, want_grad, (size_t)N * T, REF_TOL, 0), "rloo gradient");
        n_cases++;
    }
    CHECK(n_cases == 8, "expected 8 rloo cases, got %d", n_cases);
    cJSON_Delete(d);
}

// None rewards: a NaN entry drops out of the weighted sum; an all-NaN row is unscorable (advantage 0,
// outside its group's mean); a group of equal rewards has advantage 0 and counts in frac_reward_zero_std.
static void test_hand(void) {
    const float per_func[6 * 2] = {1, NAN, 0, 2, NAN, NAN, 3, 3, 1, 1, 1, 1};
    const float w[2] = {1, 0.5f};
    float r[6], adv[6];
    grpo_combine_rewards(r, per_func, w, 6, 2);
    CHECK(r[0] == 1 && r[1] == 1 && isnan(r[2]) && r[3] == 4.5f && r[4] == 1.5f, "combined %g %g %g %g", r[0], r[1],
          r[2], r[3]);
    grpo_reward_stats st;
    grpo_advantages(adv, &st, r, 6, 3, GRPO_SCALE_NONE);
    CHECK(adv[0] == 0 && adv[1] == 0 && adv[2] == 0, "group 1 (equal scorable rewards, one None): %g %g %g", adv[0],
          adv[1], adv[2]);
    CHECK(fabsf(adv[3] - 2.0f) < 1e-6f && fabsf(adv[4] + 1.0f) < 1e-6f, "group 2: %g %g", adv[3], adv[4]);
    CHECK(fabs(st.frac_zero_std - 0.5) < 1e-12, "frac zero std %g", st.frac_zero_std);
    // RLOO: baseline of row 3 = mean(1.5, 1.5) = 1.5 -> 3; with the None row the group-1 baseline uses 1 sibling.
    rloo_advantages(adv, NULL, r, NULL, 0, NULL, 0, 6, 3);
    CHECK(fabsf(adv[3] - 3.0f) < 1e-6f && adv[2] == 0 && adv[0] == 0, "rloo %g %g %g", adv[3], adv[2], adv[0]);
}

// Finite differences of the loss in double around the float inputs.
static void test_fd(void) {
    enum { B = 3, T = 4 };
    float nl[B * T], ol[B * T], rl[B * T], m[B * T] = {1, 1, 1, 0, 1, 0, 0, 0, 1, 1, 1, 1}, adv[B] = {0.7f, -1.2f, 0.3f};
    for (int i = 0; i < B * T; i++) {
        ol[i] = -1.0f - 0.1f * (float)(i % 5);
        nl[i] = ol[i] + 0.05f * (float)((i * 7) % 5 - 2);
        rl[i] = ol[i] + 0.03f * (float)((i * 3) % 4 - 1);
    }
    for (int lt = 0; lt < 4; lt++)
        for (int lv = 0; lv < 2; lv++) {
            grpo_loss_config c = {(grpo_loss_type)lt, (grpo_is_level)lv, 0.2f, 0.2f, 0.1f, T, 9.0, 2.0};
            float g[B * T] = {0};
            grpo_loss_backward(g, nl, ol, rl, adv, m, &c, B, T);
            double worst = 0;
            for (int i = 0; i < B * T; i++) {
                float save = nl[i];
                const float h = 1e-3f;
                grpo_loss_stats a, b;
                nl[i] = save + h;
                grpo_loss_forward(&a, nl, ol, rl, adv, m, &c, B, T);
                float up = nl[i];
                nl[i] = save - h;
                grpo_loss_forward(&b, nl, ol, rl, adv, m, &c, B, T);
                float dn = nl[i];
                nl[i] = save;
                double fd = (a.loss - b.loss) / ((double)up - dn);
                if (fabs(fd - g[i]) > worst) worst = fabs(fd - g[i]);
            }
            CHECK(worst < 2e-4, "loss %d level %d: finite differences off by %g", lt, lv, worst);
        }
}

int main(void) {
    test_reference();
    test_hand();
    test_fd();
    return tu_finish("train_grpo_math");
}
