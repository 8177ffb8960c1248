#!/usr/bin/env bash
# Builds the libFuzzer targets (not part of the CMake build): tests/fuzz/build.sh [OUT_DIR]
# Then e.g.: OUT/fuzz_safetensors -max_total_time=60 tests/fuzz/corpus/safetensors
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="${1:-$root/build-fuzz}"
mkdir -p "$out"
CC="${CC:-clang}"
flags=(-g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -I"$root/src" $(pkg-config --cflags libcjson))
libs=($(pkg-config --libs libcjson) -lz -lm)
base=("$root"/src/base/error.c)
io=("$root"/src/io/safetensors.c "$root"/src/io/files.c "$root"/src/io/utf8.c)
"$CC" "${flags[@]}" "$root/tests/fuzz/fuzz_safetensors.c" "${io[@]}" "${base[@]}" "${libs[@]}" -o "$out/fuzz_safetensors"
"$CC" "${flags[@]}" "$root/tests/fuzz/fuzz_dataset.c" "$root/src/io/dataset.c" "$root/src/io/files.c" "$root/src/io/utf8.c" "${base[@]}" \
    "${libs[@]}" -o "$out/fuzz_dataset"
echo "built $out/fuzz_safetensors $out/fuzz_dataset"
tok=($(ls "$root"/src/tokenizer/*.c | grep -v tokenizer_save))
"$CC" "${flags[@]}" $(pkg-config --cflags libpcre2-8 libutf8proc) "$root/tests/fuzz/fuzz_tokenizer.c" "${tok[@]}" \
    "${base[@]}" "${libs[@]}" -lpcre2-8 -lutf8proc -o "$out/fuzz_tokenizer"
echo "built $out/fuzz_tokenizer"
