// Test harness counters and tolerance comparison.
#include "testutil.h"

#include <math.h>

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
