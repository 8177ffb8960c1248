// LoRA (Hu et al. 2021) as peft's lora.Linear computes it: a frozen base linear layer plus a trained
// low-rank update, out = base(x) + (alpha / r) * dropout(x) @ A^T @ B^T, with A: (r, C) and
// B: (OC, r) in nn.Linear layout (peft's lora_A / lora_B weights). The base is either a dense fp32
// weight or a 4-bit quantized one (QLoRA); it never receives a gradient. With the adapter disabled
// (the PPO reference model) the same base is used alone, so one copy of the weights serves both.
#ifndef RLHF_NN_LORA_H
#define RLHF_NN_LORA_H

#include <stdint.h>

#include "base/error.h"
#include "nn/nf4.h"

typedef struct {
    int r;          // --lora_r
    float alpha;    // --lora_alpha; scaling = alpha / r (peft without rslora)
    float dropout;  // --lora_dropout, applied to the adapter's input only (training only)
} lora_config;

// The frozen base layer: weight (OC, C) dense, or qweight 4-bit; bias (OC) or NULL.
typedef struct {
    const float *weight;
    const nf4_tensor *qweight;
    const float *bias;
    nf4_compute compute;  // compute dtype of the 4-bit matmul (ignored for a dense base)
    int conv1d;           // dense weight stored (C, OC) as transformers' Conv1D (GPT-2)
} lora_base;

static inline float lora_scaling(const lora_config *c) { return c->alpha / (float)c->r; }

// peft's initialisation: A ~ kaiming_uniform(a = sqrt(5)) = U(-1/sqrt(C), 1/sqrt(C)) drawn from
// key (element i of A uses counter i), B = 0, so a fresh adapter leaves the base output unchanged.
void lora_init(float *A, float *B, int r, int C, int OC, uint64_t key);

// out: (N, OC) = base(inp). inp: (N, C).
rlhf_status lora_base_forward(float *out, const float *inp, const lora_base *base, int N, int C, int OC,
                              rlhf_err *err);

// out: (N, OC) = base(inp) + scaling * dropout(inp) @ A^T @ B^T; xa: (N, r) saved for the backward
// (= dropout(inp) @ A^T). Dropout is active when training and c->dropout > 0; its mask is a pure
// function of dropout_key and the element index, regenerated in the backward.
rlhf_status lora_linear_forward(float *out, float *xa, const float *inp, const lora_base *base, const float *A,
                                const float *B, const lora_config *c, int training, uint64_t dropout_key, int N,
                                int C, int OC, rlhf_err *err);
// Accumulates (+=) dinp: (N, C), dA: (r, C), dB: (OC, r) (each may be NULL) from dout: (N, OC).
// dinp includes the frozen base's contribution dout @ W.
rlhf_status lora_linear_backward(float *dinp, float *dA, float *dB, const float *dout, const float *inp,
                                 const float *xa, const lora_base *base, const float *A, const float *B,
                                 const lora_config *c, int training, uint64_t dropout_key, int N, int C, int OC,
                                 rlhf_err *err);

// W: (OC, C) += scaling * B @ A (peft merge_and_unload on a dense base).
void lora_merge(float *W, const float *A, const float *B, const lora_config *c, int C, int OC);

#endif
