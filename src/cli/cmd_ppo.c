// `rlhf ppo`: PPO fine-tuning of a causal-LM policy against a reward model (train/ppo_trainer.h), with
// the flags of TRL's examples/scripts/ppo/ppo_tldr.py (PPOConfig). This file only parses and checks
// the flags; the trainer validates every input before it writes anything.
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/peft_flags.h"
#include "cli/signals.h"
#include "train/checkpoint.h"
#include "train/ppo_trainer.h"

static int run(int argc, char **argv) {
    ppo_args a;
    ppo_args_defaults(&a);
    const char *kl_estimator = NULL, *value_model = NULL, *encoding = NULL;
    long long pd_batch, accum, mini, epochs, fwd, resp_len, seed, save_steps, samples, threads, save_total_limit;
    double missing_eos_penalty = 0;
    int whiten = 0, adaptive = 0, overwrite = 0, quiet = 0, normalize = 0;
    long long reward_retries = 0;
    cli_peft_flags pf;
    memset(&pf, 0, sizeof pf);
    arg_spec specs[64] = {
        {"model_name_or_path", ARG_STRING, &a.model_name_or_path, NULL, "the policy to train (causal LM, HF layout)", NULL, 0},
        {"sft_model_path", ARG_STRING, &a.sft_model_path, NULL, "the frozen reference policy (KL penalty)", NULL, 0},
        {"reward_model_path", ARG_STRING, &a.reward_model_path, NULL,
         "reward model (sequence classification, any family: decoder or encoder such as BERT), or the URL of a reward "
         "server, http://HOST:PORT/get_reward (`rlhf serve`, OpenRLHF's serve_rm)", NULL, 0},
        {"normalize_reward", ARG_BOOL, &normalize, "false", "rewards (r - mean) / std with the mean and std `rlhf reward` "
         "saved in the reward model's config.json (OpenRLHF)", NULL, 0},
        {"reward_timeout", ARG_FLOAT, &a.reward_timeout, "180", "remote reward model: seconds per request", NULL, 0},
        {"reward_retries", ARG_INT, &reward_retries, "4", "remote reward model: tries after a failed request "
         "(backoff 1 s, doubling up to 30 s); then the run stops, its last checkpoint saved", NULL, 0},
        {"dataset_name", ARG_STRING, &a.dataset_name, NULL, "prompt rows {\"prompt\": str} or {\"prompt_ids\": [...]}", NULL, 0},
        {"output_dir", ARG_STRING, &a.output_dir, NULL, "where the policy, log, samples, report and checkpoints go", NULL, 0},
        {"learning_rate", ARG_FLOAT, &a.learning_rate, "3e-6", "AdamW learning rate (linear decay over the updates)", NULL, 0},
        {"weight_decay", ARG_FLOAT, &a.weight_decay, "0", "AdamW weight decay (not on biases and norms)", NULL, 0},
        {"max_grad_norm", ARG_FLOAT, &a.max_grad_norm, "1.0", "global gradient-norm clipping (<= 0: off)", NULL, 0},
        {"per_device_train_batch_size", ARG_INT, &pd_batch, "8", "rows per micro-batch", NULL, 0},
        {"gradient_accumulation_steps", ARG_INT, &accum, "1", "micro-batches per optimizer step (mini-batch)", NULL, 0},
        {"num_mini_batches", ARG_INT, &mini, "1", "mini-batches per PPO epoch; batch = per_device x accumulation x this", NULL, 0},
        {"num_ppo_epochs", ARG_INT, &epochs, "4", "passes over each batch of rollouts", NULL, 0},
        {"local_rollout_forward_batch_size", ARG_INT, &fwd, "64", "rows per generation / scoring forward", NULL, 0},
        {"total_episodes", ARG_INT, &a.total_episodes, "0", "episodes (prompts) in all; 0 = num_train_epochs x prompts", NULL, 0},
        {"num_train_epochs", ARG_FLOAT, &a.num_train_epochs, "3", "passes over the prompts when --total_episodes is 0", NULL, 0},
        {"response_length", ARG_INT, &resp_len, "53", "new tokens sampled per prompt", NULL, 0},
        {"max_prompt_length", ARG_INT, &a.max_prompt_length, "0", "longer prompts keep their last N tokens, as TRL "
         "truncates from the left (0: only to fit the policy's positions with --response_length; counted on stderr)", NULL, 0},
        {"temperature", ARG_FLOAT, &a.temperature, "0.7", "sampling temperature (log-probs use the same)", NULL, 0},
        {"missing_eos_penalty", ARG_FLOAT, &missing_eos_penalty, NULL,
         "subtracted from the score of a response without the stop token (default: none)", NULL, 0},
        {"stop_token", ARG_STRING, &a.stop_token, "eos", "eos (the policy's EOS) | none | a token id | a token: responses end after it", NULL, 0},
        {"kl_coef", ARG_FLOAT, &a.kl_coef, "0.05", "KL penalty coefficient (initial, with --adap_kl_ctrl)", NULL, 0},
        {"kl_estimator", ARG_STRING, &kl_estimator, "k1", "k1 (logp - ref_logp) | k3 ((r - 1) - log r)", NULL, 0},
        {"adap_kl_ctrl", ARG_BOOL, &adaptive, "false", "adaptive KL controller (Ziegler et al. 2019)", NULL, 0},
        {"target", ARG_FLOAT, &a.kl_target, "6.0", "adaptive KL: target KL", NULL, 0},
        {"horizon", ARG_FLOAT, &a.kl_horizon, "10000", "adaptive KL: horizon in episodes", NULL, 0},
        {"cliprange", ARG_FLOAT, &a.cliprange, "0.2", "policy ratio clip range", NULL, 0},
        {"cliprange_value", ARG_FLOAT, &a.cliprange_value, "0.2", "value clip range", NULL, 0},
        {"vf_coef", ARG_FLOAT, &a.vf_coef, "0.1", "value loss coefficient", NULL, 0},
        {"gamma", ARG_FLOAT, &a.gamma, "1.0", "discount factor", NULL, 0},
        {"lam", ARG_FLOAT, &a.lam, "0.95", "GAE lambda", NULL, 0},
        {"whiten_rewards", ARG_BOOL, &whiten, "false", "whiten the rewards over real tokens", NULL, 0},
        {"value_model", ARG_STRING, &value_model, "reward",
         "reward: a copy of the reward model (decoder reward models with the policy's tokenizer; otherwise falls back "
         "to head) | head: a value head on the policy", NULL, 0},
        {"encoding", ARG_STRING, &encoding, "pair", "how an encoder reward model reads (prompt, response): pair | concat", NULL, 0},
        {"eval_dataset_name", ARG_STRING, &a.eval_dataset_name, NULL,
         "held-out prompts: their mean score is printed at the start, every --logging_steps and at the end", NULL, 0},
        {"eval_split", ARG_FLOAT, &a.eval_split, "0", "fraction of --dataset_name's prompts held out instead, in [0, 1)",
         NULL, 0},
        {"logging_steps", ARG_INT, &a.logging_steps, "1", "updates between training_log.csv rows / stdout log lines",
         NULL, 0},
        {"seed", ARG_INT, &seed, "42", "seed of sampling, data order and mini-batches", NULL, 0},
        {"save_steps", ARG_INT, &save_steps, "500", "checkpoint every N updates (0 = none)", NULL, 0},
        {"num_sample_generations", ARG_INT, &samples, "10", "sample points written to samples.jsonl over the run", NULL, 0},
        {"save_total_limit", ARG_INT, &save_total_limit, "0", "keep only the newest N checkpoint-<UPDATE> directories (0: all)", NULL, 0},
        {"resume_from_checkpoint", ARG_OPT_STRING, &a.resume_from_checkpoint, NULL, "continue a run: a checkpoint "
         "directory, a checkpoint-<UPDATE> name in --output_dir, or alone / true for the newest one there", NULL, 0},
        {"overwrite_output_dir", ARG_BOOL, &overwrite, "false", "replace a run already in --output_dir", NULL, 0},
        {"allow_new_reward_head", ARG_BOOL, &a.allow_new_reward_head, "false",
         "accept a --reward_model_path without a trained score head (a base or causal LM: random rewards)", NULL, 0},
        {"gradient_checkpointing", ARG_BOOL, &a.gradient_checkpointing, "false",
         "recompute each layer's activations in backward instead of keeping them: less memory, ~1/3 more compute", NULL, 0},
        {"quiet", ARG_BOOL, &quiet, "false", "no progress bar", NULL, 0},
        {"torch_dtype", ARG_STRING, &a.torch_dtype, "auto", "dtype of the saved policy: auto (its config.json's "
         "torch_dtype) | float32 | bfloat16 | float16 (training is fp32; checkpoints keep fp32 weights)", NULL, 0},
        {"threads", ARG_INT, &threads, "0", "threads (0 = all cores)", NULL, 0},
    };
    int n = 0;
    while (specs[n].name) n++;
    const int cap = (int)(sizeof specs / sizeof specs[0]) - 1;  // the table keeps a terminating empty row
    n = cli_peft_flag_specs(specs, n, cap, &pf, "train LoRA adapters on the policy; the reference is the policy "
                                                "with its adapters off (--sft_model_path is then not loaded)");
    rlhf_err err = {0};
    if (n > cap) return cli_report("ppo", RLHF_ERUNTIME, "internal error: more flags than the flag table holds");
    int parsed = cli_parse_flags("ppo", "usage: rlhf ppo --model_name_or_path DIR --sft_model_path DIR --reward_model_path DIR\n"
                        "                --dataset_name FILE --output_dir DIR [flags]\n"
                        "  TRL's PPOTrainer; the score is added at the response's last real token (TRL issue 3750)", specs, n, argc, argv);
    if (parsed >= 0) return parsed;
    // int flags through long long: out-of-range values are errors, never silently wrapped
    struct { const char *name; long long v, lo, hi; int *dest; } ints[] = {
        {"per_device_train_batch_size", pd_batch, 1, 1 << 20, &a.per_device_train_batch_size},
        {"gradient_accumulation_steps", accum, 1, 1 << 20, &a.gradient_accumulation_steps},
        {"num_mini_batches", mini, 1, 1 << 20, &a.num_mini_batches},
        {"num_ppo_epochs", epochs, 1, 1 << 20, &a.num_ppo_epochs},
        {"local_rollout_forward_batch_size", fwd, 1, 1 << 20, &a.local_rollout_forward_batch_size},
        {"response_length", resp_len, 1, 1 << 20, &a.response_length},
        {"num_sample_generations", samples, 0, 1 << 20, &a.num_sample_generations},
        {"reward_retries", reward_retries, 0, 1000, &a.reward_retries},
    };
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++) {
        if (ints[i].v < ints[i].lo || ints[i].v > ints[i].hi) {
            rlhf_fail(&err, RLHF_EINPUT, "--%s: expected an integer in [%lld, %lld], got %lld", ints[i].name, ints[i].lo,
                      ints[i].hi, ints[i].v);
            return cli_report("ppo", RLHF_EINPUT, err.msg);
        }
        *ints[i].dest = (int)ints[i].v;
    }
    if (seed < 0) {
        rlhf_fail(&err, RLHF_EINPUT, "--seed: expected >= 0, got %lld", seed);
        return cli_report("ppo", RLHF_EINPUT, err.msg);
    }
    a.seed = (uint64_t)seed;
    if (a.logging_steps < 1) rlhf_fail(&err, RLHF_EINPUT, "--logging_steps must be >= 1, got %lld", a.logging_steps);
    else if (!(a.eval_split >= 0 && a.eval_split < 1))
        rlhf_fail(&err, RLHF_EINPUT, "--eval_split must be in [0, 1), got %g", a.eval_split);
    else if (a.eval_split > 0 && a.eval_dataset_name)
        rlhf_fail(&err, RLHF_EINPUT, "--eval_split and --eval_dataset_name exclude each other");
    if (err.msg[0]) return cli_report("ppo", RLHF_EINPUT, err.msg);
    a.save_steps = save_steps;
    if (save_total_limit < 0) {
        rlhf_fail(&err, RLHF_EINPUT, "--save_total_limit: expected >= 0, got %lld", save_total_limit);
        return cli_report("ppo", RLHF_EINPUT, err.msg);
    }
    a.save_total_limit = save_total_limit;
    if (strcmp(a.torch_dtype, "auto") && strcmp(a.torch_dtype, "float32") && strcmp(a.torch_dtype, "bfloat16") &&
        strcmp(a.torch_dtype, "float16")) {
        rlhf_fail(&err, RLHF_EINPUT, "--torch_dtype: expected auto, float32, bfloat16 or float16, got '%s'", a.torch_dtype);
        return cli_report("ppo", RLHF_EINPUT, err.msg);
    }
    char resume_dir[4096];
    rlhf_status rs = checkpoint_resolve_resume(a.resume_from_checkpoint, a.output_dir, resume_dir, sizeof resume_dir, &err);
    if (rs) return cli_report("ppo", rs, err.msg);
    a.resume_from_checkpoint = resume_dir[0] ? resume_dir : NULL;
    a.whiten_rewards = whiten;
    a.normalize_reward = normalize;
    if (!(a.reward_timeout > 0 && a.reward_timeout <= 86400)) {
        rlhf_fail(&err, RLHF_EINPUT, "--reward_timeout: expected seconds in (0, 86400], got %g", a.reward_timeout);
        return cli_report("ppo", RLHF_EINPUT, err.msg);
    }
    a.adap_kl_ctrl = adaptive;
    a.overwrite_output_dir = overwrite;
    a.quiet = quiet;
    const arg_spec *pen = args_find(specs, n, "missing_eos_penalty");
    a.has_missing_eos_penalty = pen && pen->seen;
    a.missing_eos_penalty = missing_eos_penalty;
    rlhf_status st = ppo_kl_estimator_parse(kl_estimator, &a.kl_estimator, &err);
    if (st) return cli_report("ppo", st, err.msg);
    if (!strcmp(value_model, "reward")) a.value_model = PPO_VALUE_REWARD;
    else if (!strcmp(value_model, "head")) a.value_model = PPO_VALUE_HEAD;
    else {
        rlhf_fail(&err, RLHF_EINPUT, "--value_model: expected reward or head, got '%s'", value_model);
        return cli_report("ppo", RLHF_EINPUT, err.msg);
    }
    if (!strcmp(encoding, "pair")) a.encoding = PREF_ENCODING_PAIR;
    else if (!strcmp(encoding, "concat")) a.encoding = PREF_ENCODING_CONCAT;
    else {
        rlhf_fail(&err, RLHF_EINPUT, "--encoding: expected pair or concat, got '%s'", encoding);
        return cli_report("ppo", RLHF_EINPUT, err.msg);
    }
    st = cli_peft_check_train(&pf, &a.peft, &err);
    if (!st && a.resume_from_checkpoint) st = cli_peft_check_resume(&pf, a.resume_from_checkpoint, &err);
    if (st) return cli_report("ppo", st, err.msg);
    a.merge_adapter = pf.merge_adapter;
    cli_set_threads(threads);
    a.dist = cli_dist();
    a.stop = cli_stop_flag_install();
    ppo_result res;
    st = ppo_train(&a, &res, &err);
    cli_stop_flag_remove();
    if (st == RLHF_OK) {
        fprintf(stderr, "rlhf ppo: %lld updates, %lld episodes; objective/scores %.4f -> %.4f, objective/kl %.4f",
                res.updates_done, res.episodes_done, res.first_score, res.last_score, res.last_kl);
        if (isfinite(res.first_eval_score))
            fprintf(stderr, "; eval/scores %.4f -> %.4f", res.first_eval_score, res.last_eval_score);
        fprintf(stderr, "\n");
    }
    return cli_report("ppo", st, err.msg);
}

int cmd_ppo(int argc, char **argv) {
    return run(argc, argv);
}
