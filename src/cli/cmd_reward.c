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
#include "cli/trainer_flags.h"
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
    const char *model, *dataset, *encoding;
    double center;
    long long max_length, zero_stage;
    cli_trainer_flags t;  // the TrainingArguments flags reward and sft share (cli/trainer_flags.h)
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
    F("max_length", ARG_INT, &f->max_length, "512", "longest sequence in tokens (longer ones are truncated)");
    F("center_rewards_coefficient", ARG_FLOAT, &f->center, "0", "weight of mean((r_c + r_r)^2) in the loss");
    F("encoding", ARG_STRING, &f->encoding, NULL, "encoders read (prompt, response) as a sentence pair, or concat: "
                                                   "prompt + response as one text (TRL); saved in config.json "
                                                   "(default: the model's saved encoding, else pair)");
    F("zero_stage", ARG_INT, &f->zero_stage, "0", "1: under mpirun each process keeps only its share of the AdamW "
                                                  "moments (DeepSpeed ZeRO stage 1); 0: every process keeps them all");
#undef F
    n = cli_trainer_flag_specs(s, n, cap, &f->t, "5e-5");  // TRL RewardConfig.learning_rate
    return cli_peft_flag_specs(s, n, cap, &f->peft,
                               "train LoRA adapters (+ the score head) instead of the full model; writes a peft adapter");
}

// Flag checks that need no file: each names its flag.
static rlhf_status validate_flags(const reward_flags *f, trainer_common_args *t, rlhf_err *err) {
    if (!f->model) return rlhf_fail(err, RLHF_EINPUT, "--model_name_or_path is required");
    if (!f->dataset) return rlhf_fail(err, RLHF_EINPUT, "--dataset_name is required");
    RLHF_TRY(cli_trainer_check(&f->t, t, err));
    if (f->max_length < 1) return rlhf_fail(err, RLHF_EINPUT, "--max_length must be >= 1, got %lld", f->max_length);
    if (!(f->center >= 0)) return rlhf_fail(err, RLHF_EINPUT, "--center_rewards_coefficient must be >= 0, got %g", f->center);
    if (f->zero_stage != 0 && f->zero_stage != 1)
        return rlhf_fail(err, RLHF_EINPUT, "--zero_stage: expected 0 or 1, got %lld", f->zero_stage);
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

static rlhf_status run(reward_flags *f, volatile sig_atomic_t **stop, rlhf_err *err) {
    reward_train_args a = {0};
    const trainer_common_args *t = &a.common;
    RLHF_TRY(validate_flags(f, &a.common, err));
    RLHF_TRY(cli_trainer_resume(&f->t, &a.common, err));
    if (t->resume_from) {
        char p[4096];
        if (!file_exists(path_join(p, sizeof p, t->resume_from, "trainer_state.json")))
            return rlhf_fail(err, RLHF_EINPUT, "--resume_from_checkpoint %s: no trainer_state.json there (expected a "
                             "checkpoint-* directory of an earlier run)", t->resume_from);
    } else if (holds_run(t->output_dir) && !t->overwrite_output_dir) {
        return rlhf_fail(err, RLHF_EINPUT, "--output_dir %s already holds a run; give --overwrite_output_dir to "
                         "replace it or --resume_from_checkpoint to continue it", t->output_dir);
    }
    cli_set_threads(f->t.threads);

    // Everything is read and validated before anything is written.
    model *m = NULL;
    tokenizer *tok = NULL;
    const char *model_dir = t->resume_from ? t->resume_from : f->model;
    peft_options po;
    RLHF_TRY(cli_peft_options(&f->peft, &po, err));
    if (t->resume_from) RLHF_TRY(cli_peft_check_resume(&f->peft, t->resume_from, err));
    if (f->peft.use_peft && t->resume_from) {
        // The checkpoint is an adapter: its base (base_model_name_or_path) with the adapter applied,
        // quantized as the flags say.
        peft_options quant = po;
        quant.use_peft = 0;
        RLHF_TRY(reward_model_load_peft(&m, &tok, model_dir, t->seed, &quant, err));
    } else {
        // With --use_peft the adapters are set up while loading (4-bit weights never held in fp32).
        RLHF_TRY(reward_model_load_peft(&m, &tok, model_dir, t->seed, f->peft.use_peft ? &po : NULL, err));
    }
    if (f->peft.use_peft) cli_peft_notice(CMD, m);
    m->gradient_checkpointing = t->gradient_checkpointing;
    pref_set all = {0}, train = {0}, eval = {0};
    pref_opts o;
    pref_encoding enc = PREF_ENCODING_PAIR;
    reward_encoding_parse(f->encoding, m, &enc, err);  // the value was validated with the flags
    pref_opts_for_model(&o, m, tok, (int)f->max_length, enc, model_dir);
    rlhf_status s = load_pairs(&all, f->dataset, &o, err);
    if (!s && t->eval_dataset_name) s = load_pairs(&eval, t->eval_dataset_name, &o, err);
    if (!s) {
        if (t->eval_split > 0) {
            s = pref_set_split(&all, t->eval_split, t->seed, &train, &eval, err);
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
        cli_chat_fallback_notice(CMD, train.n_plain_chat + eval.n_plain_chat, o.is_decoder, model_dir);
    }
    if (!s) s = reward_encoding_record(m, enc, err);  // score/ppo read pairs as this model was trained
    if (!s) s = reward_max_length_record(m, o.max_length, err);
    if (!s) s = model_set_torch_dtype(m, t->torch_dtype, err);  // the dtype the final model is saved in
    dist *d = cli_dist();
    s = dist_agree(d, s, err);  // every rank validated its inputs: all go on, or all stop with one message
    if (!s && dist_is_main(d)) s = make_dirs(t->output_dir, err);
    if (!s && dist_is_main(d) && t->overwrite_output_dir && !t->resume_from) s = clear_old_run(t->output_dir, err);
    s = dist_agree(d, s, err);  // rank 0 prepared the output directory
    if (!s) {
        a.center_rewards_coefficient = f->center;
        a.base_model_name = f->model;
        a.merge_adapter = f->peft.merge_adapter;
        a.dist = d;
        a.zero_stage = (int)f->zero_stage;
        if (a.zero_stage && dist_size(d) == 1)
            fprintf(stderr, "rlhf reward: --zero_stage 1 shards the optimizer state across processes; with one "
                            "process it changes nothing\n");
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
            fprintf(stderr, "; model in %s\n", t->output_dir);
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
    volatile sig_atomic_t *stop = NULL;
    rlhf_status s = run(&f, &stop, &err);
    return cli_report(CMD, s, err.msg);
}
