// Dynamic batching for a reward model shared by concurrent callers (`rlhf serve`): callers queue jobs
// (encoded rows) from any thread and block until their rewards are back; ONE worker thread owns the
// model and drains the queue, packing the rows of several jobs into one forward of up to batch_rows
// sequences (the model's forward is parallel inside, with OpenMP). The worker starts a batch when the
// queue holds batch_rows rows or when the oldest queued job has waited max_wait_ms (OpenRLHF's reward
// server defaults: a few milliseconds), so requests that arrive while a batch runs are scored together
// next, and a request never waits for more than the batch in front of it plus its own.
//
// A job's rows are scored in one forward with the rows of other jobs; the padding then depends on its
// neighbours, which can move a reward in its last float bits (as batching does in PyTorch).
#ifndef RLHF_TRAIN_REWARD_BATCHER_H
#define RLHF_TRAIN_REWARD_BATCHER_H

#include "base/error.h"
#include "models/model.h"
#include "train/preference_data.h"
#include "train/reward_scoring.h"

typedef struct reward_job {
    const pref_set *set;   // single rows (the response in .chosen); set->n >= 1
    double *scores;        // (set->n) filled by the worker: normalised when the batcher normalises
    rlhf_status status;    // set by the worker
    rlhf_err err;
    // private to the batcher
    int done;
    double queued_at;
    struct reward_job *next;
} reward_job;

typedef struct reward_batcher reward_batcher;

// m is owned by the worker until reward_batcher_stop; threads: OpenMP threads of its forward (0: all cores).
// norm: applied to every reward (NULL or norm->on 0: raw rewards).
rlhf_status reward_batcher_start(reward_batcher **out, model *m, int batch_rows, double max_wait_ms, int threads,
                                 const reward_norm *norm, rlhf_err *err);
// Queues job and blocks until it is scored; returns job->status (thread-safe).
rlhf_status reward_batcher_score(reward_batcher *b, reward_job *job);
// Scores every job already queued, then ends the worker and frees b (not the model).
void reward_batcher_stop(reward_batcher *b);

// Counters since the start (for the log line at exit).
typedef struct {
    long long jobs, rows, forwards;
} reward_batcher_stats;
reward_batcher_stats reward_batcher_get_stats(reward_batcher *b);

#endif
