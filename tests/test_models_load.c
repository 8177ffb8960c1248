// Loading and saving model directories as from_pretrained / save_pretrained: bit-exact round trips of
// every encoder fixture, base checkpoints (with and without the prefix, MLM extras) getting a fresh
// head and one notice, BF16 checkpoints, shape mismatches, unknown model types and architectures,
// and rlhf init's HF initialisation.
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/files.h"
#include "io/json_util.h"
#include "io/safetensors.h"
#include "models/model.h"
#include "testutil.h"

static const char *const FIXTURES[] = {"bert_seqcls_1", "bert_seqcls_2", "distilbert_seqcls_1", "roberta_seqcls_1",
                                       "debertav2_seqcls_1"};
#define N_FIXTURES (int)(sizeof FIXTURES / sizeof FIXTURES[0])

static void fixture_dir(char *out, size_t n, const char *name) { snprintf(out, n, "%s/hf/%s", TU_FIXTURES, name); }

static void make_tmp(char *out, size_t n) {
    snprintf(out, n, "/tmp/rlhf-test-models-XXXXXX");
    if (!mkdtemp(out)) out[0] = 0;
}

static void remove_dir(const char *dir) {
    const char *files[] = {"config.json", "model.safetensors", "stderr.txt"};
    char p[700];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) unlink(path_join(p, sizeof p, dir, files[i]));
    rmdir(dir);
}

static char *slurp(const char *path) {
    char *s = NULL;
    size_t n;
    rlhf_err err;
    if (read_file(path, &s, &n, &err) != RLHF_OK) return NULL;
    return s;
}

// Runs model_load with stderr captured into captured (malloc'd).
static rlhf_status load_capturing(model **m, const char *dir, const char *tmpdir, char **captured, rlhf_err *err) {
    char p[700];
    path_join(p, sizeof p, tmpdir, "stderr.txt");
    fflush(stderr);
    int saved = dup(2), fd = open(p, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    dup2(fd, 2);
    close(fd);
    model_load_opts opts = {.quiet = 0, .init_seed = 5};
    rlhf_status st = model_load(m, dir, HEAD_SEQCLS, &opts, err);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    *captured = slurp(p);
    return st;
}

static int count_substr(const char *s, const char *sub) {
    int n = 0;
    for (const char *p = s; p && (p = strstr(p, sub)); p += strlen(sub)) n++;
    return n;
}

// ---- round trip ----------------------------------------------------------------------------------

static void test_roundtrip(const char *name) {
    char dir[512], tmp[512], a[700], b[700];
    fixture_dir(dir, sizeof dir, name);
    make_tmp(tmp, sizeof tmp);
    rlhf_err err = {0};
    model *m = NULL;
    model_load_opts quiet = {.quiet = 1};
    CHECK(model_load(&m, dir, HEAD_SEQCLS, &quiet, &err) == RLHF_OK, "%s: %s", name, err.msg);
    if (!m) return;
    CHECK(model_save(m, tmp, &err) == RLHF_OK, "%s: save: %s", name, err.msg);
    st_file fa, fb;
    CHECK(st_open(&fa, path_join(a, sizeof a, dir, "model.safetensors"), &err) == RLHF_OK, "%s", err.msg);
    CHECK(st_open(&fb, path_join(b, sizeof b, tmp, "model.safetensors"), &err) == RLHF_OK, "%s", err.msg);
    CHECK(fa.n == fb.n, "%s: %d tensors saved, checkpoint has %d", name, fb.n, fa.n);
    int same = 1;
    for (int i = 0; i < fa.n; i++) {
        const st_tensor *x = &fa.tensors[i], *y = st_find(&fb, x->name);
        int ok = y && y->dtype == x->dtype && y->ndim == x->ndim && y->nbytes == x->nbytes &&
                 !memcmp(y->shape, x->shape, sizeof x->shape[0] * (size_t)x->ndim) &&
                 !memcmp(x->data, y->data, x->nbytes);
        CHECK(ok, "%s: tensor %s differs after load + save", name, x->name);
        same &= ok;
    }
    CHECK(fb.metadata_json && strstr(fb.metadata_json, "\"format\"") && strstr(fb.metadata_json, "\"pt\""),
          "%s: metadata %s", name, fb.metadata_json ? fb.metadata_json : "(none)");
    st_close(&fa);
    st_close(&fb);
    // The whole file matches what the safetensors library wrote, byte for byte.
    char *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    read_file(a, &x, &nx, &err);
    read_file(b, &y, &ny, &err);
    CHECK(same && x && y && nx == ny && !memcmp(x, y, nx), "%s: model.safetensors not byte-identical (%zu vs %zu bytes)",
          name, nx, ny);
    free(x);
    free(y);
    // config.json keeps every field and names the head's labels.
    cJSON *orig = NULL, *saved = NULL;
    json_load_file(path_join(a, sizeof a, dir, "config.json"), &orig, &err);
    CHECK(json_load_file(path_join(b, sizeof b, tmp, "config.json"), &saved, &err) == RLHF_OK, "%s", err.msg);
    if (orig && saved) {
        const cJSON *f;
        cJSON_ArrayForEach(f, orig) CHECK(cJSON_HasObjectItem(saved, f->string), "%s: config field %s lost", name,
                                          f->string);
        const cJSON *arch = cJSON_GetArrayItem(cJSON_GetObjectItem(saved, "architectures"), 0);
        CHECK(arch && !strcmp(arch->valuestring, m->cfg.architecture), "%s: architectures", name);
        CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(saved, "id2label")) == m->cfg.num_labels &&
                  cJSON_GetArraySize(cJSON_GetObjectItem(saved, "label2id")) == m->cfg.num_labels,
              "%s: id2label/label2id size", name);
        CHECK(!strcmp(json_get_string(saved, "torch_dtype", ""), "float32"), "%s: torch_dtype", name);
    }
    cJSON_Delete(orig);
    cJSON_Delete(saved);
    // And the saved directory loads back to the same parameters.
    model *m2 = NULL;
    CHECK(model_load(&m2, tmp, HEAD_SEQCLS, &quiet, &err) == RLHF_OK, "%s: reload: %s", name, err.msg);
    if (m2)
        CHECK(m2->n_params == m->n_params && !memcmp(m2->params, m->params, m->n_params * sizeof(float)),
              "%s: reloaded parameters differ", name);
    model_free(m2);
    model_free(m);
    remove_dir(tmp);
}

// ---- base checkpoints ----------------------------------------------------------------------------

// Writes tmp/{config.json, model.safetensors}: the fixture's backbone tensors (prefix kept or
// stripped), no head, optionally without some tensors and with an MLM extra; config architectures = arch.
static void write_base(const char *fixture, const char *tmp, const char *prefix, int keep_prefix, const char *arch,
                       const char *drop, const char *extra) {
    char dir[512], p[700];
    fixture_dir(dir, sizeof dir, fixture);
    rlhf_err err = {0};
    cJSON *cfg = NULL;
    json_load_file(path_join(p, sizeof p, dir, "config.json"), &cfg, &err);
    cJSON *archs = cJSON_CreateArray();
    cJSON_AddItemToArray(archs, cJSON_CreateString(arch));
    cJSON_ReplaceItemInObjectCaseSensitive(cfg, "architectures", archs);
    json_save_file(path_join(p, sizeof p, tmp, "config.json"), cfg, &err);
    cJSON_Delete(cfg);
    st_file f;
    st_open(&f, path_join(p, sizeof p, dir, "model.safetensors"), &err);
    st_write_tensor *ts = calloc((size_t)f.n + 1, sizeof *ts);
    int n = 0;
    float extra_data[4] = {1, 2, 3, 4};
    for (int i = 0; i < f.n; i++) {
        const st_tensor *t = &f.tensors[i];
        if (strncmp(t->name, prefix, strlen(prefix))) continue;  // the head
        if (drop && strstr(t->name, drop)) continue;
        ts[n].name = keep_prefix ? t->name : t->name + strlen(prefix);
        ts[n].dtype = t->dtype;
        ts[n].ndim = t->ndim;
        memcpy(ts[n].shape, t->shape, sizeof t->shape);
        ts[n].data = t->data;
        n++;
    }
    if (extra) {
        ts[n].name = extra;
        ts[n].dtype = ST_F32;
        ts[n].ndim = 1;
        ts[n].shape[0] = 4;
        ts[n].data = extra_data;
        n++;
    }
    CHECK(st_write(path_join(p, sizeof p, tmp, "model.safetensors"), ts, n, NULL, 0, &err) == RLHF_OK, "%s", err.msg);
    free(ts);
    st_close(&f);
}

// Loads the base directory and checks: backbone equal to the fixture's, head freshly initialised
// (normal weights with the config's initializer_range, zero biases), one notice naming new tensors.
static void check_base_load(const char *fixture, const char *tmp, const char *const *new_names, int n_new,
                            const char *unexpected) {
    char dir[512];
    fixture_dir(dir, sizeof dir, fixture);
    rlhf_err err = {0};
    model *ref = NULL, *m = NULL;
    model_load_opts quiet = {.quiet = 1};
    model_load(&ref, dir, HEAD_SEQCLS, &quiet, &err);
    char *captured = NULL;
    rlhf_status st = load_capturing(&m, tmp, tmp, &captured, &err);
    CHECK(st == RLHF_OK, "%s base load: %s", fixture, err.msg);
    if (st == RLHF_OK && ref) {
        CHECK(count_substr(captured, "newly initialized") == 1, "%s: expected one notice, stderr: %s", fixture,
              captured ? captured : "");
        for (int i = 0; i < n_new; i++)
            CHECK(captured && strstr(captured, new_names[i]), "%s: notice lacks %s: %s", fixture, new_names[i],
                  captured ? captured : "");
        if (unexpected)
            CHECK(captured && strstr(captured, "not used") && strstr(captured, unexpected),
                  "%s: no notice of unexpected %s: %s", fixture, unexpected, captured ? captured : "");
        for (int i = 0; i < m->n_specs; i++) {
            const param_spec *p = &m->specs[i];
            int is_new = 0;
            for (int j = 0; j < n_new; j++) is_new |= !strcmp(p->name, new_names[j]);
            const float *got = m->params + p->offset, *want = ref->params + p->offset;
            if (!is_new) {
                CHECK(!memcmp(got, want, p->numel * sizeof(float)), "%s: backbone %s not loaded", fixture, p->name);
                continue;
            }
            double s = 0, s2 = 0;
            for (size_t k = 0; k < p->numel; k++) s += got[k], s2 += (double)got[k] * got[k];
            if (p->init == INIT_ZEROS) CHECK(s2 == 0, "%s: new %s not zero", fixture, p->name);
            if (p->init == INIT_NORMAL && p->numel >= 256) {
                double sd = sqrt(s2 / p->numel - (s / p->numel) * (s / p->numel));
                CHECK(fabs(sd - 0.2) < 0.04, "%s: new %s std %.4f, initializer_range 0.2", fixture, p->name, sd);
            }
        }
    }
    free(captured);
    model_free(m);
    model_free(ref);
}

static void test_base_checkpoints(void) {
    char tmp[512];
    // BertModel keys (no "bert." prefix): only the classifier is new.
    const char *bert_head[] = {"classifier.weight", "classifier.bias"};
    make_tmp(tmp, sizeof tmp);
    write_base("bert_seqcls_1", tmp, "bert.", 0, "BertModel", NULL, NULL);
    check_base_load("bert_seqcls_1", tmp, bert_head, 2, NULL);
    remove_dir(tmp);
    // BertForMaskedLM keys: prefixed, no pooler, cls.predictions.* extras (unexpected).
    const char *mlm_new[] = {"classifier.weight", "classifier.bias", "bert.pooler.dense.weight",
                             "bert.pooler.dense.bias"};
    make_tmp(tmp, sizeof tmp);
    write_base("bert_seqcls_1", tmp, "bert.", 1, "BertForMaskedLM", "pooler", "cls.predictions.bias");
    check_base_load("bert_seqcls_1", tmp, mlm_new, 4, "cls.predictions.bias");
    remove_dir(tmp);
    // RobertaModel without prefix, DistilBertModel with prefix.
    const char *roberta_head[] = {"classifier.dense.weight", "classifier.dense.bias", "classifier.out_proj.weight",
                                  "classifier.out_proj.bias"};
    make_tmp(tmp, sizeof tmp);
    write_base("roberta_seqcls_1", tmp, "roberta.", 0, "RobertaModel", NULL, NULL);
    check_base_load("roberta_seqcls_1", tmp, roberta_head, 4, NULL);
    remove_dir(tmp);
    const char *distil_head[] = {"pre_classifier.weight", "pre_classifier.bias", "classifier.weight",
                                 "classifier.bias"};
    make_tmp(tmp, sizeof tmp);
    write_base("distilbert_seqcls_1", tmp, "distilbert.", 1, "DistilBertModel", NULL, NULL);
    check_base_load("distilbert_seqcls_1", tmp, distil_head, 4, NULL);
    remove_dir(tmp);
    // DebertaV2Model: the pooler sits outside "deberta." so it is new along with the classifier.
    const char *deberta_head[] = {"pooler.dense.weight", "pooler.dense.bias", "classifier.weight", "classifier.bias"};
    make_tmp(tmp, sizeof tmp);
    write_base("debertav2_seqcls_1", tmp, "deberta.", 0, "DebertaV2Model", NULL, NULL);
    check_base_load("debertav2_seqcls_1", tmp, deberta_head, 4, NULL);
    remove_dir(tmp);
}

// ---- errors --------------------------------------------------------------------------------------

// Copies a fixture to tmp with one config field replaced (value as JSON text).
static void write_variant(const char *fixture, const char *tmp, const char *key, const char *json_value) {
    char dir[512], p[700], q[700];
    fixture_dir(dir, sizeof dir, fixture);
    rlhf_err err = {0};
    cJSON *cfg = NULL;
    json_load_file(path_join(p, sizeof p, dir, "config.json"), &cfg, &err);
    cJSON *v = cJSON_Parse(json_value);
    if (cJSON_HasObjectItem(cfg, key))
        cJSON_ReplaceItemInObjectCaseSensitive(cfg, key, v);
    else
        cJSON_AddItemToObject(cfg, key, v);
    json_save_file(path_join(p, sizeof p, tmp, "config.json"), cfg, &err);
    cJSON_Delete(cfg);
    copy_file(path_join(p, sizeof p, dir, "model.safetensors"), path_join(q, sizeof q, tmp, "model.safetensors"), &err);
}

static void expect_load_error(const char *what, const char *tmp, const char *const *needles, int n) {
    rlhf_err err = {0};
    model *m = NULL;
    model_load_opts quiet = {.quiet = 1};
    rlhf_status st = model_load(&m, tmp, HEAD_SEQCLS, &quiet, &err);
    CHECK(st == RLHF_EINPUT && m == NULL, "%s: status %d (%s)", what, st, err.msg);
    for (int i = 0; i < n; i++) CHECK(strstr(err.msg, needles[i]) != NULL, "%s: message lacks '%s': %s", what, needles[i], err.msg);
    model_free(m);
}

static void test_errors(void) {
    char tmp[512];
    make_tmp(tmp, sizeof tmp);
    write_variant("bert_seqcls_1", tmp, "vocab_size", "130");
    const char *shape[] = {"bert.embeddings.word_embeddings.weight", "[128, 32]", "[130, 32]"};
    expect_load_error("shape mismatch", tmp, shape, 3);
    write_variant("bert_seqcls_1", tmp, "model_type", "\"quuxformer\"");
    const char *mt[] = {"config.json", "unsupported model_type 'quuxformer'", "bert", "roberta", "distilbert"};
    expect_load_error("unknown model_type", tmp, mt, 5);
    write_variant("bert_seqcls_1", tmp, "architectures", "[\"BertForQuestionAnswering\"]");
    const char *arch[] = {"BertForQuestionAnswering"};
    expect_load_error("unknown architecture", tmp, arch, 1);
    write_variant("bert_seqcls_1", tmp, "hidden_act", "\"mish2\"");
    const char *act[] = {"hidden_act", "mish2"};
    expect_load_error("unknown activation", tmp, act, 2);
    // The label count: id2label wins over num_labels; a 3-label head does not fit the 1-label tensors.
    write_variant("bert_seqcls_2", tmp, "num_labels", "3");
    const char *labels[] = {"classifier.weight", "[3, 32]"};
    expect_load_error("num_labels mismatch", tmp, labels, 2);
    remove_dir(tmp);
}

// BF16 checkpoints convert to fp32 (exactly, bf16 being the top half of fp32).
static void test_bf16(void) {
    char dir[512], tmp[512], p[700];
    fixture_dir(dir, sizeof dir, "bert_seqcls_1");
    make_tmp(tmp, sizeof tmp);
    rlhf_err err = {0};
    char cfgdst[700];
    copy_file(path_join(p, sizeof p, dir, "config.json"), path_join(cfgdst, sizeof cfgdst, tmp, "config.json"), &err);
    st_file f;
    st_open(&f, path_join(p, sizeof p, dir, "model.safetensors"), &err);
    st_write_tensor *ts = calloc((size_t)f.n, sizeof *ts);
    uint16_t **bufs = calloc((size_t)f.n, sizeof *bufs);
    for (int i = 0; i < f.n; i++) {
        const st_tensor *t = &f.tensors[i];
        bufs[i] = malloc((size_t)t->numel * 2);
        for (int64_t k = 0; k < t->numel; k++) {
            uint32_t u;
            memcpy(&u, t->data + 4 * k, 4);
            bufs[i][k] = (uint16_t)(u >> 16);
        }
        ts[i] = (st_write_tensor){.name = t->name, .dtype = ST_BF16, .ndim = t->ndim, .data = bufs[i]};
        memcpy(ts[i].shape, t->shape, sizeof t->shape);
    }
    CHECK(st_write(path_join(p, sizeof p, tmp, "model.safetensors"), ts, f.n, NULL, 0, &err) == RLHF_OK, "%s", err.msg);
    model *m = NULL;
    model_load_opts quiet = {.quiet = 1};
    CHECK(model_load(&m, tmp, HEAD_SEQCLS, &quiet, &err) == RLHF_OK, "bf16 load: %s", err.msg);
    if (m) {
        int exact = 1;
        for (int i = 0; i < f.n; i++) {
            const param_spec *s = model_find_param(m, f.tensors[i].name);
            for (int64_t k = 0; s && k < f.tensors[i].numel; k++) {
                uint32_t u = (uint32_t)bufs[i][k] << 16;
                float v;
                memcpy(&v, &u, 4);
                exact &= m->params[s->offset + (size_t)k] == v;
            }
        }
        CHECK(exact, "bf16 values converted exactly");
    }
    model_free(m);
    for (int i = 0; i < f.n; i++) free(bufs[i]);
    free(bufs);
    free(ts);
    st_close(&f);
    remove_dir(tmp);
}

// model_create: HF _init_weights (normal(0, initializer_range), zero biases, unit LayerNorm weights,
// zero padding row), deterministic in the seed.
static void test_create(void) {
    const char *cfg_text =
        "{\"architectures\": [\"BertForSequenceClassification\"], \"model_type\": \"bert\", \"vocab_size\": 300,"
        " \"hidden_size\": 64, \"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"intermediate_size\": 96,"
        " \"max_position_embeddings\": 40, \"initializer_range\": 0.05, \"pad_token_id\": 3, \"num_labels\": 1}";
    cJSON *cfg = cJSON_Parse(cfg_text);
    rlhf_err err = {0};
    model *a = NULL, *b = NULL, *c = NULL;
    CHECK(model_create(&a, cfg, HEAD_SEQCLS, 11, &err) == RLHF_OK, "%s", err.msg);
    CHECK(model_create(&b, cfg, HEAD_SEQCLS, 11, &err) == RLHF_OK, "%s", err.msg);
    CHECK(model_create(&c, cfg, HEAD_SEQCLS, 12, &err) == RLHF_OK, "%s", err.msg);
    if (a && b && c) {
        CHECK(!memcmp(a->params, b->params, a->n_params * 4), "same seed, same init");
        CHECK(memcmp(a->params, c->params, a->n_params * 4), "other seed, other init");
        CHECK(a->cfg.num_labels == 1 && a->n_specs == 5 + 16 + 4, "num_labels %d, %d tensors", a->cfg.num_labels,
              a->n_specs);
        for (int i = 0; i < a->n_specs; i++) {
            const param_spec *p = &a->specs[i];
            const float *w = a->params + p->offset;
            double s = 0, s2 = 0;
            int ones = 1;
            for (size_t k = 0; k < p->numel; k++) s += w[k], s2 += (double)w[k] * w[k], ones &= w[k] == 1.0f;
            if (p->init == INIT_ONES) CHECK(ones && strstr(p->name, "LayerNorm.weight"), "%s: ones", p->name);
            if (p->init == INIT_ZEROS) CHECK(s2 == 0 && strstr(p->name, "bias"), "%s: zeros", p->name);
            if (p->init == INIT_NORMAL && p->numel >= 2048) {
                double sd = sqrt(s2 / p->numel);
                CHECK(fabs(sd - 0.05) < 0.005, "%s: std %.4f, initializer_range 0.05", p->name, sd);
            }
        }
        const param_spec *we = model_find_param(a, "bert.embeddings.word_embeddings.weight");
        double row = 0;
        for (int k = 0; we && k < 64; k++) row += fabs(a->params[we->offset + 3 * 64 + k]);
        CHECK(we && row == 0, "padding row zero");
        // Saving writes id2label for the one label and keeps num_labels consistent.
        char tmp[512], p[700];
        make_tmp(tmp, sizeof tmp);
        CHECK(model_save(a, tmp, &err) == RLHF_OK, "%s", err.msg);
        cJSON *saved = NULL;
        json_load_file(path_join(p, sizeof p, tmp, "config.json"), &saved, &err);
        CHECK(saved && cJSON_GetArraySize(cJSON_GetObjectItem(saved, "id2label")) == 1 &&
                  cJSON_GetObjectItem(saved, "num_labels")->valueint == 1 &&
                  !strcmp(json_get_string(saved, "transformers_version", ""), "4.44.2"),
              "saved config labels / version");
        cJSON_Delete(saved);
        remove_dir(tmp);
    }
    model_free(a);
    model_free(b);
    model_free(c);
    cJSON_Delete(cfg);
}

int main(void) {
    for (int i = 0; i < N_FIXTURES; i++) test_roundtrip(FIXTURES[i]);
    test_base_checkpoints();
    test_errors();
    test_bf16();
    test_create();
    return tu_finish("models_load");
}
