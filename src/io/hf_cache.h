// Hugging Face hub ids offline: "Qwen/Qwen2.5-0.5B" (or a legacy single name like "gpt2") that is not a
// local path is looked up in the local hub cache as transformers does with HF_HUB_OFFLINE=1. rlhf never
// downloads. The cache is $HF_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else
// ~/.cache/huggingface/hub; a model is models--ORG--NAME/snapshots/COMMIT/, COMMIT read from
// models--ORG--NAME/refs/REVISION (REVISION default "main"; a 40-hex commit is taken as is); without that
// ref, a repository with exactly one snapshot uses it.
#ifndef RLHF_IO_HF_CACHE_H
#define RLHF_IO_HF_CACHE_H

#include <stddef.h>

#include "base/error.h"

// s has the shape of a hub id (NAME or ORG/NAME; letters, digits, '.', '_', '-'; no "..") and is not an
// existing path.
int hf_is_hub_id(const char *s);
// The hub cache directory as above (out, n bytes).
void hf_cache_dir(char *out, size_t n);
// Resolves id (hf_is_hub_id) at revision (NULL: "main") to its snapshot directory. Not in the cache:
// RLHF_EINPUT saying so, that rlhf never downloads, and how to get it; what names the flag for the message.
rlhf_status hf_cache_resolve(const char *id, const char *revision, const char *what, char *out, size_t n,
                             rlhf_err *err);

#endif
