// The reward-model trainer (TRL RewardTrainer on HF Trainer's loop): pairwise loss
// -logsigmoid(r_c - r_r - margin) (+ center_rewards_coefficient * mean((r_c + r_r)^2)), AdamW with HF's
// no-decay groups, an lr schedule with warmup, gradient clipping and accumulation, seeded shuffling per
// epoch, periodic evaluation, logging, checkpoints, bit-identical resume and interruption at a step
// boundary. Everything that decides the numbers is a pure function of (seed, epoch, step), so a
// resumed run replays exactly what the uninterrupted run would have done.
#ifndef RLHF_TRAIN_REWARD_TRAINER_H
#define RLHF_TRAIN_REWARD_TRAINER_H

#include <signal.h>
#include <stdint.h>

#include "base/dist.h"
#include "base/error.h"
#include "models/model.h"
#include "tokenizer/tokenizer.h"
#include "train/preference_data.h"
#include "train/schedule.h"
#include "train/trainer_args.h"

// The columns of training_log.csv for `rlhf reward` (the contract's, in this order).
#define REWARD_LOG_COLUMNS \
    "epoch", "step", "loss", "learning_rate", "grad_norm", "accuracy", "margin", "eval_loss", "eval_accuracy", \
        "eval_margin"
#define REWARD_LOG_N_COLUMNS 10

typedef struct {
    trainer_common_args common;   // train_batch_size: pairs per micro-batch; max_grad_norm <= 0: no clipping
    double center_rewards_coefficient;
    volatile sig_atomic_t *stop;  // set by the CLI's SIGINT/SIGTERM handler; may be NULL
    // With adapters (models/peft.h): the final directory holds the adapter (base_model_name goes to
    // adapter_config.json's base_model_name_or_path) and, when merge_adapter, the merged model too.
    const char *base_model_name;
    int merge_adapter;
    // Data-parallel processes (base/dist.h; NULL: one). train_batch_size is per process: an optimizer step
    // sees train_batch_size x grad_accum x N pairs, rank r taking positions r, r+N, ... of each global
    // micro-batch of the one shuffled order; gradients and metrics are summed over ranks, every mean is
    // over the global batch. Only rank 0 writes files.
    dist *dist;
    // 1: ZeRO stage 1, each rank keeps its slice of the AdamW moments (optimizer.h adamw_shard); results and
    // checkpoints are the same as with 0.
    int zero_stage;
} reward_train_args;

typedef struct {
    long long global_step;
    long long skipped_steps;
    double last_loss;
    double eval_loss, eval_accuracy, eval_margin;  // of the last evaluation (NaN when none)
    int interrupted;
} reward_train_result;

// Trains m (grads allocated here) on train, evaluating on eval (may be NULL / empty), writing
// training_log.csv, report.html, checkpoints and finally the model (and tokenizer, when tok) to
// output_dir. The caller has validated everything and prepared output_dir. Returns RLHF_EINTERRUPT
// after writing checkpoint-{STEP} when *stop was set.
rlhf_status reward_train(model *m, const tokenizer *tok, const pref_set *train, const pref_set *eval,
                         const reward_train_args *a, reward_train_result *res, rlhf_err *err);

typedef struct {
    double loss, accuracy, margin;
    int n;
} reward_eval_result;

// Evaluation over a whole set (no dropout): mean pairwise loss, share with read r_c > r_r, mean read margin.
// With processes (d non-NULL) rank r evaluates batches r, r+N, ... and the sums are reduced: every rank
// gets the whole set's figures.
rlhf_status reward_evaluate(model *m, const pref_set *set, int batch_size, float center_coef, dist *d,
                            reward_eval_result *out, rlhf_err *err);

// Total optimizer steps HF Trainer would take: max_steps, else ceil(epochs * ceil(batches / accum)), where
// a batch is train_batch_size x processes pairs.
long long reward_total_steps(int n_train, const reward_train_args *a);

#endif
