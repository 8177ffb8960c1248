// The state behind model.peft (models-private; peft.c owns the math, peft_io.c the files).
#ifndef RLHF_MODELS_PEFT_INTERNAL_H
#define RLHF_MODELS_PEFT_INTERNAL_H

#include "models/peft.h"

// peft's saved state-dict keys: PeftModel -> LoraModel -> the transformers model, adapter name
// "default" stripped (get_peft_model_state_dict), modules_to_save without their wrapper.
#define PEFT_SAVED_PREFIX "base_model.model."

typedef struct model_peft model_peft;

// One Linear / Conv1D layer of the family (found in the spec table).
typedef struct {
    char module[MODEL_NAME_MAX];  // HF module name, e.g. "bert.encoder.layer.0.attention.self.query"
    size_t w, b;                  // offsets of weight and bias (MODEL_NO_PARAM: none) in m->params
    int C, OC;                    // in / out features
    int conv1d;                   // weight stored (C, OC) (GPT-2 Conv1D)
    int is_head;                  // output layer: never adapted nor quantized
    int adapted;                  // LoRA on it
    size_t A, B;                  // offsets of lora_A (r, C) and lora_B (OC, r) in m->params
    int quantize;                 // stored 4-bit (planned at prepare)
    int quantized;                // q holds it
    nf4_tensor q;                 // the frozen weight in (OC, C) layout, when quantized
} peft_slot;

// A tensor of a frozen model kept as bf16 (model_load_opts.frozen with a bf16 checkpoint).
typedef struct {
    size_t off, numel;            // place in m->params (its fp32 pages there are never written)
    uint16_t *data;
} peft_bf16_tensor;

struct model_peft {
    peft_options o;
    char arch[96];
    peft_slot *slots;             // offset order
    int n_slots, n_adapted;
    int train_heads;              // SEQ_CLS heads trained fully (modules_to_save)
    size_t train_start, train_n;  // the trainable range of m->params
    size_t total;                 // floats in the rebuilt buffer
    param_spec *view_specs;       // trainable tensors, offsets relative to train_start, peft's names
    int n_view;
    float *grads;                 // train_n
    void *map;                    // the rebuilt m->params (anonymous mapping)
    size_t map_bytes;
    int enabled;                  // adapters on (off: PPO's reference forward)
    int training;                 // of the current forward
    uint64_t dropout_key;
    peft_bf16_tensor *bf;         // frozen bf16 tensors, offset order (n_bf of them)
    int n_bf;
    float *bf_scratch;            // fp32 panel of a bf16 weight (nn/linear_bf16.h)
    size_t bf_scratch_n;
};

#endif
