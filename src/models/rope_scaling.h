// config.json's rope_scaling for rotary families (Llama / Mistral / GPT-NeoX): the rotary frequencies
// transformers computes for it (modeling_rope_utils: default, linear, llama3). Variants whose
// frequencies depend on the running sequence length ("dynamic") or that this project does not
// implement (yarn, longrope) are refused with the field named, never silently ignored.
#ifndef RLHF_MODELS_ROPE_SCALING_H
#define RLHF_MODELS_ROPE_SCALING_H

#include <cjson/cJSON.h>

#include "base/error.h"
#include "nn/ops.h"

// Fills out for rot_dim and theta from config's "rope_scaling" (absent / null / {"rope_type": "default"}:
// the plain frequencies). Errors name config.json's field.
rlhf_status rope_scaling_from_config(const cJSON *config, int rot_dim, float theta, rope_freqs *out, rlhf_err *err);

#endif
