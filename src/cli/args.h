// Command-line flags declared as a table per command: parsing, defaults, validation and --help are
// all driven by it. Flag names follow TRL / transformers TrainingArguments (underscores); dashes are
// accepted as aliases (--output-dir == --output_dir).
#ifndef RLHF_CLI_ARGS_H
#define RLHF_CLI_ARGS_H

#include "base/error.h"

typedef enum {
    ARG_STRING,  // const char *
    ARG_INT,     // long long
    ARG_FLOAT,   // double
    ARG_BOOL,    // int; "--flag" alone sets 1, "--flag true|false|1|0" explicit
    ARG_MULTI,   // repeated string flag: const char *[ARG_MULTI_MAX], count in *multi_count
    ARG_OPT_STRING  // const char *; the value may be left out ("--flag" last or before another --flag): "true"
} arg_type;

#define ARG_MULTI_MAX 64

typedef struct {
    const char *name;      // without dashes: "learning_rate"
    arg_type type;
    void *dest;            // typed as above
    const char *def;       // default as text (NULL: no default / required-by-command)
    const char *help;
    int *multi_count;      // ARG_MULTI only
    int seen;              // set by the parser when given on the command line (or in --config)
} arg_spec;

// An argv token "--@from=FILE:LINE" says the flag token after it came from a --config YAML file
// (cli/config_yaml.c puts them there) so errors name FILE:LINE; "--@from=FILE:LINE:list" says its value is
// a YAML list joined with commas. Users never type these.
#define ARGS_ORIGIN_PREFIX "--@from="

enum { ARGS_RUN = 0, ARGS_HELP = 1, ARGS_VERSION = 2 };

// Parses argv[first..argc) into the specs' destinations after applying every default. Flags from a
// --config file (before the command line's, see ARGS_ORIGIN_PREFIX) lose to the same flag on the command
// line. Flags every command takes: --help/-h (*want = ARGS_HELP), --version (*want = ARGS_VERSION) and
// --report_to none. Unknown flags are RLHF_EINPUT naming the flag and the closest known one; TRL /
// transformers flags that do not apply here (--deepspeed, --fp16, --push_to_hub, ...) say so and what to
// use instead; missing values and malformed numbers name the flag.
rlhf_status args_parse(arg_spec *specs, int n, int argc, char **argv, int first, int *want, rlhf_err *err);
void args_print_help(const char *usage, const arg_spec *specs, int n);
// The known flag closest to name (edit distance, dashes as underscores), or NULL if none is close.
const char *args_closest(const arg_spec *specs, int n, const char *name, size_t len);
// The spec of a flag by name (NULL if none): to ask whether it was given.
const arg_spec *args_find(const arg_spec *specs, int n, const char *name);

#endif
