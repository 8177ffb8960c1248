// The causal-LM backbone shared by GPT-2, GPT-NeoX (Pythia), Llama, Mistral, Qwen2, Gemma, Gemma 2 and
// Phi-3: a stack of pre-norm transformer blocks whose differences are a handful of switches (norm kind,
// QKV layout, positions, MLP kind, parallel residual, biases, Gemma's scaled embeddings and (1 + w)
// norms, Gemma 2's sandwich norms, soft-capping and alternating sliding windows, Phi-3's fused
// projections and LongRoPE). The family files (gpt2.c, gptneox.c, llama.c, ...) read config.json,
// build the HF tensor table and fill a decoder_cfg; forward, backward and KV-cache decoding are written
// once here (decoder.c, decoder_decode.c) so every family gets the same, tested code.
#ifndef RLHF_MODELS_DECODER_H
#define RLHF_MODELS_DECODER_H

#include <stddef.h>
#include <stdint.h>

#include "models/kv_cache.h"
#include "models/model.h"
#include "nn/ops.h"

#define DEC_NONE ((size_t)-1)  // offset of an absent tensor (bias-free projections)

typedef enum { DEC_NORM_LAYER, DEC_NORM_RMS } dec_norm;
// How q, k, v come out of the attention input projection(s):
//  GPT2: one Conv1D (C, 3C), output [q | k | v] each (NH, HD);
//  NEOX: one Linear (3C, C), output viewed (NH, 3, HD): per head [q, k, v] (modeling_gpt_neox.py view/split);
//  SEPARATE: q_proj, k_proj, v_proj Linears (Llama, Mistral; k/v have NKV heads);
//  FUSED: one Linear (NH*HD + 2*NKV*HD, C), output [q (NH, HD) | k (NKV, HD) | v (NKV, HD)] (Phi-3 qkv_proj).
typedef enum { DEC_QKV_GPT2, DEC_QKV_NEOX, DEC_QKV_SEPARATE, DEC_QKV_FUSED } dec_qkv_layout;
// PLAIN: down(act(fc(x))); GATED: down(act(gate(x)) * up(x)) with act silu (SwiGLU) or gelu_tanh (GeGLU).
typedef enum { DEC_MLP_PLAIN, DEC_MLP_GATED } dec_mlp_kind;

typedef struct {
    size_t ln1_w, ln1_b, ln2_w, ln2_b;  // ln2 = post_attention_layernorm / ln_2
    size_t qkv_w, qkv_b;                // fused layouts
    size_t q_w, q_b, k_w, k_b, v_w, v_b;  // DEC_QKV_SEPARATE
    size_t o_w, o_b;
    size_t fc_w, fc_b;                  // PLAIN: c_fc / dense_h_to_4h; GATED: gate_proj (fused: gate_up_proj)
    size_t up_w, up_b;                  // GATED only (DEC_NONE when fused)
    size_t down_w, down_b;              // c_proj / dense_4h_to_h / down_proj
    size_t post_attn_w, post_mlp_w;     // Gemma 2: norms of the attention / MLP outputs before the residual
} dec_layer_offsets;

typedef struct {
    int C, L, NH, NKV, HD, I, V;
    int max_positions;                  // absolute position table rows (GPT-2), 0 for rotary
    dec_norm norm;
    float norm_eps;
    dec_qkv_layout qkv;
    int conv1d;                         // GPT-2 Conv1D weights (C, OC) instead of Linear (OC, C)
    dec_mlp_kind mlp;
    activation_kind act;
    int fused_gate_up;                  // Phi-3: fc_w is gate_up_proj (2I, C), output [gate | up]
    int norm_unit_offset;               // Gemma RMSNorm: scale (1 + weight)
    float embed_scale;                  // Gemma: embeddings times sqrt(hidden) (in fp32); 0 = none
    float attn_scale;                   // Gemma 2: query_pre_attn_scalar^-0.5; 0 = 1/sqrt(HD) as below
    float attn_softcap, final_softcap;  // Gemma 2 soft-capping of attention scores / LM logits; 0 = none
    int rot_dim;                        // 0: absolute positions (wpe)
    rope_freqs rope;                    // rotary frequencies (rope_theta + config.json rope_scaling)
    // Phi-3 LongRoPE: a forward whose largest position id is >= rope_long_from uses rope_long (0: never)
    int rope_long_from;
    rope_freqs rope_long;
    int parallel_residual;              // GPT-NeoX use_parallel_residual
    int window;                         // Mistral sliding_window, 0 none
    int window_from;                    // the window applies to layers >= window_from (Qwen2 max_window_layers)
    int window_even;                    // ... and only to even layers (Gemma 2)
    int scale_attn_weights;             // GPT-2: divide scores by sqrt(HD) (else 1)
    int scale_by_inverse_layer_idx;     // GPT-2 scale_attn_by_inverse_layer_idx
    float embd_pdrop, resid_pdrop, attn_pdrop;
    int padding_idx;                    // word-embedding padding_idx (Llama/Mistral), -1 none
    // offsets into the flat buffers
    size_t wte, wpe, lnf_w, lnf_b;
    size_t head;                        // lm_head / embed_out / score weight (for a tied LM head: wte)
    dec_layer_offsets *layers;          // L entries (malloc'd)
} decoder_cfg;

// Family-private state behind model.impl.
typedef struct {
    decoder_cfg cfg;
    // shapes and pointers of the last forward (into model.acts), for the backward
    int B, T;
    void *saved;                        // struct dec_acts (decoder.c)
    rlhf_arena bwd;                     // backward scratch
    rlhf_arena dec;                     // decode scratch (KV-cache path)
    size_t dec_B, dec_T;                // shape the decode arena is carved for
} decoder_state;

// Helpers for the family files.
// Allocates m->impl as a decoder_state with L layer slots, every offset DEC_NONE.
rlhf_status decoder_state_new(model *m, int L, rlhf_err *err);
// Appends a tensor spec and returns its offset in *off.
rlhf_status decoder_add(model *m, size_t *off, const char *name, int ndim, int64_t d0, int64_t d1,
                        param_init init, int no_decay, int is_head, int padding_row, rlhf_err *err);
// Reads num_labels as transformers does: len(id2label), else num_labels, else 2.
int decoder_num_labels(const cJSON *config);
// config.json integer field (default when missing/null) that must be >= min; errors name the field.
rlhf_status decoder_cfg_int(const cJSON *config, const char *key, long long def, long long min, int *out,
                            rlhf_err *err);
rlhf_status decoder_cfg_float(const cJSON *config, const char *key, double def, float *out, rlhf_err *err);
// A special-token id field: an integer, null/missing (def), or a list (its first entry, as Llama 3's eos).
int decoder_token_id(const cJSON *config, const char *key, int def);
// Fills m->cfg from the decoder_cfg and config.json's token ids (is_decoder, num_labels, ...).
void decoder_fill_model_config(model *m, int bos_def, int eos_def);

// The model_family entry points shared by every decoder family.
rlhf_status decoder_forward(model *m, const model_batch *b, rlhf_err *err);
rlhf_status decoder_backward(model *m, const float *dout, const float *dhidden, rlhf_err *err);
void decoder_destroy(model *m);
// KV-cache incremental decoding (decoder_decode.c); see model_family.decode in model.h.
rlhf_status decoder_decode(model *m, kv_cache *c, const int32_t *ids, const int32_t *mask, const int32_t *pos,
                           int T_new, float *logits, rlhf_err *err);

// Building blocks shared by the full forward and the decode path (decoder.c).
// out (N, OC) = the projection with weight / bias at offsets w, b (DEC_NONE: no bias), through the
// model's linear dispatch (models/peft.h).
void dec_proj_forward(model *m, float *out, const float *inp, size_t w, size_t b, int N, int C, int OC);
void dec_norm_forward(const decoder_cfg *c, float *out, float *mean, float *rstd, const float *inp,
                      const float *w, const float *b, int N);
// Fused projection output (N, dec_qkv_width) -> q (N, NH*HD), k, v (N, NKV*HD), per the family's layout.
void dec_split_qkv(const decoder_cfg *c, float *q, float *k, float *v, const float *qkv, size_t N);
// Width of the fused q/k/v projection output.
int dec_qkv_width(const decoder_cfg *c);
// The sliding window of layer l (0 none).
int dec_layer_window(const decoder_cfg *c, int l);
// Attention score scale of layer l.
float dec_attn_scale(const decoder_cfg *c, int l);
// The rotary frequencies for a forward over positions pos (n of them): rope_long past rope_long_from.
const rope_freqs *dec_rope(const decoder_cfg *c, const int32_t *pos, size_t n);
// Phi-3's fused gate_up_proj output (N, 2I) -> gate, up (N, I) each.
void dec_split_gate_up(float *gate, float *up, const float *gu, size_t N, int I);
// The gated MLP's activation: out = act(gate) * up over n values (SwiGLU or GeGLU).
void dec_gated_forward(const decoder_cfg *c, float *out, const float *gate, const float *up, int64_t n);

// Writes DIR/generation_config.json for a causal LM (decoder_generation_config.c).
rlhf_status decoder_save_generation_config(const model *m, const char *dir, rlhf_err *err);

// Index of the pooled token per row for *ForSequenceClassification: the last position whose
// attention_mask is 1 (T-1 without a mask). pool: (B).
void decoder_pool_index(int *pool, const int32_t *mask, int B, int T);

#endif
