#!/usr/bin/env bash
# rlhf tokenize: exact output for --text / --text_pair / --input, --no_special_tokens, NUL-safe JSON rows,
# and exit 2 with FILE:LINE for bad rows. usage: tests/cli/tokenize.sh BUILD/rlhf
set -u
RLHF=${1:?usage: tokenize.sh RLHF_BINARY}
T=tests/fixtures/tokenizers
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
fail=0
check() { # name got want
  if [ "$2" == "$3" ]; then echo "ok   $1"; else echo "FAIL $1: got [$2] want [$3]"; fail=1; fi
}

got=$("$RLHF" tokenize --tokenizer $T/bert-base-uncased --text "Hello world")
check "bert text" "$got" '{"input_ids":[101,7592,2088,102],"token_type_ids":[0,0,0,0],"attention_mask":[1,1,1,1]}'
got=$("$RLHF" tokenize --tokenizer $T/bert-base-uncased --text "What is 2+2?" --text_pair "4")
check "bert pair" "$got" '{"input_ids":[101,2054,2003,1016,1009,1016,1029,102,1018,102],"token_type_ids":[0,0,0,0,0,0,0,0,1,1],"attention_mask":[1,1,1,1,1,1,1,1,1,1]}'
got=$("$RLHF" tokenize --tokenizer $T/gpt2 --text "Hello world" --no_special_tokens --threads 1)
check "gpt2 no specials" "$got" '{"input_ids":[15496,995],"token_type_ids":[0,0],"attention_mask":[1,1]}'
got=$("$RLHF" tokenize --tokenizer $T/bert-base-uncased --text "one two three four five" --max_length 4)
check "max_length" "$got" '{"input_ids":[101,2028,2048,102],"token_type_ids":[0,0,0,0],"attention_mask":[1,1,1,1]}'

printf '%s\n' '{"text": "Hello world", "pair": null}' '' '{"text": "a\u0000b", "pair": "c"}' '{"text": "x", "extra": 1}' >"$W/in.jsonl"
got=$("$RLHF" tokenize --tokenizer $T/gpt2 --input "$W/in.jsonl" --threads 2)
want='{"input_ids":[15496,995],"token_type_ids":[0,0],"attention_mask":[1,1]}
{"input_ids":[64,188,65,66],"token_type_ids":[0,0,0,1],"attention_mask":[1,1,1,1]}
{"input_ids":[87],"token_type_ids":[0],"attention_mask":[1]}'
check "jsonl rows (blank line skipped, NUL kept)" "$got" "$want"

# bad input: exit 2, message names FILE:LINE, nothing on stdout
printf '%s\n' '{"text": "fine"}' '{"text": 5}' >"$W/bad.jsonl"
out=$("$RLHF" tokenize --tokenizer $T/gpt2 --input "$W/bad.jsonl" 2>"$W/err"); c=$?
check "non-string text exit" "$c" 2
grep -q "bad.jsonl:2" "$W/err" || { echo "FAIL message lacks bad.jsonl:2: $(cat "$W/err")"; fail=1; }
check "nothing printed before validation" "$out" ""
printf '{"text": "ok"}\n{"text": "bad \xff byte"}\n' >"$W/utf8.jsonl"
"$RLHF" tokenize --tokenizer $T/gpt2 --input "$W/utf8.jsonl" >/dev/null 2>"$W/err"; c=$?
check "invalid UTF-8 exit" "$c" 2
grep -q "utf8.jsonl:2" "$W/err" || { echo "FAIL utf8 message: $(cat "$W/err")"; fail=1; }
printf '{"text": "ok"}\n{"text": \n' >"$W/json.jsonl"
"$RLHF" tokenize --tokenizer $T/gpt2 --input "$W/json.jsonl" >/dev/null 2>"$W/err"; c=$?
check "invalid JSON exit" "$c" 2
"$RLHF" tokenize --tokenizer $T/gpt2 >/dev/null 2>"$W/err"; c=$?
check "no text exit" "$c" 2
"$RLHF" tokenize --tokenizer "$W" --text hi >/dev/null 2>"$W/err"; c=$?
check "no tokenizer files exit" "$c" 2
grep -q "no tokenizer files" "$W/err" || { echo "FAIL missing-files message: $(cat "$W/err")"; fail=1; }
# SentencePiece model files without tokenizer.json (ids from the tokenizers Rust core on transformers' conversion)
got=$("$RLHF" tokenize --tokenizer $T/spm/llama-bpe --text "Hello world")
check "llama tokenizer.model" "$got" '{"input_ids":[1,392,284,736,464,358],"token_type_ids":[0,0,0,0,0,0],"attention_mask":[1,1,1,1,1,1]}'
got=$("$RLHF" tokenize --tokenizer $T/spm/deberta-v2 --text "Hello world" --text_pair "How many?")
check "deberta-v2 spm.model pair" "$got" '{"input_ids":[1,68,33,194,133,92,33,19,2,28,20,13,2],"token_type_ids":[0,0,0,0,0,0,0,0,0,1,1,1,1],"attention_mask":[1,1,1,1,1,1,1,1,1,1,1,1,1]}'
printf 'not a protobuf' >"$W/tokenizer.model"
"$RLHF" tokenize --tokenizer "$W" --text hi >/dev/null 2>"$W/err"; c=$?
check "corrupt tokenizer.model exit" "$c" 2
grep -q "tokenizer.model: not a SentencePiece model" "$W/err" || { echo "FAIL corrupt tokenizer.model message: $(cat "$W/err")"; fail=1; }
rm "$W/tokenizer.model"
"$RLHF" tokenize --tokenizer $T/gpt2 --text hi --bogus 1 >/dev/null 2>&1; c=$?
check "unknown flag exit" "$c" 2
"$RLHF" tokenize --help | grep -q -- "--no_special_tokens" || { echo "FAIL --help lacks flags"; fail=1; }
exit $fail
