// Test harness counters and tolerance comparison.
#include "testutil.h"

#include <math.h>
#include <stdlib.h>

int tu_passed, tu_failed;

int tu_close(const char *name, const float *got, const float *want, size_t n, double atol, double rtol) {
    size_t worst = 0;
    double worst_excess = -INFINITY, worst_err = 0, worst_bound = 0;
    int ok = 1;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - (double)want[i]);
        double bound = atol + rtol * fabs((double)want[i]);
        if (!(e <= bound)) ok = 0;  // NaN fails
        double excess = isnan(e) ? INFINITY : e - bound;
        if (excess > worst_excess) {
            worst_excess = excess; worst = i; worst_err = e; worst_bound = bound;
        }
    }
    if (ok) {
        tu_passed++;
    } else {
        tu_failed++;
        fprintf(stderr, "FAIL %s: element %zu of %zu: got %.8g want %.8g, |err| %.3g > bound %.3g\n", name,
                worst, n, n ? got[worst] : 0.0, n ? want[worst] : 0.0, worst_err, worst_bound);
    }
    return ok;
}

int tu_finish(const char *suite) {
    printf("%s: %d passed, %d failed\n", suite, tu_passed, tu_failed);
    return tu_failed ? 1 : 0;
}

char *tu_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *b = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) b[n] = 0;
    if (b && len) *len = (size_t)n;
    return b;
}
