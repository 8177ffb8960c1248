// Every DPO loss type (train/dpo_loss.c) against TRL 0.27's dpo_loss transcribed into PyTorch on fixed
// log-probs (tests/fixtures/dpo/losses.json, tools/gen_dpo_reference.py): the per-pair losses and their
// autograd gradients with respect to the policy's chosen and rejected log-probs, for beta 0.1 / label
// smoothing 0 and beta 0.5 / label smoothing 0.2; bco_pair's running mean after one update with the pairs'
// rewards. Also: the sigmoid loss of an unmoved policy is ln 2, and names parse both ways.
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "train/dpo_loss.h"

#define MAXP 16

static int read_vec(const cJSON *o, const char *k, double *out) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, k), *e;
    int n = 0;
    cJSON_ArrayForEach(e, a) if (n < MAXP) out[n++] = e->valuedouble;
    return n;
}

int main(void) {
    char *text = tu_read_file(TU_FIXTURES "/dpo/losses.json", NULL);
    CHECK(text != NULL, "cannot read losses.json");
    if (!text) return tu_finish("train_dpo_loss");
    cJSON *j = cJSON_Parse(text);
    free(text);
    double pc[MAXP], pr[MAXP], rc[MAXP], rr[MAXP];
    int P = read_vec(j, "chosen_logps", pc);
    read_vec(j, "rejected_logps", pr), read_vec(j, "ref_chosen_logps", rc), read_vec(j, "ref_rejected_logps", rr);
    const cJSON *c;
    int n_cases = 0, seen[DPO_N_LOSS_TYPES] = {0};
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(j, "cases")) {
        const char *name = cJSON_GetObjectItemCaseSensitive(c, "loss_type")->valuestring;
        dpo_loss_config cfg;
        rlhf_err err;
        CHECK(dpo_loss_type_parse(name, &cfg.type, &err) == RLHF_OK, "%s", name);
        CHECK(!strcmp(dpo_loss_type_name(cfg.type), name), "%s", name);
        seen[cfg.type] = 1;
        cfg.beta = cJSON_GetObjectItemCaseSensitive(c, "beta")->valuedouble;
        cfg.label_smoothing = cJSON_GetObjectItemCaseSensitive(c, "label_smoothing")->valuedouble;
        cfg.discopop_tau = cJSON_GetObjectItemCaseSensitive(c, "discopop_tau")->valuedouble;
        double want_l[MAXP], want_c[MAXP], want_r[MAXP];
        read_vec(c, "losses", want_l), read_vec(c, "dchosen", want_c), read_vec(c, "drejected", want_r);
        double delta = 0;
        if (cfg.type == DPO_BCO_PAIR) {  // the running mean after the batch's 2P rewards
            dpo_running run;
            dpo_running_init(&run);
            double sum = 0, ss = 0;
            for (int i = 0; i < P; i++) sum += cfg.beta * (pc[i] - rc[i]) + cfg.beta * (pr[i] - rr[i]);
            double mean = sum / (2 * P);
            for (int i = 0; i < P; i++) {
                double a = cfg.beta * (pc[i] - rc[i]) - mean, b = cfg.beta * (pr[i] - rr[i]) - mean;
                ss += a * a + b * b;
            }
            dpo_running_update(&run, mean, ss / (2 * P), 2 * P);
            delta = run.mean;
            double want_delta = cJSON_GetObjectItemCaseSensitive(c, "delta")->valuedouble;
            CHECK(fabs(delta - want_delta) <= 1e-6 * fabs(want_delta) + 1e-9, "bco delta %g vs %g", delta, want_delta);
        }
        for (int i = 0; i < P; i++) {
            double dpc, dpr, l = dpo_pair_loss(&cfg, pc[i], pr[i], rc[i], rr[i], delta, &dpc, &dpr);
            CHECK(fabs(l - want_l[i]) <= 1e-6 * fabs(want_l[i]) + 1e-9, "%s beta %g pair %d: loss %.10g vs %.10g", name,
                  cfg.beta, i, l, want_l[i]);
            CHECK(fabs(dpc - want_c[i]) <= 1e-6 * fabs(want_c[i]) + 1e-9, "%s beta %g pair %d: dchosen %.10g vs %.10g",
                  name, cfg.beta, i, dpc, want_c[i]);
            CHECK(fabs(dpr - want_r[i]) <= 1e-6 * fabs(want_r[i]) + 1e-9, "%s beta %g pair %d: drejected %.10g vs %.10g",
                  name, cfg.beta, i, dpr, want_r[i]);
        }
        n_cases++;
    }
    cJSON_Delete(j);
    CHECK(n_cases == 2 * DPO_N_LOSS_TYPES, "%d cases", n_cases);
    for (int t = 0; t < DPO_N_LOSS_TYPES; t++) CHECK(seen[t], "loss type %s not covered", dpo_loss_type_name(t));
    // an unmoved policy: logits 0, sigmoid loss ln 2 and gradient -beta/2 on chosen
    dpo_loss_config s = {DPO_SIGMOID, 0.1, 0.0, 0.05};
    double dpc, dpr, l = dpo_pair_loss(&s, -12.5, -7.25, -12.5, -7.25, 0, &dpc, &dpr);
    CHECK(l == log(2.0), "ln 2: %.17g", l);
    CHECK(fabs(dpc + 0.05) < 1e-15 && fabs(dpr - 0.05) < 1e-15, "%g %g", dpc, dpr);
    dpo_loss_type t;
    rlhf_err err;
    CHECK(dpo_loss_type_parse("kto_pair", &t, &err) == RLHF_EINPUT && strstr(err.msg, "--loss_type"), "%s", err.msg);
    return tu_finish("train_dpo_loss");
}
