// Reward sources (reward_fn.h): the interface's helpers and the reward-model source. The reward model
// reads each (prompt, completion) through its OWN tokenizer: the completion ids are decoded with the
// policy tokenizer and (prompt, completion) re-encoded as `rlhf score` reads it. This is what lets a GPT-2
// policy train against a BERT reward model (TRL issues 3595, 1979, 2718). ppo scores through rm_scorer too.
#include "train/reward_funcs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/peft.h"
#include "train/reward_source.h"
#include "train/trainer_common.h"

void reward_fn_free(reward_fn *s) {
    if (s) s->destroy(s);
}

// The reward model's input for one item as `rlhf score` reads (prompt, completion).
static rlhf_status rm_input(const rm_scorer *s, const reward_item *it, token_seq *seq, rlhf_err *err) {
    const int is_dec = s->m->cfg.is_decoder;
    int32_t *ids = NULL, *types = NULL;
    int n = 0;
    if (!s->tok) {  // the id route: the vocabularies are the same (checked at load)
        n = it->prompt_n + it->completion_n + (is_dec && s->eos >= 0);
        ids = malloc((size_t)(n > 0 ? n : 1) * sizeof *ids);
        types = calloc((size_t)(n > 0 ? n : 1), sizeof *types);
        if (!ids || !types) goto oom;
        memcpy(ids, it->prompt_ids, (size_t)it->prompt_n * sizeof *ids);
        memcpy(ids + it->prompt_n, it->completion_ids, (size_t)it->completion_n * sizeof *ids);
        if (is_dec && s->eos >= 0) ids[n - 1] = s->eos;
    } else {
        char *text = NULL;
        RLHF_TRY(tokenizer_decode(s->policy_tok, it->completion_ids, it->completion_n, 1, &text, err));
        tok_encoding e = {0};
        rlhf_status st;
        if (is_dec || s->encoding == PREF_ENCODING_CONCAT) {
            size_t lp = strlen(it->prompt_text), lr = strlen(text);
            char *joined = malloc(lp + lr + 1);
            if (!joined) {
                free(text);
                goto oom;
            }
            memcpy(joined, it->prompt_text, lp);
            memcpy(joined + lp, text, lr + 1);
            st = tokenizer_encode(s->tok, joined, NULL, 1, is_dec ? 0 : s->max_len, TRUNC_LONGEST_FIRST, &e, err);
            free(joined);
        } else {
            st = tokenizer_encode(s->tok, it->prompt_text, text, 1, s->max_len, TRUNC_LONGEST_FIRST, &e, err);
        }
        free(text);
        if (st) return rlhf_err_prefix(err, "scoring a response of %s:%d: ", s->dataset_name, it->line);
        int add_eos = is_dec && s->eos >= 0;
        n = e.n + add_eos;
        ids = malloc((size_t)(n > 0 ? n : 1) * sizeof *ids);
        types = calloc((size_t)(n > 0 ? n : 1), sizeof *types);
        if (!ids || !types) {
            tok_encoding_free(&e);
            goto oom;
        }
        memcpy(ids, e.ids, (size_t)e.n * sizeof *ids);
        if (e.type_ids) memcpy(types, e.type_ids, (size_t)e.n * sizeof *types);
        if (add_eos) ids[n - 1] = s->eos;
        tok_encoding_free(&e);
    }
    // A decoder reads its score at the last token: keep the tail when the input is too long.
    if (s->max_len > 0 && n > s->max_len) {
        int cut = n - s->max_len;
        memmove(ids, ids + cut, (size_t)s->max_len * sizeof *ids);
        memmove(types, types + cut, (size_t)s->max_len * sizeof *types);
        n = s->max_len;
    }
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= s->m->cfg.vocab_size) {
            int bad = ids[i];
            free(ids);
            free(types);
            return rlhf_fail(err, RLHF_EINPUT, "%s:%d: token id %d is outside the reward model's vocabulary (%d)",
                             s->dataset_name, it->line, bad, s->m->cfg.vocab_size);
        }
    seq->ids = ids;
    seq->type_ids = types;
    seq->n = n;
    return RLHF_OK;
oom:
    free(ids);
    free(types);
    return rlhf_fail(err, RLHF_ERUNTIME, "out of memory building reward model inputs");
}

rlhf_status rm_scorer_score(const rm_scorer *s, const reward_item *items, int n, float *out, rlhf_err *err) {
    token_seq *seqs = calloc((size_t)(n > 0 ? n : 1), sizeof *seqs);
    const token_seq **ptrs = calloc((size_t)(n > 0 ? n : 1), sizeof *ptrs);
    padded_batch pb = {0};
    rlhf_status st = RLHF_OK;
    if (!seqs || !ptrs) {
        st = rlhf_fail(err, RLHF_ERUNTIME, "out of memory scoring responses");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        st = rm_input(s, &items[i], &seqs[i], err);
        if (st) goto out;
        ptrs[i] = &seqs[i];
    }
    st = batch_collate(&pb, ptrs, n, model_pad_id(s->m), err);
    if (st) goto out;
    model_batch mb = {.B = pb.B, .T = pb.T, .input_ids = pb.input_ids, .attention_mask = pb.attention_mask,
                      .token_type_ids = s->m->cfg.type_vocab_size > 0 ? pb.token_type_ids : NULL};
    st = model_forward_no_grad(s->m, &mb, err);
    if (st) goto out;
    for (int i = 0; i < n; i++)
        out[i] = (float)reward_read(s->m->out + (size_t)i * s->m->cfg.num_labels, s->m->cfg.num_labels);
out:
    if (seqs)
        for (int i = 0; i < n; i++) {
            free(seqs[i].ids);
            free(seqs[i].type_ids);
        }
    free(seqs);
    free(ptrs);
    padded_batch_free(&pb);
    return st;
}

// ---- the reward-model source ------------------------------------------------------------------------

// Reward-model forwards are batched in chunks of this many items (activation memory stays bounded).
#define RM_SOURCE_CHUNK 64

typedef struct {
    reward_fn base;
    model *m;
    tokenizer *tok;
    rm_scorer sc;
} rm_source;

static rlhf_status rm_source_score(reward_fn *s, const reward_item *items, int n, float *out, rlhf_err *err) {
    rm_source *r = (rm_source *)s;
    for (int i = 0; i < n; i += RM_SOURCE_CHUNK)
        RLHF_TRY(rm_scorer_score(&r->sc, items + i, n - i < RM_SOURCE_CHUNK ? n - i : RM_SOURCE_CHUNK, out + i, err));
    model_release_activations(r->m);  // not resident while the policy trains
    return RLHF_OK;
}

static void rm_source_destroy(reward_fn *s) {
    rm_source *r = (rm_source *)s;
    model_free(r->m);
    tokenizer_free(r->tok);
    free(r);
}

rlhf_status reward_model_fn_open(reward_fn **out, const char *dir, const tokenizer *policy_tok,
                                     int policy_vocab, const char *encoding, const struct peft_options *quant,
                                     uint64_t seed, int allow_new_head, const char *dataset_name, rlhf_err *err) {
    *out = NULL;
    rm_source *r = calloc(1, sizeof *r);
    if (!r) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    r->base.score = rm_source_score;
    r->base.destroy = rm_source_destroy;
    // TRL names a reward model by the last component of its path
    const char *slash = strrchr(dir, '/');
    const char *base = slash && slash[1] ? slash + 1 : dir;
    snprintf(r->base.name, sizeof r->base.name, "%s", base);
    model_load_opts lo = {.quiet = 0, .init_seed = seed, .peft = quant, .frozen = 1};
    rlhf_status st = peft_load_model_dir(&r->m, dir, HEAD_SEQCLS, quant, &lo, err);
    if (!st && r->m->n_new_head_tensors && !allow_new_head)
        st = rlhf_fail(err, RLHF_EINPUT, "--reward_model_name_or_path %s: not a reward model: its checkpoint has no "
                       "score head for %s (a base or causal-LM model?), so the head would be random and every reward "
                       "noise; train one with `rlhf reward` first, or give --allow_new_reward_head to use it anyway",
                       dir, r->m->cfg.architecture);
    pref_encoding enc = PREF_ENCODING_PAIR;
    if (!st) st = reward_encoding_parse(encoding, r->m, &enc, err);
    if (!st && policy_tok && model_dir_has_tokenizer(dir)) st = tokenizer_load(&r->tok, dir, err);
    if (!st && r->tok) st = tokenizer_check_model_vocab(r->tok, r->m->cfg.vocab_size, dir, err);
    if (!st && !r->tok && r->m->cfg.vocab_size < policy_vocab)
        st = rlhf_fail(err, RLHF_EINPUT,
                       "--reward_model_name_or_path %s: without tokenizer files on both sides the reward model reads the "
                       "policy's token ids, but its vocabulary (%d) is smaller than the policy's (%d)",
                       dir, r->m->cfg.vocab_size, policy_vocab);
    if (st) {
        rm_source_destroy(&r->base);
        return st;
    }
    r->sc = (rm_scorer){.m = r->m, .tok = r->tok, .policy_tok = policy_tok,
                        .eos = r->tok && tokenizer_eos_id(r->tok) >= 0 ? tokenizer_eos_id(r->tok) : r->m->cfg.eos_token_id,
                        .max_len = r->m->cfg.max_positions, .encoding = enc,
                        .dataset_name = dataset_name};
    *out = &r->base;
    return RLHF_OK;
}

// ---- a reward model at a URL ------------------------------------------------------------------------------

typedef struct {
    reward_fn base;
    reward_source *src;
} remote_fn;

static rlhf_status remote_score(reward_fn *s, const reward_item *items, int n, float *out, rlhf_err *err) {
    remote_fn *r = (remote_fn *)s;
    const char **prompts = calloc((size_t)(n > 0 ? n : 1), sizeof *prompts);
    const char **texts = calloc((size_t)(n > 0 ? n : 1), sizeof *texts);
    rlhf_status st = prompts && texts ? RLHF_OK : rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    for (int i = 0; i < n && !st; i++) {
        if (!items[i].prompt_text || !items[i].completion_text)
            st = rlhf_fail(err, RLHF_EINPUT, "a remote reward model reads texts: the policy needs a tokenizer");
        prompts[i] = items[i].prompt_text;
        texts[i] = items[i].completion_text;
    }
    if (!st) st = reward_source_score(r->src, prompts, texts, n, out, err);
    free(prompts);
    free(texts);
    return st;
}

static void remote_destroy(reward_fn *s) {
    remote_fn *r = (remote_fn *)s;
    reward_source_free(r->src);
    free(r);
}

rlhf_status reward_remote_fn_open(reward_fn **out, const char *url, rlhf_err *err) {
    *out = NULL;
    remote_fn *r = calloc(1, sizeof *r);
    if (!r) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    reward_source_opts o;
    reward_source_opts_default(&o);
    o.path = url;
    rlhf_status st = reward_source_open(&r->src, &o, err);
    if (st) {
        free(r);
        return st;
    }
    r->base.score = remote_score;
    r->base.destroy = remote_destroy;
    const char *h = strstr(url, "://");
    h = h ? h + 3 : url;
    size_t k = 0;
    for (; h[k] && h[k] != '/' && k + 1 < sizeof r->base.name; k++)
        r->base.name[k] = h[k] == ':' ? '_' : h[k];
    r->base.name[k] = 0;
    *out = &r->base;
    return RLHF_OK;
}
