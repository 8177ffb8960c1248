// Minimal test harness: CHECK-style assertions that count and report, plus tolerance comparisons
// that print the largest error next to its bound and name the failing tensor (llm.c's habit).
#ifndef RLHF_TESTUTIL_H
#define RLHF_TESTUTIL_H

#include <stddef.h>
#include <stdio.h>

extern int tu_passed, tu_failed;

#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        if (cond) {                                                          \
            tu_passed++;                                                     \
        } else {                                                             \
            tu_failed++;                                                     \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);  \
            fprintf(stderr, __VA_ARGS__);                                    \
            fputc('\n', stderr);                                             \
        }                                                                    \
    } while (0)

// Compares got to want elementwise: passes when |g - w| <= atol + rtol * |w| for every element.
// Prints name, the worst element, its error and the bound. Returns 1 on pass.
int tu_close(const char *name, const float *got, const float *want, size_t n, double atol, double rtol);

// Prints "N passed, M failed" and returns the process exit code (0 iff none failed).
int tu_finish(const char *suite);

// Reads a whole file into a malloc'd NUL-terminated buffer (length in *len when len is not NULL); NULL when it
// cannot be read.
char *tu_read_file(const char *path, size_t *len);

// Directory of the committed fixtures (tests/fixtures), relative to the repository root where CTest runs.
#define TU_FIXTURES "tests/fixtures"

#endif
