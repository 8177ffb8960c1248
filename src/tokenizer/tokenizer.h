// Public interface of the Hugging Face `tokenizers` pipeline (tokenizer.json, or the BERT / GPT-2 /
// RoBERTa vocabulary-file fallbacks): encode text (and an optional pair) to ids exactly as
// `tokenizer(text, pair, add_special_tokens=...)` does, and decode ids back as `tokenizer.decode`.
// A loaded tokenizer is immutable, so encode/decode may run concurrently from many threads.
#ifndef RLHF_TOKENIZER_TOKENIZER_H
#define RLHF_TOKENIZER_TOKENIZER_H

#include <stdint.h>

#include "base/error.h"

typedef struct tokenizer tokenizer;             // immutable after load; encode/decode are thread-safe
typedef enum { TRUNC_LONGEST_FIRST, TRUNC_ONLY_FIRST, TRUNC_ONLY_SECOND } tok_truncation;
typedef struct {
    int32_t *ids, *type_ids, *attention_mask;   // n each, malloc'd; free with tok_encoding_free
    int n;
    int truncated;                              // 1 if tokens were dropped by max_length
} tok_encoding;
// Loads DIR/tokenizer.json, else BERT vocab.txt (+tokenizer_config.json), else vocab.json+merges.txt, else a
// SentencePiece tokenizer.model / spm.model converted as transformers does (Llama, Gemma, DeBERTa-v2 classes).
rlhf_status tokenizer_load(tokenizer **out, const char *dir, rlhf_err *err);
void tokenizer_free(tokenizer *t);
// 1 when DIR holds a file tokenizer_load reads (tokenizer.json, vocab.txt, vocab.json, tokenizer.model, spm.model):
// commands that work without a tokenizer use this to tell "none" from "one that fails to load".
int tokenizer_files_present(const char *dir);
// Encodes text (and pair, NULL for none) as HF `tokenizer(text, pair, add_special_tokens=...)`; UTF-8 is
// validated (invalid -> RLHF_EINPUT "invalid UTF-8 at byte N"). max_length <= 0: no truncation.
rlhf_status tokenizer_encode(const tokenizer *t, const char *text, const char *pair, int add_special_tokens,
                             int max_length, tok_truncation strategy, tok_encoding *out, rlhf_err *err);
void tok_encoding_free(tok_encoding *e);
// Decodes ids to a malloc'd UTF-8 string as HF decode(ids, skip_special_tokens): the tokenizers decoder, then
// transformers' clean_up_tokenization when tokenizer_config.json's clean_up_tokenization_spaces is true (absent:
// true, the transformers 4.44 default). tokenizer_decode_n below is the tokenizers decoder alone.
rlhf_status tokenizer_decode(const tokenizer *t, const int32_t *ids, int n, int skip_special_tokens, char **out,
                             rlhf_err *err);
int tokenizer_vocab_size(const tokenizer *t);           // including added tokens
// Fails (RLHF_EINPUT) when the tokenizer can produce ids the model cannot embed (any id >= model_vocab,
// the model's config.json vocab_size): transformers would raise IndexError mid-forward on the first such
// token. The message names the tokenizer file and model_dir/config.json. A tokenizer smaller than the
// model is fine (embedding tables are often padded, e.g. 50257 tokens for 50304 rows).
rlhf_status tokenizer_check_model_vocab(const tokenizer *t, int model_vocab, const char *model_dir, rlhf_err *err);
int tokenizer_token_to_id(const tokenizer *t, const char *token);   // -1 if absent
// Special ids from tokenizer.json added tokens + tokenizer_config.json / special_tokens_map.json; -1 if none.
int tokenizer_pad_id(const tokenizer *t);
int tokenizer_eos_id(const tokenizer *t);
int tokenizer_bos_id(const tokenizer *t);
int tokenizer_is_special(const tokenizer *t, int32_t id);
// Copies the tokenizer files it was loaded from (tokenizer.json, vocab.*, merges.txt, tokenizer_config.json,
// special_tokens_map.json) into dir, atomically.
rlhf_status tokenizer_save(const tokenizer *t, const char *dir, rlhf_err *err);

// ---- additions beyond the cross-team API ----

// Parses a tokenizer.json held in memory (json: NUL-terminated text of len bytes). what names the source in
// error messages. Used by the loader and by the fuzzer.
rlhf_status tokenizer_load_json(tokenizer **out, const char *json, const char *what, rlhf_err *err);
// tokenizer_encode for texts that may contain NUL bytes (explicit byte lengths; pair NULL for none).
rlhf_status tokenizer_encode_n(const tokenizer *t, const char *text, size_t text_len, const char *pair, size_t pair_len,
                               int add_special_tokens, int max_length, tok_truncation strategy, tok_encoding *out,
                               rlhf_err *err);
// cJSON strings end at the first NUL, so a JSON "\u0000" would cut a text short. tok_json_protect_nul returns a
// malloc'd copy of a JSON text with every \u0000 escape rewritten to U+10FFFF (a noncharacter); after parsing,
// tok_json_restore_nul turns those back into NUL bytes in place and returns the string's byte length.
char *tok_json_protect_nul(const char *json);
size_t tok_json_restore_nul(char *s);
// The tokenizers (Rust core) decode alone, with the byte length (decoded text may contain NUL bytes).
rlhf_status tokenizer_decode_n(const tokenizer *t, const int32_t *ids, int n, int skip_special_tokens, char **out,
                               size_t *len, rlhf_err *err);
// Token string of id (NULL if out of range); the pointer lives as long as t.
const char *tokenizer_id_to_token(const tokenizer *t, int32_t id);
// Pads e in place to length (or to the next multiple of pad_to_multiple_of when > 0, whichever is larger)
// with pad_id / pad_type_id and attention 0; left != 0 pads on the left, as HF padding_side="left".
rlhf_status tok_encoding_pad(tok_encoding *e, int length, int pad_to_multiple_of, int32_t pad_id,
                             int32_t pad_type_id, int left, rlhf_err *err);

#endif
