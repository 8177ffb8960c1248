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
