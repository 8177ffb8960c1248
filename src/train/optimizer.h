// AdamW (torch.optim.AdamW semantics, HF Trainer's no-decay groups) and global gradient-norm
// clipping (torch.nn.utils.clip_grad_norm_) over the flat parameter / gradient buffers.
#ifndef RLHF_TRAIN_OPTIMIZER_H
#define RLHF_TRAIN_OPTIMIZER_H

#include <stddef.h>

#include "base/dist.h"
#include "base/error.h"
#include "models/model.h"

typedef struct { double beta1, beta2, eps, weight_decay; } adamw_config;  // torch defaults 0.9, 0.999, 1e-8, 0
// m, v hold the moments of flat elements [lo, hi) of n (m[i - lo]): the whole buffer (lo 0, hi n) unless
// sharded across data-parallel processes (ZeRO-1, adamw_shard).
typedef struct { float *m, *v; size_t n; long long step; size_t lo, hi; } adamw_state;

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
// adamw_step on the gradient clipped by grad_scale (grad_clip_scale's factor: each g[i] * grad_scale is the
// float clip_grad_norm would have stored, so the update is bit-identical to clip_grad_norm + adamw_step), and
// grads zeroed in the same pass (model_zero_grads' memset): one pass over the buffers instead of three.
// Only the (unsharded) elements the step updates are zeroed.
void adamw_step_clipped(adamw_state *s, float *params, float *grads, float grad_scale, const param_spec *specs,
                        int n_specs, double lr, const adamw_config *c);
// ZeRO-1: keeps only this rank's contiguous slice of the moments (N near-equal parts of the flat buffer, by rank),
// from a whole state (fresh or loaded from a checkpoint). adamw_step then updates only the slice's parameters,
// with the same per-element arithmetic (so results equal an unsharded run bit for bit), and
// adamw_gather_params brings every rank the others' slices. No-op for one process.
rlhf_status adamw_shard(adamw_state *s, dist *d, rlhf_err *err);
int adamw_sharded(const adamw_state *s);
rlhf_status adamw_gather_params(const adamw_state *s, dist *d, float *params, rlhf_err *err);
// The whole state of a sharded one (every rank takes part; full is allocated, adamw_free it), so a
// checkpoint holds the same moments whatever the process count.
rlhf_status adamw_gather(const adamw_state *s, dist *d, adamw_state *full, rlhf_err *err);
// Global L2 norm of grads; if max_norm > 0 and the norm exceeds it, scales grads by max_norm/(norm+1e-6) as
// torch.nn.utils.clip_grad_norm_. Returns the pre-clip norm (NaN/Inf propagate so callers can skip the step).
double clip_grad_norm(float *grads, size_t n, double max_norm);
// The parts of clip_grad_norm: the global L2 norm (same fixed chunking, so the same value), and the factor the
// gradients are multiplied by (1 when max_norm <= 0, the norm is within it, or it is not finite).
double grad_norm(const float *grads, size_t n);
float grad_clip_scale(double norm, double max_norm);

#endif
