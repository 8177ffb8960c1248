// Batched generation over a KV cache (see generate.h). One prefill over the left-padded prompts, then
// one decode step per new token; the cache, the logits and every scratch buffer are allocated once
// per call, never per token.
#include "train/generate.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "models/kv_cache.h"
#include "nn/ops.h"

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

float gen_topk_threshold(const float *x, int n, int k, float *scratch) {
    // quickselect for ascending rank n - k (the k-th largest value): a value, so the same whatever the order
    // of ties, and what the sort in tests/test_train_generate.c's reference gives
    memcpy(scratch, x, sizeof(float) * (size_t)n);
    int lo = 0, hi = n - 1, want = n - k;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        // median of three as the pivot
        float a = scratch[lo], b = scratch[mid], c = scratch[hi];
        float pivot = a < b ? (b < c ? b : (a < c ? c : a)) : (a < c ? a : (b < c ? c : b));
        int i = lo, j = hi;
        while (i <= j) {  // Hoare partition: [lo, j] <= pivot <= [i, hi]
            while (scratch[i] < pivot) i++;
            while (scratch[j] > pivot) j--;
            if (i <= j) {
                float t = scratch[i];
                scratch[i++] = scratch[j];
                scratch[j--] = t;
            }
        }
        if (want <= j) hi = j;
        else if (want >= i) lo = i;
        else break;  // want lies between j and i: equal to the pivot
    }
    return scratch[want];
}

// gen_warp_probs with the caller's scratch: expd (V) keeps each exp from the normalising pass for the
// division, so the V double exps are taken once, not twice (same values as computing them again).
static void warp_probs(float *probs, double *expd, const float *logits, int V, float temperature, int top_k,
                       float top_p, float min_p) {
    float inv_t = 1.0f / temperature;
    for (int i = 0; i < V; i++) probs[i] = logits[i] * inv_t;  // warped logits, -INF when removed
    if (top_k > 0 && top_k < V) {
        // TopKLogitsWarper: remove scores < the k-th largest (ties with it survive). expd is free until the
        // exps below: V doubles hold the V-float copy the selection reorders.
        float kth = gen_topk_threshold(probs, V, top_k, (float *)expd);
        for (int i = 0; i < V; i++)
            if (probs[i] < kth) probs[i] = -INFINITY;
    }
    float mx = -INFINITY;
    for (int i = 0; i < V; i++) mx = fmaxf(mx, probs[i]);
    double sum = 0;
    for (int i = 0; i < V; i++) {
        expd[i] = probs[i] == -INFINITY ? 0.0 : exp((double)probs[i] - mx);
        sum += expd[i];
    }
    for (int i = 0; i < V; i++) probs[i] = probs[i] == -INFINITY ? 0.0f : (float)(expd[i] / sum);
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
    if (min_p > 0.0f) {
        // MinPLogitsWarper: remove probs < min_p * max(probs); the top token always survives.
        float top = 0;
        for (int i = 0; i < V; i++) top = probs[i] > top ? probs[i] : top;
        double thr = (double)min_p * top, kept = 0;
        for (int i = 0; i < V; i++) {
            if (probs[i] < thr) probs[i] = 0.0f;
            kept += probs[i];
        }
        for (int i = 0; i < V; i++) probs[i] = (float)(probs[i] / kept);
    }
}

void gen_repetition_penalty(float *logits, const int32_t *hist, int n, float penalty) {
    // HF gathers the original logit of every listed id and scatters the penalised value back, so an id listed
    // twice is penalised once: each id is penalised where it first occurs (n is a few hundred at most).
    for (int i = 0; i < n; i++) {
        int seen = 0;
        for (int j = 0; j < i && !seen; j++) seen = hist[j] == hist[i];
        if (seen) continue;
        float *z = &logits[hist[i]];
        *z = *z < 0 ? *z * penalty : *z / penalty;
    }
}

void gen_warp_probs(float *probs, const float *logits, int V, float temperature, int top_k, float top_p,
                    float min_p) {
    double *expd = malloc(sizeof(double) * (size_t)V);
    if (!expd) {  // out of memory: no distribution (every token probability 0)
        memset(probs, 0, sizeof(float) * (size_t)V);
        return;
    }
    warp_probs(probs, expd, logits, V, temperature, top_k, top_p, min_p);
    free(expd);
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

// First index of the largest value (NaNs never win): a vectorised max, then a scan for it.
static int argmax(const float *x, int V) {
    float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
    for (int i = 0; i < V; i++) mx = x[i] > mx ? x[i] : mx;
    for (int i = 0; i < V; i++)
        if (x[i] == mx) return i;
    return 0;
}

void gen_output_free(gen_output *o) {
    free(o->tokens);
    free(o->mask);
    free(o->logprobs);
    free(o->lengths);
    memset(o, 0, sizeof *o);
}

// The prompts' forward into the cache and the logits of their last positions. Rows whose prompt equals an
// earlier row's (GRPO's num_generations copies of a prompt) are computed once: the distinct prompts run
// through the model and their cached keys / values and logits are copied to every row that repeats them (rows
// are independent in the forward, so this is the same computation, done once per distinct prompt).
static rlhf_status prefill(model *m, kv_cache *kc, const int32_t *ids, const int32_t *mask, const int32_t *pos,
                           const int32_t *const *prompts, const int *prompt_lens, int B, int Tp, float *logits,
                           rlhf_err *err) {
    int *of = malloc(sizeof(int) * (size_t)B), *first = malloc(sizeof(int) * (size_t)B);
    if (!of || !first) {
        free(of);
        free(first);
        return rlhf_fail(err, RLHF_ERUNTIME, "out of memory (generate)");
    }
    int Bu = 0;
    for (int b = 0; b < B; b++) {
        int u = 0;
        while (u < Bu && !(prompt_lens[first[u]] == prompt_lens[b] &&
                           (prompts[first[u]] == prompts[b] ||
                            !memcmp(prompts[first[u]], prompts[b], sizeof(int32_t) * (size_t)prompt_lens[b]))))
            u++;
        if (u == Bu) first[Bu++] = b;
        of[b] = u;
    }
    rlhf_status st = RLHF_OK;
    if (Bu == B) {
        st = m->family->decode(m, kc, ids, mask, pos, Tp, logits, err);
    } else {
        const int V = m->cfg.vocab_size;
        const size_t n = (size_t)Bu * Tp;
        kv_cache ku = {0};
        st = kv_cache_for_model(&ku, m, Bu, Tp, err);
        int32_t *uids = malloc(sizeof(int32_t) * n * 3);
        float *ulogits = malloc(sizeof(float) * (size_t)Bu * V);
        if (!st && (!uids || !ulogits)) st = rlhf_fail(err, RLHF_ERUNTIME, "out of memory (generate)");
        if (!st) {
            int32_t *umask = uids + n, *upos = uids + 2 * n;
            for (int u = 0; u < Bu; u++) {
                size_t o = (size_t)first[u] * Tp, d = (size_t)u * Tp;
                memcpy(uids + d, ids + o, sizeof(int32_t) * (size_t)Tp);
                memcpy(umask + d, mask + o, sizeof(int32_t) * (size_t)Tp);
                memcpy(upos + d, pos + o, sizeof(int32_t) * (size_t)Tp);
            }
            st = m->family->decode(m, &ku, uids, umask, upos, Tp, ulogits, err);
        }
        if (!st) {
            kv_cache_copy_rows(kc, &ku, of);
            for (int b = 0; b < B; b++)
                memcpy(logits + (size_t)b * V, ulogits + (size_t)of[b] * V, sizeof(float) * (size_t)V);
        }
        if (ku.k) kv_cache_free(&ku);
        free(uids);
        free(ulogits);
    }
    free(of);
    free(first);
    return st;
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
    // per-thread sampling scratch; per-row chosen tokens (the log-prob targets) and their log-probs
    int nthreads = g->do_sample ? omp_get_max_threads() : 1;
    float *logits = malloc(sizeof(float) * (size_t)B * V), *probs = malloc(sizeof(float) * V * nthreads);
    double *expd = g->do_sample ? malloc(sizeof(double) * V * nthreads) : NULL;
    int32_t *chosen = malloc(sizeof(int32_t) * B);
    // repetition penalty: a per-thread copy of the row's logits, and the tokens generated so far
    const int use_pen = g->repetition_penalty > 0 && g->repetition_penalty != 1.0f;
    float *pen = use_pen ? malloc(sizeof(float) * (size_t)V * omp_get_max_threads()) : NULL;
    int32_t *hist = use_pen ? malloc(sizeof(int32_t) * (size_t)B * M) : NULL;
    float *chosen_lp = malloc(sizeof(float) * B);
    out->tokens = malloc(sizeof(int32_t) * (size_t)B * M);
    out->mask = calloc((size_t)B * M, sizeof(int32_t));
    out->logprobs = calloc((size_t)B * M, sizeof(float));
    out->lengths = calloc((size_t)B, sizeof(int));
    out->B = B, out->max_new = M;
    rlhf_status st = RLHF_OK;
    if (!ids || !mask || !pos || !n_real || !done || !logits || !probs || (g->do_sample && !expd) || !chosen ||
        (use_pen && (!pen || !hist)) ||
        !chosen_lp || !out->tokens || !out->mask ||
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
        st = prefill(m, &kc, ids, mask, pos, prompts, prompt_lens, B, Tp, logits, err);
    }
    for (int step = 0; st == RLHF_OK && step < M; step++) {
        // rows are independent (their own sampling counters): one row per thread, sampled or greedy, then
        // the token's log_softmax(logits / temperature) (of the logits before any penalty), in one region
#pragma omp parallel for schedule(dynamic, 1) if (B > 1)
        for (int b = 0; b < B; b++) {
            const float *lg = logits + (size_t)b * V;
            if (done[b]) {
                chosen[b] = CE_IGNORE_INDEX;  // no token, log-prob 0
                chosen_lp[b] = 0.0f;
                continue;
            }
            if (pen) {  // the processor runs before the warpers and before greedy's argmax, as in HF
                float *z = pen + (size_t)omp_get_thread_num() * V;
                memcpy(z, lg, sizeof(float) * (size_t)V);
                gen_repetition_penalty(z, prompts[b], prompt_lens[b], g->repetition_penalty);
                gen_repetition_penalty(z, hist + (size_t)b * M, step, g->repetition_penalty);
                lg = z;
            }
            if (g->do_sample) {
                int t = omp_get_thread_num();
                warp_probs(probs + (size_t)t * V, expd + (size_t)t * V, lg, V, g->temperature, g->top_k, g->top_p,
                           g->min_p);
                uint64_t key = rng_key(g->seed, RNG_STREAM_SAMPLE, row_ids ? row_ids[b] : (uint64_t)b, (uint64_t)step);
                chosen[b] = gen_sample(probs + (size_t)t * V, V, rng_uniform_double(key, 0));
            } else {
                chosen[b] = argmax(lg, V);
            }
            token_logprobs_forward(chosen_lp + b, logits + (size_t)b * V, chosen + b, 1, V, g->temperature);
        }
        int n_active = 0;
        for (int b = 0; b < B; b++) {
            if (done[b]) continue;
            int tok = chosen[b];
            size_t o = (size_t)b * M + step;
            out->tokens[o] = tok;
            if (hist) hist[o] = tok;
            out->mask[o] = 1;
            out->logprobs[o] = chosen_lp[b];
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
    free(expd);
    free(chosen);
    free(chosen_lp);
    free(pen);
    free(hist);
    kv_cache_free(&kc);
    if (st != RLHF_OK) gen_output_free(out);
    return st;
}
