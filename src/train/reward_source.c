// Reward sources (train/reward_source.h): a local model scored through train/reward_scoring.h, or the
// remote client of train/reward_remote.c.
#include "train/reward_source.h"

#include <stdlib.h>
#include <string.h>

#include "models/peft.h"
#include "tokenizer/chat_template.h"
#include "train/reward_scoring.h"
#include "train/trainer_common.h"

struct reward_source {
    int batch_size;
    // local
    model *m;
    tokenizer *tok;
    chat_template *chat;
    pref_opts opts;
    reward_norm norm;
    // remote
    reward_remote *remote;
};

void reward_source_opts_default(reward_source_opts *o) {
    memset(o, 0, sizeof *o);
    o->batch_size = 64;
    o->timeout_s = REWARD_REMOTE_DEFAULT_TIMEOUT_S;
    o->max_retries = REWARD_REMOTE_DEFAULT_RETRIES;
}

int reward_source_is_url(const char *path) {
    return path && (!strncmp(path, "http://", 7) || !strncmp(path, "https://", 8));
}

void reward_source_free(reward_source *s) {
    if (!s) return;
    reward_remote_free(s->remote);
    chat_template_free(s->chat);
    if (s->tok) tokenizer_free(s->tok);
    model_free(s->m);
    free(s);
}

rlhf_status reward_source_open(reward_source **out, const reward_source_opts *o, rlhf_err *err) {
    *out = NULL;
    if (!o->path) return rlhf_fail(err, RLHF_EINPUT, "--reward_model_path is required");
    if (o->batch_size < 1) return rlhf_fail(err, RLHF_EINPUT, "reward batch size must be >= 1");
    reward_source *s = calloc(1, sizeof *s);
    if (!s) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    s->batch_size = o->batch_size;
    rlhf_status st;
    if (reward_source_is_url(o->path)) {
        if (o->normalize)
            st = rlhf_fail(err, RLHF_EINPUT, "--normalize_reward: the reward model at %s is remote; start the server "
                           "with `rlhf serve --normalize_reward` instead", o->path);
        else if (o->timeout_s <= 0 || o->max_retries < 0)
            st = rlhf_fail(err, RLHF_EINPUT, "remote reward: the timeout must be > 0 and the retries >= 0");
        else {
            const char *key = o->api_key;
            if (!key && getenv(REWARD_API_KEY_ENV) && getenv(REWARD_API_KEY_ENV)[0]) key = getenv(REWARD_API_KEY_ENV);
            st = reward_remote_open(&s->remote, o->path, o->timeout_s, o->max_retries, key, err);
        }
    } else {
        st = reward_model_load_scoring(&s->m, &s->tok, o->path, o->quant, err);
        if (!st && !s->tok)
            st = rlhf_fail(err, RLHF_EINPUT, "--reward_model_path %s: no tokenizer files; rewards are read from texts",
                           o->path);
        pref_encoding enc = PREF_ENCODING_PAIR;
        if (!st) st = reward_encoding_parse(o->encoding, s->m, &enc, err);
        if (!st) st = reward_norm_load(&s->norm, s->m, o->normalize, o->path, err);
        if (!st) {
            pref_opts_for_model(&s->opts, s->m, s->tok, o->max_length, enc, o->path);
            s->opts.allow_single = 1;
            s->opts.allow_empty_response = 1;
            if (s->m->cfg.is_decoder) st = chat_template_load_dir(&s->chat, o->path, err);
            s->opts.chat = s->chat;
            s->opts.no_chat_template = s->chat == NULL;
        }
    }
    if (st) {
        reward_source_free(s);
        return st;
    }
    *out = s;
    return RLHF_OK;
}

int reward_source_is_remote(const reward_source *s) { return s->remote != NULL; }
model *reward_source_model(reward_source *s) { return s->m; }

rlhf_status reward_source_score(reward_source *s, const char *const *prompts, const char *const *responses, int n,
                                float *out, rlhf_err *err) {
    double *v = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
    if (!v) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    rlhf_status st = RLHF_OK;
    for (int i0 = 0; i0 < n && !st; i0 += s->batch_size) {
        int nb = n - i0 < s->batch_size ? n - i0 : s->batch_size;
        const char *const *pp = prompts ? prompts + i0 : NULL;
        if (s->remote) {
            st = reward_remote_score(s->remote, pp, responses + i0, nb, v + i0, err);
        } else {
            pref_set set;
            st = reward_encode_texts(&set, &s->opts, pp, responses + i0, nb, "reward input", err);
            if (!st) st = reward_score_set(s->m, &set, nb, v + i0, NULL, err);
            pref_set_free(&set);
        }
    }
    for (int i = 0; !st && i < n; i++) out[i] = (float)reward_norm_apply(&s->norm, v[i]);
    free(v);
    return st;
}
