// The transformers TrainingArguments every epoch-based trainer shares (reward, sft, dpo, grpo / rloo): the
// CLI fills one from the shared flags (cli/trainer_flags.h) and each trainer's args embed it as .common, so
// the values are neither copied field by field nor named differently per trainer.
#ifndef RLHF_TRAIN_TRAINER_ARGS_H
#define RLHF_TRAIN_TRAINER_ARGS_H

#include <stdint.h>

#include "train/schedule.h"

typedef enum { STRATEGY_NO, STRATEGY_EPOCH, STRATEGY_STEPS } interval_strategy;

typedef struct {
    const char *output_dir;
    const char *resume_from;          // checkpoint directory whose state continues (resolved), or NULL
    int overwrite_output_dir;
    const char *eval_dataset_name;    // evaluation rows (NULL: none, or eval_split)
    double eval_split;                // > 0: this share of the training rows held out for evaluation instead
    int train_batch_size;             // rows per micro-batch and process (per_device_train_batch_size)
    int eval_batch_size;              // per_device_eval_batch_size
    int grad_accum;                   // gradient_accumulation_steps
    double num_train_epochs;
    long long max_steps;              // > 0 overrides num_train_epochs
    double learning_rate;
    lr_schedule schedule;             // lr_scheduler_type
    double warmup_ratio;
    long long warmup_steps;           // > 0 overrides warmup_ratio
    double weight_decay, max_grad_norm;
    uint64_t seed;
    int shuffle;                      // reshuffle the rows every epoch (not --no_shuffle)
    int disable_dropout;
    int gradient_checkpointing;
    long long logging_steps;
    interval_strategy save_strategy;
    long long save_steps;             // with STRATEGY_STEPS: checkpoint every N optimizer steps
    long long save_total_limit;       // > 0: keep only the newest N checkpoint-<STEP> directories
    interval_strategy eval_strategy;  // default: epoch with an evaluation set, else no
    long long eval_steps;             // with STRATEGY_STEPS: evaluate every N optimizer steps
    const char *torch_dtype;          // dtype of the saved model (auto: its config.json's)
    int quiet;                        // no progress bar or per-log lines
} trainer_common_args;

// Optimizer steps in all: max_steps when > 0, else ceil(num_train_epochs x steps_per_epoch); at least 1.
long long trainer_total_steps(const trainer_common_args *t, long long steps_per_epoch);
// Warmup steps: warmup_steps when > 0, else ceil(warmup_ratio x total).
long long trainer_warmup_steps(const trainer_common_args *t, long long total);

// save_steps / eval_steps under STRATEGY_STEPS, else 0.
static inline long long trainer_save_every(const trainer_common_args *t) {
    return t->save_strategy == STRATEGY_STEPS ? t->save_steps : 0;
}
static inline long long trainer_eval_every(const trainer_common_args *t) {
    return t->eval_strategy == STRATEGY_STEPS ? t->eval_steps : 0;
}

#endif
