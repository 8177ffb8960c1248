// The LoRA / QLoRA flags every training command shares (`rlhf reward`, `sft`, `ppo`): one flag table
// (TRL ModelConfig's names: --use_peft, --lora_*, --load_in_4bit, --bnb_4bit_*) plus --merge_adapter,
// turned into peft options (models/peft.h) and checked once, so the three commands cannot drift.
#ifndef RLHF_CLI_PEFT_FLAGS_H
#define RLHF_CLI_PEFT_FLAGS_H

#include "base/error.h"
#include "cli/args.h"
#include "models/peft.h"

#define CLI_PEFT_N_FLAGS 10  // rows cli_peft_flag_specs appends
#define CLI_LORA_R_MAX (1 << 16)

typedef struct {
    const char *quant_type, *compute_dtype, *target_modules;
    double lora_alpha, lora_dropout;
    long long lora_r;
    int load_in_4bit, double_quant, use_peft, merge_adapter;
    const arg_spec *rows;  // the rows cli_peft_flag_specs wrote (to ask which flags were given)
} cli_peft_flags;

// Writes the flag rows at s[n..] while they fit under cap and returns n + CLI_PEFT_N_FLAGS (a result
// above cap means the caller's table is too small). what: the trained heads, for --use_peft's help.
int cli_peft_flag_specs(arg_spec *s, int n, int cap, cli_peft_flags *f, const char *what);
// The flags as peft options (ranges checked; errors name the flag).
rlhf_status cli_peft_options(const cli_peft_flags *f, peft_options *o, rlhf_err *err);
// Checks for a training command: --load_in_4bit, --merge_adapter and every --lora_* flag need --use_peft
// (a 4-bit base is frozen; LoRA flags alone would be ignored), --bnb_4bit_* need --load_in_4bit, then
// cli_peft_options. Fills o.
rlhf_status cli_peft_check_train(const cli_peft_flags *f, peft_options *o, rlhf_err *err);
// --resume_from_checkpoint DIR: with --use_peft DIR must hold an adapter whose rank and alpha are the
// flags' (the checkpoint's adapter config decides the rest); without it DIR must not hold one (its 4-bit
// setting would be lost).
rlhf_status cli_peft_check_resume(const cli_peft_flags *f, const char *dir, rlhf_err *err);
// Prints "rlhf CMD: LoRA r=.. on N layers: T trainable of P parameters; 4-bit base weights .." to stderr.
void cli_peft_notice(const char *cmd, model *m);

#endif
