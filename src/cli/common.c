// Pieces every command shares: thread setup and turning a status into an exit code.
#include <omp.h>
#include <stdio.h>

#include "base/error.h"
#include "cli/commands.h"

void openblas_set_num_threads(int num_threads);  // from OpenBLAS (cblas.h declares it too)

void cli_set_threads(long long n) {
    if (n <= 0) n = omp_get_num_procs();
    omp_set_num_threads((int)n);
    openblas_set_num_threads((int)n);
}

int cli_report(const char *command, int status, const char *msg) {
    if (status == RLHF_OK) return 0;
    fprintf(stderr, "rlhf %s: %s\n", command, msg && *msg ? msg : "failed");
    if (status == RLHF_EINTERRUPT) return 130;
    return status == RLHF_EINPUT ? 2 : 1;
}
