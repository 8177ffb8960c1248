#!/bin/bash
# The bad-input table (issue 10; README "Bad inputs"): every row, for every command it applies to
# (reward, score, sft, generate, ppo, dpo, grpo, rloo), must exit 2 with a message naming the input (FILE:LINE, the file or
# the flag) and what was expected, and leave no partial output (--output_dir not created, nothing on
# stdout). One exception is asserted as such: a batch larger than the dataset trains (one short step), as
# in TRL. Multi-row listing, resume and the NaN/Inf guard: tests/cli/reward_bad_input.sh.
set -u
RLHF=${1:?usage: bad_inputs.sh path/to/rlhf}
W=$(mktemp -d -t rlhf-bad-inputs.XXXXXX)
trap 'rm -rf "$W"' EXIT
fails=0 rows=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# ---- models: tiny BERT reward model (bert-base-uncased tokenizer), tiny GPT-2 policy and reward model -------
cat >"$W/bert.json" <<'EOF'
{"architectures": ["BertForSequenceClassification"], "model_type": "bert", "vocab_size": 30522,
 "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32,
 "max_position_embeddings": 64, "type_vocab_size": 2, "pad_token_id": 0, "num_labels": 1}
EOF
gpt2='"model_type": "gpt2", "vocab_size": 50257, "n_embd": 16, "n_layer": 1, "n_head": 2, "n_positions": 64,
 "bos_token_id": 50256, "eos_token_id": 50256'
echo "{\"architectures\": [\"GPT2LMHeadModel\"], $gpt2}" >"$W/gpt2.json"
echo "{\"architectures\": [\"GPT2ForSequenceClassification\"], $gpt2, \"num_labels\": 1, \"pad_token_id\": 50256}" \
  >"$W/gpt2rm.json"
init() { "$RLHF" init --config "$W/$1.json" --tokenizer "tests/fixtures/tokenizers/$2" --output_dir "$W/$3" \
  >/dev/null 2>"$W/init.err" || { echo "FAIL: init $3: $(tail -n 1 "$W/init.err")"; exit 1; }; }
init bert bert-base-uncased bert
init gpt2 gpt2 gpt2
init gpt2rm gpt2 gpt2rm
sed 's/"vocab_size": 30522/"vocab_size": 1000/' "$W/bert.json" >"$W/bert-v.json"
sed 's/"vocab_size": 50257/"vocab_size": 1000/' "$W/gpt2.json" >"$W/gpt2-v.json"
init bert-v bert-base-uncased bert_vocab   # config vocab 1000, tokenizer ids up to 30521
init gpt2-v gpt2 gpt2_vocab
# Broken copies of bert/ and gpt2/: tokenizer kind, model_type, architecture, three corrupt safetensors files.
python3 - "$W" <<'EOF' || { echo "FAIL: building the broken model directories"; exit 1; }
import json, os, shutil, struct, sys
W = sys.argv[1]
def copy(base, name):
    d = os.path.join(W, base + "_" + name)
    shutil.copytree(os.path.join(W, base), d)
    return d
def edit_json(path, f):
    j = json.load(open(path)); f(j); json.dump(j, open(path, "w"))
for base, arch in (("bert", "BertForTokenClassification"), ("gpt2", "GPT2ForTokenClassification")):
    edit_json(copy(base, "tokkind") + "/tokenizer.json", lambda j: j["model"].__setitem__("type", "CharLevel"))
    edit_json(copy(base, "mtype") + "/config.json", lambda j: j.__setitem__("model_type", "t5"))
    edit_json(copy(base, "arch") + "/config.json", lambda j: j.__setitem__("architectures", [arch]))
    raw = open(os.path.join(W, base, "model.safetensors"), "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    h = json.loads(raw[8:8 + n])
    k = sorted(x for x in h if x != "__metadata__")[0]
    h[k]["data_offsets"] = [h[k]["data_offsets"][0], 4 * len(raw)]
    hb = json.dumps(h).encode()
    hb += b" " * (-len(hb) % 8)
    for name, data in (("st_offsets", struct.pack("<Q", len(hb)) + hb + raw[8 + n:]),
                       ("st_trunc", raw[:len(raw) // 2]),
                       ("st_hdrlen", struct.pack("<Q", 10 * len(raw)) + raw[8:])):
        open(copy(base, name) + "/model.safetensors", "wb").write(data)
EOF

# ---- datasets: preference rows (reward, score), SFT rows, prompt rows (generate, ppo) -----------------------
for i in 1 2 3 4; do echo '{"prompt": "a", "chosen": "b c", "rejected": "d"}'; done >"$W/pref.jsonl"
for i in 1 2 3 4; do echo '{"prompt": "a", "completion": "b c"}'; done >"$W/sft.jsonl"
for i in 1 2 3 4; do echo '{"prompt": "a b"}'; done >"$W/prompt.jsonl"
printf '%s\n%s\n' '{"prompt": "a", "chosen": "b", "rejected": "c"}' '{"prompt": "a", "chosen": ' >"$W/pref.malformed.jsonl"
printf '%s\n%s\n' '{"prompt": "a", "completion": "b"}' '{"prompt": "a", "completion": ' >"$W/sft.malformed.jsonl"
printf '%s\n%s\n' '{"prompt": "a b"}' '{"prompt": ' >"$W/prompt.malformed.jsonl"
echo '{"prompt": "a", "chosen": "b"}' >"$W/pref.missing.jsonl"
echo '{"prompt": "a"}' >"$W/sft.missing.jsonl"
echo '{"query": "a"}' >"$W/prompt.missing.jsonl"
echo '{"prompt": "a", "chosen": 5, "rejected": "c"}' >"$W/pref.mistyped.jsonl"
echo '{"prompt": "a", "completion": 5}' >"$W/sft.mistyped.jsonl"
echo '{"prompt": 5}' >"$W/prompt.mistyped.jsonl"
echo '{"prompt": "", "chosen": "", "rejected": ""}' >"$W/pref.empty.jsonl"
echo '{"prompt": "", "completion": ""}' >"$W/sft.empty.jsonl"
echo '{"prompt": ""}' >"$W/prompt.empty.jsonl"
printf '{"prompt": "a", "chosen": "b\xff\xfe", "rejected": "c"}\n' >"$W/pref.utf8.jsonl"
printf '{"prompt": "a", "completion": "b\xff"}\n' >"$W/sft.utf8.jsonl"
printf '{"prompt": "a\xff"}\n' >"$W/prompt.utf8.jsonl"
big=$(head -c 10485760 /dev/zero | tr '\0' 'a')   # one 10 MiB word
echo "{\"prompt\": \"a\", \"chosen\": \"$big\", \"rejected\": \"c\"}" >"$W/pref.big.jsonl"
echo "{\"prompt\": \"a\", \"completion\": \"$big\"}" >"$W/sft.big.jsonl"
echo "{\"prompt\": \"$big\"}" >"$W/prompt.big.jsonl"
unset big
for k in pref sft prompt; do : >"$W/$k.zero.jsonl"; done

# ---- the runner ---------------------------------------------------------------------------------------------
# expect2 ROW COMMAND PATTERN MODEL DATA [flags...]: exit 2, stderr matches PATTERN (extended regex), no
# --output_dir, empty stdout.
expect2() {
  local row=$1 cmd=$2 pat=$3 model=$4 data=$5 c=0
  shift 5
  local name="$row.$cmd" out="$W/out.$row.$cmd" args
  case $cmd in
    reward) args=(reward --model_name_or_path "$model" --dataset_name "$data" --output_dir "$out" --quiet --threads 1) ;;
    score) args=(score --model_name_or_path "$model" --dataset_name "$data") ;;
    sft) args=(sft --model_name_or_path "$model" --dataset_name "$data" --output_dir "$out" --threads 1) ;;
    dpo) args=(dpo --model_name_or_path "$model" --dataset_name "$data" --output_dir "$out" --threads 1 --quiet) ;;
    generate) args=(generate --model_name_or_path "$model" --dataset_name "$data" --max_new_tokens 2) ;;
    ppo) args=(ppo --model_name_or_path "$model" --sft_model_path "$W/gpt2" --reward_model_path "$W/gpt2rm"
      --dataset_name "$data" --output_dir "$out" --response_length 2 --per_device_train_batch_size 1 --threads 1) ;;
    grpo | rloo) args=("$cmd" --model_name_or_path "$model" --reward_funcs think_format_reward --dataset_name "$data"
      --output_dir "$out" --max_completion_length 2 --num_generations 2 --per_device_train_batch_size 2 --threads 1) ;;
  esac
  rows=$((rows + 1))
  "$RLHF" "${args[@]}" "$@" >"$W/$name.out" 2>"$W/$name.err" || c=$?
  if [ "$c" != 2 ]; then fail "$name: exit $c, expected 2 ($(tail -n 1 "$W/$name.err" | cut -c1-200))"
  elif ! grep -qE -- "$pat" "$W/$name.err"; then fail "$name: stderr does not match /$pat/: $(tail -n 1 "$W/$name.err")"
  elif [ -e "$out" ]; then fail "$name: created --output_dir"
  elif [ -s "$W/$name.out" ]; then fail "$name: wrote to stdout: $(head -c 200 "$W/$name.out")"
  else [ -n "${VERBOSE:-}" ] && echo "ok $name: $(tail -n 1 "$W/$name.err")"; fi
}
# each COMMAND's model dir (bert or gpt2 base name) and dataset kind
model_of() { case $1 in reward | score) echo bert ;; *) echo gpt2 ;; esac; }
data_of() { case $1 in reward | score | dpo) echo pref ;; sft) echo sft ;; *) echo prompt ;; esac; }
all=(reward score sft generate ppo dpo grpo rloo)

# ---- dataset rows -------------------------------------------------------------------------------------------
for c in "${all[@]}"; do
  m="$W/$(model_of "$c")" k=$(data_of "$c")
  expect2 malformed "$c" "$k\.malformed\.jsonl:2: invalid JSON" "$m" "$W/$k.malformed.jsonl"
  case $k in pref) f=rejected ;; sft) f=completion ;; prompt) f=prompt ;; esac
  case $c in ppo | grpo | rloo) pat='prompt\.missing\.jsonl:1: expected a "prompt"' ;;
    *) pat="$k\.missing\.jsonl:1: field '$f' missing" ;; esac
  expect2 missing-field "$c" "$pat" "$m" "$W/$k.missing.jsonl"
  case $k in pref) pat="field 'chosen' must be a string" ;; sft) pat="field 'completion' must be a string" ;;
    prompt) pat="field 'prompt' must be a string" ;; esac
  expect2 mistyped-field "$c" "$k\.mistyped\.jsonl:1: $pat" "$m" "$W/$k.mistyped.jsonl"
  case $c in reward | score | dpo) pat="field 'chosen' is an empty response" ;; sft) pat="example has 1 token" ;;
    generate) pat="the prompt encodes to no tokens" ;; ppo | grpo | rloo) pat="the prompt has no tokens" ;; esac
  expect2 empty-strings "$c" "$k\.empty\.jsonl:1: $pat" "$m" "$W/$k.empty.jsonl"
  expect2 invalid-utf8 "$c" "$k\.utf8\.jsonl:1: field '[a-z]+' is not valid UTF-8" "$m" "$W/$k.utf8.jsonl"
  expect2 10mb-row "$c" "$k\.big\.jsonl:1: row holds more than 4194304 bytes" "$m" "$W/$k.big.jsonl"
  expect2 zero-rows "$c" "$k\.zero\.jsonl: no rows \(empty dataset\)" "$m" "$W/$k.zero.jsonl"
done

# ---- hyperparameters: NaN, negative, zero lengths -------------------------------------------------------------
expect2 nan-lr reward "--learning_rate: expected a finite number, got 'nan'" "$W/bert" "$W/pref.jsonl" --learning_rate nan
expect2 nan-lr sft "--learning_rate: expected a finite number, got 'nan'" "$W/gpt2" "$W/sft.jsonl" --learning_rate nan
expect2 nan-lr ppo "--learning_rate: expected a finite number, got 'nan'" "$W/gpt2" "$W/prompt.jsonl" --learning_rate nan
expect2 nan-lr dpo "--learning_rate: expected a finite number, got 'nan'" "$W/gpt2" "$W/pref.jsonl" --learning_rate nan
expect2 nan-beta dpo "--beta: expected a finite number, got 'nan'" "$W/gpt2" "$W/pref.jsonl" --beta nan
expect2 nan-kl ppo "--kl_coef: expected a finite number, got 'nan'" "$W/gpt2" "$W/prompt.jsonl" --kl_coef nan
expect2 nan-temperature generate "--temperature: expected a finite number, got 'nan'" "$W/gpt2" "$W/prompt.jsonl" \
  --temperature nan --do_sample
expect2 negative-epochs reward "--num_train_epochs must be > 0" "$W/bert" "$W/pref.jsonl" --num_train_epochs -1
expect2 negative-epochs sft "--num_train_epochs must be > 0" "$W/gpt2" "$W/sft.jsonl" --num_train_epochs -1
expect2 negative-epochs ppo "--num_train_epochs: expected > 0" "$W/gpt2" "$W/prompt.jsonl" --num_train_epochs -1
expect2 negative-epochs dpo "--num_train_epochs must be > 0" "$W/gpt2" "$W/pref.jsonl" --num_train_epochs -1
expect2 negative-beta dpo "--beta must be > 0, got -1" "$W/gpt2" "$W/pref.jsonl" --beta -1
expect2 bad-loss-type dpo "--loss_type: expected one of sigmoid\|ipo\|.*, got 'kto'" "$W/gpt2" "$W/pref.jsonl" --loss_type kto
expect2 bad-truncation-mode dpo "--truncation_mode: expected keep_end or keep_start, got 'left'" "$W/gpt2" "$W/pref.jsonl" \
  --truncation_mode left
expect2 label-smoothing dpo "--label_smoothing must be in \[0, 0.5\), got 0.5" "$W/gpt2" "$W/pref.jsonl" --label_smoothing 0.5
expect2 negative-lr reward "--learning_rate must be a finite number > 0" "$W/bert" "$W/pref.jsonl" --learning_rate -1
expect2 negative-wd sft "--weight_decay must be >= 0" "$W/gpt2" "$W/sft.jsonl" --weight_decay -1
expect2 negative-tokens generate "--max_new_tokens must be >= 1" "$W/gpt2" "$W/prompt.jsonl" --max_new_tokens -1
expect2 negative-length score "--max_length must be >= 0" "$W/bert" "$W/pref.jsonl" --max_length -1
expect2 max-length-0 reward "--max_length must be >= 1, got 0" "$W/bert" "$W/pref.jsonl" --max_length 0
expect2 max-length-0 sft "--max_length must be >= 1, got 0" "$W/gpt2" "$W/sft.jsonl" --max_length 0
expect2 max-length-0 dpo "--max_length must be >= 1, got 0" "$W/gpt2" "$W/pref.jsonl" --max_length 0
# dpo: a prompt that fills --max_length under keep_start leaves no response token to score
expect2 no-response-left dpo "pref\.jsonl:1: field 'chosen': no response token is left to score after truncation" \
  "$W/gpt2" "$W/pref.jsonl" --max_length 1 --truncation_mode keep_start
expect2 response-length-0 ppo "--response_length: expected an integer in \[1, " "$W/gpt2" "$W/prompt.jsonl" \
  --response_length 0

# ---- grpo / rloo flags and rewards -----------------------------------------------------------------------------
expect2 generation-batch grpo "--per_device_train_batch_size 3 x --steps_per_generation 1 .* must be a multiple of --num_generations 2" \
  "$W/gpt2" "$W/prompt.jsonl" --per_device_train_batch_size 3
expect2 generation-batch rloo "must be a multiple of --num_generations 4" "$W/gpt2" "$W/prompt.jsonl" --num_generations 4 \
  --steps_per_generation 1
expect2 unknown-reward grpo "--reward_funcs: unknown reward function 'bleu'" "$W/gpt2" "$W/prompt.jsonl" --reward_funcs bleu
expect2 missing-solution grpo "prompt\.jsonl:1: --reward_funcs accuracy_reward needs a \"solution\"" "$W/gpt2" \
  "$W/prompt.jsonl" --reward_funcs accuracy_reward
expect2 reward-weights rloo "--reward_weights: 3 weights for 2 rewards" "$W/gpt2" "$W/prompt.jsonl" \
  --reward_model_name_or_path "$W/gpt2rm" --reward_weights 1,2,3
expect2 loss-type grpo "--loss_type: expected grpo, dr_grpo, dapo or bnpo, got 'ppo'" "$W/gpt2" "$W/prompt.jsonl" \
  --loss_type ppo
expect2 scale-rewards grpo "--scale_rewards: expected group, batch or none" "$W/gpt2" "$W/prompt.jsonl" --scale_rewards std
expect2 nan-beta rloo "--beta: expected a finite number, got 'nan'" "$W/gpt2" "$W/prompt.jsonl" --beta nan
expect2 reward-model-head rloo "--reward_model_name_or_path .*/gpt2: not a reward model: its checkpoint has no score head" \
  "$W/gpt2" "$W/prompt.jsonl" --reward_model_name_or_path "$W/gpt2"
# the shared TrainingArguments flags (cli/trainer_flags.h) and evaluation
expect2 eval-without-set grpo "--eval_strategy steps needs an evaluation set \(--eval_dataset_name or --eval_split > 0\)" \
  "$W/gpt2" "$W/prompt.jsonl" --eval_strategy steps
expect2 eval-batch rloo "the evaluation batch \(--per_device_eval_batch_size 3 x 1 processes = 3 completions\) must be a multiple of --num_generations 2" \
  "$W/gpt2" "$W/prompt.jsonl" --eval_dataset_name "$W/prompt.jsonl" --per_device_eval_batch_size 3
expect2 scheduler grpo "--lr_scheduler_type" "$W/gpt2" "$W/prompt.jsonl" --lr_scheduler_type warmup_stable_decay
expect2 save-total-limit rloo "--save_total_limit must be >= 0, got -1" "$W/gpt2" "$W/prompt.jsonl" --save_total_limit -1
expect2 dropout grpo "--disable_dropout false: grpo samples and scores with dropout off" "$W/gpt2" "$W/prompt.jsonl" \
  --disable_dropout false
expect2 resume-none grpo "--resume_from_checkpoint" "$W/gpt2" "$W/prompt.jsonl" --resume_from_checkpoint
expect2 eval-generations grpo "must be a multiple of --num_generations_eval 3" "$W/gpt2" "$W/prompt.jsonl" \
  --eval_dataset_name "$W/prompt.jsonl" --num_generations_eval 3
expect2 adam-beta rloo "--adam_beta1: expected in \[0, 1\), got 1" "$W/gpt2" "$W/prompt.jsonl" --adam_beta1 1
expect2 reward-model-vocab grpo "gpt2_vocab/tokenizer\.json: the tokenizer has ids up to" "$W/gpt2" "$W/prompt.jsonl" \
  --reward_model_name_or_path "$W/gpt2_vocab" --allow_new_reward_head

# ---- model directories -----------------------------------------------------------------------------------------
for c in "${all[@]}"; do
  b=$(model_of "$c") k=$(data_of "$c")
  expect2 tokenizer-kind "$c" "${b}_tokkind/tokenizer\.json: model: unknown model type \"CharLevel\"" \
    "$W/${b}_tokkind" "$W/$k.jsonl"
  expect2 model-type "$c" "${b}_mtype/config\.json: unsupported model_type 't5'" "$W/${b}_mtype" "$W/$k.jsonl"
  expect2 architecture "$c" "${b}_arch/config\.json: unsupported architecture '[A-Za-z0-9]+ForTokenClassification'" \
    "$W/${b}_arch" "$W/$k.jsonl"
  expect2 st-offsets "$c" "${b}_st_offsets/model\.safetensors: tensor '.*': data_offsets \[.*\] out of range" \
    "$W/${b}_st_offsets" "$W/$k.jsonl"
  expect2 st-truncated "$c" "${b}_st_trunc/model\.safetensors: tensor '.*': data_offsets .* out of range" \
    "$W/${b}_st_trunc" "$W/$k.jsonl"
  expect2 st-header-length "$c" "${b}_st_hdrlen/model\.safetensors: header length [0-9]+ beyond the end" \
    "$W/${b}_st_hdrlen" "$W/$k.jsonl"
  # (ppo: the reference policy must match the policy's vocabulary first, so it gets the same directory)
  expect2 vocab-mismatch "$c" "${b}_vocab/tokenizer\.json: the tokenizer has ids up to [0-9]+ but .*${b}_vocab/config\.json has vocab_size 1000" \
    "$W/${b}_vocab" "$W/$k.jsonl" $([ "$c" = ppo ] && echo --sft_model_path "$W/${b}_vocab")
done

# ---- not an error: a batch larger than the dataset trains (one step over the 4 rows), as in TRL ---------------
"$RLHF" reward --model_name_or_path "$W/bert" --dataset_name "$W/pref.jsonl" --per_device_train_batch_size 64 \
  --output_dir "$W/bigbatch" --quiet --threads 1 >/dev/null 2>"$W/bigbatch.err" ||
  fail "reward with a batch larger than the dataset: $(tail -n 1 "$W/bigbatch.err")"
grep -q "done, 1 steps" "$W/bigbatch.err" && [ -s "$W/bigbatch/model.safetensors" ] ||
  fail "reward with a batch larger than the dataset: expected one step and a model ($(tail -n 1 "$W/bigbatch.err"))"
"$RLHF" sft --model_name_or_path "$W/gpt2" --dataset_name "$W/sft.jsonl" --per_device_train_batch_size 64 \
  --output_dir "$W/bigbatch-sft" --threads 1 >/dev/null 2>"$W/bigbatch-sft.err" && [ -s "$W/bigbatch-sft/model.safetensors" ] ||
  fail "sft with a batch larger than the dataset: $(tail -n 1 "$W/bigbatch-sft.err")"

# ---- NaN/Inf guard in sft (reward: reward_bad_input.sh): a diverging run skips non-finite steps with a
# message and a count, then stops with exit 1 naming the divergence ----------------------------------------------
for i in $(seq 1 30); do echo '{"prompt": "a b", "completion": " c d e"}'; done >"$W/sft30.jsonl"
"$RLHF" sft --model_name_or_path "$W/gpt2" --dataset_name "$W/sft30.jsonl" --per_device_train_batch_size 1 \
  --learning_rate 1e30 --max_grad_norm 0 --output_dir "$W/nan" --threads 1 >/dev/null 2>"$W/nan.err"
c=$?
[ "$c" = 1 ] && grep -qE "rlhf sft: step [0-9]+: non-finite (loss|gradient norm) .*step skipped \(1 skipped so far\)" "$W/nan.err" &&
  grep -q "training diverged: 20 steps in a row" "$W/nan.err" || fail "sft diverging run: exit $c ($(tail -n 1 "$W/nan.err"))"

# ---- and in dpo ---------------------------------------------------------------------------------------------------
for i in $(seq 1 30); do echo '{"prompt": "a b", "chosen": " c d e", "rejected": " f g"}'; done >"$W/pref30.jsonl"
"$RLHF" dpo --model_name_or_path "$W/gpt2" --dataset_name "$W/pref30.jsonl" --per_device_train_batch_size 1 \
  --learning_rate 1e30 --max_grad_norm 0 --output_dir "$W/nan-dpo" --threads 1 --quiet >/dev/null 2>"$W/nan-dpo.err"
c=$?
[ "$c" = 1 ] && grep -qE "rlhf dpo: step [0-9]+: non-finite (loss|gradient norm) .*step skipped \(1 skipped so far\)" "$W/nan-dpo.err" &&
  grep -q "training diverged: 20 steps in a row" "$W/nan-dpo.err" || fail "dpo diverging run: exit $c ($(tail -n 1 "$W/nan-dpo.err"))"

# ---- and in grpo: the same guard (its reward a shell program: the input line's length) ------------------------------
printf '%s\n' '#!/bin/sh' 'while IFS= read -r line; do echo "${#line}"; done' >"$W/len.sh"
for i in $(seq 1 8); do echo '{"prompt": "a b"}'; done >"$W/prompts8.jsonl"
"$RLHF" grpo --model_name_or_path "$W/gpt2" --reward_funcs "exec:sh $W/len.sh" --dataset_name "$W/prompts8.jsonl" \
  --per_device_train_batch_size 4 --num_generations 4 --max_steps 30 --max_completion_length 2 --learning_rate 1e30 \
  --max_grad_norm 0 --save_steps 0 --quiet --output_dir "$W/nan-grpo" --threads 1 >/dev/null 2>"$W/nan-grpo.err"
c=$?
[ "$c" = 1 ] && grep -qE "rlhf grpo: step [0-9]+: non-finite loss or gradient norm, optimizer step skipped \(1 skipped so far\)" "$W/nan-grpo.err" &&
  grep -q "training diverged: 20 optimizer steps in a row" "$W/nan-grpo.err" ||
  fail "grpo diverging run: exit $c ($(tail -n 2 "$W/nan-grpo.err"))"

# ---- and in ppo: 20 optimizer steps in a row with a non-finite loss or gradient norm stop the run ---------------
for i in $(seq 1 8); do echo '{"prompt": "a b"}'; done >"$W/prompts8.jsonl"
"$RLHF" ppo --model_name_or_path "$W/gpt2" --sft_model_path "$W/gpt2" --reward_model_path "$W/gpt2rm" \
  --dataset_name "$W/prompts8.jsonl" --per_device_train_batch_size 2 --num_mini_batches 2 --total_episodes 64 \
  --num_ppo_epochs 4 --response_length 2 --learning_rate 1e30 --max_grad_norm 0 --save_steps 0 --quiet \
  --output_dir "$W/nan-ppo" --threads 1 >/dev/null 2>"$W/nan-ppo.err"
c=$?
[ "$c" = 1 ] && grep -qE "rlhf ppo: update [0-9]+: non-finite loss or gradient norm, optimizer step skipped \(1 skipped so far\)" "$W/nan-ppo.err" &&
  grep -q "training diverged: 20 optimizer steps in a row" "$W/nan-ppo.err" ||
  fail "ppo diverging run: exit $c ($(tail -n 2 "$W/nan-ppo.err"))"

[ "$fails" = 0 ] && echo "bad_inputs: all $rows rows passed" || { echo "bad_inputs: $fails of $rows failed"; exit 1; }
