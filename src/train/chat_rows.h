// Conversational rows of the causal-LM commands (sft, generate, ppo): a field holding a list of
// {"role","content"} messages is rendered with the model's chat template (tokenizer/chat_template.h),
// as TRL applies tokenizer.apply_chat_template to conversational datasets; the rendered text is then
// tokenized without adding special tokens (the template writes them). A conversational row for a
// model without a chat template is an error naming the row and the missing tokenizer_config.json
// field, as transformers refuses apply_chat_template without one.
#ifndef RLHF_TRAIN_CHAT_ROWS_H
#define RLHF_TRAIN_CHAT_ROWS_H

#include <cjson/cJSON.h>

#include "base/error.h"
#include "io/dataset.h"
#include "tokenizer/chat_template.h"

// 1 when row r's field is a JSON array (a list of messages).
int chat_field_is_messages(const dataset *d, int r, const char *field);

// Renders the messages of d.rows[r][field], followed by those of d.rows[r][more] when more is not NULL
// (prompt + completion), into a malloc'd text; add_generation_prompt as given. ct NULL: RLHF_EINPUT
// "FILE:LINE: field '...' is a list of messages, but MODEL_DIR has no chat_template ...". Template
// errors (raise_exception) come back as "FILE:LINE: field '...': ...".
rlhf_status chat_render_row(const dataset *d, int r, const char *field, const char *more, const chat_template *ct,
                            int add_generation_prompt, const char *model_dir, char **out, rlhf_err *err);

#endif
