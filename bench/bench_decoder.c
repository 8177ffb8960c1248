// Decoder benchmark, rlhf side: a randomly initialised GPT-2-shaped GPT2LMHeadModel (no dropout),
//   gen:   batched greedy generation with the KV cache (B prompts of Tp tokens, NEW new tokens, no stop),
//          one untimed warm-up call, then one timed call
//   train: one causal-LM training step (forward, token cross-entropy, backward, clipping, AdamW) on (B, T)
// Prints one JSON line: {"tokens_per_s", "step_s", "peak_rss_mb"}.
// usage: bench_decoder gen|train N_EMBD N_LAYER N_HEAD B T_PROMPT_OR_T NEW_OR_STEPS
// train with BENCH_MARKS set: "mark PHASE START END" lines (CLOCK_MONOTONIC seconds) on stderr for every timed
// step (forward, backward = loss + backward, optimizer = clipping + AdamW), for bench/profile.sh.
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
#include "train/generate.h"
#include "train/optimizer.h"

#define BENCH_VOCAB 50257
#define BENCH_POSITIONS 1024

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void die(const rlhf_err *e) {
    fprintf(stderr, "bench_decoder: %s\n", e->msg);
    exit(1);
}

int main(int argc, char **argv) {
    cpu_flush_denormals();
    if (argc != 8) {
        fprintf(stderr, "usage: bench_decoder gen|train N_EMBD N_LAYER N_HEAD B T NEW_OR_STEPS\n");
        return 2;
    }
    int gen = !strcmp(argv[1], "gen");
    int C = atoi(argv[2]), L = atoi(argv[3]), NH = atoi(argv[4]), B = atoi(argv[5]), T = atoi(argv[6]);
    int K = atoi(argv[7]);
    cJSON *cfg = cJSON_CreateObject();
    cJSON_AddStringToObject(cfg, "model_type", "gpt2");
    cJSON_AddNumberToObject(cfg, "vocab_size", BENCH_VOCAB);
    cJSON_AddNumberToObject(cfg, "n_embd", C);
    cJSON_AddNumberToObject(cfg, "n_layer", L);
    cJSON_AddNumberToObject(cfg, "n_head", NH);
    cJSON_AddNumberToObject(cfg, "n_positions", BENCH_POSITIONS);
    cJSON_AddNumberToObject(cfg, "resid_pdrop", 0.0);
    cJSON_AddNumberToObject(cfg, "embd_pdrop", 0.0);
    cJSON_AddNumberToObject(cfg, "attn_pdrop", 0.0);
    rlhf_err err;
    model *m;
    if (model_create(&m, cfg, HEAD_LM, 1, &err) != RLHF_OK) die(&err);
    cJSON_Delete(cfg);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)B * T);
    uint64_t key = rng_key(7, RNG_STREAM_SAMPLE, 0, 0);
    for (size_t i = 0; i < (size_t)B * T; i++) ids[i] = (int32_t)rng_below(key, i, BENCH_VOCAB);
    double t0, dt;
    if (gen) {
        const int32_t **prompts = malloc(sizeof *prompts * B);
        int *lens = malloc(sizeof(int) * B);
        for (int b = 0; b < B; b++) prompts[b] = ids + (size_t)b * T, lens[b] = T;
        gen_config g = {.max_new_tokens = K, .temperature = 1.0f, .top_p = 1.0f, .eos_token_id = -1,
                        .stop_token_id = -1, .pad_token_id = 0};
        gen_output o;
        // warm-up (page faults of the weights and buffers), as the PyTorch side does
        if (generate(m, prompts, lens, NULL, B, &g, &o, &err) != RLHF_OK) die(&err);
        gen_output_free(&o);
        t0 = now();
        if (generate(m, prompts, lens, NULL, B, &g, &o, &err) != RLHF_OK) die(&err);
        dt = now() - t0;
        gen_output_free(&o);
        free(prompts);
        free(lens);
        printf("{\"tokens_per_s\": %.3f, \"step_s\": %.4f, \"peak_rss_mb\": %.0f}\n", B * K / dt, dt / K,
               rlhf_peak_rss() / 1048576.0);
    } else {
        int32_t *targets = malloc(sizeof(int32_t) * (size_t)B * T);
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) targets[b * T + t] = t + 1 < T ? ids[b * T + t + 1] : CE_IGNORE_INDEX;
        size_t NV = (size_t)B * T * BENCH_VOCAB;
        float *dlogits = malloc(sizeof(float) * NV);
        adamw_state opt;
        adamw_config ac = {0.9, 0.999, 1e-8, 0.0};
        if (model_alloc_grads(m, &err) != RLHF_OK || adamw_init(&opt, m->n_params, &err) != RLHF_OK) die(&err);
        model_batch batch = {.B = B, .T = T, .input_ids = ids, .training = 1};
        double total = 0, a1 = 0, a2 = 0;
        int marks = getenv("BENCH_MARKS") != NULL;
        for (int s = 0; s <= K; s++) {  // step 0 warms up (arena sizing, page faults)
            t0 = now();
            model_zero_grads(m);
            if (model_forward(m, &batch, &err) != RLHF_OK) die(&err);
            a1 = now();
            int n;
            cross_entropy_forward(m->out, targets, B * T, BENCH_VOCAB, &n);
            memset(dlogits, 0, sizeof(float) * NV);
            cross_entropy_backward(dlogits, m->out, targets, B * T, BENCH_VOCAB, n, 1.0f);
            if (model_backward(m, dlogits, NULL, &err) != RLHF_OK) die(&err);
            a2 = now();
            clip_grad_norm(m->grads, m->n_params, 1.0);
            adamw_step(&opt, m->params, m->grads, m->specs, m->n_specs, 1e-5, &ac);
            if (s > 0) total += now() - t0;
            if (s > 0 && marks)
                fprintf(stderr, "mark forward %.6f %.6f\nmark backward %.6f %.6f\nmark optimizer %.6f %.6f\n", t0,
                        a1, a1, a2, a2, now());
        }
        dt = total / K;
        printf("{\"tokens_per_s\": %.3f, \"step_s\": %.4f, \"peak_rss_mb\": %.0f}\n", B * T / dt, dt,
               rlhf_peak_rss() / 1048576.0);
        adamw_free(&opt);
        free(dlogits);
        free(targets);
    }
    free(ids);
    model_free(m);
    return 0;
}
