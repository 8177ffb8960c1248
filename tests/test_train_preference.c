// Preference rows -> token sequences: every row layout (explicit, implicit HH-RLHF, conversational,
// ShareGPT, pre-tokenized, margin), sentence-pair vs concat encoding, truncation keeping the response,
// decoder EOS, the seeded eval split, and FILE:LINE reports of every malformed row.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "train/preference_data.h"

#define BERT_TOK TU_FIXTURES "/tokenizers/bert-base-uncased"
#define GPT2_TOK TU_FIXTURES "/tokenizers/gpt2"

static char tmp_path[64];

// Writes text to a fresh temporary .jsonl file and loads it as a dataset.
static rlhf_status load_text(dataset *d, const char *text, rlhf_err *err) {
    snprintf(tmp_path, sizeof tmp_path, "/tmp/rlhf_pref_XXXXXX.jsonl");
    int fd = mkstemps(tmp_path, 6);
    if (fd < 0) return rlhf_fail(err, RLHF_ERUNTIME, "mkstemps failed");
    FILE *f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
    rlhf_status s = dataset_load(d, tmp_path, err);
    unlink(tmp_path);
    return s;
}

static rlhf_status build(pref_set *set, const char *text, const pref_opts *o, rlhf_err *err) {
    dataset d;
    RLHF_TRY(load_text(&d, text, err));
    rlhf_status s = pref_set_build(set, &d, o, err);
    dataset_free(&d);
    return s;
}

static int seq_equals(const token_seq *s, const tok_encoding *e) {
    if (s->n != e->n) return 0;
    for (int i = 0; i < s->n; i++)
        if (s->ids[i] != e->ids[i] || s->type_ids[i] != e->type_ids[i]) return 0;
    return 1;
}

static void test_implicit_prompt(void) {
    const char *c = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: help me\n\nAssistant: Sure, here is how.";
    const char *r = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: help me\n\nAssistant: No.";
    size_t n = pref_implicit_prompt_len(c, r);
    CHECK(n == strlen("\n\nHuman: hi\n\nAssistant: hello\n\nHuman: help me\n\nAssistant:"),
          "HH prompt ends after the last assistant cue, got %zu bytes", n);
    CHECK(pref_implicit_prompt_len("The cat sat", "The cat ran") == strlen("The cat"),
          "TRL extract_prompt drops the space before the response");
    CHECK(pref_implicit_prompt_len("\xc3\xa9t\xc3\xa9", "\xc3\xa8te") == 0, "never splits a UTF-8 character");
    CHECK(pref_implicit_prompt_len("abc", "xyz") == 0, "nothing in common: no prompt");
}

static void test_pretokenized(void) {
    rlhf_err err;
    pref_opts o = {.vocab_size = 100, .type_vocab_size = 2, .max_length = 6};
    pref_set s;
    rlhf_status st = build(&s,
                           "{\"chosen_ids\": [1, 2, 3], \"rejected_ids\": [4, 5], \"margin\": 0.5}\n"
                           "\n"
                           "{\"chosen_ids\": [7, 8], \"chosen_token_type_ids\": [0, 1], \"rejected_ids\": [1,2,3,4,5,6,7,8]}\n",
                           &o, &err);
    CHECK(st == RLHF_OK, "%s", err.msg);
    if (st) return;
    CHECK(s.n == 2 && s.rows[0].is_pair && s.has_margin, "two pairs with a margin");
    CHECK(s.rows[0].chosen.n == 3 && s.rows[0].chosen.ids[2] == 3 && s.rows[0].rejected.n == 2, "ids as given");
    CHECK(s.rows[0].margin == 0.5f && s.rows[1].margin == 0.0f, "margin read, default 0");
    CHECK(s.rows[1].line == 3, "line numbers skip the blank line: %d", s.rows[1].line);
    CHECK(s.rows[1].chosen.type_ids[1] == 1 && s.rows[0].chosen.type_ids[0] == 0, "type ids given or zero");
    CHECK(s.rows[1].rejected.n == 6 && s.n_truncated == 1, "truncated to max_length and counted (%d, %d)",
          s.rows[1].rejected.n, s.n_truncated);
    pref_set_free(&s);
}

static void test_every_bad_row_reported(void) {
    rlhf_err err;
    pref_opts o = {.vocab_size = 10, .type_vocab_size = 2, .max_length = 64};
    pref_set s;
    rlhf_status st = build(&s,
                           "{\"chosen_ids\": [1, 2], \"rejected_ids\": [3]}\n"
                           "{\"chosen_ids\": [1, 2]}\n"
                           "{\"chosen_ids\": [1, 2], \"rejected_ids\": [3]}\n"
                           "{\"chosen_ids\": [1, 99], \"rejected_ids\": [3]}\n"
                           "{\"chosen_ids\": [1], \"rejected_ids\": [3], \"margin\": \"big\"}\n"
                           "{\"chosen\": \"hello\", \"rejected\": \"bye\"}\n",
                           &o, &err);
    CHECK(st == RLHF_EINPUT, "malformed rows are an input error (%d)", st);
    char want[96];
    for (int line = 2; line <= 6; line += 1) {
        if (line == 3) continue;
        snprintf(want, sizeof want, "%s:%d:", tmp_path, line);
        CHECK(strstr(err.msg, want) != NULL, "line %d reported in: %s", line, err.msg);
    }
    snprintf(want, sizeof want, "%s:3:", tmp_path);
    CHECK(strstr(err.msg, want) == NULL, "a good row is not reported");
    CHECK(strstr(err.msg, "tokenizer") != NULL, "text rows without a tokenizer say so");
    CHECK(s.n == 0 && s.rows == NULL, "nothing returned on error");
}

static void test_text_rows_bert(void) {
    rlhf_err err;
    tokenizer *tok = NULL;
    rlhf_status st = tokenizer_load(&tok, BERT_TOK, &err);
    CHECK(st == RLHF_OK, "%s", err.msg);
    if (st) return;
    pref_opts o = {.tok = tok, .vocab_size = 30522, .type_vocab_size = 2, .max_length = 512, .eos_id = -1,
                   .bos_id = -1};
    pref_set s;
    st = build(&s,
               "{\"prompt\": \"How do I fix my bike?\", \"chosen\": \"Check the chain.\", \"rejected\": \"No idea.\"}\n"
               "{\"chosen\": \"\\n\\nHuman: hi there\\n\\nAssistant: Hello friend\", "
               "\"rejected\": \"\\n\\nHuman: hi there\\n\\nAssistant: Go away\"}\n"
               "{\"prompt\": [{\"role\": \"user\", \"content\": \"Hi\"}], "
               "\"chosen\": [{\"role\": \"assistant\", \"content\": \"Hello!\"}], "
               "\"rejected\": [{\"role\": \"assistant\", \"content\": \"Bye.\"}]}\n"
               "{\"conversations\": [{\"from\": \"human\", \"value\": \"Hi\"}], "
               "\"chosen\": {\"from\": \"gpt\", \"value\": \"Hello!\"}, \"rejected\": {\"from\": \"gpt\", \"value\": \"Bye.\"}}\n"
               "{\"chosen\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"Hello!\"}], "
               "\"rejected\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"Bye.\"}]}\n",
               &o, &err);
    CHECK(st == RLHF_OK, "%s", err.msg);
    if (!st) {
        tok_encoding e = {0};
        tokenizer_encode(tok, "How do I fix my bike?", "Check the chain.", 1, 0, TRUNC_LONGEST_FIRST, &e, &err);
        CHECK(seq_equals(&s.rows[0].chosen, &e), "explicit prompt: tokenizer(prompt, chosen) as a sentence pair");
        tok_encoding_free(&e);
        tokenizer_encode(tok, "\n\nHuman: hi there\n\nAssistant:", " Go away", 1, 0, TRUNC_LONGEST_FIRST, &e, &err);
        CHECK(seq_equals(&s.rows[1].rejected, &e), "implicit HH prompt split after the assistant cue");
        tok_encoding_free(&e);
        tokenizer_encode(tok, "user: Hi\n", "assistant: Hello!\n", 1, 0, TRUNC_LONGEST_FIRST, &e, &err);
        CHECK(seq_equals(&s.rows[2].chosen, &e), "conversational rows use the role template");
        CHECK(seq_equals(&s.rows[4].chosen, &e), "implicit conversational prompt = common leading messages");
        tok_encoding_free(&e);
        tokenizer_encode(tok, "user: Hi\n", "Hello!", 1, 0, TRUNC_LONGEST_FIRST, &e, &err);
        CHECK(seq_equals(&s.rows[3].chosen, &e), "ShareGPT conversations + chosen message");
        tok_encoding_free(&e);
        pref_set_free(&s);
    }
    // Truncation keeps the response: a long prompt is cut first.
    o.max_length = 12;
    st = build(&s,
               "{\"prompt\": \"one two three four five six seven eight nine ten eleven twelve\", "
               "\"chosen\": \"good answer\", \"rejected\": \"bad answer\"}\n",
               &o, &err);
    CHECK(st == RLHF_OK, "%s", err.msg);
    if (!st) {
        tok_encoding e = {0};
        tokenizer_encode(tok, "good answer", NULL, 0, 0, TRUNC_LONGEST_FIRST, &e, &err);
        const token_seq *c = &s.rows[0].chosen;
        CHECK(c->n == 12 && s.n_truncated == 1, "truncated to 12 (%d), counted (%d)", c->n, s.n_truncated);
        int kept = c->n >= e.n + 1;
        for (int i = 0; i < e.n && kept; i++) kept = c->ids[c->n - 1 - e.n + i] == e.ids[i];
        CHECK(kept, "the response survives truncation");
        tok_encoding_free(&e);
        pref_set_free(&s);
    }
    // --encoding concat: one text.
    o.max_length = 512;
    o.encoding = PREF_ENCODING_CONCAT;
    st = build(&s, "{\"prompt\": \"Hi. \", \"chosen\": \"Hello\", \"rejected\": \"Bye\"}\n", &o, &err);
    CHECK(st == RLHF_OK, "%s", err.msg);
    if (!st) {
        tok_encoding e = {0};
        tokenizer_encode(tok, "Hi. Hello", NULL, 1, 0, TRUNC_LONGEST_FIRST, &e, &err);
        CHECK(seq_equals(&s.rows[0].chosen, &e), "concat encoding is tokenizer(prompt + response)");
        tok_encoding_free(&e);
        pref_set_free(&s);
    }
    // concat over max_length keeps [CLS] ... [SEP] around the end of the text (the response).
    o.max_length = 6;
    st = build(&s, "{\"prompt\": \"one two three four five six seven \", \"chosen\": \"good answer\", "
                   "\"rejected\": \"bad\"}\n", &o, &err);
    CHECK(st == RLHF_OK, "%s", err.msg);
    if (!st) {
        tok_encoding e = {0};
        tokenizer_encode(tok, "good answer", NULL, 0, 0, TRUNC_LONGEST_FIRST, &e, &err);
        const token_seq *c = &s.rows[0].chosen;
        CHECK(c->n == 6 && c->ids[0] == 101 && c->ids[5] == 102, "specials kept around the cut (%d)", c->n);
        CHECK(e.n == 2 && c->n == 6 && c->ids[3] == e.ids[0] && c->ids[4] == e.ids[1], "concat keeps the response");
        CHECK(s.n_truncated == 1, "counted");
        tok_encoding_free(&e);
        pref_set_free(&s);
    }
    o.max_length = 512;
    // Invalid UTF-8 in a text field names the line.
    o.encoding = PREF_ENCODING_PAIR;
    st = build(&s, "{\"chosen\": \"a\", \"rejected\": \"b\"}\n{\"chosen\": \"bad \xff\xfe\", \"rejected\": \"b\"}\n", &o,
               &err);
    char want[96];
    snprintf(want, sizeof want, "%s:2:", tmp_path);
    CHECK(st == RLHF_EINPUT && strstr(err.msg, want), "invalid UTF-8 reported at its line: %s", err.msg);
    // Scoring rows: a single response.
    o.allow_single = 1;
    st = build(&s, "{\"prompt\": \"Hi\", \"response\": \"Hello\"}\n{\"input_ids\": [101, 102]}\n", &o, &err);
    CHECK(st == RLHF_OK && s.n == 2 && !s.rows[0].is_pair && !s.rows[1].is_pair && s.rows[1].chosen.n == 2,
          "single-response rows for scoring: %s", st ? err.msg : "");
    if (!st) pref_set_free(&s);
    tokenizer_free(tok);
}

static void test_decoder_eos(void) {
    rlhf_err err;
    tokenizer *tok = NULL;
    rlhf_status st = tokenizer_load(&tok, GPT2_TOK, &err);
    CHECK(st == RLHF_OK, "%s", err.msg);
    if (st) return;
    pref_opts o = {.tok = tok, .vocab_size = 50257, .max_length = 4, .is_decoder = 1, .eos_id = 50256, .bos_id = -1};
    pref_set s;
    st = build(&s, "{\"prompt\": \"Hello world, how are\", \"chosen\": \" you today\", \"rejected\": \" it\"}\n", &o, &err);
    CHECK(st == RLHF_OK, "%s", err.msg);
    if (!st) {
        tok_encoding e = {0};
        tokenizer_encode(tok, "Hello world, how are you today", NULL, 1, 0, TRUNC_LONGEST_FIRST, &e, &err);
        const token_seq *c = &s.rows[0].chosen;
        CHECK(c->n == 4 && c->ids[3] == 50256, "prompt + response + EOS, cut to max_length (%d)", c->n);
        CHECK(c->n == 4 && c->ids[2] == e.ids[e.n - 1] && c->ids[1] == e.ids[e.n - 2],
              "decoders keep the end of the sequence");
        tok_encoding_free(&e);
        pref_set_free(&s);
    }
    tokenizer_free(tok);
}

static void test_split(void) {
    rlhf_err err;
    pref_opts o = {.vocab_size = 100, .max_length = 10};
    char text[2048] = "";
    for (int i = 0; i < 10; i++)
        snprintf(text + strlen(text), sizeof text - strlen(text), "{\"chosen_ids\": [%d], \"rejected_ids\": [1]}\n",
                 i + 2);
    pref_set all, tr, ev, all2, tr2, ev2;
    CHECK(build(&all, text, &o, &err) == RLHF_OK, "%s", err.msg);
    CHECK(build(&all2, text, &o, &err) == RLHF_OK, "%s", err.msg);
    CHECK(pref_set_split(&all, 0.2, 7, &tr, &ev, &err) == RLHF_OK, "%s", err.msg);
    CHECK(pref_set_split(&all2, 0.2, 7, &tr2, &ev2, &err) == RLHF_OK, "%s", err.msg);
    CHECK(tr.n == 8 && ev.n == 2, "ceil(0.2 * 10) = 2 held out (%d/%d)", tr.n, ev.n);
    CHECK(ev.rows[0].chosen.ids[0] == ev2.rows[0].chosen.ids[0] && ev.rows[1].chosen.ids[0] == ev2.rows[1].chosen.ids[0],
          "the split is a function of the seed");
    int seen[12] = {0};
    for (int i = 0; i < tr.n; i++) seen[tr.rows[i].chosen.ids[0]]++;
    for (int i = 0; i < ev.n; i++) seen[ev.rows[i].chosen.ids[0]]++;
    int all_once = 1;
    for (int i = 2; i < 12; i++) all_once &= seen[i] == 1;
    CHECK(all_once, "every row lands in exactly one part");
    pref_set_free(&tr);
    pref_set_free(&ev);
    pref_set_free(&tr2);
    pref_set_free(&ev2);
}

int main(void) {
    test_implicit_prompt();
    test_pretokenized();
    test_every_bad_row_reported();
    test_text_rows_bert();
    test_decoder_eos();
    test_split();
    return tu_finish("train_preference");
}
