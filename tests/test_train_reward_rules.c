// Tests of the built-in reward rules (src/train/reward_rules.c): answer extraction from GSM8K solutions
// ("#### N"), \boxed{...} and the last number of a completion; numeric comparison (commas, $, decimals,
// fractions); TRL's think_format_reward pattern; and the accuracy_reward source over dataset rows (None
// for a solution without an answer).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "train/reward_funcs.h"

static void check_extract(const char *text, int is_solution, const char *want) {
    char *got = reward_extract_answer(text, is_solution);
    CHECK((!got && !want) || (got && want && !strcmp(got, want)), "extract(%s) = '%s', want '%s'", text,
          got ? got : "(none)", want ? want : "(none)");
    free(got);
}

static void test_extract(void) {
    check_extract("Natalia sold 48/2 = <<48/2=24>>24 clips.\n#### 72", 1, "72");
    check_extract("so the answer is \\boxed{\\frac{1}{3}}.", 0, "\\frac{1}{3}");
    check_extract("first \\boxed{2} then \\boxed{5}", 0, "5");
    check_extract("We add 3 and 4 to get 7. #### 7 apples", 0, "7");
    check_extract("The total is 1,234.5 dollars", 0, "1,234.5");
    check_extract("x = -12", 0, "-12");
    check_extract("no digits here", 0, NULL);
    check_extract("abc3 is a name; 9", 0, "9");
}

static void test_match(void) {
    CHECK(reward_answers_match("72", "72.0"), "72 vs 72.0");
    CHECK(reward_answers_match("1234.5", "1,234.5"), "commas");
    CHECK(reward_answers_match("18", "$18"), "dollar sign");
    CHECK(reward_answers_match("0.5", "1/2") && reward_answers_match("0.5", "\\frac{1}{2}"), "fractions");
    CHECK(!reward_answers_match("72", "71"), "72 vs 71");
    CHECK(!reward_answers_match("72", "seventy-two"), "a word is not a number");
    CHECK(reward_answers_match("x^2 + 1", "x^2+1"), "strings without spaces");
    CHECK(!reward_answers_match("72", NULL), "no answer");
}

static void test_think(void) {
    CHECK(reward_think_format("<think>\nreasoning\n</think>\nanswer"), "well formed");
    CHECK(!reward_think_format("<think>\nreasoning\nanswer"), "no closing tag");
    CHECK(!reward_think_format(" <think>a</think>"), "must start with <think>");
    CHECK(!reward_think_format("<think>a<think>b</think>"), "a second <think>");
}

static void test_source(void) {
    reward_fn *s = NULL;
    rlhf_err err;
    CHECK(reward_rule_open(&s, "accuracy_reward", &err) == RLHF_OK, "open: %s", err.msg);
    if (!s) return;
    cJSON *rows[3] = {cJSON_Parse("{\"solution\": \"#### 12\"}"), cJSON_Parse("{\"solution\": \"#### 12\"}"),
                      cJSON_Parse("{\"solution\": \"   \"}")};
    reward_item items[3] = {{.completion_text = "6 + 6 = 12", .row = rows[0], .line = 1},
                            {.completion_text = "it is 13", .row = rows[1], .line = 2},
                            {.completion_text = "12", .row = rows[2], .line = 3}};
    float out[3];
    CHECK(s->score(s, items, 3, out, &err) == RLHF_OK, "score: %s", err.msg);
    CHECK(out[0] == 1.0f && out[1] == 0.0f && isnan(out[2]), "accuracy %g %g %g", out[0], out[1], out[2]);
    CHECK(!strcmp(s->name, "accuracy_reward"), "name %s", s->name);
    reward_fn_free(s);
    for (int i = 0; i < 3; i++) cJSON_Delete(rows[i]);
    CHECK(reward_rule_open(&s, "bleu", &err) == RLHF_EINPUT && strstr(err.msg, "'bleu'"), "unknown rule: %s", err.msg);
}

int main(void) {
    test_extract();
    test_match();
    test_think();
    test_source();
    return tu_finish("train_reward_rules");
}
