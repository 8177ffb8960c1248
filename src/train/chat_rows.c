// Conversational rows -> chat-template text (see chat_rows.h).
#include "train/chat_rows.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int chat_field_is_messages(const dataset *d, int r, const char *field) {
    return cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(d->rows[r], field));
}

// Checks every message of list is an object with string "role" and "content"; returns its index or -1.
static int bad_message(const cJSON *list) {
    int i = 0;
    for (const cJSON *m = list->child; m; m = m->next, i++) {
        if (!cJSON_IsObject(m) || !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(m, "role")) ||
            !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(m, "content")))
            return i;
    }
    return -1;
}

rlhf_status chat_render_row(const dataset *d, int r, const char *field, const char *more, const chat_template *ct,
                            int add_generation_prompt, const char *model_dir, char **out, rlhf_err *err) {
    *out = NULL;
    const char *fields[2] = {field, more};
    cJSON *msgs = cJSON_CreateArray();
    if (!msgs) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    for (int k = 0; k < 2 && fields[k]; k++) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(d->rows[r], fields[k]);
        if (!cJSON_IsArray(list)) {
            cJSON_Delete(msgs);
            return rlhf_fail(err, RLHF_EINPUT, "%s:%d: field '%s' must be a list of messages (as '%s' is)", d->path,
                             d->lines[r], fields[k], field);
        }
        int bad = bad_message(list);
        if (bad >= 0) {
            cJSON_Delete(msgs);
            return rlhf_fail(err, RLHF_EINPUT, "%s:%d: field '%s' message %d must be an object with string \"role\" "
                             "and \"content\"", d->path, d->lines[r], fields[k], bad);
        }
        for (const cJSON *m = list->child; m; m = m->next) {
            cJSON *copy = cJSON_Duplicate(m, 1);
            if (!copy || !cJSON_AddItemToArray(msgs, copy)) {
                cJSON_Delete(copy);
                cJSON_Delete(msgs);
                return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
            }
        }
    }
    if (!ct) {
        cJSON_Delete(msgs);
        return rlhf_fail(err, RLHF_EINPUT,
                         "%s:%d: field '%s' is a list of messages, but %s has no \"chat_template\" in "
                         "tokenizer_config.json to render it (give plain text rows instead)",
                         d->path, d->lines[r], field, model_dir ? model_dir : "the model directory");
    }
    rlhf_err e;
    rlhf_err_clear(&e);
    rlhf_status s = chat_template_render(ct, msgs, add_generation_prompt, NULL, NULL, out, &e);
    cJSON_Delete(msgs);
    if (s == RLHF_EINPUT) return rlhf_fail(err, s, "%s:%d: field '%s': %s", d->path, d->lines[r], field, e.msg);
    if (s) *err = e;
    return s;
}
