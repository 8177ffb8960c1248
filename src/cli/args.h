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
    int seen;              // set by the parser when given on the command line
} arg_spec;

// Parses argv[first..argc) into the specs' destinations after applying every default.
// Unknown flags, missing values and malformed numbers are RLHF_EINPUT naming the flag.
// Returns RLHF_OK with *want_help set when --help/-h was given.
rlhf_status args_parse(arg_spec *specs, int n, int argc, char **argv, int first, int *want_help, rlhf_err *err);
void args_print_help(const char *usage, const arg_spec *specs, int n);
// The spec of a flag by name (NULL if none): to ask whether it was given.
const arg_spec *args_find(const arg_spec *specs, int n, const char *name);

#endif
