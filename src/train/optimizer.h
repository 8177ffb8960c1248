// AdamW (torch.optim.AdamW semantics, HF Trainer's no-decay groups) and global gradient-norm
// clipping (torch.nn.utils.clip_grad_norm_) over the flat parameter / gradient buffers.
#ifndef RLHF_TRAIN_OPTIMIZER_H
#define RLHF_TRAIN_OPTIMIZER_H

#include <stddef.h>

#include "base/error.h"
#include "models/model.h"

typedef struct { double beta1, beta2, eps, weight_decay; } adamw_config;  // torch defaults 0.9, 0.999, 1e-8, 0
typedef struct { float *m, *v; size_t n; long long step; } adamw_state;

// Torch's AdamW defaults (betas (0.9, 0.999), eps 1e-8) with weight_decay 0 as HF TrainingArguments.
#define ADAMW_DEFAULT_BETA1 0.9
#define ADAMW_DEFAULT_BETA2 0.999
#define ADAMW_DEFAULT_EPS 1e-8

rlhf_status adamw_init(adamw_state *s, size_t n, rlhf_err *err);
void adamw_free(adamw_state *s);
// One torch.optim.AdamW step at learning rate lr over the flat buffer; parameters of specs with no_decay get no
// weight decay (HF Trainer groups). Increments s->step first (bias correction uses the new step).
void adamw_step(adamw_state *s, float *params, const float *grads, const param_spec *specs, int n_specs,
                double lr, const adamw_config *c);
// Global L2 norm of grads; if max_norm > 0 and the norm exceeds it, scales grads by max_norm/(norm+1e-6) as
// torch.nn.utils.clip_grad_norm_. Returns the pre-clip norm (NaN/Inf propagate so callers can skip the step).
double clip_grad_norm(float *grads, size_t n, double max_norm);

#endif
