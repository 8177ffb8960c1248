// Append-only CSV logs. The one exception to "every file is written atomically": a log grows
// row by row, so each row is a single write() followed by fsync, and a resumed run trims a torn
// last line (a kill mid-write) before appending. Cells are quoted as Python's csv module does
// (QUOTE_MINIMAL: only cells holding a comma, a quote or a line break).
#include "base/strbuf.h"
#include "io/csv_log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/files.h"

struct csv_log {
    int fd;
    int n_columns;
    char *path;
};


static void put_cell(strbuf *b, const char *v) {
    if (!v) v = "";
    if (!strpbrk(v, ",\"\r\n")) {
        strbuf_put(b, v, strlen(v));
        return;
    }
    strbuf_put(b, "\"", 1);
    for (const char *c = v; *c; c++) {
        if (*c == '"') strbuf_put(b, "\"", 1);  // a quote inside a quoted cell is doubled
        strbuf_put(b, c, 1);
    }
    strbuf_put(b, "\"", 1);
}

// One CSV line (with '\n') in a malloc'd string, or NULL when out of memory.
static char *format_line(const char *const *cells, int n) {
    strbuf b = {0};
    for (int i = 0; i < n; i++) {
        if (i) strbuf_put(&b, ",", 1);
        put_cell(&b, cells[i]);
    }
    strbuf_put(&b, "\n", 1);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

static rlhf_status write_all(int fd, const char *path, const char *s, size_t n, rlhf_err *err) {
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int e = w < 0 ? errno : ENOSPC;
            return rlhf_fail(err, RLHF_ERUNTIME, "%s: cannot append a row (%s)", path, strerror(e));
        }
        s += w;
        n -= (size_t)w;
    }
    return RLHF_OK;
}

// Checks an existing log's header and trims a torn last line; returns whether a header is present.
static rlhf_status prepare_existing(const char *path, const char *header, int *has_header, rlhf_err *err) {
    *has_header = 0;
    char *text;
    size_t len;
    RLHF_TRY(read_file_raw(path, &text, &len, err));
    rlhf_status s = RLHF_OK;
    if (len > 0) {
        size_t hl = strlen(header);
        if (len < hl || memcmp(text, header, hl) != 0) {
            const char *nl = strchr(text, '\n');
            int shown = nl ? (int)(nl - text) : (int)len;
            s = rlhf_fail(err, RLHF_EINPUT, "%s: existing header '%.*s' does not match the expected '%.*s'", path,
                          shown > 300 ? 300 : shown, text, (int)hl - 1, header);
        } else {
            *has_header = 1;
            size_t keep = len;
            while (keep > 0 && text[keep - 1] != '\n') keep--;
            if (keep != len && truncate(path, (off_t)keep) != 0)
                s = rlhf_fail(err, RLHF_ERUNTIME, "%s: cannot trim a torn last line (%s)", path, strerror(errno));
        }
    }
    free(text);
    return s;
}

rlhf_status csv_log_open(csv_log **out, const char *path, const char *const *columns, int n_columns, int append,
                         rlhf_err *err) {
    *out = NULL;
    if (n_columns <= 0) return rlhf_fail(err, RLHF_ERUNTIME, "%s: a CSV log needs columns", path);
    char *header = format_line(columns, n_columns);
    if (!header) return rlhf_fail(err, RLHF_ERUNTIME, "%s: out of memory", path);
    int has_header = 0;
    rlhf_status s = RLHF_OK;
    if (append && file_exists(path)) s = prepare_existing(path, header, &has_header, err);
    // A fresh log starts as a header written atomically; later rows are appended.
    if (s == RLHF_OK && !has_header) s = atomic_write(path, header, strlen(header), err);
    free(header);
    if (s != RLHF_OK) return s;
    csv_log *l = calloc(1, sizeof *l);
    if (!l || !(l->path = strdup(path))) {
        free(l);
        return rlhf_fail(err, RLHF_ERUNTIME, "%s: out of memory", path);
    }
    l->n_columns = n_columns;
    l->fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (l->fd < 0) {
        int e = errno;
        free(l->path);
        free(l);
        return rlhf_fail(err, RLHF_EINPUT, "%s: cannot open for appending (%s)", path, strerror(e));
    }
    *out = l;
    return RLHF_OK;
}

rlhf_status csv_log_row(csv_log *l, const char *const *values, rlhf_err *err) {
    char *line = format_line(values, l->n_columns);
    if (!line) return rlhf_fail(err, RLHF_ERUNTIME, "%s: out of memory", l->path);
    rlhf_status s = write_all(l->fd, l->path, line, strlen(line), err);
    free(line);
    if (s == RLHF_OK && fsync(l->fd) != 0 && errno != EINVAL)
        s = rlhf_fail(err, RLHF_ERUNTIME, "%s: fsync failed (%s)", l->path, strerror(errno));
    return s;
}

void csv_log_close(csv_log *l) {
    if (!l) return;
    if (l->fd >= 0) close(l->fd);
    free(l->path);
    free(l);
}
