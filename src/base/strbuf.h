// A growable byte buffer for building text (JSON headers, CSV rows): appends never fail loudly; an
// allocation failure sets oom, later appends are ignored, and the caller checks oom once at the end.
#ifndef RLHF_BASE_STRBUF_H
#define RLHF_BASE_STRBUF_H

#include <stddef.h>

typedef struct {
    char *p;     // NUL-terminated after every append (when not oom)
    size_t n;    // bytes used, excluding the NUL
    size_t cap;
    int oom;
} strbuf;

void strbuf_put(strbuf *b, const char *s, size_t n);
void strbuf_puts(strbuf *b, const char *s);
void strbuf_free(strbuf *b);

#endif
