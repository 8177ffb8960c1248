// PPO's value head, as TRL's AutoModelForCausalLMWithValueHead builds it: ValueHead.summary =
// Linear(hidden_size, 1) with bias, applied to the policy's last hidden state at every position, and
// saved next to the policy weights as "v_head.summary.weight" (1, C) and "v_head.summary.bias" (1).
// (TRL's summary dropout is not applied: PPO runs here with dropout off.)
#ifndef RLHF_MODELS_VALUE_HEAD_H
#define RLHF_MODELS_VALUE_HEAD_H

#include <stdint.h>

#include "base/error.h"
#include "io/safetensors.h"

#define VALUE_HEAD_WEIGHT "v_head.summary.weight"
#define VALUE_HEAD_BIAS "v_head.summary.bias"

typedef struct {
    int C;
    float *params;   // C weights then 1 bias (one buffer, so the optimizer steps it as one tensor)
    float *grads;    // same layout
} value_head;

// weight ~ normal(0, std) (TRL v_head_init_strategy="normal" with v_head_initializer_range=std), bias 0.
rlhf_status value_head_init(value_head *v, int C, float std, uint64_t seed, rlhf_err *err);
void value_head_free(value_head *v);
// Reads both tensors from f; *found = 0 (and v untouched) when f has no value head.
rlhf_status value_head_load(value_head *v, const st_file *f, int *found, rlhf_err *err);
// Fills two st_write_tensor entries (pointing into v) to save with the policy's tensors.
void value_head_tensors(const value_head *v, st_write_tensor out[2]);

// values: (N) = hidden: (N, C) @ weight^T + bias
void value_head_forward(const value_head *v, float *values, const float *hidden, int N);
// Accumulates v->grads and (when dhidden is not NULL) dhidden: (N, C) from dvalues: (N).
void value_head_backward(value_head *v, float *dhidden, const float *dvalues, const float *hidden, int N);

#endif
