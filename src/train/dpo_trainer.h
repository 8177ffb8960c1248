// Direct preference optimisation of a causal LM (TRL 0.27 DPOTrainer on HF Trainer's loop): each
// micro-batch of P preference pairs (pref_set rows built with pref_opts.dpo) is one 2P-row forward,
// chosen rows first, then rejected (TRL's concatenated_forward), right-padded; the sequence log-prob of
// a response is the sum of its token log-probs (logits[t] scoring ids[t+1]) over response tokens only;
// the reference's log-probs come from a frozen reference model, from the policy with its LoRA adapters
// switched off, or from a table computed once before training (precompute_ref_log_probs). The loss
// (train/dpo_loss.h, mean over pairs, plus rpo_alpha times the chosen responses' token NLL) is divided
// by gradient_accumulation_steps; AdamW, schedules, clipping, evaluation, checkpoints, resume, the
// NaN guard and SIGINT handling are those of sft/reward. Logged with TRL's metric names.
#ifndef RLHF_TRAIN_DPO_TRAINER_H
#define RLHF_TRAIN_DPO_TRAINER_H

#include <signal.h>
#include <stdint.h>

#include "base/dist.h"
#include "base/error.h"
#include "models/model.h"
#include "tokenizer/tokenizer.h"
#include "train/dpo_loss.h"
#include "train/preference_data.h"
#include "train/trainer_args.h"

// The metrics of one batch, TRL's names (eval_ prefixed for evaluation), means over its pairs.
enum {
    DPO_M_LOSS,
    DPO_M_REWARDS_CHOSEN,
    DPO_M_REWARDS_REJECTED,
    DPO_M_REWARDS_ACCURACIES,
    DPO_M_REWARDS_MARGINS,
    DPO_M_LOGPS_CHOSEN,
    DPO_M_LOGPS_REJECTED,
    DPO_M_LOGITS_CHOSEN,   // mean logit over the vocabulary and the chosen responses' scored positions
    DPO_M_LOGITS_REJECTED,
    DPO_M_NLL_LOSS,        // with rpo_alpha only (NaN otherwise)
    DPO_N_METRICS
};
extern const char *const dpo_metric_names[DPO_N_METRICS];  // "loss", "rewards/chosen", ...

typedef struct {
    trainer_common_args common;       // disable_dropout: TRL DPOConfig default true; resume_from: the caller
                                      // loaded the policy from that checkpoint
    const pref_set *eval;             // held-out pairs (NULL: none)
    volatile sig_atomic_t *stop;      // SIGINT/SIGTERM flag (may be NULL)
    const char *base_model_name;      // adapters: base_model_name_or_path of the saved adapter
    int merge_adapter;
    // DPO
    dpo_loss_config loss;
    double rpo_alpha;                 // NaN: None (no NLL term)
    // The reference: ref (a frozen model), else the policy with adapters off (peft), unless the
    // log-probs are given: ref_train / ref_eval hold 2 values per row of train / eval (chosen, rejected),
    // as dpo_reference_logps computes them.
    model *ref;
    const double *ref_train, *ref_eval;
    dist *dist;                       // NULL: one process
} dpo_args;

typedef struct {
    long long global_step;
    double last_loss;
    double first_eval[DPO_N_METRICS], eval[DPO_N_METRICS];  // before training / at the last evaluation (NaN: none)
    int interrupted;
} dpo_result;

// Reference log-probs of every row of s (out: 2 per row, chosen then rejected), batch_size pairs per
// forward: ref's, or with ref NULL the policy's with its adapters switched off (a model without adapters:
// its own). ipo: length-averaged, as TRL normalises them for that loss.
rlhf_status dpo_reference_logps(model *ref, const pref_set *s, int batch_size, int ipo, double *out, rlhf_err *err);

rlhf_status dpo_train(model *m, const tokenizer *tok, const pref_set *train, const dpo_args *a, dpo_result *res,
                      rlhf_err *err);

#endif
