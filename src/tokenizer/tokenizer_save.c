// tokenizer_save: copies the files a tokenizer was loaded from into a model directory (atomically,
// through the io layer), so a saved model directory loads the same tokenizer. Kept apart from
// tokenizer.c so programs that never save do not link the io layer's file code.
#include <stdio.h>

#include "io/files.h"
#include "tokenizer/tok_internal.h"

#define SAVE_PATH_MAX 4096

rlhf_status tokenizer_save(const tokenizer *t, const char *dir, rlhf_err *err) {
    if (!t->dir) return rlhf_fail(err, RLHF_EINPUT, "tokenizer_save: tokenizer was not loaded from a directory");
    RLHF_TRY(make_dirs(dir, err));
    for (int i = 0; i < t->n_files; i++) {
        char src[SAVE_PATH_MAX], dst[SAVE_PATH_MAX];
        snprintf(src, sizeof src, "%s/%s", t->dir, t->files[i]);
        snprintf(dst, sizeof dst, "%s/%s", dir, t->files[i]);
        RLHF_TRY(copy_file(src, dst, err));
    }
    return RLHF_OK;
}
