// Table-driven flag parsing: defaults first, then argv, each value checked against its type.
#include "cli/args.h"

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

rlhf_status args_parse(arg_spec *specs, int n, int argc, char **argv, int first, int *want_help, rlhf_err *err) {
    *want_help = 0;
    for (int i = 0; i < n; i++) {
        specs[i].seen = 0;
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
    for (int a = first; a < argc; a++) {
        const char *arg = argv[a];
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            *want_help = 1;
            return RLHF_OK;
        }
        if (strncmp(arg, "--", 2) != 0)
            return rlhf_fail(err, RLHF_EINPUT, "unexpected argument '%s' (flags start with --; see --help)", arg);
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        arg_spec *s = NULL;
        for (int i = 0; i < n && !s; i++)
            if (same_name(specs[i].name, name, len)) s = &specs[i];
        if (!s) return rlhf_fail(err, RLHF_EINPUT, "unknown flag '--%.*s' (see --help)", (int)len, name);
        const char *val = NULL;
        if (eq) {
            val = eq + 1;
        } else if (s->type == ARG_BOOL) {
            if (a + 1 < argc && is_bool_word(argv[a + 1])) val = argv[++a];
            else val = "true";
        } else if (s->type == ARG_OPT_STRING && (a + 1 >= argc || !strncmp(argv[a + 1], "--", 2))) {
            val = "true";
        } else {
            if (a + 1 >= argc) return rlhf_fail(err, RLHF_EINPUT, "--%s: missing value", s->name);
            val = argv[++a];
        }
        s->seen = 1;
        RLHF_TRY(set_value(s, val, 0, err));
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
    printf("  %-34s %s\n", "--help", "show this help");
}

const arg_spec *args_find(const arg_spec *specs, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(specs[i].name, name)) return &specs[i];
    return NULL;
}
