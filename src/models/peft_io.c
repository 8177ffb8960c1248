// peft's adapter directory: adapter_config.json (LoraConfig's fields) and adapter_model.safetensors
// with get_peft_model_state_dict's key names, written by save_pretrained and read by
// PeftModel.from_pretrained; loading one applies it to its base model.
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/files.h"
#include "io/hf_cache.h"
#include "io/json_util.h"
#include "io/safetensors.h"
#include "models/peft_internal.h"

#define ADAPTER_CONFIG "adapter_config.json"
#define ADAPTER_WEIGHTS "adapter_model.safetensors"
#define PEFT_VERSION "0.13.2"  // the peft release whose config fields we write

int peft_is_adapter_dir(const char *dir) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, ADAPTER_CONFIG);
    return file_exists(path);
}

// Top-level module names of the trained heads (peft's modules_to_save), e.g. ["classifier"].
static cJSON *modules_to_save(const model *m) {
    const model_peft *p = m->peft;
    if (!p->train_heads) return cJSON_CreateNull();
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; arr && i < m->n_specs; i++) {
        if (!m->specs[i].is_head) continue;
        char top[MODEL_NAME_MAX];
        snprintf(top, sizeof top, "%s", m->specs[i].name);
        char *dot = strchr(top, '.');
        if (dot) *dot = 0;
        int seen = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, arr) seen |= !strcmp(it->valuestring, top);
        if (!seen) cJSON_AddItemToArray(arr, cJSON_CreateString(top));
    }
    return arr;
}

static rlhf_status build_config(const model *m, const char *base, cJSON **out, rlhf_err *err) {
    const model_peft *p = m->peft;
    cJSON *c = cJSON_CreateObject();
    cJSON *targets = cJSON_CreateArray();
    if (!c || !targets) {
        cJSON_Delete(c);
        cJSON_Delete(targets);
        return rlhf_fail(err, RLHF_ERUNTIME, "out of memory (%s)", ADAPTER_CONFIG);
    }
    // The exact module names adapted: peft matches them as full names, so nothing else (e.g. a head
    // whose name shares a suffix) is picked up on load.
    for (int i = 0; i < p->n_slots; i++)
        if (p->slots[i].adapted) cJSON_AddItemToArray(targets, cJSON_CreateString(p->slots[i].module));
    cJSON_AddStringToObject(c, "base_model_name_or_path", base ? base : "");
    cJSON_AddStringToObject(c, "bias", "none");
    cJSON_AddBoolToObject(c, "fan_in_fan_out", p->n_slots && p->slots[0].conv1d);
    cJSON_AddBoolToObject(c, "inference_mode", 1);
    cJSON_AddBoolToObject(c, "init_lora_weights", 1);
    json_add_float(c, "lora_alpha", p->o.lora.alpha);
    json_add_float(c, "lora_dropout", p->o.lora.dropout);
    cJSON_AddItemToObject(c, "modules_to_save", modules_to_save(m));
    cJSON_AddStringToObject(c, "peft_type", "LORA");
    cJSON_AddNumberToObject(c, "r", p->o.lora.r);
    cJSON_AddItemToObject(c, "target_modules", targets);
    cJSON_AddStringToObject(c, "task_type", m->head == HEAD_SEQCLS ? "SEQ_CLS" : "CAUSAL_LM");
    cJSON_AddBoolToObject(c, "use_dora", 0);
    cJSON_AddBoolToObject(c, "use_rslora", 0);
    cJSON_AddStringToObject(c, "revision", "");
    cJSON_AddStringToObject(c, "peft_version", PEFT_VERSION);
    *out = c;
    return RLHF_OK;
}

rlhf_status peft_save_adapter(const model *m, const char *dir, const char *base_model_name, rlhf_err *err) {
    const model_peft *p = m->peft;
    if (!p || !p->o.use_peft) return rlhf_fail(err, RLHF_ERUNTIME, "saving an adapter of a model without adapters");
    RLHF_TRY(make_dirs(dir, err));
    st_write_tensor *ts = calloc((size_t)p->n_view + 1, sizeof *ts);
    if (!ts) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory (saving %s)", dir);
    const float *base = m->params + p->train_start;
    for (int i = 0; i < p->n_view; i++) {
        const param_spec *s = &p->view_specs[i];
        ts[i].name = s->name;
        ts[i].dtype = ST_F32;
        ts[i].ndim = s->ndim;
        for (int d = 0; d < s->ndim; d++) ts[i].shape[d] = s->shape[d];
        ts[i].data = base + s->offset;
    }
    static const char *const metadata[] = {"format", "pt"};
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, ADAPTER_WEIGHTS);
    rlhf_status st = st_write(path, ts, p->n_view, metadata, 1, err);
    free(ts);
    RLHF_TRY(st);
    cJSON *c = NULL;
    RLHF_TRY(build_config(m, base_model_name, &c, err));
    snprintf(path, sizeof path, "%s/%s", dir, ADAPTER_CONFIG);
    st = json_save_file(path, c, err);
    cJSON_Delete(c);
    return st;
}

rlhf_status peft_read_adapter_config(const char *dir, peft_options *o, char **base, rlhf_err *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, ADAPTER_CONFIG);
    cJSON *c;
    RLHF_TRY(json_load_file(path, &c, err));
    peft_options_default(o);
    o->use_peft = 1;
    rlhf_status st = RLHF_OK;
    const char *type = json_get_string(c, "peft_type", "");
    if (strcmp(type, "LORA"))
        st = rlhf_fail(err, RLHF_EINPUT, "%s: peft_type '%s' is not supported (only LORA)", path, type);
    long long r = 0;
    double alpha = 0, dropout = 0;
    int rslora = 0;
    if (st == RLHF_OK) st = json_get_int(c, "r", PEFT_DEFAULT_R, &r, path, err);
    if (st == RLHF_OK) st = json_get_double(c, "lora_alpha", PEFT_DEFAULT_ALPHA, &alpha, path, err);
    if (st == RLHF_OK) st = json_get_double(c, "lora_dropout", 0, &dropout, path, err);
    if (st == RLHF_OK) st = json_get_bool(c, "use_rslora", 0, &rslora, path, err);
    if (st == RLHF_OK && rslora) st = rlhf_fail(err, RLHF_EINPUT, "%s: use_rslora is not supported", path);
    if (st == RLHF_OK) {
        o->lora.r = (int)r;
        o->lora.alpha = (float)alpha;
        o->lora.dropout = (float)dropout;
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(c, "target_modules");
        size_t used = 0;
        o->target_modules[0] = 0;
        if (cJSON_IsString(t)) {
            snprintf(o->target_modules, sizeof o->target_modules, "%s", t->valuestring);
        } else if (cJSON_IsArray(t)) {
            const cJSON *it;
            cJSON_ArrayForEach(it, t) {
                if (!cJSON_IsString(it)) continue;
                used += (size_t)snprintf(o->target_modules + used, used < PEFT_TARGETS_MAX ? PEFT_TARGETS_MAX - used : 0,
                                         "%s%s", used ? "," : "", it->valuestring);
            }
            if (used >= PEFT_TARGETS_MAX) {
                // Too many exact names for the flag buffer: their last components say the same
                // (heads are never adapted).
                used = 0;
                o->target_modules[0] = 0;
                cJSON_ArrayForEach(it, t) {
                    if (!cJSON_IsString(it)) continue;
                    const char *last = strrchr(it->valuestring, '.');
                    last = last ? last + 1 : it->valuestring;
                    if (strstr(o->target_modules, last)) continue;
                    used += (size_t)snprintf(o->target_modules + used,
                                             used < PEFT_TARGETS_MAX ? PEFT_TARGETS_MAX - used : 0, "%s%s",
                                             used ? "," : "", last);
                }
            }
        }
        st = peft_options_check(o, err);
        if (st != RLHF_OK) rlhf_err_prefix(err, "%s: ", path);
    }
    if (st == RLHF_OK && base) {
        *base = strdup(json_get_string(c, "base_model_name_or_path", ""));
        if (!*base) st = rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    }
    cJSON_Delete(c);
    return st;
}

rlhf_status peft_load_adapter_weights(model *m, const char *dir, rlhf_err *err) {
    const model_peft *p = m->peft;
    if (!p) return rlhf_fail(err, RLHF_ERUNTIME, "loading adapter weights into a model without adapters");
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, ADAPTER_WEIGHTS);
    st_file f;
    RLHF_TRY(st_open(&f, path, err));
    rlhf_status st = RLHF_OK;
    float *base = m->params + p->train_start;
    for (int i = 0; i < p->n_view && st == RLHF_OK; i++) {
        const param_spec *s = &p->view_specs[i];
        const st_tensor *t = st_find(&f, s->name);
        if (!t) {
            st = rlhf_fail(err, RLHF_EINPUT, "%s: tensor '%s' missing (adapter and base model do not match)", path,
                           s->name);
            break;
        }
        int same = t->ndim == s->ndim;
        for (int d = 0; same && d < s->ndim; d++) same = t->shape[d] == s->shape[d];
        if (!same) {
            st = rlhf_fail(err, RLHF_EINPUT, "%s: tensor '%s' has shape [%lld, ...], expected [%lld, %lld]", path,
                           s->name, (long long)t->shape[0], (long long)s->shape[0],
                           (long long)(s->ndim > 1 ? s->shape[1] : 1));
            break;
        }
        st = st_to_f32(t, base + s->offset, err);
        if (st == RLHF_OK && s->is_head && m->n_new_head_tensors > 0) m->n_new_head_tensors--;  // the adapter's head
    }
    st_close(&f);
    return st;
}

rlhf_status peft_load_adapter_model(model **out, const char *dir, model_head head, const peft_options *quant,
                                    const model_load_opts *opts, rlhf_err *err) {
    *out = NULL;
    peft_options o;
    char *base = NULL;
    RLHF_TRY(peft_read_adapter_config(dir, &o, &base, err));
    if (quant) {
        o.load_in_4bit = quant->load_in_4bit;
        o.quant_type = quant->quant_type;
        o.double_quant = quant->double_quant;
        o.compute = quant->compute;
    }
    // A relative base path that does not exist as given is taken next to the adapter directory.
    char resolved[4200];
    snprintf(resolved, sizeof resolved, "%s", base);
    if (base[0] != '/' && !dir_exists(base)) {
        char tmp[4200];
        snprintf(tmp, sizeof tmp, "%s", dir);
        snprintf(resolved, sizeof resolved, "%s/%s", dirname(tmp), base);
    }
    if (!dir_exists(resolved) && hf_is_hub_id(base)) {  // a hub id: its snapshot in the local HF cache
        char what[4300];
        snprintf(what, sizeof what, "%s/%s: base_model_name_or_path", dir, ADAPTER_CONFIG);
        rlhf_status hs = hf_cache_resolve(base, NULL, what, resolved, sizeof resolved, err);
        free(base);
        RLHF_TRY(hs);
    } else {
        free(base);
    }
    if (!dir_exists(resolved))
        return rlhf_fail(err, RLHF_EINPUT, "%s/%s: base_model_name_or_path '%s' is not a model directory", dir,
                         ADAPTER_CONFIG, resolved);
    model *m;
    model_load_opts lo = {0};
    if (opts) lo = *opts;
    lo.peft = &o;  // 4-bit weights quantized as they are read
    RLHF_TRY(model_load(&m, resolved, head, &lo, err));
    rlhf_status st = peft_load_adapter_weights(m, dir, err);
    if (st != RLHF_OK) {
        model_free(m);
        return st;
    }
    *out = m;
    return RLHF_OK;
}

rlhf_status peft_load_model_dir(model **out, const char *dir, model_head head, const peft_options *quant,
                                const model_load_opts *opts, rlhf_err *err) {
    char cfg[4200];
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    if (peft_is_adapter_dir(dir) && !file_exists(cfg)) return peft_load_adapter_model(out, dir, head, quant, opts, err);
    return model_load(out, dir, head, opts, err);
}
