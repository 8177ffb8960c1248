// Tests of AdamW, gradient clipping and the LR schedules against values produced by PyTorch
// (tools/gen_optim_reference.py -> tests/fixtures/optim/*.json): torch.optim.AdamW with HF's decay /
// no-decay groups, clip_grad_norm_, and LambdaLR driven by transformers' schedule lambdas.
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "train/optimizer.h"
#include "train/schedule.h"

// Parameters must match torch within 1e-6 relative (fp32 arithmetic in the same order).
#define PARAM_RTOL 1e-6
#define PARAM_ATOL 1e-7
#define NORM_RTOL 1e-6
#define LR_RTOL 1e-12

static cJSON *load_json(const char *path) {
    char *buf = tu_read_file(path, NULL);
    if (!buf) return NULL;
    cJSON *j = cJSON_Parse(buf);
    free(buf);
    return j;
}

static void read_floats(const cJSON *arr, float *out) {
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) out[i++] = (float)e->valuedouble;
}

static double num(const cJSON *o, const char *k) { return cJSON_GetObjectItem(o, k)->valuedouble; }

static int close_rel(double got, double want, double rtol) { return fabs(got - want) <= rtol * fabs(want) + 1e-15; }

static void test_adamw_case(const cJSON *c) {
    const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
    const cJSON *tensors = cJSON_GetObjectItem(c, "tensors"), *steps = cJSON_GetObjectItem(c, "steps");
    int nt = cJSON_GetArraySize(tensors);
    param_spec *specs = calloc((size_t)nt, sizeof(param_spec));
    size_t n = 0;
    for (int t = 0; t < nt; t++) {
        const cJSON *tj = cJSON_GetArrayItem(tensors, t);
        snprintf(specs[t].name, sizeof specs[t].name, "%s", cJSON_GetObjectItem(tj, "name")->valuestring);
        specs[t].offset = n;
        specs[t].numel = (size_t)num(tj, "numel");
        specs[t].no_decay = cJSON_IsTrue(cJSON_GetObjectItem(tj, "no_decay"));
        n += specs[t].numel;
    }
    float *params = malloc(sizeof(float) * n), *grads = malloc(sizeof(float) * n), *want = malloc(sizeof(float) * n);
    for (int t = 0; t < nt; t++) read_floats(cJSON_GetObjectItem(cJSON_GetArrayItem(tensors, t), "init"),
                                             params + specs[t].offset);
    adamw_state st;
    rlhf_err err;
    CHECK(adamw_init(&st, n, &err) == RLHF_OK, "adamw_init");
    adamw_config cfg = {num(c, "beta1"), num(c, "beta2"), num(c, "eps"), num(c, "weight_decay")};
    lr_schedule sched;
    CHECK(lr_schedule_parse(cJSON_GetObjectItem(c, "schedule")->valuestring, &sched, &err) == RLHF_OK, "parse");
    double max_norm = num(c, "max_norm");
    int si = 0;
    const cJSON *sj;
    cJSON_ArrayForEach(sj, steps) {
        const cJSON *gj = cJSON_GetObjectItem(sj, "grads"), *pj = cJSON_GetObjectItem(sj, "params");
        for (int t = 0; t < nt; t++) {
            read_floats(cJSON_GetArrayItem(gj, t), grads + specs[t].offset);
            read_floats(cJSON_GetArrayItem(pj, t), want + specs[t].offset);
        }
        double norm = clip_grad_norm(grads, n, max_norm);
        CHECK(close_rel(norm, num(sj, "grad_norm"), NORM_RTOL), "%s step %d: grad norm %.9g, torch %.9g", name, si,
              norm, num(sj, "grad_norm"));
        double lr = lr_at(sched, num(c, "lr"), si, (long long)num(c, "warmup"), (long long)num(c, "total"));
        CHECK(close_rel(lr, num(sj, "lr"), LR_RTOL), "%s step %d: lr %.12g, torch %.12g", name, si, lr,
              num(sj, "lr"));
        adamw_step(&st, params, grads, specs, nt, lr, &cfg);
        char label[160];
        snprintf(label, sizeof label, "%s step %d params", name, si);
        tu_close(label, params, want, n, PARAM_ATOL, PARAM_RTOL);
        si++;
    }
    CHECK(st.step == si, "step counter %lld", st.step);
    adamw_free(&st);
    free(specs); free(params); free(grads); free(want);
}

static void test_adamw_torch(void) {
    cJSON *j = load_json(TU_FIXTURES "/optim/adamw.json");
    CHECK(j != NULL, "cannot read " TU_FIXTURES "/optim/adamw.json");
    if (!j) return;
    const cJSON *c;
    int ncases = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(j, "cases")) {
        test_adamw_case(c);
        ncases++;
    }
    CHECK(ncases == 2, "adamw cases %d", ncases);
    cJSON_Delete(j);
}

static void test_adamw_hand(void) {
    // zero gradient: moments stay 0, the update is 0 / (0 + eps) = 0, so only decoupled decay acts
    param_spec specs[2] = {{.offset = 0, .numel = 2}, {.offset = 2, .numel = 1, .no_decay = 1}};
    float p[3] = {1, -2, 3}, g[3] = {0, 0, 0};
    adamw_state st;
    CHECK(adamw_init(&st, 3, NULL) == RLHF_OK, "init");
    adamw_config cfg = {0.9, 0.999, 1e-8, 0.1};
    adamw_step(&st, p, g, specs, 2, 0.5, &cfg);
    CHECK(p[0] == 0.95f && p[1] == -1.9f && p[2] == 3.0f, "decay only on decay group: %g %g %g", p[0], p[1], p[2]);
    // first step with gradient g: m_hat = g, v_hat = g^2 -> p -= lr * g / (|g| + eps) = lr * sign(g)
    float q[1] = {1}, gq[1] = {0.25f};
    adamw_state s2;
    CHECK(adamw_init(&s2, 1, NULL) == RLHF_OK, "init");
    adamw_config nodecay = {0.9, 0.999, 1e-8, 0.0};
    adamw_step(&s2, q, gq, NULL, 0, 0.1, &nodecay);
    CHECK(fabsf(q[0] - 0.9f) < 1e-6f, "first step moves by lr: %g", q[0]);
    adamw_free(&st);
    adamw_free(&s2);
}

static void test_clip(void) {
    float g[2] = {3, 4};
    double norm = clip_grad_norm(g, 2, 10.0);
    CHECK(norm == 5.0 && g[0] == 3 && g[1] == 4, "under max_norm: untouched");
    norm = clip_grad_norm(g, 2, 1.0);
    CHECK(norm == 5.0 && fabsf(g[0] - 0.6f) < 1e-6f && fabsf(g[1] - 0.8f) < 1e-6f, "clipped to norm 1: %g %g",
          g[0], g[1]);
    float h[2] = {3, 4};
    clip_grad_norm(h, 2, 0.0);
    CHECK(h[0] == 3, "max_norm 0: no clipping");
    float bad[3] = {1, NAN, 2};
    CHECK(isnan(clip_grad_norm(bad, 3, 1.0)) && bad[0] == 1, "NaN norm reported, grads untouched");
    float inf[2] = {INFINITY, 1};
    CHECK(isinf(clip_grad_norm(inf, 2, 1.0)), "Inf norm reported");
    // big buffer (parallel path) is deterministic and matches a serial double sum
    enum { N = 300001 };
    float *big = malloc(sizeof(float) * N);
    double s = 0;
    for (int i = 0; i < N; i++) {
        big[i] = (float)sin(i * 0.37);
        s += (double)big[i] * big[i];
    }
    double n1 = clip_grad_norm(big, N, 0), n2 = clip_grad_norm(big, N, 0);
    CHECK(n1 == n2 && close_rel(n1, sqrt(s), 1e-12), "big norm %.12g vs %.12g", n1, sqrt(s));
    free(big);
}

// The fused clip + AdamW + zero_grad pass equals clip_grad_norm then adamw_step bit for bit (clipping engaged or
// not, decay and no-decay groups, the parallel path), and leaves the gradients zero.
static void test_adamw_clipped(void) {
    enum { N = 200003 };
    float *p1 = malloc(sizeof(float) * N), *p2 = malloc(sizeof(float) * N);
    float *g1 = malloc(sizeof(float) * N), *g2 = malloc(sizeof(float) * N);
    param_spec specs[2] = {{.offset = 0, .numel = 150000}, {.offset = 150000, .numel = N - 150000, .no_decay = 1}};
    adamw_config c = {0.9, 0.999, 1e-8, 0.01};
    for (int round = 0; round < 2; round++) {
        double max_norm = round ? 1e9 : 1.0;  // clipped, then not clipped
        adamw_state s1, s2;
        CHECK(adamw_init(&s1, N, NULL) == RLHF_OK && adamw_init(&s2, N, NULL) == RLHF_OK, "init");
        for (int i = 0; i < N; i++) p1[i] = p2[i] = (float)cos(i * 0.11);
        for (int step = 0; step < 3; step++) {
            for (int i = 0; i < N; i++) g1[i] = g2[i] = (float)sin(i * 0.37 + step) * 0.01f;
            double n1 = clip_grad_norm(g1, N, max_norm);
            adamw_step(&s1, p1, g1, specs, 2, 1e-3, &c);
            double n2 = grad_norm(g2, N);
            float cf = grad_clip_scale(n2, max_norm);
            CHECK(round ? cf == 1.0f : cf < 1.0f, "round %d: clip scale %g", round, cf);
            adamw_step_clipped(&s2, p2, g2, cf, specs, 2, 1e-3, &c);
            CHECK(n1 == n2, "norms %.17g %.17g", n1, n2);
        }
        CHECK(!memcmp(p1, p2, sizeof(float) * N) && !memcmp(s1.m, s2.m, sizeof(float) * N) &&
                  !memcmp(s1.v, s2.v, sizeof(float) * N),
              "round %d: fused step differs from clip + adamw_step", round);
        int nonzero = 0;
        for (int i = 0; i < N; i++) nonzero += g2[i] != 0.0f;
        CHECK(nonzero == 0, "fused step left %d gradients non-zero", nonzero);
        adamw_free(&s1);
        adamw_free(&s2);
    }
    CHECK(grad_clip_scale(NAN, 1.0) == 1.0f && grad_clip_scale(5.0, 0.0) == 1.0f, "no scale for NaN / max_norm 0");
    free(p1), free(p2), free(g1), free(g2);
}

static void test_schedules(void) {
    cJSON *j = load_json(TU_FIXTURES "/optim/schedules.json");
    CHECK(j != NULL, "cannot read schedules.json");
    if (!j) return;
    const cJSON *s;
    int ns = 0;
    cJSON_ArrayForEach(s, cJSON_GetObjectItem(j, "schedules")) {
        lr_schedule sc;
        const char *type = cJSON_GetObjectItem(s, "type")->valuestring;
        CHECK(lr_schedule_parse(type, &sc, NULL) == RLHF_OK, "parse %s", type);
        int k = 0, bad = 0;
        const cJSON *lr;
        cJSON_ArrayForEach(lr, cJSON_GetObjectItem(s, "lrs")) {
            double got = lr_at(sc, num(s, "base_lr"), k, (long long)num(s, "warmup"), (long long)num(s, "total"));
            if (!close_rel(got, lr->valuedouble, LR_RTOL)) {
                bad++;
                fprintf(stderr, "%s warmup %g step %d: lr %.15g, torch %.15g\n", type, num(s, "warmup"), k, got,
                        lr->valuedouble);
            }
            k++;
        }
        CHECK(bad == 0 && k > 0, "schedule %s (warmup %g): %d of %d steps differ", type, num(s, "warmup"), bad, k);
        ns++;
    }
    CHECK(ns == 8, "schedules %d", ns);
    cJSON_Delete(j);
    rlhf_err err;
    lr_schedule sc;
    CHECK(lr_schedule_parse("polynomial", &sc, &err) == RLHF_EINPUT, "unknown schedule rejected");
    CHECK(strstr(err.msg, "--lr_scheduler_type") && strstr(err.msg, "polynomial"), "message: %s", err.msg);
}

int main(void) {
    test_adamw_hand();
    test_clip();
    test_adamw_clipped();
    test_adamw_torch();
    test_schedules();
    return tu_finish("train_optim");
}
