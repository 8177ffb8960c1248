#!/bin/bash
# Failures of a 2-process run never hang: a malformed row is reported once (by rank 0) and every rank exits 2
# with nothing written (so is `score`, which does not run data-parallel); SIGTERM and SIGINT to mpirun stop both
# ranks at the same step boundary with one checkpoint-{STEP}, every rank exits 130 and mpirun exits 1 (Open MPI
# 4.1's mpirun cannot forward SIGTERM/SIGINT: taking one, it sets its own exit status to 1 before any rank has
# exited, then SIGTERMs the ranks itself, and the ranks' 130 never replaces that 1); SIGUSR1 (which mpirun forwards as is) stops the same way and mpirun
# exits 130; kill -9 of one rank ends the job within seconds and the last checkpoint resumes.
set -u
RLHF=${1:?usage: mpi_faults.sh path/to/rlhf}
source "$(dirname "$0")/mpi_common.bash"
W=$(mktemp -d -t rlhf-mpi-faults.XXXXXX)
trap 'rm -rf "$W"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
tiny_bert "$W/init" || { echo "FAIL: init"; exit 1; }
args=(reward --model_name_or_path "$W/init" --learning_rate 1e-3 --seed 9 --logging_steps 1 --threads 1 --quiet
  --per_device_train_batch_size 4 --num_train_epochs 3 --save_strategy steps --save_steps 4)

# a malformed row: exit 2, the message once, no output directory
head -n 20 data/learn-demo/train.jsonl >"$W/bad.jsonl"
echo '{"chosen": "only one side"}' >>"$W/bad.jsonl"
"${MPIRUN[@]}" "$RLHF" "${args[@]}" --dataset_name "$W/bad.jsonl" --output_dir "$W/bad" >"$W/bad.out" 2>&1
c=$?
[ "$c" = 2 ] || fail "malformed row: exit $c, expected 2"
n=$(grep -c "bad.jsonl" "$W/bad.out"); [ "$n" = 1 ] || fail "malformed row reported $n times: $(cat "$W/bad.out")"
[ -e "$W/bad" ] && fail "malformed row: the output directory was created"

# a command that is not data-parallel refuses to run under mpirun (else both ranks would write its output)
"${MPIRUN[@]}" "$RLHF" score --model_name_or_path "$W/init" --prompt a --response b >"$W/score.out" 2>&1
c=$?
n=$(grep -c "runs in one process" "$W/score.out")
[ "$c" = 2 ] && [ "$n" = 1 ] || fail "score under mpirun: exit $c, message $n times"

# start a run, wait for checkpoint-4, then signal
run_until_checkpoint() {  # $1 output dir; leaves the mpirun pid in $pid
  "${MPIRUN[@]}" --mca odls_base_sigkill_timeout 3 "$RLHF" "${args[@]}" --dataset_name data/learn-demo/train.jsonl \
    --output_dir "$1" >"$1.out" 2>&1 &
  pid=$!
  for _ in $(seq 1 3000); do [ -d "$1/checkpoint-4" ] && break; kill -0 $pid 2>/dev/null || break; sleep 0.02; done
}
stop_checkpoints() {  # checkpoints that are not one of the every-4-steps ones
  local n=0 d
  for d in "$1"/checkpoint-*; do [ $((${d##*-} % 4)) = 0 ] || n=$((n + 1)); done
  echo $n
}

for sig in TERM INT USR1; do
  run_until_checkpoint "$W/$sig"
  kill -$sig $pid
  t0=$(date +%s)
  wait $pid
  c=$?
  want=1; [ $sig = USR1 ] && want=130
  [ "$c" = $want ] || fail "SIG$sig: mpirun exit $c, expected $want"
  [ $(($(date +%s) - t0)) -le 20 ] || fail "SIG$sig: the job took more than 20 s to end"
  # (after SIGTERM/SIGINT mpirun stops relaying the ranks' output, so only SIGUSR1's message is sure to show)
  [ $sig = USR1 ] && { grep -q "interrupted: state saved" "$W/$sig.out" || fail "SIG$sig: no 'interrupted' message"; }
  last=$(ls -d "$W/$sig"/checkpoint-* | sort -t- -k2 -n | tail -n 1)
  [ -s "$last/optimizer.safetensors" ] || fail "SIG$sig: no complete checkpoint"
  # exactly one checkpoint beyond the every-4-steps ones (unless the stop fell on one of them)
  [ "$(stop_checkpoints "$W/$sig")" -le 1 ] || fail "SIG$sig: more than one stop checkpoint"
  ls -d "$W/$sig"/*.tmp 2>/dev/null && fail "SIG$sig: a temporary checkpoint directory was left behind"
  [ -e "$W/$sig/model.safetensors" ] && fail "SIG$sig: the run finished instead of stopping"
done

# kill -9 of rank 1: mpirun ends the job, no rank is left, and the last checkpoint resumes
run_until_checkpoint "$W/k9"
ranks=($(pgrep -P $pid))
t0=$(date +%s)
kill -9 "${ranks[1]}"
wait $pid
c=$?
[ "$c" != 0 ] || fail "kill -9 of a rank: mpirun exit 0"
[ $(($(date +%s) - t0)) -le 20 ] || fail "kill -9 of a rank: the job took more than 20 s to end"
for _ in $(seq 1 50); do kill -0 "${ranks[0]}" 2>/dev/null || break; sleep 0.1; done
kill -0 "${ranks[0]}" 2>/dev/null && fail "kill -9 of rank 1: rank 0 is still running 5 s after mpirun ended"
last=$(ls -d "$W/k9"/checkpoint-* | sort -t- -k2 -n | tail -n 1)
"${MPIRUN[@]}" "$RLHF" "${args[@]}" --dataset_name data/learn-demo/train.jsonl --max_steps $((${last##*-} + 2)) \
  --output_dir "$W/k9" --resume_from_checkpoint "$last" >"$W/k9r.out" 2>&1 || fail "resume after kill -9: $(tail -n 3 "$W/k9r.out")"
[ -s "$W/k9/model.safetensors" ] || fail "resume after kill -9: no model"
[ "$fails" = 0 ] && echo "mpi_faults: all passed" || { echo "mpi_faults: $fails failed"; exit 1; }
