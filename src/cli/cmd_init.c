// `rlhf init`: a randomly initialised Hugging Face model directory from a config.json (HF
// _init_weights), with the tokenizer files copied beside it. The head comes from the config's
// "architectures" entry: the family's sequence-classification class or its causal-LM class.
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "io/files.h"
#include "io/json_util.h"
#include "models/decoder.h"
#include "models/model.h"

#define INIT_DEFAULT_SEED "42"

// Tokenizer files a model directory carries (CONTRACT.md: model directories), copied when present.
static const char *const TOKENIZER_FILES[] = {"tokenizer.json",        "vocab.txt",
                                              "vocab.json",            "merges.txt",
                                              "tokenizer.model",       "spm.model",
                                              "tokenizer_config.json", "special_tokens_map.json"};
#define N_TOKENIZER_FILES (int)(sizeof TOKENIZER_FILES / sizeof TOKENIZER_FILES[0])

// Head kinds by the family's class name for them: one line per head kind.
static const struct {
    size_t arch_field;  // offset of the class name in model_family
    model_head head;
} HEAD_KINDS[] = {
    {offsetof(model_family, seqcls_architecture), HEAD_SEQCLS},
    {offsetof(model_family, lm_architecture), HEAD_LM},
};
#define N_HEAD_KINDS (int)(sizeof HEAD_KINDS / sizeof HEAD_KINDS[0])

static const char *head_class(const model_family *f, int kind) {
    return *(const char *const *)((const char *)f + HEAD_KINDS[kind].arch_field);
}

// The head to build: the first "architectures" entry that is one of the family's head classes; with
// no architectures, the family's first head class.
static rlhf_status pick_head(const cJSON *config, const char *path, model_head *head, rlhf_err *err) {
    const char *type = json_get_string(config, "model_type", NULL);
    const model_family *f = model_family_find(type);
    if (!f)
        return rlhf_fail(err, RLHF_EINPUT, "%s: unsupported model_type '%s' (supported: %s)", path,
                         type ? type : "(missing)", model_family_list());
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(config, "architectures");
    const cJSON *a;
    if (cJSON_IsArray(archs) && cJSON_GetArraySize(archs) > 0) {
        cJSON_ArrayForEach(a, archs) {
            for (int k = 0; k < N_HEAD_KINDS && cJSON_IsString(a); k++)
                if (head_class(f, k) && !strcmp(head_class(f, k), a->valuestring)) {
                    *head = HEAD_KINDS[k].head;
                    return RLHF_OK;
                }
        }
        char classes[512] = "";
        for (int k = 0; k < N_HEAD_KINDS; k++)
            if (head_class(f, k))
                snprintf(classes + strlen(classes), sizeof classes - strlen(classes), "%s%s", classes[0] ? ", " : "",
                         head_class(f, k));
        a = cJSON_GetArrayItem(archs, 0);
        return rlhf_fail(err, RLHF_EINPUT, "%s: architectures %s%s%s: rlhf init builds %s for model_type '%s'", path,
                         cJSON_IsString(a) ? "'" : "", cJSON_IsString(a) ? a->valuestring : "(not a string)",
                         cJSON_IsString(a) ? "'" : "", classes, f->model_type);
    }
    for (int k = 0; k < N_HEAD_KINDS; k++)
        if (head_class(f, k)) {
            *head = HEAD_KINDS[k].head;
            return RLHF_OK;
        }
    return rlhf_fail(err, RLHF_EINPUT, "%s: model_type '%s' has no head class", path, f->model_type);
}

static rlhf_status run_init(const char *config_path, const char *tok_dir, const char *out_dir, long long seed,
                            int overwrite, rlhf_err *err) {
    if (!config_path) return rlhf_fail(err, RLHF_EINPUT, "--config is required (a config.json)");
    if (!tok_dir) return rlhf_fail(err, RLHF_EINPUT, "--tokenizer is required (a directory with tokenizer files)");
    if (!out_dir) return rlhf_fail(err, RLHF_EINPUT, "--output_dir is required");
    if (seed < 0) return rlhf_fail(err, RLHF_EINPUT, "--seed: expected a non-negative integer, got %lld", seed);
    // Validate every input before writing anything.
    if (!dir_exists(tok_dir)) return rlhf_fail(err, RLHF_EINPUT, "--tokenizer %s: not a directory", tok_dir);
    int have[N_TOKENIZER_FILES], n_have = 0;
    char src[4200], dst[4200];
    for (int i = 0; i < N_TOKENIZER_FILES; i++) {
        have[i] = file_exists(path_join(src, sizeof src, tok_dir, TOKENIZER_FILES[i]));
        n_have += have[i];
    }
    if (!have[0] && !have[1] && !(have[2] && have[3]) && !have[4] && !have[5])
        return rlhf_fail(err, RLHF_EINPUT,
                         "--tokenizer %s: no tokenizer.json, vocab.txt, vocab.json+merges.txt, tokenizer.model or spm.model "
                         "in the directory", tok_dir);
    if (file_exists(out_dir) && !dir_exists(out_dir))
        return rlhf_fail(err, RLHF_EINPUT, "--output_dir %s: exists and is not a directory", out_dir);
    if (dir_nonempty(out_dir) && !overwrite)
        return rlhf_fail(err, RLHF_EINPUT, "--output_dir %s: exists and is not empty (use --overwrite_output_dir)",
                         out_dir);
    cJSON *config = NULL;
    RLHF_TRY(json_load_file(config_path, &config, err));
    model_head head = HEAD_SEQCLS;
    rlhf_status st = pick_head(config, config_path, &head, err);
    model *m = NULL;
    if (st == RLHF_OK) {
        st = model_create(&m, config, head, (uint64_t)seed, err);
        if (st != RLHF_OK) rlhf_err_prefix(err, "%s: ", config_path);
    }
    cJSON_Delete(config);
    if (st == RLHF_OK) st = model_save(m, out_dir, err);
    // causal LMs also get generation_config.json, as save_pretrained writes it for them
    if (st == RLHF_OK && head == HEAD_LM) st = decoder_save_generation_config(m, out_dir, err);
    for (int i = 0; i < N_TOKENIZER_FILES && st == RLHF_OK; i++)
        if (have[i])
            st = copy_file(path_join(src, sizeof src, tok_dir, TOKENIZER_FILES[i]),
                           path_join(dst, sizeof dst, out_dir, TOKENIZER_FILES[i]), err);
    if (st == RLHF_OK)
        fprintf(stderr, "rlhf init: wrote %s (%s, %zu parameters, seed %lld) and %d tokenizer files to %s\n",
                "config.json + model.safetensors", m->cfg.architecture, m->n_params, seed, n_have, out_dir);
    model_free(m);
    return st;
}

int cmd_init(int argc, char **argv) {
    const char *config = NULL, *tokenizer = NULL, *output_dir = NULL;
    long long seed = 0, threads = 0;
    int overwrite = 0;
    arg_spec specs[] = {
        {"config", ARG_STRING, &config, NULL, "config.json of the model to create (its \"architectures\" picks the head)", NULL, 0},
        {"tokenizer", ARG_STRING, &tokenizer, NULL, "directory whose tokenizer files are copied into the model", NULL, 0},
        {"output_dir", ARG_STRING, &output_dir, NULL, "model directory to write (Hugging Face layout)", NULL, 0},
        {"seed", ARG_INT, &seed, INIT_DEFAULT_SEED, "seed of the random initialisation", NULL, 0},
        {"threads", ARG_INT, &threads, "0", "threads (0 = all cores)", NULL, 0},
        {"overwrite_output_dir", ARG_BOOL, &overwrite, NULL, "write into a non-empty --output_dir", NULL, 0},
    };
    const int n = (int)(sizeof specs / sizeof specs[0]);
    rlhf_err err = {0};
    int parsed = cli_parse_flags("init", "usage: rlhf init --config CONFIG.json --tokenizer DIR --output_dir DIR [--seed N]\n"
                        "  a randomly initialised model (HF init: normal(0, initializer_range), zero biases,\n"
                        "  unit LayerNorm weights) of the config's architecture, with the tokenizer files", specs, n, argc, argv);
    if (parsed >= 0) return parsed;
    cli_set_threads(threads);
    rlhf_status st = run_init(config, tokenizer, output_dir, seed, overwrite, &err);
    return cli_report("init", st, err.msg);
}
