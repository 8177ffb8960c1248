// Where a trainer's rewards come from: a local reward model directory, or a remote reward server
// (`--reward_model_path http://HOST:PORT/get_reward`: `rlhf serve`, or OpenRLHF's serve_rm / any server
// speaking its protocol, OpenRLHF's --remote_rm_url). Trainers hand over (prompt, response) TEXTS and get
// one reward per row; the local source reads them exactly as `rlhf score` reads a {"prompt", "response"}
// row (train/reward_scoring.h), and the remote one posts them, so both give the same numbers for the
// same model (an empty response is scored, not refused).
//
// Remote protocol (train/reward_remote.c, libcurl): POST a JSON body
//   {"query": [prompt + response, ...], "prompts": [prompt, ...], "prompt": [...], "response": [...]}
// (OpenRLHF's query/prompts, which serve_rm reads, plus the (prompt, response) pair that `rlhf serve`
// prefers) in requests of batch_size rows; the answer's "rewards" array gives the rewards. A request
// that fails (no connection, timeout, HTTP 5xx or 429) is retried with exponential backoff; other
// answers (4xx, a malformed body) fail at once, quoting the server's error.
#ifndef RLHF_TRAIN_REWARD_SOURCE_H
#define RLHF_TRAIN_REWARD_SOURCE_H

#include "base/error.h"
#include "models/model.h"
#include "train/preference_data.h"

// OpenRLHF's remote_rm_fn: 5 tries, a 180 s timeout per request.
#define REWARD_REMOTE_DEFAULT_RETRIES 4
#define REWARD_REMOTE_DEFAULT_TIMEOUT_S 180.0
// Backoff between tries: 1 s, doubling, at most this.
#define REWARD_REMOTE_MAX_BACKOFF_S 30.0
// The environment variable holding the API key sent as "Authorization: Bearer KEY" (the one `rlhf serve` reads).
#define REWARD_API_KEY_ENV "RLHF_API_KEY"

struct peft_options;

typedef struct {
    const char *path;             // reward model directory, or an http:// / https:// URL
    // local model
    const char *encoding;         // "pair" | "concat" | NULL: as the model was trained (config.json), else pair
    int max_length;               // <= 0: the model's limit
    int normalize;                // (r - mean) / std from config.json (remote: refused, the server normalises)
    const struct peft_options *quant;  // 4-bit loading (NULL: fp32)
    // both: rows per forward (local) or per request (remote)
    int batch_size;
    // remote
    double timeout_s;             // per request (connect included)
    int max_retries;              // tries after the first
    const char *api_key;          // NULL: $RLHF_API_KEY if set, else none
} reward_source_opts;

// Defaults above; batch_size 64; path NULL.
void reward_source_opts_default(reward_source_opts *o);
// 1 if path is a URL (http:// or https://) rather than a directory.
int reward_source_is_url(const char *path);

typedef struct reward_source reward_source;

// Local: loads the model and its tokenizer (RLHF_EINPUT if it has none: rewards are read from texts).
// Remote: checks the URL's form and sets up the client; nothing is sent before the first scoring.
rlhf_status reward_source_open(reward_source **out, const reward_source_opts *o, rlhf_err *err);
// out[i] = the reward of (prompts[i], responses[i]), i < n. prompts may be NULL (each response read alone).
// Remote failures are RLHF_ERUNTIME naming the URL, the tries and the last error.
rlhf_status reward_source_score(reward_source *s, const char *const *prompts, const char *const *responses, int n,
                                float *out, rlhf_err *err);
int reward_source_is_remote(const reward_source *s);
// The local model and tokenizer (NULL when remote), e.g. to copy the reward model as a value model.
model *reward_source_model(reward_source *s);
void reward_source_free(reward_source *s);

// ---- the remote client alone (train/reward_remote.c) ----
typedef struct reward_remote reward_remote;
rlhf_status reward_remote_open(reward_remote **out, const char *url, double timeout_s, int max_retries,
                               const char *api_key, rlhf_err *err);
// One request per call (the caller splits into batches); prompts may be NULL.
rlhf_status reward_remote_score(reward_remote *r, const char *const *prompts, const char *const *responses, int n,
                                double *out, rlhf_err *err);
void reward_remote_free(reward_remote *r);

#endif
