// Pieces every command shares: thread setup, turning a status into an exit code, and the CLI's view of
// the data-parallel job (base/dist.h): main creates the dist, the commands hand it to the trainers.
#include <fcntl.h>
#include <omp.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/error.h"
#include "cli/commands.h"

void openblas_set_num_threads(int num_threads);  // from OpenBLAS (cblas.h declares it too)

// The process's place in an mpirun job, set once by main (like the stop flag in signals.c, state of the
// process the CLI owns, not library state). secondary_stderr: the real stderr of a rank other than 0,
// whose stdout and stderr are sent to /dev/null so that only rank 0 prints; it still reports a failure
// of its own (one the other ranks do not share) through it.
static dist *process_dist;
static int secondary_stderr = -1;
static char secondary_msg[RLHF_ERR_MSG + 64];

void cli_dist_set(dist *d) {
    process_dist = d;
    if (dist_size(d) > 1 && !dist_is_main(d)) {
        fflush(stdout);
        fflush(stderr);
        int null = open("/dev/null", O_WRONLY);
        int saved = dup(2);
        if (null >= 0 && saved >= 0) {
            dup2(null, 1);
            dup2(null, 2);
            secondary_stderr = saved;
        }
        if (null >= 0) close(null);
    }
}

dist *cli_dist(void) { return process_dist; }

void cli_report_own_failure(int status) {
    if (status == 0 || secondary_stderr < 0 || !secondary_msg[0]) return;
    if (dist_fail_together(process_dist, status)) return;  // rank 0 printed the same failure
    dprintf(secondary_stderr, "[rank %d] %s", dist_rank(process_dist), secondary_msg);
}

// Cores this process may use: the affinity mask when mpirun bound the process to fewer cores than the
// host has, else the host's cores shared among the job's processes on this host.
static int default_threads(void) {
    int n = omp_get_num_procs();
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int local = dist_local_size(process_dist);
    if (local > 1 && online > 0 && n >= online) n /= local;
    return n > 0 ? n : 1;
}

void cli_set_threads(long long n) {
    if (n <= 0) n = default_threads();
    omp_set_num_threads((int)n);
    openblas_set_num_threads((int)n);
}

int cli_report(const char *command, int status, const char *msg) {
    if (status == RLHF_OK) return 0;
    if (secondary_stderr >= 0)  // printed at exit, unless every rank failed alike (then rank 0 speaks)
        snprintf(secondary_msg, sizeof secondary_msg, "rlhf %s: %s\n", command, msg && *msg ? msg : "failed");
    fprintf(stderr, "rlhf %s: %s\n", command, msg && *msg ? msg : "failed");
    if (status == RLHF_EINTERRUPT) return 130;
    return status == RLHF_EINPUT ? 2 : 1;
}

int cli_parse_flags(const char *command, const char *usage, arg_spec *specs, int n, int argc, char **argv) {
    rlhf_err err;
    rlhf_err_clear(&err);
    int want = ARGS_RUN;
    rlhf_status st = args_parse(specs, n, argc, argv, 1, &want, &err);
    if (st != RLHF_OK) return cli_report(command, st, err.msg);
    if (want == ARGS_HELP) {
        args_print_help(usage, specs, n);
        return 0;
    }
    if (want == ARGS_VERSION) {
        cli_print_version();
        return 0;
    }
    return -1;
}

void cli_print_version(void) {
    printf("rlhf %s\n", RLHF_VERSION);
}

void cli_chat_fallback_notice(const char *command, int n, int is_decoder, const char *model_dir) {
    if (n <= 0) return;
    if (is_decoder)
        fprintf(stderr, "rlhf %s: notice: %d rows hold messages and %s has no chat_template in tokenizer_config.json: "
                "they are rendered as plain \"role: content\" lines\n", command, n, model_dir);
    else
        fprintf(stderr, "rlhf %s: notice: %d rows hold messages; encoders have no chat template: they are rendered as "
                "plain \"role: content\" lines\n", command, n);
}
