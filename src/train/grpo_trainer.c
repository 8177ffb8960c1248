// The GRPO / RLOO loop (TRL GRPOTrainer / RLOOTrainer): setup and validation of every input before anything
// is written; then micro-steps in TRL's order: every steps_per_generation x num_iterations micro-steps a new
// generation batch (sample, score, advantages), each micro-step one slice of it (forward, clipped loss,
// backward), an optimizer step every gradient_accumulation_steps micro-steps; logging, samples and
// checkpoints (grpo_trainer_state.c) at optimizer steps.
#include "train/grpo_trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/progress.h"
#include "base/rng.h"
#include "io/csv_log.h"
#include "io/files.h"
#include "train/checkpoint.h"
#include "train/grpo_trainer_impl.h"
#include "train/ppo_math.h"
#include "train/schedule.h"
#include "train/reward_source.h"
#include "train/trainer_common.h"

// Rows per generate() call and per no-grad forward (activation and KV-cache memory stay bounded).
#define GRPO_FWD_CHUNK 64
// Optimizer steps skipped in a row (non-finite loss or gradient norm) after which the run stops, as the
// other trainers do.
#define GRPO_MAX_CONSECUTIVE_SKIPS 20

void grpo_args_defaults(grpo_args *a, grpo_algo algo) {
    memset(a, 0, sizeof *a);
    peft_options_default(&a->peft);
    a->algo = algo;
    a->reward_timeout = 60;
    a->num_generations = algo == ALGO_GRPO ? 8 : 2;
    a->max_prompt_length = 512;
    a->max_completion_length = 256;
    a->temperature = 1.0;
    a->top_p = 1.0;
    a->top_k = 0;
    a->min_p = 0;
    a->repetition_penalty = 1.0;
    a->beta = algo == ALGO_GRPO ? 0.0 : 0.05;
    a->epsilon = 0.2;
    a->epsilon_high = -1;
    a->loss_type = GRPO_LOSS_DAPO;
    a->scale_rewards = GRPO_SCALE_GROUP;
    a->importance_sampling_level = GRPO_IS_TOKEN;
    a->num_iterations = 1;
    a->common.learning_rate = 1e-6;
    a->common.max_grad_norm = 1.0;
    a->common.train_batch_size = 8;
    a->common.grad_accum = 1;
    a->common.max_steps = -1;
    a->common.num_train_epochs = 3.0;
    a->common.seed = 42;
    a->common.logging_steps = 10;
    a->common.schedule = SCHED_LINEAR;
    a->adam_beta1 = ADAMW_DEFAULT_BETA1;
    a->adam_beta2 = ADAMW_DEFAULT_BETA2;
    a->adam_epsilon = ADAMW_DEFAULT_EPS;
    a->common.shuffle = 1;
    a->common.save_strategy = STRATEGY_STEPS;
    a->common.save_steps = 500;
    a->common.eval_strategy = STRATEGY_NO;
    a->common.eval_batch_size = 8;
    a->num_completions_to_log = 4;
}

#define CHECK_FLAG(cond, ...) \
    do {                      \
        if (!(cond)) return rlhf_fail(err, RLHF_EINPUT, __VA_ARGS__); \
    } while (0)

rlhf_status grpo_args_check(const grpo_args *a, rlhf_err *err) {
    CHECK_FLAG(a->model_name_or_path, "--model_name_or_path is required");
    CHECK_FLAG(a->dataset_name, "--dataset_name is required");
    CHECK_FLAG(a->common.output_dir && *a->common.output_dir, "--output_dir is required");
    CHECK_FLAG(a->n_reward_models + a->n_reward_funcs > 0,
               "no reward: pass --reward_model_name_or_path DIR and/or --reward_funcs accuracy_reward|"
               "think_format_reward|\"exec:COMMAND\"");
    CHECK_FLAG(a->n_reward_models + a->n_reward_funcs <= GRPO_MAX_REWARDS, "at most %d rewards", GRPO_MAX_REWARDS);
    CHECK_FLAG(a->n_reward_weights == 0 || a->n_reward_weights == a->n_reward_models + a->n_reward_funcs,
               "--reward_weights: %d weights for %d rewards (reward models first, then --reward_funcs, in order)",
               a->n_reward_weights, a->n_reward_models + a->n_reward_funcs);
    for (int i = 0; i < a->n_reward_weights; i++)
        CHECK_FLAG(isfinite(a->reward_weights[i]), "--reward_weights: weight %d is not a finite number", i + 1);
    CHECK_FLAG(isfinite(a->reward_timeout) && a->reward_timeout > 0, "--reward_timeout: expected seconds > 0, got %g",
               a->reward_timeout);
    CHECK_FLAG(a->num_generations >= 2, "--num_generations: expected >= 2 (the group is the baseline), got %d",
               a->num_generations);
    CHECK_FLAG(a->max_prompt_length >= 0, "--max_prompt_length: expected >= 0, got %d", a->max_prompt_length);
    CHECK_FLAG(a->max_completion_length >= 1, "--max_completion_length: expected >= 1, got %d", a->max_completion_length);
    CHECK_FLAG(isfinite(a->temperature) && a->temperature > 0, "--temperature: expected > 0, got %g", a->temperature);
    CHECK_FLAG(isfinite(a->top_p) && a->top_p > 0 && a->top_p <= 1, "--top_p: expected in (0, 1], got %g", a->top_p);
    CHECK_FLAG(a->top_k >= 0, "--top_k: expected >= 0, got %d", a->top_k);
    CHECK_FLAG(isfinite(a->min_p) && a->min_p >= 0 && a->min_p <= 1, "--min_p: expected in [0, 1], got %g", a->min_p);
    CHECK_FLAG(isfinite(a->repetition_penalty) && a->repetition_penalty > 0,
               "--repetition_penalty: expected > 0, got %g", a->repetition_penalty);
    CHECK_FLAG(isfinite(a->beta) && a->beta >= 0, "--beta: expected >= 0, got %g", a->beta);
    CHECK_FLAG(isfinite(a->epsilon) && a->epsilon > 0 && a->epsilon < 1, "--epsilon: expected in (0, 1), got %g",
               a->epsilon);
    CHECK_FLAG(a->epsilon_high < 0 || isfinite(a->epsilon_high), "--epsilon_high: expected a number >= 0");
    CHECK_FLAG(a->num_iterations >= 1, "--num_iterations: expected >= 1, got %d", a->num_iterations);
    CHECK_FLAG(!a->has_reward_clip || (isfinite(a->reward_clip[0]) && isfinite(a->reward_clip[1]) &&
                                       a->reward_clip[0] <= a->reward_clip[1]),
               "--reward_clip_range: expected LOW,HIGH with LOW <= HIGH");
    CHECK_FLAG(isfinite(a->common.learning_rate) && a->common.learning_rate > 0, "--learning_rate: expected > 0, got %g",
               a->common.learning_rate);
    CHECK_FLAG(isfinite(a->common.weight_decay) && a->common.weight_decay >= 0, "--weight_decay: expected >= 0, got %g",
               a->common.weight_decay);
    CHECK_FLAG(!isnan(a->common.max_grad_norm), "--max_grad_norm: expected a number");
    CHECK_FLAG(isfinite(a->adam_beta1) && a->adam_beta1 >= 0 && a->adam_beta1 < 1, "--adam_beta1: expected in [0, 1), got %g",
               a->adam_beta1);
    CHECK_FLAG(isfinite(a->adam_beta2) && a->adam_beta2 >= 0 && a->adam_beta2 < 1, "--adam_beta2: expected in [0, 1), got %g",
               a->adam_beta2);
    CHECK_FLAG(isfinite(a->adam_epsilon) && a->adam_epsilon > 0, "--adam_epsilon: expected > 0, got %g", a->adam_epsilon);
    CHECK_FLAG(isfinite(a->common.warmup_ratio) && a->common.warmup_ratio >= 0 && a->common.warmup_ratio <= 1,
               "--warmup_ratio: expected in [0, 1], got %g", a->common.warmup_ratio);
    CHECK_FLAG(a->common.warmup_steps >= 0, "--warmup_steps: expected >= 0, got %lld", a->common.warmup_steps);
    CHECK_FLAG(a->common.train_batch_size >= 1, "--per_device_train_batch_size: expected >= 1, got %d",
               a->common.train_batch_size);
    CHECK_FLAG(a->common.grad_accum >= 1, "--gradient_accumulation_steps: expected >= 1, got %d",
               a->common.grad_accum);
    CHECK_FLAG(a->steps_per_generation >= 0, "--steps_per_generation: expected >= 1, got %d", a->steps_per_generation);
    CHECK_FLAG(isfinite(a->common.num_train_epochs) && a->common.num_train_epochs > 0,
               "--num_train_epochs: expected > 0, got %g", a->common.num_train_epochs);
    CHECK_FLAG(a->common.logging_steps >= 1, "--logging_steps: expected >= 1, got %lld", a->common.logging_steps);
    CHECK_FLAG(a->common.save_strategy != STRATEGY_STEPS || a->common.save_steps >= 1,
               "--save_steps: expected >= 1 with --save_strategy steps, got %lld", a->common.save_steps);
    CHECK_FLAG(a->common.save_total_limit >= 0, "--save_total_limit: expected >= 0, got %lld", a->common.save_total_limit);
    CHECK_FLAG(isfinite(a->common.eval_split) && a->common.eval_split >= 0 && a->common.eval_split < 1,
               "--eval_split: expected in [0, 1), got %g", a->common.eval_split);
    CHECK_FLAG(!(a->common.eval_split > 0 && a->common.eval_dataset_name),
               "--eval_split and --eval_dataset_name exclude each other");
    const int has_eval = a->common.eval_dataset_name || a->common.eval_split > 0;
    CHECK_FLAG(a->common.eval_strategy == STRATEGY_NO || has_eval,
               "--eval_strategy %s needs an evaluation set (--eval_dataset_name or --eval_split > 0)",
               a->common.eval_strategy == STRATEGY_STEPS ? "steps" : "epoch");
    CHECK_FLAG(a->common.eval_strategy != STRATEGY_STEPS || a->common.eval_steps >= 1, "--eval_steps: expected >= 1, got %lld",
               a->common.eval_steps);
    CHECK_FLAG(a->common.eval_batch_size >= 1, "--per_device_eval_batch_size: expected >= 1, got %d",
               a->common.eval_batch_size);
    CHECK_FLAG(a->num_generations_eval >= 0, "--num_generations_eval: expected >= 0, got %d", a->num_generations_eval);
    CHECK_FLAG(a->algo == ALGO_GRPO || a->num_generations_eval != 1,
               "--num_generations_eval 1: the leave-one-out baseline needs at least 2 completions per prompt");
    const int ge = a->num_generations_eval ? a->num_generations_eval : a->num_generations;
    long long eval_batch = (long long)a->common.eval_batch_size * dist_size(a->dist);
    CHECK_FLAG(a->common.eval_strategy == STRATEGY_NO || eval_batch % ge == 0,
               "the evaluation batch (--per_device_eval_batch_size %d x %d processes = %lld completions) must be a "
               "multiple of %s %d", a->common.eval_batch_size, dist_size(a->dist), eval_batch,
               a->num_generations_eval ? "--num_generations_eval" : "--num_generations", ge);
    CHECK_FLAG(a->num_completions_to_log >= 0, "--num_completions_to_log: expected >= 0");
    int spg = a->steps_per_generation ? a->steps_per_generation : a->common.grad_accum;
    long long gen_batch = (long long)a->common.train_batch_size * spg * dist_size(a->dist);
    CHECK_FLAG(gen_batch % a->num_generations == 0,
               "the generation batch (--per_device_train_batch_size %d x --steps_per_generation %d x %d processes = "
               "%lld completions) must be a multiple of --num_generations %d",
               a->common.train_batch_size, spg, dist_size(a->dist), gen_batch, a->num_generations);
    return rollout_check_peft(&a->peft, a->merge_adapter, err);
}

int grpo_column(const grpo_run *r, const char *name) {
    for (int i = 0; i < r->n_columns; i++)
        if (!strcmp(r->columns[i], name)) return i;
    return -1;
}

// Appends the column PREFIX + fmt (fmt holds one %s, filled with arg).
static void add_column(grpo_run *r, const char *prefix, const char *fmt, const char *arg) {
    char *name = r->column_names[r->n_columns];
    size_t len = strlen(prefix);  // a short literal ("" or "eval_")
    memcpy(name, prefix, len);
    snprintf(name + len, sizeof r->column_names[0] - len, fmt, arg);
    r->columns[r->n_columns] = r->column_names[r->n_columns];
    r->n_columns++;
}

static void metric_add(grpo_run *r, const char *name, double v) {
    char eval_name[160];
    if (r->evaluating) snprintf(eval_name, sizeof eval_name, "eval_%s", name), name = eval_name;
    int c = grpo_column(r, name);
    if (c < 0 || isnan(v)) return;  // TRL drops NaN entries before averaging
    r->acc_sum[c] += v;
    r->acc_n[c]++;
}

static const char *const fixed_columns[GC_FIXED] = {
    "step", "epoch", "loss", "grad_norm", "learning_rate", "num_tokens", "completions/mean_length",
    "completions/min_length", "completions/max_length", "completions/clipped_ratio",
    "completions/mean_terminated_length"};

// The columns of a batch of sampled completions, which training and evaluation both log (evaluation with
// prefix "eval_"): completion lengths, each reward source's mean and std, the reward, and the KL.
static void add_sampling_columns(grpo_run *r, const char *prefix) {
    for (int i = GC_MEAN_LEN; i <= GC_MEAN_TERM; i++) add_column(r, prefix, "%s", fixed_columns[i]);
    for (int k = 0; k < r->K; k++) {
        add_column(r, prefix, "rewards/%s/mean", r->rewards[k]->name);
        add_column(r, prefix, "rewards/%s/std", r->rewards[k]->name);
    }
    add_column(r, prefix, "%s", "reward");
    add_column(r, prefix, "%s", "reward_std");
    add_column(r, prefix, "%s", "frac_reward_zero_std");
    if (r->use_ref) add_column(r, prefix, "%s", "kl");
}

static void build_columns(grpo_run *r) {
    for (int i = 0; i < GC_MEAN_LEN; i++) add_column(r, "", "%s", fixed_columns[i]);
    add_sampling_columns(r, "");
    add_column(r, "", "%s", "entropy");
    add_column(r, "", "%s", "clip_ratio/low_mean");
    add_column(r, "", "%s", "clip_ratio/high_mean");
    add_column(r, "", "%s", "clip_ratio/region_mean");
    if (r->n_eval && r->a->common.eval_strategy != STRATEGY_NO) {
        // TRL logs the evaluation's metrics with an eval_ prefix (GRPOTrainer.log in eval mode)
        r->first_eval_column = r->n_columns;
        add_column(r, "eval_", "%s", "loss");
        add_sampling_columns(r, "eval_");
    }
}

static void batch_free(grpo_batch *b) {
    void *ps[] = {b->row_prompt, b->qr_ids, b->qr_mask, b->qr_pos, b->responses, b->n_generated, b->lengths,
                  b->has_stop, b->mask, b->old_lp, b->ref_lp, b->adv, b->per_func, b->rewards_all, b->perm};
    for (size_t i = 0; i < sizeof ps / sizeof *ps; i++) free(ps[i]);
    memset(b, 0, sizeof *b);
}

// Buffers of a batch of N rows per process (prompts up to r->max_prompt tokens).
static rlhf_status batch_alloc(grpo_batch *b, const grpo_run *r, int rows, rlhf_err *err) {
    memset(b, 0, sizeof *b);
    b->N = rows;
    size_t N = (size_t)rows, R = (size_t)r->R, T = (size_t)r->max_prompt + R, Ng = N * (size_t)r->world;
    b->row_prompt = calloc(N, sizeof(int));
    b->qr_ids = calloc(N * T, 4);
    b->qr_mask = calloc(N * T, 4);
    b->qr_pos = calloc(N * T, 4);
    b->responses = calloc(N * R, 4);
    b->n_generated = calloc(N, sizeof(int));
    b->lengths = calloc(N, sizeof(int));
    b->has_stop = calloc(N, sizeof(int));
    b->mask = calloc(N * R, sizeof(float));
    b->old_lp = calloc(N * R, sizeof(float));
    b->ref_lp = calloc(N * R, sizeof(float));
    b->adv = calloc(N, sizeof(float));
    b->per_func = calloc(Ng * (size_t)r->K, sizeof(float));
    b->rewards_all = calloc(Ng, sizeof(float));
    b->perm = calloc(N, sizeof(int));
    if (!b->row_prompt || !b->qr_ids || !b->qr_mask || !b->qr_pos || !b->responses || !b->n_generated ||
        !b->lengths || !b->has_stop || !b->mask || !b->old_lp || !b->ref_lp || !b->adv || !b->per_func ||
        !b->rewards_all || !b->perm)
        return rlhf_fail(err, RLHF_ERUNTIME, "out of memory allocating %s batch buffers", r->cmd);
    return RLHF_OK;
}

static void run_free(grpo_run *r) {
    model_free(r->policy);
    model_free(r->ref);
    tokenizer_free(r->tok);
    for (int k = 0; k < r->K; k++) reward_fn_free(r->rewards[k]);
    dataset_free(&r->data);
    dataset_free(&r->eval_data);
    rollout_prompts_free(r->prompts, r->n_prompts);
    rollout_prompts_free(r->eval_prompts, r->n_eval);
    batch_free(&r->batch);
    batch_free(&r->eval);
    free(r->log);
    free(r->samples);
    adamw_free(&r->opt);
}

// Reward sources in TRL's order: the reward models, then --reward_funcs. Names made unique (_2, _3...).
static rlhf_status open_rewards(grpo_run *r, rlhf_err *err) {
    const grpo_args *a = r->a;
    peft_options quant = a->peft;
    quant.use_peft = 0;
    for (int i = 0; i < a->n_reward_models; i++) {
        if (reward_source_is_url(a->reward_models[i])) {
            RLHF_TRY(reward_remote_fn_open(&r->rewards[r->K++], a->reward_models[i], err));
            continue;
        }
        RLHF_TRY(reward_model_fn_open(&r->rewards[r->K], a->reward_models[i], r->tok, r->policy->cfg.vocab_size,
                                          a->encoding, a->peft.load_in_4bit ? &quant : NULL, a->common.seed,
                                          a->allow_new_reward_head, a->dataset_name, err));
        r->K++;
    }
    for (int i = 0; i < a->n_reward_funcs; i++) {
        const char *f = a->reward_funcs[i];
        if (!strncmp(f, "exec:", 5)) {
            RLHF_TRY(reward_exec_open(&r->rewards[r->K], f + 5, a->reward_timeout, err));
        } else {
            RLHF_TRY(reward_rule_open(&r->rewards[r->K], f, err));
            r->K++;  // counted at once: run_free frees it when a check below fails
            if (!r->tok)
                return rlhf_fail(err, RLHF_EINPUT, "--reward_funcs %s reads completion text, but %s has no tokenizer "
                                 "files", f, a->model_name_or_path);
            for (int e = 0; e < 2 && !strcmp(f, "accuracy_reward"); e++) {
                const dataset *d = e ? &r->eval_data : &r->data;
                for (int j = 0; j < d->n; j++)
                    if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(d->rows[j], "solution")))
                        return rlhf_fail(err, RLHF_EINPUT, "%s:%d: --reward_funcs accuracy_reward needs a \"solution\" "
                                         "string field in every row", e ? a->common.eval_dataset_name : a->dataset_name,
                                         d->lines[j]);
            }
            continue;
        }
        r->K++;
    }
    for (int k = 0; k < r->K; k++) {
        r->weights[k] = a->n_reward_weights ? (float)a->reward_weights[k] : 1.0f;
        int dup = 1;
        for (int j = 0; j < k; j++)
            if (!strcmp(r->rewards[j]->name, r->rewards[k]->name)) dup++;
        if (dup > 1) {
            size_t l = strlen(r->rewards[k]->name);
            snprintf(r->rewards[k]->name + (l < 80 ? l : 80), 16, "_%d", dup);
        }
    }
    return RLHF_OK;
}

static rlhf_status setup(grpo_run *r, rlhf_err *err) {
    const grpo_args *a = r->a;
    model_load_opts lo = {.quiet = 0, .init_seed = a->common.seed};
    RLHF_TRY(rollout_load_policy(&r->policy, a->model_name_or_path, a->common.resume_from, &a->peft, &lo, err));
    r->use_ref = a->beta != 0.0;
    // beta 0: no reference model at all (TRL's GRPOTrainer does not load one). With LoRA the reference is
    // the policy with its adapters off.
    if (r->use_ref && !a->peft.use_peft) {
        model_load_opts lf = lo;
        lf.frozen = 1;  // no_grad; a bf16 checkpoint stays bf16 in memory
        RLHF_TRY(peft_load_model_dir(&r->ref, a->model_name_or_path, HEAD_LM, NULL, &lf, err));
        if (peft_n_adapted(r->ref)) RLHF_TRY(peft_merge_and_unload(r->ref, err));  // an adapter directory
    }
    if (a->peft.use_peft) {
        int64_t qb, fb;
        peft_quantized_bytes(r->policy, &qb, &fb);
        model_trainable tv;
        model_trainable_view(r->policy, &tv);
        fprintf(stderr, "rlhf %s: LoRA r=%d on %d layers: %zu trainable of %zu parameters%s\n", r->cmd, a->peft.lora.r,
                peft_n_adapted(r->policy), tv.n, r->policy->n_params, qb ? " (4-bit base)" : "");
    }
    if (model_dir_has_tokenizer(a->model_name_or_path)) RLHF_TRY(tokenizer_load(&r->tok, a->model_name_or_path, err));
    if (r->tok) RLHF_TRY(tokenizer_check_model_vocab(r->tok, r->policy->cfg.vocab_size, a->model_name_or_path, err));
    int eos = r->tok && tokenizer_eos_id(r->tok) >= 0 ? tokenizer_eos_id(r->tok) : r->policy->cfg.eos_token_id;
    r->stop_id = eos >= 0 && eos < r->policy->cfg.vocab_size ? eos : -1;
    r->fill_id = r->stop_id >= 0 ? r->stop_id : 0;

    RLHF_TRY(dataset_load(&r->data, a->dataset_name, err));
    rollout_prompt_opts po = {.dataset_name = a->dataset_name, .model_dir = a->model_name_or_path, .tok = r->tok,
                              .vocab_size = r->policy->cfg.vocab_size, .max_positions = r->policy->cfg.max_positions,
                              .max_new_tokens = a->max_completion_length, .length_flag = "--max_completion_length",
                              .max_prompt_length = a->max_prompt_length, .cmd = r->cmd};
    RLHF_TRY(rollout_load_prompts(&r->data, &po, &r->prompts, &r->n_prompts, &r->max_prompt, err));
    // the evaluation prompts: --eval_dataset_name read as the training file is, or --eval_split's share
    if (a->common.eval_dataset_name) {
        RLHF_TRY(dataset_load(&r->eval_data, a->common.eval_dataset_name, err));
        po.dataset_name = a->common.eval_dataset_name;
        int longest = 0;
        RLHF_TRY(rollout_load_prompts(&r->eval_data, &po, &r->eval_prompts, &r->n_eval, &longest, err));
        if (longest > r->max_prompt) r->max_prompt = longest;
    } else if (a->common.eval_split > 0) {
        RLHF_TRY(rollout_split_prompts(&r->prompts, &r->n_prompts, a->common.eval_split, a->common.seed,
                                       &r->eval_prompts, &r->n_eval, err));
    }
    r->prompts_of = r->prompts;
    r->rows_of = &r->data;
    r->policy->gradient_checkpointing = a->common.gradient_checkpointing;
    RLHF_TRY(model_set_torch_dtype(r->policy, a->common.torch_dtype, err));  // the saved policy's dtype
    RLHF_TRY(open_rewards(r, err));

    r->G = a->num_generations;
    r->R = a->max_completion_length;
    r->micro = a->common.train_batch_size;
    r->ga = a->common.grad_accum;
    r->spg = a->steps_per_generation ? a->steps_per_generation : r->ga;
    r->iters = a->num_iterations;
    r->world = dist_size(a->dist);
    r->rank = dist_rank(a->dist);
    r->prompts_per_gen = r->micro * r->spg * r->world / r->G;
    r->gens_per_epoch = r->n_prompts / r->prompts_per_gen;
    if (r->gens_per_epoch < 1)
        return rlhf_fail(err, RLHF_EINPUT, "%s: %d prompts, but one generation batch needs %d (--per_device_train_batch_size"
                         " x --steps_per_generation x processes / --num_generations)", a->dataset_name, r->n_prompts,
                         r->prompts_per_gen);
    // TRL: one epoch = every prompt once (an incomplete last generation batch is dropped); each generation
    // gives spg x num_iterations micro-steps
    long long micro_per_epoch = r->gens_per_epoch * r->spg * r->iters;
    long long steps_per_epoch = (micro_per_epoch + r->ga - 1) / r->ga;
    r->steps_per_epoch = steps_per_epoch;
    r->max_steps = trainer_total_steps(&a->common, steps_per_epoch);
    // TRL computes old log-probs when a generation batch outlives one optimizer step (or always in RLOO)
    r->need_old = a->algo == ALGO_RLOO || (r->ga % (r->spg * r->iters)) != 0;

    RLHF_TRY(model_alloc_grads(r->policy, err));
    model_trainable tv;
    model_trainable_view(r->policy, &tv);
    RLHF_TRY(adamw_init(&r->opt, tv.n, err));

    RLHF_TRY(batch_alloc(&r->batch, r, r->micro * r->spg, err));
    if (r->n_eval) RLHF_TRY(batch_alloc(&r->eval, r, a->common.eval_batch_size, err));
    r->gen_index = -1;
    build_columns(r);
    return RLHF_OK;
}

// ---- one generation batch ----------------------------------------------------------------------------

rlhf_status grpo_completion_text(const grpo_run *r, int b, char **out, rlhf_err *err) {
    *out = NULL;
    if (!r->tok) return RLHF_OK;
    int n = r->lengths[b] - (r->has_stop[b] ? 1 : 0);
    return tokenizer_decode(r->tok, r->responses + (size_t)b * r->R, n, 1, out, err);
}

// Log-probs (rows [0, n), all R slots) of the current batch under m (NULL: the policy with its adapters off)
// into out.
static rlhf_status batch_logprobs(grpo_run *r, model *m, float *out, int n, rlhf_err *err) {
    const int T = r->T, R = r->R;
    for (int b0 = 0; b0 < n; b0 += r->micro) {
        int nb = n - b0 < r->micro ? n - b0 : r->micro;
        // the LM head on the R positions that predict the completion only (TRL's logits_to_keep)
        model_batch mb = {.B = nb, .T = T, .input_ids = r->qr_ids + (size_t)b0 * T,
                          .attention_mask = r->qr_mask + (size_t)b0 * T, .position_ids = r->qr_pos + (size_t)b0 * T,
                          .head_from = r->P - 1, .head_count = R};
        model *used = m ? m : r->policy;
        if (m) RLHF_TRY(model_forward_no_grad(m, &mb, err));  // log-probs only: no backward follows
        else RLHF_TRY(peft_reference_forward(r->policy, &mb, err));
        rollout_logprobs(out + (size_t)b0 * R, NULL, used->out, r->responses + (size_t)b0 * R, nb, R, 1, R,
                         used->cfg.vocab_size, r->a->temperature);
    }
    return RLHF_OK;
}

// What one batch samples: local rows [0, n_valid) hold completions (an evaluation's last batch may leave a
// process fewer, or none: its other rows stay out of every metric); total: the valid rows over all
// processes, which come first in the global order (rank-major), so statistics over the first `total`
// global rows are those of the batch whatever the process count.
typedef struct {
    int eval;                    // an evaluation batch: no tokens counted, no old log-probs, identity order
    int n_valid, total;
    uint64_t sample_seed;
} batch_spec;

static rlhf_status sample_and_score(grpo_run *r, const batch_spec *bs, rlhf_err *err);

// Generation g: its prompts, completions, rewards and advantages, and the per-generation metrics.
static rlhf_status generate_batch(grpo_run *r, long long g, int *order, long long *order_epoch, rlhf_err *err) {
    const grpo_args *a = r->a;
    const int N = r->N, G = r->G;
    long long epoch = g / r->gens_per_epoch, chunk = g % r->gens_per_epoch;
    if (epoch != *order_epoch) {
        if (a->common.shuffle)
            rng_permutation(rng_key(a->common.seed, RNG_STREAM_SHUFFLE, (uint64_t)epoch, 0), order, r->n_prompts);
        else for (int i = 0; i < r->n_prompts; i++) order[i] = i;
        *order_epoch = epoch;
    }
    // global completion j = prompt (j / G) of this generation; this process holds [rank N, (rank + 1) N)
    const long long first = (long long)r->rank * N;
    for (int i = 0; i < N; i++) r->row_prompt[i] = order[chunk * r->prompts_per_gen + (first + i) / G];
    batch_spec bs = {.eval = 0, .n_valid = N, .total = N * r->world,
                     .sample_seed = rng_key(a->common.seed, RNG_STREAM_SAMPLE, (uint64_t)g, 0)};
    RLHF_TRY(sample_and_score(r, &bs, err));
    // TRL shuffles the generation batch before splitting it into steps_per_generation micro-batches
    rng_permutation(rng_key(a->common.seed, RNG_STREAM_GRPO, (uint64_t)g, (uint64_t)r->rank), r->perm, N);
    r->gen_index = g;
    return RLHF_OK;
}

// The completions of r's current batch (row_prompt filled): sampling, masks, log-probs, rewards, advantages
// and the metrics of one batch (into the accumulators).
static rlhf_status sample_and_score(grpo_run *r, const batch_spec *bs, rlhf_err *err) {
    const grpo_args *a = r->a;
    const int N = bs->n_valid, Nb = r->N, R = r->R, G = r->G, K = r->K;
    const long long first = (long long)r->rank * Nb;
    int P = 1;
    for (int i = 0; i < N; i++)
        if (r->prompts_of[r->row_prompt[i]].n > P) P = r->prompts_of[r->row_prompt[i]].n;
    r->P = P;
    r->T = P + R;
    const rollout_prompt **rows = calloc((size_t)N + 1, sizeof *rows);
    uint64_t *row_ids = calloc((size_t)N + 1, sizeof *row_ids);
    reward_item *items = calloc((size_t)N + 1, sizeof *items);
    char **texts = calloc((size_t)N + 1, sizeof *texts);
    float *scores = calloc((size_t)N + 1, sizeof *scores);
    float *local_pf = malloc((size_t)Nb * K * sizeof *local_pf);
    rlhf_status st = RLHF_OK;
    if (!rows || !row_ids || !items || !texts || !scores || !local_pf) {
        st = rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < (size_t)Nb * K; i++) local_pf[i] = NAN;  // rows without a completion
    for (int i = 0; i < N; i++) {
        rows[i] = &r->prompts_of[r->row_prompt[i]];
        row_ids[i] = (uint64_t)(first + i);
    }
    rollout_sampling s = {.max_new_tokens = R, .temperature = a->temperature, .top_k = a->top_k, .top_p = a->top_p,
                          .min_p = a->min_p, .repetition_penalty = a->repetition_penalty, .stop_id = r->stop_id,
                          .fill_id = r->fill_id, .seed = bs->sample_seed};
    for (int b0 = 0; b0 < N && !st; b0 += GRPO_FWD_CHUNK) {
        int nb = N - b0 < GRPO_FWD_CHUNK ? N - b0 : GRPO_FWD_CHUNK;
        st = rollout_sample(r->policy, rows + b0, row_ids + b0, nb, &s, r->responses + (size_t)b0 * R,
                            r->n_generated + b0, err);
    }
    if (st) goto out;
    if (N > 0) rollout_pack(r->qr_ids, r->qr_mask, r->qr_pos, rows, r->responses, N, P, R, r->fill_id);
    ppo_truncate_responses(r->mask, r->lengths, r->has_stop, r->responses, r->n_generated, r->stop_id, N, R);

    // completion metrics (over every process), before masking truncated completions
    double len_stats[6] = {0};  // sum, count, terminated sum, terminated count, truncated, tokens
    double mn = INFINITY, mx = -INFINITY;
    for (int i = 0; i < N; i++) {
        double l = r->lengths[i];
        len_stats[0] += l;
        len_stats[1] += 1;
        if (r->has_stop[i]) len_stats[2] += l, len_stats[3] += 1;
        else len_stats[4] += 1;
        len_stats[5] += l + rows[i]->n;
        mn = l < mn ? l : mn;
        mx = l > mx ? l : mx;
    }
    double ext[2] = {-mn, mx};
    if ((st = dist_allreduce_sum_f64(a->dist, len_stats, 6, err)) || (st = dist_allreduce_max_f64(a->dist, ext, 2, err)))
        goto out;
    if (!bs->eval) r->num_tokens += len_stats[5];
    metric_add(r, "completions/mean_length", len_stats[0] / len_stats[1]);
    metric_add(r, "completions/min_length", -ext[0]);
    metric_add(r, "completions/max_length", ext[1]);
    metric_add(r, "completions/clipped_ratio", len_stats[4] / len_stats[1]);
    metric_add(r, "completions/mean_terminated_length", len_stats[3] > 0 ? len_stats[2] / len_stats[3] : 0.0);
    if (a->mask_truncated_completions)  // TRL: a completion cut at max_completion_length is left out of the loss
        for (int i = 0; i < N; i++)
            if (!r->has_stop[i]) memset(r->mask + (size_t)i * R, 0, (size_t)R * sizeof(float));
    double items_n = 0;
    for (size_t i = 0; i < (size_t)N * R; i++) items_n += r->mask[i];
    if ((st = dist_allreduce_sum_f64(a->dist, &items_n, 1, err))) goto out;
    r->num_items = (items_n > 1 ? items_n : 1.0) / r->world;

    if (r->need_old || bs->eval) st = batch_logprobs(r, r->policy, r->old_lp, N, err);
    if (!st && r->use_ref) st = batch_logprobs(r, r->ref, r->ref_lp, N, err);
    if (r->ref) model_release_activations(r->ref);  // not resident while the policy trains
    if (st) goto out;

    // rewards, each source over this process's completions
    for (int i = 0; i < N && !st; i++) {
        st = grpo_completion_text(r, i, &texts[i], err);
        const rollout_prompt *p = rows[i];
        items[i] = (reward_item){.prompt_text = p->text, .prompt_ids = p->ids, .prompt_n = p->n,
                                 .completion_text = texts[i], .completion_ids = r->responses + (size_t)i * R,
                                 .completion_n = r->lengths[i] - (r->has_stop[i] ? 1 : 0),
                                 .row = r->rows_of->rows[p->row], .line = p->line};
    }
    for (int k = 0; k < K && !st; k++) {
        if (N > 0) st = r->rewards[k]->score(r->rewards[k], items, N, scores, err);
        for (int i = 0; i < N; i++) local_pf[(size_t)i * K + k] = scores[i];
    }
    if (st) goto out;
    // advantages need every process's rewards (groups may span processes)
    if ((st = dist_allgather(a->dist, local_pf, r->per_func, (size_t)Nb * K * sizeof(float), err))) goto out;
    const int Ng = bs->total;  // the valid rows lead the global order
    grpo_combine_rewards(r->rewards_all, r->per_func, r->weights, Ng, K);
    float *adv_all = calloc((size_t)Nb * r->world, sizeof *adv_all);
    float *kl_all = calloc((size_t)Nb * r->world, sizeof *kl_all);
    if (!adv_all || !kl_all) {
        free(adv_all);
        free(kl_all);
        st = rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
        goto out;
    }
    grpo_reward_stats rs;
    if (a->algo == ALGO_GRPO) {
        grpo_advantages(adv_all, &rs, r->rewards_all, Ng, G, a->scale_rewards);
    } else {
        // RLOO: the KL (k1, summed over the completion) enters the reward
        float *local_kl = kl_all + (size_t)r->rank * Nb;
        double kl_tok[2] = {0, 0};
        for (int i = 0; i < N && r->use_ref; i++) {
            double sk = 0;
            for (int t = 0; t < R; t++) {
                float m = r->mask[(size_t)i * R + t];
                if (m == 0) continue;
                sk += ((double)r->old_lp[(size_t)i * R + t] - r->ref_lp[(size_t)i * R + t]) * m;
                kl_tok[1] += m;
            }
            local_kl[i] = (float)sk;
            kl_tok[0] += sk;
        }
        if (r->world > 1) {
            float *mine = malloc((size_t)Nb * sizeof *mine);
            if (!mine) st = rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
            else {
                memcpy(mine, local_kl, (size_t)Nb * sizeof *mine);
                st = dist_allgather(a->dist, mine, kl_all, (size_t)Nb * sizeof(float), err);
                free(mine);
            }
        }
        if (!st) st = dist_allreduce_sum_f64(a->dist, kl_tok, 2, err);
        if (!st && r->use_ref) metric_add(r, "kl", kl_tok[0] / (kl_tok[1] > 1 ? kl_tok[1] : 1.0));
        float clip[2] = {(float)a->reward_clip[0], (float)a->reward_clip[1]};
        if (!st)
            rloo_advantages(adv_all, &rs, r->rewards_all, kl_all, (float)a->beta, a->has_reward_clip ? clip : NULL,
                            a->normalize_advantages, Ng, G);
    }
    if (!st) {
        memcpy(r->adv, adv_all + (size_t)r->rank * Nb, (size_t)Nb * sizeof(float));
        for (int k = 0; k < K; k++) {
            char name[128];
            snprintf(name, sizeof name, "rewards/%s/mean", r->rewards[k]->name);
            metric_add(r, name, grpo_nanmean(r->per_func + k, Ng, K));
            snprintf(name, sizeof name, "rewards/%s/std", r->rewards[k]->name);
            metric_add(r, name, grpo_nanstd(r->per_func + k, Ng, K));
        }
        metric_add(r, "reward", rs.reward);
        metric_add(r, "reward_std", rs.reward_std);
        metric_add(r, "frac_reward_zero_std", rs.frac_zero_std);
    }
    free(adv_all);
    free(kl_all);
out:
    if (texts)
        for (int i = 0; i < N; i++) free(texts[i]);
    free(texts);
    free(rows);
    free(row_ids);
    free(items);
    free(scores);
    free(local_pf);
    return st;
}

// ---- one micro-batch -----------------------------------------------------------------------------------

typedef struct {
    int32_t *ids, *mask, *pos, *resp;     // (micro, T) / (micro, R)
    float *old_lp, *ref_lp, *lmask, *new_lp, *lse, *dlp, *entropy;  // (micro, R)
    float *adv;                           // (micro)
    float *dlogits;                       // (micro, R, V): the head runs on the completion slots only; NULL:
                                          // the gradient overwrites the logits (policy->out)
} grpo_scratch;

static void scratch_free(grpo_scratch *s) {
    void *ps[] = {s->ids, s->mask, s->pos, s->resp, s->old_lp, s->ref_lp, s->lmask, s->new_lp, s->lse, s->dlp,
                  s->entropy, s->adv, s->dlogits};
    for (size_t i = 0; i < sizeof ps / sizeof *ps; i++) free(ps[i]);
    memset(s, 0, sizeof *s);
}

static rlhf_status scratch_init(grpo_scratch *s, const grpo_run *r, rlhf_err *err) {
    memset(s, 0, sizeof *s);
    size_t M = (size_t)r->micro, R = (size_t)r->R, T = (size_t)r->max_prompt + R, V = (size_t)r->policy->cfg.vocab_size;
    int ok = (s->ids = malloc(M * T * 4)) && (s->mask = malloc(M * T * 4)) && (s->pos = malloc(M * T * 4)) &&
             (s->resp = malloc(M * R * 4)) && (s->adv = calloc(M, sizeof(float)));
    float **fs[] = {&s->old_lp, &s->ref_lp, &s->lmask, &s->new_lp, &s->lse, &s->dlp, &s->entropy};
    for (size_t i = 0; i < sizeof fs / sizeof *fs; i++) ok = ok && (*fs[i] = calloc(M * R, sizeof(float)));
    if (r->policy->backward_reads_out)  // else the logits' gradient overwrites them (no second (M, R, V) buffer)
        ok = ok && (s->dlogits = malloc(M * R * V * sizeof(float)));  // the head runs on the R completion slots
    if (!ok) {
        scratch_free(s);
        return rlhf_fail(err, RLHF_ERUNTIME, "out of memory allocating %s update buffers", r->cmd);
    }
    return RLHF_OK;
}

// Forward, loss and backward of micro-batch `slice` of the current generation batch; returns its loss.
static rlhf_status micro_step(grpo_run *r, grpo_scratch *s, int slice, double *loss, rlhf_err *err) {
    const grpo_args *a = r->a;
    const int P = r->P, T = r->T, R = r->R, V = r->policy->cfg.vocab_size, m = r->micro;
    for (int i = 0; i < m; i++) {
        int b = r->perm[slice * m + i];
        memcpy(s->ids + (size_t)i * T, r->qr_ids + (size_t)b * T, (size_t)T * 4);
        memcpy(s->mask + (size_t)i * T, r->qr_mask + (size_t)b * T, (size_t)T * 4);
        memcpy(s->pos + (size_t)i * T, r->qr_pos + (size_t)b * T, (size_t)T * 4);
        memcpy(s->resp + (size_t)i * R, r->responses + (size_t)b * R, (size_t)R * 4);
        memcpy(s->old_lp + (size_t)i * R, r->old_lp + (size_t)b * R, (size_t)R * 4);
        memcpy(s->ref_lp + (size_t)i * R, r->ref_lp + (size_t)b * R, (size_t)R * 4);
        memcpy(s->lmask + (size_t)i * R, r->mask + (size_t)b * R, (size_t)R * 4);
        s->adv[i] = r->adv[b];
    }
    // logits (m, R, V) of the R positions that predict the completion only (TRL's logits_to_keep)
    model_batch mb = {.B = m, .T = T, .input_ids = s->ids, .attention_mask = s->mask, .position_ids = s->pos,
                      .head_from = P - 1, .head_count = R};
    RLHF_TRY(model_forward(r->policy, &mb, err));
    const float *logits = r->policy->out;
    rollout_logprobs(s->new_lp, s->lse, logits, s->resp, m, R, 1, R, V, a->temperature);
    // on-policy (TRL: old_per_token_logps None): old = the new log-probs detached, ratio exactly 1
    const float *old = r->need_old ? s->old_lp : s->new_lp;
    grpo_loss_stats ls;
    memset(s->dlp, 0, (size_t)m * R * sizeof(float));
    float eps_high = (float)(a->epsilon_high >= 0 ? a->epsilon_high : a->epsilon);
    if (a->algo == ALGO_GRPO) {
        grpo_loss_config lc = {a->loss_type, a->importance_sampling_level, (float)a->epsilon, eps_high,
                               (float)a->beta, a->max_completion_length, r->num_items, (double)r->ga};
        grpo_loss_forward(&ls, s->new_lp, old, r->use_ref ? s->ref_lp : NULL, s->adv, s->lmask, &lc, m, R);
        grpo_loss_backward(s->dlp, s->new_lp, old, r->use_ref ? s->ref_lp : NULL, s->adv, s->lmask, &lc, m, R);
    } else {
        rloo_loss_forward(&ls, s->new_lp, old, s->adv, s->lmask, (float)a->epsilon, eps_high, (double)r->ga, m, R);
        rloo_loss_backward(s->dlp, s->new_lp, old, s->adv, s->lmask, (float)a->epsilon, eps_high, (double)r->ga, m, R);
    }
    float *dlogits = s->dlogits ? s->dlogits : r->policy->out;  // in place: each slot read before it is written
    rollout_logprobs_backward(dlogits, s->entropy, logits, s->lse, s->resp, s->dlp, m, R, 1, R, V, a->temperature);
    // metrics as TRL's global masked means of this micro-batch (sums over processes)
    double ent = 0;
    for (size_t i = 0; i < (size_t)m * R; i++)
        if (s->lmask[i] != 0) ent += (double)s->entropy[i] * s->lmask[i];
    double sums[7] = {ent, ls.tok_count, ls.kl_sum, ls.low_sum, ls.high_sum, ls.region_sum, ls.clip_count};
    RLHF_TRY(dist_allreduce_sum_f64(a->dist, sums, 7, err));
    double tok = sums[1] > 1 ? sums[1] : 1.0, clip = sums[6] > 1 ? sums[6] : 1.0;
    metric_add(r, "entropy", sums[0] / tok);
    if (a->algo == ALGO_GRPO && r->use_ref) metric_add(r, "kl", sums[2] / tok);
    metric_add(r, "clip_ratio/low_mean", sums[3] / clip);
    metric_add(r, "clip_ratio/high_mean", sums[4] / clip);
    metric_add(r, "clip_ratio/region_mean", sums[5] / clip);
    *loss = ls.loss;
    return model_backward(r->policy, dlogits, NULL, err);
}

// Gradient all-reduce (mean over processes, as DDP), global-norm clipping, AdamW. A non-finite norm skips
// the step. Returns the pre-clip norm.
static rlhf_status optimizer_step(grpo_run *r, double lr, double *norm_out, int *stepped, rlhf_err *err) {
    const grpo_args *a = r->a;
    model_trainable p;
    model_trainable_view(r->policy, &p);
    if (r->world > 1) {
        RLHF_TRY(dist_allreduce_sum_f32(a->dist, p.grads, p.n, err));
        float inv = 1.0f / (float)r->world;
        for (size_t i = 0; i < p.n; i++) p.grads[i] *= inv;
    }
    // torch's clip_grad_norm_ + AdamW + zero_grad in two passes over the buffers (norm, then the fused update that
    // clips, steps and zeroes; bit-identical to the three separate passes)
    double norm = grad_norm(p.grads, p.n);
    *norm_out = norm;
    *stepped = isfinite(norm);
    size_t covered = 0;
    for (int k = 0; k < p.n_specs; k++) covered += p.specs[k].numel;
    if (*stepped) {
        adamw_config c = {a->adam_beta1, a->adam_beta2, a->adam_epsilon, a->common.weight_decay};
        adamw_step_clipped(&r->opt, p.params, p.grads, grad_clip_scale(norm, a->common.max_grad_norm), p.specs,
                           p.n_specs, lr, &c);
    }
    // the fused pass zeroed every gradient when the specs tile the whole buffer (a model's always do)
    if (!*stepped || covered != p.n || p.n_specs <= 0 || p.grads != r->policy->grads) model_zero_grads(r->policy);
    return RLHF_OK;
}

// ---- evaluation ---------------------------------------------------------------------------------------

// TRL's GRPOTrainer.evaluate: every evaluation prompt sampled num_generations(_eval) times, in batches of
// per_device_eval_batch_size completions per process, scored and turned into advantages as in training,
// the loss computed without an update (on-policy: ratio 1); the batch metrics averaged into one row of
// eval_* columns. The batches' rows are split over the processes as a generation batch is, and every
// statistic is taken over the batch's global rows, so any process count logs the same numbers.
static rlhf_status evaluate(grpo_run *r, long long step, grpo_log_row *row, rlhf_err *err) {
    const grpo_args *a = r->a;
    grpo_batch train = r->batch;
    r->batch = r->eval;
    r->prompts_of = r->eval_prompts;
    r->rows_of = a->common.eval_dataset_name ? &r->eval_data : &r->data;
    r->evaluating = 1;
    const int train_G = r->G;
    if (a->num_generations_eval) r->G = a->num_generations_eval;  // TRL's num_generations_eval
    const int N = r->N, R = r->R, W = r->world, G = r->G;
    const int per_batch = N * W / G;  // prompts per evaluation batch
    const size_t NR = (size_t)N * R, NgR = NR * W;
    float *buf = malloc(4 * NgR * sizeof(float) + 4 * NR * sizeof(float) + 2 * (size_t)N * W * sizeof(float));
    rlhf_status st = buf ? RLHF_OK : rlhf_fail(err, RLHF_ERUNTIME, "out of memory (evaluation)");
    int n_batches = 0;
    for (int b0 = 0; b0 < r->n_eval && !st; b0 += per_batch, n_batches++) {
        int n_p = r->n_eval - b0 < per_batch ? r->n_eval - b0 : per_batch;
        int total = n_p * G, first = r->rank * N;
        int nv = total - first < 0 ? 0 : total - first > N ? N : total - first;
        for (int i = 0; i < nv; i++) r->row_prompt[i] = b0 + (first + i) / G;
        batch_spec bs = {.eval = 1, .n_valid = nv, .total = total,
                         .sample_seed = rng_key(a->common.seed, RNG_STREAM_SAMPLE, (1ull << 63) | (uint64_t)step,
                                                (uint64_t)n_batches)};
        if ((st = sample_and_score(r, &bs, err))) break;
        // the loss over the batch's global rows: log-probs, masks and advantages of every process
        float *lp = buf, *ref = lp + NgR, *mask = ref + NgR, *l_lp = mask + NgR, *l_ref = l_lp + NR, *l_mask = l_ref + NR;
        float *adv = l_mask + NR, *l_adv = adv + (size_t)N * W;
        memset(l_lp, 0, 3 * NR * sizeof(float));
        memset(l_adv, 0, (size_t)N * sizeof(float));
        memcpy(l_lp, r->old_lp, (size_t)nv * R * sizeof(float));
        if (r->use_ref) memcpy(l_ref, r->ref_lp, (size_t)nv * R * sizeof(float));
        memcpy(l_mask, r->mask, (size_t)nv * R * sizeof(float));
        memcpy(l_adv, r->adv, (size_t)nv * sizeof(float));
        if ((st = dist_allgather(a->dist, l_lp, lp, NR * sizeof(float), err)) ||
            (st = dist_allgather(a->dist, l_ref, ref, NR * sizeof(float), err)) ||
            (st = dist_allgather(a->dist, l_mask, mask, NR * sizeof(float), err)) ||
            (st = dist_allgather(a->dist, l_adv, adv, (size_t)N * sizeof(float), err)))
            break;
        grpo_loss_stats ls;
        float eps_high = (float)(a->epsilon_high >= 0 ? a->epsilon_high : a->epsilon);
        if (a->algo == ALGO_GRPO) {
            grpo_loss_config lc = {a->loss_type, a->importance_sampling_level, (float)a->epsilon, eps_high,
                                   (float)a->beta, a->max_completion_length, r->num_items * W, 1.0};
            grpo_loss_forward(&ls, lp, lp, r->use_ref ? ref : NULL, adv, mask, &lc, total, R);
            if (r->use_ref) metric_add(r, "kl", ls.kl_sum / (ls.tok_count > 1 ? ls.tok_count : 1.0));
        } else {
            rloo_loss_forward(&ls, lp, lp, adv, mask, (float)a->epsilon, eps_high, 1.0, total, R);
        }
        metric_add(r, "loss", ls.loss);
    }
    free(buf);
    r->evaluating = 0;
    r->G = train_G;
    r->eval = r->batch;
    r->batch = train;
    r->prompts_of = r->prompts;
    r->rows_of = &r->data;
    if (st) return st;
    for (int c = 0; c < r->n_columns; c++) {
        row->v[c] = c >= r->first_eval_column && r->acc_n[c] ? r->acc_sum[c] / r->acc_n[c] : NAN;
        if (c >= r->first_eval_column) r->acc_sum[c] = 0, r->acc_n[c] = 0;
    }
    row->v[GC_STEP] = (double)step;
    row->v[GC_EPOCH] = (double)step * r->ga / (double)(r->gens_per_epoch * r->spg * r->iters);
    return RLHF_OK;
}

// ---- the run ----------------------------------------------------------------------------------------------

static rlhf_status check_output_dir(const grpo_args *a, const char *cmd, rlhf_err *err) {
    char p[4200];
    if (a->common.resume_from) {
        if (!file_exists(path_join(p, sizeof p, a->common.resume_from, "grpo_state.json")))
            return rlhf_fail(err, RLHF_EINPUT, "--resume_from_checkpoint %s: not a %s checkpoint (no grpo_state.json)",
                             a->common.resume_from, cmd);
        return RLHF_OK;
    }
    if (a->common.overwrite_output_dir || !dir_exists(a->common.output_dir)) return RLHF_OK;
    if (file_exists(path_join(p, sizeof p, a->common.output_dir, "training_log.csv")) ||
        file_exists(path_join(p, sizeof p, a->common.output_dir, "config.json")))
        return rlhf_fail(err, RLHF_EINPUT,
                         "--output_dir %s already holds a run; pass --overwrite_output_dir or --resume_from_checkpoint",
                         a->common.output_dir);
    return RLHF_OK;
}

static rlhf_status log_row_write(const grpo_run *r, csv_log *l, const grpo_log_row *row, rlhf_err *err) {
    char cells[GRPO_MAX_COLUMNS][40];
    const char *vals[GRPO_MAX_COLUMNS];
    for (int c = 0; c < r->n_columns; c++) {
        grpo_format_value(cells[c], sizeof cells[c], c, row->v[c]);
        vals[c] = cells[c];
    }
    return csv_log_row(l, vals, err);
}

// The logged row: the accumulated metrics averaged, then cleared (TRL's log()).
static void take_row(grpo_run *r, long long step, double lr, double grad_norm, grpo_log_row *row) {
    for (int c = 0; c < r->n_columns; c++) row->v[c] = r->acc_n[c] ? r->acc_sum[c] / r->acc_n[c] : NAN;
    long long micro_per_epoch = r->gens_per_epoch * r->spg * r->iters;
    row->v[GC_STEP] = (double)step;
    row->v[GC_EPOCH] = (double)step * r->ga / (double)micro_per_epoch;
    row->v[GC_LOSS] = r->steps_since_log ? r->loss_since_log / r->steps_since_log : NAN;
    row->v[GC_GRAD_NORM] = grad_norm;
    row->v[GC_LR] = lr;
    row->v[GC_NUM_TOKENS] = r->num_tokens;
    memset(r->acc_sum, 0, sizeof r->acc_sum);
    memset(r->acc_n, 0, sizeof r->acc_n);
    r->loss_since_log = 0;
    r->steps_since_log = 0;
}

// The logged row on stdout as the HF Trainer prints its logs: one dict per row, the measured values only.
static void log_line_print(const grpo_run *r, const grpo_log_row *row) {
    printf("{");
    int first = 1;
    for (int c = 0; c < r->n_columns; c++) {
        if (isnan(row->v[c])) continue;
        char cell[40];
        grpo_format_value(cell, sizeof cell, c, row->v[c]);
        printf("%s\"%s\": %s", first ? "" : ", ", r->columns[c], cell);
        first = 0;
    }
    printf("}\n");
    fflush(stdout);
}

static rlhf_status train_loop(grpo_run *r, grpo_result *res, rlhf_err *err) {
    const grpo_args *a = r->a;
    const int main_rank = dist_is_main(a->dist);
    long long start = 0;
    if (a->common.resume_from) RLHF_TRY(grpo_checkpoint_load(r, a->common.resume_from, &start, err));
    csv_log *log = NULL;
    char path[4200];
    path_join(path, sizeof path, a->common.output_dir, "training_log.csv");
    if (main_rank) {
        RLHF_TRY(make_dirs(a->common.output_dir, err));
        RLHF_TRY(checkpoint_remove_stale(a->common.output_dir, err));  // checkpoint-*.tmp left by a killed run
        if (a->common.resume_from) RLHF_TRY(grpo_log_rewrite(r, path, err));
        RLHF_TRY(csv_log_open(&log, path, r->columns, r->n_columns, a->common.resume_from != NULL, err));
    }
    int *order = malloc((size_t)r->n_prompts * sizeof(int));
    grpo_scratch s;
    rlhf_status st = scratch_init(&s, r, err);
    if (!order && !st) st = rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    long long order_epoch = -1;
    const long long gen_every = (long long)r->spg * r->iters;
    // transformers' get_warmup_steps: --warmup_steps when > 0, else ceil(warmup_ratio x max_steps)
    long long warmup = trainer_warmup_steps(&a->common, r->max_steps);
    // checkpoints and evaluations every N steps (--*_strategy steps) or at the end of every epoch (epoch)
    long long save_every = a->common.save_strategy == STRATEGY_STEPS ? a->common.save_steps
                           : a->common.save_strategy == STRATEGY_EPOCH ? r->steps_per_epoch : 0;
    long long eval_every = !r->first_eval_column ? 0 : a->common.eval_strategy == STRATEGY_STEPS ? a->common.eval_steps
                           : a->common.eval_strategy == STRATEGY_EPOCH ? r->steps_per_epoch : 0;
    int skipped = 0, streak = 0, pending_save = 0;
    double step_loss = 0, grad_norm = NAN, lr = 0;
    progress *pg = a->common.quiet || !main_rank ? NULL : progress_start(r->cmd, r->max_steps, "step");
    progress_update(pg, start, NULL);
    char extra[160] = "";
    res->steps_done = start;
    res->first_reward = res->last_reward = res->first_eval_reward = res->last_eval_reward = NAN;
    int reward_col = grpo_column(r, "reward");
    // micro-step k of the run: generation k / gen_every, slice k % spg (TRL's _step % steps_per_generation)
    for (long long step = start + 1; step <= r->max_steps && !st; step++) {
        lr = lr_at(a->common.schedule, a->common.learning_rate, step - 1, warmup, r->max_steps);
        step_loss = 0;
        for (int j = 0; j < r->ga && !st; j++) {
            long long k = (step - 1) * r->ga + j;
            if (r->gen_index != k / gen_every) st = generate_batch(r, k / gen_every, order, &order_epoch, err);
            double l = 0;
            if (!st) st = micro_step(r, &s, (int)(k % r->spg), &l, err);
            step_loss += l;
        }
        if (st) break;
        int stepped;
        if ((st = optimizer_step(r, lr, &grad_norm, &stepped, err))) break;
        if (stepped) {
            streak = 0;
        } else {
            skipped++;
            if (++streak >= GRPO_MAX_CONSECUTIVE_SKIPS) {
                st = rlhf_fail(err, RLHF_ERUNTIME, "training diverged: %d optimizer steps in a row with a non-finite "
                               "loss or gradient norm (step %lld); try a lower --learning_rate", streak, step);
                break;
            }
            fprintf(stderr, "rlhf %s: step %lld: non-finite loss or gradient norm, optimizer step skipped (%d skipped "
                    "so far)\n", r->cmd, step, skipped);
        }
        double sl = step_loss;
        if (r->world > 1 && (st = dist_allreduce_sum_f64(a->dist, &sl, 1, err))) break;
        r->loss_since_log += sl / r->world;
        r->steps_since_log++;
        res->steps_done = step;
        if (step % a->common.logging_steps == 0 || step == r->max_steps) {
            grpo_log_row row;
            take_row(r, step, lr, grad_norm, &row);
            st = grpo_log_add(r, &row, err);
            if (!st && main_rank) st = log_row_write(r, log, &row, err);
            if (!st && main_rank && a->num_completions_to_log > 0) st = grpo_samples_add(r, step, err);
            if (st) break;
            if (isnan(res->first_reward)) res->first_reward = row.v[reward_col];
            res->last_reward = row.v[reward_col];
            snprintf(extra, sizeof extra, "reward %.3f loss %.4f", row.v[reward_col], row.v[GC_LOSS]);
            if (main_rank && !a->common.quiet) log_line_print(r, &row);
        }
        // evaluation after the step's log row, as the HF Trainer's _maybe_log_save_evaluate (and at the end of
        // the run with --eval_strategy epoch when the last epoch is cut short)
        if (eval_every > 0 && (step % eval_every == 0 ||
                               (a->common.eval_strategy == STRATEGY_EPOCH && step == r->max_steps))) {
            grpo_log_row row;
            st = evaluate(r, step, &row, err);
            if (!st) st = grpo_log_add(r, &row, err);
            if (!st && main_rank) st = log_row_write(r, log, &row, err);
            if (st) break;
            int ec = grpo_column(r, "eval_reward");
            if (isnan(res->first_eval_reward)) res->first_eval_reward = row.v[ec];
            res->last_eval_reward = row.v[ec];
            if (main_rank && !a->common.quiet) log_line_print(r, &row);
        }
        progress_update(pg, step, extra);
        // checkpoints only where a generation batch is used up (a resume starts a fresh one)
        int aligned = (step * r->ga) % gen_every == 0;
        if (save_every > 0 && step % save_every == 0 && step < r->max_steps) pending_save = 1;
        int stop = dist_any(a->dist, a->stop && *a->stop);
        if (aligned && (pending_save || stop) && step < r->max_steps) {
            st = grpo_checkpoint_save(r, step, err);
            pending_save = 0;
            if (!st && stop) {
                st = rlhf_fail(err, RLHF_EINTERRUPT, "interrupted: state saved in %s/checkpoint-%lld",
                               a->common.output_dir, step);
                res->interrupted = 1;
            }
        }
    }
    progress_finish(pg, extra);
    csv_log_close(log);
    if (!st && main_rank) st = grpo_save_policy_dir(r, a->common.output_dir, 0, err);
    if (!st && main_rank && a->merge_adapter && peft_active(r->policy)) {
        st = peft_merge_and_unload(r->policy, err);
        if (!st) st = model_save(r->policy, a->common.output_dir, err);
    }
    if ((!st || st == RLHF_EINTERRUPT) && main_rank) {
        rlhf_err e2;
        rlhf_status rs = grpo_report_write(r, st ? &e2 : err);
        if (!st) st = rs;
    }
    if (skipped) fprintf(stderr, "rlhf %s: %d optimizer steps skipped (non-finite gradients)\n", r->cmd, skipped);
    scratch_free(&s);
    free(order);
    return st;
}

rlhf_status grpo_train(const grpo_args *a, grpo_result *res, rlhf_err *err) {
    memset(res, 0, sizeof *res);
    const char *cmd = a->algo == ALGO_GRPO ? "grpo" : "rloo";
    RLHF_TRY(grpo_args_check(a, err));
    RLHF_TRY(check_output_dir(a, cmd, err));
    grpo_run *r = calloc(1, sizeof *r);
    if (!r) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    r->a = a;
    r->cmd = cmd;
    rlhf_status st = setup(r, err);
    // every rank loaded and validated its inputs: all go on, or all stop with one message (base/dist.h)
    st = dist_agree(a->dist, st, err);
    if (!st) {
        if (a->common.overwrite_output_dir && !a->common.resume_from && dir_exists(a->common.output_dir) &&
            dist_is_main(a->dist))
            st = remove_tree(a->common.output_dir, err);
        st = dist_agree(a->dist, st, err);
        if (!st) st = train_loop(r, res, err);
    }
    run_free(r);
    free(r);
    return st;
}
