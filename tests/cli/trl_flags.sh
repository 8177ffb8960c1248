#!/bin/bash
# TRL / transformers command-line habits: --version; an unknown flag names the closest one; TRL flags that
# do not apply here (--deepspeed, --fp16, --push_to_hub, ...) say so and what to use instead, and are
# accepted when off (--bf16 false); --report_to none is accepted, anything else points at training_log.csv
# and report.html; --config FILE.yaml sets flags as TRL's YAML (lists joined with commas, null = default,
# booleans in YAML spellings), flags on the command line win, and bad YAML / values name FILE:LINE. Every
# error exits 2 before anything is written.
set -u
RLHF=${1:?usage: trl_flags.sh path/to/rlhf}
W=$(mktemp -d -t rlhf-trl-flags.XXXXXX)
trap 'rm -rf "$W"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
TOK=tests/fixtures/tokenizers/gpt2

expect2() { # name, stderr regex, args...
  local name=$1 pat=$2 c=0; shift 2
  "$RLHF" "$@" >"$W/$name.out" 2>"$W/$name.err" || c=$?
  if [ "$c" != 2 ]; then fail "$name: exit $c, expected 2 ($(tail -n 1 "$W/$name.err"))"
  elif ! grep -qE -- "$pat" "$W/$name.err"; then fail "$name: stderr does not match /$pat/: $(cat "$W/$name.err")"
  elif [ -e "$W/out" ]; then fail "$name: wrote --output_dir"; fi
}
train=(--model_name_or_path "$W/none" --dataset_name "$W/none.jsonl" --output_dir "$W/out")

# --version, top-level and per command
v=$("$RLHF" --version) && [[ $v =~ ^rlhf\ [0-9]+\.[0-9]+\.[0-9]+$ ]] || fail "rlhf --version printed '$v'"
[ "$("$RLHF" reward --version)" = "$v" ] || fail "rlhf reward --version differs from rlhf --version"

# did you mean
expect2 typo "unknown flag '--lerning_rate'; did you mean --learning_rate\?" reward --lerning_rate 1e-3 "${train[@]}"
expect2 typo-dash "did you mean --per_device_train_batch_size\?" sft --per-device-train-batch-sise 4 "${train[@]}"
expect2 prefix "did you mean --model_name_or_path\?" ppo --model "$W/none"
expect2 far "unknown flag '--zzzzzzzzzzzz' \(see --help\)$" generate --zzzzzzzzzzzz 1

# TRL flags that do not apply: a sentence and what to use instead
expect2 deepspeed "--deepspeed ds.json: does not apply here; .*--threads N" reward --deepspeed ds.json "${train[@]}"
expect2 fsdp "--fsdp full_shard: does not apply here" sft --fsdp full_shard "${train[@]}"
expect2 push "--push_to_hub true: does not apply here; rlhf never uploads.*huggingface-cli upload" sft --push_to_hub "${train[@]}"
expect2 hub_id "--hub_model_id me/m: does not apply here; rlhf never uploads" reward --hub_model_id me/m "${train[@]}"
expect2 fp16 "--fp16 true: does not apply here; training computes in fp32.*--load_in_4bit" reward --fp16 "${train[@]}"
expect2 bf16 "--bf16 true: does not apply here" ppo --bf16 true "${train[@]}"
expect2 compile "--torch_compile true: does not apply here; rlhf is compiled C" sft --torch_compile "${train[@]}"
expect2 vllm "--use_vllm true: does not apply here; generation runs inside rlhf" ppo --use_vllm "${train[@]}"
expect2 report "--report_to wandb: not available here; .*training_log.csv.*report.html" reward --report_to wandb "${train[@]}"
expect2 report_tb "--report_to tensorboard: not available here" ppo --report_to=tensorboard "${train[@]}"
# ... accepted when off, and --report_to none is accepted: the run goes on to its first real error
expect2 off "--model_name_or_path $W/none|$W/none" reward --bf16 false --fp16=False --push_to_hub false \
  --report_to none --torch_compile false --use_cpu "${train[@]}"
grep -q "does not apply\|not available\|unknown flag" "$W/off.err" && fail "off flags rejected: $(cat "$W/off.err")"

# --config FILE.yaml (TRL's YAML); tokenize shows which value won
enc() { "$RLHF" tokenize "$@" 2>&1; }
cat >"$W/c.yaml" <<YAML
# a TRL-style config
tokenizer: $TOK
text: hello world
max_length: null        # None: the default
no_special_tokens: yes  # YAML 1.1 boolean
report_to: none
bf16: false
env:
  RLHF_TEST_FROM_YAML: "1"
YAML
[ "$(enc --config "$W/c.yaml")" = "$(enc --tokenizer $TOK --text "hello world")" ] ||
  fail "--config: $(enc --config "$W/c.yaml")"
[ "$(enc --config "$W/c.yaml" --text "good bye")" = "$(enc --tokenizer $TOK --text "good bye")" ] ||
  fail "the command line does not win over --config"
[ "$(enc --text "good bye" --config="$W/c.yaml")" = "$(enc --tokenizer $TOK --text "good bye")" ] ||
  fail "the command line does not win over --config given after it"
printf 'tokenizer: %s\ntext: [hello, world]\n' "$TOK" >"$W/list.yaml"
[ "$(enc --config "$W/list.yaml")" = "$(enc --tokenizer $TOK --text "hello,world")" ] ||
  fail "a YAML list is not joined with commas: $(enc --config "$W/list.yaml")"
printf 'tokenizer: %s\ntext: hi\nmax_length: [1, 2]\n' "$TOK" >"$W/l2.yaml"
expect2 yaml-list "l2.yaml:3: max_length: expected one value, got a list" tokenize --config "$W/l2.yaml"
printf 'tokenizer: %s\ntext: hi\nmax_lenght: 3\n' "$TOK" >"$W/typo.yaml"
expect2 yaml-typo "typo.yaml:3: unknown flag '--max_lenght'; did you mean --max_length\?" tokenize --config "$W/typo.yaml"
printf 'tokenizer: %s\ntext: hi\nmax_length: many\n' "$TOK" >"$W/val.yaml"
expect2 yaml-value "val.yaml:3: --max_length: expected an integer, got 'many'" tokenize --config "$W/val.yaml"
printf 'tokenizer: %s\ntext: [a,\n  b: c\n' "$TOK" >"$W/bad.yaml"
expect2 yaml-syntax "bad.yaml:[0-9]+: bad YAML" tokenize --config "$W/bad.yaml"
printf 'text:\n  nested: 1\n' >"$W/map.yaml"
expect2 yaml-map "map.yaml:1: text: expected a value or a list, got a mapping" tokenize --config "$W/map.yaml"
printf -- '- a\n- b\n' >"$W/seq.yaml"
expect2 yaml-root "seq.yaml:1: expected 'flag: value' lines" tokenize --config "$W/seq.yaml"
printf 'deepspeed: ds.json\n' >"$W/ds.yaml"
expect2 yaml-foreign "ds.yaml:1: --deepspeed ds.json: does not apply here" reward --config "$W/ds.yaml" "${train[@]}"
expect2 yaml-missing "--config $W/nope.yaml: cannot open the file" reward --config "$W/nope.yaml" "${train[@]}"
expect2 yaml-twice "--config: given twice" tokenize --config "$W/c.yaml" --config "$W/list.yaml"
expect2 not-yaml "--config: expected a YAML file" reward --config "$W/c.json" "${train[@]}"
# `rlhf init --config` stays the model's config.json
"$RLHF" init --help | grep -q -- "--config S" || fail "init lost its own --config flag"

[ $fails = 0 ] && echo "trl_flags: all passed"
exit $((fails > 0))
