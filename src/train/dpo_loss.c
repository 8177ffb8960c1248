// DPO loss formulas and their derivatives (see dpo_loss.h).
#include "train/dpo_loss.h"

#include <math.h>
#include <string.h>

static const char *const NAMES[DPO_N_LOSS_TYPES] = {"sigmoid",   "ipo",       "hinge",    "robust",
                                                    "exo_pair",  "nca_pair",  "bco_pair", "sppo_hard",
                                                    "apo_zero",  "apo_down",  "discopop"};

rlhf_status dpo_loss_type_parse(const char *name, dpo_loss_type *out, rlhf_err *err) {
    for (int i = 0; i < DPO_N_LOSS_TYPES; i++)
        if (name && !strcmp(name, NAMES[i])) {
            *out = (dpo_loss_type)i;
            return RLHF_OK;
        }
    return rlhf_fail(err, RLHF_EINPUT, "--loss_type: expected one of %s, got '%s'", DPO_LOSS_TYPE_CHOICES,
                     name ? name : "");
}

const char *dpo_loss_type_name(dpo_loss_type t) { return t >= 0 && t < DPO_N_LOSS_TYPES ? NAMES[t] : "?"; }

void dpo_running_init(dpo_running *r) {
    r->mean = 0.0;
    r->var = 1.0;
    r->count = 1e-24;
}

void dpo_running_update(dpo_running *r, double xs_mean, double xs_var, double xs_count) {
    double delta = xs_mean - r->mean, tot = r->count + xs_count;
    double new_sum = xs_var * xs_count;
    double old_sum = r->var * r->count + delta * delta * r->count * xs_count / tot;
    r->mean += delta * xs_count / tot;
    r->var = (old_sum + new_sum) / tot;
    r->count = tot;
}

static double sig(double x) { return x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x)); }
// log(sigmoid(x)), stable on both sides (torch's logsigmoid)
static double logsig(double x) { return x >= 0 ? -log1p(exp(-x)) : x - log1p(exp(x)); }

double dpo_pair_loss(const dpo_loss_config *c, double pi_c, double pi_r, double ref_c, double ref_r, double delta,
                     double *dpc, double *dpr) {
    const double beta = c->beta, ls = c->label_smoothing;
    const double logits = (pi_c - pi_r) - (ref_c - ref_r), z = beta * logits;
    const double cl = pi_c - ref_c, rl = pi_r - ref_r;
    double loss, dlogits = 0, dcl = 0, drl = 0;  // the loss through logits, or through cl / rl
    switch (c->type) {
    case DPO_SIGMOID:
        loss = -logsig(z) * (1 - ls) - logsig(-z) * ls;
        dlogits = beta * (-(1 - ls) * sig(-z) + ls * sig(z));
        break;
    case DPO_ROBUST:
        loss = (-logsig(z) * (1 - ls) + logsig(-z) * ls) / (1 - 2 * ls);
        dlogits = beta * (-(1 - ls) * sig(-z) - ls * sig(z)) / (1 - 2 * ls);
        break;
    case DPO_EXO_PAIR: {
        double e = ls == 0 ? 1e-3 : ls, s = sig(z);
        double a = logsig(z) - log(1 - e), b = logsig(-z) - log(e);
        loss = s * a + sig(-z) * b;
        dlogits = beta * s * (1 - s) * (a - b);
        break;
    }
    case DPO_HINGE:
        loss = 1 - z > 0 ? 1 - z : 0;
        dlogits = 1 - z > 0 ? -beta : 0;
        break;
    case DPO_IPO: {
        double u = logits - 1 / (2 * beta);
        loss = u * u;
        dlogits = 2 * u;
        break;
    }
    case DPO_BCO_PAIR: {
        double u = beta * cl - delta, v = beta * rl - delta;
        loss = -logsig(u) - logsig(-v);
        dcl = -beta * sig(-u);
        drl = beta * sig(v);
        break;
    }
    case DPO_SPPO_HARD: {
        double a = cl - 0.5 / beta, b = rl + 0.5 / beta;
        loss = a * a + b * b;
        dcl = 2 * a;
        drl = 2 * b;
        break;
    }
    case DPO_NCA_PAIR: {
        double cr = beta * cl, rr = beta * rl;
        loss = -logsig(cr) - 0.5 * logsig(-cr) - 0.5 * logsig(-rr);
        dcl = beta * (-sig(-cr) + 0.5 * sig(cr));
        drl = beta * 0.5 * sig(rr);
        break;
    }
    case DPO_APO_ZERO: {
        double sc = sig(beta * cl), sr = sig(beta * rl);
        loss = 1 - sc + sr;
        dcl = -beta * sc * (1 - sc);
        drl = beta * sr * (1 - sr);
        break;
    }
    case DPO_APO_DOWN: {
        double s1 = sig(beta * cl), s2 = sig(beta * (cl - rl));
        loss = s1 + 1 - s2;
        dcl = beta * s1 * (1 - s1) - beta * s2 * (1 - s2);
        drl = beta * s2 * (1 - s2);
        break;
    }
    case DPO_DISCOPOP: {
        double m = sig(z / c->discopop_tau), dm = m * (1 - m) / c->discopop_tau, ez = exp(-z);
        loss = -logsig(z) * (1 - m) + ez * m;
        dlogits = beta * (-sig(-z) * (1 - m) + logsig(z) * dm - ez * m + ez * dm);
        break;
    }
    default:
        loss = NAN;
    }
    if (dpc) *dpc = dlogits + dcl;
    if (dpr) *dpr = -dlogits + drl;
    return loss;
}
