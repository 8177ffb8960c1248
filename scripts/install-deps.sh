#!/usr/bin/env bash
# Installs the Debian packages rlhf builds against, only where missing. Idempotent; run as root
# (or with sudo available). Used by `make test`, `make demo` and `.ci/run`.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config
  libopenblas-openmp-dev libopenblas0-openmp   # OpenMP OpenBLAS: one thread pool shared with our OpenMP code
  libcjson-dev libpcre2-dev libutf8proc-dev zlib1g-dev libyaml-dev   # libyaml: --config FILE.yaml
  python3                                      # the CLI tests' checks (standard library only: tests/cli/fresh_machine.sh)
  libprotobuf-c-dev protobuf-c-compiler          # SentencePiece tokenizer.model / spm.model files are protobufs
  openmpi-bin libopenmpi-dev                   # data-parallel runs: mpirun -np N build/rlhf ... (src/base/dist.c)
  libmicrohttpd-dev libcurl4-openssl-dev curl  # rlhf serve (HTTP server), remote rewards (HTTP client), tests
)
# Optional extras: `--bench` adds PyTorch for the side-by-side benchmarks; `--fuzz` adds clang's libFuzzer runtime;
# `--tools` adds SentencePiece's trainer and Python module (tools/train_spm_fixtures.sh, tools/gen_spm_fixtures.py).
for arg in "$@"; do
  case $arg in
    --bench) PACKAGES+=(python3-torch python3-numpy linux-perf libblis-dev libdnnl-dev libxsmm-dev) ;;  # perf: bench/profile.sh; GEMM libraries: bench/gemm_libs.sh
    --fuzz) PACKAGES+=(clang libclang-rt-14-dev) ;;
    --report) PACKAGES+=(chromium) ;;
    --tools) PACKAGES+=(sentencepiece python3-sentencepiece python3-protobuf) ;;
    *) echo "install-deps.sh: unknown option '$arg' (expected --bench, --fuzz, --report or --tools)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root to install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
