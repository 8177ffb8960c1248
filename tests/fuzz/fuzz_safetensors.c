// libFuzzer target: any byte string given to the safetensors parser either fails cleanly with a
// message or yields tensors whose data lies inside the buffer and converts to fp32 without fault.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    // A private copy, so that reading one byte past the end is caught by ASan.
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    st_file f;
    rlhf_err err;
    if (st_parse_buffer(&f, "fuzz.safetensors", buf, size, &err) == RLHF_OK) {
        for (int i = 0; i < f.n; i++) {
            const st_tensor *t = &f.tensors[i];
            if (t->data < buf || t->data + t->nbytes > buf + size) abort();
            if (st_find(&f, t->name) == NULL) abort();
            if (t->numel <= (1 << 20)) {
                float *out = malloc(sizeof(float) * ((size_t)t->numel + 1));
                if (out) {
                    st_to_f32(t, out, &err);
                    free(out);
                }
            }
        }
        // Whatever parsed must serialize to a header that parses again.
        st_write_tensor *w = calloc((size_t)f.n + 1, sizeof *w);
        if (w) {
            for (int i = 0; i < f.n; i++) {
                w[i].name = f.tensors[i].name;
                w[i].dtype = f.tensors[i].dtype;
                w[i].ndim = f.tensors[i].ndim;
                memcpy(w[i].shape, f.tensors[i].shape, sizeof w[i].shape);
                w[i].data = f.tensors[i].data;
            }
            char *h;
            size_t hl;
            int *order;
            if (st_serialize_header(w, f.n, NULL, 0, &h, &hl, &order, &err) == RLHF_OK) {
                free(h);
                free(order);
            }
            free(w);
        }
        st_close(&f);
    } else if (err.msg[0] == 0) {
        abort();  // a failure must say why
    }
    free(buf);
    return 0;
}
