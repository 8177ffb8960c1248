// Data-parallel processes over OpenMPI (base/dist.h): the only file that includes mpi.h. MPI starts
// only when the environment says mpirun/mpiexec launched us (OMPI_COMM_WORLD_SIZE, PMIX_RANK, PMI_RANK);
// otherwise, and in builds without MPI (RLHF_HAVE_MPI undefined), every call is the single-process no-op,
// so a plain run neither initialises MPI nor pays for it.
//
// Reductions: MPI_Allreduce on a duplicate of MPI_COMM_WORLD. Open MPI's tuned component picks its
// algorithm from (communicator size, message size) only, and each algorithm adds in a fixed order, so
// a run with the same process count is bit-identical run to run (measured: tests/cli/mpi_reward.sh).
// With 2 processes a + b is commutative, so even the order cannot matter. Results across different
// process counts differ only by fp32 rounding.
//
// Failures never hang: the collectives return errors (MPI_ERRORS_RETURN) instead of aborting
// silently; dist_finalize with a non-zero status first waits a few seconds for every rank to fail in
// the same way (a bad flag or row, seen by all), and only when they do exits normally; a failure of one
// rank alone calls MPI_Abort, which makes mpirun kill the others.
#include "base/dist.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef RLHF_HAVE_MPI
#include <mpi.h>
#endif

// How long a failing rank waits for the others to fail too before it aborts the job: the time the
// slowest rank may need to reach the same validation error (loading a model, reading a dataset).
#define DIST_FAIL_WAIT_SECONDS 5.0
// MPI counts are int: larger buffers go in chunks of this many elements.
#define DIST_CHUNK (1 << 28)

struct dist {
    int rank, size, local_size;
    int mpi;              // MPI was initialised here (finalize it)
    int failed_together;  // 1: a collective showed that every rank fails (exit normally, no abort)
    double comm_seconds;  // wall time spent in the float all-reduces (benchmarks)
    double wait_seconds;  // RLHF_DIST_STATS: time in a barrier just before each (waiting for slower ranks)
    int stats;            // RLHF_DIST_STATS set: split waiting from transfer, print both at the end
    long comm_calls;
#ifdef RLHF_HAVE_MPI
    MPI_Comm comm;  // training collectives
    MPI_Comm fin;   // the failure handshake in dist_finalize, apart from whatever a rank was doing
#endif
};

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int dist_launched_by_mpirun(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK");
}

#ifdef RLHF_HAVE_MPI
static rlhf_status mpi_fail(rlhf_err *err, int rc, const char *what) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "error %d", rc);
    return rlhf_fail(err, RLHF_ERUNTIME, "MPI %s failed: %s", what, msg);
}
#endif

rlhf_status dist_init(dist **out, int *argc, char ***argv, rlhf_err *err) {
    dist *d = calloc(1, sizeof *d);
    if (!d) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    d->rank = 0;
    d->size = 1;
    d->local_size = 1;
    *out = d;
#ifdef RLHF_HAVE_MPI
    if (!dist_launched_by_mpirun()) return RLHF_OK;
    int provided = 0;
    int rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS) {
        free(d);
        *out = NULL;
        return rlhf_fail(err, RLHF_ERUNTIME, "MPI_Init_thread failed (error %d)", rc);
    }
    d->mpi = 1;
    d->stats = getenv("RLHF_DIST_STATS") != NULL;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &d->size);
    MPI_Comm_dup(MPI_COMM_WORLD, &d->comm);
    MPI_Comm_dup(MPI_COMM_WORLD, &d->fin);
    MPI_Comm_set_errhandler(d->comm, MPI_ERRORS_RETURN);
    MPI_Comm_set_errhandler(d->fin, MPI_ERRORS_RETURN);
    MPI_Comm node;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, d->rank, MPI_INFO_NULL, &node) == MPI_SUCCESS) {
        MPI_Comm_size(node, &d->local_size);
        MPI_Comm_free(&node);
    }
    (void)provided;  // FUNNELED: only the main thread calls MPI, outside OpenMP regions
#else
    (void)argc;
    (void)argv;
#endif
    return RLHF_OK;
}

int dist_fail_together(dist *d, int status) {
    if (!d || status == 0) return 0;
    if (d->failed_together || d->size == 1) return 1;
#ifdef RLHF_HAVE_MPI
    if (!d->mpi) return 1;
    // Every rank that fails posts the same non-blocking reduction; ranks that succeeded never do, so
    // it completes only when all ranks failed. MIN over the statuses is non-zero exactly then.
    int mine = status, lowest = 0;
    MPI_Request req;
    if (MPI_Iallreduce(&mine, &lowest, 1, MPI_INT, MPI_MIN, d->fin, &req) != MPI_SUCCESS) return 0;
    double t0 = now_seconds();
    int done = 0;
    while (!done) {
        if (MPI_Test(&req, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS) return 0;
        if (done) break;
        if (now_seconds() - t0 > DIST_FAIL_WAIT_SECONDS) return 0;  // left pending: MPI_Abort follows
        struct timespec nap = {0, 2000000};
        nanosleep(&nap, NULL);
    }
    d->failed_together = lowest != 0;
    return d->failed_together;
#else
    return 1;
#endif
}

void dist_finalize(dist *d, int status) {
    if (!d) return;
#ifdef RLHF_HAVE_MPI
    if (d->mpi) {
        if (status != 0 && !dist_fail_together(d, status)) {
            fflush(stdout);
            fflush(stderr);
            MPI_Abort(MPI_COMM_WORLD, status);  // does not return: mpirun ends every rank
        }
        // RLHF_DIST_STATS=1 (benchmarks): the time in the float all-reduces proper, and before them the time
        // waiting at a barrier for the slower rank (which a run without the variable spends inside them)
        if (d->stats && d->comm_calls)
            fprintf(stderr,
                    "rlhf: rank %d of %d: %ld float all-reduces, %.3f s in them (%.2f ms each), %.3f s waiting "
                    "for the other ranks before them (%.2f ms each)\n",
                    d->rank, d->size, d->comm_calls, d->comm_seconds, 1e3 * d->comm_seconds / (double)d->comm_calls,
                    d->wait_seconds, 1e3 * d->wait_seconds / (double)d->comm_calls);
        MPI_Comm_free(&d->comm);
        MPI_Comm_free(&d->fin);
        MPI_Finalize();
    }
#else
    (void)status;
#endif
    free(d);
}

int dist_rank(const dist *d) { return d ? d->rank : 0; }
int dist_size(const dist *d) { return d ? d->size : 1; }
int dist_is_main(const dist *d) { return dist_rank(d) == 0; }
int dist_local_size(const dist *d) { return d ? d->local_size : 1; }
double dist_comm_seconds(const dist *d) { return d ? d->comm_seconds : 0.0; }

#ifdef RLHF_HAVE_MPI
// In-place all-reduce of n elements of type t in chunks that fit MPI's int counts.
static rlhf_status allreduce(dist *d, void *buf, size_t n, size_t elem, MPI_Datatype t, MPI_Op op, rlhf_err *err) {
    char *p = buf;
    while (n > 0) {
        int c = n > DIST_CHUNK ? DIST_CHUNK : (int)n;
        int rc = MPI_Allreduce(MPI_IN_PLACE, p, c, t, op, d->comm);
        if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "all-reduce");
        p += (size_t)c * elem;
        n -= (size_t)c;
    }
    return RLHF_OK;
}
#define MULTI(d) ((d) && (d)->mpi && (d)->size > 1)
#endif

rlhf_status dist_allreduce_sum_f32(dist *d, float *buf, size_t n, rlhf_err *err) {
#ifdef RLHF_HAVE_MPI
    if (MULTI(d)) {
        double t0 = now_seconds();
        if (d->stats) {  // benchmarks: wait for every rank first, so the all-reduce time is the transfer alone
            MPI_Barrier(d->comm);
            double t1 = now_seconds();
            d->wait_seconds += t1 - t0;
            t0 = t1;
        }
        rlhf_status s = allreduce(d, buf, n, sizeof(float), MPI_FLOAT, MPI_SUM, err);
        d->comm_seconds += now_seconds() - t0;
        d->comm_calls++;
        return s;
    }
#endif
    (void)d, (void)buf, (void)n, (void)err;
    return RLHF_OK;
}
rlhf_status dist_allreduce_sum_f64(dist *d, double *buf, size_t n, rlhf_err *err) {
#ifdef RLHF_HAVE_MPI
    if (MULTI(d)) return allreduce(d, buf, n, sizeof(double), MPI_DOUBLE, MPI_SUM, err);
#endif
    (void)d, (void)buf, (void)n, (void)err;
    return RLHF_OK;
}
rlhf_status dist_allreduce_max_f64(dist *d, double *buf, size_t n, rlhf_err *err) {
#ifdef RLHF_HAVE_MPI
    if (MULTI(d)) return allreduce(d, buf, n, sizeof(double), MPI_DOUBLE, MPI_MAX, err);
#endif
    (void)d, (void)buf, (void)n, (void)err;
    return RLHF_OK;
}
rlhf_status dist_allreduce_sum_i64(dist *d, int64_t *buf, size_t n, rlhf_err *err) {
#ifdef RLHF_HAVE_MPI
    if (MULTI(d)) return allreduce(d, buf, n, sizeof(int64_t), MPI_INT64_T, MPI_SUM, err);
#endif
    (void)d, (void)buf, (void)n, (void)err;
    return RLHF_OK;
}

rlhf_status dist_bcast(dist *d, void *buf, size_t bytes, int root, rlhf_err *err) {
#ifdef RLHF_HAVE_MPI
    if (MULTI(d)) {
        char *p = buf;
        while (bytes > 0) {
            int c = bytes > DIST_CHUNK ? DIST_CHUNK : (int)bytes;
            int rc = MPI_Bcast(p, c, MPI_BYTE, root, d->comm);
            if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "broadcast");
            p += c;
            bytes -= (size_t)c;
        }
        return RLHF_OK;
    }
#endif
    (void)d, (void)buf, (void)bytes, (void)root, (void)err;
    return RLHF_OK;
}

rlhf_status dist_allgather(dist *d, const void *send, void *recv, size_t bytes, rlhf_err *err) {
#ifdef RLHF_HAVE_MPI
    if (MULTI(d)) {
        if (bytes > INT_MAX) return rlhf_fail(err, RLHF_ERUNTIME, "dist_allgather: %zu bytes per rank is too many", bytes);
        // a rank's own block may already sit in place inside recv
        const void *sb = send == (const char *)recv + (size_t)d->rank * bytes ? MPI_IN_PLACE : send;
        int rc = MPI_Allgather(sb, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE, d->comm);
        return rc == MPI_SUCCESS ? RLHF_OK : mpi_fail(err, rc, "all-gather");
    }
#endif
    (void)d, (void)err;
    if (send != recv) memmove(recv, send, bytes);
    return RLHF_OK;
}

rlhf_status dist_allgatherv_f32(dist *d, const float *send, float *recv, const int *counts, rlhf_err *err) {
#ifdef RLHF_HAVE_MPI
    if (MULTI(d)) {
        int *displs = malloc(sizeof(int) * (size_t)d->size);
        if (!displs) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
        long long off = 0;
        for (int r = 0; r < d->size; r++) {
            if (off > INT_MAX) {
                free(displs);
                return rlhf_fail(err, RLHF_ERUNTIME, "dist_allgatherv_f32: more than %d floats", INT_MAX);
            }
            displs[r] = (int)off;
            off += counts[r];
        }
        // A rank's own slice may already sit in place inside recv (ZeRO's parameter gather).
        const void *sb = send == recv + displs[d->rank] ? MPI_IN_PLACE : (const void *)send;
        int rc = MPI_Allgatherv(sb, counts[d->rank], MPI_FLOAT, recv, counts, displs, MPI_FLOAT, d->comm);
        free(displs);
        return rc == MPI_SUCCESS ? RLHF_OK : mpi_fail(err, rc, "all-gather");
    }
#endif
    (void)d, (void)err;
    if (send != recv) memmove(recv, send, (size_t)counts[0] * sizeof(float));
    return RLHF_OK;
}

void dist_barrier(dist *d) {
#ifdef RLHF_HAVE_MPI
    if (MULTI(d)) MPI_Barrier(d->comm);
#endif
    (void)d;
}

// Severity order for agreement: a bad input outranks a runtime failure, which outranks an interrupt.
static int severity(rlhf_status s) {
    switch (s) {
    case RLHF_OK: return 0;
    case RLHF_EINTERRUPT: return 1;
    case RLHF_ERUNTIME: return 2;
    default: return 3;
    }
}

rlhf_status dist_agree(dist *d, rlhf_status local, rlhf_err *err) {
#ifdef RLHF_HAVE_MPI
    if (MULTI(d)) {
        // (severity, rank) of every rank; the lowest rank with the worst status speaks for all.
        int mine[2] = {severity(local), (int)local};
        int *all = malloc(sizeof(int) * 2 * (size_t)d->size);
        if (!all) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
        int rc = MPI_Allgather(mine, 2, MPI_INT, all, 2, MPI_INT, d->comm);
        if (rc != MPI_SUCCESS) {
            free(all);
            return mpi_fail(err, rc, "all-gather");
        }
        int who = 0;
        for (int r = 1; r < d->size; r++)
            if (all[2 * r] > all[2 * who]) who = r;
        rlhf_status worst = (rlhf_status)all[2 * who + 1];
        free(all);
        if (worst == RLHF_OK) return RLHF_OK;
        rlhf_err scratch;
        rlhf_err *e = err ? err : &scratch;
        if (d->rank != who) rlhf_err_clear(e);
        rc = MPI_Bcast(e->msg, RLHF_ERR_MSG, MPI_CHAR, who, d->comm);
        if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "broadcast");
        e->msg[RLHF_ERR_MSG - 1] = '\0';
        e->code = worst;
        d->failed_together = 1;
        return worst;
    }
#endif
    (void)d, (void)err;
    return local;
}

int dist_any(dist *d, int local_flag) {
#ifdef RLHF_HAVE_MPI
    if (MULTI(d)) {
        int v = local_flag != 0;
        if (MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_MAX, d->comm) != MPI_SUCCESS) return 1;
        return v;
    }
#endif
    (void)d;
    return local_flag != 0;
}
