// Training checkpoints, HF Trainer's layout: DIR/checkpoint-epoch{N}/ or DIR/checkpoint-{STEP}/ holding
// the model directory (config.json, model.safetensors, tokenizer files), optimizer.safetensors (AdamW
// moments as F32 tensors named "exp_avg.<param>" / "exp_avg_sq.<param>" plus an I64 "step") and
// trainer_state.json (position in the data, RNG seed, the epoch's data order, log history). A
// checkpoint is built under a temporary name and renamed into place, so a directory named
// checkpoint-* is always whole: a run killed at any instant leaves the previous checkpoint usable.
#ifndef RLHF_TRAIN_CHECKPOINT_H
#define RLHF_TRAIN_CHECKPOINT_H

#include <stdint.h>

#include "base/error.h"
#include "models/model.h"
#include "tokenizer/tokenizer.h"
#include "train/optimizer.h"

// One logged row (training_log.csv and trainer_state.json "log_history"); NaN = empty cell.
typedef struct {
    double epoch;
    long long step;
    double loss, learning_rate, grad_norm, accuracy, margin;
    double eval_loss, eval_accuracy, eval_margin;
} train_log_entry;

#define TRAINER_STATE_MAX_AUX 8

typedef struct {
    int epochs_done;          // completed epochs
    int micro_in_epoch;       // micro-batches of the current epoch already consumed
    long long global_step;    // optimizer steps taken (including skipped non-finite steps)
    long long skipped_steps;  // steps skipped for a non-finite loss or gradient norm
    uint64_t seed;
    int n_train;              // training pairs (a resume with other data is refused)
    int train_batch_size;     // a resume with another batch layout is refused (0: not recorded)
    int grad_accum;
    int *order;               // the current epoch's data order (n_train), may be NULL
    train_log_entry *log;     // log history
    int n_log, cap_log;
    // Trainer-specific numbers that a resume needs (DPO: bco_pair's running moments), saved as
    // "aux_state" when n_aux > 0.
    double aux[TRAINER_STATE_MAX_AUX];
    int n_aux;
} trainer_state;

rlhf_status trainer_state_add_log(trainer_state *s, const train_log_entry *e, rlhf_err *err);
void trainer_state_free(trainer_state *s);

rlhf_status trainer_state_save(const char *path, const trainer_state *s, rlhf_err *err);
rlhf_status trainer_state_load(const char *path, trainer_state *s, rlhf_err *err);

rlhf_status optimizer_state_save(const char *path, const model *m, const adamw_state *opt, rlhf_err *err);
// Both cover model_trainable_view(m): every parameter, or with adapters the adapters and trained heads.
// Loads moments into opt (already adamw_init'ed to the view's size); every param must be present with
// its shape.
rlhf_status optimizer_state_load(const char *path, const model *m, adamw_state *opt, rlhf_err *err);

// Writes a whole checkpoint to dir (replacing one of that name): model, tokenizer (if any),
// optimizer and trainer state. A model with adapters (models/peft.h) is saved as its peft adapter
// (adapter_config.json naming base_model_name + adapter_model.safetensors) and the optimizer file
// holds the moments of the trainable range only; resuming loads the base, applies the adapter and
// continues bit for bit.
rlhf_status checkpoint_save(const char *dir, const model *m, const tokenizer *tok, const adamw_state *opt,
                            const trainer_state *st, const char *base_model_name, rlhf_err *err);

// Removes a directory tree (for --overwrite_output_dir and replaced checkpoints).
rlhf_status remove_tree(const char *path, rlhf_err *err);

#endif
