// Reward programs: "exec:COMMAND ARGS", the equivalent of TRL's Python reward callables for any language.
// The program is started once (/bin/sh -c COMMAND, stdin and stdout on pipes, stderr shared with ours)
// and kept running; per completion it reads one JSON line and answers one line, a number or null. One
// line at a time, so an error names exactly the line the program failed on. SIGPIPE is blocked around
// each write (a program that died is an error, not a signal that kills the trainer).
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "train/reward_funcs.h"

// The line quoted in error messages is cut to this many bytes (the message buffer is 2 KiB).
#define EXEC_QUOTE_MAX 600

typedef struct {
    reward_fn base;
    char *command;
    pid_t pid;
    int to_child, from_child;  // our ends of its stdin / stdout
    double timeout_s;
    char *buf;                 // bytes read but not consumed yet
    size_t len, cap;
    int exited;                // waitpid collected it
    int status;
} exec_source;

static void kill_child(exec_source *x) {
    if (x->to_child >= 0) close(x->to_child);
    if (x->from_child >= 0) close(x->from_child);
    x->to_child = x->from_child = -1;
    if (x->pid > 0 && !x->exited) {
        // closed stdin ends a well-behaved program; give it a moment, then kill it
        for (int i = 0; i < 50; i++) {
            if (waitpid(x->pid, &x->status, WNOHANG) == x->pid) {
                x->exited = 1;
                return;
            }
            struct timespec ts = {0, 2000000};
            nanosleep(&ts, NULL);
        }
        kill(x->pid, SIGKILL);
        waitpid(x->pid, &x->status, 0);
        x->exited = 1;
    }
}

static void exec_destroy(reward_fn *s) {
    exec_source *x = (exec_source *)s;
    kill_child(x);
    free(x->command);
    free(x->buf);
    free(x);
}

static void describe_exit(exec_source *x, char *out, size_t n) {
    // its output closed: it is most likely exiting; wait for it a moment to report how it ended
    for (int i = 0; i < 200 && !x->exited; i++) {
        if (waitpid(x->pid, &x->status, WNOHANG) == x->pid) x->exited = 1;
        else {
            struct timespec ts = {0, 5000000};
            nanosleep(&ts, NULL);
        }
    }
    if (!x->exited) snprintf(out, n, "closed its output");
    else if (WIFEXITED(x->status)) snprintf(out, n, "exited with status %d", WEXITSTATUS(x->status));
    else if (WIFSIGNALED(x->status)) snprintf(out, n, "was killed by signal %d", WTERMSIG(x->status));
    else snprintf(out, n, "stopped");
}

static rlhf_status fail_line(exec_source *x, rlhf_err *err, const char *line, const char *fmt, const char *what) {
    char quoted[EXEC_QUOTE_MAX + 8];
    size_t n = strlen(line);
    if (n && line[n - 1] == '\n') n--;
    if (n > EXEC_QUOTE_MAX) snprintf(quoted, sizeof quoted, "%.*s ...", EXEC_QUOTE_MAX, line);
    else snprintf(quoted, sizeof quoted, "%.*s", (int)n, line);
    char msg[RLHF_ERR_MSG];
    snprintf(msg, sizeof msg, fmt, what);
    rlhf_status st = rlhf_fail(err, RLHF_ERUNTIME, "reward program '%s' %s; the line it was given: %s", x->command, msg,
                               quoted);
    kill_child(x);
    return st;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// Writes all of line with SIGPIPE blocked (EPIPE instead of death); a pending SIGPIPE is consumed.
static int write_all(int fd, const char *p, size_t n) {
    sigset_t pipe_set, old;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    int ok = 1;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            ok = 0;
            break;
        }
        p += w;
        n -= (size_t)w;
    }
    if (!ok) {
        struct timespec zero = {0, 0};
        sigtimedwait(&pipe_set, NULL, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return ok;
}

// Reads one line (without the newline) into *out (points into x->buf, valid until the next read).
// Returns 1 with a line, 0 at end of output, -1 on timeout.
static int read_line(exec_source *x, char **out, size_t *out_len) {
    double deadline = now_s() + x->timeout_s;
    for (;;) {
        char *nl = x->len ? memchr(x->buf, '\n', x->len) : NULL;
        if (nl) {
            *nl = 0;
            *out = x->buf;
            *out_len = (size_t)(nl - x->buf);
            return 1;
        }
        double left = deadline - now_s();
        if (left <= 0) return -1;
        struct pollfd p = {x->from_child, POLLIN, 0};
        int r = poll(&p, 1, (int)(left * 1000) + 1);
        if (r < 0 && errno == EINTR) continue;
        if (r == 0) continue;  // the loop re-checks the deadline
        if (x->cap - x->len < 4096) {
            size_t cap = x->cap ? 2 * x->cap : 8192;
            char *g = realloc(x->buf, cap);
            if (!g) return 0;
            x->buf = g;
            x->cap = cap;
        }
        ssize_t n = read(x->from_child, x->buf + x->len, x->cap - x->len - 1);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return 0;
        x->len += (size_t)n;
    }
}

static void consume_line(exec_source *x, size_t line_len) {
    size_t used = line_len + 1;
    memmove(x->buf, x->buf + used, x->len - used);
    x->len -= used;
}

static char *item_json(const reward_item *it) {
    cJSON *o = it->row ? cJSON_Duplicate(it->row, 1) : cJSON_CreateObject();
    if (!o) return NULL;
    if (!cJSON_GetObjectItemCaseSensitive(o, "prompt") && it->prompt_text)
        cJSON_AddStringToObject(o, "prompt", it->prompt_text);
    cJSON_DeleteItemFromObjectCaseSensitive(o, "completion");
    cJSON_DeleteItemFromObjectCaseSensitive(o, "completion_ids");
    if (it->completion_text) cJSON_AddStringToObject(o, "completion", it->completion_text);
    cJSON *ids = cJSON_AddArrayToObject(o, "completion_ids");
    for (int i = 0; ids && i < it->completion_n; i++) cJSON_AddItemToArray(ids, cJSON_CreateNumber(it->completion_ids[i]));
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s) return NULL;
    size_t n = strlen(s);
    char *line = realloc(s, n + 2);
    if (!line) {
        free(s);
        return NULL;
    }
    line[n] = '\n';
    line[n + 1] = 0;
    return line;
}

static rlhf_status exec_score(reward_fn *s, const reward_item *items, int n, float *out, rlhf_err *err) {
    exec_source *x = (exec_source *)s;
    for (int i = 0; i < n; i++) {
        if (x->to_child < 0) return rlhf_fail(err, RLHF_ERUNTIME, "reward program '%s' is not running", x->command);
        char *line = item_json(&items[i]);
        if (!line) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
        char why[96];
        if (!write_all(x->to_child, line, strlen(line))) {
            describe_exit(x, why, sizeof why);
            rlhf_status st = fail_line(x, err, line, "%s before reading its input", why);
            free(line);
            return st;
        }
        char *ans;
        size_t alen;
        int r = read_line(x, &ans, &alen);
        if (r <= 0) {
            rlhf_status st;
            if (r < 0) {
                snprintf(why, sizeof why, "%g", x->timeout_s);
                st = fail_line(x, err, line, "did not answer within --reward_timeout %s seconds", why);
            } else {
                describe_exit(x, why, sizeof why);
                st = fail_line(x, err, line, "%s without answering", why);
            }
            free(line);
            return st;
        }
        // a number or null, surrounding spaces (and a Windows \r) allowed
        char *a = ans, *e = ans + alen;
        while (a < e && (*a == ' ' || *a == '\t')) a++;
        while (e > a && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r')) e--;
        *e = 0;
        char *end = NULL;
        double v = strtod(a, &end);
        if (!strcmp(a, "null") || !strcmp(a, "None")) {
            out[i] = NAN;
        } else if (end == a || *end || !isfinite(v)) {
            char what[160];
            snprintf(what, sizeof what, "%.100s", a);
            char fmt[64];
            snprintf(fmt, sizeof fmt, "answered '%%s' (expected a number or null)");
            rlhf_status st = fail_line(x, err, line, fmt, what);
            free(line);
            return st;
        } else {
            out[i] = (float)v;
        }
        consume_line(x, alen);
        free(line);
    }
    return RLHF_OK;
}

rlhf_status reward_exec_open(reward_fn **out, const char *command, double timeout_s, rlhf_err *err) {
    *out = NULL;
    while (*command == ' ') command++;
    if (!*command) return rlhf_fail(err, RLHF_EINPUT, "--reward_funcs exec: expected a command after 'exec:'");
    exec_source *x = calloc(1, sizeof *x);
    if (!x) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    x->to_child = x->from_child = -1;
    x->timeout_s = timeout_s;
    x->command = strdup(command);
    x->base.score = exec_score;
    x->base.destroy = exec_destroy;
    // the name: the last word's base name, characters a CSV header keeps as they are
    const char *w = command + strlen(command);
    while (w > command && w[-1] == ' ') w--;
    const char *we = w;
    while (w > command && w[-1] != ' ') w--;
    for (const char *p = we; p > w; p--)
        if (p[-1] == '/') {
            w = p;
            break;
        }
    size_t k = 0;
    for (const char *p = w; p < we && k + 1 < sizeof x->base.name; p++)
        x->base.name[k++] = (char)((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                                           *p == '_' || *p == '.' || *p == '-'
                                       ? *p
                                       : '_');
    if (!k) snprintf(x->base.name, sizeof x->base.name, "exec");
    int in[2], outp[2];
    if (!x->command || pipe(in) != 0) {
        exec_destroy(&x->base);
        return rlhf_fail(err, RLHF_ERUNTIME, "reward program '%s': cannot create pipes", command);
    }
    if (pipe(outp) != 0) {
        close(in[0]);
        close(in[1]);
        exec_destroy(&x->base);
        return rlhf_fail(err, RLHF_ERUNTIME, "reward program '%s': cannot create pipes", command);
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(in[0]), close(in[1]), close(outp[0]), close(outp[1]);
        exec_destroy(&x->base);
        return rlhf_fail(err, RLHF_ERUNTIME, "reward program '%s': cannot fork (%s)", command, strerror(errno));
    }
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(outp[1], 1);
        close(in[0]), close(in[1]), close(outp[0]), close(outp[1]);
        signal(SIGPIPE, SIG_DFL);
        execl("/bin/sh", "sh", "-c", command, (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(outp[1]);
    fcntl(in[1], F_SETFD, FD_CLOEXEC);
    fcntl(outp[0], F_SETFD, FD_CLOEXEC);
    x->pid = pid;
    x->to_child = in[1];
    x->from_child = outp[0];
    *out = &x->base;
    return RLHF_OK;
}
