// Training checkpoints, HF Trainer's layout: OUTPUT_DIR/checkpoint-{GLOBAL_STEP}/ (every trainer, whatever
// its save strategy) holding the model directory (config.json, model.safetensors, tokenizer files),
// optimizer.safetensors (AdamW moments as F32 tensors named "exp_avg.<param>" / "exp_avg_sq.<param>" plus
// an I64 "step") and trainer_state.json: transformers' TrainerState (global_step, epoch, max_steps,
// log_history as a list of the logged dicts, best_metric null, ...; TrainerState.load_from_json reads it)
// with what resume needs (position in the data, RNG seed, the epoch's data order) kept in its
// stateful_callbacks under "RlhfResumeState". A checkpoint is built under DIR.tmp and renamed into place,
// so a directory named checkpoint-<N> is always whole: a run killed at any instant leaves the previous
// checkpoint usable; a *.tmp left by a crash is ignored by resume and removed by the next run.
// The helpers below (naming, get_last_checkpoint, --save_total_limit rotation, build-then-rename) are
// shared by every trainer.
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
    // Trainer-specific numbers that a resume needs (DPO: bco_pair's running moments), saved in the
    // resume state as "aux_state" when n_aux > 0.
    double aux[TRAINER_STATE_MAX_AUX];
    int n_aux;
    // HF TrainerState fields written for the reader (resume does not need them): the epoch reached is
    // epochs_done + micro_in_epoch / micro_per_epoch (0: epochs_done).
    int micro_per_epoch;
    long long max_steps, logging_steps, eval_steps, save_steps;
    double num_train_epochs;
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

// ---- shared by every trainer ----

// OUTPUT_DIR/checkpoint-{step} into out (size n); returns out.
char *checkpoint_path(char *out, size_t n, const char *output_dir, long long step);

// transformers' get_last_checkpoint: the checkpoint-<N> directory under output_dir with the largest N
// (names that are not exactly checkpoint-<digits>, such as checkpoint-40.tmp left by a crash, are
// ignored). *step = -1 and out empty when there is none.
void checkpoint_find_last(const char *output_dir, char *out, size_t n, long long *step);

// Resolves --resume_from_checkpoint VALUE into out (size n): NULL or "false" -> no resume (out empty);
// "" or "true" (the flag given alone) -> the newest checkpoint-<N> under output_dir (none: EINPUT saying
// so); an existing directory -> itself; a bare name (no '/') -> output_dir/NAME when that exists.
// Anything else is EINPUT naming the flag.
rlhf_status checkpoint_resolve_resume(const char *value, const char *output_dir, char *out, size_t n, rlhf_err *err);

// Removes checkpoint-*.tmp directories under output_dir (left by a run killed while saving), with a
// notice on stderr for each. Called when a run starts writing.
rlhf_status checkpoint_remove_stale(const char *output_dir, rlhf_err *err);

// --save_total_limit (HF's _rotate_checkpoints): with limit > 0, deletes the checkpoint-<N> directories
// under output_dir with the smallest N until at most limit remain; keep_step (the one just written)
// is never deleted. limit <= 0: nothing.
rlhf_status checkpoint_rotate(const char *output_dir, long long limit, long long keep_step, rlhf_err *err);
// The contract's epoch name: checkpoint-epoch{epoch} as a relative symlink to checkpoint-{step} (written by
// --save_strategy epoch), so scripts that read checkpoint-epoch1/ keep working while get_last_checkpoint-style
// lookups see only checkpoint-<N>. Aliases whose target was rotated away are removed by checkpoint_rotate.
rlhf_status checkpoint_epoch_alias(const char *output_dir, int epoch, long long step, rlhf_err *err);

// Build-then-rename for trainers that write their own checkpoint contents: checkpoint_begin makes a
// fresh empty DIR.tmp (its path into tmp); checkpoint_commit fsyncs it, replaces dir with it and fsyncs
// the parent; checkpoint_abort removes DIR.tmp (after a failed write; the older checkpoints are untouched).
rlhf_status checkpoint_begin(const char *dir, char *tmp, size_t n, rlhf_err *err);
rlhf_status checkpoint_commit(const char *tmp, const char *dir, rlhf_err *err);
void checkpoint_abort(const char *tmp);

// HF TrainerState's fields (transformers' trainer_callback.py) for trainers with their own logs.
typedef struct {
    double epoch;                 // fractional epoch reached
    long long global_step, max_steps, logging_steps, eval_steps, save_steps, train_batch_size;
    double num_train_epochs;
} hf_state_fields;
struct cJSON;
// A TrainerState JSON object holding h, log_history (an array, taken over; NULL: empty) and the
// trainer's resume state (an object, taken over; NULL: none) as stateful_callbacks.RlhfResumeState.args.
// NULL when out of memory. Save it with json_save_file (sorted keys, as HF's save_to_json).
struct cJSON *hf_trainer_state_json(const hf_state_fields *h, struct cJSON *log_history, struct cJSON *resume);
// One log_history dict: names[i] -> vals[i] for the finite values (HF logs only what it measured).
struct cJSON *hf_log_entry(const char *const *names, const double *vals, int n);

#endif
