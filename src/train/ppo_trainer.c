// The PPO loop (TRL PPOTrainer.train): setup and validation of every input before anything is written,
// then per update: rollout (ppo_trainer_rollout.c), rewards / GAE / whitening (ppo_math.h), and
// num_ppo_epochs x num_mini_batches clipped-PPO optimizer steps; logging, samples and checkpoints
// (ppo_trainer_state.c) around it.
#include "train/ppo_trainer.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/progress.h"
#include "base/rng.h"
#include "io/csv_log.h"
#include "io/dataset.h"
#include "io/files.h"
#include "io/json_util.h"
#include "train/ppo_trainer_impl.h"
#include "train/checkpoint.h"
#include "train/schedule.h"

// TRL's ValueHead is a torch nn.Linear: weight and bias ~ U(-1/sqrt(C), 1/sqrt(C)) (kaiming_uniform a=sqrt(5)).
#define PPO_VHEAD_INIT_STREAM_TAG 0x76686561ULL  // "vhea": keys the v_head init within RNG_STREAM_INIT
// A probe text both tokenizers must encode identically for the reward model to serve as value model.
#define PPO_TOKENIZER_PROBE "Hello world, 123! How are you?\n\tcaf\xc3\xa9 <|endoftext|>"

void ppo_args_defaults(ppo_args *a) {
    memset(a, 0, sizeof *a);
    peft_options_default(&a->peft);
    a->learning_rate = 3e-6;
    a->weight_decay = 0;
    a->max_grad_norm = 1.0;
    a->per_device_train_batch_size = 8;
    a->gradient_accumulation_steps = 1;
    a->num_mini_batches = 1;
    a->num_ppo_epochs = 4;
    a->local_rollout_forward_batch_size = 64;
    a->total_episodes = 0;
    a->num_train_epochs = 3.0;
    a->reward_timeout = REWARD_REMOTE_DEFAULT_TIMEOUT_S;
    a->reward_retries = REWARD_REMOTE_DEFAULT_RETRIES;
    a->response_length = 53;
    a->temperature = 0.7;
    a->stop_token = "eos";
    a->kl_coef = 0.05;
    a->kl_estimator = PPO_KL_K1;
    a->kl_target = 6.0;
    a->kl_horizon = 10000;
    a->cliprange = 0.2;
    a->cliprange_value = 0.2;
    a->vf_coef = 0.1;
    a->gamma = 1.0;
    a->lam = 0.95;
    a->value_model = PPO_VALUE_REWARD;
    a->encoding = PREF_ENCODING_PAIR;
    a->seed = 42;
    a->save_steps = 500;
    a->num_sample_generations = 10;
    a->logging_steps = 1;
}

#define CHECK_FLAG(cond, ...) \
    do {                      \
        if (!(cond)) return rlhf_fail(err, RLHF_EINPUT, __VA_ARGS__); \
    } while (0)

rlhf_status ppo_args_check(const ppo_args *a, rlhf_err *err) {
    CHECK_FLAG(a->model_name_or_path, "--model_name_or_path is required");
    CHECK_FLAG(a->sft_model_path, "--sft_model_path is required");
    CHECK_FLAG(a->reward_model_path, "--reward_model_path is required");
    CHECK_FLAG(a->dataset_name, "--dataset_name is required");
    CHECK_FLAG(a->output_dir && *a->output_dir, "--output_dir is required");
    CHECK_FLAG(isfinite(a->learning_rate) && a->learning_rate > 0, "--learning_rate: expected a finite number > 0, got %g",
               a->learning_rate);
    CHECK_FLAG(isfinite(a->weight_decay) && a->weight_decay >= 0, "--weight_decay: expected >= 0, got %g", a->weight_decay);
    CHECK_FLAG(!isnan(a->max_grad_norm), "--max_grad_norm: expected a number");
    CHECK_FLAG(a->per_device_train_batch_size >= 1, "--per_device_train_batch_size: expected >= 1, got %d",
               a->per_device_train_batch_size);
    CHECK_FLAG(a->gradient_accumulation_steps >= 1, "--gradient_accumulation_steps: expected >= 1, got %d",
               a->gradient_accumulation_steps);
    CHECK_FLAG(a->num_mini_batches >= 1, "--num_mini_batches: expected >= 1, got %d", a->num_mini_batches);
    CHECK_FLAG(a->num_ppo_epochs >= 1, "--num_ppo_epochs: expected >= 1, got %d", a->num_ppo_epochs);
    CHECK_FLAG(a->local_rollout_forward_batch_size >= 1, "--local_rollout_forward_batch_size: expected >= 1, got %d",
               a->local_rollout_forward_batch_size);
    CHECK_FLAG(a->total_episodes >= 0, "--total_episodes: expected >= 1, got %lld", a->total_episodes);
    CHECK_FLAG(isfinite(a->num_train_epochs) && a->num_train_epochs > 0, "--num_train_epochs: expected > 0, got %g",
               a->num_train_epochs);
    CHECK_FLAG(a->response_length >= 1, "--response_length: expected >= 1, got %d", a->response_length);
    CHECK_FLAG(isfinite(a->temperature) && a->temperature > 0, "--temperature: expected a finite number > 0, got %g",
               a->temperature);
    CHECK_FLAG(!a->has_missing_eos_penalty || isfinite(a->missing_eos_penalty),
               "--missing_eos_penalty: expected a finite number");
    CHECK_FLAG(isfinite(a->kl_coef) && a->kl_coef >= 0, "--kl_coef: expected a finite number >= 0, got %g", a->kl_coef);
    CHECK_FLAG(isfinite(a->cliprange) && a->cliprange > 0, "--cliprange: expected > 0, got %g", a->cliprange);
    CHECK_FLAG(isfinite(a->cliprange_value) && a->cliprange_value > 0, "--cliprange_value: expected > 0, got %g",
               a->cliprange_value);
    CHECK_FLAG(isfinite(a->vf_coef) && a->vf_coef >= 0, "--vf_coef: expected >= 0, got %g", a->vf_coef);
    CHECK_FLAG(isfinite(a->gamma) && a->gamma >= 0 && a->gamma <= 1, "--gamma: expected in [0, 1], got %g", a->gamma);
    CHECK_FLAG(isfinite(a->lam) && a->lam >= 0 && a->lam <= 1, "--lam: expected in [0, 1], got %g", a->lam);
    CHECK_FLAG(!a->adap_kl_ctrl || (isfinite(a->kl_target) && a->kl_target > 0), "--target: expected > 0, got %g",
               a->kl_target);
    CHECK_FLAG(!a->adap_kl_ctrl || (isfinite(a->kl_horizon) && a->kl_horizon > 0), "--horizon: expected > 0, got %g",
               a->kl_horizon);
    CHECK_FLAG(a->num_sample_generations >= 0, "--num_sample_generations: expected >= 0, got %d",
               a->num_sample_generations);
    CHECK_FLAG(a->stop_token, "--stop_token: expected eos, none or a token id");
    return rollout_check_peft(&a->peft, a->merge_adapter, err);
}

long long ppo_num_updates(long long total_episodes, int batch) {
    return (total_episodes + batch - 1) / batch;
}

static void run_free(ppo_run *r) {
    model_free(r->policy);
    model_free(r->ref);
    model_free(r->reward);
    reward_source_free(r->remote);
    model_free(r->value);
    tokenizer_free(r->policy_tok);
    tokenizer_free(r->reward_tok);
    free(r->vhead);
    free(r->vhead_grad);
    adamw_free(&r->policy_opt);
    adamw_free(&r->value_opt);
    adamw_free(&r->vhead_opt);
    rollout_prompts_free(r->prompts, r->n_prompts);
    rollout_prompts_free(r->eval_prompts, r->n_eval);
    free(r->qr_ids);
    free(r->qr_mask);
    free(r->qr_pos);
    free(r->responses);
    free(r->n_generated);
    free(r->lengths);
    free(r->has_stop);
    free(r->rows);
    float **fs[] = {&r->mask, &r->logprobs, &r->ref_logprobs, &r->values, &r->kl, &r->non_score,
                    &r->rewards, &r->advantages, &r->returns, &r->scores};
    for (size_t i = 0; i < sizeof fs / sizeof *fs; i++) free(*fs[i]);
    free(r->log);
    free(r->samples);
}

// Prompt rows (train/rollout.h), each checked against the context of every model that reads them.
static rlhf_status load_prompts(ppo_run *r, rlhf_err *err) {
    const ppo_args *a = r->a;
    dataset d = {0};
    RLHF_TRY(dataset_load(&d, a->dataset_name, err));
    int max_pos = r->policy->cfg.max_positions;
    if (r->ref && r->ref->cfg.max_positions > 0 && (max_pos == 0 || r->ref->cfg.max_positions < max_pos))
        max_pos = r->ref->cfg.max_positions;
    if (r->value && r->value->cfg.max_positions > 0 && (max_pos == 0 || r->value->cfg.max_positions < max_pos))
        max_pos = r->value->cfg.max_positions;
    rollout_prompt_opts o = {.dataset_name = a->dataset_name, .model_dir = a->model_name_or_path,
                             .tok = r->policy_tok, .vocab_size = r->policy->cfg.vocab_size, .max_positions = max_pos,
                             .max_new_tokens = a->response_length, .length_flag = "--response_length",
                             .max_prompt_length = a->max_prompt_length, .cmd = "ppo"};
    int longest = 0;  // over every call (training and evaluation prompts share the rollout buffers)
    rlhf_status st = rollout_load_prompts(&d, &o, &r->prompts, &r->n_prompts, &longest, err);
    if (longest > r->max_prompt) r->max_prompt = longest;
    dataset_free(&d);
    return st;
}

// The training prompts (r->prompts) and the held-out ones (r->eval_prompts): --eval_dataset_name read as
// the training file is, or --eval_split's share of --dataset_name drawn by a seeded permutation
// (RNG_STREAM_SPLIT, as the other trainers' splits) with both parts kept in file order.
static rlhf_status load_all_prompts(ppo_run *r, rlhf_err *err) {
    const ppo_args *a = r->a;
    if (a->eval_dataset_name) {
        ppo_args ea = *a;
        ea.dataset_name = a->eval_dataset_name;
        r->a = &ea;
        rlhf_status st = load_prompts(r, err);
        r->a = a;
        r->eval_prompts = r->prompts, r->n_eval = r->n_prompts;
        r->prompts = NULL, r->n_prompts = 0;
        RLHF_TRY(st);
    }
    RLHF_TRY(load_prompts(r, err));
    if (!(a->eval_split > 0)) return RLHF_OK;
    return rollout_split_prompts(&r->prompts, &r->n_prompts, a->eval_split, a->seed, &r->eval_prompts, &r->n_eval, err);
}

// 1 when both tokenizers turn the probe text into the same ids (the reward model can then read the
// policy's tokens directly, as a value model must).
static int same_tokenizer(const tokenizer *x, const tokenizer *y) {
    if (tokenizer_vocab_size(x) != tokenizer_vocab_size(y)) return 0;
    tok_encoding ex = {0}, ey = {0};
    rlhf_err e;
    int same = 0;
    if (tokenizer_encode(x, PPO_TOKENIZER_PROBE, NULL, 0, 0, TRUNC_LONGEST_FIRST, &ex, &e) == RLHF_OK &&
        tokenizer_encode(y, PPO_TOKENIZER_PROBE, NULL, 0, 0, TRUNC_LONGEST_FIRST, &ey, &e) == RLHF_OK)
        same = ex.n == ey.n && memcmp(ex.ids, ey.ids, (size_t)ex.n * sizeof *ex.ids) == 0;
    tok_encoding_free(&ex);
    tok_encoding_free(&ey);
    return same;
}

// The score row (label 0) of a sequence-classification head: the head tensor of shape (labels, C).
static rlhf_status find_score_row(const model *m, size_t *off, rlhf_err *err) {
    for (int i = 0; i < m->n_specs; i++) {
        const param_spec *s = &m->specs[i];
        if (s->is_head && s->ndim == 2 && s->shape[0] == m->cfg.num_labels && s->shape[1] == m->cfg.hidden_size) {
            *off = s->offset;
            return RLHF_OK;
        }
    }
    return rlhf_fail(err, RLHF_EINPUT, "reward model: no (num_labels, hidden) score head to use as value head");
}

static rlhf_status alloc_buffers(ppo_run *r, rlhf_err *err) {
    size_t B = (size_t)r->batch, R = (size_t)r->R, T = (size_t)r->max_prompt + R;
    r->qr_ids = malloc(B * T * 4);
    r->qr_mask = malloc(B * T * 4);
    r->qr_pos = malloc(B * T * 4);
    r->responses = malloc(B * R * 4);
    r->n_generated = calloc(B, sizeof(int));
    r->lengths = calloc(B, sizeof(int));
    r->has_stop = calloc(B, sizeof(int));
    r->rows = calloc(B, sizeof(int));
    float **fs[] = {&r->mask, &r->logprobs, &r->ref_logprobs, &r->values, &r->kl, &r->non_score,
                    &r->rewards, &r->advantages, &r->returns};
    int ok = r->qr_ids && r->qr_mask && r->qr_pos && r->responses && r->n_generated && r->lengths && r->has_stop &&
             r->rows;
    for (size_t i = 0; i < sizeof fs / sizeof *fs; i++) ok &= (*fs[i] = calloc(B * R, sizeof(float))) != NULL;
    ok &= (r->scores = calloc(B, sizeof(float))) != NULL;
    return ok ? RLHF_OK : rlhf_fail(err, RLHF_ERUNTIME, "out of memory allocating rollout buffers");
}

static rlhf_status init_value_head(ppo_run *r, rlhf_err *err) {
    int C = r->policy->cfg.hidden_size;
    r->vhead_n = (size_t)C + 1;
    r->vhead = calloc(r->vhead_n, sizeof(float));
    r->vhead_grad = calloc(r->vhead_n, sizeof(float));
    if (!r->vhead || !r->vhead_grad) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory (value head)");
    double bound = 1.0 / sqrt((double)C);
    uint64_t key = rng_key(r->a->seed, RNG_STREAM_INIT, PPO_VHEAD_INIT_STREAM_TAG, 0);
    for (size_t i = 0; i < r->vhead_n; i++) r->vhead[i] = (float)((2.0 * rng_uniform_double(key, i) - 1.0) * bound);
    param_spec *w = &r->vhead_specs[0], *b = &r->vhead_specs[1];
    memset(r->vhead_specs, 0, sizeof r->vhead_specs);
    snprintf(w->name, sizeof w->name, "v_head.summary.weight");
    w->ndim = 2;
    w->shape[0] = 1;
    w->shape[1] = C;
    w->numel = (size_t)C;
    w->offset = 0;
    snprintf(b->name, sizeof b->name, "v_head.summary.bias");
    b->ndim = 1;
    b->shape[0] = 1;
    b->numel = 1;
    b->offset = (size_t)C;
    b->no_decay = 1;
    return adamw_init(&r->vhead_opt, r->vhead_n, err);
}

// Loads the models and tokenizers, resolves the stop token and value source, reads the prompts.
static rlhf_status setup(ppo_run *r, rlhf_err *err) {
    const ppo_args *a = r->a;
    model_load_opts lo = {.quiet = 0, .init_seed = a->seed};
    // peft_options with only the 4-bit settings: a frozen 4-bit reward model
    peft_options quant = a->peft;
    quant.use_peft = 0;
    RLHF_TRY(rollout_load_policy(&r->policy, a->model_name_or_path, a->resume_from_checkpoint, &a->peft, &lo, err));
    RLHF_TRY(model_set_torch_dtype(r->policy, a->torch_dtype, err));  // the saved policy's dtype
    if (a->peft.use_peft) {
        int64_t qb, fb;
        peft_quantized_bytes(r->policy, &qb, &fb);
        model_trainable tv;
        model_trainable_view(r->policy, &tv);
        fprintf(stderr, "rlhf ppo: LoRA r=%d on %d layers: %zu trainable of %zu parameters%s; the reference is the "
                        "policy with its adapters off (--sft_model_path %s is not loaded)\n", a->peft.lora.r,
                peft_n_adapted(r->policy), tv.n, r->policy->n_params, qb ? " (4-bit base)" : "", a->sft_model_path);
    } else {
        model_load_opts lf = lo;
        lf.frozen = 1;  // no_grad; a bf16 checkpoint stays bf16 in memory
        RLHF_TRY(peft_load_model_dir(&r->ref, a->sft_model_path, HEAD_LM, NULL, &lf, err));
        if (peft_n_adapted(r->ref)) RLHF_TRY(peft_merge_and_unload(r->ref, err));  // an adapter directory
        if (r->ref->cfg.vocab_size != r->policy->cfg.vocab_size)
            return rlhf_fail(err, RLHF_EINPUT, "--sft_model_path %s: vocabulary of %d tokens, the policy has %d",
                             a->sft_model_path, r->ref->cfg.vocab_size, r->policy->cfg.vocab_size);
    }
    // The frozen reward model, 4-bit too with --load_in_4bit; a peft adapter directory (`rlhf reward
    // --use_peft`) loads as its base with the adapter applied.
    const peft_options *rq = a->peft.load_in_4bit ? &quant : NULL;
    model_load_opts lr = lo;
    lr.peft = rq;
    lr.frozen = 1;  // no_grad; a bf16 checkpoint stays bf16 in memory (without --load_in_4bit)
    const int remote = reward_source_is_url(a->reward_model_path);
    if (remote) {  // the rewards come from a server: it reads the decoded (prompt, response) texts
        reward_source_opts ro;
        reward_source_opts_default(&ro);
        ro.path = a->reward_model_path;
        ro.normalize = a->normalize_reward;
        ro.batch_size = a->local_rollout_forward_batch_size;
        ro.timeout_s = a->reward_timeout;
        ro.max_retries = a->reward_retries;
        RLHF_TRY(reward_source_open(&r->remote, &ro, err));
    } else {
        RLHF_TRY(peft_load_model_dir(&r->reward, a->reward_model_path, HEAD_SEQCLS, rq, &lr, err));
        if (r->reward->n_new_head_tensors && !a->allow_new_reward_head)
            return rlhf_fail(err, RLHF_EINPUT, "--reward_model_path %s: not a reward model: its checkpoint has no score "
                             "head for %s (a base or causal-LM model?), so the head would be random and every reward "
                             "noise; train one with `rlhf reward` first, or give --allow_new_reward_head to use it "
                             "anyway", a->reward_model_path, r->reward->cfg.architecture);
        RLHF_TRY(reward_norm_load(&r->rm_norm, r->reward, a->normalize_reward, a->reward_model_path, err));
    }

    if (tokenizer_files_present(a->model_name_or_path))
        RLHF_TRY(tokenizer_load(&r->policy_tok, a->model_name_or_path, err));
    else if (tokenizer_files_present(a->sft_model_path))
        RLHF_TRY(tokenizer_load(&r->policy_tok, a->sft_model_path, err));
    if (remote && !r->policy_tok)
        return rlhf_fail(err, RLHF_EINPUT, "--reward_model_path %s: a remote reward model reads texts, but the policy "
                         "%s has no tokenizer files to decode its responses", a->reward_model_path,
                         a->model_name_or_path);
    if (!remote && r->policy_tok && tokenizer_files_present(a->reward_model_path))
        RLHF_TRY(tokenizer_load(&r->reward_tok, a->reward_model_path, err));
    // Tokenizer ids the model cannot embed are bad input naming both files (tokenizer_check_model_vocab).
    if (r->policy_tok)
        RLHF_TRY(tokenizer_check_model_vocab(r->policy_tok, r->policy->cfg.vocab_size, a->model_name_or_path, err));
    if (r->reward_tok)
        RLHF_TRY(tokenizer_check_model_vocab(r->reward_tok, r->reward->cfg.vocab_size, a->reward_model_path, err));
    if (!remote && !r->reward_tok && r->reward->cfg.vocab_size < r->policy->cfg.vocab_size)
        return rlhf_fail(err, RLHF_EINPUT,
                         "--reward_model_path %s: without tokenizer files on both sides the reward model reads the "
                         "policy's token ids, but its vocabulary (%d) is smaller than the policy's (%d)",
                         a->reward_model_path, r->reward->cfg.vocab_size, r->policy->cfg.vocab_size);
    r->rm_max_len = remote ? 0 : r->reward->cfg.max_positions;
    r->rm_eos = r->reward_tok && tokenizer_eos_id(r->reward_tok) >= 0 ? tokenizer_eos_id(r->reward_tok)
                : remote ? -1 : r->reward->cfg.eos_token_id;

    int policy_eos = r->policy_tok && tokenizer_eos_id(r->policy_tok) >= 0 ? tokenizer_eos_id(r->policy_tok)
                                                                           : r->policy->cfg.eos_token_id;
    if (!strcmp(a->stop_token, "eos")) {
        if (policy_eos < 0)
            return rlhf_fail(err, RLHF_EINPUT, "--stop_token eos: the policy %s has no EOS token (tokenizer or config)",
                             a->model_name_or_path);
        r->stop_id = policy_eos;
    } else if (!strcmp(a->stop_token, "none")) {
        r->stop_id = -1;
    } else {
        char *end = NULL;
        long v = strtol(a->stop_token, &end, 10);
        if (!*a->stop_token || *end)  // not a number: a token of the policy's vocabulary
            v = r->policy_tok ? tokenizer_token_to_id(r->policy_tok, a->stop_token) : -1;
        if (v < 0 || v >= r->policy->cfg.vocab_size)
            return rlhf_fail(err, RLHF_EINPUT, "--stop_token: expected eos, none, a token id below %d or a token of "
                             "the policy's vocabulary, got '%s'", r->policy->cfg.vocab_size, a->stop_token);
        r->stop_id = (int)v;
    }
    r->fill_id = r->stop_id >= 0 ? r->stop_id : 0;

    r->value_source = a->value_model;
    if (r->value_source == PPO_VALUE_REWARD) {
        const char *why = NULL;
        if (remote)
            why = "it is remote";
        else if (!r->reward->cfg.is_decoder)
            why = "it is an encoder, which cannot give a value per policy token";
        else if (r->reward->cfg.num_labels != 1)
            why = "its head has more than one label";
        else if (r->reward->cfg.vocab_size != r->policy->cfg.vocab_size ||
                 (r->reward_tok && !same_tokenizer(r->policy_tok, r->reward_tok)))
            why = "its tokenizer differs from the policy's";
        if (why) {
            fprintf(stderr, "rlhf ppo: notice: --value_model reward: the reward model cannot serve as value model (%s); "
                            "using a value head on the policy (--value_model head)\n", why);
            r->value_source = PPO_VALUE_HEAD;
        } else {
            char vdir[4200];
            const char *dir = a->reward_model_path;
            if (a->resume_from_checkpoint) dir = path_join(vdir, sizeof vdir, a->resume_from_checkpoint, "value_model");
            model_load_opts q = lo;
            q.quiet = 1;
            RLHF_TRY(peft_load_model_dir(&r->value, dir, HEAD_SEQCLS, NULL, &q, err));
            RLHF_TRY(peft_merge_and_unload(r->value, err));  // trained in full: an adapter is merged in
            RLHF_TRY(find_score_row(r->value, &r->value_score_off, err));
        }
    }
    RLHF_TRY(load_all_prompts(r, err));

    // TRL's arithmetic: micro, mini and local are per process; batch (an update's episodes) spans them all
    r->n_ranks = dist_size(a->dist);
    r->rank = dist_rank(a->dist);
    r->micro = a->per_device_train_batch_size;
    r->mini = r->micro * a->gradient_accumulation_steps;
    r->local = r->mini * a->num_mini_batches;
    r->batch = r->local * r->n_ranks;
    r->lo = r->rank * r->local;
    r->fwd = a->local_rollout_forward_batch_size < r->local ? a->local_rollout_forward_batch_size : r->local;
    r->R = a->response_length;
    long long total = a->total_episodes > 0 ? a->total_episodes : (long long)(a->num_train_epochs * r->n_prompts);
    if (total < 1) return rlhf_fail(err, RLHF_EINPUT, "--total_episodes: the run would have no episodes");
    r->num_updates = ppo_num_updates(total, r->batch);
    RLHF_TRY(ppo_kl_controller_init(&r->klc, a->kl_coef, a->adap_kl_ctrl, a->kl_target, a->kl_horizon, err));

    r->policy->gradient_checkpointing = a->gradient_checkpointing;
    if (r->value) r->value->gradient_checkpointing = a->gradient_checkpointing;
    RLHF_TRY(model_alloc_grads(r->policy, err));
    model_trainable tv;  // with LoRA: the adapters only
    model_trainable_view(r->policy, &tv);
    RLHF_TRY(adamw_init(&r->policy_opt, tv.n, err));
    if (r->value) {
        RLHF_TRY(model_alloc_grads(r->value, err));
        RLHF_TRY(adamw_init(&r->value_opt, r->value->n_params, err));
    } else {
        RLHF_TRY(init_value_head(r, err));
    }
    return alloc_buffers(r, err);
}

// ---- one update -----------------------------------------------------------------------------------

// Scratch of the PPO epochs, sized once for a micro-batch.
typedef struct {
    int32_t *ids, *mask, *pos, *resp;                        // (micro, T) / (micro, R)
    float *old_lp, *old_v, *adv, *ret, *rmask;               // (micro, R) gathered from the rollout
    float *new_lp, *new_v, *entropy, *lse, *dlp, *dval;      // (micro, R)
    float *dlogits;  // (micro, R, V): the head's response slots; NULL: the gradient overwrites policy->out
    float *dhidden, *dhidden_v;                              // (micro, T, C) policy / value model
} ppo_scratch;

static void scratch_free(ppo_scratch *s) {
    void *ps[] = {s->ids, s->mask, s->pos, s->resp, s->old_lp, s->old_v, s->adv, s->ret, s->rmask, s->new_lp,
                  s->new_v, s->entropy, s->lse, s->dlp, s->dval, s->dlogits, s->dhidden, s->dhidden_v};
    for (size_t i = 0; i < sizeof ps / sizeof *ps; i++) free(ps[i]);
    memset(s, 0, sizeof *s);
}

static rlhf_status scratch_init(ppo_scratch *s, const ppo_run *r, rlhf_err *err) {
    memset(s, 0, sizeof *s);
    size_t M = (size_t)r->micro, R = (size_t)r->R, T = (size_t)r->max_prompt + R;
    size_t V = (size_t)r->policy->cfg.vocab_size, C = (size_t)r->policy->cfg.hidden_size;
    int ok = (s->ids = malloc(M * T * 4)) && (s->mask = malloc(M * T * 4)) && (s->pos = malloc(M * T * 4)) &&
             (s->resp = malloc(M * R * 4));
    float **fs[] = {&s->old_lp, &s->old_v, &s->adv, &s->ret, &s->rmask, &s->new_lp, &s->new_v, &s->entropy,
                    &s->lse, &s->dlp, &s->dval};
    for (size_t i = 0; i < sizeof fs / sizeof *fs; i++) ok = ok && (*fs[i] = calloc(M * R, sizeof(float)));
    if (r->policy->backward_reads_out)  // else the logits' gradient overwrites them (no second (M, R, V) buffer)
        ok = ok && (s->dlogits = malloc(M * R * V * sizeof(float)));
    ok = ok && (s->dhidden = malloc(M * T * C * sizeof(float)));
    if (ok && r->value) ok = (s->dhidden_v = malloc(M * T * (size_t)r->value->cfg.hidden_size * sizeof(float))) != NULL;
    if (!ok) {
        scratch_free(s);
        return rlhf_fail(err, RLHF_ERUNTIME, "out of memory allocating PPO update buffers");
    }
    return RLHF_OK;
}

typedef struct {
    double approxkl, pg_clipfrac, pg_loss, vf_loss, vf_clipfrac, entropy;
    double *ratio;  // one per micro-batch (val/ratio_var is their variance, as TRL's ratio_stats.var())
    int n;
} ppo_epoch_stats;

// Forward + loss + backward of one micro-batch (rows idx[0..m)) with gradient scale 1 / accumulation. With
// processes the rows are this rank's part of the global micro-batch and share is its part of the global
// micro-batch's response tokens: the loss, its gradient and every statistic are weighted by it, so their
// sums over ranks are the global micro-batch's means.
static rlhf_status micro_step(ppo_run *r, ppo_scratch *s, const int *idx, int m, double share, ppo_epoch_stats *es,
                              rlhf_err *err) {
    const ppo_args *a = r->a;
    const int P = r->P, T = r->T, R = r->R, V = r->policy->cfg.vocab_size, C = r->policy->cfg.hidden_size;
    for (int i = 0; i < m; i++) {
        int b = idx[i];
        memcpy(s->ids + (size_t)i * T, r->qr_ids + (size_t)b * T, (size_t)T * 4);
        memcpy(s->mask + (size_t)i * T, r->qr_mask + (size_t)b * T, (size_t)T * 4);
        memcpy(s->pos + (size_t)i * T, r->qr_pos + (size_t)b * T, (size_t)T * 4);
        memcpy(s->resp + (size_t)i * R, r->responses + (size_t)b * R, (size_t)R * 4);
        memcpy(s->old_lp + (size_t)i * R, r->logprobs + (size_t)b * R, (size_t)R * 4);
        memcpy(s->old_v + (size_t)i * R, r->values + (size_t)b * R, (size_t)R * 4);
        memcpy(s->adv + (size_t)i * R, r->advantages + (size_t)b * R, (size_t)R * 4);
        memcpy(s->ret + (size_t)i * R, r->returns + (size_t)b * R, (size_t)R * 4);
        memcpy(s->rmask + (size_t)i * R, r->mask + (size_t)b * R, (size_t)R * 4);
    }
    // the policy's LM head on the R positions that predict the response only: logits (m, R, V)
    model_batch mb = {.B = m, .T = T, .input_ids = s->ids, .attention_mask = s->mask, .position_ids = s->pos,
                      .head_from = P - 1, .head_count = R};
    RLHF_TRY(model_forward(r->policy, &mb, err));
    const float *logits = r->policy->out;
    rollout_logprobs(s->new_lp, s->lse, logits, s->resp, m, R, 1, R, V, a->temperature + PPO_TEMPERATURE_EPS);
    if (r->value) {
        RLHF_TRY(model_forward(r->value, &mb, err));
        ppo_values_from_hidden(s->new_v, r->value->last_hidden, r->value->params + r->value_score_off, 0.0f, m, T, P,
                               R, r->value->cfg.hidden_size);
    } else {
        ppo_values_from_hidden(s->new_v, r->policy->last_hidden, r->vhead, r->vhead[C], m, T, P, R, C);
    }
    ppo_loss_config lc = {(float)a->cliprange, (float)a->cliprange_value, (float)a->vf_coef};
    ppo_loss_stats ls;
    RLHF_TRY(ppo_loss_forward(&ls, s->new_lp, s->new_v, s->old_lp, s->old_v, s->adv, s->ret, s->rmask, &lc, m, R, err));
    es->approxkl += ls.approxkl * share;
    es->pg_clipfrac += ls.pg_clipfrac * share;
    es->pg_loss += ls.pg_loss * share;
    es->vf_loss += ls.vf_loss * share;
    es->vf_clipfrac += ls.vf_clipfrac * share;
    es->ratio[es->n++] = ls.ratio_mean * share;

    memset(s->dlp, 0, (size_t)m * R * sizeof(float));
    memset(s->dval, 0, (size_t)m * R * sizeof(float));
    ppo_loss_backward(s->dlp, s->dval, s->new_lp, s->new_v, s->old_lp, s->old_v, s->adv, s->ret, s->rmask, &lc,
                      r->n_ranks == 1 ? 1.0f / (float)a->gradient_accumulation_steps
                                      : (float)(share / a->gradient_accumulation_steps),
                      m, R);
    // d loss / d logits on response slots (zero on the prompt), entropy on the way (policy/entropy_avg)
    float *dlogits = s->dlogits ? s->dlogits : r->policy->out;  // in place: each slot read before it is written
    rollout_logprobs_backward(dlogits, s->entropy, logits, s->lse, s->resp, s->dlp, m, R, 1, R, V,
                              a->temperature + PPO_TEMPERATURE_EPS);
    es->entropy += ppo_masked_mean(s->entropy, s->rmask, (int64_t)m * R) * share;
    // value gradients: v = h . w + b at hidden positions P-1+t
    const int Cv = r->value ? r->value->cfg.hidden_size : C;
    const float *hidden = r->value ? r->value->last_hidden : r->policy->last_hidden;
    const float *w = r->value ? r->value->params + r->value_score_off : r->vhead;
    float *dw = r->value ? r->value->grads + r->value_score_off : r->vhead_grad;
    float *dh = r->value ? s->dhidden_v : s->dhidden;
    memset(dh, 0, (size_t)m * T * Cv * sizeof(float));
    for (int i = 0; i < m; i++)
        for (int t = 0; t < R; t++) {
            float g = s->dval[(size_t)i * R + t];
            if (g == 0.0f) continue;
            size_t at = ((size_t)i * T + P - 1 + t) * Cv;
            for (int c = 0; c < Cv; c++) {
                dh[at + c] += g * w[c];
                dw[c] += g * hidden[at + c];
            }
            if (!r->value) r->vhead_grad[C] += g;
        }
    if (r->value) {
        // the value model's activations are the live ones only until its next forward: backward it first
        RLHF_TRY(model_backward(r->value, NULL, s->dhidden_v, err));
        RLHF_TRY(model_backward(r->policy, dlogits, NULL, err));
    } else {
        RLHF_TRY(model_backward(r->policy, dlogits, s->dhidden, err));
    }
    return RLHF_OK;
}

// Sums the gradients of every trained buffer over the processes (each holds its rows' share).
static rlhf_status allreduce_grads(ppo_run *r, rlhf_err *err) {
    dist *d = r->a->dist;
    if (r->n_ranks == 1) return RLHF_OK;
    model_trainable p;
    model_trainable_view(r->policy, &p);
    RLHF_TRY(dist_allreduce_sum_f32(d, p.grads, p.n, err));
    if (r->value) return dist_allreduce_sum_f32(d, r->value->grads, r->value->n_params, err);
    return dist_allreduce_sum_f32(d, r->vhead_grad, r->vhead_n, err);
}

// Response tokens (mask sum) of rows idx[0..m).
static double mask_sum(const ppo_run *r, const int *idx, int m) {
    double c = 0;
    for (int i = 0; i < m; i++)
        for (int t = 0; t < r->R; t++) c += r->mask[(size_t)idx[i] * r->R + t];
    return c;
}

static double sumsq_norm(float *g, size_t n) {
    double x = clip_grad_norm(g, n, 0.0);
    return x * x;
}

static void scale(float *g, size_t n, float f) {
    for (size_t i = 0; i < n; i++) g[i] *= f;
}

// Global-norm clipping over every trained buffer (policy, value head or value model, as one
// optimizer over TRL's PolicyAndValueWrapper), then AdamW. A non-finite norm skips the step.
static int optimizer_step(ppo_run *r, double lr) {
    const ppo_args *a = r->a;
    model_trainable p;  // the policy's trainable range (the adapters with LoRA)
    model_trainable_view(r->policy, &p);
    double sq = sumsq_norm(p.grads, p.n);
    if (r->value) sq += sumsq_norm(r->value->grads, r->value->n_params);
    else sq += sumsq_norm(r->vhead_grad, r->vhead_n);
    double norm = sqrt(sq);
    int stepped = isfinite(norm);
    if (stepped) {
        if (a->max_grad_norm > 0 && norm > a->max_grad_norm) {
            float f = (float)(a->max_grad_norm / (norm + 1e-6));
            scale(p.grads, p.n, f);
            if (r->value) scale(r->value->grads, r->value->n_params, f);
            else scale(r->vhead_grad, r->vhead_n, f);
        }
        adamw_config c = {ADAMW_DEFAULT_BETA1, ADAMW_DEFAULT_BETA2, ADAMW_DEFAULT_EPS, a->weight_decay};
        adamw_step(&r->policy_opt, p.params, p.grads, p.specs, p.n_specs, lr, &c);
        if (r->value)
            adamw_step(&r->value_opt, r->value->params, r->value->grads, r->value->specs, r->value->n_specs, lr, &c);
        else
            adamw_step(&r->vhead_opt, r->vhead, r->vhead_grad, r->vhead_specs, 2, lr, &c);
    }
    model_zero_grads(r->policy);
    if (r->value) model_zero_grads(r->value);
    else memset(r->vhead_grad, 0, r->vhead_n * sizeof(float));
    return stepped;
}

// The prompt of episode e: passes over the prompts in an order shuffled per pass.
static void batch_rows(ppo_run *r, long long update, int *perm, long long *perm_pass) {
    for (int i = 0; i < r->batch; i++) {
        long long e = (update - 1) * r->batch + i;
        long long pass = e / r->n_prompts;
        if (pass != *perm_pass) {
            rng_permutation(rng_key(r->a->seed, RNG_STREAM_SHUFFLE, (uint64_t)pass, 0), perm, r->n_prompts);
            *perm_pass = pass;
        }
        r->rows[i] = perm[e % r->n_prompts];
    }
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

enum {
    COL_EPISODE, COL_STEP, COL_KL, COL_ENTROPY, COL_NON_SCORE, COL_RLHF_REWARD, COL_SCORES, COL_APPROXKL,
    COL_PG_CLIPFRAC, COL_PG_LOSS, COL_VF_LOSS, COL_VF_CLIPFRAC, COL_POLICY_ENTROPY, COL_RATIO, COL_RATIO_VAR,
    COL_NUM_EOS, COL_LR, COL_EPS
};

// Optimizer steps skipped in a row (non-finite loss or gradient norm) after which the run stops, as
// reward_trainer.c and sft.c do: fp32 has no loss scaler to recover.
#define PPO_MAX_CONSECUTIVE_SKIPS 20

// One PPO update: rollout, rewards, advantages, epochs of clipped PPO. Fills the logged row.
static rlhf_status ppo_update(ppo_run *r, ppo_scratch *s, long long update, double lr, ppo_log_row *row,
                              int *skipped, int *streak, rlhf_err *err) {
    const ppo_args *a = r->a;
    const int B = r->batch, R = r->R;
    RLHF_TRY(ppo_rollout(r, update, err));
    ppo_compute_rewards(r->rewards, r->kl, r->non_score, r->logprobs, r->ref_logprobs, r->scores, r->mask,
                        r->lengths, (float)r->klc.value, a->kl_estimator, B, R);
    if (a->whiten_rewards) RLHF_TRY(ppo_whiten_rewards(r->rewards, r->mask, B, R, err));
    ppo_gae(r->advantages, r->returns, r->rewards, r->values, r->mask, (float)a->gamma, (float)a->lam, B, R);
    RLHF_TRY(ppo_whiten_advantages(r->advantages, r->mask, B, R, err));
    ppo_rollout_stats rs;
    ppo_rollout_stats_compute(&rs, r->kl, r->non_score, r->logprobs, r->scores, r->mask, r->has_stop, B, R);

    int n_micro_total = a->num_ppo_epochs * a->num_mini_batches * a->gradient_accumulation_steps;
    ppo_epoch_stats es = {0};
    es.ratio = calloc((size_t)n_micro_total, sizeof(double));
    int *perm = malloc((size_t)B * sizeof(int)), *idx = malloc((size_t)r->micro * sizeof(int));
    const int N = r->n_ranks, micro_g = r->micro * N, mini_g = r->mini * N;
    rlhf_status st = RLHF_OK;
    if (!es.ratio || !perm || !idx) {
        st = rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
        goto out;
    }
    for (int ep = 0; ep < a->num_ppo_epochs && !st; ep++) {
        rng_permutation(rng_key(a->seed, RNG_STREAM_PPO, (uint64_t)update, (uint64_t)ep), perm, B);
        for (int mb = 0; mb < a->num_mini_batches && !st; mb++) {
            for (int k = 0; k < a->gradient_accumulation_steps && !st; k++) {
                // the global micro-batch of micro x N rows; this rank takes its positions rank, rank + N, ...
                const int *g = perm + mb * mini_g + k * micro_g;
                if (N == 1) {
                    st = micro_step(r, s, g, r->micro, 1.0, &es, err);
                    continue;
                }
                for (int i = 0; i < r->micro; i++) idx[i] = g[r->rank + i * N];
                double global = mask_sum(r, g, micro_g), local = mask_sum(r, idx, r->micro);
                if (global == 0)
                    st = rlhf_fail(err, RLHF_EINPUT, "ppo loss: the mini-batch has no real response token");
                else if (local > 0)
                    st = micro_step(r, s, idx, r->micro, local / global, &es, err);
                else
                    es.ratio[es.n++] = 0;  // nothing of this micro-batch here; the other ranks carry it
            }
            if (!st) st = allreduce_grads(r, err);
            if (st) break;
            if (optimizer_step(r, lr)) {
                *streak = 0;
            } else {
                (*skipped)++;
                // As reward and sft: a streak of non-finite steps means the weights themselves went bad.
                if (++*streak >= PPO_MAX_CONSECUTIVE_SKIPS) {
                    st = rlhf_fail(err, RLHF_ERUNTIME, "training diverged: %d optimizer steps in a row with a "
                                   "non-finite loss or gradient norm (update %lld); try a lower --learning_rate",
                                   *streak, update);
                    break;
                }
                fprintf(stderr, "rlhf ppo: update %lld: non-finite loss or gradient norm, optimizer step skipped "
                        "(%d skipped so far)\n", update, *skipped);
            }
        }
    }
    if (st) goto out;
    if (N > 1) {  // the share-weighted statistics summed over ranks are the global micro-batch means
        double sums[6] = {es.approxkl, es.pg_clipfrac, es.pg_loss, es.vf_loss, es.vf_clipfrac, es.entropy};
        if ((st = dist_allreduce_sum_f64(a->dist, sums, 6, err)) ||
            (st = dist_allreduce_sum_f64(a->dist, es.ratio, (size_t)es.n, err)))
            goto out;
        es.approxkl = sums[0], es.pg_clipfrac = sums[1], es.pg_loss = sums[2], es.vf_loss = sums[3];
        es.vf_clipfrac = sums[4], es.entropy = sums[5];
    }
    double n = es.n;
    double rmean = 0, rvar = NAN;
    for (int i = 0; i < es.n; i++) rmean += es.ratio[i] / n;
    if (es.n > 1) {
        rvar = 0;
        for (int i = 0; i < es.n; i++) rvar += (es.ratio[i] - rmean) * (es.ratio[i] - rmean) / (n - 1);
    }
    row->v[COL_STEP] = (double)update;
    row->v[COL_EPISODE] = (double)update * B;
    row->v[COL_KL] = rs.kl;
    row->v[COL_ENTROPY] = rs.entropy;
    row->v[COL_NON_SCORE] = rs.non_score_reward;
    row->v[COL_RLHF_REWARD] = rs.rlhf_reward;
    row->v[COL_SCORES] = rs.scores;
    row->v[COL_APPROXKL] = es.approxkl / n;
    row->v[COL_PG_CLIPFRAC] = es.pg_clipfrac / n;
    row->v[COL_PG_LOSS] = es.pg_loss / n;
    row->v[COL_VF_LOSS] = es.vf_loss / n;
    row->v[COL_VF_CLIPFRAC] = es.vf_clipfrac / n;
    row->v[COL_POLICY_ENTROPY] = es.entropy / n;
    row->v[COL_RATIO] = rmean;
    row->v[COL_RATIO_VAR] = rvar;
    row->v[COL_NUM_EOS] = rs.num_stop_tokens;
    row->v[COL_LR] = lr;
    if (a->adap_kl_ctrl) ppo_kl_controller_update(&r->klc, rs.kl, B);
out:
    free(es.ratio);
    free(perm);
    free(idx);
    return st;
}

// ---- samples.jsonl --------------------------------------------------------------------------------

static rlhf_status add_samples(ppo_run *r, long long update, rlhf_err *err) {
    int n = r->batch < PPO_SAMPLES_PER_POINT ? r->batch : PPO_SAMPLES_PER_POINT;
    for (int b = 0; b < n; b++) {
        const ppo_prompt *p = &r->prompts[r->rows[b]];
        cJSON *o = cJSON_CreateObject();
        if (!o) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
        cJSON_AddNumberToObject(o, "step", (double)update);
        cJSON_AddNumberToObject(o, "episode", (double)update * r->batch);
        if (p->text) {
            cJSON_AddStringToObject(o, "prompt", p->text);
        } else {
            cJSON *ids = cJSON_AddArrayToObject(o, "prompt_ids");
            for (int i = 0; i < p->n; i++) cJSON_AddItemToArray(ids, cJSON_CreateNumber(p->ids[i]));
        }
        if (r->policy_tok) {
            char *text = NULL;
            rlhf_status st = ppo_response_text(r, b, &text, err);
            if (st) {
                cJSON_Delete(o);
                return st;
            }
            cJSON_AddStringToObject(o, "response", text);
            free(text);
        }
        cJSON *ids = cJSON_AddArrayToObject(o, "response_ids");
        for (int i = 0; i < r->lengths[b]; i++) cJSON_AddItemToArray(ids, cJSON_CreateNumber(r->responses[(size_t)b * r->R + i]));
        cJSON_AddNumberToObject(o, "score", r->scores[b]);
        RLHF_TRY(rollout_samples_append(&r->samples, &r->samples_len, o, err));
    }
    char path[4200];
    return atomic_write(path_join(path, sizeof path, r->a->output_dir, "samples.jsonl"), r->samples, r->samples_len,
                        err);
}

// ---- the run --------------------------------------------------------------------------------------

// Mean score of responses sampled for every eval prompt, batch by batch through the training rollout (so
// penalties and truncation are the training's) with keys of their own: the training's draws do not change.
static rlhf_status eval_scores(ppo_run *r, long long update, double *mean, rlhf_err *err) {
    ppo_prompt *train = r->prompts;
    double sum = 0;
    rlhf_status st = RLHF_OK;
    r->prompts = r->eval_prompts;
    for (int e0 = 0; e0 < r->n_eval && !st; e0 += r->batch) {
        int k = r->n_eval - e0 < r->batch ? r->n_eval - e0 : r->batch;
        for (int b = 0; b < r->batch; b++) r->rows[b] = e0 + (b < k ? b : 0);
        st = ppo_rollout(r, -1 - update, err);  // negative updates: keys no training rollout uses
        for (int b = 0; b < k && !st; b++) sum += r->scores[b];
    }
    r->prompts = train;
    *mean = sum / r->n_eval;
    return st;
}

static void eval_print(ppo_run *r, long long update, double score) {
    printf("{\"episode\": %lld, \"step\": %lld, \"eval/scores\": %.6g}\n", update * r->batch, update, score);
    fflush(stdout);
}

// The logged row as a JSON line on stdout, as the other trainers print theirs.
static void log_row_print(const ppo_log_row *row) {
    static const char *const cols[PPO_LOG_N_COLUMNS] = {PPO_LOG_COLUMNS};
    printf("{");
    for (int c = 0; c < PPO_LOG_N_COLUMNS; c++) {
        char cell[40];
        ppo_format_value(cell, sizeof cell, c, row->v[c]);
        printf("%s\"%s\": %s", c ? ", " : "", cols[c], isfinite(row->v[c]) ? cell : "null");
    }
    printf("}\n");
    fflush(stdout);
}

static rlhf_status log_row_write(csv_log *l, const ppo_log_row *row, rlhf_err *err) {
    char cells[PPO_LOG_N_COLUMNS][40];
    const char *vals[PPO_LOG_N_COLUMNS];
    for (int c = 0; c < PPO_LOG_N_COLUMNS; c++) {
        ppo_format_value(cells[c], sizeof cells[c], c, row->v[c]);
        vals[c] = cells[c];
    }
    return csv_log_row(l, vals, err);
}

static rlhf_status check_output_dir(const ppo_args *a, rlhf_err *err) {
    char p[4200];
    if (a->resume_from_checkpoint) {
        if (!file_exists(path_join(p, sizeof p, a->resume_from_checkpoint, "ppo_state.json")))
            return rlhf_fail(err, RLHF_EINPUT, "--resume_from_checkpoint %s: not a PPO checkpoint (no ppo_state.json)",
                             a->resume_from_checkpoint);
        return RLHF_OK;
    }
    if (a->overwrite_output_dir || !dir_exists(a->output_dir)) return RLHF_OK;
    if (file_exists(path_join(p, sizeof p, a->output_dir, "training_log.csv")) ||
        file_exists(path_join(p, sizeof p, a->output_dir, "config.json")))
        return rlhf_fail(err, RLHF_EINPUT,
                         "--output_dir %s already holds a run; pass --overwrite_output_dir or --resume_from_checkpoint",
                         a->output_dir);
    return RLHF_OK;
}

static rlhf_status train_loop(ppo_run *r, ppo_result *res, rlhf_err *err) {
    const ppo_args *a = r->a;
    long long start = 0;
    const int main_rank = dist_is_main(a->dist);  // the only rank that writes
    if (a->resume_from_checkpoint) RLHF_TRY(ppo_checkpoint_load(r, a->resume_from_checkpoint, &start, err));
    char path[4200];
    path_join(path, sizeof path, a->output_dir, "training_log.csv");
    static const char *const cols[PPO_LOG_N_COLUMNS] = {PPO_LOG_COLUMNS};
    csv_log *log = NULL;
    if (main_rank) {
        RLHF_TRY(make_dirs(a->output_dir, err));
        RLHF_TRY(checkpoint_remove_stale(a->output_dir, err));
        if (a->resume_from_checkpoint) RLHF_TRY(ppo_log_rewrite(r, path, err));
        RLHF_TRY(csv_log_open(&log, path, cols, PPO_LOG_N_COLUMNS, a->resume_from_checkpoint != NULL, err));
    }

    int *perm = malloc((size_t)r->n_prompts * sizeof(int));
    ppo_scratch s;
    rlhf_status st = scratch_init(&s, r, err);
    if (!perm && !st) st = rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    long long perm_pass = -1;
    long long sample_freq = a->num_sample_generations > 0 ? r->num_updates / a->num_sample_generations : 0;
    if (a->num_sample_generations > 0 && sample_freq < 1) sample_freq = 1;
    int skipped = 0, streak = 0;
    progress *pg = a->quiet || !main_rank ? NULL : progress_start("ppo", r->num_updates * r->batch, "ep");
    progress_update(pg, start * r->batch, NULL);
    double t0 = now_seconds();
    char extra[160] = "";
    res->updates_done = start;
    res->episodes_done = start * r->batch;
    res->first_eval_score = res->last_eval_score = NAN;
    if (!st && r->n_eval) {
        st = eval_scores(r, start, &res->first_eval_score, err);
        res->last_eval_score = res->first_eval_score;
        if (!st && main_rank && !a->quiet) eval_print(r, start, res->first_eval_score);
    }
    for (long long u = start + 1; u <= r->num_updates && !st; u++) {
        if (dist_any(a->dist, a->stop && *a->stop)) {  // every rank stops before the same update
            st = main_rank ? ppo_checkpoint_save(r, u - 1, err) : RLHF_OK;
            if (!st) st = rlhf_fail(err, RLHF_EINTERRUPT, "interrupted: state saved in %s/checkpoint-%lld",
                                    a->output_dir, u - 1);
            res->interrupted = 1;
            break;
        }
        batch_rows(r, u, perm, &perm_pass);
        double lr = lr_at(SCHED_LINEAR, a->learning_rate, u - 1, 0, r->num_updates);
        ppo_log_row row;
        st = ppo_update(r, &s, u, lr, &row, &skipped, &streak, err);
        if (st && r->remote_failed) {  // the reward server is gone: keep what the finished updates learned
            long long last = u - 1;
            int saved = last > start && a->save_steps > 0 && last % a->save_steps == 0;  // saved by --save_steps
            rlhf_err e2;
            if (last > start && !saved) saved = ppo_checkpoint_save(r, last, &e2) == RLHF_OK;
            char why[RLHF_ERR_MSG / 2];
            snprintf(why, sizeof why, "%.1000s", err->msg);
            if (saved)
                rlhf_fail(err, RLHF_ERUNTIME, "update %lld: %s; the state after update %lld is in %s/checkpoint-%lld "
                          "(continue with --resume_from_checkpoint once the server is back)", u, why, last,
                          a->output_dir, last);
            else
                rlhf_fail(err, RLHF_ERUNTIME, "update %lld: %s", u, why);
        }
        if (st) break;
        double el = now_seconds() - t0;
        row.v[COL_EPS] = el > 0 ? floor((double)(u - start) * r->batch / el) : 0;
        if (u % a->logging_steps == 0 || u == r->num_updates) {
            st = ppo_log_add(r, &row, err);
            if (!st && log) st = log_row_write(log, &row, err);
            if (!st && log && !a->quiet) {
                if (pg) fprintf(stderr, "\n");
                log_row_print(&row);
            }
        }
        if (st) break;
        if (u == start + 1) res->first_score = row.v[COL_SCORES];
        res->last_score = row.v[COL_SCORES];
        res->last_kl = row.v[COL_KL];
        res->updates_done = u;
        res->episodes_done = u * r->batch;
        if (main_rank && sample_freq > 0 && (u - 1) % sample_freq == 0 && (st = add_samples(r, u, err))) break;
        // the eval rollout reuses the rollout buffers: after everything that reads this update's
        if (r->n_eval && (u % a->logging_steps == 0 || u == r->num_updates)) {
            if ((st = eval_scores(r, u, &res->last_eval_score, err))) break;
            if (main_rank && !a->quiet) eval_print(r, u, res->last_eval_score);
        }
        snprintf(extra, sizeof extra, "score %.3f kl %.4f", row.v[COL_SCORES], row.v[COL_KL]);
        progress_update(pg, u * r->batch, extra);
        if (main_rank && a->save_steps > 0 && u % a->save_steps == 0 && u < r->num_updates)
            st = ppo_checkpoint_save(r, u, err);
    }
    progress_finish(pg, extra);
    if (log) csv_log_close(log);
    if (!main_rank) {
        // the other ranks are done: rank 0 writes the policy and the report
    } else if (!st) {
        st = ppo_save_policy_dir(r, a->output_dir, 0, err);
    }
    if (!st && main_rank && a->merge_adapter && peft_active(r->policy)) {  // the adapter is written; the merged model beside it
        st = peft_merge_and_unload(r->policy, err);
        if (!st) st = model_save(r->policy, a->output_dir, err);
    }
    if (main_rank && (!st || st == RLHF_EINTERRUPT)) {
        rlhf_err e2;
        rlhf_status rs = ppo_report_write(r, st ? &e2 : err);
        if (!st) st = rs;
    }
    if (skipped) fprintf(stderr, "rlhf ppo: %d optimizer steps skipped (non-finite gradients)\n", skipped);
    scratch_free(&s);
    free(perm);
    return st;
}

rlhf_status ppo_train(const ppo_args *a, ppo_result *res, rlhf_err *err) {
    memset(res, 0, sizeof *res);
    RLHF_TRY(ppo_args_check(a, err));
    RLHF_TRY(check_output_dir(a, err));
    ppo_run r;
    memset(&r, 0, sizeof r);
    r.a = a;
    rlhf_status st = setup(&r, err);
    // every rank loaded and validated its inputs: all go on, or all stop with one message
    st = dist_agree(a->dist, st, err);
    if (!st) {
        if (dist_is_main(a->dist) && a->overwrite_output_dir && !a->resume_from_checkpoint && dir_exists(a->output_dir))
            st = remove_tree(a->output_dir, err);
        st = dist_agree(a->dist, st, err);
        if (!st) st = train_loop(&r, res, err);
    }
    run_free(&r);
    return st;
}
