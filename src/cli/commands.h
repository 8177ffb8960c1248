// The rlhf commands. Each cmd_* parses its own flags (cli/args.h), validates all input before
// writing anything, and returns an exit status: 0 ok, 1 runtime failure, 2 bad usage or input,
// 130 interrupted after saving state. Messages go to stderr.
#ifndef RLHF_CLI_COMMANDS_H
#define RLHF_CLI_COMMANDS_H

#include "base/dist.h"
#include "cli/args.h"

typedef struct {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);  // argv[0] is the command name
} rlhf_command;

int cmd_tokenize(int argc, char **argv);
int cmd_init(int argc, char **argv);
int cmd_reward(int argc, char **argv);
int cmd_score(int argc, char **argv);
int cmd_sft(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_ppo(int argc, char **argv);
int cmd_grpo(int argc, char **argv);
int cmd_rloo(int argc, char **argv);
int cmd_dpo(int argc, char **argv);
int cmd_serve(int argc, char **argv);

// Sets the OpenMP/OpenBLAS thread count (--threads; 0 = the cores, shared among the processes of an
// mpirun job on this host).
void cli_set_threads(long long n);
// The data-parallel job this process belongs to (main sets it once; NULL/one process outside mpirun). On
// ranks other than 0 setting it sends stdout and stderr to /dev/null: only rank 0 prints.
void cli_dist_set(dist *d);
dist *cli_dist(void);
// At exit on a rank other than 0: prints the failure cli_report recorded, unless every rank failed alike.
void cli_report_own_failure(int status);
// Parses argv into specs (cli/args.h) for a command: returns -1 to go on, else the exit code to return
// at once (0 after printing --help with usage, 2 after reporting a bad flag).
int cli_parse_flags(const char *command, const char *usage, arg_spec *specs, int n, int argc, char **argv);
// Prints "rlhf VERSION" (the project version CMake passes as RLHF_VERSION) to stdout.
void cli_print_version(void);
// The notice for n > 0 preference rows with messages rendered as plain "role: content" lines because
// model_dir has no chat template (encoders never use one).
void cli_chat_fallback_notice(const char *command, int n, int is_decoder, const char *model_dir);
// Prints "rlhf COMMAND: message" for a failed status and returns the exit code for it.
int cli_report(const char *command, int status, const char *msg);

#endif
