// tokenizer_save: copies the files a tokenizer was loaded from into a model directory (atomically,
// through the io layer), so a saved model directory loads the same tokenizer. Kept apart from
// tokenizer.c so programs that never save do not link the io layer's file code.
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "io/files.h"
#include "tokenizer/tok_internal.h"

#define SAVE_PATH_MAX 4096

// Every file save_pretrained writes for a tokenizer (fast and slow), copied when the source has it, so that
// slow tokenizers and chat templates load from the output too.
static const char *const TOKENIZER_FILES[] = {
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "vocab.txt",
    "vocab.json", "merges.txt", "tokenizer.model", "spm.model", "spiece.model", "sentencepiece.bpe.model",
    "chat_template.jinja", "chat_template.json"};

static int regular_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

rlhf_status tokenizer_save(const tokenizer *t, const char *dir, rlhf_err *err) {
    if (!t->dir) return rlhf_fail(err, RLHF_EINPUT, "tokenizer_save: tokenizer was not loaded from a directory");
    if (!strcmp(t->dir, dir)) return RLHF_OK;  // saving into the directory it came from: the files are there
    RLHF_TRY(make_dirs(dir, err));
    char src[SAVE_PATH_MAX], dst[SAVE_PATH_MAX];
    for (int i = 0; i < t->n_files; i++) {
        snprintf(src, sizeof src, "%s/%s", t->dir, t->files[i]);
        snprintf(dst, sizeof dst, "%s/%s", dir, t->files[i]);
        RLHF_TRY(copy_file(src, dst, err));
    }
    for (size_t i = 0; i < sizeof TOKENIZER_FILES / sizeof TOKENIZER_FILES[0]; i++) {
        int loaded = 0;
        for (int k = 0; k < t->n_files && !loaded; k++) loaded = !strcmp(t->files[k], TOKENIZER_FILES[i]);
        snprintf(src, sizeof src, "%s/%s", t->dir, TOKENIZER_FILES[i]);
        if (loaded || !regular_file(src)) continue;
        snprintf(dst, sizeof dst, "%s/%s", dir, TOKENIZER_FILES[i]);
        RLHF_TRY(copy_file(src, dst, err));
    }
    // transformers' additional_chat_templates/NAME.jinja
    snprintf(src, sizeof src, "%s/additional_chat_templates", t->dir);
    DIR *d = opendir(src);
    if (!d) return RLHF_OK;
    snprintf(dst, sizeof dst, "%s/additional_chat_templates", dir);
    rlhf_status s = make_dirs(dst, err);
    struct dirent *e;
    while (!s && (e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 7 || strcmp(e->d_name + n - 6, ".jinja")) continue;
        char a[2 * SAVE_PATH_MAX], b[2 * SAVE_PATH_MAX];
        snprintf(a, sizeof a, "%s/%s", src, e->d_name);
        snprintf(b, sizeof b, "%s/%s", dst, e->d_name);
        if (regular_file(a)) s = copy_file(a, b, err);
    }
    closedir(d);
    return s;
}
