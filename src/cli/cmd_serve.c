// `rlhf serve`: a reward model as an HTTP service, OpenRLHF's serve_rm (openrlhf/cli/serve_rm.py) in C.
// This file loads the model, wires the batcher (train/reward_batcher.h: one scoring thread) to the HTTP
// side (cli/serve_http.h), and owns the process lifecycle: SIGINT/SIGTERM stop accepting connections,
// answer the requests in flight, and exit 0.
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/serve_http.h"
#include "tokenizer/chat_template.h"
#include "train/reward_batcher.h"
#include "train/reward_scoring.h"
#include "train/trainer_common.h"

#define CMD "serve"
// After SIGTERM, requests in flight get this long to be answered before the connections are closed.
#define SERVE_DRAIN_SECONDS 30.0
// The environment variable read for the API key when --api_key is not given (keeps it out of `ps`).
#define SERVE_API_KEY_ENV "RLHF_API_KEY"

typedef struct {
    const char *model, *host, *api_key, *encoding;
    long long port, batch_size, max_length, threads, max_request_bytes;
    double max_wait_ms;
    int normalize_reward;
} serve_flags;

static const char USAGE[] =
    "usage: rlhf serve --model_name_or_path DIR [--host 127.0.0.1] [--port 5000] [flags]\n"
    "Serves a reward model over HTTP as OpenRLHF's serve_rm: POST /get_reward {\"query\": [texts]} or\n"
    "{\"prompt\": [...], \"response\": [...]} -> {\"rewards\": [...], \"scores\": [...]}; GET /health.";

static int build_specs(arg_spec *s, int cap, serve_flags *f) {
    int n = 0;
#define F(name, type, dest, def, help) \
    do { if (n < cap) s[n] = (arg_spec){name, type, dest, def, help, NULL, 0}; n++; } while (0)
    F("model_name_or_path", ARG_STRING, &f->model, NULL, "reward model directory (HF layout with tokenizer files, required)");
    F("host", ARG_STRING, &f->host, "127.0.0.1", "numeric address to listen on (0.0.0.0: every interface)");
    F("port", ARG_INT, &f->port, "5000", "TCP port (0: any free port; the log line names it)");
    F("batch_size", ARG_INT, &f->batch_size, "32", "most rows scored in one forward (requests are batched together)");
    F("max_wait_ms", ARG_FLOAT, &f->max_wait_ms, "5", "how long the first queued request waits for others to fill a batch");
    F("max_length", ARG_INT, &f->max_length, "0", "longest sequence in tokens (0: the model's limit)");
    F("encoding", ARG_STRING, &f->encoding, NULL, "encoders: pair or concat for {prompt, response} "
                                                   "(default: as the model was trained, else pair)");
    F("normalize_reward", ARG_BOOL, &f->normalize_reward, NULL, "return (r - mean) / std with the mean and std "
                                                                 "`rlhf reward` saved in config.json (OpenRLHF)");
    F("api_key", ARG_STRING, &f->api_key, NULL, "require \"Authorization: Bearer KEY\" or \"X-API-Key: KEY\" "
                                                 "(default: $" SERVE_API_KEY_ENV " if set, else no key)");
    F("max_request_bytes", ARG_INT, &f->max_request_bytes, "16777216", "larger request bodies are refused (413)");
    F("threads", ARG_INT, &f->threads, "0", "CPU threads of the scoring forward (0: all cores)");
#undef F
    return n;
}

static rlhf_status validate(const serve_flags *f, rlhf_err *err) {
    if (!f->model) return rlhf_fail(err, RLHF_EINPUT, "--model_name_or_path is required");
    if (f->port < 0 || f->port > 65535) return rlhf_fail(err, RLHF_EINPUT, "--port: expected 0..65535, got %lld", f->port);
    if (f->batch_size < 1 || f->batch_size > 1 << 16)
        return rlhf_fail(err, RLHF_EINPUT, "--batch_size: expected 1..%d, got %lld", 1 << 16, f->batch_size);
    if (!(f->max_wait_ms >= 0 && f->max_wait_ms <= 60000))
        return rlhf_fail(err, RLHF_EINPUT, "--max_wait_ms: expected 0..60000, got %g", f->max_wait_ms);
    if (f->max_length < 0) return rlhf_fail(err, RLHF_EINPUT, "--max_length must be >= 0, got %lld", f->max_length);
    if (f->max_request_bytes < 1024 || f->max_request_bytes > (1LL << 32))
        return rlhf_fail(err, RLHF_EINPUT, "--max_request_bytes: expected 1024..%lld, got %lld", 1LL << 32,
                         f->max_request_bytes);
    if (f->threads < 0) return rlhf_fail(err, RLHF_EINPUT, "--threads must be >= 0");
    if (f->encoding && strcmp(f->encoding, "pair") && strcmp(f->encoding, "concat"))
        return rlhf_fail(err, RLHF_EINPUT, "--encoding: expected pair or concat, got '%s'", f->encoding);
    if (f->api_key && !f->api_key[0]) return rlhf_fail(err, RLHF_EINPUT, "--api_key: empty key");
    return RLHF_OK;
}

static rlhf_status run(const serve_flags *f, rlhf_err *err) {
    RLHF_TRY(validate(f, err));
    cli_set_threads(f->threads);
    const char *key = f->api_key;
    if (!key && getenv(SERVE_API_KEY_ENV) && getenv(SERVE_API_KEY_ENV)[0]) key = getenv(SERVE_API_KEY_ENV);
    model *m = NULL;
    tokenizer *tok = NULL;
    chat_template *chat = NULL;
    reward_batcher *batcher = NULL;
    serve_http *http = NULL;
    rlhf_status s = reward_model_load(&m, &tok, f->model, 0, err);
    if (!s && !tok)
        s = rlhf_fail(err, RLHF_EINPUT, "--model_name_or_path %s: no tokenizer files (tokenizer.json, vocab.txt or "
                      "vocab.json+merges.txt); the server reads texts", f->model);
    pref_encoding enc = PREF_ENCODING_PAIR;
    pref_opts o;
    reward_norm norm = {0};
    if (!s) s = reward_encoding_parse(f->encoding, m, &enc, err);
    if (!s) s = reward_norm_load(&norm, m, f->normalize_reward, f->model, err);
    if (!s) {
        pref_opts_for_model(&o, m, tok, (int)f->max_length, enc, f->model);
        o.allow_single = 1;
        o.allow_empty_response = 1;
        // Loaded once here rather than per request (plain-text rows never use it, but the builder looks).
        s = m->cfg.is_decoder ? chat_template_load_dir(&chat, f->model, err) : RLHF_OK;
        o.chat = chat;
        o.no_chat_template = chat == NULL;
    }
    // The signals are blocked in every thread (the ones started below inherit the mask) and taken here.
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (!s) s = reward_batcher_start(&batcher, m, (int)f->batch_size, f->max_wait_ms, (int)f->threads, &norm, err);
    int port = 0;
    if (!s) {
        serve_http_opts ho = {.host = f->host, .port = (int)f->port, .max_request_bytes = (size_t)f->max_request_bytes,
                              .api_key = key, .opts = &o, .tok = tok, .batcher = batcher};
        s = serve_http_start(&http, &ho, &port, err);
    }
    if (!s) {
        int colon = strchr(f->host, ':') != NULL;  // IPv6 literal in a URL goes in brackets
        fprintf(stderr, "rlhf serve: listening on http://%s%s%s:%d (POST /get_reward, GET /health); model %s, "
                "batch_size %lld, max_wait_ms %g%s%s\n", colon ? "[" : "", f->host, colon ? "]" : "", port, f->model,
                f->batch_size, f->max_wait_ms, norm.on ? ", normalized rewards" : "", key ? ", API key required" : "");
        fflush(stderr);
        int sig = 0;
        sigwait(&stop, &sig);
        fprintf(stderr, "rlhf serve: %s: finishing the requests in flight\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
        serve_http_stats hs;
        int left = serve_http_stop(http, SERVE_DRAIN_SECONDS, &hs);
        reward_batcher_stats bs = reward_batcher_get_stats(batcher);
        fprintf(stderr, "rlhf serve: stopped: %lld requests answered (%lld ok, %lld refused, %lld failed), %lld rows "
                "in %lld forwards%s\n", hs.ok + hs.client_errors + hs.server_errors, hs.ok, hs.client_errors,
                hs.server_errors, bs.rows, bs.forwards, left ? "; some requests were cut off" : "");
    }
    reward_batcher_stop(batcher);
    chat_template_free(chat);
    if (tok) tokenizer_free(tok);
    model_free(m);
    return s;
}

int cmd_serve(int argc, char **argv) {
    serve_flags f;
    memset(&f, 0, sizeof f);
    arg_spec specs[16];
    const int cap = (int)(sizeof specs / sizeof specs[0]);
    int n = build_specs(specs, cap, &f);
    if (n > cap) return cli_report(CMD, RLHF_ERUNTIME, "internal error: more flags than the flag table holds");
    int parsed = cli_parse_flags(CMD, USAGE, specs, n, argc, argv);
    if (parsed >= 0) return parsed;
    rlhf_err err;
    rlhf_err_clear(&err);
    return cli_report(CMD, run(&f, &err), err.msg);
}
