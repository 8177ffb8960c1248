// The GRPO and RLOO trainers (TRL's GRPOTrainer / RLOOTrainer): no value model; each prompt is sampled
// num_generations times and the group is the baseline. Per generation batch: sample completions
// (train/rollout.h), score them with every reward source (train/reward_source.h), turn the weighted sum
// into advantages (group-normalised for GRPO, leave-one-out for RLOO: train/grpo_math.h), then train on
// the batch in steps_per_generation micro-batches, num_iterations times, one optimizer step every
// gradient_accumulation_steps micro-batches, exactly as TRL schedules generation and steps.
//
// Everything random is keyed by (seed, generation, row, ...): the prompt order (RNG_STREAM_SHUFFLE by
// epoch), token sampling (RNG_STREAM_SAMPLE by generation, counter = row), the shuffle of a generation
// batch into micro-batches (RNG_STREAM_GRPO by generation). A checkpoint is taken at an optimizer step
// that ends a generation's micro-batches, so a resumed run replays the uninterrupted one exactly.
#ifndef RLHF_TRAIN_GRPO_TRAINER_H
#define RLHF_TRAIN_GRPO_TRAINER_H

#include <signal.h>
#include <stdint.h>

#include "base/dist.h"
#include "base/error.h"
#include "models/peft.h"
#include "train/grpo_math.h"
#include "train/preference_data.h"
#include "train/reward_trainer.h"
#include "train/trainer_args.h"

typedef enum { ALGO_GRPO, ALGO_RLOO } grpo_algo;

#define GRPO_MAX_REWARDS 16

typedef struct {
    grpo_algo algo;
    const char *model_name_or_path;
    const char *dataset_name;         // rows {"prompt": str | [messages]} or {"prompt_ids": [...]}, plus any fields
    // output_dir, resume_from, the evaluation prompts (eval_dataset_name or eval_split), the optimisation,
    // schedule, logging, checkpoint and evaluation settings; train_batch_size: completions per micro-batch,
    // eval_batch_size: completions per evaluation batch and process, logging_steps 10 (TRL's GRPOConfig)
    trainer_common_args common;
    dist *dist;                       // NULL: one process

    // rewards: reward models and functions, in the order given; one weight each (NULL: all 1)
    const char *reward_models[GRPO_MAX_REWARDS];
    int n_reward_models;
    const char *reward_funcs[GRPO_MAX_REWARDS];  // accuracy_reward | think_format_reward | exec:COMMAND
    int n_reward_funcs;
    double reward_weights[GRPO_MAX_REWARDS];
    int n_reward_weights;             // 0: all 1
    double reward_timeout;            // seconds a reward program may take for one line
    const char *encoding;             // how encoder reward models read (prompt, completion); NULL: recorded / pair
    int allow_new_reward_head;        // accept a reward model checkpoint without a score head

    // generation
    int num_generations;              // GRPO 8, RLOO 2
    int max_prompt_length;            // 0: no truncation
    int max_completion_length;        // 256 (TRL 512)
    double temperature, top_p, min_p, repetition_penalty;
    int top_k;
    int mask_truncated_completions;

    // the objective
    double beta;                      // GRPO 0.0 (no reference model), RLOO 0.05
    double epsilon, epsilon_high;     // epsilon_high < 0: = epsilon
    grpo_loss_type loss_type;         // dapo
    grpo_scale_rewards scale_rewards; // group
    grpo_is_level importance_sampling_level;
    int num_iterations;
    int normalize_advantages;         // RLOO
    int has_reward_clip;              // RLOO --reward_clip_range
    double reward_clip[2];

    // optimisation (the rest is in common)
    double adam_beta1, adam_beta2, adam_epsilon;  // torch's AdamW defaults 0.9, 0.999, 1e-8
    int steps_per_generation;         // 0: = gradient_accumulation_steps

    // evaluation and samples
    int num_generations_eval;         // completions per prompt in evaluation (0: num_generations)
    int num_completions_to_log;       // completions of each logged step written to samples.jsonl

    volatile sig_atomic_t *stop;
    peft_options peft;
    int merge_adapter;
} grpo_args;

// TRL's GRPOConfig / RLOOConfig defaults for algo (every pointer NULL).
void grpo_args_defaults(grpo_args *a, grpo_algo algo);
// Range and consistency checks, each error naming the flag(s) (RLHF_EINPUT).
rlhf_status grpo_args_check(const grpo_args *a, rlhf_err *err);

typedef struct {
    long long steps_done;
    double first_reward, last_reward;  // reward of the first and last logged rows of this process
    double first_eval_reward, last_eval_reward;  // eval_reward of the first and last evaluations (NaN: none)
    int interrupted;
} grpo_result;

// Validates every input (models, reward sources, prompts, flags) before writing anything, then trains,
// writing OUTPUT_DIR/{training_log.csv, samples.jsonl, report.html, checkpoint-N/} and the policy.
rlhf_status grpo_train(const grpo_args *a, grpo_result *res, rlhf_err *err);

#endif
