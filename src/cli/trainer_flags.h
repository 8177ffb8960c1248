// The transformers TrainingArguments flags every epoch-based trainer shares (`rlhf reward`, `sft`, and the
// trainers after them): one flag table with one set of defaults and one validation, so the commands
// cannot drift. A command adds its own rows (model, dataset, max_length, ...) and cli_peft_flag_specs.
#ifndef RLHF_CLI_TRAINER_FLAGS_H
#define RLHF_CLI_TRAINER_FLAGS_H

#include "base/error.h"
#include "cli/args.h"
#include "train/trainer_args.h"

#define CLI_TRAINER_N_FLAGS 29  // rows cli_trainer_flag_specs appends

typedef struct {
    const char *output_dir, *eval_dataset, *scheduler, *eval_strategy, *save_strategy, *resume, *torch_dtype;
    double eval_split, epochs, lr, warmup_ratio, weight_decay, max_grad_norm;
    long long train_bs, eval_bs, accum, warmup_steps, seed, logging_steps, eval_steps, save_steps, max_steps;
    long long threads, save_total_limit;
    int no_shuffle, disable_dropout, overwrite, quiet, gradient_checkpointing;
    const arg_spec *rows;  // the rows cli_trainer_flag_specs wrote (to ask which flags were given)
    char resume_dir[4096];  // --resume_from_checkpoint resolved (cli_trainer_resume)
} cli_trainer_flags;

// Writes the rows at s[n..] while they fit under cap and returns n + CLI_TRAINER_N_FLAGS (more than cap:
// the caller's table is too small). default_lr: the command's --learning_rate default (TRL's config).
int cli_trainer_flag_specs(arg_spec *s, int n, int cap, cli_trainer_flags *f, const char *default_lr);
// Checks every shared flag (errors name the flag) and fills t with what they mean: every field but
// resume_from, which cli_trainer_resume fills (the commands check it at different points).
rlhf_status cli_trainer_check(const cli_trainer_flags *f, trainer_common_args *t, rlhf_err *err);
// Resolves --resume_from_checkpoint against --output_dir (train/checkpoint.h) into t->resume_from (NULL: a
// fresh run); the path lives in f.
rlhf_status cli_trainer_resume(cli_trainer_flags *f, trainer_common_args *t, rlhf_err *err);

#endif
