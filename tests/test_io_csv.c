// csv_log.c: header row, quoting as Python's csv module, empty cells, resume (append) with a header
// check and a torn last line trimmed.
#include <stdlib.h>
#include <string.h>

#include "io/csv_log.h"
#include "io/files.h"
#include "testutil.h"

static char tmpdir[256];

static char *slurp(const char *path) {
    char *t = NULL;
    size_t n;
    rlhf_err err;
    if (read_file(path, &t, &n, &err) != RLHF_OK) return strdup("");
    return t;
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/rlhf_test_csv_XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    char path[512];
    snprintf(path, sizeof path, "%s/training_log.csv", tmpdir);
    const char *cols[] = {"epoch", "step", "loss", "eval_loss"};
    rlhf_err err;
    csv_log *l;
    CHECK(csv_log_open(&l, path, cols, 4, 0, &err) == RLHF_OK, "%s", err.msg);
    const char *r1[] = {"0.5", "10", "0.693", NULL};
    const char *r2[] = {"1", "20", "a,b \"q\"", ""};
    CHECK(csv_log_row(l, r1, &err) == RLHF_OK, "%s", err.msg);
    CHECK(csv_log_row(l, r2, &err) == RLHF_OK, "%s", err.msg);
    csv_log_close(l);
    char *t = slurp(path);
    CHECK(strcmp(t, "epoch,step,loss,eval_loss\n0.5,10,0.693,\n1,20,\"a,b \"\"q\"\"\",\n") == 0, "content: '%s'", t);
    free(t);

    // Resume: a torn last line (killed mid-write) is dropped, rows continue after the good ones.
    FILE *f = fopen(path, "a");
    fputs("2,30,0.6", f);
    fclose(f);
    CHECK(csv_log_open(&l, path, cols, 4, 1, &err) == RLHF_OK, "%s", err.msg);
    const char *r3[] = {"2", "30", "0.5", "0.4"};
    CHECK(csv_log_row(l, r3, &err) == RLHF_OK, "%s", err.msg);
    csv_log_close(l);
    t = slurp(path);
    CHECK(strcmp(t, "epoch,step,loss,eval_loss\n0.5,10,0.693,\n1,20,\"a,b \"\"q\"\"\",\n2,30,0.5,0.4\n") == 0,
          "resumed: '%s'", t);
    free(t);

    // A log with other columns is not appended to.
    const char *other[] = {"episode", "step"};
    CHECK(csv_log_open(&l, path, other, 2, 1, &err) == RLHF_EINPUT && strstr(err.msg, "header"), "mismatch: %s",
          err.msg);
    // Without append the log starts over.
    CHECK(csv_log_open(&l, path, other, 2, 0, &err) == RLHF_OK, "%s", err.msg);
    csv_log_close(l);
    t = slurp(path);
    CHECK(strcmp(t, "episode,step\n") == 0, "fresh: '%s'", t);
    free(t);
    // Append to a missing file creates it with the header.
    snprintf(path, sizeof path, "%s/new.csv", tmpdir);
    CHECK(csv_log_open(&l, path, other, 2, 1, &err) == RLHF_OK, "%s", err.msg);
    csv_log_close(l);
    t = slurp(path);
    CHECK(strcmp(t, "episode,step\n") == 0, "created: '%s'", t);
    free(t);
    snprintf(path, sizeof path, "%s/no/dir/x.csv", tmpdir);
    CHECK(csv_log_open(&l, path, other, 2, 0, &err) == RLHF_EINPUT, "bad dir: %s", err.msg);

    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return tu_finish("io_csv");
}
