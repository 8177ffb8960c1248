// libFuzzer target: dataset parsing (JSONL or JSON array) and the field getters on arbitrary bytes
// either fail with a message or give rows whose line numbers are in range.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/dataset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    dataset d;
    rlhf_err err;
    err.msg[0] = 0;
    if (dataset_load_text(&d, "fuzz.jsonl", (const char *)data, size, &err) != RLHF_OK) {
        if (err.msg[0] == 0) abort();
        return 0;
    }
    int max_line = 1;
    for (size_t i = 0; i < size; i++) max_line += data[i] == '\n';
    static const char *fields[] = {"prompt", "chosen", "rejected", "input_ids"};
    for (int r = 0; r < d.n; r++) {
        if (d.lines[r] < 1 || d.lines[r] > max_line) abort();
        for (int k = 0; k < 4; k++) {
            const char *s;
            if (dataset_get_string(&d, r, fields[k], 0, &s, &err) == RLHF_OK && s &&
                utf8_invalid_at(s, strlen(s)) >= 0)
                abort();
            int32_t *ids;
            int n;
            if (dataset_get_ids(&d, r, fields[k], 0, 1000, &ids, &n, &err) == RLHF_OK && ids) {
                for (int i = 0; i < n; i++)
                    if (ids[i] < 0 || ids[i] >= 1000) abort();
                free(ids);
            }
        }
    }
    dataset_free(&d);
    return 0;
}
