// SIGINT/SIGTERM for the training commands: the handler only sets a flag that the trainer polls at
// each step boundary (it then saves checkpoint-{STEP} and returns RLHF_EINTERRUPT -> exit 130). The
// handler resets itself, so a second Ctrl-C stops the process at once. SIGXFSZ: ignored by every command.
#ifndef RLHF_CLI_SIGNALS_H
#define RLHF_CLI_SIGNALS_H

#include <signal.h>

// Installs the handlers and returns the flag they set (cleared first).
volatile sig_atomic_t *cli_stop_flag_install(void);
// Restores the default dispositions.
void cli_stop_flag_remove(void);

// Ignores SIGXFSZ for the whole process: past RLIMIT_FSIZE (`ulimit -f`) a write then fails with EFBIG, so
// the atomic writer reports "file size limit exceeded" naming the file, removes its temporary file and the
// command exits nonzero, instead of the kernel killing the process mid-write.
void cli_ignore_file_size_signal(void);

#endif
