// Parameter-efficient fine-tuning of any model family (peft's LoRA, and QLoRA's 4-bit frozen base):
// which linear layers get adapters, where the trainable tensors live, the one dispatch every family
// routes its linear layers through, the 4-bit quantization of the frozen base, enabling/disabling the
// adapters (PPO's reference = the same base without them), and saving/loading/merging adapters in
// peft's on-disk format (adapter_config.json + adapter_model.safetensors).
//
// Memory design. A family's tensors keep their offsets into m->params (the families bake them in),
// and peft_apply rebuilds that buffer once:
//   [ frozen backbone | trainable heads (modules_to_save) | LoRA A/B of every adapted layer ]
// The heads are already the tail of every family's spec table, so the trainable tensors form one
// contiguous range at the end. The trainers see only that range (model_trainable_view): its own
// param_spec table (peft names), a gradient buffer of its size and AdamW moments of its size; the
// frozen backbone has no gradient at all (m->grads stays NULL; model_grad() returns NULL for it, and
// the ops skip a NULL gradient). With 4-bit loading the buffer is an anonymous mapping whose pages
// under the quantized weights are never written, so they never become resident: the fp32 copy of
// those weights is gone after load and only the nf4 blocks remain.
#ifndef RLHF_MODELS_PEFT_H
#define RLHF_MODELS_PEFT_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "io/safetensors.h"
#include "models/model.h"
#include "nn/lora.h"
#include "nn/nf4.h"

#define MODEL_NO_PARAM ((size_t)-1)  // absent tensor (bias-free layers); equals ENC_NONE / DEC_NONE

// peft LoraConfig / BitsAndBytesConfig defaults as TRL's scripts expose them.
#define PEFT_DEFAULT_R 16
#define PEFT_DEFAULT_ALPHA 32.0f
#define PEFT_DEFAULT_DROPOUT 0.05f
#define PEFT_ALL_LINEAR "all-linear"
#define PEFT_TARGETS_MAX 1024

typedef struct peft_options {
    int use_peft;                            // --use_peft
    lora_config lora;                        // --lora_r, --lora_alpha, --lora_dropout
    char target_modules[PEFT_TARGETS_MAX];   // --lora_target_modules: "all-linear" or "q_proj,v_proj"
    int load_in_4bit;                        // --load_in_4bit
    nf4_quant_type quant_type;               // --bnb_4bit_quant_type
    int double_quant;                        // --bnb_4bit_use_double_quant
    nf4_compute compute;                     // --bnb_4bit_compute_dtype
} peft_options;

void peft_options_default(peft_options *o);
// Checks ranges (r >= 1, alpha > 0, dropout in [0, 1)); errors name the flag.
rlhf_status peft_options_check(const peft_options *o, rlhf_err *err);

// Applies o to a loaded model: LoRA on the target linear layers (peft init: A kaiming-uniform from
// seed and the module name, B = 0), heads of a sequence-classification model trained fully
// (modules_to_save), every other tensor frozen; with load_in_4bit the backbone's linear weights are
// quantized and their fp32 copy released. use_peft = 0 with load_in_4bit gives a frozen 4-bit model
// for scoring only. A target name matching no layer is RLHF_EINPUT naming it.
rlhf_status peft_apply(model *m, const peft_options *o, uint64_t seed, rlhf_err *err);
// Load-time path (model_load with opts->peft): prepare before the weights are read (the model's
// buffer replaced by the mapped one), then each 4-bit weight goes straight from the file to its
// blocks, so the fp32 backbone never exists in memory as a whole.
rlhf_status peft_prepare_load(model *m, const peft_options *o, uint64_t seed, rlhf_err *err);
int peft_quantizes(const model *m, size_t off);
rlhf_status peft_load_quantized(model *m, size_t off, const st_tensor *t, rlhf_err *err);
// Releases what peft_apply added (model_free calls it).
void peft_free(model *m);

// The trainable tensors as one flat buffer for the optimizer: the model's own buffers without peft.
typedef struct {
    float *params;
    float *grads;             // NULL until model_alloc_grads
    const param_spec *specs;  // names: the model's, or peft's saved names for adapters
    int n_specs;
    size_t n;
} model_trainable;
void model_trainable_view(model *m, model_trainable *v);

// PPO's reference model: the same weights with the adapters switched off (on = 1 restores them).
void peft_set_adapters_enabled(model *m, int on);
int peft_active(const model *m);
// PPO's reference forward on the policy's own weights: model_forward with the adapters off (m->out
// then holds the reference logits; the policy's saved activations are overwritten, so run it before
// the policy forward whose backward follows). A model without adapters runs a plain forward. No backward
// follows it: it runs as model_forward_no_grad.
rlhf_status peft_reference_forward(model *m, const model_batch *b, rlhf_err *err);
// Bytes of the 4-bit weights, and the fp32 bytes they replace (for memory reports and tests).
void peft_quantized_bytes(const model *m, int64_t *quantized, int64_t *fp32);
int peft_n_adapted(const model *m);
int peft_rank(const model *m);  // the adapters' r (0 without adapters)

// ---- the linear-layer dispatch every family uses -------------------------------------------------
// out: (N, OC) = inp: (N, C) @ W^T + b, W at offset w (nn.Linear (OC, C), or Conv1D (C, OC) when
// conv1d), b at offset b or MODEL_NO_PARAM. Picks dense / dense + LoRA / 4-bit (+ LoRA).
rlhf_status model_linear_forward(model *m, size_t w, size_t b, int conv1d, float *out, const float *inp, int N,
                                 int C, int OC, rlhf_err *err);
// Backward of the layer: dinp (+=, may be NULL), and the gradients of whatever is trainable in it
// (the dense weight/bias without peft; the adapter with it).
rlhf_status model_linear_backward(model *m, size_t w, size_t b, int conv1d, float *dinp, const float *dout,
                                  const float *inp, int N, int C, int OC, rlhf_err *err);
// Gradient buffer of the tensor at offset off, or NULL when it is frozen / no gradients exist.
float *model_grad(const model *m, size_t off);
// Called by model_forward: records the batch's training flag and dropout key for the adapters.
void peft_begin_forward(model *m, const model_batch *b);
// Allocates / zeroes the trainable gradients (model_alloc_grads / model_zero_grads call these).
rlhf_status peft_alloc_grads(model *m, rlhf_err *err);
void peft_zero_grads(model *m);

// ---- frozen models kept in bf16 ------------------------------------------------------------------
// model_load with opts->frozen (and no adapters / 4-bit): the tensors a bf16 checkpoint stores as BF16
// among the linear weights, the word embeddings and an LM head stay bf16 in memory (half the bytes) and
// are widened to fp32 panel by panel as they are used (exact: the outputs equal the fp32 model's built
// from the same file). m->params is then peft's mapped buffer whose pages under those tensors are never
// written; m->peft holds the bf16 copies (no adapters, nothing trainable, no backward).
// 1 when the tensor p may be kept bf16 (whatever the file holds).
int peft_bf16_eligible(const model *m, const param_spec *p);
// Before the weights are read: maps m->params and allocates bf16 storage for the n tensors at offs.
rlhf_status peft_prepare_bf16(model *m, const size_t *offs, int n, rlhf_err *err);
int peft_stores_bf16(const model *m, size_t off);
// Copies the checkpoint's BF16 tensor t (stored at offset off) as it is.
rlhf_status peft_load_bf16(model *m, size_t off, const st_tensor *t, rlhf_err *err);
// The bf16 data of the tensor at offset off, or NULL when it is held in fp32 in m->params.
const uint16_t *model_bf16_weight(const model *m, size_t off);
// Bytes held in bf16 and how many tensors.
int64_t peft_bf16_bytes(const model *m, int *n_tensors);
// out: (N, C) = rows ids of the embedding table at offset off (fp32 or bf16).
void model_embedding_forward(const model *m, size_t off, float *out, const int32_t *ids, int N, int C);

// ---- files ---------------------------------------------------------------------------------------
// Writes DIR/adapter_config.json (peft's LoraConfig fields) and DIR/adapter_model.safetensors
// ("base_model.model.<module>.lora_A.weight", heads as "base_model.model.<name>"), atomically.
rlhf_status peft_save_adapter(const model *m, const char *dir, const char *base_model_name, rlhf_err *err);
// 1 when DIR holds a peft adapter (adapter_config.json).
int peft_is_adapter_dir(const char *dir);
// Reads DIR/adapter_config.json into o (use_peft = 1) and its base_model_name_or_path into base
// (malloc'd); the caller loads the base, peft_apply's o, then peft_load_adapter_weights.
rlhf_status peft_read_adapter_config(const char *dir, peft_options *o, char **base, rlhf_err *err);
rlhf_status peft_load_adapter_weights(model *m, const char *dir, rlhf_err *err);
// Loads an adapter directory whole: base from base_model_name_or_path (relative paths are taken
// relative to DIR's parent when they do not exist as given), adapter applied; quant (may be NULL)
// gives load_in_4bit and the bnb_4bit_* settings of the base.
rlhf_status peft_load_adapter_model(model **out, const char *dir, model_head head, const peft_options *quant,
                                    const model_load_opts *opts, rlhf_err *err);
// A model directory, or a peft adapter directory (adapter_config.json and no config.json of its own)
// loaded whole as peft_load_adapter_model does: what `rlhf generate` and resumed trainers read.
rlhf_status peft_load_model_dir(model **out, const char *dir, model_head head, const peft_options *quant,
                                const model_load_opts *opts, rlhf_err *err);
// peft merge_and_unload: W += alpha/r B A for every adapted layer (4-bit weights dequantized first),
// leaving a plain dense model (m->peft NULL) that model_save writes in HF layout.
rlhf_status peft_merge_and_unload(model *m, rlhf_err *err);

#endif
