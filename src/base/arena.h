// Activation arena: one allocation sized once per (batch, length) shape, carved by a bump pointer and
// reset between steps. Peak use is tracked so memory is predictable and can be reported.
#ifndef RLHF_BASE_ARENA_H
#define RLHF_BASE_ARENA_H

#include <stddef.h>
#include "base/error.h"

#define RLHF_ALIGN 64  // cache line and AVX-512 register width

typedef struct {
    unsigned char *base;
    size_t cap;   // bytes
    size_t used;  // bytes
    size_t peak;  // high-water mark of used
} rlhf_arena;

// Reserves cap bytes (zeroed lazily by the OS). cap 0 makes an empty arena that grows on first reserve.
rlhf_status arena_init(rlhf_arena *a, size_t cap, rlhf_err *err);
// Ensures capacity of at least cap bytes; discards contents when it has to grow.
rlhf_status arena_reserve(rlhf_arena *a, size_t cap, rlhf_err *err);
// 64-byte aligned block of n floats, or NULL when the arena is full (callers size the arena first).
float *arena_floats(rlhf_arena *a, size_t n);
void *arena_alloc(rlhf_arena *a, size_t bytes);
void arena_reset(rlhf_arena *a);
void arena_free(rlhf_arena *a);

// Aligned heap allocation for flat parameter/gradient buffers (zeroed); free with rlhf_free.
void *rlhf_calloc_aligned(size_t bytes);
void rlhf_free(void *p);

// Peak resident set size of this process in bytes (VmHWM), 0 if unknown.
size_t rlhf_peak_rss(void);

#endif
