// Checkpoint pieces of the reward trainer: trainer_state.json and optimizer.safetensors round-trip
// exactly (moments bit for bit, the step, the data order, log history with empty cells), a checkpoint
// directory appears whole under its final name (no .tmp left), and report.html draws inline SVG.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/files.h"
#include "io/json_util.h"
#include "testutil.h"
#include "train/checkpoint.h"
#include "train/report.h"
#include "train/trainer_common.h"

#define FIX TU_FIXTURES "/hf/bert_seqcls_1"

static void test_state_roundtrip(const char *dir) {
    rlhf_err err;
    trainer_state s = {.epochs_done = 1, .micro_in_epoch = 3, .global_step = 17, .skipped_steps = 2,
                       .seed = 18446744073709551557ull, .n_train = 4};
    int order[4] = {2, 0, 3, 1};
    s.order = order;
    train_log_entry e1 = {0.5, 10, 0.69, 1e-4, 2.5, 0.75, 0.1, NAN, NAN, NAN};
    train_log_entry e2 = {1.0, 17, NAN, NAN, NAN, NAN, NAN, 0.6, 0.8, 0.3};
    CHECK(trainer_state_add_log(&s, &e1, &err) == RLHF_OK, "%s", err.msg);
    CHECK(trainer_state_add_log(&s, &e2, &err) == RLHF_OK, "%s", err.msg);
    char path[512];
    path_join(path, sizeof path, dir, "trainer_state.json");
    CHECK(trainer_state_save(path, &s, &err) == RLHF_OK, "%s", err.msg);
    trainer_state t;
    CHECK(trainer_state_load(path, &t, &err) == RLHF_OK, "%s", err.msg);
    CHECK(t.epochs_done == 1 && t.micro_in_epoch == 3 && t.global_step == 17 && t.skipped_steps == 2, "positions");
    CHECK(t.seed == s.seed, "a 64-bit seed survives exactly");
    CHECK(t.n_train == 4 && t.order && !memcmp(t.order, order, sizeof order), "data order");
    CHECK(t.n_log == 2 && t.log[0].loss == 0.69 && isnan(t.log[0].eval_loss) && t.log[1].eval_accuracy == 0.8 &&
              isnan(t.log[1].loss),
          "log history with empty cells");
    trainer_state_free(&t);
    s.order = NULL;
    trainer_state_free(&s);
    // A file that is not a trainer state is an input error naming it.
    cJSON *j = cJSON_CreateObject();
    json_save_file(path, j, &err);
    cJSON_Delete(j);
    CHECK(trainer_state_load(path, &t, &err) == RLHF_EINPUT && strstr(err.msg, "trainer_state.json"), "%s", err.msg);
}

static void test_optimizer_and_dir(const char *dir) {
    rlhf_err err;
    model *m = NULL;
    tokenizer *tok = NULL;
    rlhf_status st = reward_model_load(&m, &tok, FIX, 0, &err);
    CHECK(st == RLHF_OK, "%s", err.msg);
    if (st) return;
    adamw_state a, b;
    adamw_init(&a, m->n_params, &err);
    adamw_init(&b, m->n_params, &err);
    for (size_t i = 0; i < m->n_params; i++) {
        a.m[i] = (float)i * 1e-3f - 0.5f;
        a.v[i] = 1.0f / (float)(i + 3);
    }
    a.step = 123;
    char ck[512], path[600];
    path_join(ck, sizeof ck, dir, "checkpoint-5");
    trainer_state s = {.global_step = 5, .n_train = 1, .seed = 1};
    CHECK(checkpoint_save(ck, m, tok, &a, &s, NULL, &err) == RLHF_OK, "%s", err.msg);
    CHECK(file_exists(path_join(path, sizeof path, ck, "model.safetensors")), "model in the checkpoint");
    CHECK(file_exists(path_join(path, sizeof path, ck, "config.json")), "config in the checkpoint");
    CHECK(file_exists(path_join(path, sizeof path, ck, "trainer_state.json")), "state in the checkpoint");
    snprintf(path, sizeof path, "%s.tmp", ck);
    CHECK(!dir_exists(path), "no temporary directory left");
    path_join(path, sizeof path, ck, "optimizer.safetensors");
    CHECK(optimizer_state_load(path, m, &b, &err) == RLHF_OK, "%s", err.msg);
    CHECK(b.step == 123 && !memcmp(a.m, b.m, sizeof(float) * m->n_params) &&
              !memcmp(a.v, b.v, sizeof(float) * m->n_params),
          "moments and step bit-identical");
    // Saving again over an existing checkpoint replaces it.
    a.step = 124;
    CHECK(checkpoint_save(ck, m, tok, &a, &s, NULL, &err) == RLHF_OK, "%s", err.msg);
    CHECK(optimizer_state_load(path, m, &b, &err) == RLHF_OK && b.step == 124, "replaced");
    adamw_free(&a);
    adamw_free(&b);
    model_free(m);
}

static void test_report(const char *dir) {
    rlhf_err err;
    double x[3] = {1, 2, 3}, y[3] = {0.7, NAN, 0.5};
    report_series s[2] = {{"train <loss>", x, y, 3}, {"empty", x, y, 0}};
    report_chart c[2] = {{"Loss & friends", "step", s, 2}, {"Nothing", "step", s + 1, 1}};
    char path[512];
    path_join(path, sizeof path, dir, "report.html");
    CHECK(report_write_html(path, "t", "summary <b>", c, 2, &err) == RLHF_OK, "%s", err.msg);
    char *text = NULL;
    size_t len = 0;
    CHECK(read_file(path, &text, &len, &err) == RLHF_OK, "%s", err.msg);
    if (!text) return;
    CHECK(strstr(text, "<svg") && strstr(text, "<polyline"), "inline svg with a line");
    CHECK(strstr(text, "train &lt;loss&gt;") && strstr(text, "summary &lt;b&gt;") && !strstr(text, "<b>"),
          "text is escaped");
    CHECK(strstr(text, "no values logged") != NULL, "an empty chart says so");
    CHECK(strstr(text, "class=\"ytick\"") && strstr(text, ">0.50<") && strstr(text, ">0.70<"), "round y ticks");
    // tick steps: 1, 2 or 5 x 10^k for about 5 intervals
    CHECK(report_nice_step(0, 0.73, 5) == 0.2 && report_nice_step(0.5, 0.7, 5) == 0.05 &&
              report_nice_step(1, 3, 5) == 0.5 && report_nice_step(0, 1000, 5) == 200 && report_nice_step(0, 7, 5) == 2,
          "nice steps");
    free(text);
}

int main(void) {
    char dir[] = "/tmp/rlhf_ckpt_XXXXXX";
    if (!mkdtemp(dir)) return 1;
    test_state_roundtrip(dir);
    test_optimizer_and_dir(dir);
    test_report(dir);
    rlhf_err err;
    remove_tree(dir, &err);
    return tu_finish("train_reward_checkpoint");
}
