#!/usr/bin/env bash
# Builds the libFuzzer targets (not part of the CMake build): tests/fuzz/build.sh [OUT_DIR]
# Targets: fuzz_safetensors, fuzz_dataset, fuzz_tokenizer (tokenizer.json loading + encode/decode), fuzz_spm
# (SentencePiece model files), fuzz_config, fuzz_chat_template.
# Then e.g.: OUT/fuzz_safetensors -max_total_time=60 tests/fuzz/corpus/safetensors
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="${1:-$root/build-fuzz}"
mkdir -p "$out"
CC="${CC:-clang}"
flags=(-g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -I"$root/src" $(pkg-config --cflags libcjson))
libs=($(pkg-config --libs libcjson) -lz -lm)
base=("$root"/src/base/error.c "$root"/src/base/strbuf.c)
io=("$root"/src/io/safetensors.c "$root"/src/io/files.c "$root"/src/io/utf8.c)
"$CC" "${flags[@]}" "$root/tests/fuzz/fuzz_safetensors.c" "${io[@]}" "${base[@]}" "${libs[@]}" -o "$out/fuzz_safetensors"
"$CC" "${flags[@]}" "$root/tests/fuzz/fuzz_dataset.c" "$root/src/io/dataset.c" "$root/src/io/files.c" "$root/src/io/utf8.c" "${base[@]}" \
    "${libs[@]}" -o "$out/fuzz_dataset"
echo "built $out/fuzz_safetensors $out/fuzz_dataset"
# the SentencePiece ModelProto reader is generated from its .proto, as in the CMake build
mkdir -p "$out/gen"
protoc-c -I"$root/src/tokenizer/proto" --c_out="$out/gen" sentencepiece_model.proto
tok=($(ls "$root"/src/tokenizer/*.c | grep -v tokenizer_save) "$out/gen/sentencepiece_model.pb-c.c")
flags+=(-I"$out/gen")
libs+=($(pkg-config --libs libprotobuf-c))
"$CC" "${flags[@]}" $(pkg-config --cflags libpcre2-8 libutf8proc) "$root/tests/fuzz/fuzz_tokenizer.c" "${tok[@]}" \
    "${base[@]}" "${libs[@]}" -lpcre2-8 -lutf8proc -o "$out/fuzz_tokenizer"
echo "built $out/fuzz_tokenizer"
"$CC" "${flags[@]}" $(pkg-config --cflags libpcre2-8 libutf8proc) "$root/tests/fuzz/fuzz_spm.c" "${tok[@]}" \
    "${base[@]}" "${libs[@]}" -lpcre2-8 -lutf8proc -o "$out/fuzz_spm"
echo "built $out/fuzz_spm"
# config.json: the model layer (every family's configure and the spec table) with what it links: nn, io, base.
# OpenMP pragmas go to libgomp (as GCC's build), BLAS to OpenBLAS; neither runs here (no weights are allocated).
blas_inc=$(ls -d /usr/include/x86_64-linux-gnu/openblas-openmp /usr/include/aarch64-linux-gnu/openblas-openmp \
    /usr/include/openblas 2>/dev/null | head -n 1 || true)
models=($(ls "$root"/src/models/*.c "$root"/src/nn/*.c "$root"/src/io/*.c "$root"/src/base/*.c))
"$CC" "${flags[@]}" -fopenmp=libgomp ${blas_inc:+-I"$blas_inc"} "$root/tests/fuzz/fuzz_config.c" "${models[@]}" \
    "${libs[@]}" -lopenblas -lgomp -o "$out/fuzz_config"
echo "built $out/fuzz_config"
# chat templates (tokenizer_config.json "chat_template"): compile + render, the tokenizer layer's sources.
"$CC" "${flags[@]}" $(pkg-config --cflags libpcre2-8 libutf8proc) "$root/tests/fuzz/fuzz_chat_template.c" "${tok[@]}" \
    "${base[@]}" "${libs[@]}" -lpcre2-8 -lutf8proc -o "$out/fuzz_chat_template"
echo "built $out/fuzz_chat_template"
