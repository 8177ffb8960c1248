// The transformers TrainingArguments flags every epoch-based trainer shares (`rlhf reward`, `sft`, and the
// trainers after them): one flag table with one set of defaults and one validation, so the commands
// cannot drift. A command adds its own rows (model, dataset, max_length, ...) and cli_peft_flag_specs.
#ifndef RLHF_CLI_TRAINER_FLAGS_H
#define RLHF_CLI_TRAINER_FLAGS_H

#include "base/error.h"
#include "cli/args.h"
#include "train/reward_trainer.h"
#include "train/schedule.h"

#define CLI_TRAINER_N_FLAGS 29  // rows cli_trainer_flag_specs appends

typedef struct {
    const char *output_dir, *eval_dataset, *scheduler, *eval_strategy, *save_strategy, *resume, *torch_dtype;
    double eval_split, epochs, lr, warmup_ratio, weight_decay, max_grad_norm;
    long long train_bs, eval_bs, accum, warmup_steps, seed, logging_steps, eval_steps, save_steps, max_steps;
    long long threads, save_total_limit;
    int no_shuffle, disable_dropout, overwrite, quiet, gradient_checkpointing;
    const arg_spec *rows;  // the rows cli_trainer_flag_specs wrote (to ask which flags were given)
} cli_trainer_flags;

// What the flags mean once checked.
typedef struct {
    lr_schedule schedule;
    interval_strategy eval_strategy;  // default: epoch with an evaluation set, else no
    interval_strategy save_strategy;
    long long eval_steps;             // with STRATEGY_STEPS: --eval_steps, or --logging_steps when 0
    int has_eval;                     // --eval_dataset_name or --eval_split > 0
} cli_trainer_plan;

// Writes the rows at s[n..] while they fit under cap and returns n + CLI_TRAINER_N_FLAGS (more than cap:
// the caller's table is too small). default_lr: the command's --learning_rate default (TRL's config).
int cli_trainer_flag_specs(arg_spec *s, int n, int cap, cli_trainer_flags *f, const char *default_lr);
// Checks every shared flag (errors name the flag) and fills plan.
rlhf_status cli_trainer_check(const cli_trainer_flags *f, cli_trainer_plan *plan, rlhf_err *err);

#endif
