// Built-in reward rules with TRL's names (trl/rewards): accuracy_reward and think_format_reward.
// TRL's accuracy_reward parses LaTeX with math_verify; here the answer is what GSM8K-style and boxed
// answers need: the last \boxed{...}, else the text after the last "####", else the last number; numbers
// compare as numbers (1,000 == 1000.0 == \frac{2000}{2}), other answers as strings without spaces and $.
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/reward_funcs.h"

// Relative tolerance of numeric answers (float parsing of "0.1" vs "1/10").
#define REWARD_ANSWER_RTOL 1e-6

static char *dup_range(const char *a, const char *b) {
    while (a < b && isspace((unsigned char)*a)) a++;
    while (b > a && isspace((unsigned char)b[-1])) b--;
    char *s = malloc((size_t)(b - a) + 1);
    if (!s) return NULL;
    memcpy(s, a, (size_t)(b - a));
    s[b - a] = 0;
    return s;
}

// The content of the last \boxed{...} (braces balanced), or NULL.
static char *last_boxed(const char *t) {
    const char *at = NULL;
    for (const char *p = strstr(t, "\\boxed{"); p; p = strstr(p + 1, "\\boxed{")) at = p;
    if (!at) return NULL;
    const char *a = at + 7, *p = a;
    int depth = 1;
    for (; *p && depth; p++) depth += *p == '{' ? 1 : (*p == '}' ? -1 : 0);
    if (depth) return NULL;
    return dup_range(a, p - 1);
}

// A number token at p: optional sign, digits with thousands commas, optional decimals. Returns its end.
static const char *number_end(const char *p) {
    const char *q = p;
    if (*q == '-' || *q == '+') q++;
    if (!isdigit((unsigned char)*q) && !(*q == '.' && isdigit((unsigned char)q[1]))) return p;
    while (isdigit((unsigned char)*q) || (*q == ',' && isdigit((unsigned char)q[1]))) q++;
    if (*q == '.' && isdigit((unsigned char)q[1])) {
        q++;
        while (isdigit((unsigned char)*q)) q++;
    }
    if (*q == '/' && isdigit((unsigned char)q[1])) {  // a fraction 3/4
        q++;
        while (isdigit((unsigned char)*q)) q++;
    }
    return q;
}

static char *last_number(const char *t) {
    const char *best = NULL, *best_end = NULL;
    for (const char *p = t; *p;) {
        int starts = (isdigit((unsigned char)*p) || *p == '-' || *p == '.') &&
                     (p == t || !(isalnum((unsigned char)p[-1]) || p[-1] == '.'));
        const char *e = starts ? number_end(p) : p;
        if (e > p) {
            best = p;
            best_end = e;
            p = e;
        } else {
            p++;
        }
    }
    return best ? dup_range(best, best_end) : NULL;
}

char *reward_extract_answer(const char *text, int is_solution) {
    if (!text) return NULL;
    char *b = last_boxed(text);
    if (b) return b;
    const char *h = NULL;
    for (const char *p = strstr(text, "####"); p; p = strstr(p + 4, "####")) h = p;
    if (h) {
        if (is_solution) return dup_range(h + 4, h + 4 + strlen(h + 4));
        char *n = NULL;
        const char *p = h + 4;
        while (*p && isspace((unsigned char)*p)) p++;
        if (*p == '$') p++;
        const char *e = number_end(p);
        if (e > p) n = dup_range(p, e);
        return n;
    }
    if (is_solution) return dup_range(text, text + strlen(text));
    return last_number(text);
}

// Parses a numeric answer: commas, $, %, spaces and a trailing '.' ignored; a/b and \frac{a}{b} as
// fractions. Returns 1 with *v set.
static int parse_number(const char *s, double *v) {
    char buf[256];
    size_t n = 0;
    for (const char *p = s; *p && n + 1 < sizeof buf; p++) {
        if (*p == ',' || *p == '$' || *p == '%' || isspace((unsigned char)*p)) continue;
        buf[n++] = *p;
    }
    buf[n] = 0;
    while (n && buf[n - 1] == '.') buf[--n] = 0;
    if (!n) return 0;
    double a, b;
    char tail;
    if (sscanf(buf, "\\frac{%lf}{%lf}%c", &a, &b, &tail) == 2 || sscanf(buf, "\\dfrac{%lf}{%lf}%c", &a, &b, &tail) == 2 ||
        sscanf(buf, "%lf/%lf%c", &a, &b, &tail) == 2) {
        if (b == 0) return 0;
        *v = a / b;
        return 1;
    }
    char *end = NULL;
    *v = strtod(buf, &end);
    return end && *end == 0 && isfinite(*v) && !isalpha((unsigned char)buf[0]);
}

static void normalise(char *dst, size_t cap, const char *s) {
    size_t n = 0;
    for (const char *p = s; *p && n + 1 < cap; p++)
        if (!isspace((unsigned char)*p) && *p != '$') dst[n++] = *p;
    while (n && dst[n - 1] == '.') n--;
    dst[n] = 0;
}

int reward_answers_match(const char *gold, const char *answer) {
    if (!gold || !answer) return 0;
    double g, a;
    if (parse_number(gold, &g)) return parse_number(answer, &a) && fabs(a - g) <= REWARD_ANSWER_RTOL * fmax(1.0, fabs(g));
    char x[512], y[512];
    normalise(x, sizeof x, gold);
    normalise(y, sizeof y, answer);
    return x[0] && !strcmp(x, y);
}

// TRL: re.match(r"^<think>(?!.*<think>)(.*?)</think>.*$", content, re.DOTALL | re.MULTILINE).
int reward_think_format(const char *c) {
    if (!c || strncmp(c, "<think>", 7) != 0) return 0;
    const char *rest = c + 7;
    return strstr(rest, "<think>") == NULL && strstr(rest, "</think>") != NULL;
}

// ---- the sources ------------------------------------------------------------------------------------

typedef struct {
    reward_fn base;
    int accuracy;  // 1 accuracy_reward, 0 think_format_reward
} rule_source;

static rlhf_status rule_score(reward_fn *s, const reward_item *items, int n, float *out, rlhf_err *err) {
    rule_source *r = (rule_source *)s;
    for (int i = 0; i < n; i++) {
        const char *c = items[i].completion_text;
        if (!c) return rlhf_fail(err, RLHF_EINPUT, "%s needs completion text (the policy has no tokenizer)", s->name);
        if (!r->accuracy) {
            out[i] = (float)reward_think_format(c);
            continue;
        }
        const cJSON *sol = items[i].row ? cJSON_GetObjectItemCaseSensitive(items[i].row, "solution") : NULL;
        if (!cJSON_IsString(sol))
            return rlhf_fail(err, RLHF_EINPUT, "line %d: accuracy_reward needs a \"solution\" string field", items[i].line);
        char *gold = reward_extract_answer(sol->valuestring, 1);
        if (!gold || !*gold) {  // TRL: an unparseable solution gives None
            free(gold);
            out[i] = NAN;
            continue;
        }
        char *ans = reward_extract_answer(c, 0);
        out[i] = (float)reward_answers_match(gold, ans);
        free(gold);
        free(ans);
    }
    return RLHF_OK;
}

static void rule_destroy(reward_fn *s) { free(s); }

int reward_rule_exists(const char *name) {
    return !strcmp(name, "accuracy_reward") || !strcmp(name, "think_format_reward");
}

rlhf_status reward_rule_open(reward_fn **out, const char *name, rlhf_err *err) {
    *out = NULL;
    if (!reward_rule_exists(name))
        return rlhf_fail(err, RLHF_EINPUT,
                         "--reward_funcs: unknown reward function '%s' (expected accuracy_reward, think_format_reward "
                         "or \"exec:COMMAND\")", name);
    rule_source *r = calloc(1, sizeof *r);
    if (!r) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    snprintf(r->base.name, sizeof r->base.name, "%s", name);
    r->base.score = rule_score;
    r->base.destroy = rule_destroy;
    r->accuracy = !strcmp(name, "accuracy_reward");
    *out = &r->base;
    return RLHF_OK;
}
