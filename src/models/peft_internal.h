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
};

#endif
