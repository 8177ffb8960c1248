// Supervised fine-tuning of a causal LM (TRL SFTTrainer on HF Trainer's loop): rows
// {"prompt", "completion"} train on the completion tokens only (completion_only_loss), rows {"text"}
// on every token; each example ends with EOS as TRL appends it. The loss is transformers' causal-LM
// loss (mean token cross-entropy of logits[t] against ids[t+1] over unmasked labels) per micro-batch,
// divided by gradient_accumulation_steps; AdamW with HF's no-decay groups, the lr schedule with warmup,
// clipping, seeded shuffling per epoch, training_log.csv, report.html, checkpoint-{STEP}/ per epoch or N steps.
#ifndef RLHF_TRAIN_SFT_H
#define RLHF_TRAIN_SFT_H

#include <signal.h>
#include <stdint.h>

#include "base/dist.h"
#include "base/error.h"
#include "io/dataset.h"
#include "models/model.h"
#include "tokenizer/tokenizer.h"
#include "train/trainer_args.h"

#define SFT_LOG_COLUMNS "epoch", "step", "loss", "learning_rate", "grad_norm", "eval_loss"
#define SFT_LOG_N_COLUMNS 6
#define SFT_IGNORE (-100)  // labels not trained (prompt tokens), as transformers' ignore_index

typedef struct {
    int n;
    int32_t *ids;  // (n)
    int32_t *labels;  // (n): ids, or SFT_IGNORE on prompt tokens
} sft_example;

typedef struct {
    sft_example *ex;
    int n;
} sft_set;

// Reads every row of d: {"prompt", "completion"} / {"text"} (encoded with tok, prompt with special
// tokens, completion without) or pre-tokenized {"prompt_ids", "completion_ids"} / {"input_ids"}; appends
// eos_id (>= 0) and truncates to max_length. Conversational rows, as TRL's SFTTrainer takes them, go
// through the model's chat template (chat; NULL = none, and such rows are then an error naming
// model_dir): {"messages": [...]} trains on every token of the rendered conversation; {"prompt": [...],
// "completion": [...]} renders prompt (with the generation prompt) and prompt + completion, and trains on
// the tokens past the prompt's. Rendered text gets no added special tokens and no EOS (the template
// writes them). Errors name PATH:LINE.
struct chat_template;
rlhf_status sft_set_load(sft_set *s, const dataset *d, const tokenizer *tok, int vocab, int eos_id, int max_length,
                         const struct chat_template *chat, const char *model_dir, rlhf_err *err);
// Field names of the text layouts (NULL members: TRL's defaults "text", "prompt", "completion"; TRL's
// --dataset_text_field names the first). sft_set_load_fields reads, in this order: {"messages"} and
// conversational prompt/completion (chat template), pre-tokenized ids, {prompt, completion}, {text}, Alpaca
// {"instruction", "input" (optional), "output"} (prompt = Stanford Alpaca's template, completion = output)
// and {"question", "answer"} (prompt = question, completion = answer). sft_set_load = all defaults.
typedef struct {
    const char *text, *prompt, *completion;
} sft_fields;
rlhf_status sft_set_load_fields(sft_set *s, const dataset *d, const tokenizer *tok, int vocab, int eos_id,
                                int max_length, const struct chat_template *chat, const char *model_dir,
                                const sft_fields *fields, rlhf_err *err);
void sft_set_free(sft_set *s);

typedef struct {
    trainer_common_args common;       // resume_from: the caller loaded the model from that checkpoint
    const sft_set *eval;              // held-out set (NULL: none)
    volatile sig_atomic_t *stop;      // SIGINT/SIGTERM flag (may be NULL): stop at a step boundary
    // With adapters (models/peft.h) the optimizer sees only model_trainable_view; checkpoints and the
    // final directory hold the peft adapter (base_model_name is its base_model_name_or_path), and with
    // merge_adapter the final directory also holds the merged model (HF layout).
    const char *base_model_name;
    int merge_adapter;
    // Data-parallel processes (base/dist.h; NULL: one). train_batch_size is per process: rank r takes
    // positions r, r+N, ... of each global micro-batch of train_batch_size x N rows; each micro-batch's
    // token mean is over the global micro-batch's tokens (every rank counts them from the shared order),
    // gradients and losses are summed over ranks, evaluation batches are split among them. Rank 0 writes.
    dist *dist;
} sft_args;

typedef struct {
    long long global_step;
    double last_loss;
    double first_eval_loss, eval_loss;  // before training and after the last epoch (NaN without eval)
    int interrupted;
} sft_result;

// Mean causal-LM loss of one right-padded micro-batch (rows idx[0..B) of s); with grad_scale > 0 also
// backpropagates loss * grad_scale into m->grads.
rlhf_status sft_batch_loss(model *m, const sft_set *s, const int *idx, int B, int pad_id, int training,
                           uint64_t dropout_key, float grad_scale, double *loss, rlhf_err *err);

// Mean causal-LM loss over a whole set (no dropout, no gradients), batches weighted by their rows as
// HF Trainer's evaluation loop averages them.
rlhf_status sft_evaluate(model *m, const sft_set *s, int batch_size, double *loss, rlhf_err *err);
// The same with the batches split among processes (rank r takes batches r, r+N, ...); every rank gets the
// whole set's loss.
rlhf_status sft_evaluate_dist(model *m, const sft_set *s, int batch_size, dist *d, double *loss, rlhf_err *err);
// Splits off the last round(fraction * n) examples of a seeded permutation (RNG_STREAM_SPLIT) as an
// eval set; both sets own their examples afterwards (train keeps the rest, in their original order).
rlhf_status sft_set_split(sft_set *train, sft_set *eval, double fraction, uint64_t seed, rlhf_err *err);

// The final directory of a causal-LM trainer (sft, dpo): the model in HF layout with its
// generation_config.json and tokenizer, or with adapters peft's layout (adapter_config.json +
// adapter_model.safetensors naming base_model_name) and, with merge_adapter, the merged model beside
// it. Merging unloads the adapters from m, so it comes last.
rlhf_status sft_save_model_dir(model *m, const tokenizer *tok, const char *dir, const char *base_model_name,
                               int merge_adapter, rlhf_err *err);

rlhf_status sft_train(model *m, const tokenizer *tok, const sft_set *train, const sft_args *a, sft_result *res,
                      rlhf_err *err);

#endif
