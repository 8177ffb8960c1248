// The rewards of grpo and rloo, behind one small interface: a reward function scores a batch of (prompt,
// completion, dataset row) items into one float each, NaN meaning "no reward for this sample" (TRL's None).
// Kinds: a reward model (a local directory: any family and tokenizer, or one reading the policy's ids; or a
// URL, through train/reward_source.h's remote client), the built-in rules with TRL's names (accuracy_reward,
// think_format_reward: reward_rules.c) and reward programs in any language ("exec:COMMAND",
// reward_exec.c). ppo scores with the same rm_scorer. A new kind is one more constructor filling the struct.
#ifndef RLHF_TRAIN_REWARD_FUNCS_H
#define RLHF_TRAIN_REWARD_FUNCS_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "base/error.h"
#include "models/model.h"
#include "tokenizer/tokenizer.h"
#include "train/preference_data.h"

typedef struct {
    const char *prompt_text;        // the prompt as the dataset gave it, rendered (NULL on the id route)
    const int32_t *prompt_ids;      // the policy's prompt tokens
    int prompt_n;
    const char *completion_text;    // decoded with the policy tokenizer, stop token excluded (NULL: no tokenizer)
    const int32_t *completion_ids;  // stop token excluded
    int completion_n;
    const cJSON *row;               // the dataset row (NULL when not kept)
    int line;                       // its line in the dataset file
} reward_item;

typedef struct reward_fn reward_fn;
struct reward_fn {
    char name[96];  // logged as rewards/<name>/mean and /std (TRL: the function's __name__ / model's basename)
    // out (n): one reward per item, NaN for none. Errors name the source and the item.
    rlhf_status (*score)(reward_fn *s, const reward_item *items, int n, float *out, rlhf_err *err);
    void (*destroy)(reward_fn *s);
};
void reward_fn_free(reward_fn *s);  // NULL-safe

// ---- reward models --------------------------------------------------------------------------------
// How a sequence-classification model reads (prompt, completion), as `rlhf score` does: decoders get
// prompt + completion + EOS; encoders a sentence pair (or one text with PREF_ENCODING_CONCAT). With its
// own tokenizer the completion is decoded with the policy's and re-encoded (GPT-2 policy, BERT reward
// model); without tokenizer files it reads the policy's ids. 1-label heads give the logit, 2-label heads
// the probability of label 1 (train/trainer_common.h reward_read).
typedef struct {
    model *m;
    const tokenizer *tok;         // the reward model's own tokenizer; NULL: it reads the policy's ids
    const tokenizer *policy_tok;  // to decode completions (needed when tok is set)
    int eos;                      // appended after a decoder's input (-1: none)
    int max_len;                  // the model's positions (0: unbounded); decoders keep the input's tail
    pref_encoding encoding;
    const char *dataset_name;     // for messages
} rm_scorer;
// Scores n items in one batched forward.
rlhf_status rm_scorer_score(const rm_scorer *s, const reward_item *items, int n, float *out, rlhf_err *err);

// A reward source owning a reward model loaded from dir (4-bit when quant is not NULL) and its tokenizer.
// Checks the vocabulary against the policy's when the ids are read directly. encoding: --encoding (pair or
// concat; NULL: the one recorded with the model, else pair). A checkpoint without a score head (a base or
// causal-LM model, whose head would be random) is refused unless allow_new_head, as ppo refuses it.
rlhf_status reward_model_fn_open(reward_fn **out, const char *dir, const tokenizer *policy_tok,
                                     int policy_vocab, const char *encoding, const struct peft_options *quant,
                                     uint64_t seed, int allow_new_head, const char *dataset_name, rlhf_err *err);

// ---- rules (reward_rules.c) -----------------------------------------------------------------------
// "accuracy_reward": the row's "solution" against the completion's final answer (\boxed{...}, GSM8K's
// "#### N", else the last number), numbers compared as numbers; 1 or 0, NaN when the solution has no
// answer. "think_format_reward": 1 when the completion is "<think>...</think>..." with one <think>.
// Returns RLHF_EINPUT for another name. needs_solution: 1 for accuracy_reward.
rlhf_status reward_rule_open(reward_fn **out, const char *name, rlhf_err *err);
int reward_rule_exists(const char *name);
// The pieces, for tests: the final answer of a text (malloc'd, NULL when none) and whether two answers
// agree (numbers as numbers, else normalised strings).
char *reward_extract_answer(const char *text, int is_solution);
int reward_answers_match(const char *gold, const char *answer);
int reward_think_format(const char *completion);

// A reward model at a URL (`rlhf serve`, OpenRLHF's serve_rm): the (prompt, completion) texts posted through
// train/reward_source.h's remote client (its retries and timeouts); named after the URL's host:port.
rlhf_status reward_remote_fn_open(reward_fn **out, const char *url, rlhf_err *err);

// ---- programs (reward_exec.c) ---------------------------------------------------------------------
// "exec:COMMAND ARGS": COMMAND is started once through /bin/sh -c and kept running. For each item it
// gets one JSON line on stdin: {"prompt": ..., "completion": ..., "completion_ids": [...], <the row's
// other fields>} and answers one line on stdout: a number, or null (no reward). A program that exits,
// answers anything else, or takes longer than timeout_s seconds for one line is RLHF_ERUNTIME naming
// the program and the line it was given (it is then killed).
rlhf_status reward_exec_open(reward_fn **out, const char *command, double timeout_s, rlhf_err *err);

#endif
