// Dense layers and embeddings whose weights are kept as bfloat16 (frozen models loaded from a bf16
// checkpoint: reference and reward models), computed in fp32. bf16 -> fp32 is exact (the 16 bits are
// the high half of the fp32 word), so each kernel widens a panel of the weight into fp32 scratch and runs
// the fp32 op on it: the outputs equal those of the fp32 model built from the same bf16 weights
// (bit-for-bit when the whole weight fits one panel; otherwise each output is still one fp32 dot product
// over the same C terms, computed by the same op on fewer output columns).
#ifndef RLHF_NN_LINEAR_BF16_H
#define RLHF_NN_LINEAR_BF16_H

#include <stddef.h>
#include <stdint.h>

// Floats of fp32 weight scratch the kernels below need for a weight of OC x C (at most panel + the
// panel's output rows): callers pass a buffer of at least linear_bf16_scratch(N, C, OC, panel) floats.
// panel: floats of widened weight per panel (LINEAR_BF16_PANEL by default; tests pass small ones).
#define LINEAR_BF16_PANEL ((size_t)4 << 20)  // 16 MiB of fp32 weight: every layer of a 0.5B model but its LM head
size_t linear_bf16_scratch(int N, int C, int OC, size_t panel);

// dst: (n) fp32 = src: (n) bf16, exactly
void bf16_to_f32(float *dst, const uint16_t *src, size_t n);

// out: (N, OC) = inp: (N, C) @ W^T + bias, W: (OC, C) bf16 (nn.Linear); conv1d: W: (C, OC) (GPT-2's
// Conv1D), out = inp @ W + bias. scratch: linear_bf16_scratch floats.
void linear_bf16_forward(float *out, const float *inp, const uint16_t *weight, const float *bias, int N, int C,
                         int OC, int conv1d, float *scratch, size_t panel);

// out: (N, C) = table[ids] with table: (V, C) bf16
void embedding_bf16_forward(float *out, const int32_t *ids, const uint16_t *table, int N, int C);

#endif
