// Data-parallel processes: the one module that knows about MPI. Trainers call only these functions.
// A NULL dist (or one made by dist_init outside mpirun) is a single process: every collective is a
// no-op that leaves the buffers as they are, rank 0 of 1, so single-process runs are unchanged bit for bit.
#ifndef RLHF_BASE_DIST_H
#define RLHF_BASE_DIST_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

typedef struct dist dist;

// Starts MPI only when launched by mpirun/mpiexec (OMPI_COMM_WORLD_SIZE etc. in the environment);
// otherwise returns a single-process dist without touching MPI. *out is never NULL on RLHF_OK.
rlhf_status dist_init(dist **out, int *argc, char ***argv, rlhf_err *err);
// Finalizes MPI when it was started. status: the process's exit status. Non-zero: when every rank fails
// (dist_fail_together) all exit normally with their status; a rank failing alone calls MPI_Abort, so the
// others are ended instead of waiting in a collective that never comes.
void dist_finalize(dist *d, int status);
// 1 when launched by mpirun/mpiexec (the environment names a rank), whether or not MPI was started.
int dist_launched_by_mpirun(void);
// For a non-zero exit status: waits a few seconds (on a communicator of its own) for every rank to fail
// too; 1 when they all did (then one rank's message stands for all), 0 when this rank fails alone. 1 for
// a single process; 0 for status 0.
int dist_fail_together(dist *d, int status);
// Wall seconds spent in dist_allreduce_sum_f32 so far (the gradient all-reduce; benchmarks). With
// RLHF_DIST_STATS set, each such all-reduce is preceded by a barrier timed apart, so this is the transfer
// alone, and dist_finalize prints both figures on stderr.
double dist_comm_seconds(const dist *d);

int dist_rank(const dist *d);      // 0 for NULL
int dist_size(const dist *d);      // 1 for NULL
int dist_is_main(const dist *d);   // rank 0: the only rank that prints and writes files
// Processes of this job on this host (for the default --threads: cores / local ranks).
int dist_local_size(const dist *d);

// In-place sum over ranks, then every rank holds the sum. Deterministic for a fixed process count.
rlhf_status dist_allreduce_sum_f32(dist *d, float *buf, size_t n, rlhf_err *err);
rlhf_status dist_allreduce_sum_f64(dist *d, double *buf, size_t n, rlhf_err *err);
rlhf_status dist_allreduce_max_f64(dist *d, double *buf, size_t n, rlhf_err *err);
rlhf_status dist_allreduce_sum_i64(dist *d, int64_t *buf, size_t n, rlhf_err *err);
// Rank root's bytes to every rank.
rlhf_status dist_bcast(dist *d, void *buf, size_t bytes, int root, rlhf_err *err);
// Each rank contributes `bytes` bytes at send; recv (size * bytes) holds them in rank order. send may be
// the rank's own block inside recv (recv + rank * bytes): then it is gathered in place.
rlhf_status dist_allgather(dist *d, const void *send, void *recv, size_t bytes, rlhf_err *err);
// Variable-length gather of floats: rank r contributes counts[r] floats; recv holds them in rank order
// (counts known on every rank).
rlhf_status dist_allgatherv_f32(dist *d, const float *send, float *recv, const int *counts, rlhf_err *err);
void dist_barrier(dist *d);

// Agreement on failure: every rank passes its local status; returns the worst status over all ranks
// (RLHF_EINPUT beats RLHF_ERUNTIME beats RLHF_OK), so all ranks stop together at the same point. On the
// rank whose status is not OK, err keeps its message; other ranks get a generic message.
rlhf_status dist_agree(dist *d, rlhf_status local, rlhf_err *err);
// Agreement on a stop request (SIGINT/SIGTERM seen by any rank): 1 on every rank if any rank saw it.
int dist_any(dist *d, int local_flag);

#endif
