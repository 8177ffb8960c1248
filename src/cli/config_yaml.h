// `--config FILE.yaml` as TRL's command line (TrlParser) reads it: top-level keys are flag names, values
// scalars or lists of scalars (a list is joined with commas: --lora_target_modules [q_proj, v_proj]); null
// leaves the flag at its default; an `env:` mapping sets environment variables. The file's flags go
// before the command line's, so flags given on the command line win. Works for every command whose
// --config is not its own flag (`rlhf init --config` takes a model's config.json): only .yaml / .yml files
// are read as flag files.
#ifndef RLHF_CLI_CONFIG_YAML_H
#define RLHF_CLI_CONFIG_YAML_H

#include "base/error.h"

typedef struct {
    int argc;
    char **argv;     // argv[0] is the command's; the other strings are the caller's or owned
    char **owned;    // the strings this struct allocated (freed by cli_config_free)
    int n_owned;
} cli_config_argv;

// argv[0] is the command name. out->argv is argv with the --config file's flags in front, and every hub id
// given to a model or tokenizer flag (--model_name_or_path Qwen/Qwen2.5-0.5B, --sft_model_path,
// --reward_model_path, --ref_model_name_or_path, --tokenizer) replaced by its snapshot directory in the
// local Hugging Face cache (io/hf_cache.h; --model_revision / --revision R picks the revision of
// --model_name_or_path and is taken out). Errors: a missing or unreadable file, bad YAML or a value that is a
// mapping (RLHF_EINPUT naming FILE:LINE); a hub id not in the cache (RLHF_EINPUT: how to get it).
rlhf_status cli_config_expand(int argc, char **argv, cli_config_argv *out, rlhf_err *err);
void cli_config_free(cli_config_argv *a);

#endif
