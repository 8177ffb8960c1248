// The model interface the trainers see (as transformers' Auto classes hide the class): load a
// Hugging Face model directory, run forward/backward on a batch, save. Each family (bert.c,
// distilbert.c, roberta.c, gpt2.c, gptneox.c, llama.c) fills a model_family and one table of
// param_spec rows mapping every HF tensor name to its shape and place in the flat buffers; loading,
// saving, `rlhf init`, head creation and the optimizer's weight-decay groups are all driven by it.
#ifndef RLHF_MODELS_MODEL_H
#define RLHF_MODELS_MODEL_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/error.h"

typedef enum {
    HEAD_SEQCLS,  // *ForSequenceClassification: scores (B, num_labels)
    HEAD_LM       // *ForCausalLM / GPT2LMHeadModel: logits (B, T, vocab)
} model_head;

typedef enum {
    INIT_NORMAL,  // normal(0, initializer_range) (HF _init_weights for Linear/Embedding)
    INIT_ZEROS,   // biases
    INIT_ONES     // LayerNorm / RMSNorm weights
} param_init;

#define MODEL_NAME_MAX 160

typedef struct {
    char name[MODEL_NAME_MAX];  // exact HF tensor name, e.g. "bert.encoder.layer.0.attention.self.query.weight"
    int ndim;
    int64_t shape[4];
    size_t offset;      // into params / grads (floats)
    size_t numel;
    param_init init;
    int padding_row;    // embedding row zeroed at init (padding_idx), -1 none
    uint8_t no_decay;   // biases and norm weights: HF Trainer excludes them from weight decay
    uint8_t is_head;    // task head: created fresh (with a notice) when loading a base checkpoint
    float init_std;     // INIT_NORMAL standard deviation; 0 = config.json initializer_range (default 0.02)
} param_spec;

// Hyperparameters the trainers and tools need, whatever the family.
typedef struct {
    char model_type[32];        // config.json model_type: "bert", "gpt2", ...
    char architecture[96];      // the class written to config.json "architectures"
    int vocab_size;
    int hidden_size;
    int num_layers;
    int num_heads;
    int max_positions;          // max_position_embeddings / n_positions (0 = unbounded, rotary)
    int num_labels;             // seq-cls heads: len(id2label), else num_labels, else 2
    int pad_token_id;           // -1 when the config has none
    int bos_token_id, eos_token_id;  // -1 when absent
    int type_vocab_size;        // 0: the family has no token_type_ids
    int is_decoder;             // causal family (left padding, generation)
} model_config;

typedef struct {
    int B, T;
    const int32_t *input_ids;       // (B, T)
    const int32_t *attention_mask;  // (B, T) 1 real token, 0 padding; NULL = all real
    const int32_t *token_type_ids;  // (B, T) or NULL (zeros)
    const int32_t *position_ids;    // (B, T) or NULL: the family's default (HF's, given the mask)
    int training;                   // dropout on
    uint64_t dropout_key;           // rng_key(seed, RNG_STREAM_DROPOUT, step, micro-step)
    // Causal LM head on positions [head_from, head_from + head_count) of every row only (as transformers'
    // logits_to_keep): m->out is then (B, head_count, V). head_count 0: every position, (B, T, V).
    int head_from, head_count;
    // Data-parallel ranks: NULL, or (B) the rows' places in the global micro-batch, whose rows are
    // dropout_T tokens long, so each row is dropped as one process dropping the whole batch drops it
    // (nn dropout_rows_forward). Encoder models (BERT family) honour it; others drop by local row.
    const int64_t *dropout_pos;
    int dropout_T;
} model_batch;

typedef struct model model;
struct kv_cache;

typedef struct model_family {
    const char *model_type;               // "bert"
    const char *seqcls_architecture;      // "BertForSequenceClassification"
    const char *lm_architecture;          // "GPT2LMHeadModel"; NULL for encoders
    const char *base_prefix;              // "bert." : prefix of backbone tensors inside a head model
    // Reads m->config_json into m->cfg and family-private hyperparameters (m->impl), and builds
    // m->specs for m->head. Errors name the config field.
    rlhf_status (*configure)(model *m, rlhf_err *err);
    // Forward over a batch. Outputs: m->out (seq-cls: (B, num_labels); LM: (B, T, V) logits) and
    // m->last_hidden (B, T, C) (after the final norm for decoders). When m->keep_hidden_states is
    // set, m->hidden_states[0..L] point at each layer's output as HF's output_hidden_states.
    rlhf_status (*forward)(model *m, const model_batch *b, rlhf_err *err);
    // Backward of the last forward: dout has m->out's shape (NULL = zero); dhidden (B, T, C) is an
    // extra gradient on m->last_hidden (value heads), may be NULL. Accumulates into m->grads.
    rlhf_status (*backward)(model *m, const float *dout, const float *dhidden, rlhf_err *err);
    void (*destroy)(model *m);            // frees m->impl
    // NULL-terminated further classes whose checkpoints this family loads (base and pre-training
    // classes, e.g. "BertModel", "BertForMaskedLM"); NULL = only the two architectures above.
    const char *const *known_architectures;
    // Optional (causal LMs; NULL otherwise): incremental decoding over a KV cache (models/kv_cache.h).
    // Runs T_new new tokens per row (ids, mask, pos: (c->B, T_new)) after the c->len cached positions,
    // appends their keys/values and mask to the cache, and writes the logits of each row's last new
    // token to logits (c->B, vocab). Keeps no activations (no backward).
    rlhf_status (*decode)(model *m, struct kv_cache *c, const int32_t *ids, const int32_t *mask,
                          const int32_t *pos, int T_new, float *logits, rlhf_err *err);
} model_family;

struct model {
    const model_family *family;
    model_head head;
    model_config cfg;
    cJSON *config_json;     // the whole config.json: unknown fields survive a round trip
    param_spec *specs;
    int n_specs;
    float *params;          // one flat buffer, spec order
    float *grads;           // same layout; NULL until model_alloc_grads
    size_t n_params;
    float *out;             // forward output (see model_family.forward)
    // Set by families whose backward reads m->out (Gemma 2's final logit soft-cap). When 0, m->out is dead
    // once its gradient is known: a trainer may write the gradient over it and pass m->out as dout (no
    // second (B, T, V) buffer).
    int backward_reads_out;
    float *last_hidden;     // (B, T, C)
    int keep_hidden_states;
    // Set by callers that only score (rlhf score, PPO's reward model): the forward keeps no
    // activations for a backward, so memory stays about one layer's worth (families may ignore it).
    int no_grad;
    // Set by trainers (--gradient_checkpointing): the forward keeps only each layer's input (the residual
    // stream) and the backward re-runs a layer's forward before its backward, as HF's gradient
    // checkpointing; results are bit-identical (dropout masks come from keys, kernels are deterministic).
    int gradient_checkpointing;
    // Set by model_load: head tensors that were not in the checkpoint and are freshly initialised (a base
    // or causal-LM checkpoint loaded for sequence classification).
    int n_new_head_tensors;
    float **hidden_states;  // num_layers + 1 pointers, valid after a forward with keep_hidden_states
    rlhf_arena acts;        // activations, sized per (B, T)
    void *impl;             // family-private state
    // LoRA adapters / 4-bit base (models/peft.h); NULL for a plain model. With it, the trainable
    // tensors are those of model_trainable_view and m->grads stays NULL.
    struct model_peft *peft;
};

// Families known to the project (models/registry.c).
const model_family *model_family_find(const char *model_type);
// Names of every supported model_type, comma separated (for error messages).
const char *model_family_list(void);

typedef struct {
    int quiet;          // no notices on stderr
    uint64_t init_seed; // seed for freshly created tensors (heads of base checkpoints)
    // Optional: LoRA adapters / 4-bit base applied while loading (models/peft.h), so 4-bit weights go
    // from the file straight to their blocks. NULL = a plain model.
    const struct peft_options *peft;
    // A frozen model (a reference or reward model: no backward will run): m->no_grad is set, and without
    // peft the tensors the checkpoint stores as BF16 (linear weights, word embeddings, an LM head) stay
    // bf16 in memory, widened to fp32 as they are used, so outputs equal those of the fp32 load (models/peft.h).
    int frozen;
} model_load_opts;

// Loads DIR/config.json and its weights for the given head, as from_pretrained does: a base
// checkpoint (no head, with or without the family prefix, or an MLM checkpoint) gets a fresh head and
// one notice naming the new tensors; unexpected tensors are listed; a shape mismatch is an error
// naming the tensor; an unknown model_type / architecture is RLHF_EINPUT naming it.
rlhf_status model_load(model **out, const char *dir, model_head head, const model_load_opts *opts, rlhf_err *err);
// Builds a model from a config (no weights) with HF's init: normal(0, initializer_range), zero
// biases, unit norm weights, zero padding rows.
rlhf_status model_create(model **out, const cJSON *config, model_head head, uint64_t seed, rlhf_err *err);
// Resolves the family and builds the spec table and config (m->cfg, m->n_params) without allocating
// weights: validates a config.json as model_create would (the config fuzzer's entry point). Free with
// model_free.
rlhf_status model_configure(model **out, const cJSON *config, model_head head, rlhf_err *err);
// Writes DIR/config.json (architectures, num_labels, id2label, label2id, pad_token_id, ...) and
// DIR/model.safetensors with exactly HF's tensor names, atomically.
// The weights are written in the dtype the model came in (config.json's torch_dtype, or transformers >=
// 4.56's dtype: bfloat16 / float16, else float32), rounded to nearest even as torch's .to() does;
// model_save_f32 writes fp32 weights whatever the dtype (checkpoints: exact resume) with the same config.
rlhf_status model_save(const model *m, const char *dir, rlhf_err *err);
rlhf_status model_save_f32(const model *m, const char *dir, rlhf_err *err);
// config.json's torch_dtype as model_save reads it ("float32" when absent or unknown).
const char *model_torch_dtype(const model *m);
// --torch_dtype: sets the dtype of later saves (float32 | bfloat16 | float16; NULL or "auto": as loaded).
rlhf_status model_set_torch_dtype(model *m, const char *dtype, rlhf_err *err);
rlhf_status model_alloc_grads(model *m, rlhf_err *err);
void model_zero_grads(model *m);
void model_free(model *m);

const param_spec *model_find_param(const model *m, const char *name);
// Convenience: forward/backward through the family.
rlhf_status model_forward(model *m, const model_batch *b, rlhf_err *err);
rlhf_status model_backward(model *m, const float *dout, const float *dhidden, rlhf_err *err);
// A forward no backward will follow (torch.no_grad): model_forward with m->no_grad set for the call, so
// activations are not kept per layer; the outputs are bit-identical to model_forward's.
rlhf_status model_forward_no_grad(model *m, const model_batch *b, rlhf_err *err);

// Frees the activation arena of a model that only scores (a reward or reference model) between its uses, so
// its activations are not resident while the policy trains; the next forward allocates it again. m->out and
// m->last_hidden are invalid until then, and no backward may follow.
void model_release_activations(model *m);

// Helper for families: the label count as transformers derives it: len(id2label), else num_labels,
// else 2. Errors name config.json's field.
rlhf_status model_config_num_labels(const cJSON *config, int *out, rlhf_err *err);

// Helper for families: appends a spec (offsets assigned in order).
rlhf_status model_add_param(model *m, const char *name, int ndim, const int64_t *shape, param_init init,
                            int no_decay, int is_head, int padding_row, rlhf_err *err);

#endif
