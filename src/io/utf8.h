// Strict UTF-8 validation shared by the dataset reader and the safetensors header check.
#ifndef RLHF_IO_UTF8_H
#define RLHF_IO_UTF8_H

#include <stddef.h>

// Returns the byte offset of the first invalid UTF-8 sequence in s[0..n), or -1 if s is valid
// (strict: no overlong forms, surrogates or code points above U+10FFFF).
long utf8_invalid_at(const char *s, size_t n);

#endif
