#!/bin/bash
# SIGKILL fault injection (issue 10): `rlhf reward` on a tiny BERT with a checkpoint every step is killed
# with SIGKILL at seeded random moments. After each kill: every checkpoint-N directory is whole (its four
# files byte-identical to the uninterrupted run's checkpoint-N: nothing half-written under a final name), the
# newest one scores, and --resume_from_checkpoint from it (a fresh run when there is none) ends with a
# model.safetensors byte-identical to the uninterrupted run's. RLHF_TEST_WRITE_DELAY_US (src/io/files.c)
# holds every temporary file a few ms before its rename, so many kills land inside checkpoint writes; the
# test counts them (a checkpoint-N.tmp directory or a *.tmp.* file present after the kill) and requires
# some. Trials: RLHF_FAULT_TRIALS, default 24 (8 when RLHF_SLOW_TESTS=0, as under ASan in `make test-asan`).
set -u
RLHF=${1:?usage: fault_injection.sh path/to/rlhf}
W=$(mktemp -d -t rlhf-fault.XXXXXX)
trap 'rm -rf "$W"' EXIT
M=tests/fixtures/hf/bert_seqcls_1   # vocab 128, no tokenizer: pre-tokenized rows
if [ "${RLHF_SLOW_TESTS:-1}" = 0 ]; then trials=${RLHF_FAULT_TRIALS:-8}; else trials=${RLHF_FAULT_TRIALS:-24}; fi
min_writes=$(((trials + 3) / 4))   # at least a quarter of the kills must land inside a checkpoint write
DELAY_US=3000
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
t0=$(date +%s%N)
RANDOM=10   # seeds both the dataset and the kill times: the test is reproducible
for i in $(seq 1 40); do
  c=$(for _ in $(seq 1 $((3 + RANDOM % 9))); do printf '%d,' $((1 + RANDOM % 127)); done)
  r=$(for _ in $(seq 1 $((3 + RANDOM % 9))); do printf '%d,' $((1 + RANDOM % 127)); done)
  echo "{\"chosen_ids\": [${c%,}], \"rejected_ids\": [${r%,}]}"
done >"$W/pairs.jsonl"
echo '{"chosen_ids": [1, 2, 3], "rejected_ids": [4, 5]}' >"$W/one.jsonl"
# 40 pairs / batch 2 = 20 steps, each saved as checkpoint-N (config.json, model.safetensors,
# optimizer.safetensors, trainer_state.json).
args=(reward --model_name_or_path "$M" --dataset_name "$W/pairs.jsonl" --per_device_train_batch_size 2
  --num_train_epochs 1 --learning_rate 1e-3 --seed 3 --save_strategy steps --save_steps 1 --logging_steps 1
  --threads 1 --quiet)
files=(config.json model.safetensors optimizer.safetensors trainer_state.json)
s0=$(date +%s%N)
RLHF_TEST_WRITE_DELAY_US=$DELAY_US "$RLHF" "${args[@]}" --output_dir "$W/full" >/dev/null 2>"$W/full.err" ||
  { tail -n 3 "$W/full.err"; echo "FAIL: uninterrupted run"; exit 1; }
span_ms=$((($(date +%s%N) - s0) / 1000000))
[ -d "$W/full/checkpoint-20" ] || { echo "FAIL: uninterrupted run left no checkpoint-20"; exit 1; }
kills=0 in_write=0 finished=0 resumed=0 fresh=0
for t in $(seq 1 "$trials"); do
  out="$W/t$t"
  at_ms=$((RANDOM % (span_ms > 1 ? span_ms : 1)))
  RLHF_TEST_WRITE_DELAY_US=$DELAY_US "$RLHF" "${args[@]}" --output_dir "$out" >/dev/null 2>"$W/t$t.err" &
  pid=$!
  sleep "$(printf '%d.%03d' $((at_ms / 1000)) $((at_ms % 1000)))"
  kill -KILL "$pid" 2>/dev/null
  { wait "$pid"; } 2>/dev/null
  code=$?
  if [ "$code" = 137 ]; then kills=$((kills + 1))
  elif [ "$code" = 0 ]; then finished=$((finished + 1))
  else fail "trial $t: exit $code before the kill ($(tail -n 1 "$W/t$t.err"))"; continue; fi
  # What the kill interrupted: a checkpoint directory being built or a file not yet renamed into place.
  if compgen -G "$out/checkpoint-*.tmp" >/dev/null || [ -n "$(find "$out" -name '*.tmp.*' 2>/dev/null | head -n 1)" ]; then
    in_write=$((in_write + 1))
  fi
  # The final save happens once, at the end: if model.safetensors is there, it is the whole final model.
  [ ! -e "$out/model.safetensors" ] || cmp -s "$out/model.safetensors" "$W/full/model.safetensors" ||
    fail "trial $t (killed at ${at_ms} ms): a partial or different model.safetensors under its final name"
  newest="" newest_n=-1
  for d in "$out"/checkpoint-*; do
    [[ $d =~ /checkpoint-([0-9]+)$ ]] || continue
    n=${BASH_REMATCH[1]}
    for f in "${files[@]}"; do
      cmp -s "$d/$f" "$W/full/checkpoint-$n/$f" || fail "trial $t (killed at ${at_ms} ms): checkpoint-$n/$f missing or differs"
    done
    [ -z "$(ls "$d" | grep -v -x -e config.json -e model.safetensors -e optimizer.safetensors -e trainer_state.json)" ] ||
      fail "trial $t: checkpoint-$n holds extra files: $(ls "$d")"
    [ "$n" -gt "$newest_n" ] && newest_n=$n newest=$d
  done
  if [ -n "$newest" ]; then
    "$RLHF" score --model_name_or_path "$newest" --dataset_name "$W/one.jsonl" >/dev/null 2>"$W/t$t.score.err" ||
      fail "trial $t: rlhf score on $(basename "$newest") failed ($(tail -n 1 "$W/t$t.score.err"))"
    "$RLHF" "${args[@]}" --output_dir "$out" --resume_from_checkpoint "$newest" >/dev/null 2>"$W/t$t.res.err" ||
      { fail "trial $t: resume from $(basename "$newest"): exit $? ($(tail -n 1 "$W/t$t.res.err"))"; continue; }
    resumed=$((resumed + 1))
  else
    "$RLHF" "${args[@]}" --output_dir "$out" --overwrite_output_dir >/dev/null 2>"$W/t$t.res.err" ||
      { fail "trial $t: rerun without a checkpoint: exit $? ($(tail -n 1 "$W/t$t.res.err"))"; continue; }
    fresh=$((fresh + 1))
  fi
  cmp -s "$out/model.safetensors" "$W/full/model.safetensors" ||
    fail "trial $t (killed at ${at_ms} ms, resumed from ${newest:-nothing}): final model differs from the uninterrupted run"
  rm -rf "$out"
done
secs=$((($(date +%s%N) - t0) / 1000000000))
echo "fault_injection: $trials trials over a ${span_ms} ms run: $kills SIGKILLs ($in_write during a checkpoint" \
  "write), $finished finished first; $resumed resumed from a checkpoint, $fresh rerun from scratch; ${secs}s"
[ "$kills" -ge $((trials / 2)) ] || fail "only $kills of $trials trials were killed mid-run"
[ "$in_write" -ge "$min_writes" ] || fail "only $in_write kills landed during a checkpoint write (need $min_writes)"
[ "$fails" = 0 ] && echo "fault_injection: all passed" || { echo "fault_injection: $fails failed"; exit 1; }
