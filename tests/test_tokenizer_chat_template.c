// Chat templates rendered exactly as transformers' apply_chat_template (jinja2) renders them: every case of
// tests/fixtures/chat_templates/cases.json (published templates of six model families and one covering
// the rest of the supported Jinja subset, each on five conversations, with and without the generation
// prompt; made by tools/make_chat_template_fixtures.py), raise_exception messages, clear errors for
// what the subset does not support, and the limits that stop a hostile template.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "tokenizer/chat_template.h"

static void test_fixture_cases(void) {
    char *txt = tu_read_file(TU_FIXTURES "/chat_templates/cases.json", NULL);
    CHECK(txt != NULL, "cases.json missing");
    if (!txt) return;
    cJSON *root = cJSON_Parse(txt);
    free(txt);
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(root, "cases"), *c;
    int n = 0, rendered = 0, raised = 0;
    cJSON_ArrayForEach(c, cases) {
        const char *name = cJSON_GetObjectItemCaseSensitive(c, "template_name")->valuestring;
        const char *conv = cJSON_GetObjectItemCaseSensitive(c, "conversation")->valuestring;
        int gen = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "add_generation_prompt"));
        const cJSON *want = cJSON_GetObjectItemCaseSensitive(c, "expected"), *want_err = cJSON_GetObjectItemCaseSensitive(c, "error");
        chat_template *t = NULL;
        rlhf_err err = {0};
        rlhf_status s = chat_template_compile(&t, cJSON_GetObjectItemCaseSensitive(c, "template")->valuestring, name, &err);
        CHECK(s == RLHF_OK, "%s: compile: %s", name, err.msg);
        if (s) continue;
        char *out = NULL;
        s = chat_template_render(t, cJSON_GetObjectItemCaseSensitive(c, "messages"), gen,
                                 cJSON_GetObjectItemCaseSensitive(c, "bos_token")->valuestring,
                                 cJSON_GetObjectItemCaseSensitive(c, "eos_token")->valuestring, &out, &err);
        if (want) {
            CHECK(s == RLHF_OK && !strcmp(out, want->valuestring), "%s/%s/gen=%d:\n got  %s\n want %s\n (%s)", name,
                  conv, gen, out ? out : "(error)", want->valuestring, s ? err.msg : "");
            rendered += s == RLHF_OK;
        } else {
            CHECK(s == RLHF_EINPUT && strstr(err.msg, want_err->valuestring), "%s/%s: expected the error '%s', got %d %s",
                  name, conv, want_err->valuestring, s, s ? err.msg : out);
            raised++;
        }
        free(out);
        chat_template_free(t);
        n++;
    }
    CHECK(n >= 60 && rendered >= 40 && raised >= 5, "cases: %d (rendered %d, raised %d)", n, rendered, raised);
    cJSON_Delete(root);
}

// Renders src over one user message; returns the status, the output in out (malloc'd) or the error.
static rlhf_status render(const char *src, char **out, rlhf_err *err) {
    chat_template *t = NULL;
    *out = NULL;
    rlhf_status s = chat_template_compile(&t, src, "test", err);
    if (s) return s;
    cJSON *m = cJSON_Parse("[{\"role\": \"user\", \"content\": \"hi\", \"n\": 3, \"x\": 1.5}]");
    s = chat_template_render(t, m, 0, "<s>", "</s>", out, err);
    cJSON_Delete(m);
    chat_template_free(t);
    return s;
}

static void expect_out(const char *src, const char *want) {
    char *out;
    rlhf_err err = {0};
    rlhf_status s = render(src, &out, &err);
    CHECK(s == RLHF_OK && !strcmp(out, want), "%s -> '%s' (want '%s') %s", src, out ? out : "", want, s ? err.msg : "");
    free(out);
}

static void expect_err(const char *src, const char *needle) {
    char *out;
    rlhf_err err = {0};
    rlhf_status s = render(src, &out, &err);
    CHECK(s == RLHF_EINPUT && strstr(err.msg, needle), "%s: expected an error with '%s', got %d '%s'", src, needle, s,
          s ? err.msg : out);
    free(out);
}

static void test_values_and_errors(void) {
    // Python's str() of values, integer / float arithmetic, and Undefined.
    expect_out("{{ 7 / 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 1e20 }} {{ 0.1 + 0.2 }} {{ 2 ** 10 }} {{ none }}",
               "3.5 -4 2 1e+20 0.30000000000000004 1024 None");
    expect_out("{{ messages[0].n * 2 }} {{ messages[0].x }} {{ [1, 'a'] }} {{ {'k': none} }}", "6 1.5 [1, 'a'] {'k': None}");
    expect_out("{{ nothing }}|{{ nothing is defined }}|{{ messages[0].missing is undefined }}", "|False|True");
    expect_out("{% set s %}a{{ 1 }}b{% endset %}[{{ s }}]", "[a1b]");
    expect_out("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}", "a=1;b=2;");
    expect_out("{{ messages | selectattr('role', 'equalto', 'user') | list | length }}", "1");
    expect_out("{{ messages | map(attribute='role') | join(',') }}", "user");
    expect_out("{{ 'a b'.split(' ')[1] }}{{ 'xyz'[1:] }}{{ 'héllo'[1] }}", "byzé");
    expect_out("{% generation %}kept{% endgeneration %}", "kept");
    expect_out("{{ 'h\xc3\xa9llo' | reverse }} {{ [1, 2, 3] | reverse | join('') }}", "oll\xc3\xa9h 321");
    // Errors name the line and what is wrong.
    expect_err("{{ raise_exception('nope') }}", "nope");
    expect_err("line1\n{% macro m() %}{% endmacro %}", "line 2");
    expect_err("{% if true %}never closed", "endif");
    expect_err("{{ 'a' + nothing }}", "'nothing' is undefined");
    expect_err("{{ nothing.attr }}", "'nothing' is undefined");
    expect_err("{{ 1 + 'a' }}", "unsupported operand");
    expect_err("{{ x | frobnicate }}", "unsupported filter 'frobnicate'");
    expect_err("{{ 'unterminated }}", "unterminated string");
    expect_err("{{ 1 / 0 }}", "division by zero");
    // Limits: a hostile template stops with an error instead of exhausting memory.
    expect_err("{% for i in range(100000) %}{% for j in range(1000) %}{{ 'xxxxxxxxxxxxxxxxxxxx' }}{% endfor %}{% endfor %}",
               "loop iterations");
    expect_err("{{ 'x' * 1000000000 }}", "too long");
    char deep[2048] = "";
    for (int i = 0; i < 100; i++) strcat(deep, "{% if true %}");
    expect_err(deep, "nested");
}

// 64-bit integers: exact powers and floor division, and an error (not undefined behaviour) past the range,
// where Python would switch to big integers (tests/fuzz/fuzz_chat_template.c found the overflow).
static void test_integer_range(void) {
    expect_out("{{ 2 ** 10 }}|{{ (-1) ** 7 }}|{{ (-1) ** 8 }}|{{ 0 ** 0 }}|{{ 0 ** 5 }}|{{ 5 ** 0 }}|{{ (-2) ** 3 }}|{{ 7 // -2 }}",
               "1024|-1|1|1|0|1|-8|-4");
    expect_out("{{ 1 ** 9223372036854775807 }}", "1");
    const char *overflows[] = {"{{ 9223372036854775807 + 1 }}", "{{ -9223372036854775807 - 2 }}", "{{ 3 ** 50 }}",
                               "{{ 4294967296 * 4294967296 }}", "{{ -(-9223372036854775807 - 1) }}",
                               "{{ (-9223372036854775807 - 1) // -1 }}"};
    for (size_t i = 0; i < sizeof overflows / sizeof overflows[0]; i++) expect_err(overflows[i], "integer overflow");
}

// Deeply nested expressions are an error, not a stack overflow (fuzz_chat_template found "{{{{{{...").
static void test_expression_depth(void) {
    const char *open[] = {"(", "[", "- ", "not ", "1 if 1 else "};
    const char *close[] = {")", "]", "", "", ""};
    for (int k = 0; k < 5; k++) {
        size_t n = 3000, lo = strlen(open[k]), lc = strlen(close[k]);
        char *src = malloc(16 + n * (lo + lc));
        size_t o = (size_t)sprintf(src, "{{ ");
        for (size_t i = 0; i < n; i++) o += (size_t)sprintf(src + o, "%s", open[k]);
        o += (size_t)sprintf(src + o, "1");
        for (size_t i = 0; i < n; i++) o += (size_t)sprintf(src + o, "%s", close[k]);
        sprintf(src + o, " }}");
        chat_template *t = NULL;
        rlhf_err err = {0};
        rlhf_status s = chat_template_compile(&t, src, "deep", &err);
        CHECK(s == RLHF_EINPUT && strstr(err.msg, "nested more than"), "%d deep '%s': %d %s", (int)n, open[k], s, err.msg);
        chat_template_free(t);
        free(src);
    }
    expect_out("{{ ((((((((((1)))))))))) }}|{{ - - 2 }}|{{ not not 1 }}", "1|2|True");
}

static void test_load_dir(void) {
    chat_template *t = (chat_template *)1;
    rlhf_err err = {0};
    // A tokenizer without a template (GPT-2's config) loads as "none".
    CHECK(chat_template_load_dir(&t, TU_FIXTURES "/tokenizers/gpt2", &err) == RLHF_OK && t == NULL, "gpt2: %s", err.msg);
}

int main(void) {
    test_fixture_cases();
    test_values_and_errors();
    test_integer_range();
    test_expression_depth();
    test_load_dir();
    return tu_finish("tokenizer_chat_template");
}
