#!/usr/bin/env bash
# Trains the small SentencePiece models under tests/fixtures/tokenizers/spm/ with Debian's spm_train
# (package `sentencepiece`, scripts/install-deps.sh --tools) on the first 3000 GSM8K questions bundled in
# data/gsm8k, one model per converter path rlhf implements: Llama-style BPE with and without byte fallback,
# Unigram with byte fallback under LlamaTokenizer, DeBERTa-v2's Unigram with the nmt_nfkc precompiled charsmap,
# and Gemma-style BPE (pad/eos/bos/unk at 0..3). Then run tools/gen_spm_fixtures.py and tools/gen_spm_ids.js.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=tests/fixtures/tokenizers/spm
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
python3 -c '
import json, sys
with open("data/gsm8k/train.jsonl") as f:
    for i, line in enumerate(f):
        if i == 3000: break
        print(json.loads(line)["question"])
' > "$TMP/corpus.txt"
common=(--input="$TMP/corpus.txt" --num_threads=1 --random_seed=1 --minloglevel=2)
train() {   # train NAME FILE ARGS...
  local name=$1 file=$2; shift 2
  mkdir -p "$OUT/$name"
  spm_train "${common[@]}" --model_prefix="$TMP/$name" "$@"
  cp "$TMP/$name.model" "$OUT/$name/$file"
}
# Llama's own settings (identity normalization, digits split, whitespace-only pieces, byte fallback)
train llama-bpe tokenizer.model --model_type=bpe --vocab_size=800 --character_coverage=0.9995 \
  --normalization_rule_name=identity --remove_extra_whitespaces=false --split_digits=true \
  --allow_whitespace_only_pieces=true --byte_fallback=true
# no byte fallback, whitespace runs collapsed by the slow tokenizer only (the converter ignores it), user-defined
# and control symbols
train llama-bpe-nobf tokenizer.model --model_type=bpe --vocab_size=700 --normalization_rule_name=identity \
  --user_defined_symbols='<|user|>,<|end|>' --control_symbols='<ctrl>'
train llama-unigram tokenizer.model --model_type=unigram --vocab_size=800 \
  --normalization_rule_name=identity --remove_extra_whitespaces=false --byte_fallback=true
# DeBERTa-v3's layout: [PAD] [CLS] [SEP] [UNK] at 0..3, nmt_nfkc charsmap, no byte fallback
train deberta-v2 spm.model --model_type=unigram --vocab_size=900 \
  --pad_id=0 --bos_id=1 --eos_id=2 --unk_id=3 --pad_piece='[PAD]' --bos_piece='[CLS]' --eos_piece='[SEP]' --unk_piece='[UNK]'
# Gemma's layout: <pad> <eos> <bos> <unk> at 0..3, identity, no dummy prefix, chat-turn symbols
train gemma tokenizer.model --model_type=bpe --vocab_size=800 --normalization_rule_name=identity \
  --add_dummy_prefix=false --remove_extra_whitespaces=false --split_digits=true --allow_whitespace_only_pieces=true \
  --byte_fallback=true --pad_id=0 --eos_id=1 --bos_id=2 --unk_id=3 --pad_piece='<pad>' --eos_piece='<eos>' \
  --bos_piece='<bos>' --unk_piece='<unk>' --user_defined_symbols='<start_of_turn>,<end_of_turn>'
ls -la "$OUT"/*/
