// Error values: formatting and context chaining for rlhf_err.
#include "base/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

rlhf_status rlhf_fail(rlhf_err *err, rlhf_status code, const char *fmt, ...) {
    if (!err) return code;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return code;
}

rlhf_status rlhf_err_prefix(rlhf_err *err, const char *fmt, ...) {
    if (!err) return RLHF_ERUNTIME;
    char prefix[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char old[RLHF_ERR_MSG];
    memcpy(old, err->msg, sizeof old);
    size_t n = strlen(prefix);
    if (n >= sizeof err->msg) n = sizeof err->msg - 1;
    memcpy(err->msg, prefix, n);
    size_t rest = strnlen(old, sizeof old);
    if (rest > sizeof err->msg - 1 - n) rest = sizeof err->msg - 1 - n;
    memcpy(err->msg + n, old, rest);
    err->msg[n + rest] = 0;
    return err->code;
}

void rlhf_err_clear(rlhf_err *err) {
    if (!err) return;
    err->code = RLHF_OK;
    err->msg[0] = 0;
}
