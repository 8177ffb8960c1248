// `rlhf reward`: flags (TRL RewardConfig / TrainingArguments names), validation of every flag and
// every input row before anything is written, then the reward trainer. Exit 0 ok, 1 runtime failure,
// 2 bad usage or input, 130 interrupted after saving checkpoint-{STEP}.
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/peft_flags.h"
#include "cli/signals.h"
#include "io/dataset.h"
#include "io/files.h"
#include "models/peft.h"
#include "train/checkpoint.h"
#include "train/preference_data.h"
#include "train/reward_trainer.h"
#include "train/schedule.h"
#include "train/trainer_common.h"

#define CMD "reward"

typedef struct {
    const char *model, *dataset, *output_dir, *eval_dataset, *scheduler, *eval_strategy, *save_strategy;
    const char *resume, *encoding;
    double eval_split, epochs, lr, warmup_ratio, weight_decay, max_grad_norm, center;
    long long train_bs, eval_bs, max_length, accum, warmup_steps, seed, logging_steps, eval_steps, save_steps;
    long long max_steps, threads, save_total_limit;
    int no_shuffle, disable_dropout, overwrite, quiet;
    cli_peft_flags peft;  // --use_peft, --lora_*, --load_in_4bit, --bnb_4bit_*, --merge_adapter
} reward_flags;

static const char USAGE[] =
    "usage: rlhf reward --model_name_or_path DIR --dataset_name FILE --output_dir DIR [flags]\n"
    "Trains a sequence-classification reward model on preference pairs with the pairwise loss\n"
    "-logsigmoid(r_chosen - r_rejected - margin), as TRL's RewardTrainer.";

// Fills at most cap specs and returns how many the command has (more than cap: the array is too small).
static int build_specs(arg_spec *s, int cap, reward_flags *f) {
    int n = 0;
#define F(name, type, dest, def, help) \
    do { if (n < cap) s[n] = (arg_spec){name, type, dest, def, help, NULL, 0}; n++; } while (0)
    F("model_name_or_path", ARG_STRING, &f->model, NULL, "model directory (HF layout) to start from (required)");
    F("dataset_name", ARG_STRING, &f->dataset, NULL, "preference pairs: .jsonl, .jsonl.gz or a JSON array (required)");
    F("output_dir", ARG_STRING, &f->output_dir, NULL, "where the model, checkpoints, log and report go (required)");
    F("eval_dataset_name", ARG_STRING, &f->eval_dataset, NULL, "evaluation pairs (instead of --eval_split)");
    F("eval_split", ARG_FLOAT, &f->eval_split, "0", "fraction of the training pairs held out for evaluation, in [0, 1)");
    F("per_device_train_batch_size", ARG_INT, &f->train_bs, "8", "pairs per micro-batch");
    F("per_device_eval_batch_size", ARG_INT, &f->eval_bs, "8", "pairs per evaluation batch");
    F("num_train_epochs", ARG_FLOAT, &f->epochs, "1", "epochs over the training pairs");
    F("learning_rate", ARG_FLOAT, &f->lr, "5e-5", "peak AdamW learning rate (> 0)");
    F("max_length", ARG_INT, &f->max_length, "512", "longest sequence in tokens (longer ones are truncated)");
    F("gradient_accumulation_steps", ARG_INT, &f->accum, "1", "micro-batches per optimizer step");
    F("warmup_ratio", ARG_FLOAT, &f->warmup_ratio, "0", "share of the steps with linear warmup, in [0, 1]");
    F("warmup_steps", ARG_INT, &f->warmup_steps, "0", "warmup steps (overrides --warmup_ratio when > 0)");
    F("weight_decay", ARG_FLOAT, &f->weight_decay, "0", "AdamW weight decay (not on biases and norm weights)");
    F("max_grad_norm", ARG_FLOAT, &f->max_grad_norm, "1.0", "gradient clipping norm (0: no clipping)");
    F("lr_scheduler_type", ARG_STRING, &f->scheduler, "linear", "linear | cosine | constant | constant_with_warmup");
    F("center_rewards_coefficient", ARG_FLOAT, &f->center, "0", "weight of mean((r_c + r_r)^2) in the loss");
    F("seed", ARG_INT, &f->seed, "42", "seed of the data order, the eval split and dropout");
    F("no_shuffle", ARG_BOOL, &f->no_shuffle, NULL, "keep the dataset order in every epoch");
    F("disable_dropout", ARG_BOOL, &f->disable_dropout, "true", "turn dropout off while training (TRL default)");
    F("logging_steps", ARG_INT, &f->logging_steps, "10", "optimizer steps between training_log.csv rows");
    F("eval_strategy", ARG_STRING, &f->eval_strategy, NULL,
      "epoch | steps | no (default: epoch with an evaluation set, else no)");
    F("eval_steps", ARG_INT, &f->eval_steps, "0", "steps between evaluations with --eval_strategy steps "
                                                   "(default: --logging_steps)");
    F("save_strategy", ARG_STRING, &f->save_strategy, "epoch", "epoch | steps | no");
    F("save_steps", ARG_INT, &f->save_steps, "500", "steps between checkpoints with --save_strategy steps");
    F("save_total_limit", ARG_INT, &f->save_total_limit, "0", "keep only the newest N checkpoint-<STEP> directories "
                                                               "(0: all)");
    F("max_steps", ARG_INT, &f->max_steps, "-1", "total optimizer steps (overrides --num_train_epochs when > 0)");
    F("resume_from_checkpoint", ARG_OPT_STRING, &f->resume, NULL, "continue a run: a checkpoint directory, a "
                                                                   "checkpoint-<STEP> name in --output_dir, or alone / "
                                                                   "true for the newest one there");
    F("overwrite_output_dir", ARG_BOOL, &f->overwrite, NULL, "replace a run already in --output_dir");
    F("encoding", ARG_STRING, &f->encoding, NULL, "encoders read (prompt, response) as a sentence pair, or concat: "
                                                   "prompt + response as one text (TRL); saved in config.json "
                                                   "(default: the model's saved encoding, else pair)");
    F("threads", ARG_INT, &f->threads, "0", "CPU threads (0: all cores)");
    F("quiet", ARG_BOOL, &f->quiet, NULL, "no progress bar or per-log lines");
#undef F
    return cli_peft_flag_specs(s, n, cap, &f->peft,
                               "train LoRA adapters (+ the score head) instead of the full model; writes a peft adapter");
}

static rlhf_status parse_strategy(const char *flag, const char *v, interval_strategy *out, rlhf_err *err) {
    if (!strcmp(v, "no")) *out = STRATEGY_NO;
    else if (!strcmp(v, "epoch")) *out = STRATEGY_EPOCH;
    else if (!strcmp(v, "steps")) *out = STRATEGY_STEPS;
    else return rlhf_fail(err, RLHF_EINPUT, "--%s: expected epoch, steps or no, got '%s'", flag, v);
    return RLHF_OK;
}

// Flag checks that need no file: each names its flag.
static rlhf_status validate_flags(const reward_flags *f, rlhf_err *err) {
    if (!f->model) return rlhf_fail(err, RLHF_EINPUT, "--model_name_or_path is required");
    if (!f->dataset) return rlhf_fail(err, RLHF_EINPUT, "--dataset_name is required");
    if (!f->output_dir) return rlhf_fail(err, RLHF_EINPUT, "--output_dir is required");
    if (!(f->lr > 0) || !isfinite(f->lr))
        return rlhf_fail(err, RLHF_EINPUT, "--learning_rate must be a finite number > 0, got %g", f->lr);
    if (f->train_bs < 1) return rlhf_fail(err, RLHF_EINPUT, "--per_device_train_batch_size must be >= 1");
    if (f->eval_bs < 1) return rlhf_fail(err, RLHF_EINPUT, "--per_device_eval_batch_size must be >= 1");
    if (f->train_bs > 1 << 20 || f->eval_bs > 1 << 20)
        return rlhf_fail(err, RLHF_EINPUT, "--per_device_*_batch_size must be at most %d", 1 << 20);
    if (f->max_length < 1) return rlhf_fail(err, RLHF_EINPUT, "--max_length must be >= 1, got %lld", f->max_length);
    if (f->accum < 1 || f->accum > 1 << 20)
        return rlhf_fail(err, RLHF_EINPUT, "--gradient_accumulation_steps must be >= 1, got %lld", f->accum);
    if (!(f->epochs > 0) && f->max_steps <= 0)
        return rlhf_fail(err, RLHF_EINPUT, "--num_train_epochs must be > 0 (or give --max_steps), got %g", f->epochs);
    if (f->epochs > 1e6) return rlhf_fail(err, RLHF_EINPUT, "--num_train_epochs %g is too large", f->epochs);
    if (!(f->eval_split >= 0 && f->eval_split < 1))
        return rlhf_fail(err, RLHF_EINPUT, "--eval_split must be in [0, 1), got %g", f->eval_split);
    if (f->eval_split > 0 && f->eval_dataset)
        return rlhf_fail(err, RLHF_EINPUT, "--eval_split and --eval_dataset_name exclude each other");
    if (!(f->warmup_ratio >= 0 && f->warmup_ratio <= 1))
        return rlhf_fail(err, RLHF_EINPUT, "--warmup_ratio must be in [0, 1], got %g", f->warmup_ratio);
    if (f->warmup_steps < 0) return rlhf_fail(err, RLHF_EINPUT, "--warmup_steps must be >= 0");
    if (!(f->weight_decay >= 0)) return rlhf_fail(err, RLHF_EINPUT, "--weight_decay must be >= 0, got %g", f->weight_decay);
    if (!(f->max_grad_norm >= 0)) return rlhf_fail(err, RLHF_EINPUT, "--max_grad_norm must be >= 0, got %g", f->max_grad_norm);
    if (!(f->center >= 0)) return rlhf_fail(err, RLHF_EINPUT, "--center_rewards_coefficient must be >= 0, got %g", f->center);
    if (f->seed < 0) return rlhf_fail(err, RLHF_EINPUT, "--seed must be >= 0, got %lld", f->seed);
    if (f->logging_steps < 1) return rlhf_fail(err, RLHF_EINPUT, "--logging_steps must be >= 1, got %lld", f->logging_steps);
    if (f->eval_steps < 0) return rlhf_fail(err, RLHF_EINPUT, "--eval_steps must be >= 1, got %lld", f->eval_steps);
    if (f->save_steps < 1) return rlhf_fail(err, RLHF_EINPUT, "--save_steps must be >= 1, got %lld", f->save_steps);
    if (f->save_total_limit < 0)
        return rlhf_fail(err, RLHF_EINPUT, "--save_total_limit must be >= 0, got %lld", f->save_total_limit);
    if (f->threads < 0) return rlhf_fail(err, RLHF_EINPUT, "--threads must be >= 0, got %lld", f->threads);
    if (f->encoding && strcmp(f->encoding, "pair") && strcmp(f->encoding, "concat"))
        return rlhf_fail(err, RLHF_EINPUT, "--encoding: expected pair or concat, got '%s'", f->encoding);
    peft_options po;
    return cli_peft_check_train(&f->peft, &po, err);
}

// An output directory "holds a run" when it has a model, a log or checkpoints.
static int holds_run(const char *dir) {
    char p[4096];
    if (file_exists(path_join(p, sizeof p, dir, "training_log.csv")) ||
        file_exists(path_join(p, sizeof p, dir, "model.safetensors")) ||
        file_exists(path_join(p, sizeof p, dir, "trainer_state.json")))
        return 1;
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    int found = 0;
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, "checkpoint-", 11)) found = 1;
    closedir(d);
    return found;
}

// --overwrite_output_dir: the old run's checkpoints, log and report go (other files stay, as HF).
static rlhf_status clear_old_run(const char *dir, rlhf_err *err) {
    char p[4096];
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        rlhf_status s = RLHF_OK;
        while ((e = readdir(d)) && !s)
            if (!strncmp(e->d_name, "checkpoint-", 11)) s = remove_tree(path_join(p, sizeof p, dir, e->d_name), err);
        closedir(d);
        RLHF_TRY(s);
    }
    RLHF_TRY(remove_tree(path_join(p, sizeof p, dir, "training_log.csv"), err));
    return remove_tree(path_join(p, sizeof p, dir, "report.html"), err);
}

static rlhf_status load_pairs(pref_set *out, const char *path, const pref_opts *o, rlhf_err *err) {
    dataset d;
    RLHF_TRY(dataset_load(&d, path, err));
    rlhf_status s = pref_set_build(out, &d, o, err);
    dataset_free(&d);
    return s;
}

static rlhf_status run(reward_flags *f, int explicit_eval_strategy, volatile sig_atomic_t **stop, rlhf_err *err) {
    RLHF_TRY(validate_flags(f, err));
    char resume_dir[4096];
    RLHF_TRY(checkpoint_resolve_resume(f->resume, f->output_dir, resume_dir, sizeof resume_dir, err));
    f->resume = resume_dir[0] ? resume_dir : NULL;
    reward_train_args a = {0};
    RLHF_TRY(lr_schedule_parse(f->scheduler, &a.schedule, err));
    RLHF_TRY(parse_strategy("save_strategy", f->save_strategy, &a.save_strategy, err));
    int has_eval = f->eval_dataset || f->eval_split > 0;
    a.eval_strategy = has_eval ? STRATEGY_EPOCH : STRATEGY_NO;
    if (explicit_eval_strategy) RLHF_TRY(parse_strategy("eval_strategy", f->eval_strategy, &a.eval_strategy, err));
    if (a.eval_strategy != STRATEGY_NO && !has_eval)
        return rlhf_fail(err, RLHF_EINPUT, "--eval_strategy %s needs --eval_dataset_name or --eval_split > 0",
                         f->eval_strategy);
    if (f->resume) {
        char p[4096];
        if (!file_exists(path_join(p, sizeof p, f->resume, "trainer_state.json")))
            return rlhf_fail(err, RLHF_EINPUT, "--resume_from_checkpoint %s: no trainer_state.json there (expected a "
                             "checkpoint-* directory of an earlier run)", f->resume);
    } else if (holds_run(f->output_dir) && !f->overwrite) {
        return rlhf_fail(err, RLHF_EINPUT, "--output_dir %s already holds a run; give --overwrite_output_dir to "
                         "replace it or --resume_from_checkpoint to continue it", f->output_dir);
    }
    cli_set_threads(f->threads);

    // Everything is read and validated before anything is written.
    model *m = NULL;
    tokenizer *tok = NULL;
    const char *model_dir = f->resume ? f->resume : f->model;
    peft_options po;
    RLHF_TRY(cli_peft_options(&f->peft, &po, err));
    if (f->resume) RLHF_TRY(cli_peft_check_resume(&f->peft, f->resume, err));
    if (f->peft.use_peft && f->resume) {
        // The checkpoint is an adapter: its base (base_model_name_or_path) with the adapter applied,
        // quantized as the flags say.
        peft_options quant = po;
        quant.use_peft = 0;
        RLHF_TRY(reward_model_load_peft(&m, &tok, model_dir, (uint64_t)f->seed, &quant, err));
    } else {
        // With --use_peft the adapters are set up while loading (4-bit weights never held in fp32).
        RLHF_TRY(reward_model_load_peft(&m, &tok, model_dir, (uint64_t)f->seed, f->peft.use_peft ? &po : NULL, err));
    }
    if (f->peft.use_peft) cli_peft_notice(CMD, m);
    pref_set all = {0}, train = {0}, eval = {0};
    pref_opts o;
    pref_encoding enc = PREF_ENCODING_PAIR;
    reward_encoding_parse(f->encoding, m, &enc, err);  // the value was validated with the flags
    pref_opts_for_model(&o, m, tok, (int)f->max_length, enc, model_dir);
    rlhf_status s = load_pairs(&all, f->dataset, &o, err);
    if (!s && f->eval_dataset) s = load_pairs(&eval, f->eval_dataset, &o, err);
    if (!s) {
        if (f->eval_split > 0) {
            s = pref_set_split(&all, f->eval_split, (uint64_t)f->seed, &train, &eval, err);
        } else {
            train = all;
            memset(&all, 0, sizeof all);
        }
    }
    if (!s) {
        int n_trunc = train.n_truncated + eval.n_truncated;
        fprintf(stderr, "rlhf reward: %d training pairs, %d evaluation pairs; %d rows truncated to %d tokens\n",
                train.n, eval.n, n_trunc, o.max_length);
        if (train.has_margin) fprintf(stderr, "rlhf reward: rows carry \"margin\": loss -logsigmoid(r_c - r_r - margin)\n");
    }
    if (!s) s = reward_encoding_record(m, enc, err);  // score/ppo read pairs as this model was trained
    if (!s) s = reward_max_length_record(m, o.max_length, err);
    if (!s) s = make_dirs(f->output_dir, err);
    if (!s && f->overwrite && !f->resume) s = clear_old_run(f->output_dir, err);
    if (!s) {
        a.output_dir = f->output_dir;
        a.train_batch_size = (int)f->train_bs;
        a.eval_batch_size = (int)f->eval_bs;
        a.grad_accum = (int)f->accum;
        a.num_train_epochs = f->epochs;
        a.max_steps = f->max_steps;
        a.learning_rate = f->lr;
        a.weight_decay = f->weight_decay;
        a.warmup_ratio = f->warmup_ratio;
        a.warmup_steps = f->warmup_steps;
        a.max_grad_norm = f->max_grad_norm;
        a.center_rewards_coefficient = f->center;
        a.seed = (uint64_t)f->seed;
        a.shuffle = !f->no_shuffle;
        a.disable_dropout = f->disable_dropout;
        a.logging_steps = f->logging_steps;
        a.eval_steps = f->eval_steps > 0 ? f->eval_steps : f->logging_steps;
        a.save_steps = f->save_steps;
        a.save_total_limit = f->save_total_limit;
        a.resume_from = f->resume;
        a.quiet = f->quiet;
        a.base_model_name = f->model;
        a.merge_adapter = f->peft.merge_adapter;
        *stop = cli_stop_flag_install();
        a.stop = *stop;
        reward_train_result res;
        s = reward_train(m, tok, &train, eval.n ? &eval : NULL, &a, &res, err);
        cli_stop_flag_remove();
        if (!s) {
            fprintf(stderr, "rlhf reward: done, %lld steps (%lld skipped)", res.global_step, res.skipped_steps);
            if (isfinite(res.eval_accuracy))
                fprintf(stderr, "; eval accuracy %.4f, margin %.4f, loss %.4f", res.eval_accuracy, res.eval_margin,
                        res.eval_loss);
            fprintf(stderr, "; model in %s\n", f->output_dir);
        }
    }
    pref_set_free(&all);
    pref_set_free(&train);
    pref_set_free(&eval);
    if (tok) tokenizer_free(tok);
    model_free(m);
    return s;
}

int cmd_reward(int argc, char **argv) {
    reward_flags f;
    memset(&f, 0, sizeof f);
    arg_spec specs[64];
    const int cap = (int)(sizeof specs / sizeof specs[0]);
    int n = build_specs(specs, cap, &f);
    if (n > cap) return cli_report(CMD, RLHF_ERUNTIME, "internal error: more flags than the flag table holds");
    rlhf_err err;
    rlhf_err_clear(&err);
    int parsed = cli_parse_flags(CMD, USAGE, specs, n, argc, argv);
    if (parsed >= 0) return parsed;
    const arg_spec *es = args_find(specs, n, "eval_strategy");
    volatile sig_atomic_t *stop = NULL;
    rlhf_status s = run(&f, es && es->seen && f.eval_strategy, &stop, &err);
    return cli_report(CMD, s, err.msg);
}
