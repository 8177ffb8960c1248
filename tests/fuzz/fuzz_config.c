// libFuzzer target for config.json: the input is parsed as JSON and handed to model_configure for both
// heads (family resolution, every family's configure, the parameter table with its size limits; no weights
// are allocated), then printed back as save_pretrained would. Nothing may crash, leak, overflow or ask for
// unbounded memory; a hostile config must come back as an error status naming the field.
// Built by tests/fuzz/build.sh; run from the repo root: build-fuzz/fuzz_config tests/fuzz/corpus/config
#include <stdint.h>
#include <stdlib.h>

#include "io/json_util.h"
#include "models/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cJSON *j = cJSON_ParseWithLength((const char *)data, size);
    if (!j) return 0;
    for (int head = HEAD_SEQCLS; head <= HEAD_LM; head++) {
        model *m = NULL;
        rlhf_err err = {0};
        if (model_configure(&m, j, (model_head)head, &err) == RLHF_OK) {
            // Every spec lies inside the flat buffer and the table's sizes agree.
            size_t end = 0;
            for (int i = 0; i < m->n_specs; i++) {
                const param_spec *p = &m->specs[i];
                size_t numel = 1;
                for (int d = 0; d < p->ndim; d++) numel *= (size_t)p->shape[d];
                if (numel != p->numel || p->offset < end) abort();
                end = p->offset + p->numel;
            }
            if (end > m->n_params) abort();
            model_free(m);
        }
    }
    char *s = json_print_hf(j, 1);
    free(s);
    cJSON_Delete(j);
    return 0;
}
