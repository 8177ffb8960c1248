// A dataset file (JSON Lines, gzip'd JSON Lines, or one JSON array) read whole and validated as
// JSON row by row, with typed field getters whose errors say "PATH:LINE: ..." so a user can fix the
// row. String fields are checked to be valid UTF-8 (cJSON accepts any bytes inside strings).
#ifndef RLHF_IO_DATASET_H
#define RLHF_IO_DATASET_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "base/error.h"
#include "io/utf8.h"  // utf8_invalid_at

// A dataset file (JSONL, JSONL.gz, or a JSON array file) read whole and validated as JSON, row by row.
typedef struct {
    cJSON **rows;      // each a JSON object (non-objects are an error)
    int *lines;        // 1-based line number of each row in the file (for JSON arrays: the line where the element starts)
    int n;
    char *path;
} dataset;
// Errors: "PATH:LINE: invalid JSON (...)", "PATH:LINE: expected a JSON object", "PATH: no rows (empty dataset)",
// "PATH: cannot open (...)". Blank lines in JSONL are skipped.
rlhf_status dataset_load(dataset *d, const char *path, rlhf_err *err);
void dataset_free(dataset *d);
// Field getters that fail with "PATH:LINE: field 'NAME' missing" / "... must be a string" / "... invalid UTF-8";
// a missing optional field returns RLHF_OK with *out = NULL.
rlhf_status dataset_get_string(const dataset *d, int row, const char *field, int required, const char **out, rlhf_err *err);
// Integer arrays (pre-tokenized rows): malloc'd copy in *out, length *n; values checked to be integers in [0, max_id).
rlhf_status dataset_get_ids(const dataset *d, int row, const char *field, int required, int max_id, int32_t **out, int *n, rlhf_err *err);

// Extensions beyond the cross-team API:
// Loads from an in-memory text (name is used in messages); text is not modified or kept.
rlhf_status dataset_load_text(dataset *d, const char *name, const char *text, size_t len, rlhf_err *err);

#endif
