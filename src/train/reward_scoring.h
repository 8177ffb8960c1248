// The one path from encoded rows to rewards, shared by `rlhf score`, `rlhf serve` and the local reward
// source (train/reward_source.h): rows are encoded as train/preference_data.h reads them, padded into
// batches (train/trainer_common.h), run through the sequence-classification forward, and each reward read
// as the contract says (1 label: the logit; 2 labels: the probability of label 1). Reward normalisation is
// OpenRLHF's: `rlhf reward` saves the mean and std of its evaluation rewards in config.json ("mean",
// "std"), and --normalize_reward returns (r - mean) / std.
#ifndef RLHF_TRAIN_REWARD_SCORING_H
#define RLHF_TRAIN_REWARD_SCORING_H

#include "base/error.h"
#include "models/model.h"
#include "train/preference_data.h"

// One forward over n sequences (one padded batch) -> out[i], the read reward of seqs[i].
rlhf_status reward_score_seqs(model *m, const token_seq *const *seqs, int n, double *out, rlhf_err *err);

// Every sequence of set, batch_rows rows per forward (a pair row is two sequences of the same forward):
// chosen[r] (the response of a single row) and rejected[r] (pair rows only).
rlhf_status reward_score_set(model *m, const pref_set *set, int batch_rows, double *chosen, double *rejected,
                             rlhf_err *err);

// Encodes n (prompt, response) texts as `rlhf score` encodes a dataset row {"prompt", "response"}
// (prompts[i] NULL: {"response"} alone, the whole text read as one, as `score --encoding concat` reads
// prompt + response). Errors name "where:I" with I the 0-based index. o->allow_single must be set.
rlhf_status reward_encode_texts(pref_set *out, const pref_opts *o, const char *const *prompts,
                                const char *const *responses, int n, const char *where, rlhf_err *err);

// ---- normalisation (OpenRLHF: config.mean / config.std, set by the reward trainer's evaluation) ----
#define REWARD_NORM_MEAN_KEY "mean"
#define REWARD_NORM_STD_KEY "std"
// OpenRLHF clamps the std: torch.std(rewards).clamp(min=1e-8).
#define REWARD_NORM_MIN_STD 1e-8

typedef struct {
    int on;
    double mean, std;
} reward_norm;

// Mean and unbiased std (torch.std) of v[0..n), std clamped to REWARD_NORM_MIN_STD; written into m's
// config.json fields "mean" and "std".
rlhf_status reward_norm_record(model *m, const double *v, long n, double *mean, double *std, rlhf_err *err);
// normalize 0: out->on = 0. Else reads "mean" and "std" from m's config (RLHF_EINPUT naming model_dir and
// the flag when either is missing or std is not > 0).
rlhf_status reward_norm_load(reward_norm *out, const model *m, int normalize, const char *model_dir,
                             rlhf_err *err);
static inline double reward_norm_apply(const reward_norm *n, double r) {
    return n->on ? (r - n->mean) / n->std : r;
}

#endif
