// `rlhf serve` over HTTP (cli/serve_http.h): libmicrohttpd parses HTTP, with one thread per connection;
// this file routes, authenticates, reads the JSON body, validates it field by field, tokenizes (in the
// connection's thread, so that tokenization runs in parallel) and hands the encoded rows to the batcher.
#include "cli/serve_http.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "io/utf8.h"
#include "train/reward_scoring.h"

// Most connections open at once (each holds a thread while it waits for its batch).
#define SERVE_MAX_CONNECTIONS 512
// A connection idle (or trickling its body) this long is closed.
#define SERVE_CONNECTION_TIMEOUT_S 60

struct serve_http {
    serve_http_opts o;
    struct MHD_Daemon *d;
    pthread_mutex_t mu;
    long in_flight;  // requests begun and not yet completed
    long fresh;      // connections accepted whose first request has not begun yet
    serve_http_stats stats;
};

// The state of one connection: whether a request has begun on it (for the drain at shutdown).
typedef struct {
    int fresh;
} connection_state;

// The state of one request between the access handler's calls.
typedef struct {
    char *body;
    size_t len, cap;
    size_t received;  // body bytes seen, kept or not
    int too_large;
} request;

// ---- responses -------------------------------------------------------------------------------------

static enum MHD_Result send_json(struct MHD_Connection *c, serve_http *s, unsigned status, char *json,
                                 const char *allow) {
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(json), json, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(json);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (allow) MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    if (status == MHD_HTTP_UNAUTHORIZED) MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    pthread_mutex_lock(&s->mu);
    if (status < 400) s->stats.ok++;
    else if (status < 500) s->stats.client_errors++;
    else s->stats.server_errors++;
    pthread_mutex_unlock(&s->mu);
    return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *c, serve_http *s, unsigned status, const char *allow,
                                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static enum MHD_Result send_error(struct MHD_Connection *c, serve_http *s, unsigned status, const char *allow,
                                  const char *fmt, ...) {
    char msg[RLHF_ERR_MSG];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    // The message may quote request text: cJSON escapes it; bytes that are not UTF-8 are replaced first.
    for (char *p = msg; *p; p++)
        if ((unsigned char)*p >= 0x80) *p = '?';
    cJSON *o = cJSON_CreateObject();
    char *json = NULL;
    if (o && cJSON_AddStringToObject(o, "error", msg)) json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!json) return MHD_NO;
    return send_json(c, s, status, json, allow);
}

// ---- authentication ----------------------------------------------------------------------------------

// Equal strings, in time that does not depend on where they differ.
static int same_secret(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    unsigned char diff = (unsigned char)(na != nb);
    for (size_t i = 0; i < na; i++) diff |= (unsigned char)(a[i] ^ b[i % (nb ? nb : 1)]);
    return diff == 0;
}

static int authorized(serve_http *s, struct MHD_Connection *c) {
    if (!s->o.api_key) return 1;
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (auth && !strncasecmp(auth, "Bearer ", 7)) {
        const char *k = auth + 7;
        while (*k == ' ') k++;
        if (same_secret(k, s->o.api_key)) return 1;
    }
    const char *x = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-API-Key");
    return x && same_secret(x, s->o.api_key);
}

// ---- the request body ---------------------------------------------------------------------------------

// cJSON stops a string at an escaped NUL ("\u0000"), silently shortening it: such bodies are refused.
static int has_escaped_nul(const char *b, size_t n) {
    for (size_t i = 0; i + 6 <= n; i++) {
        if (b[i] != '\\' || b[i + 1] != 'u' || memcmp(b + i + 2, "0000", 4)) continue;
        size_t k = 0;  // backslashes before this one: an odd count escapes it
        while (k < i && b[i - 1 - k] == '\\') k++;
        if (k % 2 == 0) return 1;
    }
    return 0;
}

// Checks that field is a non-empty array of UTF-8 strings; fills *out (n pointers into the JSON) or a
// message naming the field.
static int string_array(const cJSON *root, const char *field, const char ***out, int *n, char *msg, size_t cap) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, field);
    if (!cJSON_IsArray(a)) {
        snprintf(msg, cap, "field '%s': expected an array of strings", field);
        return 0;
    }
    int k = cJSON_GetArraySize(a);
    if (k == 0) {
        snprintf(msg, cap, "field '%s': empty array (expected at least one string)", field);
        return 0;
    }
    const char **v = malloc(sizeof(char *) * (size_t)k);
    if (!v) {
        snprintf(msg, cap, "out of memory");
        return 0;
    }
    int i = 0;
    for (const cJSON *e = a->child; e; e = e->next, i++) {
        if (!cJSON_IsString(e)) {
            snprintf(msg, cap, "field '%s'[%d]: expected a string, got %s", field, i,
                     cJSON_IsNumber(e) ? "a number" : cJSON_IsNull(e) ? "null" : cJSON_IsBool(e) ? "a boolean"
                     : cJSON_IsArray(e) ? "an array" : "an object");
            free(v);
            return 0;
        }
        long bad = utf8_invalid_at(e->valuestring, strlen(e->valuestring));
        if (bad >= 0) {
            snprintf(msg, cap, "field '%s'[%d]: invalid UTF-8 at byte %ld", field, i, bad);
            free(v);
            return 0;
        }
        v[i] = e->valuestring;
    }
    *out = v;
    *n = k;
    return 1;
}

// A query text with the pad and EOS token texts stripped from both ends, as OpenRLHF's serve_rm strips
// them before scoring (its client decodes sequences with their special tokens); the encoder then appends
// EOS for decoders as `rlhf score` does. Matches whole token texts, not serve_rm's character set.
static char *strip_query(const tokenizer *tok, const char *text) {
    const char *sp[2] = {NULL, NULL};
    if (tok) {
        int pad = tokenizer_pad_id(tok), eos = tokenizer_eos_id(tok);
        if (pad >= 0) sp[0] = tokenizer_id_to_token(tok, pad);
        if (eos >= 0) sp[1] = tokenizer_id_to_token(tok, eos);
    }
    size_t a = 0, b = strlen(text);
    for (int changed = 1; changed;) {
        changed = 0;
        for (int k = 0; k < 2; k++) {
            size_t n = sp[k] ? strlen(sp[k]) : 0;
            if (!n) continue;
            while (b - a >= n && !memcmp(text + a, sp[k], n)) a += n, changed = 1;
            while (b - a >= n && !memcmp(text + b - n, sp[k], n)) b -= n, changed = 1;
        }
    }
    char *out = malloc(b - a + 1);
    if (out) {
        memcpy(out, text + a, b - a);
        out[b - a] = '\0';
    }
    return out;
}

static char *rewards_json(const double *v, int n) {
    cJSON *o = cJSON_CreateObject();
    cJSON *r = cJSON_AddArrayToObject(o, "rewards");
    cJSON *sc = cJSON_AddArrayToObject(o, "scores");
    int ok = o && r && sc;
    for (int i = 0; ok && i < n; i++) {
        cJSON *x = isfinite(v[i]) ? cJSON_CreateNumber(v[i]) : cJSON_CreateNull();
        cJSON *y = isfinite(v[i]) ? cJSON_CreateNumber(v[i]) : cJSON_CreateNull();
        ok = x && y;
        if (x) cJSON_AddItemToArray(r, x);
        if (y) cJSON_AddItemToArray(sc, y);
    }
    char *json = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return json;
}

static enum MHD_Result get_reward(serve_http *s, struct MHD_Connection *c, const request *rq) {
    if (has_escaped_nul(rq->body, rq->len))
        return send_error(c, s, MHD_HTTP_BAD_REQUEST, NULL, "body: strings must not contain \\u0000");
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(rq->body, rq->len, &end, 0);
    if (!root) {
        long at = end ? (long)(end - rq->body) : 0;
        return send_error(c, s, MHD_HTTP_BAD_REQUEST, NULL, "body: malformed JSON near byte %ld", at);
    }
    char msg[512] = "";
    const char **prompts = NULL, **responses = NULL;
    char **queries = NULL;
    int n = 0, np = 0;
    unsigned status = MHD_HTTP_BAD_REQUEST;
    enum MHD_Result ret;
    if (!cJSON_IsObject(root)) {
        snprintf(msg, sizeof msg, "body: expected a JSON object with \"query\", or \"prompt\" and \"response\"");
    } else if (cJSON_GetObjectItemCaseSensitive(root, "prompt") || cJSON_GetObjectItemCaseSensitive(root, "response")) {
        if (!cJSON_GetObjectItemCaseSensitive(root, "response"))
            snprintf(msg, sizeof msg, "field 'response' missing (\"prompt\" needs \"response\")");
        else if (!cJSON_GetObjectItemCaseSensitive(root, "prompt"))
            snprintf(msg, sizeof msg, "field 'prompt' missing (\"response\" needs \"prompt\"; or send \"query\")");
        else if (string_array(root, "prompt", &prompts, &np, msg, sizeof msg) &&
                 string_array(root, "response", &responses, &n, msg, sizeof msg) && np != n)
            snprintf(msg, sizeof msg, "fields 'prompt' (%d items) and 'response' (%d items) differ in length", np, n);
    } else if (cJSON_GetObjectItemCaseSensitive(root, "query")) {
        const char **q = NULL;
        if (string_array(root, "query", &q, &n, msg, sizeof msg)) {
            queries = calloc((size_t)n, sizeof *queries);
            for (int i = 0; queries && i < n; i++)
                if (!(queries[i] = strip_query(s->o.tok, q[i]))) {
                    snprintf(msg, sizeof msg, "out of memory");
                    status = MHD_HTTP_INTERNAL_SERVER_ERROR;
                }
            if (!queries) {
                snprintf(msg, sizeof msg, "out of memory");
                status = MHD_HTTP_INTERNAL_SERVER_ERROR;
            }
            responses = q;
        }
    } else {
        snprintf(msg, sizeof msg, "body: expected field 'query' (an array of texts), or 'prompt' and 'response'");
    }
    if (msg[0]) {
        ret = send_error(c, s, status, NULL, "%s", msg);
        goto out;
    }
    pref_set set;
    rlhf_err err;
    rlhf_err_clear(&err);
    rlhf_status st = reward_encode_texts(&set, s->o.opts, prompts, queries ? (const char *const *)queries : responses,
                                         n, "request", &err);
    if (st) {
        ret = send_error(c, s, st == RLHF_EINPUT ? MHD_HTTP_BAD_REQUEST : MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "%s",
                         err.msg);
        goto out;
    }
    double *scores = calloc((size_t)n, sizeof *scores);
    reward_job job = {.set = &set, .scores = scores};
    st = scores ? reward_batcher_score(s->o.batcher, &job) : rlhf_fail(&job.err, RLHF_ERUNTIME, "out of memory");
    char *json = st ? NULL : rewards_json(scores, n);
    if (st) ret = send_error(c, s, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "scoring failed: %s", job.err.msg);
    else if (!json) ret = send_error(c, s, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "out of memory");
    else ret = send_json(c, s, MHD_HTTP_OK, json, NULL);
    free(scores);
    pref_set_free(&set);
out:
    if (queries)
        for (int i = 0; i < n; i++) free(queries[i]);
    free(queries);
    free(prompts);
    free(responses);
    cJSON_Delete(root);
    return ret;
}

// ---- libmicrohttpd callbacks -----------------------------------------------------------------------------

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
    (void)version;
    serve_http *s = cls;
    request *rq = *con_cls;
    if (!rq) {  // headers are in: route, authenticate and check the announced size before any body
        rq = calloc(1, sizeof *rq);
        if (!rq) return MHD_NO;
        *con_cls = rq;
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        connection_state *cs = ci ? ci->socket_context : NULL;
        pthread_mutex_lock(&s->mu);
        s->in_flight++;
        if (cs && cs->fresh) {
            cs->fresh = 0;
            s->fresh--;
        }
        pthread_mutex_unlock(&s->mu);
        int get = !strcmp(method, MHD_HTTP_METHOD_GET) || !strcmp(method, MHD_HTTP_METHOD_HEAD);
        if (!strcmp(url, "/health")) {
            if (!get) return send_error(c, s, MHD_HTTP_METHOD_NOT_ALLOWED, "GET, HEAD", "/health: use GET");
            return send_json(c, s, MHD_HTTP_OK, strdup("{\"status\": \"ok\"}"), NULL);
        }
        if (strcmp(url, "/get_reward"))
            return send_error(c, s, MHD_HTTP_NOT_FOUND, NULL, "no such path (expected POST /get_reward or GET /health)");
        if (strcmp(method, MHD_HTTP_METHOD_POST))
            return send_error(c, s, MHD_HTTP_METHOD_NOT_ALLOWED, "POST", "/get_reward: use POST");
        if (!authorized(s, c))
            return send_error(c, s, MHD_HTTP_UNAUTHORIZED, NULL,
                              "missing or wrong API key (send \"Authorization: Bearer KEY\" or \"X-API-Key: KEY\")");
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > s->o.max_request_bytes)
            return send_error(c, s, MHD_HTTP_CONTENT_TOO_LARGE, NULL, "body of %s bytes is over the limit of %zu",
                              cl, s->o.max_request_bytes);
        return MHD_YES;
    }
    if (*upload_data_size) {  // a piece of the body
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        rq->received += n;
        if (rq->too_large || rq->len + n > s->o.max_request_bytes) {
            // Keep reading (and dropping) to answer 413 once the body is in; a body that goes on far past the
            // limit has its connection closed instead (MHD cannot answer in the middle of an upload).
            rq->too_large = 1;
            return rq->received > 2 * s->o.max_request_bytes + (1u << 20) ? MHD_NO : MHD_YES;
        }
        if (rq->len + n + 1 > rq->cap) {
            size_t cap = rq->cap ? rq->cap : 4096;
            while (cap < rq->len + n + 1) cap *= 2;
            char *p = realloc(rq->body, cap);
            if (!p) return MHD_NO;
            rq->body = p;
            rq->cap = cap;
        }
        memcpy(rq->body + rq->len, upload_data, n);
        rq->len += n;
        rq->body[rq->len] = '\0';
        return MHD_YES;
    }
    if (rq->too_large)
        return send_error(c, s, MHD_HTTP_CONTENT_TOO_LARGE, NULL, "body over the limit of %zu bytes",
                          s->o.max_request_bytes);
    if (!rq->len) return send_error(c, s, MHD_HTTP_BAD_REQUEST, NULL, "body: empty (expected a JSON object)");
    return get_reward(s, c, rq);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode t) {
    (void)c;
    (void)t;
    serve_http *s = cls;
    request *rq = *con_cls;
    if (!rq) return;
    free(rq->body);
    free(rq);
    *con_cls = NULL;
    pthread_mutex_lock(&s->mu);
    s->in_flight--;
    pthread_mutex_unlock(&s->mu);
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
    (void)c;
    serve_http *s = cls;
    connection_state *cs = *socket_context;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        cs = calloc(1, sizeof *cs);
        *socket_context = cs;
        if (!cs) return;
        cs->fresh = 1;
        pthread_mutex_lock(&s->mu);
        s->fresh++;
        pthread_mutex_unlock(&s->mu);
    } else if (cs) {
        pthread_mutex_lock(&s->mu);
        if (cs->fresh) s->fresh--;
        pthread_mutex_unlock(&s->mu);
        free(cs);
        *socket_context = NULL;
    }
}

// ---- lifecycle --------------------------------------------------------------------------------------------

rlhf_status serve_http_start(serve_http **out, const serve_http_opts *o, int *bound_port, rlhf_err *err) {
    *out = NULL;
    if (o->port < 0 || o->port > 65535) return rlhf_fail(err, RLHF_EINPUT, "--port: expected 0..65535, got %d", o->port);
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_PASSIVE;
    char port[16];
    snprintf(port, sizeof port, "%d", o->port);
    const char *host = !strcmp(o->host, "localhost") ? "127.0.0.1" : o->host;
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai) return rlhf_fail(err, RLHF_EINPUT, "--host '%s': expected a numeric IPv4 or IPv6 address (%s)", o->host,
                              gai_strerror(gai));
    serve_http *s = calloc(1, sizeof *s);
    if (!s) {
        freeaddrinfo(ai);
        return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    }
    s->o = *o;
    pthread_mutex_init(&s->mu, NULL);
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ITC;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    s->d = MHD_start_daemon(flags, (uint16_t)o->port, NULL, NULL, on_request, s,
                            MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)SERVE_MAX_CONNECTIONS,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)SERVE_CONNECTION_TIMEOUT_S,
                            MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!s->d) {
        pthread_mutex_destroy(&s->mu);
        free(s);
        return rlhf_fail(err, RLHF_ERUNTIME, "cannot listen on %s port %d (in use, or not an address of this machine)",
                         o->host, o->port);
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    *bound_port = di ? di->port : o->port;
    *out = s;
    return RLHF_OK;
}

int serve_http_stop(serve_http *s, double drain_seconds, serve_http_stats *final) {
    if (!s) return 0;
    // No new connections; open ones are still served. Connections the kernel has already completed (the
    // listen backlog) are in flight for their clients: they are taken and served too, then the socket closes.
    MHD_socket l = MHD_quiesce_daemon(s->d);
    if (l != MHD_INVALID_SOCKET) {
        fcntl(l, F_SETFL, fcntl(l, F_GETFL) | O_NONBLOCK);
        for (;;) {
            struct sockaddr_storage sa;
            socklen_t sl = sizeof sa;
            int fd = accept(l, (struct sockaddr *)&sa, &sl);
            if (fd < 0) break;
            if (MHD_add_connection(s->d, fd, (struct sockaddr *)&sa, sl) != MHD_YES) close(fd);
        }
        close(l);
    }
    struct timespec t0, now, nap = {0, 10 * 1000 * 1000};
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long left;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        left = s->in_flight + s->fresh;
        pthread_mutex_unlock(&s->mu);
        clock_gettime(CLOCK_MONOTONIC, &now);
        double el = (double)(now.tv_sec - t0.tv_sec) + 1e-9 * (double)(now.tv_nsec - t0.tv_nsec);
        if (left <= 0 || el >= drain_seconds) break;
        nanosleep(&nap, NULL);
    }
    MHD_stop_daemon(s->d);
    if (final) *final = s->stats;
    pthread_mutex_destroy(&s->mu);
    free(s);
    return (int)(left > 0 ? left : 0);
}
