// The post-LayerNorm Transformer encoder that BERT, RoBERTa and DistilBERT share (models-private):
// embeddings (word + token type + position, LayerNorm, dropout), L layers of
// [self-attention -> dropout -> add & LayerNorm -> dense -> act -> dense -> dropout -> add & LayerNorm],
// and a sequence-classification head on the first token ([CLS] / <s>):
// dropout -> dense -> tanh|relu -> dropout -> out. The family files (bert.c, roberta.c,
// distilbert.c) own the tensor names and the config fields; this file owns the math.
#ifndef RLHF_MODELS_ENCODER_H
#define RLHF_MODELS_ENCODER_H

#include <stddef.h>
#include <stdint.h>

#include "models/model.h"
#include "nn/ops.h"

#define ENC_NONE ((size_t)-1)  // offset of a tensor the family lacks (DistilBERT token types)

typedef enum {
    ENC_POS_ARANGE,   // position_ids = 0..T-1 (BERT, DistilBERT)
    ENC_POS_ROBERTA   // create_position_ids_from_input_ids: cumsum(ids != pad) * (ids != pad) + pad
} encoder_positions;

typedef struct {
    int vocab_size, C, L, NH, I, max_positions, type_vocab_size, num_labels;
    int pad_token_id;             // word (and RoBERTa position) embedding padding_idx; -1 none
    int position_padding_idx;     // -1 unless RoBERTa
    float ln_eps;
    activation_kind act;          // FFN activation
    activation_kind head_act;     // classification head activation (tanh BERT/RoBERTa, relu DistilBERT)
    encoder_positions positions;
    // Dropout probabilities (used only when model_batch.training).
    float emb_dropout, attn_dropout, attn_out_dropout, ffn_dropout, head_dropout_in, head_dropout_out;
    // DeBERTa: embeddings multiplied by the attention mask after their LayerNorm, and disentangled
    // relative attention (encoder_disentangled.c) over 2 * rel_span relative embeddings.
    int emb_mask;
    int rel_attention, rel_span, rel_buckets, rel_max, c2p, p2c;
    float rel_dropout;            // pos_dropout on the relative embeddings, per layer
} encoder_hparams;

// Offsets into the flat parameter buffer, in the order the layer uses them.
typedef struct {
    size_t q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b;
    size_t ln1_w, ln1_b;                 // after attention
    size_t fc1_w, fc1_b, fc2_w, fc2_b;   // feed-forward
    size_t ln2_w, ln2_b;                 // after the feed-forward
} encoder_layer_params;

// Saved activations of one layer; x (its input) is the previous layer's out.
typedef struct {
    float *q, *k, *v;         // (B, T, C)
    float *probs;             // (B, NH, T, T)
    float *ctx;               // (B, T, C) attention output before the projection
    float *res1;              // (B, T, C) x + dropout(proj(ctx)): LayerNorm 1 input
    float *ln1, *ln1_mean, *ln1_rstd;
    float *fc1;               // (B, T, I) pre-activation (the activation is recomputed in the backward)
    float *res2;              // (B, T, C) ln1 + dropout(fc2(act(fc1)))
    float *out, *ln2_mean, *ln2_rstd;
    float *rel, *pk, *pq;     // (2 span, C) DeBERTa: dropped relative embeddings and their key / query projections
} encoder_layer_acts;

typedef struct {
    encoder_hparams hp;
    size_t word_emb, pos_emb, type_emb, emb_ln_w, emb_ln_b;
    encoder_layer_params *layers;
    size_t head_dense_w, head_dense_b, head_out_w, head_out_b;
    size_t rel_emb, rel_ln_w, rel_ln_b;         // DeBERTa encoder.rel_embeddings / encoder.LayerNorm

    // Activation plan for the current (B, T), carved from model.acts.
    int B, T;
    int no_grad;                                // the plan keeps one layer's activations, no backward
    int checkpointing;                          // the plan keeps one layer's activations, backward recomputes
    int keep_hidden;                            // model.keep_hidden_states when the plan was made
    // Training without checkpointing (and without keep_hidden_states): a layer keeps res1 / res2 and their
    // LayerNorm statistics but not ln1 / out; ln1 lives in d_ctx and out in d_res / d_tmp (by turns, the last
    // layer's in its own buffer) during the forward, and the backward recomputes both (layernorm_apply,
    // bit-identical) into d_ctx and scratch_c: 2 (B, T, C) buffers less per layer.
    int lean;
    // lean, plain attention and no adapters: ctx is not kept either (it lives in scratch_i); the backward takes
    // the output projection's input gradient first and gets ctx back from the attention backward
    // (attention_backward_recompute_ctx, bit-identical) for its weight gradient: one (B, T, C) less per layer.
    int lean_ctx;
    int peft;                                   // model.peft was set when the plan was made
    int training;
    uint64_t dropout_key;
    const int64_t *drop_pos;                    // model_batch.dropout_pos (NULL: this batch) and its T
    int drop_T;
    int have_forward;
    int32_t *ids, *type_ids, *pos_ids, *mask;   // (B, T) copies of the batch
    float *emb_sum, *emb_ln, *emb_mean, *emb_rstd, *emb_out;
    encoder_layer_acts *acts;                   // L
    float *cls, *head_x, *head_dense, *head_act, *head_in, *logits;  // (B, C) ..., logits (B, NL)
    float *scratch_c;                           // (B, T, C) forward temporary
    float *scratch_i;                           // (B, T, I) activation output
    // Backward scratch.
    float *d_a, *d_b, *d_res, *d_ln1, *d_q, *d_k, *d_v, *d_ctx, *d_tmp;  // (B, T, C)
    float *d_fc1, *d_act;                                                 // (B, T, I)
    float *d_head[4];                                                     // (B, C)
    int32_t *rel_idx;                            // (T, T) DeBERTa relative-embedding row per (query, key)
    float *rel_ln, *rel_mean, *rel_rstd;         // (2 span, C) normalised relative embeddings
    float *d_rel, *d_rel_l, *d_pk, *d_pq;        // (2 span, C)
} encoder;

// Allocates m->impl as an encoder and m->hidden_states; the family then fills hp and the offsets.
rlhf_status encoder_new(model *m, rlhf_err *err);
void encoder_destroy(model *m);

// Spec-table helpers that also record the tensor's offset.
rlhf_status encoder_add_embedding(model *m, size_t *off, const char *name, int rows, int C, int padding_row,
                                  rlhf_err *err);
rlhf_status encoder_add_linear(model *m, size_t *w, size_t *b, const char *prefix, int out, int in, int is_head,
                               rlhf_err *err);
rlhf_status encoder_add_layernorm(model *m, size_t *w, size_t *b, const char *prefix, int is_head, rlhf_err *err);
// Adds every layer's tensors: layer_fmt is e.g. "bert.encoder.layer.%d." and modules names, in order,
// q, k, v, attention output, LayerNorm 1, fc1, fc2, LayerNorm 2 (e.g. "attention.self.query").
rlhf_status encoder_add_layers(model *m, const char *layer_fmt, const char *const modules[8], rlhf_err *err);

// Reads a dropout probability from config.json (null = def); errors name the key.
rlhf_status encoder_config_dropout(const model *m, const char *key, double def, float *out, rlhf_err *err);
// Reads an int that must be present and positive.
rlhf_status encoder_config_int(const model *m, const char *key, long long def, int *out, rlhf_err *err);

rlhf_status encoder_forward(model *m, const model_batch *b, rlhf_err *err);
rlhf_status encoder_backward(model *m, const float *dout, const float *dhidden, rlhf_err *err);


// ---- BERT-style backbones (bert.c; RoBERTa reuses them) ----------------------------------------
// Reads BertConfig fields (hidden_size, num_hidden_layers, ..., classifier_dropout) into the
// encoder's hparams and m->cfg; pad_default is the config class's pad_token_id default.
rlhf_status bert_read_config(model *m, int pad_default, rlhf_err *err);
// Adds PREFIXembeddings.* and PREFIXencoder.layer.N.* (prefix "bert." or "roberta.").
rlhf_status bert_add_backbone(model *m, const char *prefix, rlhf_err *err);
// pad_token_id from config.json: def when absent, -1 when null (no padding_idx).
rlhf_status encoder_config_pad(const model *m, int def, int *out, rlhf_err *err);

#endif
