// Internal types shared by the tokenizer files: growable buffers, hash maps, and the component
// structs (normalizer, pre-tokenizer, model, added vocabulary, post-processor, decoder) that
// tokenizer_json.c builds from a tokenizer.json tree and tokenizer.c runs. Nothing here is mutated
// after loading, which is what makes encode/decode thread-safe; per-call state lives in tok_scratch.
#ifndef RLHF_TOKENIZER_TOK_INTERNAL_H
#define RLHF_TOKENIZER_TOK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "base/error.h"
#include "tokenizer/tokenizer.h"

// ---- growable buffers (util.c); functions return 0 on success, -1 when out of memory ----
typedef struct {
    char *p;
    size_t n, cap;
} tbuf;
int tk_tbuf_reserve(tbuf *b, size_t extra);
int tk_tbuf_put(tbuf *b, const char *s, size_t n);
int tk_tbuf_putc(tbuf *b, char c);
int tk_tbuf_put_cp(tbuf *b, uint32_t cp);   // appends one code point as UTF-8
void tk_tbuf_free(tbuf *b);

typedef struct {
    int32_t *p;
    int n, cap;
} ivec;
int tk_ivec_push(ivec *v, int32_t x);
int tk_ivec_reserve(ivec *v, int extra);
void tk_ivec_free(ivec *v);

// String -> int32 open-addressing map; keys are borrowed (must outlive the map).
typedef struct {
    const char **keys;
    uint32_t *klen;
    int32_t *vals;
    size_t cap, n;
} strmap;
int tk_strmap_init(strmap *m, size_t expected);
int tk_strmap_put(strmap *m, const char *k, size_t len, int32_t v);   // overwrites an existing key
int32_t tk_strmap_get(const strmap *m, const char *k, size_t len);     // -1 if absent
void tk_strmap_free(strmap *m);

// (left id, right id) -> (rank, merged id) map for BPE merges.
typedef struct {
    uint64_t *keys;   // (a << 32 | b) + 1; 0 marks an empty slot
    int32_t *rank, *id;
    size_t cap, n;
} pairmap;
int tk_pairmap_init(pairmap *m, size_t expected);
int tk_pairmap_put(pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t id);   // overwrites, as HF's collect
int tk_pairmap_get(const pairmap *m, int32_t a, int32_t b, int32_t *rank, int32_t *id);   // 1 if found
void tk_pairmap_free(pairmap *m);

uint64_t tok_hash(const char *s, size_t n);

// tokenizer.json field access: a string field (NULL if missing/null/not a string), a bool field
// (def if missing or null), and the "type" of a component with an error naming what when absent.
const char *tk_tj_str(const cJSON *j, const char *key);
int tk_tj_bool(const cJSON *j, const char *key, int def);
rlhf_status tk_tj_type(const cJSON *j, const char **type, const char *what, rlhf_err *err);
char *tok_strndup(const char *s, size_t n);

// ---- UTF-8 (utf8.c) ----
// Returns n when s[0..n) is valid UTF-8 (as Rust's str), else the byte offset of the first invalid sequence.
size_t tk_utf8_valid_prefix(const char *s, size_t n);
// Decodes the code point at s[*i] (s valid UTF-8) and advances *i.
uint32_t tk_utf8_next(const char *s, size_t n, size_t *i);
// Length in bytes of the UTF-8 sequence starting with lead byte c (1 for invalid leads).
int tk_utf8_len(unsigned char c);
// Appends s[0..n) to out as Rust's String::from_utf8_lossy: each maximal invalid subpart -> U+FFFD.
int tk_utf8_lossy(tbuf *out, const unsigned char *s, size_t n);
// GPT-2 byte-to-unicode table: the code point standing for byte b, and the reverse (-1 if none).
uint32_t tk_bytelevel_cp(unsigned char b);
int tk_bytelevel_byte(uint32_t cp);
// UTF-8 of tk_bytelevel_cp(b): [0] = length (1 or 2), then the bytes.
const unsigned char *tk_bytelevel_utf8(unsigned char b);
// Rust char predicates (Unicode): char::is_whitespace, is_alphanumeric, is_numeric, punctuation as
// BERT's is_punctuation (ASCII punctuation or a P* category), \w as the regex crate defines it.
int tk_uc_is_whitespace(uint32_t cp);
int tk_uc_is_numeric(uint32_t cp);
int tk_uc_is_alphabetic(uint32_t cp);
int tk_uc_is_punct(uint32_t cp);
int tk_uc_is_word(uint32_t cp);

// ---- piece lists: the split state between pre-tokenizers (pretokenizers.c) ----
typedef struct {
    tbuf text;
    size_t *off, *len;
    unsigned char *first;   // 1 if the piece starts at offset 0 of the original input (Metaspace "first")
    int n, cap;
} plist;
int tk_plist_push(plist *l, const char *s, size_t n, int first);
void tk_plist_clear(plist *l);
void tk_plist_free(plist *l);

// ---- normalizers (normalizers.c) ----
typedef enum {
    NORM_BERT, NORM_NFC, NORM_NFD, NORM_NFKC, NORM_NFKD, NORM_LOWERCASE, NORM_STRIP, NORM_STRIP_ACCENTS,
    NORM_REPLACE, NORM_PREPEND, NORM_SEQUENCE, NORM_PRECOMPILED
} norm_type;
typedef struct normalizer {
    norm_type type;
    int clean_text, chinese, strip_accents, lowercase;   // BertNormalizer (strip_accents resolved)
    int left, right;                                      // Strip
    char *pattern, *content;                              // Replace (literal pattern or regex), Prepend
    size_t pattern_len, content_len;
    pcre2_code *re;                                       // Replace with a Regex pattern
    uint32_t *trie;                                       // Precompiled: SentencePiece double-array trie
    size_t trie_n;
    char *norm_blob;                                      // Precompiled: NUL-separated replacement strings
    size_t norm_len;
    struct normalizer **children;
    int n_children;
} normalizer;
rlhf_status tk_normalizer_parse(const cJSON *j, normalizer **out, const char *what, rlhf_err *err);
// Normalizes s[0..n) into out (cleared first).
int tk_normalizer_apply(const normalizer *nm, const char *s, size_t n, tbuf *out, pcre2_match_data *md);
// Parses a {"String": s} / {"Regex": r} "pattern" field of j (Replace, Split).
rlhf_status tok_parse_pattern(const cJSON *j, char **literal, size_t *lit_len, pcre2_code **re, const char *what,
                              rlhf_err *err);
void tk_normalizer_free(normalizer *nm);

// ---- regex helpers (regex.c) ----
rlhf_status tok_regex_compile(const char *pattern, size_t len, pcre2_code **out, const char *what, rlhf_err *err);
// Finds the next match in s[0..n) at or after start; returns 1 with [*ms, *me), 0 if none, -1 on error.
int tok_regex_next(const pcre2_code *re, pcre2_match_data *md, const char *s, size_t n, size_t start, size_t *ms,
                   size_t *me);

// ---- pre-tokenizers (pretokenizers.c) ----
typedef enum {
    PRE_BERT, PRE_BYTELEVEL, PRE_SPLIT, PRE_METASPACE, PRE_WHITESPACE, PRE_WHITESPACE_SPLIT, PRE_DIGITS,
    PRE_PUNCTUATION, PRE_SEQUENCE
} pretok_type;
typedef enum { SPLIT_REMOVED, SPLIT_ISOLATED, SPLIT_MERGED_PREV, SPLIT_MERGED_NEXT, SPLIT_CONTIGUOUS } split_behavior;
typedef enum { PREPEND_ALWAYS, PREPEND_FIRST, PREPEND_NEVER } prepend_scheme;
typedef struct pretok {
    pretok_type type;
    int add_prefix_space, use_regex;          // ByteLevel
    split_behavior behavior;                  // Split, Punctuation
    int invert;                               // Split
    char *literal;                            // Split with a String pattern (NULL: regex)
    size_t literal_len;
    pcre2_code *re;                           // Split regex, ByteLevel GPT-2 regex, Whitespace \w+|[^\w\s]+
    uint32_t replacement;                     // Metaspace
    prepend_scheme scheme;                    // Metaspace
    int split;                                // Metaspace
    int individual_digits;                    // Digits
    struct pretok **children;
    int n_children;
} pretok;
rlhf_status tk_pretok_parse(const cJSON *j, pretok **out, const char *what, rlhf_err *err);
// Splits every piece of in into out (cleared first). md: match data sized for the pretokenizer's regexes.
// Parses a Metaspace "replacement" (one character; default U+2581).
rlhf_status tok_parse_replacement(const cJSON *j, uint32_t *out, const char *what, rlhf_err *err);
int tk_pretok_apply(const pretok *p, const plist *in, plist *out, pcre2_match_data *md);
void tk_pretok_free(pretok *p);

// ---- models (bpe.c, wordpiece.c, unigram.c, model.c) ----
typedef enum { MODEL_BPE, MODEL_WORDPIECE, MODEL_UNIGRAM, MODEL_WORDLEVEL } tk_model_type;
typedef struct {
    tk_model_type type;
    char **vocab;         // id -> token (NULL for ids without a token)
    int vocab_n;          // 1 + max id
    strmap tok2id;
    char **extra;         // token strings sharing an id with another token (owned, map keys only)
    int n_extra;
    int max_token_chars;  // longest token in characters (Unigram's search bound)
    int unk_id;           // -1 if none
    // BPE
    pairmap merges;
    int byte_fallback, ignore_merges, fuse_unk;
    char *csp, *eow;      // continuing_subword_prefix, end_of_word_suffix (NULL if none)
    int32_t byte_ids[256];   // <0xHH> token ids for byte_fallback (-1 if absent)
    // WordPiece
    char *wp_prefix;
    int max_chars;
    // Unigram
    double *scores;
    double min_score;
} tok_model;
typedef struct tok_scratch tok_scratch;
rlhf_status tk_model_parse(const cJSON *j, tok_model *m, const char *what, rlhf_err *err);
void tk_model_free(tok_model *m);
// Appends the ids of one pre-tokenized word to out. Returns 0, -1 when out of memory, -2 when the word
// needs an unknown token the model lacks.
int tk_model_tokenize(const tok_model *m, const char *s, size_t n, ivec *out, tok_scratch *sc);
rlhf_status tk_bpe_parse(const cJSON *j, tok_model *m, const char *what, rlhf_err *err);
int tk_bpe_tokenize(const tok_model *m, const char *s, size_t n, ivec *out, tok_scratch *sc);
rlhf_status tk_wordpiece_parse(const cJSON *j, tok_model *m, const char *what, rlhf_err *err);
int tk_wordpiece_tokenize(const tok_model *m, const char *s, size_t n, ivec *out, tok_scratch *sc);
rlhf_status tk_unigram_parse(const cJSON *j, tok_model *m, const char *what, rlhf_err *err);
int tk_unigram_tokenize(const tok_model *m, const char *s, size_t n, ivec *out, tok_scratch *sc);
rlhf_status tk_wordlevel_parse(const cJSON *j, tok_model *m, const char *what, rlhf_err *err);
// Adds one token (used for added tokens missing from the model vocabulary); unk_token lookup.
rlhf_status tk_model_add_token(tok_model *m, const char *tok, size_t len, int id, const char *what, rlhf_err *err);
rlhf_status tk_model_unk(const cJSON *j, tok_model *m);
// Loads a {"token": id} object into m->vocab / m->tok2id.
rlhf_status tk_model_vocab_from_object(const cJSON *vocab, tok_model *m, const char *what, rlhf_err *err);

// ---- added tokens (added_tokens.c) ----
typedef struct {
    char *content;        // as written in tokenizer.json
    char *match;          // what is searched: content, or its normalized form when normalized
    size_t match_len;
    int32_t id;
    int special, lstrip, rstrip, single_word, normalized;
} added_token;
typedef struct {
    added_token *tokens;
    int n;
    // candidates by first byte of `match`, longest first: index lists for the raw and normalized passes
    int *by_byte[2][256];
    int n_by_byte[2][256];
    int32_t *by_id;       // id -> index in tokens (-1), for ids < n_by_id
    int n_by_id;
} added_vocab;
rlhf_status tk_added_vocab_parse(const cJSON *arr, added_vocab *av, const char *what, rlhf_err *err);
// Assigns ids as HF's deserializer does (the JSON id is only a hint: a content already in the model vocabulary
// or added earlier keeps that id, a new one takes the next id after the model), computes the normalized match
// strings and the first-byte index.
int tk_added_vocab_finish(added_vocab *av, const normalizer *nm, const tok_model *m);
void tk_added_vocab_free(added_vocab *av);
// Splits s[0..n) on added tokens of one pass (normalized_pass 0: tokens with normalized=false, 1: true).
// Each segment is [seg_start, seg_end) with id -1 for plain text or the added token id.
typedef struct {
    size_t start, end;
    int32_t id;
} added_seg;
int tk_added_vocab_split(const added_vocab *av, int normalized_pass, const char *s, size_t n, added_seg **segs,
                      int *n_segs, int *cap_segs);
const added_token *tk_added_vocab_by_id(const added_vocab *av, int32_t id);

// ---- post-processors (postprocess.c) ----
typedef enum { POST_TEMPLATE, POST_BERT, POST_ROBERTA, POST_BYTELEVEL, POST_SEQUENCE } post_type;
typedef struct {
    int is_special;       // 1: special token (ids from the special map), 0: sequence A (seq 0) or B (seq 1)
    int seq;
    int32_t *ids;         // special token ids
    int n_ids;
    int type_id;
} template_piece;
typedef struct postproc {
    post_type type;
    template_piece *single, *pair;
    int n_single, n_pair;
    int32_t cls_id, sep_id;   // Bert / Roberta
    struct postproc **children;
    int n_children;
} postproc;
rlhf_status tk_postproc_parse(const cJSON *j, postproc **out, const tok_model *m, const added_vocab *av,
                           const char *what, rlhf_err *err);
// Number of special tokens added for a single sequence (pair = 0) or a pair.
int tk_postproc_added(const postproc *p, int pair);
// Combines the encodings a (and b, NULL if no pair) into out (ids, type ids).
int tk_postproc_apply(const postproc *p, const ivec *a, const ivec *b, int add_special, ivec *ids, ivec *type_ids);
void tk_postproc_free(postproc *p);
// A TemplateProcessing that wraps each sequence in optional special tokens, as transformers' fast classes build
// it: single = [pre:0] $A:0 [post:0]; pair = single then [pre:1] (only when pre_on_b) $B:1 [post:1]. pre / post
// NULL leave that token out. Parsed against the model and added vocabulary in *out.
rlhf_status tk_postproc_wrap(postproc **out, const char *pre, int32_t pre_id, const char *post, int32_t post_id,
                             int pre_on_b, const tok_model *m, const added_vocab *av, const char *what, rlhf_err *err);

// ---- decoders (decoders.c) ----
typedef enum {
    DEC_BYTELEVEL, DEC_WORDPIECE, DEC_METASPACE, DEC_BYTEFALLBACK, DEC_FUSE, DEC_STRIP, DEC_REPLACE, DEC_BPE,
    DEC_SEQUENCE
} dec_type;
typedef struct decoder {
    dec_type type;
    char *prefix;                   // WordPiece
    int cleanup;                    // WordPiece
    uint32_t replacement;           // Metaspace
    prepend_scheme scheme;          // Metaspace
    uint32_t strip_content;         // Strip
    int strip_start, strip_stop;    // Strip
    char *pattern, *content;        // Replace (literal) / BPEDecoder suffix in content
    pcre2_code *re;                 // Replace regex
    struct decoder **children;
    int n_children;
} decoder;
// A list of token strings being decoded.
typedef struct {
    char **s;
    size_t *len;   // byte lengths (decoded bytes may include NUL)
    int n, cap;
} slist;
int tk_slist_push(slist *l, const char *s, size_t n);
void tk_slist_free(slist *l);
rlhf_status tk_decoder_parse(const cJSON *j, decoder **out, const char *what, rlhf_err *err);
// Rewrites the token list in place as decoder.decode_chain does.
int tk_decoder_apply(const decoder *d, slist *tokens);
void tk_decoder_free(decoder *d);

// ---- the tokenizer ----
struct tokenizer {
    normalizer *normalizer;
    pretok *pretok;
    tok_model model;
    added_vocab added;
    postproc *post;          // NULL: default processing (concatenate, pair type id 1)
    decoder *decoder;        // NULL: join tokens with " "
    int pad_id, eos_id, bos_id;
    int clean_up_spaces;     // transformers' clean_up_tokenization_spaces (applied by tokenizer_decode only)
    int vocab_size;          // 1 + max id over model and added tokens
    char *dir;               // directory loaded from (NULL when loaded from memory)
    char *files[8];          // basenames of the files loaded from dir (for tokenizer_save)
    int n_files;
    size_t max_regex_groups;
};
// Builds a tokenizer from a parsed tokenizer.json tree (tokenizer_json.c).
rlhf_status tokenizer_from_json(tokenizer **out, const cJSON *root, const char *what, rlhf_err *err);
// Fallbacks without tokenizer.json (fallback.c): build the equivalent tokenizer.json tree.
rlhf_status tk_fallback_bert_json(const char *dir, cJSON **out, rlhf_err *err);
rlhf_status tk_fallback_bpe_json(const char *dir, cJSON **out, rlhf_err *err);
// SentencePiece model files (spm.c): the converter transformers picks for the directory and its class defaults.
typedef enum { SPM_LLAMA, SPM_GEMMA, SPM_DEBERTA_V2 } spm_kind;
typedef struct {
    spm_kind kind;
    const char *defaults[7];   // the class's bos, eos, unk, sep, pad, cls, mask tokens (NULL: none); static strings
    int clean_up;              // the class's default clean_up_tokenization_spaces
    const char *dir, *file;    // borrowed from the caller
} spm_class;
// Builds the tokenizer.json tree transformers' converter writes for DIR/FILE (tokenizer.model or spm.model).
rlhf_status tk_fallback_spm_json(const char *dir, const char *file, cJSON **out, spm_class *c, rlhf_err *err);
// Installs the post-processor of the fast class once the special ids are known.
rlhf_status tk_spm_post_processor(tokenizer *t, const spm_class *c, const cJSON *cfg, rlhf_err *err);
// Reads a whole file (NUL-terminated) without the io layer's gzip handling.
rlhf_status tok_read_file(const char *path, char **out, size_t *len, rlhf_err *err);

// Per-call scratch buffers so encode allocates little and shares nothing between threads.
struct tok_scratch {
    tbuf word;                 // a word with prefixes/suffixes
    int32_t *sym_id;           // BPE symbols
    int *sym_prev, *sym_next, *sym_len;
    int sym_cap;
    uint64_t *heap;            // BPE merge queue: (rank << 32 | position)
    int32_t *heap_new;
    int heap_cap;
    double *best;              // Unigram Viterbi
    int *best_len, *best_id;
    int vit_cap;
    pcre2_match_data *md;
};
void tok_scratch_free(tok_scratch *sc);

#endif
