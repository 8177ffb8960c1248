// DPO losses as TRL's DPOTrainer.dpo_loss computes them (trl 0.27, trl/trainer/dpo_trainer.py), one
// preference pair at a time, with the analytic derivatives with respect to the policy's two sequence
// log-probs (the reference log-probs are constants). With
//   logits = (pi_c - pi_r) - (ref_c - ref_r),  z = beta * logits,
//   chosen_logratio cl = pi_c - ref_c,  rejected_logratio rl = pi_r - ref_r,  ls = label_smoothing:
//   sigmoid    -(1 - ls) logsig(z) - ls logsig(-z)                           (DPO; cDPO with ls > 0)
//   robust     (-(1 - ls) logsig(z) + ls logsig(-z)) / (1 - 2 ls)            (Robust DPO)
//   exo_pair   sig(z) (logsig(z) - log(1 - ls)) + sig(-z) (logsig(-z) - log ls), ls = 1e-3 when 0 (EXO)
//   hinge      relu(1 - z)                                                   (SLiC)
//   ipo        (logits - 1 / (2 beta))^2, on length-averaged log-probs         (IPO)
//   bco_pair   -logsig(beta cl - delta) - logsig(-(beta rl - delta)), delta the running mean of the
//              rewards (TRL RunningMoments, updated with each micro-batch's 2P rewards before use)
//   sppo_hard  (cl - 0.5 / beta)^2 + (rl + 0.5 / beta)^2
//   nca_pair   -logsig(beta cl) - 0.5 logsig(-beta cl) - 0.5 logsig(-beta rl)
//   apo_zero   1 - sig(beta cl) + sig(beta rl)
//   apo_down   sig(beta cl) + 1 - sig(beta (cl - rl))
//   discopop   m = sig(z / tau): -logsig(z) (1 - m) + exp(-z) m
// The implicit rewards are beta * cl and beta * rl for every loss type.
#ifndef RLHF_TRAIN_DPO_LOSS_H
#define RLHF_TRAIN_DPO_LOSS_H

#include "base/error.h"

typedef enum {
    DPO_SIGMOID,
    DPO_IPO,
    DPO_HINGE,
    DPO_ROBUST,
    DPO_EXO_PAIR,
    DPO_NCA_PAIR,
    DPO_BCO_PAIR,
    DPO_SPPO_HARD,
    DPO_APO_ZERO,
    DPO_APO_DOWN,
    DPO_DISCOPOP,
    DPO_N_LOSS_TYPES
} dpo_loss_type;

// "sigmoid", ... (--loss_type); anything else is RLHF_EINPUT naming the flag and the choices.
rlhf_status dpo_loss_type_parse(const char *name, dpo_loss_type *out, rlhf_err *err);
const char *dpo_loss_type_name(dpo_loss_type t);
#define DPO_LOSS_TYPE_CHOICES \
    "sigmoid|ipo|hinge|robust|exo_pair|nca_pair|bco_pair|sppo_hard|apo_zero|apo_down|discopop"

typedef struct {
    dpo_loss_type type;
    double beta;             // --beta (0.1)
    double label_smoothing;  // --label_smoothing (0): sigmoid, robust, exo_pair
    double discopop_tau;     // --discopop_tau (0.05)
} dpo_loss_config;

// TRL RunningMoments (bco_pair's delta): mean 0, var 1, count 1e-24 at the start.
typedef struct {
    double mean, var, count;
} dpo_running;
void dpo_running_init(dpo_running *r);
// Chan et al.'s merge with a batch of xs_count values of mean xs_mean and biased variance xs_var.
void dpo_running_update(dpo_running *r, double xs_mean, double xs_var, double xs_count);

// Loss of one pair; *dpc, *dpr (may be NULL) get d loss / d pi_c and d loss / d pi_r. delta: bco_pair's
// running mean (ignored otherwise). For ipo the log-probs are the length-averaged ones.
double dpo_pair_loss(const dpo_loss_config *c, double pi_c, double pi_r, double ref_c, double ref_r, double delta,
                     double *dpc, double *dpr);

#endif
