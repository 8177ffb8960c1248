// transformers/optimization.py's lr lambdas (get_linear_schedule_with_warmup,
// get_cosine_schedule_with_warmup with num_cycles 0.5, get_constant_schedule[_with_warmup]), as
// torch's LambdaLR applies them: the lr of optimizer step k (0-based) is base_lr * lambda(k).
#include "train/schedule.h"

#include <math.h>
#include <string.h>

// get_cosine_schedule_with_warmup's default: half a cosine period, from 1 down to 0.
#define COSINE_NUM_CYCLES 0.5

rlhf_status lr_schedule_parse(const char *name, lr_schedule *out, rlhf_err *err) {
    static const struct { const char *name; lr_schedule s; } names[] = {
        {"linear", SCHED_LINEAR},
        {"cosine", SCHED_COSINE},
        {"constant", SCHED_CONSTANT},
        {"constant_with_warmup", SCHED_CONSTANT_WITH_WARMUP},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (name && !strcmp(name, names[i].name)) {
            *out = names[i].s;
            return RLHF_OK;
        }
    return rlhf_fail(err, RLHF_EINPUT,
                     "--lr_scheduler_type: unknown schedule '%s' (expected linear, cosine, constant, "
                     "constant_with_warmup)",
                     name ? name : "(null)");
}

static double maxd(double a, double b) { return a > b ? a : b; }

double lr_at(lr_schedule s, double base_lr, long long step, long long warmup_steps, long long total_steps) {
    double cur = (double)step, warm = (double)warmup_steps;
    double warm_mult = cur / maxd(1.0, warm);
    double mult = 1.0;
    switch (s) {
    case SCHED_CONSTANT: mult = 1.0; break;
    case SCHED_CONSTANT_WITH_WARMUP: mult = step < warmup_steps ? warm_mult : 1.0; break;
    case SCHED_LINEAR:
        if (step < warmup_steps) mult = warm_mult;
        else mult = maxd(0.0, (double)(total_steps - step) / maxd(1.0, (double)(total_steps - warmup_steps)));
        break;
    case SCHED_COSINE:
        if (step < warmup_steps) {
            mult = warm_mult;
        } else {
            double progress = (double)(step - warmup_steps) / maxd(1.0, (double)(total_steps - warmup_steps));
            mult = maxd(0.0, 0.5 * (1.0 + cos(M_PI * COSINE_NUM_CYCLES * 2.0 * progress)));
        }
        break;
    }
    return base_lr * mult;
}
