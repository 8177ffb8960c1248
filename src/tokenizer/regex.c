// PCRE2 (UTF + Unicode properties, JIT) stands in for the Oniguruma regexes of HF tokenizers: the
// patterns in tokenizer.json files (GPT-2's, Llama-3's, Split patterns) use syntax both accept.
#include <string.h>

#include "tokenizer/tok_internal.h"

rlhf_status tok_regex_compile(const char *pattern, size_t len, pcre2_code **out, const char *what, rlhf_err *err) {
    int ec;
    PCRE2_SIZE eo;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, len, PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &ec, &eo, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof msg);
        return rlhf_fail(err, RLHF_EINPUT, "%s: invalid regex \"%.*s\" at offset %zu: %s", what, (int)(len > 200 ? 200 : len),
                         pattern, (size_t)eo, (const char *)msg);
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);   // falls back to the interpreter when JIT is unavailable
    *out = re;
    return RLHF_OK;
}

int tok_regex_next(const pcre2_code *re, pcre2_match_data *md, const char *s, size_t n, size_t start, size_t *ms,
                   size_t *me) {
    if (start > n) return 0;
    int rc = pcre2_match(re, (PCRE2_SPTR)s, n, start, PCRE2_NO_UTF_CHECK, md, NULL);
    if (rc == PCRE2_ERROR_NOMATCH) return 0;
    if (rc < 0) return -1;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    *ms = ov[0];
    *me = ov[1];
    return 1;
}
