// Preference rows -> token sequences (see preference_data.h for the layouts). One function per row
// layout turns a row into (prompt, chosen, rejected) texts or ids; one encoder turns a (prompt,
// response) into ids the way the model family reads it. Row errors are collected, never fatal alone.
#include "train/preference_data.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "tokenizer/chat_template.h"

// HH-RLHF turns: the prompt ends right after the last assistant cue (seed: extract_anthropic_prompt).
#define HH_ASSISTANT_CUE "\n\nAssistant:"

// ---- error collection -------------------------------------------------------------------------

typedef struct {
    char msg[RLHF_ERR_MSG];  // the listed reasons, whole lines only
    size_t len;
    int count;   // malformed rows
    int listed;  // of them in msg
    int full;    // a reason did not fit: list no more (the count still grows)
} row_errors;

static void row_errors_add(row_errors *e, const char *text) {
    e->count++;
    if (e->full || e->listed >= PREF_MAX_REPORTED_ERRORS) return;
    size_t room = sizeof e->msg - e->len;
    int w = snprintf(e->msg + e->len, room, "%s%s", e->len ? "\n" : "", text);
    if (w < 0 || (size_t)w >= room) {  // never a cut reason: stop listing
        e->msg[e->len] = '\0';
        e->full = 1;
        return;
    }
    e->len += (size_t)w;
    e->listed++;
}

// The error for all malformed rows: "N malformed rows in FILE:" then as many whole reasons as fit in an
// error message, then "(and M more)" with M the rows not listed.
static rlhf_status row_errors_fail(const row_errors *e, const char *path, rlhf_err *err) {
    if (e->count == 1 && e->listed == 1) return rlhf_fail(err, RLHF_EINPUT, "%s", e->msg);
    char head[RLHF_ERR_MSG];
    int hl = snprintf(head, sizeof head, "%d malformed rows in %s:", e->count, path);
    // room for the reasons: the message less its head and the longest tail "\n(and N more)"
    const size_t tail_room = 40;
    size_t budget = hl > 0 && (size_t)hl + tail_room < RLHF_ERR_MSG ? RLHF_ERR_MSG - 1 - (size_t)hl - tail_room : 0;
    size_t used = 0;
    int shown = 0;
    for (const char *p = e->msg; shown < e->listed && *p;) {
        const char *nl = strchr(p, '\n');
        size_t l = nl ? (size_t)(nl - p) : strlen(p);
        if (used + 1 + l > budget) break;
        used += 1 + l;
        shown++;
        p += l + (nl ? 1 : 0);
    }
    if (shown == e->count)
        return rlhf_fail(err, RLHF_EINPUT, "%s\n%.*s", head, (int)(used ? used - 1 : 0), e->msg);
    if (shown == 0)  // not even one reason fits next to a very long path: the first reason alone
        return rlhf_fail(err, RLHF_EINPUT, "%d malformed rows; the first: %.*s", e->count,
                         (int)(strchr(e->msg, '\n') ? strchr(e->msg, '\n') - e->msg : (long)e->len), e->msg);
    return rlhf_fail(err, RLHF_EINPUT, "%s\n%.*s\n(and %d more)", head, (int)(used - 1), e->msg, e->count - shown);
}

static rlhf_status row_fail(rlhf_err *err, const dataset *d, int r, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static rlhf_status row_fail(rlhf_err *err, const dataset *d, int r, const char *fmt, ...) {
    char what[RLHF_ERR_MSG / 2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return rlhf_fail(err, RLHF_EINPUT, "%s:%d: %s", d->path, d->lines[r], what);
}

// ---- small string builder ---------------------------------------------------------------------

typedef struct {
    char *s;
    size_t len, cap;
} strbuf;

static int sb_add(strbuf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) return 0;
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
    return 1;
}

static int sb_str(strbuf *b, const char *s) { return sb_add(b, s, strlen(s)); }

static char *str_dup_n(const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

// ---- implicit prompt ----------------------------------------------------------------------------

size_t pref_implicit_prompt_len(const char *chosen, const char *rejected) {
    size_t i = 0;
    while (chosen[i] && chosen[i] == rejected[i]) i++;
    // Never split a UTF-8 character: back up over continuation bytes of a differing character.
    while (i > 0 && ((unsigned char)chosen[i] & 0xC0) == 0x80) i--;
    size_t cue = strlen(HH_ASSISTANT_CUE), best = 0;
    int found = 0;
    for (size_t k = 0; k + cue <= i; k++)
        if (!memcmp(chosen + k, HH_ASSISTANT_CUE, cue)) {
            best = k + cue;
            found = 1;
        }
    if (found) return best;
    if (chosen[i] != rejected[i] && i > 0 && chosen[i - 1] == ' ') i--;  // TRL: the space joins the response
    return i;
}

// ---- messages -----------------------------------------------------------------------------------

// Renders a list of {"role","content"} (or ShareGPT {"from","value"}) messages [from, to) with the
// plain template "role: content\n". Returns 0 and a reason in why on a malformed message.
static const char *sharegpt_role(const char *from) {
    if (!strcmp(from, "human") || !strcmp(from, "user")) return "user";
    if (!strcmp(from, "gpt") || !strcmp(from, "assistant")) return "assistant";
    if (!strcmp(from, "system")) return "system";
    return from;
}

static int message_parts(const cJSON *msg, const char **role, const char **content, char *why, size_t nwhy,
                         const char *field, int idx) {
    if (!cJSON_IsObject(msg)) {
        snprintf(why, nwhy, "field '%s' message %d must be an object with \"role\" and \"content\"", field, idx);
        return 0;
    }
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(msg, "role");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(msg, "content");
    int sharegpt = 0;
    if (!r && !c) {
        r = cJSON_GetObjectItemCaseSensitive(msg, "from");
        c = cJSON_GetObjectItemCaseSensitive(msg, "value");
        sharegpt = 1;
    }
    if (!cJSON_IsString(r) || !cJSON_IsString(c)) {
        snprintf(why, nwhy, "field '%s' message %d needs string \"%s\" and \"%s\"", field, idx,
                 sharegpt ? "from" : "role", sharegpt ? "value" : "content");
        return 0;
    }
    *role = sharegpt ? sharegpt_role(r->valuestring) : r->valuestring;
    *content = c->valuestring;
    return 1;
}

static int render_messages(strbuf *b, const cJSON *list, int from, int to, const char *field, char *why,
                           size_t nwhy) {
    for (int i = from; i < to; i++) {
        const char *role, *content;
        if (!message_parts(cJSON_GetArrayItem(list, i), &role, &content, why, nwhy, field, i)) return 0;
        if (!sb_str(b, role) || !sb_str(b, ": ") || !sb_str(b, content) || !sb_str(b, "\n")) {
            snprintf(why, nwhy, "out of memory");
            return 0;
        }
    }
    return 1;
}

static int messages_equal(const cJSON *a, const cJSON *b) {
    const char *ra, *ca, *rb, *cb;
    char why[8];
    if (!message_parts(a, &ra, &ca, why, sizeof why, "", 0) || !message_parts(b, &rb, &cb, why, sizeof why, "", 0))
        return 0;
    return !strcmp(ra, rb) && !strcmp(ca, cb);
}

// Texts built from messages are checked here (the dataset getters check plain string fields).
static int text_invalid_utf8(const char *s) { return utf8_invalid_at(s, strlen(s)) >= 0; }

// ---- encoding -----------------------------------------------------------------------------------

static rlhf_status seq_from_encoding(token_seq *s, tok_encoding *e, rlhf_err *err) {
    s->n = e->n;
    s->ids = e->ids;
    s->type_ids = e->type_ids;
    e->ids = e->type_ids = NULL;
    tok_encoding_free(e);
    if (s->n > 0 && !s->type_ids) {
        s->type_ids = calloc((size_t)s->n, sizeof(int32_t));
        if (!s->type_ids) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    }
    return RLHF_OK;
}

static void seq_free(token_seq *s) {
    free(s->ids);
    free(s->type_ids);
    s->ids = s->type_ids = NULL;
    s->n = 0;
}

// Decoder sequences: prompt + response + EOS; a sequence over max_length keeps its end (the reward is
// read at the last token), and BOS stays in front.
// chat: a chat-template rendering, tokenized as apply_chat_template(tokenize=True) does: no special tokens
// added (the template writes them) and no EOS appended.
static rlhf_status encode_decoder_as(const pref_opts *o, const char *text, int chat, token_seq *out, int *truncated,
                                     rlhf_err *err) {
    tok_encoding e = {0};
    RLHF_TRY(tokenizer_encode(o->tok, text, NULL, !chat, 0, TRUNC_LONGEST_FIRST, &e, err));
    int eos = !chat && o->eos_id >= 0;
    int n = e.n + eos;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(n > 0 ? n : 1));
    int32_t *types = calloc((size_t)(n > 0 ? n : 1), sizeof(int32_t));
    if (!ids || !types) {
        free(ids);
        free(types);
        tok_encoding_free(&e);
        return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    }
    memcpy(ids, e.ids, sizeof(int32_t) * (size_t)e.n);
    if (eos) ids[e.n] = o->eos_id;
    tok_encoding_free(&e);
    if (o->max_length > 0 && n > o->max_length) {
        int keep_bos = o->bos_id >= 0 && ids[0] == o->bos_id && o->max_length > 1;
        int tail = o->max_length - keep_bos;
        memmove(ids + keep_bos, ids + n - tail, sizeof(int32_t) * (size_t)tail);
        n = o->max_length;
        *truncated = 1;
    }
    out->ids = ids;
    out->type_ids = types;
    out->n = n;
    return RLHF_OK;
}
static rlhf_status encode_decoder(const pref_opts *o, const char *text, token_seq *out, int *truncated,
                                  rlhf_err *err) {
    return encode_decoder_as(o, text, 0, out, truncated, err);
}

// One text over max_length keeps its end, where the response is: the leading and trailing special
// tokens ([CLS] ... [SEP], <s> ... </s>) stay, the start of the text between them is dropped.
static void keep_text_end(const tokenizer *tok, tok_encoding *e, int max_length) {
    int lead = 0, trail = 0;
    while (lead < e->n && tokenizer_is_special(tok, e->ids[lead])) lead++;
    while (trail < e->n - lead && tokenizer_is_special(tok, e->ids[e->n - 1 - trail])) trail++;
    int body = max_length - lead - trail;
    if (body < 1) {  // no room for text between the specials: plain right truncation
        e->n = max_length;
        return;
    }
    int from = e->n - trail - body;
    memmove(e->ids + lead, e->ids + from, sizeof(int32_t) * (size_t)(body + trail));
    if (e->type_ids) memmove(e->type_ids + lead, e->type_ids + from, sizeof(int32_t) * (size_t)(body + trail));
    if (e->attention_mask)
        memmove(e->attention_mask + lead, e->attention_mask + from, sizeof(int32_t) * (size_t)(body + trail));
    e->n = max_length;
}

// Encoders: tokenizer(prompt, response) as a sentence pair. Over max_length, the prompt is shortened
// first (only_first) so the response survives; when the prompt alone cannot absorb it, longest_first
// as HF's default. --encoding concat: tokenizer(prompt + response), as TRL's RewardTrainer; over
// max_length it keeps its end (keep_text_end).
static rlhf_status encode_encoder(const pref_opts *o, const char *prompt, const char *response, token_seq *out,
                                  int *truncated, rlhf_err *err) {
    tok_encoding e = {0};
    if (o->encoding == PREF_ENCODING_CONCAT || !prompt) {
        strbuf b = {0};
        if ((prompt && !sb_str(&b, prompt)) || !sb_str(&b, response)) {
            free(b.s);
            return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
        }
        rlhf_status s = tokenizer_encode(o->tok, b.s, NULL, 1, 0, TRUNC_LONGEST_FIRST, &e, err);
        free(b.s);
        RLHF_TRY(s);
        if (o->max_length > 0 && e.n > o->max_length) {
            keep_text_end(o->tok, &e, o->max_length);
            *truncated = 1;
        }
        return seq_from_encoding(out, &e, err);
    }
    RLHF_TRY(tokenizer_encode(o->tok, prompt, response, 1, 0, TRUNC_LONGEST_FIRST, &e, err));
    if (o->max_length <= 0 || e.n <= o->max_length) return seq_from_encoding(out, &e, err);
    tok_encoding_free(&e);
    *truncated = 1;
    rlhf_err quiet;
    memset(&e, 0, sizeof e);
    if (tokenizer_encode(o->tok, prompt, response, 1, o->max_length, TRUNC_ONLY_FIRST, &e, &quiet) == RLHF_OK &&
        e.n <= o->max_length)
        return seq_from_encoding(out, &e, err);
    tok_encoding_free(&e);
    memset(&e, 0, sizeof e);
    RLHF_TRY(tokenizer_encode(o->tok, prompt, response, 1, o->max_length, TRUNC_LONGEST_FIRST, &e, err));
    return seq_from_encoding(out, &e, err);
}

static rlhf_status encode_text(const pref_opts *o, const char *prompt, const char *response, token_seq *out,
                               int *truncated, rlhf_err *err) {
    if (o->is_decoder) {
        strbuf b = {0};
        if ((prompt && !sb_str(&b, prompt)) || !sb_str(&b, response)) {
            free(b.s);
            return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
        }
        rlhf_status s = encode_decoder(o, b.s, out, truncated, err);
        free(b.s);
        return s;
    }
    return encode_encoder(o, prompt, response, out, truncated, err);
}

// ---- row layouts ----------------------------------------------------------------------------------

// Pre-tokenized sequence: ids used as given (special tokens included), type ids optional.
static rlhf_status pretok_seq(const dataset *d, int r, const pref_opts *o, const char *ids_field,
                              const char *types_field, token_seq *out, int *truncated, rlhf_err *err) {
    RLHF_TRY(dataset_get_ids(d, r, ids_field, 1, o->vocab_size, &out->ids, &out->n, err));
    if (out->n == 0) return row_fail(err, d, r, "field '%s' is empty", ids_field);
    int32_t *types = NULL;
    int nt = 0;
    int type_max = o->type_vocab_size > 1 ? o->type_vocab_size : 1;
    RLHF_TRY(dataset_get_ids(d, r, types_field, 0, type_max, &types, &nt, err));
    if (types && nt != out->n) {
        free(types);
        return row_fail(err, d, r, "field '%s' has %d ids but '%s' has %d", types_field, nt, ids_field, out->n);
    }
    if (!types) {
        types = calloc((size_t)out->n, sizeof(int32_t));
        if (!types) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    }
    out->type_ids = types;
    if (o->max_length > 0 && out->n > o->max_length) {
        if (o->is_decoder) {  // keep the end: the reward is read at the last token
            int drop = out->n - o->max_length;
            memmove(out->ids, out->ids + drop, sizeof(int32_t) * (size_t)o->max_length);
            memmove(out->type_ids, out->type_ids + drop, sizeof(int32_t) * (size_t)o->max_length);
        }
        out->n = o->max_length;
        *truncated = 1;
    }
    return RLHF_OK;
}

static int has_field(const cJSON *row, const char *name) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(row, name);
    return f && !cJSON_IsNull(f);
}

// A chosen/rejected/prompt field that may be a string or a list of messages: its text.
static rlhf_status field_text(const dataset *d, int r, const char *field, int required, char **out,
                              rlhf_err *err) {
    *out = NULL;
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(d->rows[r], field);
    if (cJSON_IsArray(f)) {
        strbuf b = {0};
        char why[256];
        if (!sb_str(&b, "") || !render_messages(&b, f, 0, cJSON_GetArraySize(f), field, why, sizeof why)) {
            free(b.s);
            return row_fail(err, d, r, "%s", why);
        }
        if (text_invalid_utf8(b.s)) {
            free(b.s);
            return row_fail(err, d, r, "field '%s': invalid UTF-8", field);
        }
        *out = b.s;
        return RLHF_OK;
    }
    const char *s = NULL;
    RLHF_TRY(dataset_get_string(d, r, field, required, &s, err));
    if (s && !(*out = str_dup_n(s, strlen(s)))) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    return RLHF_OK;
}

// Text of a ShareGPT-style single message object ({"from","value"} or {"role","content"}).
static rlhf_status sharegpt_answer(const dataset *d, int r, const char *field, char **out, rlhf_err *err) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(d->rows[r], field);
    const char *role, *content;
    char why[256];
    if (!f) return row_fail(err, d, r, "field '%s' missing", field);
    if (cJSON_IsString(f)) {
        content = f->valuestring;
    } else if (!message_parts(f, &role, &content, why, sizeof why, field, 0)) {
        return row_fail(err, d, r, "%s", why);
    }
    if (text_invalid_utf8(content)) return row_fail(err, d, r, "field '%s': invalid UTF-8", field);
    if (!(*out = str_dup_n(content, strlen(content)))) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    return RLHF_OK;
}

// Prompt and two responses as texts, whatever the text layout. *prompt may be NULL (no prompt:
// responses are read alone).
static rlhf_status pair_texts(const dataset *d, int r, char **prompt, char **chosen, char **rejected,
                              rlhf_err *err) {
    const cJSON *row = d->rows[r];
    *prompt = *chosen = *rejected = NULL;
    const cJSON *conv = cJSON_GetObjectItemCaseSensitive(row, "conversations");
    if (cJSON_IsArray(conv)) {  // LLaMA-Factory ShareGPT preference layout
        strbuf b = {0};
        char why[256];
        if (!sb_str(&b, "") || !render_messages(&b, conv, 0, cJSON_GetArraySize(conv), "conversations", why,
                                                sizeof why)) {
            free(b.s);
            return row_fail(err, d, r, "%s", why);
        }
        if (text_invalid_utf8(b.s)) {
            free(b.s);
            return row_fail(err, d, r, "field 'conversations': invalid UTF-8");
        }
        *prompt = b.s;
        RLHF_TRY(sharegpt_answer(d, r, "chosen", chosen, err));
        return sharegpt_answer(d, r, "rejected", rejected, err);
    }
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(row, "chosen");
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(row, "rejected");
    if (!c || cJSON_IsNull(c)) return row_fail(err, d, r, "field 'chosen' missing");
    if (!j || cJSON_IsNull(j)) return row_fail(err, d, r, "field 'rejected' missing");
    if (cJSON_IsArray(c) != cJSON_IsArray(j))
        return row_fail(err, d, r, "fields 'chosen' and 'rejected' must both be strings or both message lists");
    if (!cJSON_IsArray(c) && !cJSON_IsString(c))
        return row_fail(err, d, r, "field 'chosen' must be a string or a list of messages");
    if (!cJSON_IsArray(j) && !cJSON_IsString(j))
        return row_fail(err, d, r, "field 'rejected' must be a string or a list of messages");
    if (has_field(row, "prompt")) {
        RLHF_TRY(field_text(d, r, "prompt", 1, prompt, err));
        RLHF_TRY(field_text(d, r, "chosen", 1, chosen, err));
        return field_text(d, r, "rejected", 1, rejected, err);
    }
    if (cJSON_IsArray(c)) {  // implicit conversational prompt: the common leading messages
        int nc = cJSON_GetArraySize(c), nj = cJSON_GetArraySize(j), k = 0;
        while (k < nc && k < nj && messages_equal(cJSON_GetArrayItem(c, k), cJSON_GetArrayItem(j, k))) k++;
        strbuf p = {0}, bc = {0}, bj = {0};
        char why[256];
        int ok = sb_str(&p, "") && sb_str(&bc, "") && sb_str(&bj, "") &&
                 render_messages(&p, c, 0, k, "chosen", why, sizeof why) &&
                 render_messages(&bc, c, k, nc, "chosen", why, sizeof why) &&
                 render_messages(&bj, j, k, nj, "rejected", why, sizeof why);
        if (!ok || text_invalid_utf8(p.s) || text_invalid_utf8(bc.s) || text_invalid_utf8(bj.s)) {
            free(p.s);
            free(bc.s);
            free(bj.s);
            return ok ? row_fail(err, d, r, "invalid UTF-8 in a message") : row_fail(err, d, r, "%s", why);
        }
        *prompt = k > 0 ? p.s : (free(p.s), NULL);
        *chosen = bc.s;
        *rejected = bj.s;
        return RLHF_OK;
    }
    const char *cs, *js;
    RLHF_TRY(dataset_get_string(d, r, "chosen", 1, &cs, err));
    RLHF_TRY(dataset_get_string(d, r, "rejected", 1, &js, err));
    size_t np = pref_implicit_prompt_len(cs, js);
    *prompt = np > 0 ? str_dup_n(cs, np) : NULL;
    *chosen = str_dup_n(cs + np, strlen(cs) - np);
    *rejected = str_dup_n(js + np, strlen(js) - np);
    if ((np > 0 && !*prompt) || !*chosen || !*rejected) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    return RLHF_OK;
}

// An empty response (after the prompt, explicit or implicit) is a row to fix, not a pair to learn from:
// with no response tokens the reward reads the prompt (or only special tokens) for both sides.
static rlhf_status nonempty_response(const dataset *d, int r, const char *field, const char *text, rlhf_err *err) {
    if (text && text[0]) return RLHF_OK;
    const int implicit = !has_field(d->rows[r], "prompt") && strcmp(field, "response") && strcmp(field, "completion");
    return row_fail(err, d, r, "field '%s' is an empty response (expected non-empty text after the prompt%s)", field,
                    implicit ? "; without a 'prompt' field the prompt is the common start of chosen and rejected" : "");
}

static rlhf_status need_tokenizer(const dataset *d, int r, const pref_opts *o, rlhf_err *err) {
    if (o->tok) return RLHF_OK;
    return row_fail(err, d, r,
                    "text rows need a tokenizer, but %s has no tokenizer files (tokenizer.json, vocab.txt, "
                    "vocab.json+merges.txt or tokenizer.model); give pre-tokenized rows (chosen_ids/rejected_ids%s) instead",
                    o->model_dir ? o->model_dir : "the model directory", o->allow_single ? ", input_ids" : "");
}

// Prefixes a tokenizer error (e.g. invalid UTF-8) with the row's FILE:LINE and field.
static rlhf_status encode_field(const dataset *d, int r, const pref_opts *o, const char *field,
                                const char *prompt, const char *response, token_seq *out, int *truncated,
                                rlhf_err *err) {
    rlhf_status s = encode_text(o, prompt, response, out, truncated, err);
    if (s == RLHF_EINPUT) {
        char inner[RLHF_ERR_MSG / 2];
        size_t k = strnlen(err->msg, sizeof inner - 1);
        memcpy(inner, err->msg, k);
        inner[k] = '\0';
        return row_fail(err, d, r, "field '%s': %s", field, inner);
    }
    return s;
}

// ---- chat templates (decoders whose tokenizer_config.json has one) ------------------------------

// A message as the template sees it: {"role","content",...} copied whole; ShareGPT {"from","value"}
// mapped to role/content; a bare string is an assistant answer. NULL (why set) when malformed.
static cJSON *chat_message(const cJSON *msg, const char *field, int idx, char *why, size_t nwhy) {
    if (cJSON_IsString(msg)) {
        cJSON *m = cJSON_CreateObject();
        if (m && (!cJSON_AddStringToObject(m, "role", "assistant") || !cJSON_AddStringToObject(m, "content", msg->valuestring)))
            cJSON_Delete(m), m = NULL;
        if (!m) snprintf(why, nwhy, "out of memory");
        return m;
    }
    const char *role, *content;
    if (!message_parts(msg, &role, &content, why, nwhy, field, idx)) return NULL;
    cJSON *m = cJSON_HasObjectItem(msg, "role") ? cJSON_Duplicate(msg, 1) : cJSON_CreateObject();
    if (m && !cJSON_HasObjectItem(m, "role") &&
        (!cJSON_AddStringToObject(m, "role", role) || !cJSON_AddStringToObject(m, "content", content)))
        cJSON_Delete(m), m = NULL;
    if (!m) snprintf(why, nwhy, "out of memory");
    return m;
}

// Appends the messages of list (an array, or one message object) to conv.
static int chat_append(cJSON *conv, const cJSON *list, const char *field, char *why, size_t nwhy) {
    if (!cJSON_IsArray(list)) {
        cJSON *m = chat_message(list, field, 0, why, nwhy);
        return m && cJSON_AddItemToArray(conv, m);
    }
    int i = 0;
    for (const cJSON *e = list->child; e; e = e->next, i++) {
        cJSON *m = chat_message(e, field, i, why, nwhy);
        if (!m || !cJSON_AddItemToArray(conv, m)) return 0;
    }
    return 1;
}

// Conversational pair rows of a decoder with a chat template: the whole conversation of each response
// (prompt messages + response messages; ShareGPT conversations + answer) rendered by the template, as
// TRL's RewardTrainer applies tokenizer.apply_chat_template to prompt + chosen. Returns 0 (not
// handled) for rows that are not conversational.
static int row_is_conversational(const cJSON *row) {
    return cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(row, "chosen")) ||
           cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(row, "conversations"));
}

// Any field of the row is a list of messages.
static int row_has_messages(const cJSON *row) {
    for (const cJSON *f = row->child; f; f = f->next)
        if (cJSON_IsArray(f) && cJSON_IsObject(f->child)) return 1;
    return 0;
}

static rlhf_status chat_pair(const dataset *d, int r, const pref_opts *o, pref_row *out, int *truncated,
                             rlhf_err *err) {
    const cJSON *row = d->rows[r];
    const cJSON *conv = cJSON_GetObjectItemCaseSensitive(row, "conversations");
    const cJSON *prompt = cJSON_IsArray(conv) ? conv : cJSON_GetObjectItemCaseSensitive(row, "prompt");
    const char *fields[2] = {"chosen", "rejected"};
    token_seq *seqs[2] = {&out->chosen, &out->rejected};
    for (int k = 0; k < 2; k++) {
        const cJSON *resp = cJSON_GetObjectItemCaseSensitive(row, fields[k]);
        if (!resp || cJSON_IsNull(resp)) return row_fail(err, d, r, "field '%s' missing", fields[k]);
        if (!cJSON_IsArray(conv) && !cJSON_IsArray(resp))
            return row_fail(err, d, r, "fields 'chosen' and 'rejected' must both be strings or both message lists");
        if (prompt && !cJSON_IsNull(prompt) && !cJSON_IsArray(prompt))
            return row_fail(err, d, r, "field 'prompt' must be a list of messages when 'chosen' is one");
        cJSON *msgs = cJSON_CreateArray();
        char why[256] = "out of memory";
        int ok = msgs && (!cJSON_IsArray(prompt) || chat_append(msgs, prompt, cJSON_IsArray(conv) ? "conversations" : "prompt", why, sizeof why)) &&
                 chat_append(msgs, resp, fields[k], why, sizeof why);
        if (!ok) {
            cJSON_Delete(msgs);
            return row_fail(err, d, r, "%s", why);
        }
        char *text = NULL;
        rlhf_err e;
        rlhf_err_clear(&e);
        rlhf_status s = chat_template_render(o->chat, msgs, 0, NULL, NULL, &text, &e);
        cJSON_Delete(msgs);
        if (s == RLHF_EINPUT) return row_fail(err, d, r, "field '%s': %s", fields[k], e.msg);
        if (s) {
            *err = e;
            return s;
        }
        if (text_invalid_utf8(text)) {
            free(text);
            return row_fail(err, d, r, "field '%s': invalid UTF-8", fields[k]);
        }
        s = encode_decoder_as(o, text, 1, seqs[k], truncated, err);
        free(text);
        RLHF_TRY(s);
    }
    return RLHF_OK;
}

// ---- DPO rows: prompt and responses apart ------------------------------------------------------

typedef struct {
    int32_t *ids;
    int n, cap;
} id_buf;

static int idb_add(id_buf *b, const int32_t *ids, int n) {
    if (b->n + n > b->cap) {
        int cap = b->cap ? b->cap : 16;
        while (cap < b->n + n) cap *= 2;
        int32_t *p = realloc(b->ids, sizeof(int32_t) * (size_t)cap);
        if (!p) return 0;
        b->ids = p, b->cap = cap;
    }
    if (n) memcpy(b->ids + b->n, ids, sizeof(int32_t) * (size_t)n);
    b->n += n;
    return 1;
}

// tokenizer(text, add_special_tokens=False) into b (appended); errors name the row and field.
static rlhf_status dpo_encode(const dataset *d, int r, const pref_opts *o, const char *field, const char *text,
                              id_buf *b, rlhf_err *err) {
    if (!text || !text[0]) return RLHF_OK;
    tok_encoding e = {0};
    rlhf_err inner;
    rlhf_err_clear(&inner);
    rlhf_status s = tokenizer_encode(o->tok, text, NULL, 0, 0, TRUNC_LONGEST_FIRST, &e, &inner);
    if (s == RLHF_EINPUT) return row_fail(err, d, r, "field '%s': %s", field, inner.msg);
    if (s) {
        *err = inner;
        return s;
    }
    for (int i = 0; i < e.n; i++)
        if (e.ids[i] < 0 || e.ids[i] >= o->vocab_size) {
            int id = e.ids[i];
            tok_encoding_free(&e);
            return row_fail(err, d, r, "field '%s': token id %d outside the model's vocabulary (%d)", field, id,
                            o->vocab_size);
        }
    int ok = idb_add(b, e.ids, e.n);
    tok_encoding_free(&e);
    return ok ? RLHF_OK : rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
}

// Renders msgs (consumed) with the chat template; errors name the row and field.
static rlhf_status dpo_render(const dataset *d, int r, const pref_opts *o, const char *field, cJSON *msgs, int gen,
                              char **out, rlhf_err *err) {
    rlhf_err e;
    rlhf_err_clear(&e);
    rlhf_status s = chat_template_render(o->chat, msgs, gen, NULL, NULL, out, &e);
    cJSON_Delete(msgs);
    if (s == RLHF_EINPUT) return row_fail(err, d, r, "field '%s': %s", field, e.msg);
    if (s) *err = e;
    if (!s && text_invalid_utf8(*out)) {
        free(*out);
        *out = NULL;
        return row_fail(err, d, r, "field '%s': invalid UTF-8", field);
    }
    return s;
}

// Message list of a field: prompt messages [from, to) of list (an array or one message object).
static cJSON *dpo_messages(const cJSON *list, int from, int to, const char *field, char *why, size_t nwhy) {
    cJSON *msgs = cJSON_CreateArray();
    if (!msgs) {
        snprintf(why, nwhy, "out of memory");
        return NULL;
    }
    if (!cJSON_IsArray(list)) {
        if (!chat_append(msgs, list, field, why, nwhy)) cJSON_Delete(msgs), msgs = NULL;
        return msgs;
    }
    for (int i = from; i < to; i++) {
        cJSON *m = chat_message(cJSON_GetArrayItem(list, i), field, i, why, nwhy);
        if (!m || !cJSON_AddItemToArray(msgs, m)) {
            cJSON_Delete(m);
            cJSON_Delete(msgs);
            return NULL;
        }
    }
    return msgs;
}

static size_t common_prefix(const char *a, const char *b) {
    size_t i = 0;
    while (a[i] && a[i] == b[i]) i++;
    return i;
}

// Conversational DPO row as TRL's maybe_extract_prompt + apply_chat_template: the prompt messages
// rendered with the generation prompt, prompt + each response rendered whole, and each response is what
// follows the prompt's text (the prompt cut to the common start of both renderings first).
static rlhf_status dpo_chat_texts(const dataset *d, int r, const pref_opts *o, char **prompt, char **chosen,
                                  char **rejected, rlhf_err *err) {
    const cJSON *row = d->rows[r];
    const cJSON *conv = cJSON_GetObjectItemCaseSensitive(row, "conversations");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(row, "chosen"), *j = cJSON_GetObjectItemCaseSensitive(row, "rejected");
    if (!c || cJSON_IsNull(c)) return row_fail(err, d, r, "field 'chosen' missing");
    if (!j || cJSON_IsNull(j)) return row_fail(err, d, r, "field 'rejected' missing");
    const cJSON *p = cJSON_IsArray(conv) ? conv : cJSON_GetObjectItemCaseSensitive(row, "prompt");
    const char *pfield = cJSON_IsArray(conv) ? "conversations" : "prompt";
    int pn, c0 = 0, j0 = 0;
    const cJSON *plist;
    if (p && !cJSON_IsNull(p)) {
        if (!cJSON_IsArray(p)) return row_fail(err, d, r, "field 'prompt' must be a list of messages when 'chosen' is one");
        plist = p, pn = cJSON_GetArraySize(p);
    } else {  // implicit: the common leading messages (TRL extract_prompt)
        if (!cJSON_IsArray(c) || !cJSON_IsArray(j))
            return row_fail(err, d, r, "fields 'chosen' and 'rejected' must both be message lists");
        int nc = cJSON_GetArraySize(c), nj = cJSON_GetArraySize(j), k = 0;
        while (k < nc && k < nj && messages_equal(cJSON_GetArrayItem(c, k), cJSON_GetArrayItem(j, k))) k++;
        if (k == 0)
            return row_fail(err, d, r, "'chosen' and 'rejected' share no leading messages, so there is no prompt "
                            "(give a 'prompt' field)");
        plist = c, pn = k, c0 = j0 = k, pfield = "chosen";
    }
    char why[256] = "out of memory";
    cJSON *pm = dpo_messages(plist, 0, pn, pfield, why, sizeof why);
    if (!pm) return row_fail(err, d, r, "%s", why);
    const cJSON *last = cJSON_GetArrayItem(pm, cJSON_GetArraySize(pm) - 1);
    const cJSON *role = last ? cJSON_GetObjectItemCaseSensitive(last, "role") : NULL;
    if (!cJSON_IsString(role) || (strcmp(role->valuestring, "user") && strcmp(role->valuestring, "tool"))) {
        cJSON_Delete(pm);
        return row_fail(err, d, r, "the prompt's last message must have role \"user\" or \"tool\" (the answer "
                        "follows it), got %s", cJSON_IsString(role) ? role->valuestring : "none");
    }
    char *ptext = NULL, *full[2] = {NULL, NULL};
    RLHF_TRY(dpo_render(d, r, o, pfield, cJSON_Duplicate(pm, 1), 1, &ptext, err));
    const cJSON *resp[2] = {c, j};
    const int from[2] = {c0, j0};
    const char *fields[2] = {"chosen", "rejected"};
    char *outs[2] = {NULL, NULL};
    rlhf_status s = RLHF_OK;
    for (int k = 0; k < 2 && !s; k++) {
        cJSON *all = cJSON_Duplicate(pm, 1);
        int n = cJSON_IsArray(resp[k]) ? cJSON_GetArraySize(resp[k]) : 1;
        cJSON *rm = dpo_messages(resp[k], from[k], n, fields[k], why, sizeof why);
        if (!all || !rm) {
            cJSON_Delete(all);
            cJSON_Delete(rm);
            s = row_fail(err, d, r, "%s", why);
            break;
        }
        while (cJSON_GetArraySize(rm) > 0) cJSON_AddItemToArray(all, cJSON_DetachItemFromArray(rm, 0));
        cJSON_Delete(rm);
        s = dpo_render(d, r, o, fields[k], all, 0, &full[k], err);
        if (s) break;
        ptext[common_prefix(ptext, full[k])] = '\0';
        size_t np = strlen(ptext);
        outs[k] = str_dup_n(full[k] + np, strlen(full[k]) - np);
        if (!outs[k]) s = rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    }
    cJSON_Delete(pm);
    free(full[0]);
    free(full[1]);
    if (s) {
        free(ptext);
        free(outs[0]);
        free(outs[1]);
        return s;
    }
    *prompt = ptext, *chosen = outs[0], *rejected = outs[1];
    return RLHF_OK;
}

// Pre-tokenized DPO ids: the first of two field names present.
static rlhf_status dpo_ids(const dataset *d, int r, const pref_opts *o, const char *a, const char *b, int required,
                           id_buf *out, rlhf_err *err) {
    const char *f = has_field(d->rows[r], a) ? a : b;
    int32_t *ids = NULL;
    int n = 0;
    RLHF_TRY(dataset_get_ids(d, r, f, required, o->vocab_size, &ids, &n, err));
    out->ids = ids, out->n = out->cap = n;
    if (required && n == 0) return row_fail(err, d, r, "field '%s' is empty", f);
    return RLHF_OK;
}

// Truncates and joins prompt + response into seq, as TRL: the prompt keeps its end, the response its
// start, then the whole keeps its start or end.
static rlhf_status dpo_join(const dataset *d, int r, const pref_opts *o, const char *field, const id_buf *p,
                            const id_buf *c, token_seq *seq, int *prompt_n, int *truncated, rlhf_err *err) {
    int np = p->n, nc = c->n, p0 = 0;
    if (o->max_prompt_length > 0 && np > o->max_prompt_length) p0 = np - o->max_prompt_length, np -= p0, *truncated = 1;
    if (o->max_completion_length > 0 && nc > o->max_completion_length) nc = o->max_completion_length, *truncated = 1;
    int n = np + nc, from = 0;
    int pn = np;
    if (o->max_length > 0 && n > o->max_length) {
        *truncated = 1;
        if (!o->keep_start) {
            from = n - o->max_length;
            pn = np > from ? np - from : 0;
        } else if (pn > o->max_length) {
            pn = o->max_length;
        }
        n = o->max_length;
    }
    // scored tokens: response tokens with a token before them
    int scored = n - (pn > 1 ? pn : 1);
    if (scored < 1)
        return row_fail(err, d, r, "field '%s': no response token is left to score after truncation (prompt %d, "
                        "response %d tokens; --max_length %d, --max_prompt_length %d, --truncation_mode %s)",
                        field, p->n, c->n, o->max_length, o->max_prompt_length, o->keep_start ? "keep_start" : "keep_end");
    seq->ids = malloc(sizeof(int32_t) * (size_t)n);
    seq->type_ids = calloc((size_t)n, sizeof(int32_t));
    if (!seq->ids || !seq->type_ids) return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    for (int i = 0; i < n; i++) {
        int k = from + i;  // index into prompt[p0..] + response[..nc]
        seq->ids[i] = k < np ? p->ids[p0 + k] : c->ids[k - np];
    }
    seq->n = n;
    *prompt_n = pn;
    return RLHF_OK;
}

static rlhf_status dpo_build_row(const dataset *d, int r, const pref_opts *o, pref_row *out, int *truncated,
                                 rlhf_err *err) {
    const cJSON *row = d->rows[r];
    id_buf p = {0}, c = {0}, j = {0};
    rlhf_status s = RLHF_OK;
    out->is_pair = 1;
    if (has_field(row, "chosen_input_ids") || has_field(row, "chosen_ids") || has_field(row, "rejected_input_ids") ||
        has_field(row, "rejected_ids")) {
        s = dpo_ids(d, r, o, "prompt_input_ids", "prompt_ids", 0, &p, err);
        if (!s) s = dpo_ids(d, r, o, "chosen_input_ids", "chosen_ids", 1, &c, err);
        if (!s) s = dpo_ids(d, r, o, "rejected_input_ids", "rejected_ids", 1, &j, err);
        if (!s && !has_field(row, "prompt_input_ids") && !has_field(row, "prompt_ids")) {
            // implicit prompt: the common start, leaving each response at least one token
            int k = 0;
            while (k < c.n - 1 && k < j.n - 1 && c.ids[k] == j.ids[k]) k++;
            if (k > 0) {
                s = idb_add(&p, c.ids, k) ? RLHF_OK : rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
                memmove(c.ids, c.ids + k, sizeof(int32_t) * (size_t)(c.n - k)), c.n -= k;
                memmove(j.ids, j.ids + k, sizeof(int32_t) * (size_t)(j.n - k)), j.n -= k;
            }
        }
    } else if (has_field(row, "chosen") || has_field(row, "rejected") || has_field(row, "conversations")) {
        char *prompt = NULL, *chosen = NULL, *rejected = NULL;
        s = need_tokenizer(d, r, o, err);
        if (!s && row_is_conversational(row)) {
            if (!o->chat)
                s = row_fail(err, d, r, "fields 'chosen'/'rejected' are messages, but %s has no \"chat_template\" in "
                             "tokenizer_config.json to render them (give plain text rows instead)",
                             o->model_dir ? o->model_dir : "the model directory");
            else
                s = dpo_chat_texts(d, r, o, &prompt, &chosen, &rejected, err);
        } else if (!s) {
            s = pair_texts(d, r, &prompt, &chosen, &rejected, err);
        }
        if (!s) s = nonempty_response(d, r, "chosen", chosen, err);
        if (!s) s = nonempty_response(d, r, "rejected", rejected, err);
        if (!s) s = dpo_encode(d, r, o, "prompt", prompt, &p, err);
        if (!s) s = dpo_encode(d, r, o, "chosen", chosen, &c, err);
        if (!s) s = dpo_encode(d, r, o, "rejected", rejected, &j, err);
        const int32_t eos = o->eos_id;
        if (!s && eos >= 0 && (!idb_add(&c, &eos, 1) || !idb_add(&j, &eos, 1)))
            s = rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
        free(prompt);
        free(chosen);
        free(rejected);
    } else {
        s = row_fail(err, d, r,
                     "field 'chosen' missing (expected \"chosen\" and \"rejected\" with an optional \"prompt\", or "
                     "pre-tokenized \"chosen_input_ids\" and \"rejected_input_ids\" with an optional "
                     "\"prompt_input_ids\")");
    }
    if (!s) s = dpo_join(d, r, o, "chosen", &p, &c, &out->chosen, &out->chosen_prompt_n, truncated, err);
    if (!s) s = dpo_join(d, r, o, "rejected", &p, &j, &out->rejected, &out->rejected_prompt_n, truncated, err);
    free(p.ids);
    free(c.ids);
    free(j.ids);
    return s;
}

static rlhf_status build_row(const dataset *d, int r, const pref_opts *o, pref_row *out, int *truncated,
                             rlhf_err *err) {
    const cJSON *row = d->rows[r];
    memset(out, 0, sizeof *out);
    out->line = d->lines[r];
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(row, "margin");
    if (m && !cJSON_IsNull(m)) {
        if (!cJSON_IsNumber(m) || !isfinite(m->valuedouble))
            return row_fail(err, d, r, "field 'margin' must be a finite number");
        out->margin = (float)m->valuedouble;
    }
    int trunc = 0;
    rlhf_status s = RLHF_OK;
    if (o->dpo) {
        s = dpo_build_row(d, r, o, out, &trunc, err);
    } else if (has_field(row, "chosen_ids") || has_field(row, "rejected_ids")) {
        out->is_pair = 1;
        s = pretok_seq(d, r, o, "chosen_ids", "chosen_token_type_ids", &out->chosen, &trunc, err);
        if (!s) s = pretok_seq(d, r, o, "rejected_ids", "rejected_token_type_ids", &out->rejected, &trunc, err);
    } else if (has_field(row, "input_ids") && o->allow_single) {
        s = pretok_seq(d, r, o, "input_ids", "token_type_ids", &out->chosen, &trunc, err);
    } else if (has_field(row, "chosen") || has_field(row, "rejected") || has_field(row, "conversations")) {
        out->is_pair = 1;
        char *prompt = NULL, *chosen = NULL, *rejected = NULL;
        s = need_tokenizer(d, r, o, err);
        if (!s && o->chat && o->is_decoder && row_is_conversational(row)) {
            s = chat_pair(d, r, o, out, &trunc, err);
            goto done;
        }
        if (!s) s = pair_texts(d, r, &prompt, &chosen, &rejected, err);
        if (!s) s = nonempty_response(d, r, "chosen", chosen, err);
        if (!s) s = nonempty_response(d, r, "rejected", rejected, err);
        if (!s) s = encode_field(d, r, o, "chosen", prompt, chosen, &out->chosen, &trunc, err);
        if (!s) s = encode_field(d, r, o, "rejected", prompt, rejected, &out->rejected, &trunc, err);
        free(prompt);
        free(chosen);
        free(rejected);
    } else if (o->allow_single && (has_field(row, "response") || has_field(row, "completion"))) {
        // "completion": `rlhf generate`'s output rows (and TRL's prompt-completion layout) chain into score; an
        // empty generated completion is scored as it is (the model stopped at once), not refused.
        const char *rf = has_field(row, "response") ? "response" : "completion";
        char *prompt = NULL, *response = NULL;
        s = need_tokenizer(d, r, o, err);
        if (!s) s = field_text(d, r, "prompt", 0, &prompt, err);
        if (!s) s = field_text(d, r, rf, 1, &response, err);
        if (!s && !strcmp(rf, "response") && !o->allow_empty_response) s = nonempty_response(d, r, rf, response, err);
        if (!s) s = encode_field(d, r, o, rf, prompt, response, &out->chosen, &trunc, err);
        free(prompt);
        free(response);
    } else {
        s = o->allow_single
                ? row_fail(err, d, r,
                           "expected \"chosen\" and \"rejected\" (with an optional \"prompt\"), \"response\" or "
                           "\"completion\" (with an optional \"prompt\"; rlhf generate's rows), \"chosen_ids\" and "
                           "\"rejected_ids\", or \"input_ids\"")
                : row_fail(err, d, r,
                           "field 'chosen' missing (expected \"chosen\" and \"rejected\" with an optional "
                           "\"prompt\", or pre-tokenized \"chosen_ids\" and \"rejected_ids\")");
    }
done:
    if (s) {
        seq_free(&out->chosen);
        seq_free(&out->rejected);
        return s;
    }
    *truncated = trunc;
    return RLHF_OK;
}

static rlhf_status pref_set_build_with(pref_set *out, const dataset *d, const pref_opts *o, rlhf_err *err);

rlhf_status pref_set_build(pref_set *out, const dataset *d, const pref_opts *o, rlhf_err *err) {
    memset(out, 0, sizeof *out);
    if (d->n <= 0) return rlhf_fail(err, RLHF_EINPUT, "%s: no rows (empty dataset)", d->path);
    // Decoders read conversational rows through the model's own chat template when it ships one.
    chat_template *owned = NULL;
    pref_opts oo = *o;
    if (!oo.chat && !oo.no_chat_template && oo.is_decoder && oo.tok && oo.model_dir) {
        RLHF_TRY(chat_template_load_dir(&owned, oo.model_dir, err));
        oo.chat = owned;
    }
    rlhf_status s = pref_set_build_with(out, d, &oo, err);
    chat_template_free(owned);
    return s;
}

static rlhf_status pref_set_build_with(pref_set *out, const dataset *d, const pref_opts *o, rlhf_err *err) {
    pref_row *rows = calloc((size_t)d->n, sizeof *rows);
    row_errors *errs = calloc(1, sizeof *errs);
    if (!rows || !errs) {
        free(rows);
        free(errs);
        return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    }
    int n_trunc = 0, has_margin = 0, n_plain = 0;
    for (int r = 0; r < d->n; r++) {
        rlhf_err e;
        rlhf_err_clear(&e);
        int truncated = 0;
        rlhf_status s = build_row(d, r, o, &rows[r], &truncated, &e);
        if (s == RLHF_ERUNTIME) {  // not the row's fault: stop now
            for (int k = 0; k <= r; k++) {
                seq_free(&rows[k].chosen);
                seq_free(&rows[k].rejected);
            }
            free(rows);
            free(errs);
            *err = e;
            return s;
        }
        if (s != RLHF_OK) {
            row_errors_add(errs, e.msg);
            continue;
        }
        if (has_field(d->rows[r], "margin")) has_margin = 1;
        n_trunc += truncated;
        if (row_has_messages(d->rows[r]) && !(o->chat && o->is_decoder && row_is_conversational(d->rows[r])))
            n_plain++;
    }
    if (errs->count > 0) {
        for (int k = 0; k < d->n; k++) {
            seq_free(&rows[k].chosen);
            seq_free(&rows[k].rejected);
        }
        free(rows);
        row_errors_fail(errs, d->path, err);
        free(errs);
        return RLHF_EINPUT;
    }
    free(errs);
    out->rows = rows;
    out->n = d->n;
    out->n_truncated = n_trunc;
    out->has_margin = has_margin;
    out->n_plain_chat = n_plain;
    return RLHF_OK;
}

void pref_set_free(pref_set *s) {
    for (int i = 0; i < s->n; i++) {
        seq_free(&s->rows[i].chosen);
        seq_free(&s->rows[i].rejected);
    }
    free(s->rows);
    memset(s, 0, sizeof *s);
}

rlhf_status pref_set_split(pref_set *all, double fraction, uint64_t seed, pref_set *train, pref_set *eval,
                           rlhf_err *err) {
    memset(train, 0, sizeof *train);
    memset(eval, 0, sizeof *eval);
    if (!(fraction > 0 && fraction < 1))
        return rlhf_fail(err, RLHF_EINPUT, "--eval_split: expected a fraction in (0, 1), got %g", fraction);
    int n = all->n, n_eval = (int)ceil(fraction * n);
    if (n_eval < 1 || n_eval >= n)
        return rlhf_fail(err, RLHF_EINPUT,
                         "--eval_split %g of %d rows leaves %d for evaluation and %d for training; both need one",
                         fraction, n, n_eval, n - n_eval);
    int *perm = malloc(sizeof(int) * (size_t)n);
    train->rows = malloc(sizeof(pref_row) * (size_t)(n - n_eval));
    eval->rows = malloc(sizeof(pref_row) * (size_t)n_eval);
    if (!perm || !train->rows || !eval->rows) {
        free(perm);
        free(train->rows);
        free(eval->rows);
        train->rows = eval->rows = NULL;
        return rlhf_fail(err, RLHF_ERUNTIME, "out of memory");
    }
    rng_permutation(rng_key(seed, RNG_STREAM_SPLIT, 0, 0), perm, n);
    for (int i = 0; i < n_eval; i++) eval->rows[i] = all->rows[perm[i]];
    for (int i = n_eval; i < n; i++) train->rows[i - n_eval] = all->rows[perm[i]];
    eval->n = n_eval;
    train->n = n - n_eval;
    train->has_margin = eval->has_margin = all->has_margin;
    train->n_truncated = all->n_truncated;
    train->n_plain_chat = all->n_plain_chat;
    free(perm);
    free(all->rows);
    memset(all, 0, sizeof *all);
    return RLHF_OK;
}
