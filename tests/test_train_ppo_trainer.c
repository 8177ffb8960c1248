// The PPO trainer's own numerics (the loop is tested end to end by tests/cli/ppo_*.sh): response
// log-probs and their gradient against the nn layer's token_logprobs ops and a finite difference, the
// entropy against ppo_math's, positions of left-padded rows, run length, and flag checks.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "nn/ops.h"
#include "testutil.h"
#include "train/ppo_math.h"
#include "train/ppo_trainer_impl.h"

#define V 37
#define NB 2
#define P 3
#define R 4
#define T (P + R)

static void test_logprobs_and_gradient(void) {
    float logits[NB * T * V];
    int32_t resp[NB * R];
    uint64_t key = rng_key(7, 99, 0, 0);
    for (int i = 0; i < NB * T * V; i++) logits[i] = 3.0f * rng_normal(key, (uint64_t)i);
    for (int i = 0; i < NB * R; i++) resp[i] = (int32_t)rng_below(key, 1000 + (uint64_t)i, V);
    const double temperature = 0.7;
    const float tau = (float)(temperature + PPO_TEMPERATURE_EPS), inv = 1.0f / tau;
    float lp[NB * R], lse[NB * R], want[NB * R];
    rollout_logprobs(lp, lse, logits, resp, NB, T, P, R, V, temperature + PPO_TEMPERATURE_EPS);
    // the same slots through the nn op: rows P-1 .. P+R-2 of each sequence
    for (int b = 0; b < NB; b++)
        token_logprobs_forward(want + b * R, logits + ((size_t)b * T + P - 1) * V, resp + b * R, R, V, tau);
    tu_close("response log-probs vs token_logprobs_forward", lp, want, NB * R, 1e-5, 1e-5);
    float lp_rollout[NB * R];  // the rollout's path (no lse kept)
    rollout_logprobs(lp_rollout, NULL, logits, resp, NB, T, P, R, V, temperature + PPO_TEMPERATURE_EPS);
    tu_close("rollout log-probs vs update log-probs", lp_rollout, lp, NB * R, 1e-5, 1e-5);

    float dz[V], dwant[V], ent[1], ent_want[1];
    for (int k = 0; k < NB * R; k++) {
        int b = k / R, t = k % R;
        const float *z = logits + ((size_t)b * T + P - 1 + t) * V;
        float g = 0.3f + 0.1f * (float)k;
        ent[0] = rollout_slot_entropy_backward(dz, z, lse[k], resp[k], g, V, inv);
        memset(dwant, 0, sizeof dwant);
        token_logprobs_backward(dwant, &g, z, &resp[k], 1, V, tau);
        tu_close("d logprob / d logits vs token_logprobs_backward", dz, dwant, V, 1e-6, 1e-4);
        ppo_entropy_from_logits(ent_want, z, tau, 1, V);
        tu_close("slot entropy vs ppo_entropy_from_logits", ent, ent_want, 1, 1e-5, 1e-5);
    }
    // finite difference of g * logprob on one logit of one slot
    {
        float zc[V];
        const float *z = logits + ((size_t)1 * T + P - 1 + 2) * V;
        int32_t tok = resp[1 * R + 2];
        float g = 1.0f;
        rollout_slot_entropy_backward(dz, z, rollout_logsumexp(z, V, inv), tok, g, V, inv);
        for (int v = 0; v < V; v += 9) {
            const float h = 1e-2f;
            memcpy(zc, z, sizeof zc);
            zc[v] += h;
            double up = zc[tok] * inv - rollout_logsumexp(zc, V, inv);
            zc[v] -= 2 * h;
            double down = zc[tok] * inv - rollout_logsumexp(zc, V, inv);
            float fd = (float)((up - down) / (2 * h));
            tu_close("d logprob / d logit (finite difference)", &dz[v], &fd, 1, 2e-3, 2e-2);
        }
    }
}

static void test_positions(void) {
    // two left-padded rows: [pad pad a b c], [a b c d e]
    int32_t mask[10] = {0, 0, 1, 1, 1, 1, 1, 1, 1, 1}, pos[10];
    rollout_positions(pos, mask, 2, 5);
    int32_t want[10] = {0, 0, 0, 1, 2, 0, 1, 2, 3, 4};
    CHECK(memcmp(pos, want, sizeof want) == 0, "positions cumsum(mask) - mask: got %d %d %d %d %d", pos[0], pos[1],
          pos[2], pos[3], pos[4]);
}

static void test_values(void) {
    // hidden (1, T=3, C=2) at positions P-1.. with P=1: slots 0..1 use hidden rows 0..1
    float hidden[6] = {1, 2, 3, 4, 5, 6}, w[2] = {0.5f, -1}, out[2];
    ppo_values_from_hidden(out, hidden, w, 0.25f, 1, 3, 1, 2, 2);
    float want[2] = {0.5f - 2 + 0.25f, 1.5f - 4 + 0.25f};
    tu_close("values from hidden", out, want, 2, 1e-6, 0);
}

static void test_args(void) {
    ppo_args a;
    ppo_args_defaults(&a);
    rlhf_err err;
    CHECK(ppo_args_check(&a, &err) == RLHF_EINPUT && strstr(err.msg, "--model_name_or_path"), "missing model: %s", err.msg);
    a.model_name_or_path = a.sft_model_path = a.reward_model_path = a.dataset_name = a.output_dir = "x";
    CHECK(ppo_args_check(&a, &err) == RLHF_OK, "defaults should pass: %s", err.msg);
    CHECK(a.learning_rate == 3e-6 && a.num_ppo_epochs == 4 && a.response_length == 53 && a.kl_coef == 0.05 &&
              a.temperature == 0.7 && a.vf_coef == 0.1 && a.lam == 0.95 && a.value_model == PPO_VALUE_REWARD,
          "TRL PPOConfig defaults");
    a.temperature = 0;
    CHECK(ppo_args_check(&a, &err) == RLHF_EINPUT && strstr(err.msg, "--temperature"), "temperature: %s", err.msg);
    a.temperature = 0.7;
    a.lam = 1.5;
    CHECK(ppo_args_check(&a, &err) == RLHF_EINPUT && strstr(err.msg, "--lam"), "lam: %s", err.msg);
    a.lam = 0.95;
    a.cliprange = NAN;
    CHECK(ppo_args_check(&a, &err) == RLHF_EINPUT && strstr(err.msg, "--cliprange"), "cliprange: %s", err.msg);
    CHECK(ppo_num_updates(100, 16) == 7 && ppo_num_updates(96, 16) == 6 && ppo_num_updates(1, 64) == 1,
          "num updates = ceil(total_episodes / batch)");
    char buf[40];
    ppo_format_value(buf, sizeof buf, 1, 12.0);
    CHECK(!strcmp(buf, "12"), "step column is an integer: %s", buf);
    ppo_format_value(buf, sizeof buf, 2, NAN);
    CHECK(!strcmp(buf, "nan"), "NaN cell: %s", buf);
}

int main(void) {
    test_logprobs_and_gradient();
    test_positions();
    test_values();
    test_args();
    return tu_finish("train_ppo_trainer");
}
