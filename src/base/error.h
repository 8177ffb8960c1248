// Errors are values. A function that can fail returns an rlhf_status and fills an rlhf_err with a
// message that names the input (file, line, tensor, flag) and what was expected. Only the CLI turns
// the status into an exit code: RLHF_EINPUT -> 2 (bad usage or input), RLHF_ERUNTIME -> 1.
#ifndef RLHF_BASE_ERROR_H
#define RLHF_BASE_ERROR_H

#include <stddef.h>

typedef enum {
    RLHF_OK = 0,
    RLHF_ERUNTIME = 1,   // out of memory, I/O failure, numerical failure: exit 1
    RLHF_EINPUT = 2,     // bad flag, malformed file, unsupported model: exit 2
    RLHF_EINTERRUPT = 130 // stopped by SIGINT/SIGTERM after saving state
} rlhf_status;

#define RLHF_ERR_MSG 2048

typedef struct {
    rlhf_status code;
    char msg[RLHF_ERR_MSG];
} rlhf_err;

// Sets err (may be NULL) to code with a printf-style message; returns code so callers can
// `return rlhf_fail(err, RLHF_EINPUT, "%s: ...", path);`
rlhf_status rlhf_fail(rlhf_err *err, rlhf_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

// Prepends context ("while loading X: ") to an existing message; returns err->code.
rlhf_status rlhf_err_prefix(rlhf_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void rlhf_err_clear(rlhf_err *err);

// Propagate a failing status: RLHF_TRY(load(x, err));
#define RLHF_TRY(expr)                          \
    do {                                        \
        rlhf_status rlhf_try_s_ = (expr);       \
        if (rlhf_try_s_ != RLHF_OK) return rlhf_try_s_; \
    } while (0)

#endif
