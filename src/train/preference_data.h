// Preference data: turns dataset rows into token sequences BEFORE any training or scoring, so that a
// malformed row stops the run before anything is written. Every bad row is reported (FILE:LINE:
// reason), not only the first. Row layouts, as TRL accepts them:
//   explicit prompt   {"prompt": str, "chosen": str, "rejected": str}
//   implicit prompt   {"chosen": str, "rejected": str}   (HH-RLHF: prompt = common prefix up to the
//                     last "\n\nAssistant:", as the seed's extract_anthropic_prompt / TRL extract_prompt)
//   conversational    prompt/chosen/rejected as lists of {"role","content"} messages, or chosen/rejected
//                     full conversations; decoders render prompt + response with the model's chat
//                     template (tokenizer_config.json) as TRL does, else a plain "role: content\n" template
//   ShareGPT          {"conversations":[{"from","value"}..], "chosen":{..}, "rejected":{..}} (LLaMA-Factory)
//   pre-tokenized     {"chosen_ids":[..], "rejected_ids":[..]} (+ optional *_token_type_ids)
//   optional "margin": number (loss -logsigmoid(r_c - r_r - margin)).
// Scoring also accepts single responses: {"prompt", "response"} or {"input_ids", "token_type_ids"}.
#ifndef RLHF_TRAIN_PREFERENCE_DATA_H
#define RLHF_TRAIN_PREFERENCE_DATA_H

#include <stdint.h>

#include "base/error.h"
#include "io/dataset.h"
#include "tokenizer/tokenizer.h"

// The seed script's default: the longest sequence a row is truncated to.
#define PREF_DEFAULT_MAX_LENGTH 512
// Most malformed rows listed in one error message (the count of the rest follows).
#define PREF_MAX_REPORTED_ERRORS 20

// How an encoder reads (prompt, response): as a sentence pair (the seed scripts) or one text (TRL).
typedef enum { PREF_ENCODING_PAIR, PREF_ENCODING_CONCAT } pref_encoding;

typedef struct {
    int32_t *ids;       // (n)
    int32_t *type_ids;  // (n)
    int n;
} token_seq;

typedef struct {
    int is_pair;        // 1: chosen/rejected; 0: one response (scoring only)
    token_seq chosen;   // the response when !is_pair
    token_seq rejected;
    float margin;       // 0 when the row has none
    int line;           // line in the dataset file
    // DPO rows (pref_opts.dpo): chosen / rejected hold prompt + response (+ EOS) after truncation, and
    // these count the leading prompt tokens, which are read but not scored. 0 otherwise.
    int chosen_prompt_n, rejected_prompt_n;
} pref_row;

typedef struct {
    pref_row *rows;
    int n;
    int n_truncated;    // rows with at least one sequence shortened to max_length
    int has_margin;     // some row carried "margin"
    int n_plain_chat;   // rows with messages rendered by the plain "role: content\n" fallback (no chat template)
} pref_set;

typedef struct {
    const tokenizer *tok;   // NULL: only pre-tokenized rows are accepted
    int vocab_size;         // ids must be < this (the model's embedding rows)
    int type_vocab_size;    // token type ids must be < max(this, 1)
    int max_length;         // <= 0: no truncation
    pref_encoding encoding;
    int is_decoder;         // prompt + response + EOS as one text
    int eos_id;             // appended for decoders (-1: none)
    int bos_id;             // kept at the front when a decoder sequence is truncated (-1: none)
    int allow_single;       // scoring: rows with one response are accepted
    int allow_empty_response;  // single rows: an empty "response" is scored, not refused (a policy's empty
                               // completion still gets a reward: `rlhf serve`, remote rewards)
    const char *model_dir;  // for the "needs a tokenizer" message, and where a chat template is looked for
    // Decoders: conversational rows are rendered by this chat template (tokenizer/chat_template.h);
    // NULL = the one in model_dir's tokenizer_config.json, if any, unless no_chat_template is set,
    // else the plain "role: content\n" template.
    const struct chat_template *chat;
    int no_chat_template;
    // DPO (TRL DPOTrainer.tokenize_row): prompt and each response are tokenized separately without
    // special tokens (a chat template writes its own), EOS (eos_id) follows each response; the prompt
    // keeps its last max_prompt_length tokens, a response its first max_completion_length, then prompt +
    // response over max_length keeps its first (keep_start) or last (keep_end) max_length tokens, as
    // TRL's concatenated_forward truncates. Conversational rows need a chat template (none: an error, as
    // transformers refuses). Pre-tokenized rows: {"prompt_input_ids", "chosen_input_ids",
    // "rejected_input_ids"} (TRL's tokenized columns; "prompt_ids", "chosen_ids", "rejected_ids" too),
    // used as given; without prompt ids the prompt is the two sequences' common start.
    int dpo;
    int max_prompt_length;      // <= 0: none
    int max_completion_length;  // <= 0: none
    int keep_start;             // truncation_mode keep_start (1) or keep_end (0)
} pref_opts;

// Encodes every row of d. On any malformed row: RLHF_EINPUT with every bad row listed as
// "FILE:LINE: reason" (up to PREF_MAX_REPORTED_ERRORS, then a count), and *out left empty.
rlhf_status pref_set_build(pref_set *out, const dataset *d, const pref_opts *o, rlhf_err *err);
void pref_set_free(pref_set *s);

// Splits all into train and eval: ceil(fraction * n) rows drawn by a permutation keyed by seed
// (RNG_STREAM_SPLIT) go to eval, as datasets' train_test_split(test_size=fraction, seed) carves a
// held-out set. Rows move (all is left empty). fraction in (0, 1); both parts must be non-empty.
rlhf_status pref_set_split(pref_set *all, double fraction, uint64_t seed, pref_set *train, pref_set *eval,
                           rlhf_err *err);

// The prompt TRL/the seed extract from an implicit-prompt pair: the common prefix of chosen and
// rejected, cut after its last "\n\nAssistant:" when it holds one (HH-RLHF), else at the first
// difference minus a trailing space (TRL extract_prompt), never inside a UTF-8 character. Returns
// the prompt's length in bytes.
size_t pref_implicit_prompt_len(const char *chosen, const char *rejected);

#endif
