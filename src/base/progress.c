// Progress bars and periodic progress lines. On a terminal the bar is redrawn in place (at most
// every PROGRESS_REDRAW_SECONDS so a fast loop does not spend its time printing); in a log file or
// pipe a \r bar is noise, so a plain line is printed at most every PROGRESS_LOG_SECONDS and once at
// the end. The rate is the average since start (what tqdm shows with smoothing off): stable and
// honest for training steps of equal size.
#include "base/progress.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PROGRESS_REDRAW_SECONDS 0.1
#define PROGRESS_LOG_SECONDS 5.0
#define PROGRESS_BAR_WIDTH 30
#define PROGRESS_LABEL_MAX 64
#define PROGRESS_UNIT_MAX 16

struct progress {
    FILE *out;
    int tty;
    char label[PROGRESS_LABEL_MAX];
    char unit[PROGRESS_UNIT_MAX];
    long long total, done;
    double t_start, t_last_print;
    int printed_width;  // characters of the last \r line, to blank out leftovers
};

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// h:mm:ss above an hour, else m:ss.
static void format_duration(char *out, size_t n, double seconds) {
    if (!(seconds >= 0) || seconds > 1e8) {
        snprintf(out, n, "?");
        return;
    }
    long s = (long)(seconds + 0.5);
    if (s >= 3600)
        snprintf(out, n, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
    else
        snprintf(out, n, "%ld:%02ld", s / 60, s % 60);
}

progress *progress_start_to(FILE *out, int tty, const char *label, long long total, const char *unit) {
    progress *p = calloc(1, sizeof *p);
    if (!p) return NULL;  // progress output is best-effort: callers pass NULL on everywhere
    p->out = out;
    p->tty = tty;
    snprintf(p->label, sizeof p->label, "%s", label ? label : "");
    snprintf(p->unit, sizeof p->unit, "%s", unit ? unit : "it");
    p->total = total;
    p->t_start = now_seconds();
    p->t_last_print = p->t_start;
    return p;
}

progress *progress_start(const char *label, long long total, const char *unit) {
    return progress_start_to(stderr, isatty(2), label, total, unit);
}

// Formats the status text after the bar: "45/100 12.3 it/s ETA 0:05 extra".
static void format_status(const progress *p, char *out, size_t n, double elapsed, const char *extra, int final) {
    double rate = elapsed > 0 ? (double)p->done / elapsed : 0;
    char eta[32] = "";
    if (final) {
        char d[24];
        format_duration(d, sizeof d, elapsed);
        snprintf(eta, sizeof eta, " in %s", d);
    } else if (p->total > 0 && rate > 0) {
        char d[24];
        format_duration(d, sizeof d, (double)(p->total - p->done) / rate);
        snprintf(eta, sizeof eta, " ETA %s", d);
    }
    char count[64];
    if (p->total > 0)
        snprintf(count, sizeof count, "%lld/%lld", p->done, p->total);
    else
        snprintf(count, sizeof count, "%lld", p->done);
    // Slow loops (a PPO step can take minutes) read better as s/unit than 0.0 unit/s.
    char rate_s[48];
    if (rate >= 1 || rate == 0)
        snprintf(rate_s, sizeof rate_s, "%.1f %s/s", rate, p->unit);
    else
        snprintf(rate_s, sizeof rate_s, "%.1f s/%s", 1.0 / rate, p->unit);
    snprintf(out, n, "%s %s%s%s%s", count, rate_s, eta, extra && extra[0] ? " " : "", extra ? extra : "");
}

static void draw(progress *p, const char *extra, int final) {
    double t = now_seconds();
    double elapsed = t - p->t_start;
    char status[512];
    format_status(p, status, sizeof status, elapsed, extra, final);
    if (p->tty) {
        char bar[PROGRESS_BAR_WIDTH + 1];
        int filled = 0;
        if (p->total > 0) {
            long long d = p->done < p->total ? p->done : p->total;
            filled = (int)(d * PROGRESS_BAR_WIDTH / p->total);
        }
        for (int i = 0; i < PROGRESS_BAR_WIDTH; i++)
            bar[i] = i < filled ? '=' : (i == filled && p->total > 0 && filled < PROGRESS_BAR_WIDTH) ? '>' : ' ';
        bar[PROGRESS_BAR_WIDTH] = 0;
        char line[700];
        int w = p->total > 0 ? snprintf(line, sizeof line, "%s [%s] %s", p->label, bar, status)
                             : snprintf(line, sizeof line, "%s %s", p->label, status);
        if (w < 0) w = 0;
        if (w >= (int)sizeof line) w = (int)sizeof line - 1;
        int pad = p->printed_width > w ? p->printed_width - w : 0;
        fprintf(p->out, "\r%s%*s%s", line, pad, "", final ? "\n" : "");
        p->printed_width = w;
    } else {
        fprintf(p->out, "%s %s%s\n", p->label, final ? "done: " : "", status);
    }
    fflush(p->out);
    p->t_last_print = t;
}

void progress_update(progress *p, long long done, const char *extra) {
    if (!p) return;
    p->done = done;
    if (!p->out) return;
    double since = now_seconds() - p->t_last_print;
    if (since >= (p->tty ? PROGRESS_REDRAW_SECONDS : PROGRESS_LOG_SECONDS)) draw(p, extra, 0);
}

void progress_finish(progress *p, const char *extra) {
    if (!p) return;
    if (p->out) draw(p, extra, 1);
    free(p);
}
