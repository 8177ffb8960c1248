// rlhf side of the reward-step benchmark (issue 4): one training step = chosen and rejected of P pairs in one
// forward (2P rows of T tokens) through BertForSequenceClassification, pairwise loss, backward, grad clipping,
// AdamW — the same work as bench/torch_reward_step.py. Prints one JSON line: pairs/s, s/step, the mean
// seconds of the forward, the backward and clipping + AdamW, peak RSS.
// usage: bench_reward_step HIDDEN LAYERS HEADS INTERMEDIATE T PAIRS STEPS [DROPOUT (default 0.1)]
// With BENCH_MARKS set, prints "mark PHASE START END" lines (CLOCK_MONOTONIC seconds) to stderr for every
// timed step, so bench/profile.sh can split a `perf record -k CLOCK_MONOTONIC` profile by phase.
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/cpu.h"
#include "base/arena.h"
#include "base/rng.h"
#include "models/model.h"
#include "nn/ops.h"
#include "train/optimizer.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    cpu_flush_denormals();
    if (argc != 8 && argc != 9) {
        fprintf(stderr, "usage: %s HIDDEN LAYERS HEADS INTERMEDIATE T PAIRS STEPS [DROPOUT]\n", argv[0]);
        return 2;
    }
    int H = atoi(argv[1]), L = atoi(argv[2]), NH = atoi(argv[3]), I = atoi(argv[4]);
    int T = atoi(argv[5]), P = atoi(argv[6]), steps = atoi(argv[7]);
    double drop = argc == 9 ? atof(argv[8]) : 0.1;
    int marks = getenv("BENCH_MARKS") != NULL;
    cJSON *cfg = cJSON_CreateObject();
    cJSON *arch = cJSON_AddArrayToObject(cfg, "architectures");
    cJSON_AddItemToArray(arch, cJSON_CreateString("BertForSequenceClassification"));
    cJSON_AddStringToObject(cfg, "model_type", "bert");
    cJSON_AddNumberToObject(cfg, "vocab_size", 30522);
    cJSON_AddNumberToObject(cfg, "hidden_size", H);
    cJSON_AddNumberToObject(cfg, "num_hidden_layers", L);
    cJSON_AddNumberToObject(cfg, "num_attention_heads", NH);
    cJSON_AddNumberToObject(cfg, "intermediate_size", I);
    cJSON_AddNumberToObject(cfg, "max_position_embeddings", 512);
    cJSON_AddNumberToObject(cfg, "type_vocab_size", 2);
    cJSON_AddNumberToObject(cfg, "num_labels", 1);
    cJSON_AddNumberToObject(cfg, "hidden_dropout_prob", drop);
    cJSON_AddNumberToObject(cfg, "attention_probs_dropout_prob", drop);
    cJSON_AddNumberToObject(cfg, "initializer_range", 0.02);
    cJSON_AddNumberToObject(cfg, "layer_norm_eps", 1e-12);
    cJSON_AddNumberToObject(cfg, "pad_token_id", 0);
    cJSON_AddStringToObject(cfg, "hidden_act", "gelu");

    rlhf_err err;
    rlhf_err_clear(&err);
    model *m = NULL;
    if (model_create(&m, cfg, HEAD_SEQCLS, 0, &err) || model_alloc_grads(m, &err)) {
        fprintf(stderr, "bench_reward_step: %s\n", err.msg);
        return 1;
    }
    adamw_state opt;
    if (adamw_init(&opt, m->n_params, &err)) {
        fprintf(stderr, "bench_reward_step: %s\n", err.msg);
        return 1;
    }
    adamw_config ac = {0.9, 0.999, 1e-8, 0.0};
    int B = 2 * P;
    int32_t *ids = malloc(sizeof(int32_t) * B * T), *mask = malloc(sizeof(int32_t) * B * T);
    uint64_t key = rng_key(1, 99, 0, 0);
    for (int i = 0; i < B * T; i++) {
        ids[i] = 1 + (int32_t)rng_below(key, i, 30521);
        mask[i] = 1;
    }
    float *dscores = calloc(B, sizeof(float));
    double t0 = 0, tf = 0, tb = 0, to = 0;
    for (int s = 0; s <= steps; s++) {
        if (s == 1) t0 = now();  // step 0 warms up (arena sizing, first-touch)
        model_batch b = {.B = B, .T = T, .input_ids = ids, .attention_mask = mask, .training = 1,
                         .dropout_key = rng_key(1, RNG_STREAM_DROPOUT, s, 0)};
        double a0 = now();
        model_zero_grads(m);
        if (model_forward(m, &b, &err)) break;
        double a1 = now();
        memset(dscores, 0, sizeof(float) * B);
        pairwise_loss_forward(m->out, m->out + P, NULL, 0.0f, P);
        pairwise_loss_backward(dscores, dscores + P, m->out, m->out + P, NULL, 0.0f, P, 1.0f);
        if (model_backward(m, dscores, NULL, &err)) break;
        double a2 = now();
        clip_grad_norm(m->grads, m->n_params, 1.0);
        adamw_step(&opt, m->params, m->grads, m->specs, m->n_specs, 1e-5, &ac);
        double a3 = now();
        if (s > 0) {
            tf += a1 - a0, tb += a2 - a1, to += a3 - a2;
            if (marks)
                fprintf(stderr, "mark forward %.6f %.6f\nmark backward %.6f %.6f\nmark optimizer %.6f %.6f\n", a0,
                        a1, a1, a2, a2, a3);
        }
    }
    if (err.code) {
        fprintf(stderr, "bench_reward_step: %s\n", err.msg);
        return 1;
    }
    double dt = (now() - t0) / steps;
    printf("{\"pairs_per_s\": %.4f, \"step_s\": %.4f, \"forward_s\": %.4f, \"backward_s\": %.4f, "
           "\"optimizer_s\": %.4f, \"peak_rss_mb\": %.1f}\n",
           P / dt, dt, tf / steps, tb / steps, to / steps, rlhf_peak_rss() / 1048576.0);
    free(ids); free(mask); free(dscores);
    adamw_free(&opt);
    model_free(m);
    cJSON_Delete(cfg);
    return 0;
}
