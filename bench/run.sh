#!/usr/bin/env bash
# Runs benchmark sections and rebuilds bench/RESULTS.md from every section's last results.
# usage: bench/run.sh [BUILD_DIR] [SECTION... | --all | --list | --assemble]
#   no SECTION: the default set ($DEFAULT below: every row of issue 19's table, ~25 min on 2 cores);
#   SECTION: the name of a bench/SECTION.sh (e.g. qwen25, serve, mpi); --all: every section; --assemble: none,
#   only rebuild RESULTS.md from bench/results/ (after editing a hand-written section file).
# Each section bench/NAME.sh prints markdown; it goes to bench/results/NAME.md under a line saying when and
# under what load it ran, and the raw JSON of interleaved runs to bench/results/raw/NAME.jsonl. A section
# that is not rerun keeps its last file (and date), so slow opt-in sections are not lost. A section script
# that fails leaves its previous file in place. Files in bench/results/ without a script (measured by hand)
# are kept as they are. RESULTS.md = the header + bench/results/*.md in the order of $ORDER, then the rest.
# Set BENCH_LOCK=/path/to/lockfile to take `flock` on it around every single timed run (shared machines).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=build
if [ $# -gt 0 ] && [ -d "$1" ]; then BUILD=$1; shift; fi
DEFAULT="system reward_step profile decoder ppo"
ORDER="issue19 system reward_step profile gemm_libs decoder ppo grpo dpo memory checkpointing reward_e2e tokenizer_bench serve mpi qwen25"
all_sections() { for s in bench/*.sh; do s=${s#bench/}; s=${s%.sh}; case $s in run | lib) ;; *) echo "$s" ;; esac; done; }
sections=()
if [ $# -eq 0 ]; then
  read -r -a sections <<<"$DEFAULT"
elif [ "$1" = --all ]; then
  mapfile -t sections < <(all_sections)
elif [ "$1" = --assemble ]; then
  sections=()
elif [ "$1" = --list ]; then
  echo "default: $DEFAULT"; echo "all: $(all_sections | tr '\n' ' ')"; exit 0
else
  sections=("$@")
fi
for s in "${sections[@]+"${sections[@]}"}"; do
  [ -f "bench/$s.sh" ] || { echo "bench/run.sh: no section '$s' (bench/$s.sh); try --list" >&2; exit 2; }
done
mkdir -p bench/results/raw
. bench/lib.sh   # OPENBLAS_CORETYPE, THREADS
for s in "${sections[@]+"${sections[@]}"}"; do
  echo "running bench/$s.sh ($(date -u +%H:%M:%S), load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  tmp=bench/results/$s.md.tmp
  load0=$(cut -d' ' -f1 /proc/loadavg)
  t0=$(date +%s)
  : >"bench/results/raw/$s.jsonl"
  if BENCH_RAW=$PWD/bench/results/raw/$s.jsonl bash "bench/$s.sh" "$BUILD" >"$tmp.body"; then
    {
      cat "$tmp.body"
      echo "_Section \`$s\` written by \`bench/run.sh\` on $(date -u '+%Y-%m-%d %H:%M') UTC in $(( $(date +%s) - t0 )) s, commit"
      echo "$(git rev-parse --short HEAD 2>/dev/null || echo '?'), load average $load0 at the start and $(cut -d' ' -f1 /proc/loadavg) at the end._"
      echo
    } >"$tmp"
    mv "$tmp" "bench/results/$s.md"
  else
    echo "bench/run.sh: section $s failed (exit $?); bench/results/$s.md keeps its previous results" >&2
  fi
  rm -f "$tmp" "$tmp.body"
done
{
  echo "# Benchmark results"
  echo
  echo "Assembled by \`bench/run.sh\` on $(date -u +%Y-%m-%d) from bench/results/*.md; each section says when it was"
  echo "measured (sections not rerun keep their last results). Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'),"
  echo "$(free -g | awk '/Mem:/{print $2}') GiB. Ratios > 1 mean rlhf is faster. Default run: \`make bench\` ($DEFAULT);"
  echo "others: \`bench/run.sh build NAME\` (\`--list\`)."
  echo
  done_list=" "
  for s in $ORDER $(ls bench/results/*.md 2>/dev/null | sed 's|bench/results/||; s|\.md$||'); do
    case $done_list in *" $s "*) continue ;; esac
    done_list="$done_list$s "
    [ -f "bench/results/$s.md" ] && cat "bench/results/$s.md"
  done
} >bench/RESULTS.md.tmp
mv bench/RESULTS.md.tmp bench/RESULTS.md
echo "wrote bench/RESULTS.md" >&2
