// Commands not built yet answer with a clear message (each moves to its own cmd_*.c file when written;
// delete its stub here in the same change).
#include <stdio.h>

#include "cli/commands.h"

#define RLHF_STUB(fn, name)                                                          \
    int fn(int argc, char **argv) {                                                  \
        (void)argc; (void)argv;                                                      \
        fprintf(stderr, "rlhf %s: not implemented yet in this build\n", name);       \
        return 1;                                                                    \
    }

