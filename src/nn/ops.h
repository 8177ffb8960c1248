// The differentiable ops every model is built from. Each op is a pair of plain functions, forward
// and backward (llm.c's convention): arguments in the order out, saved-for-backward, inputs,
// weights, then sizes. Backward functions ACCUMULATE (+=) into every gradient buffer they receive,
// which the caller zeroes once per step; a NULL gradient pointer means "not needed".
// Matrices are row-major; weights keep PyTorch's layout (nn.Linear: (OC, C)).
#ifndef RLHF_NN_OPS_H
#define RLHF_NN_OPS_H

#include <stdint.h>

// ---- linear ------------------------------------------------------------------------------------
// out: (N, OC) = inp: (N, C) @ weight^T + bias; weight: (OC, C) (nn.Linear); bias: (OC) or NULL
void linear_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int C, int OC);
void linear_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, int N, int C, int OC);
// GPT-2's Conv1D keeps the weight transposed: out = inp @ weight + bias, weight: (C, OC)
void conv1d_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int C, int OC);
void conv1d_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, int N, int C, int OC);

// ---- embedding ---------------------------------------------------------------------------------
// out: (N, C) = table[ids[n]]; table: (V, C); ids must be in [0, V) (the tokenizer / dataset layer
// validates them). Backward skips rows equal to padding_idx (torch
// nn.Embedding(padding_idx) semantics; pass -1 for none).
void embedding_forward(float *out, const int32_t *ids, const float *table, int N, int C);
void embedding_backward(float *dtable, const float *dout, const int32_t *ids, int N, int C, int padding_idx);

// ---- normalisation -----------------------------------------------------------------------------
// out, inp: (N, C); mean, rstd: (N) saved for backward; weight, bias: (C)
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                       const float *bias, int N, int C, float eps);
void layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                        const float *weight, const float *mean, const float *rstd, int N, int C);
// layernorm_forward's out again from its inp and the mean / rstd it saved, bit-identical (a backward that did
// not keep the output recomputes it)
void layernorm_apply(float *out, const float *inp, const float *mean, const float *rstd, const float *weight,
                     const float *bias, int N, int C);
// Llama's RMSNorm: out = weight * inp * rsqrt(mean(inp^2) + eps); rstd: (N)
void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, int N, int C, float eps);
void rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight,
                      const float *rstd, int N, int C);
// Gemma's RMSNorm: out = (1 + weight) * (inp * rsqrt(mean(inp^2) + eps)) (weights stored as w, init 0)
void rmsnorm1p_forward(float *out, float *rstd, const float *inp, const float *weight, int N, int C, float eps);
void rmsnorm1p_backward(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight,
                        const float *rstd, int N, int C);

// ---- activations (elementwise over n values) ----------------------------------------------------
void gelu_erf_forward(float *out, const float *inp, int64_t n);     // "gelu" in HF configs
void gelu_erf_backward(float *dinp, const float *dout, const float *inp, int64_t n);
void gelu_tanh_forward(float *out, const float *inp, int64_t n);    // "gelu_new", "gelu_pytorch_tanh"
void gelu_tanh_backward(float *dinp, const float *dout, const float *inp, int64_t n);
void relu_forward(float *out, const float *inp, int64_t n);
void relu_backward(float *dinp, const float *dout, const float *inp, int64_t n);
void silu_forward(float *out, const float *inp, int64_t n);
void silu_backward(float *dinp, const float *dout, const float *inp, int64_t n);
void tanh_forward(float *out, const float *inp, int64_t n);
void tanh_backward(float *dinp, const float *dout, const float *out, int64_t n);  // uses the output
// SwiGLU of Llama's MLP: out = silu(gate) * up; all (n)
void swiglu_forward(float *out, const float *gate, const float *up, int64_t n);
void swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, int64_t n);
// GeGLU of Gemma's MLP: out = gelu_tanh(gate) * up (gelu_pytorch_tanh); all (n)
void geglu_forward(float *out, const float *gate, const float *up, int64_t n);
void geglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, int64_t n);
// Soft-capping (Gemma 2): out = cap * tanh(inp / cap); backward from the output: dinp += dout * (1 - (out/cap)^2)
void softcap_forward(float *out, const float *inp, float cap, int64_t n);
void softcap_backward(float *dinp, const float *dout, const float *out, float cap, int64_t n);

// Activation by HF config name ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu", "silu", "swish", "tanh").
typedef enum { ACT_GELU_ERF, ACT_GELU_TANH, ACT_RELU, ACT_SILU, ACT_TANH, ACT_UNKNOWN } activation_kind;
activation_kind activation_from_name(const char *name);
void activation_forward(activation_kind k, float *out, const float *inp, int64_t n);
// inp is the activation's input; out its output (tanh uses it)
void activation_backward(activation_kind k, float *dinp, const float *dout, const float *inp, const float *out,
                         int64_t n);
// In place: d = d * f'(inp), the same values as activation_backward into a zeroed buffer, with one buffer and
// one pass fewer. Only for activations whose derivative needs just the input (1 if k has it, else 0 and d is
// untouched: use activation_backward).
int activation_has_inplace_backward(activation_kind k);
int activation_backward_inplace(activation_kind k, float *d, const float *inp, int64_t n);

// ---- softmax -----------------------------------------------------------------------------------
// Row-wise over (N, C); backward: dinp += out * (dout - sum(dout * out))
void softmax_forward(float *out, const float *inp, int N, int C);
void softmax_backward(float *dinp, const float *dout, const float *out, int N, int C);

// ---- residual ----------------------------------------------------------------------------------
void add_forward(float *out, const float *a, const float *b, int64_t n);

// ---- dropout -----------------------------------------------------------------------------------
// Inverted dropout: out = inp * mask / (1 - p). The mask is a pure function of key and the element
// index (counter-based RNG), so it is regenerated, not stored, in the backward. p == 0 copies.
void dropout_forward(float *out, const float *inp, float p, uint64_t key, int64_t n);
void dropout_backward(float *dinp, const float *dout, float p, uint64_t key, int64_t n);
// The mask value (0 or 1/(1-p)) that dropout with this key gives element i; attention-probability
// dropout uses the same function with i = the flat index into probs (B, NH, T, T).
float dropout_scale_at(uint64_t key, int64_t i, float p);
// Dropout of a batch (B, T, per_t) that is part of a bigger one (a data-parallel rank's rows of the global
// micro-batch): local row b is row pos[b] of that batch, whose rows are Tg positions long (Tg >= T), so every
// element gets the mask it gets in the whole batch (flat index (pos[b] * Tg + t) * per_t + i), whatever the
// number of processes. pos NULL: the batch itself, exactly dropout_forward over B * T * per_t.
void dropout_rows_forward(float *out, const float *inp, float p, uint64_t key, const int64_t *pos, int B, int T,
                          int Tg, int64_t per_t);
void dropout_rows_backward(float *dinp, const float *dout, float p, uint64_t key, const int64_t *pos, int B, int T,
                           int Tg, int64_t per_t);

// ---- rotary position embeddings ----------------------------------------------------------------
// x: (B, T, H, D) rotated in place on its first rot_dim features at positions pos: (B, T).
// ROPE_HALF: HF rotate_half layout (Llama, Mistral, GPT-NeoX): pairs (i, i + rot_dim/2).
// ROPE_INTERLEAVED: GPT-J layout: pairs (2i, 2i + 1). inv_freq[i] = theta^(-2i/rot_dim).
typedef enum { ROPE_HALF, ROPE_INTERLEAVED } rope_layout;
void rope_forward(float *x, const int32_t *pos, int B, int T, int H, int D, int rot_dim, float theta,
                  rope_layout layout);
// The rotation is orthogonal: backward rotates the gradient by -angle, in place.
void rope_backward(float *dx, const int32_t *pos, int B, int T, int H, int D, int rot_dim, float theta,
                   rope_layout layout);
// Precomputed frequencies, for HF's rope_scaling variants (models/rope_scaling.c fills them):
// angle = float(pos) * inv_freq[i]; cos and sin are multiplied by attention_factor (YaRN's; 1 otherwise).
#define ROPE_MAX_HALF 1024
typedef struct {
    int half;                     // rot_dim / 2
    float attention_factor;
    float inv_freq[ROPE_MAX_HALF];
} rope_freqs;
// HF's default: inv_freq[i] = 1 / theta^(2i / rot_dim) in fp32 (rot_dim <= 2 * ROPE_MAX_HALF).
void rope_freqs_default(rope_freqs *f, int rot_dim, float theta);
void rope_forward_freqs(float *x, const int32_t *pos, int B, int T, int H, int D, int rot_dim, const rope_freqs *f,
                        rope_layout layout);
void rope_backward_freqs(float *dx, const int32_t *pos, int B, int T, int H, int D, int rot_dim, const rope_freqs *f,
                         rope_layout layout);

// ---- attention ---------------------------------------------------------------------------------
// Multi-head scaled dot-product attention with grouped-query heads.
// q: (B, T, NH, HD); k, v: (B, T, NKV, HD) with NH % NKV == 0 (query head h reads kv head h / (NH/NKV))
// out: (B, T, NH, HD); probs: (B, NH, T, T) saved for backward (after dropout mask is NOT applied;
// attention dropout, if any, is applied by the caller via attn_dropout_p/key).
// key_mask: (B, T) 1 = attend, 0 = padding (NULL: all attend). causal: key j <= query i.
// window > 0: also require i - j < window (Mistral sliding window). scale: usually 1/sqrt(HD).
// softcap > 0 caps the scaled scores as Gemma 2 (the backward recomputes the scores it needs).
// A query row with no visible key gets zero output (HF yields a uniform or masked row there; such rows
// are padding and never read). The ops need O(T*T) scratch per thread; if it cannot be allocated
// they write NaN to out (forward) / dq (backward) so the failure surfaces as a non-finite loss or
// gradient norm, which the trainers already treat as an error.
typedef struct {
    int B, T, NH, NKV, HD;
    int causal;
    int window;
    float scale;
    float softcap;        // > 0: scores = softcap * tanh(scale * q.k / softcap) before the mask (Gemma 2)
    float dropout_p;      // attention-probability dropout (BERT attention_probs_dropout_prob) in training
    uint64_t dropout_key;
    // NULL, or the rows' places in the global batch (see dropout_rows_forward): probs element (b, h, i, j) then
    // takes the mask of ((row_pos[b] * NH + h) * T_global + i) * T_global + j.
    const int64_t *row_pos;
    int T_global;
} attention_shape;
void attention_forward(float *out, float *probs, const float *q, const float *k, const float *v,
                       const int32_t *key_mask, const attention_shape *s);
// probs (B, NH, T, T): the probabilities, kept by the forward for the backward; NULL to keep none (the forward
// then needs no (B, NH, T, T) buffer) and let attention_backward_recompute rebuild them from q, k and key_mask
// (the same mask as the forward's), bit-identical to the kept ones. attention_backward = kept probs.
void attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *probs, const float *q,
                        const float *k, const float *v, const attention_shape *s);
void attention_backward_recompute(float *dq, float *dk, float *dv, const float *dout, const float *probs,
                                  const float *q, const float *k, const float *v, const int32_t *key_mask,
                                  const attention_shape *s);
// attention_backward_recompute (probs NULL) that also writes ctx (B, T, NH * HD) = attention_forward's out,
// bit-identical, from the probabilities it recomputes anyway (one more P V product): a caller need not keep the
// forward's output for the output projection's weight gradient.
void attention_backward_recompute_ctx(float *dq, float *dk, float *dv, float *ctx, const float *dout,
                                      const float *q, const float *k, const float *v, const int32_t *key_mask,
                                      const attention_shape *s);

// ---- losses ------------------------------------------------------------------------------------
// Pairwise reward loss over P pairs: loss = mean_p -logsigmoid(chosen[p] - rejected[p] - margin[p])
// (margin NULL = 0) + center_coef * mean_p (chosen[p] + rejected[p])^2 (TRL's center_rewards_coefficient).
// Returns the loss; backward writes (+=) dchosen, drejected: (P) scaled by grad_scale (e.g. 1/accum).
float pairwise_loss_forward(const float *chosen, const float *rejected, const float *margin, float center_coef,
                            int P);
void pairwise_loss_backward(float *dchosen, float *drejected, const float *chosen, const float *rejected,
                            const float *margin, float center_coef, int P, float grad_scale);
// Token cross-entropy: logits (N, V), targets (N) with ignore_index skipped; mean over counted rows.
// Returns the loss and stores the count in *n_counted (loss 0 when nothing counts; torch gives NaN).
// Backward: dlogits (+=) scaled by grad_scale / n_counted.
#define CE_IGNORE_INDEX (-100)
float cross_entropy_forward(const float *logits, const int32_t *targets, int N, int V, int *n_counted);
void cross_entropy_backward(float *dlogits, const float *logits, const int32_t *targets, int N, int V,
                            int n_counted, float grad_scale);
// The same gradient written over the logits (rows not counted become zeros), bit-identical to
// cross_entropy_backward into a zeroed buffer: saves an (N, V) buffer when the logits are not needed after.
void cross_entropy_backward_inplace(float *logits, const int32_t *targets, int N, int V, int n_counted,
                                    float grad_scale);
// log_softmax(logits / temperature)[target] per row: out (N); logits (N, V). Used for policy/ref
// log-probs; rows whose target is ignore_index get 0. TRL divides by (temperature + 1e-7): pass that.
void token_logprobs_forward(float *out, const float *logits, const int32_t *targets, int N, int V,
                            float temperature);
// dlogits (N, V) += dout[n] * (onehot(target) - softmax(logits / temperature)) / temperature on rows
// with a valid target (the policy-gradient path of PPO).
void token_logprobs_backward(float *dlogits, const float *dout, const float *logits, const int32_t *targets, int N,
                             int V, float temperature);
// The same gradient written over the logits themselves (logits (N, V) become dlogits; rows without a valid
// target or with dout 0 become zeros): saves a (N, V) buffer when the logits are not needed afterwards.
void token_logprobs_backward_inplace(float *logits, const float *dout, const int32_t *targets, int N, int V,
                                     float temperature);

#endif
