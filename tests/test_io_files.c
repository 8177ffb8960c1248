// files.c: gzip-by-magic reads, atomic writes that leave the old file whole when the directory is
// read-only or the file size limit (standing in for a full disk) is hit, copies, mkdir -p, path_join.
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "io/files.h"
#include "testutil.h"

static char tmpdir[256];

static int count_entries(const char *dir) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "ls -A '%s' | wc -l", dir);
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (p) {
        if (fscanf(p, "%d", &n) != 1) n = -1;
        pclose(p);
    }
    return n;
}

static void test_read_gzip(void) {
    char path[512];
    rlhf_err err;
    snprintf(path, sizeof path, "%s/a.txt.gz", tmpdir);
    // Two concatenated gzip members, as `cat a.gz b.gz` gives.
    gzFile g = gzopen(path, "wb");
    gzputs(g, "hello ");
    gzclose(g);
    char path2[512];
    snprintf(path2, sizeof path2, "%s/b.gz", tmpdir);
    g = gzopen(path2, "wb");
    gzputs(g, "world");
    gzclose(g);
    char *a, *b;
    size_t la, lb;
    read_file_raw(path, &a, &la, &err);
    read_file_raw(path2, &b, &lb, &err);
    char *cat = malloc(la + lb);
    memcpy(cat, a, la);
    memcpy(cat + la, b, lb);
    CHECK(atomic_write(path, cat, la + lb, &err) == RLHF_OK, "%s", err.msg);
    char *txt;
    size_t n;
    CHECK(read_file(path, &txt, &n, &err) == RLHF_OK, "%s", err.msg);
    CHECK(n == 11 && strcmp(txt, "hello world") == 0, "got '%s'", txt);
    free(txt);
    // A large, highly compressible payload (inflated size far above the 4x first guess).
    size_t big = 5u << 20;
    char *payload = malloc(big);
    for (size_t i = 0; i < big; i++) payload[i] = (char)('a' + (i % 7 == 0));
    g = gzopen(path2, "wb9");
    gzwrite(g, payload, (unsigned)big);
    gzclose(g);
    CHECK(read_file(path2, &txt, &n, &err) == RLHF_OK && n == big && memcmp(txt, payload, big) == 0, "big gz");
    free(txt);
    // Truncated gzip is an input error naming the file.
    char *raw;
    size_t rl;
    read_file_raw(path2, &raw, &rl, &err);
    atomic_write(path2, raw, rl / 2, &err);
    CHECK(read_file(path2, &txt, &n, &err) == RLHF_EINPUT && strstr(err.msg, "b.gz"), "truncated gz: %s", err.msg);
    free(raw);
    free(payload);
    free(cat);
    free(a);
    free(b);
    snprintf(path, sizeof path, "%s/missing", tmpdir);
    CHECK(read_file(path, &txt, &n, &err) == RLHF_EINPUT && strstr(err.msg, "missing"), "missing: %s", err.msg);
}

static void test_atomic_readonly(void) {
    char dir[512], path[600];
    rlhf_err err;
    snprintf(dir, sizeof dir, "%s/ro", tmpdir);
    CHECK(make_dirs(dir, &err) == RLHF_OK, "%s", err.msg);
    path_join(path, sizeof path, dir, "f.txt");
    CHECK(atomic_write(path, "old", 3, &err) == RLHF_OK, "%s", err.msg);
    chmod(dir, 0555);
    rlhf_status s;
    if (geteuid() == 0) {
        // root ignores permission bits: run the write as `nobody` in a child process.
        chmod(tmpdir, 0755);
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            if (setgid(65534) != 0 || setuid(65534) != 0) _exit(100);
            rlhf_status cs = atomic_write(path, "new", 3, &err);
            _exit(cs == RLHF_EINPUT && strstr(err.msg, "f.txt") ? 0 : 1);
        }
        int st = -1;
        waitpid(pid, &st, 0);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "read-only dir as nobody: child status %d", st);
        s = RLHF_EINPUT;
        snprintf(err.msg, sizeof err.msg, "f.txt");
    } else {
        s = atomic_write(path, "new", 3, &err);
    }
    CHECK(s == RLHF_EINPUT && strstr(err.msg, "f.txt"), "read-only dir: %d %s", s, err.msg);
    chmod(dir, 0755);
    char *txt;
    size_t n;
    CHECK(read_file(path, &txt, &n, &err) == RLHF_OK && strcmp(txt, "old") == 0, "old file kept");
    free(txt);
    CHECK(count_entries(dir) == 1, "no temporary left behind (%d entries)", count_entries(dir));
    // A missing parent directory is bad input too.
    snprintf(path, sizeof path, "%s/no/such/dir/f", tmpdir);
    CHECK(atomic_write(path, "x", 1, &err) == RLHF_EINPUT, "missing dir: %s", err.msg);
}

static void test_atomic_fsize(void) {
    char dir[512], path[600];
    rlhf_err err;
    snprintf(dir, sizeof dir, "%s/full", tmpdir);
    make_dirs(dir, &err);
    path_join(path, sizeof path, dir, "big.bin");
    CHECK(atomic_write(path, "previous", 8, &err) == RLHF_OK, "%s", err.msg);
    // RLIMIT_FSIZE makes write() fail with EFBIG once SIGXFSZ is ignored: a stand-in for a full disk.
    struct rlimit old;
    getrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim = {4096, old.rlim_max};
    CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0, "setrlimit");
    size_t n = 1 << 20;
    char *data = calloc(1, n);
    rlhf_status s = atomic_write(path, data, n, &err);
    setrlimit(RLIMIT_FSIZE, &old);
    CHECK(s == RLHF_ERUNTIME && strstr(err.msg, "big.bin") && strstr(err.msg, "unchanged"), "fsize: %d %s", s,
          err.msg);
    char *txt;
    size_t len;
    CHECK(read_file(path, &txt, &len, &err) == RLHF_OK && strcmp(txt, "previous") == 0, "old content kept");
    free(txt);
    CHECK(count_entries(dir) == 1, "temporary removed (%d entries)", count_entries(dir));
    // The streaming form: failure in the middle, then abort is harmless.
    atomic_file f;
    CHECK(atomic_open(&f, path, &err) == RLHF_OK, "%s", err.msg);
    CHECK(atomic_append(&f, data, 100, &err) == RLHF_OK, "%s", err.msg);
    atomic_abort(&f);
    atomic_abort(&f);
    CHECK(count_entries(dir) == 1, "abort removes temporary");
    free(data);
}

static void test_copy_dirs_paths(void) {
    char src[512], dst[512], buf[64];
    rlhf_err err;
    snprintf(src, sizeof src, "%s/src.bin", tmpdir);
    snprintf(dst, sizeof dst, "%s/x/y/z/dst.bin", tmpdir);
    char data[3000];
    for (int i = 0; i < 3000; i++) data[i] = (char)(i * 7);
    CHECK(atomic_write(src, data, sizeof data, &err) == RLHF_OK, "%s", err.msg);
    snprintf(buf, sizeof buf, "%s", "");
    char d[512];
    snprintf(d, sizeof d, "%s/x/y/z", tmpdir);
    CHECK(make_dirs(d, &err) == RLHF_OK && dir_exists(d), "mkdir -p");
    CHECK(make_dirs(d, &err) == RLHF_OK, "mkdir -p twice");
    CHECK(make_dirs(src, &err) == RLHF_EINPUT, "mkdir over a file: %s", err.msg);
    CHECK(copy_file(src, dst, &err) == RLHF_OK, "%s", err.msg);
    char *got;
    size_t n;
    CHECK(read_file_raw(dst, &got, &n, &err) == RLHF_OK && n == sizeof data && memcmp(got, data, n) == 0, "copy");
    free(got);
    CHECK(file_exists(dst) && !file_exists(d) && !dir_exists(dst), "exists");
    CHECK(strcmp(path_join(buf, sizeof buf, "a", "b"), "a/b") == 0, "join");
    CHECK(strcmp(path_join(buf, sizeof buf, "a/", "b"), "a/b") == 0, "join slash");
    CHECK(strcmp(path_join(buf, sizeof buf, "", "b"), "b") == 0, "join empty");
    CHECK(strcmp(path_join(buf, sizeof buf, "a", "/b"), "/b") == 0, "join absolute");
    CHECK(fsync_dir(tmpdir, &err) == RLHF_OK, "fsync dir");
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/rlhf_test_files_XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    test_read_gzip();
    test_atomic_readonly();
    test_atomic_fsize();
    test_copy_dirs_paths();
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "chmod -R u+w '%s'; rm -rf '%s'", tmpdir, tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return tu_finish("io_files");
}
