// cJSON helpers: parse files with an error naming the file and the position, and typed getters
// for config.json fields with defaults. Unknown fields stay in the cJSON tree so a config
// round-trips.
#ifndef RLHF_IO_JSON_UTIL_H
#define RLHF_IO_JSON_UTIL_H

#include <cjson/cJSON.h>

#include "base/error.h"

// Parses path (reading through read_file) into *out. Errors: "PATH: invalid JSON near byte N".
rlhf_status json_load_file(const char *path, cJSON **out, rlhf_err *err);
// Pretty-prints json (2-space indent, as transformers writes config.json) atomically to path.
// The text is Python's `json.dumps(obj, indent=2, sort_keys=True) + "\n"` (keys sorted at every
// level, non-ASCII as \uXXXX, floats in Python repr). Numbers json_load_file read as float literals
// ("10000.0") are written back as floats; other integral numbers as ints.
rlhf_status json_save_file(const char *path, const cJSON *json, rlhf_err *err);
// The same text as a malloc'd string (NULL when out of memory); sort_keys = 0 keeps insertion order.
char *json_print_hf(const cJSON *json, int sort_keys);

// A number item that json_save_file writes as a Python float even when integral ("1.0", as HF
// writes epoch or learning-rate fields), or NULL when out of memory; json_add_float adds it to obj.
cJSON *json_float(double v);
cJSON *json_add_float(cJSON *obj, const char *key, double v);

// Getters: return the default when the key is missing or null. json_get_int fails (EINPUT) when the
// key is present with the wrong type; the message names `what` (e.g. the file) and the key.
rlhf_status json_get_int(const cJSON *obj, const char *key, long long def, long long *out, const char *what,
                         rlhf_err *err);
rlhf_status json_get_double(const cJSON *obj, const char *key, double def, double *out, const char *what,
                            rlhf_err *err);
rlhf_status json_get_bool(const cJSON *obj, const char *key, int def, int *out, const char *what, rlhf_err *err);
// Returns the string value or def (not copied).
const char *json_get_string(const cJSON *obj, const char *key, const char *def);

#endif
