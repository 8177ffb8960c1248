#!/bin/bash
# Interruptions and write failures at the CLI (issue 10), on `rlhf reward` with a tiny BERT:
# - SIGTERM mid-run (no periodic checkpoints) saves checkpoint-{STEP}, exits 130, and the resumed run ends
#   byte-identical to an uninterrupted one (SIGINT: tests/cli/reward_resume.sh, ppo_resume.sh);
# - a full disk (`ulimit -f`: rlhf ignores SIGXFSZ, so the write fails with EFBIG) during a checkpoint and
#   during the final save: exit 1 (a runtime failure, not bad input), stderr names the file, the previous
#   checkpoint / model file is byte-identical and the checkpoint still resumes to the uninterrupted result;
# - an unwritable output directory (run as `nobody`: root writes anywhere): exit 2 naming the directory,
#   and a resume there leaves the existing checkpoint intact. Skipped with a message when there is no
#   setpriv or no unprivileged user.
set -u
RLHF=${1:?usage: fault_signals_disk.sh path/to/rlhf}
W=$(mktemp -d -t rlhf-fault-io.XXXXXX)
trap 'rm -rf "$W"' EXIT
chmod 755 "$W"   # readable by the unprivileged user below
M=tests/fixtures/hf/bert_seqcls_1
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
RANDOM=11
for i in $(seq 1 40); do
  c=$(for _ in $(seq 1 $((3 + RANDOM % 9))); do printf '%d,' $((1 + RANDOM % 127)); done)
  r=$(for _ in $(seq 1 $((3 + RANDOM % 9))); do printf '%d,' $((1 + RANDOM % 127)); done)
  echo "{\"chosen_ids\": [${c%,}], \"rejected_ids\": [${r%,}]}"
done >"$W/pairs.jsonl"
echo '{"chosen_ids": [1, 2, 3], "rejected_ids": [4, 5]}' >"$W/one.jsonl"
base=(reward --model_name_or_path "$M" --dataset_name "$W/pairs.jsonl" --per_device_train_batch_size 2
  --learning_rate 1e-3 --seed 3 --logging_steps 1 --threads 1 --quiet)

# ---- SIGTERM: 1000 steps (~3 s here), no periodic checkpoint; the stop itself saves one ---------------------
long=("${base[@]}" --num_train_epochs 50 --save_strategy steps --save_steps 100000)
"$RLHF" "${long[@]}" --output_dir "$W/term-full" >/dev/null 2>"$W/term-full.err" || fail "uninterrupted 400-step run"
"$RLHF" "${long[@]}" --output_dir "$W/term" >/dev/null 2>"$W/term.err" &
pid=$!
for _ in $(seq 1 500); do grep -qs "training pairs" "$W/term.err" && break; sleep 0.01; done
sleep 0.1   # the handler is installed right after that line; the run lasts seconds more
kill -TERM "$pid"
wait "$pid"
code=$?
ck=$(ls -d "$W"/term/checkpoint-* 2>/dev/null | grep -E 'checkpoint-[0-9]+$')
if [ "$code" != 130 ]; then fail "SIGTERM: exit $code, expected 130 ($(tail -n 1 "$W/term.err"))"
elif [ "$(echo "$ck" | grep -c .)" != 1 ]; then fail "SIGTERM: expected one checkpoint, found: $ck"
elif ! grep -q "interrupted: state saved in $ck" "$W/term.err"; then fail "SIGTERM: stderr does not name $ck"
else
  "$RLHF" "${long[@]}" --output_dir "$W/term" --resume_from_checkpoint "$ck" >/dev/null 2>"$W/term-res.err" ||
    fail "SIGTERM: resume from $(basename "$ck"): $(tail -n 1 "$W/term-res.err")"
  cmp -s "$W/term/model.safetensors" "$W/term-full/model.safetensors" ||
    fail "SIGTERM: resumed from $(basename "$ck"): model differs from the uninterrupted run"
fi

# ---- full disk during a checkpoint ---------------------------------------------------------------------
# 20 steps, a checkpoint each; model.safetensors is 98 kB and optimizer.safetensors 197 kB, so `ulimit -f 150`
# (kB) lets the model through and stops the optimizer file of the first checkpoint of the resumed run.
short=("${base[@]}" --num_train_epochs 1 --save_strategy steps --save_steps 1)
"$RLHF" "${short[@]}" --output_dir "$W/full" >/dev/null 2>"$W/full.err" || fail "uninterrupted 20-step run"
mkdir "$W/disk" && cp -r "$W/full/checkpoint-2" "$W/disk/" && cp -r "$W/full/checkpoint-2" "$W/ck2.copy"
(ulimit -f 150; exec "$RLHF" "${short[@]}" --output_dir "$W/disk" --resume_from_checkpoint "$W/disk/checkpoint-2") \
  >/dev/null 2>"$W/disk.err"
code=$?
if [ "$code" != 1 ]; then fail "full disk during a checkpoint: exit $code, expected 1 ($(tail -n 1 "$W/disk.err"))"
elif ! grep -q "checkpoint-3.tmp/optimizer.safetensors: file size limit exceeded" "$W/disk.err"; then
  fail "full disk during a checkpoint: stderr does not name the file: $(tail -n 1 "$W/disk.err")"
fi
[ -e "$W/disk/checkpoint-3" ] && fail "full disk: a checkpoint-3 directory appeared under its final name"
[ -e "$W/disk/checkpoint-3.tmp" ] && fail "full disk: the half-built checkpoint-3.tmp was left behind"
[ -n "$(find "$W/disk" -name '*.tmp.*')" ] && fail "full disk: temporary files left: $(find "$W/disk" -name '*.tmp.*')"
diff -r "$W/ck2.copy" "$W/disk/checkpoint-2" >/dev/null || fail "full disk: checkpoint-2 changed"
"$RLHF" score --model_name_or_path "$W/disk/checkpoint-2" --dataset_name "$W/one.jsonl" >/dev/null 2>&1 ||
  fail "full disk: checkpoint-2 no longer scores"
"$RLHF" "${short[@]}" --output_dir "$W/disk" --resume_from_checkpoint "$W/disk/checkpoint-2" >/dev/null 2>"$W/disk2.err" ||
  fail "full disk: resume from checkpoint-2 afterwards: $(tail -n 1 "$W/disk2.err")"
cmp -s "$W/disk/model.safetensors" "$W/full/model.safetensors" || fail "full disk: resumed model differs"

# ---- full disk during the final save: the previous model.safetensors stays ---------------------------------
cp "$W/full/model.safetensors" "$W/model.copy"
(ulimit -f 50; exec "$RLHF" "${base[@]}" --max_steps 2 --save_strategy no --output_dir "$W/full" --overwrite_output_dir) \
  >/dev/null 2>"$W/final.err"
code=$?
if [ "$code" != 1 ]; then fail "full disk at the final save: exit $code, expected 1 ($(tail -n 1 "$W/final.err"))"
elif ! grep -q "full/model.safetensors: file size limit exceeded" "$W/final.err"; then
  fail "full disk at the final save: stderr does not name model.safetensors: $(tail -n 1 "$W/final.err")"
fi
cmp -s "$W/full/model.safetensors" "$W/model.copy" || fail "full disk at the final save: the old model.safetensors changed"
[ -n "$(find "$W/full" -maxdepth 1 -name '*.tmp.*')" ] && fail "full disk at the final save: temporary files left"

# ---- unwritable output directory ---------------------------------------------------------------------------
if ! command -v setpriv >/dev/null || ! id nobody >/dev/null 2>&1; then
  echo "fault_signals_disk: SKIP unwritable-directory cases (no setpriv or no user nobody)"
elif [ "$(id -u)" != 0 ]; then
  echo "fault_signals_disk: SKIP unwritable-directory cases (not root: cannot switch to nobody)"
else
  as_nobody() { setpriv --reuid="$(id -u nobody)" --regid="$(id -g nobody)" --clear-groups "$@"; }
  mkdir "$W/ro" && chmod 755 "$W/ro"   # root's directory: nobody cannot create anything in it
  as_nobody "$RLHF" "${short[@]}" --output_dir "$W/ro/out" >/dev/null 2>"$W/ro.err"
  code=$?
  [ "$code" = 2 ] && grep -q "ro/out: cannot create directory .*Permission denied" "$W/ro.err" ||
    fail "unwritable output directory: exit $code, expected 2 naming it ($(tail -n 1 "$W/ro.err"))"
  [ -e "$W/ro/out" ] && fail "unwritable output directory: something was created"
  # A run of root's resumed by nobody: nothing can be written there (training_log.csv is the first file
  # the trainer writes); checkpoint-2 stays whole.
  chmod -R go+rX "$W/disk"
  as_nobody "$RLHF" "${short[@]}" --output_dir "$W/disk" --resume_from_checkpoint "$W/disk/checkpoint-2" \
    >/dev/null 2>"$W/ro2.err"
  code=$?
  [ "$code" = 2 ] && grep -q "$W/disk/.*Permission denied" "$W/ro2.err" ||
    fail "resume into an unwritable directory: exit $code, expected 2 naming a file there ($(tail -n 1 "$W/ro2.err"))"
  diff -r "$W/ck2.copy" "$W/disk/checkpoint-2" >/dev/null || fail "unwritable directory: checkpoint-2 changed"
fi
[ "$fails" = 0 ] && echo "fault_signals_disk: all passed" || { echo "fault_signals_disk: $fails failed"; exit 1; }
