// Append-only CSV log (training_log.csv): a header row, then one row per logging step, each written
// with one write() and fsync'd so a killed run loses at most the row being written. Reopening with
// append=1 (resume) checks the header and drops a torn last line.
#ifndef RLHF_IO_CSV_LOG_H
#define RLHF_IO_CSV_LOG_H

#include "base/error.h"

typedef struct csv_log csv_log;
rlhf_status csv_log_open(csv_log **out, const char *path, const char *const *columns, int n_columns, int append, rlhf_err *err);
// values: n_columns strings, NULL or "" for an empty cell
rlhf_status csv_log_row(csv_log *l, const char *const *values, rlhf_err *err);
void csv_log_close(csv_log *l);

#endif
