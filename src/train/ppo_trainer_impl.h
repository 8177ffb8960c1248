// Private to the PPO trainer (ppo_trainer.c: the loop; ppo_trainer_rollout.c: sampling, log-probs,
// values and scores; ppo_trainer_state.c: checkpoints and resume): the state of one run.
#ifndef RLHF_TRAIN_PPO_TRAINER_IMPL_H
#define RLHF_TRAIN_PPO_TRAINER_IMPL_H

#include <stdint.h>

#include "models/model.h"
#include "tokenizer/tokenizer.h"
#include "train/optimizer.h"
#include "train/rollout.h"
#include "train/ppo_trainer.h"
#include "train/reward_scoring.h"
#include "train/reward_source.h"

// A prompt row (train/rollout.h, shared with grpo and rloo).
typedef rollout_prompt ppo_prompt;

// One logged row (training_log.csv and ppo_state.json log history), in PPO_LOG_COLUMNS order.
typedef struct {
    double v[PPO_LOG_N_COLUMNS];
} ppo_log_row;

typedef struct {
    const ppo_args *a;
    model *policy, *ref, *reward;  // reward: NULL when the rewards are remote
    reward_source *remote;     // --reward_model_path http://...: the rewards come from a server
    reward_norm rm_norm;       // --normalize_reward with a local reward model
    int remote_failed;         // the reward server stayed unreachable: the loop saves the last finished update
    model *value;              // PPO_VALUE_REWARD: the value model (a copy of the reward model); else NULL
    tokenizer *policy_tok;     // NULL: pre-tokenized prompts and no tokenizer files (the id route)
    tokenizer *reward_tok;     // NULL on the id route
    ppo_value_source value_source;  // after falling back (encoder reward model -> head)
    int stop_id;               // -1: no stop token
    int fill_id;               // id placed in padded / finished slots (masked out; any valid row)
    int rm_eos;                // appended after a decoder reward model's input (-1: none)
    int rm_max_len;            // reward model's max positions (0: unbounded)
    size_t value_score_off;    // value model: offset of its score row (label 0) in params/grads

    // value head (PPO_VALUE_HEAD): weight (C) then bias (1), HF names v_head.summary.{weight,bias}
    float *vhead, *vhead_grad;
    size_t vhead_n;
    param_spec vhead_specs[2];
    adamw_state policy_opt, value_opt, vhead_opt;

    ppo_prompt *prompts;
    int n_prompts;
    ppo_prompt *eval_prompts;  // --eval_dataset_name / --eval_split (NULL: none)
    int n_eval;
    int max_prompt;            // longest prompt (tokens)

    int batch;                 // prompts per update over all processes (TRL batch_size = local_batch_size x N)
    int local;                 // this process's rows of it (TRL local_batch_size): [lo, lo + local)
    int lo;
    int n_ranks, rank;         // base/dist.h
    int mini;                  // rows per mini-batch
    int micro;                 // rows per micro-batch
    int fwd;                   // rows per rollout forward chunk
    int R;                     // response_length
    long long num_updates;
    ppo_kl_controller klc;

    // the rollout of the current update; row stride T = P + R with P its longest prompt
    int P, T;
    int32_t *qr_ids, *qr_mask, *qr_pos;  // (batch, max_prompt + R)
    int32_t *responses;                  // (batch, R)
    int *n_generated, *lengths, *has_stop;  // (batch)
    int *rows;                           // (batch) prompt index of each row
    float *mask, *logprobs, *ref_logprobs, *values, *kl, *non_score, *rewards, *advantages, *returns;  // (batch, R)
    float *scores;                       // (batch)

    ppo_log_row *log;
    int n_log, cap_log;
    char *samples;                       // samples.jsonl content so far (rewritten atomically)
    size_t samples_len;
} ppo_run;

// ---- ppo_trainer_rollout.c ----
// Samples responses for rows [0, r->batch) (prompts r->rows) at update `update`, fills qr_*, responses,
// mask/lengths/has_stop, logprobs, ref_logprobs, values and scores (missing-EOS penalty applied). With
// processes each rank computes rows [lo, lo + local) and the results are gathered: every rank ends with
// the whole batch.
rlhf_status ppo_rollout(ppo_run *r, long long update, rlhf_err *err);
// Values (nb, R) = hidden (nb, T, C) at positions P-1.. dotted with w (C) plus bias.
void ppo_values_from_hidden(float *out, const float *hidden, const float *w, float bias, int nb, int T, int P,
                            int R, int C);
// The response text of row b (decoded with the policy tokenizer, stop token excluded); malloc'd.
rlhf_status ppo_response_text(const ppo_run *r, int b, char **out, rlhf_err *err);

// ---- ppo_trainer_state.c ----
rlhf_status ppo_checkpoint_save(ppo_run *r, long long update, rlhf_err *err);
// Restores policy (already loaded from the checkpoint dir), optimizer states, value head / value
// model, KL coefficient and log history; returns the update reached.
rlhf_status ppo_checkpoint_load(ppo_run *r, const char *dir, long long *update, rlhf_err *err);
// The HF model directory of the policy: model, tokenizer, generation_config.json.
// checkpoint: fp32 weights (exact resume); else the policy's torch_dtype (models/model.h).
rlhf_status ppo_save_policy_dir(const ppo_run *r, const char *dir, int checkpoint, rlhf_err *err);
rlhf_status ppo_log_add(ppo_run *r, const ppo_log_row *row, rlhf_err *err);
// Writes training_log.csv whole from the log history (resume), atomically.
rlhf_status ppo_log_rewrite(const ppo_run *r, const char *path, rlhf_err *err);
void ppo_format_value(char *buf, size_t n, int column, double v);
rlhf_status ppo_report_write(const ppo_run *r, rlhf_err *err);

#endif
