// The reward batcher (train/reward_batcher.h): a mutex-protected FIFO of jobs, one worker thread that
// owns the model, and one condition variable each way (work queued; jobs done).
#include "train/reward_batcher.h"

#include <errno.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct reward_batcher {
    model *m;
    int batch_rows;
    double max_wait_s;
    int threads;
    reward_norm norm;

    pthread_t worker;
    pthread_mutex_t mu;
    pthread_cond_t work_cv;  // a job was queued, or stopping
    pthread_cond_t done_cv;  // some job finished
    reward_job *head, *tail;
    long queued_rows;
    int stopping;
    reward_batcher_stats stats;
};

static double now_mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// The condition variables wait on CLOCK_MONOTONIC, so a wall-clock step cannot stretch a batch's wait.
static void abs_deadline(struct timespec *ts, double t) {
    ts->tv_sec = (time_t)t;
    ts->tv_nsec = (long)((t - (double)ts->tv_sec) * 1e9);
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

// Scores the jobs of the list [first, NULL) (taken off the queue): their sequences in forwards of at most
// batch_rows. A failed forward fails the jobs it held.
static void score_jobs(reward_batcher *b, reward_job *first) {
    long total = 0;
    for (reward_job *j = first; j; j = j->next) {
        total += j->set->n;
        j->status = RLHF_OK;
    }
    const token_seq **seqs = malloc(sizeof(token_seq *) * (size_t)total);
    double **dst = malloc(sizeof(double *) * (size_t)total);
    reward_job **owner = malloc(sizeof(reward_job *) * (size_t)total);
    double *vals = malloc(sizeof(double) * (size_t)(total < b->batch_rows ? total : b->batch_rows));
    if (!seqs || !dst || !owner || !vals) {
        for (reward_job *j = first; j; j = j->next) j->status = rlhf_fail(&j->err, RLHF_ERUNTIME, "out of memory");
        goto out;
    }
    long k = 0;
    for (reward_job *j = first; j; j = j->next)
        for (int r = 0; r < j->set->n; r++) {
            seqs[k] = &j->set->rows[r].chosen;
            dst[k] = &j->scores[r];
            owner[k++] = j;
        }
    for (long s0 = 0; s0 < total; s0 += b->batch_rows) {
        int n = (int)(total - s0 < b->batch_rows ? total - s0 : b->batch_rows);
        rlhf_err e;
        rlhf_err_clear(&e);
        rlhf_status st = reward_score_seqs(b->m, seqs + s0, n, vals, &e);
        b->stats.forwards++;
        for (int i = 0; i < n; i++) {
            reward_job *j = owner[s0 + i];
            if (st) {
                if (!j->status) {
                    j->status = st;
                    j->err = e;
                }
            } else {
                *dst[s0 + i] = reward_norm_apply(&b->norm, vals[i]);
            }
        }
    }
out:
    free(seqs);
    free(dst);
    free(owner);
    free(vals);
}

static void *worker_main(void *arg) {
    reward_batcher *b = arg;
    // OpenMP's thread count is per thread: a new thread starts from OMP_NUM_THREADS, not from main's setting.
    omp_set_num_threads(b->threads > 0 ? b->threads : omp_get_num_procs());
    pthread_mutex_lock(&b->mu);
    for (;;) {
        while (!b->head && !b->stopping) pthread_cond_wait(&b->work_cv, &b->mu);
        if (!b->head) break;  // stopping with nothing left
        // Wait for a full batch, or until the oldest job has waited max_wait.
        double deadline = b->head->queued_at + b->max_wait_s;
        while (b->queued_rows < b->batch_rows && !b->stopping) {
            if (now_mono() >= deadline) break;
            struct timespec ts;
            abs_deadline(&ts, deadline);
            if (pthread_cond_timedwait(&b->work_cv, &b->mu, &ts) == ETIMEDOUT) break;
        }
        // Take whole jobs up to batch_rows rows (at least one job, however large).
        reward_job *first = b->head, *last = b->head;
        long rows = first->set->n;
        while (last->next && rows + last->next->set->n <= b->batch_rows) {
            last = last->next;
            rows += last->set->n;
        }
        b->head = last->next;
        if (!b->head) b->tail = NULL;
        last->next = NULL;
        b->queued_rows -= rows;
        pthread_mutex_unlock(&b->mu);

        score_jobs(b, first);

        pthread_mutex_lock(&b->mu);
        for (reward_job *j = first, *nx; j; j = nx) {
            nx = j->next;
            b->stats.jobs++;
            b->stats.rows += j->set->n;
            j->next = NULL;
            j->done = 1;
        }
        pthread_cond_broadcast(&b->done_cv);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

rlhf_status reward_batcher_start(reward_batcher **out, model *m, int batch_rows, double max_wait_ms, int threads,
                                 const reward_norm *norm, rlhf_err *err) {
    *out = NULL;
    if (batch_rows < 1) return rlhf_fail(err, RLHF_EINPUT, "--batch_size must be >= 1, got %d", batch_rows);
    reward_batcher *b = calloc(1, sizeof *b);
    if (!b) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    b->m = m;
    b->batch_rows = batch_rows;
    b->max_wait_s = max_wait_ms > 0 ? max_wait_ms / 1000.0 : 0;
    b->threads = threads;
    if (norm) b->norm = *norm;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->work_cv, &ca);
    pthread_cond_init(&b->done_cv, &ca);
    pthread_condattr_destroy(&ca);
    int rc = pthread_create(&b->worker, NULL, worker_main, b);
    if (rc) {
        pthread_mutex_destroy(&b->mu);
        pthread_cond_destroy(&b->work_cv);
        pthread_cond_destroy(&b->done_cv);
        free(b);
        return rlhf_fail(err, RLHF_ERUNTIME, "cannot start the scoring thread (%s)", strerror(rc));
    }
    *out = b;
    return RLHF_OK;
}

rlhf_status reward_batcher_score(reward_batcher *b, reward_job *job) {
    job->done = 0;
    job->next = NULL;
    job->status = RLHF_OK;
    rlhf_err_clear(&job->err);
    pthread_mutex_lock(&b->mu);
    if (b->stopping) {
        pthread_mutex_unlock(&b->mu);
        return job->status = rlhf_fail(&job->err, RLHF_ERUNTIME, "the server is shutting down");
    }
    job->queued_at = now_mono();
    if (b->tail) b->tail->next = job;
    else b->head = job;
    b->tail = job;
    b->queued_rows += job->set->n;
    pthread_cond_signal(&b->work_cv);
    while (!job->done) pthread_cond_wait(&b->done_cv, &b->mu);
    pthread_mutex_unlock(&b->mu);
    return job->status;
}

void reward_batcher_stop(reward_batcher *b) {
    if (!b) return;
    pthread_mutex_lock(&b->mu);
    b->stopping = 1;
    pthread_cond_broadcast(&b->work_cv);
    pthread_mutex_unlock(&b->mu);
    pthread_join(b->worker, NULL);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->work_cv);
    pthread_cond_destroy(&b->done_cv);
    free(b);
}

reward_batcher_stats reward_batcher_get_stats(reward_batcher *b) {
    pthread_mutex_lock(&b->mu);
    reward_batcher_stats s = b->stats;
    pthread_mutex_unlock(&b->mu);
    return s;
}
