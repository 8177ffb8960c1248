// The remote reward client (train/reward_source.h): the one file that talks to libcurl. One easy handle
// per client, so consecutive requests reuse the connection; retries with exponential backoff.
#include <curl/curl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "train/reward_source.h"

// An answer larger than this is refused (a reward list is a few bytes per row).
#define REMOTE_MAX_ANSWER_BYTES (64u << 20)

struct reward_remote {
    CURL *curl;
    struct curl_slist *headers;
    char *url;
    double timeout_s;
    int max_retries;
};

typedef struct {
    char *s;
    size_t len, cap;
    int overflow;
} answer_buf;

static size_t on_data(char *p, size_t size, size_t nmemb, void *ud) {
    answer_buf *b = ud;
    size_t n = size * nmemb;
    if (b->len + n + 1 > REMOTE_MAX_ANSWER_BYTES) {
        b->overflow = 1;
        return 0;  // aborts the transfer
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1) cap *= 2;
        char *q = realloc(b->s, cap);
        if (!q) return 0;
        b->s = q;
        b->cap = cap;
    }
    memcpy(b->s + b->len, p, n);
    b->len += n;
    b->s[b->len] = '\0';
    return n;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;
static void curl_init(void) { curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

rlhf_status reward_remote_open(reward_remote **out, const char *url, double timeout_s, int max_retries,
                               const char *api_key, rlhf_err *err) {
    *out = NULL;
    if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))
        return rlhf_fail(err, RLHF_EINPUT, "--reward_model_path %s: expected http://HOST:PORT/PATH", url);
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc) return rlhf_fail(err, RLHF_ERUNTIME, "libcurl: %s", curl_easy_strerror(curl_init_rc));
    reward_remote *r = calloc(1, sizeof *r);
    if (!r) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    r->url = strdup(url);
    r->curl = curl_easy_init();
    r->timeout_s = timeout_s;
    r->max_retries = max_retries;
    r->headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (api_key && api_key[0] && r->headers) {
        size_t n = strlen(api_key) + 32;
        char *h = malloc(n);
        if (h) {
            snprintf(h, n, "Authorization: Bearer %s", api_key);
            struct curl_slist *l = curl_slist_append(r->headers, h);
            if (l) r->headers = l;
            else r->headers = NULL;
            free(h);
        }
    }
    if (!r->url || !r->curl || !r->headers) {
        reward_remote_free(r);
        return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    }
    CURL *c = r->curl;
    curl_easy_setopt(c, CURLOPT_URL, r->url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);  // no SIGALRM for timeouts: threads and our signal handlers
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    long ms = (long)(timeout_s * 1000);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, ms > 0 ? ms : 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, ms > 0 && ms < 10000 ? ms : 10000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    *out = r;
    return RLHF_OK;
}

void reward_remote_free(reward_remote *r) {
    if (!r) return;
    if (r->curl) curl_easy_cleanup(r->curl);
    curl_slist_free_all(r->headers);
    free(r->url);
    free(r);
}

static char *request_body(const char *const *prompts, const char *const *responses, int n) {
    cJSON *o = cJSON_CreateObject();
    cJSON *q = cJSON_AddArrayToObject(o, "query");
    cJSON *ps = cJSON_AddArrayToObject(o, "prompts");
    cJSON *p = cJSON_AddArrayToObject(o, "prompt");
    cJSON *rs = cJSON_AddArrayToObject(o, "response");
    int ok = o && q && ps && p && rs;
    for (int i = 0; ok && i < n; i++) {
        const char *pi = prompts && prompts[i] ? prompts[i] : "";
        size_t lp = strlen(pi), lr = strlen(responses[i]);
        char *whole = malloc(lp + lr + 1);
        if (!whole) {
            ok = 0;
            break;
        }
        memcpy(whole, pi, lp);
        memcpy(whole + lp, responses[i], lr + 1);
        cJSON *a = cJSON_CreateString(whole), *b = cJSON_CreateString(pi), *c = cJSON_CreateString(pi),
              *d = cJSON_CreateString(responses[i]);
        free(whole);
        ok = a && b && c && d;
        if (a) cJSON_AddItemToArray(q, a);
        if (b) cJSON_AddItemToArray(ps, b);
        if (c) cJSON_AddItemToArray(p, c);
        if (d) cJSON_AddItemToArray(rs, d);
    }
    char *body = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return body;
}

// The server's own message from an error body ({"error": ...} or FastAPI's {"detail": ...}), else its start.
static void server_message(char *dst, size_t cap, const answer_buf *b) {
    dst[0] = '\0';
    if (!b->s) return;
    cJSON *j = cJSON_Parse(b->s);
    const cJSON *e = j ? cJSON_GetObjectItemCaseSensitive(j, "error") : NULL;
    if (!cJSON_IsString(e) && j) e = cJSON_GetObjectItemCaseSensitive(j, "detail");
    if (cJSON_IsString(e)) snprintf(dst, cap, "%s", e->valuestring);
    else snprintf(dst, cap, "%.200s", b->s);
    cJSON_Delete(j);
}

// Reads {"rewards": [n numbers]}; 0 and a message when the answer is not that.
static int parse_rewards(const answer_buf *b, int n, double *out, char *msg, size_t cap) {
    cJSON *j = b->s ? cJSON_ParseWithLength(b->s, b->len) : NULL;
    const cJSON *a = j ? cJSON_GetObjectItemCaseSensitive(j, "rewards") : NULL;
    int ok = cJSON_IsArray(a) && cJSON_GetArraySize(a) == n;
    if (!ok) snprintf(msg, cap, "expected a JSON object with \"rewards\": [%d numbers], got: %.200s", n,
                      b->s ? b->s : "(empty)");
    int i = 0;
    for (const cJSON *e = ok ? a->child : NULL; e; e = e->next, i++) {
        if (!cJSON_IsNumber(e) || !isfinite(e->valuedouble)) {
            snprintf(msg, cap, "\"rewards\"[%d] is not a finite number", i);
            ok = 0;
            break;
        }
        out[i] = e->valuedouble;
    }
    cJSON_Delete(j);
    return ok;
}

static void sleep_s(double s) {
    struct timespec ts = {(time_t)s, (long)((s - floor(s)) * 1e9)};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

rlhf_status reward_remote_score(reward_remote *r, const char *const *prompts, const char *const *responses, int n,
                                double *out, rlhf_err *err) {
    char *body = request_body(prompts, responses, n);
    if (!body) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    curl_easy_setopt(r->curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(r->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    char last[600] = "";
    double backoff = 1.0;
    rlhf_status st = RLHF_ERUNTIME;
    int tries = 0;
    for (; tries <= r->max_retries; tries++) {
        if (tries) {
            fprintf(stderr, "rlhf: reward server %s: %s; retrying in %.0f s (%d of %d)\n", r->url, last, backoff, tries,
                    r->max_retries);
            sleep_s(backoff);
            backoff = fmin(2 * backoff, REWARD_REMOTE_MAX_BACKOFF_S);
        }
        answer_buf b = {0};
        curl_easy_setopt(r->curl, CURLOPT_WRITEDATA, &b);
        CURLcode rc = curl_easy_perform(r->curl);
        long code = 0;
        curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, &code);
        if (rc != CURLE_OK) {
            snprintf(last, sizeof last, "%s", b.overflow ? "answer too large" : curl_easy_strerror(rc));
            free(b.s);
            continue;
        }
        char msg[400];
        if (code >= 500 || code == 429 || code == 408) {
            server_message(msg, sizeof msg, &b);
            snprintf(last, sizeof last, "HTTP %ld %s", code, msg);
            free(b.s);
            continue;
        }
        if (code != 200) {  // the request itself is wrong (URL, key, size): retrying cannot help
            server_message(msg, sizeof msg, &b);
            free(b.s);
            st = rlhf_fail(err, RLHF_ERUNTIME, "reward server %s answered HTTP %ld: %s", r->url, code, msg);
            goto done;
        }
        int ok = parse_rewards(&b, n, out, msg, sizeof msg);
        free(b.s);
        st = ok ? RLHF_OK : rlhf_fail(err, RLHF_ERUNTIME, "reward server %s: %s", r->url, msg);
        goto done;
    }
    st = rlhf_fail(err, RLHF_ERUNTIME, "reward server %s: no answer after %d tries (last: %s)", r->url, tries, last);
done:
    curl_easy_setopt(r->curl, CURLOPT_POSTFIELDS, NULL);
    free(body);
    return st;
}
