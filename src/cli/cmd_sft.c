// `rlhf sft`: supervised fine-tuning of a causal LM on {"prompt", "completion"} or {"text"} rows (or
// their pre-tokenized forms). Validates every flag and row before writing anything.
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/peft_flags.h"
#include "cli/signals.h"
#include "cli/trainer_flags.h"
#include "io/dataset.h"
#include "io/files.h"
#include "models/peft.h"
#include "tokenizer/chat_template.h"
#include "train/checkpoint.h"
#include "train/sft.h"

#define SFT_DEFAULT_LR "2e-5"        // TRL SFTConfig.learning_rate
#define SFT_DEFAULT_MAX_LENGTH "1024" // TRL SFTConfig.max_length

int cmd_sft(int argc, char **argv) {
    const char *model_dir = NULL, *data = NULL, *text_field = NULL, *prompt_field = NULL, *completion_field = NULL;
    long long max_length = 0;
    cli_peft_flags pf;
    memset(&pf, 0, sizeof pf);
    cli_trainer_flags tf;  // the TrainingArguments flags sft and reward share (cli/trainer_flags.h)
    memset(&tf, 0, sizeof tf);
    arg_spec specs[64] = {
        {"model_name_or_path", ARG_STRING, &model_dir, NULL, "causal-LM model directory", NULL, 0},
        {"dataset_name", ARG_STRING, &data, NULL, "JSONL / JSON rows in one of the layouts listed above", NULL, 0},
        {"dataset_text_field", ARG_STRING, &text_field, "text", "the field of {TEXT} rows (TRL's name)", NULL, 0},
        {"prompt_field", ARG_STRING, &prompt_field, "prompt", "the prompt field of prompt/completion rows", NULL, 0},
        {"completion_field", ARG_STRING, &completion_field, "completion", "the completion field of prompt/completion rows",
         NULL, 0},
        {"max_length", ARG_INT, &max_length, SFT_DEFAULT_MAX_LENGTH, "truncate examples to this many tokens", NULL, 0},
    };
    int n = 0;
    while (specs[n].name) n++;
    const int cap = (int)(sizeof specs / sizeof specs[0]) - 1;  // the table keeps a terminating empty row
    n = cli_trainer_flag_specs(specs, n, cap, &tf, SFT_DEFAULT_LR);
    n = cli_peft_flag_specs(specs, n, cap, &pf, "train LoRA adapters instead of the full model; writes a peft adapter");
    rlhf_err err = {0};
    if (n > cap) return cli_report("sft", RLHF_ERUNTIME, "internal error: more flags than the flag table holds");
    int parsed = cli_parse_flags("sft", "usage: rlhf sft --model_name_or_path DIR --dataset_name FILE --output_dir DIR [flags]\n"
                        "  causal-LM fine-tuning, as TRL's SFTTrainer. Dataset rows, the first layout that fits:\n"
                        "    {\"messages\": [{\"role\", \"content\"}, ...]}  the model's chat template; loss on every token\n"
                        "    {\"prompt\": [msgs], \"completion\": [msgs]}  chat template; loss on the completion\n"
                        "    {\"prompt_ids\", \"completion_ids\"}          pre-tokenized; {\"input_ids\"}: loss on every token\n"
                        "    {\"prompt\", \"completion\"}                  loss on the completion (--prompt_field, --completion_field)\n"
                        "    {\"text\"}                                  loss on every token (--dataset_text_field)\n"
                        "    {\"instruction\", \"input\", \"output\"}        Alpaca: prompt in Stanford Alpaca's template; loss on output\n"
                        "    {\"question\", \"answer\"}                    loss on the answer\n"
                        "  EOS is appended to every example (chat templates write their own).", specs, n, argc, argv);
    if (parsed >= 0) return parsed;
    sft_args a = {0};
    const trainer_common_args *t = &a.common;
#define BAD(...) return cli_report("sft", rlhf_fail(&err, RLHF_EINPUT, __VA_ARGS__), err.msg)
    if (!model_dir) BAD("--model_name_or_path is required");
    if (!data) BAD("--dataset_name is required");
    if (!tf.output_dir) BAD("--output_dir is required");
    rlhf_status st = cli_trainer_resume(&tf, &a.common, &err);
    if (st != RLHF_OK) return cli_report("sft", st, err.msg);
    const char *out = tf.output_dir, *resume = t->resume_from;
    const char *load_dir = resume ? resume : model_dir;  // a checkpoint is a whole model directory
    if (max_length < 1) BAD("--max_length must be >= 1, got %lld", max_length);
    st = cli_trainer_check(&tf, &a.common, &err);
    if (st != RLHF_OK) return cli_report("sft", st, err.msg);
    peft_options po;
    st = cli_peft_check_train(&pf, &po, &err);
    if (st == RLHF_OK && resume && dir_exists(resume)) st = cli_peft_check_resume(&pf, resume, &err);
    if (st != RLHF_OK) return cli_report("sft", st, err.msg);
    a.base_model_name = model_dir;
    a.merge_adapter = pf.merge_adapter;
    if (file_exists(out) && !dir_exists(out)) BAD("--output_dir %s: exists and is not a directory", out);
    if (resume && !dir_exists(resume)) BAD("--resume_from_checkpoint %s: no such checkpoint directory", resume);
    if (dir_nonempty(out) && !t->overwrite_output_dir && !resume)
        BAD("--output_dir %s: exists and is not empty (use --overwrite_output_dir)", out);
#undef BAD
    cli_set_threads(tf.threads);

    dataset d;
    memset(&d, 0, sizeof d);
    model *m = NULL;
    tokenizer *tok = NULL;
    chat_template *chat = NULL;
    sft_set set, eval;
    memset(&set, 0, sizeof set);
    memset(&eval, 0, sizeof eval);
    dataset ed;
    memset(&ed, 0, sizeof ed);
    st = dataset_load(&d, data, &err);
    if (st == RLHF_OK && t->eval_dataset_name) st = dataset_load(&ed, t->eval_dataset_name, &err);
    if (st == RLHF_OK) {
        model_load_opts opts = {.quiet = 0, .init_seed = t->seed};
        if (pf.use_peft && resume) {
            // The checkpoint is an adapter: its base with the adapter applied, quantized as the flags say.
            peft_options quant = po;
            quant.use_peft = 0;
            st = peft_load_adapter_model(&m, load_dir, HEAD_LM, &quant, &opts, &err);
        } else if (pf.use_peft && peft_is_adapter_dir(load_dir)) {
            st = rlhf_fail(&err, RLHF_EINPUT, "--model_name_or_path %s is a peft adapter: new adapters start from a "
                           "full model (its base_model_name_or_path, or a merged model)", load_dir);
        } else {
            // With --use_peft the adapters are set up while loading (4-bit weights never held in fp32).
            opts.peft = pf.use_peft ? &po : NULL;
            st = model_load(&m, load_dir, HEAD_LM, &opts, &err);
        }
        if (st == RLHF_OK && pf.use_peft) cli_peft_notice("sft", m);
        if (st == RLHF_OK) st = model_set_torch_dtype(m, t->torch_dtype, &err);  // the saved model's dtype
        if (st == RLHF_OK) m->gradient_checkpointing = t->gradient_checkpointing;
    }
    if (st == RLHF_OK) {
        if (tokenizer_files_present(load_dir)) st = tokenizer_load(&tok, load_dir, &err);
        if (st == RLHF_OK && tok) st = tokenizer_check_model_vocab(tok, m->cfg.vocab_size, load_dir, &err);
    }
    if (st == RLHF_OK) {
        int eos = m->cfg.eos_token_id >= 0 ? m->cfg.eos_token_id : (tok ? tokenizer_eos_id(tok) : -1);
        int maxlen = (int)max_length;
        if (m->cfg.model_type[0] && !strcmp(m->cfg.model_type, "gpt2") && m->cfg.max_positions > 0 &&
            (maxlen <= 0 || maxlen > m->cfg.max_positions))
            maxlen = m->cfg.max_positions;  // learned positions: longer inputs cannot be embedded
        if (tok) st = chat_template_load_dir(&chat, load_dir, &err);
        sft_fields fields = {text_field, prompt_field, completion_field};
        if (st == RLHF_OK)
            st = sft_set_load_fields(&set, &d, tok, m->cfg.vocab_size, eos, maxlen, chat, load_dir, &fields, &err);
        if (st == RLHF_OK && t->eval_dataset_name)
            st = sft_set_load_fields(&eval, &ed, tok, m->cfg.vocab_size, eos, maxlen, chat, load_dir, &fields, &err);
        if (st == RLHF_OK && t->eval_split > 0) st = sft_set_split(&set, &eval, t->eval_split, t->seed, &err);
        a.eval = eval.n && t->eval_strategy != STRATEGY_NO ? &eval : NULL;
    }
    // every rank validated its inputs: all go on, or all stop with one message; then rank 0 makes the directory
    dist *dd = cli_dist();
    st = dist_agree(dd, st, &err);
    if (st == RLHF_OK && dist_is_main(dd)) st = make_dirs(out, &err);
    st = dist_agree(dd, st, &err);
    if (st == RLHF_OK) {
        a.dist = dd;
        a.stop = cli_stop_flag_install();
        sft_result res;
        st = sft_train(m, tok, &set, &a, &res, &err);
        cli_stop_flag_remove();
        if (st == RLHF_OK && a.eval)
            fprintf(stderr, "rlhf sft: %lld steps, final loss %.4f, eval loss %.4f -> %.4f; model written to %s\n",
                    res.global_step, res.last_loss, res.first_eval_loss, res.eval_loss, out);
        else if (st == RLHF_OK)
            fprintf(stderr, "rlhf sft: %lld steps, final loss %.4f; model written to %s\n", res.global_step,
                    res.last_loss, out);
    }
    sft_set_free(&set);
    sft_set_free(&eval);
    if (t->eval_dataset_name) dataset_free(&ed);
    chat_template_free(chat);
    tokenizer_free(tok);
    model_free(m);
    dataset_free(&d);
    return cli_report("sft", st, err.msg);
}
