// `rlhf grpo` and `rlhf rloo`: TRL's GRPOConfig / RLOOConfig flags (train/grpo_trainer.h). This file only
// parses and checks the flags; the trainer validates every input before it writes anything.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/peft_flags.h"
#include "cli/signals.h"
#include "cli/trainer_flags.h"
#include "train/checkpoint.h"
#include "train/grpo_trainer.h"

// Numbers separated by commas or spaces, over every occurrence of a repeated flag.
static rlhf_status parse_numbers(const char *flag, const char *const *vals, int n_vals, double *out, int cap, int *n,
                                 rlhf_err *err) {
    *n = 0;
    for (int i = 0; i < n_vals; i++) {
        const char *p = vals[i];
        while (*p) {
            while (*p == ',' || *p == ' ') p++;
            if (!*p) break;
            char *end = NULL;
            double v = strtod(p, &end);
            if (end == p || !isfinite(v))
                return rlhf_fail(err, RLHF_EINPUT, "--%s: expected numbers separated by commas, got '%s'", flag, vals[i]);
            if (*n >= cap) return rlhf_fail(err, RLHF_EINPUT, "--%s: more than %d numbers", flag, cap);
            out[(*n)++] = v;
            p = end;
            if (*p && *p != ',' && *p != ' ')
                return rlhf_fail(err, RLHF_EINPUT, "--%s: expected numbers separated by commas, got '%s'", flag, vals[i]);
        }
    }
    return RLHF_OK;
}

// The default of a row of the shared table (TRL's GRPOConfig keeps other TrainingArguments defaults).
static void set_default(arg_spec *specs, int n, const char *name, const char *def) {
    for (int i = 0; i < n; i++)
        if (!strcmp(specs[i].name, name)) specs[i].def = def;
}

static int run(grpo_algo algo, int argc, char **argv) {
    const char *cmd = algo == ALGO_GRPO ? "grpo" : "rloo";
    grpo_args a;
    grpo_args_defaults(&a, algo);
    const char *loss_type = NULL, *scale_rewards = NULL, *is_level = NULL;
    const char *weights[ARG_MULTI_MAX], *clip_range = NULL, *models[ARG_MULTI_MAX], *funcs[ARG_MULTI_MAX];
    int n_weights = 0, n_models = 0, n_funcs = 0;
    long long num_gen, num_gen_eval, max_prompt, max_compl, top_k, iters, spg, n_log;
    double epsilon_high = -1;
    int mask_trunc = 0, normalize = 0;
    cli_peft_flags pf;
    memset(&pf, 0, sizeof pf);
    cli_trainer_flags tf;  // the TrainingArguments flags every trainer shares (cli/trainer_flags.h)
    memset(&tf, 0, sizeof tf);
    const int grpo = algo == ALGO_GRPO;
    arg_spec specs[80] = {
        {"model_name_or_path", ARG_STRING, &a.model_name_or_path, NULL, "the policy to train (causal LM, HF layout)", NULL, 0},
        {"dataset_name", ARG_STRING, &a.dataset_name, NULL,
         "prompt rows {\"prompt\": str | [messages]} or {\"prompt_ids\": [...]}; other fields go to the reward functions", NULL, 0},
        {"reward_model_name_or_path", ARG_MULTI, models, NULL,
         "a reward model (sequence classification, any family and tokenizer); repeatable", &n_models, 0},
        {"reward_funcs", ARG_MULTI, funcs, NULL,
         "accuracy_reward | think_format_reward | \"exec:COMMAND ARGS\" (a program: one JSON line in, one number or "
         "null out per completion); repeatable", &n_funcs, 0},
        {"reward_weights", ARG_MULTI, weights, NULL,
         "one weight per reward (models first, then functions), e.g. 1.0,0.5 (default: all 1)", &n_weights, 0},
        {"reward_timeout", ARG_FLOAT, &a.reward_timeout, "60", "seconds a reward program may take to answer one line", NULL, 0},
        {"allow_new_reward_head", ARG_BOOL, &a.allow_new_reward_head, "false",
         "use a --reward_model_name_or_path without a trained score head (its rewards are noise)", NULL, 0},
        {"encoding", ARG_STRING, &a.encoding, NULL, "how an encoder reward model reads (prompt, completion): pair | concat", NULL, 0},
        {"num_generations", ARG_INT, &num_gen, grpo ? "8" : "2", "completions sampled per prompt (the group)", NULL, 0},
        {"max_prompt_length", ARG_INT, &max_prompt, "512", "longer prompts keep their last tokens (0 = no limit)", NULL, 0},
        {"max_completion_length", ARG_INT, &max_compl, "256", "new tokens sampled per completion", NULL, 0},
        {"temperature", ARG_FLOAT, &a.temperature, "1.0", "sampling temperature (log-probs use the same)", NULL, 0},
        {"top_p", ARG_FLOAT, &a.top_p, "1.0", "nucleus sampling (1 = off)", NULL, 0},
        {"top_k", ARG_INT, &top_k, "0", "top-k sampling (0 = off)", NULL, 0},
        {"min_p", ARG_FLOAT, &a.min_p, "0", "min-p sampling (0 = off)", NULL, 0},
        {"repetition_penalty", ARG_FLOAT, &a.repetition_penalty, "1.0", "HF repetition penalty (1 = off)", NULL, 0},
        {"mask_truncated_completions", ARG_BOOL, &mask_trunc, "false",
         "leave completions cut at --max_completion_length out of the loss", NULL, 0},
        {"beta", ARG_FLOAT, &a.beta, grpo ? "0.0" : "0.05",
         grpo ? "KL coefficient (k3 in the loss); 0: no reference model is loaded"
              : "KL coefficient (in the reward); 0: no reference model is loaded", NULL, 0},
        {"epsilon", ARG_FLOAT, &a.epsilon, "0.2", "lower clip range of the ratio (and upper without --epsilon_high)", NULL, 0},
        {"epsilon_high", ARG_FLOAT, &epsilon_high, NULL, "upper clip range (DAPO's clip-higher; default --epsilon)", NULL, 0},
        {"num_iterations", ARG_INT, &iters, "1", "passes over each generation batch (mu)", NULL, 0},
        {"steps_per_generation", ARG_INT, &spg, "0",
         "micro-batches per generation batch (0 = --gradient_accumulation_steps)", NULL, 0},
        {"num_completions_to_log", ARG_INT, &n_log, "4", "completions written to samples.jsonl at each logged step", NULL, 0},
        {"num_generations_eval", ARG_INT, &num_gen_eval, "0", "completions per prompt in evaluation (0: --num_generations)",
         NULL, 0},
        {"adam_beta1", ARG_FLOAT, &a.adam_beta1, "0.9", "AdamW beta1 (TrainingArguments')", NULL, 0},
        {"adam_beta2", ARG_FLOAT, &a.adam_beta2, "0.999", "AdamW beta2", NULL, 0},
        {"adam_epsilon", ARG_FLOAT, &a.adam_epsilon, "1e-8", "AdamW epsilon", NULL, 0},
    };
    int n = 0;
    while (specs[n].name) n++;
    // flags of one algorithm only
    const char *loss_help = "dapo (TRL's default) | grpo | dr_grpo | bnpo: how token losses are averaged";
    if (grpo) {
        specs[n++] = (arg_spec){"loss_type", ARG_STRING, &loss_type, "dapo", loss_help, NULL, 0};
        specs[n++] = (arg_spec){"scale_rewards", ARG_STRING, &scale_rewards, "group",
                                "group | batch | none: what the advantages are divided by (the std)", NULL, 0};
        specs[n++] = (arg_spec){"importance_sampling_level", ARG_STRING, &is_level, "token",
                                "token | sequence (GSPO): the level of the importance ratio", NULL, 0};
    } else {
        specs[n++] = (arg_spec){"normalize_advantages", ARG_BOOL, &normalize, "false",
                                "whiten the leave-one-out advantages over the batch", NULL, 0};
        specs[n++] = (arg_spec){"reward_clip_range", ARG_STRING, &clip_range, NULL, "LOW,HIGH: clamp the rewards", NULL, 0};
    }
    const int cap = (int)(sizeof specs / sizeof specs[0]) - 1;
    n = cli_trainer_flag_specs(specs, n, cap, &tf, "1e-6");  // GRPOConfig / RLOOConfig learning_rate
    // TrainingArguments defaults that TRL keeps for GRPO / RLOO (num_train_epochs 3, save_strategy steps every
    // 500, logging_steps 10: GRPOConfig's own)
    set_default(specs, n, "num_train_epochs", "3");
    set_default(specs, n, "save_strategy", "steps");
    set_default(specs, n, "per_device_train_batch_size", "8");
    n = cli_peft_flag_specs(specs, n, cap, &pf, "train LoRA adapters on the policy; the reference (beta > 0) is the "
                                                "policy with its adapters off");
    if (n > cap) return cli_report(cmd, RLHF_ERUNTIME, "internal error: more flags than the flag table holds");
    char usage[512];
    snprintf(usage, sizeof usage,
             "usage: rlhf %s --model_name_or_path DIR --dataset_name FILE --output_dir DIR\n"
             "                 (--reward_model_name_or_path DIR | --reward_funcs NAME|\"exec:COMMAND\")... [flags]\n"
             "  TRL's %s", cmd, grpo ? "GRPOTrainer (group-relative advantages, no value model)"
                                     : "RLOOTrainer (leave-one-out baseline, KL in the reward)");
    int parsed = cli_parse_flags(cmd, usage, specs, n, argc, argv);
    if (parsed >= 0) return parsed;
    rlhf_err err = {0};
    // --save_steps 0 means no checkpoints (as in ppo) unless a strategy is named
    const arg_spec *ss = args_find(specs, n, "save_strategy");
    if (tf.save_steps == 0 && !(ss && ss->seen)) tf.save_strategy = "no";
    rlhf_status st = cli_trainer_check(&tf, &a.common, &err);
    if (st) return cli_report(cmd, st, err.msg);
    if (!tf.disable_dropout)
        return cli_report(cmd, rlhf_fail(&err, RLHF_EINPUT, "--disable_dropout false: %s samples and scores with "
                                         "dropout off (the log-probs must be those the completions were sampled "
                                         "with); dropout is not used here", cmd), err.msg);
    struct { const char *name; long long v, lo, hi; int *dest; } ints[] = {  // dest NULL: a range check only
        {"num_generations", num_gen, 1, 1 << 20, &a.num_generations},
        {"num_generations_eval", num_gen_eval, 0, 1 << 20, &a.num_generations_eval},
        {"max_prompt_length", max_prompt, 0, 1 << 24, &a.max_prompt_length},
        {"max_completion_length", max_compl, 1, 1 << 24, &a.max_completion_length},
        {"top_k", top_k, 0, 1 << 30, &a.top_k},
        {"num_iterations", iters, 1, 1 << 20, &a.num_iterations},
        {"logging_steps", tf.logging_steps, 1, 1 << 30, NULL},
        {"steps_per_generation", spg, 0, 1 << 20, &a.steps_per_generation},
        {"num_completions_to_log", n_log, 0, 1 << 20, &a.num_completions_to_log},
    };
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++) {
        if (ints[i].v < ints[i].lo || ints[i].v > ints[i].hi) {
            rlhf_fail(&err, RLHF_EINPUT, "--%s: expected an integer in [%lld, %lld], got %lld", ints[i].name, ints[i].lo,
                      ints[i].hi, ints[i].v);
            return cli_report(cmd, RLHF_EINPUT, err.msg);
        }
        if (ints[i].dest) *ints[i].dest = (int)ints[i].v;
    }
    a.mask_truncated_completions = mask_trunc;
    a.normalize_advantages = normalize;
    st = cli_trainer_resume(&tf, &a.common, &err);
    if (st) return cli_report(cmd, st, err.msg);
    const arg_spec *eh = args_find(specs, n, "epsilon_high");
    a.epsilon_high = eh && eh->seen ? epsilon_high : -1;
    if (eh && eh->seen && !(isfinite(epsilon_high) && epsilon_high >= 0)) {
        rlhf_fail(&err, RLHF_EINPUT, "--epsilon_high: expected a number >= 0, got %g", epsilon_high);
        return cli_report(cmd, RLHF_EINPUT, err.msg);
    }
    if (n_models > GRPO_MAX_REWARDS || n_funcs > GRPO_MAX_REWARDS) {
        rlhf_fail(&err, RLHF_EINPUT, "at most %d reward models and %d reward functions", GRPO_MAX_REWARDS, GRPO_MAX_REWARDS);
        return cli_report(cmd, RLHF_EINPUT, err.msg);
    }
    for (int i = 0; i < n_models; i++) a.reward_models[i] = models[i];
    for (int i = 0; i < n_funcs; i++) a.reward_funcs[i] = funcs[i];
    a.n_reward_models = n_models;
    a.n_reward_funcs = n_funcs;
    st = parse_numbers("reward_weights", weights, n_weights, a.reward_weights, GRPO_MAX_REWARDS,
                                   &a.n_reward_weights, &err);
    if (!st && clip_range) {
        const char *cr[1] = {clip_range};
        int nc = 0;
        st = parse_numbers("reward_clip_range", cr, 1, a.reward_clip, 2, &nc, &err);
        if (!st && nc != 2) st = rlhf_fail(&err, RLHF_EINPUT, "--reward_clip_range: expected LOW,HIGH, got '%s'", clip_range);
        a.has_reward_clip = 1;
    }
    if (!st && grpo) st = grpo_loss_type_parse(loss_type, &a.loss_type, &err);
    if (!st && grpo) st = grpo_scale_rewards_parse(scale_rewards, &a.scale_rewards, &err);
    if (!st && grpo) st = grpo_is_level_parse(is_level, &a.importance_sampling_level, &err);
    for (int i = 0; i < n_funcs && !st; i++)
        if (strncmp(funcs[i], "exec:", 5) && strcmp(funcs[i], "accuracy_reward") && strcmp(funcs[i], "think_format_reward"))
            st = rlhf_fail(&err, RLHF_EINPUT, "--reward_funcs: unknown reward function '%s' (expected accuracy_reward, "
                           "think_format_reward or \"exec:COMMAND\")", funcs[i]);
    if (!st && a.encoding && strcmp(a.encoding, "pair") && strcmp(a.encoding, "concat"))
        st = rlhf_fail(&err, RLHF_EINPUT, "--encoding: expected pair or concat, got '%s'", a.encoding);
    if (!st) st = cli_peft_check_train(&pf, &a.peft, &err);
    if (!st && a.common.resume_from) st = cli_peft_check_resume(&pf, a.common.resume_from, &err);
    if (st) return cli_report(cmd, st, err.msg);
    a.merge_adapter = pf.merge_adapter;
    cli_set_threads(tf.threads);
    a.dist = cli_dist();
    a.stop = cli_stop_flag_install();
    grpo_result res;
    st = grpo_train(&a, &res, &err);
    cli_stop_flag_remove();
    if (st == RLHF_OK) {
        fprintf(stderr, "rlhf %s: %lld steps; reward %.4f -> %.4f", cmd, res.steps_done, res.first_reward,
                res.last_reward);
        if (isfinite(res.first_eval_reward))
            fprintf(stderr, "; eval_reward %.4f -> %.4f", res.first_eval_reward, res.last_eval_reward);
        fprintf(stderr, "\n");
    }
    return cli_report(cmd, st, err.msg);
}

int cmd_grpo(int argc, char **argv) { return run(ALGO_GRPO, argc, argv); }
int cmd_rloo(int argc, char **argv) { return run(ALGO_RLOO, argc, argv); }
