// The table of model families the project knows, by config.json model_type (as transformers'
// CONFIG_MAPPING). One line per family: adding a family is adding its line here and its file.
#include <string.h>

#include "models/model.h"

// X(variable defined in the family's file, model_type)
#define RLHF_FAMILIES(X)                     \
    X(bert_family, "bert")                   \
    X(distilbert_family, "distilbert")       \
    X(roberta_family, "roberta")             \
    X(gpt2_family, "gpt2")                   \
    X(gptneox_family, "gpt_neox")            \
    X(llama_family, "llama")                 \
    X(mistral_family, "mistral")             \
    X(deberta_v2_family, "deberta-v2")       \
    X(qwen2_family, "qwen2")                 \
    X(gemma_family, "gemma")                 \
    X(gemma2_family, "gemma2")               \
    X(phi3_family, "phi3")                   \
    /* end of the family table */

#define DECLARE_FAMILY(var, type) extern const model_family var;
RLHF_FAMILIES(DECLARE_FAMILY)

#define FAMILY_ENTRY(var, type) &var,
static const model_family *const FAMILIES[] = {RLHF_FAMILIES(FAMILY_ENTRY)};
#define N_FAMILIES (int)(sizeof FAMILIES / sizeof FAMILIES[0])

// ", bert, distilbert, ..." built at compile time; the list skips the leading ", ".
#define FAMILY_NAME(var, type) ", " type
static const char FAMILY_NAMES[] = "" RLHF_FAMILIES(FAMILY_NAME);

const model_family *model_family_find(const char *model_type) {
    if (!model_type) return NULL;
    for (int i = 0; i < N_FAMILIES; i++)
        if (!strcmp(FAMILIES[i]->model_type, model_type)) return FAMILIES[i];
    return NULL;
}

const char *model_family_list(void) { return FAMILY_NAMES + 2; }
