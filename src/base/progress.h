// Progress reporting on stderr: on a terminal one bar redrawn in place with \r
// (`label [=====>    ] 45/100 12.3 it/s ETA 0:05 extra`); otherwise (logs, pipes) a plain line at
// most every PROGRESS_LOG_SECONDS, plus a final line.
#ifndef RLHF_BASE_PROGRESS_H
#define RLHF_BASE_PROGRESS_H

#include <stdio.h>

typedef struct progress progress;  // opaque
// total <= 0: unknown total (no bar, no ETA). unit: e.g. "it", "steps", "rows" (NULL -> "it").
progress *progress_start(const char *label, long long total, const char *unit);
void progress_update(progress *p, long long done, const char *extra);   // extra: e.g. "loss 0.693 acc 0.61"
void progress_finish(progress *p, const char *extra);                    // prints the final line, frees

// As progress_start but writing to out, as a terminal when tty is 1 (for tests and quiet modes:
// out == NULL prints nothing). All functions accept p == NULL and do nothing.
progress *progress_start_to(FILE *out, int tty, const char *label, long long total, const char *unit);

#endif
