// Process-wide floating-point settings chosen once at start-up by the executable (never by the library).
#ifndef RLHF_BASE_CPU_H
#define RLHF_BASE_CPU_H

// Sets flush-to-zero and denormals-are-zero for this thread (x86 MXCSR; OpenMP threads created later
// inherit it). The gradients of freshly initialised models are full of denormals, on which x86 arithmetic
// is ~100x slower; PyTorch does the same with torch.set_flush_denormal(True). Results stay deterministic.
void cpu_flush_denormals(void);

#endif
