// Chat templates: the Jinja template a model ships in tokenizer_config.json ("chat_template"), rendered
// as transformers' apply_chat_template(messages, tokenize=False, add_generation_prompt=...) renders it, so
// that conversational datasets become exactly the text the model was trained on. transformers renders
// with jinja2 (sandboxed, trim_blocks, lstrip_blocks, loop controls, its own tojson and
// raise_exception); this is the subset of Jinja that published chat templates use: text, {{ }}, {% if /
// elif / else %}, {% for x in xs [if c] %} (loop.*, else, break, continue), {% set %} (also ns.attr and
// block sets), {% generation %}, comments and whitespace control; expressions with literals, lists,
// dicts, attribute / item / slice access, calls, filters, tests, arithmetic, comparison, in, not, and,
// or, ~ and conditional expressions. Anything outside it is an error naming the template line, never a
// silent misrendering. tests/test_tokenizer_chat_template.c checks renderings against jinja2's.
#ifndef RLHF_TOKENIZER_CHAT_TEMPLATE_H
#define RLHF_TOKENIZER_CHAT_TEMPLATE_H

#include <cjson/cJSON.h>

#include "base/error.h"

typedef struct chat_template chat_template;  // compiled; immutable, so renders may run concurrently

// Compiles template source; what names it in errors ("DIR/tokenizer_config.json").
rlhf_status chat_template_compile(chat_template **out, const char *source, const char *what, rlhf_err *err);
void chat_template_free(chat_template *t);

// Reads DIR/tokenizer_config.json's "chat_template" (a string, or a list of {"name","template"} from
// which "default" is taken) with its bos_token / eos_token strings. *out is NULL when DIR has none.
rlhf_status chat_template_load_dir(chat_template **out, const char *dir, rlhf_err *err);

// Renders messages (a JSON array of {"role","content",...} objects; every field is visible to the
// template) into a malloc'd UTF-8 string. bos_token / eos_token: NULL = the ones read with the template
// (or empty). A template's raise_exception(...) is RLHF_EINPUT carrying its message.
rlhf_status chat_template_render(const chat_template *t, const cJSON *messages, int add_generation_prompt,
                                 const char *bos_token, const char *eos_token, char **out, rlhf_err *err);

#endif
