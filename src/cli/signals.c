// The one piece of process-wide state a signal needs: the stop flag, owned by the CLI layer and handed
// to the trainers as a pointer (library code keeps no globals).
#include "cli/signals.h"

#include <string.h>

#include "base/dist.h"

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

volatile sig_atomic_t *cli_stop_flag_install(void) {
    stop_requested = 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND | SA_RESTART;  // a second signal takes the default action
    if (dist_launched_by_mpirun()) {
        // mpirun delivers its SIGTERM twice (to the process and to its group) and SIGKILLs the ranks after
        // odls_base_sigkill_timeout seconds: the handler stays, so the second copy cannot kill a rank
        // that is still saving. SIGUSR1, which mpirun forwards to every rank as is, asks for the same stop
        // (then mpirun's own exit status is the ranks' 130).
        sa.sa_flags = SA_RESTART;
        sigaction(SIGUSR1, &sa, NULL);
    }
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    return &stop_requested;
}

void cli_stop_flag_remove(void) {
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    if (dist_launched_by_mpirun()) signal(SIGUSR1, SIG_DFL);
}

void cli_ignore_file_size_signal(void) { signal(SIGXFSZ, SIG_IGN); }
