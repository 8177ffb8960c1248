# shellcheck shell=bash
# Helpers shared by the bench sections (source it; BUILD and THREADS set by the caller).
#   interleave NAME METRIC DIRECTION CMD_RLHF CMD_TORCH
# runs CMD_RLHF, CMD_TORCH, CMD_RLHF, CMD_TORCH, ... REPS times each (default 3), each printing one JSON line
# with METRIC and peak_rss_mb, and prints one markdown row: the median of each side with its min-max spread,
# the ratio of the medians (rlhf faster > 1) with the range of the per-pair ratios, peak RSS of each side
# (largest of the runs) and rlhf's RSS as a share of PyTorch's. DIRECTION: "higher" (rates) or "lower"
# (seconds). Every raw JSON line is kept in bench/results/raw/<section>.jsonl for the record.
REPS=${REPS:-3}
THREADS=${THREADS:-$(nproc)}
export OMP_NUM_THREADS=$THREADS
# Both sides get OpenBLAS's AVX-512 kernels: Debian's OpenBLAS misdetects recent Xeons (see src/main.c).
if grep -q avx512bw /proc/cpuinfo && [ -z "${OPENBLAS_CORETYPE:-}" ]; then export OPENBLAS_CORETYPE=SkylakeX; fi
BENCH_RAW=${BENCH_RAW:-/dev/null}
# timed CMD...: runs CMD holding `flock $BENCH_LOCK` when BENCH_LOCK is set (one shared machine, many users).
# With BENCH_AUTOGROUP_NICE=N (root, shared machines only) CMD runs in its own session whose scheduler autogroup
# gets nice N: with kernel.sched_autogroup_enabled=1 (Debian's default) `nice -n 19` on other users' builds
# does not lower their share against a timed run started from another session (each session is one group and
# groups share the CPU equally), so without this a "quiet" timing still loses most of the cores to them.
timed() {
  local pre=()
  [ -n "${BENCH_LOCK:-}" ] && pre=(flock "$BENCH_LOCK")
  if [ -n "${BENCH_AUTOGROUP_NICE:-}" ]; then
    "${pre[@]}" setsid -w sh -c 'echo "$0" >/proc/self/autogroup && exec "$@"' "$BENCH_AUTOGROUP_NICE" "$@"
  else
    "${pre[@]}" "$@"
  fi
}

# row_wanted NAME: whether a section's row NAME runs: every row, or with BENCH_ROWS="NAME ..." only those (the
# ppo and grpo sections ask; a quick check of them at the tiny shapes: BENCH_ROWS=tiny bash bench/ppo.sh build).
row_wanted() { [ -z "${BENCH_ROWS:-}" ] || [[ " $BENCH_ROWS " == *" $1 "* ]]; }

# gpt2_setup W NAME H L NH P: random-init GPT-2 models as the ppo and grpo sections use them (50257-token
# vocabulary, dropout off): W/NAME-policy (an LM head, seed 1) and W/NAME-rm (a 1-label score head, seed 2),
# their tokenizer files removed, and W/NAME-prompts.jsonl: 64 rows of P random {"prompt_ids"} (below 50000: no
# EOS in a prompt). The PyTorch peers build the same shapes with their own random weights and prompts.
gpt2_setup() {
  local W=$1 name=$2 H=$3 L=$4 NH=$5 P=$6 d
  local cfg="\"model_type\": \"gpt2\", \"vocab_size\": 50257, \"n_positions\": 1024, \"n_embd\": $H, \"n_layer\": $L,
    \"n_head\": $NH, \"activation_function\": \"gelu_new\", \"resid_pdrop\": 0.0, \"embd_pdrop\": 0.0,
    \"attn_pdrop\": 0.0, \"layer_norm_epsilon\": 1e-05, \"initializer_range\": 0.02, \"bos_token_id\": 50256,
    \"eos_token_id\": 50256"
  echo "{\"architectures\": [\"GPT2LMHeadModel\"], $cfg}" >"$W/$name-policy.json"
  echo "{\"architectures\": [\"GPT2ForSequenceClassification\"], $cfg, \"num_labels\": 1}" >"$W/$name-rm.json"
  "$RLHF" init --config "$W/$name-policy.json" --tokenizer tests/fixtures/tokenizers/gpt2 --output_dir "$W/$name-policy" \
    --seed 1 >/dev/null 2>&1
  "$RLHF" init --config "$W/$name-rm.json" --tokenizer tests/fixtures/tokenizers/gpt2 --output_dir "$W/$name-rm" \
    --seed 2 >/dev/null 2>&1
  for d in policy rm; do
    rm -f "$W/$name-$d"/{tokenizer.json,vocab.json,merges.txt,tokenizer_config.json,special_tokens_map.json}
  done
  awk -v P="$P" 'BEGIN { srand(3); for (r = 0; r < 64; r++) { s = ""; for (i = 0; i < P; i++) s = s (i ? "," : "") int(rand() * 50000); print "{\"prompt_ids\": [" s "]}" } }' \
    >"$W/$name-prompts.jsonl"
}

# step_times W N BATCH RATE_KEY TIME_KEY CMD...: the in-process step time of an rlhf trainer run, as the PyTorch
# peers time theirs. CMD runs 1 + N steps with --logging_steps 1 and without --quiet, so it prints one JSON log
# line on stdout at the end of every step (flushed); each line's arrival is stamped here ($EPOCHREALTIME, no extra
# process). The first step (it pays the first touch of the gradient and optimizer buffers) is the warm-up, as on
# the PyTorch side; steps 2 .. N + 1 are the intervals between consecutive lines (sampling, rewards, update,
# logging: the whole step), loading and saving fall outside. Prints one JSON line: RATE_KEY (BATCH / TIME_KEY),
# TIME_KEY (the median step), "steps_s" (every timed step), "niced_cpu" (the share of the machine's CPU time
# that niced processes, i.e. other users' builds and tests, took during the timed steps: /proc/stat's "nice"
# column; ~0 on a quiet machine) and peak_rss_mb (the whole run, from /usr/bin/time); W/stamps keeps the
# stamped log lines (fixed seeds: the same metrics in every rerun).
step_times() {
  local W=$1 N=$2 B=$3 rate=$4 key=$5 line cpu
  shift 5
  /usr/bin/time -f "%M" -o "$W/time" "$@" 2>"$W/err" | while IFS= read -r line; do
    case $line in "{"*) read -r cpu </proc/stat && printf '%s\t%s\t%s\n' "$EPOCHREALTIME" "$cpu" "$line" ;; esac
  done >"$W/stamps" || { cat "$W/err" >&2; return 1; }
  /usr/bin/python3 - "$N" "$B" "$rate" "$key" "$(tail -n 1 "$W/time")" "$W/stamps" <<'PY'
import json, statistics, sys
n, b, rate, key, rss, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], float(sys.argv[5]), sys.argv[6]
rows = [line.split("\t") for line in open(path)]
if len(rows) != n + 1:
    sys.exit("step_times: expected %d log lines, got %d" % (n + 1, len(rows)))
t = [float(r[0]) for r in rows]
steps = [t1 - t0 for t0, t1 in zip(t, t[1:])]
s = statistics.median(steps)
c0, c1 = ([int(x) for x in rows[i][1].split()[1:]] for i in (0, -1))
d = [y - x for x, y in zip(c0, c1)]
print(json.dumps({rate: round(b / s, 4), key: round(s, 4), "steps_s": [round(x, 4) for x in steps],
                  "niced_cpu": round(d[1] / max(sum(d[:8]), 1), 3), "peak_rss_mb": round(rss / 1024)}))
PY
}

interleave() {
  local name=$1 metric=$2 dir=$3 a=$4 b=$5 fa fb i
  fa=$(mktemp) fb=$(mktemp)
  for ((i = 0; i < REPS; i++)); do
    eval "timed $a" >>"$fa" || echo '{"failed": 1}' >>"$fa"
    eval "timed $b" >>"$fb" || echo '{"failed": 1}' >>"$fb"
  done
  { sed "s/^/{\"row\": \"$name\", \"side\": \"rlhf\", \"run\": /; s/\$/}/" "$fa"
    sed "s/^/{\"row\": \"$name\", \"side\": \"torch\", \"run\": /; s/\$/}/" "$fb"; } >>"$BENCH_RAW"
  /usr/bin/python3 bench/stats.py "$name" "$metric" "$dir" "$fa" "$fb"
  rm -f "$fa" "$fb"
}

# The header that goes with interleave's rows; $1 = the metric's column title, e.g. "pairs/s".
interleave_header() {
  echo "| shape | rlhf $1 | PyTorch $1 | speed ratio | rlhf peak RSS MiB | PyTorch peak RSS MiB | RSS ratio |"
  echo "|---|---|---|---|---|---|---|"
}

interleave_note() {
  echo "Each cell: median of $REPS runs per side, interleaved (rlhf, PyTorch, rlhf, ...), with [min-max]; the"
  echo "speed ratio is median over median (> 1: rlhf faster) with [the range of the per-pair ratios]; peak RSS"
  echo "is the largest of the runs (whole process); the RSS ratio is rlhf's over PyTorch's."
}
