// Pieces shared by the trainers and the scorer: padding a list of token sequences into one batch
// (dynamic padding: the longest in the batch, never max_length), reading a reward from a
// sequence-classification head, and the pairwise forward/backward of a batch of preference pairs.
#ifndef RLHF_TRAIN_TRAINER_COMMON_H
#define RLHF_TRAIN_TRAINER_COMMON_H

#include <stdint.h>

#include "base/error.h"
#include "models/model.h"
#include "train/preference_data.h"

// A right-padded batch: real tokens first, then padding with attention_mask 0. Decoder families pool
// the last real token through the mask, so right padding serves them too.
typedef struct {
    int B, T;
    int32_t *input_ids;       // (B, T)
    int32_t *attention_mask;  // (B, T)
    int32_t *token_type_ids;  // (B, T)
} padded_batch;

// seqs: B pointers to sequences. pad_id fills padding positions (masked out, so its value only has to
// be a valid row of the embedding).
rlhf_status batch_collate(padded_batch *b, const token_seq *const *seqs, int B, int pad_id, rlhf_err *err);
void padded_batch_free(padded_batch *b);

// The id used for padding: the config's pad_token_id, else 0 (always masked out).
int model_pad_id(const model *m);

// The reward as the contract reads it: a 1-label head gives its logit, a 2-label head the softmax
// probability of label 1 (the seed's PPO script). row: num_labels scores.
double reward_read(const float *row, int num_labels);

// The reward the pairwise loss trains. 1 label: the logit. 2 labels: logit1 - logit0, the log-odds of
// label 1, which is monotone in the read reward (softmax p1 = sigmoid(logit1 - logit0)), so the
// trained order is the scored order. (TRL's RewardTrainer subtracts whole logit rows and averages,
// i.e. trains both columns as separate rewards, which leaves p1 untied to the preference.)
float reward_train_value(const float *row, int num_labels);
// d(reward_train_value)/d(row) * g, accumulated into drow.
void reward_train_backward(float *drow, float g, int num_labels);

// Metrics of one forward over P pairs.
typedef struct {
    double loss;        // mean pairwise loss (with center term)
    int correct;        // pairs with read reward chosen > rejected
    double margin_sum;  // sum of read (chosen - rejected)
    int P;
} pair_metrics;

// Forward of P pairs (rows[0..P) of set, by index idx) as one 2P-row batch: chosen rows first, then
// rejected. Fills metrics; with want_backward, backpropagates the loss scaled by grad_scale into
// m->grads. training: dropout on with dropout_key. gpos: NULL, or (data-parallel) pair p's place in the
// global micro-batch of GP pairs whose longest side is GT tokens: each row then gets the dropout mask it gets
// when one process runs the whole micro-batch (chosen rows 0..GP, rejected rows GP..2GP).
typedef struct {
    const int *gpos;
    int GP, GT;
} pair_places;
rlhf_status pairs_forward_backward(model *m, const pref_set *set, const int *idx, int P, int pad_id,
                                   float center_coef, int training, uint64_t dropout_key, const pair_places *places,
                                   int want_backward, float grad_scale, pair_metrics *metrics, rlhf_err *err);

// ---- loading a reward model -------------------------------------------------------------------

// 1 if dir holds tokenizer files (tokenizer.json, vocab.txt or vocab.json).
int model_dir_has_tokenizer(const char *dir);

// Loads dir as a sequence-classification model (1 or 2 labels: the contract's reward readings) and its
// tokenizer when dir has tokenizer files (*tok NULL otherwise: only pre-tokenized rows can be read),
// frozen for scoring (model_load_opts.frozen: no_grad, a bf16 checkpoint kept bf16).
rlhf_status reward_model_load(model **m, tokenizer **tok, const char *dir, uint64_t init_seed, rlhf_err *err);
// The same with adapters / a 4-bit base applied while loading (models/peft.h; NULL = none).
struct peft_options;
rlhf_status reward_model_load_peft(model **m, tokenizer **tok, const char *dir, uint64_t init_seed,
                                   const struct peft_options *peft, rlhf_err *err);
// A reward model that only scores (score, a local reward source): frozen as reward_model_load, with
// quant's 4-bit settings (NULL = none).
rlhf_status reward_model_load_scoring(model **m, tokenizer **tok, const char *dir, const struct peft_options *quant,
                                      rlhf_err *err);

// Encoding options for m: vocabulary bounds, EOS/BOS for decoders, max_length clamped to the model's
// positions (max_length <= 0: the model's limit).
void pref_opts_for_model(pref_opts *o, const model *m, const tokenizer *tok, int max_length, pref_encoding enc,
                         const char *model_dir);

// How a reward model reads (prompt, response) is saved with it (config.json, an extra field that
// transformers ignores), so `score` and `ppo` read pairs the way the model was trained.
#define REWARD_ENCODING_CONFIG_KEY "rlhf_reward_encoding"
rlhf_status reward_encoding_record(model *m, pref_encoding enc, rlhf_err *err);
// The recorded encoding, or def when the config has none.
pref_encoding reward_encoding_of(const model *m, pref_encoding def);
// Parses --encoding (NULL: the model's recorded encoding, else pair).
rlhf_status reward_encoding_parse(const char *flag_value, const model *m, pref_encoding *out, rlhf_err *err);
// The max_length a reward model was trained with, saved the same way, so that `score` reads sequences as
// long as training did (a model that records none: 0).
#define REWARD_MAX_LENGTH_CONFIG_KEY "rlhf_max_length"
rlhf_status reward_max_length_record(model *m, int max_length, rlhf_err *err);
int reward_max_length_of(const model *m);

// ---- the NaN/Inf guard of an optimizer step (reward, sft, dpo) ---------------------------------------

// Steps skipped in a row (non-finite loss or gradient norm) after which the run is declared diverged:
// fp32 training has no loss scaler to recover, so a streak means the weights themselves went bad.
#define TRAINER_MAX_CONSECUTIVE_SKIPS 20
// Before optimizer step `step` (0-based): with a finite loss and gradient norm sets *take and resets
// *streak; else counts the skip in *skipped and, when notice, prints "rlhf COMMAND: step N: non-finite ...
// step skipped" to stderr (after a newline when newline: a progress bar is drawn). RLHF_ERUNTIME once
// TRAINER_MAX_CONSECUTIVE_SKIPS steps in a row were skipped.
rlhf_status trainer_skip_guard(const char *command, double loss, double norm, long long step, int notice,
                               int newline, int *streak, long long *skipped, int *take, rlhf_err *err);

#endif
