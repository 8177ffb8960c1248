// rlhf: reward modelling and RLHF (PPO) for Hugging Face models. Dispatches to a command.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/cpu.h"
#include "cli/commands.h"
#include "cli/config_yaml.h"
#include "cli/signals.h"

static const rlhf_command COMMANDS[] = {
    {"tokenize", "encode texts with a Hugging Face tokenizer (tokenizer.json, vocab.txt, vocab.json+merges.txt, tokenizer.model)", cmd_tokenize},
    {"init", "create a randomly initialised model from a config.json (HF init)", cmd_init},
    {"reward", "train a reward model on preference pairs (pairwise loss)", cmd_reward},
    {"score", "score (prompt, response) pairs or a dataset with a reward model", cmd_score},
    {"sft", "supervised fine-tuning of a causal LM", cmd_sft},
    {"generate", "generate text with a causal LM (greedy or sampling, KV cache)", cmd_generate},
    {"ppo", "fine-tune a causal LM against a reward model with PPO", cmd_ppo},
    {"grpo", "fine-tune a causal LM with GRPO (group baseline; reward models, rules, reward programs)", cmd_grpo},
    {"rloo", "fine-tune a causal LM with RLOO (leave-one-out baseline, KL in the reward)", cmd_rloo},
    {"dpo", "direct preference optimisation of a causal LM on preference pairs (TRL DPOTrainer)", cmd_dpo},
    {"serve", "serve a reward model over HTTP (OpenRLHF's serve_rm: POST /get_reward)", cmd_serve},
};
#define N_COMMANDS (int)(sizeof COMMANDS / sizeof COMMANDS[0])
// The commands that train data-parallel under mpirun (base/dist.h); the others run in one process only.
static const char *const DATA_PARALLEL[] = {"reward", "sft", "ppo", "dpo", "grpo", "rloo"};

static int data_parallel(const char *name) {
    for (size_t i = 0; i < sizeof DATA_PARALLEL / sizeof *DATA_PARALLEL; i++)
        if (!strcmp(name, DATA_PARALLEL[i])) return 1;
    return 0;
}

static void usage(FILE *f) {
    fprintf(f, "usage: rlhf COMMAND [flags]   (rlhf COMMAND --help lists every flag with its default)\n\ncommands:\n");
    for (int i = 0; i < N_COMMANDS; i++) fprintf(f, "  %-10s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
}

// Debian 12's OpenBLAS (0.3.21) does not recognise recent Xeons (e.g. family 6 model 207) and falls back to
// a generic kernel about 5x slower than its SkylakeX (AVX-512) kernels. It reads OPENBLAS_CORETYPE once, when
// the library loads, so the only way to choose for the user is to set it and re-execute ourselves. A user's
// own OPENBLAS_CORETYPE always wins; RLHF_NO_REEXEC=1 turns this off.
//
// `rlhf serve` also gets OMP_WAIT_POLICY=PASSIVE (libgomp reads it once, at load, too): its forward's OpenMP
// threads share the cores with the connection threads, and threads spinning at the end of each parallel region
// make one request take a second instead of milliseconds once the machine is busy (bench/RESULTS.md).
static void choose_openblas_kernel(int argc, char **argv) {
    if (getenv("RLHF_NO_REEXEC")) return;
    int change = 0;
    if (argc > 1 && !strcmp(argv[1], "serve") && !getenv("OMP_WAIT_POLICY"))
        change |= setenv("OMP_WAIT_POLICY", "PASSIVE", 1) == 0;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (!getenv("OPENBLAS_CORETYPE") && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw"))
        change |= setenv("OPENBLAS_CORETYPE", "SkylakeX", 1) == 0;
#endif
    if (change) execv("/proc/self/exe", argv);  // returns only on failure: then carry on as we are
}

int main(int argc, char **argv) {
    choose_openblas_kernel(argc, argv);
    cpu_flush_denormals();
    cli_ignore_file_size_signal();
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        cli_print_version();
        return 0;
    }
    for (int i = 0; i < N_COMMANDS; i++) {
        if (strcmp(argv[1], COMMANDS[i].name)) continue;
        // Under mpirun every rank runs the same command; MPI starts only there (base/dist.h).
        dist *d = NULL;
        rlhf_err err;
        rlhf_err_clear(&err);
        if (dist_init(&d, &argc, &argv, &err) != RLHF_OK) return cli_report(COMMANDS[i].name, RLHF_ERUNTIME, err.msg);
        cli_dist_set(d);
        // --config FILE.yaml: the file's flags go in front of the command line's
        cli_config_argv cfg;
        int rc;
        rlhf_status st = cli_config_expand(argc - 1, argv + 1, &cfg, &err);
        if (st == RLHF_OK && dist_size(d) > 1 && !data_parallel(COMMANDS[i].name)) {
            cli_config_free(&cfg);
            st = rlhf_fail(&err, RLHF_EINPUT, "runs in one process: launch it without mpirun (the data-parallel "
                           "commands are reward, sft, ppo, dpo, grpo and rloo)");
        }
        if (st != RLHF_OK) {
            rc = cli_report(COMMANDS[i].name, st, err.msg);
        } else {
            rc = COMMANDS[i].run(cfg.argc, cfg.argv);
            cli_config_free(&cfg);
        }
        fflush(stdout);
        cli_report_own_failure(rc);
        dist_finalize(d, rc);  // a rank failing alone aborts the job here
        return rc;
    }
    fprintf(stderr, "rlhf: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
