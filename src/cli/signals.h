// SIGINT/SIGTERM for the training commands: the handler only sets a flag that the trainer polls at
// each step boundary (it then saves checkpoint-{STEP} and returns RLHF_EINTERRUPT -> exit 130). The
// handler resets itself, so a second Ctrl-C stops the process at once.
#ifndef RLHF_CLI_SIGNALS_H
#define RLHF_CLI_SIGNALS_H

#include <signal.h>

// Installs the handlers and returns the flag they set (cleared first).
volatile sig_atomic_t *cli_stop_flag_install(void);
// Restores the default dispositions.
void cli_stop_flag_remove(void);

#endif
