// The step arithmetic of trainer_args.h: HF Trainer's total and warmup steps.
#include "train/trainer_args.h"

#include <math.h>

long long trainer_total_steps(const trainer_common_args *t, long long steps_per_epoch) {
    long long total = t->max_steps > 0 ? t->max_steps : (long long)ceil(t->num_train_epochs * (double)steps_per_epoch);
    return total < 1 ? 1 : total;
}

long long trainer_warmup_steps(const trainer_common_args *t, long long total) {
    return t->warmup_steps > 0 ? t->warmup_steps : (long long)ceil(t->warmup_ratio * (double)total);
}
