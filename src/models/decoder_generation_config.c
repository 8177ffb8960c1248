// generation_config.json for causal LMs, as save_pretrained writes it for a model whose generation
// config came from its config.json (GenerationConfig.from_model_config): the special-token ids only.
#include <cjson/cJSON.h>

#include "io/files.h"
#include "io/json_util.h"
#include "models/decoder.h"

#define GENCONFIG_TRANSFORMERS_VERSION "4.44.2"  // the version the fixtures were made with

rlhf_status decoder_save_generation_config(const model *m, const char *dir, rlhf_err *err) {
    cJSON *g = cJSON_CreateObject();
    if (!g) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory (generation_config.json)");
    cJSON_AddBoolToObject(g, "_from_model_config", 1);
    if (m->cfg.bos_token_id >= 0) cJSON_AddNumberToObject(g, "bos_token_id", m->cfg.bos_token_id);
    if (m->cfg.eos_token_id >= 0) cJSON_AddNumberToObject(g, "eos_token_id", m->cfg.eos_token_id);
    if (m->cfg.pad_token_id >= 0) cJSON_AddNumberToObject(g, "pad_token_id", m->cfg.pad_token_id);
    cJSON_AddStringToObject(g, "transformers_version", GENCONFIG_TRANSFORMERS_VERSION);
    char path[4200];
    rlhf_status st = json_save_file(path_join(path, sizeof path, dir, "generation_config.json"), g, err);
    cJSON_Delete(g);
    return st;
}
