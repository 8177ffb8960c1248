// progress.c (base layer, tested here with the io tests): the terminal bar's format and the plain
// log lines' throttling, written to a temporary stream.
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/progress.h"
#include "testutil.h"

static char *capture(FILE *f) {
    long n = ftell(f);
    rewind(f);
    char *s = calloc(1, (size_t)n + 1);
    if (fread(s, 1, (size_t)n, f) != (size_t)n) s[0] = 0;
    return s;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int main(void) {
    // Terminal: \r-redrawn bar; updates within the redraw interval are skipped.
    FILE *f = tmpfile();
    progress *p = progress_start_to(f, 1, "train", 100, "it");
    progress_update(p, 1, NULL);  // too soon: not drawn
    sleep_ms(120);
    progress_update(p, 45, "loss 0.693");
    progress_finish(p, "loss 0.5");
    char *s = capture(f);
    CHECK(strncmp(s, "\rtrain [=============>                ] 45/100 ", 47) == 0, "bar: '%s'", s);
    CHECK(strstr(s, "it/s ETA 0:") && strstr(s, " loss 0.693"), "rate/eta/extra: '%s'", s);
    CHECK(strstr(s, "\rtrain [=============>") && strstr(s, "in 0:00 loss 0.5") && s[strlen(s) - 1] == '\n',
          "final: '%s'", s);
    CHECK(strchr(s, '\n') == s + strlen(s) - 1, "single line until the end: '%s'", s);
    free(s);
    fclose(f);

    // Not a terminal: no \r, no line for quick updates, one final line.
    f = tmpfile();
    p = progress_start_to(f, 0, "eval", 10, "batches");
    for (int i = 1; i <= 10; i++) progress_update(p, i, NULL);
    progress_update(p, 10, NULL);
    progress_finish(p, "acc 0.75");
    s = capture(f);
    CHECK(!strchr(s, '\r'), "no CR in logs");
    CHECK(strncmp(s, "eval done: 10/10 ", 17) == 0 && strstr(s, "batches/s in 0:00 acc 0.75\n"), "plain: '%s'", s);
    CHECK(strchr(s, '\n') == s + strlen(s) - 1, "one line: '%s'", s);
    free(s);
    fclose(f);

    // Unknown total, NULL progress and NULL stream are harmless.
    f = tmpfile();
    p = progress_start_to(f, 1, "gen", 0, NULL);
    sleep_ms(120);
    progress_update(p, 7, NULL);
    progress_finish(p, NULL);
    s = capture(f);
    CHECK(strncmp(s, "\rgen 7 ", 7) == 0 && !strchr(s, '['), "unknown total: '%s'", s);
    free(s);
    fclose(f);
    progress_update(NULL, 1, NULL);
    progress_finish(NULL, NULL);
    p = progress_start_to(NULL, 0, "quiet", 5, "it");
    progress_update(p, 1, "x");
    progress_finish(p, "y");
    return tu_finish("io_progress");
}
