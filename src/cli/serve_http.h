// The HTTP side of `rlhf serve`: the one file that talks to libmicrohttpd. Routes:
//   POST /get_reward  {"query": [texts]} or {"prompt": [...], "response": [...]} (OpenRLHF's serve_rm body;
//                     "prompts"/"labels" are accepted and ignored) -> {"rewards": [...], "scores": [...]}
//   GET  /health      200 {"status": "ok"} (the server listens only once the model is loaded)
// Every bad request is answered, never fatal: 400 {"error": "..."} naming the field, 401 (wrong or missing
// key with --api_key: "Authorization: Bearer KEY" or "X-API-Key: KEY"), 404, 405, 413 (body over the limit),
// 500 (a failed forward). One thread per connection parses and tokenizes; scoring goes through the batcher.
#ifndef RLHF_CLI_SERVE_HTTP_H
#define RLHF_CLI_SERVE_HTTP_H

#include <stddef.h>

#include "base/error.h"
#include "tokenizer/tokenizer.h"
#include "train/preference_data.h"
#include "train/reward_batcher.h"

typedef struct {
    const char *host;          // numeric address to bind (127.0.0.1 by default)
    int port;                  // 0: any free port (the bound one is reported)
    size_t max_request_bytes;  // larger bodies: 413
    const char *api_key;       // NULL: no authentication
    const pref_opts *opts;     // how (prompt, response) rows are encoded, as `rlhf score`
    const tokenizer *tok;      // the query form strips pad / EOS token texts from the ends, as serve_rm
    reward_batcher *batcher;
} serve_http_opts;

typedef struct serve_http serve_http;

// Binds and starts answering (its own threads). *bound_port: the port actually bound.
rlhf_status serve_http_start(serve_http **out, const serve_http_opts *o, int *bound_port, rlhf_err *err);
// Stops accepting connections, waits up to drain_seconds for the requests in flight to be answered,
// then closes every connection and frees s. Returns the number of requests still unanswered (0 normally);
// *final (may be NULL): the requests answered, by class.
typedef struct {
    long long ok, client_errors, server_errors;
} serve_http_stats;
int serve_http_stop(serve_http *s, double drain_seconds, serve_http_stats *final);

#endif
