#!/usr/bin/env bash
# Data-parallel overhead on one host: the same global batch with 1 process x 2 threads and with 2 processes x
# 1 thread (mpirun over loopback TCP, as two hosts would talk), for a bert-mini reward step and the tiny PPO
# update of bench/ppo.sh. Time per step = (time of 1 + N steps - time of 1 step) / N, so loading is not
# counted; the runs are interleaved REPS times and the median kept. RLHF_DIST_STATS=1 makes rank 0 report the
# time spent inside the gradient all-reduce proper and, apart, the time waiting at a barrier just before it for
# the other rank. memory: peak RSS per process of one reward step of a GPT-2-small-shaped reward model (124M
# parameters, made by `rlhf init`) with 2 processes, --zero_stage 0 vs 1. Prints a markdown section.
# PARTS="reward ppo memory" (default) picks the parts to run. Run it as `bench/run.sh build mpi` (with
# BENCH_LOCK=/path/to/lockfile on a shared machine: every timed run holds the lock).
# usage: bench/mpi.sh BUILD_DIR
set -euo pipefail
BUILD=${1:-build}
RLHF=$BUILD/rlhf
REPS=${REPS:-3}
. bench/lib.sh  # timed: each timed run holds $BENCH_LOCK when set
PARTS=${PARTS:-reward ppo memory}
W=$(mktemp -d -t rlhf-bench-mpi.XXXXXX)
trap 'rm -rf "$W"' EXIT
MPI=(mpirun -np 2 --oversubscribe --mca btl self,tcp --mca btl_tcp_if_include lo)
[ "$(id -u)" = 0 ] && MPI+=(--allow-run-as-root)
export OMP_WAIT_POLICY=passive RLHF_DIST_STATS=1

# bert-mini reward model, 8 pairs per step of 2 x 128 random tokens
cat >"$W/bert.json" <<'JSON'
{"architectures": ["BertForSequenceClassification"], "model_type": "bert", "vocab_size": 30522, "hidden_size": 256,
 "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 1024, "max_position_embeddings": 512,
 "type_vocab_size": 2, "pad_token_id": 0, "num_labels": 1}
JSON
"$RLHF" init --config "$W/bert.json" --tokenizer tests/fixtures/tokenizers/bert-base-uncased --output_dir "$W/bert" \
  >/dev/null 2>&1
awk 'BEGIN { srand(4); for (r = 0; r < 64; r++) { c = ""; j = ""; for (i = 0; i < 128; i++) { c = c (i ? "," : "") 1000 + int(rand() * 20000); j = j (i ? "," : "") 1000 + int(rand() * 20000) } print "{\"chosen_ids\": [" c "], \"rejected_ids\": [" j "]}" } }' >"$W/pairs.jsonl"
reward() { # NP STEPS -> "seconds peak_kib allreduce_ms wait_ms"; NP 2z: 2 processes with --zero_stage 1
  local np=$1 steps=$2 bs threads cmd=() zero=()
  if [ "$np" = 1 ]; then bs=8 threads=2; else bs=4 threads=1; cmd=("${MPI[@]}"); fi
  [ "$np" = 2z ] && zero=(--zero_stage 1)
  rm -rf "$W/out"
  timed /usr/bin/time -f "%e %M" -o "$W/time" "${cmd[@]}" "$RLHF" reward --model_name_or_path "$W/bert" \
    --dataset_name "$W/pairs.jsonl" --output_dir "$W/out" --per_device_train_batch_size $bs --max_steps "$steps" \
    --save_strategy no --threads $threads --quiet "${zero[@]}" >/dev/null 2>"$W/err" || { cat "$W/err" >&2; return 1; }
  echo "$(cat "$W/time") $(ms_each "$W/err")"
}
# "allreduce_ms wait_ms" per call from RLHF_DIST_STATS's line (nothing for one process)
ms_each() { grep -o '([0-9.]* ms each)' "$1" | tr -d '(' | cut -d' ' -f1 | tr '\n' ' '; }

# tiny PPO (bench/ppo.sh's row: H 64, L 2, prompt 16, response 16, 16 episodes per update, 4 PPO epochs)
cfg='"model_type": "gpt2", "vocab_size": 50257, "n_positions": 1024, "n_embd": 64, "n_layer": 2, "n_head": 2,
 "activation_function": "gelu_new", "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0,
 "layer_norm_epsilon": 1e-05, "initializer_range": 0.02, "bos_token_id": 50256, "eos_token_id": 50256'
echo "{\"architectures\": [\"GPT2LMHeadModel\"], $cfg}" >"$W/policy.json"
echo "{\"architectures\": [\"GPT2ForSequenceClassification\"], $cfg, \"num_labels\": 1}" >"$W/rm.json"
for m in policy rm; do
  "$RLHF" init --config "$W/$m.json" --tokenizer tests/fixtures/tokenizers/gpt2 --output_dir "$W/$m" >/dev/null 2>&1
  rm -f "$W/$m"/{tokenizer.json,vocab.json,merges.txt,tokenizer_config.json,special_tokens_map.json}
done
awk 'BEGIN { srand(3); for (r = 0; r < 64; r++) { s = ""; for (i = 0; i < 16; i++) s = s (i ? "," : "") int(rand() * 50000); print "{\"prompt_ids\": [" s "]}" } }' >"$W/prompts.jsonl"
ppo() { # NP UPDATES -> "seconds peak_kib allreduce_ms"
  local np=$1 n=$2 bs threads cmd=()
  if [ "$np" = 1 ]; then bs=16 threads=2; else bs=8 threads=1; cmd=("${MPI[@]}"); fi
  rm -rf "$W/out"
  timed /usr/bin/time -f "%e %M" -o "$W/time" "${cmd[@]}" "$RLHF" ppo --model_name_or_path "$W/policy" \
    --sft_model_path "$W/policy" --reward_model_path "$W/rm" --dataset_name "$W/prompts.jsonl" --output_dir "$W/out" \
    --per_device_train_batch_size $bs --local_rollout_forward_batch_size $bs --total_episodes $((16 * n)) \
    --response_length 16 --num_ppo_epochs 4 --stop_token none --learning_rate 1e-5 --save_steps 0 \
    --num_sample_generations 0 --threads $threads --quiet >/dev/null 2>"$W/err" || { cat "$W/err" >&2; return 1; }
  echo "$(cat "$W/time") $(ms_each "$W/err")"
}

median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
measure() { # FN N CONFIG... -> rows "config s/step peak_kib allreduce_ms wait_ms" (config: 1, 2 or 2z)
  local fn=$1 n=$2
  shift 2
  for np in "$@"; do : >"$W/$fn-$np"; done
  for _ in $(seq "$REPS"); do
    for np in "$@"; do
      read -r t1 _ _ _ < <($fn $np 1)
      read -r tn kib ms wait < <($fn $np $((n + 1)))
      echo "$(echo "($tn - $t1) / $n" | bc -l) $kib ${ms:-0} ${wait:-0}" >>"$W/$fn-$np"
    done
  done
  for np in "$@"; do
    echo "$np $(for c in 1 2 3 4; do cut -d' ' -f$c "$W/$fn-$np" | median; done | tr '\n' ' ')"
    echo "  $fn np $np runs (s/step peak_kib allreduce_ms wait_ms): $(tr '\n' ';' <"$W/$fn-$np")" >&2
  done
}
load=$(cut -d' ' -f1 /proc/loadavg)
echo "## Several processes on one host (issue 15)"
echo
echo "Same global batch, 1 process x 2 threads against \`mpirun -np 2\` x 1 thread over loopback TCP"
echo "(\`--mca btl self,tcp\`, what two hosts use); $(nproc) cores, load average $load at the start; median of $REPS"
echo "interleaved runs; s/step = (time of 1 + N steps - time of 1) / N. Peak RSS: the largest process"
echo "(one rank holds a whole model, its gradients and AdamW moments). all-reduce: rank 0's mean time per gradient"
echo "all-reduce call (bert-mini: 45 MB, one per step; PPO: policy then value model per optimizer step), measured"
echo "after a barrier; wait: the time in that barrier, i.e. waiting for the slower rank, which a run without"
echo "RLHF_DIST_STATS spends inside the all-reduce."
echo
echo "| run | processes x threads | s/step | vs 1 x 2 | all-reduce ms/call | wait ms/call | peak RSS MiB |"
echo "|---|---|---|---|---|---|---|"
for part in $PARTS; do
  [ "$part" = memory ] && continue
  f=${part:0:1}
  if [ $f = r ]; then measure reward 2 1 2 2z >"$W/$f"; else measure ppo 2 1 2 >"$W/$f"; fi
  name=$([ $f = r ] && echo "reward step, bert-mini (11.2M params), 8 pairs x 2 x 128 tokens" ||
    echo "PPO update, tiny GPT-2 (H 64, L 2; policy + value model), 16 episodes")
  base=$(head -n 1 "$W/$f" | cut -d' ' -f2)
  while read -r np s kib ms wait; do
    procs="${np%z} x $((3 - ${np%z}))"
    [ "$np" = 2z ] && procs="2 x 1, --zero_stage 1"
    printf "| %s | %s | %.3f | %.2fx | %s | %s | %.0f |\n" "$name" "$procs" "$s" "$(echo "$base / $s" | bc -l)" \
      "$([ "$np" = 1 ] && echo - || printf %.1f "$ms")" "$([ "$np" = 1 ] && echo - || printf %.1f "$wait")" \
      "$(echo "$kib / 1024" | bc -l)"
  done <"$W/$f"
done
echo
if [[ " $PARTS " == *" memory "* ]]; then
  echo '{"architectures": ["GPT2ForSequenceClassification"], "model_type": "gpt2", "vocab_size": 50257,
   "n_positions": 1024, "n_embd": 768, "n_layer": 12, "n_head": 12, "num_labels": 1, "pad_token_id": 50256,
   "bos_token_id": 50256, "eos_token_id": 50256}' >"$W/g.json"
  "$RLHF" init --config "$W/g.json" --tokenizer tests/fixtures/tokenizers/gpt2 --output_dir "$W/g" >/dev/null 2>&1
  echo
  echo "| GPT-2 small shape reward model (124M params), 2 processes, 1 step of 1 pair x 2 x 128 tokens each | peak RSS MiB per process |"
  echo "|---|---|"
  for z in 0 1; do
    rm -rf "$W/out"
    nice -n 19 /usr/bin/time -f "%M" -o "$W/time" "${MPI[@]}" "$RLHF" reward --model_name_or_path "$W/g" \
      --dataset_name "$W/pairs.jsonl" --output_dir "$W/out" --per_device_train_batch_size 1 --max_steps 1 \
      --save_strategy no --threads 1 --quiet --zero_stage $z >/dev/null 2>"$W/err" || { cat "$W/err" >&2; exit 1; }
    printf "| --zero_stage %s | %.0f |\n" $z "$(echo "$(cat "$W/time") / 1024" | bc -l)"
  done
fi
echo
