// Bump allocator for activations and aligned allocations for the flat parameter buffers.
#include "base/arena.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static size_t round_up(size_t n) { return (n + RLHF_ALIGN - 1) & ~(size_t)(RLHF_ALIGN - 1); }

// Buffers from this size on (parameters, gradients, optimizer moments of real models) are asked for on
// transparent huge pages: decoding streams the whole parameter buffer once per token, and with 4 KiB pages
// GPT-2 small's tied lm_head read at 23 GB/s instead of 28 (two threads). Where THP is off, or "madvise" is
// refused, the buffer is an ordinary one.
#define HUGE_MIN_BYTES ((size_t)8 << 20)
#define HUGE_PAGE_BYTES ((size_t)2 << 20)

void *rlhf_calloc_aligned(size_t bytes) {
    void *p = NULL;
    size_t n = round_up(bytes ? bytes : 1), align = RLHF_ALIGN;
#ifdef MADV_HUGEPAGE
    if (n >= HUGE_MIN_BYTES) align = HUGE_PAGE_BYTES, n = (n + HUGE_PAGE_BYTES - 1) & ~(HUGE_PAGE_BYTES - 1);
#endif
    if (posix_memalign(&p, align, n) != 0) return NULL;
#ifdef MADV_HUGEPAGE
    if (align == HUGE_PAGE_BYTES) (void)madvise(p, n, MADV_HUGEPAGE);  // a hint: failure leaves 4 KiB pages
#endif
    memset(p, 0, n);
    return p;
}

void rlhf_free(void *p) { free(p); }

rlhf_status arena_init(rlhf_arena *a, size_t cap, rlhf_err *err) {
    memset(a, 0, sizeof *a);
    return arena_reserve(a, cap, err);
}

rlhf_status arena_reserve(rlhf_arena *a, size_t cap, rlhf_err *err) {
    if (cap <= a->cap) return RLHF_OK;
    free(a->base);
    a->base = NULL;
    a->cap = a->used = 0;
    if (cap == 0) return RLHF_OK;
    void *p = NULL;
    if (posix_memalign(&p, RLHF_ALIGN, round_up(cap)) != 0)
        return rlhf_fail(err, RLHF_ERUNTIME, "out of memory: activation arena of %.1f MiB",
                         (double)cap / (1 << 20));
    a->base = p;
    a->cap = round_up(cap);
    return RLHF_OK;
}

void *arena_alloc(rlhf_arena *a, size_t bytes) {
    size_t n = round_up(bytes);
    if (a->used + n > a->cap) return NULL;
    void *p = a->base + a->used;
    a->used += n;
    if (a->used > a->peak) a->peak = a->used;
    return p;
}

float *arena_floats(rlhf_arena *a, size_t n) { return arena_alloc(a, n * sizeof(float)); }

void arena_reset(rlhf_arena *a) { a->used = 0; }

void arena_free(rlhf_arena *a) {
    free(a->base);
    memset(a, 0, sizeof *a);
}

size_t rlhf_peak_rss(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    size_t kb = 0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0) {
            kb = strtoull(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kb * 1024;
}
