// The family-independent half of a model: the param_spec table and its flat buffers, Hugging Face
// initialisation, and loading/saving model directories as from_pretrained / save_pretrained do.
// Everything here is driven by the spec table a family's configure() builds; no family is named.
#include "models/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/rng.h"
#include "io/files.h"
#include "io/json_util.h"
#include "io/safetensors.h"
#include "models/peft.h"

// transformers' PretrainedConfig default for initializer_range, and the version we write when the
// config has none (the one the fixtures were produced with).
#define DEFAULT_INITIALIZER_RANGE 0.02
#define DEFAULT_TRANSFORMERS_VERSION "4.44.2"
// Notices list at most this many tensor names (a base checkpoint of a big model misses few, but a
// wrong directory can miss hundreds).
#define NOTICE_MAX_NAMES 24
// Sanity limits on what a config.json may ask for, checked before anything is sized from it: a hostile or
// mistyped config must be an error naming the field, not a multi-terabyte allocation or a size_t overflow.
// The deepest public checkpoints have ~126 layers and ~10^12 parameters; these are far above both.
#define MODEL_MAX_LAYERS 4096
#define MODEL_MAX_PARAMS (1ull << 40)
#define MODEL_MAX_SPECS (1 << 20)
#define SPEC_TABLE_MIN 64  // initial parameter-table capacity (a power of two)

// ---- spec table --------------------------------------------------------------------------------

rlhf_status model_add_param(model *m, const char *name, int ndim, const int64_t *shape, param_init init,
                            int no_decay, int is_head, int padding_row, rlhf_err *err) {
    if (ndim < 1 || ndim > 4) return rlhf_fail(err, RLHF_ERUNTIME, "tensor '%s': %d dimensions", name, ndim);
    if (strlen(name) >= MODEL_NAME_MAX) return rlhf_fail(err, RLHF_ERUNTIME, "tensor name too long: '%s'", name);
    size_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] <= 0)
            return rlhf_fail(err, RLHF_EINPUT, "tensor '%s': dimension %d is %lld (config sizes must be positive)",
                             name, d, (long long)shape[d]);
        if ((uint64_t)shape[d] > MODEL_MAX_PARAMS / numel)
            return rlhf_fail(err, RLHF_EINPUT, "tensor '%s': more than %llu values (config sizes too large)", name,
                             (unsigned long long)MODEL_MAX_PARAMS);
        numel *= (size_t)shape[d];
    }
    if (m->n_params + numel + 16 > MODEL_MAX_PARAMS || m->n_specs >= MODEL_MAX_SPECS)
        return rlhf_fail(err, RLHF_EINPUT, "config.json: the model would exceed %llu parameters or %d tensors",
                         (unsigned long long)MODEL_MAX_PARAMS, MODEL_MAX_SPECS);
    // The table grows geometrically: its capacity is implied (SPEC_TABLE_MIN, then the next power of two), so a
    // deep model's table is built in linear time (one realloc per tensor was quadratic: the config fuzzer's
    // 4096-layer DistilBERT took minutes under ASan).
    int n = m->n_specs;
    if (n == 0 || (n >= SPEC_TABLE_MIN && (n & (n - 1)) == 0)) {
        param_spec *s = realloc(m->specs, (size_t)(n ? 2 * n : SPEC_TABLE_MIN) * sizeof *s);
        if (!s) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory (parameter table)");
        m->specs = s;
    }
    param_spec *s = m->specs;
    param_spec *p = &s[m->n_specs++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = ndim;
    for (int d = 0; d < ndim; d++) p->shape[d] = shape[d];
    // Each tensor starts on a 64-byte boundary so vectorised kernels see aligned rows.
    p->offset = (m->n_params + 15) & ~(size_t)15;
    p->numel = numel;
    p->init = init;
    p->no_decay = (uint8_t)no_decay;
    p->is_head = (uint8_t)is_head;
    p->padding_row = padding_row;
    m->n_params = p->offset + numel;
    return RLHF_OK;
}

const param_spec *model_find_param(const model *m, const char *name) {
    for (int i = 0; i < m->n_specs; i++)
        if (!strcmp(m->specs[i].name, name)) return &m->specs[i];
    return NULL;
}

// FNV-1a of the tensor name: each tensor's initial values depend only on (seed, name), so adding a
// tensor to a family never changes another's.
static uint64_t name_hash(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

// HF _init_weights for one tensor.
static void init_param(model *m, const param_spec *p, uint64_t seed, double initializer_range) {
    float *w = m->params + p->offset;
    switch (p->init) {
    case INIT_ZEROS: memset(w, 0, p->numel * sizeof *w); break;
    case INIT_ONES:
        for (size_t i = 0; i < p->numel; i++) w[i] = 1.0f;
        break;
    case INIT_NORMAL: {
        float std = p->init_std > 0 ? p->init_std : (float)initializer_range;
        uint64_t key = rng_key(seed, RNG_STREAM_INIT, name_hash(p->name), 0);
#pragma omp parallel for schedule(static) if (p->numel > 65536)
        for (size_t i = 0; i < p->numel; i++) w[i] = std * rng_normal(key, i);
        if (p->padding_row >= 0 && p->ndim == 2 && p->padding_row < p->shape[0])
            memset(w + (size_t)p->padding_row * (size_t)p->shape[1], 0, (size_t)p->shape[1] * sizeof *w);
        break;
    }
    }
}

static rlhf_status initializer_range(const model *m, double *out, rlhf_err *err) {
    return json_get_double(m->config_json, "initializer_range", DEFAULT_INITIALIZER_RANGE, out, "config.json", err);
}

// ---- construction ------------------------------------------------------------------------------

static int architecture_known(const model_family *f, const char *name) {
    if ((f->seqcls_architecture && !strcmp(name, f->seqcls_architecture)) ||
        (f->lm_architecture && !strcmp(name, f->lm_architecture)))
        return 1;
    for (const char *const *a = f->known_architectures; a && *a; a++)
        if (!strcmp(name, *a)) return 1;
    return 0;
}

static void list_architectures(const model_family *f, char *buf, size_t n) {
    size_t used = 0;
    buf[0] = 0;
    const char *first[2] = {f->seqcls_architecture, f->lm_architecture};
    for (int i = 0; i < 2; i++)
        if (first[i]) used += (size_t)snprintf(buf + used, used < n ? n - used : 0, "%s%s", used ? ", " : "", first[i]);
    for (const char *const *a = f->known_architectures; a && *a; a++) {
        if ((first[0] && !strcmp(*a, first[0])) || (first[1] && !strcmp(*a, first[1]))) continue;  // listed above
        used += (size_t)snprintf(buf + used, used < n ? n - used : 0, "%s%s", used ? ", " : "", *a);
    }
}

// Picks the family from config's model_type and checks its architectures entries (what names the
// config in errors: "DIR/config.json" or "config").
static rlhf_status resolve_family(const cJSON *config, model_head head, const char *what, const model_family **out,
                                  rlhf_err *err) {
    if (!cJSON_IsObject(config)) return rlhf_fail(err, RLHF_EINPUT, "%s: expected a JSON object", what);
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(config, "model_type");
    if (!cJSON_IsString(mt))
        return rlhf_fail(err, RLHF_EINPUT, "%s: field 'model_type' missing or not a string (supported: %s)", what,
                         model_family_list());
    const model_family *f = model_family_find(mt->valuestring);
    if (!f)
        return rlhf_fail(err, RLHF_EINPUT, "%s: unsupported model_type '%s' (supported: %s)", what, mt->valuestring,
                         model_family_list());
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(config, "architectures");
    if (archs && !cJSON_IsNull(archs)) {
        if (!cJSON_IsArray(archs))
            return rlhf_fail(err, RLHF_EINPUT, "%s: field 'architectures' must be a list of class names", what);
        const cJSON *a;
        cJSON_ArrayForEach(a, archs) {
            if (!cJSON_IsString(a))
                return rlhf_fail(err, RLHF_EINPUT, "%s: field 'architectures' must be a list of class names", what);
            if (!architecture_known(f, a->valuestring)) {
                char known[1024];
                list_architectures(f, known, sizeof known);
                return rlhf_fail(err, RLHF_EINPUT,
                                 "%s: unsupported architecture '%s' for model_type '%s' (supported: %s)", what,
                                 a->valuestring, f->model_type, known);
            }
        }
    }
    const char *arch = head == HEAD_SEQCLS ? f->seqcls_architecture : f->lm_architecture;
    if (!arch)
        return rlhf_fail(err, RLHF_EINPUT, "%s: model_type '%s' has no %s head in this project", what, f->model_type,
                         head == HEAD_SEQCLS ? "sequence-classification" : "causal language-model");
    *out = f;
    return RLHF_OK;
}

// Layer counts are read before any table is sized from them (families allocate per-layer state first).
static const char *const LAYER_COUNT_KEYS[] = {"num_hidden_layers", "n_layer", "n_layers", "num_layers", NULL};

static rlhf_status check_config_limits(const cJSON *config, rlhf_err *err) {
    for (const char *const *k = LAYER_COUNT_KEYS; *k; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(config, *k);
        if (cJSON_IsNumber(v) && v->valuedouble > MODEL_MAX_LAYERS)
            return rlhf_fail(err, RLHF_EINPUT, "config.json: '%s' = %g, expected at most %d layers", *k,
                             v->valuedouble, MODEL_MAX_LAYERS);
    }
    return RLHF_OK;
}

// Builds the spec table and allocates the parameters (zeroed) unless the caller provides them
// (peft's load-time buffer). Takes ownership of config.
static rlhf_status model_build(model **out, cJSON *config, const model_family *f, model_head head, int alloc,
                               rlhf_err *err) {
    *out = NULL;
    rlhf_status lim = check_config_limits(config, err);
    if (lim != RLHF_OK) {
        cJSON_Delete(config);
        return lim;
    }
    model *m = calloc(1, sizeof *m);
    if (!m) {
        cJSON_Delete(config);
        return rlhf_fail(err, RLHF_ERUNTIME, "out of memory (model)");
    }
    m->family = f;
    m->head = head;
    m->config_json = config;
    m->cfg.pad_token_id = m->cfg.bos_token_id = m->cfg.eos_token_id = -1;
    snprintf(m->cfg.model_type, sizeof m->cfg.model_type, "%s", f->model_type);
    rlhf_status st = f->configure(m, err);
    if (st == RLHF_OK && !m->cfg.architecture[0])
        snprintf(m->cfg.architecture, sizeof m->cfg.architecture, "%s",
                 head == HEAD_SEQCLS ? f->seqcls_architecture : f->lm_architecture);
    if (st == RLHF_OK && alloc) {
        m->params = rlhf_calloc_aligned(m->n_params * sizeof(float));
        if (!m->params)
            st = rlhf_fail(err, RLHF_ERUNTIME, "out of memory: %zu parameters (%.1f MiB)", m->n_params,
                           (double)m->n_params * 4 / (1 << 20));
    }
    if (st != RLHF_OK) {
        model_free(m);
        return st;
    }
    *out = m;
    return RLHF_OK;
}

rlhf_status model_create(model **out, const cJSON *config, model_head head, uint64_t seed, rlhf_err *err) {
    *out = NULL;
    const model_family *f;
    RLHF_TRY(resolve_family(config, head, "config", &f, err));
    cJSON *copy = cJSON_Duplicate(config, 1);
    if (!copy) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory (config)");
    model *m;
    RLHF_TRY(model_build(&m, copy, f, head, 1, err));
    double range;
    rlhf_status st = initializer_range(m, &range, err);
    if (st != RLHF_OK) {
        model_free(m);
        return st;
    }
    for (int i = 0; i < m->n_specs; i++) init_param(m, &m->specs[i], seed, range);
    *out = m;
    return RLHF_OK;
}

rlhf_status model_configure(model **out, const cJSON *config, model_head head, rlhf_err *err) {
    *out = NULL;
    const model_family *f;
    RLHF_TRY(resolve_family(config, head, "config", &f, err));
    cJSON *copy = cJSON_Duplicate(config, 1);
    if (!copy) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory (config)");
    return model_build(out, copy, f, head, 0, err);
}

// ---- loading -----------------------------------------------------------------------------------

static void shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t used = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < ndim && used < n; d++)
        used += (size_t)snprintf(buf + used, n - used, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (used < n) snprintf(buf + used, n - used, "]");
}

// Finds the checkpoint tensor for a spec as from_pretrained does: the exact name, the name without
// the base-model prefix when the checkpoint is a bare base model (BertModel keys), and the
// pre-2019 LayerNorm names gamma/beta that transformers still renames on load.
static const st_tensor *find_checkpoint_tensor(const st_file *f, const char *name, const char *strip_prefix) {
    const char *key = name;
    if (strip_prefix && !strncmp(name, strip_prefix, strlen(strip_prefix))) key = name + strlen(strip_prefix);
    const st_tensor *t = st_find(f, key);
    if (t) return t;
    size_t n = strlen(key);
    char legacy[MODEL_NAME_MAX + 8];
    if (n > 7 && !strcmp(key + n - 7, ".weight")) {
        snprintf(legacy, sizeof legacy, "%.*s.gamma", (int)(n - 7), key);
        return st_find(f, legacy);
    }
    if (n > 5 && !strcmp(key + n - 5, ".bias")) {
        snprintf(legacy, sizeof legacy, "%.*s.beta", (int)(n - 5), key);
        return st_find(f, legacy);
    }
    return NULL;
}

// Checkpoint entries transformers drops silently: non-persistent buffers older versions saved.
static int ignored_checkpoint_key(const char *name) {
    size_t n = strlen(name);
    return n >= 12 && !strcmp(name + n - 12, "position_ids");
}

// One notice line: "PREFIX [a, b, c] SUFFIX" with at most NOTICE_MAX_NAMES names.
static void print_name_notice(const char *prefix, const char *const *names, int n, const char *suffix) {
    fprintf(stderr, "%s[", prefix);
    for (int i = 0; i < n && i < NOTICE_MAX_NAMES; i++) fprintf(stderr, "%s%s", i ? ", " : "", names[i]);
    if (n > NOTICE_MAX_NAMES) fprintf(stderr, ", ... and %d more", n - NOTICE_MAX_NAMES);
    fprintf(stderr, "]%s\n", suffix);
}

// Once a tensor is converted, its pages of the mapped checkpoint are dropped from this process (they
// stay in the page cache), so a load peaks at about one copy of the weights, not two.
static void drop_file_pages(const st_tensor *t) {
    const long page = sysconf(_SC_PAGESIZE);
    if (page <= 0) return;
    uintptr_t lo = ((uintptr_t)t->data + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
    uintptr_t hi = ((uintptr_t)t->data + t->nbytes) & ~((uintptr_t)page - 1);
    if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

// A frozen model's parameter buffer: the tensors stored as BF16 in the checkpoint that may stay bf16
// (peft_bf16_eligible) are kept so; the rest are fp32 in m->params. Without any, a plain buffer.
static rlhf_status alloc_frozen(model *m, const st_file *f, const char *strip, rlhf_err *err) {
    size_t *offs = malloc(sizeof(size_t) * (size_t)(m->n_specs + 1));
    if (!offs) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory (loading)");
    int n = 0;
    for (int i = 0; i < m->n_specs; i++) {
        const param_spec *p = &m->specs[i];
        const st_tensor *t = find_checkpoint_tensor(f, p->name, strip);
        if (!t || t->dtype != ST_BF16 || (size_t)t->numel != p->numel || !peft_bf16_eligible(m, p)) continue;
        offs[n++] = p->offset;
    }
    rlhf_status st = RLHF_OK;
    if (n)
        st = peft_prepare_bf16(m, offs, n, err);
    else if (!(m->params = rlhf_calloc_aligned(m->n_params * sizeof(float))))
        st = rlhf_fail(err, RLHF_ERUNTIME, "out of memory: %zu parameters (%.1f MiB)", m->n_params,
                       (double)m->n_params * 4 / (1 << 20));
    free(offs);
    return st;
}

static rlhf_status load_weights(model *m, const char *dir, const model_load_opts *opts, rlhf_err *err) {
    st_file f;
    RLHF_TRY(st_open_model_dir(&f, dir, err));
    rlhf_status st = RLHF_OK;
    char where[4200];
    snprintf(where, sizeof where, "%s/model.safetensors", dir);
    const char *prefix = m->family->base_prefix;
    // A base checkpoint saved by the base class has no prefix on any key (from_pretrained's
    // "loading a base model into a model with a head").
    int has_prefix = 0;
    if (prefix && *prefix)
        for (int i = 0; i < f.n && !has_prefix; i++)
            has_prefix = !strncmp(f.tensors[i].name, prefix, strlen(prefix));
    const char *strip = prefix && *prefix && !has_prefix ? prefix : NULL;
    if (!m->params) {  // a frozen model: bf16 tensors planned from the file
        rlhf_status s = alloc_frozen(m, &f, strip, err);
        if (s != RLHF_OK) {
            st_close(&f);
            return s;
        }
    }

    uint8_t *used = calloc((size_t)f.n + 1, 1);
    const char **missing = calloc((size_t)m->n_specs + 1, sizeof *missing);
    const char **unexpected = calloc((size_t)f.n + 1, sizeof *unexpected);
    int n_missing = 0, n_unexpected = 0;
    double range = DEFAULT_INITIALIZER_RANGE;
    if (!used || !missing || !unexpected) st = rlhf_fail(err, RLHF_ERUNTIME, "out of memory (loading %s)", where);
    if (st == RLHF_OK) st = initializer_range(m, &range, err);
    for (int i = 0; i < m->n_specs && st == RLHF_OK; i++) {
        const param_spec *p = &m->specs[i];
        const st_tensor *t = find_checkpoint_tensor(&f, p->name, strip);
        if (!t && peft_quantizes(m, p->offset)) {
            st = rlhf_fail(err, RLHF_EINPUT, "%s: tensor '%s' missing: a 4-bit base must come from a checkpoint", where,
                           p->name);
            break;
        }
        if (!t) {
            missing[n_missing++] = p->name;
            m->n_new_head_tensors += p->is_head != 0;
            init_param(m, p, opts ? opts->init_seed : 0, range);
            continue;
        }
        used[t - f.tensors] = 1;
        int same = t->ndim == p->ndim;
        for (int d = 0; same && d < p->ndim; d++) same = t->shape[d] == p->shape[d];
        if (!same) {
            char got[128], want[128];
            shape_str(got, sizeof got, t->ndim, t->shape);
            shape_str(want, sizeof want, p->ndim, p->shape);
            st = rlhf_fail(err, RLHF_EINPUT,
                           "%s: tensor '%s' has shape %s in the checkpoint but %s expects %s (check config.json)",
                           where, t->name, got, m->cfg.architecture, want);
            break;
        }
        if (peft_stores_bf16(m, p->offset))
            st = peft_load_bf16(m, p->offset, t, err);  // kept bf16: never held as fp32 in the model
        else if (peft_quantizes(m, p->offset))
            st = peft_load_quantized(m, p->offset, t, err);  // never held as fp32 in the model
        else
            st = st_to_f32(t, m->params + p->offset, err);
        if (st != RLHF_OK) rlhf_err_prefix(err, "%s: ", where);
        drop_file_pages(t);
    }
    for (int i = 0; i < f.n && st == RLHF_OK; i++)
        if (!used[i] && !ignored_checkpoint_key(f.tensors[i].name)) unexpected[n_unexpected++] = f.tensors[i].name;
    if (st == RLHF_OK && !(opts && opts->quiet)) {
        char msg[8400];
        if (n_unexpected) {
            snprintf(msg, sizeof msg, "notice: %d tensors of %s are not used by %s: ", n_unexpected, where,
                     m->cfg.architecture);
            print_name_notice(msg, unexpected, n_unexpected, "");
        }
        if (n_missing) {
            snprintf(msg, sizeof msg, "notice: %d tensors of %s are not in %s and are newly initialized: ", n_missing,
                     m->cfg.architecture, where);
            print_name_notice(msg, missing, n_missing, " (train the model before using its predictions)");
        }
    }
    free(used);
    free(missing);
    free(unexpected);
    st_close(&f);
    return st;
}

rlhf_status model_load(model **out, const char *dir, model_head head, const model_load_opts *opts, rlhf_err *err) {
    *out = NULL;
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    cJSON *config;
    RLHF_TRY(json_load_file(path, &config, err));
    const model_family *f;
    rlhf_status st = resolve_family(config, head, path, &f, err);
    if (st != RLHF_OK) {
        cJSON_Delete(config);
        return st;
    }
    model *m;
    const int with_peft = opts && opts->peft && (opts->peft->use_peft || opts->peft->load_in_4bit);
    const int frozen = opts && opts->frozen;
    // a frozen model's buffer is allocated by load_weights, once it knows which tensors stay bf16
    st = model_build(&m, config, f, head, !with_peft && !frozen, err);
    if (st != RLHF_OK) return rlhf_err_prefix(err, "%s: ", path);
    if (with_peft) st = peft_prepare_load(m, opts->peft, opts->init_seed, err);
    if (st == RLHF_OK) st = load_weights(m, dir, opts, err);
    if (st != RLHF_OK) {
        model_free(m);
        return st;
    }
    m->no_grad = frozen;
    *out = m;
    return RLHF_OK;
}

// ---- saving ------------------------------------------------------------------------------------

static rlhf_status set_item(cJSON *obj, const char *key, cJSON *value, rlhf_err *err) {
    if (!value) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory (config.json)");
    if (cJSON_HasObjectItem(obj, key))
        cJSON_ReplaceItemInObjectCaseSensitive(obj, key, value);
    else
        cJSON_AddItemToObject(obj, key, value);
    return RLHF_OK;
}

// id2label / label2id as PretrainedConfig writes them: kept when the config already names exactly
// num_labels labels (custom names survive), else LABEL_0.. LABEL_{n-1}.
static rlhf_status set_labels(cJSON *c, int num_labels, rlhf_err *err) {
    const cJSON *old = cJSON_GetObjectItemCaseSensitive(c, "id2label");
    int keep = cJSON_IsObject(old) && cJSON_GetArraySize(old) == num_labels;
    for (int i = 0; keep && i < num_labels; i++) {
        char key[24];
        snprintf(key, sizeof key, "%d", i);
        keep = cJSON_IsString(cJSON_GetObjectItemCaseSensitive(old, key));
    }
    cJSON *id2label = cJSON_CreateObject(), *label2id = cJSON_CreateObject();
    if (!id2label || !label2id) {
        cJSON_Delete(id2label);
        cJSON_Delete(label2id);
        return rlhf_fail(err, RLHF_ERUNTIME, "out of memory (config.json)");
    }
    for (int i = 0; i < num_labels; i++) {
        char key[24], label[64];
        snprintf(key, sizeof key, "%d", i);
        const char *name = label;
        if (keep)
            name = cJSON_GetObjectItemCaseSensitive(old, key)->valuestring;
        else
            snprintf(label, sizeof label, "LABEL_%d", i);
        cJSON_AddItemToObject(id2label, key, cJSON_CreateString(name));
        cJSON_AddItemToObject(label2id, name, cJSON_CreateNumber(i));
    }
    RLHF_TRY(set_item(c, "id2label", id2label, err));
    RLHF_TRY(set_item(c, "label2id", label2id, err));
    // transformers writes no num_labels; a config that had one keeps it, consistent.
    if (cJSON_HasObjectItem(c, "num_labels")) RLHF_TRY(set_item(c, "num_labels", cJSON_CreateNumber(num_labels), err));
    return RLHF_OK;
}

static rlhf_status build_saved_config(const model *m, cJSON **out, rlhf_err *err) {
    cJSON *c = cJSON_Duplicate(m->config_json, 1);
    if (!c) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory (config.json)");
    cJSON *archs = cJSON_CreateArray();
    rlhf_status st = archs ? RLHF_OK : rlhf_fail(err, RLHF_ERUNTIME, "out of memory (config.json)");
    if (st == RLHF_OK) {
        cJSON_AddItemToArray(archs, cJSON_CreateString(m->cfg.architecture));
        st = set_item(c, "architectures", archs, err);
    }
    if (st == RLHF_OK && m->head == HEAD_SEQCLS) st = set_labels(c, m->cfg.num_labels, err);
    if (st == RLHF_OK && m->cfg.pad_token_id >= 0)
        st = set_item(c, "pad_token_id", cJSON_CreateNumber(m->cfg.pad_token_id), err);
    if (st == RLHF_OK) st = set_item(c, "torch_dtype", cJSON_CreateString(model_torch_dtype(m)), err);
    if (st == RLHF_OK && cJSON_GetObjectItemCaseSensitive(c, "dtype"))
        st = set_item(c, "dtype", cJSON_CreateString(model_torch_dtype(m)), err);
    if (st == RLHF_OK && !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(c, "transformers_version")))
        st = set_item(c, "transformers_version", cJSON_CreateString(DEFAULT_TRANSFORMERS_VERSION), err);
    if (st != RLHF_OK) {
        cJSON_Delete(c);
        return st;
    }
    *out = c;
    return RLHF_OK;
}

const char *model_torch_dtype(const model *m) {
    const cJSON *c = m->config_json;
    const cJSON *v = c ? cJSON_GetObjectItemCaseSensitive(c, "torch_dtype") : NULL;
    if (!cJSON_IsString(v) && c) v = cJSON_GetObjectItemCaseSensitive(c, "dtype");  // transformers >= 4.56's name
    if (cJSON_IsString(v) && (!strcmp(v->valuestring, "bfloat16") || !strcmp(v->valuestring, "float16")))
        return v->valuestring;
    return "float32";
}

rlhf_status model_set_torch_dtype(model *m, const char *dtype, rlhf_err *err) {
    if (!dtype || !strcmp(dtype, "auto")) return RLHF_OK;
    if (strcmp(dtype, "float32") && strcmp(dtype, "bfloat16") && strcmp(dtype, "float16"))
        return rlhf_fail(err, RLHF_EINPUT, "--torch_dtype: expected auto, float32, bfloat16 or float16, got '%s'", dtype);
    if (!m->config_json) return RLHF_OK;
    RLHF_TRY(set_item(m->config_json, "torch_dtype", cJSON_CreateString(dtype), err));
    if (cJSON_GetObjectItemCaseSensitive(m->config_json, "dtype"))
        RLHF_TRY(set_item(m->config_json, "dtype", cJSON_CreateString(dtype), err));
    return RLHF_OK;
}

// Writes the weights in the model's torch_dtype (full_precision: F32, for checkpoints whose fp32 master
// weights resume bit for bit), and config.json, whose torch_dtype stays the model's either way.
static rlhf_status save_dir(const model *m, const char *dir, int full_precision, rlhf_err *err) {
    if (m->peft)  // the buffer holds the frozen base without its adapters (and no 4-bit weights)
        return rlhf_fail(err, RLHF_ERUNTIME, "model_save: %s has LoRA adapters or a 4-bit base; write the adapter "
                         "(peft_save_adapter) or merge it first (peft_merge_and_unload)", m->cfg.architecture);
    RLHF_TRY(make_dirs(dir, err));
    const char *dtype = model_torch_dtype(m);
    st_dtype sd = full_precision || !strcmp(dtype, "float32") ? ST_F32 : !strcmp(dtype, "bfloat16") ? ST_BF16 : ST_F16;
    char path[4200];
    st_write_tensor *ts = calloc((size_t)m->n_specs + 1, sizeof *ts);
    uint16_t *half = sd == ST_F32 ? NULL : malloc(sizeof(uint16_t) * (m->n_params ? m->n_params : 1));
    if (!ts || (sd != ST_F32 && !half)) {
        free(ts);
        free(half);
        return rlhf_fail(err, RLHF_ERUNTIME, "out of memory (saving %s)", dir);
    }
    if (sd == ST_BF16) st_f32_to_bf16(m->params, half, m->n_params);
    if (sd == ST_F16) st_f32_to_f16(m->params, half, m->n_params);
    for (int i = 0; i < m->n_specs; i++) {
        const param_spec *p = &m->specs[i];
        ts[i].name = p->name;
        ts[i].dtype = sd;
        ts[i].ndim = p->ndim;
        for (int d = 0; d < p->ndim; d++) ts[i].shape[d] = p->shape[d];
        ts[i].data = half ? (const void *)(half + p->offset) : (const void *)(m->params + p->offset);
    }
    // save_pretrained(safe_serialization=True) tags the file as PyTorch's.
    static const char *const metadata[] = {"format", "pt"};
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    rlhf_status st = st_write(path, ts, m->n_specs, metadata, 1, err);
    free(ts);
    free(half);
    RLHF_TRY(st);
    cJSON *c = NULL;
    RLHF_TRY(build_saved_config(m, &c, err));
    snprintf(path, sizeof path, "%s/config.json", dir);
    st = json_save_file(path, c, err);
    cJSON_Delete(c);
    return st;
}

rlhf_status model_save(const model *m, const char *dir, rlhf_err *err) {
    return save_dir(m, dir, 0, err);
}

rlhf_status model_save_f32(const model *m, const char *dir, rlhf_err *err) {
    return save_dir(m, dir, 1, err);
}

// ---- gradients, lifetime, dispatch -------------------------------------------------------------

rlhf_status model_alloc_grads(model *m, rlhf_err *err) {
    if (m->peft) return peft_alloc_grads(m, err);  // only the adapters (and trained heads) get gradients
    if (m->grads) return RLHF_OK;
    m->grads = rlhf_calloc_aligned(m->n_params * sizeof(float));
    if (!m->grads)
        return rlhf_fail(err, RLHF_ERUNTIME, "out of memory: gradients of %zu parameters (%.1f MiB)", m->n_params,
                         (double)m->n_params * 4 / (1 << 20));
    return RLHF_OK;
}

void model_zero_grads(model *m) {
    if (m->peft) peft_zero_grads(m);
    if (m->grads) memset(m->grads, 0, m->n_params * sizeof(float));
}

void model_free(model *m) {
    if (!m) return;
    if (m->family && m->family->destroy) m->family->destroy(m);
    peft_free(m);  // releases the adapter buffer that replaced m->params
    cJSON_Delete(m->config_json);
    free(m->specs);
    rlhf_free(m->params);
    rlhf_free(m->grads);
    arena_free(&m->acts);
    free(m->hidden_states);
    free(m);
}

void model_release_activations(model *m) {
    if (!m) return;
    arena_free(&m->acts);
    m->out = m->last_hidden = NULL;
}

rlhf_status model_forward(model *m, const model_batch *b, rlhf_err *err) {
    if (b->B <= 0 || b->T <= 0)
        return rlhf_fail(err, RLHF_EINPUT, "empty batch (B=%d, T=%d)", b->B, b->T);
    peft_begin_forward(m, b);
    return m->family->forward(m, b, err);
}

rlhf_status model_forward_no_grad(model *m, const model_batch *b, rlhf_err *err) {
    const int saved = m->no_grad;
    m->no_grad = 1;
    rlhf_status st = model_forward(m, b, err);
    m->no_grad = saved;
    return st;
}

rlhf_status model_backward(model *m, const float *dout, const float *dhidden, rlhf_err *err) {
    if (peft_bf16_bytes(m, NULL))
        return rlhf_fail(err, RLHF_ERUNTIME, "%s: a frozen model kept in bf16 has no backward", m->cfg.architecture);
    RLHF_TRY(model_alloc_grads(m, err));
    return m->family->backward(m, dout, dhidden, err);
}

// ---- config helpers ----------------------------------------------------------------------------

rlhf_status model_config_num_labels(const cJSON *config, int *out, rlhf_err *err) {
    const cJSON *id2label = cJSON_GetObjectItemCaseSensitive(config, "id2label");
    if (id2label && !cJSON_IsNull(id2label)) {
        if (!cJSON_IsObject(id2label))
            return rlhf_fail(err, RLHF_EINPUT, "config.json: 'id2label' must be an object {\"0\": \"LABEL_0\", ...}");
        *out = cJSON_GetArraySize(id2label);
        if (*out < 1) return rlhf_fail(err, RLHF_EINPUT, "config.json: 'id2label' is empty (need at least 1 label)");
        return RLHF_OK;
    }
    long long n;
    RLHF_TRY(json_get_int(config, "num_labels", 2, &n, "config.json", err));
    if (n < 1 || n > 1000000) return rlhf_fail(err, RLHF_EINPUT, "config.json: 'num_labels' = %lld, expected >= 1", n);
    *out = (int)n;
    return RLHF_OK;
}
