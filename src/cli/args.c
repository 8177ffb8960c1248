// Table-driven flag parsing: defaults first, then argv, each value checked against its type.
#include "cli/args.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int same_name(const char *spec, const char *given, size_t len) {
    if (strlen(spec) != len) return 0;
    for (size_t i = 0; i < len; i++) {
        char g = given[i] == '-' ? '_' : given[i];
        if (g != spec[i]) return 0;
    }
    return 1;
}

static rlhf_status set_value(arg_spec *s, const char *val, int from_default, rlhf_err *err) {
    const char *where = from_default ? "default of " : "";
    char *end = NULL;
    switch (s->type) {
    case ARG_STRING:
    case ARG_OPT_STRING:
        *(const char **)s->dest = val;
        return RLHF_OK;
    case ARG_MULTI:
        if (*s->multi_count >= ARG_MULTI_MAX)
            return rlhf_fail(err, RLHF_EINPUT, "--%s: given more than %d times", s->name, ARG_MULTI_MAX);
        ((const char **)s->dest)[(*s->multi_count)++] = val;
        return RLHF_OK;
    case ARG_INT: {
        errno = 0;
        long long v = strtoll(val, &end, 10);
        if (errno || end == val || *end)
            return rlhf_fail(err, RLHF_EINPUT, "%s--%s: expected an integer, got '%s'", where, s->name, val);
        *(long long *)s->dest = v;
        return RLHF_OK;
    }
    case ARG_FLOAT: {
        errno = 0;
        double v = strtod(val, &end);
        if (errno || end == val || *end || !isfinite(v))
            return rlhf_fail(err, RLHF_EINPUT, "%s--%s: expected a finite number, got '%s'", where, s->name, val);
        *(double *)s->dest = v;
        return RLHF_OK;
    }
    case ARG_BOOL:
        if (!strcmp(val, "true") || !strcmp(val, "True") || !strcmp(val, "1") || !strcmp(val, "yes"))
            *(int *)s->dest = 1;
        else if (!strcmp(val, "false") || !strcmp(val, "False") || !strcmp(val, "0") || !strcmp(val, "no"))
            *(int *)s->dest = 0;
        else
            return rlhf_fail(err, RLHF_EINPUT, "%s--%s: expected true or false, got '%s'", where, s->name, val);
        return RLHF_OK;
    }
    return rlhf_fail(err, RLHF_ERUNTIME, "--%s: bad flag type", s->name);
}

static int is_bool_word(const char *v) {
    return !strcmp(v, "true") || !strcmp(v, "false") || !strcmp(v, "True") || !strcmp(v, "False") ||
           !strcmp(v, "1") || !strcmp(v, "0") || !strcmp(v, "yes") || !strcmp(v, "no");
}

// A "no" for a flag that does not apply: false, none, empty (what TRL configs write when it is off).
static int is_off_word(const char *v) {
    return !*v || !strcmp(v, "false") || !strcmp(v, "False") || !strcmp(v, "0") || !strcmp(v, "no") ||
           !strcmp(v, "none") || !strcmp(v, "None") || !strcmp(v, "null");
}

// TRL / transformers flags with no meaning here: what a user gets instead. bool: takes true/false (alone =
// true); else takes a value. Given as off (false, none, empty) they are accepted and ignored.
typedef struct {
    const char *name;
    int is_bool;
    const char *instead;
} foreign_flag;

#define NO_DIST "rlhf trains in one process on this machine's CPU cores (--threads N); to save memory use " \
                "--gradient_checkpointing, or --use_peft with --load_in_4bit"
#define NO_HUB "rlhf never uploads: the model is written to --output_dir in Hugging Face layout; upload it " \
               "with `huggingface-cli upload ORG/NAME OUTPUT_DIR`"
#define NO_HALF "training computes in fp32 here; for a smaller memory footprint use --gradient_checkpointing, " \
                "or --use_peft --load_in_4bit --bnb_4bit_compute_dtype bfloat16"
static const foreign_flag FOREIGN[] = {
    {"deepspeed", 0, NO_DIST},
    {"fsdp", 0, NO_DIST},
    {"fsdp_config", 0, NO_DIST},
    {"ddp_backend", 0, NO_DIST},
    {"ddp_find_unused_parameters", 1, NO_DIST},
    {"local_rank", 0, NO_DIST},
    {"use_cpu", 1, NULL},  // always on: true is accepted (see below)
    {"push_to_hub", 1, NO_HUB},
    {"hub_model_id", 0, NO_HUB},
    {"hub_token", 0, NO_HUB},
    {"hub_strategy", 0, NO_HUB},
    {"hub_private_repo", 1, NO_HUB},
    {"fp16", 1, NO_HALF},
    {"bf16", 1, NO_HALF},
    {"tf32", 1, NO_HALF},
    {"half_precision_backend", 0, NO_HALF},
    {"torch_compile", 1, "rlhf is compiled C: there is no torch to compile; its kernels are always on"},
    {"torch_compile_backend", 0, "rlhf is compiled C: there is no torch to compile; its kernels are always on"},
    {"use_liger_kernel", 1, "rlhf's own fused CPU kernels are always on"},
    {"attn_implementation", 0, "attention is rlhf's own CPU kernel (eager semantics); nothing to choose"},
    {"use_vllm", 1, "generation runs inside rlhf with a KV cache; there is no vLLM server to use"},
    {"vllm_mode", 0, "generation runs inside rlhf with a KV cache; there is no vLLM server to use"},
    {"vllm_gpu_memory_utilization", 0, "generation runs inside rlhf with a KV cache; there is no vLLM server to use"},
    {"logging_dir", 0, "logs are written to OUTPUT_DIR/training_log.csv and OUTPUT_DIR/report.html"},
    {"dataloader_num_workers", 0, "rows are tokenized once before training; there are no loader workers"},
    {"optim", 0, "the optimizer is AdamW (torch semantics): adamw_torch / adamw_torch_fused / adamw_hf are accepted"},
    {"trust_remote_code", 1, "rlhf never runs Python code from a model repository; supported families are built in"},
};

static const foreign_flag *find_foreign(const char *name, size_t len) {
    for (size_t i = 0; i < sizeof FOREIGN / sizeof FOREIGN[0]; i++) {
        arg_spec fake = {FOREIGN[i].name, ARG_STRING, NULL, NULL, NULL, NULL, 0};
        if (same_name(fake.name, name, len)) return &FOREIGN[i];
    }
    return NULL;
}

static int foreign_accepts(const foreign_flag *f, const char *val) {
    if (!strcmp(f->name, "use_cpu")) return strcmp(val, "false") && strcmp(val, "False") && strcmp(val, "0");
    if (!strcmp(f->name, "optim"))
        return !strcmp(val, "adamw_torch") || !strcmp(val, "adamw_torch_fused") || !strcmp(val, "adamw_hf");
    return is_off_word(val);
}

// Levenshtein distance with '-' read as '_' and case ignored.
static size_t edit_distance(const char *a, size_t la, const char *b, size_t lb) {
    size_t row[128];
    if (la >= 127 || lb >= 127) return (size_t)-1;
    for (size_t j = 0; j <= lb; j++) row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            char ca = a[i - 1] == '-' ? '_' : (char)tolower((unsigned char)a[i - 1]);
            char cb = b[j - 1] == '-' ? '_' : (char)tolower((unsigned char)b[j - 1]);
            size_t best = diag + (ca != cb);
            if (row[j] + 1 < best) best = row[j] + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            diag = row[j];
            row[j] = best;
        }
    }
    return row[lb];
}

static const char *const UNIVERSAL[] = {"help", "version", "report_to", "config"};

const char *args_closest(const arg_spec *specs, int n, const char *name, size_t len) {
    const char *best = NULL;
    size_t best_d = (size_t)-1;
    int n_all = n + (int)(sizeof UNIVERSAL / sizeof UNIVERSAL[0]);
    for (int i = 0; i < n_all; i++) {
        const char *cand = i < n ? specs[i].name : UNIVERSAL[i - n];
        size_t d = edit_distance(name, len, cand, strlen(cand));
        // a prefix of a longer flag (--model for --model_name_or_path) counts as close
        if (len >= 4 && strlen(cand) > len && edit_distance(name, len, cand, len) == 0) d = 1;
        if (d < best_d) best_d = d, best = cand;
    }
    size_t limit = len < 6 ? 2 : len / 3 + 1;
    return best && best_d <= limit ? best : NULL;
}

static rlhf_status unknown_flag(const arg_spec *specs, int n, const char *where, const char *name, size_t len,
                                rlhf_err *err) {
    if (same_name("config", name, len))
        return rlhf_fail(err, RLHF_EINPUT, "%s--config: expected a YAML file (.yaml or .yml) of 'flag: value' lines, "
                         "as TRL's command line reads", where);
    const char *close = args_closest(specs, n, name, len);
    if (close)
        return rlhf_fail(err, RLHF_EINPUT, "%sunknown flag '--%.*s'; did you mean --%s? (see --help)", where, (int)len,
                         name, close);
    return rlhf_fail(err, RLHF_EINPUT, "%sunknown flag '--%.*s' (see --help)", where, (int)len, name);
}

rlhf_status args_parse(arg_spec *specs, int n, int argc, char **argv, int first, int *want, rlhf_err *err) {
    *want = ARGS_RUN;
    int from_config[n > 0 ? n : 1];
    for (int i = 0; i < n; i++) {
        specs[i].seen = 0;
        from_config[i] = 0;
        if (specs[i].type == ARG_MULTI) {
            *specs[i].multi_count = 0;
            continue;
        }
        if (specs[i].type == ARG_BOOL && !specs[i].def) {
            *(int *)specs[i].dest = 0;
            continue;
        }
        if (specs[i].def) RLHF_TRY(set_value(&specs[i], specs[i].def, 1, err));
        else if (specs[i].type == ARG_STRING || specs[i].type == ARG_OPT_STRING) *(const char **)specs[i].dest = NULL;
    }
    for (int a = first; a < argc; a++)
        if (!strcmp(argv[a], "--help") || !strcmp(argv[a], "-h")) {
            *want = ARGS_HELP;
            return RLHF_OK;
        } else if (!strcmp(argv[a], "--version")) {
            *want = ARGS_VERSION;
            return RLHF_OK;
        }
    const char *origin = NULL;  // FILE:LINE of the next flag when it came from a --config file
    int is_list = 0;
    char where[600];
    for (int a = first; a < argc; a++, origin = NULL) {
        const char *arg = argv[a];
        if (!strncmp(arg, ARGS_ORIGIN_PREFIX, strlen(ARGS_ORIGIN_PREFIX))) {
            origin = arg + strlen(ARGS_ORIGIN_PREFIX);
            size_t ol = strlen(origin);
            is_list = ol > 5 && !strcmp(origin + ol - 5, ":list");
            snprintf(where, sizeof where, "%.*s: ", (int)(is_list ? ol - 5 : ol), origin);
            if (++a >= argc) return RLHF_OK;
            arg = argv[a];
        } else {
            where[0] = 0;
            is_list = 0;
        }
        if (strncmp(arg, "--", 2) != 0)
            return rlhf_fail(err, RLHF_EINPUT, "unexpected argument '%s' (flags start with --; see --help)", arg);
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        int idx = -1;
        for (int i = 0; i < n && idx < 0; i++)
            if (same_name(specs[i].name, name, len)) idx = i;
        if (idx < 0 && same_name("report_to", name, len)) {
            if (!eq && a + 1 >= argc) return rlhf_fail(err, RLHF_EINPUT, "%s--report_to: missing value", where);
            const char *v = eq ? eq + 1 : argv[++a];
            if (strcmp(v, "none") && strcmp(v, "None") && strcmp(v, "all"))
                return rlhf_fail(err, RLHF_EINPUT, "%s--report_to %s: not available here; every trainer writes its "
                                 "metrics to OUTPUT_DIR/training_log.csv and plots them in OUTPUT_DIR/report.html "
                                 "(give --report_to none)", where, v);
            continue;
        }
        if (idx < 0) {
            const foreign_flag *ff = find_foreign(name, len);
            if (!ff) return unknown_flag(specs, n, where, name, len, err);
            const char *v = eq ? eq + 1 : NULL;
            if (!v && ff->is_bool) v = a + 1 < argc && is_bool_word(argv[a + 1]) ? argv[++a] : "true";
            if (!v && a + 1 >= argc) return rlhf_fail(err, RLHF_EINPUT, "%s--%s: missing value", where, ff->name);
            if (!v) v = argv[++a];
            if (foreign_accepts(ff, v)) continue;
            if (!strcmp(ff->name, "use_cpu"))
                return rlhf_fail(err, RLHF_EINPUT, "%s--use_cpu %s: rlhf runs on CPU only", where, v);
            return rlhf_fail(err, RLHF_EINPUT, "%s--%s %s: does not apply here; %s", where, ff->name, v, ff->instead);
        }
        arg_spec *s = &specs[idx];
        const char *val = NULL;
        if (eq) {
            val = eq + 1;
        } else if (s->type == ARG_BOOL) {
            if (a + 1 < argc && is_bool_word(argv[a + 1])) val = argv[++a];
            else val = "true";
        } else if (s->type == ARG_OPT_STRING && (a + 1 >= argc || !strncmp(argv[a + 1], "--", 2))) {
            val = "true";
        } else {
            if (a + 1 >= argc) return rlhf_fail(err, RLHF_EINPUT, "%s--%s: missing value", where, s->name);
            val = argv[++a];
        }
        // the command line wins over a --config file: its first use of a repeated flag drops the file's values
        if (s->type == ARG_MULTI && !origin && from_config[idx]) *s->multi_count = 0;
        from_config[idx] = origin != NULL;
        s->seen = 1;
        if (is_list && s->type != ARG_STRING && s->type != ARG_MULTI)
            return rlhf_fail(err, RLHF_EINPUT, "%s%s: expected one value, got a list", where, s->name);
        rlhf_status st;
        if (is_list && s->type == ARG_MULTI) {
            // a YAML list of a repeated flag: one value per comma (config_yaml joined them)
            st = RLHF_OK;
            for (const char *p = val; !st;) {
                const char *c = strchr(p, ',');
                if (!c) {
                    st = set_value(s, p, 0, err);
                    break;
                }
                // values of a repeated flag point into argv: the joined list is cut in place
                *(char *)c = 0;
                st = set_value(s, p, 0, err);
                p = c + 1;
            }
        } else {
            st = set_value(s, val, 0, err);
        }
        if (st && where[0]) return rlhf_err_prefix(err, "%s", where);
        RLHF_TRY(st);
    }
    return RLHF_OK;
}

void args_print_help(const char *usage, const arg_spec *specs, int n) {
    printf("%s\n\nflags:\n", usage);
    for (int i = 0; i < n; i++) {
        const char *t = specs[i].type == ARG_INT ? "N" : specs[i].type == ARG_FLOAT ? "X"
                      : specs[i].type == ARG_BOOL ? "" : specs[i].type == ARG_OPT_STRING ? "[S]" : "S";
        char left[64];
        snprintf(left, sizeof left, "--%s %s", specs[i].name, t);
        printf("  %-34s %s", left, specs[i].help ? specs[i].help : "");
        if (specs[i].def) printf(" (default: %s)", specs[i].def);
        printf("\n");
    }
    printf("  %-34s %s\n", "--config FILE.yaml", "flags as 'name: value' lines (TRL's YAML); the command line wins");
    printf("  %-34s %s\n", "--report_to none", "accepted: metrics go to OUTPUT_DIR/training_log.csv and report.html");
    printf("  %-34s %s\n", "--model_revision R", "revision of a hub id (ORG/NAME) given as --model_name_or_path; "
           "hub ids resolve from the local Hugging Face cache, never downloaded");
    printf("  %-34s %s\n", "--version", "print the version");
    printf("  %-34s %s\n", "--help", "show this help");
}

const arg_spec *args_find(const arg_spec *specs, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(specs[i].name, name)) return &specs[i];
    return NULL;
}
