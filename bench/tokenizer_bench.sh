#!/usr/bin/env bash
# Tokenizer throughput, rlhf (C) vs the Hugging Face tokenizers Rust core (npm @anush008/tokenizers 0.6.0),
# single-threaded, on the IMDB train reviews, BERT WordPiece and GPT-2 byte-level BPE. Prints a markdown
# section; the token totals of both must agree (same ids). usage: bench/tokenizer_bench.sh [BUILD_DIR]
#   env: TOK_BENCH_TEXTS (default 25000 = all), TOK_BENCH_WRITE=1 also replaces "## Tokenizers" in bench/RESULTS.md
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
DATA=../shared/data/imdb/train.jsonl.gz
N=${TOK_BENCH_TEXTS:-25000}
TOKS="tests/fixtures/tokenizers/bert-base-uncased tests/fixtures/tokenizers/gpt2"
BIN=$BUILD/bench_tokenizer
if [ ! -x "$BIN" ]; then   # not built by `make bench`: a standalone build of the tokenizer layer alone
  BIN=$(mktemp /tmp/bench_tokenizer.XXXXXX)
  cc -O2 -march=native -D_GNU_SOURCE -Isrc bench/bench_tokenizer.c $(ls src/tokenizer/*.c | grep -v tokenizer_save) \
    src/base/error.c -lcjson -lpcre2-8 -lutf8proc -lz -o "$BIN"
fi
[ -d tools/node_modules/@anush008/tokenizers ] || (cd tools && npm install --no-save @anush008/tokenizers@0.6.0 >/dev/null 2>&1)
c=$("$BIN" "$DATA" "$N" $TOKS)
r=$(RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false UV_THREADPOOL_SIZE=1 node bench/bench_tokenizer_node.js "$DATA" "$N" \
    $(for t in $TOKS; do echo "$t/tokenizer.json"; done))
section=$(/usr/bin/python3 - "$c" "$r" <<'PY'
import json, sys
c = [json.loads(l) for l in sys.argv[1].splitlines()]
r = [json.loads(l) for l in sys.argv[2].splitlines()]
print("## Tokenizers")
print()
print("IMDB train reviews (%d texts, %.1f MB), encoded one at a time with special tokens, single-threaded; rlhf" % (c[0]["texts"], c[0]["bytes"] / 1e6))
print("(C, bench/bench_tokenizer.c) vs the Hugging Face tokenizers Rust core through npm @anush008/tokenizers 0.6.0")
print("(bench/bench_tokenizer_node.js, sequential awaits, UV_THREADPOOL_SIZE=1). CPU seconds count every thread of")
print("the process and are the fairer figure on a shared machine; token totals agree, so both made the same ids.")
print()
print("| tokenizer | rlhf texts/s | HF texts/s | ratio (wall) | rlhf CPU s | HF CPU s | ratio (CPU) | tokens (rlhf = HF) |")
print("|---|---|---|---|---|---|---|---|")
for a, b in zip(c, r):
    name = a["tokenizer"].rstrip("/").split("/")[-1]
    same = "%d %s %d" % (a["tokens"], "=" if a["tokens"] == b["tokens"] else "!=", b["tokens"])
    print("| %s | %.0f | %.0f | %.2fx | %.2f | %.2f | %.2fx | %s |" % (name, a["texts_per_s"], b["texts_per_s"],
          b["seconds"] / a["seconds"], a["cpu_seconds"], b["cpu_seconds"], b["cpu_seconds"] / a["cpu_seconds"], same))
print()
PY
)
echo "$section"
if [ "${TOK_BENCH_WRITE:-0}" = 1 ]; then
  /usr/bin/python3 - "$section" <<'PY'
import os, re, sys
p = "bench/RESULTS.md"
old = open(p).read() if os.path.exists(p) else "# Benchmark results\n\n"
sec = sys.argv[1].rstrip() + "\n\n"
m = re.search(r"^## Tokenizers\n.*?(?=^## |\Z)", old, flags=re.S | re.M)
new = old[:m.start()] + sec + old[m.end():] if m else old.rstrip() + "\n\n" + sec
open(p + ".tmp", "w").write(new)
os.replace(p + ".tmp", p)
PY
fi
