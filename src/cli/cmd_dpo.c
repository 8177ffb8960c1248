// `rlhf dpo`: direct preference optimisation of a causal LM on preference pairs, with TRL DPOConfig's
// flags and defaults (trl 0.27). Validates every flag and row before writing anything.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/peft_flags.h"
#include "cli/signals.h"
#include "cli/trainer_flags.h"
#include "io/dataset.h"
#include "io/files.h"
#include "models/peft.h"
#include "train/checkpoint.h"
#include "train/dpo_trainer.h"
#include "train/trainer_common.h"

static rlhf_status load_tokenizer(tokenizer **tok, const char *dir, const model *m, rlhf_err *err) {
    *tok = NULL;
    if (!model_dir_has_tokenizer(dir)) return RLHF_OK;
    RLHF_TRY(tokenizer_load(tok, dir, err));
    return tokenizer_check_model_vocab(*tok, m->cfg.vocab_size, dir, err);
}

static rlhf_status load_ref(model **ref, const char *dir, const model *policy, uint64_t seed, rlhf_err *err) {
    model_load_opts opts = {.quiet = 1, .init_seed = seed, .frozen = 1};  // bf16 stays bf16
    RLHF_TRY(peft_load_model_dir(ref, dir, HEAD_LM, NULL, &opts, err));
    if ((*ref)->cfg.vocab_size != policy->cfg.vocab_size)
        return rlhf_fail(err, RLHF_EINPUT,
                         "--ref_model_name_or_path %s has vocab_size %d but the policy has %d (expected the same "
                         "tokenizer and vocabulary)",
                         dir, (*ref)->cfg.vocab_size, policy->cfg.vocab_size);
    return RLHF_OK;
}

int cmd_dpo(int argc, char **argv) {
    const char *model_dir = NULL, *ref_dir = NULL, *data = NULL, *loss_type = NULL, *trunc_mode = NULL;
    long long pre_bs = 0, max_length = 0, max_prompt = 0, max_completion = 0;
    int precompute = 0;
    double beta = 0, label_smoothing = 0, rpo_alpha = 0, tau = 0;
    cli_peft_flags pf;
    memset(&pf, 0, sizeof pf);
    cli_trainer_flags tf;  // the TrainingArguments flags shared with reward and sft (cli/trainer_flags.h)
    memset(&tf, 0, sizeof tf);
    arg_spec specs[80] = {
        {"model_name_or_path", ARG_STRING, &model_dir, NULL, "causal-LM model directory (the policy to train)", NULL, 0},
        {"ref_model_name_or_path", ARG_STRING, &ref_dir, NULL,
         "reference model (default: a frozen copy of --model_name_or_path; with --use_peft the model with its "
         "adapters off)", NULL, 0},
        {"dataset_name", ARG_STRING, &data, NULL, "preference rows (the layouts `rlhf reward` reads; JSONL / JSON)", NULL, 0},
        {"beta", ARG_FLOAT, &beta, "0.1", "deviation from the reference (IPO: its tau)", NULL, 0},
        {"loss_type", ARG_STRING, &loss_type, "sigmoid", DPO_LOSS_TYPE_CHOICES, NULL, 0},
        {"label_smoothing", ARG_FLOAT, &label_smoothing, "0", "cDPO / robust / EXO label smoothing in [0, 0.5)", NULL, 0},
        {"rpo_alpha", ARG_FLOAT, &rpo_alpha, NULL, "weight of the NLL term on chosen responses (RPO; default: none)", NULL, 0},
        {"discopop_tau", ARG_FLOAT, &tau, "0.05", "DiscoPOP temperature", NULL, 0},
        {"max_length", ARG_INT, &max_length, "1024", "longest prompt + response in tokens", NULL, 0},
        {"max_prompt_length", ARG_INT, &max_prompt, "512", "longest prompt (keeps its end; 0 = no limit)", NULL, 0},
        {"max_completion_length", ARG_INT, &max_completion, "0", "longest response (keeps its start; 0 = no limit)", NULL, 0},
        {"truncation_mode", ARG_STRING, &trunc_mode, "keep_end", "keep_end|keep_start: what --max_length keeps", NULL, 0},
        {"precompute_ref_log_probs", ARG_BOOL, &precompute, "false",
         "compute the reference log-probs once before training and free the reference model", NULL, 0},
        {"precompute_ref_batch_size", ARG_INT, &pre_bs, "0", "pairs per precompute forward (0 = the train / eval batch size)", NULL, 0},
    };
    int n = 0;
    while (specs[n].name) n++;
    const int cap = (int)(sizeof specs / sizeof specs[0]) - 1;
    n = cli_trainer_flag_specs(specs, n, cap, &tf, "1e-6");  // TRL DPOConfig.learning_rate
    n = cli_peft_flag_specs(specs, n, cap, &pf, "train LoRA adapters instead of the full model; writes a peft adapter");
    rlhf_err err = {0};
    if (n > cap) return cli_report("dpo", RLHF_ERUNTIME, "internal error: more flags than the flag table holds");
    int parsed = cli_parse_flags("dpo",
                                 "usage: rlhf dpo --model_name_or_path DIR --dataset_name FILE --output_dir DIR [flags]\n"
                                 "  direct preference optimisation (TRL DPOTrainer) of a causal LM on preference pairs",
                                 specs, n, argc, argv);
    if (parsed >= 0) return parsed;
    const int has_rpo = args_find(specs, n, "rpo_alpha")->seen;
    dpo_args a;
    memset(&a, 0, sizeof a);
    const trainer_common_args *t = &a.common;
    a.loss.beta = beta, a.loss.label_smoothing = label_smoothing, a.loss.discopop_tau = tau;
    a.rpo_alpha = has_rpo ? rpo_alpha : NAN;
#define BAD(...) return cli_report("dpo", rlhf_fail(&err, RLHF_EINPUT, __VA_ARGS__), err.msg)
    if (!model_dir) BAD("--model_name_or_path is required");
    if (!data) BAD("--dataset_name is required");
    if (!tf.output_dir) BAD("--output_dir is required");
    rlhf_status st = cli_trainer_resume(&tf, &a.common, &err);
    if (st != RLHF_OK) return cli_report("dpo", st, err.msg);
    const char *out = tf.output_dir, *resume = t->resume_from;
    const char *load_dir = resume ? resume : model_dir;  // a checkpoint is a whole model directory
    st = dpo_loss_type_parse(loss_type, &a.loss.type, &err);
    if (st != RLHF_OK) return cli_report("dpo", st, err.msg);
    if (max_length < 1) BAD("--max_length must be >= 1, got %lld", max_length);
    if (max_prompt < 0) BAD("--max_prompt_length must be >= 0, got %lld", max_prompt);
    if (max_completion < 0) BAD("--max_completion_length must be >= 0, got %lld", max_completion);
    if (strcmp(trunc_mode, "keep_end") && strcmp(trunc_mode, "keep_start"))
        BAD("--truncation_mode: expected keep_end or keep_start, got '%s'", trunc_mode);
    if (!(beta > 0)) BAD("--beta must be > 0, got %g", beta);
    if (!(label_smoothing >= 0 && label_smoothing < 0.5)) BAD("--label_smoothing must be in [0, 0.5), got %g", label_smoothing);
    if (has_rpo && !(rpo_alpha >= 0)) BAD("--rpo_alpha must be >= 0, got %g", rpo_alpha);
    if (!(tau > 0)) BAD("--discopop_tau must be > 0, got %g", tau);
    if (pre_bs < 0) BAD("--precompute_ref_batch_size must be >= 0, got %lld", pre_bs);
    st = cli_trainer_check(&tf, &a.common, &err);
    if (st != RLHF_OK) return cli_report("dpo", st, err.msg);
    const int eval_on = t->eval_strategy != STRATEGY_NO;
    peft_options po;
    st = cli_peft_check_train(&pf, &po, &err);
    if (st == RLHF_OK && resume && dir_exists(resume)) st = cli_peft_check_resume(&pf, resume, &err);
    if (st != RLHF_OK) return cli_report("dpo", st, err.msg);
    a.base_model_name = model_dir;
    a.merge_adapter = pf.merge_adapter;
    if (file_exists(out) && !dir_exists(out)) BAD("--output_dir %s: exists and is not a directory", out);
    if (resume && !dir_exists(resume)) BAD("--resume_from_checkpoint %s: no such checkpoint directory", resume);
    if (ref_dir && !dir_exists(ref_dir)) BAD("--ref_model_name_or_path %s: no such model directory", ref_dir);
    if (dir_nonempty(out) && !t->overwrite_output_dir && !resume)
        BAD("--output_dir %s: exists and is not empty (use --overwrite_output_dir)", out);
#undef BAD
    cli_set_threads(tf.threads);

    dataset d, ed;
    memset(&d, 0, sizeof d);
    memset(&ed, 0, sizeof ed);
    model *m = NULL, *ref = NULL;
    tokenizer *tok = NULL;
    pref_set all, set, eval;
    memset(&all, 0, sizeof all);
    memset(&set, 0, sizeof set);
    memset(&eval, 0, sizeof eval);
    double *ref_train = NULL, *ref_eval = NULL;
    st = dataset_load(&d, data, &err);
    if (st == RLHF_OK && t->eval_dataset_name) st = dataset_load(&ed, t->eval_dataset_name, &err);
    if (st == RLHF_OK) {
        model_load_opts opts = {.quiet = 0, .init_seed = t->seed};
        if (pf.use_peft && resume) {
            peft_options quant = po;
            quant.use_peft = 0;
            st = peft_load_adapter_model(&m, load_dir, HEAD_LM, &quant, &opts, &err);
        } else if (pf.use_peft && peft_is_adapter_dir(load_dir)) {
            st = rlhf_fail(&err, RLHF_EINPUT, "--model_name_or_path %s is a peft adapter: new adapters start from a "
                           "full model (its base_model_name_or_path, or a merged model)", load_dir);
        } else if (pf.use_peft) {
            opts.peft = &po;
            st = model_load(&m, load_dir, HEAD_LM, &opts, &err);
        } else {
            st = peft_load_model_dir(&m, load_dir, HEAD_LM, NULL, &opts, &err);
        }
        if (st == RLHF_OK && !m->cfg.is_decoder)
            st = rlhf_fail(&err, RLHF_EINPUT, "--model_name_or_path %s: model_type '%s' is not a causal LM", load_dir,
                           m->cfg.model_type);
        if (st == RLHF_OK && pf.use_peft) cli_peft_notice("dpo", m);
        if (st == RLHF_OK) m->gradient_checkpointing = t->gradient_checkpointing;
    }
    if (st == RLHF_OK) st = load_tokenizer(&tok, load_dir, m, &err);
    if (st == RLHF_OK) {
        int eos = m->cfg.eos_token_id >= 0 ? m->cfg.eos_token_id : (tok ? tokenizer_eos_id(tok) : -1);
        int maxlen = (int)max_length;
        if (m->cfg.max_positions > 0 && maxlen > m->cfg.max_positions) maxlen = m->cfg.max_positions;
        pref_opts o;
        memset(&o, 0, sizeof o);
        o.tok = tok, o.vocab_size = m->cfg.vocab_size, o.max_length = maxlen, o.is_decoder = 1, o.eos_id = eos;
        o.bos_id = -1, o.model_dir = load_dir, o.dpo = 1, o.max_prompt_length = (int)max_prompt;
        o.max_completion_length = (int)max_completion, o.keep_start = !strcmp(trunc_mode, "keep_start");
        st = pref_set_build(&all, &d, &o, &err);
        if (st == RLHF_OK && t->eval_dataset_name) st = pref_set_build(&eval, &ed, &o, &err);
        if (st == RLHF_OK && t->eval_split > 0) {
            st = pref_set_split(&all, t->eval_split, t->seed, &set, &eval, &err);
        } else if (st == RLHF_OK) {
            set = all;
            memset(&all, 0, sizeof all);
        }
        if (st == RLHF_OK && set.n_truncated > 0 && !t->quiet)
            fprintf(stderr, "rlhf dpo: %d of %d training pairs truncated (--max_length %d, --max_prompt_length %lld)\n",
                    set.n_truncated, set.n, maxlen, max_prompt);
        a.eval = eval.n && eval_on ? &eval : NULL;
    }
    // The reference: a separate frozen model, or (peft) the policy with its adapters off.
    if (st == RLHF_OK && (ref_dir || !pf.use_peft)) {
        // without --use_peft, a resumed run's reference is still the starting model, not the checkpoint
        const char *rd = ref_dir ? ref_dir : model_dir;
        if (precompute && !ref_dir && !resume)
            ref = NULL;  // the policy before its first step is the reference: no copy needed
        else
            st = load_ref(&ref, rd, m, t->seed, &err);
    }
    if (st == RLHF_OK && precompute) {
        ref_train = malloc(sizeof(double) * 2 * (size_t)set.n);
        ref_eval = a.eval ? malloc(sizeof(double) * 2 * (size_t)eval.n) : NULL;
        if (!ref_train || (a.eval && !ref_eval)) st = rlhf_fail(&err, RLHF_ERUNTIME, "out of memory");
        model *rm = ref ? ref : m;
        int ipo = a.loss.type == DPO_IPO;
        if (st == RLHF_OK)
            st = dpo_reference_logps(rm, &set, pre_bs > 0 ? (int)pre_bs : t->train_batch_size, ipo, ref_train, &err);
        if (st == RLHF_OK && a.eval)
            st = dpo_reference_logps(rm, &eval, pre_bs > 0 ? (int)pre_bs : t->eval_batch_size, ipo, ref_eval, &err);
        model_free(ref);  // freed before training: only the policy stays in memory
        ref = NULL;
        a.ref_train = ref_train, a.ref_eval = ref_eval;
    }
    a.ref = ref;
    // every rank validated its inputs: all go on, or all stop with one message; then rank 0 makes the directory
    dist *dd = cli_dist();
    st = dist_agree(dd, st, &err);
    if (st == RLHF_OK && dist_is_main(dd)) st = make_dirs(out, &err);
    st = dist_agree(dd, st, &err);
    if (st == RLHF_OK) {
        a.dist = dd;
        a.stop = cli_stop_flag_install();
        dpo_result res;
        st = dpo_train(m, tok, &set, &a, &res, &err);
        cli_stop_flag_remove();
        if (st == RLHF_OK && a.eval)
            fprintf(stderr,
                    "rlhf dpo: %lld steps, final loss %.4f; eval_rewards/accuracies %.4f -> %.4f, eval_rewards/margins "
                    "%.4f -> %.4f; model written to %s\n",
                    res.global_step, res.last_loss, res.first_eval[DPO_M_REWARDS_ACCURACIES],
                    res.eval[DPO_M_REWARDS_ACCURACIES], res.first_eval[DPO_M_REWARDS_MARGINS],
                    res.eval[DPO_M_REWARDS_MARGINS], out);
        else if (st == RLHF_OK)
            fprintf(stderr, "rlhf dpo: %lld steps, final loss %.4f; model written to %s\n", res.global_step,
                    res.last_loss, out);
    }
    free(ref_train);
    free(ref_eval);
    pref_set_free(&all);
    pref_set_free(&set);
    pref_set_free(&eval);
    if (t->eval_dataset_name) dataset_free(&ed);
    tokenizer_free(tok);
    model_free(ref);
    model_free(m);
    dataset_free(&d);
    return cli_report("dpo", st, err.msg);
}
