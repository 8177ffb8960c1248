// Generation with the KV cache on the causal-LM fixtures: greedy tokens equal greedy decoding
// that recomputes the whole sequence each step, their log-probs equal a full forward's, a left-padded
// batch equals one prompt at a time (greedy and sampled), EOS stops a row, and HF's warpers.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "models/model.h"
#include "testutil.h"
#include "train/generate.h"

#define LOGPROB_ATOL 1e-5  // brief: KV-cache log-probs vs a full forward
#define MAX_NEW 8

// Prompts: the fixture's right-padded rows (lengths 8, 5, 3, 6).
static const int32_t P0[] = {25, 97, 10, 84, 103, 49, 64, 9}, P1[] = {98, 9, 45, 5, 95}, P2[] = {98, 24, 54},
                     P3[] = {28, 34, 66, 56, 15, 105};
static const int32_t *const PROMPTS[] = {P0, P1, P2, P3};
static const int LENS[] = {8, 5, 3, 6};
#define NP 4

static double log_softmax_at(const float *x, int V, int tok) {
    double mx = -INFINITY, s = 0;
    for (int i = 0; i < V; i++) mx = fmax(mx, x[i]);
    for (int i = 0; i < V; i++) s += exp(x[i] - mx);
    return x[tok] - mx - log(s);
}

static void check_against_full_forward(model *m, const char *name, const gen_output *o) {
    rlhf_err err;
    int V = m->cfg.vocab_size;
    for (int b = 0; b < NP; b++) {
        int T = LENS[b] + o->lengths[b];
        int32_t seq[64];
        memcpy(seq, PROMPTS[b], sizeof(int32_t) * LENS[b]);
        for (int s = 0; s < o->lengths[b]; s++) seq[LENS[b] + s] = o->tokens[b * o->max_new + s];
        model_batch batch = {.B = 1, .T = T, .input_ids = seq};
        if (model_forward(m, &batch, &err) != RLHF_OK) {
            CHECK(0, "%s forward: %s", name, err.msg);
            return;
        }
        double worst = 0;
        for (int s = 0; s < o->lengths[b]; s++) {
            const float *lg = m->out + (size_t)(LENS[b] + s - 1) * V;
            int best = 0;
            for (int i = 1; i < V; i++)
                if (lg[i] > lg[best]) best = i;
            int tok = o->tokens[b * o->max_new + s];
            CHECK(lg[tok] >= lg[best] - 1e-5f, "%s row %d step %d: cached greedy %d, recomputed greedy %d", name, b, s,
                  tok, best);
            worst = fmax(worst, fabs(log_softmax_at(lg, V, tok) - o->logprobs[b * o->max_new + s]));
        }
        CHECK(worst <= LOGPROB_ATOL, "%s row %d: log-prob error %.3g > %g", name, b, worst, LOGPROB_ATOL);
    }
}

static void check_batch_equals_single(model *m, const char *name, const gen_config *g, const gen_output *batch) {
    rlhf_err err;
    for (int b = 0; b < NP; b++) {
        gen_output one;
        uint64_t row = 100 + b;
        if (generate(m, &PROMPTS[b], &LENS[b], &row, 1, g, &one, &err) != RLHF_OK) {
            CHECK(0, "%s single: %s", name, err.msg);
            return;
        }
        CHECK(one.lengths[0] == batch->lengths[b], "%s row %d: length %d alone, %d in a batch", name, b,
              one.lengths[0], batch->lengths[b]);
        for (int s = 0; s < one.lengths[0] && s < batch->lengths[b]; s++) {
            CHECK(one.tokens[s] == batch->tokens[b * batch->max_new + s], "%s row %d step %d: %d alone, %d batched",
                  name, b, s, one.tokens[s], batch->tokens[b * batch->max_new + s]);
            CHECK(fabsf(one.logprobs[s] - batch->logprobs[b * batch->max_new + s]) <= LOGPROB_ATOL,
                  "%s row %d step %d log-prob", name, b, s);
        }
        gen_output_free(&one);
    }
}

// Repeated prompts (GRPO's num_generations copies; the same pointer or an equal copy) share one prefill: every
// row still samples what it samples alone, with its own (seed, row) draws.
static void check_repeated_prompts(model *m, const char *name) {
    rlhf_err err;
    int32_t p1_copy[5];
    memcpy(p1_copy, P1, sizeof p1_copy);
    const int32_t *const rep[] = {P0, P1, P0, p1_copy, P2, P0};
    const int lens[] = {8, 5, 8, 5, 3, 8};
    enum { NR = 6 };
    uint64_t rows[NR] = {200, 201, 202, 203, 204, 205};
    gen_config samp = {.max_new_tokens = MAX_NEW, .do_sample = 1, .temperature = 0.9f, .top_p = 1.0f,
                       .eos_token_id = -1, .stop_token_id = -1, .pad_token_id = -1, .seed = 11};
    gen_output o;
    if (generate(m, rep, lens, rows, NR, &samp, &o, &err) != RLHF_OK) {
        CHECK(0, "%s repeated prompts: %s", name, err.msg);
        return;
    }
    for (int b = 0; b < NR; b++) {
        gen_output one;
        CHECK(generate(m, &rep[b], &lens[b], &rows[b], 1, &samp, &one, &err) == RLHF_OK, "%s", err.msg);
        for (int s = 0; s < MAX_NEW; s++) {
            CHECK(one.tokens[s] == o.tokens[b * o.max_new + s], "%s repeated row %d step %d: %d alone, %d batched",
                  name, b, s, one.tokens[s], o.tokens[b * o.max_new + s]);
            CHECK(fabsf(one.logprobs[s] - o.logprobs[b * o.max_new + s]) <= LOGPROB_ATOL,
                  "%s repeated row %d step %d log-prob %g alone, %g batched", name, b, s, one.logprobs[s],
                  o.logprobs[b * o.max_new + s]);
        }
        gen_output_free(&one);
    }
    gen_output_free(&o);
}

static void run(const char *fixture) {
    char dir[256];
    snprintf(dir, sizeof dir, TU_FIXTURES "/hf/%s", fixture);
    rlhf_err err;
    model *m;
    model_load_opts opts = {.quiet = 1};
    if (model_load(&m, dir, HEAD_LM, &opts, &err) != RLHF_OK) {
        CHECK(0, "%s: %s", fixture, err.msg);
        return;
    }
    uint64_t rows[NP] = {100, 101, 102, 103};
    gen_config greedy = {.max_new_tokens = MAX_NEW, .temperature = 1.0f, .top_p = 1.0f, .eos_token_id = -1,
                         .stop_token_id = -1, .pad_token_id = -1};
    gen_output o;
    CHECK(generate(m, PROMPTS, LENS, rows, NP, &greedy, &o, &err) == RLHF_OK, "%s: %s", fixture, err.msg);
    for (int b = 0; b < NP; b++) CHECK(o.lengths[b] == MAX_NEW, "%s row %d length %d", fixture, b, o.lengths[b]);
    check_against_full_forward(m, fixture, &o);
    check_batch_equals_single(m, fixture, &greedy, &o);

    // EOS = row 0's third greedy token: row 0 stops there, later columns are padding
    gen_config stop = greedy;
    stop.eos_token_id = o.tokens[2];
    stop.pad_token_id = 0;
    gen_output os;
    CHECK(generate(m, PROMPTS, LENS, rows, NP, &stop, &os, &err) == RLHF_OK, "%s", err.msg);
    int first = 0;
    while (o.tokens[first] != stop.eos_token_id) first++;
    CHECK(os.lengths[0] == first + 1, "%s: EOS row length %d, expected %d", fixture, os.lengths[0], first + 1);
    for (int s = first + 1; s < MAX_NEW; s++)
        CHECK(os.mask[s] == 0 && os.tokens[s] == 0, "%s: after EOS step %d not padding", fixture, s);
    gen_output_free(&os);

    // top_k = 1 sampling is greedy
    gen_config k1 = greedy;
    k1.do_sample = 1, k1.top_k = 1, k1.seed = 5;
    gen_output ok1;
    CHECK(generate(m, PROMPTS, LENS, rows, NP, &k1, &ok1, &err) == RLHF_OK, "%s", err.msg);
    CHECK(!memcmp(ok1.tokens, o.tokens, sizeof(int32_t) * NP * MAX_NEW), "%s: top_k=1 sampling != greedy", fixture);
    gen_output_free(&ok1);

    // sampling: same (seed, row, step) -> same tokens whatever the batch
    gen_config samp = greedy;
    samp.do_sample = 1, samp.temperature = 0.8f, samp.top_k = 40, samp.top_p = 0.95f, samp.seed = 7;
    gen_output o2;
    CHECK(generate(m, PROMPTS, LENS, rows, NP, &samp, &o2, &err) == RLHF_OK, "%s", err.msg);
    check_batch_equals_single(m, fixture, &samp, &o2);
    check_repeated_prompts(m, fixture);
    samp.seed = 8;
    gen_output o3;
    CHECK(generate(m, PROMPTS, LENS, rows, NP, &samp, &o3, &err) == RLHF_OK, "%s", err.msg);
    CHECK(memcmp(o2.tokens, o3.tokens, sizeof(int32_t) * NP * MAX_NEW) != 0, "%s: seed changes nothing", fixture);
    gen_output_free(&o2);
    gen_output_free(&o3);
    gen_output_free(&o);
    model_free(m);
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

// gen_topk_threshold (quickselect) against the reference: a full sort, element n - k
static void test_topk_threshold(void) {
    enum { N = 5003 };
    float *x = malloc(sizeof(float) * N), *sorted = malloc(sizeof(float) * N), *scratch = malloc(sizeof(float) * N);
    int bad = 0;
    for (int trial = 0; trial < 6; trial++) {
        int n = trial < 3 ? N : 1 + trial * 7;
        for (int i = 0; i < n; i++) {
            double u = rng_uniform_double(rng_key(11, 0, (uint64_t)trial, 0), (uint64_t)i);
            // trials 1 and 4: few distinct values (ties); 2: sorted descending; else continuous
            x[i] = trial % 3 == 1 ? (float)(int)(u * 5) : trial == 2 ? (float)(n - i) : (float)(u * 20 - 10);
        }
        memcpy(sorted, x, sizeof(float) * n);
        qsort(sorted, (size_t)n, sizeof(float), cmp_float);
        const int ks[] = {1, 2, 3, 40, n / 2, n - 1, n};
        for (size_t j = 0; j < sizeof ks / sizeof *ks; j++) {
            int k = ks[j] < 1 ? 1 : ks[j] > n ? n : ks[j];
            bad += gen_topk_threshold(x, n, k, scratch) != sorted[n - k];
        }
    }
    CHECK(bad == 0, "top-k threshold differs from the sorted reference in %d cases", bad);
    free(x);
    free(sorted);
    free(scratch);
}

static void test_warpers(void) {
    const float logits[4] = {1, 2, 3, 4};
    float p[4];
    gen_warp_probs(p, logits, 4, 1.0f, 2, 1.0f, 0.0f);
    double e = exp(-1.0);
    CHECK(p[0] == 0 && p[1] == 0 && fabs(p[2] - e / (1 + e)) < 1e-6 && fabs(p[3] - 1 / (1 + e)) < 1e-6,
          "top_k=2: %g %g %g %g", p[0], p[1], p[2], p[3]);
    gen_warp_probs(p, logits, 4, 1.0f, 0, 0.8f, 0.0f);  // probs .032 .087 .237 .644: cum .032 .119 <= .2 removed
    CHECK(p[0] == 0 && p[1] == 0 && p[2] > 0 && p[3] > 0, "top_p=0.8: %g %g %g %g", p[0], p[1], p[2], p[3]);
    CHECK(fabs(p[2] + p[3] - 1) < 1e-6, "renormalised");
    gen_warp_probs(p, logits, 4, 1.0f, 0, 0.5f, 0.0f);  // cum .356 <= .5 also removed
    CHECK(p[0] == 0 && p[1] == 0 && p[2] == 0 && fabs(p[3] - 1) < 1e-6, "top_p=0.5: %g %g %g %g", p[0], p[1], p[2],
          p[3]);
    gen_warp_probs(p, logits, 4, 2.0f, 0, 1.0f, 0.0f);  // temperature 2: softmax(0.5, 1, 1.5, 2)
    double z = exp(0.5) + exp(1) + exp(1.5) + exp(2);
    CHECK(fabs(p[0] - exp(0.5) / z) < 1e-6, "temperature: %g", p[0]);
    CHECK(gen_sample(p, 4, 0.0) == 0 && gen_sample(p, 4, 0.999999) == 3, "inverse CDF ends");
    // min_p 0.3: probs .032 .087 .237 .644 -> below 0.3 * .644 = .193 removed (tokens 0, 1)
    gen_warp_probs(p, logits, 4, 1.0f, 0, 1.0f, 0.3f);
    CHECK(p[0] == 0 && p[1] == 0 && fabs(p[2] - e / (1 + e)) < 1e-6, "min_p=0.3: %g %g %g %g", p[0], p[1], p[2], p[3]);
    // repetition penalty 2 over ids {3, 0, 3}: positive logit divided, negative multiplied, id 3 once
    float zr[4] = {-1.0f, 2.0f, 3.0f, 4.0f};
    const int32_t hist[3] = {3, 0, 3};
    gen_repetition_penalty(zr, hist, 3, 2.0f);
    CHECK(zr[0] == -2.0f && zr[1] == 2.0f && zr[2] == 3.0f && zr[3] == 2.0f, "repetition penalty: %g %g %g %g", zr[0],
          zr[1], zr[2], zr[3]);
}

int main(void) {
    test_topk_threshold();
    test_warpers();
    run("gpt2_lm");
    run("gptneox_lm");
    run("llama_lm");
    run("mistral_lm");
    run("qwen2_lm");
    run("gemma_lm");
    run("gemma2_lm");  // sliding window 4 < prompt + 8 new tokens, both soft-caps on
    run("phi3_lm");
    return tu_finish("train_generate");
}
