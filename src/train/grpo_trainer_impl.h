// Private to the GRPO / RLOO trainer (grpo_trainer.c: setup and the loop; grpo_trainer_state.c: the log,
// samples, report, checkpoints and resume): the state of one run.
#ifndef RLHF_TRAIN_GRPO_TRAINER_IMPL_H
#define RLHF_TRAIN_GRPO_TRAINER_IMPL_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "io/dataset.h"
#include "models/model.h"
#include "tokenizer/tokenizer.h"
#include "train/grpo_trainer.h"
#include "train/optimizer.h"
#include "train/reward_funcs.h"
#include "train/rollout.h"

#define GRPO_MAX_COLUMNS (32 + 8 * GRPO_MAX_REWARDS)  // training and eval_ columns, 2 per reward source each

typedef struct {
    double v[GRPO_MAX_COLUMNS];
} grpo_log_row;

// One batch of completions on this process (rows N, row stride T = P + R).
#define GRPO_BATCH_FIELDS                                                                                  \
    int N, P, T;                                                                                            \
    int *row_prompt;                      /* (N) prompt index */                                            \
    int32_t *qr_ids, *qr_mask, *qr_pos, *responses;                                                         \
    int *n_generated, *lengths, *has_stop;                                                                  \
    float *mask, *old_lp, *ref_lp, *adv;  /* mask/old/ref (N, R); adv (N) */                                \
    float *per_func, *rewards_all;        /* (world * N, K), (world * N) */                                 \
    int *perm;                            /* (N) micro-batch order */                                       \
    double num_items;                     /* dapo normaliser: real tokens of the batch / processes */
typedef struct {
    GRPO_BATCH_FIELDS
} grpo_batch;

typedef struct {
    const grpo_args *a;
    const char *cmd;             // "grpo" or "rloo" (messages)
    model *policy, *ref;         // ref NULL: none (beta 0) or the policy with adapters off (LoRA)
    int use_ref;                 // ref log-probs needed (beta != 0)
    tokenizer *tok;              // the policy's; NULL on the id route
    reward_fn *rewards[2 * GRPO_MAX_REWARDS];
    float weights[2 * GRPO_MAX_REWARDS];
    int K;
    dataset data;                // the rows (reward functions read their fields)
    rollout_prompt *prompts;
    int n_prompts, max_prompt;
    int stop_id, fill_id;

    int G, R, micro, spg, iters, ga;
    int world, rank;
    int prompts_per_gen;         // over all processes
    long long gens_per_epoch, max_steps;
    int need_old;                // old log-probs stored (off-policy micro-batches, or RLOO always)

    // the current generation batch (local rows), row stride T = P + R; the evaluation batch has the same
    // fields (eval), swapped in while an evaluation runs
    long long gen_index;         // -1: none yet
    union {
        struct { GRPO_BATCH_FIELDS };
        grpo_batch batch;
    };
    grpo_batch eval;             // buffers of evaluation batches (rows: per_device_eval_batch_size)
    rollout_prompt *eval_prompts; // --eval_dataset_name's prompts or --eval_split's share (NULL: none)
    int n_eval;
    dataset eval_data;           // --eval_dataset_name's rows (reward functions read their fields)
    const rollout_prompt *prompts_of; // the prompts row_prompt indexes (prompts or eval_prompts)
    const dataset *rows_of;      // the rows the prompts being sampled index (&data or &eval_data)
    long long steps_per_epoch;

    adamw_state opt;
    // metric accumulators (TRL's _metrics lists): sums and counts per column since the last log
    const char *columns[GRPO_MAX_COLUMNS];
    char column_names[GRPO_MAX_COLUMNS][128];
    int n_columns;
    int first_eval_column;       // the eval_* columns start here (0: no evaluation)
    int evaluating;              // metrics go to the eval_* columns
    double acc_sum[GRPO_MAX_COLUMNS];
    int acc_n[GRPO_MAX_COLUMNS];
    double num_tokens;           // prompt + completion tokens seen (all processes)
    double loss_since_log;
    int steps_since_log;
    grpo_log_row *log;
    int n_log, cap_log;
    char *samples;
    size_t samples_len;
} grpo_run;

// Column indices of the fixed columns (the per-reward and later ones are found by name).
enum {
    GC_STEP, GC_EPOCH, GC_LOSS, GC_GRAD_NORM, GC_LR, GC_NUM_TOKENS, GC_MEAN_LEN, GC_MIN_LEN, GC_MAX_LEN,
    GC_CLIPPED, GC_MEAN_TERM, GC_FIXED
};
int grpo_column(const grpo_run *r, const char *name);  // -1 when absent

// ---- grpo_trainer_state.c ----
rlhf_status grpo_log_add(grpo_run *r, const grpo_log_row *row, rlhf_err *err);
rlhf_status grpo_log_rewrite(const grpo_run *r, const char *path, rlhf_err *err);
void grpo_format_value(char *buf, size_t n, int column, double v);
rlhf_status grpo_samples_add(grpo_run *r, long long step, rlhf_err *err);
rlhf_status grpo_checkpoint_save(grpo_run *r, long long step, rlhf_err *err);
rlhf_status grpo_checkpoint_load(grpo_run *r, const char *dir, long long *step, rlhf_err *err);
rlhf_status grpo_save_policy_dir(const grpo_run *r, const char *dir, int checkpoint, rlhf_err *err);
rlhf_status grpo_report_write(const grpo_run *r, rlhf_err *err);
// The completion text of local row b (stop token excluded); malloc'd, NULL without a tokenizer.
rlhf_status grpo_completion_text(const grpo_run *r, int b, char **out, rlhf_err *err);

#endif
