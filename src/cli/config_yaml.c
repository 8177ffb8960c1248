// --config FILE.yaml: the file's `flag: value` pairs become "--@from=FILE:LINE" "--flag=value" tokens
// (cli/args.h) in front of the command line's flags.
#include "cli/config_yaml.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "cli/args.h"
#include "io/hf_cache.h"

static int is_yaml_path(const char *p) {
    size_t n = strlen(p);
    return (n > 5 && !strcmp(p + n - 5, ".yaml")) || (n > 4 && !strcmp(p + n - 4, ".yml"));
}

static rlhf_status push(cli_config_argv *a, int cap, char *s, rlhf_err *err) {
    if (!s) return rlhf_fail(err, RLHF_ERUNTIME, "--config: out of memory");
    a->owned[a->n_owned++] = s;
    if (a->argc >= cap) return rlhf_fail(err, RLHF_ERUNTIME, "--config: too many flags");
    a->argv[a->argc++] = s;
    return RLHF_OK;
}

static char *dup_printf(const char *fmt, const char *a, const char *b) {
    size_t n = strlen(fmt) + strlen(a) + strlen(b) + 1;
    char *s = malloc(n);
    if (s) snprintf(s, n, fmt, a, b);
    return s;
}

// YAML 1.1 booleans and nulls in the spellings the flag parser reads.
static const char *plain_scalar(const yaml_node_t *v) {
    const char *t = (const char *)v->data.scalar.value;
    if (v->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return t;
    static const char *const yes[] = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"};
    static const char *const no[] = {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"};
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
        if (!strcmp(t, yes[i])) return "true";
    for (size_t i = 0; i < sizeof no / sizeof *no; i++)
        if (!strcmp(t, no[i])) return "false";
    return t;
}

static int is_null(const yaml_node_t *v) {
    if (v->type != YAML_SCALAR_NODE || v->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return 0;
    const char *t = (const char *)v->data.scalar.value;
    return !*t || !strcmp(t, "~") || !strcmp(t, "null") || !strcmp(t, "Null") || !strcmp(t, "NULL");
}

// Appends the document's flags to out (room for cap tokens).
static rlhf_status expand_doc(yaml_document_t *doc, const char *path, cli_config_argv *out, int cap, rlhf_err *err) {
    yaml_node_t *root = yaml_document_get_root_node(doc);
    if (!root) return RLHF_OK;  // an empty file
    if (root->type != YAML_MAPPING_NODE)
        return rlhf_fail(err, RLHF_EINPUT, "%s:%zu: expected 'flag: value' lines (a YAML mapping)", path,
                         root->start_mark.line + 1);
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key), *v = yaml_document_get_node(doc, p->value);
        size_t line = k->start_mark.line + 1;
        if (k->type != YAML_SCALAR_NODE)
            return rlhf_fail(err, RLHF_EINPUT, "%s:%zu: a key must be a flag name", path, line);
        const char *key = (const char *)k->data.scalar.value;
        if (v->type == YAML_MAPPING_NODE && !strcmp(key, "env")) {
            // TrlParser sets these in the environment before anything runs
            for (yaml_node_pair_t *e = v->data.mapping.pairs.start; e < v->data.mapping.pairs.top; e++) {
                yaml_node_t *ek = yaml_document_get_node(doc, e->key), *ev = yaml_document_get_node(doc, e->value);
                if (ek->type != YAML_SCALAR_NODE || ev->type != YAML_SCALAR_NODE)
                    return rlhf_fail(err, RLHF_EINPUT, "%s:%zu: env: expected NAME: value lines", path,
                                     ek->start_mark.line + 1);
                if (setenv((const char *)ek->data.scalar.value, (const char *)ev->data.scalar.value, 1) != 0)
                    return rlhf_fail(err, RLHF_EINPUT, "%s:%zu: env: cannot set '%s'", path, ek->start_mark.line + 1,
                                     (const char *)ek->data.scalar.value);
            }
            continue;
        }
        if (v->type == YAML_MAPPING_NODE)
            return rlhf_fail(err, RLHF_EINPUT, "%s:%zu: %s: expected a value or a list, got a mapping", path, line, key);
        if (is_null(v)) continue;  // None: the flag keeps its default
        char lineno[32];
        snprintf(lineno, sizeof lineno, "%zu", line);
        if (v->type == YAML_SCALAR_NODE) {
            char where[4200];
            snprintf(where, sizeof where, "%s:%s", path, lineno);
            RLHF_TRY(push(out, cap, dup_printf(ARGS_ORIGIN_PREFIX "%s%s", where, ""), err));
            RLHF_TRY(push(out, cap, dup_printf("--%s=%s", key, plain_scalar(v)), err));
            continue;
        }
        // a list: its scalars joined with commas
        size_t total = 1;
        for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
            yaml_node_t *e = yaml_document_get_node(doc, *it);
            if (e->type != YAML_SCALAR_NODE)
                return rlhf_fail(err, RLHF_EINPUT, "%s:%zu: %s: a list may hold only plain values", path,
                                 e->start_mark.line + 1, key);
            total += strlen(plain_scalar(e)) + 1;
        }
        char *joined = calloc(1, total);
        if (!joined) return rlhf_fail(err, RLHF_ERUNTIME, "--config: out of memory");
        for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
            if (it > v->data.sequence.items.start) strcat(joined, ",");
            strcat(joined, plain_scalar(yaml_document_get_node(doc, *it)));
        }
        char where[4200];
        snprintf(where, sizeof where, "%s:%s:list", path, lineno);
        rlhf_status s = push(out, cap, dup_printf(ARGS_ORIGIN_PREFIX "%s%s", where, ""), err);
        if (!s) s = push(out, cap, dup_printf("--%s=%s", key, joined), err);
        free(joined);
        RLHF_TRY(s);
    }
    return RLHF_OK;
}

static rlhf_status load(const char *path, cli_config_argv *out, int cap, rlhf_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return rlhf_fail(err, RLHF_EINPUT, "--config %s: cannot open the file", path);
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) {
        fclose(f);
        return rlhf_fail(err, RLHF_ERUNTIME, "--config: out of memory");
    }
    yaml_parser_set_input_file(&parser, f);
    rlhf_status s = RLHF_OK;
    if (!yaml_parser_load(&parser, &doc)) {
        if (parser.context)  // "did not find expected ',' ... while parsing a flow sequence (opened on line N)"
            s = rlhf_fail(err, RLHF_EINPUT, "%s:%zu: bad YAML: %s %s opened on line %zu", path,
                          parser.problem_mark.line + 1, parser.problem ? parser.problem : "cannot parse",
                          parser.context, parser.context_mark.line + 1);
        else
            s = rlhf_fail(err, RLHF_EINPUT, "%s:%zu: bad YAML: %s", path, parser.problem_mark.line + 1,
                          parser.problem ? parser.problem : "cannot parse");
    } else {
        s = expand_doc(&doc, path, out, cap, err);
        yaml_document_delete(&doc);
    }
    yaml_parser_delete(&parser);
    fclose(f);
    return s;
}

// Flags that take a model or tokenizer directory: a hub id there (ORG/NAME, not a local path) is replaced by
// its snapshot in the local Hugging Face cache.
static const char *const MODEL_PATH_FLAGS[] = {
    "model_name_or_path", "sft_model_path", "reward_model_path", "ref_model_name_or_path", "tokenizer",
    "tokenizer_name_or_path", "value_model_path",
};

// The model-path flag an argv token names (NULL if none); *inline_val is its "=value" part, if any.
static const char *model_path_flag(const char *tok, const char **inline_val) {
    *inline_val = NULL;
    if (strncmp(tok, "--", 2)) return NULL;
    const char *name = tok + 2, *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    for (size_t i = 0; i < sizeof MODEL_PATH_FLAGS / sizeof *MODEL_PATH_FLAGS; i++) {
        const char *f = MODEL_PATH_FLAGS[i];
        if (strlen(f) != len) continue;
        size_t k = 0;
        while (k < len && (name[k] == '-' ? '_' : name[k]) == f[k]) k++;
        if (k == len) {
            if (eq) *inline_val = eq + 1;
            return f;
        }
    }
    return NULL;
}

// --model_revision / --revision R (TRL's ModelConfig.model_revision): the revision of a hub
// --model_name_or_path (the other models take "main"). Taken out of argv here.
static const char *take_revision(cli_config_argv *a) {
    const char *rev = NULL;
    int w = 1;
    for (int i = 1; i < a->argc; i++) {
        const char *t = a->argv[i];
        if ((!strcmp(t, "--model_revision") || !strcmp(t, "--revision") || !strcmp(t, "--model-revision")) &&
            i + 1 < a->argc) {
            rev = a->argv[++i];
            continue;
        }
        if (!strncmp(t, "--model_revision=", 17)) { rev = t + 17; continue; }
        if (!strncmp(t, "--revision=", 11)) { rev = t + 11; continue; }
        a->argv[w++] = a->argv[i];
    }
    a->argc = w;
    a->argv[w] = NULL;
    return rev;
}

static rlhf_status resolve_hub_ids(cli_config_argv *a, int cap, rlhf_err *err) {
    const char *rev = take_revision(a);
    for (int i = 1; i < a->argc; i++) {
        const char *val;
        const char *flag = model_path_flag(a->argv[i], &val);
        if (!flag) continue;
        int at = val ? i : i + 1;
        if (!val) {
            if (i + 1 >= a->argc) break;
            val = a->argv[++i];
        }
        if (!hf_is_hub_id(val)) continue;
        char what[64], dir[8192];
        snprintf(what, sizeof what, "--%s", flag);
        RLHF_TRY(hf_cache_resolve(val, !strcmp(flag, "model_name_or_path") ? rev : NULL, what, dir, sizeof dir, err));
        char *s = at == i && a->argv[i] != val ? dup_printf("--%s=%s", flag, dir) : dup_printf("%s%s", dir, "");
        if (!s) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
        if (a->n_owned >= cap) {
            free(s);
            return rlhf_fail(err, RLHF_ERUNTIME, "too many flags");
        }
        a->owned[a->n_owned++] = s;
        a->argv[at] = s;
    }
    return RLHF_OK;
}

rlhf_status cli_config_expand(int argc, char **argv, cli_config_argv *out, rlhf_err *err) {
    memset(out, 0, sizeof *out);
    int at = -1, value_in_arg = 0;
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        if (!strcmp(argv[i], "--config") && i + 1 < argc) v = argv[i + 1];
        else if (!strncmp(argv[i], "--config=", 9)) v = argv[i] + 9;
        if (!v || !is_yaml_path(v)) continue;
        if (at >= 0) return rlhf_fail(err, RLHF_EINPUT, "--config: given twice (one YAML file holds them all)");
        at = i;
        value_in_arg = argv[i][8] == '=';
    }
    // each YAML entry gives at most 2 tokens, each hub id one more string
    int cap = 2 * argc + 2 * 4096;
    out->argv = calloc((size_t)cap + 1, sizeof *out->argv);
    out->owned = calloc((size_t)cap + 1, sizeof *out->owned);
    if (!out->argv || !out->owned) {
        cli_config_free(out);
        return rlhf_fail(err, RLHF_ERUNTIME, "--config: out of memory");
    }
    out->argv[out->argc++] = argv[0];
    rlhf_status s = RLHF_OK;
    if (at >= 0) s = load(value_in_arg ? argv[at] + 9 : argv[at + 1], out, cap, err);
    for (int i = 1; i < argc && !s; i++) {
        if (i == at) {
            i += !value_in_arg;
            continue;
        }
        out->argv[out->argc++] = argv[i];
    }
    if (!s) s = resolve_hub_ids(out, cap, err);
    if (s) cli_config_free(out);
    return s;
}

void cli_config_free(cli_config_argv *a) {
    if (!a->owned) return;
    for (int i = 0; i < a->n_owned; i++) free(a->owned[i]);
    free(a->owned);
    free(a->argv);
    memset(a, 0, sizeof *a);
}
