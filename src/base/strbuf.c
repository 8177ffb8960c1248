// Growable text buffer: doubling growth, sticky out-of-memory flag.
#include "base/strbuf.h"

#include <stdlib.h>
#include <string.h>

#define STRBUF_MIN_CAP 256

void strbuf_put(strbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : STRBUF_MIN_CAP;
        while (cap < b->n + n + 1) cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

void strbuf_puts(strbuf *b, const char *s) { strbuf_put(b, s, strlen(s)); }

void strbuf_free(strbuf *b) {
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}
