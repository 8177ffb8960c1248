// Single-process implementation of base/dist.h. The MPI implementation replaces these bodies; with
// no mpirun every call keeps this behaviour.
#include "base/dist.h"

#include <stdlib.h>
#include <string.h>

struct dist {
    int rank, size, local_size;
};

rlhf_status dist_init(dist **out, int *argc, char ***argv, rlhf_err *err) {
    (void)argc;
    (void)argv;
    dist *d = calloc(1, sizeof *d);
    if (!d) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    d->rank = 0;
    d->size = 1;
    d->local_size = 1;
    *out = d;
    return RLHF_OK;
}

void dist_finalize(dist *d, int status) {
    (void)status;
    free(d);
}

int dist_rank(const dist *d) { return d ? d->rank : 0; }
int dist_size(const dist *d) { return d ? d->size : 1; }
int dist_is_main(const dist *d) { return dist_rank(d) == 0; }
int dist_local_size(const dist *d) { return d ? d->local_size : 1; }

rlhf_status dist_allreduce_sum_f32(dist *d, float *buf, size_t n, rlhf_err *err) {
    (void)d, (void)buf, (void)n, (void)err;
    return RLHF_OK;
}
rlhf_status dist_allreduce_sum_f64(dist *d, double *buf, size_t n, rlhf_err *err) {
    (void)d, (void)buf, (void)n, (void)err;
    return RLHF_OK;
}
rlhf_status dist_allreduce_max_f64(dist *d, double *buf, size_t n, rlhf_err *err) {
    (void)d, (void)buf, (void)n, (void)err;
    return RLHF_OK;
}
rlhf_status dist_allreduce_sum_i64(dist *d, int64_t *buf, size_t n, rlhf_err *err) {
    (void)d, (void)buf, (void)n, (void)err;
    return RLHF_OK;
}
rlhf_status dist_bcast(dist *d, void *buf, size_t bytes, int root, rlhf_err *err) {
    (void)d, (void)buf, (void)bytes, (void)root, (void)err;
    return RLHF_OK;
}
rlhf_status dist_allgather(dist *d, const void *send, void *recv, size_t bytes, rlhf_err *err) {
    (void)d, (void)err;
    if (send != recv) memmove(recv, send, bytes);
    return RLHF_OK;
}
rlhf_status dist_allgatherv_f32(dist *d, const float *send, float *recv, const int *counts, rlhf_err *err) {
    (void)d, (void)err;
    if (send != recv) memmove(recv, send, (size_t)counts[0] * sizeof(float));
    return RLHF_OK;
}
void dist_barrier(dist *d) { (void)d; }
rlhf_status dist_agree(dist *d, rlhf_status local, rlhf_err *err) {
    (void)d, (void)err;
    return local;
}
int dist_any(dist *d, int local_flag) {
    (void)d;
    return local_flag != 0;
}
