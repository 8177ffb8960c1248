// Chat templates: compiling a template and finding the one a model directory ships
// (tokenizer_config.json "chat_template", with its bos_token / eos_token strings).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tokenizer/chat_template_internal.h"
#include "tokenizer/tok_internal.h"

#define CT_PATH_MAX 4096

rlhf_status chat_template_compile(chat_template **out, const char *source, const char *what, rlhf_err *err) {
    *out = NULL;
    chat_template *t = calloc(1, sizeof *t);
    if (!t || !(t->what = strdup(what ? what : "chat_template")) || !(t->source = strdup(source))) {
        chat_template_free(t);
        return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    }
    // Parse our own copy: text and literals in the tree point into it, and callers free theirs (a cJSON
    // string from tokenizer_config.json) right after compiling.
    rlhf_status s = ct_parse(t, t->source, err);
    if (s) {
        chat_template_free(t);
        return s;
    }
    *out = t;
    return RLHF_OK;
}

void chat_template_free(chat_template *t) {
    if (!t) return;
    ct_pool_free(&t->pool);
    free(t->what);
    free(t->source);
    free(t->bos);
    free(t->eos);
    free(t);
}

// A special token setting in tokenizer_config.json: "tok" or an AddedToken {"content": "tok"}.
static char *special_token(const cJSON *cfg, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsObject(v)) v = cJSON_GetObjectItemCaseSensitive(v, "content");
    return cJSON_IsString(v) ? strdup(v->valuestring) : NULL;
}

rlhf_status chat_template_load_dir(chat_template **out, const char *dir, rlhf_err *err) {
    *out = NULL;
    char path[CT_PATH_MAX], jpath[CT_PATH_MAX];
    struct stat st;
    // chat_template.jinja (what transformers >= 4.50 saves) wins over tokenizer_config.json's, as there.
    char *jinja = NULL;
    snprintf(jpath, sizeof jpath, "%s/chat_template.jinja", dir);
    if (stat(jpath, &st) == 0 && S_ISREG(st.st_mode)) RLHF_TRY(tok_read_file(jpath, &jinja, NULL, err));
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    cJSON *cfg = NULL;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
        char *txt;
        rlhf_status rs = tok_read_file(path, &txt, NULL, err);
        if (rs) {
            free(jinja);
            return rs;
        }
        cfg = cJSON_Parse(txt);
        free(txt);
        if (!cfg) {
            free(jinja);
            return rlhf_fail(err, RLHF_EINPUT, "%s: not valid JSON", path);
        }
    }
    const cJSON *ct = jinja ? NULL : cJSON_GetObjectItemCaseSensitive(cfg, "chat_template");
    const char *source = jinja;
    if (cJSON_IsString(ct)) {
        source = ct->valuestring;
    } else if (cJSON_IsArray(ct)) {  // named templates: transformers uses "default" for plain chats
        const cJSON *e;
        cJSON_ArrayForEach(e, ct) {
            const cJSON *nm = cJSON_GetObjectItemCaseSensitive(e, "name"), *tm = cJSON_GetObjectItemCaseSensitive(e, "template");
            if (cJSON_IsString(nm) && cJSON_IsString(tm) && !strcmp(nm->valuestring, "default")) source = tm->valuestring;
        }
        if (!source) {
            cJSON_Delete(cfg);
            return rlhf_fail(err, RLHF_EINPUT, "%s: chat_template is a list without a \"default\" template", path);
        }
    } else if (ct && !cJSON_IsNull(ct)) {
        cJSON_Delete(cfg);
        return rlhf_fail(err, RLHF_EINPUT, "%s: chat_template must be a string or a list of {name, template}", path);
    }
    rlhf_status s = RLHF_OK;
    if (source && !(s = chat_template_compile(out, source, jinja ? jpath : path, err))) {
        (*out)->bos = special_token(cfg, "bos_token");
        (*out)->eos = special_token(cfg, "eos_token");
    }
    cJSON_Delete(cfg);
    free(jinja);
    return s;
}
