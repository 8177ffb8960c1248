// The shared LoRA / QLoRA flag table and its checks (see peft_flags.h).
#include "cli/peft_flags.h"

#include <stdio.h>
#include <string.h>

int cli_peft_flag_specs(arg_spec *s, int n, int cap, cli_peft_flags *f, const char *what) {
    f->rows = n + CLI_PEFT_N_FLAGS <= cap ? s + n : NULL;
#define F(name, type, dest, def, help) \
    do { if (n < cap) s[n] = (arg_spec){name, type, dest, def, help, NULL, 0}; n++; } while (0)
    F("load_in_4bit", ARG_BOOL, &f->load_in_4bit, NULL, "QLoRA: frozen 4-bit backbone weights (needs --use_peft)");
    F("bnb_4bit_quant_type", ARG_STRING, &f->quant_type, "nf4", "nf4 | fp4");
    F("bnb_4bit_use_double_quant", ARG_BOOL, &f->double_quant, NULL, "quantize the quantization constants");
    F("bnb_4bit_compute_dtype", ARG_STRING, &f->compute_dtype, "float32", "bfloat16 | float32");
    F("use_peft", ARG_BOOL, &f->use_peft, NULL, what);
    F("lora_r", ARG_INT, &f->lora_r, "16", "LoRA rank");
    F("lora_alpha", ARG_FLOAT, &f->lora_alpha, "32", "LoRA alpha");
    F("lora_dropout", ARG_FLOAT, &f->lora_dropout, "0.05", "LoRA dropout");
    F("lora_target_modules", ARG_STRING, &f->target_modules, "all-linear", "all-linear | comma-separated names");
    F("merge_adapter", ARG_BOOL, &f->merge_adapter, NULL, "with --use_peft: also write the merged full model");
#undef F
    return n;
}

rlhf_status cli_peft_options(const cli_peft_flags *f, peft_options *o, rlhf_err *err) {
    peft_options_default(o);
    o->use_peft = f->use_peft;
    if (f->lora_r < 1 || f->lora_r > CLI_LORA_R_MAX)
        return rlhf_fail(err, RLHF_EINPUT, "--lora_r must be in [1, %d], got %lld", CLI_LORA_R_MAX, f->lora_r);
    o->lora.r = (int)f->lora_r;
    o->lora.alpha = (float)f->lora_alpha;
    o->lora.dropout = (float)f->lora_dropout;
    if (strlen(f->target_modules) >= sizeof o->target_modules)
        return rlhf_fail(err, RLHF_EINPUT, "--lora_target_modules is too long");
    snprintf(o->target_modules, sizeof o->target_modules, "%s", f->target_modules);
    o->load_in_4bit = f->load_in_4bit;
    o->double_quant = f->double_quant;
    RLHF_TRY(nf4_quant_type_parse(f->quant_type, &o->quant_type, err));
    RLHF_TRY(nf4_compute_parse(f->compute_dtype, &o->compute, err));
    return peft_options_check(o, err);
}

// The flag was given (a bool: given as true).
static int given(const cli_peft_flags *f, const char *name) {
    for (int i = 0; f->rows && i < CLI_PEFT_N_FLAGS; i++)
        if (!strcmp(f->rows[i].name, name))
            return f->rows[i].seen && (f->rows[i].type != ARG_BOOL || *(const int *)f->rows[i].dest);
    return 0;
}

rlhf_status cli_peft_check_train(const cli_peft_flags *f, peft_options *o, rlhf_err *err) {
    static const char *const lora[] = {"lora_r", "lora_alpha", "lora_dropout", "lora_target_modules"};
    static const char *const bnb[] = {"bnb_4bit_quant_type", "bnb_4bit_use_double_quant", "bnb_4bit_compute_dtype"};
    for (size_t i = 0; i < sizeof lora / sizeof *lora && !f->use_peft; i++)
        if (given(f, lora[i]))
            return rlhf_fail(err, RLHF_EINPUT, "--%s needs --use_peft (without it the whole model is trained and "
                             "--%s would be ignored)", lora[i], lora[i]);
    for (size_t i = 0; i < sizeof bnb / sizeof *bnb && !f->load_in_4bit; i++)
        if (given(f, bnb[i]))
            return rlhf_fail(err, RLHF_EINPUT, "--%s needs --load_in_4bit (without it the base stays fp32 and --%s "
                             "would be ignored)", bnb[i], bnb[i]);
    if (f->load_in_4bit && !f->use_peft)
        return rlhf_fail(err, RLHF_EINPUT, "--load_in_4bit: a 4-bit base is frozen, so training needs --use_peft (QLoRA)");
    if (f->merge_adapter && !f->use_peft) return rlhf_fail(err, RLHF_EINPUT, "--merge_adapter needs --use_peft");
    return cli_peft_options(f, o, err);
}

rlhf_status cli_peft_check_resume(const cli_peft_flags *f, const char *dir, rlhf_err *err) {
    if (!f->use_peft) {
        if (peft_is_adapter_dir(dir))
            return rlhf_fail(err, RLHF_EINPUT, "--resume_from_checkpoint %s holds a peft adapter: give --use_peft and "
                             "the run's --lora_* / --load_in_4bit flags to continue it", dir);
        return RLHF_OK;
    }
    if (!peft_is_adapter_dir(dir))
        return rlhf_fail(err, RLHF_EINPUT, "--resume_from_checkpoint %s: --use_peft needs a checkpoint with an adapter "
                         "(adapter_config.json); this one holds a full model", dir);
    peft_options saved;
    RLHF_TRY(peft_read_adapter_config(dir, &saved, NULL, err));
    if (saved.lora.r != (int)f->lora_r)
        return rlhf_fail(err, RLHF_EINPUT, "--lora_r %lld differs from the checkpoint's adapter (r %d in %s)", f->lora_r,
                         saved.lora.r, dir);
    if (saved.lora.alpha != (float)f->lora_alpha)
        return rlhf_fail(err, RLHF_EINPUT, "--lora_alpha %g differs from the checkpoint's adapter (%g in %s)",
                         f->lora_alpha, saved.lora.alpha, dir);
    return RLHF_OK;
}

void cli_peft_notice(const char *cmd, model *m) {
    model_trainable tv;
    model_trainable_view(m, &tv);
    int64_t qb, fb;
    peft_quantized_bytes(m, &qb, &fb);
    fprintf(stderr, "rlhf %s: LoRA r=%d on %d layers: %zu trainable of %zu parameters", cmd,
            peft_rank(m), peft_n_adapted(m), tv.n, m->n_params);
    if (qb) fprintf(stderr, "; 4-bit base weights %.2f MiB (fp32 %.2f MiB)", qb / 1048576.0, fb / 1048576.0);
    fprintf(stderr, "\n");
}
