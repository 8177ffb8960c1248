// Whole-file reading (gzip inflated by magic number) and atomic writing: every file the project
// writes goes to a temporary name in the target's directory, is fsync'd, renamed over the target
// and the directory fsync'd, so a crash or a full disk at any instant leaves either the old file
// or the new one, never a torn one.
#include "io/files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

// Inflated data may be much larger than the file; grow the output buffer geometrically from this.
#define GZIP_MIN_OUT (1u << 16)
// Tries at a fresh temporary name before giving up (names collide only across concurrent writers).
#define TMP_NAME_TRIES 100
#define COPY_CHUNK (1u << 20)
// Test hook (tests/cli/fault_injection.sh): when this variable holds N > 0, atomic_commit sleeps N
// microseconds between writing a temporary file and renaming it into place, so a SIGKILL at a random
// moment lands inside checkpoint writes often enough to test them. Unset in normal use.
#define TEST_WRITE_DELAY_ENV "RLHF_TEST_WRITE_DELAY_US"
#define TEST_WRITE_DELAY_MAX_US 1000000L

static int is_gzip(const char *buf, size_t len) {
    return len >= 2 && (unsigned char)buf[0] == 0x1f && (unsigned char)buf[1] == 0x8b;
}

rlhf_status read_file_raw(const char *path, char **out, size_t *len, rlhf_err *err) {
    *out = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return rlhf_fail(err, RLHF_EINPUT, "%s: cannot open (%s)", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return rlhf_fail(err, RLHF_ERUNTIME, "%s: cannot stat (%s)", path, strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return rlhf_fail(err, RLHF_EINPUT, "%s: is a directory, expected a file", path);
    }
    // Size from fstat is a hint (pipes and /proc report 0); read until EOF, growing as needed.
    size_t cap = st.st_size > 0 ? (size_t)st.st_size + 1 : 4096;
    char *buf = malloc(cap);
    if (!buf) {
        close(fd);
        return rlhf_fail(err, RLHF_ERUNTIME, "%s: out of memory reading %zu bytes", path, cap);
    }
    size_t n = 0;
    for (;;) {
        if (n + 1 >= cap) {
            size_t ncap = cap * 2;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                free(buf);
                close(fd);
                return rlhf_fail(err, RLHF_ERUNTIME, "%s: out of memory reading", path);
            }
            buf = nb;
            cap = ncap;
        }
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            free(buf);
            close(fd);
            return rlhf_fail(err, RLHF_ERUNTIME, "%s: read error (%s)", path, strerror(e));
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = 0;
    *out = buf;
    *len = n;
    return RLHF_OK;
}

// Inflates one or more concatenated gzip members (as `gzip -c a b` writes and gunzip reads).
static rlhf_status gunzip(const char *path, const char *in, size_t in_len, char **out, size_t *out_len,
                          rlhf_err *err) {
    size_t cap = in_len * 4 > GZIP_MIN_OUT ? in_len * 4 : GZIP_MIN_OUT;
    char *buf = malloc(cap);
    if (!buf) return rlhf_fail(err, RLHF_ERUNTIME, "%s: out of memory inflating", path);
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) {
        free(buf);
        return rlhf_fail(err, RLHF_ERUNTIME, "%s: zlib init failed", path);
    }
    size_t consumed = 0, n = 0;
    for (;;) {
        // zlib counts in uInt; feed at most UINT_MAX bytes at a time.
        size_t avail_in = in_len - consumed;
        if (avail_in > UINT_MAX) avail_in = UINT_MAX;
        zs.next_in = (Bytef *)(in + consumed);
        zs.avail_in = (uInt)avail_in;
        if (n + 1 >= cap) {
            size_t ncap = cap * 2;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                inflateEnd(&zs);
                free(buf);
                return rlhf_fail(err, RLHF_ERUNTIME, "%s: out of memory inflating", path);
            }
            buf = nb;
            cap = ncap;
        }
        size_t avail_out = cap - 1 - n;
        if (avail_out > UINT_MAX) avail_out = UINT_MAX;
        zs.next_out = (Bytef *)(buf + n);
        zs.avail_out = (uInt)avail_out;
        int ret = inflate(&zs, Z_NO_FLUSH);
        consumed += avail_in - zs.avail_in;
        n += avail_out - zs.avail_out;
        if (ret == Z_STREAM_END) {
            // Another member may follow; anything else (e.g. zero padding) ends the stream.
            if (consumed < in_len && is_gzip(in + consumed, in_len - consumed)) {
                inflateReset(&zs);
                continue;
            }
            break;
        }
        if (ret == Z_OK || ret == Z_BUF_ERROR) {
            if (zs.avail_out == 0) continue;  // output full: grow and go on
            if (consumed < in_len) continue;
            inflateEnd(&zs);
            free(buf);
            return rlhf_fail(err, RLHF_EINPUT, "%s: truncated gzip data", path);
        }
        char msg[256];
        snprintf(msg, sizeof msg, "%s", zs.msg ? zs.msg : "corrupt data");
        inflateEnd(&zs);
        free(buf);
        return rlhf_fail(err, RLHF_EINPUT, "%s: invalid gzip data (%s)", path, msg);
    }
    inflateEnd(&zs);
    buf[n] = 0;
    *out = buf;
    *out_len = n;
    return RLHF_OK;
}

rlhf_status read_file(const char *path, char **out, size_t *len, rlhf_err *err) {
    char *raw;
    size_t raw_len;
    RLHF_TRY(read_file_raw(path, &raw, &raw_len, err));
    if (!is_gzip(raw, raw_len)) {
        *out = raw;
        *len = raw_len;
        return RLHF_OK;
    }
    rlhf_status s = gunzip(path, raw, raw_len, out, len, err);
    free(raw);
    return s;
}

// The directory part of path ("." when there is none) in a malloc'd string.
static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    size_t n = (size_t)(slash - path);
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, path, n);
    d[n] = 0;
    return d;
}

// Open errors on a path the user chose (missing directory, no permission, read-only file system)
// are bad input; the rest are runtime failures.
static rlhf_status open_error_code(int e) {
    return (e == EACCES || e == EPERM || e == EROFS || e == ENOENT || e == ENOTDIR || e == EISDIR ||
            e == ENAMETOOLONG)
               ? RLHF_EINPUT
               : RLHF_ERUNTIME;
}

rlhf_status atomic_open(atomic_file *f, const char *path, rlhf_err *err) {
    f->fd = -1;
    f->tmp = NULL;
    f->path = strdup(path);
    size_t tlen = strlen(path) + 64;
    f->tmp = malloc(tlen);
    if (!f->path || !f->tmp) {
        atomic_abort(f);
        return rlhf_fail(err, RLHF_ERUNTIME, "%s: out of memory", path);
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t salt = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)(uintptr_t)f;
    for (int attempt = 0; attempt < TMP_NAME_TRIES; attempt++) {
        // The temporary lives beside the target so the rename stays within one file system.
        snprintf(f->tmp, tlen, "%s.tmp.%ld.%llx", path, (long)getpid(),
                 (unsigned long long)((salt + (uint64_t)attempt * 0x9E3779B97F4A7C15ull) & 0xffffffffull));
        f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (f->fd >= 0) return RLHF_OK;
        if (errno != EEXIST) break;
    }
    int e = errno;
    free(f->tmp);
    f->tmp = NULL;
    atomic_abort(f);
    return rlhf_fail(err, open_error_code(e), "%s: cannot write (%s)", path, strerror(e));
}

static rlhf_status write_error(atomic_file *f, int e, rlhf_err *err) {
    const char *why = (e == ENOSPC || e == EDQUOT) ? "disk full"
                      : e == EFBIG                 ? "file size limit exceeded"
                                                   : "write error";
    rlhf_status s = rlhf_fail(err, RLHF_ERUNTIME, "%s: %s (%s); the previous file, if any, is unchanged", f->path,
                              why, strerror(e));
    atomic_abort(f);
    return s;
}

rlhf_status atomic_append(atomic_file *f, const void *data, size_t len, rlhf_err *err) {
    if (f->fd < 0) return rlhf_fail(err, RLHF_ERUNTIME, "%s: write after failure", f->path ? f->path : "?");
    const char *p = data;
    while (len > 0) {
        ssize_t w = write(f->fd, p, len);
        if (w < 0) {
            if (errno == EINTR) continue;
            return write_error(f, errno, err);
        }
        if (w == 0) return write_error(f, ENOSPC, err);
        p += w;
        len -= (size_t)w;
    }
    return RLHF_OK;
}

static void test_write_delay(void) {
    const char *v = getenv(TEST_WRITE_DELAY_ENV);
    if (!v || !*v) return;
    long us = strtol(v, NULL, 10);
    if (us <= 0) return;
    if (us > TEST_WRITE_DELAY_MAX_US) us = TEST_WRITE_DELAY_MAX_US;
    struct timespec ts = {us / 1000000L, (us % 1000000L) * 1000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

rlhf_status atomic_commit(atomic_file *f, rlhf_err *err) {
    if (f->fd < 0) return rlhf_fail(err, RLHF_ERUNTIME, "%s: commit after failure", f->path ? f->path : "?");
    test_write_delay();
    // fsync before rename: otherwise a crash can leave the new name pointing at unwritten blocks.
    if (fsync(f->fd) != 0) return write_error(f, errno, err);
    int fd = f->fd;
    f->fd = -1;
    if (close(fd) != 0) {
        f->fd = -1;
        return write_error(f, errno, err);
    }
    if (rename(f->tmp, f->path) != 0) {
        int e = errno;
        rlhf_status s = rlhf_fail(err, open_error_code(e), "%s: cannot rename temporary file into place (%s)",
                                  f->path, strerror(e));
        atomic_abort(f);
        return s;
    }
    free(f->tmp);
    f->tmp = NULL;
    char *dir = dir_of(f->path);
    rlhf_status s = RLHF_OK;
    if (dir) {
        s = fsync_dir(dir, err);
        free(dir);
    }
    free(f->path);
    f->path = NULL;
    return s;
}

void atomic_abort(atomic_file *f) {
    if (!f) return;
    if (f->fd >= 0) close(f->fd);
    f->fd = -1;
    if (f->tmp) unlink(f->tmp);
    free(f->tmp);
    free(f->path);
    f->tmp = NULL;
    f->path = NULL;
}

rlhf_status atomic_write(const char *path, const void *data, size_t len, rlhf_err *err) {
    atomic_file f;
    RLHF_TRY(atomic_open(&f, path, err));
    RLHF_TRY(atomic_append(&f, data, len, err));
    return atomic_commit(&f, err);
}

rlhf_status copy_file(const char *src, const char *dst, rlhf_err *err) {
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) return rlhf_fail(err, RLHF_EINPUT, "%s: cannot open (%s)", src, strerror(errno));
    char *buf = malloc(COPY_CHUNK);
    if (!buf) {
        close(in);
        return rlhf_fail(err, RLHF_ERUNTIME, "copying %s: out of memory", src);
    }
    atomic_file f;
    rlhf_status s = atomic_open(&f, dst, err);
    while (s == RLHF_OK) {
        ssize_t r = read(in, buf, COPY_CHUNK);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            s = rlhf_fail(err, RLHF_ERUNTIME, "%s: read error (%s)", src, strerror(errno));
            atomic_abort(&f);
            break;
        }
        if (r == 0) {
            s = atomic_commit(&f, err);
            break;
        }
        s = atomic_append(&f, buf, (size_t)r, err);
    }
    free(buf);
    close(in);
    return s;
}

int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int dir_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int dir_nonempty(const char *path) {
    DIR *d = opendir(path);
    if (!d) return 0;
    struct dirent *e;
    int any = 0;
    while (!any && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) any = 1;
    closedir(d);
    return any;
}

rlhf_status make_dirs(const char *path, rlhf_err *err) {
    size_t n = strlen(path);
    if (n == 0) return rlhf_fail(err, RLHF_EINPUT, "empty directory name");
    char *p = strdup(path);
    if (!p) return rlhf_fail(err, RLHF_ERUNTIME, "%s: out of memory", path);
    // Create each prefix in turn; an existing directory at any level is fine.
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != 0) continue;
        char saved = p[i];
        p[i] = 0;
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            int e = errno;
            rlhf_status s = rlhf_fail(err, open_error_code(e), "%s: cannot create directory %s (%s)", path, p,
                                      strerror(e));
            free(p);
            return s;
        }
        if (!dir_exists(p)) {
            rlhf_status s = rlhf_fail(err, RLHF_EINPUT, "%s: %s exists and is not a directory", path, p);
            free(p);
            return s;
        }
        p[i] = saved;
    }
    free(p);
    return RLHF_OK;
}

rlhf_status fsync_dir(const char *dir, rlhf_err *err) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return rlhf_fail(err, open_error_code(errno), "%s: cannot open directory (%s)", dir, strerror(errno));
    // Some file systems refuse fsync on directories (EINVAL); the rename is still in place.
    if (fsync(fd) != 0 && errno != EINVAL && errno != EROFS) {
        int e = errno;
        close(fd);
        return rlhf_fail(err, RLHF_ERUNTIME, "%s: cannot fsync directory (%s)", dir, strerror(e));
    }
    close(fd);
    return RLHF_OK;
}

char *path_join(char *out, size_t n, const char *dir, const char *name) {
    if (n == 0) return out;
    size_t dl = strlen(dir);
    if (dl == 0 || name[0] == '/')
        snprintf(out, n, "%s", name);
    else if (dir[dl - 1] == '/')
        snprintf(out, n, "%s%s", dir, name);
    else
        snprintf(out, n, "%s/%s", dir, name);
    return out;
}
