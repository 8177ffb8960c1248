// The shared TrainingArguments flag table and its checks (see trainer_flags.h).
#include "cli/trainer_flags.h"

#include <math.h>
#include <string.h>

#include "train/checkpoint.h"

int cli_trainer_flag_specs(arg_spec *s, int n, int cap, cli_trainer_flags *f, const char *default_lr) {
    f->rows = n + CLI_TRAINER_N_FLAGS <= cap ? s + n : NULL;
#define F(name, type, dest, def, help) \
    do { if (n < cap) s[n] = (arg_spec){name, type, dest, def, help, NULL, 0}; n++; } while (0)
    F("output_dir", ARG_STRING, &f->output_dir, NULL, "where the model, checkpoints, log and report go (required)");
    F("eval_dataset_name", ARG_STRING, &f->eval_dataset, NULL, "evaluation rows (instead of --eval_split)");
    F("eval_split", ARG_FLOAT, &f->eval_split, "0", "fraction of the training rows held out for evaluation, in [0, 1)");
    F("per_device_train_batch_size", ARG_INT, &f->train_bs, "8", "rows per micro-batch");
    F("per_device_eval_batch_size", ARG_INT, &f->eval_bs, "8", "rows per evaluation batch");
    F("num_train_epochs", ARG_FLOAT, &f->epochs, "1", "epochs over the training rows");
    F("max_steps", ARG_INT, &f->max_steps, "-1", "total optimizer steps (overrides --num_train_epochs when > 0)");
    F("learning_rate", ARG_FLOAT, &f->lr, default_lr, "peak AdamW learning rate (> 0)");
    F("gradient_accumulation_steps", ARG_INT, &f->accum, "1", "micro-batches per optimizer step");
    F("lr_scheduler_type", ARG_STRING, &f->scheduler, "linear", "linear | cosine | constant | constant_with_warmup");
    F("warmup_ratio", ARG_FLOAT, &f->warmup_ratio, "0", "share of the steps with linear warmup, in [0, 1]");
    F("warmup_steps", ARG_INT, &f->warmup_steps, "0", "warmup steps (overrides --warmup_ratio when > 0)");
    F("weight_decay", ARG_FLOAT, &f->weight_decay, "0", "AdamW weight decay (not on biases and norm weights)");
    F("max_grad_norm", ARG_FLOAT, &f->max_grad_norm, "1.0", "gradient clipping norm (0: no clipping)");
    F("seed", ARG_INT, &f->seed, "42", "seed of the data order, the eval split and dropout");
    F("no_shuffle", ARG_BOOL, &f->no_shuffle, NULL, "keep the dataset order in every epoch");
    F("disable_dropout", ARG_BOOL, &f->disable_dropout, "true", "turn dropout off while training (TRL default)");
    F("gradient_checkpointing", ARG_BOOL, &f->gradient_checkpointing, "false",
      "recompute each layer's activations in backward instead of keeping them: less memory, ~1/3 more compute");
    F("logging_steps", ARG_INT, &f->logging_steps, "10", "optimizer steps between training_log.csv rows");
    F("eval_strategy", ARG_STRING, &f->eval_strategy, NULL,
      "epoch | steps | no (default: epoch with an evaluation set, else no)");
    F("eval_steps", ARG_INT, &f->eval_steps, "0", "steps between evaluations with --eval_strategy steps "
                                                   "(0: --logging_steps)");
    F("save_strategy", ARG_STRING, &f->save_strategy, "epoch", "epoch | steps | no");
    F("save_steps", ARG_INT, &f->save_steps, "500", "steps between checkpoints with --save_strategy steps");
    F("save_total_limit", ARG_INT, &f->save_total_limit, "0", "keep only the newest N checkpoint-<STEP> directories "
                                                               "(0: all)");
    F("resume_from_checkpoint", ARG_OPT_STRING, &f->resume, NULL, "continue a run (same data, seed): a checkpoint "
                                                                   "directory, a checkpoint-<STEP> name in --output_dir, "
                                                                   "or alone / true for the newest one there");
    F("overwrite_output_dir", ARG_BOOL, &f->overwrite, NULL, "replace a run already in --output_dir");
    F("threads", ARG_INT, &f->threads, "0", "CPU threads (0: all cores)");
    F("quiet", ARG_BOOL, &f->quiet, NULL, "no progress bar or per-log lines");
    F("torch_dtype", ARG_STRING, &f->torch_dtype, "auto", "dtype of the saved model: auto (config.json's torch_dtype) "
                                                          "| float32 | bfloat16 | float16 (training is fp32; "
                                                          "checkpoints keep fp32 weights)");
#undef F
    return n;
}

static rlhf_status parse_strategy(const char *flag, const char *v, interval_strategy *out, rlhf_err *err) {
    if (!strcmp(v, "no")) *out = STRATEGY_NO;
    else if (!strcmp(v, "epoch")) *out = STRATEGY_EPOCH;
    else if (!strcmp(v, "steps")) *out = STRATEGY_STEPS;
    else return rlhf_fail(err, RLHF_EINPUT, "--%s: expected epoch, steps or no, got '%s'", flag, v);
    return RLHF_OK;
}

rlhf_status cli_trainer_check(const cli_trainer_flags *f, trainer_common_args *t, rlhf_err *err) {
    if (!f->output_dir) return rlhf_fail(err, RLHF_EINPUT, "--output_dir is required");
    if (f->torch_dtype && strcmp(f->torch_dtype, "auto") && strcmp(f->torch_dtype, "float32") &&
        strcmp(f->torch_dtype, "bfloat16") && strcmp(f->torch_dtype, "float16"))
        return rlhf_fail(err, RLHF_EINPUT, "--torch_dtype: expected auto, float32, bfloat16 or float16, got '%s'",
                         f->torch_dtype);
    if (!(f->lr > 0) || !isfinite(f->lr))
        return rlhf_fail(err, RLHF_EINPUT, "--learning_rate must be a finite number > 0, got %g", f->lr);
    if (f->train_bs < 1) return rlhf_fail(err, RLHF_EINPUT, "--per_device_train_batch_size must be >= 1");
    if (f->eval_bs < 1) return rlhf_fail(err, RLHF_EINPUT, "--per_device_eval_batch_size must be >= 1");
    if (f->train_bs > 1 << 20 || f->eval_bs > 1 << 20)
        return rlhf_fail(err, RLHF_EINPUT, "--per_device_*_batch_size must be at most %d", 1 << 20);
    if (f->accum < 1 || f->accum > 1 << 20)
        return rlhf_fail(err, RLHF_EINPUT, "--gradient_accumulation_steps must be in [1, %d], got %lld", 1 << 20,
                         f->accum);
    if (!(f->epochs > 0) && f->max_steps <= 0)
        return rlhf_fail(err, RLHF_EINPUT, "--num_train_epochs must be > 0 (or give --max_steps), got %g", f->epochs);
    if (f->epochs > 1e6) return rlhf_fail(err, RLHF_EINPUT, "--num_train_epochs %g is too large", f->epochs);
    if (!(f->eval_split >= 0 && f->eval_split < 1))
        return rlhf_fail(err, RLHF_EINPUT, "--eval_split must be in [0, 1), got %g", f->eval_split);
    if (f->eval_split > 0 && f->eval_dataset)
        return rlhf_fail(err, RLHF_EINPUT, "--eval_split and --eval_dataset_name exclude each other");
    if (!(f->warmup_ratio >= 0 && f->warmup_ratio <= 1))
        return rlhf_fail(err, RLHF_EINPUT, "--warmup_ratio must be in [0, 1], got %g", f->warmup_ratio);
    if (f->warmup_steps < 0) return rlhf_fail(err, RLHF_EINPUT, "--warmup_steps must be >= 0, got %lld", f->warmup_steps);
    if (!(f->weight_decay >= 0))
        return rlhf_fail(err, RLHF_EINPUT, "--weight_decay must be >= 0, got %g", f->weight_decay);
    if (!(f->max_grad_norm >= 0))
        return rlhf_fail(err, RLHF_EINPUT, "--max_grad_norm must be >= 0, got %g", f->max_grad_norm);
    if (f->seed < 0) return rlhf_fail(err, RLHF_EINPUT, "--seed must be >= 0, got %lld", f->seed);
    if (f->logging_steps < 1)
        return rlhf_fail(err, RLHF_EINPUT, "--logging_steps must be >= 1, got %lld", f->logging_steps);
    if (f->eval_steps < 0) return rlhf_fail(err, RLHF_EINPUT, "--eval_steps must be >= 0, got %lld", f->eval_steps);
    if (f->save_total_limit < 0)
        return rlhf_fail(err, RLHF_EINPUT, "--save_total_limit must be >= 0, got %lld", f->save_total_limit);
    if (f->threads < 0) return rlhf_fail(err, RLHF_EINPUT, "--threads must be >= 0, got %lld", f->threads);
    RLHF_TRY(lr_schedule_parse(f->scheduler, &t->schedule, err));
    RLHF_TRY(parse_strategy("save_strategy", f->save_strategy, &t->save_strategy, err));
    if (t->save_strategy == STRATEGY_STEPS && f->save_steps < 1)
        return rlhf_fail(err, RLHF_EINPUT, "--save_steps must be >= 1 with --save_strategy steps, got %lld",
                         f->save_steps);
    const int has_eval = f->eval_dataset || f->eval_split > 0;
    t->eval_strategy = has_eval ? STRATEGY_EPOCH : STRATEGY_NO;
    if (f->eval_strategy) RLHF_TRY(parse_strategy("eval_strategy", f->eval_strategy, &t->eval_strategy, err));
    if (t->eval_strategy != STRATEGY_NO && !has_eval)
        return rlhf_fail(err, RLHF_EINPUT, "--eval_strategy %s needs an evaluation set (--eval_dataset_name or "
                         "--eval_split > 0)", f->eval_strategy);
    t->eval_steps = f->eval_steps > 0 ? f->eval_steps : f->logging_steps;
    t->output_dir = f->output_dir;
    t->overwrite_output_dir = f->overwrite;
    t->eval_dataset_name = f->eval_dataset;
    t->eval_split = f->eval_split;
    t->train_batch_size = (int)f->train_bs;
    t->eval_batch_size = (int)f->eval_bs;
    t->grad_accum = (int)f->accum;
    t->num_train_epochs = f->epochs;
    t->max_steps = f->max_steps;
    t->learning_rate = f->lr;
    t->warmup_ratio = f->warmup_ratio;
    t->warmup_steps = f->warmup_steps;
    t->weight_decay = f->weight_decay;
    t->max_grad_norm = f->max_grad_norm;
    t->seed = (uint64_t)f->seed;
    t->shuffle = !f->no_shuffle;
    t->disable_dropout = f->disable_dropout;
    t->gradient_checkpointing = f->gradient_checkpointing;
    t->logging_steps = f->logging_steps;
    t->save_steps = f->save_steps;
    t->save_total_limit = f->save_total_limit;
    t->torch_dtype = f->torch_dtype;
    t->quiet = f->quiet;
    return RLHF_OK;
}

rlhf_status cli_trainer_resume(cli_trainer_flags *f, trainer_common_args *t, rlhf_err *err) {
    RLHF_TRY(checkpoint_resolve_resume(f->resume, f->output_dir, f->resume_dir, sizeof f->resume_dir, err));
    t->resume_from = f->resume_dir[0] ? f->resume_dir : NULL;
    return RLHF_OK;
}
