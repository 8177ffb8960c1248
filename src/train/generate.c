// Batched generation over a KV cache (see generate.h). One prefill over the left-padded prompts, then
// one decode step per new token; the cache, the logits and every scratch buffer are allocated once
// per call, never per token.
#include "train/generate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "models/kv_cache.h"

// (value, index) pairs sorted ascending by value, ties by index.
typedef struct {
    float v;
    int i;
} pair_fi;
static int cmp_pair(const void *a, const void *b) {
    const pair_fi *x = a, *y = b;
    if (x->v != y->v) return x->v < y->v ? -1 : 1;
    return x->i - y->i;
}

void gen_warp_probs(float *probs, const float *logits, int V, float temperature, int top_k, float top_p) {
    float inv_t = 1.0f / temperature;
    for (int i = 0; i < V; i++) probs[i] = logits[i] * inv_t;  // warped logits, -INF when removed
    if (top_k > 0 && top_k < V) {
        // TopKLogitsWarper: remove scores < the k-th largest (ties with it survive).
        pair_fi *p = malloc(sizeof *p * (size_t)V);
        for (int i = 0; i < V; i++) p[i].v = probs[i], p[i].i = i;
        qsort(p, (size_t)V, sizeof *p, cmp_pair);
        float kth = p[V - top_k].v;
        free(p);
        for (int i = 0; i < V; i++)
            if (probs[i] < kth) probs[i] = -INFINITY;
    }
    float mx = -INFINITY;
    for (int i = 0; i < V; i++) mx = fmaxf(mx, probs[i]);
    double sum = 0;
    for (int i = 0; i < V; i++) sum += probs[i] == -INFINITY ? 0.0 : exp((double)probs[i] - mx);
    for (int i = 0; i < V; i++) probs[i] = probs[i] == -INFINITY ? 0.0f : (float)(exp((double)probs[i] - mx) / sum);
    if (top_p < 1.0f) {
        // TopPLogitsWarper: ascending sort, cumulative probability, remove where cum <= 1 - top_p,
        // always keeping the most probable token.
        pair_fi *p = malloc(sizeof *p * (size_t)V);
        for (int i = 0; i < V; i++) p[i].v = probs[i], p[i].i = i;
        qsort(p, (size_t)V, sizeof *p, cmp_pair);
        double cum = 0, kept = 0;
        for (int r = 0; r < V; r++) {
            cum += p[r].v;
            if (r < V - 1 && cum <= 1.0 - (double)top_p)
                probs[p[r].i] = 0.0f;
            else
                kept += p[r].v;
        }
        free(p);
        for (int i = 0; i < V; i++) probs[i] = (float)(probs[i] / kept);
    }
}

int gen_sample(const float *probs, int V, double u) {
    double total = 0;
    for (int i = 0; i < V; i++) total += probs[i];
    double target = u * total, cum = 0;
    int last = 0;
    for (int i = 0; i < V; i++) {
        if (probs[i] <= 0) continue;
        cum += probs[i];
        last = i;
        if (cum > target) return i;
    }
    return last;
}

static int argmax(const float *x, int V) {
    int best = 0;
    for (int i = 1; i < V; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

static float logprob_at(const float *logits, int V, float temperature, int tok) {
    float inv_t = 1.0f / temperature, mx = -INFINITY;
    for (int i = 0; i < V; i++) mx = fmaxf(mx, logits[i] * inv_t);
    double sum = 0;
    for (int i = 0; i < V; i++) sum += exp((double)(logits[i] * inv_t) - mx);
    return (float)((double)(logits[tok] * inv_t) - mx - log(sum));
}

void gen_output_free(gen_output *o) {
    free(o->tokens);
    free(o->mask);
    free(o->logprobs);
    free(o->lengths);
    memset(o, 0, sizeof *o);
}

rlhf_status generate(model *m, const int32_t *const *prompts, const int *prompt_lens, const uint64_t *row_ids,
                     int B, const gen_config *g, gen_output *out, rlhf_err *err) {
    memset(out, 0, sizeof *out);
    if (!m->family->decode)
        return rlhf_fail(err, RLHF_EINPUT, "model_type '%s' cannot generate (not a causal LM)", m->cfg.model_type);
    if (m->head != HEAD_LM) return rlhf_fail(err, RLHF_ERUNTIME, "generate needs a causal-LM head");
    if (B <= 0 || g->max_new_tokens <= 0) return rlhf_fail(err, RLHF_EINPUT, "--max_new_tokens must be >= 1");
    if (!(g->temperature > 0)) return rlhf_fail(err, RLHF_EINPUT, "--temperature must be > 0");
    if (g->top_k < 0) return rlhf_fail(err, RLHF_EINPUT, "--top_k must be >= 0");
    if (!(g->top_p > 0 && g->top_p <= 1)) return rlhf_fail(err, RLHF_EINPUT, "--top_p must be in (0, 1]");
    int Tp = 0;
    for (int b = 0; b < B; b++) {
        if (prompt_lens[b] <= 0) return rlhf_fail(err, RLHF_EINPUT, "prompt %d is empty", b);
        if (prompt_lens[b] > Tp) Tp = prompt_lens[b];
    }
    int V = m->cfg.vocab_size, M = g->max_new_tokens;
    int pad = g->pad_token_id >= 0 ? g->pad_token_id : 0;
    kv_cache kc;
    RLHF_TRY(kv_cache_for_model(&kc, m, B, Tp + M, err));
    size_t n = (size_t)B * Tp;
    int32_t *ids = malloc(sizeof(int32_t) * n), *mask = malloc(sizeof(int32_t) * n);
    int32_t *pos = malloc(sizeof(int32_t) * n), *n_real = malloc(sizeof(int32_t) * B);
    int32_t *done = calloc((size_t)B, sizeof(int32_t));
    float *logits = malloc(sizeof(float) * (size_t)B * V), *probs = malloc(sizeof(float) * V);
    out->tokens = malloc(sizeof(int32_t) * (size_t)B * M);
    out->mask = calloc((size_t)B * M, sizeof(int32_t));
    out->logprobs = calloc((size_t)B * M, sizeof(float));
    out->lengths = calloc((size_t)B, sizeof(int));
    out->B = B, out->max_new = M;
    rlhf_status st = RLHF_OK;
    if (!ids || !mask || !pos || !n_real || !done || !logits || !probs || !out->tokens || !out->mask ||
        !out->logprobs || !out->lengths)
        st = rlhf_fail(err, RLHF_ERUNTIME, "out of memory (generate)");
    if (st == RLHF_OK) {
        // left padding; positions cumsum(mask) - 1 with pads at 1 (HF prepare_inputs_for_generation)
        for (int b = 0; b < B; b++) {
            int off = Tp - prompt_lens[b];
            for (int t = 0; t < Tp; t++) {
                size_t i = (size_t)b * Tp + t;
                ids[i] = t < off ? pad : prompts[b][t - off];
                mask[i] = t >= off;
                pos[i] = t < off ? 1 : t - off;
            }
            n_real[b] = prompt_lens[b];
        }
        for (size_t i = 0; i < (size_t)B * M; i++) out->tokens[i] = pad;
        st = m->family->decode(m, &kc, ids, mask, pos, Tp, logits, err);
    }
    for (int step = 0; st == RLHF_OK && step < M; step++) {
        int n_active = 0;
        for (int b = 0; b < B; b++) {
            if (done[b]) continue;
            const float *lg = logits + (size_t)b * V;
            int tok;
            if (g->do_sample) {
                gen_warp_probs(probs, lg, V, g->temperature, g->top_k, g->top_p);
                uint64_t key = rng_key(g->seed, RNG_STREAM_SAMPLE, row_ids ? row_ids[b] : (uint64_t)b, (uint64_t)step);
                tok = gen_sample(probs, V, rng_uniform_double(key, 0));
            } else {
                tok = argmax(lg, V);
            }
            size_t o = (size_t)b * M + step;
            out->tokens[o] = tok;
            out->mask[o] = 1;
            out->logprobs[o] = logprob_at(lg, V, g->temperature, tok);
            out->lengths[b]++;
            if (tok == g->eos_token_id || tok == g->stop_token_id) done[b] = 1;
            else n_active++;
        }
        if (n_active == 0 || step == M - 1) break;
        // feed the new tokens: finished rows feed padding, masked out
        for (int b = 0; b < B; b++) {
            ids[b] = done[b] ? pad : out->tokens[(size_t)b * M + step];
            mask[b] = !done[b];
            pos[b] = n_real[b]++;
        }
        st = m->family->decode(m, &kc, ids, mask, pos, 1, logits, err);
    }
    free(ids);
    free(mask);
    free(pos);
    free(n_real);
    free(done);
    free(logits);
    free(probs);
    kv_cache_free(&kc);
    if (st != RLHF_OK) gen_output_free(out);
    return st;
}
