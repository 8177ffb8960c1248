// libFuzzer target for chat templates (tokenizer_config.json "chat_template"): the input is compiled as a
// template and, when it compiles, rendered over fixed conversations with and without the generation prompt;
// a NUL byte splits template and a JSON message list to render as well. Hostile templates (deep nesting,
// runaway loops, huge outputs) must come back as errors naming the line, never a crash, leak or hang.
// Built by tests/fuzz/build.sh; run from the repo root: build-fuzz/fuzz_chat_template tests/fuzz/corpus/chat_template
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/chat_template.h"

static const char *const CONVERSATIONS[] = {
    "[{\"role\": \"user\", \"content\": \"Hi\"}]",
    "[{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \"2+2?\"},"
    " {\"role\": \"assistant\", \"content\": \"4\"}, {\"role\": \"user\", \"content\": \"\\u00e9 \\ud83d\\ude00\"}]",
    "[]",
};

static void render(const chat_template *t, const cJSON *msgs) {
    for (int gen = 0; gen < 2; gen++) {
        char *out = NULL;
        rlhf_err err = {0};
        if (chat_template_render(t, msgs, gen, gen ? NULL : "<s>", gen ? NULL : "</s>", &out, &err) == RLHF_OK) free(out);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *buf = malloc(size + 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = 0;
    size_t first = strlen(buf);
    chat_template *t = NULL;
    rlhf_err err = {0};
    if (chat_template_compile(&t, buf, "fuzz", &err) == RLHF_OK) {
        for (size_t k = 0; k < sizeof CONVERSATIONS / sizeof CONVERSATIONS[0]; k++) {
            cJSON *msgs = cJSON_Parse(CONVERSATIONS[k]);
            if (msgs) render(t, msgs);
            cJSON_Delete(msgs);
        }
        if (first < size) {  // the bytes after the NUL: a message list of the fuzzer's own
            cJSON *msgs = cJSON_ParseWithLength(buf + first + 1, size - first - 1);
            if (msgs) render(t, msgs);
            cJSON_Delete(msgs);
        }
        chat_template_free(t);
    }
    free(buf);
    return 0;
}
