// Learning-rate schedules of transformers.get_scheduler, as multipliers of the base learning rate.
#ifndef RLHF_TRAIN_SCHEDULE_H
#define RLHF_TRAIN_SCHEDULE_H

#include "base/error.h"

typedef enum { SCHED_LINEAR, SCHED_COSINE, SCHED_CONSTANT, SCHED_CONSTANT_WITH_WARMUP } lr_schedule;
rlhf_status lr_schedule_parse(const char *name, lr_schedule *out, rlhf_err *err);   // error names --lr_scheduler_type
// transformers.get_scheduler's multiplier at `step` (0-based count of optimizer steps taken) times base_lr.
double lr_at(lr_schedule s, double base_lr, long long step, long long warmup_steps, long long total_steps);

#endif
